-- Privileges: nothing is open to PUBLIC; a role allowed to call the API
-- needs no privilege on the table, because the store writes as its owner.
BEGIN;
SELECT plan(18);

CREATE ROLE dg_tap_nobody;
CREATE ROLE dg_tap_user;
GRANT USAGE ON SCHEMA doppelganger TO dg_tap_nobody, dg_tap_user;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA doppelganger TO dg_tap_user;

SELECT table_privs_are('doppelganger', 'things', 'public', ARRAY[]::text[], 'PUBLIC has no privilege on things');
SELECT function_privs_are('doppelganger', 'dt_get_thing', ARRAY['text', 'text'], 'dg_tap_nobody', ARRAY[]::text[],
                          'PUBLIC cannot execute dt_get_thing');
SELECT table_privs_are('doppelganger', 'things', 'dg_tap_user', ARRAY[]::text[], 'the API user has no table privilege');

SET LOCAL ROLE dg_tap_nobody;
SELECT throws_ok($$SELECT doppelganger.dt_get_thing('tap', 'p')$$, '42501', NULL, 'an ungranted role cannot read');
SELECT throws_ok($$SELECT doppelganger.dt_create_thing('{"metadata": {"application": "tap", "name": "p"}}')$$, '42501', NULL,
                 'an ungranted role cannot create');
SELECT throws_ok($$SELECT * FROM doppelganger.things$$, '42501', NULL, 'an ungranted role cannot read the table');
RESET ROLE;

-- EXECUTE alone is not enough: the application must be granted too
SET LOCAL ROLE dg_tap_user;
SELECT throws_ok($$SELECT doppelganger.dt_create_thing('{"metadata": {"application": "tap", "name": "p"}}')$$, '42501', NULL,
                 'a role without a grant on the application cannot create');
SELECT throws_ok($$SELECT doppelganger.dt_grant('tap', 'dg_tap_user', 'write')$$, '42501', NULL,
                 'nor grant itself one');
RESET ROLE;
SELECT ok(doppelganger.dt_grant('tap', 'dg_tap_user', 'write'), 'the owner grants write on tap');

SET LOCAL ROLE dg_tap_user;
SELECT lives_ok($$SELECT doppelganger.dt_create_thing('{"metadata": {"application": "tap", "name": "p"}}')$$,
                'a granted role creates without table privileges');
SELECT is(doppelganger.dt_report_state('tap', 'p', '{"v": 1}') #>> '{reportedState,v,value}', '1', 'and writes');
SELECT is(doppelganger.dt_get_thing('tap', 'p') #>> '{metadata,name}', 'p', 'and reads');
SELECT throws_ok($$UPDATE doppelganger.things SET generation = 1$$, '42501', NULL, 'but cannot bypass the API');
SELECT is(current_user::text, 'dg_tap_user', 'the caller''s identity is restored after the call');
RESET ROLE;
-- hooks: the configuring role becomes the owner; what they send reaches the outbox
SET LOCAL ROLE dg_tap_user;
SELECT is(doppelganger.dt_set_reconciliation('tap', 'p',
          '{"changed": {"tell": {"javaScript": "sendMerge(\"q\", {reportedState: {seen: {value: 1}}})"}}}')
          #>> '{reconciliation,changed,tell,owner}', 'dg_tap_user', 'a hook is owned by the role that configured it');
SELECT lives_ok($$SELECT doppelganger.dt_report_state('tap', 'p', '{"v": 2}')$$,
                'a hook sends without privileges on the outbox');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM doppelganger.outbox WHERE source = 'p' AND target = 'q' AND kind = 'event'), 2,
          'its events are in the outbox (one per run: the configuration and the report)');
-- an error inside the API also restores the identity
SET LOCAL ROLE dg_tap_user;
SELECT throws_ok($$SELECT doppelganger.dt_report_state('tap', 'nosuch', '{}')$$, 'PT404');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
