# Kafka ingest through a real Kafka protocol endpoint (the test broker):
# events applied through the pipeline, per-thing order, batching, the
# simpleJson topic format, reloadable tunables and the status views.
use strict;
use warnings;
use Test::More;
use DgTest;

my $broker = DgTest::Broker->start('events:4', 'telemetry:2');
my $node = DgTest->cluster(name => 'kafka_ingest', conf => [
	"doppelganger.kafka_brokers = '" . $broker->bootstrap . "'",
	"doppelganger.events_topic = 'events,telemetry'",
	"doppelganger.topic_formats = 'telemetry=simpleJson+partial+timestamp'",
	"doppelganger.processor_workers = 2",
	"doppelganger.batch_timeout = 50",
	"doppelganger.kafka_properties = 'session.timeout.ms=6000;heartbeat.interval.ms=500;topic.metadata.refresh.interval.ms=1000'",
]);

# the workers show up, with their backend type
ok(poll_until(sub { $node->psql('dg', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'doppelganger processor'}) == 2 }),
	'two processor workers run');
is($node->psql('dg', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'doppelganger launcher'}), 1,
	'the launcher runs');

$node->psql('dg', q{SELECT count(doppelganger.dt_create_thing(jsonb_build_object('metadata',
	jsonb_build_object('application', 'app', 'name', 'dev' || i)))) FROM generate_series(1, 20) i});

# 1. reportState events for 20 things
my @records;
for my $round (1 .. 5)
{
	for my $i (1 .. 20)
	{
		push @records, ["app/dev$i", qq({"reportState": {"state": {"temp": $round, "n": $i}, "partial": true}})];
	}
}
produce($broker, 'events', \@records);
ok($node->wait_consumed(100), 'all 100 events consumed');
is($node->psql('dg', q{SELECT count(*) FROM doppelganger.things
	WHERE application = 'app' AND reported_state -> 'temp' ->> 'value' = '5'}), 20,
	'every thing holds its last reported value');
is($node->psql('dg', q{SELECT count(*) FROM doppelganger.dead_letters}), 0, 'no dead letters');

# 2. order: 300 appends to one thing, through JSON patch, end in order
$node->psql('dg', q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "app", "name": "ordered"},
	"reportedState": {"seq": {"value": []}}}')});
produce($broker, 'events', [map { ["app/ordered", qq({"patch": [{"op": "add", "path": "/reportedState/seq/value/-", "value": $_}]})] } 1 .. 300]);
ok($node->wait_consumed(400), 'the appends are consumed');
is($node->psql('dg', q{SELECT string_agg(v::text, ',' ORDER BY o) = (SELECT string_agg(i::text, ',' ORDER BY i) FROM generate_series(1, 300) i)
	FROM doppelganger.things t, jsonb_array_elements(t.reported_state -> 'seq' -> 'value') WITH ORDINALITY a(v, o)
	WHERE t.name = 'ordered'}), 1, 'all 300 elements, in Kafka order');
# batching: several events of one thing in a batch are written once
cmp_ok($node->psql('dg', q{SELECT generation FROM doppelganger.things WHERE name = 'ordered'}), '<', 301,
	'fewer writes than events: batches write each thing once');

# 3. notifications come from the worker's transactions
my $listener = $node->dbh;
$listener->do('LISTEN thing_changes');
produce($broker, 'events', [['app/dev1', '{"reportState": {"state": {"temp": 99}}}']]);
my $note = poll_until(sub { $listener->pg_notifies });
ok($note, 'a notification arrives for an event applied by a worker');
is(json_decode($note->[2])->{thing}, 'dev1', 'for the right thing') if $note;

# 4. the ce_* headers win over the key
produce($broker, 'events', [['wrong/key', '{"reportState": {"state": {"via": "headers"}}}']],
	headers => {ce_application => 'app', ce_thing => 'dev2'});
ok(poll_until(sub { $node->psql('dg', q{SELECT reported_state -> 'via' ->> 'value' FROM doppelganger.things WHERE name = 'dev2'}) }),
	'ce_application and ce_thing address the thing');

# 5. simpleJson on the telemetry topic: members become reported state, partial, with lastMessage
produce($broker, 'telemetry', [['app/dev3', '{"humidity": 41, "door": "open"}']],
	headers => {'content-type' => 'application/json'});
ok(poll_until(sub { $node->psql('dg', q{SELECT reported_state -> 'door' ->> 'value' FROM doppelganger.things WHERE name = 'dev3'}) }),
	'a plain device JSON object is reported state');
is($node->psql('dg', q{SELECT reported_state ? 'temp' FROM doppelganger.things WHERE name = 'dev3'}), 1,
	'partial: earlier features stay');
like($node->psql('dg', q{SELECT reported_state -> 'lastMessage' ->> 'value' FROM doppelganger.things WHERE name = 'dev3'}),
	qr/^\d{4}-\d\d-\d\dT.*\+00:00$/, 'lastMessage carries the record time');
# ... unless the record says it is a message
produce($broker, 'telemetry', [['app/dev3', '{"reportState": {"state": {"kind": "message"}}}']],
	headers => {'content-type' => 'application/vnd.drogue-iot.doppelgaenger.message+json'});
ok(poll_until(sub { $node->psql('dg', q{SELECT reported_state -> 'kind' ->> 'value' FROM doppelganger.things WHERE name = 'dev3'}) }),
	'the message content type wins over the topic format');

# 6. the status views
my $stats = $node->dbh->selectall_arrayref(q{SELECT kind, state, events, batches, lag FROM doppelganger.dt_stats ORDER BY worker}, { Slice => {} });
is(scalar(grep { $_->{kind} eq 'processor' } @$stats), 2, 'dt_stats shows both processors');
my $events = 0;
$events += $_->{events} for @$stats;
cmp_ok($events, '>=', 403, 'dt_stats counts the events');
is($node->psql('dg', q{SELECT count(DISTINCT (topic, partition)) FROM doppelganger.dt_partitions}), 6,
	'dt_partitions shows every partition');
ok(poll_until(sub { $node->psql('dg', q{SELECT sum(lag) = 0 AND count(*) = 6 FROM doppelganger.dt_partitions WHERE lag IS NOT NULL}) }),
	'lag is known and zero once all is consumed');

# 7. tunables reload: a tiny batch size shows in the counts
$node->psql('dg', q{ALTER SYSTEM SET doppelganger.batch_size = 3});
$node->reload;
sleep 1;
my $batches_before = $node->psql('dg', q{SELECT sum(batches) FROM doppelganger.dt_stats});
produce($broker, 'events', [map { ["app/dev4", qq({"reportState": {"state": {"k$_": $_}}})] } 1 .. 30]);
ok($node->wait_consumed(434), 'consumed after the reload');
cmp_ok($node->psql('dg', q{SELECT sum(batches) FROM doppelganger.dt_stats}) - $batches_before, '>=', 10,
	'batch_size 3 after SIGHUP: 30 events take at least 10 batches');

# 8. processor_workers reloads too: the launcher stops one
$node->psql('dg', q{ALTER SYSTEM SET doppelganger.processor_workers = 1});
$node->reload;
ok(poll_until(sub { $node->psql('dg', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'doppelganger processor'}) == 1 }),
	'one processor after the reload');
produce($broker, 'events', [map { ["app/dev$_", '{"reportState": {"state": {"after": true}}}'] } 1 .. 20]);
ok($node->wait_consumed(454), 'the remaining worker takes all partitions');
is($node->psql('dg', q{SELECT count(*) FROM doppelganger.things WHERE reported_state ? 'after'}), 20,
	'and applies every event');

done_testing();
