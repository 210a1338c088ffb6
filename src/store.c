/*-------------------------------------------------------------------------
 *
 * store.c
 *		Every SQL statement on doppelganger.things.
 *
 * Statements are prepared once per backend and kept (SPI_keepplan), always
 * parameterized.  They run as the owner of the things table, so that a role
 * allowed to call the API needs no privilege on the table itself: the API
 * decides what a caller may do, the store only stores.  The store never
 * decides semantics; it moves rows and JSON text.
 *
 * src/store.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/uuid.h"
#include "catalog/pg_collation.h"
#include "utils/fmgroids.h"

#include "doppelganger.h"

const char *const dg_section_names[DG_NSECTIONS] = {
	"labels", "annotations", "reported_state", "desired_state", "synthetic_state",
	"reconciliation", "schema", "internal"
};

#define THING_COLUMNS \
	"uid::text, creation_timestamp, deletion_timestamp, generation, resource_version::text, " \
	"labels, annotations, reported_state, desired_state, synthetic_state, reconciliation, " \
	"schema, internal, waker, application, name, ctid"
#define NCOLUMNS 16

static SPIPlanPtr plan_exists;
static SPIPlanPtr plan_insert;
static SPIPlanPtr plan_update;
static SPIPlanPtr plan_delete;
/* one plan per combination of selector parts, see dg_store_list */
static SPIPlanPtr plan_list[16];

static SPIPlanPtr
prepare(SPIPlanPtr *cache, const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan;

	if (*cache)
		return *cache;
	plan = SPI_prepare(sql, nargs, types);
	if (plan == NULL)
		elog(ERROR, "could not prepare statement: %s", SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep prepared statement");
	*cache = plan;
	return plan;
}

static Oid
things_owner(void)
{
	Oid			nsp = get_namespace_oid("doppelganger", false);
	Oid			relid = get_relname_relid("things", nsp);
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table doppelganger.things does not exist"),
				 errhint("Run CREATE EXTENSION doppelganger.")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Open the store: connect SPI and act as the table's owner.  The caller
 * keeps the identity to return to; an error unwinds both through the
 * (sub)transaction abort, which restores the user and SPI.
 */
void
dg_store_begin(DgStoreSave *save)
{
	GetUserIdAndSecContext(&save->user, &save->sec_context);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	SetUserIdAndSecContext(things_owner(),
						   save->sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

void
dg_store_end(DgStoreSave *save)
{
	SetUserIdAndSecContext(save->user, save->sec_context);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
}

void
dg_store_new_uuid(char *buf)
{
	unsigned char b[16];

	if (!pg_strong_random(b, sizeof(b)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random UUID")));
	b[6] = (b[6] & 0x0f) | 0x40;	/* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	snprintf(buf, DG_UUID_LEN,
			 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
			 b[10], b[11], b[12], b[13], b[14], b[15]);
}

static Datum
text_param(const char *s)
{
	return CStringGetTextDatum(s);
}

/* Copy one result row into *row, in the caller's memory. */
static void
read_row(HeapTuple tuple, TupleDesc desc, DgRow *row, MemoryContext target)
{
	MemoryContext old = MemoryContextSwitchTo(target);
	bool		isnull;
	Datum		d;

	d = SPI_getbinval(tuple, desc, 1, &isnull);
	strlcpy(row->uid, TextDatumGetCString(d), DG_UUID_LEN);
	row->creation = DatumGetTimestampTz(SPI_getbinval(tuple, desc, 2, &isnull));
	d = SPI_getbinval(tuple, desc, 3, &isnull);
	row->has_deletion = !isnull;
	row->deletion = isnull ? 0 : DatumGetTimestampTz(d);
	row->generation = DatumGetInt64(SPI_getbinval(tuple, desc, 4, &isnull));
	d = SPI_getbinval(tuple, desc, 5, &isnull);
	strlcpy(row->resource_version, TextDatumGetCString(d), DG_UUID_LEN);
	for (int i = 0; i < DG_NSECTIONS; i++)
	{
		d = SPI_getbinval(tuple, desc, 6 + i, &isnull);
		row->section_null[i] = isnull;
		row->sections[i] = isnull ? (Datum) 0 : PointerGetDatum(DatumGetJsonbPCopy(d));
	}
	d = SPI_getbinval(tuple, desc, 14, &isnull);
	row->has_waker = !isnull;
	row->waker = isnull ? 0 : DatumGetTimestampTz(d);
	row->application = TextDatumGetCString(SPI_getbinval(tuple, desc, 15, &isnull));
	row->name = TextDatumGetCString(SPI_getbinval(tuple, desc, 16, &isnull));
	d = SPI_getbinval(tuple, desc, 17, &isnull);
	ItemPointerCopy((ItemPointer) DatumGetPointer(d), &row->ctid);
	MemoryContextSwitchTo(old);
}

static void
uuid_text(Datum d, char *buf)
{
	const unsigned char *b = DatumGetUUIDP(d)->data;

	snprintf(buf, DG_UUID_LEN,
			 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
			 b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* Attribute numbers of the things table, found by name. */
static AttrNumber
attnum(Relation rel, const char *name)
{
	TupleDesc	desc = RelationGetDescr(rel);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	elog(ERROR, "column doppelganger.things.%s is missing", name);
	return InvalidAttrNumber;
}

/* Copy a heap row of things into *row, in the memory current at the call. */
static void
read_slot(Relation rel, TupleTableSlot *slot, DgRow *row)
{
	bool		isnull;
	Datum		d;

	slot_getallattrs(slot);
	row->application = TextDatumGetCString(slot_getattr(slot, attnum(rel, "application"), &isnull));
	row->name = TextDatumGetCString(slot_getattr(slot, attnum(rel, "name"), &isnull));
	uuid_text(slot_getattr(slot, attnum(rel, "uid"), &isnull), row->uid);
	row->creation = DatumGetTimestampTz(slot_getattr(slot, attnum(rel, "creation_timestamp"), &isnull));
	d = slot_getattr(slot, attnum(rel, "deletion_timestamp"), &isnull);
	row->has_deletion = !isnull;
	row->deletion = isnull ? 0 : DatumGetTimestampTz(d);
	row->generation = DatumGetInt64(slot_getattr(slot, attnum(rel, "generation"), &isnull));
	uuid_text(slot_getattr(slot, attnum(rel, "resource_version"), &isnull), row->resource_version);
	for (int i = 0; i < DG_NSECTIONS; i++)
	{
		d = slot_getattr(slot, attnum(rel, dg_section_names[i]), &isnull);
		row->section_null[i] = isnull;
		row->sections[i] = isnull ? (Datum) 0 : PointerGetDatum(DatumGetJsonbPCopy(d));
	}
	d = slot_getattr(slot, attnum(rel, "waker"), &isnull);
	row->has_waker = !isnull;
	row->waker = isnull ? 0 : DatumGetTimestampTz(d);
	ItemPointerCopy(&slot->tts_tid, &row->ctid);
}

/*
 * Load a thing, locking its row when it will be written: concurrent
 * writers of one thing queue on the row lock instead of losing updates.
 *
 * This is the hottest read of the pipeline, so it goes to the primary key
 * index and the table directly instead of through SPI and the executor.
 * The lock has the semantics of SELECT ... FOR NO KEY UPDATE: in READ
 * COMMITTED it waits for a concurrent writer and then locks the newest
 * version; under a transaction snapshot a concurrent change is a
 * serialization failure, as an UPDATE would raise.  The row is copied into
 * the memory context current at the call.
 */
bool
dg_store_load(const char *application, const char *name, bool lock, DgRow *row)
{
	Oid			relid = get_relname_relid("things", get_namespace_oid("doppelganger", false));
	Relation	rel;
	Relation	idx;
	IndexScanDesc scan;
	ScanKeyData keys[2];
	TupleTableSlot *slot;
	Snapshot	snapshot;
	bool		found;

	rel = table_open(relid, lock ? RowShareLock : AccessShareLock);
	idx = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
	/* see the writes of earlier commands of this transaction */
	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_TEXTEQ, CStringGetTextDatum(application));
	ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[1], F_TEXTEQ, CStringGetTextDatum(name));
	scan = index_beginscan(rel, idx, snapshot, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	slot = table_slot_create(rel, NULL);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	if (found && lock)
	{
		TM_FailureData tmfd;
		TM_Result	result;

		result = table_tuple_lock(rel, &slot->tts_tid, snapshot, slot,
								  GetCurrentCommandId(true), LockTupleNoKeyExclusive,
								  LockWaitBlock,
								  IsolationUsesXactSnapshot() ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
								  &tmfd);
		switch (result)
		{
			case TM_Ok:
			case TM_SelfModified:
				break;
			case TM_Deleted:
				if (IsolationUsesXactSnapshot())
					ereport(ERROR,
							(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							 errmsg("could not serialize access due to concurrent delete")));
				found = false;
				break;
			case TM_Updated:
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent update")));
				break;
			default:
				elog(ERROR, "unexpected result %d locking a thing", (int) result);
		}
	}
	if (found)
		read_slot(rel, slot, row);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return found;
}

bool
dg_store_exists(const char *application, const char *name)
{
	static Oid	types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	int			rc;

	values[0] = text_param(application);
	values[1] = text_param(name);
	rc = SPI_execute_plan(prepare(&plan_exists,
								  "SELECT 1 FROM doppelganger.things"
								  " WHERE application = $1 AND name = $2",
								  2, types),
						  values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "looking up a thing failed: %s", SPI_result_code_string(rc));
	return SPI_processed > 0;
}

/* Fill the parameters shared by insert and update, from position 2 on. */
static void
row_params(DgRow *row, Datum *values, char *nulls)
{
	values[0] = text_param(row->application);
	values[1] = text_param(row->name);
	values[2] = text_param(row->uid);
	values[3] = TimestampTzGetDatum(row->creation);
	values[4] = TimestampTzGetDatum(row->deletion);
	nulls[4] = row->has_deletion ? ' ' : 'n';
	values[5] = Int64GetDatum(row->generation);
	values[6] = text_param(row->resource_version);
	for (int i = 0; i < DG_NSECTIONS; i++)
	{
		values[7 + i] = row->sections[i];
		nulls[7 + i] = row->section_null[i] ? 'n' : ' ';
	}
	values[15] = TimestampTzGetDatum(row->waker);
	nulls[15] = row->has_waker ? ' ' : 'n';
}

static Oid	row_types[NCOLUMNS + 1] = {
	TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID, TEXTOID,
	JSONBOID, JSONBOID, JSONBOID, JSONBOID, JSONBOID, JSONBOID, JSONBOID, JSONBOID,
	TIMESTAMPTZOID, TIDOID
};

/* Insert a new thing; false if one with its name exists already. */
bool
dg_store_insert(DgRow *row)
{
	Datum		values[NCOLUMNS];
	char		nulls[NCOLUMNS];
	int			rc;

	memset(nulls, ' ', sizeof(nulls));
	row_params(row, values, nulls);
	rc = SPI_execute_plan(prepare(&plan_insert,
								  "INSERT INTO doppelganger.things (application, name, uid,"
								  " creation_timestamp, deletion_timestamp, generation,"
								  " resource_version, labels, annotations, reported_state,"
								  " desired_state, synthetic_state, reconciliation, schema,"
								  " internal, waker)"
								  " VALUES ($1, $2, $3::uuid, $4, $5, $6, $7::uuid, $8, $9,"
								  " $10, $11, $12, $13, $14, $15, $16)"
								  " ON CONFLICT (application, name) DO NOTHING",
								  NCOLUMNS, row_types),
						  values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "inserting a thing failed: %s", SPI_result_code_string(rc));
	return SPI_processed == 1;
}

/*
 * Write a thing whose row the caller has locked; the lock keeps its ctid
 * valid, and a TID scan is the cheapest way back to it.
 */
void
dg_store_update(DgRow *row)
{
	Datum		values[NCOLUMNS + 1];
	char		nulls[NCOLUMNS + 1];
	int			rc;

	memset(nulls, ' ', sizeof(nulls));
	row_params(row, values, nulls);
	values[NCOLUMNS] = PointerGetDatum(&row->ctid);
	rc = SPI_execute_plan(prepare(&plan_update,
								  "UPDATE doppelganger.things SET uid = $3::uuid,"
								  " creation_timestamp = $4, deletion_timestamp = $5,"
								  " generation = $6, resource_version = $7::uuid, labels = $8,"
								  " annotations = $9, reported_state = $10, desired_state = $11,"
								  " synthetic_state = $12, reconciliation = $13, schema = $14,"
								  " internal = $15, waker = $16"
								  " WHERE ctid = $17 AND application = $1 AND name = $2",
								  NCOLUMNS + 1, row_types),
						  values, nulls, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "updating a thing failed: %s", SPI_result_code_string(rc));
	if (SPI_processed != 1)
		elog(ERROR, "thing \"%s/%s\" vanished while its row was locked",
			 row->application, row->name);
}

bool
dg_store_delete(const char *application, const char *name)
{
	static Oid	types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	int			rc;

	values[0] = text_param(application);
	values[1] = text_param(name);
	rc = SPI_execute_plan(prepare(&plan_delete,
								  "DELETE FROM doppelganger.things"
								  " WHERE application = $1 AND name = $2",
								  2, types),
						  values, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "deleting a thing failed: %s", SPI_result_code_string(rc));
	return SPI_processed == 1;
}

static Datum
text_array(List *items)
{
	int			n = list_length(items);
	Datum	   *elems = palloc(sizeof(Datum) * (n + 1));
	int			i = 0;
	ListCell   *lc;

	foreach(lc, items)
		elems[i++] = CStringGetTextDatum((char *) lfirst(lc));
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

static Datum
jsonb_array(List *items)
{
	int			n = list_length(items);
	Datum	   *elems = palloc(sizeof(Datum) * (n + 1));
	int			i = 0;
	ListCell   *lc;

	foreach(lc, items)
		elems[i++] = dg_jsonb_from_text((char *) lfirst(lc));
	return PointerGetDatum(construct_array(elems, n, JSONBOID, -1, false, TYPALIGN_INT));
}

/*
 * The things of an application that match a selector, in name order.
 * Only the conditions the selector needs appear in the statement: a GIN
 * condition that matches everything (such as "?& '{}'") would make the
 * planner give up the labels index.  The SQL text is assembled from
 * constant fragments only; values are always parameters.
 */
void
dg_store_list(const char *application, DgSelector *selector,
			  DgRowCallback callback, void *arg)
{
	static Oid	types[5] = {TEXTOID, JSONBOID, TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID};
	static const char *const conditions[4] = {
		" AND labels @> $2", " AND labels ?& $3", " AND NOT labels ?| $4",
		" AND NOT labels @> ANY ($5)"
	};
	MemoryContext caller = CurrentMemoryContext;
	Datum		values[5];
	int			parts = 0;
	Portal		portal;

	if (selector->equals && strcmp(selector->equals, "{}") != 0)
		parts |= 1;
	if (selector->exists != NIL)
		parts |= 2;
	if (selector->absent != NIL)
		parts |= 4;
	if (selector->differs != NIL)
		parts |= 8;
	if (plan_list[parts] == NULL)
	{
		StringInfoData sql;

		initStringInfo(&sql);
		appendStringInfoString(&sql, "SELECT " THING_COLUMNS " FROM doppelganger.things"
							   " WHERE application = $1");
		for (int i = 0; i < 4; i++)
			if (parts & (1 << i))
				appendStringInfoString(&sql, conditions[i]);
		appendStringInfoString(&sql, " ORDER BY name");
		prepare(&plan_list[parts], sql.data, 5, types);
		pfree(sql.data);
	}
	values[0] = text_param(application);
	values[1] = dg_jsonb_from_text(selector->equals ? selector->equals : "{}");
	values[2] = text_array(selector->exists);
	values[3] = text_array(selector->absent);
	values[4] = jsonb_array(selector->differs);
	portal = SPI_cursor_open(NULL, plan_list[parts], values, NULL, true);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 100);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			DgRow		row;
			MemoryContext tmp = AllocSetContextCreate(caller, "doppelganger list row",
													  ALLOCSET_SMALL_SIZES);

			read_row(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, &row, tmp);
			callback(&row, arg);
			MemoryContextDelete(tmp);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
}
