# The gateway's notifications (gateway contract "WebSocket" and "Server-Sent
# Events", reference §5.3): initial and change on both endpoints, the
# generation filter, subscribe/unsubscribe, the single-thing endpoint's
# 1003, protocol errors (1002), setDesiredValues, binary frames, deletion,
# diff mode (RFC 6902 patches), the heartbeat, a slow client (lag, bounded
# memory), 100 quick changes; SSE: initial, change, deleted, patch, pings.
#
# The WebSocket and SSE client is test/gateway/wsclient.mjs (Node.js and the
# ws package, installed here by npm ci when missing); a raw client below
# speaks the protocol by hand where ws is too polite (a slow reader,
# continuation frames, oversized frames).
use strict;
use warnings;
use Test::More;
use POSIX ();
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

my $node = DgTest->cluster(name => 'gateway_ws');
my $dbh = $node->dbh;
my $gw = DgTest::Gateway->start($node);
my $base = $gw->url;
(my $wsbase = $base) =~ s{^http}{ws};
my $API = '/api/v1alpha1/things';
my $c = NodeClient->new;

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

sub call
{
	my ($sql, @bind) = @_;
	my $v = $dbh->selectrow_array($sql, undef, @bind);
	return defined $v && $v =~ /^[\[{]/ ? json_decode($v) : $v;
}
sub thing { return call('SELECT doppelganger.dt_get_thing($1, $2)', $_[0] // 'app', $_[1]); }
sub create { return call('SELECT doppelganger.dt_create_thing($1)', json_encode({ metadata => { application => 'app', name => $_[0] }, %{ $_[1] // {} } })); }
sub report { return call('SELECT doppelganger.dt_report_state($1, $2, $3)', 'app', $_[0], json_encode($_[1])); }
sub delete_thing { return call('SELECT doppelganger.dt_delete_thing($1, $2)', 'app', $_[0]); }
# the generation and the thing's name of a message
sub gen_of { my ($j) = @_; return $j->{generation} // (ref $j->{thing} eq 'HASH' ? $j->{thing}{metadata}{generation} : undef); }
sub name_of { my ($j) = @_; return ref $j->{thing} eq 'HASH' ? $j->{thing}{metadata}{name} : $j->{thing}; }
sub enc { return $_[0] =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ger; }

# Run SQL in a child process (its own connection), so that the test keeps
# reading its clients meanwhile; returns the child's pid.
sub in_child
{
	my ($code) = @_;
	my $pid = fork // die "fork: $!";
	if ($pid == 0)
	{
		my $child_dbh = $node->dbh;
		$code->($child_dbh);
		$child_dbh->disconnect;
		POSIX::_exit(0);
	}
	return $pid;
}
sub child_done
{
	my ($pid) = @_;
	my $done = 0;
	$c->pump_until(sub { $done = waitpid($pid, POSIX::WNOHANG()) == $pid }, 60);
	return $done && $? == 0;
}

my $t0 = time;

# ---- started first, looked at last: the heartbeat and the SSE ping ----
create('hb');
create('sse/ping');
$c->ws('hb', "$wsbase$API/app/notifications", autoPong => JSON::PP::false);  # never answers pings
$c->ws('alive', "$wsbase$API/app/notifications");
$c->sse('ssep', "$base$API/app/things/" . enc('sse/ping') . '/events');
my $hb_open = $c->wait_for('hb', sub { $_[0]{ev} =~ /^(open|unexpected|close|error)$/ });
is($hb_open && $hb_open->{ev}, 'open', 'a WebSocket to the multi-thing endpoint opens');
is($c->wait_open('alive')->{ev}, 'open', 'another one');

# ---- multi-thing endpoint: initial, change, generation filter ----
my $lamp = create('lamp', { reportedState => { temp => { value => 20 } } });
$c->ws('m', "$wsbase$API/app/notifications");
$c->wait_open('m');
$c->send('m', { type => 'subscribe', thing => 'lamp' });
my $m = $c->msg('m', sub { $_[0]{type} eq 'initial' });
ok($m, 'subscribe: initial');
is_deeply($m && $m->{json}{thing}, thing(undef, 'lamp'), 'initial: the whole current thing');
ok($m && !$m->{binary}, 'initial: a text frame');
$c->settle(0.5);
is(scalar($c->messages('m')), 0, 'no change without a change (the initial generation is not sent again)');

$lamp = report('lamp', { temp => 21 });
$m = $c->msg('m', sub { $_[0]{type} eq 'change' });
ok($m, 'a report: change');
is_deeply($m && $m->{json}{thing}, $lamp, 'change: the new thing');
is($m && $m->{json}{thing}{metadata}{generation}, 2, 'change: generation 2');

# a repeated subscribe is ignored: no second initial, no doubled change
$c->send('m', { type => 'subscribe', thing => 'lamp' });
$c->settle(0.5);
is(scalar(grep { $_->{json}{type} eq 'initial' } $c->messages('m')), 0, 'a repeated subscribe: no second initial');
$lamp = report('lamp', { temp => 22 });
$m = $c->msg('m', sub { $_[0]{type} eq 'change' });
is($m && $m->{json}{thing}{metadata}{generation}, 3, 'after a repeated subscribe: the change');
$c->settle(0.5);
is(scalar($c->messages('m')), 0, 'after a repeated subscribe: only once');

# a no-op sends nothing
report('lamp', { temp => 22 });
$c->settle(0.5);
is(scalar($c->messages('m')), 0, 'a report that changes nothing: no message');

# a thing that does not exist yet: no initial, then its creation as a change
$c->send('m', { type => 'subscribe', thing => 'later' });
$c->settle(0.5);
is(scalar($c->messages('m')), 0, 'subscribe to a missing thing: no initial');
my $later = create('later');
$m = $c->msg('m', sub { $_[0]{type} eq 'change' && name_of($_[0]) eq 'later' });
is_deeply($m && $m->{json}{thing}, $later, 'its creation comes as a change');

# names with "/"
create('dev/1');
$c->send('m', { type => 'subscribe', thing => 'dev/1' });
$m = $c->msg('m', sub { $_[0]{type} eq 'initial' });
is($m && $m->{json}{thing}{metadata}{name}, 'dev/1', 'subscribe to dev/1: its initial');

# unsubscribe: nothing more for lamp (later is the sentinel)
$c->send('m', { type => 'unsubscribe', thing => 'lamp' });
$c->send('m', { type => 'unsubscribe', thing => 'never-subscribed' });
$c->settle(0.3);
report('lamp', { temp => 23 });
report('later', { x => 1 });
$m = $c->msg('m', sub { $_[0]{type} eq 'change' && name_of($_[0]) eq 'later' });
ok($m, 'unsubscribe: the other subscription goes on (and an unknown unsubscribe is ignored)');
$c->settle(0.5);
is(scalar(grep { (name_of($_->{json}) // '') eq 'lamp' } $c->messages('m')), 0,
	'unsubscribe: no more changes of that thing');

# deletion
delete_thing('later');
$m = $c->msg('m', sub { $_[0]{type} eq 'deleted' });
is_deeply($m && $m->{json}, { type => 'deleted', thing => 'later' }, 'delete: deleted');

# a binary frame with JSON works
$c->ws('bin', "$wsbase$API/app/notifications");
$c->wait_open('bin');
$c->send('bin', { type => 'subscribe', thing => 'lamp' }, binary => 1);
$m = $c->msg('bin', sub { $_[0]{type} eq 'initial' });
is($m && $m->{json}{thing}{metadata}{name}, 'lamp', 'subscribe in a binary frame: initial');

# ---- single-thing endpoint ----
$c->ws('s', "$wsbase$API/app/things/" . enc('dev/1') . '/notifications');
is($c->wait_open('s')->{ev}, 'open', 'single-thing endpoint (dev%2F1): open');
$m = $c->msg('s', sub { $_[0]{type} eq 'initial' });
is_deeply($m && $m->{json}{thing}, thing(undef, 'dev/1'), 'single-thing endpoint: initial without subscribing');
my $dev = report('dev/1', { on => JSON::PP::true });
$m = $c->msg('s', sub { $_[0]{type} eq 'change' });
is_deeply($m && $m->{json}{thing}, $dev, 'single-thing endpoint: change');
$m = $c->msg('m', sub { $_[0]{type} eq 'change' && name_of($_[0]) eq 'dev/1' });
is_deeply($m && $m->{json}{thing}, $dev, 'and the multi-thing subscriber gets it too');
delete_thing('dev/1');
$m = $c->msg('s', sub { $_[0]{type} eq 'deleted' });
is_deeply($m && $m->{json}, { type => 'deleted', thing => 'dev/1' }, 'single-thing endpoint: deleted');
$c->send('s', { type => 'subscribe', thing => 'lamp' });
my $close = $c->wait_close('s');
is($close && $close->{code}, 1003, 'subscribe on the single-thing endpoint: close 1003');
is($close && $close->{reason}, 'Unable to subscribe/unsubscribe on single-thing endpoint', 'with the reason');

$c->ws('s2', "$wsbase$API/app/things/lamp/notifications");
$c->msg('s2', sub { $_[0]{type} eq 'initial' });
$c->send('s2', { type => 'unsubscribe', thing => 'lamp' });
$close = $c->wait_close('s2');
is($close && $close->{code}, 1003, 'unsubscribe on the single-thing endpoint: close 1003');
is($close && $close->{reason}, 'Unable to subscribe/unsubscribe on single-thing endpoint', 'with the reason');

# ---- protocol errors: 1002 ----
for my $case (['malformed JSON', '{"type": "subscribe", ', qr/./],
	['an unknown type', '{"type": "frobnicate", "thing": "lamp"}', qr/unknown message type "frobnicate"/],
	['a message that is no object', '["subscribe", "lamp"]', qr/must be an object/],
	['a subscribe without a thing', '{"type": "subscribe"}', qr/"thing"/],
	['setDesiredValues without values', '{"type": "setDesiredValues", "thing": "lamp"}', qr/"values"/],
	['setDesiredValues with a bad validFor',
		'{"type": "setDesiredValues", "thing": "lamp", "values": {"bright": {"value": 1, "validFor": "soon"}}}', qr/validFor/],
	['setDesiredValues with validUntil and validFor',
		'{"type": "setDesiredValues", "thing": "lamp", "values": {"bright": {"value": 1, "validUntil": "2030-01-01T00:00:00Z", "validFor": "1m"}}}',
		qr/either validUntil or validFor/])
{
	my $id = "bad$case->[0]";
	$c->ws($id, "$wsbase$API/app/notifications");
	$c->wait_open($id);
	$c->send($id, undef, text => $case->[1]);
	$close = $c->wait_close($id);
	is($close && $close->{code}, 1002, "$case->[0]: close 1002");
	like($close && $close->{reason} // '', $case->[2], "$case->[0]: with the reason");
}

# ---- setDesiredValues ----
call(q{SELECT doppelganger.dt_set_desired_state('app', 'lamp', 'bright', '{"value": 1}')});
$c->ws('d', "$wsbase$API/app/notifications");
$c->wait_open('d');
$c->send('d', { type => 'setDesiredValues', thing => 'lamp', values => { bright => 55 } });
ok(poll_until(sub { (thing(undef, 'lamp')->{desiredState}{bright}{value} // 0) == 55 }, 10),
	'setDesiredValues with a plain value: applied');
my $before = time;
$c->send('d', { type => 'setDesiredValues', thing => 'lamp', values => { bright => { value => 56, validFor => '1m' } } });
ok(poll_until(sub { (thing(undef, 'lamp')->{desiredState}{bright}{value} // 0) == 56 }, 10),
	'setDesiredValues with validFor: applied');
my $until = DgTest::time_of(thing(undef, 'lamp')->{desiredState}{bright}{validUntil} // '');
ok(defined $until && $until >= $before + 55 && $until <= time + 65, 'validFor 1m: validUntil a minute from now');
$c->send('d', { type => 'setDesiredValues', thing => 'lamp',
	values => { bright => { value => 57, validUntil => '2030-01-01T00:00:00Z' } } });
ok(poll_until(sub { (thing(undef, 'lamp')->{desiredState}{bright}{value} // 0) == 57 }, 10),
	'setDesiredValues with validUntil: applied');
is(DgTest::time_of(thing(undef, 'lamp')->{desiredState}{bright}{validUntil} // ''),
	DgTest::time_of('2030-01-01T00:00:00Z'), 'validUntil: stored');
# errors are ignored (no reply, the socket stays)
$c->send('d', { type => 'setDesiredValues', thing => 'nope', values => { bright => 1 } });
$c->send('d', { type => 'setDesiredValues', thing => 'lamp', values => { unknown => 1 } });
$c->send('d', { type => 'subscribe', thing => 'lamp' });
$m = $c->msg('d', sub { 1 });
is($m && $m->{json}{type}, 'initial', 'failing setDesiredValues: no reply, and the socket goes on');
is($c->closed('d'), undef, 'failing setDesiredValues: not closed');
$c->send('d', { type => 'setDesiredValues', thing => 'lamp', values => { bright => 58 } });
$m = $c->msg('d', sub { $_[0]{type} eq 'change' });
is($m && $m->{json}{thing}{desiredState}{bright}{value}, 58, 'a subscriber sees its own setDesiredValues as a change');

# ---- 100 quick reports while subscribing: the generation filter, diff mode ----
create('busy', { reportedState => { n => { value => 0 } } });
my $pid = in_child(sub {
	my ($h) = @_;
	for my $i (1 .. 100)
	{
		$h->selectrow_array('SELECT doppelganger.dt_report_state($1, $2, $3)', undef, 'app', 'busy', qq({"n": $i, "list": [$i]}));
		# slow enough that the subscriptions below land in the middle, even on a busy machine
		Time::HiRes::sleep(0.03);
	}
});
# subscribe while the reports go on
poll_until(sub { (thing(undef, 'busy')->{metadata}{generation} // 0) >= 10 }, 10);
$c->ws('q', "$wsbase$API/app/notifications");
$c->ws('qd', "$wsbase$API/app/notifications");
$c->ws('qu', "$wsbase$API/app/notifications?diff=true");
$c->ws('qs', "$wsbase$API/app/things/busy/notifications?diff=true");
$c->wait_open($_) for qw(q qd qu);
$c->send('q', { type => 'subscribe', thing => 'busy' });
$c->send('qd', { type => 'subscribe', thing => 'busy', diff => JSON::PP::true });
$c->send('qu', { type => 'subscribe', thing => 'busy' });
ok(child_done($pid), '100 reports done');
my $final = thing(undef, 'busy');
is($final->{metadata}{generation}, 101, 'the thing is at generation 101');

for my $id (qw(q qd qu qs))
{
	my $diff = $id ne 'q';
	my $last = $c->msg($id, sub { (gen_of($_[0]) // 0) == 101 }, 15);
	ok($last, "$id: a message for generation 101");
	my @all = map { $_->{json} } $c->taken($id);
	my @gens = map { gen_of($_) // -1 } @all;
	is($all[0]{type}, 'initial', "$id: initial first");
	ok((gen_of($all[0]) // 101) < 101, "$id: subscribed while the reports went on (initial at " . (gen_of($all[0]) // '?') . ')');
	is(scalar(grep { $_->{type} eq ($diff ? 'patch' : 'change') } @all), @all - 1,
		"$id: then only " . ($diff ? 'patches' : 'changes'))
	  or diag(json_encode([map { $_->{type} } @all]));
	ok(!grep({ $gens[$_] <= $gens[$_ - 1] } 1 .. $#gens), "$id: generations strictly increasing (no duplicate of the initial)")
	  or diag("generations @gens");
	my $doc;
	for my $msg (@all)
	{
		if ($msg->{type} eq 'initial') { $doc = $msg->{thing}; }
		elsif ($msg->{type} eq 'change') { $doc = $msg->{thing}; }
		elsif ($msg->{type} eq 'patch') { $doc = eval { patch_apply($doc, $msg->{patch}) }; }
	}
	is_deeply($doc, $final, "$id: ends with the final version" . ($diff ? ' (initial + patches)' : ''));
	if ($diff)
	{
		my ($p) = grep { $_->{type} eq 'patch' } @all;
		is($p && $p->{thing}, 'busy', "$id: a patch names the thing");
		is(ref($p && $p->{patch}), 'ARRAY', "$id: a patch carries RFC 6902 operations");
	}
}
# and one more step, in diff mode, checked against the previous version
$c->settle(0.2);
$c->taken($_) for qw(q qd qu qs);
my $after = report('busy', { n => 'done', extra => { a => [1, 2] } });
$m = $c->msg('qd', sub { $_[0]{type} eq 'patch' });
is($m && $m->{json}{generation}, 102, 'diff: the patch has the new generation');
is_deeply($m && patch_apply(json_decode(json_encode($final)), $m->{json}{patch}), $after,
	'diff: the patch turns the previous version into the new one');
delete_thing('busy');
$m = $c->msg('qd', sub { $_[0]{type} eq 'deleted' });
is_deeply($m && $m->{json}, { type => 'deleted', thing => 'busy' }, 'diff: deleted');
$m = $c->msg('q', sub { $_[0]{type} eq 'deleted' });
ok($m, 'change mode: deleted');

# ---- a slow client: lag, bounded memory, the others unhindered ----
my $blob = 'x' x 40000;
create('big', { reportedState => { blob => { value => $blob }, n => { value => 0 } } });
my $slow = RawWs->open($base, "$API/app/notifications", rcvbuf => 4096);
is($slow->{status}, 101, 'raw client: upgraded');
$slow->send_text(json_encode({ type => 'subscribe', thing => 'big' }));
$m = $slow->read_message(10);
is($m && $m->{data} && (eval { json_decode($m->{data}) } // {})->{type}, 'initial', 'raw client: initial');
$c->ws('bigfast', "$wsbase$API/app/notifications", brief => JSON::PP::true);
$c->wait_open('bigfast');
$c->send('bigfast', { type => 'subscribe', thing => 'big' });
$c->msg('bigfast', sub { $_[0]{type} eq 'initial' });
my $rss_before = proc_status($gw->{pid}, 'VmRSS');
# the slow client stops reading (but pings, so that the heartbeat keeps it)
$pid = in_child(sub {
	my ($h) = @_;
	$h->selectrow_array('SELECT doppelganger.dt_report_state($1, $2, $3)', undef, 'app', 'big', qq({"n": $_}))
	  for 1 .. 800;
});
my $last_ping = time;
my $done = 0;
$c->pump_until(sub {
	if (time - $last_ping > 2) { $slow->send_frame(0x9, 'hi'); $last_ping = time; }
	return $done = waitpid($pid, POSIX::WNOHANG()) == $pid;
}, 60);
ok($done && $? == 0, '800 changes of a 40 kB thing done');
$m = $c->msg('bigfast', sub { ($_[0]{generation} // 0) == 801 }, 15);
ok($m, 'a reading client gets the last change while another one does not read');
my $rss_after = proc_status($gw->{pid}, 'VmRSS');
my $hwm = proc_status($gw->{pid}, 'VmHWM');
my $growth = (($hwm > $rss_after ? $hwm : $rss_after) - $rss_before) / 1024;
ok(defined $rss_before && $growth < 16, sprintf('the gateway\'s memory stays bounded (grew %.1f MB for 32 MB of messages)', $growth))
  or diag("VmRSS before $rss_before kB, after $rss_after kB, VmHWM $hwm kB");
# it reads again (with a larger buffer): lag, then it follows again
$slow->set_rcvbuf(1 << 20);
my ($lag, $count, $closed) = (undef, 0, undef);
my $deadline = time + 15;
while (time < $deadline && !$lag)
{
	my $msg = $slow->read_message($deadline - time) or last;
	if ($msg->{close} || $msg->{eof}) { $closed = $msg; last; }
	$count++;
	# JSON::PP is slow: decode only the small messages (lag)
	next if length $msg->{data} > 1000;
	my $j = eval { json_decode($msg->{data}) } // {};
	$lag = $j if ($j->{type} // '') eq 'lag';
}
ok(!$closed, 'the slow client is not disconnected') or diag(json_encode($closed));
ok($lag, "the slow client gets lag once it reads again (after $count messages)");
ok($lag && $lag->{lag} > 0 && $lag->{lag} <= 800, 'lag: the number of dropped messages') or diag(json_encode($lag));
ok($count <= 200, "it did not get every change queued up ($count messages)");
report('big', { n => 'last' });
my $got;
$deadline = time + 15;
while (time < $deadline)
{
	my $msg = $slow->read_message($deadline - time) or last;
	last if $msg->{close} || $msg->{eof};
	next unless $msg->{data} =~ /"generation"\s*:\s*802\b/;
	my $j = eval { json_decode($msg->{data}) } // {};
	if (($j->{type} // '') eq 'change' && $j->{thing}{metadata}{generation} == 802) { $got = $j; last; }
}
ok($got && $got->{thing}{reportedState}{n}{value} eq 'last', 'after the lag, the slow client follows again');
$slow->close;

# ---- raw frames: continuation without a start, a frame over 64 KiB ----
my $raw = RawWs->open($base, "$API/app/notifications");
$raw->send_frame(0x0, '{"type":"subscribe"}');
$m = $raw->read_message(10);
is($m && $m->{close}, 1002, 'a continuation frame without a start: close 1002') or diag(json_encode($m));
$raw->close;
$raw = RawWs->open($base, "$API/app/notifications");
$raw->send_frame(0x1, json_encode({ type => 'subscribe', thing => 'x' x 70000 }));
$m = $raw->read_message(10);
is($m && $m->{close}, 1009, 'a frame over 64 KiB: close 1009') or diag(json_encode($m));
$raw->close;

# ---- SSE ----
create('sse/1', { reportedState => { a => { value => 1 } } });
$c->sse('e', "$base$API/app/things/" . enc('sse/1') . '/events');
my $resp = $c->wait_for('e', sub { $_[0]{ev} =~ /^(response|error|end)$/ });
is($resp && $resp->{status}, 200, 'SSE: 200');
like($resp && $resp->{contentType} // '', qr{^text/event-stream}, 'SSE: text/event-stream');
my $ev = $c->wait_for('e', sub { $_[0]{ev} eq 'event' });
my $t = thing(undef, 'sse/1');
is($ev && $ev->{event}, 'initial', 'SSE: event initial');
is_deeply($ev && $ev->{json}, { type => 'initial', thing => $t }, 'SSE: initial data');
is($ev && $ev->{lastId}, $t->{metadata}{generation}, 'SSE: id is the generation');
$t = report('sse/1', { a => 2 });
$ev = $c->wait_for('e', sub { $_[0]{ev} eq 'event' });
is($ev && $ev->{event}, 'change', 'SSE: event change');
is_deeply($ev && $ev->{json}, { type => 'change', thing => $t }, 'SSE: change data');
is($ev && $ev->{lastId}, 2, 'SSE: id 2');
$c->sse('ed', "$base$API/app/things/" . enc('sse/1') . '/events?diff=true');
$ev = $c->wait_for('ed', sub { $_[0]{ev} eq 'event' });
is($ev && $ev->{event}, 'initial', 'SSE diff: initial');
my $doc = $ev && $ev->{json}{thing};
my $t2 = report('sse/1', { a => 3, b => [1] });
$ev = $c->wait_for('ed', sub { $_[0]{ev} eq 'event' });
is($ev && $ev->{event}, 'patch', 'SSE diff: event patch');
is($ev && $ev->{json}{type}, 'patch', 'SSE diff: data of type patch');
is_deeply($ev && patch_apply($doc, $ev->{json}{patch}), $t2, 'SSE diff: the patch applies');
is($ev && $ev->{lastId}, 3, 'SSE diff: id 3');
delete_thing('sse/1');
for my $id (qw(e ed))
{
	$ev = $c->wait_for($id, sub { $_[0]{ev} eq 'event' && $_[0]{event} ne 'change' });
	is($ev && $ev->{event}, 'deleted', "SSE $id: event deleted");
	is_deeply($ev && $ev->{json}, { type => 'deleted', thing => 'sse/1' }, "SSE $id: deleted data");
}

# ---- the heartbeat and the SSE ping, from the connections opened first ----
$c->pump_until(sub { $c->closed('hb') }, $t0 + 25 - time);
my @hb = @{ $c->{seen}{hb} // [] };
my ($first_ping) = grep { $_->{ev} eq 'ping' } @hb;
ok($first_ping && $first_ping->{t} - $hb_open->{t} <= 6500, 'the server pings within 5 s')
  or diag(json_encode(\@hb));
my $hb_close = $c->closed('hb');
ok($hb_close, 'a client that does not answer pings is disconnected');
my $after_ms = $hb_close ? $hb_close->{t} - $hb_open->{t} : 0;
ok($after_ms >= 9000 && $after_ms <= 17000, "after about 10 s ($after_ms ms)");

my $alive_open = (grep { $_->{ev} eq 'open' } @{ $c->{seen}{alive} // [] })[0] // { t => $t0 * 1000 };
my @pings;
$c->pump_until(sub { @pings = grep { $_->{ev} eq 'ping' } @{ $c->{seen}{alive} // [] }; @pings >= 2 },
	$alive_open->{t} / 1000 + 12 - time);
ok(@pings >= 2, 'a client that answers gets a ping every 5 s (' . scalar(@pings) . ' within 12 s)');
ok(@pings >= 2 && $pings[1]{t} - $pings[0]{t} <= 6500, 'pings 5 s apart');
is($c->closed('alive'), undef, 'and stays connected') or diag(json_encode($c->closed('alive')));
$c->cmd({ op => 'ping', id => 'alive' });
ok($c->wait_for('alive', sub { $_[0]{ev} eq 'pong' }), 'a client ping gets a pong');
$c->send('alive', { type => 'subscribe', thing => 'hb' });
ok($c->msg('alive', sub { $_[0]{type} eq 'initial' }), 'it still works');

$c->pump_until(sub { grep { $_->{ev} eq 'comment' } @{ $c->{seen}{ssep} // [] } }, $t0 + 19 - time);
my ($ping) = grep { $_->{ev} eq 'comment' } @{ $c->{seen}{ssep} // [] };
is($ping && $ping->{text}, ' ping', 'SSE: a ": ping" comment within 15 s');

# ---- --queue: a smaller queue; every change is delivered or counted in lag ----
{
	my $gq = DgTest::Gateway->start($node, '--queue', '3');
	my $q = RawWs->open($gq->url, "$API/app/notifications", rcvbuf => 4096);
	is($q->{status}, 101, '--queue 3: open');
	$q->send_text(json_encode({ type => 'subscribe', thing => 'big' }));
	my $first = $q->read_message(10);
	like($first && ($first->{data} // ''), qr/"type":"initial"/, '--queue 3: initial');
	my $qpid = in_child(sub {
		my ($h) = @_;
		$h->selectrow_array('SELECT doppelganger.dt_report_state($1, $2, $3)', undef, 'app', 'big', qq({"n": "q$_"}))
		  for 1 .. 300;
	});
	my ($last_ping, $qdone) = (time, 0);
	while (!$qdone)
	{
		if (time - $last_ping > 2) { $q->send_frame(0x9, 'hi'); $last_ping = time; }
		$qdone = waitpid($qpid, POSIX::WNOHANG()) == $qpid;
		sleep 0.1;
	}
	ok($? == 0, '--queue 3: 300 changes of a 40 kB thing done while the client did not read');
	$q->set_rcvbuf(1 << 20);
	my ($changes, $lagged, $lags) = (0, 0, 0);
	while (my $msg = $q->read_message(3))
	{
		last if $msg->{close} || $msg->{eof};
		if ($msg->{data} =~ /^\{"type":"change"/) { $changes++; }
		elsif ($msg->{data} =~ /^\{"type":"lag","lag":(\d+)\}$/) { $lagged += $1; $lags++; }
	}
	ok($lagged > 0, "--queue 3: changes were dropped ($lagged in $lags lag messages)");
	is($changes + $lagged, 300, "--queue 3: every change was delivered ($changes) or counted in lag ($lagged)");
	$q->close;
	$gq->stop;
	is($gq->{exit}, 0, '--queue 3: stops cleanly');
}

$c->close;
$gw->stop;
is($gw->{exit}, 0, 'SIGTERM with clients connected: exit 0');
note(sprintf('%.1f s', time - $t0));

diag("gateway log (the end):\n" . join('', grep { defined } (split /^/m, $gw->log_contents)[-30 .. -1])) unless Test::More->builder->is_passing;
done_testing();

sub proc_status
{
	my ($pid, $field) = @_;
	open my $fh, '<', "/proc/$pid/status" or return undef;
	while (<$fh>) { return $1 if /^$field:\s+(\d+)\s+kB/; }
	return undef;
}

# ---- a raw WebSocket client: frames by hand ----

package RawWs;

use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF inet_aton pack_sockaddr_in);
use IO::Select;
use Digest::SHA qw(sha1_base64);
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time);

sub open
{
	my ($class, $base, $path, %opt) = @_;
	my ($host, $port) = $base =~ m{^http://([^:/]+):(\d+)} or die "bad url $base";
	socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
	setsockopt($s, SOL_SOCKET, SO_RCVBUF, pack('i', $opt{rcvbuf})) or die "SO_RCVBUF: $!" if $opt{rcvbuf};
	connect($s, pack_sockaddr_in($port, inet_aton($host))) or die "connect: $!";
	binmode $s;
	my $key = encode_base64(join('', map { chr int rand 256 } 1 .. 16), '');
	my $self = bless { s => $s, buf => '' }, $class;
	$self->_write("GET $path HTTP/1.1\r\nHost: $host:$port\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		  . "Sec-WebSocket-Key: $key\r\nSec-WebSocket-Version: 13\r\n\r\n");
	my $deadline = time + 10;
	while ($self->{buf} !~ /\r\n\r\n/ && time < $deadline) { last unless $self->_fill($deadline - time); }
	$self->{buf} =~ s/^(.*?)\r\n\r\n//s or return $self;
	my $head = $1;
	($self->{status}) = $head =~ m{^HTTP/1\.1 (\d+)};
	my ($accept) = $head =~ m{^Sec-WebSocket-Accept:\s*(\S+)}mi;
	$self->{status} = 'bad accept' if $self->{status} == 101 && ($accept // '') ne sha1_base64($key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11') . '=';
	return $self;
}

sub _write
{
	my ($self, $data) = @_;
	while (length $data)
	{
		my $n = syswrite($self->{s}, $data);
		return 0 unless $n;
		substr($data, 0, $n) = '';
	}
	return 1;
}

sub _fill
{
	my ($self, $timeout) = @_;
	return 0 if $self->{eof} || $timeout <= 0;
	return 0 unless IO::Select->new($self->{s})->can_read($timeout);
	my $n = sysread($self->{s}, my $chunk, 1 << 16);
	if (!$n) { $self->{eof} = 1; return 0; }
	$self->{buf} .= $chunk;
	return 1;
}

sub send_frame
{
	my ($self, $opcode, $payload, %opt) = @_;
	my $len = length $payload;
	my $h = chr((($opt{fin} // 1) ? 0x80 : 0) | $opcode);
	$h .= $len < 126 ? chr(0x80 | $len) : $len < 65536 ? chr(0x80 | 126) . pack('n', $len) : chr(0x80 | 127) . pack('Q>', $len);
	my $mask = pack('N', int rand 4294967295);
	return $self->_write($h . $mask . ($payload ^ substr($mask x (int($len / 4) + 1), 0, $len)));
}

sub set_rcvbuf { my ($self, $bytes) = @_; setsockopt($self->{s}, SOL_SOCKET, SO_RCVBUF, pack('i', $bytes)); }

sub send_text { my ($self, $text) = @_; return $self->send_frame(0x1, $text); }

# One frame: {fin, opcode, payload}, {eof => 1} or undef on timeout.
sub read_frame
{
	my ($self, $timeout) = @_;
	my $deadline = time + $timeout;
	while (1)
	{
		my $b = $self->{buf};
		if (length $b >= 2)
		{
			my ($b0, $b1) = unpack('CC', $b);
			my ($len, $off) = ($b1 & 0x7f, 2);
			if ($len == 126) { $len = length $b >= 4 ? unpack('n', substr($b, 2, 2)) : undef; $off = 4; }
			elsif ($len == 127) { $len = length $b >= 10 ? unpack('Q>', substr($b, 2, 8)) : undef; $off = 10; }
			my $mask = '';
			if ($b1 & 0x80) { $mask = substr($b, $off, 4); $off += 4; }
			if (defined $len && length $b >= $off + $len)
			{
				my $payload = substr($b, $off, $len);
				$payload ^= substr($mask x (int($len / 4) + 1), 0, $len) if length $mask == 4;
				substr($self->{buf}, 0, $off + $len) = '';
				return { fin => $b0 & 0x80 ? 1 : 0, opcode => $b0 & 0x0f, payload => $payload };
			}
		}
		return { eof => 1 } if $self->{eof};
		next if $self->_fill($deadline - time);
		return $self->{eof} ? { eof => 1 } : undef;
	}
}

# One message: {data, binary}, {close => code, reason}, {eof => 1} or undef
# on timeout; pings are answered, pongs skipped.
sub read_message
{
	my ($self, $timeout) = @_;
	my $deadline = time + $timeout;
	my ($data, $binary);
	while (1)
	{
		my $f = $self->read_frame($deadline - time) or return undef;
		return $f if $f->{eof};
		my $op = $f->{opcode};
		if ($op == 0x8)
		{
			my ($code, $reason) = length $f->{payload} >= 2 ? (unpack('n', $f->{payload}), substr($f->{payload}, 2)) : (1005, '');
			return { close => $code, reason => $reason };
		}
		if ($op == 0x9) { $self->send_frame(0xA, $f->{payload}); next; }
		next if $op == 0xA;
		if ($op == 0x1 || $op == 0x2) { ($data, $binary) = ($f->{payload}, $op == 0x2); }
		else { $data .= $f->{payload}; }
		return { data => $data, binary => $binary } if $f->{fin};
	}
}

sub close { my ($self) = @_; CORE::close($self->{s}) if $self->{s}; $self->{s} = undef; }
