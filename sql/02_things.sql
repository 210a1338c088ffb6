-- Create, get, replace and delete (reference §10.2 items 1-12, E1).
SET search_path = doppelganger, public;

-- 1, 2: create, then get returns the stored thing
SELECT mask(dt_create_thing('{"metadata": {"application": "default", "name": "thing1"}}'));
SELECT mask(dt_get_thing('default', 'thing1'));
SELECT (dt_get_thing('default', 'thing1') #>> '{metadata,generation}')::int AS generation;
-- a missing thing reads as NULL
SELECT dt_get_thing('default', 'nothing') IS NULL AS missing;
SELECT dt_get_thing(NULL, 'thing1') IS NULL AS null_application;

-- create refuses an existing name
SELECT expect_error($$SELECT dt_create_thing('{"metadata": {"application": "default", "name": "thing1"}}')$$);

-- server-owned metadata and internal state in the input are ignored
SELECT mask(dt_create_thing('{"metadata": {"application": "default", "name": "thing2",
    "uid": "00000000-0000-0000-0000-000000000000", "generation": 42,
    "resourceVersion": "x", "creationTimestamp": "2000-01-01T00:00:00Z",
    "deletionTimestamp": "2000-01-01T00:00:00Z",
    "labels": {"a": "b"}, "annotations": {"c": "d"}},
    "internal": {"waker": {"when": "2000-01-01T00:00:00Z", "why": ["reconcile"]}},
    "somethingElse": 1}'));
SELECT uid <> '00000000-0000-0000-0000-000000000000' AS fresh_uid,
       creation_timestamp > '2020-01-01' AS fresh_creation,
       deletion_timestamp IS NULL AS not_deleted, waker IS NULL AS no_waker
FROM things WHERE name = 'thing2';

-- names may contain "/" and ":"; sizes are limited
SELECT dt_create_thing('{"metadata": {"application": "default", "name": "device1/sensor:A4:C1"}}') #>> '{metadata,name}';
SELECT dt_create_thing(jsonb_build_object('metadata', jsonb_build_object('application', repeat('a', 64), 'name', repeat('n', 256)))) #>> '{metadata,generation}' AS longest_names;
SELECT dt_create_thing(jsonb_build_object('metadata', jsonb_build_object('application', 'default', 'name', repeat('ä', 256)))) #>> '{metadata,generation}' AS multibyte_name;

-- 5-10: an update that tries to change identity and system metadata
CREATE TEMP TABLE before AS SELECT dt_get_thing('default', 'thing1') AS t;
SELECT mask(dt_update_thing('{"metadata": {"application": "default", "name": "thing1",
    "annotations": {"foo": "bar"}, "uid": "00000000-0000-0000-0000-000000000000",
    "generation": 99, "creationTimestamp": "2000-01-01T00:00:00Z"}}'));
SELECT (a.t #>> '{metadata,uid}') = (b #>> '{metadata,uid}') AS same_uid,
       (a.t #>> '{metadata,creationTimestamp}') = (b #>> '{metadata,creationTimestamp}') AS same_creation,
       (b #>> '{metadata,generation}')::int = (a.t #>> '{metadata,generation}')::int + 1 AS generation_plus_one,
       (a.t #>> '{metadata,resourceVersion}') <> (b #>> '{metadata,resourceVersion}') AS new_resource_version
FROM before a, dt_get_thing('default', 'thing1') b;

-- 11, 12: replacing a thing with itself changes nothing
SELECT dt_update_thing(t) = t AS unchanged FROM (SELECT dt_get_thing('default', 'thing1') AS t) s;

-- a full replace clears every section that the body does not carry
SELECT dt_report_state('default', 'thing1', '{"temperature": 42}') #>> '{reportedState,temperature,value}';
SELECT mask(dt_update_thing('{"metadata": {"application": "default", "name": "thing1"}}'));

-- update of a missing thing
SELECT expect_error($$SELECT dt_update_thing('{"metadata": {"application": "default", "name": "nothing"}}')$$);

-- 3, 4: delete, then delete again
SELECT dt_delete_thing('default', 'thing2') AS deleted;
SELECT dt_delete_thing('default', 'thing2') AS deleted_again;
SELECT dt_get_thing('default', 'thing2') IS NULL AS gone;
SELECT count(*) FROM things WHERE name = 'thing2';
-- a deleted name can be created again, with a new uid
SELECT (dt_create_thing('{"metadata": {"application": "default", "name": "thing2"}}') #>> '{metadata,generation}')::int AS recreated;

-- bad names and bad things: 22023 with a message saying what is wrong
SELECT expect_error($$SELECT dt_create_thing('{"metadata": {"application": "default"}}')$$);
SELECT expect_error($$SELECT dt_create_thing('{"metadata": {"name": "x"}}')$$);
SELECT expect_error($$SELECT dt_create_thing('{}')$$);
SELECT expect_error($$SELECT dt_create_thing('[]')$$);
SELECT expect_error($$SELECT dt_create_thing('"thing"')$$);
SELECT expect_error($$SELECT dt_create_thing(NULL)$$);
SELECT expect_error($$SELECT dt_create_thing('{"metadata": {"application": "default", "name": ""}}')$$);
SELECT expect_error($$SELECT dt_create_thing('{"metadata": {"application": "", "name": "x"}}')$$);
SELECT expect_error($$SELECT dt_create_thing('{"metadata": {"application": "a/b", "name": "x"}}')$$);
SELECT expect_error($$SELECT dt_create_thing('{"metadata": {"application": "a b", "name": "x"}}')$$);
SELECT expect_error($$SELECT dt_create_thing('{"metadata": {"application": 5, "name": "x"}}')$$);
SELECT expect_error($$SELECT dt_create_thing(jsonb_build_object('metadata', jsonb_build_object('application', repeat('a', 65), 'name', 'x')))$$);
SELECT expect_error($$SELECT dt_create_thing(jsonb_build_object('metadata', jsonb_build_object('application', 'default', 'name', repeat('n', 257))))$$);
SELECT expect_error($$SELECT dt_create_thing(jsonb_build_object('metadata', jsonb_build_object('application', 'default', 'name', E'tab\there')))$$);
SELECT expect_error($$SELECT dt_get_thing('default', '')$$);
SELECT expect_error($$SELECT dt_delete_thing(NULL, 'x')$$);
SELECT expect_error($$SELECT dt_create_thing('{"metadata": {"application": "default", "name": "x", "labels": {"a": 1}}}')$$);
SELECT expect_error($$SELECT dt_create_thing('{"metadata": {"application": "default", "name": "x"}, "reportedState": {"t": 1}}')$$);
SELECT expect_error($$SELECT dt_create_thing('{"metadata": {"application": "default", "name": "x"}, "reportedState": {"t": {"lastUpdate": "2022-01-01T00:00:00Z"}}}')$$);
SELECT expect_error($$SELECT dt_create_thing('{"metadata": {"application": "default", "name": "x"}, "reportedState": {"t": {"value": 1, "lastUpdate": "yesterday"}}}')$$);
SELECT expect_error($$SELECT dt_create_thing('{"metadata": {"application": "default", "name": "x"}, "reportedState": []}')$$);
SELECT expect_error($$SELECT dt_create_thing('{"metadata": {"application": "default", "name": "x"}, "schema": {"json": {"version": "draft4", "schema": {}}}}')$$);
-- nothing was created by the failures
SELECT count(*) FROM things WHERE name = 'x';

-- a created reported feature without lastUpdate gets the current time
SELECT ts BETWEEN now() AND clock_timestamp() AS defaulted_now
FROM (SELECT (dt_create_thing('{"metadata": {"application": "default", "name": "withstate"},
    "reportedState": {"t": {"value": 1}, "u": {"value": 2, "lastUpdate": "2022-01-01T01:00:00+01:00"}}}')
    #>> '{reportedState,t,lastUpdate}')::timestamptz AS ts OFFSET 0) s;
-- and given timestamps are normalized to UTC
SELECT dt_get_thing('default', 'withstate') #>> '{reportedState,u,lastUpdate}' AS normalized;

-- the columns hold the sections
SELECT application, name, generation, labels, annotations, reported_state ? 't' AS has_t
FROM things WHERE name IN ('thing1', 'withstate') ORDER BY name;
