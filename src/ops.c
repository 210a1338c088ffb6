/*-------------------------------------------------------------------------
 *
 * ops.c
 *		Operations on a thing: the reference's "updaters" (§2.3) and the
 *		SQL API's own edits.
 *
 * Each operation is a pure function from one canonical thing to the next.
 * Operations that take structured input from outside (merge, patch, full
 * replace, hook and desired definitions) end with a canonicalization,
 * which is also where their input is checked; the others keep the thing
 * canonical by construction.  Every operation works on a copy, so a failure
 * leaves the caller's thing untouched.
 *
 * src/ops.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg.h"

static const struct
{
	const char *name;
	DgOpKind	kind;
}			message_kinds[] = {
	{"reportState", DG_OP_REPORT_STATE},
	{"merge", DG_OP_MERGE},
	{"patch", DG_OP_PATCH},
	{"setDesiredValue", DG_OP_SET_DESIRED_VALUES},
	{"wakeup", DG_OP_WAKEUP},
	{"registerChild", DG_OP_REGISTER_CHILD},
	{"unregisterChild", DG_OP_UNREGISTER_CHILD},
};

const char *
dg_op_name(DgOpKind kind)
{
	switch (kind)
	{
		case DG_OP_REPLACE:
			return "replace";
		case DG_OP_ANNOTATIONS:
			return "annotations";
		case DG_OP_LABELS:
			return "labels";
		case DG_OP_SYNTHETIC_PUT:
			return "set synthetic state";
		case DG_OP_SYNTHETIC_DELETE:
			return "delete synthetic state";
		case DG_OP_DESIRED_PUT:
			return "set desired state";
		case DG_OP_RECONCILIATION_PUT:
			return "set reconciliation";
		default:
			for (size_t i = 0; i < sizeof(message_kinds) / sizeof(message_kinds[0]); i++)
				if (message_kinds[i].kind == kind)
					return message_kinds[i].name;
	}
	return "unknown";
}

static bool
child_ref(json_object *body, const char *what, json_object **ref, DgError *err)
{
	if (!dg_json_has(body, "$ref", ref) || json_object_get_type(*ref) != json_type_string ||
		json_object_get_string_len(*ref) == 0)
		return dg_fail(err, DG_ERR_INVALID, "%s needs a \"$ref\" naming the child thing", what);
	return dg_check_name(json_object_get_string(*ref), err);
}

bool
dg_op_from_message(json_object *message, DgOp *op, DgError *err)
{
	json_object *body = NULL;
	const char *key = NULL;

	memset(op, 0, sizeof(*op));
	if (message == NULL || json_object_get_type(message) != json_type_object)
		return dg_fail(err, DG_ERR_INVALID, "an event message must be a JSON object, got %s",
					   dg_json_type_name(message));
	if (json_object_object_length(message) != 1)
		return dg_fail(err, DG_ERR_INVALID,
					   "an event message must have exactly one member naming the operation");
	json_object_object_foreach(message, k, v)
	{
		key = k;
		body = v;
	}
	for (size_t i = 0; i < sizeof(message_kinds) / sizeof(message_kinds[0]); i++)
	{
		if (strcmp(key, message_kinds[i].name) != 0)
			continue;
		op->kind = message_kinds[i].kind;
		op->arg = body;
		switch (op->kind)
		{
			case DG_OP_REPORT_STATE:
				{
					json_object *state,
							   *partial;

					if (json_object_get_type(body) != json_type_object ||
						!dg_json_has(body, "state", &state) ||
						json_object_get_type(state) != json_type_object)
						return dg_fail(err, DG_ERR_INVALID,
									   "reportState needs {\"state\": {...}, \"partial\": true|false}");
					if (dg_json_has(body, "partial", &partial) && partial != NULL &&
						json_object_get_type(partial) != json_type_boolean)
						return dg_fail(err, DG_ERR_INVALID, "reportState.partial must be a boolean");
					op->arg = state;
					op->partial = partial != NULL && json_object_get_boolean(partial);
					return true;
				}
			case DG_OP_MERGE:
				if (json_object_get_type(body) != json_type_object)
					return dg_fail(err, DG_ERR_INVALID, "merge needs a JSON object");
				return true;
			case DG_OP_PATCH:
				if (json_object_get_type(body) != json_type_array)
					return dg_fail(err, DG_ERR_INVALID, "patch needs a JSON array of operations");
				return true;
			case DG_OP_SET_DESIRED_VALUES:
				{
					json_object *values;

					if (!dg_json_has(body, "values", &values) ||
						json_object_get_type(values) != json_type_object)
						return dg_fail(err, DG_ERR_INVALID,
									   "setDesiredValue needs {\"values\": {...}}");
					op->arg = values;
					return true;
				}
			case DG_OP_WAKEUP:
				return true;
			case DG_OP_REGISTER_CHILD:
			case DG_OP_UNREGISTER_CHILD:
				{
					json_object *ref,
							   *tmpl;

					if (json_object_get_type(body) != json_type_object)
						return dg_fail(err, DG_ERR_INVALID, "%s needs an object", key);
					if (!child_ref(body, key, &ref, err))
						return false;
					if (op->kind == DG_OP_REGISTER_CHILD &&
						dg_json_has(body, "template", &tmpl) && tmpl != NULL &&
						json_object_get_type(tmpl) != json_type_object)
						return dg_fail(err, DG_ERR_INVALID, "registerChild.template must be an object");
					return true;
				}
			default:
				break;
		}
	}
	return dg_fail(err, DG_ERR_INVALID,
				   "unknown event message \"%s\"; expected one of reportState, merge, patch, setDesiredValue, wakeup, registerChild, unregisterChild",
				   key);
}

/* reportState (§2.3.1) */
static bool
report_state(json_object *thing, DgOp *op, dg_time now)
{
	json_object *old = dg_thing_section(thing, "reportedState");
	json_object *map;

	if (op->partial)
	{
		map = dg_thing_ensure(thing, "reportedState");
		json_object_object_foreach(op->arg, key, value)
		{
			json_object *feature;

			if (dg_json_has(map, key, &feature) && feature != NULL)
			{
				json_object *v;

				dg_json_has(feature, "value", &v);
				if (!dg_json_equal(v, value))
					dg_json_set(feature, "value", dg_json_copy(value));
				continue;
			}
			feature = json_object_new_object();
			dg_json_set(feature, "lastUpdate", dg_time_json(now));
			dg_json_set(feature, "value", dg_json_copy(value));
			dg_json_set(map, key, feature);
		}
		return true;
	}
	map = json_object_new_object();
	json_object_object_foreach(op->arg, key, value)
	{
		json_object *feature,
				   *v;

		if (dg_json_has(old, key, &feature) && feature != NULL &&
			dg_json_has(feature, "value", &v) && dg_json_equal(v, value))
		{
			dg_json_set(map, key, json_object_get(feature));
			continue;
		}
		feature = json_object_new_object();
		dg_json_set(feature, "lastUpdate", dg_time_json(now));
		dg_json_set(feature, "value", dg_json_copy(value));
		dg_json_set(map, key, feature);
	}
	dg_json_set(thing, "reportedState", map);
	return true;
}

/*
 * setDesiredValue (§2.3.5): a plain value, or {"value": X, "validUntil"?,
 * "validFor"?}.  Every feature must exist.
 */
static bool
set_desired_values(json_object *thing, json_object *values, dg_time now, DgError *err)
{
	json_object *desired = dg_thing_section(thing, "desiredState");
	char		unknown[512] = "";

	json_object_object_foreach(values, key, val)
	{
		if (!dg_json_has(desired, key, NULL))
		{
			size_t		len = strlen(unknown);

			snprintf(unknown + len, sizeof(unknown) - len, "%s\"%s\"", len ? ", " : "", key);
		}
	}
	if (unknown[0])
	{
		dg_fail(err, DG_ERR_INVALID, "unknown desired features: [%s]", unknown);
		dg_error_detail(err, "A desired value can only be set on a feature that exists in desiredState.");
		return false;
	}
	json_object_object_foreach(values, name, v)
	{
		json_object *feature;
		json_object *value = v;
		json_object *until = NULL;
		json_object *valid_for = NULL;
		dg_time		t = DG_NO_TIME;

		dg_json_has(desired, name, &feature);
		/* an object with a "value" member is the long form; anything else is the value */
		if (v != NULL && json_object_get_type(v) == json_type_object &&
			dg_json_has(v, "value", NULL))
		{
			dg_json_has(v, "value", &value);
			dg_json_has(v, "validUntil", &until);
			dg_json_has(v, "validFor", &valid_for);
			if (until != NULL && valid_for != NULL)
				return dg_fail(err, DG_ERR_INVALID,
							   "desired value of \"%s\" has both validUntil and validFor", name);
			if (until != NULL &&
				(json_object_get_type(until) != json_type_string ||
				 !dg_time_parse(json_object_get_string(until), &t)))
				return dg_fail(err, DG_ERR_INVALID,
							   "validUntil of \"%s\" must be an RFC 3339 timestamp", name);
			if (valid_for != NULL)
			{
				int64_t		d;

				if (json_object_get_type(valid_for) != json_type_string ||
					!dg_duration_parse(json_object_get_string(valid_for), &d))
					return dg_fail(err, DG_ERR_INVALID,
								   "validFor of \"%s\" must be a duration such as \"1m\"", name);
				t = now + d;
			}
		}
		dg_json_set(feature, "value", dg_json_copy(value));
		if (t != DG_NO_TIME)
			dg_json_set(feature, "validUntil", dg_time_json(t));
		else
			json_object_object_del(feature, "validUntil");
	}
	return true;
}

/* Annotations and labels: a string sets, null removes (§2.3.8). */
static bool
set_string_map(json_object *thing, const char *key, json_object *changes, DgError *err)
{
	json_object *md = dg_thing_ensure(thing, "metadata");
	json_object *map;

	if (changes == NULL || json_object_get_type(changes) != json_type_object)
		return dg_fail(err, DG_ERR_INVALID, "%s must be a JSON object of strings", key);
	json_object_object_foreach(changes, name, val)
	{
		if (val != NULL && json_object_get_type(val) != json_type_string)
			return dg_fail(err, DG_ERR_INVALID, "%s.%s must be a string or null, got %s",
						   key, name, dg_json_type_name(val));
	}
	map = dg_json_ensure_object(md, key);
	json_object_object_foreach(changes, k, v)
	{
		if (v == NULL)
			json_object_object_del(map, k);
		else
			dg_json_set(map, k, json_object_get(v));
	}
	if (json_object_object_length(map) == 0)
		json_object_object_del(md, key);
	return true;
}

/* Synthetic put: replace the type and code only, keep value and timestamp. */
static bool
synthetic_put(json_object *thing, DgOp *op, dg_time now, DgError *err)
{
	json_object *map = dg_thing_ensure(thing, "syntheticState");
	json_object *old,
			   *def = json_object_new_object();
	json_object *v;

	if (op->arg == NULL || json_object_get_type(op->arg) != json_type_object)
	{
		json_object_put(def);
		return dg_fail(err, DG_ERR_INVALID,
					   "a synthetic feature needs {\"javaScript\": ...}, {\"function\": ...} or {\"alias\": ...}");
	}
	json_object_object_foreach(op->arg, key, val)
	{
		if (strcmp(key, "javaScript") == 0 || strcmp(key, "alias") == 0 ||
			strcmp(key, "function") == 0)
			dg_json_set(def, key, dg_json_copy(val));
	}
	if (dg_json_has(map, op->feature, &old) && old != NULL)
	{
		dg_json_has(old, "lastUpdate", &v);
		dg_json_set(def, "lastUpdate", dg_json_copy(v));
		dg_json_has(old, "value", &v);
		dg_json_set(def, "value", dg_json_copy(v));
	}
	else
	{
		dg_json_set(def, "lastUpdate", dg_time_json(now));
		dg_json_set(def, "value", NULL);
	}
	dg_json_set(map, op->feature, def);
	return true;
}

/* Desired put (DesiredStateUpdate, §2.3.8). */
static bool
desired_put(json_object *thing, DgOp *op, dg_time now, DgError *err)
{
	static const char *const fields[] = {"value", "mode", "reconciliation", "method"};
	json_object *map = dg_thing_ensure(thing, "desiredState");
	json_object *feature,
			   *until,
			   *valid_for;
	dg_time		t = DG_NO_TIME;

	if (op->arg == NULL || json_object_get_type(op->arg) != json_type_object)
		return dg_fail(err, DG_ERR_INVALID, "a desired state update must be a JSON object");
	json_object_object_foreach(op->arg, key, val)
	{
		(void) val;
		if (strcmp(key, "value") != 0 && strcmp(key, "validUntil") != 0 &&
			strcmp(key, "validFor") != 0 && strcmp(key, "mode") != 0 &&
			strcmp(key, "reconciliation") != 0 && strcmp(key, "method") != 0)
			return dg_fail(err, DG_ERR_INVALID,
						   "unknown member \"%s\" in a desired state update; expected value, validUntil, validFor, mode, reconciliation or method",
						   key);
	}
	if (dg_json_has(op->arg, "validUntil", &until) && until != NULL)
	{
		if (json_object_get_type(until) != json_type_string ||
			!dg_time_parse(json_object_get_string(until), &t))
			return dg_fail(err, DG_ERR_INVALID, "validUntil must be an RFC 3339 timestamp");
	}
	else if (dg_json_has(op->arg, "validFor", &valid_for) && valid_for != NULL)
	{
		int64_t		d;

		if (json_object_get_type(valid_for) != json_type_string ||
			!dg_duration_parse(json_object_get_string(valid_for), &d))
			return dg_fail(err, DG_ERR_INVALID, "validFor must be a duration such as \"1m\"");
		t = now + d;
	}
	if (!dg_json_has(map, op->feature, &feature) || feature == NULL)
	{
		feature = json_object_new_object();
		dg_json_set(feature, "value", NULL);
		dg_json_set(feature, "lastUpdate", dg_time_json(now));
		dg_json_set(map, op->feature, feature);
	}
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
	{
		json_object *v;

		if (dg_json_has(op->arg, fields[i], &v))
			dg_json_set(feature, fields[i], dg_json_copy(v));
	}
	/* as upstream, validUntil is always overwritten */
	if (t != DG_NO_TIME)
		dg_json_set(feature, "validUntil", dg_time_json(t));
	else
		json_object_object_del(feature, "validUntil");
	return true;
}

/* registerChild (§2.3.6): add to $children, merge the template's hooks. */
static bool
register_child(json_object *thing, DgOp *op, dg_time now, DgError *err)
{
	json_object *ref,
			   *tmpl,
			   *feature,
			   *children;
	json_object *reported = dg_thing_ensure(thing, "reportedState");

	if (!child_ref(op->arg, "registerChild", &ref, err))
		return false;
	if (!dg_json_has(reported, "$children", &feature) || feature == NULL ||
		!dg_json_has(feature, "value", &children) ||
		json_object_get_type(children) != json_type_object)
	{
		feature = json_object_new_object();
		dg_json_set(feature, "lastUpdate", dg_time_json(now));
		children = json_object_new_object();
		dg_json_set(feature, "value", children);
		dg_json_set(reported, "$children", feature);
	}
	dg_json_set(children, json_object_get_string(ref), NULL);
	if (dg_json_has(op->arg, "template", &tmpl) && tmpl != NULL)
	{
		json_object *trec;
		static const char *const parts[] = {"changed", "timers", "deleting"};

		if (dg_json_has(tmpl, "reconciliation", &trec) && trec != NULL)
		{
			json_object *rec;

			if (json_object_get_type(trec) != json_type_object)
				return dg_fail(err, DG_ERR_INVALID,
							   "registerChild.template.reconciliation must be an object");
			rec = dg_thing_ensure(thing, "reconciliation");
			for (size_t i = 0; i < 3; i++)
			{
				json_object *src,
						   *dst;

				if (!dg_json_has(trec, parts[i], &src) || src == NULL)
					continue;
				if (json_object_get_type(src) != json_type_object)
					return dg_fail(err, DG_ERR_INVALID,
								   "registerChild.template.reconciliation.%s must be an object",
								   parts[i]);
				dst = dg_json_ensure_object(rec, parts[i]);
				json_object_object_foreach(src, name, hook)
					dg_json_set(dst, name, dg_json_copy(hook));
			}
		}
	}
	return true;
}

/* unregisterChild (§2.3.7): remove; request deletion when no child is left. */
static bool
unregister_child(json_object *thing, DgOp *op, DgError *err)
{
	json_object *ref,
			   *feature,
			   *children = NULL;
	json_object *reported = dg_thing_section(thing, "reportedState");

	if (!child_ref(op->arg, "unregisterChild", &ref, err))
		return false;
	if (dg_json_has(reported, "$children", &feature) && feature != NULL &&
		dg_json_has(feature, "value", &children) &&
		json_object_get_type(children) == json_type_object)
		json_object_object_del(children, json_object_get_string(ref));
	op->delete_requested =
		children == NULL ||
		(json_object_get_type(children) == json_type_object &&
		 json_object_object_length(children) == 0) ||
		(json_object_get_type(children) == json_type_array &&
		 json_object_array_length(children) == 0) ||
		(json_object_get_type(children) != json_type_object &&
		 json_object_get_type(children) != json_type_array);
	return true;
}

/* Full replace: everything from the body except internal, which is kept. */
static bool
replace_thing(json_object **thing, DgOp *op, dg_time now, DgError *err)
{
	json_object *repl,
			   *internal;

	repl = dg_thing_canonical(op->arg, now, err);
	if (repl == NULL)
		return false;
	/* unlike upstream, pending outbox events and the waker survive */
	json_object_object_del(repl, "internal");
	if (dg_json_has(*thing, "internal", &internal) && internal != NULL)
		dg_json_set(repl, "internal", json_object_get(internal));
	json_object_put(*thing);
	*thing = repl;
	return true;
}

static bool
apply_to(json_object **thing, DgOp *op, dg_time now, DgError *err)
{
	switch (op->kind)
	{
		case DG_OP_REPORT_STATE:
			return report_state(*thing, op, now);
		case DG_OP_MERGE:
			return dg_merge_apply(thing, op->arg, err);
		case DG_OP_PATCH:
			return dg_patch_apply(thing, op->arg, err);
		case DG_OP_SET_DESIRED_VALUES:
			return set_desired_values(*thing, op->arg, now, err);
		case DG_OP_WAKEUP:
			return true;
		case DG_OP_REGISTER_CHILD:
			return register_child(*thing, op, now, err);
		case DG_OP_UNREGISTER_CHILD:
			return unregister_child(*thing, op, err);
		case DG_OP_REPLACE:
			return replace_thing(thing, op, now, err);
		case DG_OP_ANNOTATIONS:
			return set_string_map(*thing, "annotations", op->arg, err);
		case DG_OP_LABELS:
			return set_string_map(*thing, "labels", op->arg, err);
		case DG_OP_SYNTHETIC_PUT:
			return synthetic_put(*thing, op, now, err);
		case DG_OP_SYNTHETIC_DELETE:
			json_object_object_del(dg_thing_ensure(*thing, "syntheticState"), op->feature);
			return true;
		case DG_OP_DESIRED_PUT:
			return desired_put(*thing, op, now, err);
		case DG_OP_RECONCILIATION_PUT:
			if (op->arg != NULL && json_object_get_type(op->arg) != json_type_object)
				return dg_fail(err, DG_ERR_INVALID,
							   "reconciliation must be {\"changed\"?, \"timers\"?, \"deleting\"?}");
			dg_json_set(*thing, "reconciliation", dg_json_copy(op->arg));
			return true;
	}
	return dg_fail(err, DG_ERR_INTERNAL, "unknown operation");
}

/* Whether the op can leave the thing outside canonical form. */
static bool
needs_canonical(DgOpKind kind)
{
	switch (kind)
	{
		case DG_OP_REPORT_STATE:
		case DG_OP_SET_DESIRED_VALUES:
		case DG_OP_WAKEUP:
		case DG_OP_UNREGISTER_CHILD:
		case DG_OP_ANNOTATIONS:
		case DG_OP_LABELS:
		case DG_OP_SYNTHETIC_DELETE:
		case DG_OP_REPLACE:
			return false;
		default:
			return true;
	}
}

bool
dg_op_apply(json_object **thing, DgOp *op, dg_time now, DgError *err)
{
	json_object *work = dg_json_copy(*thing);

	op->delete_requested = false;
	if (!apply_to(&work, op, now, err))
	{
		json_object_put(work);
		return false;
	}
	if (needs_canonical(op->kind))
	{
		json_object *canon;

		/* a merge or patch may have touched the identity; put it back first */
		if (json_object_get_type(work) != json_type_object)
		{
			json_object_put(work);
			return dg_fail(err, DG_ERR_INVALID, "%s: the result must be a JSON object",
						   dg_op_name(op->kind));
		}
		dg_thing_restore_system(work, *thing);
		canon = dg_thing_canonical(work, now, err);

		json_object_put(work);
		if (canon == NULL)
		{
			dg_error_prefix(err, "%s", dg_op_name(op->kind));
			return false;
		}
		work = canon;
	}
	else
		dg_thing_prune(work);
	json_object_put(*thing);
	*thing = work;
	return true;
}
