# Per-application access control, replayed the way PostgREST talks to the
# database: an authenticator login that switches to the JWT's role with
# set_config('role', ..., true), request.jwt.claims and the other request
# settings, then the RPC call in PostgREST's own query shape (arguments
# from a JSON body) or a table read, in a read-only transaction for GET.
use strict;
use warnings;
use Test::More;
use DgTest;

my $node = DgTest->cluster(name => 'access');
my $admin = $node->dbh;
# the roles of the shipped PostgREST setup, then ours
is(system("psql -X -q -v ON_ERROR_STOP=1 -h $node->{dir} -p $node->{port} -d dg -f $ENV{DG_ROOT}/postgrest/setup.sql >/dev/null"), 0,
	'postgrest/setup.sql runs');
$admin->do($_) for (
	q{CREATE ROLE alice NOLOGIN}, q{CREATE ROLE bob NOLOGIN}, q{CREATE ROLE carol NOLOGIN},
	q{CREATE ROLE dave NOLOGIN}, q{CREATE ROLE team NOLOGIN}, q{CREATE ROLE erin NOLOGIN IN ROLE team},
	q{GRANT alice, bob, carol, dave, erin TO authenticator},
	q{GRANT USAGE ON SCHEMA doppelganger TO alice, bob, carol, dave, erin},
	q{GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA doppelganger TO alice, bob, carol, dave, erin},
	q{GRANT SELECT ON doppelganger.things TO alice, bob, carol, dave, erin},
);
$admin->do(q{SELECT doppelganger.dt_create_thing(jsonb_build_object('metadata', jsonb_build_object('application', $1::text, 'name', $2::text)))},
	undef, @$_) for (['A', 'a1'], ['A', 'a2'], ['B', 'b1'], ['demo', 'd1']);
ok($admin->selectrow_array(q{SELECT doppelganger.dt_grant('A', 'alice', 'read')}), 'alice may read A');
ok($admin->selectrow_array(q{SELECT doppelganger.dt_grant('A', 'bob', 'write')}), 'bob may write A');
ok(!$admin->selectrow_array(q{SELECT doppelganger.dt_grant('A', 'bob', 'write')}), 'granting again changes nothing');
$admin->do(q{SELECT doppelganger.dt_grant('*', 'dave', 'write')});
$admin->do(q{SELECT doppelganger.dt_grant('B', 'team', 'write')});
$admin->do(q{SELECT doppelganger.dt_grant('demo', 'public', 'read')});
$admin->do(q{SELECT doppelganger.dt_revoke('demo', 'web_anon')});
is_deeply($admin->selectall_arrayref(q{SELECT application, role, privilege FROM doppelganger.dt_grants ORDER BY 1, 2}),
	[['*', 'dave', 'write'], ['A', 'alice', 'read'], ['A', 'bob', 'write'], ['B', 'team', 'write'],
	 ['default', 'operator', 'write'], ['demo', 'public', 'read']],
	'dt_grants lists them by role name');

my $pgrst = DBI->connect("dbi:Pg:dbname=dg;host=$node->{dir};port=$node->{port}", 'authenticator', '',
	{ AutoCommit => 1, RaiseError => 0, PrintError => 0, pg_placeholder_dollaronly => 1 });

# One PostgREST request: ($role, GET|POST, $path, $sql, @bind) -> [rows] or
# {error => SQLSTATE}.  Runs in its own transaction, as PostgREST does.
sub request
{
	my ($role, $method, $path, $sql, @bind) = @_;
	my $claims = json_encode({ role => $role, sub => "$role\@example.com", exp => time + 300 });
	$pgrst->do('BEGIN ISOLATION LEVEL READ COMMITTED' . ($method eq 'GET' ? ' READ ONLY' : ''));
	my $ok = $pgrst->do(q{SELECT set_config('search_path', '"doppelganger", "public"', true),
		set_config('role', $1, true), set_config('request.jwt.claims', $2, true),
		set_config('request.method', $3, true), set_config('request.path', $4, true),
		set_config('request.headers', '{"accept": "application/json"}', true),
		set_config('request.cookies', '{}', true)}, undef, $role, $claims, $method, $path);
	die 'request setup failed: ' . $pgrst->errstr unless $ok;
	my $rows = $pgrst->selectall_arrayref($sql, undef, @bind);
	my $result = defined $rows ? $rows : { error => $pgrst->state };
	$pgrst->do(defined $rows ? 'COMMIT' : 'ROLLBACK');
	return $result;
}

# POST /rpc/<fn> with a JSON body, in PostgREST's query shape; the body as text
# (the function's jsonb result, or null), or {error => SQLSTATE}.
sub rpc
{
	my ($role, $fn, $args, $types, $method) = @_;
	my @names = map { $_->[0] } @$types;
	my $sql = 'WITH pgrst_payload AS (SELECT $1::json AS json_data),'
		. ' pgrst_body AS (SELECT CASE WHEN json_typeof(json_data) = \'array\' THEN json_data'
		. ' ELSE json_build_array(json_data) END AS val FROM pgrst_payload),'
		. ' pgrst_args AS (SELECT * FROM json_to_recordset((SELECT val FROM pgrst_body)) AS _('
		. join(', ', map { qq{"$_->[0]" $_->[1]} } @$types) . ')),'
		. qq{ pgrst_source AS (SELECT "doppelganger"."$fn"(}
		. join(', ', map { qq{"$_" := pgrst_args."$_"} } @names) . ') pgrst_scalar FROM pgrst_args)'
		. ' SELECT null::bigint AS total_result_set, 1 AS page_total,'
		. ' coalesce(json_agg(_postgrest_t.pgrst_scalar)->0, \'null\')::text AS body'
		. ' FROM (SELECT "pgrst_scalar" FROM pgrst_source) _postgrest_t';
	my $r = request($role, $method // 'POST', "/rpc/$fn", $sql, json_encode($args));
	return ref $r eq 'HASH' ? $r : $r->[0][2];
}

my @get = (['application', 'text'], ['name', 'text']);
sub get { my ($role, $app, $name) = @_; return rpc($role, 'dt_get_thing', { application => $app, name => $name }, \@get, 'GET'); }
sub report
{
	my ($role, $app, $name, $state) = @_;
	return rpc($role, 'dt_report_state', { application => $app, name => $name, state => $state },
		[['application', 'text'], ['name', 'text'], ['state', 'jsonb']]);
}
sub create
{
	my ($role, $app, $name) = @_;
	return rpc($role, 'dt_create_thing', { thing => { metadata => { application => $app, name => $name } } },
		[['thing', 'jsonb']]);
}
sub listed
{
	my ($role, $app) = @_;
	my $r = request($role, 'GET', '/rpc/dt_list_things',
		q{SELECT t #>> '{metadata,name}' FROM "doppelganger"."dt_list_things"("application" := $1) t ORDER BY 1}, $app);
	return ref $r eq 'HASH' ? $r : [map { $_->[0] } @$r];
}
sub table_read
{
	my ($role) = @_;
	my $r = request($role, 'GET', '/things', q{SELECT "application", "name" FROM "doppelganger"."things" ORDER BY 1, 2});
	return ref $r eq 'HASH' ? $r : [map { "$_->[0]/$_->[1]" } @$r];
}
sub name_of { my ($body) = @_; return ref $body ? $body : $body eq 'null' ? undef : json_decode($body)->{metadata}{name}; }

# read on A
is(name_of(get('alice', 'A', 'a1')), 'a1', 'read on A: alice reads a thing of A');
is(name_of(get('alice', 'B', 'b1')), undef, '... but not of B: not found, as if it did not exist');
is_deeply(listed('alice', 'A'), ['a1', 'a2'], '... lists A');
is_deeply(listed('alice', 'B'), [], '... and B is empty');
is_deeply(table_read('alice'), ['A/a1', 'A/a2', 'demo/d1'], '... reads A (and public demo) from the table, row-level security');
is_deeply(report('alice', 'A', 'a1', { t => 1 }), { error => '42501' }, '... cannot report state: 42501 (PostgREST: 403)');
is_deeply(create('alice', 'A', 'a3'), { error => '42501' }, '... nor create');
is_deeply(rpc('alice', 'dt_delete_thing', { application => 'A', name => 'a1' }, \@get), { error => '42501' }, '... nor delete');
is_deeply(request('alice', 'POST', '/things', q{UPDATE doppelganger.things SET generation = 0}), { error => '42501' },
	'... nor bypass the API with a table write');

# write on A
like(report('bob', 'A', 'a1', { t => 2 }), qr/"t": \{"value": 2/, 'write on A: bob reports state');
is(name_of(create('bob', 'A', 'a3')), 'a3', '... creates');
is_deeply(create('bob', 'B', 'b2'), { error => '42501' }, '... but not in B');
is_deeply(report('bob', 'B', 'b1', { t => 2 }), { error => '42501' }, '... nor changes B');
is(name_of(get('bob', 'B', 'b1')), undef, '... nor sees it');
is_deeply(report('bob', 'A', 'nosuch', { t => 2 }), { error => 'PT404' }, '... a missing thing of A is PT404 (404)');
is_deeply(request('bob', 'GET', '/rpc/dt_report_state',
	q{SELECT doppelganger.dt_report_state('A', 'a1', '{"t": 3}')}), { error => '25006' },
	'a write in a GET (read-only) transaction fails as PostgREST expects');

# no grants at all
is(name_of(get('carol', 'A', 'a1')), undef, 'no grant: carol sees nothing of A');
is_deeply(listed('carol', 'A'), [], '... lists nothing');
is_deeply(table_read('carol'), ['demo/d1'], '... reads only the public application from the table');
is_deeply(report('carol', 'A', 'a1', { t => 9 }), { error => '42501' }, '... writes nothing');
is_deeply(request('carol', 'GET', '/rpc/dt_can', q{SELECT doppelganger.dt_can('A'), doppelganger.dt_can('demo'), doppelganger.dt_can('demo', 'write')}),
	[[0, 1, 0]], '... and dt_can says so');

# the example role of postgrest/setup.sql
$admin->do(q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "default", "name": "lamp"}}')});
like(report('operator', 'default', 'lamp', { on => JSON::PP::true }), qr/"on": \{"value": true/, 'setup.sql: operator writes default');
is_deeply(report('web_anon', 'demo', 'd1', { t => 1 }), { error => '42501' }, 'setup.sql: web_anon only reads demo');

# PUBLIC, '*' and role membership
is(name_of(get('web_anon', 'demo', 'd1')), 'd1', 'a public grant: the anonymous role reads demo');
is(name_of(get('web_anon', 'A', 'a1')), undef, '... and nothing else');
like(report('dave', 'B', 'b1', { t => 4 }), qr/"value": 4/, "'*': dave writes B");
like(report('dave', 'demo', 'd1', { t => 4 }), qr/"value": 4/, '... and any other application');
like(report('erin', 'B', 'b1', { t => 5 }), qr/"value": 5/, 'a grant to a group role works for its members');
is_deeply(report('erin', 'A', 'a1', { t => 5 }), { error => '42501' }, '... for its applications only');

# only the owner grants
is_deeply(rpc('bob', 'dt_grant', { application => 'B', role => 'bob', privilege => 'write' },
	[['application', 'text'], ['role', 'name'], ['privilege', 'text']]), { error => '42501' }, 'bob cannot grant himself B');
my $bad = eval { $admin->do(q{SELECT doppelganger.dt_grant('A', 'nobody_here', 'read')}); 1 } ? undef : $admin->state;
is($bad, '42704', 'granting to a role that does not exist: 42704');
$bad = eval { $admin->do(q{SELECT doppelganger.dt_grant('A', 'alice', 'admin')}); 1 } ? undef : $admin->state;
is($bad, '22023', 'an unknown privilege: 22023');
$bad = eval { $admin->do(q{SELECT doppelganger.dt_grant('a/b', 'alice', 'read')}); 1 } ? undef : $admin->state;
is($bad, '22023', 'a bad application name: 22023');

# hooks keep working, as their owner
my $hook = q{sendMerge('a2', {reportedState: {echo: {value: context.newState.reportedState.t.value}}});};
like(rpc('bob', 'dt_set_reconciliation', { application => 'A', name => 'a1',
	reconciliation => { changed => { echo => { javaScript => $hook } } } },
	[['application', 'text'], ['name', 'text'], ['reconciliation', 'jsonb']]), qr/"owner": "bob"/,
	"bob's hook is owned by bob");
report('bob', 'A', 'a1', { t => 7 });
ok(poll_until(sub { ($admin->selectrow_array(q{SELECT reported_state -> 'echo' ->> 'value' FROM doppelganger.things WHERE name = 'a2'}) // '') eq '7' }, 10),
	'its event reaches the other thing through the relay');
$admin->do(q{CREATE FUNCTION public.peek(c jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_set(c, '{newState,metadata,annotations}', jsonb_build_object('peek',
		coalesce(doppelganger.dt_get_thing('B', 'b1') #>> '{metadata,name}', 'nothing'),
		'claims', coalesce(current_setting('request.jwt.claims', true)::jsonb ->> 'role', 'none')))$$});
$admin->do(q{GRANT EXECUTE ON FUNCTION public.peek(jsonb) TO bob});
my $peeked = rpc('bob', 'dt_set_reconciliation', { application => 'A', name => 'a3',
	reconciliation => { changed => { peek => { function => 'public.peek' } } } },
	[['application', 'text'], ['name', 'text'], ['reconciliation', 'jsonb']]);
is(ref $peeked ? $peeked : json_decode($peeked)->{metadata}{annotations}{peek}, 'nothing',
	"a SQL function hook runs as bob: it cannot read B");
is(ref $peeked ? $peeked : json_decode($peeked)->{metadata}{annotations}{claims}, 'bob', '... and sees the request\'s JWT claims');

# revoke
ok($admin->selectrow_array(q{SELECT doppelganger.dt_revoke('A', 'alice')}), 'revoke alice on A');
is(name_of(get('alice', 'A', 'a1')), undef, '... she reads nothing of A any more');
ok($admin->selectrow_array(q{SELECT doppelganger.dt_revoke('A', 'bob', 'write')}), "revoke bob's write");
is_deeply(report('bob', 'A', 'a1', { t => 8 }), { error => '42501' }, '... he writes no more');
ok(!$admin->selectrow_array(q{SELECT doppelganger.dt_revoke('A', 'bob')}), 'revoking what is gone: false');

done_testing();
