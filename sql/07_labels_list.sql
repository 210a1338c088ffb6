-- Annotations, labels and listing with label selectors.
SET search_path = doppelganger, public;

SELECT dt_create_thing(jsonb_build_object('metadata', jsonb_build_object(
    'application', 'fleet', 'name', 'd' || i,
    'labels', jsonb_strip_nulls(jsonb_build_object(
        'kind', CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END,
        'big', CASE WHEN i > 5 THEN '' END)))))  IS NOT NULL
FROM generate_series(1, 8) i;
SELECT dt_create_thing('{"metadata": {"application": "other", "name": "d1", "labels": {"kind": "odd"}}}') IS NOT NULL;

CREATE FUNCTION names(app text, sel text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(t #>> '{metadata,name}', ',' ORDER BY t #>> '{metadata,name}'), '(none)')
    FROM dt_list_things(app, sel) t $$;
SELECT names('fleet', NULL) AS all_things;
SELECT names('fleet', '') AS empty_selector;
SELECT names('fleet', 'kind=even') AS even;
SELECT names('fleet', 'kind==even') AS even_double_equals;
SELECT names('fleet', 'kind!=even') AS not_even;
SELECT names('fleet', 'big') AS big;
SELECT names('fleet', '!big') AS not_big;
SELECT names('fleet', 'kind=odd, big') AS odd_and_big;
SELECT names('fleet', 'kind!=odd,!big,kind') AS even_small;
SELECT names('fleet', 'big=') AS big_flag;
SELECT names('fleet', 'kind=blue') AS none;
SELECT names('nowhere', NULL) AS no_application;
-- other applications stay apart
SELECT names('other', 'kind=odd') AS other_app;

-- labels and annotations: set, and null removes
SELECT dt_set_labels('fleet', 'd1', '{"kind": "special", "new": "x"}') #> '{metadata,labels}';
SELECT dt_set_labels('fleet', 'd1', '{"new": null, "kind": null}') #> '{metadata}' ? 'labels' AS has_labels;
SELECT dt_set_annotations('fleet', 'd1', '{"drogue.io/device": "device1"}') #> '{metadata,annotations}';
SELECT dt_set_annotations('fleet', 'd1', '{"drogue.io/device": null, "absent": null}') #> '{metadata}' ? 'annotations' AS has_annotations;
SELECT names('fleet', 'kind') AS with_kind;

SELECT expect_error($$SELECT dt_set_labels('fleet', 'd1', '{"a": 1}')$$);
SELECT expect_error($$SELECT dt_set_labels('fleet', 'd1', '["a"]')$$);
SELECT expect_error($$SELECT dt_set_annotations('fleet', 'd1', '{"a": {"b": "c"}}')$$);
SELECT expect_error($$SELECT dt_set_labels('fleet', 'nosuch', '{}')$$);
SELECT expect_error($$SELECT names('fleet', 'a,,b')$$);
SELECT expect_error($$SELECT names('fleet', '=x')$$);
SELECT expect_error($$SELECT names('fleet', 'a=b=c')$$);
SELECT expect_error($$SELECT names('fleet', '!')$$);
SELECT expect_error($$SELECT names('fleet', 'a b=c')$$);
SELECT expect_error($$SELECT names('bad/app', NULL)$$);

-- a selective selector is served by the GIN index on labels (the statement
-- has the shape dt_list_things prepares for an "a=b" selector)
INSERT INTO things (application, name, uid, creation_timestamp, generation, resource_version, labels)
SELECT 'big', 't' || i, gen_random_uuid(), now(), 1, gen_random_uuid(),
       CASE WHEN i % 500 = 0 THEN '{"kind": "rare"}'::jsonb
            ELSE jsonb_build_object('kind', 'common', 'n', (i % 7)::text) END
FROM generate_series(1, 20000) i;
VACUUM ANALYZE things;
EXPLAIN (COSTS OFF) SELECT name FROM things WHERE application = 'big' AND labels @> '{"kind": "rare"}' ORDER BY name;
SELECT count(*) AS rare FROM dt_list_things('big', 'kind=rare');
SELECT count(*) AS common_not_six FROM dt_list_things('big', 'kind=common,n!=6');
DELETE FROM things WHERE application = 'big';
