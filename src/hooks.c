/*-------------------------------------------------------------------------
 *
 * hooks.c
 *		Running hook code for the machine: JavaScript through script.c, and
 *		SQL functions, each as the role that configured it.
 *
 * Every run of the machine has one deadline (doppelganger.hook_timeout)
 * shared by all its scripts, as upstream.  A SQL function hook
 * ({"function": "schema.fn"}, taking and returning jsonb) runs in a
 * subtransaction of the caller's transaction, under the identity of the
 * role recorded in the code's "owner" with security-restricted operation,
 * and with a timer that cancels it at the deadline; any error it raises is
 * caught and handed to the machine as the hook's failure, so the pure
 * machine never sees a longjmp.
 *
 * Function hooks are checked when they are configured: the function must
 * exist with the signature (jsonb) returns jsonb and the configuring role
 * must be allowed to execute it.  Through Kafka events no function hook
 * can be configured at all: the events' sender is not a database role.
 *
 * src/hooks.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/resowner.h"
#include "storage/latch.h"
#include "utils/timeout.h"

#include "pgbuiltins.h"
#include "service.h"

static TimeoutId hook_timeout_id = MAX_TIMEOUTS;
static volatile bool hook_timed_out = false;

static bool
interrupted(void)
{
	return QueryCancelPending || ProcDiePending;
}

static void
hook_timeout_handler(void)
{
	/* as statement_timeout does: the function stops at its next interrupt check */
	hook_timed_out = true;
	QueryCancelPending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

void
dg_runner_start(DgHookRunner *r)
{
	r->deadline_ns = dg_monotonic_ns() + (int64) dg_hook_timeout * DG_NS_PER_MS;
}

/* The function a hook names, looked up for (jsonb); InvalidOid if there is none. */
static Oid
hook_function(const char *name)
{
	List	   *names;
	Oid			argtype = JSONBOID;

	names = stringToQualifiedNameList(name);
	return LookupFuncName(names, 1, &argtype, true);
}

static bool
run_function(DgHookRunner *r, const DgHookCall *call, json_object **result, DgError *err)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	json_object *fn,
			   *role;
	const char *fname;
	Oid			fnoid,
				roleid,
				saved_user;
	int			saved_context;
	int64		remaining_ms;
	Jsonb	   *input;
	volatile Datum output = (Datum) 0;
	volatile bool isnull = true;
	volatile bool ok = true;
	char		what[300];

	snprintf(what, sizeof(what), "%s \"%s\"", call->kind, call->name);
	dg_json_has(call->code, "function", &fn);
	fname = json_object_get_string(fn);
	if (!dg_json_has(call->code, "owner", &role) || role == NULL)
		return dg_fail(err, DG_ERR_HOOK, "%s has no owner role", what);
	roleid = get_role_oid(json_object_get_string(role), true);
	if (!OidIsValid(roleid))
		return dg_fail(err, DG_ERR_HOOK, "%s belongs to role \"%s\", which no longer exists", what,
					   json_object_get_string(role));
	fnoid = hook_function(fname);
	if (!OidIsValid(fnoid))
		return dg_fail(err, DG_ERR_HOOK, "%s calls %s(jsonb), which does not exist", what, fname);
	if (pg_proc_aclcheck(fnoid, roleid, ACL_EXECUTE) != ACLCHECK_OK)
	{
		dg_fail(err, DG_ERR_HOOK_PRIVILEGE, "%s: role \"%s\" may not execute %s(jsonb)", what,
				json_object_get_string(role), fname);
		return false;
	}
	remaining_ms = (r->deadline_ns - dg_monotonic_ns()) / DG_NS_PER_MS;
	if (remaining_ms <= 0)
		return dg_fail(err, DG_ERR_HOOK, "%s ran longer than the hook timeout (%d ms)", what,
					   dg_hook_timeout);
	input = dg_jsonb_from_jsonc(call->context);
	if (hook_timeout_id == MAX_TIMEOUTS)
		hook_timeout_id = RegisterTimeout(USER_TIMEOUT, hook_timeout_handler);

	GetUserIdAndSecContext(&saved_user, &saved_context);
	hook_timed_out = false;
	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		FmgrInfo	flinfo;
		LOCAL_FCINFO(fcinfo, 1);

		SetUserIdAndSecContext(roleid, saved_context | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		enable_timeout_after(hook_timeout_id, (int) remaining_ms);
		fmgr_info(fnoid, &flinfo);
		InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, NULL);
		fcinfo->args[0].value = JsonbPGetDatum(input);
		fcinfo->args[0].isnull = false;
		output = FunctionCallInvoke(fcinfo);
		isnull = fcinfo->isnull;
		disable_timeout(hook_timeout_id, false);
		/* it returned just as the timer fired: that cancel was ours, not the user's */
		if (hook_timed_out)
			QueryCancelPending = false;
		SetUserIdAndSecContext(saved_user, saved_context);
		/* copy out before the subtransaction's memory goes */
		MemoryContextSwitchTo(cxt);
		if (!isnull)
			output = PointerGetDatum(DatumGetJsonbPCopy(output));
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		disable_timeout(hook_timeout_id, false);
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		SetUserIdAndSecContext(saved_user, saved_context);
		if (hook_timed_out && edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			dg_fail(err, DG_ERR_HOOK, "%s ran longer than the hook timeout (%d ms)", what,
					dg_hook_timeout);
		else
		{
			dg_fail(err, edata->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE ?
					DG_ERR_HOOK_PRIVILEGE : DG_ERR_HOOK,
					"%s failed: %s", what, edata->message);
			if (edata->detail)
				dg_error_detail(err, "%s", edata->detail);
		}
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	if (!ok)
		return false;
	if (call->action == DG_ACTION_SYNTHETIC)
	{
		*result = json_object_new_object();
		dg_json_set(*result, "value", isnull ? NULL : dg_jsonc_from_jsonb(DatumGetJsonbP(output)));
		return true;
	}
	if (isnull)
		return dg_fail(err, DG_ERR_HOOK, "%s returned NULL instead of its context", what);
	*result = dg_jsonc_from_jsonb(DatumGetJsonbP(output));
	return true;
}

/* The machine's DgRunHook. */
bool
dg_run_hook(void *arg, const DgHookCall *call, json_object **result, DgError *err)
{
	DgHookRunner *r = (DgHookRunner *) arg;

	if (dg_json_has(call->code, "function", NULL))
		return run_function(r, call, result, err);
	else
	{
		DgScriptLimits limits;

		limits.deadline_ns = r->deadline_ns;
		limits.timeout_ms = dg_hook_timeout;
		limits.heap_limit = (size_t) dg_hook_memory * 1024;
		limits.interrupted = interrupted;
		return dg_script_run(call, &limits, result, err);
	}
}

/*
 * Check the functions newly configured by the current role: they must
 * exist as (jsonb) returns jsonb and the role must be allowed to run them.
 * Events cannot configure functions at all.
 */
bool
dg_check_functions(json_object *functions, Oid role, bool from_event, DgError *err)
{
	for (size_t i = 0; i < json_object_array_length(functions); i++)
	{
		const char *name = json_object_get_string(json_object_array_get_idx(functions, i));
		Oid			fnoid;

		if (from_event)
		{
			dg_fail(err, DG_ERR_HOOK_PRIVILEGE,
					"function hooks can only be configured through the SQL API, not by events (%s)",
					name);
			return false;
		}
		fnoid = hook_function(name);
		if (!OidIsValid(fnoid))
		{
			dg_fail(err, DG_ERR_INVALID, "function %s(jsonb) does not exist", name);
			dg_error_detail(err, "A function hook must name a function taking and returning jsonb.");
			return false;
		}
		if (get_func_rettype(fnoid) != JSONBOID)
		{
			dg_fail(err, DG_ERR_INVALID, "function %s(jsonb) must return jsonb, not %s", name,
					format_type_be(get_func_rettype(fnoid)));
			return false;
		}
		if (get_func_retset(fnoid))
		{
			dg_fail(err, DG_ERR_INVALID, "function %s(jsonb) must return one jsonb, not a set", name);
			return false;
		}
		if (pg_proc_aclcheck(fnoid, role, ACL_EXECUTE) != ACLCHECK_OK)
		{
			dg_fail(err, DG_ERR_HOOK_PRIVILEGE, "permission denied for function %s", name);
			return false;
		}
	}
	return true;
}
