# The debugger page (web/) in headless Chromium, against the real gateway
# (gateway/bin/dg-gateway): the list of things, one thing live over the
# WebSocket (a state reported through SQL appears without a reload), a desired
# value set in the page arrives in the database, reconnecting after the gateway
# restarts, deletion, and tokens.  test/web/debugger.mjs drives the browser with
# playwright-core and Debian's /usr/bin/chromium; it prints its assertions as
# JSON lines and asks this script for the SQL and gateway steps.  The screenshot
# is saved as $DG_WORK/debugger.png.
#
# Without the gateway binary (make -C gateway) this test fails: it does not skip.
use strict;
use warnings;
use Test::More;
use DgTest;
use IPC::Open3;
use IO::Select;
use HTTP::Tiny;
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);

my $root = $ENV{DG_ROOT} or die "DG_ROOT is not set";
my $work = $ENV{DG_WORK} or die "DG_WORK is not set";
my $bin = "$root/gateway/bin/dg-gateway";
my $webtest = "$root/test/web";
my $chromium = $ENV{DG_CHROMIUM} // '/usr/bin/chromium';
my $app = 'default';
my $lamp = 'kitchen/lamp';

sub slurp { my ($f) = @_; open my $fh, '<', $f or return undef; local $/; return scalar <$fh>; }
sub tail { my ($f, $n) = @_; my $t = slurp($f) // ''; my @l = split /\n/, $t; return join("\n", @l > $n ? @l[-$n .. -1] : @l); }

# ---- what the test needs: missing pieces fail the test

ok(-x $bin, 'the gateway is built') or diag("$bin is missing: make -C $root/gateway");
ok(-x $chromium, "Chromium is installed ($chromium)") or diag('apt-get install chromium');
my ($node_major) = (`node --version 2>/dev/null` // '') =~ /^v(\d+)/;
ok(($node_major // 0) >= 20, 'Node.js 20 or later') or diag('node is missing or too old');

# playwright-core as pinned in test/web/package-lock.json (DgTest::npm_install)
my $modules = $node_major ? npm_install($webtest, 'playwright-core') : undef;
ok($modules, 'playwright-core is installed (npm ci)') or diag(tail("$work/npm-web.log", 20));

unless (-x $bin && -x $chromium && $modules)
{
	done_testing();
	exit 1;
}

# ---- the database and the gateway

my $node = DgTest->cluster(name => 'debugger');

sub sql
{
	my ($query, @bind) = @_;
	return $node->psql('dg', $query, @bind);
}

sub thing
{
	my ($name) = @_;
	my $t = sql('SELECT doppelganger.dt_get_thing($1, $2)', $app, $name);
	return defined $t ? json_decode($t) : undef;
}

sub create { sql('SELECT doppelganger.dt_create_thing($1::jsonb) IS NOT NULL', json_encode($_[0])); }

create({ metadata => { application => $app, name => $lamp,
	labels => { room => 'kitchen', note => '<img src=x onerror="window.__xss=1">' },
	annotations => { 'drogue.io/device' => 'lamp-1' } } });
sql('SELECT doppelganger.dt_report_state($1, $2, $3::jsonb) IS NOT NULL', $app, $lamp,
	json_encode({ on => JSON::PP::true, brightness => 80 }));
sql('SELECT doppelganger.dt_set_desired_state($1, $2, $3, $4::jsonb) IS NOT NULL', $app, $lamp, 'brightness',
	json_encode({ value => 100, validFor => '10m' }));
sql('SELECT doppelganger.dt_set_desired_state($1, $2, $3, $4::jsonb) IS NOT NULL', $app, $lamp, 'on',
	json_encode({ value => JSON::PP::true, mode => 'once', method => 'manual' }));
sql('SELECT doppelganger.dt_set_synthetic_state($1, $2, $3, $4::jsonb) IS NOT NULL', $app, $lamp, 'level',
	json_encode({ alias => 'brightness' }));
sql('SELECT doppelganger.dt_set_reconciliation($1, $2, $3::jsonb) IS NOT NULL', $app, $lamp, json_encode({
	changed => { audit => { javaScript => 'log("seen " + context.newState.metadata.generation)' } },
	timers => { tick => { period => '1h', javaScript => 'log("tick")' } },
	deleting => { bye => { javaScript => 'log("bye")' } } }));
create({ metadata => { application => $app, name => 'hall/sensor', labels => { room => 'hall' } },
	reportedState => { temperature => { value => 21.5 } } });
create({ metadata => { application => $app, name => 'boiler' } });

my $gw = eval { DgTest::Gateway->start($node) };
ok($gw, 'the gateway starts') or diag($@);
unless ($gw)
{
	diag(tail("$node->{dir}/gateway.log", 20));
	done_testing();
	exit 1;
}
my $url = $gw->url;
my ($port) = $url =~ /:(\d+)$/;

my $http = HTTP::Tiny->new(timeout => 10);
for my $case ([ '/debugger/', qr{^text/html} ], [ '/debugger/app.js', qr{^(text|application)/javascript} ],
	[ '/debugger/style.css', qr{^text/css} ])
{
	my ($path, $type) = @$case;
	my $r = $http->get("$url$path");
	ok($r->{status} == 200 && ($r->{headers}{'content-type'} // '') =~ $type, "GET $path: 200 with its content type")
	  or diag("$r->{status}, content-type " . ($r->{headers}{'content-type'} // 'none'));
}

# ---- the steps the browser script asks for

my $secret = 'debugger-test-secret';
my $gw2;

sub jwt
{
	my ($claims) = @_;
	my $h = encode_base64url(json_encode({ alg => 'HS256', typ => 'JWT' }));
	my $p = encode_base64url(json_encode($claims));
	return "$h.$p." . encode_base64url(hmac_sha256("$h.$p", $secret));
}

sub start_gateway
{
	my @args = @_;
	my $g;
	for (1 .. 20)	# the port may linger for a moment after a stop
	{
		$g = eval { DgTest::Gateway->start($node, @args) };
		return $g if $g;
		sleep 0.25;
	}
	diag("the gateway did not start again: $@");
	return undef;
}

my %steps = (
	report => sub {
		my ($m) = @_;
		sql('SELECT doppelganger.dt_report_state($1, $2, $3::jsonb) IS NOT NULL', $app, $lamp, json_encode($m->{state}));
		return {};
	},
	'check-desired' => sub {
		my ($m) = @_;
		my ($f, $why);
		my $good = poll_until(sub {
			my $t = thing($lamp);
			$f = $t && $t->{desiredState} && $t->{desiredState}{ $m->{feature} };
			return 0 unless $f;
			my $value = $f->{value};
			if (!defined $m->{value})
			{
				$why = 'value is not null';
				return !defined $value;
			}
			$why = 'value differs';
			return 0 unless defined $value && !ref $value && $value == $m->{value};
			return 1 unless $m->{validFor};
			my $left = DgTest::time_of($f->{validUntil} // '') // 0;
			$left -= time;
			$why = sprintf('validUntil %s is %.1f s away, expected about %d s', $f->{validUntil} // 'missing', $left, $m->{validFor});
			return $left > $m->{validFor} - 20 && $left <= $m->{validFor} + 5;
		}, 10);
		return { ok => $good ? JSON::PP::true : JSON::PP::false,
			diag => $good ? '' : "$m->{feature}: $why: " . json_encode($f) };
	},
	'stop-gateway' => sub { $gw->stop; return {}; },
	'start-gateway' => sub {
		$gw = start_gateway('--port', $port);
		return { ok => $gw ? JSON::PP::true : JSON::PP::false };
	},
	delete => sub { sql('SELECT doppelganger.dt_delete_thing($1, $2)', $app, $lamp); return {}; },
	'auth-gateway' => sub {
		$gw2 = start_gateway('--jwt-secret', $secret);
		return { url => $gw2 ? $gw2->url : 'http://127.0.0.1:1', token => jwt({ role => 'postgres', exp => int(time) + 3600 }) };
	},
);

# ---- run the browser script

my $shot = "$work/debugger.png";
unlink $shot;
my $nodelog = "$work/debugger-node.log";
open my $errfh, '>', $nodelog or die "$nodelog: $!";
my ($to, $from);
my $pid = do {
	local $ENV{DG_URL} = $url;
	local $ENV{DG_SCREENSHOT} = $shot;
	local $ENV{DG_NODE_MODULES} = $modules;
	local $ENV{DG_CHROMIUM} = $chromium;
	open3($to, $from, '>&' . fileno($errfh), 'node', "$webtest/debugger.mjs");
};
$to->autoflush(1);

my $select = IO::Select->new($from);
my $deadline = time + 300;
my ($buffer, $ended, $screenshot) = ('', 0, undef);
my @other;
READ: while (!$ended)
{
	my $left = $deadline - time;
	last if $left <= 0 || !$select->can_read($left);
	my $n = sysread($from, $buffer, 65536, length $buffer);
	last unless $n;
	while ($buffer =~ s/^([^\n]*)\n//)
	{
		my $line = $1;
		my $m = $line =~ /^\{/ ? eval { json_decode($line) } : undef;
		if (!$m)
		{
			push @other, $line;
			next;
		}
		if (exists $m->{ok})
		{
			ok($m->{ok}, "page: $m->{name}") or diag($m->{diag});
		}
		elsif (my $step = $m->{need})
		{
			my $answer = $steps{$step} ? $steps{$step}->($m) : { error => "unknown step $step" };
			print $to json_encode({ %$answer, ack => $step }), "\n";
		}
		elsif ($m->{screenshot})
		{
			$screenshot = $m->{screenshot};
		}
		elsif ($m->{end})
		{
			$ended = 1;
			last READ;
		}
	}
}
ok($ended, 'the browser script ran to its end')
  or diag("node's output:\n" . join("\n", @other) . "\n" . tail($nodelog, 30));
close $to;
kill 'TERM', $pid unless $ended;
waitpid($pid, 0);
is($? >> 8, 0, 'node exits cleanly') or diag(tail($nodelog, 30));

ok(defined $screenshot && -s $shot, 'a screenshot was saved');
diag("screenshot: $shot") if -s $shot;

$gw2->stop if $gw2;
$gw->stop if $gw;
ok(!defined $gw || ($gw->{exit} // 0) == 0, 'the gateway stops cleanly');

done_testing();
