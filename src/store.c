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
#include "common/pg_prng.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/inval.h"
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
static SPIPlanPtr plan_delete;
/* one plan per combination of selector parts, see dg_store_list */
static SPIPlanPtr plan_list[16];

/* A statement prepared on first use and kept for the backend's life. */
SPIPlanPtr
dg_store_prepare(SPIPlanPtr *cache, const char *sql, int nargs, Oid *types)
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

/*
 * What the store needs to know about doppelganger.things, looked up once
 * and forgotten on any relcache invalidation of the table (DROP, ALTER
 * OWNER, DROP EXTENSION), so the hot path does no catalog lookups by name.
 */
enum
{
	ATT_APPLICATION, ATT_NAME, ATT_UID, ATT_CREATION, ATT_DELETION, ATT_GENERATION,
	ATT_RESOURCE_VERSION, ATT_SECTIONS, ATT_WAKER = ATT_SECTIONS + DG_NSECTIONS, NATTS
};

static struct
{
	bool		valid;
	Oid			relid;
	Oid			pkey;
	Oid			owner;
	AttrNumber	att[NATTS];
}			things;

static void
things_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == things.relid)
		things.valid = false;
}

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

static void
things_lookup(void)
{
	static bool registered = false;
	static const char *const names[ATT_SECTIONS] = {
		"application", "name", "uid", "creation_timestamp", "deletion_timestamp",
		"generation", "resource_version"
	};
	Oid			nsp;
	Relation	rel;

	if (things.valid)
		return;
	if (!registered)
	{
		CacheRegisterRelcacheCallback(things_invalidate, (Datum) 0);
		registered = true;
	}
	nsp = get_namespace_oid("doppelganger", true);
	things.relid = OidIsValid(nsp) ? get_relname_relid("things", nsp) : InvalidOid;
	if (!OidIsValid(things.relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table doppelganger.things does not exist"),
				 errhint("Run CREATE EXTENSION doppelganger.")));
	rel = table_open(things.relid, AccessShareLock);
	things.owner = rel->rd_rel->relowner;
	things.pkey = RelationGetPrimaryKeyIndex(rel);
	for (int i = 0; i < ATT_SECTIONS; i++)
		things.att[i] = attnum(rel, names[i]);
	for (int i = 0; i < DG_NSECTIONS; i++)
		things.att[ATT_SECTIONS + i] = attnum(rel, dg_section_names[i]);
	things.att[ATT_WAKER] = attnum(rel, "waker");
	table_close(rel, AccessShareLock);
	things.valid = true;
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
	things_lookup();
	SetUserIdAndSecContext(things.owner,
						   save->sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

/* The owner of doppelganger.things, whose privileges need no grants. */
Oid
dg_store_owner(void)
{
	things_lookup();
	return things.owner;
}

void
dg_store_end(DgStoreSave *save)
{
	SetUserIdAndSecContext(save->user, save->sec_context);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
}

static void
format_uuid(const unsigned char *b, char *buf)
{
	static const char hex[] = "0123456789abcdef";
	char	   *p = buf;

	for (int i = 0; i < 16; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[b[i] >> 4];
		*p++ = hex[b[i] & 15];
	}
	*p = '\0';
}

/*
 * A version 4 UUID.  uids come from the strong random source; resource
 * versions, made on every write, from a per-process generator seeded from
 * it: they must be unique, not secret.
 */
void
dg_store_new_uuid(char *buf, bool strong)
{
	static pg_prng_state prng;
	static bool seeded = false;
	unsigned char b[16];

	if (strong || !seeded)
	{
		if (!pg_strong_random(b, sizeof(b)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a random UUID")));
		if (!seeded)
		{
			uint64		seed;

			memcpy(&seed, b, sizeof(seed));
			pg_prng_seed(&prng, seed ^ (uint64) MyProcPid);
			seeded = true;
		}
	}
	if (!strong)
	{
		uint64		r1 = pg_prng_uint64(&prng);
		uint64		r2 = pg_prng_uint64(&prng);

		memcpy(b, &r1, 8);
		memcpy(b + 8, &r2, 8);
	}
	b[6] = (b[6] & 0x0f) | 0x40;	/* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	format_uuid(b, buf);
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
	format_uuid(DatumGetUUIDP(d)->data, buf);
}

/* Copy a heap row of things into *row, in the memory current at the call. */
static void
read_slot(TupleTableSlot *slot, DgRow *row)
{
	bool		isnull;
	Datum		d;

	slot_getallattrs(slot);
	row->application = TextDatumGetCString(slot->tts_values[things.att[ATT_APPLICATION] - 1]);
	row->name = TextDatumGetCString(slot->tts_values[things.att[ATT_NAME] - 1]);
	uuid_text(slot->tts_values[things.att[ATT_UID] - 1], row->uid);
	row->creation = DatumGetTimestampTz(slot->tts_values[things.att[ATT_CREATION] - 1]);
	isnull = slot->tts_isnull[things.att[ATT_DELETION] - 1];
	row->has_deletion = !isnull;
	row->deletion = isnull ? 0 : DatumGetTimestampTz(slot->tts_values[things.att[ATT_DELETION] - 1]);
	row->generation = DatumGetInt64(slot->tts_values[things.att[ATT_GENERATION] - 1]);
	uuid_text(slot->tts_values[things.att[ATT_RESOURCE_VERSION] - 1], row->resource_version);
	for (int i = 0; i < DG_NSECTIONS; i++)
	{
		AttrNumber	a = things.att[ATT_SECTIONS + i];

		row->section_null[i] = slot->tts_isnull[a - 1];
		row->sections[i] = row->section_null[i] ? (Datum) 0 :
			PointerGetDatum(DatumGetJsonbPCopy(slot->tts_values[a - 1]));
	}
	d = slot->tts_values[things.att[ATT_WAKER] - 1];
	isnull = slot->tts_isnull[things.att[ATT_WAKER] - 1];
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
static bool
load_with(Relation rel, Relation idx, const char *application, const char *name,
		  bool lock, DgRow *row)
{
	IndexScanDesc scan;
	ScanKeyData keys[2];
	TupleTableSlot *slot;
	Snapshot	snapshot;
	bool		found;

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
		read_slot(slot, row);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	return found;
}

bool
dg_store_load(const char *application, const char *name, bool lock, DgRow *row)
{
	Relation	rel;
	Relation	idx;
	bool		found;

	things_lookup();
	rel = table_open(things.relid, lock ? RowShareLock : AccessShareLock);
	idx = index_open(things.pkey, AccessShareLock);
	found = load_with(rel, idx, application, name, lock, row);
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
	rc = SPI_execute_plan(dg_store_prepare(&plan_exists,
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

static Oid	row_types[NCOLUMNS] = {
	TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID, TEXTOID,
	JSONBOID, JSONBOID, JSONBOID, JSONBOID, JSONBOID, JSONBOID, JSONBOID, JSONBOID,
	TIMESTAMPTZOID
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
	rc = SPI_execute_plan(dg_store_prepare(&plan_insert,
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
 * The writer: updates of locked rows without a plan.  It goes the way
 * logical replication applies an update (ExecSimpleRelationUpdate): row
 * triggers fire, NOT NULL is checked, indexes get new entries only when
 * the update cannot stay on its page.  One writer serves any number of
 * updates, so a batch pays the executor's setup once.
 */
struct DgWriter
{
	EState	   *estate;
	ResultRelInfo *rri;
	Relation	rel;
	Relation	pkey;
	EPQState	epq;
	TupleTableSlot *oldslot;
	TupleTableSlot *newslot;
};

DgWriter *
dg_writer_begin(void)
{
	DgWriter   *w = palloc0(sizeof(DgWriter));
	RangeTblEntry *rte = makeNode(RangeTblEntry);

	things_lookup();
	w->rel = table_open(things.relid, RowExclusiveLock);
	w->estate = CreateExecutorState();
	rte->rtekind = RTE_RELATION;
	rte->relid = things.relid;
	rte->relkind = RELKIND_RELATION;
	rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(w->estate, list_make1(rte));
	w->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(w->rri, w->rel, 1, NULL, 0);
	w->estate->es_opened_result_relations = list_make1(w->rri);
	w->estate->es_output_cid = GetCurrentCommandId(true);
	w->estate->es_snapshot = GetTransactionSnapshot();
	ExecOpenIndices(w->rri, false);
	w->pkey = index_open(things.pkey, AccessShareLock);
	EvalPlanQualInit(&w->epq, w->estate, NULL, NIL, -1);
	w->oldslot = ExecInitExtraTupleSlot(w->estate, RelationGetDescr(w->rel),
										table_slot_callbacks(w->rel));
	w->newslot = ExecInitExtraTupleSlot(w->estate, RelationGetDescr(w->rel),
										&TTSOpsVirtual);
	AfterTriggerBeginQuery();
	return w;
}

void
dg_writer_end(DgWriter *w)
{
	AfterTriggerEndQuery(w->estate);
	EvalPlanQualEnd(&w->epq);
	ExecCloseResultRelations(w->estate);
	ExecResetTupleTable(w->estate->es_tupleTable, false);
	FreeExecutorState(w->estate);
	index_close(w->pkey, NoLock);
	table_close(w->rel, NoLock);
	pfree(w);
	/* later reads of this transaction see the new versions */
	CommandCounterIncrement();
}

static Datum
uuid_datum(const char *text)
{
	pg_uuid_t  *u = palloc(sizeof(pg_uuid_t));
	int			n = 0;

	for (const char *p = text; *p && n < 32; p++)
	{
		int			v;

		if (*p == '-')
			continue;
		v = (*p >= '0' && *p <= '9') ? *p - '0' : (*p | 0x20) - 'a' + 10;
		if (v < 0 || v > 15)
			elog(ERROR, "malformed UUID \"%s\"", text);
		if (n % 2 == 0)
			u->data[n / 2] = v << 4;
		else
			u->data[n / 2] |= v;
		n++;
	}
	if (n != 32)
		elog(ERROR, "malformed UUID \"%s\"", text);
	return UUIDPGetDatum(u);
}

/*
 * Write a thing whose row the caller has locked (row->ctid is its
 * version); row->ctid becomes the new version's.  Identity, uid and
 * creation time never change, so they are taken from the stored row.
 */
void
dg_writer_update(DgWriter *w, DgRow *row)
{
	TupleTableSlot *old = w->oldslot;
	TupleTableSlot *new = w->newslot;
	int			natts = RelationGetDescr(w->rel)->natts;

	if (!table_tuple_fetch_row_version(w->rel, &row->ctid, SnapshotAny, old))
		elog(ERROR, "thing \"%s/%s\" vanished while its row was locked",
			 row->application, row->name);
	slot_getallattrs(old);
	ExecClearTuple(new);
	memcpy(new->tts_values, old->tts_values, sizeof(Datum) * natts);
	memcpy(new->tts_isnull, old->tts_isnull, sizeof(bool) * natts);
#define SET(a, value, null) \
	(new->tts_values[things.att[a] - 1] = (value), new->tts_isnull[things.att[a] - 1] = (null))
	SET(ATT_DELETION, TimestampTzGetDatum(row->deletion), !row->has_deletion);
	SET(ATT_GENERATION, Int64GetDatum(row->generation), false);
	SET(ATT_RESOURCE_VERSION, uuid_datum(row->resource_version), false);
	for (int i = 0; i < DG_NSECTIONS; i++)
		SET(ATT_SECTIONS + i, row->sections[i], row->section_null[i]);
	SET(ATT_WAKER, TimestampTzGetDatum(row->waker), !row->has_waker);
#undef SET
	ExecStoreVirtualTuple(new);
	ExecSimpleRelationUpdate(w->rri, w->estate, &w->epq, old, new);
	ItemPointerCopy(&new->tts_tid, &row->ctid);
}

/* A locked load through the writer's open table and index (for batches). */
bool
dg_writer_load(DgWriter *w, const char *application, const char *name, DgRow *row)
{
	return load_with(w->rel, w->pkey, application, name, true, row);
}

/* One update with a writer of its own. */
void
dg_store_update(DgRow *row)
{
	DgWriter   *w = dg_writer_begin();

	dg_writer_update(w, row);
	dg_writer_end(w);
}

bool
dg_store_delete(const char *application, const char *name)
{
	static Oid	types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	int			rc;

	values[0] = text_param(application);
	values[1] = text_param(name);
	rc = SPI_execute_plan(dg_store_prepare(&plan_delete,
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
		dg_store_prepare(&plan_list[parts], sql.data, 5, types);
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
