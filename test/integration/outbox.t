# Events between things through the outbox, applied in the database by the
# relay: the hierarchy walkthrough with the reference's exact counts
# (§10.2 items 27-38, E10, E11), E3's group thing, commands as NOTIFY,
# a ping-pong stopped by the hop limit, and deletions that wait for their
# events.
use strict;
use warnings;
use Test::More;
use DgTest;

my $node = DgTest->cluster(name => 'outbox', conf => ["doppelganger.max_hops = 6"]);
my $dbh = $node->dbh;
my $listener = $node->dbh;
$listener->do('LISTEN thing_changes');
$listener->do('LISTEN thing_commands');
my (@notes, @commands);
sub drain
{
	while (my $n = $listener->pg_notifies)
	{
		push @{ $n->[0] eq 'thing_changes' ? \@notes : \@commands }, json_decode($n->[2]);
	}
}
sub thing { my $v = $dbh->selectrow_array(q{SELECT doppelganger.dt_get_thing('default', $1)}, undef, $_[0]); return $v ? json_decode($v) : undef; }
sub quiet
{
	# the relay is done when the outbox is empty and stays so for a moment
	poll_until(sub { $node->psql('dg', q{SELECT count(*) FROM doppelganger.outbox}) == 0 }, 30);
	sleep 0.3;
	poll_until(sub { $node->psql('dg', q{SELECT count(*) FROM doppelganger.outbox}) == 0 }, 30);
	drain();
}
sub relayed { return $node->psql('dg', q{SELECT events FROM doppelganger.dt_stats WHERE kind = 'relay'}) // 0; }

open my $fh, '<', "$ENV{DG_ROOT}/examples/hierarchy.js" or die;
my $code = do { local $/; <$fh> };
my $hooks = q{jsonb_build_object('changed', jsonb_build_object('hierarchy', jsonb_build_object('javaScript', $1::text)),
	'deleting', jsonb_build_object('hierarchy', jsonb_build_object('javaScript', $1::text)))};
ok(poll_until(sub { $node->psql('dg', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'doppelganger relay'}) }),
	'the relay runs');

# 27-38: the hierarchy, counted
my $channel = json_decode($dbh->selectrow_array(qq{SELECT doppelganger.dt_create_thing(jsonb_build_object(
	'metadata', jsonb_build_object('application', 'default', 'name', 'device/channel'), 'reconciliation', $hooks))},
	undef, $code));
is($channel->{metadata}{annotations}{'io.drogue/device'}, 'device', '27: the channel knows its device');
is($channel->{metadata}{annotations}{'io.drogue/channel'}, 'channel', '27: and its channel');
quiet();
my $device = thing('device');
ok($device, '28: the device was created by registerChild');
is_deeply($device->{reportedState}{'$children'}{value}, {'device/channel' => undef}, '28: with the channel as its child');
ok($device->{reconciliation}{changed}{hierarchy}, '28: and the hierarchy hooks');
$dbh->do(q{SELECT doppelganger.dt_set_annotations('default', 'device', '{"io.drogue/group": "foo/bar/baz"}')});
is(thing('device')->{metadata}{annotations}{'io.drogue/group'}, 'foo/bar/baz', '29: the device carries the group');
quiet();
my %expect = ('/foo/bar/baz' => ['foo/bar/baz', '/foo/bar'], '/foo/bar' => ['foo/bar', '/foo'], '/foo' => ['foo', '/']);
for my $g (sort keys %expect)
{
	my $t = thing($g);
	is($t->{metadata}{annotations}{'io.drogue/group'}, $expect{$g}[0], "30-32: $g has its group annotation");
	is($t->{reportedState}{'$parent'}{value}, $expect{$g}[1], "30-32: $g has its parent");
}
my $root = thing('/');
ok($root, '33: the root exists');
ok(!exists $root->{reportedState}{'$parent'}, '33: and has no parent');
my $notes_before = @notes;
$dbh->do(q{SELECT doppelganger.dt_report_state('default', 'device/channel', '{"foo": "bar"}')});
quiet();
is(@notes - $notes_before, 1, '34: a report on the channel is one notification');
ok($dbh->selectrow_array(q{SELECT doppelganger.dt_delete_thing('default', 'device/channel')}), '35: the channel is deleted');
quiet();
is($node->psql('dg', q{SELECT count(*) FROM doppelganger.things}), 0, '36: the deletion cascades up: nothing is left');
is(scalar @notes, 14, '37: 14 notifications in all');
is(relayed(), 10, '38: 10 events in all');
is($node->psql('dg', q{SELECT count(*) FROM doppelganger.dead_letters}), 0, 'no dead letters');

# E11 (b): three channels in three groups, then torn down bottom-up
for my $c ('A4:C1:38:0A:88:A8/status', 'A4:C1:38:A2:6D:42/status', 'holsetbakken-dungeon/foo')
{
	$dbh->do(qq{SELECT doppelganger.dt_create_thing(jsonb_build_object(
		'metadata', jsonb_build_object('application', 'default', 'name', \$2::text), 'reconciliation', $hooks))},
		undef, $code, $c);
}
quiet();
$dbh->do(q{SELECT doppelganger.dt_set_annotations('default', 'A4:C1:38:0A:88:A8', '{"io.drogue/group": "de/by/munich/room2"}')});
$dbh->do(q{SELECT doppelganger.dt_set_annotations('default', 'A4:C1:38:A2:6D:42', '{"io.drogue/group": "de/by/munich/room1"}')});
$dbh->do(q{SELECT doppelganger.dt_set_annotations('default', 'holsetbakken-dungeon', '{"io.drogue/group": "no/34/hamar"}')});
quiet();
is_deeply(thing('/de/by/munich')->{reportedState}{'$children'}{value}, {'/de/by/munich/room1' => undef, '/de/by/munich/room2' => undef},
	'E11: both rooms share /de/by/munich');
is_deeply(thing('/')->{reportedState}{'$children'}{value}, {'/de' => undef, '/no' => undef}, 'E11: the root has /de and /no');
is($node->psql('dg', q{SELECT count(*) FROM doppelganger.things}), 15, 'E11: 3 channels, 3 devices, 9 groups');
$dbh->do(q{SELECT doppelganger.dt_delete_thing('default', 'A4:C1:38:0A:88:A8/status')});
quiet();
ok(!thing('/de/by/munich/room2'), 'E11: room2 goes with its only device');
ok(thing('/de/by/munich'), 'E11: /de/by/munich stays while room1 is there');
$dbh->do(q{SELECT doppelganger.dt_delete_thing('default', 'A4:C1:38:A2:6D:42/status')});
quiet();
ok(!thing('/de'), 'E11: /de goes with its last room');
ok(thing('/'), 'E11: the root stays while /no is there');
$dbh->do(q{SELECT doppelganger.dt_delete_thing('default', 'holsetbakken-dungeon/foo')});
quiet();
is($node->psql('dg', q{SELECT count(*) FROM doppelganger.things}), 0, 'E11: nothing remains at the end');

# E3 (recon2.js, fixed): a group thing tracks which things are over temperature
my $recon2 = <<'JS';
function temp(state) {
  var r = state && state.reportedState;
  return r && r.temp ? r.temp.value : undefined;
}
function whenConditionChanged(name, condition, callback) {
  var md = context.newState.metadata;
  var annotations = md.annotations || (md.annotations = {});
  var key = 'condition/' + name;
  var first = annotations[key] === undefined;
  var was = condition(context.currentState), now = condition(context.newState);
  if (first || was !== now) {
    annotations[key] = 'true';
    callback(now);
  }
}
var t = temp(context.newState);
var labels = context.newState.metadata.labels || (context.newState.metadata.labels = {});
if (t > 20) labels.highTemp = ''; else delete labels.highTemp;
if (t > 28) labels.overTemp = ''; else delete labels.overTemp;
whenConditionChanged('overTemp', function (state) { var v = temp(state); return v !== undefined && v > 28; }, function (over) {
  var refs = {};
  refs[context.newState.metadata.name] = over ? {} : null;
  sendMerge('overTempGroup', {reportedState: {'$refs': {lastUpdate: new Date().toISOString(), value: refs}}});
});
JS
$dbh->do(q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "default", "name": "overTempGroup"}}')});
$dbh->do(q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "default", "name": "foo"}, "reportedState": {"temperature": {"value": 43}}}')});
$dbh->do(q{SELECT doppelganger.dt_set_reconciliation('default', 'foo', jsonb_build_object('changed', jsonb_build_object('overTempGroup', jsonb_build_object('javaScript', $1::text))))},
	undef, $recon2);
quiet();
is_deeply(thing('overTempGroup')->{reportedState}{'$refs'}{value}, {}, 'E3 1: a removal merge creates an empty set');
is(thing('foo')->{metadata}{annotations}{'condition/overTemp'}, 'true', 'E3 1: foo carries its condition annotation');
$dbh->do(q{SELECT doppelganger.dt_report_state('default', 'foo', '{"temp": 30}')});
quiet();
is_deeply(thing('foo')->{metadata}{labels}, {highTemp => '', overTemp => ''}, 'E3 2: both labels at 30');
is_deeply(thing('overTempGroup')->{reportedState}{'$refs'}{value}, {foo => {}}, 'E3 2: the group lists foo');
$dbh->do(q{SELECT doppelganger.dt_report_state('default', 'foo', '{"temp": 25}')});
quiet();
is_deeply(thing('foo')->{metadata}{labels}, {highTemp => ''}, 'E3 3: only highTemp at 25');
is_deeply(thing('overTempGroup')->{reportedState}{'$refs'}{value}, {}, 'E3 3: the group no longer lists foo');

# commands without Kafka: NOTIFY thing_commands (§8.2, §8.3)
@commands = ();
$dbh->do(q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "example-app", "name": "device1/sensor",
	"annotations": {"drogue.io/device": "device1"}}}')});
$dbh->do(q{SELECT doppelganger.dt_set_desired_state('example-app', 'device1/sensor', 'temperature', '{"value": 23, "method": {"command": {"period": "2s", "mode": "active"}}}')});
poll_until(sub { drain(); scalar @commands }, 5);
is_deeply($commands[0], {application => 'example-app', device => 'device1', channel => 'temperature', payload => 23},
	'a command goes out at once: device from the annotation, channel = feature, payload = value');
sleep 2.7;
drain();
cmp_ok(scalar @commands, '>=', 2, 'active mode sends it again after the period');
$dbh->do(q{SELECT doppelganger.dt_report_state('example-app', 'device1/sensor', '{"temperature": 23}')});
my $count = @commands;
sleep 2.5;
drain();
is(scalar @commands, $count, 'no more commands once the device reports the value');
is($dbh->selectrow_array(q{SELECT desired_state -> 'temperature' -> 'reconciliation' ->> 'state' FROM doppelganger.things WHERE name = 'device1/sensor'}),
	'succeeded', 'the desired state succeeded');
# channel aggregation through the drogue.io/channel annotation
@commands = ();
$dbh->do(q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "example-app", "name": "lamp",
	"annotations": {"drogue.io/channel": "set-features"}},
	"desiredState": {"on": {"value": true, "method": {"command": {"period": "1m"}}},
	                 "brightness": {"value": 80, "method": {"command": {"period": "1m"}}}}}')});
poll_until(sub { drain(); scalar @commands }, 5);
is_deeply(\@commands, [{application => 'example-app', device => 'lamp', channel => 'set-features', payload => {brightness => 80, on => JSON::PP::true}}],
	'features aggregate into one command per device and channel');

# a ping-pong between two things ends at the hop limit as a dead letter
my $pong = 'var a = context.newState.metadata.annotations || {}; var other = a.other;'
	. ' if (context.currentState.reportedState && context.newState.reportedState && context.newState.reportedState.n.value !== context.currentState.reportedState.n.value)'
	. ' sendMerge(other, {reportedState: {n: {value: context.newState.reportedState.n.value + 1}}});';
for my $p (['ping', 'pong'], ['pong', 'ping'])
{
	$dbh->do(qq{SELECT doppelganger.dt_create_thing(jsonb_build_object('metadata', jsonb_build_object('application', 'default', 'name', \$1::text,
		'annotations', jsonb_build_object('other', \$2::text)), 'reportedState', '{"n": {"value": 0}}'::jsonb,
		'reconciliation', jsonb_build_object('changed', jsonb_build_object('pong', jsonb_build_object('javaScript', \$3::text)))))},
		undef, @$p, $pong);
}
$dbh->do(q{SELECT doppelganger.dt_report_state('default', 'ping', '{"n": 1}')});
ok(poll_until(sub { $node->psql('dg', q{SELECT count(*) FROM doppelganger.dead_letters WHERE sqlstate = '54000'}) == 1 }, 20),
	'the ping-pong becomes a dead letter');
quiet();
my $n = $node->psql('dg', q{SELECT max((reported_state -> 'n' ->> 'value')::int) FROM doppelganger.things WHERE name IN ('ping', 'pong')});
is($n, 7, 'after exactly max_hops (6) handovers');
like($node->psql('dg', q{SELECT message FROM doppelganger.dead_letters WHERE sqlstate = '54000'}), qr/hop 7.*max_hops \(6\)/,
	'the dead letter says why');
sleep 1;
is($node->psql('dg', q{SELECT max((reported_state -> 'n' ->> 'value')::int) FROM doppelganger.things WHERE name IN ('ping', 'pong')}), $n,
	'and it stays stopped');

# a deletion waits for its events, then completes
$dbh->do(q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "default", "name": "parent"}}')});
$dbh->do(q{SELECT doppelganger.dt_create_thing($${"metadata": {"application": "default", "name": "leaving"},
	"reconciliation": {"deleting": {"bye": {"javaScript": "sendMerge('parent', {reportedState: {farewell: {value: 'leaving'}}})"}}}}$$)});
$dbh->do(q{SELECT doppelganger.dt_delete_thing('default', 'leaving')});
quiet();
is(thing('parent')->{reportedState}{farewell}{value}, 'leaving', 'the deleting hook\'s event arrived');
ok(!thing('leaving'), 'and the deletion then completed');

done_testing();
