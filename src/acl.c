/*-------------------------------------------------------------------------
 *
 * acl.c
 *		Per-application access: read and write grants to roles, checked by
 *		every dt_* entry point and by the row-level security policy of
 *		doppelganger.things.
 *
 * A grant gives a role (and every role that has its privileges) read or
 * write on one application, or on all ("*"); write includes read; a grant
 * to PUBLIC is for everyone.  Superusers and roles with the privileges of
 * the owner of doppelganger.things need none: the workers, and the store
 * itself, run as such.  Callers do not learn about applications they may
 * not read: reading one gives "not found" and an empty list; writing one
 * is 42501 either way.
 *
 * Under PostgREST the checked role is the one its JWT switched to (SET
 * LOCAL ROLE), so grants name the roles that tokens carry.
 *
 * Answers are kept for the rest of the transaction (the policy asks once
 * per row); granting or revoking forgets them.
 *
 * src/acl.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "doppelganger.h"

PG_FUNCTION_INFO_V1(dg_grant);
PG_FUNCTION_INFO_V1(dg_revoke);
PG_FUNCTION_INFO_V1(dg_can);

#define ACL_CACHE 16

typedef struct AclAnswer
{
	Oid			user;
	char		application[DG_MAX_APPLICATION + 1];
	bool		read;
	bool		write;
} AclAnswer;

static LocalTransactionId cache_lxid = InvalidLocalTransactionId;
static AclAnswer cache[ACL_CACHE];
static int	cache_used = 0;
static int	cache_next = 0;
static SPIPlanPtr plan_grants;

static void
forget_answers(void)
{
	cache_used = 0;
	cache_next = 0;
}

static bool
privileged(Oid user)
{
	return superuser_arg(user) || has_privs_of_role(user, dg_store_owner());
}

/* Ask the grants table what user may do with application. */
static void
look_up(Oid user, const char *application, AclAnswer *answer)
{
	static Oid	types[1] = {TEXTOID};
	DgStoreSave save;
	Datum		arg = CStringGetTextDatum(application);
	int			rc;

	answer->read = answer->write = false;
	dg_store_begin(&save);
	rc = SPI_execute_plan(dg_store_prepare(&plan_grants,
										   "SELECT grantee, privilege = 'write'"
										   " FROM doppelganger.grants"
										   " WHERE application = $1 OR application = '*'",
										   1, types),
						  &arg, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading the grants failed: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			grantee = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
															 SPI_tuptable->tupdesc, 1, &isnull));
		bool		write = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i],
													   SPI_tuptable->tupdesc, 2, &isnull));

		/* the roles were checked at grant time; a dropped one matches nobody */
		if (grantee == ACL_ID_PUBLIC || has_privs_of_role(user, grantee))
		{
			answer->read = true;
			answer->write |= write;
		}
	}
	dg_store_end(&save);
}

/* Whether the current user may read (or write) the application's things. */
bool
dg_acl_allowed(const char *application, DgPrivilege privilege)
{
	Oid			user = GetUserId();
	AclAnswer  *answer = NULL;

	if (privileged(user))
		return true;
	if (strlen(application) > DG_MAX_APPLICATION)
		return false;
	if (cache_lxid != MyProc->lxid)
	{
		forget_answers();
		cache_lxid = MyProc->lxid;
	}
	for (int i = 0; i < cache_used; i++)
	{
		if (cache[i].user == user && strcmp(cache[i].application, application) == 0)
		{
			answer = &cache[i];
			break;
		}
	}
	if (answer == NULL)
	{
		AclAnswer	fresh;

		fresh.user = user;
		strlcpy(fresh.application, application, sizeof(fresh.application));
		look_up(user, application, &fresh);
		answer = &cache[cache_next];
		*answer = fresh;
		cache_next = (cache_next + 1) % ACL_CACHE;
		if (cache_used < ACL_CACHE)
			cache_used++;
	}
	return privilege == DG_PRIV_READ ? answer->read : answer->write;
}

void
dg_acl_require(const char *application, DgPrivilege privilege)
{
	if (!dg_acl_allowed(application, privilege))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s things of application \"%s\"",
						privilege == DG_PRIV_READ ? "read" : "write", application),
				 errhint("The owner of doppelganger.things can grant it with doppelganger.dt_grant().")));
}

static DgPrivilege
privilege_arg(FunctionCallInfo fcinfo, int n)
{
	char	   *p;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("privilege must not be null")));
	p = text_to_cstring(PG_GETARG_TEXT_PP(n));
	if (strcmp(p, "read") == 0)
		return DG_PRIV_READ;
	if (strcmp(p, "write") == 0)
		return DG_PRIV_WRITE;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown privilege \"%s\"", p),
			 errhint("The privileges are \"read\" and \"write\".")));
}

/* The application of a grant: a valid name, or "*" for all. */
static char *
application_arg(FunctionCallInfo fcinfo)
{
	char	   *application;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("application must not be null")));
	application = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (strcmp(application, "*") != 0)
		dg_service_check_application(application);
	return application;
}

/* The role of a grant: "public" or an existing role. */
static Oid
role_arg(FunctionCallInfo fcinfo)
{
	const char *role;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("role must not be null")));
	role = NameStr(*PG_GETARG_NAME(1));
	if (strcmp(role, "public") == 0)
		return ACL_ID_PUBLIC;
	return get_role_oid(role, false);
}

static void
require_owner(const char *what)
{
	if (!privileged(GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s", what),
				 errdetail("Only the owner of doppelganger.things or a superuser may change grants.")));
}

/* Run a grants statement with (application, grantee[, privilege]); rows it touched. */
static uint64
change_grants(SPIPlanPtr *cache_plan, const char *sql, int nargs, Datum *values,
			  const char *nulls)
{
	static Oid	types[3] = {TEXTOID, OIDOID, TEXTOID};
	DgStoreSave save;
	uint64		n;
	int			rc;

	dg_store_begin(&save);
	rc = SPI_execute_plan(dg_store_prepare(cache_plan, sql, nargs, types), values, nulls, false, 0);
	if (rc < 0)
		elog(ERROR, "changing the grants failed: %s", SPI_result_code_string(rc));
	n = SPI_processed;
	dg_store_end(&save);
	forget_answers();
	return n;
}

/* dt_grant(application, role, privilege): true if the role did not have it. */
Datum
dg_grant(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan;
	char	   *application = application_arg(fcinfo);
	Oid			role = role_arg(fcinfo);
	DgPrivilege privilege = privilege_arg(fcinfo, 2);
	Datum		values[3];

	PreventCommandIfReadOnly("dt_grant");
	require_owner("grant access to things");
	values[0] = CStringGetTextDatum(application);
	values[1] = ObjectIdGetDatum(role);
	values[2] = CStringGetTextDatum(privilege == DG_PRIV_READ ? "read" : "write");
	PG_RETURN_BOOL(change_grants(&plan,
								 "INSERT INTO doppelganger.grants (application, grantee, privilege)"
								 " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
								 3, values, NULL) > 0);
}

/*
 * dt_revoke(application, role, privilege DEFAULT NULL): write, or read and
 * with it write, or (NULL) both.  True if the role had something to lose.
 */
Datum
dg_revoke(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan;
	char	   *application = application_arg(fcinfo);
	Oid			role = role_arg(fcinfo);
	Datum		values[3];
	char		nulls[3] = "   ";

	PreventCommandIfReadOnly("dt_revoke");
	require_owner("revoke access to things");
	values[0] = CStringGetTextDatum(application);
	values[1] = ObjectIdGetDatum(role);
	if (PG_ARGISNULL(2))
		nulls[2] = 'n';
	else
		values[2] = CStringGetTextDatum(privilege_arg(fcinfo, 2) == DG_PRIV_READ ? "read" : "write");
	PG_RETURN_BOOL(change_grants(&plan,
								 "DELETE FROM doppelganger.grants"
								 " WHERE application = $1 AND grantee = $2"
								 " AND ($3::text IS NULL OR $3 = 'read' OR privilege = $3)",
								 3, values, nulls) > 0);
}

/* dt_can(application, privilege DEFAULT 'read'): for the current user. */
Datum
dg_can(PG_FUNCTION_ARGS)
{
	DgPrivilege privilege = PG_NARGS() > 1 ? privilege_arg(fcinfo, 1) : DG_PRIV_READ;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_BOOL(dg_acl_allowed(text_to_cstring(PG_GETARG_TEXT_PP(0)), privilege));
}
