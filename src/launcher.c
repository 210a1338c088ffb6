/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		The launcher: the one static background worker.  It starts the
 *		processors (when Kafka is configured), watches them and starts a
 *		worker again when it stops, after a pause so that a worker that
 *		fails at once does not spin.
 *
 * The workers it starts are dynamic, so doppelganger.processor_workers
 * takes effect on a reload: the launcher starts or stops processors to
 * match.  When the launcher itself is told to stop, it stops its workers,
 * so a new launcher never finds strays.
 *
 * src/launcher.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "utils/snapmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "doppelganger.h"

PGDLLEXPORT void dg_launcher_main(Datum arg) pg_attribute_noreturn();

/* seconds before a worker that stopped is started again */
#define RESTART_DELAY_S 5

typedef struct Slot
{
	BackgroundWorkerHandle *handle;
	TimestampTz not_before;
	bool		warned;
} Slot;

static Slot slots[DG_MAX_SLOTS];

static void
start_worker(int slot, const char *function, const char *type)
{
	BackgroundWorker worker;
	Slot	   *s = &slots[slot];

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "doppelganger", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, function, BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s %d", type, slot);
	strlcpy(worker.bgw_type, type, BGW_MAXLEN);
	worker.bgw_main_arg = Int32GetDatum(slot);
	worker.bgw_notify_pid = MyProcPid;
	if (RegisterDynamicBackgroundWorker(&worker, &s->handle))
	{
		s->warned = false;
		return;
	}
	s->handle = NULL;
	s->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RESTART_DELAY_S * 1000);
	if (!s->warned)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("doppelganger: could not start %s %d: no background worker slot is free", type, slot),
				 errhint("Raise max_worker_processes.")));
	s->warned = true;
}

/* Keep the worker of a slot running, or stop it when it is not wanted. */
static void
keep(int slot, bool wanted, const char *function, const char *type)
{
	Slot	   *s = &slots[slot];
	pid_t		pid;

	if (s->handle != NULL)
	{
		BgwHandleStatus status = GetBackgroundWorkerPid(s->handle, &pid);

		if (status == BGWH_STARTED || status == BGWH_NOT_YET_STARTED)
		{
			if (!wanted)
			{
				TerminateBackgroundWorker(s->handle);
				pfree(s->handle);
				s->handle = NULL;
			}
			return;
		}
		/* it stopped: start it again after a pause */
		pfree(s->handle);
		s->handle = NULL;
		if (wanted)
		{
			ereport(LOG, (errmsg("doppelganger: %s %d stopped; starting it again in %d s",
								 type, slot, RESTART_DELAY_S)));
			s->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RESTART_DELAY_S * 1000);
		}
	}
	if (wanted && GetCurrentTimestamp() >= s->not_before)
		start_worker(slot, function, type);
}

/*
 * Whether doppelganger.database exists: a worker cannot connect to a
 * database that does not, and would only fail and be started again.
 */
static bool
database_exists(void)
{
	static bool logged = false;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	/*
	 * A heap scan, as the autovacuum launcher does: without a database,
	 * only nailed catalogs can be opened, and pg_database's indexes are not.
	 */
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (!found && (tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
		found = strcmp(NameStr(((Form_pg_database) GETSTRUCT(tup))->datname), dg_database) == 0;
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (!found && !logged)
		ereport(LOG,
				(errmsg("doppelganger: waiting for database \"%s\" (doppelganger.database) to exist",
						dg_database)));
	logged = !found;
	return found;
}

static void
launcher_exit(int code, Datum arg)
{
	for (int i = 0; i < DG_MAX_SLOTS; i++)
		if (slots[i].handle)
			TerminateBackgroundWorker(slots[i].handle);
}

void
dg_launcher_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	/* no database: the connection only makes the launcher visible in pg_stat_activity */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	dg_shared()->launcher_pid = MyProcPid;
	before_shmem_exit(launcher_exit, (Datum) 0);
	ereport(LOG, (errmsg("doppelganger launcher started")));

	while (!ShutdownRequestPending)
	{
		bool		kafka = dg_kafka_brokers != NULL && dg_kafka_brokers[0] != '\0';
		bool		ready;
		int			rc;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		ready = database_exists();
		for (int i = 0; i < DG_MAX_PROCESSORS; i++)
			keep(i, ready && kafka && i < dg_processor_workers, "dg_processor_main",
				 "doppelganger processor");
		keep(DG_SLOT_WAKER, ready, "dg_waker_main", "doppelganger waker");
		keep(DG_SLOT_RELAY, ready, "dg_relay_main", "doppelganger relay");

		/* a worker's start or stop sets our latch (bgw_notify_pid) */
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   1000, PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
			ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	proc_exit(0);
}
