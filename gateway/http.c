/*
 * http.c: the REST API of reference section 6.2 over the dt_* functions,
 * and the small HTTP helpers the WebSocket and SSE parts share.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw.h"
#include "../src/dg.h"

const char *
gw_json_error(const char *error, const char *message, char *buf, size_t size)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "error", json_object_new_string(error));
	json_object_object_add(o, "message", json_object_new_string(message));
	snprintf(buf, size, "%s", dg_json_text(o, NULL));
	json_object_put(o);
	return buf;
}

/*
 * The decoded value of ?name=... (name includes the "=").  Unlike
 * lws_get_urlarg_by_name, a value too long for buf is reported, not
 * silently taken for a missing one.
 */
const char *
gw_url_arg(struct lws *wsi, const char *name, char *buf, int size, bool *too_long)
{
	size_t		nl = strlen(name);

	*too_long = false;
	for (int n = 0;; n++)
	{
		int			len = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, n);

		if (len <= 0)
			return NULL;
		if (len >= size)
		{
			char	   *whole = malloc(len + 1);

			if (whole && lws_hdr_copy_fragment(wsi, whole, len + 1, WSI_TOKEN_HTTP_URI_ARGS, n) >= 0 &&
				strncmp(whole, name, nl) == 0)
				*too_long = true;
			free(whole);
			if (*too_long)
				return NULL;
			continue;
		}
		if (lws_hdr_copy_fragment(wsi, buf, size, WSI_TOKEN_HTTP_URI_ARGS, n) < 0)
			return NULL;
		if (strncmp(buf, name, nl) == 0)
		{
			memmove(buf, buf + nl, strlen(buf + nl) + 1);
			return buf;
		}
	}
}

bool
gw_url_bool(struct lws *wsi, const char *name)
{
	char		buf[64],
				key[32];
	bool		too_long;
	const char *v;

	snprintf(key, sizeof(key), "%s=", name);
	v = gw_url_arg(wsi, key, buf, sizeof(buf), &too_long);
	return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/* a small response written at once (upgrade refusals, SSE refusals) */
int
gw_http_status(struct lws *wsi, int status, const char *json)
{
	unsigned char buf[LWS_PRE + 2048];
	unsigned char *start = buf + LWS_PRE,
			   *p = start,
			   *end = buf + sizeof(buf) - 1;
	unsigned char body[LWS_PRE + 2048];
	size_t		len = json ? strlen(json) : 0;

	if (len > sizeof(body) - LWS_PRE)
		len = sizeof(body) - LWS_PRE;
	if (lws_add_http_common_headers(wsi, status, json ? "application/json" : NULL, len, &p, end) ||
		lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	/* lws_write may use the LWS_PRE bytes in front of what it sends */
	memcpy(body + LWS_PRE, json ? json : "", len);
	if (len && lws_write(wsi, body + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) != (int) len)
		return -1;
	return 0;
}

void
gw_http_reset(GwSession *s)
{
	free(s->path);
	free(s->body);
	free(s->extra_headers);
	free(s->out);
	s->path = s->body = s->extra_headers = s->out = NULL;
	s->body_len = s->out_len = s->out_sent = 0;
	s->body_too_large = false;
	s->close_after = false;
	s->headers_sent = false;
	s->status = 0;
}

/* prepare the response; it is written when the connection is writeable */
static int
respond(struct lws *wsi, GwSession *s, int status, const char *json, const char *extra)
{
	s->status = status;
	s->out_len = json ? strlen(json) : 0;
	if (json)
	{
		/* LWS_PRE of headroom: each chunk is written in place, see below */
		if (!(s->out = malloc(LWS_PRE + s->out_len)))
			return -1;
		memcpy(s->out + LWS_PRE, json, s->out_len);
	}
	s->extra_headers = extra ? strdup(extra) : NULL;
	lws_callback_on_writable(wsi);
	return 0;
}

static int
respond_error(struct lws *wsi, GwSession *s, int status, const char *error, const char *message)
{
	char		buf[1200];

	return respond(wsi, s, status, gw_json_error(error, message, buf, sizeof(buf)), NULL);
}

static int
respond_db_error(struct lws *wsi, GwSession *s, const GwDbError *err)
{
	char		msg[700];

	switch (err->http_status)
	{
		case 404:
		case 412:
			return respond(wsi, s, err->http_status, NULL, NULL);
		case 409:
			return respond_error(wsi, s, 409, "AlreadyExists", "Storage: Already exists");
		case 400:
			return respond_error(wsi, s, 400, "InvalidFormat", err->message);
		case 401:
			lwsl_warn("401 %s: %s\n", s->path, err->message);
			return respond_error(wsi, s, 401, "Unauthorized", err->message);
		case 403:
			return respond_error(wsi, s, 403, "Forbidden", err->message);
		case 503:
			return respond_error(wsi, s, 503, "Unavailable", err->message);
	}
	lwsl_warn("500 %s: %s %s\n", s->path ? s->path : "", err->sqlstate, err->message);
	if (strcmp(err->sqlstate, "23514") == 0)
		snprintf(msg, sizeof(msg), "State Machine: Validation failed: %s", err->message);
	else
		snprintf(msg, sizeof(msg), "%s", err->message);
	return respond_error(wsi, s, 500, "InternalError", msg);
}

int
gw_http_writeable(struct lws *wsi, GwSession *s)
{
	unsigned char buf[LWS_PRE + 4096];
	unsigned char *start = buf + LWS_PRE,
			   *p = start,
			   *end = buf + sizeof(buf) - 1;

	if (s->kind != GW_S_HTTP || s->status == 0)
		return 0;
	if (!s->headers_sent)
	{
		if (lws_add_http_common_headers(wsi, s->status, s->out ? "application/json" : NULL,
										s->out_len, &p, end))
			return -1;
		for (char *h = s->extra_headers; h && *h;)
		{
			char	   *colon = strchr(h, ':'),
					   *eol = strstr(h, "\r\n");
			char		name[64],
						value[512];

			if (!colon || !eol || colon - h >= (int) sizeof(name) - 1)
				break;
			snprintf(name, sizeof(name), "%.*s:", (int) (colon - h), h);
			snprintf(value, sizeof(value), "%.*s", (int) (eol - colon - 2), colon + 2);
			if (lws_add_http_header_by_name(wsi, (unsigned char *) name, (unsigned char *) value,
											(int) strlen(value), &p, end))
				return -1;
			h = eol + 2;
		}
		if (lws_finalize_write_http_header(wsi, start, &p, end))
			return -1;
		s->headers_sent = true;
		if (s->out_len)
		{
			lws_callback_on_writable(wsi);
			return 0;
		}
	}
	else if (s->out_sent < s->out_len)
	{
		size_t		n = s->out_len - s->out_sent;
		bool		last = n <= 16384;
		/* lws may use the LWS_PRE bytes before a chunk: they were sent already */
		unsigned char *chunk = (unsigned char *) s->out + LWS_PRE + s->out_sent;

		if (!last)
			n = 16384;
		if (lws_write(wsi, chunk, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int) n)
			return -1;
		s->out_sent += n;
		if (!last)
		{
			lws_callback_on_writable(wsi);
			return 0;
		}
	}
	if (s->close_after)
		return -1;
	gw_http_reset(s);
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* If-Match: "<resourceVersion>", quotes optional */
static char *
if_match(struct lws *wsi)
{
	char		buf[256];
	int			n = lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_IF_MATCH);
	char	   *v = buf;

	if (n <= 0)
		return NULL;
	if (n >= 2 && buf[0] == '"' && buf[n - 1] == '"')
	{
		buf[n - 1] = '\0';
		v++;
	}
	return strdup(v);
}

static bool
custom_header(struct lws *wsi, const char *name, char *buf, int size)
{
	int			n = lws_hdr_custom_length(wsi, name, (int) strlen(name));

	if (n <= 0 || n >= size)
		return false;
	return lws_hdr_custom_copy(wsi, buf, size, name, (int) strlen(name)) > 0;
}

static bool
content_type_is(struct lws *wsi, const char *type)
{
	char		buf[128];
	size_t		n = strlen(type);

	if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_CONTENT_TYPE) <= 0)
		return false;
	return strncasecmp(buf, type, n) == 0 && (buf[n] == '\0' || buf[n] == ';' || buf[n] == ' ');
}

/* now + a duration such as "30s" or "1m", as an RFC 3339 timestamp */
bool
gw_time_after(const char *duration, char *out)
{
	int64_t		d;
	struct timespec now;

	if (!dg_duration_parse(duration, &d) || d < 0)
		return false;
	clock_gettime(CLOCK_REALTIME, &now);
	dg_time_format((dg_time) now.tv_sec * DG_NS_PER_S + now.tv_nsec + d, out);
	return true;
}

/* valid-until / valid-for of PUT …/desiredStates/{name}/value */
static bool
valid_until(struct lws *wsi, char **out, char *message, size_t size)
{
	char		until[128],
				forv[128];
	bool		has_until = custom_header(wsi, "valid-until:", until, sizeof(until));
	bool		has_for = custom_header(wsi, "valid-for:", forv, sizeof(forv));
	dg_time		t;
	char		text[64];

	*out = NULL;
	if (has_until && has_for)
	{
		snprintf(message, size, "give either valid-until or valid-for, not both");
		return false;
	}
	if (has_until)
	{
		if (!dg_time_parse(until, &t))
		{
			snprintf(message, size, "valid-until is not an RFC 3339 timestamp: %s", until);
			return false;
		}
		*out = strdup(until);
	}
	else if (has_for)
	{
		if (!gw_time_after(forv, text))
		{
			snprintf(message, size, "valid-for is not a duration like 30s or 1m: %s", forv);
			return false;
		}
		*out = strdup(text);
	}
	return true;
}

typedef struct Call
{
	const char *sql;
	int			nparams;
	const char *params[6];
	json_type	body_type;		/* what the body must be; json_type_null: anything */
	bool		needs_body;
	int			success;		/* 201 {}, 204, or 200 with the result */
} Call;

static int
dispatch(struct lws *wsi, GwSession *s)
{
	Route		r;
	Call		c;
	GwCaller	caller = {NULL, NULL};
	char		msg[512];
	char	   *match = NULL,
			   *until = NULL;
	json_object *body = NULL;
	GwJob	   *job;
	int			rc;
	char		selector[1024];
	const char *sel = NULL;

	/* a header too long for its buffer must not silently drop a condition */
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_IF_MATCH) >= 256 ||
		lws_hdr_custom_length(wsi, "valid-until:", 12) >= 128 ||
		lws_hdr_custom_length(wsi, "valid-for:", 10) >= 128)
		return respond_error(wsi, s, 400, "InvalidFormat", "If-Match, valid-until or valid-for is too long");
	if (strcmp(s->path, "/") == 0)
		return s->method == LWSHUMETH_GET
			? respond(wsi, s, 200, "{\"ok\":true,\"name\":\"Doppelganger\",\"version\":\"0.1\"}", NULL)
			: respond_error(wsi, s, 405, "MethodNotAllowed", "only GET is allowed here");
	if (!gw_route(s->path, &r))
		return respond_error(wsi, s, 404, "NotFound", "no such endpoint");

	memset(&c, 0, sizeof(c));
	c.body_type = json_type_object;
	c.success = 204;
	c.params[0] = r.application;
	c.params[1] = r.thing;
	c.params[2] = r.feature;
	switch (r.endpoint)
	{
		case EP_ROOT:
			if (s->method == LWSHUMETH_POST)
				c = (Call) {"SELECT doppelganger.dt_create_thing($1)", 1, {NULL}, json_type_object, true, 201};
			else if (s->method == LWSHUMETH_PUT)
			{
				c = (Call) {"SELECT doppelganger.dt_update_thing($1, $2)", 2, {NULL}, json_type_object, true, 204};
				c.params[1] = match = if_match(wsi);
			}
			break;
		case EP_LIST:
			if (s->method == LWSHUMETH_GET)
			{
				bool		too_long;

				sel = gw_url_arg(wsi, "labelSelector=", selector, sizeof(selector), &too_long);
				if (too_long)
				{
					gw_route_free(&r);
					return respond_error(wsi, s, 400, "InvalidFormat", "the label selector is too long");
				}
				c = (Call) {"SELECT coalesce(jsonb_agg(t), '[]') FROM doppelganger.dt_list_things($1, $2) AS t",
				2, {r.application, sel}, json_type_null, false, 200};
			}
			break;
		case EP_THING:
			if (s->method == LWSHUMETH_GET)
				c = (Call) {"SELECT doppelganger.dt_get_thing($1, $2)", 2, {r.application, r.thing}, json_type_null, false, 200};
			else if (s->method == LWSHUMETH_DELETE)
				c = (Call) {"SELECT doppelganger.dt_delete_thing($1, $2, $3)", 3,
				{r.application, r.thing, match = if_match(wsi)}, json_type_null, false, 204};
			else if (s->method == LWSHUMETH_PATCH)
			{
				bool		json_patch = content_type_is(wsi, "application/json-patch+json");

				if (!json_patch && !content_type_is(wsi, "application/merge-patch+json"))
				{
					gw_route_free(&r);
					return respond_error(wsi, s, 415, "InvalidFormat",
										 "PATCH needs Content-Type application/json-patch+json or application/merge-patch+json");
				}
				c = (Call) {json_patch ? "SELECT doppelganger.dt_patch_thing($1, $2, $4, $3)"
					: "SELECT doppelganger.dt_merge_thing($1, $2, $4, $3)", 4,
				{r.application, r.thing, match = if_match(wsi)},
				json_patch ? json_type_array : json_type_null, true, 204};
			}
			break;
		case EP_REPORTED:
			if (s->method == LWSHUMETH_PUT)
				c = (Call) {"SELECT doppelganger.dt_report_state($1, $2, $3, true)", 3,
				{r.application, r.thing}, json_type_object, true, 204};
			break;
		case EP_SYNTHETIC:
			if (s->method == LWSHUMETH_PUT)
				c = (Call) {"SELECT doppelganger.dt_set_synthetic_state($1, $2, $3, $4)", 4,
				{r.application, r.thing, r.feature}, json_type_object, true, 204};
			else if (s->method == LWSHUMETH_DELETE)
				c = (Call) {"SELECT doppelganger.dt_delete_synthetic_state($1, $2, $3)", 3,
				{r.application, r.thing, r.feature}, json_type_null, false, 204};
			break;
		case EP_DESIRED:
			if (s->method == LWSHUMETH_PUT)
				c = (Call) {"SELECT doppelganger.dt_set_desired_state($1, $2, $3, $4)", 4,
				{r.application, r.thing, r.feature}, json_type_object, true, 204};
			break;
		case EP_DESIRED_VALUE:
			if (s->method == LWSHUMETH_PUT)
			{
				if (!valid_until(wsi, &until, msg, sizeof(msg)))
				{
					gw_route_free(&r);
					return respond_error(wsi, s, 400, "InvalidFormat", msg);
				}
				c = (Call) {"SELECT doppelganger.dt_set_desired_value($1, $2, $3, $4, $5)", 5,
				{r.application, r.thing, r.feature, NULL, until}, json_type_null, true, 204};
			}
			break;
		case EP_RECONCILIATIONS:
			if (s->method == LWSHUMETH_PUT)
				c = (Call) {"SELECT doppelganger.dt_set_reconciliation($1, $2, $3)", 3,
				{r.application, r.thing}, json_type_object, true, 204};
			break;
		case EP_ANNOTATIONS:
		case EP_LABELS:
			if (s->method == LWSHUMETH_PUT)
				c = (Call) {r.endpoint == EP_LABELS ? "SELECT doppelganger.dt_set_labels($1, $2, $3)"
					: "SELECT doppelganger.dt_set_annotations($1, $2, $3)", 3,
				{r.application, r.thing}, json_type_object, true, 204};
			break;
		case EP_NOTIFICATIONS:
			gw_route_free(&r);
			return respond_error(wsi, s, 400, "InvalidFormat", "this endpoint needs a WebSocket upgrade");
		case EP_EVENTS:
		case EP_NONE:
			break;
	}
	if (!c.sql)
	{
		gw_route_free(&r);
		return respond_error(wsi, s, 405, "MethodNotAllowed", "the method is not allowed on this endpoint");
	}

	switch (gw_authenticate(wsi, &caller, msg, sizeof(msg)))
	{
		case GW_AUTH_OK:
			break;
		case GW_AUTH_UNAUTHORIZED:
			lwsl_warn("401 %s: %s\n", s->path, msg);
			rc = respond_error(wsi, s, 401, "Unauthorized", msg);
			goto out;
		case GW_AUTH_FORBIDDEN:
			rc = respond_error(wsi, s, 403, "Forbidden", msg);
			goto out;
	}

	if (c.needs_body)
	{
		DgError		jerr;

		dg_error_clear(&jerr);
		if (s->body_too_large)
		{
			rc = respond_error(wsi, s, 413, "InvalidFormat", "the body is larger than 16 MiB");
			goto out;
		}
		if (!dg_json_parse(s->body ? s->body : "", s->body_len, &body, &jerr))
		{
			snprintf(msg, sizeof(msg), "the body is not JSON: %.400s", jerr.message);
			rc = respond_error(wsi, s, 400, "InvalidFormat", msg);
			goto out;
		}
		if (c.body_type != json_type_null && !json_object_is_type(body, c.body_type))
		{
			snprintf(msg, sizeof(msg), "the body must be a JSON %s",
					 c.body_type == json_type_array ? "array" : "object");
			rc = respond_error(wsi, s, 400, "InvalidFormat", msg);
			goto out;
		}
		/* the body is the last parameter but for If-Match and valid-until */
		c.params[r.endpoint == EP_ROOT ? 0 : c.nparams == 3 ? 2 : 3] = s->body;
	}

	/* the call runs on the pool; gw_http_job_done answers */
	job = gw_job_new(&caller, c.sql, c.nparams, c.params, s->method == LWSHUMETH_GET);
	if (!job)
	{
		rc = -1;
		goto out;
	}
	job->session = s;
	job->wsi = wsi;
	job->endpoint = r.endpoint;
	job->success = c.success;
	s->job = job;
	gw_pool_submit(job);
	rc = 0;
out:
	json_object_put(body);
	gw_caller_free(&caller);
	free(match);
	free(until);
	gw_route_free(&r);
	return rc;
}

/* on the loop's thread, with the outcome of a REST call */
void
gw_http_job_done(GwJob *job)
{
	GwSession  *s = job->session;
	struct lws *wsi = job->wsi;
	PGresult   *res = job->res;

	s->job = NULL;
	if (!res)
		respond_db_error(wsi, s, &job->err);
	else if (job->success != 200)
		respond(wsi, s, job->success, job->success == 201 ? "{}" : NULL, NULL);
	else if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
		respond(wsi, s, 404, NULL, NULL);
	else
	{
		char		etag[300];
		json_object *doc = job->endpoint == EP_THING ? json_tokener_parse(PQgetvalue(res, 0, 0)) : NULL;
		json_object *meta,
				   *rv;

		etag[0] = '\0';
		if (doc && json_object_object_get_ex(doc, "metadata", &meta) &&
			json_object_object_get_ex(meta, "resourceVersion", &rv))
			snprintf(etag, sizeof(etag), "etag: \"%s\"\r\n", json_object_get_string(rv));
		respond(wsi, s, 200, PQgetvalue(res, 0, 0), etag[0] ? etag : NULL);
		json_object_put(doc);
	}
}

static bool
expects_body(struct lws *wsi, int method)
{
	char		cl[32];

	if (lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
		return atoll(cl) > 0 || method == LWSHUMETH_POST;
	return method == LWSHUMETH_POST || method == LWSHUMETH_PUT || method == LWSHUMETH_PATCH;
}

int
gw_http_request(struct lws *wsi, GwSession *s, const char *uri)
{
	char	   *uri_ptr;
	int			uri_len;

	gw_http_reset(s);
	s->kind = GW_S_HTTP;
	s->method = lws_http_get_uri_and_method(wsi, &uri_ptr, &uri_len);
	s->path = strdup(uri);
	if (!s->path)
		return -1;
	if (s->method == LWSHUMETH_GET)
	{
		char		app[GW_APPLICATION_SIZE];
		char	   *thing = NULL;
		bool		sse;

		if (gw_notifications_route(uri, app, sizeof(app), &thing, &sse) == 0)
		{
			free(thing);
			if (sse)
				return gw_sse_start(wsi, s, uri);
		}
	}
	if (expects_body(wsi, s->method))
	{
		if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
		{
			/* lws would wait for 100 MB of a body it cannot delimit */
			s->close_after = true;
			return respond_error(wsi, s, 411, "InvalidFormat", "a body needs a Content-Length");
		}
		return 0;
	}
	return dispatch(wsi, s);
}

int
gw_http_body(struct lws *wsi, GwSession *s, const void *in, size_t len)
{
	char	   *grown;

	(void) wsi;
	if (s->body_too_large || len == 0)
		return 0;
	if (s->body_len + len > GW_MAX_BODY)
	{
		s->body_too_large = true;
		return 0;
	}
	grown = realloc(s->body, s->body_len + len + 1);
	if (!grown)
		return -1;
	s->body = grown;
	memcpy(s->body + s->body_len, in, len);
	s->body_len += len;
	s->body[s->body_len] = '\0';
	return 0;
}

int
gw_http_body_done(struct lws *wsi, GwSession *s)
{
	return dispatch(wsi, s);
}
