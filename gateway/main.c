/*
 * main.c: options, the libwebsockets context and the protocol callback
 * that hands each event to http.c, ws.c, sse.c or the hub.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "gw.h"

GwConfig	gw_config = {
	.listen = "127.0.0.1",
	.port = 8080,
	.db = "dbname=postgres",
	.role_claim = "role",
	.queue = 64,
	.pool = 4,
};

static volatile sig_atomic_t stopping;
static struct lws_context *context;
static lws_sorted_usec_list_t sse_ping_timer;

/* the heartbeat of the contract: ping after 5 s of silence, hang up after 10 s */
static const lws_retry_bo_t heartbeat = {
	.secs_since_valid_ping = 5,
	.secs_since_valid_hangup = 10,
};

static int
gw_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
			void *in, size_t len)
{
	GwSession  *s = user;

	switch (reason)
	{
		case LWS_CALLBACK_HTTP:
			return gw_http_request(wsi, s, in);
		case LWS_CALLBACK_HTTP_BODY:
			return gw_http_body(wsi, s, in, len);
		case LWS_CALLBACK_HTTP_BODY_COMPLETION:
			return gw_http_body_done(wsi, s);
		case LWS_CALLBACK_HTTP_WRITEABLE:
			if (s && s->kind == GW_S_SSE)
				return gw_sse_writeable(wsi, s);
			return s ? gw_http_writeable(wsi, s) : 0;
		case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		case LWS_CALLBACK_CLOSED_HTTP:
			if (s && s->kind == GW_S_SSE)
				gw_ws_closed(s);
			if (s)
			{
				gw_pool_forget(s);
				gw_http_reset(s);
			}
			return 0;
		case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
			gw_pool_collect();
			return 0;
		case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
			/* h2c would turn the connection into HTTP/2, which nothing here speaks */
			if (!in || strcasecmp(in, "websocket") != 0)
				return -1;
			return gw_ws_confirm(wsi, s);
		case LWS_CALLBACK_ESTABLISHED:
			return gw_ws_established(wsi, s);
		case LWS_CALLBACK_RECEIVE:
			return gw_ws_receive(wsi, s, in, len);
		case LWS_CALLBACK_SERVER_WRITEABLE:
			return gw_ws_writeable(wsi, s);
		case LWS_CALLBACK_CLOSED:
			gw_ws_closed(s);
			return 0;
		case LWS_CALLBACK_RAW_RX_FILE:
			return gw_hub_readable() ? 0 : -1;
		case LWS_CALLBACK_RAW_CLOSE_FILE:
			gw_hub_closed(stopping);
			return 0;
		default:
			break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
	{"doppelganger", gw_callback, sizeof(GwSession), 4096, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}
};

static void
on_signal(int sig)
{
	(void) sig;
	stopping = 1;
	if (context)
		lws_cancel_service(context);
}

static void
sse_ping(lws_sorted_usec_list_t *sul)
{
	gw_sse_ping();
	lws_sul_schedule(context, 0, sul, sse_ping, 15 * LWS_US_PER_SEC);
}

static char *
read_file(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		size;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
	{
		fclose(f);
		return NULL;
	}
	buf = malloc(size + 1);
	if (buf && fread(buf, 1, size, f) != (size_t) size)
	{
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[size] = '\0';
	fclose(f);
	return buf;
}

/* web/ of the repository: the binary is gateway/bin/dg-gateway */
static const char *
default_web(void)
{
	static char dir[PATH_MAX];
	char		exe[PATH_MAX];
	ssize_t		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return "web";
	exe[n] = '\0';
	snprintf(dir, sizeof(dir), "%s/../../web", dirname(exe));
	return realpath(dir, exe) ? strcpy(dir, exe) : "web";
}

static void
usage(FILE *out)
{
	fprintf(out,
			"usage: dg-gateway [options]\n"
			"  --listen ADDR        address to bind (127.0.0.1)\n"
			"  --port N             HTTP port, 0 for any free one (8080)\n"
			"  --db CONNINFO        libpq connection string (dbname=postgres)\n"
			"  --jwt-secret SECRET  HS256 secret of the tokens\n"
			"  --jwt-key FILE       RS256 public key (PEM) of the tokens\n"
			"  --role-claim NAME    claim naming the database role (role)\n"
			"  --anon-role ROLE     role of requests without a token\n"
			"  --web DIR            the debugger's files (web/ of the repository)\n"
			"  --queue N            messages queued per client before lag (64)\n"
			"  --pool N             database connections (and threads) for REST calls (4)\n"
			"Each option may also be given as DG_GATEWAY_<NAME>, e.g. DG_GATEWAY_JWT_SECRET.\n");
}

static const struct option options[] = {
	{"listen", required_argument, NULL, 'l'},
	{"port", required_argument, NULL, 'p'},
	{"db", required_argument, NULL, 'd'},
	{"jwt-secret", required_argument, NULL, 's'},
	{"jwt-key", required_argument, NULL, 'k'},
	{"role-claim", required_argument, NULL, 'r'},
	{"anon-role", required_argument, NULL, 'a'},
	{"web", required_argument, NULL, 'w'},
	{"queue", required_argument, NULL, 'q'},
	{"pool", required_argument, NULL, 'P'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0}
};

static bool
set_option(int opt, const char *value, const char **key_file)
{
	char	   *end;
	long		n;

	switch (opt)
	{
		case 'l':
			gw_config.listen = value;
			return true;
		case 'd':
			gw_config.db = value;
			return true;
		case 's':
			gw_config.jwt_secret = value;
			return true;
		case 'k':
			*key_file = value;
			return true;
		case 'r':
			gw_config.role_claim = value;
			return true;
		case 'a':
			gw_config.anon_role = value;
			return true;
		case 'w':
			gw_config.web = value;
			return true;
		case 'p':
		case 'q':
		case 'P':
			errno = 0;
			n = strtol(value, &end, 10);
			if (errno || *end || n < (opt == 'p' ? 0 : 1) || n > (opt == 'P' ? 64 : 65535))
			{
				fprintf(stderr, "dg-gateway: invalid number \"%s\"\n", value);
				return false;
			}
			if (opt == 'p')
				gw_config.port = (int) n;
			else if (opt == 'q')
				gw_config.queue = (int) n;
			else
				gw_config.pool = (int) n;
			return true;
	}
	return false;
}

static bool
parse_options(int argc, char **argv)
{
	const char *key_file = NULL;
	int			opt;

	for (const struct option *o = options; o->name; o++)
	{
		char		env[64];
		const char *value;
		int			i;

		if (o->has_arg == no_argument)
			continue;
		i = snprintf(env, sizeof(env), "DG_GATEWAY_");
		for (const char *c = o->name; *c && i < (int) sizeof(env) - 1; c++)
			env[i++] = *c == '-' ? '_' : (char) (*c - 'a' + 'A');
		env[i] = '\0';
		if ((value = getenv(env)) && *value && !set_option(o->val, value, &key_file))
			return false;
	}
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1)
	{
		if (opt == 'h')
		{
			usage(stdout);
			exit(0);
		}
		if (opt == '?' || !set_option(opt, optarg, &key_file))
		{
			usage(stderr);
			return false;
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "dg-gateway: unexpected argument \"%s\"\n", argv[optind]);
		return false;
	}
	if (gw_config.jwt_secret && key_file)
	{
		fprintf(stderr, "dg-gateway: give --jwt-secret or --jwt-key, not both\n");
		return false;
	}
	if (key_file && !(gw_config.jwt_key = read_file(key_file)))
	{
		fprintf(stderr, "dg-gateway: cannot read %s: %s\n", key_file, strerror(errno));
		return false;
	}
	if (gw_config.anon_role && strcmp(gw_config.anon_role, "none") == 0)
	{
		fprintf(stderr, "dg-gateway: --anon-role none would be the login role\n");
		return false;
	}
	if (!gw_config.web)
		gw_config.web = default_web();
	return true;
}

int
main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	struct lws_http_mount mount;
	struct lws_vhost *vhost;
	int			status = 0;

	if (!parse_options(argc, argv))
		return 2;
	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
	if (!gw_db_open())
		return 1;

	memset(&mount, 0, sizeof(mount));
	mount.mountpoint = "/debugger";
	mount.mountpoint_len = strlen(mount.mountpoint);
	mount.origin = gw_config.web;
	mount.def = "index.html";
	mount.origin_protocol = LWSMPRO_FILE;

	memset(&info, 0, sizeof(info));
	info.port = gw_config.port;
	info.iface = gw_config.listen;
	info.protocols = protocols;
	info.mounts = &mount;
	info.retry_and_idle_policy = &heartbeat;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
	info.timeout_secs = 30;

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);

	context = lws_create_context(&info);
	if (!context || !(vhost = lws_get_vhost_by_name(context, "default")))
	{
		fprintf(stderr, "dg-gateway: cannot listen on %s port %d\n", gw_config.listen, gw_config.port);
		gw_db_close();
		return 1;
	}
	if (!gw_hub_start(context, vhost) || !gw_pool_start(context, gw_config.pool))
	{
		gw_pool_stop();
		lws_context_destroy(context);
		gw_db_close();
		return 1;
	}
	lws_sul_schedule(context, 0, &sse_ping_timer, sse_ping, 15 * LWS_US_PER_SEC);

	if (strchr(gw_config.listen, ':'))
		printf("listening on http://[%s]:%d\n", gw_config.listen, lws_get_vhost_port(vhost));
	else
		printf("listening on http://%s:%d\n", gw_config.listen, lws_get_vhost_port(vhost));
	fflush(stdout);

	while (!stopping)
	{
		if (lws_service(context, 0) < 0)
		{
			status = 1;
			break;
		}
	}
	lws_sul_cancel(&sse_ping_timer);
	gw_hub_quiesce();
	gw_pool_stop();		/* its threads wake the context: before it goes */
	lws_context_destroy(context);
	gw_hub_stop();
	gw_db_close();
	return status;
}
