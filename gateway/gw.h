/*
 * gw.h: dg-gateway, the HTTP and WebSocket front of Doppelganger.
 *
 * One thread runs libwebsockets' event loop; database calls are short
 * blocking libpq calls made from it, and the LISTEN connection's socket is
 * adopted into the same loop, so no state here is shared between threads.
 */
#ifndef GW_H
#define GW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <libpq-fe.h>
#include <libwebsockets.h>

#define GW_MAX_BODY		(16 * 1024 * 1024)
#define GW_MAX_WS_MESSAGE	(64 * 1024)

typedef struct GwConfig
{
	const char *listen;
	int			port;
	const char *db;
	const char *jwt_secret;
	char	   *jwt_key;		/* PEM text of --jwt-key */
	const char *role_claim;
	const char *anon_role;
	const char *web;
	int			queue;
	int			pool;
} GwConfig;

extern GwConfig gw_config;

/* auth.c: who is calling */
typedef struct GwCaller
{
	char	   *role;			/* NULL: the login role */
	char	   *claims;			/* the token's claims as JSON, or NULL */
} GwCaller;

typedef enum GwAuthResult
{
	GW_AUTH_OK,
	GW_AUTH_UNAUTHORIZED,		/* 401 */
	GW_AUTH_FORBIDDEN			/* 403 */
} GwAuthResult;

extern bool gw_auth_configured(void);
extern GwAuthResult gw_authenticate(struct lws *wsi, GwCaller *caller,
									char *message, size_t message_size);
extern void gw_caller_free(GwCaller *caller);

/* db.c: the request connection (as the caller) and the reader (as the login role) */
typedef struct GwDbError
{
	int			http_status;	/* 0: no error */
	char		sqlstate[6];
	char		message[512];
} GwDbError;

typedef struct GwConn GwConn;

extern bool gw_db_open(void);
extern GwConn *gw_conn_new(void);
extern void gw_conn_free(GwConn *c);
extern PGresult *gw_db_call_on(GwConn *c, const GwCaller *caller, const char *sql, int nparams,
							   const char *const *params, bool read_only, GwDbError *err);
extern void gw_db_close(void);
extern PGresult *gw_db_call(const GwCaller *caller, const char *sql, int nparams,
							const char *const *params, bool read_only, GwDbError *err);
extern PGresult *gw_db_read(const char *sql, int nparams, const char *const *params,
							GwDbError *err);

/* queue.c: shared, reference-counted messages and per-client bounded queues */
typedef struct GwMsg
{
	int			refs;
	size_t		len;
	unsigned char *data;		/* LWS_PRE bytes of headroom, then len bytes */
} GwMsg;

typedef struct GwQueue
{
	GwMsg	  **items;
	int			head;
	int			count;
	int			capacity;
	int64_t		dropped;		/* since the last lag message */
} GwQueue;

extern GwMsg *gw_msg_new(const char *parts[], int nparts);
extern GwMsg *gw_msg_ref(GwMsg *msg);
extern void gw_msg_unref(GwMsg *msg);
extern void gw_queue_init(GwQueue *q, int capacity);
extern bool gw_queue_push(GwQueue *q, GwMsg *msg);
extern GwMsg *gw_queue_peek(GwQueue *q);
extern void gw_queue_pop(GwQueue *q);
extern void gw_queue_free(GwQueue *q);

/* a WebSocket or SSE client of the hub */
typedef struct GwSub GwSub;
typedef struct GwClient GwClient;

struct GwClient
{
	struct lws *wsi;
	bool		sse;
	bool		single;			/* the single-thing endpoint */
	bool		diff;			/* ?diff=true */
	char	   *application;
	GwCaller	caller;
	GwSub	   *subs;
	GwQueue		queue;
	/* a WebSocket message being received in fragments */
	char	   *rx;
	size_t		rx_len;
	size_t		rx_cap;
	GwClient   *next_sse;		/* sse.c's list, for the pings */
	bool		closing;
	int			close_code;
	char		close_reason[120];
};

extern GwMsg *gw_client_event(GwClient *client, const char *type, int64_t id,
							  const char *json, size_t len);
extern bool gw_client_send(GwClient *client, GwMsg *msg);
extern void gw_client_lag(GwClient *client);
extern void gw_client_init(GwClient *client, struct lws *wsi, bool sse);
extern int	gw_client_admit(struct lws *wsi, const char *application, GwCaller *caller,
							char *body, size_t size);
extern int	gw_client_write(GwClient *client);
extern void gw_client_free(GwClient *client);

/* hub.c: changes from LISTEN to subscribers */
extern bool gw_hub_start(struct lws_context *context, struct lws_vhost *vhost);
extern void gw_hub_closed(bool stopping);
extern void gw_hub_quiesce(void);
extern void gw_hub_stop(void);
extern bool gw_hub_readable(void);
extern bool gw_hub_subscribe(GwClient *client, const char *thing, bool diff);
extern void gw_hub_unsubscribe(GwClient *client, const char *thing);
extern void gw_hub_drop_client(GwClient *client);

/* route.c: the endpoint a path names */
#define GW_API "/api/v1alpha1/things"
/* an application name: 64 characters (the extension's limit) of UTF-8 */
#define GW_APPLICATION_SIZE (64 * 4 + 1)

typedef enum Endpoint
{
	EP_NONE,
	EP_ROOT,					/* /api/v1alpha1/things */
	EP_LIST,					/* …/{app}/things */
	EP_THING,					/* …/{app}/things/{thing} */
	EP_REPORTED,
	EP_SYNTHETIC,
	EP_DESIRED,
	EP_DESIRED_VALUE,
	EP_RECONCILIATIONS,
	EP_ANNOTATIONS,
	EP_LABELS,
	EP_NOTIFICATIONS,			/* WebSocket, both forms */
	EP_EVENTS					/* SSE */
} Endpoint;

typedef struct Route
{
	Endpoint	endpoint;
	char		application[GW_APPLICATION_SIZE];
	char	   *thing;			/* malloc'd or NULL */
	char	   *feature;		/* malloc'd or NULL */
} Route;

extern bool gw_route(const char *uri, Route *r);
extern void gw_route_free(Route *r);

/* http.c, ws.c, sse.c: the protocol callback's parts */
typedef struct GwSession GwSession;
extern int	gw_http_request(struct lws *wsi, GwSession *s, const char *uri);
extern int	gw_http_body(struct lws *wsi, GwSession *s, const void *in, size_t len);
extern int	gw_http_body_done(struct lws *wsi, GwSession *s);
extern int	gw_http_writeable(struct lws *wsi, GwSession *s);
extern void gw_http_reset(GwSession *s);
extern int	gw_http_status(struct lws *wsi, int status, const char *json);
extern int	gw_notifications_route(const char *uri, char *application, size_t app_size,
								   char **thing, bool *sse);

extern int	gw_ws_confirm(struct lws *wsi, GwSession *s);
extern int	gw_ws_established(struct lws *wsi, GwSession *s);
extern int	gw_ws_receive(struct lws *wsi, GwSession *s, const void *in, size_t len);
extern int	gw_ws_writeable(struct lws *wsi, GwSession *s);
extern void gw_ws_closed(GwSession *s);

extern int	gw_sse_start(struct lws *wsi, GwSession *s, const char *uri);
extern int	gw_sse_writeable(struct lws *wsi, GwSession *s);
extern void gw_sse_ping(void);
extern void gw_sse_forget(GwClient *client);

extern bool gw_url_bool(struct lws *wsi, const char *name);
extern bool gw_time_after(const char *duration, char *out);
extern const char *gw_url_arg(struct lws *wsi, const char *name, char *buf, int size,
							  bool *too_long);
extern const char *gw_json_error(const char *error, const char *message, char *buf, size_t size);

/* pool.c: REST calls on threads of their own */
typedef struct GwJob GwJob;

struct GwJob
{
	GwJob	   *next;
	/* the call, all owned */
	GwCaller	caller;
	const char *sql;			/* a literal */
	int			nparams;
	char	   *params[6];
	bool		read_only;
	/* its outcome */
	PGresult   *res;
	GwDbError	err;
	/* whom to answer (NULL: nobody, e.g. the connection closed) and how */
	GwSession  *session;
	struct lws *wsi;
	int			endpoint;
	int			success;
	char	   *label;			/* without a session: log a failure under it */
};

extern bool gw_pool_start(struct lws_context *context, int threads);
extern void gw_pool_stop(void);
extern GwJob *gw_job_new(const GwCaller *caller, const char *sql, int nparams,
						 const char *const *params, bool read_only);
extern void gw_job_free(GwJob *job);
extern void gw_pool_submit(GwJob *job);
extern void gw_pool_collect(void);
extern void gw_pool_forget(GwSession *s);
extern void gw_http_job_done(GwJob *job);

/* per-connection state */
struct GwSession
{
	enum
	{
		GW_S_NONE, GW_S_HTTP, GW_S_WS, GW_S_SSE
	}			kind;
	/* a REST request */
	int			method;
	char	   *path;
	char	   *body;
	size_t		body_len;
	bool		body_too_large;
	bool		close_after;	/* the request cannot be delimited: close after answering */
	/* its response */
	int			status;
	char	   *extra_headers;	/* "name: value\r\n"... */
	char	   *out;
	size_t		out_len;
	size_t		out_sent;
	bool		headers_sent;
	GwJob	   *job;			/* the REST call in flight */
	/* WebSocket or SSE */
	GwClient   *client;
	char	   *pending_thing;	/* single-thing endpoint, subscribed when established */
};

#endif
