/*-------------------------------------------------------------------------
 *
 * worker.c
 *		What every background worker of the extension does the same way:
 *		signals, the connection, its stats slot, waiting for the extension,
 *		short transactions of its own, and naps on its latch.
 *
 * SIGTERM only sets ShutdownRequestPending: a worker checks it between
 * units of work, so it always finishes the one in hand.  SIGHUP sets
 * ConfigReloadPending, handled by dg_worker_reload.
 *
 * src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "doppelganger.h"

static DgWorkerStat *my_stat = NULL;

static void
worker_exit(int code, Datum arg)
{
	if (my_stat)
		dg_worker_detach(my_stat);
}

/* Set up a worker connected to doppelganger.database; returns its stats slot. */
DgWorkerStat *
dg_worker_start(int slot, DgWorkerKind kind, const char *name)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(dg_database, NULL, 0);
	/* every statement of ours is schema-qualified; nothing else is looked up */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_appname(name);
	my_stat = dg_worker_attach(slot, kind);
	before_shmem_exit(worker_exit, (Datum) 0);
	return my_stat;
}

void
dg_worker_reload(void)
{
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/* Sleep on the latch for up to ms; wakes at once for a signal. */
void
dg_worker_nap(int ms)
{
	int			rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							   ms, PG_WAIT_EXTENSION);

	if (rc & WL_LATCH_SET)
		ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * Run fn inside a short transaction of its own, SPI connected; false if
 * it raised (the error is logged and kept in the stats slot).
 */
bool
dg_worker_transaction(void (*fn) (void *), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		fn(arg);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		if (my_stat)
			dg_worker_error(my_stat, edata->message);
		ereport(LOG, (errmsg("%s: %s", MyBgworkerEntry->bgw_name, edata->message)));
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

static void
check_extension(void *arg)
{
	*(bool *) arg = OidIsValid(get_extension_oid("doppelganger", true));
}

/* The extension must exist in the database before anything can run. */
void
dg_worker_wait_for_extension(void)
{
	bool		logged = false;

	for (;;)
	{
		bool		ready = false;

		if (dg_worker_transaction(check_extension, &ready) && ready)
			return;
		if (!logged)
			ereport(LOG,
					(errmsg("%s: waiting for CREATE EXTENSION doppelganger in database \"%s\"",
							MyBgworkerEntry->bgw_name, dg_database)));
		logged = true;
		if (my_stat)
			dg_worker_state(my_stat, "waiting for the extension");
		dg_worker_nap(2000);
		if (ShutdownRequestPending)
			proc_exit(0);
	}
}
