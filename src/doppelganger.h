/*-------------------------------------------------------------------------
 *
 * doppelganger.h
 *		Declarations shared by the PostgreSQL-facing files: settings, the
 *		store (every SPI statement) and the entry points of the service.
 *
 * This header never includes json-c: utils/builtins.h declares a function
 * named json_object, which clashes with json-c's type of the same name, so
 * files that need both worlds talk through plain C strings and Datums.
 *
 * src/doppelganger.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef DOPPELGANGER_H
#define DOPPELGANGER_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "storage/itemptr.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/jsonb.h"

#include "opkind.h"

/* ---- settings (doppelganger.c) ---- */
extern char *dg_database;
extern char *dg_kafka_brokers;
extern char *dg_kafka_properties;
extern char *dg_events_topic;
extern char *dg_topic_formats;
extern char *dg_consumer_group;
extern int	dg_processor_workers;
extern int	dg_batch_size;
extern int	dg_batch_timeout;
extern int	dg_max_event_size;
extern int	dg_hook_timeout;
extern int	dg_hook_memory;
extern char *dg_commands_topic;
extern char *dg_notifications_topic;
extern int	dg_max_hops;
extern int	dg_waker_interval;

/* ---- stats.c: shared memory, one slot per worker ---- */

#define DG_MAX_PROCESSORS 32
#define DG_SLOT_WAKER DG_MAX_PROCESSORS
#define DG_SLOT_RELAY (DG_MAX_PROCESSORS + 1)
#define DG_MAX_SLOTS (DG_MAX_PROCESSORS + 2)
#define DG_MAX_PARTITIONS 32

typedef enum DgWorkerKind
{
	DG_WORKER_NONE = 0,
	DG_WORKER_PROCESSOR,
	DG_WORKER_WAKER,
	DG_WORKER_RELAY
} DgWorkerKind;

typedef struct DgPartitionStat
{
	char		topic[NAMEDATALEN];
	int32		partition;
	int64		position;		/* next offset to consume, -1 if unknown */
	int64		high_watermark; /* -1 if unknown */
} DgPartitionStat;

typedef struct DgWorkerStat
{
	slock_t		mutex;
	DgWorkerKind kind;
	pid_t		pid;
	char		state[64];
	uint64		events;
	uint64		batches;
	uint64		dead_letters;
	uint64		conflicts;
	TimestampTz started;
	TimestampTz last_batch;
	char		last_error[256];
	TimestampTz last_error_at;
	int			npartitions;
	DgPartitionStat partitions[DG_MAX_PARTITIONS];
} DgWorkerStat;

typedef struct DgShared
{
	pid_t		launcher_pid;
	Latch	   *relay_latch;	/* set by the relay; backends wake it at commit */
	Latch	   *waker_latch;	/* likewise for the waker */
	DgWorkerStat workers[DG_MAX_SLOTS];
} DgShared;

extern Size dg_shared_size(void);
extern void dg_shared_register(void);
extern DgShared *dg_shared(void);
extern DgWorkerStat *dg_worker_slot(int slot);
extern DgWorkerStat *dg_worker_attach(int slot, DgWorkerKind kind);
extern void dg_worker_detach(DgWorkerStat *w);
extern void dg_worker_state(DgWorkerStat *w, const char *state);
extern void dg_worker_error(DgWorkerStat *w, const char *message);
extern void dg_worker_count(DgWorkerStat *w, uint64 events, uint64 dead_letters, uint64 conflicts);
extern void dg_worker_partitions(DgWorkerStat *w, DgPartitionStat *parts, int n);
#define DG_WAKE_RELAY_AT_COMMIT 1
#define DG_WAKE_WAKER_AT_COMMIT 2
extern void dg_wake_at_commit(int which);

/* ---- worker.c: what every background worker does the same way ---- */
extern DgWorkerStat *dg_worker_start(int slot, DgWorkerKind kind, const char *name);
extern void dg_worker_reload(void);
extern void dg_worker_nap(int ms);
extern bool dg_worker_transaction(void (*fn) (void *), void *arg);
extern void dg_worker_wait_for_extension(void);

/* ---- acl.c: per-application grants ---- */

/* as dg.h's DG_MAX_APPLICATION_LEN, which this header cannot include */
#define DG_MAX_APPLICATION 64

typedef enum DgPrivilege
{
	DG_PRIV_READ,
	DG_PRIV_WRITE
} DgPrivilege;

extern bool dg_acl_allowed(const char *application, DgPrivilege privilege);
extern void dg_acl_require(const char *application, DgPrivilege privilege);

/* ---- store.c ---- */

/* The JSON columns of a row, in table order. */
typedef enum DgSection
{
	DG_SEC_LABELS,
	DG_SEC_ANNOTATIONS,
	DG_SEC_REPORTED,
	DG_SEC_DESIRED,
	DG_SEC_SYNTHETIC,
	DG_SEC_RECONCILIATION,
	DG_SEC_SCHEMA,
	DG_SEC_INTERNAL,
	DG_NSECTIONS
} DgSection;

extern const char *const dg_section_names[DG_NSECTIONS];

#define DG_UUID_LEN 37

typedef struct DgRow
{
	char	   *application;
	char	   *name;
	char		uid[DG_UUID_LEN];
	TimestampTz creation;
	bool		has_deletion;
	TimestampTz deletion;
	int64		generation;
	char		resource_version[DG_UUID_LEN];
	/* each section's jsonb; as loaded, or as to be written */
	Datum		sections[DG_NSECTIONS];
	bool		section_null[DG_NSECTIONS];
	ItemPointerData ctid;		/* of the locked row */
	bool		has_waker;
	TimestampTz waker;
} DgRow;

/* A parsed label selector; see selector.c. */
typedef struct DgSelector
{
	char	   *equals;			/* JSON object every label of which must match */
	List	   *exists;			/* keys that must be present (char *) */
	List	   *absent;			/* keys that must be missing (char *) */
	List	   *differs;		/* JSON objects {k: v} that must not match */
} DgSelector;

typedef void (*DgRowCallback) (DgRow *row, void *arg);

typedef struct DgStoreSave
{
	Oid			user;
	int			sec_context;
} DgStoreSave;

extern SPIPlanPtr dg_store_prepare(SPIPlanPtr *cache, const char *sql, int nargs, Oid *types);
extern void dg_store_begin(DgStoreSave *save);
extern void dg_store_end(DgStoreSave *save);
extern Oid	dg_store_owner(void);
extern bool dg_store_exists(const char *application, const char *name);
extern bool dg_store_load(const char *application, const char *name, bool lock, DgRow *row);
extern bool dg_store_insert(DgRow *row);
extern void dg_store_update(DgRow *row);

/* Updates of locked rows, any number through one writer. */
typedef struct DgWriter DgWriter;
extern DgWriter *dg_writer_begin(void);
extern void dg_writer_update(DgWriter *w, DgRow *row);
extern bool dg_writer_load(DgWriter *w, const char *application, const char *name, DgRow *row);
extern void dg_writer_end(DgWriter *w);
extern bool dg_store_delete(const char *application, const char *name);
extern void dg_store_list(const char *application, DgSelector *selector,
						  DgRowCallback callback, void *arg);
extern void dg_store_new_uuid(char *buf, bool strong);

/* ---- pgjson.c: text and jsonb ---- */
extern Datum dg_jsonb_from_text(const char *text);
extern char *dg_jsonb_to_text(Jsonb *jsonb);

/* ---- selector.c ---- */
extern void dg_selector_parse(const char *text, DgSelector *selector);

/* ---- time conversions ---- */
/* nanoseconds since the Unix epoch <-> TimestampTz */
#define DG_UNIX_EPOCH_OFFSET_US INT64CONST(946684800000000)
#define dg_time_from_timestamptz(ts) (((int64) (ts) + DG_UNIX_EPOCH_OFFSET_US) * 1000)
#define dg_timestamptz_from_time(t) ((TimestampTz) ((t) / 1000 - DG_UNIX_EPOCH_OFFSET_US))

/* ---- service.c: what the SQL API calls ---- */

/* An operation request as the SQL API receives it. */
typedef struct DgRequest
{
	DgOpKind	kind;
	const char *application;
	const char *name;
	Jsonb	   *arg;			/* payload; NULL for none */
	bool		partial;		/* report state */
	const char *feature;		/* synthetic/desired feature */
	bool		has_valid_until;
	TimestampTz valid_until;	/* set desired value */
	const char *expected_version;	/* NULL: no precondition */
} DgRequest;

extern void dg_service_check_application(const char *application);
extern Jsonb *dg_service_create(Jsonb *thing);
extern Jsonb *dg_service_get(const char *application, const char *name);
extern Jsonb *dg_service_update(DgRequest *req);
extern bool dg_service_delete(const char *application, const char *name,
							  const char *expected_version);
extern Jsonb *dg_service_process_event(const char *application, const char *name,
									   Jsonb *message);
/* Calls emit for every thing of the application matching the selector. */
extern void dg_service_list(const char *application, const char *selector,
							void (*emit) (Jsonb *thing, void *arg), void *arg);

#endif							/* DOPPELGANGER_H */
