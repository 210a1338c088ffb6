/*-------------------------------------------------------------------------
 *
 * doppelganger.c
 *		Module entry: settings, shared memory and the launcher.
 *
 * The SQL API works whether or not the library is preloaded; the
 * background workers exist only when it is in shared_preload_libraries.
 * Settings that decide which workers exist or how they connect need a
 * restart; the tunables reload on SIGHUP.
 *
 * src/doppelganger.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "doppelganger.h"

PG_MODULE_MAGIC;

char	   *dg_database = NULL;
char	   *dg_kafka_brokers = NULL;
char	   *dg_kafka_properties = NULL;
char	   *dg_events_topic = NULL;
char	   *dg_topic_formats = NULL;
char	   *dg_consumer_group = NULL;
int			dg_processor_workers = 2;
int			dg_batch_size = 1000;
int			dg_batch_timeout = 100;
int			dg_max_event_size = 1024 * 1024;
int			dg_hook_timeout = 1000;
int			dg_hook_memory = 8192;
char	   *dg_commands_topic = NULL;
char	   *dg_notifications_topic = NULL;
int			dg_max_hops = 10;
int			dg_waker_interval = 1000;

void		_PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;

static void
dg_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(dg_shared_size());
}

static void
define_settings(void)
{
	DefineCustomStringVariable("doppelganger.database",
							   "Database the background workers connect to.",
							   "It must have the doppelganger extension installed.",
							   &dg_database, "postgres", PGC_POSTMASTER, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("doppelganger.kafka_brokers",
							   "Kafka bootstrap servers; empty means no Kafka.",
							   NULL,
							   &dg_kafka_brokers, "", PGC_POSTMASTER, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("doppelganger.kafka_properties",
							   "Extra librdkafka properties, as key=value pairs separated by semicolons.",
							   "For TLS and SASL, e.g. security.protocol=SSL;ssl.ca.location=/etc/ssl/ca.pem",
							   &dg_kafka_properties, "", PGC_POSTMASTER, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("doppelganger.events_topic",
							   "Kafka topics of events, separated by commas.",
							   NULL,
							   &dg_events_topic, "events", PGC_POSTMASTER, 0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("doppelganger.topic_formats",
							   "Payload format of topics that carry plain device JSON.",
							   "A comma-separated list of topic=format, where format is message, "
							   "simpleJson or simpleState, optionally followed by +partial and "
							   "+timestamp, e.g. telemetry=simpleJson+partial.",
							   &dg_topic_formats, "", PGC_POSTMASTER, 0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("doppelganger.consumer_group",
							   "Kafka consumer group of the processor workers.",
							   NULL,
							   &dg_consumer_group, "doppelganger", PGC_POSTMASTER, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("doppelganger.processor_workers",
							"Number of processor workers consuming the events topic.",
							"Each is a background worker: keep max_worker_processes large enough.",
							&dg_processor_workers, 2, 0, DG_MAX_PROCESSORS, PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("doppelganger.batch_size",
							"Most events a processor applies in one transaction.",
							NULL,
							&dg_batch_size, 1000, 1, 100000, PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("doppelganger.batch_timeout",
							"Longest a processor waits to fill a batch.",
							NULL,
							&dg_batch_timeout, 100, 1, 60000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("doppelganger.hook_timeout",
							"Longest a reconcile run's hooks may run, all together.",
							"JavaScript and SQL function hooks past it fail with an error.",
							&dg_hook_timeout, 1000, 1, 600000, PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("doppelganger.hook_memory",
							"Most memory one JavaScript hook run may allocate.",
							NULL,
							&dg_hook_memory, 8192, 256, 1024 * 1024, PGC_SUSET, GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomStringVariable("doppelganger.commands_topic",
							   "Kafka topic of commands for devices.",
							   "Without Kafka, commands go out as NOTIFY thing_commands.",
							   &dg_commands_topic, "commands", PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("doppelganger.notifications_topic",
							   "Kafka topic that receives every changed thing; empty: none.",
							   NULL,
							   &dg_notifications_topic, "", PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("doppelganger.max_hops",
							"Most times an event may be passed on from thing to thing.",
							"An event past it becomes a dead letter: it ends loops between hooks.",
							&dg_max_hops, 10, 1, 1000, PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("doppelganger.waker_interval",
							"How often the waker looks for things that are due.",
							NULL,
							&dg_waker_interval, 1000, 10, 3600000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("doppelganger.max_event_size",
							"Largest event payload accepted; larger ones become dead letters.",
							NULL,
							&dg_max_event_size, 1024 * 1024, 1024, 64 * 1024 * 1024, PGC_SIGHUP,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);
}

void
_PG_init(void)
{
	BackgroundWorker worker;

	if (IsBinaryUpgrade)
		return;
	define_settings();
	MarkGUCPrefixReserved("doppelganger");
	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = dg_shmem_request;
	dg_shared_register();

	/* the launcher starts and watches every other worker */
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "doppelganger", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "dg_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "doppelganger launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "doppelganger launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}
