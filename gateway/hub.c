/*
 * hub.c: from NOTIFY thing_changes to subscribers.
 *
 * For each thing somebody subscribed to, the hub keeps the newest version
 * it knows.  A notification whose patch follows on from that version is
 * applied in memory; otherwise (no patch, a gap) the thing is marked stale
 * and every stale thing is re-read in one query once the notifications at
 * hand are consumed.  Each version is serialized once and the same message
 * is queued for all its subscribers; subscribers in diff mode hold the
 * version they were last sent, so their next patch always starts from what
 * they have, even after messages were dropped for them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw.h"
#include "../src/dg.h"

#define HUB_BUCKETS 16384
#define HUB_READ_BATCH 500

typedef struct GwThing GwThing;

struct GwSub
{
	GwClient   *client;
	GwThing    *thing;
	int64_t		last_gen;		/* generation last queued to the client */
	json_object *base;			/* diff mode: the version last queued */
	bool		diff;
	GwSub	   *next_in_thing;
	GwSub	   *next_in_client;
};

struct GwThing
{
	char	   *application;
	char	   *name;
	uint32_t	hash;
	json_object *doc;			/* newest known version, never modified; NULL: none */
	int64_t		gen;
	bool		stale;
	GwSub	   *subs;
	GwThing    *next;			/* in its bucket */
	GwThing    *next_stale;
};

static GwThing *buckets[HUB_BUCKETS];
static GwThing *stale_list;
static PGconn *listen_conn;
static struct lws *listen_wsi;
static struct lws_context *hub_context;
static struct lws_vhost *hub_vhost;
static lws_sorted_usec_list_t retry_timer;
static lws_sorted_usec_list_t reread_timer;

static void read_stale(void);

static void
reread(lws_sorted_usec_list_t *sul)
{
	(void) sul;
	read_stale();
}

static uint32_t
hash_key(const char *application, const char *name)
{
	uint32_t	h = 2166136261u;

	for (const char *p = application; *p; p++)
		h = (h ^ (unsigned char) *p) * 16777619u;
	h = (h ^ 0x1f) * 16777619u;
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char) *p) * 16777619u;
	return h;
}

static GwThing *
find_thing(const char *application, const char *name, bool create)
{
	uint32_t	h = hash_key(application, name);
	GwThing   **slot = &buckets[h % HUB_BUCKETS];
	GwThing    *t;

	for (t = *slot; t; t = t->next)
		if (t->hash == h && strcmp(t->name, name) == 0 && strcmp(t->application, application) == 0)
			return t;
	if (!create || !(t = calloc(1, sizeof(GwThing))))
		return NULL;
	t->application = strdup(application);
	t->name = strdup(name);
	t->hash = h;
	if (!t->application || !t->name)
	{
		free(t->application);
		free(t->name);
		free(t);
		return NULL;
	}
	t->next = *slot;
	*slot = t;
	return t;
}

static void
remove_thing(GwThing *t)
{
	GwThing   **p;

	for (p = &buckets[t->hash % HUB_BUCKETS]; *p; p = &(*p)->next)
		if (*p == t)
		{
			*p = t->next;
			break;
		}
	if (t->stale)
		for (p = &stale_list; *p; p = &(*p)->next_stale)
			if (*p == t)
			{
				*p = t->next_stale;
				break;
			}
	json_object_put(t->doc);
	free(t->application);
	free(t->name);
	free(t);
}

static void
set_doc(GwThing *t, json_object *doc, int64_t gen)
{
	json_object_put(t->doc);
	t->doc = doc;
	t->gen = gen;
}

static int64_t
doc_generation(json_object *doc)
{
	json_object *meta,
			   *gen;

	if (doc && json_object_object_get_ex(doc, "metadata", &meta) &&
		json_object_object_get_ex(meta, "generation", &gen))
		return json_object_get_int64(gen);
	return 0;
}

/* the same incarnation of a thing: a thing created again has a new uid */
static bool
same_thing(json_object *a, json_object *b)
{
	json_object *ma,
			   *mb,
			   *ua,
			   *ub;

	return json_object_object_get_ex(a, "metadata", &ma) && json_object_object_get_ex(b, "metadata", &mb) &&
		json_object_object_get_ex(ma, "uid", &ua) && json_object_object_get_ex(mb, "uid", &ub) &&
		strcmp(json_object_get_string(ua), json_object_get_string(ub)) == 0;
}

/* the messages of one version, built for the first subscriber that needs each */
typedef struct Fanout
{
	GwThing    *thing;
	json_object *patch;			/* from gen - 1 to gen, if known */
	GwMsg	   *change[2];		/* [sse] */
	GwMsg	   *patch_msg[2];
	json_object *other_base;	/* the last base a patch was computed for */
	GwMsg	   *other_msg[2];
} Fanout;

static GwMsg *
patch_message(GwClient *client, GwThing *t, json_object *patch)
{
	json_object *o = json_object_new_object();
	size_t		len;
	const char *text;
	GwMsg	   *msg;

	json_object_object_add(o, "type", json_object_new_string("patch"));
	json_object_object_add(o, "thing", json_object_new_string(t->name));
	json_object_object_add(o, "generation", json_object_new_int64(t->gen));
	json_object_object_add(o, "patch", json_object_get(patch));
	text = dg_json_text(o, &len);
	msg = gw_client_event(client, "patch", t->gen, text, len);
	json_object_put(o);
	return msg;
}

static GwMsg *
thing_message(GwClient *client, const char *type, json_object *doc, int64_t gen)
{
	size_t		len;
	const char *text = dg_json_text(doc, &len);
	char		head[40];
	char	   *json;
	GwMsg	   *msg;

	snprintf(head, sizeof(head), "{\"type\":\"%s\",\"thing\":", type);
	json = malloc(strlen(head) + len + 2);
	if (!json)
		return NULL;
	sprintf(json, "%s%s}", head, text);
	msg = gw_client_event(client, type, gen, json, strlen(json));
	free(json);
	return msg;
}

static void
fanout_sub(Fanout *f, GwSub *sub)
{
	GwThing    *t = f->thing;
	GwClient   *c = sub->client;
	int			k = c->sse ? 1 : 0;
	GwMsg	   *msg;

	if (!t->doc || sub->last_gen >= t->gen || c->closing)
		return;
	if (sub->diff && sub->base)
	{
		if (f->patch && sub->last_gen == t->gen - 1)
		{
			if (!f->patch_msg[k])
				f->patch_msg[k] = patch_message(c, t, f->patch);
			msg = f->patch_msg[k];
		}
		else
		{
			if (f->other_base != sub->base)
			{
				json_object *p = dg_patch_diff(sub->base, t->doc);

				gw_msg_unref(f->other_msg[0]);
				gw_msg_unref(f->other_msg[1]);
				f->other_msg[0] = f->other_msg[1] = NULL;
				f->other_base = sub->base;
				f->other_msg[k] = patch_message(c, t, p);
				json_object_put(p);
			}
			else if (!f->other_msg[k])
			{
				json_object *p = dg_patch_diff(sub->base, t->doc);

				f->other_msg[k] = patch_message(c, t, p);
				json_object_put(p);
			}
			msg = f->other_msg[k];
		}
	}
	else
	{
		if (!f->change[k])
			f->change[k] = thing_message(c, "change", t->doc, t->gen);
		msg = f->change[k];
	}
	if (!msg)
		return;
	if (!gw_queue_push(&c->queue, msg))
		return;					/* dropped: last_gen and base stay, the client lags */
	lws_callback_on_writable(c->wsi);
	sub->last_gen = t->gen;
	if (sub->diff)
	{
		json_object_put(sub->base);
		sub->base = json_object_get(t->doc);
	}
}

/* queue the thing's newest version to every subscriber behind it */
static void
fanout(GwThing *t, json_object *patch)
{
	Fanout		f;

	memset(&f, 0, sizeof(f));
	f.thing = t;
	f.patch = patch;
	for (GwSub *s = t->subs; s; s = s->next_in_thing)
		fanout_sub(&f, s);
	for (int k = 0; k < 2; k++)
	{
		gw_msg_unref(f.change[k]);
		gw_msg_unref(f.patch_msg[k]);
		gw_msg_unref(f.other_msg[k]);
	}
}

static void
mark_stale(GwThing *t)
{
	if (t->stale)
		return;
	t->stale = true;
	t->next_stale = stale_list;
	stale_list = t;
}

static void
deleted(GwThing *t)
{
	json_object *o = json_object_new_object();
	const char *text;
	GwMsg	   *msg[2] = {NULL, NULL};

	json_object_object_add(o, "type", json_object_new_string("deleted"));
	json_object_object_add(o, "thing", json_object_new_string(t->name));
	text = dg_json_text(o, NULL);
	set_doc(t, NULL, 0);
	for (GwSub *s = t->subs; s; s = s->next_in_thing)
	{
		int			k = s->client->sse ? 1 : 0;

		if (!msg[k])
			msg[k] = gw_client_event(s->client, "deleted", 0, text, strlen(text));
		gw_client_send(s->client, msg[k]);
		s->last_gen = 0;
		json_object_put(s->base);
		s->base = NULL;
	}
	gw_msg_unref(msg[0]);
	gw_msg_unref(msg[1]);
	json_object_put(o);
}

static void
notification(const char *payload)
{
	json_object *n = json_tokener_parse(payload);
	json_object *v;
	const char *op = NULL,
			   *app = NULL,
			   *name = NULL;
	json_object *patch = NULL;
	int64_t		gen = 0;
	GwThing    *t;

	if (!n)
		return;
	if (json_object_object_get_ex(n, "op", &v))
		op = json_object_get_string(v);
	if (json_object_object_get_ex(n, "application", &v))
		app = json_object_get_string(v);
	if (json_object_object_get_ex(n, "thing", &v))
		name = json_object_get_string(v);
	if (json_object_object_get_ex(n, "generation", &v))
		gen = json_object_get_int64(v);
	json_object_object_get_ex(n, "patch", &patch);

	if (!op || !app || !name || !(t = find_thing(app, name, false)))
		goto done;
	if (strcmp(op, "deleted") == 0)
	{
		deleted(t);
		goto done;
	}
	if (strcmp(op, "created") == 0 && t->doc)
		deleted(t);				/* its deletion was missed (not listening then) */
	if (t->doc && t->gen >= gen)
	{
		/* known already (a subscriber read it): just catch up the others */
		fanout(t, NULL);
		goto done;
	}
	if (patch && (t->doc ? t->gen == gen - 1 : strcmp(op, "created") == 0))
	{
		json_object *doc = t->doc ? dg_json_copy(t->doc) : json_object_new_object();
		DgError		err;

		dg_error_clear(&err);
		if (dg_patch_apply(&doc, patch, &err) && doc_generation(doc) == gen)
		{
			set_doc(t, doc, gen);
			fanout(t, t->subs && gen > 1 ? patch : NULL);
			goto done;
		}
		json_object_put(doc);
	}
	mark_stale(t);
done:
	json_object_put(n);
}

/* one query for up to HUB_READ_BATCH stale things, as the login role */
static void
read_stale(void)
{
	while (stale_list)
	{
		json_object *keys = json_object_new_array();
		json_object *keys_copy;
		GwDbError	err;
		PGresult   *res;
		const char *params[1];
		int			n = 0;

		for (GwThing *t = stale_list; t && n < HUB_READ_BATCH; t = t->next_stale, n++)
		{
			json_object *k = json_object_new_array();

			json_object_array_add(k, json_object_new_string(t->application));
			json_object_array_add(k, json_object_new_string(t->name));
			json_object_array_add(keys, k);
		}
		for (int i = 0; i < n; i++)
		{
			stale_list->stale = false;
			stale_list = stale_list->next_stale;
		}
		params[0] = dg_json_text(keys, NULL);
		keys_copy = json_object_get(keys);
		res = gw_db_read("SELECT k->>0, k->>1, doppelganger.dt_get_thing(k->>0, k->>1) "
						 "FROM jsonb_array_elements($1::jsonb) AS k", 1, params, &err);
		json_object_put(keys);
		if (!res)
		{
			/* try again in a second */
			lwsl_err("re-reading things: %s\n", err.message);
			lws_sul_schedule(hub_context, 0, &reread_timer, reread, LWS_US_PER_SEC);
			for (size_t i = 0; i < json_object_array_length(keys_copy); i++)
			{
				json_object *k = json_object_array_get_idx(keys_copy, i);
				GwThing    *t = find_thing(json_object_get_string(json_object_array_get_idx(k, 0)),
										   json_object_get_string(json_object_array_get_idx(k, 1)), false);

				if (t)
					mark_stale(t);
			}
			json_object_put(keys_copy);
			return;
		}
		json_object_put(keys_copy);
		for (int i = 0; i < PQntuples(res); i++)
		{
			GwThing    *t = find_thing(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), false);
			json_object *doc;
			int64_t		gen;

			if (!t)
				continue;
			if (PQgetisnull(res, i, 2))
			{
				/* gone, maybe while its deletion could not be notified to us */
				if (t->doc)
					deleted(t);
				continue;
			}
			doc = json_tokener_parse(PQgetvalue(res, i, 2));
			gen = doc_generation(doc);
			if (doc && t->doc && !same_thing(doc, t->doc))
				deleted(t);		/* deleted and created again meanwhile */
			if (doc && (!t->doc || gen > t->gen))
			{
				set_doc(t, doc, gen);
				fanout(t, NULL);
			}
			else
				json_object_put(doc);
		}
		PQclear(res);
	}
}

/* false when the LISTEN connection broke: its socket is then closed (gw_hub_closed) */
bool
gw_hub_readable(void)
{
	PGnotify   *n;

	if (!listen_conn || !PQconsumeInput(listen_conn))
	{
		lwsl_err("the LISTEN connection failed: %s", listen_conn ? PQerrorMessage(listen_conn) : "\n");
		return false;
	}
	while ((n = PQnotifies(listen_conn)) != NULL)
	{
		notification(n->extra);
		PQfreemem(n);
	}
	read_stale();
	return true;
}

static bool
listen_connect(void)
{
	PGresult   *res;
	lws_sock_file_fd_type fd;
	int			sock;

	listen_conn = PQconnectdb(gw_config.db);
	if (PQstatus(listen_conn) != CONNECTION_OK)
	{
		lwsl_err("cannot connect to the database: %s", PQerrorMessage(listen_conn));
		goto fail;
	}
	res = PQexec(listen_conn, "LISTEN thing_changes");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		lwsl_err("LISTEN failed: %s", PQerrorMessage(listen_conn));
		PQclear(res);
		goto fail;
	}
	PQclear(res);

	/*
	 * lws watches a duplicate of libpq's socket and closes that one when
	 * it lets go; libpq closes its own in PQfinish.
	 */
	if ((sock = dup(PQsocket(listen_conn))) < 0)
		goto fail;
	fd.filefd = sock;
	listen_wsi = lws_adopt_descriptor_vhost(hub_vhost, LWS_ADOPT_RAW_FILE_DESC, fd, "doppelganger", NULL);
	if (!listen_wsi)
	{
		lwsl_err("cannot watch the LISTEN connection\n");
		close(sock);
		goto fail;
	}
	return true;
fail:
	PQfinish(listen_conn);
	listen_conn = NULL;
	return false;
}

static void
listen_retry(lws_sorted_usec_list_t *sul)
{
	if (!listen_connect())
	{
		lws_sul_schedule(hub_context, 0, sul, listen_retry, LWS_US_PER_SEC);
		return;
	}
	lwsl_warn("listening for changes again; re-reading the watched things\n");
	read_stale();
}

/*
 * The LISTEN connection is gone (the database restarted, the network
 * broke): notifications sent meanwhile are lost, so once listening again
 * every watched thing is re-read and its subscribers catch up.
 */
void
gw_hub_closed(bool stopping)
{
	listen_wsi = NULL;
	if (listen_conn)
		PQfinish(listen_conn);
	listen_conn = NULL;
	if (stopping)
		return;
	for (int i = 0; i < HUB_BUCKETS; i++)
		for (GwThing *t = buckets[i]; t; t = t->next)
			mark_stale(t);
	lws_sul_schedule(hub_context, 0, &retry_timer, listen_retry, LWS_US_PER_SEC);
}

bool
gw_hub_start(struct lws_context *context, struct lws_vhost *vhost)
{
	hub_context = context;
	hub_vhost = vhost;
	return listen_connect();
}

void
gw_hub_stop(void)
{
	for (int i = 0; i < HUB_BUCKETS; i++)
		while (buckets[i])
		{
			GwThing    *t = buckets[i];

			while (t->subs)
			{
				GwSub	   *s = t->subs;

				t->subs = s->next_in_thing;
				json_object_put(s->base);
				free(s);
			}
			remove_thing(t);
		}
	if (listen_conn)
		PQfinish(listen_conn);
	listen_conn = NULL;
}

/* before the context goes: its timers cannot be cancelled after */
void
gw_hub_quiesce(void)
{
	lws_sul_cancel(&retry_timer);
	lws_sul_cancel(&reread_timer);
}

static GwSub *
find_sub(GwClient *client, const char *name)
{
	for (GwSub *s = client->subs; s; s = s->next_in_client)
		if (strcmp(s->thing->name, name) == 0)
			return s;
	return NULL;
}

/*
 * Register first, then read as the caller: a change committed after the
 * read is notified later and passes the generation filter; one committed
 * before it is already in what the client gets now.
 */
bool
gw_hub_subscribe(GwClient *client, const char *name, bool diff)
{
	const char *params[2] = {client->application, name};
	GwThing    *t;
	GwSub	   *sub;
	GwDbError	err;
	PGresult   *res;

	if (find_sub(client, name))
		return true;
	if (!(t = find_thing(client->application, name, true)) || !(sub = calloc(1, sizeof(GwSub))))
		return false;
	sub->client = client;
	sub->thing = t;
	sub->diff = diff;
	sub->next_in_thing = t->subs;
	t->subs = sub;
	sub->next_in_client = client->subs;
	client->subs = sub;

	res = gw_db_call(&client->caller, "SELECT doppelganger.dt_get_thing($1, $2)", 2, params, true, &err);
	if (!res)
	{
		lwsl_warn("subscribe to %s/%s: %s\n", client->application, name, err.message);
		return true;
	}
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
	{
		json_object *doc = json_tokener_parse(PQgetvalue(res, 0, 0));
		int64_t		gen = doc_generation(doc);
		GwMsg	   *msg = doc ? thing_message(client, "initial", doc, gen) : NULL;

		/* a dropped initial leaves the subscriber at nothing: it gets a change later */
		if (msg && gw_client_send(client, msg))
		{
			sub->last_gen = gen;
			if (diff)
				sub->base = json_object_get(doc);
		}
		gw_msg_unref(msg);
		if (doc && (!t->doc || gen > t->gen))
		{
			set_doc(t, doc, gen);
			fanout(t, NULL);
		}
		else
			json_object_put(doc);
	}
	PQclear(res);
	return true;
}

static void
unlink_sub(GwSub *sub)
{
	GwThing    *t = sub->thing;
	GwSub	  **p;

	for (p = &t->subs; *p; p = &(*p)->next_in_thing)
		if (*p == sub)
		{
			*p = sub->next_in_thing;
			break;
		}
	json_object_put(sub->base);
	free(sub);
	if (!t->subs)
		remove_thing(t);
}

void
gw_hub_unsubscribe(GwClient *client, const char *name)
{
	GwSub	  **p;

	for (p = &client->subs; *p; p = &(*p)->next_in_client)
		if (strcmp((*p)->thing->name, name) == 0)
		{
			GwSub	   *sub = *p;

			*p = sub->next_in_client;
			unlink_sub(sub);
			return;
		}
}

void
gw_hub_drop_client(GwClient *client)
{
	while (client->subs)
	{
		GwSub	   *sub = client->subs;

		client->subs = sub->next_in_client;
		unlink_sub(sub);
	}
}
