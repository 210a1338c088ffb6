-- JavaScript hooks and synthetics (reference §3.6-§3.9, E2, E8), their
-- limits and errors, timers' configuration, the outbox and deferred deletion.
SET search_path = doppelganger, public;
SET doppelganger.hook_timeout = 300;

SELECT dt_create_thing('{"metadata": {"application": "default", "name": "foo"},
    "reportedState": {"temperature": {"value": 43}}}') IS NOT NULL;

-- E8: synthetics computed by JavaScript, in the same call
SELECT dt_set_synthetic_state('default', 'foo', 'const', '{"javaScript": "// a constant\n23"}') #> '{syntheticState,const,value}';
SELECT dt_set_synthetic_state('default', 'foo', 'temperature_f',
    '{"javaScript": "var r = context.newState.reportedState; (r && r.temperature) ? r.temperature.value * 9 / 5 + 32 : null"}')
    #> '{syntheticState,temperature_f,value}';
SELECT dt_set_synthetic_state('default', 'foo', 'add',
    '{"javaScript": "var r = context.newState.reportedState || {}; (r.value1 && r.value2) ? r.value1.value + r.value2.value : null"}')
    #> '{syntheticState,add,value}';
SELECT dt_report_state('default', 'foo', '{"value1": 42, "value2": 23}') #> '{syntheticState,add,value}';
SELECT dt_set_synthetic_state('default', 'foo', 'rename1', '{"alias": "value1"}') #> '{syntheticState,rename1,value}';

-- E2: a changed hook sets labels from the temperature; it runs at once
SELECT dt_set_reconciliation('default', 'foo', $${"changed": {"overTemp": {"javaScript":
  "var r = context.newState.reportedState, t = r && r.temperature ? r.temperature.value : undefined;\n var md = context.newState.metadata;\n md.labels = md.labels || {};\n if (t > 60) md.labels.overTemp = ''; else delete md.labels.overTemp;\n if (t > 50) md.labels.highTemp = ''; else delete md.labels.highTemp;\n log('checked ' + t);"}}}$$)
    #> '{reconciliation,changed,overTemp,lastLog}';
SELECT dt_report_state('default', 'foo', '{"temperature": 62}') #> '{metadata,labels}';
SELECT dt_report_state('default', 'foo', '{"temperature": 55}') #> '{metadata,labels}';
SELECT dt_report_state('default', 'foo', '{"temperature": 45}') #> '{metadata}' ? 'labels' AS has_labels;
-- the hook runs on every processing; its log is the last run's
SELECT dt_report_state('default', 'foo', '{"other": 1}') #> '{reconciliation,changed,overTemp,lastLog}';
-- the role that configured it is recorded, and cannot be claimed by a client
SELECT dt_get_thing('default', 'foo') #>> '{reconciliation,changed,overTemp,owner}' = current_user AS owner_recorded;
SELECT dt_merge_thing('default', 'foo', '{"reconciliation": {"changed": {"overTemp": {"owner": "someone_else"}}}}')
    #>> '{reconciliation,changed,overTemp,owner}' = current_user AS owner_kept;

-- a hook cannot rewrite hooks
SELECT dt_set_reconciliation('default', 'foo', $${"changed": {"sneaky": {"javaScript":
  "context.newState.reconciliation.changed.sneaky.javaScript = 'evil()'; context.newState.reconciliation.timers = {t: {javaScript: '1', period: '1s'}};"}}}$$)
    #> '{reconciliation,timers}' IS NULL AS no_timers;
SELECT dt_get_thing('default', 'foo') #>> '{reconciliation,changed,sneaky,javaScript}' LIKE 'context.%' AS code_kept;

-- helpers: sendMessage, sendMerge, sendPatch, wakeup, whenValueChanged
SELECT dt_set_reconciliation('default', 'foo', $${"changed": {"talk": {"javaScript":
  "whenValueChanged('temperature', function (now, before) { sendMerge('group', {reportedState: {t: {value: now}}}); log(before + ' -> ' + now); });\n sendPatch('group', [{op: 'add', path: '/metadata/labels', value: {x: ''}}]);\n wakeup('1h');"}}}$$)
    #> '{internal,waker,why}';
SELECT kind, target, message, hops FROM outbox WHERE source = 'foo' ORDER BY id;
SELECT dt_report_state('default', 'foo', '{"temperature": 47}') #> '{reconciliation,changed,talk,lastLog}';
SELECT count(*) AS events FROM outbox WHERE source = 'foo';
SELECT waker BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes' AS waker_in_an_hour
FROM things WHERE name = 'foo';
-- a hook that only sends leaves the thing unchanged: no write, but the events go
DELETE FROM outbox;
SELECT dt_set_reconciliation('default', 'foo', $${"changed": {"forward": {"javaScript": "sendMerge('group', {})"}}}$$) IS NOT NULL;
CREATE TEMP TABLE g0 AS SELECT generation FROM things WHERE name = 'foo';
SELECT (dt_report_state('default', 'foo', '{"temperature": 47}') #>> '{metadata,generation}')::bigint =
       (SELECT generation FROM g0) AS no_write;
SELECT count(*) AS forwarded FROM outbox WHERE source = 'foo';
DELETE FROM outbox;

-- errors: each names the hook, and nothing is written
CREATE TEMP TABLE g AS SELECT generation FROM things WHERE name = 'foo';
SELECT expect_error($$SELECT dt_set_reconciliation('default', 'foo', '{"changed": {"bad": {"javaScript": "this is not javascript"}}}')$$);
SELECT expect_error($$SELECT dt_set_reconciliation('default', 'foo', '{"changed": {"thrower": {"javaScript": "throw new Error(\"no!\")"}}}')$$);
SELECT expect_error($$SELECT dt_set_reconciliation('default', 'foo', '{"changed": {"ref": {"javaScript": "newState.metadata"}}}')$$);
SELECT expect_error($$SELECT dt_set_reconciliation('default', 'foo', '{"changed": {"loop": {"javaScript": "while (true) {}"}}}')$$);
SELECT expect_error($$SELECT dt_set_reconciliation('default', 'foo', '{"changed": {"hog": {"javaScript": "var a = []; while (true) a.push(new Array(1000).join(\"x\") + a.length);"}}}')$$);
SELECT expect_error($$SELECT dt_set_synthetic_state('default', 'foo', 'logs', '{"javaScript": "log(\"no logs in synthetics\")"}')$$);
SELECT expect_error($$SELECT dt_set_reconciliation('default', 'foo', '{"changed": {"shape": {"javaScript": "context.newState.reportedState.x = 5;"}}}')$$);
SELECT expect_error($$SELECT dt_set_reconciliation('default', 'foo', '{"changed": {"out": {"javaScript": "sendMessage(\"bad/../app\", 5)"}}}')$$);
SELECT generation = (SELECT generation FROM g) AS nothing_written FROM things WHERE name = 'foo';
-- the engine is fine after a loop and a hog
SELECT dt_set_synthetic_state('default', 'foo', 'after', '{"javaScript": "1 + 1"}') #> '{syntheticState,after,value}';

-- timers: periods must be positive; a timer without initialDelay runs at once
SELECT expect_error($$SELECT dt_set_reconciliation('default', 'foo', '{"timers": {"t": {"javaScript": "1", "period": "0s"}}}')$$);
SELECT expect_error($$SELECT dt_set_reconciliation('default', 'foo', '{"timers": {"t": {"javaScript": "1", "period": "-1s"}}}')$$);
SELECT expect_error($$SELECT dt_set_reconciliation('default', 'foo', '{"timers": {"t": {"javaScript": "1"}}}')$$);
SELECT expect_error($$SELECT dt_set_reconciliation('default', 'foo', '{"timers": {"t": {"period": "1s"}}}')$$);
SELECT mask(dt_set_reconciliation('default', 'foo', $${"timers": {"count": {"period": "1m", "javaScript":
  "var r = context.newState.reportedState; r.timer = {value: (r.timer ? r.timer.value : 0) + 1};"}}}$$)
    #> '{reconciliation,timers,count}') - 'javaScript' - 'owner';
SELECT reported_state #> '{timer,value}' AS ran_once, waker > now() AS next_run_requested FROM things WHERE name = 'foo';
SELECT dt_set_reconciliation('default', 'foo', '{}') #> '{reconciliation}' IS NULL AS cleared;

-- desired state with the code method: the script's commands, with their payload
SELECT dt_set_desired_state('default', 'foo', 'mode', $${"value": "eco", "method": {"code": {"javaScript":
  "context.commands = [{channel: 'set-mode', payload: {mode: context.value}}]; context.waker = '30s';"}}}$$)
    #> '{desiredState,mode,reconciliation}' ? 'lastAttempt' AS attempted;

-- deletion: deleting hooks run once; their events hold the deletion back
SELECT dt_create_thing($${"metadata": {"application": "default", "name": "leaving"},
  "reconciliation": {"deleting": {"bye": {"javaScript": "sendMessage('parent', {unregisterChild: {'$ref': 'leaving'}});"}}}}$$) IS NOT NULL;
SELECT dt_delete_thing('default', 'leaving') AS deleted;
SELECT kind, target, message FROM outbox WHERE source = 'leaving';
SELECT deletion_timestamp IS NOT NULL AS marked FROM things WHERE name = 'leaving';
SELECT dt_get_thing('default', 'leaving') #> '{metadata}' ? 'deletionTimestamp' AS visible;
SELECT expect_error($$SELECT dt_report_state('default', 'leaving', '{"a": 1}')$$);
SELECT dt_delete_thing('default', 'leaving') AS deleted_again;
-- without events a thing goes at once, deleting hooks or not
SELECT dt_create_thing('{"metadata": {"application": "default", "name": "quiet"},
  "reconciliation": {"deleting": {"noop": {"javaScript": "log(1)"}}}}') IS NOT NULL;
SELECT dt_delete_thing('default', 'quiet');
SELECT count(*) AS rows FROM things WHERE name = 'quiet';
-- a deleting hook that fails fails the deletion
SELECT dt_create_thing('{"metadata": {"application": "default", "name": "stuck"},
  "reconciliation": {"deleting": {"oops": {"javaScript": "throw new Error(\"not now\")"}}}}') IS NOT NULL;
SELECT expect_error($$SELECT dt_delete_thing('default', 'stuck')$$);
SELECT count(*) AS still_there FROM things WHERE name = 'stuck' AND deletion_timestamp IS NULL;
