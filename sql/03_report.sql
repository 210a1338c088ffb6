-- Reported state: merge and replace, the lastUpdate rule, no-op detection
-- (reference §2.3.1, §2.5, §10.2 items 13-15).
SET search_path = doppelganger, public;

SELECT dt_create_thing('{"metadata": {"application": "default", "name": "sensor"}}') IS NOT NULL;

-- 14: a full report sets the state and bumps the generation
SELECT mask(dt_report_state('default', 'sensor', '{"foo": "bar"}', false));
-- 15: the identical report again changes nothing, not even the generation
CREATE TEMP TABLE v1 AS SELECT dt_get_thing('default', 'sensor') AS t;
SELECT dt_report_state('default', 'sensor', '{"foo": "bar"}', false) = (SELECT t FROM v1) AS unchanged;

-- merge keeps other keys; null is a value, not a removal
SELECT mask(dt_report_state('default', 'sensor', '{"temp": 21, "hum": null}'));
SELECT jsonb_object_keys(reported_state) AS key FROM things WHERE name = 'sensor' ORDER BY 1;

-- lastUpdate moves only when the value does
CREATE TEMP TABLE ts AS SELECT reported_state AS r FROM things WHERE name = 'sensor';
SELECT pg_sleep(0.01);
SELECT (dt_report_state('default', 'sensor', '{"temp": 21, "foo": "baz"}')) IS NOT NULL;
SELECT (s.reported_state #> '{temp,lastUpdate}') = (ts.r #> '{temp,lastUpdate}') AS temp_kept,
       (s.reported_state #> '{foo,lastUpdate}') <> (ts.r #> '{foo,lastUpdate}') AS foo_moved,
       (s.reported_state #>> '{foo,value}') AS foo
FROM things s, ts WHERE s.name = 'sensor';
-- numbers compare by value: 21.0 is no change
SELECT (dt_report_state('default', 'sensor', '{"temp": 21.0}') #> '{metadata,generation}') AS generation_stays;

-- replace drops absent keys and keeps timestamps of unchanged ones
CREATE TEMP TABLE ts2 AS SELECT reported_state AS r FROM things WHERE name = 'sensor';
SELECT mask(dt_report_state('default', 'sensor', '{"temp": 21, "new": [1, 2]}', false));
SELECT (s.reported_state #> '{temp,lastUpdate}') = (ts2.r #> '{temp,lastUpdate}') AS temp_kept
FROM things s, ts2 WHERE s.name = 'sensor';

-- a timestamp written with the same value is restored (§2.5)
SELECT (dt_merge_thing('default', 'sensor', '{"reportedState": {"temp": {"value": 21, "lastUpdate": "2000-01-01T00:00:00Z"}}}')
        #>> '{reportedState,temp,lastUpdate}') <> '2000-01-01T00:00:00Z' AS timestamp_restored;
-- a changed value gets "now", whatever timestamp was given
SELECT ((dt_merge_thing('default', 'sensor', '{"reportedState": {"temp": {"value": 22, "lastUpdate": "2000-01-01T00:00:00Z"}}}')
        #>> '{reportedState,temp,lastUpdate}')::timestamptz) > '2020-01-01' AS changed_gets_now;

-- an empty report and an empty replace
SELECT (dt_report_state('default', 'sensor', '{}') #> '{metadata,generation}') = (dt_get_thing('default', 'sensor') #> '{metadata,generation}') AS empty_merge_is_noop;
SELECT mask(dt_report_state('default', 'sensor', '{}', false));

-- bad input
SELECT expect_error($$SELECT dt_report_state('default', 'sensor', '[1]')$$);
SELECT expect_error($$SELECT dt_report_state('default', 'sensor', '5')$$);
SELECT expect_error($$SELECT dt_report_state('default', 'sensor', NULL)$$);
SELECT expect_error($$SELECT dt_report_state('default', 'nosuchthing', '{"a": 1}')$$);
SELECT expect_error($$SELECT dt_report_state('default', NULL, '{"a": 1}')$$);
-- a NULL partial means the default, merge
SELECT dt_report_state('default', 'sensor', '{"x": 1}', NULL) #> '{reportedState,x,value}';
