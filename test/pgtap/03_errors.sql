-- The SQLSTATE of every error class of the contract.
BEGIN;
SELECT plan(20);
SET LOCAL search_path = doppelganger, public;

SELECT lives_ok($$SELECT dt_create_thing('{"metadata": {"application": "tap", "name": "e"}}')$$);
-- thing not found
SELECT throws_ok($$SELECT dt_report_state('tap', 'none', '{}')$$, 'PT404');
SELECT throws_ok($$SELECT dt_patch_thing('tap', 'none', '[]')$$, 'PT404');
SELECT throws_ok($$SELECT dt_merge_thing('tap', 'none', '{}')$$, 'PT404');
SELECT throws_ok($$SELECT dt_set_labels('tap', 'none', '{}')$$, 'PT404');
SELECT throws_ok($$SELECT dt_process_event('tap', 'none', '{"wakeup": {}}')$$, 'PT404');
-- already exists
SELECT throws_ok($$SELECT dt_create_thing('{"metadata": {"application": "tap", "name": "e"}}')$$, '23505');
-- a stale resource version
SELECT throws_ok($$SELECT dt_patch_thing('tap', 'e', '[]', 'ffffffff-ffff-4fff-bfff-ffffffffffff')$$, 'PT412');
SELECT throws_ok($$SELECT dt_delete_thing('tap', 'e', 'not-a-version')$$, 'PT412');
-- malformed input
SELECT throws_ok($$SELECT dt_create_thing('{"metadata": {"application": "tap", "name": ""}}')$$, '22023');
SELECT throws_ok($$SELECT dt_get_thing('a/b', 'e')$$, '22023');
SELECT throws_ok($$SELECT dt_patch_thing('tap', 'e', '[{"op": "remove", "path": "/nope"}]')$$, '22023');
SELECT throws_ok($$SELECT dt_patch_thing('tap', 'e', '[{"op": "add", "path": "bad", "value": 1}]')$$, '22023');
SELECT throws_ok($$SELECT dt_set_desired_value('tap', 'e', 'unknown', '1')$$, '22023');
SELECT throws_ok($$SELECT dt_process_event('tap', 'e', '{"nonsense": {}}')$$, '22023');
SELECT throws_ok($$SELECT dt_list_things('tap', 'a,,b')$$, '22023');
SELECT throws_ok($$SELECT dt_set_reconciliation('tap', 'e', '{"timers": {"t": {"javaScript": "1", "period": "0s"}}}')$$, '22023');
-- schema validation failed
SELECT lives_ok($$SELECT dt_merge_thing('tap', 'e', '{"schema": {"json": {"version": "draft7", "schema":
    {"type": "object", "properties": {"reportedState": {"type": "object", "properties": {"temperature": {"type": "number"}}}}}}}}')$$);
SELECT throws_ok($$SELECT dt_report_state('tap', 'e', '{"temperature": "hot"}')$$, '23514');
SELECT is(dt_report_state('tap', 'e', '{"temperature": 21}') #>> '{reportedState,temperature,value}', '21', 'a valid state is stored');

SELECT * FROM finish();
ROLLBACK;
