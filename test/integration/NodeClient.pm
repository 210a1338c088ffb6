# NodeClient: the WebSocket and SSE client of the gateway tests, a Node.js
# process running test/gateway/wsclient.mjs (the ws package), driven over
# its stdin and stdout.
package NodeClient;

use strict;
use warnings;

use IPC::Open2;
use IO::Select;
use DgTest ();
use JSON::PP;
use Time::HiRes qw(time);

our $JSON;
BEGIN { $JSON = JSON::PP->new->utf8->canonical; }

sub new
{
	my ($class) = @_;
	my $dir = DgTest::npm_install("$ENV{DG_ROOT}/test/gateway", 'ws')
	  or die "npm ci in test/gateway failed: see $ENV{DG_WORK}/npm-gateway.log";
	local $ENV{DG_NODE_MODULES} = "$dir/node_modules";
	my ($out, $in);
	my $pid = open2($out, $in, 'node', "$ENV{DG_ROOT}/test/gateway/wsclient.mjs");
	$in->autoflush(1);
	return bless { pid => $pid, out => $out, in => $in, buf => '', q => {}, seen => {} }, $class;
}

sub cmd { my ($self, $cmd) = @_; print { $self->{in} } $JSON->encode($cmd), "\n"; }

sub ws
{
	my ($self, $id, $url, %opt) = @_;
	$self->cmd({ op => 'ws', id => $id, url => $url, %opt });
}

sub sse
{
	my ($self, $id, $url, %opt) = @_;
	$self->cmd({ op => 'sse', id => $id, url => $url, %opt });
}

# send($id, $data, binary => 1) or send($id, undef, text => '...')
sub send
{
	my ($self, $id, $data, %opt) = @_;
	$self->cmd({ op => 'send', id => $id, (defined $data ? (json => $data) : (text => $opt{text})),
		binary => $opt{binary} ? JSON::PP::true : JSON::PP::false });
}

# Read what the client reported, for up to $timeout seconds (0: what is there).
sub pump
{
	my ($self, $timeout) = @_;
	my $sel = IO::Select->new($self->{out});
	my $got = 0;
	while ($sel->can_read($got ? 0 : $timeout))
	{
		my $n = sysread($self->{out}, my $chunk, 1 << 20);
		die "wsclient.mjs ended" unless $n;
		$self->{buf} .= $chunk;
		$got = 1;
		while ($self->{buf} =~ s/^([^\n]*)\n//)
		{
			my $ev = $JSON->decode($1);
			push @{ $self->{q}{ $ev->{id} // '' } }, $ev;
			push @{ $self->{seen}{ $ev->{id} // '' } }, $ev unless $ev->{ev} eq 'message' || $ev->{ev} eq 'event';
		}
	}
	return $got;
}

# Pump until $check->() is true or $timeout seconds passed; returns its value.
sub pump_until
{
	my ($self, $check, $timeout) = @_;
	my $deadline = time + ($timeout // 10);
	while (1)
	{
		my $v = $check->();
		return $v if $v;
		my $left = $deadline - time;
		return $v if $left <= 0;
		$self->pump($left < 0.05 ? $left : 0.05);
	}
}

# The first queued event of $id for which $pred is true, removed with the
# events before it (they stay readable through taken()); undef on timeout.
sub wait_for
{
	my ($self, $id, $pred, $timeout) = @_;
	my $found;
	$self->pump_until(sub {
		my $q = $self->{q}{$id} // [];
		for my $i (0 .. $#$q)
		{
			if ($pred->($q->[$i]))
			{
				$found = $q->[$i];
				push @{ $self->{taken}{$id} }, splice(@$q, 0, $i + 1);
				return 1;
			}
		}
		return 0;
	}, $timeout // 10);
	return $found;
}

# The events taken by wait_for since the last call, as messages' JSON.
sub taken
{
	my ($self, $id) = @_;
	my @t = grep { $_->{ev} eq 'message' } @{ delete $self->{taken}{$id} // [] };
	return @t;
}

sub wait_open { my ($self, $id) = @_; return $self->wait_for($id, sub { $_[0]{ev} =~ /^(open|unexpected|close|error)$/ }) // { ev => 'timeout' }; }
sub wait_close { my ($self, $id, $t) = @_; return $self->wait_for($id, sub { $_[0]{ev} eq 'close' }, $t); }
sub closed { my ($self, $id) = @_; my ($c) = grep { $_->{ev} eq 'close' } @{ $self->{seen}{$id} // [] }; return $c; }

# The next message of $id whose JSON satisfies $pred.
sub msg
{
	my ($self, $id, $pred, $timeout) = @_;
	return $self->wait_for($id, sub { $_[0]{ev} eq 'message' && $pred->($_[0]{json} // $_[0]) }, $timeout);
}

# Let $seconds pass while reading; the messages queued for $id then.
sub settle { my ($self, $seconds) = @_; my $end = time + $seconds; $self->pump_until(sub { time >= $end }, $seconds + 1); }
sub messages
{
	my ($self, $id) = @_;
	$self->pump(0);
	my @m = grep { $_->{ev} eq 'message' } @{ $self->{q}{$id} // [] };
	$self->{q}{$id} = [];
	return @m;
}

sub close
{
	my ($self) = @_;
	return unless $self->{pid};
	$self->cmd({ op => 'exit' });
	CORE::close($self->{in});
	waitpid($self->{pid}, 0);
	$self->{pid} = undef;
}

sub DESTROY { my ($self) = @_; if ($self->{pid}) { kill 'TERM', $self->{pid}; waitpid($self->{pid}, 0); } }

1;
