# The outbox through Kafka: events between things go to the events topic and
# come back through the processors, in order per thing; commands go to the
# commands topic with the device's key and headers; every change goes to the
# notifications topic; the hop limit holds across Kafka; events cannot
# configure function hooks; and a broker outage delays but loses or repeats
# nothing.
use strict;
use warnings;
use Test::More;
use DgTest;

my $broker = DgTest::Broker->start('events:2', 'commands:1', 'notifications:1');
my $node = DgTest->cluster(name => 'kafka_relay', conf => [
	"doppelganger.kafka_brokers = '" . $broker->bootstrap . "'",
	"doppelganger.events_topic = 'events'",
	"doppelganger.notifications_topic = 'notifications'",
	"doppelganger.processor_workers = 1",
	"doppelganger.batch_timeout = 20",
	"doppelganger.max_hops = 4",
	"doppelganger.kafka_properties = 'session.timeout.ms=6000;heartbeat.interval.ms=500;topic.metadata.refresh.interval.ms=1000'",
]);
my $dbh = $node->dbh;
sub thing { my $v = $dbh->selectrow_array(q{SELECT doppelganger.dt_get_thing('app', $1)}, undef, $_[0]); return $v ? json_decode($v) : undef; }
sub outbox { return $node->psql('dg', q{SELECT count(*) FROM doppelganger.outbox}); }
sub seq { my $t = thing('dst'); return join(',', @{ $t->{reportedState}{seq}{value} }); }

ok(poll_until(sub { $node->psql('dg', q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type IN ('doppelganger processor', 'doppelganger relay')}) == 2 }), 'a processor and the relay run');
is($node->psql('dg', q{SELECT state FROM doppelganger.dt_stats WHERE kind = 'relay'}), 'relaying to Kafka',
	'the relay publishes to Kafka');

# 1. events between things travel through the events topic, in order
$dbh->do(q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "app", "name": "dst"}, "reportedState": {"seq": {"value": []}}}')});
$dbh->do(q{SELECT doppelganger.dt_create_thing($${"metadata": {"application": "app", "name": "src"},
	"reconciliation": {"changed": {"forward": {"javaScript":
	"if (context.newState.reportedState && context.newState.reportedState.n) sendPatch('dst', [{op: 'add', path: '/reportedState/seq/value/-', value: context.newState.reportedState.n.value}]);"}}}}$$)});
$dbh->do(q{SELECT doppelganger.dt_report_state('app', 'src', jsonb_build_object('n', $1::int))}, undef, $_) for 1 .. 30;
ok(poll_until(sub { seq() eq join(',', 1 .. 30) }, 30), 'all 30 events arrived at the target, in order')
	or diag(seq());
my @events = consume($broker, 'events', 30);
is(scalar @events, 30, 'as 30 records on the events topic');
is_deeply([sort keys %{ { map { $_->{key} => 1 } @events } }], ['app/dst'], 'keyed by the target thing');
is($events[0]{headers}{ce_application}, 'app', 'with the CloudEvent application header');
is($events[0]{headers}{ce_thing}, 'dst', 'and thing header');
is($events[0]{headers}{'doppelganger-hops'}, '1', 'and the hop count');
is_deeply(json_decode($events[0]{payload}), {patch => [{op => 'add', path => '/reportedState/seq/value/-', value => 1}]},
	'the payload is the message the hook sent');
is(outbox(), 0, 'the outbox is empty once they are delivered');

# 2. commands go to the commands topic
$dbh->do(q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "app", "name": "device1/sensor",
	"annotations": {"drogue.io/device": "device1"}},
	"desiredState": {"temperature": {"value": 23, "method": {"command": {"period": "1m"}}}}}')});
my @commands = consume($broker, 'commands', 1);
is(scalar @commands, 1, 'one command on the commands topic');
is($commands[0]{key}, 'app/device1', 'keyed application/device');
is_deeply($commands[0]{headers}, {application => 'app', device => 'device1', channel => 'temperature'},
	'with application, device and channel headers');
is($commands[0]{payload}, '23', 'and the desired value as payload');

# commands_topic switched off: NOTIFY thing_commands instead
my $listener = $node->dbh;
$listener->do('LISTEN thing_commands');
$node->conf("doppelganger.commands_topic = ''");
$node->reload;
sleep 0.5;
$dbh->do(q{SELECT doppelganger.dt_set_desired_state('app', 'device1/sensor', 'humidity', '{"value": 40, "method": {"command": {"period": "1m"}}}')});
my $note = poll_until(sub { $listener->pg_notifies }, 10);
is_deeply($note ? json_decode($note->[2]) : undef, {application => 'app', device => 'device1', channel => 'humidity', payload => 40},
	'with commands_topic empty a command goes out as NOTIFY');
my @again = consume($broker, 'commands', 1);
is(scalar @again, 1, 'and not to the commands topic');
$node->conf("doppelganger.commands_topic = 'commands'");
$node->reload;

# 3. every change goes to the notifications topic, the full thing
my $dst = thing('dst');
my @notes = grep { $_->{key} eq 'app/dst' } consume($broker, 'notifications', 1);
ok(scalar @notes, 'changes of dst are on the notifications topic');
is_deeply(json_decode($notes[-1]{payload}), $dst, 'the last one is the thing as stored');
is_deeply($notes[-1]{headers}, {application => 'app', thing => 'dst'}, 'with application and thing headers');
ok((grep { json_decode($_->{payload})->{metadata}{generation} == 1 } @notes), 'its creation is there too');

# 4. the hop limit holds across Kafka
my $pong = 'var other = context.newState.metadata.annotations.other;'
	. ' if (context.currentState.reportedState && context.newState.reportedState.n.value !== context.currentState.reportedState.n.value)'
	. ' sendMerge(other, {reportedState: {n: {value: context.newState.reportedState.n.value + 1}}});';
for my $p (['ping', 'pong'], ['pong', 'ping'])
{
	$dbh->do(qq{SELECT doppelganger.dt_create_thing(jsonb_build_object('metadata', jsonb_build_object('application', 'app', 'name', \$1::text,
		'annotations', jsonb_build_object('other', \$2::text)), 'reportedState', '{"n": {"value": 0}}'::jsonb,
		'reconciliation', jsonb_build_object('changed', jsonb_build_object('pong', jsonb_build_object('javaScript', \$3::text)))))},
		undef, @$p, $pong);
}
$dbh->do(q{SELECT doppelganger.dt_report_state('app', 'ping', '{"n": 1}')});
ok(poll_until(sub { $node->psql('dg', q{SELECT count(*) FROM doppelganger.dead_letters WHERE sqlstate = '54000'}) == 1 }, 30),
	'a ping-pong through Kafka becomes a dead letter');
is($node->psql('dg', q{SELECT max((reported_state -> 'n' ->> 'value')::int) FROM doppelganger.things WHERE name IN ('ping', 'pong')}), 5,
	'after exactly max_hops (4) handovers');

# 5. an event cannot configure a function hook: a dead letter, 42501
$node->psql('dg', q{CREATE FUNCTION public.noop(c jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT c'});
my $before = $node->psql('dg', q{SELECT count(*) FROM doppelganger.dead_letters});
produce($broker, 'events', [['app/src', '{"merge": {"reconciliation": {"changed": {"f": {"function": "public.noop"}}}}}']]);
ok(poll_until(sub { $node->psql('dg', q{SELECT count(*) FROM doppelganger.dead_letters WHERE sqlstate = '42501'}) == 1 }, 20),
	'an event configuring a function hook is a dead letter with 42501');
like($node->psql('dg', q{SELECT message FROM doppelganger.dead_letters WHERE sqlstate = '42501'}), qr/only be configured through the SQL API/,
	'saying why');
ok(!exists thing('src')->{reconciliation}{changed}{f}, 'and the hook is not configured');

# 6. an outage: the outbox keeps the events, then delivers each exactly once, in order
is($broker->command('down'), 'ok', 'the broker goes down');
$dbh->do(q{SELECT doppelganger.dt_report_state('app', 'src', jsonb_build_object('n', $1::int))}, undef, $_) for 31 .. 40;
sleep 2;
is($node->psql('dg', q{SELECT string_agg(kind || ':' || n, ',' ORDER BY kind) FROM (SELECT kind, count(*) n FROM doppelganger.outbox GROUP BY kind) k}),
	'event:10,notification:10', 'the ten events and their notifications wait in the outbox');
is(seq(), join(',', 1 .. 30), 'and have not arrived');
is($broker->command('up'), 'ok', 'the broker comes back');
ok(poll_until(sub { seq() eq join(',', 1 .. 40) }, 60), 'then they arrive, each once, in order') or diag(seq());
ok(poll_until(sub { outbox() == 0 }, 10), 'and the outbox empties');
sleep 1;
is(seq(), join(',', 1 .. 40), 'no late duplicates');
like($node->log_contents, qr/Kafka brokers|not delivered/, 'the relay logged the outage');

done_testing();
