# The broker goes away for a while and comes back: the workers wait, log
# the change of state once each way, and resume by themselves.
use strict;
use warnings;
use Test::More;
use DgTest;

my $broker = DgTest::Broker->start('events:2');
my $node = DgTest->cluster(name => 'kafka_outage', conf => [
	"doppelganger.kafka_brokers = '" . $broker->bootstrap . "'",
	"doppelganger.processor_workers = 1",
	"doppelganger.kafka_properties = 'reconnect.backoff.max.ms=1000'",
]);
$node->psql('dg', q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "app", "name": "c"},
	"reportedState": {"n": {"value": []}}}')});
sub appends { my ($from, $to) = @_; return [map { ['app/c', qq({"patch": [{"op": "add", "path": "/reportedState/n/value/-", "value": $_}]})] } $from .. $to]; }

produce($broker, 'events', appends(1, 50));
ok($node->wait_consumed(50), 'consuming before the outage');
my $pid = $node->psql('dg', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'doppelganger processor'});

is($broker->command('down'), 'ok', 'the broker goes down');
ok(poll_until(sub { $node->log_contents =~ /all Kafka brokers are unreachable/ }, 60), 'the worker notices');
sleep 10;
is($node->psql('dg', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'doppelganger processor'}), 1,
	'the worker waits, alive');
is($node->psql('dg', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'doppelganger processor'}), $pid,
	'the same worker: no restart');
my $downs = () = $node->log_contents =~ /all Kafka brokers are unreachable/g;
is($downs, 1, 'the outage is logged once, not on every retry');

is($broker->command('up'), 'ok', 'the broker comes back');
produce($broker, 'events', appends(51, 100));
ok($node->wait_consumed(100, 120), 'the worker resumes by itself');
like($node->log_contents, qr/Kafka brokers are reachable again/, 'and says so');
is($node->psql('dg', q{SELECT string_agg(v::text, ',' ORDER BY o) = (SELECT string_agg(i::text, ',') FROM generate_series(1, 100) i)
	FROM doppelganger.things t, jsonb_array_elements(t.reported_state -> 'n' -> 'value') WITH ORDINALITY a(v, o)
	WHERE t.name = 'c'}), 1, 'every event before and after, once, in order');
is($node->psql('dg', q{SELECT count(*) FROM doppelganger.dead_letters}), 0, 'no dead letters');

done_testing();
