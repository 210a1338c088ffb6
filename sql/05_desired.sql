-- Desired state (reference §3.10.1, §2.3.5, §2.3.8, E9): modes, methods
-- manual and external, validUntil and validFor, the state machine.
SET search_path = doppelganger, public;

SELECT dt_create_thing('{"metadata": {"application": "default", "name": "lamp"}}') IS NOT NULL;
-- E9 1: an external feature with no value succeeds at once while nothing is reported
SELECT mask(dt_set_desired_state('default', 'lamp', 'temperature', '{"method": "external"}')) -> 'desiredState';
-- a reported 43 differs from the desired null: reconciling
SELECT dt_report_state('default', 'lamp', '{"temperature": 43}') #> '{desiredState,temperature,reconciliation}';
SELECT mask(dt_set_desired_state('default', 'lamp', 'temperature', '{"method": "external"}')) #> '{desiredState,temperature}';
-- E9 2: a value resets the state and lastUpdate, and clears validUntil
SELECT mask(dt_set_desired_state('default', 'lamp', 'temperature', '{"value": 23}')) #> '{desiredState,temperature}';
-- E9 3: the device reports the value: succeeded, lastUpdate unchanged
CREATE TEMP TABLE lu AS SELECT desired_state #> '{temperature,lastUpdate}' AS l FROM things WHERE name = 'lamp';
SELECT mask(dt_report_state('default', 'lamp', '{"temperature": 23}')) #> '{desiredState,temperature,reconciliation}';
SELECT desired_state #> '{temperature,lastUpdate}' = (SELECT l FROM lu) AS last_update_kept FROM things WHERE name = 'lamp';
-- E9 4: sync mode with drift: back to reconciling
SELECT dt_report_state('default', 'lamp', '{"temperature": 22}') #> '{desiredState,temperature,reconciliation}';
-- E9 5: and succeeded again
SELECT mask(dt_report_state('default', 'lamp', '{"temperature": 23}')) #> '{desiredState,temperature,reconciliation,state}';

-- mode once: after success, drift does not reopen
SELECT dt_set_desired_state('default', 'lamp', 'led', '{"value": true, "mode": "once"}') #> '{desiredState,led,reconciliation,state}';
SELECT dt_report_state('default', 'lamp', '{"led": true}') #> '{desiredState,led,reconciliation,state}';
SELECT dt_report_state('default', 'lamp', '{"led": false}') #> '{desiredState,led,reconciliation,state}';
SELECT dt_get_thing('default', 'lamp') #> '{desiredState,led,mode}' AS mode;

-- mode disabled: disabled whatever is reported; enabling with an equal value succeeds
SELECT dt_set_desired_state('default', 'lamp', 'led', '{"mode": "disabled"}') #> '{desiredState,led,reconciliation,state}';
SELECT dt_set_desired_state('default', 'lamp', 'led', '{"mode": "sync"}') #> '{desiredState,led,reconciliation,state}';
SELECT dt_get_thing('default', 'lamp') #> '{desiredState,led}' ? 'mode' AS has_mode;

-- a value on a disabled feature stays disabled, with a fresh "when"
SELECT dt_set_desired_state('default', 'lamp', 'fan', '{"value": 1, "mode": "disabled"}') #> '{desiredState,fan,reconciliation,state}';
SELECT dt_set_desired_value('default', 'lamp', 'fan', '2') #> '{desiredState,fan,reconciliation,state}';
-- a validity that passes while reconciling fails, without a reason
SELECT mask(dt_set_desired_state('default', 'lamp', 'fan', '{"mode": "sync", "validUntil": "2000-01-01T00:00:00Z"}')) #> '{desiredState,fan,reconciliation}';
-- enabling a disabled feature whose value has expired fails with a reason
SELECT dt_set_desired_state('default', 'lamp', 'fan', '{"mode": "disabled", "validUntil": "2000-01-01T00:00:00Z"}') #> '{desiredState,fan,reconciliation,state}';
SELECT mask(dt_set_desired_state('default', 'lamp', 'fan', '{"mode": "sync", "validUntil": "2000-01-01T00:00:00Z"}')) #> '{desiredState,fan,reconciliation}';
-- failed is terminal until the value changes
SELECT dt_report_state('default', 'lamp', '{"fan": 5}') #> '{desiredState,fan,reconciliation,state}';
SELECT dt_set_desired_value('default', 'lamp', 'fan', '5') #> '{desiredState,fan,reconciliation,state}';

-- validFor and validUntil; a reconciling feature asks the waker for validUntil
SELECT mask(dt_set_desired_state('default', 'lamp', 'heat', '{"value": 30, "validFor": "1h"}')) #> '{desiredState,heat}';
SELECT (desired_state #>> '{heat,validUntil}')::timestamptz - now() BETWEEN interval '59 minutes' AND interval '61 minutes' AS valid_for_an_hour,
       waker = (desired_state #>> '{heat,validUntil}')::timestamptz AS waker_at_valid_until,
       internal #> '{waker,why}' AS why
FROM things WHERE name = 'lamp';
-- validUntil wins over validFor
SELECT dt_set_desired_state('default', 'lamp', 'heat', '{"validUntil": "2100-01-01T00:00:00Z", "validFor": "1s"}') #>> '{desiredState,heat,validUntil}';
-- dt_set_desired_value: a value with a validity, then without (which clears it)
SELECT dt_set_desired_value('default', 'lamp', 'heat', '31', '2099-06-01 00:00:00+00') #>> '{desiredState,heat,validUntil}';
SELECT dt_set_desired_value('default', 'lamp', 'heat', '32') #> '{desiredState,heat}' ? 'validUntil' AS has_valid_until;
-- a value whose validity has passed fails (no reason), and nothing more happens
SELECT (dt_set_desired_value('default', 'lamp', 'heat', '33', now() - interval '1 second') #> '{desiredState,heat,reconciliation}') - 'when';
SELECT dt_report_state('default', 'lamp', '{"other": 1}') #> '{desiredState,heat,reconciliation,state}';

-- manual: no state machine, but a value change still resets to reconciling
SELECT dt_set_desired_state('default', 'lamp', 'door', '{"value": "open", "method": "manual"}') #> '{desiredState,door,reconciliation,state}';
SELECT dt_report_state('default', 'lamp', '{"door": "open"}') #> '{desiredState,door,reconciliation,state}';
SELECT dt_set_desired_state('default', 'lamp', 'door', '{"reconciliation": {"state": "succeeded"}}') #> '{desiredState,door,reconciliation,state}';
SELECT dt_set_desired_value('default', 'lamp', 'door', '"closed"') #> '{desiredState,door,reconciliation,state}';

-- setDesiredValue through the event path, both forms; an unknown feature fails whole
SELECT ((dt_process_event('default', 'lamp', '{"setDesiredValue": {"values": {"door": "ajar", "heat": {"value": 20, "validUntil": "2101-01-01T00:00:00Z"}}}}')
        -> 'desiredState') - '{fan,led,temperature,cmd}'::text[]) #- '{door,lastUpdate}' #- '{heat,lastUpdate}';
SELECT expect_error($$SELECT dt_process_event('default', 'lamp', '{"setDesiredValue": {"values": {"door": "x", "window": 1, "roof": 2}}}')$$);
SELECT desired_state #> '{door,value}' AS door_unchanged FROM things WHERE name = 'lamp';
SELECT expect_error($$SELECT dt_set_desired_value('default', 'lamp', 'window', '1')$$);

-- bad desired definitions
SELECT expect_error($$SELECT dt_set_desired_state('default', 'lamp', 'x', '{"mode": "sometimes"}')$$);
SELECT expect_error($$SELECT dt_set_desired_state('default', 'lamp', 'x', '{"method": "telepathy"}')$$);
SELECT expect_error($$SELECT dt_set_desired_state('default', 'lamp', 'x', '{"method": {"command": {}}}')$$);
SELECT expect_error($$SELECT dt_set_desired_state('default', 'lamp', 'x', '{"method": {"command": {"period": "0s"}}}')$$);
SELECT expect_error($$SELECT dt_set_desired_state('default', 'lamp', 'x', '{"method": {"command": {"period": "soon"}}}')$$);
SELECT expect_error($$SELECT dt_set_desired_state('default', 'lamp', 'x', '{"validUntil": "tomorrow"}')$$);
SELECT expect_error($$SELECT dt_set_desired_state('default', 'lamp', 'x', '{"validFor": "ages"}')$$);
SELECT expect_error($$SELECT dt_set_desired_state('default', 'lamp', 'x', '{"reconciliation": {"state": "confused"}}')$$);
SELECT expect_error($$SELECT dt_set_desired_state('default', 'lamp', 'x', '{"colour": "red"}')$$);
SELECT expect_error($$SELECT dt_set_desired_state('default', 'lamp', 'x', '[]')$$);
SELECT expect_error($$SELECT dt_set_desired_state('default', 'lamp', NULL, '{}')$$);
SELECT desired_state ? 'x' AS x_created FROM things WHERE name = 'lamp';

-- the command method's configuration is kept in canonical form
SELECT dt_set_desired_state('default', 'lamp', 'cmd', '{"method": {"command": {"period": "90s", "mode": "passive", "encoding": {"channel": "set-features"}}}}') #> '{desiredState,cmd,method}';
