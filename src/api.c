/*-------------------------------------------------------------------------
 *
 * api.c
 *		The dt_* SQL functions: read the arguments, call the service.
 *
 * Arguments that identify a thing or carry its data must not be NULL;
 * a NULL there is a malformed call (22023), except for reads, where SQL's
 * "NULL in, NULL out" is what a caller expects.
 *
 * src/api.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "doppelganger.h"

PG_FUNCTION_INFO_V1(dg_create_thing);
PG_FUNCTION_INFO_V1(dg_get_thing);
PG_FUNCTION_INFO_V1(dg_update_thing);
PG_FUNCTION_INFO_V1(dg_delete_thing);
PG_FUNCTION_INFO_V1(dg_patch_thing);
PG_FUNCTION_INFO_V1(dg_merge_thing);
PG_FUNCTION_INFO_V1(dg_report_state);
PG_FUNCTION_INFO_V1(dg_set_desired_state);
PG_FUNCTION_INFO_V1(dg_set_desired_value);
PG_FUNCTION_INFO_V1(dg_set_synthetic_state);
PG_FUNCTION_INFO_V1(dg_delete_synthetic_state);
PG_FUNCTION_INFO_V1(dg_set_reconciliation);
PG_FUNCTION_INFO_V1(dg_set_annotations);
PG_FUNCTION_INFO_V1(dg_set_labels);
PG_FUNCTION_INFO_V1(dg_list_things);
PG_FUNCTION_INFO_V1(dg_process_event);

static const char *const arg_names[] = {
	"application", "name", "third argument", "fourth argument", "fifth argument"
};

static char *
text_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be null", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

static char *
opt_text_arg(FunctionCallInfo fcinfo, int n)
{
	return PG_ARGISNULL(n) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

static Jsonb *
jsonb_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be null", what)));
	return PG_GETARG_JSONB_P(n);
}

/* A request on the thing named by the first two arguments. */
static void
init_request(DgRequest *req, FunctionCallInfo fcinfo, DgOpKind kind)
{
	memset(req, 0, sizeof(*req));
	req->kind = kind;
	req->application = text_arg(fcinfo, 0, arg_names[0]);
	req->name = text_arg(fcinfo, 1, arg_names[1]);
}

static Datum
run_update(DgRequest *req)
{
	PG_RETURN_JSONB_P(dg_service_update(req));
}

Datum
dg_create_thing(PG_FUNCTION_ARGS)
{
	PG_RETURN_JSONB_P(dg_service_create(jsonb_arg(fcinfo, 0, "thing")));
}

Datum
dg_get_thing(PG_FUNCTION_ARGS)
{
	Jsonb	   *thing;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	thing = dg_service_get(text_arg(fcinfo, 0, "application"), text_arg(fcinfo, 1, "name"));
	if (thing == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(thing);
}

Datum
dg_update_thing(PG_FUNCTION_ARGS)
{
	DgRequest	req;

	memset(&req, 0, sizeof(req));
	req.kind = DG_OP_REPLACE;
	req.arg = jsonb_arg(fcinfo, 0, "thing");
	req.expected_version = opt_text_arg(fcinfo, 1);
	return run_update(&req);
}

Datum
dg_delete_thing(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(dg_service_delete(text_arg(fcinfo, 0, "application"),
									 text_arg(fcinfo, 1, "name"),
									 opt_text_arg(fcinfo, 2)));
}

Datum
dg_patch_thing(PG_FUNCTION_ARGS)
{
	DgRequest	req;

	init_request(&req, fcinfo, DG_OP_PATCH);
	req.arg = jsonb_arg(fcinfo, 2, "patch");
	req.expected_version = opt_text_arg(fcinfo, 3);
	return run_update(&req);
}

Datum
dg_merge_thing(PG_FUNCTION_ARGS)
{
	DgRequest	req;

	init_request(&req, fcinfo, DG_OP_MERGE);
	req.arg = jsonb_arg(fcinfo, 2, "merge");
	req.expected_version = opt_text_arg(fcinfo, 3);
	return run_update(&req);
}

Datum
dg_report_state(PG_FUNCTION_ARGS)
{
	DgRequest	req;

	init_request(&req, fcinfo, DG_OP_REPORT_STATE);
	req.arg = jsonb_arg(fcinfo, 2, "state");
	if (!JB_ROOT_IS_OBJECT(req.arg) || JB_ROOT_IS_SCALAR(req.arg))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("state must be a JSON object of feature names to values")));
	req.partial = PG_ARGISNULL(3) ? true : PG_GETARG_BOOL(3);
	return run_update(&req);
}

Datum
dg_set_desired_state(PG_FUNCTION_ARGS)
{
	DgRequest	req;

	init_request(&req, fcinfo, DG_OP_DESIRED_PUT);
	req.feature = text_arg(fcinfo, 2, "feature");
	req.arg = jsonb_arg(fcinfo, 3, "desired");
	return run_update(&req);
}

Datum
dg_set_desired_value(PG_FUNCTION_ARGS)
{
	DgRequest	req;

	init_request(&req, fcinfo, DG_OP_SET_DESIRED_VALUES);
	req.feature = text_arg(fcinfo, 2, "feature");
	/* a NULL value is JSON null: "clear the desired value" */
	req.arg = PG_ARGISNULL(3) ? DatumGetJsonbP(dg_jsonb_from_text("null")) : PG_GETARG_JSONB_P(3);
	req.has_valid_until = !PG_ARGISNULL(4);
	if (req.has_valid_until)
		req.valid_until = PG_GETARG_TIMESTAMPTZ(4);
	return run_update(&req);
}

Datum
dg_set_synthetic_state(PG_FUNCTION_ARGS)
{
	DgRequest	req;

	init_request(&req, fcinfo, DG_OP_SYNTHETIC_PUT);
	req.feature = text_arg(fcinfo, 2, "feature");
	req.arg = jsonb_arg(fcinfo, 3, "definition");
	return run_update(&req);
}

Datum
dg_delete_synthetic_state(PG_FUNCTION_ARGS)
{
	DgRequest	req;

	init_request(&req, fcinfo, DG_OP_SYNTHETIC_DELETE);
	req.feature = text_arg(fcinfo, 2, "feature");
	return run_update(&req);
}

Datum
dg_set_reconciliation(PG_FUNCTION_ARGS)
{
	DgRequest	req;

	init_request(&req, fcinfo, DG_OP_RECONCILIATION_PUT);
	req.arg = jsonb_arg(fcinfo, 2, "reconciliation");
	return run_update(&req);
}

Datum
dg_set_annotations(PG_FUNCTION_ARGS)
{
	DgRequest	req;

	init_request(&req, fcinfo, DG_OP_ANNOTATIONS);
	req.arg = jsonb_arg(fcinfo, 2, "annotations");
	return run_update(&req);
}

Datum
dg_set_labels(PG_FUNCTION_ARGS)
{
	DgRequest	req;

	init_request(&req, fcinfo, DG_OP_LABELS);
	req.arg = jsonb_arg(fcinfo, 2, "labels");
	return run_update(&req);
}

Datum
dg_process_event(PG_FUNCTION_ARGS)
{
	Jsonb	   *thing;

	thing = dg_service_process_event(text_arg(fcinfo, 0, "application"),
									 text_arg(fcinfo, 1, "name"),
									 jsonb_arg(fcinfo, 2, "message"));
	if (thing == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(thing);
}

typedef struct ListEmit
{
	Tuplestorestate *store;
	TupleDesc	desc;
} ListEmit;

static void
emit_thing(Jsonb *thing, void *arg)
{
	ListEmit   *emit = (ListEmit *) arg;
	Datum		value = JsonbPGetDatum(thing);
	bool		isnull = false;

	tuplestore_putvalues(emit->store, emit->desc, &value, &isnull);
	pfree(thing);
}

Datum
dg_list_things(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ListEmit	emit;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (PG_ARGISNULL(0))
		return (Datum) 0;
	emit.store = rsinfo->setResult;
	emit.desc = rsinfo->setDesc;
	dg_service_list(text_arg(fcinfo, 0, "application"), opt_text_arg(fcinfo, 1),
					emit_thing, &emit);
	return (Datum) 0;
}
