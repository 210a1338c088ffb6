# Exactly-once effect through crashes.  Every event appends its sequence
# number to an array with a JSON patch, which is not idempotent: a
# duplicate shows as a repeated number, a loss as a missing one.  While the
# stream is consumed, a processor is killed with SIGKILL, PostgreSQL is
# stopped in immediate mode, and later in fast mode (SIGTERM: the batch in
# hand is finished).  At the end every array is exactly 1..N, in order.
use strict;
use warnings;
use Test::More;
use DgTest;

my $things = 16;
my $per_thing = 800;
my $total = $things * $per_thing;

my $broker = DgTest::Broker->start('events:4');
my $node = DgTest->cluster(name => 'kafka_crash', conf => [
	"doppelganger.kafka_brokers = '" . $broker->bootstrap . "'",
	"doppelganger.processor_workers = 2",
	"doppelganger.batch_size = 40",
	"doppelganger.batch_timeout = 20",
	"doppelganger.kafka_properties = 'session.timeout.ms=6000;heartbeat.interval.ms=500'",
	"restart_after_crash = on",
]);
$node->psql('dg', qq{SELECT count(doppelganger.dt_create_thing(jsonb_build_object('metadata',
	jsonb_build_object('application', 'app', 'name', 't' || i),
	'reportedState', jsonb_build_object('seq', jsonb_build_object('value', '[]'::jsonb)))))
	FROM generate_series(1, $things) i});

my @records;
for my $seq (1 .. $per_thing)
{
	for my $t (1 .. $things)
	{
		push @records, ["app/t$t", qq({"patch": [{"op": "add", "path": "/reportedState/seq/value/-", "value": $seq}]})];
	}
}
produce($broker, 'events', \@records);

sub consumed
{
	my $n = eval { $node->psql('dg', q{SELECT coalesce(sum(next_offset), 0) FROM doppelganger.offsets}) };
	return $n // 0;
}

# 1. SIGKILL a processor mid-stream: the postmaster restarts everything
ok(poll_until(sub { consumed() > $total * 0.15 }, 120), 'the stream is being consumed');
my $pid = $node->psql('dg', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'doppelganger processor' LIMIT 1});
ok($pid, "a processor runs (pid $pid)");
kill 'KILL', $pid;
my $at_kill = consumed();
ok(poll_until(sub { consumed() > $at_kill + $total * 0.1 }, 120), 'consumption resumes after the kill');
like($node->log_contents, qr/terminated by signal 9/, 'the worker was killed');

# 2. immediate stop of PostgreSQL mid-stream
$node->stop('immediate');
$node->start;
my $at_stop = consumed();
cmp_ok($at_stop, '<', $total, 'stopped before the end of the stream');
ok(poll_until(sub { consumed() > $at_stop + $total * 0.1 }, 120), 'consumption resumes after the immediate stop');

# 3. fast shutdown: processors get SIGTERM and finish their batch
$node->stop('fast');
like($node->log_contents, qr/doppelganger processor \d+ stopping after its batch/, 'SIGTERM lets the batch finish');
$node->start;

ok($node->wait_consumed($total, 300), "all $total events consumed");
my $wrong = $node->psql('dg', qq{
	SELECT count(*) FROM doppelganger.things t
	WHERE t.application = 'app'
	  AND (SELECT coalesce(string_agg(v::text, ',' ORDER BY o), '')
	       FROM jsonb_array_elements(t.reported_state -> 'seq' -> 'value') WITH ORDINALITY a(v, o))
	   <> (SELECT string_agg(i::text, ',' ORDER BY i) FROM generate_series(1, $per_thing) i)});
is($wrong, 0, "every thing holds exactly 1..$per_thing: nothing lost, nothing applied twice");
is($node->psql('dg', q{SELECT sum(jsonb_array_length(reported_state -> 'seq' -> 'value')) FROM doppelganger.things}),
	$total, 'the element count is the event count');
is($node->psql('dg', q{SELECT count(*) FROM doppelganger.dead_letters}), 0, 'no dead letters');

done_testing();
