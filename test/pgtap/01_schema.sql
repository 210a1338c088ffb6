-- The schema: table, columns, indexes and the functions of the contract.
BEGIN;
SELECT plan(70);

SELECT has_schema('doppelganger');
SELECT has_table('doppelganger', 'things', 'things are stored in doppelganger.things');
SELECT columns_are('doppelganger', 'things', ARRAY[
    'application', 'name', 'uid', 'creation_timestamp', 'deletion_timestamp', 'generation',
    'resource_version', 'labels', 'annotations', 'reported_state', 'desired_state',
    'synthetic_state', 'reconciliation', 'schema', 'internal', 'waker']);
SELECT col_is_pk('doppelganger', 'things', ARRAY['application', 'name']::name[], 'the primary key is (application, name)');
SELECT col_type_is('doppelganger', 'things', 'uid', 'uuid', 'uid is uuid');
SELECT col_type_is('doppelganger', 'things', 'resource_version', 'uuid', 'resource_version is uuid');
SELECT col_type_is('doppelganger', 'things', 'generation', 'bigint', 'generation is bigint');
SELECT col_type_is('doppelganger', 'things', 'creation_timestamp', 'timestamp with time zone', 'creation_timestamp is timestamp with time zone');
SELECT col_type_is('doppelganger', 'things', 'deletion_timestamp', 'timestamp with time zone', 'deletion_timestamp is timestamp with time zone');
SELECT col_type_is('doppelganger', 'things', 'waker', 'timestamp with time zone', 'waker is timestamp with time zone');
SELECT col_type_is('doppelganger', 'things', 'reported_state', 'jsonb', 'reported_state is jsonb');
SELECT col_type_is('doppelganger', 'things', 'labels', 'jsonb', 'labels is jsonb');
SELECT col_not_null('doppelganger', 'things', 'uid', 'uid is not null');
SELECT col_is_null('doppelganger', 'things', 'schema', 'schema may be null');
SELECT col_is_null('doppelganger', 'things', 'waker', 'waker may be null');
SELECT has_index('doppelganger', 'things', 'things_labels', 'labels');
SELECT index_is_type('doppelganger', 'things', 'things_labels', 'gin');
SELECT has_index('doppelganger', 'things', 'things_waker', 'waker');
SELECT is((SELECT pg_get_expr(indpred, indrelid) FROM pg_index WHERE indexrelid = 'doppelganger.things_waker'::regclass),
          '(waker IS NOT NULL)', 'the waker index is partial');
SELECT has_pk('doppelganger', 'things', 'things have a primary key');

SELECT has_function('doppelganger', 'dt_create_thing', ARRAY['jsonb']);
SELECT has_function('doppelganger', 'dt_get_thing', ARRAY['text', 'text']);
SELECT has_function('doppelganger', 'dt_update_thing', ARRAY['jsonb', 'text']);
SELECT has_function('doppelganger', 'dt_delete_thing', ARRAY['text', 'text', 'text']);
SELECT has_function('doppelganger', 'dt_patch_thing', ARRAY['text', 'text', 'jsonb', 'text']);
SELECT has_function('doppelganger', 'dt_merge_thing', ARRAY['text', 'text', 'jsonb', 'text']);
SELECT has_function('doppelganger', 'dt_report_state', ARRAY['text', 'text', 'jsonb', 'boolean']);
SELECT has_function('doppelganger', 'dt_set_desired_state', ARRAY['text', 'text', 'text', 'jsonb']);
SELECT has_function('doppelganger', 'dt_set_desired_value', ARRAY['text', 'text', 'text', 'jsonb', 'timestamp with time zone']);
SELECT has_function('doppelganger', 'dt_set_synthetic_state', ARRAY['text', 'text', 'text', 'jsonb']);
SELECT has_function('doppelganger', 'dt_delete_synthetic_state', ARRAY['text', 'text', 'text']);
SELECT has_function('doppelganger', 'dt_set_reconciliation', ARRAY['text', 'text', 'jsonb']);
SELECT has_function('doppelganger', 'dt_set_annotations', ARRAY['text', 'text', 'jsonb']);
SELECT has_function('doppelganger', 'dt_set_labels', ARRAY['text', 'text', 'jsonb']);
SELECT has_function('doppelganger', 'dt_list_things', ARRAY['text', 'text']);
SELECT has_function('doppelganger', 'dt_process_event', ARRAY['text', 'text', 'jsonb']);

SELECT function_returns('doppelganger', 'dt_delete_thing', ARRAY['text', 'text', 'text'], 'boolean');
SELECT function_returns('doppelganger', 'dt_list_things', ARRAY['text', 'text'], 'setof jsonb');
SELECT volatility_is('doppelganger', 'dt_get_thing', ARRAY['text', 'text'], 'stable');
SELECT volatility_is('doppelganger', 'dt_report_state', ARRAY['text', 'text', 'jsonb', 'boolean'], 'volatile');
-- optional arguments default as the contract says
SELECT is(doppelganger.dt_create_thing('{"metadata": {"application": "tap", "name": "d"}}') IS NOT NULL, true, 'create works');
SELECT is(doppelganger.dt_report_state('tap', 'd', '{"a": 1}') #>> '{reportedState,a,value}', '1', 'partial defaults to true');
SELECT is(doppelganger.dt_delete_thing('tap', 'd'), true, 'expected_resource_version defaults to NULL');
SELECT is((SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'doppelganger' AND p.proname LIKE 'dt\_%' AND p.prosecdef), 0,
          'no dt_ function is SECURITY DEFINER');

-- Kafka ingest
SELECT has_table('doppelganger', 'offsets', 'consumed offsets are stored in PostgreSQL');
SELECT col_is_pk('doppelganger', 'offsets', ARRAY['consumer_group', 'topic', 'partition']::name[],
                 'one offset per group, topic and partition');
SELECT has_table('doppelganger', 'dead_letters', 'dead letters are a table');
SELECT columns_are('doppelganger', 'dead_letters', ARRAY['id', 'topic', 'partition', 'offset', 'key',
    'payload', 'headers', 'application', 'thing', 'sqlstate', 'message', 'detail', 'created_at',
    'attempts', 'replayed_at']);
SELECT col_type_is('doppelganger', 'dead_letters', 'payload', 'bytea', 'payloads are kept byte for byte');
SELECT has_index('doppelganger', 'dead_letters', 'dead_letters_pending', 'id');
SELECT has_function('doppelganger', 'dt_replay_dead_letters', ARRAY['bigint[]']);
SELECT has_table('doppelganger', 'outbox', 'the outbox is a table');
SELECT columns_are('doppelganger', 'outbox', ARRAY['id', 'kind', 'application', 'source', 'target',
    'channel', 'message', 'hops', 'created_at']);
SELECT col_is_pk('doppelganger', 'outbox', 'id', 'outbox rows are delivered in id order');
SELECT has_index('doppelganger', 'outbox', 'outbox_source', ARRAY['application', 'source']);
SELECT table_privs_are('doppelganger', 'outbox', 'public', ARRAY[]::text[], 'PUBLIC has no privilege on the outbox');
SELECT has_table('doppelganger', 'grants', 'grants are a table');
SELECT col_is_pk('doppelganger', 'grants', ARRAY['application', 'grantee', 'privilege']::name[],
                 'one row per application, role and privilege');
SELECT has_function('doppelganger', 'dt_grant', ARRAY['text', 'name', 'text']);
SELECT has_function('doppelganger', 'dt_revoke', ARRAY['text', 'name', 'text']);
SELECT has_function('doppelganger', 'dt_can', ARRAY['text', 'text']);
SELECT has_view('doppelganger', 'dt_grants', 'dt_grants shows the grants by role name');
SELECT is((SELECT relrowsecurity FROM pg_class WHERE oid = 'doppelganger.things'::regclass), true,
          'row-level security is on for things');
SELECT policies_are('doppelganger', 'things', ARRAY['things_by_application'], 'one policy: read by application');
SELECT has_view('doppelganger', 'dt_stats', 'dt_stats shows the workers');
SELECT has_view('doppelganger', 'dt_partitions', 'dt_partitions shows the partitions');
SELECT columns_are('doppelganger', 'dt_stats', ARRAY['worker', 'kind', 'pid', 'state', 'events',
    'batches', 'dead_letters', 'conflicts', 'lag', 'last_batch', 'last_error', 'last_error_at']);
SELECT is((SELECT count(*)::int FROM doppelganger.dt_stats WHERE kind = 'processor'), 0,
          'no processor without doppelganger.kafka_brokers');
SELECT is((SELECT count(*)::int FROM doppelganger.dt_replay_dead_letters()), 0, 'nothing to replay');
SELECT is((SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'doppelganger launcher'), 1,
          'the launcher runs when the library is preloaded');

SELECT * FROM finish();
ROLLBACK;
