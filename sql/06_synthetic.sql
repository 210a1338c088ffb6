-- Synthetic features of kind alias (reference §3.7, E8 step 5).
SET search_path = doppelganger, public;

SELECT dt_create_thing('{"metadata": {"application": "default", "name": "syn"}}') IS NOT NULL;
SELECT dt_report_state('default', 'syn', '{"value1": 42, "value2": 23}') IS NOT NULL;
SELECT mask(dt_set_synthetic_state('default', 'syn', 'rename1', '{"alias": "value1"}')) -> 'syntheticState';
-- follows the reported value
SELECT dt_report_state('default', 'syn', '{"value1": 43}') #> '{syntheticState,rename1,value}';
-- lastUpdate moves only when the value does
CREATE TEMP TABLE s AS SELECT synthetic_state #> '{rename1,lastUpdate}' AS l FROM things WHERE name = 'syn';
SELECT dt_report_state('default', 'syn', '{"value2": 1}') #> '{syntheticState,rename1,lastUpdate}' = (SELECT l FROM s) AS kept;
-- null when the reported feature goes
SELECT (dt_report_state('default', 'syn', '{"value2": 1}', false) #> '{syntheticState,rename1}') - 'lastUpdate';
-- redefining keeps the value until it is recomputed in the same call
SELECT (dt_set_synthetic_state('default', 'syn', 'rename1', '{"alias": "value2"}') #> '{syntheticState,rename1}') - 'lastUpdate';
-- a desired feature compares with the synthetic value first
SELECT dt_set_desired_state('default', 'syn', 'rename1', '{"value": 1}') #> '{desiredState,rename1,reconciliation,state}';
-- delete, and delete again (no error)
SELECT dt_delete_synthetic_state('default', 'syn', 'rename1') ? 'syntheticState' AS has_synthetics;
SELECT dt_delete_synthetic_state('default', 'syn', 'rename1') ? 'syntheticState' AS has_synthetics;

SELECT expect_error($$SELECT dt_set_synthetic_state('default', 'syn', 'bad', '{}')$$);
SELECT expect_error($$SELECT dt_set_synthetic_state('default', 'syn', 'bad', '{"alias": 5}')$$);
SELECT expect_error($$SELECT dt_set_synthetic_state('default', 'syn', 'bad', '{"alias": "a", "javaScript": "1"}')$$);
SELECT expect_error($$SELECT dt_set_synthetic_state('default', 'syn', 'bad', '"alias"')$$);
SELECT expect_error($$SELECT dt_set_synthetic_state('default', 'nosuch', 'a', '{"alias": "a"}')$$);
