-- JSON patch (RFC 6902), merge patch (RFC 7396) and optimistic locking
-- (reference §2.3.2, §2.3.3, E1 steps 6-8).
SET search_path = doppelganger, public;

SELECT dt_create_thing('{"metadata": {"application": "default", "name": "foo", "annotations": {"condition/overTemp": "true"}},
    "reportedState": {"temperature": {"value": 42, "lastUpdate": "2022-01-01T00:00:00Z"}}}') IS NOT NULL;

-- E1 6: replace with a string
SELECT dt_patch_thing('default', 'foo', '[{"op": "replace", "path": "/reportedState/temperature/value", "value": "43"}]')
       #> '{reportedState,temperature,value}';
-- E1 7: merge a number back
SELECT dt_merge_thing('default', 'foo', '{"reportedState": {"temperature": {"value": 43}}}')
       #> '{reportedState,temperature,value}';
-- E1 8: remove an annotation with an escaped path
SELECT dt_patch_thing('default', 'foo', '[{"op": "remove", "path": "/metadata/annotations/condition~1overTemp"}]')
       #> '{metadata,annotations}' AS annotations;
-- ... which fails once it is gone, all or nothing
SELECT expect_error($$SELECT dt_patch_thing('default', 'foo', '[{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}, {"op": "remove", "path": "/metadata/annotations/condition~1overTemp"}]')$$);
SELECT labels FROM things WHERE name = 'foo';

-- all six operations
SELECT mask(dt_patch_thing('default', 'foo', '[
    {"op": "add", "path": "/reportedState/list", "value": {"value": [1, 2]}},
    {"op": "add", "path": "/reportedState/list/value/-", "value": 3},
    {"op": "add", "path": "/reportedState/list/value/0", "value": 0},
    {"op": "copy", "from": "/reportedState/list", "path": "/reportedState/copy"},
    {"op": "move", "from": "/reportedState/copy", "path": "/reportedState/moved"},
    {"op": "test", "path": "/reportedState/moved/value", "value": [0, 1, 2, 3]},
    {"op": "replace", "path": "/reportedState/temperature/value", "value": 44},
    {"op": "remove", "path": "/reportedState/list/value/1"}
]'));
-- a failing test op rejects the whole patch
SELECT expect_error($$SELECT dt_patch_thing('default', 'foo', '[{"op": "replace", "path": "/reportedState/temperature/value", "value": 1}, {"op": "test", "path": "/reportedState/temperature/value", "value": 2}]')$$);
SELECT reported_state #> '{temperature,value}' AS still_44 FROM things WHERE name = 'foo';

-- patches cannot change identity or system metadata; labels they can
SELECT mask(dt_patch_thing('default', 'foo', '[
    {"op": "replace", "path": "/metadata/name", "value": "bar"},
    {"op": "replace", "path": "/metadata/generation", "value": 1000},
    {"op": "add", "path": "/metadata/labels", "value": {"patched": ""}}]')) #> '{metadata}';
-- a merge that removes the whole metadata only removes labels and annotations
SELECT mask(dt_merge_thing('default', 'foo', '{"metadata": null}')) #> '{metadata}';
-- a merge creating a feature without lastUpdate gets the current time
SELECT (dt_merge_thing('default', 'foo', '{"reportedState": {"fresh": {"value": true}}}')
        #>> '{reportedState,fresh,lastUpdate}')::timestamptz > '2020-01-01' AS fresh_has_time;
-- merge null removes a feature
SELECT dt_merge_thing('default', 'foo', '{"reportedState": {"fresh": null}}') #> '{reportedState}' ? 'fresh' AS still_there;

-- bad patches and merges
SELECT expect_error($$SELECT dt_patch_thing('default', 'foo', '{"op": "add"}')$$);
SELECT expect_error($$SELECT dt_patch_thing('default', 'foo', '[{"op": "jump", "path": "/a"}]')$$);
SELECT expect_error($$SELECT dt_patch_thing('default', 'foo', '[{"op": "add", "path": "reportedState"}]')$$);
SELECT expect_error($$SELECT dt_patch_thing('default', 'foo', '[{"op": "add", "path": "/nope/deeper", "value": 1}]')$$);
SELECT expect_error($$SELECT dt_patch_thing('default', 'foo', '[{"op": "remove", "path": ""}]')$$);
SELECT expect_error($$SELECT dt_patch_thing('default', 'foo', '[{"op": "replace", "path": "", "value": 5}]')$$);
SELECT expect_error($$SELECT dt_patch_thing('default', 'foo', '[{"op": "add", "path": "/reportedState/bad", "value": 5}]')$$);
SELECT expect_error($$SELECT dt_merge_thing('default', 'foo', '{"reportedState": {"bad": 5}}')$$);
SELECT expect_error($$SELECT dt_merge_thing('default', 'foo', '[1]')$$);
SELECT expect_error($$SELECT dt_patch_thing('default', 'nosuch', '[]')$$);

-- optimistic locking: a stale resource version is PT412, the current one works
CREATE TEMP TABLE rv AS SELECT dt_get_thing('default', 'foo') #>> '{metadata,resourceVersion}' AS v;
SELECT dt_report_state('default', 'foo', '{"x": 1}') IS NOT NULL;
SELECT expect_error(format($$SELECT dt_patch_thing('default', 'foo', '[]', %L)$$, (SELECT v FROM rv)));
SELECT expect_error(format($$SELECT dt_merge_thing('default', 'foo', '{}', %L)$$, (SELECT v FROM rv)));
SELECT expect_error(format($$SELECT dt_update_thing(dt_get_thing('default', 'foo'), %L)$$, (SELECT v FROM rv)));
SELECT expect_error(format($$SELECT dt_delete_thing('default', 'foo', %L)$$, (SELECT v FROM rv)));
SELECT dt_merge_thing('default', 'foo', '{"reportedState": {"y": {"value": 2}}}',
                      dt_get_thing('default', 'foo') #>> '{metadata,resourceVersion}') #> '{reportedState,y,value}' AS with_current_version;
SELECT dt_delete_thing('default', 'foo', dt_get_thing('default', 'foo') #>> '{metadata,resourceVersion}') AS deleted_with_version;
