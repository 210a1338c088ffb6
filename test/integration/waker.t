# The waker: script-requested wake-ups and timers (reference §10.2 items
# 16-26), wake-up precision, and a hook that fails in the waker.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use DgTest;

my $node = DgTest->cluster(name => 'waker', conf => ["doppelganger.waker_interval = 1000"]);
my $dbh = $node->dbh;
my $listener = $node->dbh;
$listener->do('LISTEN thing_changes');
my %notes;
sub drain { while (my $n = $listener->pg_notifies) { $notes{json_decode($n->[2])->{thing}}++; } }
sub thing { return json_decode($dbh->selectrow_array(q{SELECT doppelganger.dt_get_thing('default', $1)}, undef, $_[0])); }

ok(poll_until(sub { $node->psql('dg', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'doppelganger waker'}) }),
	'the waker runs');

# 16-20: a hook that asks to be woken in 5 s
my $hook = <<'JS';
var s = context.newState, r = s.reportedState || (s.reportedState = {});
var a = s.metadata.annotations || (s.metadata.annotations = {});
if (r.foo === undefined) {
  if (a.test === 'true') {
    r.foo = {value: 'bar', lastUpdate: new Date().toISOString()};
  } else {
    s.metadata.annotations = {test: 'true'};
    wakeup('5s');
  }
}
JS
my $t0 = time;
my $created = json_decode($dbh->selectrow_array(q{SELECT doppelganger.dt_create_thing(jsonb_build_object(
	'metadata', jsonb_build_object('application', 'default', 'name', 'sleepy'),
	'reconciliation', jsonb_build_object('changed', jsonb_build_object('w', jsonb_build_object('javaScript', $1::text)))))},
	undef, $hook));
is_deeply($created->{internal}{waker}{why}, ['reconcile'], '16: the waker reason is reconcile');
ok(DgTest::time_of($created->{internal}{waker}{when}) > $t0 + 4, '16: ... in about 5 s');
is($created->{metadata}{annotations}{test}, 'true', '17: a hook can change metadata during create');
ok(poll_until(sub { my $t = thing('sleepy'); $t->{reportedState}{foo} }, 15), 'the wake-up came');
my $woken = time - $t0;
cmp_ok($woken, '>=', 4.9, "18: not before it was due ($woken s)");
cmp_ok($woken, '<=', 7, '18: and within about the waker interval of it');
my $t = thing('sleepy');
is($t->{reportedState}{foo}{value}, 'bar', '19: foo = bar');
ok(!exists $t->{internal}, '18: the waker is empty afterwards');
sleep 0.5;
drain();
is($notes{sleepy}, 2, '20: exactly two notifications: the create and the wake-up');

# 21-26: a timer with period 5 s and initial delay 3 s
my $timer = 'var r = context.newState.reportedState || (context.newState.reportedState = {});'
	. ' r.timer = {value: (r.timer ? r.timer.value : 0) + 1, lastUpdate: new Date().toISOString()};';
$t0 = time;
$created = json_decode($dbh->selectrow_array(q{SELECT doppelganger.dt_create_thing(jsonb_build_object(
	'metadata', jsonb_build_object('application', 'default', 'name', 'ticker'),
	'reconciliation', jsonb_build_object('timers', jsonb_build_object('timer1',
		jsonb_build_object('javaScript', $1::text, 'period', '5s', 'initialDelay', '3s')))))},
	undef, $timer));
my $entry = $created->{reconciliation}{timers}{timer1};
ok(!exists $entry->{lastRun}, '21: no lastRun yet');
is($entry->{stopped}, JSON::PP::false, '21: not stopped');
ok($entry->{lastStarted}, '21: lastStarted is set');
ok(!exists $created->{reportedState}, '22: the timer has not run');
is_deeply($created->{internal}{waker}{why}, ['reconcile'], '23: the waker reason is reconcile');
ok(poll_until(sub { (thing('ticker')->{reportedState}{timer}{value} // 0) >= 1 }, 10), 'the timer ran');
cmp_ok(time - $t0, '>=', 2.9, '24: after the initial delay');
$t = thing('ticker');
ok($t->{reconciliation}{timers}{timer1}{lastRun}, '24: lastRun is set');
is_deeply($t->{internal}{waker}{why}, ['reconcile'], '24: it asked to be woken again');
ok(poll_until(sub { (thing('ticker')->{reportedState}{timer}{value} // 0) >= 2 }, 10), 'and ran again');
my $second = time - $t0;
cmp_ok($second, '>=', 4.9, "25: at the first period boundary ($second s)");
cmp_ok($second, '<=', 7, '25: within about the waker interval of it');
drain();
is($notes{ticker}, 3, '26: three notifications: the create and two runs');
$dbh->do(q{SELECT doppelganger.dt_set_reconciliation('default', 'ticker', '{"timers": {"timer1": {"javaScript": "1", "period": "5s", "stopped": true}}}')});
my $stopped = thing('ticker');
ok(!exists $stopped->{reconciliation}{timers}{timer1}{lastStarted}, 'a stopped timer has no lastStarted');
ok(!exists $stopped->{internal}, 'and no wake-up');

# E6: a hook that asks for a wake-up every second counts up
$dbh->do(q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "default", "name": "counter"}}')});
$dbh->do(q{SELECT doppelganger.dt_set_reconciliation('default', 'counter', jsonb_build_object('changed',
	jsonb_build_object('wakeup', jsonb_build_object('javaScript', $1::text))))}, undef,
	'var r = context.newState.reportedState || (context.newState.reportedState = {}); r.counter = {value: (r.counter ? r.counter.value : 0) + 1}; wakeup("1s");');
my $c0 = thing('counter')->{reportedState}{counter}{value};
is($c0, 1, 'E6: the counter starts at 1');
sleep 4.5;
my $c1 = thing('counter')->{reportedState}{counter}{value};
cmp_ok($c1 - $c0, '>=', 2, "E6: it counts up about once a second ($c0 -> $c1 in 4.5 s)");
cmp_ok($c1 - $c0, '<=', 6, 'E6: but not faster than asked');

# E7: a timer replaces the section (the wake-up hook goes), runs at once, then every second
$dbh->do(q{SELECT doppelganger.dt_set_reconciliation('default', 'counter', jsonb_build_object('timers',
	jsonb_build_object('test', jsonb_build_object('period', '1s', 'javaScript', $1::text))))}, undef,
	'var r = context.newState.reportedState; r.timer = {value: (r.timer ? r.timer.value : 0) + 1};');
my $e7 = thing('counter');
is($e7->{reportedState}{timer}{value}, 1, 'E7: the timer ran at once, without initialDelay');
is($e7->{reconciliation}{timers}{test}{lastStarted}, $e7->{reconciliation}{timers}{test}{lastRun},
	'E7: lastStarted = lastRun = now');
ok(!exists $e7->{reconciliation}{changed}, 'E7: the wake-up hook is gone');
my $counter_then = $e7->{reportedState}{counter}{value};
sleep 3.5;
my $t1 = thing('counter')->{reportedState}{timer}{value};
cmp_ok($t1, '>=', 3, "E7: it runs at every 1 s boundary ($t1 runs after 3.5 s)");
cmp_ok($t1, '<=', 6, 'E7: but not more often');
is(thing('counter')->{reportedState}{counter}{value}, $counter_then, 'E7: the counter of E6 stopped');
$dbh->do(q{SELECT doppelganger.dt_set_reconciliation('default', 'counter', '{}')});

# a hook that fails in the waker is logged and tried again later, not every round
$dbh->do(q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "default", "name": "grumpy"}}')});
$dbh->do(q{SELECT doppelganger.dt_set_reconciliation('default', 'grumpy', jsonb_build_object('changed',
	jsonb_build_object('h', jsonb_build_object('javaScript', $1::text))))}, undef,
	'var a = context.newState.metadata.annotations; if (a && a.armed) throw new Error("grumpy"); wakeup("1s");');
# arm it without running the hook: the next wake-up will throw
eval { $dbh->do(q{SELECT doppelganger.dt_set_annotations('default', 'grumpy', '{"armed": "yes"}')}) };
ok($@ =~ /grumpy/, 'the hook throws when armed');
$dbh->do(q{UPDATE doppelganger.things SET annotations = '{"armed": "yes"}', waker = now() WHERE name = 'grumpy'});
ok(poll_until(sub { $node->log_contents =~ /waking thing "grumpy".*grumpy/ }, 10), 'the failure is logged');
ok($node->psql('dg', q{SELECT waker > now() + interval '50 seconds' FROM doppelganger.things WHERE name = 'grumpy'}),
	'and the thing is tried again in a minute');
like($node->psql('dg', q{SELECT last_error FROM doppelganger.dt_stats WHERE kind = 'waker'}), qr/grumpy/,
	'dt_stats shows the error');

done_testing();
