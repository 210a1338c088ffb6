/*
 * db.c: the two libpq connections requests use.
 *
 * The request connection runs each call as its caller: the role and the
 * token's claims are set for the session (set_config, parameterized) and
 * only re-set when the next caller differs, so a client's calls cost one
 * round trip each.  The reader runs as the login role; the hub uses it to
 * re-read things for subscribers that were checked when they connected.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"

#define GW_PREPARED_MAX 32

struct GwConn
{
	PGconn	   *conn;
	bool		role_known;		/* role and claims below are what the session has */
	char	   *role;
	char	   *claims;
	/* statements prepared on this session, by the address of their literal */
	const char *prepared[GW_PREPARED_MAX];
	int			nprepared;
};

static GwConn request_conn;
static GwConn reader_conn;

static bool
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static void
forget_role(GwConn *c)
{
	free(c->role);
	free(c->claims);
	c->role = c->claims = NULL;
	c->role_known = false;
}

/* a new server session: what the old one knew is gone with it */
static void
forget_session(GwConn *c)
{
	forget_role(c);
	c->nprepared = 0;
}

static bool
connect_one(GwConn *c)
{
	c->conn = PQconnectdb(gw_config.db);
	if (PQstatus(c->conn) != CONNECTION_OK)
	{
		fprintf(stderr, "dg-gateway: cannot connect to the database: %s", PQerrorMessage(c->conn));
		PQfinish(c->conn);
		c->conn = NULL;
		return false;
	}
	c->role_known = true;		/* a new session is its login role */
	return true;
}

bool
gw_db_open(void)
{
	if (!connect_one(&request_conn))
		return false;
	if (!connect_one(&reader_conn))
	{
		gw_db_close();
		return false;
	}
	return true;
}

void
gw_db_close(void)
{
	GwConn	   *all[] = {&request_conn, &reader_conn};

	for (int i = 0; i < 2; i++)
	{
		if (all[i]->conn)
			PQfinish(all[i]->conn);
		all[i]->conn = NULL;
		forget_session(all[i]);
	}
}

static void
set_error(GwDbError *err, int status, const char *sqlstate, const char *message)
{
	err->http_status = status;
	snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", sqlstate ? sqlstate : "");
	snprintf(err->message, sizeof(err->message), "%s", message ? message : "");
}

/* the contract's mapping of SQLSTATEs to HTTP */
static void
map_error(const PGresult *res, PGconn *conn, GwDbError *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *message = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	int			status = 500;

	if (!message)
		message = PQerrorMessage(conn);
	/* no SQLSTATE, a lost connection or a server going down (class 08, 57P0x) */
	if (!state || PQstatus(conn) == CONNECTION_BAD || strncmp(state, "08", 2) == 0 ||
		strncmp(state, "57P0", 4) == 0)
		status = 503;
	else if (strcmp(state, "PT404") == 0)
		status = 404;
	else if (strcmp(state, "23505") == 0)
		status = 409;
	else if (strcmp(state, "PT412") == 0)
		status = 412;
	else if (strcmp(state, "22023") == 0 || strcmp(state, "22P02") == 0 ||
			 strcmp(state, "22007") == 0 || strcmp(state, "22008") == 0)
		status = 400;
	else if (strcmp(state, "42501") == 0)
		status = 403;
	set_error(err, status, state, message);
}

static bool
ensure_connected(GwConn *c, GwDbError *err)
{
	if (c->conn && PQstatus(c->conn) == CONNECTION_OK)
		return true;
	if (c->conn)
		PQreset(c->conn);
	else
		c->conn = PQconnectdb(gw_config.db);
	forget_session(c);
	if (PQstatus(c->conn) != CONNECTION_OK)
	{
		set_error(err, 503, NULL, PQerrorMessage(c->conn));
		return false;
	}
	c->role_known = true;
	return true;
}

/*
 * Every statement here is a literal with a fixed number of parameters:
 * each is prepared once per session, which saves its parse and plan on
 * every later call (a third of a dt_report_state call's cost).
 */
static PGresult *
execute(GwConn *c, const char *sql, int nparams, const char *const *params)
{
	char		name[16];
	int			i;

	for (i = 0; i < c->nprepared; i++)
		if (c->prepared[i] == sql)
			break;
	if (i == GW_PREPARED_MAX)
		return PQexecParams(c->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	snprintf(name, sizeof(name), "gw%d", i);
	if (i == c->nprepared)
	{
		PGresult   *res = PQprepare(c->conn, name, sql, nparams, NULL);

		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			return res;
		PQclear(res);
		c->prepared[c->nprepared++] = sql;
	}
	return PQexecPrepared(c->conn, name, nparams, params, NULL, NULL, 0);
}

static PGresult *
run(GwConn *c, const char *sql, int nparams, const char *const *params, GwDbError *err)
{
	PGresult   *res = execute(c, sql, nparams, params);
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	map_error(res, c->conn, err);
	PQclear(res);
	return NULL;
}

static PGresult *
call_once(GwConn *c, const GwCaller *caller, const char *sql, int nparams,
		  const char *const *params, GwDbError *err, bool *applied)
{
	*applied = false;
	err->http_status = 0;
	if (!ensure_connected(c, err))
		return NULL;
	if (!c->role_known || !same(c->role, caller->role) || !same(c->claims, caller->claims))
	{
		const char *values[2] = {caller->role ? caller->role : "none",
		caller->claims ? caller->claims : ""};
		PGresult   *res;

		forget_role(c);
		res = run(c, "SELECT set_config('role', $1, false), set_config('request.jwt.claims', $2, false)",
				  2, values, err);
		if (!res)
		{
			/* a role that does not exist or may not be taken: the token is no good */
			if (strcmp(err->sqlstate, "22023") == 0 || strcmp(err->sqlstate, "42704") == 0 ||
				strcmp(err->sqlstate, "42501") == 0)
				err->http_status = 401;
			*applied = false;
			return NULL;
		}
		PQclear(res);
		c->role = caller->role ? strdup(caller->role) : NULL;
		c->claims = caller->claims ? strdup(caller->claims) : NULL;
		c->role_known = true;
	}
	*applied = true;			/* as far as we can know: it was sent */
	return run(c, sql, nparams, params, err);
}

/*
 * A connection broken since its last use (the database restarted) is only
 * noticed when a call fails on it.  The call is then tried once more on a
 * new connection if it is a read, or if it failed before it was sent; a
 * write that was sent is not, since it may have been applied.
 */
PGresult *
gw_db_call_on(GwConn *c, const GwCaller *caller, const char *sql, int nparams,
			  const char *const *params, bool read_only, GwDbError *err)
{
	bool		applied;
	PGresult   *res = call_once(c, caller, sql, nparams, params, err, &applied);

	if (!res && (read_only || !applied) && c->conn && PQstatus(c->conn) == CONNECTION_BAD)
		res = call_once(c, caller, sql, nparams, params, err, &applied);
	return res;
}

/* on the event loop's own connection: admission checks and initial reads */
PGresult *
gw_db_call(const GwCaller *caller, const char *sql, int nparams,
		   const char *const *params, bool read_only, GwDbError *err)
{
	return gw_db_call_on(&request_conn, caller, sql, nparams, params, read_only, err);
}

/* a connection of its own, opened on first use (for pool.c's threads) */
GwConn *
gw_conn_new(void)
{
	return calloc(1, sizeof(GwConn));
}

void
gw_conn_free(GwConn *c)
{
	if (!c)
		return;
	if (c->conn)
		PQfinish(c->conn);
	forget_session(c);
	free(c);
}

PGresult *
gw_db_read(const char *sql, int nparams, const char *const *params, GwDbError *err)
{
	PGresult   *res = NULL;

	for (int attempt = 0; attempt < 2 && !res; attempt++)
	{
		err->http_status = 0;
		if (!ensure_connected(&reader_conn, err))
			return NULL;
		res = run(&reader_conn, sql, nparams, params, err);
		if (PQstatus(reader_conn.conn) != CONNECTION_BAD)
			break;
	}
	return res;
}
