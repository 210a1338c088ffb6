/*-------------------------------------------------------------------------
 *
 * thing.c
 *		The thing model: checking, canonical form, system metadata, the waker.
 *
 * A thing travels through the pipeline as a json-c tree in the reference's
 * camelCase shape.  Rather than mirror every section in C structs, each
 * input (a client's thing, the result of a merge or patch, a script's
 * newState) is rebuilt section by section into canonical form: known keys
 * only, every field checked, defaults filled in, timestamps normalized and
 * empty sections dropped.  Two canonical things are then equal exactly when
 * they mean the same, which is what change detection needs.
 *
 * src/thing.c
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg.h"

static const char *const system_fields[] = {
	"uid", "creationTimestamp", "deletionTimestamp", "generation", "resourceVersion"
};

/* Count UTF-8 code points; PostgreSQL has already checked the encoding. */
static size_t
utf8_length(const char *s)
{
	size_t		n = 0;

	for (; *s; s++)
		if (((unsigned char) *s & 0xC0) != 0x80)
			n++;
	return n;
}

static bool
check_identifier(const char *what, const char *value, size_t maxlen,
				 bool allow_slash, DgError *err)
{
	size_t		len;

	if (value == NULL || value[0] == '\0')
		return dg_fail(err, DG_ERR_INVALID, "%s must not be empty", what);
	len = utf8_length(value);
	if (len > maxlen)
		return dg_fail(err, DG_ERR_INVALID,
					   "%s is too long: %zu characters, at most %zu are allowed",
					   what, len, maxlen);
	for (const unsigned char *p = (const unsigned char *) value; *p; p++)
	{
		if (*p < 0x20 || *p == 0x7F)
			return dg_fail(err, DG_ERR_INVALID,
						   "%s must not contain control characters", what);
		if (!allow_slash && (*p == '/' || isspace(*p)))
			return dg_fail(err, DG_ERR_INVALID,
						   "%s \"%s\" must not contain \"/\" or white space", what, value);
	}
	return true;
}

bool
dg_check_application(const char *application, DgError *err)
{
	return check_identifier("application name", application,
							DG_MAX_APPLICATION_LEN, false, err);
}

bool
dg_check_name(const char *name, DgError *err)
{
	return check_identifier("thing name", name, DG_MAX_NAME_LEN, true, err);
}

/* ---- field checkers: each appends a canonical copy to "out" ---- */

static bool
put_time(json_object *out, const char *key, json_object *value,
		 const char *path, DgError *err)
{
	dg_time		t;

	if (json_object_get_type(value) != json_type_string ||
		!dg_time_parse(json_object_get_string(value), &t))
		return dg_fail(err, DG_ERR_INVALID,
					   "%s.%s must be an RFC 3339 timestamp, got %s", path, key,
					   dg_json_text(value, NULL));
	dg_json_set(out, key, dg_time_json(t));
	return true;
}

/* Copy an optional timestamp; "null" means absent. */
static bool
opt_time(json_object *out, json_object *in, const char *key,
		 const char *path, DgError *err)
{
	json_object *v;

	if (!dg_json_has(in, key, &v) || v == NULL)
		return true;
	return put_time(out, key, v, path, err);
}

static bool
put_duration(json_object *out, const char *key, json_object *value,
			 bool positive, const char *path, DgError *err)
{
	int64_t		ns;
	char		buf[128];

	if (json_object_get_type(value) != json_type_string ||
		!dg_duration_parse(json_object_get_string(value), &ns))
		return dg_fail(err, DG_ERR_INVALID,
					   "%s.%s must be a duration such as \"30s\" or \"1h 30m\", got %s",
					   path, key, dg_json_text(value, NULL));
	if (positive && ns <= 0)
		return dg_fail(err, DG_ERR_INVALID, "%s.%s must be greater than zero", path, key);
	dg_duration_format(ns, buf);
	dg_json_set(out, key, json_object_new_string(buf));
	return true;
}

static bool
put_string(json_object *out, const char *key, json_object *value,
		   const char *path, DgError *err)
{
	if (json_object_get_type(value) != json_type_string)
		return dg_fail(err, DG_ERR_INVALID, "%s.%s must be a string, got %s",
					   path, key, dg_json_type_name(value));
	dg_json_set(out, key, json_object_get(value));
	return true;
}

static bool
require_object(json_object *value, const char *path, DgError *err)
{
	if (value == NULL || json_object_get_type(value) != json_type_object)
		return dg_fail(err, DG_ERR_INVALID, "%s must be an object, got %s",
					   path, dg_json_type_name(value));
	return true;
}

/* A map of string values; a null value drops the key. */
static bool
canonical_string_map(json_object *in, const char *path, json_object **out,
					 DgError *err)
{
	json_object *map;

	*out = NULL;
	if (in == NULL)
		return true;
	if (!require_object(in, path, err))
		return false;
	map = json_object_new_object();
	json_object_object_foreach(in, key, val)
	{
		if (val == NULL)
			continue;
		if (json_object_get_type(val) != json_type_string)
		{
			json_object_put(map);
			return dg_fail(err, DG_ERR_INVALID, "%s.%s must be a string, got %s",
						   path, key, dg_json_type_name(val));
		}
		dg_json_set(map, key, json_object_get(val));
	}
	*out = map;
	return true;
}

/* "name" or "schema.name", each an unquoted SQL identifier. */
static bool
function_name_ok(const char *name)
{
	int			parts = 0;
	const char *p = name;

	for (;;)
	{
		const char *start = p;

		if (!(isalpha((unsigned char) *p) || *p == '_'))
			return false;
		while (isalnum((unsigned char) *p) || *p == '_' || *p == '$')
			p++;
		if (p - start > 63)
			return false;
		parts++;
		if (*p == '\0')
			return true;
		if (*p != '.' || parts == 2)
			return false;
		p++;
	}
}

/*
 * Code is {"javaScript": "..."} or {"function": "schema.fn"}, plus the
 * system-kept "owner" (the role that configured it).
 */
static bool
put_code(json_object *out, json_object *in, const char *path, DgError *err)
{
	json_object *js,
			   *fn,
			   *owner;
	bool		has_js = dg_json_has(in, "javaScript", &js);
	bool		has_fn = dg_json_has(in, "function", &fn);

	if (has_js == has_fn)
		return dg_fail(err, DG_ERR_INVALID,
					   "%s must have exactly one of \"javaScript\" or \"function\"", path);
	if (has_js && !put_string(out, "javaScript", js, path, err))
		return false;
	if (has_fn)
	{
		const char *name;

		if (!put_string(out, "function", fn, path, err))
			return false;
		name = json_object_get_string(fn);
		if (!function_name_ok(name))
			return dg_fail(err, DG_ERR_INVALID,
						   "%s.function must name a function as \"schema.name\" or \"name\" (unquoted identifiers), got \"%s\"",
						   path, name);
	}
	if (dg_json_has(in, "owner", &owner) && owner != NULL &&
		!put_string(out, "owner", owner, path, err))
		return false;
	return true;
}

static bool
put_logs(json_object *out, json_object *in, const char *path, DgError *err)
{
	json_object *logs;

	if (!dg_json_has(in, "lastLog", &logs) || logs == NULL)
		return true;
	if (json_object_get_type(logs) != json_type_array)
		return dg_fail(err, DG_ERR_INVALID, "%s.lastLog must be an array of strings", path);
	if (json_object_array_length(logs) == 0)
		return true;
	for (size_t i = 0; i < json_object_array_length(logs); i++)
		if (json_object_get_type(json_object_array_get_idx(logs, i)) != json_type_string)
			return dg_fail(err, DG_ERR_INVALID, "%s.lastLog must be an array of strings", path);
	dg_json_set(out, "lastLog", dg_json_copy(logs));
	return true;
}

/*
 * Canonicalize every entry of a map section with "fn".  The result is NULL
 * when the section is absent, null or empty.
 */
typedef bool (*entry_fn) (json_object *entry, const char *path, dg_time now,
						  json_object **out, DgError *err);

static bool
canonical_map(json_object *in, const char *section, entry_fn fn, dg_time now,
			  json_object **out, DgError *err)
{
	json_object *map;
	char		path[512];

	*out = NULL;
	if (in == NULL)
		return true;
	if (!require_object(in, section, err))
		return false;
	if (json_object_object_length(in) == 0)
		return true;
	map = json_object_new_object();
	json_object_object_foreach(in, key, val)
	{
		json_object *entry;

		snprintf(path, sizeof(path), "%s.%s", section, key);
		if (!require_object(val, path, err) || !fn(val, path, now, &entry, err))
		{
			json_object_put(map);
			return false;
		}
		dg_json_set(map, key, entry);
	}
	*out = map;
	return true;
}

static bool
reported_entry(json_object *in, const char *path, dg_time now,
			   json_object **out, DgError *err)
{
	json_object *value,
			   *ts;
	json_object *o;

	if (!dg_json_has(in, "value", &value))
		return dg_fail(err, DG_ERR_INVALID,
					   "%s must be an object with a \"value\" member", path);
	o = json_object_new_object();
	if (dg_json_has(in, "lastUpdate", &ts) && ts != NULL)
	{
		if (!put_time(o, "lastUpdate", ts, path, err))
		{
			json_object_put(o);
			return false;
		}
	}
	else
		dg_json_set(o, "lastUpdate", dg_time_json(now));
	dg_json_set(o, "value", dg_json_copy(value));
	*out = o;
	return true;
}

static bool
synthetic_entry(json_object *in, const char *path, dg_time now,
				json_object **out, DgError *err)
{
	json_object *alias,
			   *value,
			   *ts;
	json_object *o = json_object_new_object();
	bool		has_alias = dg_json_has(in, "alias", &alias);

	if (has_alias == (dg_json_has(in, "javaScript", NULL) || dg_json_has(in, "function", NULL)))
	{
		json_object_put(o);
		return dg_fail(err, DG_ERR_INVALID,
					   "%s must have exactly one of \"javaScript\", \"function\" or \"alias\"", path);
	}
	if (has_alias ? !put_string(o, "alias", alias, path, err) : !put_code(o, in, path, err))
	{
		json_object_put(o);
		return false;
	}
	if (dg_json_has(in, "lastUpdate", &ts) && ts != NULL)
	{
		if (!put_time(o, "lastUpdate", ts, path, err))
		{
			json_object_put(o);
			return false;
		}
	}
	else
		dg_json_set(o, "lastUpdate", dg_time_json(now));
	dg_json_has(in, "value", &value);
	dg_json_set(o, "value", dg_json_copy(value));
	*out = o;
	return true;
}

static bool
desired_reconciliation(json_object *o, json_object *in, const char *path,
					   dg_time now, DgError *err)
{
	json_object *rec = json_object_new_object();
	json_object *state;
	const char *s;
	char		rpath[512];

	dg_json_set(o, "reconciliation", rec);
	if (in == NULL)
	{
		dg_json_set(rec, "state", json_object_new_string("reconciling"));
		return true;
	}
	snprintf(rpath, sizeof(rpath), "%s.reconciliation", path);
	if (!require_object(in, rpath, err))
		return false;
	if (!dg_json_has(in, "state", &state) || json_object_get_type(state) != json_type_string)
		return dg_fail(err, DG_ERR_INVALID,
					   "%s.state must be one of \"reconciling\", \"succeeded\", \"failed\", \"disabled\"",
					   rpath);
	s = json_object_get_string(state);
	dg_json_set(rec, "state", json_object_get(state));
	if (strcmp(s, "reconciling") == 0)
		return opt_time(rec, in, "lastAttempt", rpath, err);
	if (strcmp(s, "succeeded") == 0 || strcmp(s, "failed") == 0 ||
		strcmp(s, "disabled") == 0)
	{
		json_object *when,
				   *reason;

		if (dg_json_has(in, "when", &when) && when != NULL)
		{
			if (!put_time(rec, "when", when, rpath, err))
				return false;
		}
		else
			dg_json_set(rec, "when", dg_time_json(now));
		if (strcmp(s, "failed") == 0 && dg_json_has(in, "reason", &reason) && reason != NULL)
			return put_string(rec, "reason", reason, rpath, err);
		return true;
	}
	return dg_fail(err, DG_ERR_INVALID,
				   "%s.state must be one of \"reconciling\", \"succeeded\", \"failed\", \"disabled\", got \"%s\"",
				   rpath, s);
}

static bool
command_encoding(json_object *out, json_object *enc, const char *path, DgError *err)
{
	json_object *ch,
			   *remap;

	if (json_object_get_type(enc) == json_type_string &&
		strcmp(json_object_get_string(enc), "raw") == 0)
	{
		dg_json_set(out, "encoding", json_object_new_string("raw"));
		return true;
	}
	if (json_object_get_type(enc) == json_type_object && json_object_object_length(enc) == 1)
	{
		json_object *e = json_object_new_object();

		dg_json_set(out, "encoding", e);
		if (dg_json_has(enc, "channel", &ch))
			return put_string(e, "channel", ch, path, err);
		if (dg_json_has(enc, "remap", &remap) &&
			json_object_get_type(remap) == json_type_object)
		{
			json_object *r = json_object_new_object();
			json_object *dev,
					   *chan;

			dg_json_set(e, "remap", r);
			if (!dg_json_has(remap, "device", &dev) || !dg_json_has(remap, "channel", &chan))
				return dg_fail(err, DG_ERR_INVALID,
							   "%s.encoding.remap needs \"device\" and \"channel\"", path);
			return put_string(r, "device", dev, path, err) &&
				put_string(r, "channel", chan, path, err);
		}
	}
	return dg_fail(err, DG_ERR_INVALID,
				   "%s.encoding must be \"raw\", {\"channel\": ...} or {\"remap\": {\"device\": ..., \"channel\": ...}}",
				   path);
}

static bool
desired_method(json_object *o, json_object *in, const char *path, DgError *err)
{
	json_object *cmd,
			   *code;
	char		mpath[512];

	snprintf(mpath, sizeof(mpath), "%s.method", path);
	if (in == NULL)
	{
		dg_json_set(o, "method", json_object_new_string("external"));
		return true;
	}
	if (json_object_get_type(in) == json_type_string)
	{
		const char *m = json_object_get_string(in);

		if (strcmp(m, "manual") == 0 || strcmp(m, "external") == 0)
		{
			dg_json_set(o, "method", json_object_get(in));
			return true;
		}
	}
	else if (json_object_get_type(in) == json_type_object &&
			 json_object_object_length(in) == 1)
	{
		json_object *m = json_object_new_object();

		dg_json_set(o, "method", m);
		if (dg_json_has(in, "command", &cmd))
		{
			json_object *c = json_object_new_object();
			json_object *v;

			dg_json_set(m, "command", c);
			snprintf(mpath, sizeof(mpath), "%s.method.command", path);
			if (!require_object(cmd, mpath, err))
				return false;
			if (!dg_json_has(cmd, "period", &v))
				return dg_fail(err, DG_ERR_INVALID, "%s.period is required", mpath);
			if (!put_duration(c, "period", v, true, mpath, err))
				return false;
			if (dg_json_has(cmd, "mode", &v) && v != NULL)
			{
				const char *mode = json_object_get_string(v);

				if (json_object_get_type(v) != json_type_string ||
					(strcmp(mode, "active") != 0 && strcmp(mode, "passive") != 0))
					return dg_fail(err, DG_ERR_INVALID,
								   "%s.mode must be \"active\" or \"passive\"", mpath);
				dg_json_set(c, "mode", json_object_get(v));
			}
			if (dg_json_has(cmd, "encoding", &v) && v != NULL)
				return command_encoding(c, v, mpath, err);
			return true;
		}
		if (dg_json_has(in, "code", &code))
		{
			json_object *c = json_object_new_object();

			dg_json_set(m, "code", c);
			snprintf(mpath, sizeof(mpath), "%s.method.code", path);
			return require_object(code, mpath, err) && put_code(c, code, mpath, err);
		}
	}
	return dg_fail(err, DG_ERR_INVALID,
				   "%s must be \"manual\", \"external\", {\"command\": ...} or {\"code\": ...}",
				   mpath);
}

static bool
desired_entry(json_object *in, const char *path, dg_time now,
			  json_object **out, DgError *err)
{
	json_object *o = json_object_new_object();
	json_object *v;

	*out = o;
	dg_json_has(in, "value", &v);
	dg_json_set(o, "value", dg_json_copy(v));
	if (dg_json_has(in, "mode", &v) && v != NULL)
	{
		const char *mode = json_object_get_string(v);

		if (json_object_get_type(v) != json_type_string ||
			(strcmp(mode, "sync") != 0 && strcmp(mode, "once") != 0 &&
			 strcmp(mode, "disabled") != 0))
			goto bad_mode;
		if (strcmp(mode, "sync") != 0)
			dg_json_set(o, "mode", json_object_get(v));
	}
	if (dg_json_has(in, "lastUpdate", &v) && v != NULL)
	{
		if (!put_time(o, "lastUpdate", v, path, err))
			goto fail;
	}
	else
		dg_json_set(o, "lastUpdate", dg_time_json(now));
	if (!opt_time(o, in, "validUntil", path, err))
		goto fail;
	dg_json_has(in, "reconciliation", &v);
	if (!desired_reconciliation(o, v, path, now, err))
		goto fail;
	dg_json_has(in, "method", &v);
	if (!desired_method(o, v, path, err))
		goto fail;
	return true;

bad_mode:
	dg_fail(err, DG_ERR_INVALID, "%s.mode must be \"sync\", \"once\" or \"disabled\"", path);
fail:
	json_object_put(o);
	*out = NULL;
	return false;
}

static bool
changed_entry(json_object *in, const char *path, dg_time now,
			  json_object **out, DgError *err)
{
	json_object *o = json_object_new_object();

	(void) now;
	if (!put_code(o, in, path, err) || !put_logs(o, in, path, err))
	{
		json_object_put(o);
		return false;
	}
	*out = o;
	return true;
}

static bool
deleting_entry(json_object *in, const char *path, dg_time now,
			   json_object **out, DgError *err)
{
	json_object *o = json_object_new_object();

	(void) now;
	if (!put_code(o, in, path, err))
	{
		json_object_put(o);
		return false;
	}
	*out = o;
	return true;
}

static bool
timer_entry(json_object *in, const char *path, dg_time now,
			json_object **out, DgError *err)
{
	json_object *o = json_object_new_object();
	json_object *v;

	(void) now;
	*out = NULL;
	if (!put_code(o, in, path, err))
		goto fail;
	if (!dg_json_has(in, "period", &v) || v == NULL)
	{
		dg_fail(err, DG_ERR_INVALID, "%s.period is required", path);
		goto fail;
	}
	if (!put_duration(o, "period", v, true, path, err))
		goto fail;
	if (dg_json_has(in, "stopped", &v) && v != NULL &&
		json_object_get_type(v) != json_type_boolean)
	{
		dg_fail(err, DG_ERR_INVALID, "%s.stopped must be a boolean", path);
		goto fail;
	}
	dg_json_set(o, "stopped", json_object_new_boolean(v != NULL && json_object_get_boolean(v)));
	if (dg_json_has(in, "initialDelay", &v) && v != NULL &&
		!put_duration(o, "initialDelay", v, false, path, err))
		goto fail;
	if (!opt_time(o, in, "lastStarted", path, err) ||
		!opt_time(o, in, "lastRun", path, err) ||
		!put_logs(o, in, path, err))
		goto fail;
	*out = o;
	return true;
fail:
	json_object_put(o);
	return false;
}

static bool
canonical_reconciliation(json_object *in, dg_time now, json_object **out, DgError *err)
{
	static const struct
	{
		const char *name;
		entry_fn	fn;
	}			parts[] = {
		{"changed", changed_entry}, {"timers", timer_entry}, {"deleting", deleting_entry}
	};
	json_object *rec;

	*out = NULL;
	if (in == NULL)
		return true;
	if (!require_object(in, "reconciliation", err))
		return false;
	rec = json_object_new_object();
	for (size_t i = 0; i < 3; i++)
	{
		json_object *v,
				   *m;
		char		path[64];

		snprintf(path, sizeof(path), "reconciliation.%s", parts[i].name);
		dg_json_has(in, parts[i].name, &v);
		if (!canonical_map(v, path, parts[i].fn, now, &m, err))
		{
			json_object_put(rec);
			return false;
		}
		if (m)
			dg_json_set(rec, parts[i].name, m);
	}
	if (json_object_object_length(rec) == 0)
	{
		json_object_put(rec);
		return true;
	}
	*out = rec;
	return true;
}

static bool
canonical_schema(json_object *in, json_object **out, DgError *err)
{
	json_object *js,
			   *version,
			   *schema;

	*out = NULL;
	if (in == NULL)
		return true;
	if (!require_object(in, "schema", err))
		return false;
	if (!dg_json_has(in, "json", &js) || !require_object(js, "schema.json", err))
		return dg_fail(err, DG_ERR_INVALID,
					   "schema must be {\"json\": {\"version\": \"draft7\", \"schema\": {...}}}");
	if (!dg_json_has(js, "version", &version) ||
		json_object_get_type(version) != json_type_string ||
		strcmp(json_object_get_string(version), "draft7") != 0)
		return dg_fail(err, DG_ERR_INVALID,
					   "schema.json.version must be \"draft7\", the only supported version");
	if (!dg_json_has(js, "schema", &schema) || schema == NULL ||
		(json_object_get_type(schema) != json_type_object &&
		 json_object_get_type(schema) != json_type_boolean))
		return dg_fail(err, DG_ERR_INVALID,
					   "schema.json.schema must be a JSON Schema (an object or a boolean)");
	*out = dg_json_copy(in);
	/* drop anything else inside, as for every other section */
	json_object_object_foreach(*out, key, val)
	{
		(void) val;
		if (strcmp(key, "json") != 0)
			json_object_object_del(*out, key);
	}
	return true;
}

static const char *const reason_names[] = {"reconcile", "outbox", "deletion"};

static bool
canonical_event(json_object *in, const char *path, json_object **out, DgError *err)
{
	json_object *o;
	json_object *v;
	static const char *const strings[] = {"id", "application", "thing"};

	*out = NULL;
	if (!require_object(in, path, err))
		return false;
	o = json_object_new_object();
	for (size_t i = 0; i < 3; i++)
	{
		if (!dg_json_has(in, strings[i], &v))
		{
			dg_fail(err, DG_ERR_INVALID, "%s.%s is required", path, strings[i]);
			goto fail;
		}
		if (!put_string(o, strings[i], v, path, err))
			goto fail;
	}
	if (!dg_json_has(in, "timestamp", &v))
	{
		dg_fail(err, DG_ERR_INVALID, "%s.timestamp is required", path);
		goto fail;
	}
	if (!put_time(o, "timestamp", v, path, err))
		goto fail;
	if (!dg_json_has(in, "message", &v) || v == NULL ||
		json_object_get_type(v) != json_type_object)
	{
		dg_fail(err, DG_ERR_INVALID, "%s.message must be an object", path);
		goto fail;
	}
	dg_json_set(o, "message", dg_json_copy(v));
	if (dg_json_has(in, "hops", &v) && json_object_get_type(v) == json_type_int)
		dg_json_set(o, "hops", json_object_get(v));
	*out = o;
	return true;
fail:
	json_object_put(o);
	return false;
}

static bool
canonical_internal(json_object *in, json_object **out, DgError *err)
{
	json_object *internal,
			   *waker,
			   *outbox;

	*out = NULL;
	if (in == NULL)
		return true;
	if (!require_object(in, "internal", err))
		return false;
	internal = json_object_new_object();
	if (dg_json_has(in, "waker", &waker) && waker != NULL)
	{
		json_object *when,
				   *why;
		int			mask = 0;

		if (!require_object(waker, "internal.waker", err))
			goto fail;
		dg_json_has(waker, "why", &why);
		if (why != NULL && json_object_get_type(why) != json_type_array)
		{
			dg_fail(err, DG_ERR_INVALID, "internal.waker.why must be an array");
			goto fail;
		}
		for (size_t i = 0; why && i < json_object_array_length(why); i++)
		{
			const char *r = json_object_get_string(json_object_array_get_idx(why, i));
			size_t		k;

			for (k = 0; k < 3; k++)
				if (r && strcmp(r, reason_names[k]) == 0)
					break;
			if (k == 3)
			{
				dg_fail(err, DG_ERR_INVALID,
						"internal.waker.why may hold \"reconcile\", \"outbox\" and \"deletion\" only");
				goto fail;
			}
			mask |= 1 << k;
		}
		if (dg_json_has(waker, "when", &when) && when != NULL && mask != 0)
		{
			json_object *w = json_object_new_object();
			json_object *arr;

			dg_json_set(internal, "waker", w);
			if (!put_time(w, "when", when, "internal.waker", err))
				goto fail;
			arr = json_object_new_array();
			for (int k = 0; k < 3; k++)
				if (mask & (1 << k))
					json_object_array_add(arr, json_object_new_string(reason_names[k]));
			dg_json_set(w, "why", arr);
		}
	}
	if (dg_json_has(in, "outbox", &outbox) && outbox != NULL)
	{
		json_object *arr;

		if (json_object_get_type(outbox) != json_type_array)
		{
			dg_fail(err, DG_ERR_INVALID, "internal.outbox must be an array of events");
			goto fail;
		}
		if (json_object_array_length(outbox) > 0)
		{
			arr = json_object_new_array();
			dg_json_set(internal, "outbox", arr);
			for (size_t i = 0; i < json_object_array_length(outbox); i++)
			{
				json_object *ev;
				char		path[64];

				snprintf(path, sizeof(path), "internal.outbox[%zu]", i);
				if (!canonical_event(json_object_array_get_idx(outbox, i), path, &ev, err))
					goto fail;
				json_object_array_add(arr, ev);
			}
		}
	}
	if (json_object_object_length(internal) == 0)
	{
		json_object_put(internal);
		return true;
	}
	*out = internal;
	return true;
fail:
	json_object_put(internal);
	return false;
}

static bool
canonical_metadata(json_object *in, json_object **out, DgError *err)
{
	json_object *md,
			   *v,
			   *map;

	*out = NULL;
	if (!dg_json_has(in, "metadata", &v) || v == NULL)
		return dg_fail(err, DG_ERR_INVALID, "thing must have \"metadata\" with \"application\" and \"name\"");
	if (!require_object(v, "metadata", err))
		return false;
	in = v;
	md = json_object_new_object();
	*out = md;
	if (!dg_json_has(in, "name", &v) || json_object_get_type(v) != json_type_string)
	{
		dg_fail(err, DG_ERR_INVALID, "metadata.name must be a string");
		goto fail;
	}
	if (!dg_check_name(json_object_get_string(v), err))
		goto fail;
	dg_json_set(md, "name", json_object_get(v));
	if (!dg_json_has(in, "application", &v) || json_object_get_type(v) != json_type_string)
	{
		dg_fail(err, DG_ERR_INVALID, "metadata.application must be a string");
		goto fail;
	}
	if (!dg_check_application(json_object_get_string(v), err))
		goto fail;
	dg_json_set(md, "application", json_object_get(v));
	for (size_t i = 0; i < sizeof(system_fields) / sizeof(system_fields[0]); i++)
		if (dg_json_has(in, system_fields[i], &v) && v != NULL)
			dg_json_set(md, system_fields[i], json_object_get(v));
	dg_json_has(in, "labels", &v);
	if (!canonical_string_map(v, "metadata.labels", &map, err))
		goto fail;
	if (map && json_object_object_length(map) > 0)
		dg_json_set(md, "labels", map);
	else
		json_object_put(map);
	dg_json_has(in, "annotations", &v);
	if (!canonical_string_map(v, "metadata.annotations", &map, err))
		goto fail;
	if (map && json_object_object_length(map) > 0)
		dg_json_set(md, "annotations", map);
	else
		json_object_put(map);
	return true;
fail:
	json_object_put(md);
	*out = NULL;
	return false;
}

json_object *
dg_thing_canonical(json_object *in, dg_time now, DgError *err)
{
	json_object *out;
	json_object *part;
	json_object *v;
	static const struct
	{
		const char *name;
		entry_fn	fn;
	}			maps[] = {
		{"reportedState", reported_entry},
		{"desiredState", desired_entry},
		{"syntheticState", synthetic_entry},
	};

	if (in == NULL || json_object_get_type(in) != json_type_object)
	{
		dg_fail(err, DG_ERR_INVALID, "a thing must be a JSON object, got %s",
				dg_json_type_name(in));
		return NULL;
	}
	if (!canonical_metadata(in, &part, err))
		return NULL;
	out = json_object_new_object();
	dg_json_set(out, "metadata", part);
	dg_json_has(in, "schema", &v);
	if (!canonical_schema(v, &part, err))
		goto fail;
	if (part)
		dg_json_set(out, "schema", part);
	for (size_t i = 0; i < 3; i++)
	{
		dg_json_has(in, maps[i].name, &v);
		if (!canonical_map(v, maps[i].name, maps[i].fn, now, &part, err))
			goto fail;
		if (part)
			dg_json_set(out, maps[i].name, part);
	}
	dg_json_has(in, "reconciliation", &v);
	if (!canonical_reconciliation(v, now, &part, err))
		goto fail;
	if (part)
		dg_json_set(out, "reconciliation", part);
	dg_json_has(in, "internal", &v);
	if (!canonical_internal(v, &part, err))
		goto fail;
	if (part)
		dg_json_set(out, "internal", part);
	return out;
fail:
	json_object_put(out);
	return NULL;
}

json_object *
dg_thing_new(const char *application, const char *name)
{
	json_object *thing = json_object_new_object();
	json_object *md = json_object_new_object();

	dg_json_set(md, "name", json_object_new_string(name));
	dg_json_set(md, "application", json_object_new_string(application));
	dg_json_set(thing, "metadata", md);
	return thing;
}

const char *
dg_thing_application(json_object *thing)
{
	json_object *md,
			   *v;

	if (dg_json_has(thing, "metadata", &md) && dg_json_has(md, "application", &v))
		return json_object_get_string(v);
	return NULL;
}

const char *
dg_thing_name(json_object *thing)
{
	json_object *md,
			   *v;

	if (dg_json_has(thing, "metadata", &md) && dg_json_has(md, "name", &v))
		return json_object_get_string(v);
	return NULL;
}

json_object *
dg_thing_section(json_object *thing, const char *section)
{
	json_object *v;

	dg_json_has(thing, section, &v);
	return v;
}

json_object *
dg_thing_ensure(json_object *thing, const char *section)
{
	return dg_json_ensure_object(thing, section);
}

static void
drop_if_empty(json_object *obj, const char *key)
{
	json_object *v;

	if (dg_json_has(obj, key, &v) &&
		(v == NULL ||
		 (json_object_get_type(v) == json_type_object && json_object_object_length(v) == 0) ||
		 (json_object_get_type(v) == json_type_array && json_object_array_length(v) == 0)))
		json_object_object_del(obj, key);
}

void
dg_thing_prune(json_object *thing)
{
	json_object *md,
			   *rec,
			   *internal;

	if (dg_json_has(thing, "metadata", &md))
	{
		drop_if_empty(md, "labels");
		drop_if_empty(md, "annotations");
	}
	if (dg_json_has(thing, "reconciliation", &rec) && rec != NULL)
	{
		drop_if_empty(rec, "changed");
		drop_if_empty(rec, "timers");
		drop_if_empty(rec, "deleting");
	}
	if (dg_json_has(thing, "internal", &internal) && internal != NULL)
		drop_if_empty(internal, "outbox");
	drop_if_empty(thing, "reportedState");
	drop_if_empty(thing, "desiredState");
	drop_if_empty(thing, "syntheticState");
	drop_if_empty(thing, "reconciliation");
	drop_if_empty(thing, "internal");
}

void
dg_thing_restore_system(json_object *to, json_object *from)
{
	json_object *mto = dg_json_ensure_object(to, "metadata");
	json_object *mfrom = dg_thing_section(from, "metadata");
	json_object *v;

	/* name and application are immutable as well */
	if (dg_json_has(mfrom, "name", &v))
		dg_json_set(mto, "name", json_object_get(v));
	if (dg_json_has(mfrom, "application", &v))
		dg_json_set(mto, "application", json_object_get(v));
	for (size_t i = 0; i < sizeof(system_fields) / sizeof(system_fields[0]); i++)
	{
		if (dg_json_has(mfrom, system_fields[i], &v) && v != NULL)
			dg_json_set(mto, system_fields[i], json_object_get(v));
		else
			json_object_object_del(mto, system_fields[i]);
	}
}

static void
view_values(json_object *view, json_object *thing, const char *section)
{
	json_object *map = dg_thing_section(thing, section);
	json_object *out;

	if (dg_json_object_size(map) == 0)
		return;
	out = json_object_new_object();
	json_object_object_foreach(map, key, feature)
	{
		json_object *value;

		dg_json_has(feature, "value", &value);
		dg_json_set(out, key, dg_json_copy(value));
	}
	dg_json_set(view, section, out);
}

json_object *
dg_thing_state_view(json_object *thing)
{
	json_object *view = json_object_new_object();

	dg_json_set(view, "metadata", dg_json_copy(dg_thing_section(thing, "metadata")));
	view_values(view, thing, "reportedState");
	view_values(view, thing, "desiredState");
	view_values(view, thing, "syntheticState");
	return view;
}

/* ---- the waker ---- */

static int
waker_mask(json_object *waker)
{
	json_object *why;
	int			mask = 0;

	if (!dg_json_has(waker, "why", &why) || json_object_get_type(why) != json_type_array)
		return 0;
	for (size_t i = 0; i < json_object_array_length(why); i++)
	{
		const char *r = json_object_get_string(json_object_array_get_idx(why, i));

		for (int k = 0; k < 3; k++)
			if (r && strcmp(r, reason_names[k]) == 0)
				mask |= 1 << k;
	}
	return mask;
}

static void
waker_store(json_object *thing, dg_time when, int mask)
{
	json_object *internal = dg_json_ensure_object(thing, "internal");
	json_object *w,
			   *arr;

	if (mask == 0 || when == DG_NO_TIME)
	{
		json_object_object_del(internal, "waker");
		if (json_object_object_length(internal) == 0)
			json_object_object_del(thing, "internal");
		return;
	}
	w = json_object_new_object();
	dg_json_set(w, "when", dg_time_json(when));
	arr = json_object_new_array();
	for (int k = 0; k < 3; k++)
		if (mask & (1 << k))
			json_object_array_add(arr, json_object_new_string(reason_names[k]));
	dg_json_set(w, "why", arr);
	dg_json_set(internal, "waker", w);
}

dg_time
dg_waker_when(json_object *thing)
{
	json_object *waker,
			   *when;
	dg_time		t;

	if (dg_json_has(dg_thing_section(thing, "internal"), "waker", &waker) &&
		dg_json_has(waker, "when", &when) &&
		dg_time_parse(json_object_get_string(when), &t))
		return t;
	return DG_NO_TIME;
}

void
dg_waker_request(json_object *thing, dg_time when, DgWakeReason why)
{
	json_object *waker = NULL;
	dg_time		current = dg_waker_when(thing);

	dg_json_has(dg_thing_section(thing, "internal"), "waker", &waker);
	if (current != DG_NO_TIME && current < when)
		when = current;
	waker_store(thing, when, waker_mask(waker) | (int) why);
}

void
dg_waker_clear(json_object *thing, DgWakeReason why)
{
	json_object *waker = NULL;
	int			mask;

	if (!dg_json_has(dg_thing_section(thing, "internal"), "waker", &waker))
		return;
	mask = waker_mask(waker) & ~(int) why;
	/* as upstream: "when" is not recomputed while other reasons remain */
	waker_store(thing, dg_waker_when(thing), mask);
}

/* ---- who configured the code ---- */

static void
stamp_one(json_object *code, json_object *old, const char *role, json_object *functions)
{
	json_object *owner = NULL;
	json_object *fn;

	if (code == NULL || json_object_get_type(code) != json_type_object)
		return;
	/* code that did not change keeps its owner; new or changed code is the caller's */
	if (old != NULL &&
		dg_json_equal(json_object_object_get(code, "javaScript"), json_object_object_get(old, "javaScript")) &&
		dg_json_equal(json_object_object_get(code, "function"), json_object_object_get(old, "function")) &&
		dg_json_has(old, "owner", &owner) && owner != NULL)
	{
		dg_json_set(code, "owner", json_object_get(owner));
		return;
	}
	if (!dg_json_has(code, "javaScript", NULL) && !dg_json_has(code, "function", NULL))
		return;
	dg_json_set(code, "owner", json_object_new_string(role));
	if (dg_json_has(code, "function", &fn) && functions)
		json_object_array_add(functions, json_object_get(fn));
}

static json_object *
member(json_object *obj, const char *a, const char *b)
{
	json_object *v = NULL;

	if (dg_json_has(obj, a, &v) && b)
		dg_json_has(v, b, &v);
	return v;
}

void
dg_thing_stamp_owners(json_object *thing, json_object *current, const char *role,
					  json_object *functions)
{
	static const char *const parts[] = {"changed", "timers", "deleting"};

	for (int i = 0; i < 3; i++)
	{
		json_object *hooks = member(thing, "reconciliation", parts[i]);
		json_object *old = member(current, "reconciliation", parts[i]);

		if (dg_json_object_size(hooks) == 0)
			continue;
		json_object_object_foreach(hooks, name, hook)
			stamp_one(hook, json_object_object_get(old, name), role, functions);
	}
	if (dg_json_object_size(dg_thing_section(thing, "syntheticState")) > 0)
	{
		json_object *old = dg_thing_section(current, "syntheticState");

		json_object_object_foreach(dg_thing_section(thing, "syntheticState"), name, feature)
			stamp_one(feature, json_object_object_get(old, name), role, functions);
	}
	if (dg_json_object_size(dg_thing_section(thing, "desiredState")) > 0)
	{
		json_object *old = dg_thing_section(current, "desiredState");

		json_object_object_foreach(dg_thing_section(thing, "desiredState"), name, feature)
			stamp_one(member(feature, "method", "code"),
					  member(json_object_object_get(old, name), "method", "code"), role, functions);
	}
}
