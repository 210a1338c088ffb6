/*-------------------------------------------------------------------------
 *
 * deadletter.c
 *		Events that cannot be applied, and replaying them.
 *
 * A dead letter keeps everything needed to try again: the record (topic,
 * partition, offset, key, value, headers) and why it failed (SQLSTATE,
 * message).  It is written in the same transaction as the rest of its
 * batch, so the offset never moves past an event that was neither applied
 * nor kept.  dt_replay_dead_letters decodes and applies them again exactly
 * as the processor would, each in a subtransaction.
 *
 * src/deadletter.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/resowner.h"

#include "mb/pg_wchar.h"
#include "pgbuiltins.h"
#include "kafka.h"
#include "service.h"

static SPIPlanPtr plan_insert;
static SPIPlanPtr plan_pending;
static SPIPlanPtr plan_done;
static SPIPlanPtr plan_failed;

static Datum
bytea_datum(const char *data, size_t len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), data, len);
	return PointerGetDatum(b);
}

/* The headers as a JSON object of strings (a header without value is null). */
static Datum
headers_datum(const DgKafkaRecord *rec)
{
	json_object *obj = json_object_new_object();
	Datum		d;

	for (int i = 0; i < rec->nheaders; i++)
	{
		const DgKafkaHeader *h = &rec->headers[i];

		/* only text headers survive; binary ones would not be valid JSON */
		if (h->value && pg_verifymbstr(h->value, (int) h->len, true) &&
			memchr(h->value, '\0', h->len) == NULL)
			dg_json_set(obj, h->name, json_object_new_string_len(h->value, (int) h->len));
		else
			dg_json_set(obj, h->name, NULL);
	}
	PG_TRY();
	{
		d = PointerGetDatum(dg_jsonb_from_jsonc(obj));
	}
	PG_FINALLY();
	{
		json_object_put(obj);
	}
	PG_END_TRY();
	return d;
}

/* Store a dead letter; the caller has SPI connected. */
void
dg_dead_letter_insert(const DgKafkaRecord *rec, const char *application, const char *name,
					  const char *sqlstate, const char *message, const char *detail)
{
	static Oid	types[11] = {TEXTOID, INT4OID, INT8OID, BYTEAOID, BYTEAOID, JSONBOID,
	TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[11];
	char		nulls[11];
	int			rc;

	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(rec->topic);
	values[1] = Int32GetDatum(rec->partition);
	values[2] = Int64GetDatum(rec->offset);
	if (rec->key)
		values[3] = bytea_datum(rec->key, rec->key_len);
	else
		nulls[3] = 'n';
	if (rec->payload)
		values[4] = bytea_datum(rec->payload, rec->len);
	else
		nulls[4] = 'n';
	values[5] = headers_datum(rec);
	values[6] = application ? CStringGetTextDatum(application) : (Datum) 0;
	nulls[6] = application ? ' ' : 'n';
	values[7] = name ? CStringGetTextDatum(name) : (Datum) 0;
	nulls[7] = name ? ' ' : 'n';
	values[8] = CStringGetTextDatum(sqlstate);
	values[9] = CStringGetTextDatum(message);
	values[10] = detail && detail[0] ? CStringGetTextDatum(detail) : (Datum) 0;
	nulls[10] = detail && detail[0] ? ' ' : 'n';
	rc = SPI_execute_plan(dg_store_prepare(&plan_insert,
							   "INSERT INTO doppelganger.dead_letters (topic, partition, \"offset\","
							   " key, payload, headers, application, thing, sqlstate, message, detail)"
							   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
							   11, types),
						  values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "storing a dead letter failed: %s", SPI_result_code_string(rc));
}

/* The SQLSTATE text of a DgError, as dg_raise would report it. */
const char *
dg_error_sqlstate(DgError *err)
{
	if (err->sqlstate[0])
		return err->sqlstate;
	switch (err->kind)
	{
		case DG_ERR_INVALID:
			return "22023";
		case DG_ERR_NOT_FOUND:
			return "PT404";
		case DG_ERR_EXISTS:
			return "23505";
		case DG_ERR_PRECONDITION:
			return "PT412";
		case DG_ERR_VALIDATION:
			return "23514";
		case DG_ERR_HOOK:
			return "38000";
		case DG_ERR_HOOK_PRIVILEGE:
			return "42501";
		case DG_ERR_LIMIT:
			return "54000";
		default:
			return "XX000";
	}
}

/*
 * Apply one decoded record to its thing: load, apply, persist.  Used for
 * replays and for the processor's one-event-at-a-time fallback.
 */
bool
dg_apply_record(DgEvent *ev, DgError *err)
{
	DgWork	   *w = dg_work_begin(dg_now());
	bool		ok;

	w->from_event = true;
	w->hops = ev->hops;
	dg_work_load(w, ev->application, ev->name);
	ok = dg_work_event(w, ev->application, ev->name, &ev->op, err);
	if (ok)
		dg_work_persist(w);
	dg_work_end(w);
	return ok;
}

/* The headers of a dead letter, as stored by headers_datum. */
static void
read_headers(Jsonb *jb, DgKafkaRecord *rec)
{
	json_object *h = dg_jsonc_from_jsonb(jb);

	rec->headers = palloc0(sizeof(DgKafkaHeader) * (dg_json_object_size(h) + 1));
	if (dg_json_object_size(h) > 0)
	{
		json_object_object_foreach(h, name, value)
		{
			DgKafkaHeader *hd = &rec->headers[rec->nheaders++];

			hd->name = pstrdup(name);
			hd->value = value ? pstrdup(json_object_get_string(value)) : NULL;
			hd->len = value ? strlen(hd->value) : 0;
		}
	}
	json_object_put(h);
}

PG_FUNCTION_INFO_V1(dg_replay_dead_letters);

/*
 * dt_replay_dead_letters(ids bigint[] DEFAULT NULL): try the pending dead
 * letters (or the given ones) again, oldest first.  A success marks the
 * letter replayed; a failure records the new error.  Returns one row per
 * letter tried.
 */
Datum
dg_replay_dead_letters(PG_FUNCTION_ARGS)
{
	static Oid	pending_types[1] = {INT8ARRAYOID};
	static Oid	done_types[1] = {INT8OID};
	static Oid	failed_types[3] = {INT8OID, TEXTOID, TEXTOID};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	DgStoreSave save;
	Datum		ids;
	char		ids_null;
	int			rc;
	uint64		n;
	SPITupleTable *letters;
	List	   *formats;
	char	   *error;

	InitMaterializedSRF(fcinfo, 0);
	if (!dg_topic_formats_parse(dg_topic_formats, &formats, &error))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid doppelganger.topic_formats: %s", error)));
	ids = PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0);
	ids_null = PG_ARGISNULL(0) ? 'n' : ' ';
	dg_store_begin(&save);
	rc = SPI_execute_plan(dg_store_prepare(&plan_pending,
							   "SELECT id, topic, partition, \"offset\", key, payload, headers"
							   " FROM doppelganger.dead_letters WHERE replayed_at IS NULL"
							   " AND ($1 IS NULL OR id = ANY ($1)) ORDER BY id FOR UPDATE",
							   1, pending_types),
						  &ids, &ids_null, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading dead letters failed: %s", SPI_result_code_string(rc));
	letters = SPI_tuptable;
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = letters->vals[i];
		TupleDesc	desc = letters->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		DgKafkaRecord rec;
		DgEvent		ev;
		DgError		err;
		volatile bool ok = false;
		char		sqlstate[6] = "";
		char	   *volatile message = NULL;
		Datum		d;
		Datum		values[4];
		bool		nulls[4] = {0};

		memset(&rec, 0, sizeof(rec));
		rec.topic = SPI_getvalue(tup, desc, 2);
		rec.partition = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		rec.offset = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		rec.timestamp_ms = -1;
		d = SPI_getbinval(tup, desc, 5, &isnull);
		if (!isnull)
		{
			bytea	   *b = DatumGetByteaPP(d);

			rec.key = VARDATA_ANY(b);
			rec.key_len = VARSIZE_ANY_EXHDR(b);
		}
		d = SPI_getbinval(tup, desc, 6, &isnull);
		if (!isnull)
		{
			bytea	   *b = DatumGetByteaPP(d);

			rec.payload = VARDATA_ANY(b);
			rec.len = VARSIZE_ANY_EXHDR(b);
		}
		d = SPI_getbinval(tup, desc, 7, &isnull);
		if (!isnull)
			read_headers(DatumGetJsonbP(d), &rec);

		/* each replay in its own subtransaction: one failure spoils nothing else */
		dg_error_clear(&err);
		BeginInternalSubTransaction(NULL);
		PG_TRY();
		{
			if (dg_event_decode(&rec, formats, &ev, &err))
			{
				ok = dg_apply_record(&ev, &err);
				dg_event_free(&ev);
			}
			if (!ok)
			{
				strlcpy(sqlstate, dg_error_sqlstate(&err), sizeof(sqlstate));
				message = pstrdup(err.message);
			}
			ReleaseCurrentSubTransaction();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(caller);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			strlcpy(sqlstate, unpack_sql_state(edata->sqlerrcode), sizeof(sqlstate));
			message = pstrdup(edata->message);
			FreeErrorData(edata);
			ok = false;
		}
		PG_END_TRY();
		MemoryContextSwitchTo(caller);
		CurrentResourceOwner = owner;

		if (ok)
		{
			Datum		arg = Int64GetDatum(id);

			rc = SPI_execute_plan(dg_store_prepare(&plan_done,
									   "UPDATE doppelganger.dead_letters SET replayed_at = now()"
									   " WHERE id = $1", 1, done_types),
								  &arg, NULL, false, 0);
		}
		else
		{
			Datum		args[3] = {Int64GetDatum(id), CStringGetTextDatum(sqlstate),
			CStringGetTextDatum(message)};

			rc = SPI_execute_plan(dg_store_prepare(&plan_failed,
									   "UPDATE doppelganger.dead_letters SET sqlstate = $2,"
									   " message = $3, attempts = attempts + 1 WHERE id = $1",
									   3, failed_types),
								  args, NULL, false, 0);
		}
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "updating a dead letter failed: %s", SPI_result_code_string(rc));
		values[0] = Int64GetDatum(id);
		values[1] = BoolGetDatum(ok);
		values[2] = ok ? (Datum) 0 : CStringGetTextDatum(sqlstate);
		nulls[2] = ok;
		values[3] = ok ? (Datum) 0 : CStringGetTextDatum(message);
		nulls[3] = ok;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	dg_store_end(&save);
	return (Datum) 0;
}
