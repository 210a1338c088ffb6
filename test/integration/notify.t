# NOTIFY thing_changes: one notification per committed change, with the
# contract's payload and an RFC 6902 patch from the previous version when
# it fits; nothing for a no-op, a failure or a rollback.
use strict;
use warnings;
use Test::More;
use DgTest;

my $node = DgTest->cluster(name => 'notify');
my $listener = $node->dbh;
$listener->do('LISTEN thing_changes');
my $dbh = $node->dbh;

sub notifications
{
	# notifications arrive at commit; give the listener a moment
	my @got;
	my $deadline = Time::HiRes::time() + 1;
	while (Time::HiRes::time() < $deadline)
	{
		while (my $n = $listener->pg_notifies)
		{
			push @got, json_decode($n->[2]);
			$deadline = Time::HiRes::time() + 0.2;
		}
		Time::HiRes::sleep(0.02);
	}
	return @got;
}

sub call
{
	my ($sql, @bind) = @_;
	my $v = $dbh->selectrow_array($sql, undef, @bind);
	return defined $v && $v =~ /^[\[{]/ ? json_decode($v) : $v;
}

my $thing = call(q{SELECT doppelganger.dt_create_thing('{"metadata": {"application": "app", "name": "dev/1"}}')});
my @n = notifications();
is(scalar @n, 1, 'create: one notification');
is($n[0]{op}, 'created', 'op created');
is($n[0]{application}, 'app', 'application');
is($n[0]{thing}, 'dev/1', 'thing name');
is($n[0]{generation}, 1, 'generation 1');
is($n[0]{resourceVersion}, $thing->{metadata}{resourceVersion}, 'resourceVersion of the stored thing');
is_deeply(patch_apply(undef, $n[0]{patch}), $thing, 'the create patch is the whole thing');

my $before = $thing;
$thing = call(q{SELECT doppelganger.dt_report_state('app', 'dev/1', '{"temp": 21, "hum": [1, 2]}')});
@n = notifications();
is(scalar @n, 1, 'report: one notification');
is($n[0]{op}, 'updated', 'op updated');
is($n[0]{generation}, 2, 'generation 2');
is($n[0]{resourceVersion}, $thing->{metadata}{resourceVersion}, 'the new resourceVersion');
is_deeply(patch_apply($before, $n[0]{patch}), $thing, 'the patch turns the previous version into the new one');

call(q{SELECT doppelganger.dt_report_state('app', 'dev/1', '{"temp": 21}')});
is(scalar(notifications()), 0, 'no notification for a repeated report');
call(q{SELECT doppelganger.dt_process_event('app', 'dev/1', '{"wakeup": {}}')});
is(scalar(notifications()), 0, 'no notification for a wakeup that changes nothing');

eval { call(q{SELECT doppelganger.dt_patch_thing('app', 'dev/1', '[{"op": "remove", "path": "/nope"}]')}) };
ok($@, 'a failing patch fails');
is(scalar(notifications()), 0, 'no notification for a failed operation');

$dbh->begin_work;
call(q{SELECT doppelganger.dt_report_state('app', 'dev/1', '{"temp": 99}')});
$dbh->rollback;
is(scalar(notifications()), 0, 'no notification for a rolled back change');

# several changes in one transaction: one notification each, at commit
$dbh->begin_work;
call(q{SELECT doppelganger.dt_report_state('app', 'dev/1', '{"temp": 22}')});
call(q{SELECT doppelganger.dt_report_state('app', 'dev/1', '{"temp": 23}')});
is(scalar(notifications()), 0, 'nothing before commit');
$dbh->commit;
@n = notifications();
is_deeply([map { $_->{generation} } @n], [3, 4], 'two changes, two notifications in order');

# a change too large for a patch in 8000 bytes: the payload goes without it
$thing = call(q{SELECT doppelganger.dt_report_state('app', 'dev/1', jsonb_build_object('blob', repeat('x', 9000)))});
@n = notifications();
is(scalar @n, 1, 'large change: one notification');
ok(!exists $n[0]{patch}, 'without a patch');
is($n[0]{resourceVersion}, $thing->{metadata}{resourceVersion}, 'but with the resourceVersion to fetch');

# delete
ok(call(q{SELECT doppelganger.dt_delete_thing('app', 'dev/1')}), 'deleted');
@n = notifications();
is(scalar @n, 1, 'delete: one notification');
is($n[0]{op}, 'deleted', 'op deleted');
is($n[0]{thing}, 'dev/1', 'names the thing');
ok(!call(q{SELECT doppelganger.dt_delete_thing('app', 'dev/1')}), 'deleting again is false');
is(scalar(notifications()), 0, 'and notifies nothing');

done_testing();
