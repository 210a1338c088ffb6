# The gateway's REST API (gateway contract "REST", reference §6): every
# endpoint with its success status and body, the error mapping (400, 404,
# 405, 409, 412, 415, 500), ETag and If-Match, names with "/", changes
# visible at once, no new generation for a no-op.
use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use JSON::PP;
use Encode qw(encode_utf8);
use POSIX ();
use IO::Socket::INET;
use IO::Select;
use DgTest;

my $bin = "$ENV{DG_ROOT}/gateway/bin/dg-gateway";
unless (ok(-x $bin, "the gateway is built ($bin)"))
{
	done_testing();
	exit 1;
}

# a hanging gateway must not hang the suite
$SIG{ALRM} = sub { fail('the test timed out'); done_testing(); exit 1; };
alarm 120;

my $node = DgTest->cluster(name => 'gateway_rest');
my $gw = DgTest::Gateway->start($node);
my $base = $gw->url;
my $API = '/api/v1alpha1/things';
my $http = HTTP::Tiny->new(timeout => 20);
my $J = JSON::PP->new->utf8->canonical->allow_nonref;
my $dbh = $node->dbh;

# Stop everything before Test::More sets the exit status: the DESTROYs'
# system() and waitpid() at global destruction would reset $?.
END
{
	my $status = $?;
	$gw->stop if $gw;
	if ($node) { $node->stop('immediate'); $node->{kept} = 1; }
	$? = $status;
}

# percent-encode one path segment (UTF-8)
sub enc { my ($s) = @_; return encode_utf8($s) =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ger; }

# request(METHOD, PATH, body => perl data or raw string, headers => {...})
sub request
{
	my ($method, $path, %o) = @_;
	my %headers = %{ $o{headers} // {} };
	my %args = (headers => \%headers);
	if (exists $o{body})
	{
		$args{content} = ref $o{body} ? $J->encode($o{body}) : $o{body};
		$headers{'content-type'} //= 'application/json';
	}
	my $r = $http->request($method, "$base$path", \%args);
	$r->{json} = eval { $J->decode($r->{content}) } if length($r->{content} // '');
	return $r;
}

sub thing
{
	my ($app, $name) = @_;
	my $v = $dbh->selectrow_array('SELECT doppelganger.dt_get_thing($1, $2)', undef, $app, $name);
	return defined $v ? json_decode($v) : undef;
}

sub is_json_error
{
	my ($r, $status, $error, $what, $message_re) = @_;
	is($r->{status}, $status, "$what: $status") or diag("body: " . ($r->{content} // ''));
	like($r->{headers}{'content-type'} // '', qr{^application/json}, "$what: a JSON body");
	is(ref $r->{json} eq 'HASH' ? $r->{json}{error} : undef, $error, "$what: error $error");
	ok(ref $r->{json} eq 'HASH' && defined $r->{json}{message} && !ref $r->{json}{message}
		  && length $r->{json}{message}, "$what: a message");
	like($r->{json}{message} // '', $message_re, "$what: the message") if $message_re;
}

sub is_empty_status
{
	my ($r, $status, $what) = @_;
	is($r->{status}, $status, "$what: $status") or diag("body: " . ($r->{content} // ''));
	is($r->{content} // '', '', "$what: empty body");
}

# ---- 0: GET / ----
my $r = request('GET', '/');
is($r->{status}, 200, 'GET /: 200');
like($r->{headers}{'content-type'} // '', qr{^application/json}, 'GET /: application/json');
is_deeply($r->{json}, { ok => JSON::PP::true, name => 'Doppelganger', version => '0.1' }, 'GET /: the body');

# ---- 1: POST (create) ----
$r = request('POST', $API, body => { metadata => { application => 'app', name => 'lamp', labels => { room => 'kitchen' } },
	reportedState => { temp => { value => 21 } } });
is($r->{status}, 201, 'create: 201');
is_deeply($r->{json}, {}, 'create: body {}');
like($r->{headers}{'content-type'} // '', qr{^application/json}, 'create: application/json');
my $t = thing('app', 'lamp');
ok($t, 'create: the thing is stored');
is($t->{reportedState}{temp}{value}, 21, 'create: with its reported state');

$r = request('POST', $API, body => { metadata => { application => 'app', name => 'lamp' } });
is($r->{status}, 409, 'create again: 409');
is_deeply($r->{json}, { error => 'AlreadyExists', message => 'Storage: Already exists' }, 'create again: the body');

is_json_error(request('POST', $API, body => '{"metadata": '), 400, 'InvalidFormat', 'create with bad JSON');
is_json_error(request('POST', $API, body => '[{"metadata": {"application": "app", "name": "x"}}]'), 400, 'InvalidFormat',
	'create with a JSON array');
is_json_error(request('POST', $API, body => '"lamp"'), 400, 'InvalidFormat', 'create with a JSON string');
is_json_error(request('POST', $API, body => { metadata => { application => 'a b', name => 'x' } }), 400, 'InvalidFormat',
	'create with a bad application name (22023)', qr/application name "a b"/);
is($dbh->selectrow_array(q{SELECT count(*) FROM doppelganger.things WHERE name = 'x'}), 0, 'nothing created');

# ---- 3: GET a thing, ETag ----
$t = thing('app', 'lamp');
$r = request('GET', "$API/app/things/lamp");
is($r->{status}, 200, 'get: 200');
like($r->{headers}{'content-type'} // '', qr{^application/json}, 'get: application/json');
is_deeply($r->{json}, $t, 'get: the stored thing');
is($r->{headers}{etag}, qq{"$t->{metadata}{resourceVersion}"}, 'get: ETag is the quoted resourceVersion');

is_empty_status(request('GET', "$API/app/things/nope"), 404, 'get a missing thing');
is_empty_status(request('GET', "$API/other/things/lamp"), 404, 'get a thing of another application');

# ---- things with "/" (and more) in the name ----
for my $name ('device1/sensor', 'room 1/lamp:2', "caf\x{e9}/\x{fc}")
{
	my $e = enc($name);
	$r = request('POST', $API, body => { metadata => { application => 'app', name => $name } });
	is($r->{status}, 201, "create \"$e\": 201");
	$r = request('GET', "$API/app/things/$e");
	is($r->{status}, 200, "get $e: 200");
	is($r->{json}{metadata}{name}, $name, "get $e: the thing of that name");
	$r = request('PUT', "$API/app/things/$e/reportedStates", body => { on => JSON::PP::true });
	is($r->{status}, 204, "report to $e: 204");
	ok(thing('app', $name)->{reportedState}{on}{value}, "report to $e: stored on that thing");
}
$r = request('DELETE', "$API/app/things/" . enc('device1/sensor'));
is($r->{status}, 204, 'delete device1%2Fsensor: 204');
ok(!thing('app', 'device1/sensor'), 'delete device1%2Fsensor: gone');
ok(thing('app', 'room 1/lamp:2'), 'the other things stay');

# ---- 7: reported state; visible at once; a no-op is no new generation ----
$r = request('PUT', "$API/app/things/lamp/reportedStates", body => { temp => 22.5, hum => 40 });
is_empty_status($r, 204, 'report');
$r = request('GET', "$API/app/things/lamp");
is($r->{json}{reportedState}{temp}{value}, 22.5, 'report: the GET right after sees the new value');
is($r->{json}{reportedState}{hum}{value}, 40, 'report: merged');
my $gen = $r->{json}{metadata}{generation};
my $etag = $r->{headers}{etag};
is($gen, thing('app', 'lamp')->{metadata}{generation}, 'the GET has the stored generation');

$r = request('PUT', "$API/app/things/lamp/reportedStates", body => { temp => 22.5 });
is($r->{status}, 204, 'the same report again: 204');
$r = request('GET', "$API/app/things/lamp");
is($r->{json}{metadata}{generation}, $gen, 'the same report again: no new generation');
is($r->{headers}{etag}, $etag, 'the same report again: the same ETag');

is_empty_status(request('PUT', "$API/app/things/nope/reportedStates", body => { temp => 1 }), 404, 'report to a missing thing');
is_json_error(request('PUT', "$API/app/things/lamp/reportedStates", body => '[1, 2]'), 400, 'InvalidFormat',
	'report a JSON array');
is_json_error(request('PUT', "$API/app/things/lamp/reportedStates", body => '{"temp": '), 400, 'InvalidFormat',
	'report bad JSON');

# ---- 2: PUT (replace), If-Match ----
$t = thing('app', 'lamp');
my $rv = $t->{metadata}{resourceVersion};
$r = request('PUT', $API, body => { metadata => { application => 'app', name => 'lamp', labels => { room => 'hall' } },
	reportedState => { temp => { value => 19 } } }, headers => { 'if-match' => '"00000000-0000-0000-0000-000000000000"' });
is_empty_status($r, 412, 'replace with a stale If-Match');
is_deeply(thing('app', 'lamp'), $t, 'replace with a stale If-Match: nothing changed');

$r = request('PUT', $API, body => { metadata => { application => 'app', name => 'lamp', labels => { room => 'hall' } },
	reportedState => { temp => { value => 19 } } }, headers => { 'if-match' => qq{"$rv"} });
is_empty_status($r, 204, 'replace with the current If-Match');
$t = thing('app', 'lamp');
is_deeply($t->{metadata}{labels}, { room => 'hall' }, 'replace: the new labels');
is($t->{reportedState}{temp}{value}, 19, 'replace: the new reported state');
ok(!exists $t->{reportedState}{hum}, 'replace: what the body does not carry is gone');
$r = request('GET', "$API/app/things/lamp");
is($r->{json}{reportedState}{temp}{value}, 19, 'replace: visible at once in GET');
is($r->{headers}{etag}, qq{"$t->{metadata}{resourceVersion}"}, 'replace: a new ETag');

$r = request('PUT', $API, body => { metadata => { application => 'app', name => 'lamp', labels => { room => 'hall' } },
	reportedState => { temp => { value => 20 } } }, headers => { 'if-match' => $t->{metadata}{resourceVersion} });
is($r->{status}, 204, 'replace with an unquoted If-Match: 204');
is(thing('app', 'lamp')->{reportedState}{temp}{value}, 20, 'replace with an unquoted If-Match: applied');

$r = request('PUT', $API, body => { metadata => { application => 'app', name => 'lamp', labels => { room => 'hall' } },
	reportedState => { temp => { value => 21 } } }, headers => { 'if-match' => qq{"$rv"} });
is_empty_status($r, 412, 'replace with an If-Match that was current before');
is_empty_status(request('PUT', $API, body => { metadata => { application => 'app', name => 'nope' } }), 404,
	'replace a missing thing');
is_json_error(request('PUT', $API, body => '{'), 400, 'InvalidFormat', 'replace with bad JSON');
is_json_error(request('PUT', $API, body => '42'), 400, 'InvalidFormat', 'replace with a number');

# ---- 5, 6: PATCH ----
$t = thing('app', 'lamp');
$r = request('PATCH', "$API/app/things/lamp", body => [{ op => 'add', path => '/metadata/annotations', value => { note => 'x' } }],
	headers => { 'content-type' => 'application/json-patch+json' });
is_empty_status($r, 204, 'json patch');
is_deeply(thing('app', 'lamp')->{metadata}{annotations}, { note => 'x' }, 'json patch: applied');

is_json_error(request('PATCH', "$API/app/things/lamp", body => [{ op => 'remove', path => '/nope' }],
	headers => { 'content-type' => 'application/json-patch+json' }), 400, 'InvalidFormat',
	'a json patch that fails (22023)', qr/nope/);
is_json_error(request('PATCH', "$API/app/things/lamp", body => { op => 'remove', path => '/nope' },
	headers => { 'content-type' => 'application/json-patch+json' }), 400, 'InvalidFormat', 'a json patch that is an object');
is_json_error(request('PATCH', "$API/app/things/lamp", body => '[{"op": ',
	headers => { 'content-type' => 'application/json-patch+json' }), 400, 'InvalidFormat', 'a json patch that is bad JSON');

$r = request('PATCH', "$API/app/things/lamp", body => { reportedState => { colour => { value => 'red' } } },
	headers => { 'content-type' => 'application/merge-patch+json' });
is_empty_status($r, 204, 'merge patch');
is(thing('app', 'lamp')->{reportedState}{colour}{value}, 'red', 'merge patch: applied');
is_json_error(request('PATCH', "$API/app/things/lamp", body => '["x"]',
	headers => { 'content-type' => 'application/merge-patch+json' }), 400, 'InvalidFormat', 'a merge patch that is an array');

$t = thing('app', 'lamp');
$r = request('PATCH', "$API/app/things/lamp", body => { reportedState => { colour => { value => 'red' } } },
	headers => { 'content-type' => 'application/merge-patch+json' });
is($r->{status}, 204, 'a merge patch that changes nothing: 204');
is(thing('app', 'lamp')->{metadata}{generation}, $t->{metadata}{generation}, 'a merge patch that changes nothing: no new generation');

is_empty_status(request('PATCH', "$API/app/things/lamp", body => [{ op => 'add', path => '/metadata/annotations/y', value => 'y' }],
	headers => { 'content-type' => 'application/json-patch+json', 'if-match' => '"00000000-0000-0000-0000-000000000000"' }),
	412, 'json patch with a stale If-Match');
is_empty_status(request('PATCH', "$API/app/things/lamp", body => { metadata => { annotations => { y => 'y' } } },
	headers => { 'content-type' => 'application/merge-patch+json', 'if-match' => '"00000000-0000-0000-0000-000000000000"' }),
	412, 'merge patch with a stale If-Match');
is_deeply(thing('app', 'lamp'), $t, 'stale patches changed nothing');
$r = request('PATCH', "$API/app/things/lamp", body => { metadata => { annotations => { y => 'y' } } },
	headers => { 'content-type' => 'application/merge-patch+json', 'if-match' => qq{"$t->{metadata}{resourceVersion}"} });
is($r->{status}, 204, 'merge patch with the current If-Match: 204');
$t = thing('app', 'lamp');
is($t->{metadata}{annotations}{y}, 'y', 'merge patch with the current If-Match: applied');
$r = request('PATCH', "$API/app/things/lamp", body => [{ op => 'remove', path => '/metadata/annotations/y' }],
	headers => { 'content-type' => 'application/json-patch+json', 'if-match' => qq{"$t->{metadata}{resourceVersion}"} });
is($r->{status}, 204, 'json patch with the current If-Match: 204');
ok(!exists thing('app', 'lamp')->{metadata}{annotations}{y}, 'json patch with the current If-Match: applied');

is_empty_status(request('PATCH', "$API/app/things/nope", body => [],
	headers => { 'content-type' => 'application/json-patch+json' }), 404, 'json patch of a missing thing');
is_empty_status(request('PATCH', "$API/app/things/nope", body => {},
	headers => { 'content-type' => 'application/merge-patch+json' }), 404, 'merge patch of a missing thing');

$t = thing('app', 'lamp');
is_json_error(request('PATCH', "$API/app/things/lamp", body => { reportedState => {} },
	headers => { 'content-type' => 'application/json' }), 415, 'InvalidFormat', 'PATCH as application/json');
is_json_error(request('PATCH', "$API/app/things/lamp", body => 'x', headers => { 'content-type' => 'text/plain' }),
	415, 'InvalidFormat', 'PATCH as text/plain');
is_deeply(thing('app', 'lamp'), $t, '415: nothing changed');

# ---- 8, 9: synthetic state ----
$r = request('PUT', "$API/app/things/lamp/syntheticStates/t2", body => { alias => 'temp' });
is_empty_status($r, 204, 'set a synthetic');
is(request('GET', "$API/app/things/lamp")->{json}{syntheticState}{t2}{value}, 20, 'set a synthetic: visible at once');
$r = request('PUT', "$API/app/things/lamp/syntheticStates/bad", body => { javaScript => 'throw new Error("boom")' });
is_json_error($r, 500, 'InternalError', 'a synthetic whose script throws (38000)', qr/boom/);
unlike($r->{json}{message} // '', qr/^State Machine: Validation failed/, 'a script error is no validation error');
ok(!exists thing('app', 'lamp')->{syntheticState}{bad}, 'the failing synthetic is not stored');
is_empty_status(request('PUT', "$API/app/things/nope/syntheticStates/t2", body => { alias => 'temp' }), 404,
	'set a synthetic on a missing thing');
is_json_error(request('PUT', "$API/app/things/lamp/syntheticStates/t2", body => '"temp"'), 400, 'InvalidFormat',
	'a synthetic that is a string (22023)');

$r = request('DELETE', "$API/app/things/lamp/syntheticStates/t2");
is_empty_status($r, 204, 'delete a synthetic');
ok(!exists thing('app', 'lamp')->{syntheticState}{t2}, 'delete a synthetic: gone');
is(request('DELETE', "$API/app/things/lamp/syntheticStates/t2")->{status}, 204, 'delete a missing synthetic: 204');
is_empty_status(request('DELETE', "$API/app/things/nope/syntheticStates/t2"), 404, 'delete a synthetic of a missing thing');

# ---- 10, 11: desired state and its value ----
$r = request('PUT', "$API/app/things/lamp/desiredStates/bright", body => { value => 10 });
is_empty_status($r, 204, 'set a desired state');
is(thing('app', 'lamp')->{desiredState}{bright}{value}, 10, 'set a desired state: stored');
is_empty_status(request('PUT', "$API/app/things/nope/desiredStates/bright", body => { value => 10 }), 404,
	'set a desired state on a missing thing');
is_json_error(request('PUT', "$API/app/things/lamp/desiredStates/bright", body => '{"value": '), 400, 'InvalidFormat',
	'set a desired state with bad JSON');

$r = request('PUT', "$API/app/things/lamp/desiredStates/bright/value", body => '20');
is_empty_status($r, 204, 'set a desired value');
$t = thing('app', 'lamp');
is($t->{desiredState}{bright}{value}, 20, 'set a desired value: stored');
ok(!exists $t->{desiredState}{bright}{validUntil}, 'set a desired value without headers: no validUntil');
is(request('GET', "$API/app/things/lamp")->{json}{desiredState}{bright}{value}, 20, 'set a desired value: visible at once');

$r = request('PUT', "$API/app/things/lamp/desiredStates/bright/value", body => '{"level": [1, 2]}');
is($r->{status}, 204, 'a desired value may be any JSON: 204');
is_deeply(thing('app', 'lamp')->{desiredState}{bright}{value}, { level => [1, 2] }, 'a desired value may be any JSON: stored');

$r = request('PUT', "$API/app/things/lamp/desiredStates/bright/value", body => '30',
	headers => { 'valid-until' => '2030-01-01T00:00:00Z' });
is($r->{status}, 204, 'a desired value with valid-until: 204');
$t = thing('app', 'lamp');
is($t->{desiredState}{bright}{value}, 30, 'a desired value with valid-until: the value');
is(DgTest::time_of($t->{desiredState}{bright}{validUntil} // ''), DgTest::time_of('2030-01-01T00:00:00Z'),
	'a desired value with valid-until: validUntil');

my $before = time;
$r = request('PUT', "$API/app/things/lamp/desiredStates/bright/value", body => '40', headers => { 'valid-for' => '1m' });
is($r->{status}, 204, 'a desired value with valid-for: 204');
$t = thing('app', 'lamp');
is($t->{desiredState}{bright}{value}, 40, 'a desired value with valid-for: the value');
my $until = DgTest::time_of($t->{desiredState}{bright}{validUntil} // '');
ok(defined $until && $until >= $before + 55 && $until <= time + 65,
	'a desired value with valid-for 1m: validUntil is a minute from now')
  or diag('validUntil ' . ($t->{desiredState}{bright}{validUntil} // 'none'));

$before = time;
request('PUT', "$API/app/things/lamp/desiredStates/bright/value", body => '41', headers => { 'valid-for' => '30s' });
$until = DgTest::time_of(thing('app', 'lamp')->{desiredState}{bright}{validUntil} // '');
ok(defined $until && $until >= $before + 25 && $until <= time + 35, 'valid-for 30s: validUntil 30 s from now');

$t = thing('app', 'lamp');
is_json_error(request('PUT', "$API/app/things/lamp/desiredStates/bright/value", body => '50',
	headers => { 'valid-until' => '2030-01-01T00:00:00Z', 'valid-for' => '1m' }), 400, 'InvalidFormat',
	'valid-until and valid-for together');
is_json_error(request('PUT', "$API/app/things/lamp/desiredStates/bright/value", body => '50',
	headers => { 'valid-until' => 'tomorrow' }), 400, 'InvalidFormat', 'an unparsable valid-until');
is_json_error(request('PUT', "$API/app/things/lamp/desiredStates/bright/value", body => '50',
	headers => { 'valid-for' => 'a while' }), 400, 'InvalidFormat', 'an unparsable valid-for');
is_json_error(request('PUT', "$API/app/things/lamp/desiredStates/bright/value", body => '{"x": '), 400, 'InvalidFormat',
	'a desired value that is bad JSON');
is_deeply(thing('app', 'lamp'), $t, 'refused desired values changed nothing');
is_json_error(request('PUT', "$API/app/things/lamp/desiredStates/nope/value", body => '1'), 400, 'InvalidFormat',
	'a value for an unknown desired feature (22023)', qr/unknown desired features/);
is_empty_status(request('PUT', "$API/app/things/nope/desiredStates/bright/value", body => '1'), 404,
	'a desired value on a missing thing');

# ---- 12: reconciliation ----
$r = request('PUT', "$API/app/things/lamp/reconciliations",
	body => { changed => { mark => { javaScript => 'context.newState.metadata.annotations.marked = "yes";' } } });
is_empty_status($r, 204, 'set the reconciliation');
$t = thing('app', 'lamp');
ok(exists $t->{reconciliation}{changed}{mark}, 'set the reconciliation: stored');
is($t->{metadata}{annotations}{marked}, 'yes', 'set the reconciliation: the hook ran');
is_empty_status(request('PUT', "$API/app/things/nope/reconciliations", body => {}), 404,
	'set the reconciliation of a missing thing');
is_json_error(request('PUT', "$API/app/things/lamp/reconciliations", body => '[]'), 400, 'InvalidFormat',
	'a reconciliation that is an array');
$r = request('PUT', "$API/app/things/lamp/reconciliations", body => {});
is($r->{status}, 204, 'clear the reconciliation: 204');
ok(!exists thing('app', 'lamp')->{reconciliation}{changed}, 'clear the reconciliation: the whole section is replaced');

# ---- 13, 13b: annotations, labels ----
$r = request('PUT', "$API/app/things/lamp/annotations", body => { note => 'by the window', marked => undef });
is_empty_status($r, 204, 'set annotations');
$t = thing('app', 'lamp');
is($t->{metadata}{annotations}{note}, 'by the window', 'set annotations: stored');
ok(!exists $t->{metadata}{annotations}{marked}, 'set annotations: null removes one');
is_empty_status(request('PUT', "$API/app/things/nope/annotations", body => { a => 'b' }), 404, 'annotations of a missing thing');
is_json_error(request('PUT', "$API/app/things/lamp/annotations", body => '"x"'), 400, 'InvalidFormat', 'annotations that are a string');

$r = request('PUT', "$API/app/things/lamp/labels", body => { room => 'kitchen', kind => 'lamp' });
is_empty_status($r, 204, 'set labels');
is_deeply(thing('app', 'lamp')->{metadata}{labels}, { room => 'kitchen', kind => 'lamp' }, 'set labels: stored');
request('PUT', "$API/app/things/lamp/labels", body => { kind => undef });
is_deeply(thing('app', 'lamp')->{metadata}{labels}, { room => 'kitchen' }, 'set labels: null removes one');
is_empty_status(request('PUT', "$API/app/things/nope/labels", body => { a => 'b' }), 404, 'labels of a missing thing');
is_json_error(request('PUT', "$API/app/things/lamp/labels", body => '[1]'), 400, 'InvalidFormat', 'labels that are an array');

# ---- 16: list ----
request('POST', $API, body => { metadata => { application => 'list', name => $_->[0], labels => $_->[1] } })
  for ['b', { room => 'hall' }], ['a', { room => 'kitchen' }], ['c/1', {}];
$r = request('GET', "$API/list/things");
is($r->{status}, 200, 'list: 200');
like($r->{headers}{'content-type'} // '', qr{^application/json}, 'list: application/json');
is(ref $r->{json}, 'ARRAY', 'list: an array');
is_deeply([map { $_->{metadata}{name} } @{ ref $r->{json} eq 'ARRAY' ? $r->{json} : [] }], ['a', 'b', 'c/1'],
	'list: the things in name order');
is_deeply($r->{json}[0], thing('list', 'a'), 'list: whole things');
$r = request('GET', "$API/list/things?labelSelector=" . enc('room=kitchen'));
is_deeply([map { $_->{metadata}{name} } @{ $r->{json} // [] }], ['a'], 'list with room=kitchen');
$r = request('GET', "$API/list/things?labelSelector=" . enc('!room'));
is_deeply([map { $_->{metadata}{name} } @{ $r->{json} // [] }], ['c/1'], 'list with !room');
$r = request('GET', "$API/list/things?labelSelector=" . enc('room!=hall,room'));
is_deeply([map { $_->{metadata}{name} } @{ $r->{json} // [] }], ['a'], 'list with room!=hall,room');
$r = request('GET', "$API/empty/things");
is($r->{status}, 200, 'list an empty application: 200');
is_deeply($r->{json}, [], 'list an empty application: []');
is_json_error(request('GET', "$API/list/things?labelSelector=" . enc('=x')), 400, 'InvalidFormat',
	'list with a bad selector (22023)', qr/label selector/);

# a large list goes out in many writes (60 things of 8 KB each: about 500 KB)
for my $i (1 .. 60)
{
	$dbh->selectrow_array('SELECT doppelganger.dt_create_thing($1)', undef, json_encode({
		metadata => { application => 'big', name => sprintf('t%02d', $i) },
		reportedState => { blob => { value => ('x' x 8000) . $i } } }));
}
$r = request('GET', "$API/big/things");
is($r->{status}, 200, 'a list of 500 KB: 200');
ok(length($r->{content} // '') > 480_000, 'a list of 500 KB: all of it (' . length($r->{content} // '') . ' bytes)');
is_deeply([map { $_->{reportedState}{blob}{value} =~ /(\d+)$/ ? $1 : 0 } @{ $r->{json} // [] }], [1 .. 60],
	'a list of 500 KB: every thing, intact');
is(request('GET', '/')->{status}, 200, 'still serving after a large response');

# ---- 500: schema validation ----
$r = request('POST', $API, body => { metadata => { application => 'app', name => 'strict' },
	reportedState => { temp => { value => 21 } },
	schema => { json => { version => 'draft7', schema => { properties => { reportedState => {
		properties => { temp => { type => 'number' } } } } } } } });
is($r->{status}, 201, 'create a thing with a schema: 201');
$t = thing('app', 'strict');
$r = request('PUT', "$API/app/things/strict/reportedStates", body => { temp => 'hot' });
is_json_error($r, 500, 'InternalError', 'a report the schema refuses (23514)', qr/^State Machine: Validation failed: /);
is_deeply(thing('app', 'strict'), $t, 'a report the schema refuses: nothing changed');
$r = request('PATCH', "$API/app/things/strict", body => [{ op => 'replace', path => '/reportedState/temp/value', value => 'hot' }],
	headers => { 'content-type' => 'application/json-patch+json' });
is_json_error($r, 500, 'InternalError', 'a patch the schema refuses', qr/^State Machine: Validation failed: /);
is_deeply(thing('app', 'strict'), $t, 'a patch the schema refuses: nothing changed');
is(request('PUT', "$API/app/things/strict/reportedStates", body => { temp => 5 })->{status}, 204,
	'a report the schema accepts: 204');

# ---- 4: DELETE, If-Match ----
$t = thing('app', 'lamp');
is_empty_status(request('DELETE', "$API/app/things/lamp", headers => { 'if-match' => '"00000000-0000-0000-0000-000000000000"' }),
	412, 'delete with a stale If-Match');
ok(thing('app', 'lamp'), 'delete with a stale If-Match: still there');
$r = request('DELETE', "$API/app/things/lamp", headers => { 'if-match' => qq{"$t->{metadata}{resourceVersion}"} });
is_empty_status($r, 204, 'delete with the current If-Match');
ok(!thing('app', 'lamp'), 'delete: gone');
is_empty_status(request('GET', "$API/app/things/lamp"), 404, 'delete: GET right after gives 404');
is_empty_status(request('DELETE', "$API/app/things/lamp"), 204, 'delete a missing thing');
is(request('DELETE', "$API/app/things/strict")->{status}, 204, 'delete without If-Match: 204');
ok(!thing('app', 'strict'), 'delete without If-Match: gone');

# ---- unknown paths (404) and wrong methods (405) ----
is(request('GET', '/nope')->{status}, 404, 'GET /nope: 404');
is(request('GET', '/api/v1alpha1/nope')->{status}, 404, 'GET /api/v1alpha1/nope: 404');
is(request('GET', "$API/app/nope")->{status}, 404, 'GET …/app/nope: 404');
is(request('GET', "$API/app/things/x/nope")->{status}, 404, 'GET …/things/x/nope: 404');
is(request('PUT', "$API/app/things/x/desiredStates/a/b/c", body => '1')->{status}, 404, 'PUT …/desiredStates/a/b/c: 404');
is(request('DELETE', $API)->{status}, 405, 'DELETE /api/v1alpha1/things: 405');
is(request('PATCH', $API, body => {}, headers => { 'content-type' => 'application/merge-patch+json' })->{status}, 405,
	'PATCH /api/v1alpha1/things: 405');
is(request('POST', "$API/app/things/x", body => {})->{status}, 405, 'POST a thing path: 405');
is(request('PUT', "$API/app/things/x", body => {})->{status}, 405, 'PUT a thing path: 405');
is(request('GET', "$API/app/things/x/reportedStates")->{status}, 405, 'GET …/reportedStates: 405');
is(request('POST', "$API/app/things/x/annotations", body => {})->{status}, 405, 'POST …/annotations: 405');
is(request('DELETE', "$API/app/things/x/labels")->{status}, 405, 'DELETE …/labels: 405');
is(request('DELETE', "$API/app/things")->{status}, 405, 'DELETE …/{application}/things: 405');
is(request('POST', '/', body => {})->{status}, 405, 'POST /: 405');

# ---- PATCH content types ----
request('POST', $API, body => { metadata => { application => 'app', name => 'ct' } });
is_empty_status(request('PATCH', "$API/app/things/ct", body => { metadata => { labels => { a => 'b' } } },
	headers => { 'content-type' => 'application/merge-patch+json; charset=utf-8' }), 204,
	'PATCH merge-patch+json with a charset');
is(thing('app', 'ct')->{metadata}{labels}{a}, 'b', 'PATCH with a charset: applied');
is_json_error(request('PATCH', "$API/app/things/ct", body => [], headers => { 'content-type' => 'application/json-patch+jsonx' }),
	415, 'InvalidFormat', 'PATCH application/json-patch+jsonx');
is_json_error(request('PATCH', "$API/app/things/ct", body => '[]', headers => { 'content-type' => '' }),
	415, 'InvalidFormat', 'PATCH without a content type');
is_json_error(request('PATCH', "$API/app/things/ct", body => '{"op": "add"}', headers => { 'content-type' => 'application/json-patch+json' }),
	400, 'InvalidFormat', 'a JSON patch that is no array', qr/array/);

# ---- bodies ----
is_json_error(request('PUT', "$API/app/things/ct/reportedStates", body => ''), 400, 'InvalidFormat',
	'PUT reportedStates without a body', qr/not JSON/);
is_json_error(request('PUT', "$API/app/things/ct/reportedStates", body => '[1]'), 400, 'InvalidFormat',
	'PUT reportedStates with an array', qr/object/);
is_json_error(request('PUT', "$API/app/things/ct/reportedStates", body => '{"a": 1} trailing'), 400, 'InvalidFormat',
	'PUT reportedStates with trailing garbage');
is_json_error(request('PUT', "$API/app/things/ct/reportedStates", body => '{"a": "' . ('x' x (16 * 1024 * 1024)) . '"}'),
	413, 'InvalidFormat', 'a body over 16 MiB', qr/16 MiB/);
is(request('GET', '/')->{status}, 200, 'still serving after a body over 16 MiB');
is_json_error(request('GET', "$API/app/notifications"), 400, 'InvalidFormat',
	'GET …/notifications without a WebSocket upgrade', qr/WebSocket/);

# ---- requests that cannot be answered as asked ----
sub raw_request
{
	my ($text) = @_;
	my ($host, $port) = $base =~ m{//([^:/]+):(\d+)};
	my $sock = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 10) or return '';
	print $sock $text;
	my $answer = '';
	my $sel = IO::Select->new($sock);
	while ($sel->can_read(5))
	{
		my $n = sysread($sock, my $buf, 65536);
		last unless $n;
		$answer .= $buf;
	}
	close $sock;
	return $answer;
}
like(raw_request("PUT $API/app/things/ct/reportedStates HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n{}"),
	qr{^HTTP/1\.1 411 .*"error":"InvalidFormat"}s, 'a PUT without Content-Length: 411, and the connection closes');
unlike(raw_request("GET $API/app/notifications HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
	. "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"), qr{^HTTP/1\.1 101}, 'an h2c upgrade is refused');
is_json_error(request('DELETE', "$API/app/things/ct", headers => { 'if-match' => '"' . ('x' x 300) . '"' }), 400,
	'InvalidFormat', 'an If-Match too long to hold', qr/too long/);
ok(thing('app', 'ct'), 'an If-Match too long to hold: nothing deleted');
is_json_error(request('GET', "$API/list/things?labelSelector=" . ('a' x 2000)), 400, 'InvalidFormat',
	'a label selector too long to hold', qr/too long/);
is(request('GET', '/')->{status}, 200, 'still serving');

# ---- the debugger's files ----
$r = request('GET', '/debugger/');
is($r->{status}, 200, 'GET /debugger/: 200');
like($r->{headers}{'content-type'} // '', qr{^text/html}, 'GET /debugger/: text/html');
like($r->{content} // '', qr/<html/i, 'GET /debugger/: the page');
like(request('GET', '/debugger/app.js')->{headers}{'content-type'} // '', qr{javascript}, 'app.js: a JavaScript type');
like(request('GET', '/debugger/style.css')->{headers}{'content-type'} // '', qr{^text/css}, 'style.css: text/css');
is(request('GET', '/debugger/nope.js')->{status}, 404, 'a missing file: 404');
for my $path ('/debugger/../gateway/main.c', '/debugger/%2e%2e/gateway/main.c', '/debugger/..%2fgateway%2fmain.c')
{
	my $r = request('GET', $path);
	unlike($r->{content} // '', qr/libwebsockets/, "$path: not served");
	isnt($r->{status}, 200, "$path: not 200");
}

# ---- a call waiting for a row lock holds up nobody else ----
request('POST', $API, body => { metadata => { application => 'app', name => 'locked' } });
request('POST', $API, body => { metadata => { application => 'app', name => 'free' } });
{
	my $holder = $node->dbh;
	$holder->begin_work;
	$holder->do(q{SELECT 1 FROM doppelganger.things WHERE application = 'app' AND name = 'locked' FOR UPDATE});
	my $pid = fork // die "fork: $!";
	if (!$pid)
	{
		my $r = HTTP::Tiny->new(timeout => 30)->put("$base$API/app/things/locked/reportedStates",
			{ headers => { 'content-type' => 'application/json' }, content => '{"x": 1}' });
		POSIX::_exit($r->{status} == 204 ? 0 : 1);
	}
	sleep 0.5;		# the PUT is waiting for the lock now
	my $t0 = time;
	my $r = request('GET', "$API/app/things/free");
	my $r2 = request('PUT', "$API/app/things/free/reportedStates", body => { y => 2 });
	my $took = time - $t0;
	is($r->{status}, 200, 'while a PUT waits for a row lock: another GET answers');
	is($r2->{status}, 204, 'and another PUT');
	ok($took < 2, sprintf('at once (%.2f s)', $took));
	ok(kill(0, $pid) && waitpid($pid, POSIX::WNOHANG()) == 0, 'the waiting PUT is still waiting');
	$holder->commit;
	waitpid($pid, 0);
	is($?, 0, 'once the lock is gone, the waiting PUT succeeds (204)');
	is(thing('app', 'locked')->{reportedState}{x}{value}, 1, 'and is stored');
}

# the gateway is still well and stops cleanly
is(request('GET', '/')->{status}, 200, 'still serving');
$gw->stop;
is($gw->{exit}, 0, 'SIGTERM stops the gateway with exit 0');

diag("gateway log (the end):\n" . join('', grep { defined } (split /^/m, $gw->log_contents)[-30 .. -1])) unless Test::More->builder->is_passing;
done_testing();
