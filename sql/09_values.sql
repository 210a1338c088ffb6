-- Values keep their meaning through the pipeline: big and precise numbers,
-- Unicode, escapes, deep nesting.
SET search_path = doppelganger, public;

SELECT dt_create_thing('{"metadata": {"application": "default", "name": "values"}}') IS NOT NULL;
CREATE TEMP TABLE input AS SELECT '{
  "big": 123456789012345678901234567890,
  "int64max": 9223372036854775807,
  "negative": -9223372036854775808,
  "precise": 0.1000000000000000000001,
  "exponent": 1.5e300,
  "small": 1e-300,
  "zero": 0,
  "text": "ünïcödé \"quoted\" \\ back\nslash\ttab €",
  "emoji": "\ud83d\ude00",
  "empty": "",
  "nested": {"a": [1, [2, [3, {"b": null}]], true, false]},
  "list": []
}'::jsonb AS v;
SELECT (dt_report_state('default', 'values', (SELECT v FROM input)) -> 'reportedState') IS NOT NULL;
-- every value reads back equal to what was given
SELECT key, (r.reported_state -> key -> 'value') = i.v -> key AS equal
FROM things r, input i, jsonb_object_keys(i.v) key
WHERE r.name = 'values' ORDER BY key;
SELECT reported_state -> 'big' -> 'value' AS big, reported_state -> 'precise' -> 'value' AS precise
FROM things WHERE name = 'values';
-- repeating the report changes nothing (numbers compare by value)
SELECT (dt_report_state('default', 'values', (SELECT v FROM input)) #>> '{metadata,generation}')::int AS generation;
-- a value that differs only past double precision is a change
SELECT (dt_report_state('default', 'values', '{"precise": 0.1000000000000000000002}') #>> '{metadata,generation}')::int AS generation;
-- nesting deeper than many parsers allow
SELECT (dt_report_state('default', 'values', jsonb_build_object('deep',
        (SELECT string_agg('[', '') || '1' || string_agg(']', '') FROM generate_series(1, 200))::jsonb))
        #> '{reportedState,deep,value}') IS NOT NULL AS deep_ok;
