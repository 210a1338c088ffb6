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
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "storage/itemptr.h"
#include "utils/jsonb.h"

#include "opkind.h"

/* ---- settings (doppelganger.c) ---- */
extern char *dg_database;

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

extern void dg_store_begin(DgStoreSave *save);
extern void dg_store_end(DgStoreSave *save);
extern bool dg_store_exists(const char *application, const char *name);
extern bool dg_store_load(const char *application, const char *name, bool lock, DgRow *row);
extern bool dg_store_insert(DgRow *row);
extern void dg_store_update(DgRow *row);

/* Updates of locked rows, any number through one writer. */
typedef struct DgWriter DgWriter;
extern DgWriter *dg_writer_begin(void);
extern void dg_writer_update(DgWriter *w, DgRow *row);
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
