/*-------------------------------------------------------------------------
 *
 * stats.c
 *		Shared memory: one slot per background worker with its counters,
 *		state, last error and, for processors, the partitions it consumes;
 *		and the SQL functions that read them (doppelganger.dt_stats).
 *
 * Each slot has its own spinlock and only its worker writes it, so readers
 * never wait on a worker for more than a copy.  Slots are small and fixed:
 * DG_MAX_PROCESSORS processors, the waker and the relay.
 *
 * src/stats.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "access/xact.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "doppelganger.h"

static DgShared *shared = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

Size
dg_shared_size(void)
{
	return MAXALIGN(sizeof(DgShared));
}

static void
dg_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("doppelganger", dg_shared_size(), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(DgShared));
		for (int i = 0; i < DG_MAX_SLOTS; i++)
			SpinLockInit(&shared->workers[i].mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
dg_shared_register(void)
{
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = dg_shmem_startup;
}

DgShared *
dg_shared(void)
{
	if (shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("doppelganger is not loaded through shared_preload_libraries"),
				 errhint("Add doppelganger to shared_preload_libraries and restart PostgreSQL.")));
	return shared;
}

DgWorkerStat *
dg_worker_slot(int slot)
{
	return &dg_shared()->workers[slot];
}

/* Claim a slot for this process (its counters start again). */
DgWorkerStat *
dg_worker_attach(int slot, DgWorkerKind kind)
{
	DgWorkerStat *w = dg_worker_slot(slot);

	SpinLockAcquire(&w->mutex);
	w->kind = kind;
	w->pid = MyProcPid;
	w->events = w->batches = w->dead_letters = w->conflicts = 0;
	w->started = GetCurrentTimestamp();
	w->last_batch = 0;
	w->last_error[0] = '\0';
	w->last_error_at = 0;
	w->npartitions = 0;
	strlcpy(w->state, "starting", sizeof(w->state));
	SpinLockRelease(&w->mutex);
	return w;
}

void
dg_worker_detach(DgWorkerStat *w)
{
	SpinLockAcquire(&w->mutex);
	w->pid = 0;
	w->npartitions = 0;
	strlcpy(w->state, "stopped", sizeof(w->state));
	SpinLockRelease(&w->mutex);
}

void
dg_worker_state(DgWorkerStat *w, const char *state)
{
	SpinLockAcquire(&w->mutex);
	strlcpy(w->state, state, sizeof(w->state));
	SpinLockRelease(&w->mutex);
}

void
dg_worker_error(DgWorkerStat *w, const char *message)
{
	SpinLockAcquire(&w->mutex);
	strlcpy(w->last_error, message, sizeof(w->last_error));
	w->last_error_at = GetCurrentTimestamp();
	SpinLockRelease(&w->mutex);
}

void
dg_worker_count(DgWorkerStat *w, uint64 events, uint64 dead_letters, uint64 conflicts)
{
	SpinLockAcquire(&w->mutex);
	w->events += events;
	w->dead_letters += dead_letters;
	w->conflicts += conflicts;
	if (events > 0 || dead_letters > 0)
	{
		w->batches++;
		w->last_batch = GetCurrentTimestamp();
	}
	SpinLockRelease(&w->mutex);
}

void
dg_worker_partitions(DgWorkerStat *w, DgPartitionStat *parts, int n)
{
	SpinLockAcquire(&w->mutex);
	w->npartitions = Min(n, DG_MAX_PARTITIONS);
	memcpy(w->partitions, parts, sizeof(DgPartitionStat) * w->npartitions);
	SpinLockRelease(&w->mutex);
}

static const char *
kind_name(DgWorkerKind kind)
{
	switch (kind)
	{
		case DG_WORKER_PROCESSOR:
			return "processor";
		case DG_WORKER_WAKER:
			return "waker";
		case DG_WORKER_RELAY:
			return "relay";
		default:
			return NULL;
	}
}

static int64
partition_lag(DgPartitionStat *p)
{
	if (p->high_watermark < 0 || p->position < 0)
		return -1;
	return Max(p->high_watermark - p->position, 0);
}

PG_FUNCTION_INFO_V1(dg_worker_stats);
PG_FUNCTION_INFO_V1(dg_partition_stats);

Datum
dg_worker_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DgShared   *sh = dg_shared();

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < DG_MAX_SLOTS; i++)
	{
		DgWorkerStat w;
		Datum		values[12];
		bool		nulls[12] = {0};
		int64		lag = 0;
		bool		lag_known = false;

		/* copy under the lock, format outside it */
		SpinLockAcquire(&sh->workers[i].mutex);
		memcpy(&w, &sh->workers[i], sizeof(w));
		SpinLockRelease(&sh->workers[i].mutex);
		if (kind_name(w.kind) == NULL)
			continue;
		for (int p = 0; p < w.npartitions; p++)
		{
			int64		l = partition_lag(&w.partitions[p]);

			if (l >= 0)
			{
				lag += l;
				lag_known = true;
			}
		}
		values[0] = Int32GetDatum(i);
		values[1] = CStringGetTextDatum(kind_name(w.kind));
		values[2] = Int32GetDatum(w.pid);
		nulls[2] = w.pid == 0;
		values[3] = CStringGetTextDatum(w.state);
		values[4] = Int64GetDatum((int64) w.events);
		values[5] = Int64GetDatum((int64) w.batches);
		values[6] = Int64GetDatum((int64) w.dead_letters);
		values[7] = Int64GetDatum((int64) w.conflicts);
		values[8] = Int64GetDatum(lag);
		nulls[8] = !lag_known;
		values[9] = TimestampTzGetDatum(w.last_batch);
		nulls[9] = w.last_batch == 0;
		values[10] = CStringGetTextDatum(w.last_error);
		nulls[10] = w.last_error[0] == '\0';
		values[11] = TimestampTzGetDatum(w.last_error_at);
		nulls[11] = w.last_error_at == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
dg_partition_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DgShared   *sh = dg_shared();

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < DG_MAX_SLOTS; i++)
	{
		DgWorkerStat w;

		SpinLockAcquire(&sh->workers[i].mutex);
		memcpy(&w, &sh->workers[i], sizeof(w));
		SpinLockRelease(&sh->workers[i].mutex);
		if (w.kind != DG_WORKER_PROCESSOR || w.pid == 0)
			continue;
		for (int p = 0; p < w.npartitions; p++)
		{
			DgPartitionStat *ps = &w.partitions[p];
			Datum		values[6];
			bool		nulls[6] = {0};
			int64		lag = partition_lag(ps);

			values[0] = Int32GetDatum(i);
			values[1] = CStringGetTextDatum(ps->topic);
			values[2] = Int32GetDatum(ps->partition);
			values[3] = Int64GetDatum(ps->position);
			nulls[3] = ps->position < 0;
			values[4] = Int64GetDatum(ps->high_watermark);
			nulls[4] = ps->high_watermark < 0;
			values[5] = Int64GetDatum(lag);
			nulls[5] = lag < 0;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}

static int	wake_pending = 0;
static bool wake_callback = false;

static void
wake(Latch *latch)
{
	if (latch)
		SetLatch(latch);
}

static void
wake_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && shared != NULL)
	{
		if (wake_pending & DG_WAKE_RELAY_AT_COMMIT)
			wake(shared->relay_latch);
		if (wake_pending & DG_WAKE_WAKER_AT_COMMIT)
			wake(shared->waker_latch);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)
		wake_pending = 0;
}

/*
 * Wake the relay or the waker when this transaction commits: it wrote to
 * the outbox, or set a thing's wake-up time, which may be earlier than the
 * waker planned to look again.
 */
void
dg_wake_at_commit(int which)
{
	if (!wake_callback)
	{
		RegisterXactCallback(wake_xact_callback, NULL);
		wake_callback = true;
	}
	wake_pending |= which;
}
