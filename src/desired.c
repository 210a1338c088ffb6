/*-------------------------------------------------------------------------
 *
 * desired.c
 *		Desired-state reconciliation: the sync state machine (reference
 *		§3.10.1) and the methods manual, external, command (§8.2) and code
 *		(§3.10.3).
 *
 * Commands are collected in the machine as {device, channel, payload}
 * objects; the payload is the JSON value to send.  Unlike upstream, the
 * code method's commands carry the payload its script gives.
 *
 * src/desired.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg.h"

static json_object *
get(json_object *obj, const char *key)
{
	json_object *v = NULL;

	dg_json_has(obj, key, &v);
	return v;
}

static const char *
get_str(json_object *obj, const char *key)
{
	json_object *v = get(obj, key);

	return json_object_get_type(v) == json_type_string ? json_object_get_string(v) : NULL;
}

static dg_time
get_time(json_object *obj, const char *key)
{
	dg_time		t;
	const char *s = get_str(obj, key);

	return s && dg_time_parse(s, &t) ? t : DG_NO_TIME;
}

/* The reconciliation state; a missing one counts as reconciling. */
static const char *
state_of(json_object *feature)
{
	const char *s = get_str(get(feature, "reconciliation"), "state");

	return s ? s : "reconciling";
}

static void
set_state(json_object *feature, const char *state, dg_time when, const char *reason)
{
	json_object *rec = json_object_new_object();

	dg_json_set(rec, "state", json_object_new_string(state));
	if (when != DG_NO_TIME)
		dg_json_set(rec, "when", dg_time_json(when));
	if (reason)
		dg_json_set(rec, "reason", json_object_new_string(reason));
	dg_json_set(feature, "reconciliation", rec);
}

/* The value to compare with: synthetic first, then reported, else null. */
static json_object *
reported_value(json_object *thing, const char *name)
{
	json_object *f;

	if (dg_json_has(dg_thing_section(thing, "syntheticState"), name, &f) && f != NULL)
		return get(f, "value");
	if (dg_json_has(dg_thing_section(thing, "reportedState"), name, &f) && f != NULL)
		return get(f, "value");
	return NULL;
}

static const char *
annotation(json_object *thing, const char *key)
{
	return get_str(get(dg_thing_section(thing, "metadata"), "annotations"), key);
}

/* §3.10.1: the sync step of one feature. */
static void
sync_feature(DgMachine *m, json_object *current, json_object *thing,
			 const char *name, json_object *feature)
{
	json_object *prev = get(dg_thing_section(current, "desiredState"), name);
	const char *mode = get_str(feature, "mode");
	const char *method = get_str(feature, "method");
	const char *state;
	json_object *actual = reported_value(thing, name);
	bool		equal;
	dg_time		until = get_time(feature, "validUntil");
	bool		valid = until == DG_NO_TIME || until > m->now;

	if (mode == NULL)
		mode = "sync";
	if (prev != NULL &&
		(!dg_json_equal(get(prev, "value"), get(feature, "value")) ||
		 !dg_json_equal(get(prev, "validUntil"), get(feature, "validUntil"))))
	{
		set_state(feature, "reconciling", DG_NO_TIME, NULL);
		dg_json_set(feature, "lastUpdate", dg_time_json(m->now));
	}
	if (method && strcmp(method, "manual") == 0)
		return;

	state = state_of(feature);
	equal = dg_json_equal(actual, get(feature, "value"));
	if (strcmp(mode, "disabled") == 0)
	{
		if (strcmp(state, "disabled") != 0)
			set_state(feature, "disabled", m->now, NULL);
	}
	else if (strcmp(state, "disabled") == 0)
	{
		if (equal)
			set_state(feature, "succeeded", m->now, NULL);
		else if (valid)
			set_state(feature, "reconciling", DG_NO_TIME, NULL);
		else
			set_state(feature, "failed", m->now, "Activated reconciliation with expired value");
	}
	else if (strcmp(state, "succeeded") == 0)
	{
		if (strcmp(mode, "sync") == 0 && !equal && valid)
		{
			set_state(feature, "reconciling", DG_NO_TIME, NULL);
			if (until != DG_NO_TIME)
				dg_waker_request(thing, until, DG_WAKE_RECONCILE);
		}
	}
	else if (strcmp(state, "reconciling") == 0)
	{
		if (equal)
			set_state(feature, "succeeded", m->now, NULL);
		else if (until != DG_NO_TIME && until <= m->now)
			set_state(feature, "failed", m->now, NULL);
		else if (until != DG_NO_TIME)
			dg_waker_request(thing, until, DG_WAKE_RECONCILE);
	}
	/* failed stays failed until value, validUntil or mode change it */
}

static void
add_command(DgMachine *m, const char *device, const char *channel, json_object *payload)
{
	json_object *cmd = json_object_new_object();

	dg_json_set(cmd, "device", json_object_new_string(device));
	dg_json_set(cmd, "channel", json_object_new_string(channel));
	dg_json_set(cmd, "payload", payload);
	if (m->commands == NULL)
		m->commands = json_object_new_array();
	json_object_array_add(m->commands, cmd);
}

/* Aggregate {feature: value} per device, then channel: aggregates[device][channel]. */
static void
aggregate(json_object *aggregates, const char *device, const char *channel,
		  const char *name, json_object *value)
{
	json_object *channels = dg_json_ensure_object(aggregates, device);
	json_object *agg = dg_json_ensure_object(channels, channel);

	dg_json_set(agg, name, dg_json_copy(value));
}

/* §8.2: the command method of a reconciling feature. */
static void
command_method(DgMachine *m, json_object *thing, const char *name,
			   json_object *feature, json_object *cmd, json_object *aggregates)
{
	json_object *rec = dg_json_ensure_object(feature, "reconciliation");
	dg_time		last = get_time(rec, "lastAttempt");
	int64_t		period = 0;
	bool		active = get_str(cmd, "mode") && strcmp(get_str(cmd, "mode"), "active") == 0;
	json_object *enc = get(cmd, "encoding");
	const char *device = annotation(thing, "drogue.io/device");
	const char *channel_annotation = annotation(thing, "drogue.io/channel");
	json_object *value = get(feature, "value");

	dg_duration_parse(get_str(cmd, "period"), &period);
	if (last != DG_NO_TIME && last + period > m->now)
	{
		if (active)
			dg_waker_request(thing, last + period, DG_WAKE_RECONCILE);
		return;
	}
	dg_json_set(rec, "lastAttempt", dg_time_json(m->now));
	if (active)
		dg_waker_request(thing, m->now + period, DG_WAKE_RECONCILE);
	if (device == NULL)
		device = dg_thing_name(thing);

	if (enc != NULL && json_object_get_type(enc) == json_type_object)
	{
		json_object *remap = get(enc, "remap");

		if (remap)
			aggregate(aggregates, get_str(remap, "device"), get_str(remap, "channel"),
					  name, value);
		else
			aggregate(aggregates, device, get_str(enc, "channel"), name, value);
	}
	else if (enc == NULL && channel_annotation != NULL)
		aggregate(aggregates, device, channel_annotation, name, value);
	else
		add_command(m, device, name, dg_json_copy(value));
}

/* §3.10.3: the code method, with the script's payload kept. */
static bool
code_method(DgMachine *m, json_object *thing, const char *name,
			json_object *feature, json_object *code, DgError *err)
{
	json_object *rec = dg_json_ensure_object(feature, "reconciliation");
	json_object *ctx = json_object_new_object();
	json_object *result = NULL;
	json_object *commands,
			   *waker;
	DgHookCall	call;
	int64_t		delay;
	bool		present;

	dg_json_set(ctx, "value", dg_json_copy(get(feature, "value")));
	dg_json_set(ctx, "action", json_object_new_string("desiredReconciliation"));
	if (get(rec, "lastAttempt"))
		dg_json_set(ctx, "lastAttempt", json_object_get(get(rec, "lastAttempt")));
	call.action = DG_ACTION_DESIRED;
	call.kind = "desired state code";
	call.name = name;
	call.code = code;
	call.context = ctx;
	if (m->run_hook == NULL)
	{
		json_object_put(ctx);
		return dg_fail(err, DG_ERR_HOOK, "desired state code \"%s\": no hook runner is available",
					   name);
	}
	if (!m->run_hook(m->hook_arg, &call, &result, err))
	{
		json_object_put(ctx);
		return false;
	}
	json_object_put(ctx);
	if (dg_json_has(result, "waker", &waker))
	{
		if (!dg_delay_from_json(waker, &delay, &present))
		{
			json_object_put(result);
			return dg_fail(err, DG_ERR_HOOK,
						   "desired state code \"%s\": context.waker must be a duration", name);
		}
		if (present)
			dg_waker_request(thing, m->now + delay, DG_WAKE_RECONCILE);
	}
	if (dg_json_has(result, "commands", &commands) && commands != NULL)
	{
		const char *device = annotation(thing, "drogue.io/device");

		if (json_object_get_type(commands) != json_type_array)
		{
			json_object_put(result);
			return dg_fail(err, DG_ERR_HOOK,
						   "desired state code \"%s\": context.commands must be an array", name);
		}
		if (json_object_array_length(commands) > 0)
			dg_json_set(rec, "lastAttempt", dg_time_json(m->now));
		for (size_t i = 0; i < json_object_array_length(commands); i++)
		{
			json_object *c = json_object_array_get_idx(commands, i);
			const char *channel = get_str(c, "channel");
			const char *dev = get_str(c, "device");

			if (channel == NULL)
			{
				json_object_put(result);
				return dg_fail(err, DG_ERR_HOOK,
							   "desired state code \"%s\": command %zu needs a \"channel\"", name, i);
			}
			add_command(m, dev ? dev : device ? device : dg_thing_name(thing), channel,
						dg_json_copy(get(c, "payload")));
		}
	}
	json_object_put(result);
	return true;
}

bool
dg_desired_reconcile(DgMachine *m, json_object *current, json_object *thing, DgError *err)
{
	json_object *map = dg_thing_section(thing, "desiredState");
	json_object *aggregates;
	const char **names;
	size_t		n;
	bool		ok = true;

	if (dg_json_object_size(map) == 0)
		return true;
	names = dg_json_sorted_keys(map, &n);
	for (size_t i = 0; i < n; i++)
		sync_feature(m, current, thing, names[i], json_object_object_get(map, names[i]));

	aggregates = json_object_new_object();
	for (size_t i = 0; i < n && ok; i++)
	{
		json_object *feature = json_object_object_get(map, names[i]);
		json_object *method = get(feature, "method");
		const char *state = state_of(feature);

		if (strcmp(state, "reconciling") != 0 ||
			json_object_get_type(method) != json_type_object)
			continue;
		if (get(method, "command"))
			command_method(m, thing, names[i], feature, get(method, "command"), aggregates);
		else if (get(method, "code"))
			ok = code_method(m, thing, names[i], feature, get(method, "code"), err);
	}
	if (ok)
	{
		/* aggregates go after the single commands, ordered by device, then channel */
		const char **devices = dg_json_sorted_keys(aggregates, &n);

		for (size_t i = 0; i < n; i++)
		{
			json_object *channels = json_object_object_get(aggregates, devices[i]);
			size_t		nc;
			const char **names_c = dg_json_sorted_keys(channels, &nc);

			for (size_t j = 0; j < nc; j++)
				add_command(m, devices[i], names_c[j],
							json_object_get(json_object_object_get(channels, names_c[j])));
			free(names_c);
		}
		free(devices);
	}
	free(names);
	json_object_put(aggregates);
	return ok;
}
