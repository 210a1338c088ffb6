/*
 * client.c: a WebSocket or SSE subscriber as the hub sees it: messages in
 * its framing, its queue, its lag.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"

void
gw_client_init(GwClient *client, struct lws *wsi, bool sse)
{
	memset(client, 0, sizeof(*client));
	client->wsi = wsi;
	client->sse = sse;
	gw_queue_init(&client->queue, gw_config.queue);
}

void
gw_client_free(GwClient *client)
{
	gw_hub_drop_client(client);
	if (client->sse)
		gw_sse_forget(client);
	gw_queue_free(&client->queue);
	gw_caller_free(&client->caller);
	free(client->application);
	free(client->rx);
	free(client);
}

/*
 * One event in the client's framing: the JSON itself on a WebSocket, an
 * "event:"/"id:"/"data:" block on SSE (JSON text has no raw newlines).
 */
GwMsg *
gw_client_event(GwClient *client, const char *type, int64_t id, const char *json, size_t len)
{
	(void) len;
	if (client->sse)
	{
		char		head[96];

		if (id > 0)
			snprintf(head, sizeof(head), "event: %s\nid: %lld\ndata: ", type, (long long) id);
		else
			snprintf(head, sizeof(head), "event: %s\ndata: ", type);
		return gw_msg_new((const char *[]) {head, json, "\n\n"}, 3);
	}
	return gw_msg_new((const char *[]) {json}, 1);
}

/* queue a message (taking a reference) and ask to be told when it can go */
bool
gw_client_send(GwClient *client, GwMsg *msg)
{
	if (!msg || client->closing || !gw_queue_push(&client->queue, msg))
		return false;
	lws_callback_on_writable(client->wsi);
	return true;
}

/*
 * May this request watch the application?  0 with *caller filled in, or
 * the HTTP status to refuse with (body: its JSON, or "" for none): 401 for
 * a bad token, 403 for a non-loopback client without a key, 404 when the
 * caller may not read the application, as for a thing it may not see.
 */
int
gw_client_admit(struct lws *wsi, const char *application, GwCaller *caller,
				char *body, size_t size)
{
	char		msg[512];
	const char *params[1] = {application};
	GwDbError	err;
	PGresult   *res;
	int			status = 0;

	body[0] = '\0';
	switch (gw_authenticate(wsi, caller, msg, sizeof(msg)))
	{
		case GW_AUTH_OK:
			break;
		case GW_AUTH_UNAUTHORIZED:
			gw_json_error("Unauthorized", msg, body, size);
			return 401;
		case GW_AUTH_FORBIDDEN:
			gw_json_error("Forbidden", msg, body, size);
			return 403;
	}
	res = gw_db_call(caller, "SELECT doppelganger.dt_can($1, 'read')", 1, params, true, &err);
	if (!res)
	{
		status = err.http_status == 401 ? 401 : 503;
		gw_json_error(status == 401 ? "Unauthorized" : "Unavailable", err.message, body, size);
	}
	else if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0)
		status = 404;
	PQclear(res);
	if (status)
		gw_caller_free(caller);
	return status;
}

/* one queued message per writeable callback, as lws wants */
int
gw_client_write(GwClient *client)
{
	GwMsg	   *msg;

	if (client->closing || !(msg = gw_queue_peek(&client->queue)))
		return 0;
	if (lws_write(client->wsi, msg->data + LWS_PRE, msg->len,
				  client->sse ? LWS_WRITE_HTTP : LWS_WRITE_TEXT) < (int) msg->len)
		return -1;
	gw_queue_pop(&client->queue);
	if (client->queue.count)
		lws_callback_on_writable(client->wsi);
	else
		gw_client_lag(client);
	return 0;
}

/* once the queue has drained: how much was lost, if anything */
void
gw_client_lag(GwClient *client)
{
	char		json[64];
	GwMsg	   *msg;

	if (client->queue.dropped == 0 || client->queue.count > 0)
		return;
	snprintf(json, sizeof(json), "{\"type\":\"lag\",\"lag\":%lld}", (long long) client->queue.dropped);
	client->queue.dropped = 0;
	msg = gw_client_event(client, "lag", 0, json, strlen(json));
	gw_client_send(client, msg);
	gw_msg_unref(msg);
}
