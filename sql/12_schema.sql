-- JSON Schema validation (reference §3.11, E5): refused when unsupported,
-- a failing state is 23514 and nothing is written.
SET search_path = doppelganger, public;

SELECT dt_create_thing('{"metadata": {"application": "default", "name": "valid"},
    "reportedState": {"temperature": {"value": "43"}}}') IS NOT NULL;
-- a schema can only be set when the state already conforms
SELECT expect_error($$SELECT dt_patch_thing('default', 'valid', '[{"op": "add", "path": "/schema", "value": {"json": {"version": "draft7",
    "schema": {"type": "object", "properties": {"reportedState": {"type": "object", "properties": {"temperature": {"type": "number"}}}}}}}}]')$$);
SELECT dt_report_state('default', 'valid', '{"temperature": 43}') IS NOT NULL;
SELECT dt_patch_thing('default', 'valid', '[{"op": "add", "path": "/schema", "value": {"json": {"version": "draft7",
    "schema": {"type": "object", "properties": {"reportedState": {"type": "object", "properties": {"temperature": {"type": "number"}}}}}}}}]')
    #> '{schema,json,version}';
SELECT expect_error($$SELECT dt_report_state('default', 'valid', '{"temperature": "hot"}')$$);
SELECT reported_state #> '{temperature,value}' AS unchanged FROM things WHERE name = 'valid';
SELECT dt_report_state('default', 'valid', '{"temperature": 21}') #> '{reportedState,temperature,value}';
-- the schema sees metadata too
SELECT dt_set_labels('default', 'valid', '{"kind": "sensor"}') IS NOT NULL;
SELECT expect_error($$SELECT dt_merge_thing('default', 'valid', '{"schema": {"json": {"version": "draft7", "schema":
    {"properties": {"metadata": {"properties": {"labels": {"required": ["room"]}}}}}}}}')$$);
-- unsupported keywords and external references are refused when set
SELECT expect_error($$SELECT dt_merge_thing('default', 'valid', '{"schema": {"json": {"version": "draft7", "schema": {"unevaluatedProperties": false}}}}')$$);
SELECT expect_error($$SELECT dt_merge_thing('default', 'valid', '{"schema": {"json": {"version": "draft7", "schema": {"$ref": "http://example.com/schema.json"}}}}')$$);
SELECT expect_error($$SELECT dt_merge_thing('default', 'valid', '{"schema": {"json": {"version": "draft7", "schema": {"type": 5}}}}')$$);
SELECT expect_error($$SELECT dt_merge_thing('default', 'valid', '{"schema": {"json": {"version": "draft7", "schema": {"properties": {"reportedState": {"properties": {"t": {"pattern": "(?=lookahead)"}}}}}}}}')$$);
-- a richer schema: local refs, enums, ranges, required
SELECT dt_merge_thing('default', 'valid', $${"schema": {"json": {"version": "draft7", "schema": {
    "definitions": {"celsius": {"type": "number", "minimum": -50, "maximum": 100}},
    "properties": {"reportedState": {"required": ["temperature"], "properties": {
        "temperature": {"$ref": "#/definitions/celsius"},
        "mode": {"enum": ["eco", "comfort"]}}}}}}}}$$) #> '{schema,json,schema,definitions}';
SELECT expect_error($$SELECT dt_report_state('default', 'valid', '{"temperature": 150}')$$);
SELECT expect_error($$SELECT dt_report_state('default', 'valid', '{"mode": "turbo"}')$$);
SELECT expect_error($$SELECT dt_report_state('default', 'valid', '{"mode": "eco"}', false)$$);
SELECT dt_report_state('default', 'valid', '{"temperature": 22, "mode": "eco"}') #> '{reportedState,mode,value}';
-- removing the schema removes the checks
SELECT dt_patch_thing('default', 'valid', '[{"op": "remove", "path": "/schema"}]') ? 'schema' AS has_schema;
SELECT dt_report_state('default', 'valid', '{"temperature": "hot"}') #> '{reportedState,temperature,value}';
