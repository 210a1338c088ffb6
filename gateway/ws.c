/*
 * ws.c: the WebSocket protocol of reference section 5.3: subscribe,
 * unsubscribe and setDesiredValues in; initial, change, patch, deleted
 * and lag out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "../src/dg.h"

/*
 * Who may open the socket, decided before the upgrade so that a refusal
 * is a plain HTTP status: 401 for a bad token, 404 when the caller may not
 * read the application (as for a thing it may not see).
 */
int
gw_ws_confirm(struct lws *wsi, GwSession *s)
{
	char	   *uri;
	int			uri_len;
	char		app[GW_APPLICATION_SIZE],
				body[1200];
	char	   *thing = NULL;
	bool		sse;
	GwCaller	caller;
	int			status;

	(void) s;
	if (lws_http_get_uri_and_method(wsi, &uri, &uri_len) < 0 ||
		gw_notifications_route(uri, app, sizeof(app), &thing, &sse) != 0 || sse)
	{
		free(thing);
		return gw_http_status(wsi, 404, gw_json_error("NotFound", "no WebSocket endpoint here", body, sizeof(body))) ? -1 : 1;
	}
	free(thing);
	if ((status = gw_client_admit(wsi, app, &caller, body, sizeof(body))) != 0)
		return gw_http_status(wsi, status, body[0] ? body : NULL) ? -1 : 1;
	gw_caller_free(&caller);
	return 0;
}

int
gw_ws_established(struct lws *wsi, GwSession *s)
{
	char	   *uri;
	int			uri_len;
	char		app[GW_APPLICATION_SIZE],
				msg[512];
	char	   *thing = NULL;
	bool		sse;
	GwClient   *c = malloc(sizeof(GwClient));

	if (!c)
		return -1;
	gw_client_init(c, wsi, false);
	memset(s, 0, sizeof(*s));
	s->kind = GW_S_WS;
	s->client = c;
	if (lws_http_get_uri_and_method(wsi, &uri, &uri_len) < 0 ||
		gw_notifications_route(uri, app, sizeof(app), &thing, &sse) != 0 ||
		gw_authenticate(wsi, &c->caller, msg, sizeof(msg)) != GW_AUTH_OK ||
		!(c->application = strdup(app)))
	{
		free(thing);
		return -1;
	}
	c->diff = gw_url_bool(wsi, "diff");
	c->single = thing != NULL;
	if (thing)
		gw_hub_subscribe(c, thing, c->diff);
	free(thing);
	return 0;
}

static int
close_with(struct lws *wsi, GwClient *c, enum lws_close_status code, const char *reason)
{
	size_t		n = strlen(reason);

	/* a close frame's reason has at most 123 bytes */
	if (n > 120)
		n = 120;
	c->closing = true;
	lws_close_reason(wsi, code, (unsigned char *) reason, n);
	return -1;
}

/* {"value": X, "validFor": "1m"} → {"value": X, "validUntil": now + 1m} */
static bool
desired_values(json_object *values, json_object **out, char *why, size_t size)
{
	json_object *result = json_object_new_object();

	json_object_object_foreach(values, name, v)
	{
		json_object *value,
				   *forv = NULL;
		bool		has_for;

		if (!json_object_is_type(v, json_type_object) || !json_object_object_get_ex(v, "value", &value))
		{
			json_object_object_add(result, name, json_object_get(v));
			continue;
		}
		has_for = json_object_object_get_ex(v, "validFor", &forv);
		if (has_for && json_object_object_get_ex(v, "validUntil", NULL))
		{
			snprintf(why, size, "%s: give either validUntil or validFor, not both", name);
			json_object_put(result);
			return false;
		}
		if (has_for)
		{
			char		text[64];
			json_object *item;

			if (!json_object_is_type(forv, json_type_string) ||
				!gw_time_after(json_object_get_string(forv), text))
			{
				snprintf(why, size, "%s: validFor is not a duration like 30s or 1m", name);
				json_object_put(result);
				return false;
			}
			item = json_object_new_object();
			json_object_object_add(item, "value", json_object_get(value));
			json_object_object_add(item, "validUntil", json_object_new_string(text));
			json_object_object_add(result, name, item);
		}
		else
			json_object_object_add(result, name, json_object_get(v));
	}
	*out = result;
	return true;
}

static void
set_desired_values(GwClient *c, const char *thing, json_object *values)
{
	json_object *event = json_object_new_object();
	json_object *inner = json_object_new_object();
	const char *params[3];
	GwJob	   *job;
	char		label[400];

	json_object_object_add(inner, "values", values);
	json_object_object_add(event, "setDesiredValue", inner);
	params[0] = c->application;
	params[1] = thing;
	params[2] = dg_json_text(event, NULL);
	/* on the pool, like a REST call: no reply, a failure is only logged */
	job = gw_job_new(&c->caller, "SELECT doppelganger.dt_process_event($1, $2, $3)", 3, params, false);
	snprintf(label, sizeof(label), "setDesiredValues on %s/%s", c->application, thing);
	if (job && (job->label = strdup(label)))
		gw_pool_submit(job);
	else
		gw_job_free(job);
	json_object_put(event);
}

static int
message(struct lws *wsi, GwClient *c)
{
	json_object *m = NULL,
			   *type,
			   *thing,
			   *v;
	DgError		err;
	char		why[300];
	const char *t;
	int			rc = 0;

	dg_error_clear(&err);
	if (!dg_json_parse(c->rx, c->rx_len, &m, &err))
		return close_with(wsi, c, LWS_CLOSE_STATUS_PROTOCOL_ERR, err.message);
	if (!json_object_is_type(m, json_type_object) || !json_object_object_get_ex(m, "type", &type) ||
		!json_object_is_type(type, json_type_string))
		rc = close_with(wsi, c, LWS_CLOSE_STATUS_PROTOCOL_ERR, "a message must be an object with a \"type\"");
	else if (!json_object_object_get_ex(m, "thing", &thing) || !json_object_is_type(thing, json_type_string))
		rc = close_with(wsi, c, LWS_CLOSE_STATUS_PROTOCOL_ERR, "a message must name its \"thing\"");
	else if (strcmp((t = json_object_get_string(type)), "subscribe") == 0 || strcmp(t, "unsubscribe") == 0)
	{
		if (c->single)
			rc = close_with(wsi, c, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
							"Unable to subscribe/unsubscribe on single-thing endpoint");
		else if (t[0] == 's')
		{
			bool		diff = c->diff;

			if (json_object_object_get_ex(m, "diff", &v))
				diff = json_object_get_boolean(v);
			gw_hub_subscribe(c, json_object_get_string(thing), diff);
		}
		else
			gw_hub_unsubscribe(c, json_object_get_string(thing));
	}
	else if (strcmp(t, "setDesiredValues") == 0)
	{
		json_object *values;

		if (!json_object_object_get_ex(m, "values", &v) || !json_object_is_type(v, json_type_object))
			rc = close_with(wsi, c, LWS_CLOSE_STATUS_PROTOCOL_ERR, "setDesiredValues needs an object \"values\"");
		else if (!desired_values(v, &values, why, sizeof(why)))
			rc = close_with(wsi, c, LWS_CLOSE_STATUS_PROTOCOL_ERR, why);
		else
			set_desired_values(c, json_object_get_string(thing), values);
	}
	else
	{
		snprintf(why, sizeof(why), "unknown message type \"%s\"", t);
		rc = close_with(wsi, c, LWS_CLOSE_STATUS_PROTOCOL_ERR, why);
	}
	json_object_put(m);
	return rc;
}

int
gw_ws_receive(struct lws *wsi, GwSession *s, const void *in, size_t len)
{
	GwClient   *c = s->client;
	int			rc;

	if (!c || c->closing)
		return -1;
	/* data counts as a sign of life, as a pong does */
	lws_validity_confirmed(wsi);
	if (c->rx_len + len > GW_MAX_WS_MESSAGE)
		return close_with(wsi, c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "a message may have at most 64 KiB");
	if (c->rx_len + len + 1 > c->rx_cap)
	{
		size_t		cap = c->rx_len + len + 1 < 4096 ? 4096 : GW_MAX_WS_MESSAGE + 1;
		char	   *grown = realloc(c->rx, cap);

		if (!grown)
			return -1;
		c->rx = grown;
		c->rx_cap = cap;
	}
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	c->rx[c->rx_len] = '\0';
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
		return 0;
	rc = message(wsi, c);
	c->rx_len = 0;
	return rc;
}

int
gw_ws_writeable(struct lws *wsi, GwSession *s)
{
	(void) wsi;
	return s->client ? gw_client_write(s->client) : 0;
}

void
gw_ws_closed(GwSession *s)
{
	if (s && s->client)
	{
		gw_client_free(s->client);
		s->client = NULL;
	}
}
