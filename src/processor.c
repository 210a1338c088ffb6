/*-------------------------------------------------------------------------
 *
 * processor.c
 *		The processor worker: consumes the events topic in batches and
 *		applies each batch in one transaction, with its offsets.
 *
 * One batch: poll up to batch_size records (outside any transaction), then
 * in one transaction apply them thing by thing (the events of one thing in
 * their Kafka order, the thing written once), store the records that
 * cannot be applied as dead letters, and move the stored offsets.  The
 * offsets row is updated only if it still holds the offset this worker
 * resumed from, which fences off a consumer that lost its partition while
 * working: exactly-once effect without Kafka transactions.
 *
 * Errors: a bad event is a dead letter and the batch goes on.  An error
 * raised inside PostgreSQL (say, by a SQL hook) aborts the batch, which is
 * then applied again with a subtransaction per thing, and per event for
 * the thing that failed.  Serialization failures and deadlocks retry the
 * batch.  Anything else ends the worker; the launcher starts it again and
 * it resumes from the stored offsets.
 *
 * src/processor.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "mb/pg_wchar.h"
#include "pgbuiltins.h"
#include "kafka.h"
#include "service.h"

PGDLLEXPORT void dg_processor_main(Datum arg) pg_attribute_noreturn();

/* An assigned partition and the stored offset the worker goes on from. */
typedef struct Partition
{
	char	   *topic;
	int32		partition;
	int64		expected;		/* stored next offset; -1: no row yet */
	int64		next;			/* after the batch in hand */
	bool		in_batch;
} Partition;

/* One record of a batch, decoded. */
typedef struct BatchItem
{
	DgKafkaRecord *rec;
	bool		decoded;
	DgEvent		ev;
	DgError    *err;			/* why it could not be decoded */
	int			index;			/* position in the batch, for a stable order */
} BatchItem;

static DgWorkerStat *stat;
static DgConsumer *consumer;
static List *partitions;		/* of Partition *, in TopMemoryContext */
static List *formats;
static MemoryContext batch_cxt;
static bool needs_resync;
static int	batch_dead_letters;

static SPIPlanPtr plan_offsets;
static SPIPlanPtr plan_advance;
static SPIPlanPtr plan_first;

static Partition *
find_partition(const char *topic, int32 partition)
{
	ListCell   *lc;

	foreach(lc, partitions)
	{
		Partition  *p = lfirst(lc);

		if (p->partition == partition && strcmp(p->topic, topic) == 0)
			return p;
	}
	return NULL;
}

/* Read the stored offsets of the given partitions (inside a transaction, SPI connected). */
static void
read_offsets(DgTopicPartition *parts, int n)
{
	static Oid	types[3] = {TEXTOID, TEXTOID, INT4OID};

	for (int i = 0; i < n; i++)
	{
		Datum		values[3];
		bool		isnull;
		int			rc;

		values[0] = CStringGetTextDatum(dg_consumer_group);
		values[1] = CStringGetTextDatum(parts[i].topic);
		values[2] = Int32GetDatum(parts[i].partition);
		rc = SPI_execute_plan(dg_store_prepare(&plan_offsets,
								   "SELECT next_offset FROM doppelganger.offsets"
								   " WHERE consumer_group = $1 AND topic = $2 AND partition = $3",
								   3, types),
							  values, NULL, true, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "reading offsets failed: %s", SPI_result_code_string(rc));
		parts[i].offset = SPI_processed == 0 ? -1 :
			DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
}

static void
remember(DgTopicPartition *parts, int n)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	for (int i = 0; i < n; i++)
	{
		Partition  *p = find_partition(parts[i].topic, parts[i].partition);

		if (p == NULL)
		{
			p = palloc0(sizeof(Partition));
			p->topic = pstrdup(parts[i].topic);
			p->partition = parts[i].partition;
			partitions = lappend(partitions, p);
		}
		p->expected = parts[i].offset;
	}
	MemoryContextSwitchTo(old);
}

typedef struct PartsArg
{
	DgTopicPartition *parts;
	int			n;
} PartsArg;

static void
read_offsets_fn(void *arg)
{
	PartsArg   *a = arg;

	read_offsets(a->parts, a->n);
}

/* Rebalance: a partition starts where its stored offset says. */
static bool
on_assign(void *arg, DgTopicPartition *parts, int n)
{
	PartsArg	a = {parts, n};

	if (!dg_worker_transaction(read_offsets_fn, &a))
		return false;
	remember(parts, n);
	return true;
}

static void
on_revoke(void *arg, DgTopicPartition *parts, int n)
{
	for (int i = 0; i < n; i++)
	{
		Partition  *p = find_partition(parts[i].topic, parts[i].partition);

		if (p)
		{
			partitions = list_delete_ptr(partitions, p);
			pfree(p->topic);
			pfree(p);
		}
	}
}

/*
 * After a fencing conflict, another consumer has moved our offsets: start
 * every partition again from what is stored.
 */
static void
resync(void)
{
	int			n = list_length(partitions);
	DgTopicPartition *parts = palloc0(sizeof(DgTopicPartition) * (n + 1));
	PartsArg	a = {parts, n};
	ListCell   *lc;
	int			i = 0;

	foreach(lc, partitions)
	{
		Partition  *p = lfirst(lc);

		parts[i].topic = p->topic;
		parts[i++].partition = p->partition;
	}
	if (!dg_worker_transaction(read_offsets_fn, &a))
		return;
	remember(parts, n);
	for (i = 0; i < n; i++)
		dg_consumer_seek(consumer, parts[i].topic, parts[i].partition, parts[i].offset);
	needs_resync = false;
}

static int
compare_items(const void *a, const void *b)
{
	const BatchItem *x = *(BatchItem *const *) a;
	const BatchItem *y = *(BatchItem *const *) b;
	int			c;

	/* undecodable records go first, in order; then thing by thing, in order */
	if (x->decoded != y->decoded)
		return x->decoded ? 1 : -1;
	if (x->decoded)
	{
		c = strcmp(x->ev.application, y->ev.application);
		if (c == 0)
			c = strcmp(x->ev.name, y->ev.name);
		if (c != 0)
			return c;
	}
	return x->index - y->index;
}

static void
dead_letter_item(BatchItem *item, const char *sqlstate, const char *message, const char *detail)
{
	dg_dead_letter_insert(item->rec, item->ev.application, item->ev.name, sqlstate, message, detail);
	batch_dead_letters++;
}

/* Apply the events items[0..n) of one thing, writing it once. */
static void
apply_thing(BatchItem **items, int n, DgWriter *writer)
{
	DgWork	   *w = dg_work_begin(dg_now());

	w->writer = writer;
	w->from_event = true;
	w->hops = items[0]->ev.hops;
	dg_work_load(w, items[0]->ev.application, items[0]->ev.name);
	for (int i = 0; i < n; i++)
	{
		DgError		err;

		dg_error_clear(&err);
		if (!dg_work_event(w, items[i]->ev.application, items[i]->ev.name, &items[i]->ev.op, &err))
			dead_letter_item(items[i], dg_error_sqlstate(&err), err.message, err.detail);
	}
	dg_work_persist(w);
	dg_work_end(w);
}

/*
 * The same, but each event in a subtransaction of its own: for a thing
 * whose events raised an error in one piece.
 */
static void
apply_thing_safely(BatchItem **items, int n)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	for (int i = 0; i < n; i++)
	{
		BeginInternalSubTransaction(NULL);
		PG_TRY();
		{
			DgError		err;

			dg_error_clear(&err);
			if (!dg_apply_record(&items[i]->ev, &err))
				dead_letter_item(items[i], dg_error_sqlstate(&err), err.message, err.detail);
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
			dead_letter_item(items[i], unpack_sql_state(edata->sqlerrcode), edata->message,
							 edata->detail);
			FreeErrorData(edata);
		}
		PG_END_TRY();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
}

static bool
same_thing(BatchItem *a, BatchItem *b)
{
	return strcmp(a->ev.application, b->ev.application) == 0 &&
		strcmp(a->ev.name, b->ev.name) == 0;
}

static bool
is_conflict(ErrorData *edata)
{
	return edata->sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE ||
		edata->sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED;
}

/*
 * Move the stored offsets of the batch's partitions, each only from the
 * value this worker resumed from.  False: another consumer moved one.
 */
static bool
advance_offsets(void)
{
	static Oid	types[5] = {TEXTOID, TEXTOID, INT4OID, INT8OID, INT8OID};
	ListCell   *lc;

	foreach(lc, partitions)
	{
		Partition  *p = lfirst(lc);
		Datum		values[5];
		int			rc;

		if (!p->in_batch)
			continue;
		values[0] = CStringGetTextDatum(dg_consumer_group);
		values[1] = CStringGetTextDatum(p->topic);
		values[2] = Int32GetDatum(p->partition);
		values[3] = Int64GetDatum(p->next);
		values[4] = Int64GetDatum(p->expected);
		if (p->expected >= 0)
			rc = SPI_execute_plan(dg_store_prepare(&plan_advance,
									   "UPDATE doppelganger.offsets SET next_offset = $4, updated_at = now()"
									   " WHERE consumer_group = $1 AND topic = $2 AND partition = $3"
									   " AND next_offset = $5",
									   5, types),
								  values, NULL, false, 0);
		else
			rc = SPI_execute_plan(dg_store_prepare(&plan_first,
									   "INSERT INTO doppelganger.offsets (consumer_group, topic, partition, next_offset)"
									   " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
									   4, types),
								  values, NULL, false, 0);
		if (rc != SPI_OK_UPDATE && rc != SPI_OK_INSERT)
			elog(ERROR, "storing offsets failed: %s", SPI_result_code_string(rc));
		if (SPI_processed != 1)
			return false;
	}
	return true;
}

/*
 * The events of one thing in a subtransaction; if they raise, again one
 * by one, so that only the event at fault becomes a dead letter.
 */
static void
apply_thing_isolated(BatchItem **items, int n)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		apply_thing(items, n, NULL);
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
		if (is_conflict(edata))
			ReThrowError(edata);
		FreeErrorData(edata);
		apply_thing_safely(items, n);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
}

/* One batch, inside the caller's transaction.  False: fenced off. */
static bool
apply_batch(BatchItem **items, int n, bool safe)
{
	DgStoreSave save;
	DgWriter   *writer = NULL;
	bool		ok;
	int			i = 0;

	batch_dead_letters = 0;
	dg_store_begin(&save);
	for (; i < n && !items[i]->decoded; i++)
		dead_letter_item(items[i], dg_error_sqlstate(items[i]->err), items[i]->err->message,
						 items[i]->err->detail);
	if (!safe)
		writer = dg_writer_begin();
	while (i < n)
	{
		int			j = i + 1;

		while (j < n && same_thing(items[i], items[j]))
			j++;
		if (safe)
			apply_thing_isolated(&items[i], j - i);
		else
			apply_thing(&items[i], j - i, writer);
		i = j;
	}
	if (writer)
		dg_writer_end(writer);
	ok = advance_offsets();
	dg_store_end(&save);
	return ok;
}

typedef enum
{
	BATCH_DONE,
	BATCH_FENCED,
	BATCH_CONFLICT,
	BATCH_FAILED
} BatchResult;

static BatchResult
run_batch(BatchItem **items, int n, bool safe, ErrorData **error)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile BatchResult result = BATCH_DONE;

	*error = NULL;
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "applying a batch of events");
		if (apply_batch(items, n, safe))
		{
			PopActiveSnapshot();
			CommitTransactionCommand();
		}
		else
		{
			PopActiveSnapshot();
			AbortCurrentTransaction();
			result = BATCH_FENCED;
		}
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		*error = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		result = is_conflict(*error) ? BATCH_CONFLICT : BATCH_FAILED;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	pgstat_report_activity(STATE_IDLE, NULL);
	return result;
}

/*
 * Decode a record.  Bad data fails without raising; the one thing that can
 * raise is PostgreSQL's stack depth check on absurdly deep JSON, which
 * must not take the worker down with it either.
 */
static bool
decode(DgKafkaRecord *rec, DgEvent *ev, DgError *err)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = false;

	dg_error_clear(err);
	PG_TRY();
	{
		ok = dg_event_decode(rec, formats, ev, err);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		dg_fail(err, DG_ERR_INVALID, "%s", edata->message);
		strlcpy(err->sqlstate, unpack_sql_state(edata->sqlerrcode), sizeof(err->sqlstate));
		FreeErrorData(edata);
		memset(ev, 0, sizeof(*ev));
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

static void
process_batch(DgKafkaRecord *records, int n)
{
	BatchItem  *all = palloc(sizeof(BatchItem) * n);
	BatchItem **items = palloc(sizeof(BatchItem *) * n);
	bool		safe = false;
	uint64		conflicts = 0;
	int			total = n;
	ListCell   *lc;

	foreach(lc, partitions)
		((Partition *) lfirst(lc))->in_batch = false;
	for (int i = 0; i < n; i++)
	{
		Partition  *p = find_partition(records[i].topic, records[i].partition);
		DgError		err;

		items[i] = &all[i];
		all[i].rec = &records[i];
		all[i].index = i;
		all[i].err = NULL;
		all[i].decoded = decode(&records[i], &all[i].ev, &err);
		if (!all[i].decoded)
		{
			/* only failures keep their (large) error */
			all[i].err = palloc(sizeof(DgError));
			memcpy(all[i].err, &err, sizeof(DgError));
		}
		if (p)
		{
			if (!p->in_batch || records[i].offset + 1 > p->next)
				p->next = records[i].offset + 1;
			p->in_batch = true;
		}
	}
	qsort(items, n, sizeof(BatchItem *), compare_items);

	for (int attempt = 0;; attempt++)
	{
		ErrorData  *error;
		BatchResult result = run_batch(items, n, safe, &error);

		if (result == BATCH_DONE)
			break;
		if (result == BATCH_FENCED)
		{
			/* another consumer applied these: drop them and start over from the store */
			ereport(LOG,
					(errmsg("doppelganger processor: stored offsets moved under this worker; resuming from them")));
			needs_resync = true;
			n = 0;
			break;
		}
		if (result == BATCH_CONFLICT && attempt < 10)
		{
			conflicts++;
			dg_worker_nap(10 * (attempt + 1));
			continue;
		}
		if (!safe && result == BATCH_FAILED)
		{
			/* some event raised: apply again, isolating each thing */
			dg_worker_error(stat, error->message);
			safe = true;
			continue;
		}
		dg_worker_error(stat, error->message);
		ReThrowError(error);
	}
	if (n > 0)
	{
		DgTopicPartition *commits = palloc0(sizeof(DgTopicPartition) * (list_length(partitions) + 1));
		int			nc = 0;

		foreach(lc, partitions)
		{
			Partition  *p = lfirst(lc);

			if (!p->in_batch)
				continue;
			p->expected = p->next;
			commits[nc].topic = p->topic;
			commits[nc].partition = p->partition;
			commits[nc++].offset = p->next;
		}
		dg_consumer_commit(consumer, commits, nc);
	}
	dg_worker_count(stat, n - batch_dead_letters, n > 0 ? batch_dead_letters : 0, conflicts);
	for (int i = 0; i < total; i++)
		if (all[i].decoded)
			dg_event_free(&all[i].ev);
}

/*
 * Publish the partitions with their lag.  Before its first record a
 * partition has no position in librdkafka; it is then where the stored
 * offset put it (the beginning when there is none).
 */
static void
report_partitions(void)
{
	DgPartitionStat parts[DG_MAX_PARTITIONS];
	int			n = dg_consumer_stats(consumer, parts, DG_MAX_PARTITIONS);

	for (int i = 0; i < n; i++)
	{
		Partition  *p = find_partition(parts[i].topic, parts[i].partition);

		if (parts[i].position < 0 && p)
			parts[i].position = Max(p->expected, 0);
	}
	dg_worker_partitions(stat, parts, n);
}

static void
processor_exit(int code, Datum arg)
{
	if (consumer)
	{
		dg_consumer_close(consumer);
		consumer = NULL;
	}
}

void
dg_processor_main(Datum arg)
{
	int			slot = DatumGetInt32(arg);
	DgKafkaRecord *records;
	int			capacity;
	char		name[64];
	char	   *error;
	MemoryContext old;

	snprintf(name, sizeof(name), "doppelganger processor %d", slot);
	stat = dg_worker_start(slot, DG_WORKER_PROCESSOR, name);
	before_shmem_exit(processor_exit, (Datum) 0);
	dg_worker_wait_for_extension();
	old = MemoryContextSwitchTo(TopMemoryContext);
	if (!dg_topic_formats_parse(dg_topic_formats, &formats, &error))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid doppelganger.topic_formats: %s", error)));
	MemoryContextSwitchTo(old);
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "doppelganger batch", ALLOCSET_DEFAULT_SIZES);
	capacity = dg_batch_size;
	records = MemoryContextAlloc(TopMemoryContext, sizeof(DgKafkaRecord) * capacity);
	consumer = dg_consumer_create(name, dg_consumer_group, dg_events_topic, on_assign, on_revoke, NULL);
	dg_worker_state(stat, "consuming");
	ereport(LOG, (errmsg("%s consuming %s as group %s", name, dg_events_topic, dg_consumer_group)));

	while (!ShutdownRequestPending)
	{
		int			n;
		char		why[256];

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			dg_worker_reload();
			if (dg_batch_size != capacity)
			{
				pfree(records);
				capacity = dg_batch_size;
				records = MemoryContextAlloc(TopMemoryContext, sizeof(DgKafkaRecord) * capacity);
			}
		}
		if (needs_resync)
			resync();
		MemoryContextReset(batch_cxt);
		n = dg_consumer_poll(consumer, records, capacity, 100, dg_batch_timeout, batch_cxt);
		if (dg_consumer_failed(consumer, why, sizeof(why)))
		{
			dg_worker_error(stat, why);
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("doppelganger processor: %s", why)));
		}
		if (n > 0)
		{
			old = MemoryContextSwitchTo(batch_cxt);
			process_batch(records, n);
			MemoryContextSwitchTo(old);
		}
		report_partitions();
	}
	/* SIGTERM: the batch in hand is done; leave the group and stop */
	dg_worker_state(stat, "stopping");
	ereport(LOG, (errmsg("%s stopping after its batch", name)));
	proc_exit(0);
}
