#!/usr/bin/perl
# bench/listen-latency.pl: the baseline of bench/gateway.sh, a plain LISTEN
# thing_changes session in the same database: from a change's processing
# (the newest lastUpdate in its notification's patch) to this client.
#
#   perl bench/listen-latency.pl CONNINFO SECONDS
#
# Prints "ready", then after SECONDS one JSON line like wsload.mjs's.
use strict;
use warnings;
use DBI;
use JSON::XS qw(decode_json encode_json);	# JSON::PP cannot keep up with 5,000 notifications/s
use IO::Select;
use Time::HiRes qw(time);
use Time::Local qw(timegm);

my ($conninfo, $seconds) = @ARGV;
$conninfo =~ s/ /;/g;
my $dbh = DBI->connect("dbi:Pg:$conninfo", 'postgres', '', { RaiseError => 1, AutoCommit => 1 });
$dbh->do('LISTEN thing_changes');
my $sel = IO::Select->new($dbh->{pg_socket});
my (@lat, $changes);
$| = 1;
print "ready\n";
my $end = time + $seconds;
while ((my $left = $end - time) > 0)
{
	$sel->can_read($left) or next;
	while (my $n = $dbh->pg_notifies)
	{
		my $now = time;
		my $p = decode_json($n->[2]);
		$changes++;
		my $newest = 0;
		for my $op (@{ $p->{patch} // [] })
		{
			my @stamps;
			push @stamps, $op->{value} if $op->{path} =~ m{/lastUpdate$};
			push @stamps, map { $_->{lastUpdate} // () } values %{ $op->{value} }
				if $op->{path} eq '/reportedState' && ref $op->{value} eq 'HASH';
			for my $s (@stamps)
			{
				next unless $s =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(\.\d+)?Z$/;
				my $t = timegm($6, $5, $4, $3, $2 - 1, $1) + ($7 // 0);
				$newest = $t if $t > $newest;
			}
		}
		push @lat, ($now - $newest) * 1000 if $newest;
	}
}
my @s = sort { $a <=> $b } @lat;
my $pct = sub { @s ? sprintf('%.0f', $s[int(@s * $_[0]) < @s ? int(@s * $_[0]) : $#s]) + 0 : undef };
print encode_json({ changes => $changes // 0, p50 => $pct->(0.5), p90 => $pct->(0.9), p99 => $pct->(0.99),
	max => @s ? sprintf('%.0f', $s[-1]) + 0 : undef }), "\n";
