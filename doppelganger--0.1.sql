/* doppelganger--0.1.sql: the digital-twin engine's schema and SQL API */

\echo Use "CREATE EXTENSION doppelganger" to load this file. \quit

/*
 * One row per thing.  Each section of the reference JSON model has its own
 * column so that plain SQL can read it; the system-owned metadata has typed
 * columns.  Writes go through the dt_* functions only.
 */
CREATE TABLE doppelganger.things (
    application         text NOT NULL,
    name                text NOT NULL,
    uid                 uuid NOT NULL,
    creation_timestamp  timestamptz NOT NULL,
    deletion_timestamp  timestamptz,
    generation          bigint NOT NULL,
    resource_version    uuid NOT NULL,
    labels              jsonb NOT NULL DEFAULT '{}',
    annotations         jsonb NOT NULL DEFAULT '{}',
    reported_state      jsonb NOT NULL DEFAULT '{}',
    desired_state       jsonb NOT NULL DEFAULT '{}',
    synthetic_state     jsonb NOT NULL DEFAULT '{}',
    reconciliation      jsonb NOT NULL DEFAULT '{}',
    schema              jsonb,
    internal            jsonb NOT NULL DEFAULT '{}',
    waker               timestamptz,
    PRIMARY KEY (application, name)
) WITH (fillfactor = 70);
-- Things are updated far more often than inserted: free space on each page
-- lets an update stay on its page (HOT) without touching the indexes.
-- Names (application up to 64 characters, thing up to 256) are checked by
-- the API; CHECK constraints here would be re-read on every write.

COMMENT ON TABLE doppelganger.things IS
    'Digital twins, one row per thing; change them with the dt_* functions';
COMMENT ON COLUMN doppelganger.things.labels IS 'metadata.labels: text to text';
COMMENT ON COLUMN doppelganger.things.annotations IS 'metadata.annotations: text to text';
COMMENT ON COLUMN doppelganger.things.reported_state IS
    'reportedState: feature name to {"value", "lastUpdate"}';
COMMENT ON COLUMN doppelganger.things.desired_state IS 'desiredState: feature name to desired feature';
COMMENT ON COLUMN doppelganger.things.synthetic_state IS 'syntheticState: feature name to synthetic feature';
COMMENT ON COLUMN doppelganger.things.reconciliation IS 'reconciliation: {"changed", "timers", "deleting"}';
COMMENT ON COLUMN doppelganger.things.schema IS 'schema: {"json": {"version": "draft7", "schema": ...}}, or NULL';
COMMENT ON COLUMN doppelganger.things.internal IS 'internal: {"waker", "outbox"}, system-owned';
COMMENT ON COLUMN doppelganger.things.waker IS 'internal.waker.when: when the waker processes the thing next';

CREATE INDEX things_labels ON doppelganger.things USING gin (labels);
CREATE INDEX things_waker ON doppelganger.things (waker) WHERE waker IS NOT NULL;

SELECT pg_catalog.pg_extension_config_dump('doppelganger.things', '');

/* ---- the SQL API ---- */

CREATE FUNCTION doppelganger.dt_create_thing(thing jsonb)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dg_create_thing'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION doppelganger.dt_create_thing(jsonb) IS
    'Create a thing from its JSON; 23505 if it exists';

CREATE FUNCTION doppelganger.dt_get_thing(application text, name text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dg_get_thing'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION doppelganger.dt_get_thing(text, text) IS
    'The thing as JSON, or NULL if it does not exist';

CREATE FUNCTION doppelganger.dt_update_thing(thing jsonb, expected_resource_version text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dg_update_thing'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION doppelganger.dt_update_thing(jsonb, text) IS
    'Replace a whole thing (its identity comes from metadata); PT412 on a stale resource version';

CREATE FUNCTION doppelganger.dt_delete_thing(application text, name text,
                                             expected_resource_version text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dg_delete_thing'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION doppelganger.dt_delete_thing(text, text, text) IS
    'Delete a thing; false if it did not exist';

CREATE FUNCTION doppelganger.dt_patch_thing(application text, name text, patch jsonb,
                                            expected_resource_version text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dg_patch_thing'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION doppelganger.dt_patch_thing(text, text, jsonb, text) IS
    'Apply an RFC 6902 JSON patch to the thing, all or nothing';

CREATE FUNCTION doppelganger.dt_merge_thing(application text, name text, merge jsonb,
                                            expected_resource_version text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dg_merge_thing'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION doppelganger.dt_merge_thing(text, text, jsonb, text) IS
    'Apply an RFC 7396 JSON merge patch to the thing';

CREATE FUNCTION doppelganger.dt_report_state(application text, name text, state jsonb,
                                             partial boolean DEFAULT true)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dg_report_state'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION doppelganger.dt_report_state(text, text, jsonb, boolean) IS
    'Report device state: merge into (partial) or replace the reported state';

CREATE FUNCTION doppelganger.dt_set_desired_state(application text, name text, feature text,
                                                  desired jsonb)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dg_set_desired_state'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION doppelganger.dt_set_desired_state(text, text, text, jsonb) IS
    'Create or update a desired feature: {value, validUntil, validFor, mode, reconciliation, method}';

CREATE FUNCTION doppelganger.dt_set_desired_value(application text, name text, feature text,
                                                  value jsonb, valid_until timestamptz DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dg_set_desired_value'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION doppelganger.dt_set_desired_value(text, text, text, jsonb, timestamptz) IS
    'Set the value of an existing desired feature, optionally valid until a time';

CREATE FUNCTION doppelganger.dt_set_synthetic_state(application text, name text, feature text,
                                                    definition jsonb)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dg_set_synthetic_state'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION doppelganger.dt_set_synthetic_state(text, text, text, jsonb) IS
    'Define a synthetic feature: {"alias": ...}, {"javaScript": ...} or {"function": ...}';

CREATE FUNCTION doppelganger.dt_delete_synthetic_state(application text, name text, feature text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dg_delete_synthetic_state'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION doppelganger.dt_delete_synthetic_state(text, text, text) IS
    'Remove a synthetic feature (no error if it does not exist)';

CREATE FUNCTION doppelganger.dt_set_reconciliation(application text, name text,
                                                   reconciliation jsonb)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dg_set_reconciliation'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION doppelganger.dt_set_reconciliation(text, text, jsonb) IS
    'Replace the whole reconciliation section: {changed, timers, deleting}';

CREATE FUNCTION doppelganger.dt_set_annotations(application text, name text, annotations jsonb)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dg_set_annotations'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION doppelganger.dt_set_annotations(text, text, jsonb) IS
    'Set annotations; a null value removes the key';

CREATE FUNCTION doppelganger.dt_set_labels(application text, name text, labels jsonb)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dg_set_labels'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION doppelganger.dt_set_labels(text, text, jsonb) IS
    'Set labels; a null value removes the key';

CREATE FUNCTION doppelganger.dt_list_things(application text, label_selector text DEFAULT NULL)
RETURNS SETOF jsonb
AS 'MODULE_PATHNAME', 'dg_list_things'
LANGUAGE C STABLE PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION doppelganger.dt_list_things(text, text) IS
    'The things of an application, optionally filtered by a label selector such as "a=b,c!=d,e,!f"';

CREATE FUNCTION doppelganger.dt_process_event(application text, name text, message jsonb)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dg_process_event'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION doppelganger.dt_process_event(text, text, jsonb) IS
    'Apply an event message (reportState, merge, patch, setDesiredValue, wakeup, registerChild, unregisterChild) as the Kafka processor does';

/* ---- Kafka ingest ---- */

/*
 * The next offset to consume of each partition, written in the same
 * transaction as the state its events produced: exactly-once effect.
 */
CREATE TABLE doppelganger.offsets (
    consumer_group  text NOT NULL,
    topic           text NOT NULL,
    partition       integer NOT NULL,
    next_offset     bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
COMMENT ON TABLE doppelganger.offsets IS
    'Consumed Kafka offsets, stored with the state they produced';
SELECT pg_catalog.pg_extension_config_dump('doppelganger.offsets', '');

/* Events that could not be applied, with everything needed to try again. */
CREATE TABLE doppelganger.dead_letters (
    id              bigserial PRIMARY KEY,
    topic           text,
    partition       integer,
    "offset"        bigint,
    key             bytea,
    payload         bytea,
    headers         jsonb,
    application     text,
    thing           text,
    sqlstate        text NOT NULL,
    message         text NOT NULL,
    detail          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 1,
    replayed_at     timestamptz
);
CREATE INDEX dead_letters_pending ON doppelganger.dead_letters (id) WHERE replayed_at IS NULL;
COMMENT ON TABLE doppelganger.dead_letters IS
    'Events that could not be applied; dt_replay_dead_letters tries them again';
SELECT pg_catalog.pg_extension_config_dump('doppelganger.dead_letters', '');
SELECT pg_catalog.pg_extension_config_dump('doppelganger.dead_letters_id_seq', '');

CREATE FUNCTION doppelganger.dt_replay_dead_letters(ids bigint[] DEFAULT NULL)
RETURNS TABLE (id bigint, replayed boolean, sqlstate text, message text)
AS 'MODULE_PATHNAME', 'dg_replay_dead_letters'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION doppelganger.dt_replay_dead_letters(bigint[]) IS
    'Apply pending dead letters (all, or the given ids) again; one row per letter tried';

CREATE FUNCTION doppelganger.dt_worker_stats(
    OUT worker integer, OUT kind text, OUT pid integer, OUT state text,
    OUT events bigint, OUT batches bigint, OUT dead_letters bigint, OUT conflicts bigint,
    OUT lag bigint, OUT last_batch timestamptz, OUT last_error text, OUT last_error_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dg_worker_stats'
LANGUAGE C VOLATILE;

CREATE FUNCTION doppelganger.dt_partition_stats(
    OUT worker integer, OUT topic text, OUT partition integer,
    OUT "position" bigint, OUT high_watermark bigint, OUT lag bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dg_partition_stats'
LANGUAGE C VOLATILE;

CREATE VIEW doppelganger.dt_stats AS SELECT * FROM doppelganger.dt_worker_stats();
COMMENT ON VIEW doppelganger.dt_stats IS
    'One row per background worker: events, batches, dead letters, conflicts, lag, last error';
CREATE VIEW doppelganger.dt_partitions AS SELECT * FROM doppelganger.dt_partition_stats();
COMMENT ON VIEW doppelganger.dt_partitions IS
    'One row per consumed partition: position, high watermark, lag';

/* ---- the outbox ---- */

/*
 * What a thing's processing sends out, written in the same transaction as
 * its state: events for other things, commands for devices and (with
 * doppelganger.notifications_topic) the changed things.  The relay worker
 * delivers the rows in id order and deletes them.
 */
CREATE TABLE doppelganger.outbox (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('event', 'command', 'notification')),
    application     text NOT NULL,
    source          text NOT NULL,
    target          text NOT NULL,
    channel         text,
    message         jsonb,
    hops            integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_source ON doppelganger.outbox (application, source);
COMMENT ON TABLE doppelganger.outbox IS
    'Events, commands and notifications waiting for the relay; one row each, delivered in id order';
COMMENT ON COLUMN doppelganger.outbox.target IS 'the thing an event is for, or the device a command is for';
COMMENT ON COLUMN doppelganger.outbox.hops IS 'how many event handovers led here; past doppelganger.max_hops it is a dead letter';
SELECT pg_catalog.pg_extension_config_dump('doppelganger.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('doppelganger.outbox_id_seq', '');

/* ---- per-application access ---- */

/*
 * Who may read or write the things of an application.  Every dt_* function
 * checks it for its caller, and so does the row-level security of
 * doppelganger.things for direct reads.  The owner of doppelganger.things
 * and superusers need no grant.
 */
CREATE TABLE doppelganger.grants (
    application     text NOT NULL,
    grantee         oid NOT NULL,
    privilege       text NOT NULL CHECK (privilege IN ('read', 'write')),
    PRIMARY KEY (application, grantee, privilege)
);
COMMENT ON TABLE doppelganger.grants IS
    'Read or write on an application (''*'': all) for a role (0: PUBLIC); write includes read';
SELECT pg_catalog.pg_extension_config_dump('doppelganger.grants', '');

CREATE FUNCTION doppelganger.dt_grant(application text, role name, privilege text DEFAULT 'write')
RETURNS boolean
AS 'MODULE_PATHNAME', 'dg_grant'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION doppelganger.dt_grant(text, name, text) IS
    'give a role (or "public") read or write on an application, or on "*" (all); true if it is new';

CREATE FUNCTION doppelganger.dt_revoke(application text, role name, privilege text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dg_revoke'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION doppelganger.dt_revoke(text, name, text) IS
    'take back write, read (and with it write) or, with NULL, both; true if the role had it';

CREATE FUNCTION doppelganger.dt_can(application text, privilege text DEFAULT 'read')
RETURNS boolean
AS 'MODULE_PATHNAME', 'dg_can'
LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION doppelganger.dt_can(text, text) IS
    'whether the current role may read (or write) the things of an application';

CREATE VIEW doppelganger.dt_grants AS
    SELECT g.application,
           CASE WHEN g.grantee = 0 THEN 'public' ELSE coalesce(r.rolname::text, g.grantee::text) END AS role,
           g.privilege
    FROM doppelganger.grants g LEFT JOIN pg_catalog.pg_roles r ON r.oid = g.grantee;
COMMENT ON VIEW doppelganger.dt_grants IS 'the grants, with role names';

/* direct reads of the table see the applications the reader may read */
ALTER TABLE doppelganger.things ENABLE ROW LEVEL SECURITY;
CREATE POLICY things_by_application ON doppelganger.things FOR SELECT
    USING (doppelganger.dt_can(application, 'read'));

/*
 * Nobody but the owner may touch the tables or call the API until granted;
 * the functions store as the table's owner, so callers need EXECUTE only.
 */
REVOKE ALL ON ALL TABLES IN SCHEMA doppelganger FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA doppelganger FROM PUBLIC;
/* the policy calls it as the reader; it only answers about the caller */
GRANT EXECUTE ON FUNCTION doppelganger.dt_can(text, text) TO PUBLIC;
