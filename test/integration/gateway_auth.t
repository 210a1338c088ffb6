# The gateway's authentication and authorization (gateway contract
# "Authentication", the extension's per-application grants): HS256 and
# RS256 tokens (missing, badly signed, expired, alg none: 401), the role
# claim, --role-claim, --anon-role, DG_GATEWAY_JWT_SECRET, a read grant
# (GET 200, writes 403), a write grant, no grant (404, WebSocket upgrade
# 404), token in ?token=, the claims in request.jwt.claims; without a key,
# loopback is served as the login role.
use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use JSON::PP;
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);
use DgTest;
use NodeClient;

$SIG{PIPE} = 'IGNORE';

my $bin = "$ENV{DG_ROOT}/gateway/bin/dg-gateway";
unless (ok(-x $bin, "the gateway is built ($bin)"))
{
	done_testing();
	exit 1;
}

# a hanging gateway must not hang the suite
$SIG{ALRM} = sub { fail('the test timed out'); done_testing(); exit 1; };
alarm 300;

my $node = DgTest->cluster(name => 'gateway_auth');
my $dbh = $node->dbh;
my $API = '/api/v1alpha1/things';
my $J = JSON::PP->new->utf8->canonical->allow_nonref;
my $http = HTTP::Tiny->new(timeout => 20);
my $c = NodeClient->new;
my $gw;

# Stop everything before Test::More sets the exit status: the DESTROYs'
# system() and waitpid() at global destruction would reset $?.
END
{
	my $status = $?;
	$c->close if $c;
	$gw->stop if $gw;
	if ($node) { $node->stop('immediate'); $node->{kept} = 1; }
	$? = $status;
}
my $dir = "$node->{dir}/keys";
mkdir $dir or die "$dir: $!";

# alice may read app, bob may write it (and so read it), carol nothing
$dbh->do($_) for (
	'CREATE ROLE alice', 'CREATE ROLE bob', 'CREATE ROLE carol',
	'GRANT USAGE ON SCHEMA doppelganger TO alice, bob, carol',
	'GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA doppelganger TO alice, bob, carol',
	q{CREATE FUNCTION public.claim_sub(context jsonb) RETURNS jsonb LANGUAGE sql
	  AS $$ SELECT to_jsonb(current_setting('request.jwt.claims', true)::jsonb ->> 'sub') $$},
);
ok(eval { $dbh->selectrow_array(q{SELECT doppelganger.dt_grant('app', 'alice', 'read')}); 1 }, 'dt_grant read to alice')
  or diag($@);
ok(eval { $dbh->selectrow_array(q{SELECT doppelganger.dt_grant('app', 'bob', 'write')}); 1 }, 'dt_grant write to bob')
  or diag($@);

sub call
{
	my ($sql, @bind) = @_;
	my $v = $dbh->selectrow_array($sql, undef, @bind);
	return defined $v && $v =~ /^[\[{]/ ? json_decode($v) : $v;
}
sub thing { return call('SELECT doppelganger.dt_get_thing($1, $2)', @_); }
call('SELECT doppelganger.dt_create_thing($1)', json_encode({ metadata => { application => $_->[0], name => $_->[1] } }))
  for ['app', 'lamp'], ['other', 'x'];
call(q{SELECT doppelganger.dt_set_desired_state('app', 'lamp', 'bright', '{"value": 1}')});

# ---- tokens ----
sub b64 { return encode_base64url($J->encode($_[0])); }
sub hs256
{
	my ($claims, $secret, %opt) = @_;
	my $input = b64({ alg => 'HS256', typ => 'JWT' }) . '.' . b64($claims);
	return "$input." . encode_base64url(hmac_sha256($input, $secret));
}
sub rs256
{
	my ($claims, $key) = @_;
	my $input = b64({ alg => 'RS256', typ => 'JWT' }) . '.' . b64($claims);
	open my $fh, '>', "$dir/input" or die;
	print $fh $input;
	close $fh;
	my $sig = `openssl dgst -sha256 -sign '$key' -binary '$dir/input'`;
	die "openssl dgst failed" if $? || !length $sig;
	return "$input." . encode_base64url($sig);
}
sub unsigned { return b64({ alg => 'none', typ => 'JWT' }) . '.' . b64($_[0]) . '.'; }
my $exp = time + 3600;

# request(METHOD, PATH, token => T, query_token => T, body => ..., headers => {...})
sub request
{
	my ($gw, $method, $path, %o) = @_;
	my %headers = %{ $o{headers} // {} };
	$headers{authorization} = "Bearer $o{token}" if defined $o{token};
	$path .= ($path =~ /\?/ ? '&' : '?') . "token=$o{query_token}" if defined $o{query_token};
	my %args = (headers => \%headers);
	if (exists $o{body})
	{
		$args{content} = ref $o{body} ? $J->encode($o{body}) : $o{body};
		$headers{'content-type'} //= 'application/json';
	}
	my $r = $http->request($method, $gw->url . $path, \%args);
	$r->{json} = eval { $J->decode($r->{content}) } if length($r->{content} // '');
	return $r;
}

sub is_status
{
	my ($r, $status, $what, $error) = @_;
	is($r->{status}, $status, "$what: $status") or diag('body: ' . ($r->{content} // ''));
	is(ref $r->{json} eq 'HASH' ? $r->{json}{error} : undef, $error, "$what: error $error") if $error;
	ok(ref $r->{json} eq 'HASH' && length($r->{json}{message} // ''), "$what: a message") if $error;
}

# The upgrade of a WebSocket: 'open' or the refused status.
my $wsn = 0;
sub ws_upgrade
{
	my ($gw, $path) = @_;
	my $id = 'ws' . ++$wsn;
	(my $url = $gw->url . $path) =~ s{^http}{ws};
	$c->ws($id, $url);
	my $ev = $c->wait_open($id);
	return ($id, $ev->{ev} eq 'unexpected' ? $ev->{status} : $ev->{ev});
}

# ==== HS256 (--jwt-secret) ====
my $secret = 'test-secret-0123456789';
$gw = DgTest::Gateway->start($node, '--jwt-secret', $secret);
my %tok = map { $_ => hs256({ role => $_, sub => "subject-$_", exp => $exp }, $secret) } qw(alice bob carol);

is(request($gw, 'GET', '/')->{status}, 200, 'GET / needs no token');
is_status(request($gw, 'GET', "$API/app/things/lamp"), 401, 'no token', 'Unauthorized');
is_status(request($gw, 'PUT', "$API/app/things/lamp/reportedStates", body => { a => 1 }), 401, 'no token, PUT', 'Unauthorized');
is_status(request($gw, 'GET', "$API/app/things/lamp", token => hs256({ role => 'alice', exp => $exp }, 'wrong-secret')),
	401, 'a token signed with another secret', 'Unauthorized');
my $t = $tok{alice};
substr($t, -3, 3) = substr($t, -3, 3) eq 'AAA' ? 'BBB' : 'AAA';
is_status(request($gw, 'GET', "$API/app/things/lamp", token => $t), 401, 'a token with a changed signature', 'Unauthorized');
is_status(request($gw, 'GET', "$API/app/things/lamp", token => hs256({ role => 'alice', exp => time - 60 }, $secret)),
	401, 'an expired token', 'Unauthorized');
is_status(request($gw, 'GET', "$API/app/things/lamp", token => unsigned({ role => 'alice', exp => $exp })),
	401, 'an unsigned token (alg none)', 'Unauthorized');
is_status(request($gw, 'GET', "$API/app/things/lamp", token => 'not-a-token'), 401, 'garbage', 'Unauthorized');
is(request($gw, 'GET', "$API/app/things/lamp", headers => { authorization => "Basic YWxpY2U6eA==" })->{status}, 401,
	'Basic authorization: 401');
is(thing('app', 'lamp')->{metadata}{generation}, 2, 'nothing changed');

# alice: read
my $r = request($gw, 'GET', "$API/app/things/lamp", token => $tok{alice});
is($r->{status}, 200, 'read grant: GET 200');
is_deeply($r->{json}, thing('app', 'lamp'), 'read grant: the thing');
is(request($gw, 'GET', "$API/app/things/lamp", query_token => $tok{alice})->{status}, 200, 'read grant, ?token=: GET 200');
$r = request($gw, 'GET', "$API/app/things", token => $tok{alice});
is_deeply([map { $_->{metadata}{name} } @{ $r->{json} // [] }], ['lamp'], 'read grant: list');
is_status(request($gw, 'PUT', "$API/app/things/lamp/reportedStates", token => $tok{alice}, body => { a => 1 }),
	403, 'read grant: PUT reportedStates', 'Forbidden');
is_status(request($gw, 'POST', $API, token => $tok{alice}, body => { metadata => { application => 'app', name => 'new' } }),
	403, 'read grant: POST', 'Forbidden');
is_status(request($gw, 'PATCH', "$API/app/things/lamp", token => $tok{alice}, body => { metadata => { labels => { a => 'b' } } },
	headers => { 'content-type' => 'application/merge-patch+json' }), 403, 'read grant: PATCH', 'Forbidden');
is_status(request($gw, 'DELETE', "$API/app/things/lamp", token => $tok{alice}), 403, 'read grant: DELETE', 'Forbidden');
ok(!thing('app', 'new'), 'read grant: nothing created');
is(thing('app', 'lamp')->{metadata}{generation}, 2, 'read grant: nothing changed');
is(request($gw, 'GET', "$API/other/things/x", token => $tok{alice})->{status}, 404, 'read grant on app: GET in other 404');

# bob: write
is(request($gw, 'GET', "$API/app/things/lamp", token => $tok{bob})->{status}, 200, 'write grant: GET 200');
$r = request($gw, 'PUT', "$API/app/things/lamp/reportedStates", token => $tok{bob}, body => { a => 1 });
is($r->{status}, 204, 'write grant: PUT 204');
is(thing('app', 'lamp')->{reportedState}{a}{value}, 1, 'write grant: applied');
$r = request($gw, 'PUT', "$API/app/things/lamp/syntheticStates/js", token => $tok{bob}, body => { javaScript => '40 + 2' });
is($r->{status}, 204, 'write grant: a script');
is(thing('app', 'lamp')->{syntheticState}{js}{owner}, 'bob', 'the call ran as bob (the script\'s owner)');
$r = request($gw, 'PUT', "$API/app/things/lamp/syntheticStates/sub", token => $tok{bob}, body => { function => 'public.claim_sub' });
is($r->{status}, 204, 'write grant: a function hook');
is(thing('app', 'lamp')->{syntheticState}{sub}{value}, 'subject-bob', 'request.jwt.claims holds the token\'s claims');
is(request($gw, 'GET', "$API/other/things/x", token => $tok{bob})->{status}, 404, 'write grant on app: GET in other 404');
is_status(request($gw, 'PUT', "$API/other/things/x/reportedStates", token => $tok{bob}, body => { a => 1 }), 403,
	'write grant on app: PUT in other', 'Forbidden');

# carol: nothing
is(request($gw, 'GET', "$API/app/things/lamp", token => $tok{carol})->{status}, 404, 'no grant: GET 404');
$r = request($gw, 'GET', "$API/app/things", token => $tok{carol});
is($r->{status}, 200, 'no grant: list 200');
is_deeply($r->{json}, [], 'no grant: an empty list');
is_status(request($gw, 'PUT', "$API/app/things/lamp/reportedStates", token => $tok{carol}, body => { a => 2 }), 403,
	'no grant: PUT', 'Forbidden');
is(thing('app', 'lamp')->{reportedState}{a}{value}, 1, 'no grant: nothing changed');

# WebSocket and SSE
my ($id, $st) = ws_upgrade($gw, "$API/app/notifications");
is($st, 401, 'WebSocket without a token: 401');
($id, $st) = ws_upgrade($gw, "$API/app/notifications?token=" . hs256({ role => 'alice', exp => time - 60 }, $secret));
is($st, 401, 'WebSocket with an expired token: 401');
($id, $st) = ws_upgrade($gw, "$API/app/notifications?token=$tok{carol}");
is($st, 404, 'WebSocket without a read grant: 404');
($id, $st) = ws_upgrade($gw, "$API/app/things/lamp/notifications?token=$tok{carol}");
is($st, 404, 'single-thing WebSocket without a read grant: 404');
($id, $st) = ws_upgrade($gw, "$API/app/notifications?token=$tok{alice}");
is($st, 'open', 'WebSocket with ?token= of a reader: open');
my $alice_ws = $id;
$c->send($alice_ws, { type => 'subscribe', thing => 'lamp' });
my $m = $c->msg($alice_ws, sub { $_[0]{type} eq 'initial' });
is_deeply($m && $m->{json}{thing}, thing('app', 'lamp'), 'the reader gets initial');
request($gw, 'PUT', "$API/app/things/lamp/reportedStates", token => $tok{bob}, body => { a => 2 });
$m = $c->msg($alice_ws, sub { $_[0]{type} eq 'change' });
is($m && $m->{json}{thing}{reportedState}{a}{value}, 2, 'the reader gets the writer\'s change');
$c->send($alice_ws, { type => 'setDesiredValues', thing => 'lamp', values => { bright => 99 } });
($id, $st) = ws_upgrade($gw, "$API/app/notifications?token=$tok{bob}");
is($st, 'open', 'WebSocket with ?token= of a writer: open');
$c->send($id, { type => 'setDesiredValues', thing => 'lamp', values => { bright => 42 } });
ok(poll_until(sub { thing('app', 'lamp')->{desiredState}{bright}{value} == 42 }, 10), 'the writer\'s setDesiredValues applies');
$c->settle(1);
my @seen = grep { $_->{json}{type} eq 'change' } $c->messages($alice_ws);
ok(!grep({ ($_->{json}{thing}{desiredState}{bright}{value} // 0) == 99 } @seen), 'the reader\'s setDesiredValues does not');
is(thing('app', 'lamp')->{desiredState}{bright}{value}, 42, 'the stored value is the writer\'s');
like($gw->log_contents, qr/setDesiredValues on app\/lamp: permission denied/, 'the refusal is logged');
is($c->closed($alice_ws), undef, 'and the reader stays connected');

$c->sse('sse', $gw->url . "$API/app/things/lamp/events?token=$tok{alice}");
my $ev = $c->wait_for('sse', sub { $_[0]{ev} eq 'event' || $_[0]{ev} eq 'end' || $_[0]{ev} eq 'error' });
is($ev && $ev->{event}, 'initial', 'SSE with ?token= of a reader: initial');
$c->sse('sse2', $gw->url . "$API/app/things/lamp/events");
$ev = $c->wait_for('sse2', sub { $_[0]{ev} =~ /^(response|error)$/ });
is($ev && $ev->{status}, 401, 'SSE without a token: 401');
$gw->stop;
is($gw->{exit}, 0, 'stops cleanly');

# ==== --role-claim, --anon-role, DG_GATEWAY_JWT_SECRET ====
$gw = DgTest::Gateway->start($node, '--jwt-secret', $secret, '--role-claim', 'dg_role');
$r = request($gw, 'GET', "$API/app/things/lamp", token => hs256({ dg_role => 'alice', exp => $exp }, $secret));
is($r->{status}, 200, '--role-claim dg_role: GET 200');
is_status(request($gw, 'PUT', "$API/app/things/lamp/reportedStates", token => hs256({ dg_role => 'alice', exp => $exp }, $secret),
	body => { a => 3 }), 403, '--role-claim dg_role: the role is alice', 'Forbidden');
is(request($gw, 'GET', "$API/app/things/lamp", token => hs256({ role => 'alice', dg_role => 'carol', exp => $exp }, $secret))->{status},
	404, '--role-claim dg_role: "role" is not looked at');
$gw->stop;

$gw = DgTest::Gateway->start($node, '--jwt-secret', $secret, '--anon-role', 'alice');
is(request($gw, 'GET', "$API/app/things/lamp")->{status}, 200, '--anon-role alice: GET without a token 200');
is_status(request($gw, 'PUT', "$API/app/things/lamp/reportedStates", body => { a => 3 }), 403,
	'--anon-role alice: PUT without a token', 'Forbidden');
is_status(request($gw, 'GET', "$API/app/things/lamp", token => hs256({ role => 'bob', exp => time - 60 }, $secret)), 401,
	'--anon-role: an expired token is still 401', 'Unauthorized');
is(request($gw, 'PUT', "$API/app/things/lamp/reportedStates", token => $tok{bob}, body => { a => 3 })->{status}, 204,
	'--anon-role: a valid token runs as its role');
($id, $st) = ws_upgrade($gw, "$API/app/notifications");
is($st, 'open', '--anon-role: WebSocket without a token opens');
$gw->stop;

{
	local $ENV{DG_GATEWAY_JWT_SECRET} = $secret;
	$gw = DgTest::Gateway->start($node);
}
is_status(request($gw, 'GET', "$API/app/things/lamp"), 401, 'DG_GATEWAY_JWT_SECRET: no token', 'Unauthorized');
is(request($gw, 'GET', "$API/app/things/lamp", token => $tok{alice})->{status}, 200, 'DG_GATEWAY_JWT_SECRET: a token 200');
$gw->stop;

# ==== RS256 (--jwt-key) ====
for my $k (qw(key other))
{
	system("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out '$dir/$k.pem' 2>/dev/null") == 0
	  or die 'openssl genpkey failed';
	system("openssl pkey -in '$dir/$k.pem' -pubout -out '$dir/$k.pub.pem' 2>/dev/null") == 0 or die 'openssl pkey failed';
}
$gw = DgTest::Gateway->start($node, '--jwt-key', "$dir/key.pub.pem");
is_status(request($gw, 'GET', "$API/app/things/lamp"), 401, 'RS256: no token', 'Unauthorized');
$r = request($gw, 'GET', "$API/app/things/lamp", token => rs256({ role => 'alice', exp => $exp }, "$dir/key.pem"));
is($r->{status}, 200, 'RS256: a reader\'s token, GET 200');
is_status(request($gw, 'PUT', "$API/app/things/lamp/reportedStates", token => rs256({ role => 'alice', exp => $exp }, "$dir/key.pem"),
	body => { a => 4 }), 403, 'RS256: a reader\'s token, PUT', 'Forbidden');
is(request($gw, 'PUT', "$API/app/things/lamp/reportedStates", token => rs256({ role => 'bob', exp => $exp }, "$dir/key.pem"),
	body => { a => 4 })->{status}, 204, 'RS256: a writer\'s token, PUT 204');
is(thing('app', 'lamp')->{reportedState}{a}{value}, 4, 'RS256: applied');
is(request($gw, 'GET', "$API/app/things/lamp", token => rs256({ role => 'carol', exp => $exp }, "$dir/key.pem"))->{status}, 404,
	'RS256: no grant, GET 404');
is_status(request($gw, 'GET', "$API/app/things/lamp", token => rs256({ role => 'alice', exp => $exp }, "$dir/other.pem")), 401,
	'RS256: signed with another key', 'Unauthorized');
is_status(request($gw, 'GET', "$API/app/things/lamp", token => rs256({ role => 'alice', exp => time - 60 }, "$dir/key.pem")), 401,
	'RS256: expired', 'Unauthorized');
my $pub = do { local $/; open my $fh, '<', "$dir/key.pub.pem" or die; <$fh> };
is_status(request($gw, 'GET', "$API/app/things/lamp", token => hs256({ role => 'alice', exp => $exp }, $pub)), 401,
	'RS256: an HS256 token signed with the public key (algorithm confusion)', 'Unauthorized');
is_status(request($gw, 'GET', "$API/app/things/lamp", token => unsigned({ role => 'alice', exp => $exp })), 401,
	'RS256: alg none', 'Unauthorized');
($id, $st) = ws_upgrade($gw, "$API/app/notifications?token=" . rs256({ role => 'alice', exp => $exp }, "$dir/key.pem"));
is($st, 'open', 'RS256: WebSocket with ?token=');
($id, $st) = ws_upgrade($gw, "$API/app/notifications?token=" . rs256({ role => 'carol', exp => $exp }, "$dir/key.pem"));
is($st, 404, 'RS256: WebSocket without a grant: 404');
is_status(request($gw, 'GET', "$API/app/things/lamp", token => rs256({ role => 'none', exp => $exp }, "$dir/key.pem")), 401,
	'a token for the role "none" (the login role)', 'Unauthorized');
$gw->stop;

# ==== no key: loopback only, as the login role ====
{
	# a client on another address of this machine is not loopback
	my ($ip) = grep { /^\d+\.\d+\.\d+\.\d+$/ && !/^127\./ } split ' ', (`hostname -I 2>/dev/null` // '');
	ok($ip, 'this machine has a non-loopback IPv4 address') or diag('hostname -I: ' . (`hostname -I 2>&1` // ''));
	my $open = DgTest::Gateway->start($node, '--listen', '0.0.0.0');
	my ($port) = $open->url =~ /:(\d+)$/;
	my $r = $http->get("http://$ip:$port$API/app/things/lamp");
	is($r->{status}, 403, "no key: a client from $ip gets 403");
	like($r->{content} // '', qr/"error":"Forbidden"/, 'no key: with a Forbidden body');
	$r = $http->get("http://127.0.0.1:$port$API/app/things/lamp");
	is($r->{status}, 200, 'no key: loopback on the same listener is served');
	$open->stop;
	is($open->{exit}, 0, 'stops cleanly');
}
$gw = DgTest::Gateway->start($node);
$r = request($gw, 'GET', "$API/other/things/x");
is($r->{status}, 200, 'no key: loopback is served');
is($r->{json}{metadata}{name}, 'x', 'no key: as the login role, which may read everything');
$r = request($gw, 'PUT', "$API/other/things/x/syntheticStates/js", body => { javaScript => '1' });
is($r->{status}, 204, 'no key: writes too');
my $login = call('SELECT current_user');
is(thing('other', 'x')->{syntheticState}{js}{owner}, $login, "no key: the calls run as the login role ($login)");
($id, $st) = ws_upgrade($gw, "$API/other/notifications");
is($st, 'open', 'no key: WebSocket opens');
$gw->stop;
is($gw->{exit}, 0, 'stops cleanly');

$c->close;
diag("gateway log (the end):\n" . join('', grep { defined } (split /^/m, $gw->log_contents)[-30 .. -1])) unless Test::More->builder->is_passing;
done_testing();
