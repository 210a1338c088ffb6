/*-------------------------------------------------------------------------
 *
 * service.c
 *		The pipeline every mutation goes through: load, apply, reconcile,
 *		compare, persist, notify (reference §3.1-§3.3).
 *
 * The SQL API and the Kafka processor both end up here.  json-c trees are
 * malloc'd, so each call keeps its trees in a DgWork whose memory context
 * frees them from a reset callback: an ereport anywhere (SPI, jsonb input,
 * a hook) unwinds through transaction abort and still releases them.
 *
 * src/service.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/async.h"
#include "tcop/utility.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/acl.h"
#include "utils/timestamp.h"

#include "doppelganger.h"
#include "dg.h"
#include "service.h"

/* The largest NOTIFY payload PostgreSQL accepts is 7999 bytes. */
#define DG_NOTIFY_MAX 7999

static void
work_release(void *arg)
{
	DgWork	   *w = (DgWork *) arg;

	json_object_put(w->stored);
	json_object_put(w->thing);
	json_object_put(w->next);
	json_object_put(w->temp);
	json_object_put(w->temp2);
	dg_machine_reset(&w->machine);
	w->stored = w->thing = w->next = w->temp = w->temp2 = NULL;
}

DgWork *
dg_work_begin(dg_time now)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "doppelganger work",
											  ALLOCSET_SMALL_SIZES);
	DgWork	   *w = MemoryContextAllocZero(cxt, sizeof(DgWork));

	w->cxt = cxt;
	w->now = now;
	/* the caller: asked now, before the store acts as the table's owner */
	w->role = GetUserId();
	dg_machine_init(&w->machine, now);
	w->machine.run_hook = dg_run_hook;
	w->machine.hook_arg = &w->runner;
	w->callback.func = work_release;
	w->callback.arg = w;
	MemoryContextRegisterResetCallback(cxt, &w->callback);
	return w;
}

void
dg_work_end(DgWork *w)
{
	MemoryContextDelete(w->cxt);
}

dg_time
dg_now(void)
{
	return dg_time_from_timestamptz(GetCurrentTimestamp());
}

void
dg_raise(DgError *err)
{
	int			code;

	switch (err->kind)
	{
		case DG_ERR_INVALID:
			code = ERRCODE_INVALID_PARAMETER_VALUE;
			break;
		case DG_ERR_NOT_FOUND:
			code = MAKE_SQLSTATE('P', 'T', '4', '0', '4');
			break;
		case DG_ERR_EXISTS:
			code = ERRCODE_UNIQUE_VIOLATION;
			break;
		case DG_ERR_PRECONDITION:
			code = MAKE_SQLSTATE('P', 'T', '4', '1', '2');
			break;
		case DG_ERR_VALIDATION:
			code = ERRCODE_CHECK_VIOLATION;
			break;
		case DG_ERR_HOOK:
			code = ERRCODE_EXTERNAL_ROUTINE_EXCEPTION;
			break;
		case DG_ERR_HOOK_PRIVILEGE:
			code = ERRCODE_INSUFFICIENT_PRIVILEGE;
			break;
		case DG_ERR_LIMIT:
			code = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
			break;
		default:
			code = ERRCODE_INTERNAL_ERROR;
			break;
	}
	if (err->sqlstate[0] != '\0')
		code = MAKE_SQLSTATE(err->sqlstate[0], err->sqlstate[1], err->sqlstate[2],
							 err->sqlstate[3], err->sqlstate[4]);
	ereport(ERROR,
			(errcode(code),
			 errmsg("%s", err->message),
			 err->detail[0] ? errdetail("%s", err->detail) : 0));
}

/* The key of each section in the thing's JSON (labels and annotations in metadata). */
static const char *const section_keys[DG_NSECTIONS] = {
	"labels", "annotations", "reportedState", "desiredState", "syntheticState",
	"reconciliation", "schema", "internal"
};

json_object *
dg_row_to_thing(DgRow *row)
{
	json_object *thing = dg_thing_new(row->application, row->name);
	json_object *md = dg_thing_section(thing, "metadata");

	dg_json_set(md, "uid", json_object_new_string(row->uid));
	dg_json_set(md, "creationTimestamp",
				dg_time_json(dg_time_from_timestamptz(row->creation)));
	if (row->has_deletion)
		dg_json_set(md, "deletionTimestamp",
					dg_time_json(dg_time_from_timestamptz(row->deletion)));
	dg_json_set(md, "generation", json_object_new_int64(row->generation));
	dg_json_set(md, "resourceVersion", json_object_new_string(row->resource_version));
	PG_TRY();
	{
		for (int i = 0; i < DG_NSECTIONS; i++)
		{
			Jsonb	   *jb;

			if (row->section_null[i])
				continue;
			jb = DatumGetJsonbP(row->sections[i]);
			if (JB_ROOT_IS_OBJECT(jb) && JB_ROOT_COUNT(jb) == 0)
				continue;
			if (i == DG_SEC_LABELS || i == DG_SEC_ANNOTATIONS)
				dg_json_set(md, section_keys[i], dg_jsonc_from_jsonb(jb));
			else
				dg_json_set(thing, section_keys[i], dg_jsonc_from_jsonb(jb));
		}
	}
	PG_CATCH();
	{
		json_object_put(thing);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return thing;
}

/* The JSON of one section of a thing, as its column stores it (NULL: empty). */
static json_object *
section_of(json_object *thing, DgSection section)
{
	json_object *parent = thing;

	if (section == DG_SEC_LABELS || section == DG_SEC_ANNOTATIONS)
		parent = dg_thing_section(thing, "metadata");
	return dg_thing_section(parent, section_keys[section]);
}

/* An empty jsonb object, built once per process. */
static Datum
empty_object(void)
{
	static Datum empty = (Datum) 0;

	if (empty == (Datum) 0)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		empty = dg_jsonb_from_text("{}");
		MemoryContextSwitchTo(old);
	}
	return empty;
}

/*
 * Fill row from thing.  A section equal to the one in "prev" (the thing as
 * loaded into prev_row) is written back as it was read, without encoding.
 */
void
dg_thing_to_row(json_object *thing, DgRow *row, json_object *prev, DgRow *prev_row)
{
	json_object *md = dg_thing_section(thing, "metadata");
	json_object *v;
	dg_time		t;

	row->application = (char *) dg_thing_application(thing);
	row->name = (char *) dg_thing_name(thing);
	strlcpy(row->uid, json_object_get_string(json_object_object_get(md, "uid")), DG_UUID_LEN);
	strlcpy(row->resource_version,
			json_object_get_string(json_object_object_get(md, "resourceVersion")), DG_UUID_LEN);
	row->generation = json_object_get_int64(json_object_object_get(md, "generation"));
	dg_time_parse(json_object_get_string(json_object_object_get(md, "creationTimestamp")), &t);
	row->creation = dg_timestamptz_from_time(t);
	row->has_deletion = dg_json_has(md, "deletionTimestamp", &v) &&
		dg_time_parse(json_object_get_string(v), &t);
	row->deletion = row->has_deletion ? dg_timestamptz_from_time(t) : 0;
	for (int i = 0; i < DG_NSECTIONS; i++)
	{
		v = section_of(thing, i);
		if (prev_row != NULL && dg_json_equal(section_of(prev, i), v))
		{
			row->sections[i] = prev_row->sections[i];
			row->section_null[i] = prev_row->section_null[i];
		}
		else if (v == NULL)
		{
			row->section_null[i] = i == DG_SEC_SCHEMA;
			row->sections[i] = row->section_null[i] ? (Datum) 0 : empty_object();
		}
		else
		{
			row->section_null[i] = false;
			row->sections[i] = PointerGetDatum(dg_jsonb_from_jsonc(v));
		}
	}
	t = dg_waker_when(thing);
	row->has_waker = t != DG_NO_TIME;
	row->waker = row->has_waker ? dg_timestamptz_from_time(t) : 0;
}

/* Stamp a new version on thing: generation + 1 and a fresh resourceVersion. */
static void
new_version(json_object *thing, int64 generation)
{
	json_object *md = dg_thing_section(thing, "metadata");
	char		uuid[DG_UUID_LEN];

	dg_store_new_uuid(uuid, false);
	dg_json_set(md, "generation", json_object_new_int64(generation));
	dg_json_set(md, "resourceVersion", json_object_new_string(uuid));
}

static int64
generation_of(json_object *thing)
{
	return json_object_get_int64(json_object_object_get(dg_thing_section(thing, "metadata"),
														"generation"));
}

/*
 * NOTIFY thing_changes with the contract's payload, plus the RFC 6902 patch
 * from "before" when everything fits in one notification.
 */
void
dg_notify_change(const char *op, json_object *before, json_object *after)
{
	json_object *payload = json_object_new_object();
	json_object *md = dg_thing_section(after, "metadata");
	json_object *patch = NULL;
	const char *text;
	size_t		len;

	dg_json_set(payload, "op", json_object_new_string(op));
	dg_json_set(payload, "application", json_object_new_string(dg_thing_application(after)));
	dg_json_set(payload, "thing", json_object_new_string(dg_thing_name(after)));
	dg_json_set(payload, "generation", json_object_get(json_object_object_get(md, "generation")));
	dg_json_set(payload, "resourceVersion",
				json_object_get(json_object_object_get(md, "resourceVersion")));
	if (strcmp(op, "updated") == 0)
		patch = dg_patch_diff(before, after);
	else if (strcmp(op, "created") == 0)
	{
		json_object *add = json_object_new_object();

		patch = json_object_new_array();
		dg_json_set(add, "op", json_object_new_string("add"));
		dg_json_set(add, "path", json_object_new_string(""));
		dg_json_set(add, "value", json_object_get(after));
		json_object_array_add(patch, add);
	}
	if (patch)
	{
		dg_json_set(payload, "patch", patch);
		text = dg_json_text(payload, &len);
		if (len > DG_NOTIFY_MAX)
			json_object_object_del(payload, "patch");
	}
	text = dg_json_text(payload, &len);
	/* Async_Notify copies the payload, and can only fail on memory */
	PG_TRY();
	{
		Async_Notify("thing_changes", text);
	}
	PG_FINALLY();
	{
		json_object_put(payload);
	}
	PG_END_TRY();
}

static void
check_identity(const char *application, const char *name)
{
	DgError		err;

	dg_error_clear(&err);
	if (application == NULL || name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("application and thing name must not be null")));
	if (!dg_check_application(application, &err) || !dg_check_name(name, &err))
		dg_raise(&err);
}

StaticAssertDecl(DG_MAX_APPLICATION == DG_MAX_APPLICATION_LEN,
				 "doppelganger.h and dg.h agree on the longest application name");

void
dg_service_check_application(const char *application)
{
	DgError		err;

	dg_error_clear(&err);
	if (!dg_check_application(application, &err))
		dg_raise(&err);
}

/*
 * A caller's write: checked as a statement would be, since the store writes
 * below the executor, which is where read-only transactions are refused.
 */
static void
begin_write(const char *application, const char *what)
{
	PreventCommandIfReadOnly(what);
	PreventCommandIfParallelMode(what);
	dg_acl_require(application, DG_PRIV_WRITE);
}

static void
raise_not_found(const char *application, const char *name)
{
	ereport(ERROR,
			(errcode(MAKE_SQLSTATE('P', 'T', '4', '0', '4')),
			 errmsg("thing \"%s\" of application \"%s\" does not exist", name, application)));
}

/* Turn a result thing into a jsonb in the caller's memory. */
static Jsonb *
to_jsonb(json_object *thing, MemoryContext target)
{
	MemoryContext old = MemoryContextSwitchTo(target);
	Jsonb	   *result = dg_jsonb_from_jsonc(thing);

	MemoryContextSwitchTo(old);
	return result;
}

/*
 * Record who configured the code of "thing" (see dg_thing_stamp_owners)
 * and check the functions it newly configures.
 */
static bool
stamp_code(DgWork *w, json_object *thing, json_object *current, DgError *err)
{
	json_object *functions = json_object_new_array();
	bool		ok;

	if (w->role_name == NULL)
		w->role_name = MemoryContextStrdup(w->cxt, GetUserNameFromId(w->role, false));
	dg_thing_stamp_owners(thing, current, w->role_name, functions);
	/* catalog lookups may raise: keep the array reachable for the cleanup */
	w->temp2 = functions;
	ok = json_object_array_length(functions) == 0 ||
		dg_check_functions(functions, w->role, w->from_event, err);
	json_object_put(functions);
	w->temp2 = NULL;
	return ok;
}

/*
 * Apply one operation to w->thing and reconcile.  On success w->thing is
 * the result; on failure it is unchanged and err says why.
 */
bool
dg_work_apply(DgWork *w, DgOp *op, DgError *err)
{
	size_t		events = w->machine.outbox ? json_object_array_length(w->machine.outbox) : 0;
	size_t		commands = w->machine.commands ? json_object_array_length(w->machine.commands) : 0;

	w->next = json_object_get(w->thing);
	dg_runner_start(&w->runner);
	if (!dg_op_apply(&w->next, op, w->now, err) ||
		!stamp_code(w, w->next, w->thing, err) ||
		!dg_machine_reconcile(&w->machine, w->thing, &w->next, err))
	{
		json_object_put(w->next);
		w->next = NULL;
		/* a failed operation sends nothing */
		if (w->machine.outbox)
			json_object_array_del_idx(w->machine.outbox, events,
									  json_object_array_length(w->machine.outbox) - events);
		if (w->machine.commands)
			json_object_array_del_idx(w->machine.commands, commands,
									  json_object_array_length(w->machine.commands) - commands);
		return false;
	}
	json_object_put(w->thing);
	w->thing = w->next;
	w->next = NULL;
	return true;
}

/* Write w->thing over its row as a new version (the row is locked). */
static void
write_thing(DgWork *w)
{
	DgRow		row;

	if (w->row == NULL)
	{
		/* created in this batch: fetch the row's location and columns */
		MemoryContext old = MemoryContextSwitchTo(w->cxt);

		w->row = palloc0(sizeof(DgRow));
		if (!dg_store_load(dg_thing_application(w->thing), dg_thing_name(w->thing), true, w->row))
			elog(ERROR, "thing \"%s\" vanished after its creation", dg_thing_name(w->thing));
		MemoryContextSwitchTo(old);
	}
	new_version(w->thing, generation_of(w->stored) + 1);
	dg_thing_to_row(w->thing, &row, w->stored, w->row);
	if (row.has_waker)
		dg_wake_at_commit(DG_WAKE_WAKER_AT_COMMIT);
	row.ctid = w->row->ctid;
	if (w->writer)
		dg_writer_update(w->writer, &row);
	else
		dg_store_update(&row);
	w->row->ctid = row.ctid;
	memcpy(w->row->sections, row.sections, sizeof(row.sections));
	memcpy(w->row->section_null, row.section_null, sizeof(row.section_null));
}

/*
 * Write w->thing if it differs from w->stored (the row as loaded), notify,
 * and send what its processing produced (even when the thing itself did
 * not change).  Returns whether the thing was written.
 */
bool
dg_work_persist(DgWork *w)
{
	bool		changed;

	if (w->deleted || w->thing == NULL)
		return false;
	changed = !dg_json_equal(w->stored, w->thing);
	if (changed)
	{
		write_thing(w);
		dg_notify_change("updated", w->stored, w->thing);
		dg_outbox_notification(w->thing);
		/* a later write of the same work starts from this version */
		json_object_put(w->stored);
		w->stored = json_object_get(w->thing);
	}
	dg_outbox_flush(w);
	return changed;
}

/*
 * Delete the loaded thing w->thing: run its deleting hooks, then remove
 * the row and notify with deletionTimestamp set.  *deleted is false when
 * the thing was already being deleted.
 */
bool
dg_work_delete(DgWork *w, bool *deleted, DgError *err)
{
	json_object *md = dg_thing_section(w->thing, "metadata");
	bool		deferred;

	*deleted = false;
	if (dg_json_has(md, "deletionTimestamp", NULL))
		return true;
	/* a copy: the stored tree stays as it was loaded */
	json_object_put(w->next);
	w->next = dg_json_copy(w->thing);
	json_object_put(w->thing);
	w->thing = w->next;
	w->next = NULL;
	md = dg_thing_section(w->thing, "metadata");
	dg_json_set(md, "deletionTimestamp", dg_time_json(w->now));
	dg_runner_start(&w->runner);
	if (!dg_machine_deleting(&w->machine, w->thing, err))
		return false;
	/*
	 * Deletion waits for the events of the deleting hooks (and any older
	 * ones): the row stays, marked, until the relay has delivered them.
	 */
	deferred = (w->machine.outbox && json_object_array_length(w->machine.outbox) > 0) ||
		dg_outbox_pending(dg_thing_application(w->thing), dg_thing_name(w->thing));
	if (deferred)
		write_thing(w);
	else
		dg_store_delete(dg_thing_application(w->thing), dg_thing_name(w->thing));
	dg_notify_change("deleted", w->stored, w->thing);
	dg_outbox_notification(w->thing);
	dg_outbox_flush(w);
	w->deleted = true;
	*deleted = true;
	return true;
}

/* Load and lock a thing into w->stored and w->thing. */
bool
dg_work_load(DgWork *w, const char *application, const char *name)
{
	MemoryContext old = MemoryContextSwitchTo(w->cxt);
	DgRow	   *row = palloc0(sizeof(DgRow));
	bool		found;

	found = w->writer ? dg_writer_load(w->writer, application, name, row) :
		dg_store_load(application, name, true, row);
	MemoryContextSwitchTo(old);
	if (!found)
		return false;
	w->row = row;
	w->stored = dg_row_to_thing(row);
	/* shared: operations work on copies and never change the stored tree */
	w->thing = json_object_get(w->stored);
	return true;
}

/*
 * Create w->thing (already canonical, without system metadata) as a new
 * thing: reconcile against the empty thing, then insert.
 */
bool
dg_work_create(DgWork *w, DgError *err)
{
	json_object *md;
	char		uuid[DG_UUID_LEN];
	DgRow		row;

	json_object_put(w->stored);
	w->stored = dg_thing_new(dg_thing_application(w->thing), dg_thing_name(w->thing));
	w->next = w->thing;
	w->thing = NULL;
	dg_runner_start(&w->runner);
	if (!stamp_code(w, w->next, w->stored, err) ||
		!dg_machine_reconcile(&w->machine, w->stored, &w->next, err))
	{
		/* nothing was created: the thing still does not exist */
		json_object_put(w->next);
		json_object_put(w->stored);
		w->next = w->stored = NULL;
		return false;
	}
	w->thing = w->next;
	w->next = NULL;
	md = dg_thing_section(w->thing, "metadata");
	dg_store_new_uuid(uuid, true);
	dg_json_set(md, "uid", json_object_new_string(uuid));
	dg_json_set(md, "creationTimestamp", dg_time_json(w->now));
	new_version(w->thing, 1);
	dg_thing_to_row(w->thing, &row, NULL, NULL);
	if (row.has_waker)
		dg_wake_at_commit(DG_WAKE_WAKER_AT_COMMIT);
	if (!dg_store_insert(&row))
		return dg_fail(err, DG_ERR_EXISTS, "thing \"%s\" of application \"%s\" already exists",
					   dg_thing_name(w->stored), dg_thing_application(w->stored));
	dg_notify_change("created", w->stored, w->thing);
	dg_outbox_notification(w->thing);
	dg_outbox_flush(w);
	/* later operations in the same batch compare with what was inserted */
	w->row = NULL;
	json_object_put(w->stored);
	w->stored = dg_json_copy(w->thing);
	return true;
}

Jsonb *
dg_service_create(Jsonb *input)
{
	MemoryContext caller = CurrentMemoryContext;
	DgWork	   *w = dg_work_begin(dg_now());
	DgStoreSave save;
	DgError		err;
	Jsonb	   *result;

	dg_error_clear(&err);
	w->temp = dg_jsonc_from_jsonb(input);
	w->thing = dg_thing_canonical(w->temp, w->now, &err);
	if (w->thing == NULL)
		dg_raise(&err);
	/* clients cannot create internal state: no waker, no outbox */
	json_object_object_del(w->thing, "internal");
	begin_write(dg_thing_application(w->thing), "dt_create_thing");
	dg_store_begin(&save);
	if (dg_store_exists(dg_thing_application(w->thing), dg_thing_name(w->thing)))
	{
		dg_fail(&err, DG_ERR_EXISTS, "thing \"%s\" of application \"%s\" already exists",
				dg_thing_name(w->thing), dg_thing_application(w->thing));
		dg_raise(&err);
	}
	if (!dg_work_create(w, &err))
		dg_raise(&err);
	dg_store_end(&save);
	result = to_jsonb(w->thing, caller);
	dg_work_end(w);
	return result;
}

Jsonb *
dg_service_get(const char *application, const char *name)
{
	MemoryContext caller = CurrentMemoryContext;
	DgWork	   *w;
	DgStoreSave save;
	DgRow		row;
	Jsonb	   *result = NULL;

	check_identity(application, name);
	/* an application the caller may not read has no things for it */
	if (!dg_acl_allowed(application, DG_PRIV_READ))
		return NULL;
	w = dg_work_begin(0);
	dg_store_begin(&save);
	if (dg_store_load(application, name, false, &row))
	{
		w->thing = dg_row_to_thing(&row);
		result = to_jsonb(w->thing, caller);
	}
	dg_store_end(&save);
	dg_work_end(w);
	return result;
}

static void
check_version(json_object *thing, const char *expected)
{
	const char *actual;

	if (expected == NULL)
		return;
	actual = json_object_get_string(json_object_object_get(dg_thing_section(thing, "metadata"),
														   "resourceVersion"));
	if (strcmp(actual, expected) != 0)
		ereport(ERROR,
				(errcode(MAKE_SQLSTATE('P', 'T', '4', '1', '2')),
				 errmsg("thing \"%s\" of application \"%s\" has changed",
						dg_thing_name(thing), dg_thing_application(thing)),
				 errdetail("The expected resource version is \"%s\", the current one is \"%s\".",
						   expected, actual),
				 errhint("Read the thing again and retry with its current resourceVersion.")));
}

static void
check_not_deleting(json_object *thing)
{
	if (dg_json_has(dg_thing_section(thing, "metadata"), "deletionTimestamp", NULL))
		ereport(ERROR,
				(errcode(MAKE_SQLSTATE('P', 'T', '4', '0', '4')),
				 errmsg("thing \"%s\" of application \"%s\" is being deleted",
						dg_thing_name(thing), dg_thing_application(thing))));
}

/* The op a SQL API request stands for; its payload parsed into w->temp. */
static void
request_op(DgWork *w, DgRequest *req, DgOp *op)
{
	DgError		err;

	dg_error_clear(&err);
	memset(op, 0, sizeof(*op));
	op->kind = req->kind;
	op->partial = req->partial;
	op->feature = req->feature;
	if (req->arg != NULL)
		w->temp = dg_jsonc_from_jsonb(req->arg);
	op->arg = w->temp;
	if (req->kind == DG_OP_SET_DESIRED_VALUES)
	{
		/* dt_set_desired_value: one feature, an optional validity */
		json_object *values = json_object_new_object();
		json_object *v = json_object_new_object();

		dg_json_set(v, "value", w->temp);
		if (req->has_valid_until)
			dg_json_set(v, "validUntil",
						dg_time_json(dg_time_from_timestamptz(req->valid_until)));
		dg_json_set(values, req->feature, v);
		w->temp = values;
		op->arg = values;
	}
}

Jsonb *
dg_service_update(DgRequest *req)
{
	MemoryContext caller = CurrentMemoryContext;
	DgWork	   *w;
	DgStoreSave save;
	DgError		err;
	DgOp		op;
	Jsonb	   *result;

	w = dg_work_begin(dg_now());
	dg_error_clear(&err);
	request_op(w, req, &op);
	if (req->kind == DG_OP_REPLACE)
	{
		/* a full replace names its thing in its own metadata */
		json_object *md;

		if (w->temp == NULL || json_object_get_type(w->temp) != json_type_object ||
			!dg_json_has(w->temp, "metadata", &md) ||
			json_object_get_type(md) != json_type_object)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a thing must have \"metadata\" with \"application\" and \"name\"")));
		req->application = json_object_get_string(json_object_object_get(md, "application"));
		req->name = json_object_get_string(json_object_object_get(md, "name"));
	}
	check_identity(req->application, req->name);
	begin_write(req->application, dg_op_name(req->kind));
	dg_store_begin(&save);
	if (!dg_work_load(w, req->application, req->name))
		raise_not_found(req->application, req->name);
	check_version(w->thing, req->expected_version);
	check_not_deleting(w->thing);
	if (!dg_work_apply(w, &op, &err))
		dg_raise(&err);
	dg_work_persist(w);
	dg_store_end(&save);
	result = to_jsonb(w->thing, caller);
	dg_work_end(w);
	return result;
}

bool
dg_service_delete(const char *application, const char *name, const char *expected_version)
{
	DgWork	   *w;
	DgStoreSave save;
	DgError		err;
	bool		deleted = false;

	check_identity(application, name);
	begin_write(application, "dt_delete_thing");
	w = dg_work_begin(dg_now());
	dg_error_clear(&err);
	dg_store_begin(&save);
	if (dg_work_load(w, application, name))
	{
		check_version(w->thing, expected_version);
		if (!dg_work_delete(w, &deleted, &err))
			dg_raise(&err);
	}
	dg_store_end(&save);
	dg_work_end(w);
	return deleted;
}

/*
 * Apply an event message as the processor does, to the thing loaded into
 * w (w->thing NULL: it does not exist).  The caller persists afterwards;
 * creation and deletion write at once.  False with err for an event that
 * cannot be applied; w is then as before.
 */
bool
dg_work_event(DgWork *w, const char *application, const char *name,
			  DgOp *op, DgError *err)
{
	bool		deleting = w->thing != NULL &&
		dg_json_has(dg_thing_section(w->thing, "metadata"), "deletionTimestamp", NULL);

	switch (op->kind)
	{
		case DG_OP_REGISTER_CHILD:
			if (w->thing == NULL)
			{
				/* the only operation that creates a thing implicitly */
				w->thing = dg_thing_new(application, name);
				if (!dg_op_apply(&w->thing, op, w->now, err))
				{
					json_object_put(w->thing);
					w->thing = NULL;
					return false;
				}
				return dg_work_create(w, err);
			}
			break;
		case DG_OP_UNREGISTER_CHILD:
			if (w->thing == NULL || deleting)
				return true;
			/* find out on a copy whether the last child goes */
			w->next = json_object_get(w->thing);
			if (!dg_op_apply(&w->next, op, w->now, err))
			{
				json_object_put(w->next);
				w->next = NULL;
				return false;
			}
			json_object_put(w->next);
			w->next = NULL;
			if (op->delete_requested)
			{
				bool		deleted;

				return dg_work_delete(w, &deleted, err);
			}
			break;
		default:
			break;
	}
	if (w->thing == NULL)
		return dg_fail(err, DG_ERR_NOT_FOUND,
					   "thing \"%s\" of application \"%s\" does not exist", name, application);
	if (deleting)
		return dg_fail(err, DG_ERR_NOT_FOUND,
					   "thing \"%s\" of application \"%s\" is being deleted", name, application);
	return dg_work_apply(w, op, err);
}

Jsonb *
dg_service_process_event(const char *application, const char *name, Jsonb *message)
{
	MemoryContext caller = CurrentMemoryContext;
	DgWork	   *w;
	DgStoreSave save;
	DgError		err;
	DgOp		op;
	Jsonb	   *result = NULL;

	check_identity(application, name);
	if (message == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the event message must not be null")));
	begin_write(application, "dt_process_event");
	w = dg_work_begin(dg_now());
	dg_error_clear(&err);
	w->temp = dg_jsonc_from_jsonb(message);
	if (!dg_op_from_message(w->temp, &op, &err))
		dg_raise(&err);
	dg_store_begin(&save);
	dg_work_load(w, application, name);
	if (!dg_work_event(w, application, name, &op, &err))
		dg_raise(&err);
	dg_work_persist(w);
	/* a deleted thing reads as NULL, as dt_get_thing would */
	if (w->thing != NULL && !w->deleted &&
		!dg_json_has(dg_thing_section(w->thing, "metadata"), "deletionTimestamp", NULL))
		result = to_jsonb(w->thing, caller);
	dg_store_end(&save);
	dg_work_end(w);
	return result;
}

typedef struct ListState
{
	void		(*emit) (Jsonb *thing, void *arg);
	void	   *arg;
	MemoryContext caller;
	DgWork	   *w;
} ListState;

static void
list_row(DgRow *row, void *arg)
{
	ListState  *state = (ListState *) arg;
	Jsonb	   *jb;

	state->w->temp = dg_row_to_thing(row);
	jb = to_jsonb(state->w->temp, state->caller);
	json_object_put(state->w->temp);
	state->w->temp = NULL;
	state->emit(jb, state->arg);
}

void
dg_service_list(const char *application, const char *selector_text,
				void (*emit) (Jsonb *thing, void *arg), void *arg)
{
	ListState	state;
	DgSelector	selector;
	DgStoreSave save;
	DgError		err;

	dg_error_clear(&err);
	if (application == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("application must not be null")));
	if (!dg_check_application(application, &err))
		dg_raise(&err);
	dg_selector_parse(selector_text, &selector);
	if (!dg_acl_allowed(application, DG_PRIV_READ))
		return;

	state.emit = emit;
	state.arg = arg;
	state.caller = CurrentMemoryContext;
	state.w = dg_work_begin(0);
	dg_store_begin(&save);
	dg_store_list(application, &selector, list_row, &state);
	dg_store_end(&save);
	dg_work_end(state.w);
}
