/*-------------------------------------------------------------------------
 *
 * machine.c
 *		The reconciliation machine: synthetics, changed hooks, timers,
 *		reported timestamps, system metadata and schema (reference §3.4-§3.9).
 *
 * The machine only transforms json-c trees.  Code (JavaScript or a SQL
 * function) runs through the DgRunHook callback that the edge supplies, so
 * this file never touches SPI and its unit tests need no database.
 *
 * Port decisions taken here, all documented in the README:
 * - hooks, timers and synthetics run in name order (byte order), because
 *   jsonb does not keep the order in which keys were written;
 * - a hook cannot change the reconciliation section (upstream restores only
 *   the hook's own entry); this keeps code installation on the API path,
 *   where the configuring role is recorded;
 * - timers keep the logs of their last run in lastLog.
 *
 * src/machine.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg.h"

const char *
dg_action_name(DgHookAction action)
{
	switch (action)
	{
		case DG_ACTION_CHANGED:
			return "changed";
		case DG_ACTION_TIMER:
			return "timer";
		case DG_ACTION_DELETING:
			return "deleting";
		case DG_ACTION_SYNTHETIC:
			return "synthetic";
		case DG_ACTION_DESIRED:
			return "desiredReconciliation";
	}
	return "unknown";
}

void
dg_machine_init(DgMachine *m, dg_time now)
{
	memset(m, 0, sizeof(*m));
	m->now = now;
	/* outbox and commands are made when first needed: most runs have none */
}

void
dg_machine_reset(DgMachine *m)
{
	json_object_put(m->outbox);
	json_object_put(m->commands);
	m->outbox = NULL;
	m->commands = NULL;
}

static bool
run_hook(DgMachine *m, DgHookAction action, const char *kind, const char *name,
		 json_object *code, json_object *context, json_object **result, DgError *err)
{
	DgHookCall	call;

	*result = NULL;
	if (m->run_hook == NULL)
		return dg_fail(err, DG_ERR_HOOK, "%s \"%s\": no hook runner is available", kind, name);
	call.action = action;
	call.kind = kind;
	call.name = name;
	call.code = code;
	call.context = context;
	if (!m->run_hook(m->hook_arg, &call, result, err))
		return false;
	if (*result == NULL || json_object_get_type(*result) != json_type_object)
	{
		json_object_put(*result);
		*result = NULL;
		return dg_fail(err, DG_ERR_HOOK, "%s \"%s\" did not return a context object", kind, name);
	}
	return true;
}

/* The context of changed, timer and deleting hooks (§3.6). */
static json_object *
hook_context(DgHookAction action, json_object *current, json_object *thing)
{
	json_object *ctx = json_object_new_object();

	/* shared, not copied: runners serialize and never modify their input */
	dg_json_set(ctx, "currentState", json_object_get(current));
	dg_json_set(ctx, "newState", json_object_get(thing));
	dg_json_set(ctx, "action", json_object_new_string(dg_action_name(action)));
	dg_json_set(ctx, "outbox", json_object_new_array());
	dg_json_set(ctx, "logs", json_object_new_array());
	return ctx;
}

/* Collect a hook's outbox: [{thing, message}] addressed to own application. */
static bool
take_outbox(DgMachine *m, json_object *result, const char *kind, const char *name,
			DgError *err)
{
	json_object *outbox;

	if (!dg_json_has(result, "outbox", &outbox) || outbox == NULL)
		return true;
	if (json_object_get_type(outbox) != json_type_array)
		return dg_fail(err, DG_ERR_HOOK, "%s \"%s\": context.outbox must be an array", kind, name);
	for (size_t i = 0; i < json_object_array_length(outbox); i++)
	{
		json_object *entry = json_object_array_get_idx(outbox, i);
		json_object *target,
				   *message,
				   *out;
		DgOp		op;

		if (!dg_json_has(entry, "thing", &target) ||
			json_object_get_type(target) != json_type_string ||
			!dg_json_has(entry, "message", &message))
			return dg_fail(err, DG_ERR_HOOK,
						   "%s \"%s\": outbox entry %zu must be {thing: \"name\", message: {...}}",
						   kind, name, i);
		if (!dg_check_name(json_object_get_string(target), err) ||
			!dg_op_from_message(message, &op, err))
		{
			dg_error_prefix(err, "%s \"%s\": outbox entry %zu", kind, name, i);
			err->kind = DG_ERR_HOOK;
			return false;
		}
		out = json_object_new_object();
		dg_json_set(out, "thing", json_object_get(target));
		dg_json_set(out, "message", dg_json_copy(message));
		if (m->outbox == NULL)
			m->outbox = json_object_new_array();
		json_object_array_add(m->outbox, out);
	}
	return true;
}

static bool
take_waker(DgMachine *m, json_object *result, json_object *thing,
		   const char *kind, const char *name, DgError *err)
{
	json_object *waker;
	int64_t		delay;
	bool		present;

	if (!dg_json_has(result, "waker", &waker))
		return true;
	if (!dg_delay_from_json(waker, &delay, &present))
		return dg_fail(err, DG_ERR_HOOK,
					   "%s \"%s\": context.waker must be a duration such as \"1s\" or a number of seconds",
					   kind, name);
	if (present)
		dg_waker_request(thing, m->now + delay, DG_WAKE_RECONCILE);
	return true;
}

static json_object *
take_logs(json_object *result)
{
	json_object *logs,
			   *out;

	if (!dg_json_has(result, "logs", &logs) ||
		json_object_get_type(logs) != json_type_array ||
		json_object_array_length(logs) == 0)
		return NULL;
	out = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(logs); i++)
	{
		json_object *l = json_object_array_get_idx(logs, i);

		json_object_array_add(out, json_object_get_type(l) == json_type_string ?
							   json_object_get(l) :
							   json_object_new_string(dg_json_text(l, NULL)));
	}
	return out;
}

/*
 * Run one changed or timer hook and make its newState the working thing.
 * Returns the hook's logs through *logs (may be NULL).
 */
static bool
run_state_hook(DgMachine *m, DgHookAction action, const char *kind, const char *name,
			   json_object *code, json_object *current, json_object **thing,
			   json_object **logs, DgError *err)
{
	json_object *ctx = hook_context(action, current, *thing);
	json_object *result;
	json_object *new_state;
	json_object *rec;

	*logs = NULL;
	if (!run_hook(m, action, kind, name, code, ctx, &result, err))
	{
		json_object_put(ctx);
		return false;
	}
	json_object_put(ctx);
	if (dg_json_has(result, "newState", &new_state) && new_state != NULL)
	{
		json_object *canon = dg_thing_canonical(new_state, m->now, err);

		if (canon == NULL)
		{
			json_object_put(result);
			dg_error_prefix(err, "%s \"%s\" returned an invalid newState", kind, name);
			err->kind = DG_ERR_HOOK;
			return false;
		}
		/* hooks cannot rewrite hooks, nor the identity */
		rec = dg_thing_section(*thing, "reconciliation");
		if (rec)
			dg_json_set(canon, "reconciliation", json_object_get(rec));
		else
			json_object_object_del(canon, "reconciliation");
		dg_thing_restore_system(canon, *thing);
		json_object_put(*thing);
		*thing = canon;
	}
	if (!take_outbox(m, result, kind, name, err) ||
		!take_waker(m, result, *thing, kind, name, err))
	{
		json_object_put(result);
		return false;
	}
	*logs = take_logs(result);
	json_object_put(result);
	return true;
}

/* §3.7: synthetics from a snapshot taken before any of them is computed. */
static bool
compute_synthetics(DgMachine *m, json_object *thing, DgError *err)
{
	json_object *map = dg_thing_section(thing, "syntheticState");
	json_object *snapshot;
	const char **names;
	size_t		n;
	bool		ok = true;

	if (dg_json_object_size(map) == 0)
		return true;
	snapshot = dg_json_copy(thing);
	names = dg_json_sorted_keys(map, &n);
	for (size_t i = 0; i < n && ok; i++)
	{
		json_object *feature = json_object_object_get(map, names[i]);
		json_object *alias,
				   *old,
				   *value = NULL;

		if (dg_json_has(feature, "alias", &alias))
		{
			json_object *src;

			if (dg_json_has(dg_thing_section(snapshot, "reportedState"),
							json_object_get_string(alias), &src))
				dg_json_has(src, "value", &value);
			value = dg_json_copy(value);
		}
		else
		{
			json_object *ctx = json_object_new_object();
			json_object *result;

			dg_json_set(ctx, "newState", json_object_get(snapshot));
			dg_json_set(ctx, "action", json_object_new_string("synthetic"));
			ok = run_hook(m, DG_ACTION_SYNTHETIC, "synthetic", names[i], feature, ctx,
						  &result, err);
			json_object_put(ctx);
			if (!ok)
				break;
			dg_json_has(result, "value", &value);
			value = dg_json_copy(value);
			json_object_put(result);
		}
		dg_json_has(feature, "value", &old);
		if (!dg_json_equal(old, value))
		{
			dg_json_set(feature, "value", value);
			dg_json_set(feature, "lastUpdate", dg_time_json(m->now));
		}
		else
			json_object_put(value);
	}
	free(names);
	json_object_put(snapshot);
	return ok;
}

/* §3.8: changed hooks, on every processing. */
static bool
run_changed_hooks(DgMachine *m, json_object *current, json_object **thing, DgError *err)
{
	json_object *hooks = json_object_object_get(dg_thing_section(*thing, "reconciliation"),
												"changed");
	const char **names;
	size_t		n;
	bool		ok = true;

	if (dg_json_object_size(hooks) == 0)
		return true;
	/* keep the hook definitions alive across the working thing's replacement */
	hooks = dg_json_copy(hooks);
	names = dg_json_sorted_keys(hooks, &n);
	for (size_t i = 0; i < n && ok; i++)
	{
		json_object *logs;
		json_object *entry;

		ok = run_state_hook(m, DG_ACTION_CHANGED, "changed hook", names[i],
							json_object_object_get(hooks, names[i]), current, thing,
							&logs, err);
		if (!ok)
			break;
		entry = json_object_object_get(json_object_object_get(
															  dg_thing_section(*thing, "reconciliation"), "changed"), names[i]);
		if (logs && entry)
			dg_json_set(entry, "lastLog", logs);
		else
			json_object_put(logs);
	}
	free(names);
	json_object_put(hooks);
	return ok;
}

static bool
timer_time(json_object *timer, const char *key, dg_time *out)
{
	json_object *v;

	*out = DG_NO_TIME;
	return dg_json_has(timer, key, &v) && dg_time_parse(json_object_get_string(v), out);
}

/* The first boundary lastStarted + k * period strictly after t (§3.9). */
static dg_time
next_boundary(dg_time started, int64_t period, dg_time t)
{
	if (t < started)
		return started;
	return started + ((t - started) / period + 1) * period;
}

/* §3.9: timers. */
static bool
run_timers(DgMachine *m, json_object *current, json_object **thing, DgError *err)
{
	json_object *timers = json_object_object_get(dg_thing_section(*thing, "reconciliation"),
												 "timers");
	const char **names;
	size_t		n;
	bool		ok = true;

	if (dg_json_object_size(timers) == 0)
		return true;
	names = dg_json_sorted_keys(timers, &n);
	for (size_t i = 0; i < n && ok; i++)
	{
		json_object *timer;
		json_object *v;
		dg_time		started,
					last_run,
					due,
					next;
		int64_t		period,
					delay = -1;
		json_object *logs = NULL;

		/* the working thing may have been replaced by an earlier timer */
		timer = json_object_object_get(json_object_object_get(
															  dg_thing_section(*thing, "reconciliation"), "timers"), names[i]);
		if (timer == NULL)
			continue;
		if (dg_json_has(timer, "stopped", &v) && json_object_get_boolean(v))
		{
			json_object_object_del(timer, "lastStarted");
			continue;
		}
		if (!dg_duration_parse(json_object_get_string(json_object_object_get(timer, "period")),
							   &period) || period <= 0)
		{
			ok = dg_fail(err, DG_ERR_INVALID, "timer \"%s\": period must be greater than zero",
						 names[i]);
			break;
		}
		if (dg_json_has(timer, "initialDelay", &v))
			dg_duration_parse(json_object_get_string(v), &delay);
		if (!timer_time(timer, "lastStarted", &started))
		{
			started = m->now;
			dg_json_set(timer, "lastStarted", dg_time_json(started));
		}
		if (timer_time(timer, "lastRun", &last_run))
			due = last_run < started ? m->now : next_boundary(started, period, last_run);
		else if (delay < 0)
			due = m->now;
		else
			due = started + delay;

		if (m->now >= due)
		{
			json_object *code = dg_json_copy(timer);

			ok = run_state_hook(m, DG_ACTION_TIMER, "timer", names[i], code, current,
								thing, &logs, err);
			json_object_put(code);
			if (!ok)
				break;
			timer = json_object_object_get(json_object_object_get(
																  dg_thing_section(*thing, "reconciliation"), "timers"), names[i]);
			dg_json_set(timer, "lastRun", dg_time_json(m->now));
			if (logs)
				dg_json_set(timer, "lastLog", logs);
			else
				json_object_object_del(timer, "lastLog");
			next = next_boundary(started, period, m->now);
		}
		else
			next = due;
		dg_waker_request(*thing, next, DG_WAKE_RECONCILE);
	}
	free(names);
	return ok;
}

/* §2.5: lastUpdate of a reported feature moves only when its value does. */
static void
normalize_reported(json_object *current, json_object *thing, dg_time now)
{
	json_object *old = dg_thing_section(current, "reportedState");
	json_object *map = dg_thing_section(thing, "reportedState");

	if (dg_json_object_size(old) == 0 || dg_json_object_size(map) == 0)
		return;
	json_object_object_foreach(map, key, feature)
	{
		json_object *prev,
				   *pv,
				   *nv,
				   *ts;

		if (!dg_json_has(old, key, &prev) || prev == NULL)
			continue;
		dg_json_has(prev, "value", &pv);
		dg_json_has(feature, "value", &nv);
		if (dg_json_equal(pv, nv))
		{
			if (dg_json_has(prev, "lastUpdate", &ts))
				dg_json_set(feature, "lastUpdate", json_object_get(ts));
		}
		else
			dg_json_set(feature, "lastUpdate", dg_time_json(now));
	}
}

bool
dg_machine_validate(json_object *thing, DgError *err)
{
	json_object *schema = dg_thing_section(thing, "schema");
	json_object *def;
	DgSchema   *compiled;
	json_object *view;
	bool		ok;

	if (schema == NULL)
		return true;
	def = json_object_object_get(json_object_object_get(schema, "json"), "schema");
	compiled = dg_schema_compile(def, err);
	if (compiled == NULL)
		return false;
	view = dg_thing_state_view(thing);
	ok = dg_schema_validate(compiled, view, err);
	json_object_put(view);
	dg_schema_free(compiled);
	return ok;
}

bool
dg_machine_reconcile(DgMachine *m, json_object *current, json_object **thing, DgError *err)
{
	json_object *changed;

	/* §3.5 step 1: every run must ask again for the wake-ups it needs */
	dg_waker_clear(*thing, DG_WAKE_RECONCILE);
	changed = json_object_object_get(dg_thing_section(*thing, "reconciliation"), "changed");
	if (dg_json_object_size(changed) > 0)
	{
		json_object_object_foreach(changed, name, hook)
		{
			(void) name;
			json_object_object_del(hook, "lastLog");
		}
	}

	if (!compute_synthetics(m, *thing, err) ||
		!run_changed_hooks(m, current, thing, err) ||
		!run_timers(m, current, thing, err) ||
		!dg_desired_reconcile(m, current, *thing, err))
		return false;
	normalize_reported(current, *thing, m->now);
	dg_thing_restore_system(*thing, current);
	dg_thing_prune(*thing);
	return dg_machine_validate(*thing, err);
}

bool
dg_machine_deleting(DgMachine *m, json_object *thing, DgError *err)
{
	json_object *hooks = json_object_object_get(dg_thing_section(thing, "reconciliation"),
												"deleting");
	const char **names;
	size_t		n;
	bool		ok = true;

	if (dg_json_object_size(hooks) == 0)
		return true;
	names = dg_json_sorted_keys(hooks, &n);
	for (size_t i = 0; i < n && ok; i++)
	{
		json_object *ctx = hook_context(DG_ACTION_DELETING, thing, thing);
		json_object *result;

		ok = run_hook(m, DG_ACTION_DELETING, "deleting hook", names[i],
					  json_object_object_get(hooks, names[i]), ctx, &result, err);
		json_object_put(ctx);
		if (!ok)
			break;
		/* only the outbox counts; other changes are ignored, as upstream */
		ok = take_outbox(m, result, "deleting hook", names[i], err);
		json_object_put(result);
	}
	free(names);
	return ok;
}
