/*
 * sse.c: Server-Sent Events for one thing, the same messages as the
 * WebSocket's for clients that only read (browsers' EventSource, curl).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"

static GwClient *sse_clients;

int
gw_sse_start(struct lws *wsi, GwSession *s, const char *uri)
{
	unsigned char buf[LWS_PRE + 1024];
	unsigned char *start = buf + LWS_PRE,
			   *p = start,
			   *end = buf + sizeof(buf) - 1;
	char		app[GW_APPLICATION_SIZE],
				body[1200];
	char	   *thing = NULL;
	bool		sse;
	GwClient   *c;
	int			status;
	bool		diff = gw_url_bool(wsi, "diff");

	if (gw_notifications_route(uri, app, sizeof(app), &thing, &sse) != 0 || !sse || !thing)
	{
		free(thing);
		return gw_http_status(wsi, 404, NULL) || lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	c = malloc(sizeof(GwClient));
	if (!c)
	{
		free(thing);
		return -1;
	}
	gw_client_init(c, wsi, true);
	status = gw_client_admit(wsi, app, &c->caller, body, sizeof(body));
	if (status || !(c->application = strdup(app)))
	{
		free(thing);
		gw_client_free(c);
		return gw_http_status(wsi, status ? status : 500, body[0] ? body : NULL) ||
			lws_http_transaction_completed(wsi) ? -1 : 0;
	}

	if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, "text/event-stream",
									LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
		lws_add_http_header_by_name(wsi, (unsigned char *) "cache-control:",
									(unsigned char *) "no-cache", 8, &p, end) ||
		lws_finalize_write_http_header(wsi, start, &p, end))
	{
		free(thing);
		gw_client_free(c);
		return -1;
	}
	/* an event stream lives as long as the client wants it */
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
	s->kind = GW_S_SSE;
	s->client = c;
	c->next_sse = sse_clients;
	sse_clients = c;
	gw_hub_subscribe(c, thing, diff);
	free(thing);
	return 0;
}

int
gw_sse_writeable(struct lws *wsi, GwSession *s)
{
	(void) wsi;
	return s->client ? gw_client_write(s->client) : 0;
}

/* a comment line every 15 s keeps proxies from closing a quiet stream */
void
gw_sse_ping(void)
{
	GwMsg	   *ping = gw_msg_new((const char *[]) {": ping\n\n"}, 1);

	for (GwClient *c = sse_clients; c; c = c->next_sse)
		if (c->queue.count == 0)
			gw_client_send(c, ping);
	gw_msg_unref(ping);
}

void
gw_sse_forget(GwClient *client)
{
	for (GwClient **p = &sse_clients; *p; p = &(*p)->next_sse)
		if (*p == client)
		{
			*p = client->next_sse;
			return;
		}
}
