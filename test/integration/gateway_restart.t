# The gateway outlives its database: PostgreSQL restarts under a live
# event stream, the gateway listens again on its own, the stream carries
# on with the change made meanwhile, and REST works again.
use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use DgTest;

$SIG{ALRM} = sub { fail('the test timed out'); done_testing(); exit 1; };
alarm 120;

my $node = DgTest->cluster(name => 'gateway_restart');
my $gw = DgTest::Gateway->start($node, '--pool', '1');	# one REST connection: which one breaks is known
my $API = '/api/v1alpha1/things';
my $http = HTTP::Tiny->new(timeout => 10);
my $stream = "$node->{dir}/events.txt";
my $curl;

END
{
	my $status = $?;
	kill 'TERM', $curl if $curl;
	$gw->stop if $gw;
	if ($node) { $node->stop('immediate'); $node->{kept} = 1; }
	$? = $status;
}

sub report
{
	my ($value) = @_;
	my $dbh = $node->dbh;
	$dbh->selectrow_array('SELECT doppelganger.dt_report_state($1, $2, $3)', undef, 'app', 'pump',
		qq({"pressure": $value}));
	$dbh->disconnect;
}

sub stream_has { open my $fh, '<', $stream or return 0; local $/; my $s = <$fh>; return index($s, $_[0]) >= 0; }

$node->dbh->selectrow_array('SELECT doppelganger.dt_create_thing($1)', undef,
	'{"metadata": {"application": "app", "name": "pump"}, "reportedState": {"pressure": {"value": 1}}}');

# an event stream, read by curl into a file
$curl = fork // die "fork: $!";
if (!$curl)
{
	open STDOUT, '>', $stream or die "$stream: $!";
	exec 'curl', '-sN', '--max-time', '90', $gw->url . "$API/app/things/pump/events";
}
ok(poll_until(sub { stream_has('event: initial') }, 10), 'the stream starts with initial');
report(2);
ok(poll_until(sub { stream_has('"pressure":{"value":2') }, 10), 'and carries a change');

$node->restart;
report(3);		# made while the gateway may still be reconnecting
ok(poll_until(sub { stream_has('"pressure":{"value":3') }, 20),
	'after the restart, the stream carries the change made meanwhile');
report(4);
ok(poll_until(sub { stream_has('"pressure":{"value":4') }, 10), 'and the next one');
like($gw->log_contents, qr/listening for changes again/, 'the gateway says it listens again');

# the request connection finds out on its next call: a read is tried again
# on a new connection, so the first GET after the restart succeeds
my $r = $http->get($gw->url . "$API/app/things/pump");
is($r->{status}, 200, 'the first GET after the restart: 200');
like($r->{content} // '', qr/"value":\s*4/, 'with the current state');

# a write is not tried again (it may have been applied): 503, then the next works
$node->restart;
my %put = (headers => { 'content-type' => 'application/json' }, content => '{"pressure": 5}');
$r = $http->put($gw->url . "$API/app/things/pump/reportedStates", \%put);
is($r->{status}, 503, 'the first write after another restart: 503');
like($r->{content} // '', qr/"error":"Unavailable"/, 'saying the database is unavailable');
$r = $http->put($gw->url . "$API/app/things/pump/reportedStates", \%put);
is($r->{status}, 204, 'the next write: 204');
ok(poll_until(sub { stream_has('"pressure":{"value":5') }, 20), 'and the stream carries it');

ok(kill(0, $gw->{pid}), 'the gateway kept running');
$gw->stop;
is($gw->{exit}, 0, 'and stops cleanly');
done_testing();
