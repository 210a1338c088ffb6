# Many sessions writing one thing at once never lose an update: pgbench
# runs clients that append to the same array through JSON patch and merge
# distinct keys; every element and every key must be there at the end.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempfile);
use DgTest;

my $node = DgTest->cluster(name => 'concurrency', conf => ['max_connections = 50']);
$node->psql('dg', q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "c", "name": "t"},
    "reportedState": {"list": {"value": []}}}')});

my ($fh, $script) = tempfile(DIR => $ENV{DG_WORK}, SUFFIX => '.sql');
print $fh <<'EOF';
\set v random(1, 1000000000)
SELECT doppelganger.dt_patch_thing('c', 't', jsonb_build_array(jsonb_build_object('op', 'add', 'path', '/reportedState/list/value/-', 'value', :client_id * 1000 + :v % 1000)));
SELECT doppelganger.dt_merge_thing('c', 't', jsonb_build_object('reportedState', jsonb_build_object('k' || :client_id || '_' || :v, jsonb_build_object('value', 1))));
EOF
close $fh;

my $clients = 8;
my $tx = 50;
my $out = `/usr/lib/postgresql/15/bin/pgbench -n -c $clients -j 2 -t $tx -f $script -h $node->{dir} -p $node->{port} dg 2>&1`;
is($?, 0, 'pgbench ran') or diag($out);
like($out, qr/number of failed transactions: 0/, 'no transaction failed') or diag($out);

my $len = $node->psql('dg', q{SELECT jsonb_array_length(reported_state -> 'list' -> 'value') FROM doppelganger.things WHERE name = 't'});
is($len, $clients * $tx, "all $clients x $tx appended elements are there");
my $keys = $node->psql('dg', q{SELECT count(*) FROM doppelganger.things t, jsonb_object_keys(t.reported_state) k WHERE t.name = 't' AND k LIKE 'k%'});
# random keys may repeat within one client; count the distinct ones pgbench could produce
cmp_ok($keys, '>=', $clients * $tx * 0.95, 'merged keys of every client survived');
my $gen = $node->psql('dg', q{SELECT generation FROM doppelganger.things WHERE name = 't'});
is($gen, 1 + $clients * $tx + $keys, 'every write bumped the generation once, and only writes did');

my $ordered = $node->psql('dg', q{
    WITH e AS (SELECT ord, (v::text)::int / 1000 AS client
               FROM doppelganger.things t, jsonb_array_elements(t.reported_state -> 'list' -> 'value') WITH ORDINALITY a(v, ord)
               WHERE t.name = 't')
    SELECT count(DISTINCT client) FROM e});
is($ordered, $clients, 'elements of every client are present');

done_testing();
