-- dt_process_event: every message, as the Kafka processor applies them
-- (reference §2.2, §2.3.6, §2.3.7, §2.4).
SET search_path = doppelganger, public;

SELECT dt_create_thing('{"metadata": {"application": "default", "name": "ev"}}') IS NOT NULL;
SELECT dt_process_event('default', 'ev', '{"reportState": {"state": {"a": 1, "b": 2}}}') -> 'reportedState' ?& '{a,b}' AS merged;
SELECT dt_process_event('default', 'ev', '{"reportState": {"state": {"a": 1}, "partial": true}}') -> 'reportedState' ?& '{a,b}' AS partial_merge;
SELECT dt_process_event('default', 'ev', '{"reportState": {"state": {"c": 3}, "partial": false}}') -> 'reportedState' ? 'a' AS replaced_keeps_a;
SELECT dt_process_event('default', 'ev', '{"merge": {"reportedState": {"d": {"value": 4}}}}') #> '{reportedState,d,value}';
SELECT dt_process_event('default', 'ev', '{"patch": [{"op": "remove", "path": "/reportedState/d"}]}') #> '{reportedState}' ? 'd' AS still_d;
-- wakeup changes nothing and writes nothing
CREATE TEMP TABLE g AS SELECT generation FROM things WHERE name = 'ev';
SELECT (dt_process_event('default', 'ev', '{"wakeup": {"reasons": ["reconcile"]}}') #>> '{metadata,generation}')::bigint = (SELECT generation FROM g) AS wakeup_is_noop;

-- registerChild creates a missing thing with the child and the template hooks
SELECT mask(dt_process_event('default', 'parent', '{"registerChild": {"$ref": "child1",
    "template": {"reconciliation": {"deleting": {"h": {"javaScript": "1"}}}}}}') #- '{reconciliation,deleting,h,owner}');
SELECT dt_process_event('default', 'parent', '{"registerChild": {"$ref": "child2"}}') #> '{reportedState,$children,value}';
-- unregisterChild removes; the last one deletes the thing
SELECT dt_set_reconciliation('default', 'parent', '{}') IS NOT NULL;
SELECT dt_process_event('default', 'parent', '{"unregisterChild": {"$ref": "child1"}}') #> '{reportedState,$children,value}';
SELECT dt_process_event('default', 'parent', '{"unregisterChild": {"$ref": "child2"}}') IS NULL AS deleted;
SELECT dt_get_thing('default', 'parent') IS NULL AS gone;
-- unregistering from a thing that does not exist does nothing
SELECT dt_process_event('default', 'parent', '{"unregisterChild": {"$ref": "child2"}}') IS NULL AS nothing;
-- a thing without $children is deleted by unregisterChild (§2.3.7 note)
SELECT dt_process_event('default', 'ev', '{"unregisterChild": {"$ref": "x"}}') IS NULL AS ev_deleted;

-- events for missing things and bad messages
SELECT expect_error($$SELECT dt_process_event('default', 'nosuch', '{"reportState": {"state": {}}}')$$);
SELECT expect_error($$SELECT dt_process_event('default', 'nosuch', '{"wakeup": {}}')$$);
SELECT dt_create_thing('{"metadata": {"application": "default", "name": "ev2"}}') IS NOT NULL;
SELECT expect_error($$SELECT dt_process_event('default', 'ev2', '{"jump": {}}')$$);
SELECT expect_error($$SELECT dt_process_event('default', 'ev2', '{}')$$);
SELECT expect_error($$SELECT dt_process_event('default', 'ev2', '{"merge": {}, "patch": []}')$$);
SELECT expect_error($$SELECT dt_process_event('default', 'ev2', '[1]')$$);
SELECT expect_error($$SELECT dt_process_event('default', 'ev2', '"reportState"')$$);
SELECT expect_error($$SELECT dt_process_event('default', 'ev2', NULL)$$);
SELECT expect_error($$SELECT dt_process_event('default', 'ev2', '{"reportState": {"state": [1]}}')$$);
SELECT expect_error($$SELECT dt_process_event('default', 'ev2', '{"reportState": {"state": {}, "partial": "yes"}}')$$);
SELECT expect_error($$SELECT dt_process_event('default', 'ev2', '{"merge": [1]}')$$);
SELECT expect_error($$SELECT dt_process_event('default', 'ev2', '{"patch": {}}')$$);
SELECT expect_error($$SELECT dt_process_event('default', 'ev2', '{"setDesiredValue": {"values": []}}')$$);
SELECT expect_error($$SELECT dt_process_event('default', 'ev2', '{"registerChild": {}}')$$);
SELECT expect_error($$SELECT dt_process_event('default', 'ev2', '{"registerChild": {"$ref": ""}}')$$);
SELECT expect_error($$SELECT dt_process_event('default', 'ev2', '{"registerChild": {"$ref": "c", "template": 5}}')$$);
SELECT expect_error($$SELECT dt_process_event('default', 'ev2', '{"unregisterChild": {"$ref": 5}}')$$);
SELECT expect_error($$SELECT dt_process_event('bad/app', 'ev2', '{"wakeup": {}}')$$);
