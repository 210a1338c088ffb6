/*-------------------------------------------------------------------------
 *
 * event.c
 *		From a Kafka record to an operation on a thing.
 *
 * The record's key is "<application>/<thing>"; the reference's
 * ce_application and ce_thing headers, when both are present, win over it.
 * The value is a message of the reference (reportState, merge, ...), or,
 * on topics configured so (doppelganger.topic_formats), plain device JSON
 * as the reference's injector maps it: simpleJson (the object's members
 * become reported state) or simpleState ({"state": ..., "partial": ...}).
 * A record whose content-type is the reference's message type is read as a
 * message whatever its topic says.
 *
 * Nothing here raises an error for bad data: decoding fails with a DgError
 * and a SQLSTATE, which the processor stores as a dead letter.
 *
 * src/event.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "kafka.h"
#include "service.h"

#define MESSAGE_CONTENT_TYPE "application/vnd.drogue-iot.doppelgaenger.message+json"

static bool
fail_state(DgError *err, DgErrorKind kind, const char *sqlstate, const char *fmt, const char *arg)
{
	dg_fail(err, kind, fmt, arg);
	if (sqlstate)
		strlcpy(err->sqlstate, sqlstate, sizeof(err->sqlstate));
	return false;
}

/*
 * Parse doppelganger.topic_formats: "topic=format[+partial][+timestamp], ...".
 * Returns false with a message for a setting that makes no sense.
 */
bool
dg_topic_formats_parse(const char *setting, List **formats, char **error)
{
	char	   *copy = pstrdup(setting ? setting : "");
	char	   *save = NULL;

	*formats = NIL;
	for (char *item = strtok_r(copy, ", ", &save); item; item = strtok_r(NULL, ", ", &save))
	{
		DgTopicFormat *f = palloc0(sizeof(DgTopicFormat));
		char	   *eq = strchr(item, '=');
		char	   *opt;
		char	   *fmt;

		if (eq == NULL || eq == item)
		{
			*error = psprintf("\"%s\" is not topic=format", item);
			return false;
		}
		*eq = '\0';
		f->topic = pstrdup(item);
		fmt = eq + 1;
		opt = strchr(fmt, '+');
		if (opt)
			*opt++ = '\0';
		if (pg_strcasecmp(fmt, "message") == 0)
			f->format = DG_FORMAT_MESSAGE;
		else if (pg_strcasecmp(fmt, "simpleJson") == 0 || pg_strcasecmp(fmt, "simple_json") == 0)
			f->format = DG_FORMAT_SIMPLE_JSON;
		else if (pg_strcasecmp(fmt, "simpleState") == 0 || pg_strcasecmp(fmt, "simple_state") == 0)
			f->format = DG_FORMAT_SIMPLE_STATE;
		else
		{
			*error = psprintf("unknown format \"%s\" for topic \"%s\"; use message, simpleJson or simpleState",
							  fmt, f->topic);
			return false;
		}
		while (opt)
		{
			char	   *next = strchr(opt, '+');

			if (next)
				*next++ = '\0';
			if (strcmp(opt, "partial") == 0)
				f->partial = true;
			else if (strcmp(opt, "timestamp") == 0)
				f->timestamp = true;
			else
			{
				*error = psprintf("unknown option \"%s\" for topic \"%s\"; use partial or timestamp",
								  opt, f->topic);
				return false;
			}
			opt = next;
		}
		*formats = lappend(*formats, f);
	}
	return true;
}

static const DgKafkaHeader *
header(const DgKafkaRecord *rec, const char *name)
{
	for (int i = 0; i < rec->nheaders; i++)
		if (strcmp(rec->headers[i].name, name) == 0 && rec->headers[i].value != NULL)
			return &rec->headers[i];
	return NULL;
}

static bool
identify(const DgKafkaRecord *rec, DgEvent *ev, DgError *err)
{
	const DgKafkaHeader *app = header(rec, "ce_application");
	const DgKafkaHeader *thing = header(rec, "ce_thing");

	if (app && thing)
	{
		ev->application = pstrdup(app->value);
		ev->name = pstrdup(thing->value);
	}
	else
	{
		const char *slash = rec->key ? memchr(rec->key, '/', rec->key_len) : NULL;

		if (slash == NULL || slash == rec->key || slash == rec->key + rec->key_len - 1 ||
			memchr(rec->key, '\0', rec->key_len) != NULL)
			return fail_state(err, DG_ERR_INVALID, NULL,
							  "the record key must be \"application/thing\"%s",
							  rec->key ? "" : ", and the record has none");
		ev->application = pnstrdup(rec->key, slash - rec->key);
		ev->name = pnstrdup(slash + 1, rec->key_len - (slash - rec->key) - 1);
	}
	return dg_check_application(ev->application, err) && dg_check_name(ev->name, err);
}

static DgPayloadFormat
format_of(const DgKafkaRecord *rec, List *formats, DgTopicFormat **config)
{
	const DgKafkaHeader *ct = header(rec, "content-type");
	ListCell   *lc;

	*config = NULL;
	foreach(lc, formats)
	{
		DgTopicFormat *f = lfirst(lc);

		if (strcmp(f->topic, rec->topic) == 0)
			*config = f;
	}
	if (ct && strncmp(ct->value, MESSAGE_CONTENT_TYPE, strlen(MESSAGE_CONTENT_TYPE)) == 0)
		return DG_FORMAT_MESSAGE;
	return *config ? (*config)->format : DG_FORMAT_MESSAGE;
}

/* A reportState message around a state object (which it takes over). */
static json_object *
report_message(json_object *state, bool partial)
{
	json_object *body = json_object_new_object();
	json_object *msg = json_object_new_object();

	dg_json_set(body, "state", state);
	dg_json_set(body, "partial", json_object_new_boolean(partial));
	dg_json_set(msg, "reportState", body);
	return msg;
}

bool
dg_event_decode(const DgKafkaRecord *rec, List *formats, DgEvent *ev, DgError *err)
{
	DgTopicFormat *config;
	DgPayloadFormat format;
	json_object *value;
	char	   *error;

	memset(ev, 0, sizeof(*ev));
	if (rec->payload != NULL && rec->len > (size_t) dg_max_event_size)
	{
		dg_fail(err, DG_ERR_LIMIT, "the event has %zu bytes, more than doppelganger.max_event_size (%d)",
				rec->len, dg_max_event_size);
		return false;
	}
	if (!identify(rec, ev, err))
		return false;
	if (rec->payload == NULL)
		return fail_state(err, DG_ERR_INVALID, NULL, "the record has no value%s", "");
	if (!dg_jsonc_parse_text(rec->payload, rec->len, &value, &error))
		return fail_state(err, DG_ERR_INVALID, strstr(error, "JSON") ? "22P02" : "22021",
						  "%s", error);
	format = format_of(rec, formats, &config);
	{
		const DgKafkaHeader *hops = header(rec, "doppelganger-hops");

		ev->hops = hops ? atoi(hops->value) : 0;
	}
	if (format != DG_FORMAT_MESSAGE && json_object_get_type(value) != json_type_object)
	{
		json_object_put(value);
		return fail_state(err, DG_ERR_INVALID, NULL,
						  "a device payload must be a JSON object, got %s", dg_json_type_name(value));
	}
	switch (format)
	{
		case DG_FORMAT_MESSAGE:
			ev->message = value;
			break;
		case DG_FORMAT_SIMPLE_JSON:
			if (config && config->timestamp && rec->timestamp_ms >= 0)
			{
				char		buf[64];
				char	   *z;

				/* the injector's form: RFC 3339 with a +00:00 offset */
				dg_time_format(rec->timestamp_ms * DG_NS_PER_MS, buf);
				z = strrchr(buf, 'Z');
				strcpy(z, "+00:00");
				dg_json_set(value, "lastMessage", json_object_new_string(buf));
			}
			ev->message = report_message(value, config && config->partial);
			break;
		case DG_FORMAT_SIMPLE_STATE:
			{
				json_object *state,
						   *partial;

				if (!dg_json_has(value, "state", &state) ||
					json_object_get_type(state) != json_type_object)
				{
					json_object_put(value);
					return fail_state(err, DG_ERR_INVALID, NULL,
									  "a simpleState payload must be {\"state\": {...}, \"partial\": ...}%s", "");
				}
				dg_json_has(value, "partial", &partial);
				ev->message = report_message(json_object_get(state),
											 partial ? json_object_get_boolean(partial) : false);
				json_object_put(value);
				break;
			}
	}
	if (!dg_op_from_message(ev->message, &ev->op, err))
	{
		dg_event_free(ev);
		return false;
	}
	return true;
}

void
dg_event_free(DgEvent *ev)
{
	json_object_put(ev->message);
	ev->message = NULL;
}
