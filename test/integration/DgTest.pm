# DgTest.pm: throwaway PostgreSQL clusters (and the test broker) for the
# integration tests.  Tests run as the postgres user; scripts/test sets
# DG_ROOT (the checkout) and DG_WORK (a scratch directory).
package DgTest;

use strict;
use warnings;
use DBI;
use IO::Socket::INET;
use JSON::PP;
use Time::HiRes qw(time sleep);
use Exporter 'import';
use IPC::Open2;
use IPC::Open3;
use Time::Local qw(timegm);
use Fcntl qw(:flock);
use File::Basename qw(basename);
use File::Copy qw(copy);

# sleep and time are Time::HiRes's: tests wait for fractions of a second
our @EXPORT = qw(consume free_port json_decode json_encode npm_install patch_apply poll_until produce sleep time);

my $PGBIN = '/usr/lib/postgresql/15/bin';

sub _slurp { my ($f) = @_; open my $fh, '<', $f or return undef; local $/; return scalar <$fh>; }

sub _npm_version
{
	my ($file, $key) = @_;
	my $text = _slurp($file) or return '';
	my $j = eval { JSON::PP->new->decode($text) } or return '';
	return ($key ? $j->{packages}{$key}{version} : $j->{version}) // '';
}

# npm_install($dir, $package): a directory holding node_modules with $package
# at the version $dir/package-lock.json pins, installed by npm ci in $dir or,
# where the checkout is not ours to write (CI clones as root, the tests run
# as postgres), in a copy under DG_WORK.  undef if npm ci failed (its log is
# in DG_WORK).
sub npm_install
{
	my ($src, $package) = @_;
	my $want = _npm_version("$src/package-lock.json", "node_modules/$package") or return undef;
	my $installed = sub { _npm_version("$_[0]/node_modules/$package/package.json") eq $want };
	return $src if $installed->($src);
	my $name = basename($src);
	open my $lock, '>', "$ENV{DG_WORK}/npm-$name.lock" or die "$ENV{DG_WORK}/npm-$name.lock: $!";
	flock($lock, LOCK_EX) or die "flock: $!";
	return $src if $installed->($src);
	my $dir = -w $src ? $src : "$ENV{DG_WORK}/$name-node";
	if ($dir ne $src)
	{
		mkdir $dir unless -d $dir;
		copy("$src/$_", "$dir/$_") or die "copy $_: $!" for qw(package.json package-lock.json);
		return $dir if $installed->($dir);
	}
	local $ENV{npm_config_cache} = "$ENV{DG_WORK}/npm-cache";
	local $ENV{npm_config_update_notifier} = 'false';
	local $ENV{PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD} = '1';
	my $log = "$ENV{DG_WORK}/npm-$name.log";
	system("cd '$dir' && npm ci --no-audit --no-fund --loglevel=error >'$log' 2>&1");
	return $installed->($dir) ? $dir : undef;
}
my $JSON = JSON::PP->new->canonical->allow_nonref;

sub json_decode { return $JSON->decode($_[0]); }
sub json_encode { return $JSON->encode($_[0]); }

# A port nobody listens on.
sub free_port
{
	for (1 .. 100)
	{
		my $port = 56000 + int(rand(8000));
		my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
			Proto => 'tcp', ReuseAddr => 0);
		next unless $sock;
		close $sock;
		return $port;
	}
	die "no free port";
}

# Seconds since the epoch of an RFC 3339 UTC timestamp.
sub time_of
{
	my ($ts) = @_;
	my ($y, $mo, $d, $h, $mi, $s, $frac) = $ts =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(\.\d+)?Z$/
	  or return undef;
	return timegm($s, $mi, $h, $d, $mo - 1, $y) + ($frac // 0);
}

# Wait until $check->() returns true; returns its last value.
sub poll_until
{
	my ($check, $timeout) = @_;
	my $deadline = time + ($timeout // 30);
	my $value;
	while (time < $deadline)
	{
		$value = $check->();
		return $value if $value;
		sleep 0.05;
	}
	return $value;
}

# Apply an RFC 6902 patch made of add, remove and replace (what the server's
# diff produces) to a Perl structure; returns the new document.
sub patch_apply
{
	my ($doc, $patch) = @_;
	for my $op (@$patch)
	{
		my @path = map { s/~1/\//gr =~ s/~0/~/gr } split m{/}, $op->{path}, -1;
		shift @path;
		if (!@path)
		{
			$doc = $op->{value};
			next;
		}
		my $last = pop @path;
		my $parent = $doc;
		$parent = ref $parent eq 'ARRAY' ? $parent->[$_] : $parent->{$_} for @path;
		if (ref $parent eq 'ARRAY')
		{
			if ($op->{op} eq 'remove') { splice @$parent, $last, 1; }
			elsif ($op->{op} eq 'add') { splice @$parent, ($last eq '-' ? scalar @$parent : $last), 0, $op->{value}; }
			else { $parent->[$last] = $op->{value}; }
		}
		else
		{
			if ($op->{op} eq 'remove') { delete $parent->{$last}; }
			else { $parent->{$last} = $op->{value}; }
		}
	}
	return $doc;
}

# DgTest->cluster(name => 'x', conf => [lines]): a new, started cluster with
# the library preloaded and a database "dg" holding the extension.
sub cluster
{
	my ($class, %opt) = @_;
	my $self = bless {
		name => $opt{name} // 'node',
		port => free_port(),
		conf => $opt{conf} // [],
	}, $class;
	$self->{dir} = "$ENV{DG_WORK}/$self->{name}";
	system("rm -rf $self->{dir}") == 0 or die;
	mkdir $self->{dir} or die "mkdir $self->{dir}: $!";
	system("$PGBIN/initdb -D $self->{dir}/data -U postgres -A trust --no-sync >/dev/null") == 0
	  or die "initdb failed";
	open my $fh, '>>', "$self->{dir}/data/postgresql.conf" or die;
	print $fh "port = $self->{port}\n";
	print $fh "listen_addresses = '127.0.0.1'\n";
	print $fh "unix_socket_directories = '$self->{dir}'\n";
	print $fh "shared_preload_libraries = 'doppelganger'\n";
	print $fh "doppelganger.database = 'dg'\n";
	print $fh "fsync = off\n";
	print $fh "log_line_prefix = '%m [%p] %b '\n";
	print $fh "$_\n" for @{ $self->{conf} };
	close $fh;
	$self->start;
	$self->psql('postgres', 'CREATE DATABASE dg');
	$self->psql('dg', 'CREATE EXTENSION doppelganger') unless $opt{no_extension};
	return $self;
}

sub conf
{
	my ($self, @lines) = @_;
	open my $fh, '>>', "$self->{dir}/data/postgresql.conf" or die;
	print $fh "$_\n" for @lines;
	close $fh;
}

sub start
{
	my ($self) = @_;
	system("$PGBIN/pg_ctl -D $self->{dir}/data -l $self->{dir}/server.log -w -t 60 start >/dev/null") == 0
	  or die "pg_ctl start failed: " . `tail -20 $self->{dir}/server.log`;
}

sub stop
{
	my ($self, $mode) = @_;
	$mode //= 'fast';
	system("$PGBIN/pg_ctl -D $self->{dir}/data -m $mode -w -t 60 stop >/dev/null 2>&1");
}

sub restart { my ($self) = @_; $self->stop; $self->start; }
sub reload { my ($self) = @_; system("$PGBIN/pg_ctl -D $self->{dir}/data reload >/dev/null"); }

sub DESTROY { my ($self) = @_; $self->stop('immediate') if $self->{dir} && !$self->{kept}; }

sub connstr { my ($self, $db) = @_; return "dbname=" . ($db // 'dg') . " host=$self->{dir} port=$self->{port}"; }

sub dbh
{
	my ($self, $db) = @_;
	return DBI->connect("dbi:Pg:dbname=" . ($db // 'dg') . ";host=$self->{dir};port=$self->{port}",
		'postgres', '', { AutoCommit => 1, RaiseError => 1, PrintError => 0, pg_enable_utf8 => 1,
		  pg_placeholder_dollaronly => 1 });
}

# Run SQL (one statement) in a fresh session; returns the first column of the first row.
sub psql
{
	my ($self, $db, $sql, @bind) = @_;
	my $dbh = $self->dbh($db);
	my $sth = $dbh->prepare($sql);
	$sth->execute(@bind);
	my $row = $sth->{NUM_OF_FIELDS} ? $sth->fetchrow_arrayref : undef;
	my $value = $row ? $row->[0] : undef;
	$sth->finish;
	$dbh->disconnect;
	return $value;
}

sub log_contents
{
	my ($self) = @_;
	open my $fh, '<', "$self->{dir}/server.log" or return '';
	local $/;
	return <$fh>;
}

# ---- the test broker (tools/bin/dg-broker) ----

package DgTest::Broker;

# DgTest::Broker->start('events:4', ...): a mock Kafka cluster on loopback.
sub start
{
	my ($class, @topics) = @_;
	my $bin = "$ENV{DG_ROOT}/tools/bin/dg-broker";
	my ($out, $in);
	my $pid = IPC::Open2::open2($out, $in, $bin, map { ('-t', $_) } @topics);
	my $addr = <$out>;
	die "dg-broker did not start" unless defined $addr;
	chomp $addr;
	return bless { pid => $pid, out => $out, in => $in, bootstrap => $addr }, $class;
}

sub bootstrap { return $_[0]{bootstrap}; }

# Send a command (down, up, topic NAME N) and return the answer line.
sub command
{
	my ($self, $cmd) = @_;
	my $fh = $self->{in};
	print $fh "$cmd\n";
	$fh->flush;
	my $out = $self->{out};
	my $answer = <$out>;
	chomp $answer if defined $answer;
	return $answer;
}

sub stop
{
	my ($self) = @_;
	return unless $self->{pid};
	kill 'TERM', $self->{pid};
	waitpid($self->{pid}, 0);
	$self->{pid} = undef;
}

sub DESTROY { $_[0]->stop; }

# ---- the HTTP/WebSocket gateway (gateway/bin/dg-gateway) ----

package DgTest::Gateway;

# DgTest::Gateway->start($node, '--jwt-secret', 's', ...): a gateway on an
# ephemeral loopback port in front of the cluster's database dg; ->url is
# its base URL.  The login role is the cluster's superuser (postgres).
sub start
{
	my ($class, $node, @args) = @_;
	my $bin = "$ENV{DG_ROOT}/gateway/bin/dg-gateway";
	my $log = "$node->{dir}/gateway.log";
	my ($out, $in);
	open my $err, '>>', $log or die "$log: $!";
	my $pid = IPC::Open3::open3($in, $out, '>&' . fileno($err), $bin, '--port', '0',
		'--db', $node->connstr('dg'), '--web', "$ENV{DG_ROOT}/web", @args);
	my $line = <$out>;
	die "dg-gateway did not start (see $log)" unless defined $line && $line =~ m{(http://\S+)};
	return bless { pid => $pid, out => $out, in => $in, url => $1, log => $log }, $class;
}

sub url { return $_[0]{url}; }
sub log_contents { my ($self) = @_; open my $fh, '<', $self->{log} or return ''; local $/; return <$fh>; }

sub stop
{
	my ($self) = @_;
	return unless $self->{pid};
	kill 'TERM', $self->{pid};
	waitpid($self->{pid}, 0);
	$self->{exit} = $?;
	$self->{pid} = undef;
}

sub DESTROY { $_[0]->stop; }

package DgTest;

# produce($broker, $topic, [[key, value], ...], headers => {name => value}):
# records through kcat, a real Kafka client, in order (one partition per key).
sub produce
{
	my ($broker, $topic, $records, %opt) = @_;
	my @cmd = ('kcat', '-P', '-b', $broker->bootstrap, '-t', $topic, '-K', "\x01", '-D', "\x02", '-z', 'none');
	for my $h (sort keys %{ $opt{headers} // {} })
	{
		push @cmd, '-H', "$h=$opt{headers}{$h}";
	}
	open my $fh, '|-', @cmd or die "kcat: $!";
	binmode $fh;
	for my $r (@$records)
	{
		print $fh (defined $r->[0] ? $r->[0] : ''), "\x01", $r->[1], "\x02";
	}
	close $fh or die "kcat failed: $?";
}

# consume($broker, $topic, $count, $timeout): the topic's records from the
# beginning, through kcat, once there are at least $count of them; each a hash
# with topic, partition, offset, key, payload and headers (a hash).
sub consume
{
	my ($broker, $topic, $count, $timeout) = @_;
	my @records;
	poll_until(sub {
		@records = ();
		open my $fh, '-|', 'kcat', '-C', '-b', $broker->bootstrap, '-t', $topic, '-o', 'beginning',
			'-e', '-J', '-q' or die "kcat: $!";
		while (my $line = <$fh>)
		{
			my $r = json_decode($line);
			$r->{headers} = { @{ $r->{headers} // [] } };
			push @records, $r;
		}
		close $fh;
		return @records >= $count;
	}, $timeout // 30);
	return sort { $a->{partition} <=> $b->{partition} || $a->{offset} <=> $b->{offset} } @records;
}

# Wait until the stored offsets of the group account for $count records.
sub wait_consumed
{
	my ($self, $count, $timeout, $group) = @_;
	$group //= 'doppelganger';
	return DgTest::poll_until(sub {
		my $n = $self->psql('dg', "SELECT coalesce(sum(next_offset), 0) FROM doppelganger.offsets WHERE consumer_group = '$group'");
		return $n >= $count ? $n : 0;
	}, $timeout // 60);
}

1;
