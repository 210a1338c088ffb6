/*-------------------------------------------------------------------------
 *
 * relay.c
 *		The relay worker: delivers doppelganger.outbox in id order.
 *
 * With Kafka, each row is produced (idempotent producer, delivery reports):
 * events to the events topic under the key "<application>/<thing>" with
 * the reference's ce_* headers and a doppelganger-hops header, commands to
 * doppelganger.commands_topic under "<application>/<device>" with headers
 * application, device and channel, changed things to
 * doppelganger.notifications_topic.  A row is deleted once it and every
 * older row have been delivered, so order holds; a failed delivery is
 * tried again (delivery is at least once, never out of order).
 *
 * Without Kafka, the relay applies each event to its thing in the database,
 * in a subtransaction of its own; an event that cannot be applied becomes
 * a dead letter.
 *
 * Either way, a thing whose deletion waited for its events is deleted once
 * the last of them is gone (reference §3.14, completed unlike upstream).
 *
 * src/relay.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "kafka.h"
#include "pgbuiltins.h"
#include "service.h"

PGDLLEXPORT void dg_relay_main(Datum arg) pg_attribute_noreturn();

#define RELAY_BATCH 500

typedef struct Row
{
	int64		id;
	char	   *kind;
	char	   *application;
	char	   *source;
	char	   *target;
	char	   *channel;
	char	   *message;		/* JSON text */
	int			hops;
} Row;

static DgWorkerStat *stat;
static DgProducer *producer;
static SPIPlanPtr plan_fetch;
static SPIPlanPtr plan_delete;
static SPIPlanPtr plan_finish;
static int	handled;

static int
fetch(Row *rows)
{
	int			rc = SPI_execute_plan(dg_store_prepare(&plan_fetch,
										   "SELECT id, kind, application, source, target, channel,"
										   " message::text, hops FROM doppelganger.outbox"
										   " ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED",
										   0, NULL),
									  NULL, NULL, false, 0);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading the outbox failed: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;

		rows[i].id = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
		rows[i].kind = SPI_getvalue(t, d, 2);
		rows[i].application = SPI_getvalue(t, d, 3);
		rows[i].source = SPI_getvalue(t, d, 4);
		rows[i].target = SPI_getvalue(t, d, 5);
		rows[i].channel = SPI_getvalue(t, d, 6);
		rows[i].message = SPI_getvalue(t, d, 7);
		rows[i].hops = DatumGetInt32(SPI_getbinval(t, d, 8, &isnull));
	}
	return (int) SPI_processed;
}

static void
delete_rows(int64 *ids, int n)
{
	static Oid	types[1] = {INT8ARRAYOID};
	Datum	   *elems = palloc(sizeof(Datum) * (n + 1));
	Datum		arg;
	int			rc;

	for (int i = 0; i < n; i++)
		elems[i] = Int64GetDatum(ids[i]);
	arg = PointerGetDatum(construct_array(elems, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	rc = SPI_execute_plan(dg_store_prepare(&plan_delete, "DELETE FROM doppelganger.outbox WHERE id = ANY ($1)",
							   1, types), &arg, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "clearing the outbox failed: %s", SPI_result_code_string(rc));
}

/* Delete the things whose deletion waited for events that are now gone. */
static void
finish_deletions(Row *rows, int n)
{
	static Oid	types[2] = {TEXTOID, TEXTOID};

	for (int i = 0; i < n; i++)
	{
		Datum		values[2];
		int			rc;

		if (i > 0 && strcmp(rows[i].source, rows[i - 1].source) == 0 &&
			strcmp(rows[i].application, rows[i - 1].application) == 0)
			continue;
		values[0] = CStringGetTextDatum(rows[i].application);
		values[1] = CStringGetTextDatum(rows[i].source);
		rc = SPI_execute_plan(dg_store_prepare(&plan_finish,
								   "DELETE FROM doppelganger.things t"
								   " WHERE t.application = $1 AND t.name = $2"
								   " AND t.deletion_timestamp IS NOT NULL"
								   " AND NOT EXISTS (SELECT 1 FROM doppelganger.outbox o"
								   "  WHERE o.application = t.application AND o.source = t.name"
								   "  AND o.kind = 'event')",
								   2, types),
							  values, NULL, false, 0);
		if (rc != SPI_OK_DELETE)
			elog(ERROR, "finishing a deletion failed: %s", SPI_result_code_string(rc));
	}
}

static DgKafkaHeader
hdr(const char *name, const char *value)
{
	DgKafkaHeader h;

	h.name = (char *) name;
	h.value = (char *) value;
	h.len = value ? strlen(value) : 0;
	return h;
}

static const char *
events_topic(void)
{
	static char topic[NAMEDATALEN];
	const char *end = strpbrk(dg_events_topic, ", ");
	size_t		len = end ? (size_t) (end - dg_events_topic) : strlen(dg_events_topic);

	strlcpy(topic, dg_events_topic, Min(len + 1, sizeof(topic)));
	return topic;
}

/* Produce the rows; delete the longest delivered prefix. */
static void
publish(Row *rows, int n)
{
	int64	   *ids;
	bool	   *oks;
	int			reported;
	int			prefix = 0;
	char		now[64];
	bool	   *local = palloc0(sizeof(bool) * n);

	dg_time_format(dg_now(), now);
	for (int i = 0; i < n; i++)
	{
		Row		   *r = &rows[i];
		char	   *key = psprintf("%s/%s", r->application, r->target);
		DgKafkaHeader h[10];
		int			nh = 0;
		const char *topic;

		if (strcmp(r->kind, "event") == 0)
		{
			topic = events_topic();
			h[nh++] = hdr("content-type", "application/json");
			h[nh++] = hdr("ce_specversion", "1.0");
			h[nh++] = hdr("ce_id", psprintf("outbox-%lld", (long long) r->id));
			h[nh++] = hdr("ce_source", "doppelganger");
			h[nh++] = hdr("ce_type", "io.drogue.doppelgeanger.event.v1");
			h[nh++] = hdr("ce_timestamp", now);
			h[nh++] = hdr("ce_application", r->application);
			h[nh++] = hdr("ce_thing", r->target);
			h[nh++] = hdr("doppelganger-hops", psprintf("%d", r->hops));
		}
		else if (strcmp(r->kind, "command") == 0)
		{
			topic = dg_commands_topic;
			h[nh++] = hdr("application", r->application);
			h[nh++] = hdr("device", r->target);
			h[nh++] = hdr("channel", r->channel);
		}
		else
		{
			topic = dg_notifications_topic;
			h[nh++] = hdr("application", r->application);
			h[nh++] = hdr("thing", r->target);
		}
		if (topic == NULL || topic[0] == '\0')
		{
			/*
			 * Its topic was switched off after the row was written: a command
			 * goes out as NOTIFY, a notification is no longer wanted.
			 */
			if (strcmp(r->kind, "command") == 0)
				dg_outbox_notify_command(r->application, r->target, r->channel, r->message);
			local[i] = true;
			continue;
		}
		if (!dg_producer_send(producer, topic, key, strlen(key), r->message,
							  r->message ? strlen(r->message) : 0, h, nh, r->id))
			break;
	}
	reported = dg_producer_flush(producer, &ids, &oks);
	/* rows are delivered in order; stop at the first one that was not */
	for (prefix = 0; prefix < n; prefix++)
	{
		bool		delivered = local[prefix];

		for (int j = 0; j < reported && !delivered; j++)
			if (ids[j] == rows[prefix].id)
				delivered = oks[j];
		if (!delivered)
			break;
	}
	if (prefix > 0)
	{
		int64	   *done = palloc(sizeof(int64) * prefix);

		for (int i = 0; i < prefix; i++)
			done[i] = rows[i].id;
		delete_rows(done, prefix);
	}
	handled = prefix;
	dg_worker_count(stat, prefix, 0, 0);
}

/* Without Kafka: apply each event to its thing, here. */
static void
apply_locally(Row *rows, int n)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	int64	   *done = palloc(sizeof(int64) * (n + 1));
	int			dead = 0;

	for (int i = 0; i < n; i++)
	{
		Row		   *r = &rows[i];
		DgKafkaRecord rec;

		memset(&rec, 0, sizeof(rec));
		rec.topic = "outbox";
		rec.partition = -1;
		rec.offset = r->id;
		rec.key = psprintf("%s/%s", r->application, r->target);
		rec.key_len = strlen(rec.key);
		rec.payload = r->message;
		rec.len = r->message ? strlen(r->message) : 0;
		done[i] = r->id;
		if (strcmp(r->kind, "event") != 0)
		{
			/* commands and notifications need Kafka, which is gone */
			ereport(WARNING,
					(errmsg("doppelganger relay: dropping a %s for \"%s\": doppelganger.kafka_brokers is empty",
							r->kind, r->target)));
			continue;
		}
		BeginInternalSubTransaction(NULL);
		PG_TRY();
		{
			DgEvent		ev;
			DgError		err;
			bool		ok;

			dg_error_clear(&err);
			ok = dg_event_decode(&rec, NIL, &ev, &err);
			if (ok)
			{
				ev.hops = r->hops;
				ok = dg_apply_record(&ev, &err);
				dg_event_free(&ev);
			}
			if (!ok)
			{
				dg_dead_letter_insert(&rec, r->application, r->target, dg_error_sqlstate(&err),
									  err.message, err.detail);
				dead++;
			}
			ReleaseCurrentSubTransaction();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
			if (edata->sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE ||
				edata->sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED)
				ReThrowError(edata);
			dg_dead_letter_insert(&rec, r->application, r->target,
								  unpack_sql_state(edata->sqlerrcode), edata->message, edata->detail);
			dead++;
			FreeErrorData(edata);
		}
		PG_END_TRY();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	delete_rows(done, n);
	handled = n;
	dg_worker_count(stat, n - dead, dead, 0);
}

static void
relay_batch(void *arg)
{
	Row		   *rows = palloc(sizeof(Row) * RELAY_BATCH);
	DgStoreSave save;
	int			n;

	handled = 0;
	dg_store_begin(&save);
	n = fetch(rows);
	if (n > 0)
	{
		pgstat_report_activity(STATE_RUNNING, "delivering the outbox");
		if (producer)
			publish(rows, n);
		else
			apply_locally(rows, n);
		finish_deletions(rows, handled);
	}
	dg_store_end(&save);
}

static void
relay_exit(int code, Datum arg)
{
	DgShared   *sh = dg_shared();

	if (sh->relay_latch == MyLatch)
		sh->relay_latch = NULL;
	if (producer)
		dg_producer_close(producer);
	producer = NULL;
}

void
dg_relay_main(Datum arg)
{
	MemoryContext loop_cxt;

	stat = dg_worker_start(DatumGetInt32(arg), DG_WORKER_RELAY, "doppelganger relay");
	before_shmem_exit(relay_exit, (Datum) 0);
	dg_worker_wait_for_extension();
	if (dg_kafka_brokers[0] != '\0')
		producer = dg_producer_create("doppelganger-relay", RELAY_BATCH);
	dg_shared()->relay_latch = MyLatch;
	dg_worker_state(stat, producer ? "relaying to Kafka" : "applying events locally");
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "doppelganger relay", ALLOCSET_DEFAULT_SIZES);

	while (!ShutdownRequestPending)
	{
		char		why[256];

		dg_worker_reload();
		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);
		if (!dg_worker_transaction(relay_batch, NULL))
			dg_worker_nap(1000);
		if (producer && dg_producer_failed(producer, why, sizeof(why)))
			ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE), errmsg("doppelganger relay: %s", why)));
		/* a full batch: more may wait; otherwise sleep until a commit wakes us */
		if (handled < RELAY_BATCH)
			dg_worker_nap(handled > 0 ? 10 : 1000);
	}
	proc_exit(0);
}
