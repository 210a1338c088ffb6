/*-------------------------------------------------------------------------
 *
 * outbox.c
 *		What a thing's processing sends out: events for other things and
 *		commands for devices, written to doppelganger.outbox in the same
 *		transaction as the state that produced them (reference §3.12).
 *
 * The relay worker delivers the rows in id order, which is commit order
 * for the events of one thing (its row lock orders its transactions), so
 * older events always go before newer ones and none is lost or sent
 * before its state committed.  This replaces upstream's in-row outbox with
 * its postpone-and-retry cycle: there is no "unclean outbox" state.
 *
 * Each event carries a hop count: an event produced while applying an
 * event that had n hops has n + 1.  Past doppelganger.max_hops it is not
 * queued but becomes a dead letter, which ends a ping-pong between things.
 *
 * Without Kafka, commands go out as NOTIFY thing_commands, and the relay
 * applies the events to their things in the database.
 *
 * src/outbox.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"

#include "kafka.h"
#include "pgbuiltins.h"
#include "service.h"

static SPIPlanPtr plan_insert;
static SPIPlanPtr plan_pending;
static void
insert_row(const char *kind, const char *application, const char *source,
		   const char *target, const char *channel, json_object *message, int hops)
{
	static Oid	types[7] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, INT4OID};
	Datum		values[7];
	char		nulls[7] = "       ";
	int			rc;

	dg_store_prepare(&plan_insert, "INSERT INTO doppelganger.outbox (kind, application, source,"
					 " target, channel, message, hops)"
					 " VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, types);
	values[0] = CStringGetTextDatum(kind);
	values[1] = CStringGetTextDatum(application);
	values[2] = CStringGetTextDatum(source);
	values[3] = CStringGetTextDatum(target);
	values[4] = channel ? CStringGetTextDatum(channel) : (Datum) 0;
	nulls[4] = channel ? ' ' : 'n';
	values[5] = PointerGetDatum(dg_jsonb_from_jsonc(message));
	values[6] = Int32GetDatum(hops);
	rc = SPI_execute_plan(plan_insert, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "writing to the outbox failed: %s", SPI_result_code_string(rc));
	dg_wake_at_commit(DG_WAKE_RELAY_AT_COMMIT);
}

static bool
kafka_configured(void)
{
	return dg_kafka_brokers != NULL && dg_kafka_brokers[0] != '\0';
}

/* An event past the hop limit: kept as a dead letter instead of sent. */
static void
too_many_hops(DgWork *w, const char *target, json_object *message, int hops)
{
	DgKafkaRecord rec;
	char	   *key = psprintf("%s/%s", dg_thing_application(w->thing ? w->thing : w->stored), target);
	const char *text = dg_json_text(message, NULL);
	char	   *why = psprintf("an event from \"%s\" to \"%s\" would make hop %d, more than doppelganger.max_hops (%d)",
							   dg_thing_name(w->thing ? w->thing : w->stored), target, hops, dg_max_hops);

	memset(&rec, 0, sizeof(rec));
	rec.topic = "outbox";
	rec.partition = -1;
	rec.offset = -1;
	rec.key = key;
	rec.key_len = strlen(key);
	rec.payload = (char *) text;
	rec.len = strlen(text);
	dg_dead_letter_insert(&rec, dg_thing_application(w->thing ? w->thing : w->stored), target,
						  "54000", why, "The events of a chain of hooks were passed on too often: a loop?");
	ereport(WARNING, (errmsg("doppelganger: %s", why)));
}

static void
notify_command(const char *application, const char *device, const char *channel,
			   json_object *value)
{
	json_object *payload = json_object_new_object();
	const char *text;
	size_t		len;

	dg_json_set(payload, "application", json_object_new_string(application));
	dg_json_set(payload, "device", json_object_new_string(device));
	dg_json_set(payload, "channel", channel ? json_object_new_string(channel) : NULL);
	dg_json_set(payload, "payload", json_object_get(value));
	text = dg_json_text(payload, &len);
	PG_TRY();
	{
		if (len < 8000)
			Async_Notify("thing_commands", text);
		else
			ereport(WARNING,
					(errmsg("doppelganger: a command for device \"%s\" is too large for NOTIFY (%zu bytes)",
							device, len),
					 errhint("Configure Kafka (doppelganger.kafka_brokers) for large commands.")));
	}
	PG_FINALLY();
	{
		json_object_put(payload);
	}
	PG_END_TRY();
}

/* For the relay: a command row whose topic was switched off meanwhile. */
void
dg_outbox_notify_command(const char *application, const char *device,
						 const char *channel, const char *payload)
{
	json_object *value = NULL;
	char	   *error;

	if (payload && !dg_jsonc_parse_text(payload, strlen(payload), &value, &error))
		elog(ERROR, "a command in the outbox is not JSON: %s", error);
	PG_TRY();
	{
		notify_command(application, device, channel, value);
	}
	PG_FINALLY();
	{
		json_object_put(value);
	}
	PG_END_TRY();
}

static bool
commands_to_kafka(void)
{
	return kafka_configured() && dg_commands_topic != NULL && dg_commands_topic[0] != '\0';
}

/*
 * Write the machine's outputs of this work (caller has SPI connected and
 * the state written in this transaction), then forget them.
 */
void
dg_outbox_flush(DgWork *w)
{
	DgMachine  *m = &w->machine;
	json_object *thing = w->thing ? w->thing : w->stored;
	const char *application = dg_thing_application(thing);
	const char *source = dg_thing_name(thing);
	size_t		n;

	n = m->outbox ? json_object_array_length(m->outbox) : 0;
	for (size_t i = 0; i < n; i++)
	{
		json_object *e = json_object_array_get_idx(m->outbox, i);
		const char *target = json_object_get_string(json_object_object_get(e, "thing"));
		json_object *message = json_object_object_get(e, "message");

		if (w->hops + 1 > dg_max_hops)
			too_many_hops(w, target, message, w->hops + 1);
		else
			insert_row("event", application, source, target, NULL, message, w->hops + 1);
	}
	n = m->commands ? json_object_array_length(m->commands) : 0;
	for (size_t i = 0; i < n; i++)
	{
		json_object *c = json_object_array_get_idx(m->commands, i);

		const char *device = json_object_get_string(json_object_object_get(c, "device"));
		const char *channel = json_object_get_string(json_object_object_get(c, "channel"));
		json_object *payload = json_object_object_get(c, "payload");

		if (commands_to_kafka())
			insert_row("command", application, source, device, channel, payload, 0);
		else
			notify_command(application, device, channel, payload);
	}
	json_object_put(m->outbox);
	json_object_put(m->commands);
	m->outbox = m->commands = NULL;
}

/* With doppelganger.notifications_topic, the changed thing goes out too. */
void
dg_outbox_notification(json_object *thing)
{
	if (!kafka_configured() || dg_notifications_topic == NULL || dg_notifications_topic[0] == '\0')
		return;
	insert_row("notification", dg_thing_application(thing), dg_thing_name(thing),
			   dg_thing_name(thing), NULL, thing, 0);
}

/* Whether events of this thing wait in the outbox (its deletion waits for them). */
bool
dg_outbox_pending(const char *application, const char *source)
{
	static Oid	types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	int			rc;

	dg_store_prepare(&plan_pending, "SELECT 1 FROM doppelganger.outbox"
					 " WHERE application = $1 AND source = $2 AND kind = 'event'"
					 " LIMIT 1", 2, types);
	values[0] = CStringGetTextDatum(application);
	values[1] = CStringGetTextDatum(source);
	rc = SPI_execute_plan(plan_pending, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading the outbox failed: %s", SPI_result_code_string(rc));
	return SPI_processed > 0;
}
