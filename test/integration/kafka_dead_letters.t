# Bad events never stop the stream: each becomes one dead letter with its
# SQLSTATE while the good events of the same batch commit; replaying works
# once the cause is fixed.
use strict;
use warnings;
use Test::More;
use DgTest;

my $broker = DgTest::Broker->start('events:1');
my $node = DgTest->cluster(name => 'kafka_dl', conf => [
	"doppelganger.kafka_brokers = '" . $broker->bootstrap . "'",
	"doppelganger.processor_workers = 1",
	"doppelganger.batch_timeout = 500",
	"doppelganger.max_event_size = 262144",
]);
$node->psql('dg', q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "app", "name": "good"},
	"reportedState": {"n": {"value": 0}}}')});
$node->psql('dg', q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "app", "name": "strict"},
	"schema": {"json": {"version": "draft7", "schema": {"type": "object", "properties": {"reportedState":
	{"type": "object", "properties": {"temperature": {"type": "number"}}}}}}}}')});
$node->psql('dg', q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "app", "name": "lamp"},
	"desiredState": {"on": {"value": true}}}')});

# good events between the bad ones: each good one increments n
my $n = 0;
sub good { $n++; return ['app/good', qq({"patch": [{"op": "replace", "path": "/reportedState/n/value", "value": $n}]})]; }

my @cases = (
	# [name, record, expected sqlstate]
	['malformed JSON', ['app/good', '{"reportState": '], '22P02'],
	['a key without application/thing', ['nokey', '{"wakeup": {}}'], '22023'],
	['no key at all', [undef, '{"wakeup": {}}'], '22023'],
	['a bad application name', ['bad app/x', '{"wakeup": {}}'], '22023'],
	['an unknown message', ['app/good', '{"jump": {"high": true}}'], '22023'],
	['a non-object value', ['app/good', '[1, 2]'], '22023'],
	['a string value', ['app/good', '"reportState"'], '22023'],
	['a thing that does not exist', ['app/ghost', '{"reportState": {"state": {"a": 1}}}'], 'PT404'],
	['a state that fails validation', ['app/strict', '{"reportState": {"state": {"temperature": "hot"}}}'], '23514'],
	['a patch that does not apply', ['app/good', '{"patch": [{"op": "remove", "path": "/nope"}]}'], '22023'],
	['an unknown desired feature', ['app/lamp', '{"setDesiredValue": {"values": {"off": 1}}}'], '22023'],
	['invalid UTF-8', ['app/good', qq({"reportState": {"state": {"s": "\xff\xfe"}}})], '22021'],
	['a NUL character', ['app/good', '{"reportState": {"state": {"s": "a\u0000b"}}}'], '22P02'],
	['an oversized payload', ['app/good', '{"reportState": {"state": {"s": "' . ('x' x 300000) . '"}}}'], '54000'],
	['absurdly deep JSON', ['app/good', ('[' x 100000) . (']' x 100000)], '54001'],
);
my @records;
for my $c (@cases)
{
	push @records, good(), $c->[1];
}
push @records, good();
produce($broker, 'events', \@records);
ok($node->wait_consumed(scalar @records), 'the whole stream is consumed');

is($node->psql('dg', q{SELECT reported_state -> 'n' ->> 'value' FROM doppelganger.things WHERE name = 'good'}), $n,
	"every good event around the bad ones is applied ($n)");
my $letters = $node->dbh->selectall_arrayref(q{SELECT "offset", sqlstate, message, application, thing FROM doppelganger.dead_letters ORDER BY "offset"}, { Slice => {} });
is(scalar @$letters, scalar @cases, 'one dead letter per bad event');
for my $i (0 .. $#cases)
{
	my $l = $letters->[$i];
	is($l->{sqlstate}, $cases[$i][2], "$cases[$i][0]: $cases[$i][2]") or diag($l->{message});
	is($l->{offset}, 2 * $i + 1, "$cases[$i][0]: at its offset");
}
like($letters->[7]{message}, qr/ghost.*does not exist/, 'the message says what is wrong');
is($letters->[7]{thing}, 'ghost', 'the dead letter names the thing');
is($node->psql('dg', q{SELECT sum(dead_letters) FROM doppelganger.dt_stats}), scalar @cases, 'dt_stats counts them');
is($node->psql('dg', q{SELECT payload = convert_to('{"reportState": {"state": {"a": 1}}}', 'UTF8') AND key = 'app/ghost'::bytea
	FROM doppelganger.dead_letters WHERE thing = 'ghost'}), 1, 'key and payload are kept byte for byte');

# replay: the missing thing now exists, the others still fail
$node->psql('dg', q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "app", "name": "ghost"}}')});
my $replayed = $node->dbh->selectall_arrayref(q{SELECT id, replayed, sqlstate FROM doppelganger.dt_replay_dead_letters()}, { Slice => {} });
is(scalar @$replayed, scalar @cases, 'every pending letter was tried');
is(scalar(grep { $_->{replayed} } @$replayed), 1, 'one could be applied');
is($node->psql('dg', q{SELECT reported_state -> 'a' ->> 'value' FROM doppelganger.things WHERE name = 'ghost'}), 1,
	'the replayed event reached its thing');
is($node->psql('dg', q{SELECT count(*) FROM doppelganger.dead_letters WHERE replayed_at IS NULL AND attempts = 2}), scalar(@cases) - 1,
	'the others are pending with a second attempt counted');
is(scalar @{ $node->dbh->selectall_arrayref(q{SELECT * FROM doppelganger.dt_replay_dead_letters(ARRAY[(SELECT min(id) FROM doppelganger.dead_letters)])}) },
	1, 'replay takes a list of ids');

# the worker is still alive and consuming
produce($broker, 'events', [good()]);
ok($node->wait_consumed(scalar(@records) + 1), 'the stream goes on');
is($node->psql('dg', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'doppelganger processor'}), 1,
	'no worker died');
unlike($node->log_contents, qr/terminated by signal|stopped; starting it again/, 'no crash, no restart');

done_testing();
