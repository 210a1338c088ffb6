/*-------------------------------------------------------------------------
 *
 * waker.c
 *		The waker worker: processes the things whose time has come
 *		(internal.waker, mirrored in the indexed column "waker").
 *
 * Upstream publishes wakeup events to Kafka; here the waker runs them
 * through the pipeline directly, in the database, which needs no broker
 * and adds no latency.  Due things are picked with FOR UPDATE SKIP LOCKED
 * (a thing another transaction holds waits for the next round), each in a
 * subtransaction of its own: a hook that fails is logged, and the thing is
 * tried again after a minute rather than every round.  The waker sleeps
 * until the earliest next wake-up, but no longer than
 * doppelganger.waker_interval.
 *
 * src/waker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "pgbuiltins.h"
#include "service.h"

PGDLLEXPORT void dg_waker_main(Datum arg) pg_attribute_noreturn();

#define WAKER_BATCH 200

static DgWorkerStat *stat;
static SPIPlanPtr plan_due;
static SPIPlanPtr plan_postpone;
static SPIPlanPtr plan_next;
static int	woken;
static int64 next_ms;

/* Run the wakeup through the pipeline; false with err if it failed. */
static bool
wake(const char *application, const char *name, DgError *err)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = false;

	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		DgWork	   *w = dg_work_begin(dg_now());
		DgOp		op;

		memset(&op, 0, sizeof(op));
		op.kind = DG_OP_WAKEUP;
		w->from_event = true;
		if (dg_work_load(w, application, name))
		{
			ok = dg_work_event(w, application, name, &op, err);
			if (ok)
				dg_work_persist(w);
		}
		else
			ok = true;			/* gone meanwhile */
		dg_work_end(w);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		dg_fail(err, DG_ERR_INTERNAL, "%s", edata->message);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return ok;
}

static void
wake_batch(void *arg)
{
	static Oid	postpone_types[2] = {TEXTOID, TEXTOID};
	DgStoreSave save;
	int			rc;
	SPITupleTable *due;
	uint64		n;
	int			failed = 0;
	bool		isnull;

	woken = 0;
	dg_store_begin(&save);
	rc = SPI_execute_plan(dg_store_prepare(&plan_due,
							   "SELECT application, name FROM doppelganger.things"
							   " WHERE waker <= now() ORDER BY waker LIMIT 200"
							   " FOR NO KEY UPDATE SKIP LOCKED", 0, NULL),
						  NULL, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "looking for due things failed: %s", SPI_result_code_string(rc));
	due = SPI_tuptable;
	n = SPI_processed;
	if (n > 0)
		pgstat_report_activity(STATE_RUNNING, "waking things");
	for (uint64 i = 0; i < n; i++)
	{
		char	   *application = SPI_getvalue(due->vals[i], due->tupdesc, 1);
		char	   *name = SPI_getvalue(due->vals[i], due->tupdesc, 2);
		DgError		err;

		dg_error_clear(&err);
		if (wake(application, name, &err))
			continue;
		failed++;
		ereport(LOG,
				(errmsg("doppelganger waker: waking thing \"%s\" of application \"%s\" failed: %s",
						name, application, err.message),
				 errdetail("It is tried again in a minute.")));
		dg_worker_error(stat, err.message);
		{
			Datum		values[2] = {CStringGetTextDatum(application), CStringGetTextDatum(name)};

			rc = SPI_execute_plan(dg_store_prepare(&plan_postpone,
									   "UPDATE doppelganger.things SET waker = now() + interval '1 minute'"
									   " WHERE application = $1 AND name = $2 AND waker <= now()",
									   2, postpone_types),
								  values, NULL, false, 0);
			if (rc != SPI_OK_UPDATE)
				elog(ERROR, "postponing a wake-up failed: %s", SPI_result_code_string(rc));
		}
	}
	woken = (int) n;
	dg_worker_count(stat, n - failed, 0, 0);
	/* how long until the next one is due */
	rc = SPI_execute_plan(dg_store_prepare(&plan_next,
							   "SELECT (extract(epoch FROM min(waker) - clock_timestamp()) * 1000)::bigint"
							   " FROM doppelganger.things WHERE waker IS NOT NULL", 0, NULL),
						  NULL, NULL, true, 1);
	next_ms = -1;
	if (rc == SPI_OK_SELECT && SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			next_ms = DatumGetInt64(d);
	}
	dg_store_end(&save);
}

static void
waker_exit(int code, Datum arg)
{
	DgShared   *sh = dg_shared();

	if (sh->waker_latch == MyLatch)
		sh->waker_latch = NULL;
}

void
dg_waker_main(Datum arg)
{
	MemoryContext loop_cxt;

	stat = dg_worker_start(DatumGetInt32(arg), DG_WORKER_WAKER, "doppelganger waker");
	before_shmem_exit(waker_exit, (Datum) 0);
	dg_worker_wait_for_extension();
	dg_shared()->waker_latch = MyLatch;
	dg_worker_state(stat, "waking");
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "doppelganger waker", ALLOCSET_DEFAULT_SIZES);

	while (!ShutdownRequestPending)
	{
		int			sleep_ms = dg_waker_interval;

		dg_worker_reload();
		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);
		if (dg_worker_transaction(wake_batch, NULL) && woken == WAKER_BATCH)
			continue;			/* more may be due */
		if (next_ms >= 0 && next_ms < sleep_ms)
			sleep_ms = (int) Max(next_ms, 5);
		dg_worker_nap(sleep_ms);
	}
	proc_exit(0);
}
