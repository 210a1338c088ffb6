/*-------------------------------------------------------------------------
 *
 * test_model.c
 *		Unit tests of the thing model and of what runs on it: timestamps and
 *		durations (src/time.c), names, canonical form, the waker and the
 *		ThingState view (src/thing.c), operations (src/ops.c), and the
 *		reconciliation machine with its desired-state step (src/machine.c,
 *		src/desired.c).
 *
 * The machine runs without a hook runner (run_hook = NULL), so only things
 * without code are reconciled here; a thing with code must then fail with
 * DG_ERR_HOOK.  Every time is fixed ("now" is 2024-01-01T00:00:00Z) so that
 * the results are deterministic.
 *
 * Test documents are written with single quotes, which J() turns into double
 * quotes before parsing: the JSON reads better than with escapes, and no
 * test value needs an apostrophe.
 *
 * test/unit/test_model.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg.h"
#include "tap.h"
#include "fixtures.h"

#define NOW_TEXT "2024-01-01T00:00:00Z"
/* an earlier time, used for stored timestamps */
#define T0 "2023-12-31T23:00:00Z"
#define MD "'metadata': {'application': 'app', 'name': 't'}"

static dg_time NOW;

static json_object *
canon(const char *text)
{
	return canon_at(text, NOW);
}

/* Canonicalize and expect a failure of the given kind. */
static void
check_canonical_error(const char *name, const char *text, DgErrorKind kind,
					  const char *want_in_message)
{
	json_object *in = J(text);
	json_object *out;
	DgError		err;

	dg_error_clear(&err);
	out = dg_thing_canonical(in, NOW, &err);
	ok(out == NULL && err.kind == kind &&
	   (want_in_message == NULL || contains(err.message, want_in_message)),
	   "canonical rejects %s", name);
	if (out != NULL)
		diag("accepted as %s", dg_json_text(out, NULL));
	else if (err.kind != kind || (want_in_message && !contains(err.message, want_in_message)))
		diag("error %d: %s", err.kind, err.message);
	json_object_put(out);
	json_object_put(in);
}

/* Canonicalize and compare with the expected canonical thing. */
static void
check_canonical(const char *name, const char *text, const char *want)
{
	json_object *in = J(text);
	json_object *out;
	DgError		err;

	dg_error_clear(&err);
	out = dg_thing_canonical(in, NOW, &err);
	if (out == NULL)
	{
		ok(false, "canonical: %s", name);
		diag("error: %s", err.message);
	}
	else
		is_json(out, want, "canonical: %s", name);
	json_object_put(out);
	json_object_put(in);
}

/* Apply an API operation to a copy of thing: the new thing, or NULL with err. */
static json_object *
apply_op(json_object *thing, DgOpKind kind, const char *feature,
		 const char *arg_text, DgError *err)
{
	json_object *work = dg_json_copy(thing);
	json_object *arg = arg_text ? J(arg_text) : NULL;
	DgOp		op;

	memset(&op, 0, sizeof(op));
	op.kind = kind;
	op.arg = arg;
	op.feature = feature;
	dg_error_clear(err);
	if (!dg_op_apply(&work, &op, NOW, err))
	{
		json_object_put(work);
		work = NULL;
	}
	json_object_put(arg);
	return work;
}

/* Apply an event message to a copy of thing. */
static json_object *
apply_msg(json_object *thing, const char *message, DgError *err, bool *delete_requested)
{
	json_object *msg = J(message);
	json_object *work = dg_json_copy(thing);
	DgOp		op;

	dg_error_clear(err);
	if (!dg_op_from_message(msg, &op, err) || !dg_op_apply(&work, &op, NOW, err))
	{
		json_object_put(work);
		work = NULL;
	}
	if (delete_requested)
		*delete_requested = work != NULL && op.delete_requested;
	json_object_put(msg);
	return work;
}

/* Apply a message to a copy of current and reconcile: the new thing or NULL. */
static json_object *
process(DgMachine *m, json_object *current, const char *message, DgError *err)
{
	json_object *msg = J(message);
	json_object *thing = dg_json_copy(current);
	DgOp		op;

	dg_error_clear(err);
	if (!dg_op_from_message(msg, &op, err) ||
		!dg_op_apply(&thing, &op, m->now, err) ||
		!dg_machine_reconcile(m, current, &thing, err))
	{
		json_object_put(thing);
		thing = NULL;
	}
	json_object_put(msg);
	return thing;
}

/*
 * One machine run at "now": the stored thing is current_text (canonical at
 * now), the message is applied to it and the result reconciled.  The machine
 * is initialized here; the caller resets it.
 */
static json_object *
run_case(DgMachine *m, const char *current_text, const char *message, dg_time now,
		 DgError *err)
{
	json_object *current = canon_at(current_text, now);
	json_object *thing;

	dg_machine_init(m, now);
	thing = process(m, current, message, err);
	if (thing == NULL)
		diag("machine failed: %s", err->message);
	json_object_put(current);
	return thing;
}

/* ---- time.c ---- */

static void
check_time(const char *in, const char *want)
{
	dg_time		t = 0;
	char		buf[64] = "(rejected)";
	bool		parsed = dg_time_parse(in, &t);

	if (parsed)
		dg_time_format(t, buf);
	ok(parsed && strcmp(buf, want) == 0, "time %s is %s", in, want);
	if (!parsed || strcmp(buf, want) != 0)
		diag("got %s", buf);
}

static void
check_time_bad(const char *in, const char *why)
{
	dg_time		t;

	ok(!dg_time_parse(in, &t), "time \"%s\" rejected (%s)", in, why);
}

static void
check_time_format(dg_time t, const char *want)
{
	char		buf[64];

	dg_time_format(t, buf);
	is_str(buf, want, "format %lld ns", (long long) t);
}

static void
test_time(void)
{
	json_object *j;

	/* normalization to UTC with Z */
	check_time("2022-01-01T01:00:00+01:00", "2022-01-01T00:00:00Z");
	check_time("2022-01-01T01:00:00Z", "2022-01-01T01:00:00Z");
	check_time("2023-12-31T19:00:00-05:00", "2024-01-01T00:00:00Z");
	check_time("2024-01-01T05:30:00+05:30", "2024-01-01T00:00:00Z");
	check_time("2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00Z");
	/* fractions: 0, 3, 6 or 9 digits as needed */
	check_time("2022-07-29T08:14:45.072140510Z", "2022-07-29T08:14:45.072140510Z");
	check_time("2022-11-09T10:00:00.5Z", "2022-11-09T10:00:00.500Z");
	check_time("2022-11-09T10:00:00.2Z", "2022-11-09T10:00:00.200Z");
	check_time("2024-01-01T00:00:00.000123Z", "2024-01-01T00:00:00.000123Z");
	check_time("2024-01-01T00:00:00.123456Z", "2024-01-01T00:00:00.123456Z");
	check_time("2024-01-01T00:00:00.1234567Z", "2024-01-01T00:00:00.123456700Z");
	check_time("2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00Z");
	check_time("2024-01-01T00:00:00.1234567899Z", "2024-01-01T00:00:00.123456789Z");
	/* calendar */
	check_time("2024-02-29T12:00:00Z", "2024-02-29T12:00:00Z");
	check_time("2000-02-29T00:00:00Z", "2000-02-29T00:00:00Z");
	check_time("1969-12-31T23:59:59Z", "1969-12-31T23:59:59Z");
	check_time("2024-12-31T23:30:00-01:00", "2025-01-01T00:30:00Z");

	check_time_bad("2024-13-01T00:00:00Z", "month 13");
	check_time_bad("2024-00-01T00:00:00Z", "month 0");
	check_time_bad("2024-02-30T00:00:00Z", "February 30");
	check_time_bad("2023-02-29T00:00:00Z", "not a leap year");
	check_time_bad("1900-02-29T00:00:00Z", "1900 is not a leap year");
	check_time_bad("2024-04-31T00:00:00Z", "April 31");
	check_time_bad("2024-01-00T00:00:00Z", "day 0");
	check_time_bad("2024-01-01T24:00:00Z", "hour 24");
	check_time_bad("2024-01-01T00:60:00Z", "minute 60");
	check_time_bad("2024-01-01T00:00:00", "missing zone");
	check_time_bad("2024-01-01", "date only");
	check_time_bad("garbage", "garbage");
	check_time_bad("", "empty");
	check_time_bad("2024-01-01T00:00:00+0100", "offset without colon");
	check_time_bad("2024-01-01T00:00:00.Z", "fraction without digits");
	check_time_bad("2024-01-01T00:00:00Zjunk", "trailing characters");
	check_time_bad("2024-1-01T00:00:00Z", "one-digit month");
	check_time_bad("2024-01-01T00:00:00+24:00", "offset hour 24");

	check_time_format(0, "1970-01-01T00:00:00Z");
	check_time_format(500 * DG_NS_PER_MS, "1970-01-01T00:00:00.500Z");
	check_time_format(123 * DG_NS_PER_US, "1970-01-01T00:00:00.000123Z");
	check_time_format(72140510, "1970-01-01T00:00:00.072140510Z");
	check_time_format(-1, "1969-12-31T23:59:59.999999999Z");
	is_int(T("1970-01-01T00:00:01Z"), DG_NS_PER_S, "parse gives nanoseconds since the epoch");
	is_int(T("2024-01-01T00:00:00.5Z") - NOW, 500 * DG_NS_PER_MS, "fraction parsed exactly");

	j = dg_time_json(NOW);
	is_str(json_object_get_string(j), NOW_TEXT, "dg_time_json gives a string");
	json_object_put(j);
}

static void
check_duration(const char *text, int64_t want)
{
	int64_t		got = -42;
	bool		parsed = dg_duration_parse(text, &got);

	ok(parsed && got == want, "duration \"%s\" is %lld ns", text, (long long) want);
	if (!parsed || got != want)
		diag("got %s %lld", parsed ? "" : "(rejected)", (long long) got);
}

static void
check_duration_bad(const char *text)
{
	int64_t		got;

	ok(!dg_duration_parse(text, &got), "duration \"%s\" rejected", text);
}

static void
check_duration_format(int64_t ns, const char *want)
{
	char		buf[128];

	dg_duration_format(ns, buf);
	is_str(buf, want, "duration %lld ns formats as \"%s\"", (long long) ns, want);
}

static void
test_duration(void)
{
	const int64_t s = DG_NS_PER_S;

	check_duration("1m", 60 * s);
	check_duration("30s", 30 * s);
	check_duration("1h 30m", 5400 * s);
	check_duration("1h30m", 5400 * s);
	check_duration("500ms", 500 * DG_NS_PER_MS);
	check_duration("2days", 172800 * s);
	check_duration("1day", 86400 * s);
	check_duration("1d", 86400 * s);
	check_duration("1w", 604800 * s);
	check_duration("1M", 2630016 * s);
	check_duration("1y", 31557600 * s);
	check_duration("2 min", 120 * s);
	check_duration("1sec", s);
	check_duration("3 hours", 3 * 3600 * s);
	check_duration("100us", 100 * DG_NS_PER_US);
	check_duration("7ns", 7);
	check_duration("1h 1m 1s 1ms", 3661 * s + DG_NS_PER_MS);
	check_duration("0s", 0);

	check_duration_bad("1x");
	check_duration_bad("");
	check_duration_bad("   ");
	check_duration_bad("s");
	check_duration_bad("1");
	check_duration_bad("1.5h");
	check_duration_bad("-1s");
	check_duration_bad("1h,30m");
	check_duration_bad("1 parsec");
	check_duration_bad("1S");

	check_duration_format(90 * s, "1m 30s");
	check_duration_format(0, "0s");
	check_duration_format(86400 * s, "1day");
	check_duration_format(172800 * s, "2days");
	check_duration_format(3661 * s, "1h 1m 1s");
	check_duration_format(1500 * DG_NS_PER_MS, "1s 500ms");
	check_duration_format(31557600 * s, "1year");
	check_duration_format(2 * 2630016 * s, "2months");
	check_duration_format(30 * s, "30s");
	check_duration_format(60 * s, "1m");
	check_duration_format(1, "1ns");
	check_duration_format(1001 * DG_NS_PER_US, "1ms 1us");
	check_duration_format(90061 * s, "1day 1h 1m 1s");
}

static void
check_delay(const char *text, bool want_ok, bool want_present, int64_t want)
{
	json_object *v = J(text);
	int64_t		got = -42;
	bool		present = true;
	bool		res = dg_delay_from_json(v, &got, &present);

	if (!want_ok)
		ok(!res, "delay %s is rejected", text);
	else if (!want_present)
		ok(res && !present, "delay %s is not present", text);
	else
	{
		ok(res && present && got == want, "delay %s is %lld s", text,
		   (long long) (want / DG_NS_PER_S));
		if (!(res && present && got == want))
			diag("got ok=%d present=%d %lld", res, present, (long long) got);
	}
	json_object_put(v);
}

static void
test_delay(void)
{
	const int64_t s = DG_NS_PER_S;

	/* reference 10.3 item 55 */
	check_delay("1", true, true, s);
	check_delay("3600", true, true, 3600 * s);
	check_delay("-1", true, true, -s);
	check_delay("-3600", true, true, -3600 * s);
	check_delay("1.01", true, true, s);
	check_delay("3600.01", true, true, 3600 * s);
	check_delay("-1.5", true, true, -s);
	check_delay("'1s'", true, true, s);
	check_delay("'1h'", true, true, 3600 * s);
	check_delay("null", true, false, 0);
	check_delay("{'seconds': 1}", false, false, 0);
	check_delay("[1]", false, false, 0);
	check_delay("true", false, false, 0);
	check_delay("'soon'", false, false, 0);
}

/* ---- thing.c: names ---- */

static char *
repeat(const char *unit, int n)
{
	size_t		len = strlen(unit);
	char	   *s = malloc(len * n + 1);

	if (s == NULL)
		abort();
	for (int i = 0; i < n; i++)
		memcpy(s + i * len, unit, len);
	s[len * n] = '\0';
	return s;
}

static void
check_app(const char *app, bool want, const char *what)
{
	DgError		err;
	bool		res;

	dg_error_clear(&err);
	res = dg_check_application(app, &err);
	if (want)
		ok(res, "application %s accepted", what);
	else
	{
		ok(!res && err.kind == DG_ERR_INVALID && err.message[0] != '\0',
		   "application %s rejected", what);
	}
}

static void
check_thing_name(const char *name, bool want, const char *what)
{
	DgError		err;
	bool		res;

	dg_error_clear(&err);
	res = dg_check_name(name, &err);
	if (want)
		ok(res, "name %s accepted", what);
	else
		ok(!res && err.kind == DG_ERR_INVALID && err.message[0] != '\0',
		   "name %s rejected", what);
}

static void
test_names(void)
{
	char	   *s;
	DgError		err;

	s = repeat("a", 64);
	check_app(s, true, "of 64 characters");
	free(s);
	s = repeat("a", 65);
	check_app(s, false, "of 65 characters");
	dg_error_clear(&err);
	dg_check_application(s, &err);
	is_str(err.message, "application name is too long: 65 characters, at most 64 are allowed",
		   "too long application: message");
	free(s);
	s = repeat("\xc3\xa9", 64);
	check_app(s, true, "of 64 two-byte characters (128 bytes)");
	free(s);
	s = repeat("\xc3\xa9", 65);
	check_app(s, false, "of 65 two-byte characters");
	free(s);
	check_app("a/b", false, "with /");
	check_app("a b", false, "with a space");
	check_app("", false, "empty");
	check_app(NULL, false, "NULL");
	check_app("a\nb", false, "with a newline");
	check_app("my-app_1.x", true, "with - _ .");

	s = repeat("x", 256);
	check_thing_name(s, true, "of 256 characters");
	free(s);
	s = repeat("x", 257);
	check_thing_name(s, false, "of 257 characters");
	free(s);
	s = repeat("\xc3\xa9", 256);
	check_thing_name(s, true, "of 256 two-byte characters (512 bytes)");
	free(s);
	s = repeat("\xe2\x82\xac", 256);
	check_thing_name(s, true, "of 256 three-byte characters");
	free(s);
	s = repeat("\xc3\xa9", 257);
	check_thing_name(s, false, "of 257 two-byte characters");
	free(s);
	check_thing_name("device1/sensor", true, "with /");
	check_thing_name("/foo/bar", true, "group path");
	check_thing_name("urn:thing:1", true, "with :");
	check_thing_name("", false, "empty");
	check_thing_name("a\tb", false, "with a tab");
	check_thing_name("a\x01" "b", false, "with \\x01");
	check_thing_name("a\x7f", false, "with DEL");
}

/* ---- thing.c: canonical form ---- */

static void
test_canonical(void)
{
	json_object *thing;

	/* 10.3 item 47: empty sections are omitted, unknown keys dropped */
	check_canonical("only a schema",
					"{'metadata': {'application': 'app', 'name': 'thing'},"
					" 'schema': {'json': {'version': 'draft7', 'schema': {'type': 'object'}}},"
					" 'reportedState': {}, 'desiredState': {}, 'syntheticState': {},"
					" 'reconciliation': {'changed': {}, 'timers': {}, 'deleting': {}},"
					" 'internal': {'waker': null, 'outbox': []}, 'bogus': 1, 'kind': 'Thing'}",
					"{'metadata': {'application': 'app', 'name': 'thing'},"
					" 'schema': {'json': {'version': 'draft7', 'schema': {'type': 'object'}}}}");
	check_canonical("unknown keys inside schema dropped",
					"{" MD ", 'schema': {'json': {'version': 'draft7', 'schema': true}, 'x': 1}}",
					"{" MD ", 'schema': {'json': {'version': 'draft7', 'schema': true}}}");
	check_canonical("metadata keeps system fields as given",
					"{'metadata': {'application': 'app', 'name': 't', 'uid': 'u1',"
					" 'generation': 3, 'resourceVersion': 'rv', 'creationTimestamp': '" T0 "',"
					" 'other': 1}}",
					"{'metadata': {'application': 'app', 'name': 't', 'uid': 'u1',"
					" 'generation': 3, 'resourceVersion': 'rv', 'creationTimestamp': '" T0 "'}}");

	/* 10.3 item 48: synthetic features */
	check_canonical("synthetic javaScript",
					"{" MD ", 'syntheticState': {'s': {'javaScript': 'script',"
					" 'lastUpdate': '2022-01-01T02:00:00+01:00'}}}",
					"{" MD ", 'syntheticState': {'s': {'javaScript': 'script',"
					" 'lastUpdate': '2022-01-01T01:00:00Z', 'value': null}}}");
	check_canonical("synthetic alias without lastUpdate gets now",
					"{" MD ", 'syntheticState': {'s': {'alias': 'temp', 'value': 5}}}",
					"{" MD ", 'syntheticState': {'s': {'alias': 'temp', 'value': 5,"
					" 'lastUpdate': '" NOW_TEXT "'}}}");
	check_canonical_error("a synthetic with both alias and javaScript",
						  "{" MD ", 'syntheticState': {'s': {'alias': 'a', 'javaScript': 'x'}}}",
						  DG_ERR_INVALID, "syntheticState.s");
	check_canonical_error("a synthetic without a type",
						  "{" MD ", 'syntheticState': {'s': {'value': 1}}}",
						  DG_ERR_INVALID, NULL);

	/* 10.3 item 49: internal round-trips; empty internal omitted */
	check_canonical("internal round trip",
					"{" MD ", 'internal': {'waker': {'when': '2022-01-01T01:00:00Z',"
					" 'why': ['outbox', 'reconcile']}, 'outbox': [{'id': 'e1',"
					" 'timestamp': '2022-01-01T01:00:00Z', 'application': 'app', 'thing': 'other',"
					" 'message': {'wakeup': {'reasons': []}}}]}}",
					"{" MD ", 'internal': {'waker': {'when': '2022-01-01T01:00:00Z',"
					" 'why': ['reconcile', 'outbox']}, 'outbox': [{'id': 'e1',"
					" 'timestamp': '2022-01-01T01:00:00Z', 'application': 'app', 'thing': 'other',"
					" 'message': {'wakeup': {'reasons': []}}}]}}");
	check_canonical("internal with an empty waker and outbox omitted",
					"{" MD ", 'internal': {'waker': {'when': '2022-01-01T01:00:00Z', 'why': []},"
					" 'outbox': []}}",
					"{" MD "}");
	check_canonical_error("an unknown waker reason",
						  "{" MD ", 'internal': {'waker': {'when': '" T0 "', 'why': ['bogus']}}}",
						  DG_ERR_INVALID, "internal.waker.why");
	/* (valgrind also checks that this error path frees everything) */
	check_canonical_error("a waker time that is not a timestamp",
						  "{" MD ", 'internal': {'waker': {'when': 'soon', 'why': ['reconcile']}}}",
						  DG_ERR_INVALID, "internal.waker.when");
	check_canonical_error("an outbox event without an id",
						  "{" MD ", 'internal': {'outbox': [{'timestamp': '" T0 "',"
						  " 'application': 'app', 'thing': 'o', 'message': {}}]}}",
						  DG_ERR_INVALID, "internal.outbox[0].id");

	/* 10.3 item 50: desired features */
	check_canonical("desired feature forms",
					"{" MD ", 'desiredState': {"
					"'a': {'value': 1, 'mode': 'sync', 'lastUpdate': '" T0 "',"
					"  'reconciliation': {'state': 'reconciling', 'lastAttempt': '" T0 "'},"
					"  'method': 'manual'},"
					"'b': {'value': true, 'mode': 'once', 'lastUpdate': '" T0 "',"
					"  'validUntil': '2024-01-01T01:00:00+01:00',"
					"  'reconciliation': {'state': 'succeeded', 'when': '" T0 "'}, 'method': 'external'},"
					"'c': {'value': 'x', 'mode': 'disabled', 'lastUpdate': '" T0 "',"
					"  'reconciliation': {'state': 'failed', 'when': '" T0 "',"
					"  'reason': 'The dog ate my command'}, 'method': {'code': {'javaScript': 'true'}}},"
					"'d': {'value': null, 'lastUpdate': '" T0 "',"
					"  'reconciliation': {'state': 'disabled', 'when': '" T0 "'},"
					"  'method': {'command': {'period': '30s', 'encoding': {'channel': 'set-features'},"
					"  'mode': 'passive'}}}}}",
					"{" MD ", 'desiredState': {"
					"'a': {'value': 1, 'lastUpdate': '" T0 "',"
					"  'reconciliation': {'state': 'reconciling', 'lastAttempt': '" T0 "'},"
					"  'method': 'manual'},"
					"'b': {'value': true, 'mode': 'once', 'lastUpdate': '" T0 "',"
					"  'validUntil': '2024-01-01T00:00:00Z',"
					"  'reconciliation': {'state': 'succeeded', 'when': '" T0 "'}, 'method': 'external'},"
					"'c': {'value': 'x', 'mode': 'disabled', 'lastUpdate': '" T0 "',"
					"  'reconciliation': {'state': 'failed', 'when': '" T0 "',"
					"  'reason': 'The dog ate my command'}, 'method': {'code': {'javaScript': 'true'}}},"
					"'d': {'value': null, 'lastUpdate': '" T0 "',"
					"  'reconciliation': {'state': 'disabled', 'when': '" T0 "'},"
					"  'method': {'command': {'period': '30s', 'encoding': {'channel': 'set-features'},"
					"  'mode': 'passive'}}}}}");
	thing = canon("{" MD ", 'desiredState': {'a': {'value': 1, 'mode': 'sync'}}}");
	ok(!has_at(thing, "/desiredState/a/mode"), "desired mode sync is omitted");
	ok(!has_at(thing, "/desiredState/a/validUntil"), "desired validUntil omitted when absent");
	json_object_put(thing);
	check_canonical("desired defaults: reconciliation and method always present",
					"{" MD ", 'desiredState': {'e': {'value': 5}}}",
					"{" MD ", 'desiredState': {'e': {'value': 5, 'lastUpdate': '" NOW_TEXT "',"
					" 'reconciliation': {'state': 'reconciling'}, 'method': 'external'}}}");
	check_canonical("desired command method: period canonicalized, raw and remap",
					"{" MD ", 'desiredState': {"
					"'f': {'lastUpdate': '" T0 "', 'method': {'command': {'period': '90s'}}},"
					"'g': {'value': 1, 'lastUpdate': '" T0 "', 'method': {'command': {'period': '60s',"
					"  'mode': 'active', 'encoding': {'remap': {'device': 'd', 'channel': 'c'}}}}},"
					"'h': {'value': 1, 'lastUpdate': '" T0 "', 'method': {'command': {'period': '1h',"
					"  'encoding': 'raw'}}}}}",
					"{" MD ", 'desiredState': {"
					"'f': {'value': null, 'lastUpdate': '" T0 "', 'reconciliation': {'state': 'reconciling'},"
					"  'method': {'command': {'period': '1m 30s'}}},"
					"'g': {'value': 1, 'lastUpdate': '" T0 "', 'reconciliation': {'state': 'reconciling'},"
					"  'method': {'command': {'period': '1m', 'mode': 'active',"
					"  'encoding': {'remap': {'device': 'd', 'channel': 'c'}}}}},"
					"'h': {'value': 1, 'lastUpdate': '" T0 "', 'reconciliation': {'state': 'reconciling'},"
					"  'method': {'command': {'period': '1h', 'encoding': 'raw'}}}}}");
	check_canonical("a succeeded state without when gets now",
					"{" MD ", 'desiredState': {'a': {'value': 1, 'lastUpdate': '" T0 "',"
					" 'reconciliation': {'state': 'succeeded'}}}}",
					"{" MD ", 'desiredState': {'a': {'value': 1, 'lastUpdate': '" T0 "',"
					" 'reconciliation': {'state': 'succeeded', 'when': '" NOW_TEXT "'},"
					" 'method': 'external'}}}");
	check_canonical_error("a bad desired mode",
						  "{" MD ", 'desiredState': {'a': {'mode': 'sometimes'}}}",
						  DG_ERR_INVALID, "desiredState.a.mode");
	check_canonical_error("a bad desired method",
						  "{" MD ", 'desiredState': {'a': {'method': 'magic'}}}",
						  DG_ERR_INVALID, "desiredState.a.method");
	check_canonical_error("a bad reconciliation state",
						  "{" MD ", 'desiredState': {'a': {'reconciliation': {'state': 'bogus'}}}}",
						  DG_ERR_INVALID, "desiredState.a.reconciliation.state");
	check_canonical_error("a zero command period",
						  "{" MD ", 'desiredState': {'a': {'method': {'command': {'period': '0s'}}}}}",
						  DG_ERR_INVALID, "greater than zero");
	check_canonical_error("a command without period",
						  "{" MD ", 'desiredState': {'a': {'method': {'command': {}}}}}",
						  DG_ERR_INVALID, "period is required");
	check_canonical_error("a channel encoding that is not a string",
						  "{" MD ", 'desiredState': {'a': {'method': {'command': {'period': '1s',"
						  " 'encoding': {'channel': 1}}}}}}",
						  DG_ERR_INVALID, NULL);
	check_canonical_error("a validUntil that is not a timestamp",
						  "{" MD ", 'desiredState': {'a': {'validUntil': 'tomorrow'}}}",
						  DG_ERR_INVALID, "desiredState.a.validUntil");

	/* 10.3 item 51 and the other hooks */
	check_canonical("a deleting hook",
					"{'metadata': {'application': 'app', 'name': 'thing'},"
					" 'reconciliation': {'deleting': {'test': {'javaScript': 'other code'}}}}",
					"{'metadata': {'application': 'app', 'name': 'thing'},"
					" 'reconciliation': {'deleting': {'test': {'javaScript': 'other code'}}}}");
	check_canonical("timers: stopped always present, durations canonical",
					"{" MD ", 'reconciliation': {'timers': {"
					"'a': {'javaScript': 'x', 'period': '90s'},"
					"'b': {'javaScript': 'y', 'period': '1m', 'stopped': true, 'initialDelay': '10s',"
					"  'lastStarted': '" T0 "', 'lastRun': '2024-01-01T01:00:00+01:00'}}}}",
					"{" MD ", 'reconciliation': {'timers': {"
					"'a': {'javaScript': 'x', 'period': '1m 30s', 'stopped': false},"
					"'b': {'javaScript': 'y', 'period': '1m', 'stopped': true, 'initialDelay': '10s',"
					"  'lastStarted': '" T0 "', 'lastRun': '2024-01-01T00:00:00Z'}}}}");
	check_canonical("changed hooks: empty lastLog omitted, others kept",
					"{" MD ", 'reconciliation': {'changed': {"
					"'a': {'javaScript': 'x', 'lastLog': []}, 'b': {'javaScript': 'y', 'lastLog': ['hi']}}}}",
					"{" MD ", 'reconciliation': {'changed': {"
					"'a': {'javaScript': 'x'}, 'b': {'javaScript': 'y', 'lastLog': ['hi']}}}}");
	check_canonical_error("a zero timer period",
						  "{" MD ", 'reconciliation': {'timers': {'t': {'javaScript': 'x', 'period': '0s'}}}}",
						  DG_ERR_INVALID, "reconciliation.timers.t.period must be greater than zero");
	check_canonical_error("a timer without period",
						  "{" MD ", 'reconciliation': {'timers': {'t': {'javaScript': 'x'}}}}",
						  DG_ERR_INVALID, "period is required");
	check_canonical_error("a hook without code",
						  "{" MD ", 'reconciliation': {'changed': {'h': {'lastLog': []}}}}",
						  DG_ERR_INVALID, "reconciliation.changed.h");

	/* reported features */
	check_canonical("reported: lastUpdate defaults to now and is normalized; null kept",
					"{" MD ", 'reportedState': {'a': {'value': 1},"
					" 'b': {'value': null, 'lastUpdate': '2022-01-01T02:00:00+01:00'},"
					" 'c': {'value': {'x': [1]}, 'lastUpdate': null, 'junk': 1}}}",
					"{" MD ", 'reportedState': {'a': {'value': 1, 'lastUpdate': '" NOW_TEXT "'},"
					" 'b': {'value': null, 'lastUpdate': '2022-01-01T01:00:00Z'},"
					" 'c': {'value': {'x': [1]}, 'lastUpdate': '" NOW_TEXT "'}}}");
	check_canonical_error("a reported feature that is not an object",
						  "{" MD ", 'reportedState': {'a': 5}}", DG_ERR_INVALID, "reportedState.a");
	check_canonical_error("a reported feature without value",
						  "{" MD ", 'reportedState': {'a': {'lastUpdate': '" T0 "'}}}",
						  DG_ERR_INVALID, "reportedState.a");
	check_canonical_error("a reported map that is an array",
						  "{" MD ", 'reportedState': []}", DG_ERR_INVALID, "reportedState");
	check_canonical_error("a bad reported lastUpdate",
						  "{" MD ", 'reportedState': {'a': {'value': 1, 'lastUpdate': 5}}}",
						  DG_ERR_INVALID, "reportedState.a.lastUpdate");

	/* metadata */
	check_canonical("labels with null values dropped, empty maps omitted",
					"{'metadata': {'application': 'app', 'name': 't',"
					" 'labels': {'a': '1', 'b': null, 'flag': ''}, 'annotations': {'x': null}}}",
					"{'metadata': {'application': 'app', 'name': 't', 'labels': {'a': '1', 'flag': ''}}}");
	check_canonical_error("a label value that is not a string",
						  "{'metadata': {'application': 'app', 'name': 't', 'labels': {'a': 1}}}",
						  DG_ERR_INVALID, "metadata.labels.a");
	check_canonical_error("an annotation value that is an object",
						  "{'metadata': {'application': 'app', 'name': 't', 'annotations': {'a': {}}}}",
						  DG_ERR_INVALID, "metadata.annotations.a");
	check_canonical_error("a thing without metadata", "{'reportedState': {}}",
						  DG_ERR_INVALID, "metadata");
	check_canonical_error("a thing that is an array", "[]", DG_ERR_INVALID, "JSON object");
	check_canonical_error("a thing without name",
						  "{'metadata': {'application': 'app'}}", DG_ERR_INVALID, "metadata.name");
	check_canonical_error("a bad application",
						  "{'metadata': {'application': 'a b', 'name': 't'}}", DG_ERR_INVALID, NULL);
	check_canonical_error("a schema of another version",
						  "{" MD ", 'schema': {'json': {'version': 'draft4', 'schema': {}}}}",
						  DG_ERR_INVALID, "draft7");
}

/* ---- thing.c: waker, restore, view ---- */

static void
test_waker(void)
{
	json_object *thing = dg_thing_new("app", "t");

	ok(dg_waker_when(thing) == DG_NO_TIME, "a new thing has no waker");
	dg_waker_request(thing, T("2024-01-01T00:10:00Z"), DG_WAKE_RECONCILE);
	is_json(dg_thing_section(thing, "internal"),
			"{'waker': {'when': '2024-01-01T00:10:00Z', 'why': ['reconcile']}}",
			"waker: first request");
	dg_waker_request(thing, T("2024-01-01T00:20:00Z"), DG_WAKE_OUTBOX);
	is_json(dg_thing_section(thing, "internal"),
			"{'waker': {'when': '2024-01-01T00:10:00Z', 'why': ['reconcile', 'outbox']}}",
			"waker: a later request adds the reason and keeps the earlier time");
	dg_waker_request(thing, T("2024-01-01T00:05:00Z"), DG_WAKE_RECONCILE);
	is_int(dg_waker_when(thing), T("2024-01-01T00:05:00Z"), "waker: an earlier request wins (min)");
	dg_waker_clear(thing, DG_WAKE_RECONCILE);
	is_json(dg_thing_section(thing, "internal"),
			"{'waker': {'when': '2024-01-01T00:05:00Z', 'why': ['outbox']}}",
			"waker: clear keeps when while other reasons remain");
	dg_waker_clear(thing, DG_WAKE_OUTBOX);
	ok(!has_at(thing, "/internal"), "waker: internal omitted once waker and outbox are empty");
	ok(dg_waker_when(thing) == DG_NO_TIME, "waker: cleared");
	dg_waker_clear(thing, DG_WAKE_OUTBOX);
	ok(!has_at(thing, "/internal"), "waker: clearing again is a no-op");
	dg_waker_request(thing, T("2024-01-01T00:05:00Z"), DG_WAKE_DELETION);
	dg_waker_request(thing, T("2024-01-01T00:06:00Z"), DG_WAKE_RECONCILE);
	is_json(at(thing, "/internal/waker/why"), "['reconcile', 'deletion']",
			"waker: reasons in enum order");
	json_object_put(thing);

	thing = canon("{" MD ", 'internal': {'outbox': [{'id': 'e1', 'timestamp': '" T0 "',"
				  " 'application': 'app', 'thing': 'o', 'message': {'wakeup': {}}}]}}");
	dg_waker_request(thing, NOW, DG_WAKE_OUTBOX);
	dg_waker_clear(thing, DG_WAKE_OUTBOX);
	ok(has_at(thing, "/internal/outbox/0") && !has_at(thing, "/internal/waker"),
	   "waker: internal kept while the outbox is not empty");
	json_object_put(thing);
}

static void
test_restore_and_view(void)
{
	json_object *to = canon("{'metadata': {'application': 'app', 'name': 'x', 'uid': 'evil',"
							" 'generation': 9, 'labels': {'l': 'v'}}}");
	json_object *from = canon("{'metadata': {'application': 'app', 'name': 't', 'uid': 'u1',"
							  " 'resourceVersion': 'rv'}}");
	json_object *thing,
			   *view;

	dg_thing_restore_system(to, from);
	is_json(to, "{'metadata': {'application': 'app', 'name': 't', 'uid': 'u1',"
			" 'resourceVersion': 'rv', 'labels': {'l': 'v'}}}",
			"restore_system: identity and system fields from the stored thing, labels kept");
	json_object_put(to);
	json_object_put(from);

	thing = dg_thing_new("app", "t");
	is_str(dg_thing_application(thing), "app", "dg_thing_application");
	is_str(dg_thing_name(thing), "t", "dg_thing_name of dg_thing_new");
	json_object_put(thing);

	/* 1.11: values only, empty maps omitted */
	thing = canon("{'metadata': {'application': 'app', 'name': 't', 'labels': {'l': ''}},"
				  " 'reportedState': {'a': {'value': 1, 'lastUpdate': '" T0 "'},"
				  "   'n': {'value': null, 'lastUpdate': '" T0 "'}},"
				  " 'desiredState': {'d': {'value': [2], 'method': {'command': {'period': '1s'}}}},"
				  " 'syntheticState': {'s': {'alias': 'a', 'value': 1}},"
				  " 'reconciliation': {'changed': {'h': {'javaScript': 'x'}}},"
				  " 'schema': {'json': {'version': 'draft7', 'schema': {}}},"
				  " 'internal': {'waker': {'when': '" T0 "', 'why': ['reconcile']}}}");
	view = dg_thing_state_view(thing);
	is_json(view, "{'metadata': {'application': 'app', 'name': 't', 'labels': {'l': ''}},"
			" 'reportedState': {'a': 1, 'n': null}, 'desiredState': {'d': [2]},"
			" 'syntheticState': {'s': 1}}", "state view: values only");
	json_object_put(view);
	json_object_put(thing);
	thing = canon("{" MD "}");
	view = dg_thing_state_view(thing);
	is_json(view, "{" MD "}", "state view of a bare thing has metadata only");
	json_object_put(view);
	json_object_put(thing);
}

/* ---- ops.c ---- */

static void
check_message(const char *text, DgOpKind kind, const char *what)
{
	json_object *msg = J(text);
	DgOp		op;
	DgError		err;
	bool		res;

	dg_error_clear(&err);
	res = dg_op_from_message(msg, &op, &err);
	ok(res && op.kind == kind, "message %s", what);
	if (!res)
		diag("error: %s", err.message);
	json_object_put(msg);
}

static void
check_message_bad(const char *text, const char *what)
{
	json_object *msg = J(text);
	DgOp		op;
	DgError		err;
	bool		res;

	dg_error_clear(&err);
	res = dg_op_from_message(msg, &op, &err);
	ok(!res && err.kind == DG_ERR_INVALID && err.message[0] != '\0',
	   "malformed message rejected: %s", what);
	json_object_put(msg);
}

static void
test_messages(void)
{
	json_object *msg;
	DgOp		op;
	DgError		err;

	check_message("{'reportState': {'state': {'a': 1}}}", DG_OP_REPORT_STATE, "reportState");
	check_message("{'merge': {'reportedState': {}}}", DG_OP_MERGE, "merge");
	check_message("{'patch': []}", DG_OP_PATCH, "patch");
	check_message("{'setDesiredValue': {'values': {'a': 1}}}", DG_OP_SET_DESIRED_VALUES,
				  "setDesiredValue");
	check_message("{'wakeup': {'reasons': ['reconcile']}}", DG_OP_WAKEUP, "wakeup");
	check_message("{'registerChild': {'$ref': 'dev/ch', 'template': {'reconciliation': {}}}}",
				  DG_OP_REGISTER_CHILD, "registerChild");
	check_message("{'unregisterChild': {'$ref': 'dev/ch'}}", DG_OP_UNREGISTER_CHILD,
				  "unregisterChild");

	msg = J("{'reportState': {'state': {'a': 1}, 'partial': true}}");
	dg_error_clear(&err);
	ok(dg_op_from_message(msg, &op, &err) && op.partial &&
	   op.arg == at(msg, "/reportState/state"),
	   "reportState partial: arg is the state map, partial set");
	json_object_put(msg);
	msg = J("{'reportState': {'state': {'a': 1}}}");
	ok(dg_op_from_message(msg, &op, &err) && !op.partial, "reportState defaults to replace");
	json_object_put(msg);
	msg = J("{'setDesiredValue': {'values': {'a': 1}}}");
	ok(dg_op_from_message(msg, &op, &err) && op.arg == at(msg, "/setDesiredValue/values"),
	   "setDesiredValue: arg is the values map");
	json_object_put(msg);

	check_message_bad("{'bogus': {}}", "unknown key");
	check_message_bad("{'merge': {}, 'patch': []}", "two keys");
	check_message_bad("{}", "no key");
	check_message_bad("[]", "an array");
	check_message_bad("'reportState'", "a string");
	check_message_bad("null", "null");
	check_message_bad("{'reportState': {}}", "reportState without state");
	check_message_bad("{'reportState': {'state': [1]}}", "reportState with an array state");
	check_message_bad("{'reportState': {'state': {}, 'partial': 'yes'}}",
					  "reportState with a non-boolean partial");
	check_message_bad("{'patch': {}}", "patch not an array");
	check_message_bad("{'merge': []}", "merge not an object");
	check_message_bad("{'setDesiredValue': {}}", "setDesiredValue without values");
	check_message_bad("{'registerChild': {}}", "registerChild without $ref");
	check_message_bad("{'registerChild': {'$ref': ''}}", "registerChild with an empty $ref");
	check_message_bad("{'unregisterChild': {'$ref': 5}}", "unregisterChild with a number $ref");
	check_message_bad("{'registerChild': {'$ref': 'c', 'template': 5}}",
					  "registerChild with a non-object template");

	msg = J("{'bogus': {}}");
	dg_op_from_message(msg, &op, &err);
	ok(contains(err.message, "bogus"), "unknown message: error names the key");
	json_object_put(msg);

	is_str(dg_op_name(DG_OP_REPORT_STATE), "reportState", "dg_op_name reportState");
	is_str(dg_op_name(DG_OP_DESIRED_PUT), "set desired state", "dg_op_name desired put");
}

#define REPORTED_AB \
	"'reportedState': {'a': {'value': 1, 'lastUpdate': '" T0 "'}," \
	" 'b': {'value': 'x', 'lastUpdate': '" T0 "'}}"

static void
test_report_state(void)
{
	json_object *base = canon("{" MD ", " REPORTED_AB "}");
	json_object *empty = canon("{" MD "}");
	json_object *r;
	DgError		err;

	r = apply_msg(base, "{'reportState': {'state': {'a': 1, 'b': null, 'c': true}, 'partial': true}}",
				  &err, NULL);
	is_json(at(r, "/reportedState"),
			"{'a': {'value': 1, 'lastUpdate': '" T0 "'}, 'b': {'value': null, 'lastUpdate': '" T0 "'},"
			" 'c': {'value': true, 'lastUpdate': '" NOW_TEXT "'}}",
			"reportState merge: equal kept, null stored, new gets now");
	json_object_put(r);

	r = apply_msg(base, "{'reportState': {'state': {'a': 1, 'c': 2}}}", &err, NULL);
	is_json(at(r, "/reportedState"),
			"{'a': {'value': 1, 'lastUpdate': '" T0 "'}, 'c': {'value': 2, 'lastUpdate': '" NOW_TEXT "'}}",
			"reportState replace: unchanged key keeps its timestamp, absent key removed");
	json_object_put(r);

	r = apply_msg(base, "{'reportState': {'state': {'a': 1.0, 'b': 'y'}}}", &err, NULL);
	is_json(at(r, "/reportedState"),
			"{'a': {'value': 1, 'lastUpdate': '" T0 "'}, 'b': {'value': 'y', 'lastUpdate': '" NOW_TEXT "'}}",
			"reportState replace: 1.0 equals 1, a changed value gets now");
	json_object_put(r);

	r = apply_msg(base, "{'reportState': {'state': {}}}", &err, NULL);
	ok(r != NULL && !has_at(r, "/reportedState"), "reportState replace with {} drops the section");
	json_object_put(r);

	r = apply_msg(base, "{'reportState': {'state': {}, 'partial': true}}", &err, NULL);
	ok(dg_json_equal(r, base), "reportState merge of {} changes nothing");
	json_object_put(r);

	/* 10.3 item 56 */
	r = apply_msg(empty, "{'reportState': {'state': {'x': 42}, 'partial': true}}", &err, NULL);
	is_json(at(r, "/reportedState"), "{'x': {'value': 42, 'lastUpdate': '" NOW_TEXT "'}}",
			"reportState merge into an empty thing creates the feature");
	json_object_put(r);
	r = apply_msg(empty, "{'reportState': {'state': {'x': 42}}}", &err, NULL);
	is_json(at(r, "/reportedState"), "{'x': {'value': 42, 'lastUpdate': '" NOW_TEXT "'}}",
			"reportState replace into an empty thing creates the feature");
	json_object_put(r);

	r = apply_msg(empty, "{'wakeup': {'reasons': []}}", &err, NULL);
	ok(dg_json_equal(r, empty), "wakeup changes nothing");
	json_object_put(r);

	json_object_put(base);
	json_object_put(empty);
}

static void
test_merge_patch(void)
{
	json_object *base = canon("{'metadata': {'application': 'app', 'name': 't', 'uid': 'u1',"
							  " 'generation': 2}, " REPORTED_AB "}");
	json_object *before_root = base;
	char	   *before = strdup(dg_json_text(base, NULL));
	json_object *r;
	json_object *msg;
	DgOp		op;
	DgError		err;

	r = apply_msg(base, "{'merge': {'reportedState': {'n': {'value': 5}}}}", &err, NULL);
	is_json(at(r, "/reportedState/n"), "{'value': 5, 'lastUpdate': '" NOW_TEXT "'}",
			"merge creating a reported feature without lastUpdate gets now");
	json_object_put(r);

	r = apply_msg(base, "{'merge': {'reportedState': {'a': null}}}", &err, NULL);
	ok(r && !has_at(r, "/reportedState/a") && has_at(r, "/reportedState/b"),
	   "merge with null removes the member");
	json_object_put(r);

	r = apply_msg(base, "{'merge': {'metadata': {'labels': {'l': 'v'}, 'name': 'other',"
				  " 'uid': 'evil', 'generation': null}}}", &err, NULL);
	is_json(at(r, "/metadata"), "{'application': 'app', 'name': 't', 'uid': 'u1',"
			" 'generation': 2, 'labels': {'l': 'v'}}",
			"merge: labels change, identity and system fields restored");
	json_object_put(r);

	/* a merge whose result is not a valid thing fails, all or nothing */
	msg = J("{'merge': {'reportedState': {'a': 5, 'z': {'value': 1}}}}");
	dg_error_clear(&err);
	ok(dg_op_from_message(msg, &op, &err) && !dg_op_apply(&base, &op, NOW, &err) &&
	   err.kind == DG_ERR_INVALID, "merge producing an invalid reported feature fails");
	ok(contains(err.message, "merge") && contains(err.message, "reportedState.a"),
	   "merge error names the operation and the feature");
	ok(base == before_root && strcmp(dg_json_text(base, NULL), before) == 0,
	   "failed merge leaves the thing unchanged");
	json_object_put(msg);

	/* a failing patch is all or nothing */
	msg = J("{'patch': [{'op': 'add', 'path': '/reportedState/z', 'value': {'value': 1}},"
			" {'op': 'remove', 'path': '/nope'}]}");
	dg_error_clear(&err);
	ok(dg_op_from_message(msg, &op, &err) && !dg_op_apply(&base, &op, NOW, &err) &&
	   err.kind == DG_ERR_INVALID, "patch with a failing operation fails");
	ok(base == before_root && strcmp(dg_json_text(base, NULL), before) == 0,
	   "failed patch leaves the thing unchanged");
	json_object_put(msg);

	r = apply_msg(base, "{'patch': [{'op': 'replace', 'path': '/metadata/name', 'value': 'x'},"
				  " {'op': 'replace', 'path': '/metadata/uid', 'value': 'y'},"
				  " {'op': 'add', 'path': '/metadata/annotations', 'value': {'k': 'v'}},"
				  " {'op': 'replace', 'path': '/reportedState/a/value', 'value': 2}]}", &err, NULL);
	is_json(at(r, "/metadata"), "{'application': 'app', 'name': 't', 'uid': 'u1',"
			" 'generation': 2, 'annotations': {'k': 'v'}}",
			"patch changing name and uid: restored; annotations kept");
	is_json(at(r, "/reportedState/a/value"), "2", "patch changes a reported value");
	json_object_put(r);

	r = apply_msg(base, "{'patch': [{'op': 'remove', 'path': '/metadata/uid'},"
				  " {'op': 'add', 'path': '/metadata/resourceVersion', 'value': 'x'}]}", &err, NULL);
	ok(r && contains(str_at(r, "/metadata/uid"), "u1") && !has_at(r, "/metadata/resourceVersion"),
	   "patch removing uid or adding resourceVersion: system fields restored");
	json_object_put(r);

	r = apply_msg(base, "{'patch': [{'op': 'add', 'path': '/reportedState/c', 'value': {'value': [1]}}]}",
				  &err, NULL);
	is_json(at(r, "/reportedState/c"), "{'value': [1], 'lastUpdate': '" NOW_TEXT "'}",
			"patch adding a reported feature without lastUpdate gets now");
	json_object_put(r);

	r = apply_msg(base, "{'patch': [{'op': 'replace', 'path': '', 'value': [1]}]}", &err, NULL);
	ok(r == NULL && err.kind == DG_ERR_INVALID, "patch replacing the thing by an array fails");
	json_object_put(r);

	free(before);
	json_object_put(base);
}

#define DESIRED_DE \
	"'desiredState': {'d': {'value': 1, 'lastUpdate': '" T0 "', 'validUntil': '2024-06-01T00:00:00Z'," \
	" 'reconciliation': {'state': 'succeeded', 'when': '" T0 "'}, 'method': 'external'}," \
	" 'e': {'value': 'x', 'lastUpdate': '" T0 "'}}"

static void
test_set_desired(void)
{
	json_object *base = canon("{" MD ", " DESIRED_DE "}");
	json_object *before_root = base;
	char	   *before = strdup(dg_json_text(base, NULL));
	json_object *msg;
	json_object *r;
	DgOp		op;
	DgError		err;

	msg = J("{'setDesiredValue': {'values': {'d': 2, 'nope': 1, 'other': 2}}}");
	dg_error_clear(&err);
	ok(dg_op_from_message(msg, &op, &err) && !dg_op_apply(&base, &op, NOW, &err) &&
	   err.kind == DG_ERR_INVALID, "setDesiredValue with unknown features fails");
	ok(contains(err.message, "\"nope\"") && contains(err.message, "\"other\"") &&
	   !contains(err.message, "\"d\""), "the error names the unknown features only");
	ok(base == before_root && strcmp(dg_json_text(base, NULL), before) == 0,
	   "nothing applied when a feature is unknown");
	json_object_put(msg);

	r = apply_msg(base, "{'setDesiredValue': {'values': {'d': 2}}}", &err, NULL);
	is_json(at(r, "/desiredState/d"), "{'value': 2, 'lastUpdate': '" T0 "',"
			" 'reconciliation': {'state': 'succeeded', 'when': '" T0 "'}, 'method': 'external'}",
			"plain value: set, validUntil cleared, rest untouched until the sync");
	json_object_put(r);

	r = apply_msg(base, "{'setDesiredValue': {'values': {'d': {'value': 3,"
				  " 'validUntil': '2024-02-01T01:00:00+01:00'}}}}", &err, NULL);
	is_json(at(r, "/desiredState/d/value"), "3", "object form sets the value");
	is_str(str_at(r, "/desiredState/d/validUntil"), "2024-02-01T00:00:00Z",
		   "object form sets validUntil (normalized)");
	json_object_put(r);

	r = apply_msg(base, "{'setDesiredValue': {'values': {'e': {'value': 4, 'validFor': '1h'}}}}",
				  &err, NULL);
	is_str(str_at(r, "/desiredState/e/validUntil"), "2024-01-01T01:00:00Z",
		   "validFor gives now + duration");
	json_object_put(r);

	r = apply_msg(base, "{'setDesiredValue': {'values': {'d': {'value': null}}}}", &err, NULL);
	ok(r && has_at(r, "/desiredState/d/value") && at(r, "/desiredState/d/value") == NULL &&
	   !has_at(r, "/desiredState/d/validUntil"), "object form with null value, no validUntil");
	json_object_put(r);

	/* an object without "value" is a plain value (reference 2.2) */
	r = apply_msg(base, "{'setDesiredValue': {'values': {'e': {'r': 1, 'g': 2}}}}", &err, NULL);
	is_json(at(r, "/desiredState/e/value"), "{'r': 1, 'g': 2}",
			"a plain object value without a value member is stored as is");
	json_object_put(r);

	r = apply_msg(base, "{'setDesiredValue': {'values': {'d': {'value': 1, 'validUntil': 'never'}}}}",
				  &err, NULL);
	ok(r == NULL && err.kind == DG_ERR_INVALID, "a bad validUntil is rejected");
	json_object_put(r);
	r = apply_msg(base, "{'setDesiredValue': {'values': {'d': {'value': 1, 'validFor': 'a while'}}}}",
				  &err, NULL);
	ok(r == NULL && err.kind == DG_ERR_INVALID, "a bad validFor is rejected");
	json_object_put(r);

	free(before);
	json_object_put(base);
}

static void
test_string_maps(void)
{
	json_object *base = canon("{'metadata': {'application': 'app', 'name': 't',"
							  " 'labels': {'a': '1', 'b': '2'}}}");
	json_object *r;
	DgError		err;

	r = apply_op(base, DG_OP_LABELS, NULL, "{'b': null, 'c': '3'}", &err);
	is_json(at(r, "/metadata/labels"), "{'a': '1', 'c': '3'}", "labels: set and null removes");
	json_object_put(r);
	r = apply_op(base, DG_OP_LABELS, NULL, "{'a': null, 'b': null}", &err);
	ok(r && !has_at(r, "/metadata/labels"), "labels: removing all drops the map");
	json_object_put(r);
	r = apply_op(base, DG_OP_ANNOTATIONS, NULL, "{'drogue.io/device': 'dev', 'gone': null}", &err);
	is_json(at(r, "/metadata/annotations"), "{'drogue.io/device': 'dev'}",
			"annotations: set on a thing without annotations");
	json_object_put(r);
	r = apply_op(base, DG_OP_LABELS, NULL, "{'a': 'x', 'n': 5}", &err);
	ok(r == NULL && err.kind == DG_ERR_INVALID && contains(err.message, "labels.n"),
	   "labels: a non-string value is rejected");
	json_object_put(r);
	r = apply_op(base, DG_OP_ANNOTATIONS, NULL, "[1]", &err);
	ok(r == NULL && err.kind == DG_ERR_INVALID, "annotations: a non-object body is rejected");
	json_object_put(r);
	json_object_put(base);
}

static void
test_synthetic_put(void)
{
	json_object *base = canon("{" MD ", 'syntheticState': {'syn': {'alias': 'a', 'value': 7,"
							  " 'lastUpdate': '" T0 "'}}}");
	json_object *r;
	DgError		err;

	r = apply_op(base, DG_OP_SYNTHETIC_PUT, "s", "{'alias': 'a'}", &err);
	is_json(at(r, "/syntheticState/s"), "{'alias': 'a', 'value': null, 'lastUpdate': '" NOW_TEXT "'}",
			"synthetic put: a new feature starts with null and now");
	json_object_put(r);
	r = apply_op(base, DG_OP_SYNTHETIC_PUT, "syn", "{'javaScript': '1 + 1'}", &err);
	is_json(at(r, "/syntheticState/syn"), "{'javaScript': '1 + 1', 'value': 7, 'lastUpdate': '" T0 "'}",
			"synthetic put: an existing feature keeps value and lastUpdate, type replaced");
	json_object_put(r);
	r = apply_op(base, DG_OP_SYNTHETIC_PUT, "x", "{'bogus': 1}", &err);
	ok(r == NULL && err.kind == DG_ERR_INVALID, "synthetic put without a type is rejected");
	json_object_put(r);
	r = apply_op(base, DG_OP_SYNTHETIC_PUT, "x", "{'alias': 'a', 'javaScript': 'b'}", &err);
	ok(r == NULL && err.kind == DG_ERR_INVALID, "synthetic put with two types is rejected");
	json_object_put(r);
	r = apply_op(base, DG_OP_SYNTHETIC_DELETE, "syn", NULL, &err);
	ok(r && !has_at(r, "/syntheticState"), "synthetic delete removes the entry");
	json_object_put(r);
	r = apply_op(base, DG_OP_SYNTHETIC_DELETE, "missing", NULL, &err);
	ok(r && dg_json_equal(r, base), "synthetic delete of a missing entry is not an error");
	json_object_put(r);
	json_object_put(base);
}

static void
test_desired_put(void)
{
	json_object *base = canon("{" MD ", " DESIRED_DE "}");
	json_object *r;
	DgError		err;

	r = apply_op(base, DG_OP_DESIRED_PUT, "n", "{}", &err);
	is_json(at(r, "/desiredState/n"), "{'value': null, 'lastUpdate': '" NOW_TEXT "',"
			" 'reconciliation': {'state': 'reconciling'}, 'method': 'external'}",
			"desired put: defaults of a new feature");
	json_object_put(r);
	r = apply_op(base, DG_OP_DESIRED_PUT, "n", "{'value': 5, 'mode': 'once', 'validFor': '1m',"
				 " 'method': {'command': {'period': '10s'}}}", &err);
	is_json(at(r, "/desiredState/n"), "{'value': 5, 'mode': 'once', 'lastUpdate': '" NOW_TEXT "',"
			" 'validUntil': '2024-01-01T00:01:00Z', 'reconciliation': {'state': 'reconciling'},"
			" 'method': {'command': {'period': '10s'}}}",
			"desired put: a new feature with fields and validFor");
	json_object_put(r);
	r = apply_op(base, DG_OP_DESIRED_PUT, "d", "{'mode': 'once'}", &err);
	is_json(at(r, "/desiredState/d"), "{'value': 1, 'mode': 'once', 'lastUpdate': '" T0 "',"
			" 'reconciliation': {'state': 'succeeded', 'when': '" T0 "'}, 'method': 'external'}",
			"desired put: validUntil always overwritten (cleared), lastUpdate untouched");
	json_object_put(r);
	r = apply_op(base, DG_OP_DESIRED_PUT, "d", "{'validUntil': '2024-03-01T00:00:00Z', 'validFor': '1h'}",
				 &err);
	is_str(str_at(r, "/desiredState/d/validUntil"), "2024-03-01T00:00:00Z",
		   "desired put: validUntil wins over validFor");
	json_object_put(r);
	r = apply_op(base, DG_OP_DESIRED_PUT, "d", "{'reconciliation': {'state': 'reconciling'},"
				 " 'method': 'manual', 'value': [1]}", &err);
	is_json(at(r, "/desiredState/d"), "{'value': [1], 'lastUpdate': '" T0 "',"
			" 'reconciliation': {'state': 'reconciling'}, 'method': 'manual'}",
			"desired put: given fields overwritten");
	json_object_put(r);
	r = apply_op(base, DG_OP_DESIRED_PUT, "d", "{'color': 1}", &err);
	ok(r == NULL && err.kind == DG_ERR_INVALID && contains(err.message, "color"),
	   "desired put: an unknown member is rejected");
	json_object_put(r);
	r = apply_op(base, DG_OP_DESIRED_PUT, "d", "{'method': 'magic'}", &err);
	ok(r == NULL && err.kind == DG_ERR_INVALID, "desired put: a bad method is rejected");
	json_object_put(r);
	r = apply_op(base, DG_OP_DESIRED_PUT, "d", "{'validFor': 'x'}", &err);
	ok(r == NULL && err.kind == DG_ERR_INVALID, "desired put: a bad validFor is rejected");
	json_object_put(r);
	json_object_put(base);
}

static void
test_children(void)
{
	json_object *thing = canon("{" MD "}");
	json_object *r;
	DgError		err;
	bool		del;

	/* 10.3 item 57 */
	r = apply_msg(thing, "{'registerChild': {'$ref': 'id1'}}", &err, &del);
	json_object_put(thing);
	thing = r;
	is_json(at(thing, "/reportedState/$children"), "{'value': {'id1': null}, 'lastUpdate': '" NOW_TEXT "'}",
			"registerChild creates $children with lastUpdate now");
	r = apply_msg(thing, "{'registerChild': {'$ref': 'id2'}}", &err, &del);
	json_object_put(thing);
	thing = r;
	is_json(at(thing, "/reportedState/$children/value"), "{'id1': null, 'id2': null}",
			"inserting id1 then id2");
	r = apply_msg(thing, "{'registerChild': {'$ref': 'id2'}}", &err, &del);
	ok(dg_json_equal(r, thing), "registering a child again changes nothing");
	json_object_put(r);
	r = apply_msg(thing, "{'unregisterChild': {'$ref': 'id1'}}", &err, &del);
	json_object_put(thing);
	thing = r;
	is_json(at(thing, "/reportedState/$children/value"), "{'id2': null}", "removing id1");
	ok(!del, "a child is left: no deletion requested");
	r = apply_msg(thing, "{'unregisterChild': {'$ref': 'nope'}}", &err, &del);
	ok(r && dg_json_equal(r, thing) && !del, "removing an unknown child: no change, no deletion");
	json_object_put(r);
	r = apply_msg(thing, "{'unregisterChild': {'$ref': 'id2'}}", &err, &del);
	json_object_put(thing);
	thing = r;
	is_json(at(thing, "/reportedState/$children/value"), "{}", "removing id2 gives {}");
	ok(del, "the last child gone: deletion requested");
	json_object_put(thing);

	thing = canon("{" MD "}");
	r = apply_msg(thing, "{'unregisterChild': {'$ref': 'x'}}", &err, &del);
	ok(r && del, "unregisterChild without $children requests deletion");
	json_object_put(r);
	json_object_put(thing);

	thing = canon("{" MD ", 'reportedState': {'$children': {'value': 'oops', 'lastUpdate': '" T0 "'}}}");
	r = apply_msg(thing, "{'unregisterChild': {'$ref': 'x'}}", &err, &del);
	ok(r && del, "unregisterChild when $children is not a container requests deletion");
	json_object_put(r);
	r = apply_msg(thing, "{'registerChild': {'$ref': 'c'}}", &err, &del);
	is_json(at(r, "/reportedState/$children"), "{'value': {'c': null}, 'lastUpdate': '" NOW_TEXT "'}",
			"registerChild replaces a non-object $children");
	json_object_put(r);
	json_object_put(thing);

	thing = canon("{" MD ", 'reportedState': {'$children': {'value': [1], 'lastUpdate': '" T0 "'}}}");
	r = apply_msg(thing, "{'unregisterChild': {'$ref': 'x'}}", &err, &del);
	ok(r && !del, "unregisterChild: a non-empty array is a container, no deletion");
	json_object_put(r);
	json_object_put(thing);
	thing = canon("{" MD ", 'reportedState': {'$children': {'value': [], 'lastUpdate': '" T0 "'}}}");
	r = apply_msg(thing, "{'unregisterChild': {'$ref': 'x'}}", &err, &del);
	ok(r && del, "unregisterChild: an empty array requests deletion");
	json_object_put(r);
	json_object_put(thing);
	thing = canon("{" MD ", 'reportedState': {'$children': {'value': null, 'lastUpdate': '" T0 "'}}}");
	r = apply_msg(thing, "{'unregisterChild': {'$ref': 'x'}}", &err, &del);
	ok(r && del, "unregisterChild: a null $children requests deletion");
	json_object_put(r);
	json_object_put(thing);

	/* the template's hooks are inserted or overwritten by name */
	thing = canon("{" MD ", 'reconciliation': {'changed': {'h': {'javaScript': 'old'},"
				  " 'other': {'javaScript': 'keep'}}}}");
	r = apply_msg(thing, "{'registerChild': {'$ref': 'c', 'template': {'reconciliation': {"
				  "'changed': {'h': {'javaScript': 'new'}},"
				  " 'timers': {'t': {'javaScript': 'y', 'period': '60s'}},"
				  " 'deleting': {'h': {'javaScript': 'bye'}}}}}}", &err, &del);
	is_json(at(r, "/reconciliation"), "{'changed': {'h': {'javaScript': 'new'},"
			" 'other': {'javaScript': 'keep'}},"
			" 'timers': {'t': {'javaScript': 'y', 'period': '1m', 'stopped': false}},"
			" 'deleting': {'h': {'javaScript': 'bye'}}}",
			"registerChild merges the template hooks");
	json_object_put(r);
	r = apply_msg(thing, "{'registerChild': {'$ref': 'c', 'template': {'reconciliation': {"
				  "'timers': {'t': {'javaScript': 'y', 'period': '0s'}}}}}}", &err, &del);
	ok(r == NULL && err.kind == DG_ERR_INVALID, "registerChild with an invalid template hook fails");
	json_object_put(r);
	json_object_put(thing);
}

static void
test_reconciliation_put(void)
{
	json_object *base = canon("{" MD ", 'reconciliation': {'changed': {'h': {'javaScript': 'x'}},"
							  " 'timers': {'t': {'javaScript': 'y', 'period': '1m'}}}}");
	json_object *r;
	DgError		err;

	r = apply_op(base, DG_OP_RECONCILIATION_PUT, NULL, "{'deleting': {'d': {'javaScript': 'z'}}}", &err);
	is_json(at(r, "/reconciliation"), "{'deleting': {'d': {'javaScript': 'z'}}}",
			"reconciliation put replaces the whole section");
	json_object_put(r);
	r = apply_op(base, DG_OP_RECONCILIATION_PUT, NULL, "{}", &err);
	ok(r && !has_at(r, "/reconciliation"), "reconciliation put of {} removes the section");
	json_object_put(r);
	r = apply_op(base, DG_OP_RECONCILIATION_PUT, NULL,
				 "{'timers': {'t': {'javaScript': 'x', 'period': '0s'}}}", &err);
	ok(r == NULL && err.kind == DG_ERR_INVALID, "reconciliation put with a zero timer period fails");
	json_object_put(r);
	r = apply_op(base, DG_OP_RECONCILIATION_PUT, NULL, "[]", &err);
	ok(r == NULL && err.kind == DG_ERR_INVALID, "reconciliation put of an array fails");
	json_object_put(r);
	json_object_put(base);
}

static void
test_replace(void)
{
	json_object *base = canon("{'metadata': {'application': 'app', 'name': 't', 'labels': {'l': 'v'}},"
							  " 'reportedState': {'a': {'value': 1, 'lastUpdate': '" T0 "'}},"
							  " 'internal': {'waker': {'when': '" T0 "', 'why': ['outbox']},"
							  " 'outbox': [{'id': 'e1', 'timestamp': '" T0 "', 'application': 'app',"
							  " 'thing': 'o', 'message': {'wakeup': {}}}]}}");
	json_object *bare = canon("{" MD "}");
	json_object *r;
	DgError		err;

	r = apply_op(base, DG_OP_REPLACE, NULL, "{" MD ", 'reportedState': {'x': {'value': 1}},"
				 " 'internal': {'waker': {'when': '2030-01-01T00:00:00Z', 'why': ['reconcile']}}}", &err);
	ok(r && dg_json_equal(at(r, "/internal"), at(base, "/internal")),
	   "full replace keeps the stored internal, ignores the given one");
	is_json(at(r, "/reportedState"), "{'x': {'value': 1, 'lastUpdate': '" NOW_TEXT "'}}",
			"full replace: the body's reported state, lastUpdate defaults to now");
	ok(r && !has_at(r, "/metadata/labels"), "full replace clears missing sections (labels)");
	json_object_put(r);
	r = apply_op(bare, DG_OP_REPLACE, NULL, "{" MD ", 'internal': {'waker': {'when': '" T0 "',"
				 " 'why': ['reconcile']}}}", &err);
	ok(r && !has_at(r, "/internal"), "full replace never takes internal from the body");
	json_object_put(r);
	r = apply_op(base, DG_OP_REPLACE, NULL, "{" MD ", 'reportedState': {'a': 1}}", &err);
	ok(r == NULL && err.kind == DG_ERR_INVALID, "full replace with an invalid body fails");
	json_object_put(r);
	json_object_put(base);
	json_object_put(bare);
}

/* ---- machine.c: reported state, synthetics, metadata ---- */

#define REPORTED_TEMP_HUM \
	"'reportedState': {'temp': {'value': 20, 'lastUpdate': '" T0 "'}," \
	" 'hum': {'value': 50, 'lastUpdate': '" T0 "'}}"

static void
test_machine_reported(void)
{
	json_object *current = canon("{'metadata': {'application': 'app', 'name': 't',"
								 " 'labels': {'l': 'v'}}, " REPORTED_TEMP_HUM "}");
	json_object *r;
	DgMachine	m;
	DgError		err;

	dg_machine_init(&m, NOW);
	r = process(&m, current, "{'merge': {'reportedState': {"
				"'temp': {'value': 20, 'lastUpdate': '2023-12-31T23:30:00Z'},"
				" 'hum': {'value': 51, 'lastUpdate': '2023-12-31T23:30:00Z'},"
				" 'new': {'value': 1, 'lastUpdate': '2023-12-31T23:45:00Z'}}}}", &err);
	is_str(str_at(r, "/reportedState/temp/lastUpdate"), T0,
		   "lastUpdate rule: an equal value restores the previous timestamp");
	is_str(str_at(r, "/reportedState/hum/lastUpdate"), NOW_TEXT,
		   "lastUpdate rule: a changed value gets now, whatever was given");
	is_str(str_at(r, "/reportedState/new/lastUpdate"), "2023-12-31T23:45:00Z",
		   "lastUpdate rule: a new key keeps the given timestamp (item 53)");
	ok(r && !has_at(r, "/internal"), "no internal after a plain update (item 53)");
	is_int(count(m.outbox) + count(m.commands), 0,
		   "no outbox and no commands (item 53)");
	json_object_put(r);
	dg_machine_reset(&m);

	dg_machine_init(&m, NOW);
	r = process(&m, current, "{'reportState': {'state': {'temp': 20}, 'partial': true}}", &err);
	ok(r && dg_json_equal(r, current), "a repeated identical report (merge) is a no-op");
	json_object_put(r);
	r = process(&m, current, "{'reportState': {'state': {'temp': 20.0, 'hum': 50}}}", &err);
	ok(r && dg_json_equal(r, current), "a repeated identical report (replace, 20.0) is a no-op");
	json_object_put(r);
	r = process(&m, current, "{'reportState': {'state': {'temp': 21}, 'partial': true}}", &err);
	is_json(at(r, "/reportedState"), "{'temp': {'value': 21, 'lastUpdate': '" NOW_TEXT "'},"
			" 'hum': {'value': 50, 'lastUpdate': '" T0 "'}}",
			"a changed report: only that feature gets now");
	json_object_put(r);
	r = process(&m, current, "{'patch': [{'op': 'replace', 'path': '/reportedState/temp/lastUpdate',"
				" 'value': '2023-12-31T23:59:00Z'}]}", &err);
	ok(r && dg_json_equal(r, current), "a timestamp-only rewrite is not a change");
	json_object_put(r);
	r = process(&m, current, "{'wakeup': {'reasons': ['reconcile']}}", &err);
	ok(r && dg_json_equal(r, current), "a wakeup of a thing without code is a no-op");
	json_object_put(r);
	dg_machine_reset(&m);
	json_object_put(current);
}

static void
test_machine_synthetics(void)
{
	json_object *current = canon("{" MD ", " REPORTED_TEMP_HUM ", 'syntheticState': {"
								 "'t': {'alias': 'temp', 'value': 20, 'lastUpdate': '" T0 "'},"
								 " 'm': {'alias': 'missing', 'value': null, 'lastUpdate': '" T0 "'}}}");
	json_object *stale = canon("{" MD ", " REPORTED_TEMP_HUM ", 'syntheticState': {"
							   "'t': {'alias': 'temp', 'value': 99, 'lastUpdate': '" T0 "'}}}");
	json_object *r;
	DgMachine	m;
	DgError		err;

	dg_machine_init(&m, NOW);
	r = process(&m, current, "{'reportState': {'state': {'temp': 20}, 'partial': true}}", &err);
	ok(r && dg_json_equal(r, current), "alias: unchanged source, nothing changes");
	json_object_put(r);
	r = process(&m, current, "{'reportState': {'state': {'temp': 21}, 'partial': true}}", &err);
	is_json(at(r, "/syntheticState/t"), "{'alias': 'temp', 'value': 21, 'lastUpdate': '" NOW_TEXT "'}",
			"alias follows the reported value; lastUpdate now");
	is_json(at(r, "/syntheticState/m"), "{'alias': 'missing', 'value': null, 'lastUpdate': '" T0 "'}",
			"alias of a missing feature stays null with its timestamp");
	json_object_put(r);
	r = process(&m, current, "{'reportState': {'state': {'hum': 50}}}", &err);
	is_json(at(r, "/syntheticState/t"), "{'alias': 'temp', 'value': null, 'lastUpdate': '" NOW_TEXT "'}",
			"alias becomes null when the reported feature goes away");
	json_object_put(r);
	r = process(&m, stale, "{'wakeup': {}}", &err);
	is_json(at(r, "/syntheticState/t"), "{'alias': 'temp', 'value': 20, 'lastUpdate': '" NOW_TEXT "'}",
			"alias recomputed on every processing");
	json_object_put(r);
	r = process(&m, current, "{'merge': {'syntheticState': {'n': {'alias': 'hum'}}}}", &err);
	is_json(at(r, "/syntheticState/n"), "{'alias': 'hum', 'value': 50, 'lastUpdate': '" NOW_TEXT "'}",
			"a new alias is computed in the same run");
	json_object_put(r);
	dg_machine_reset(&m);
	json_object_put(current);
	json_object_put(stale);
}

static void
test_machine_metadata(void)
{
	json_object *current = canon("{'metadata': {'application': 'app', 'name': 't', 'uid': 'u1',"
								 " 'creationTimestamp': '2023-01-01T00:00:00Z', 'generation': 3,"
								 " 'resourceVersion': 'rv1'}}");
	json_object *empty = dg_thing_new("app", "t");
	json_object *input;
	json_object *thing;
	json_object *op_arg;
	DgOp		op;
	DgMachine	m;
	DgError		err;
	bool		res;

	/* a full replace that tries to change the identity */
	dg_machine_init(&m, NOW);
	op_arg = J("{'metadata': {'application': 'app', 'name': 'other', 'uid': 'evil',"
			   " 'generation': 99, 'labels': {'l': 'v'}}}");
	memset(&op, 0, sizeof(op));
	op.kind = DG_OP_REPLACE;
	op.arg = op_arg;
	thing = dg_json_copy(current);
	dg_error_clear(&err);
	res = dg_op_apply(&thing, &op, NOW, &err) && dg_machine_reconcile(&m, current, &thing, &err);
	ok(res, "replace through the machine succeeds");
	is_json(at(thing, "/metadata"), "{'application': 'app', 'name': 't', 'uid': 'u1',"
			" 'creationTimestamp': '2023-01-01T00:00:00Z', 'generation': 3,"
			" 'resourceVersion': 'rv1', 'labels': {'l': 'v'}}",
			"immutable metadata restored after the machine, labels kept");
	json_object_put(thing);
	json_object_put(op_arg);
	dg_machine_reset(&m);

	/* 10.3 item 52: create through the machine */
	dg_machine_init(&m, NOW);
	input = canon("{'metadata': {'application': 'app', 'name': 't', 'uid': 'x', 'generation': 7,"
				  " 'creationTimestamp': '" T0 "', 'resourceVersion': 'r', 'annotations': {'a': 'b'}},"
				  " 'reportedState': {'a': {'value': 1, 'lastUpdate': '" T0 "'}},"
				  " 'reconciliation': {'deleting': {'d': {'javaScript': 'x'}}}}");
	thing = dg_json_copy(input);
	dg_error_clear(&err);
	ok(dg_machine_reconcile(&m, empty, &thing, &err), "create through the machine succeeds");
	is_json(thing, "{'metadata': {'application': 'app', 'name': 't', 'annotations': {'a': 'b'}},"
			" 'reportedState': {'a': {'value': 1, 'lastUpdate': '" T0 "'}},"
			" 'reconciliation': {'deleting': {'d': {'javaScript': 'x'}}}}",
			"create: system fields dropped, everything else as given (item 52)");
	is_int(count(m.outbox) + count(m.commands), 0,
		   "create: no outbox, no commands");
	json_object_put(thing);
	json_object_put(input);
	dg_machine_reset(&m);

	json_object_put(current);
	json_object_put(empty);
}

/* ---- desired.c: the sync table of 3.10.1 ---- */

#define REP_X(v) "'reportedState': {'x': {'value': " v ", 'lastUpdate': '" T0 "'}}"

static void
test_machine_sync(void)
{
	json_object *r,
			   *again,
			   *current;
	DgMachine	m;
	DgError		err;

	/* a new feature, external method, reported value equal: succeeded */
	r = run_case(&m, "{" MD ", " REP_X("1") "}",
				 "{'merge': {'desiredState': {'x': {'value': 1}}}}", NOW, &err);
	is_json(at(r, "/desiredState/x"), "{'value': 1, 'lastUpdate': '" NOW_TEXT "',"
			" 'reconciliation': {'state': 'succeeded', 'when': '" NOW_TEXT "'}, 'method': 'external'}",
			"new external feature with an equal reported value: succeeded");
	is_int(count(m.commands), 0, "external method sends nothing");
	json_object_put(r);
	dg_machine_reset(&m);

	r = run_case(&m, "{" MD ", " REP_X("1") "}",
				 "{'merge': {'desiredState': {'x': {'value': 2}}}}", NOW, &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'reconciling'}",
			"new feature with a different reported value: reconciling");
	ok(r && !has_at(r, "/internal"), "reconciling without validUntil requests no waker");
	json_object_put(r);
	dg_machine_reset(&m);

	/* change reset */
#define SUCCEEDED_X1 \
	"'desiredState': {'x': {'value': 1, 'lastUpdate': '" T0 "'," \
	" 'reconciliation': {'state': 'succeeded', 'when': '" T0 "'}}}"
	r = run_case(&m, "{" MD ", " REP_X("1") ", " SUCCEEDED_X1 "}",
				 "{'setDesiredValue': {'values': {'x': 2}}}", NOW, &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'reconciling'}",
			"a value change resets the state to reconciling");
	is_str(str_at(r, "/desiredState/x/lastUpdate"), NOW_TEXT, "a value change sets lastUpdate to now");
	json_object_put(r);
	dg_machine_reset(&m);

	r = run_case(&m, "{" MD ", " REP_X("1") ", " SUCCEEDED_X1 "}",
				 "{'setDesiredValue': {'values': {'x': {'value': 1,"
				 " 'validUntil': '2024-01-02T00:00:00Z'}}}}", NOW, &err);
	is_str(str_at(r, "/desiredState/x/lastUpdate"), NOW_TEXT,
		   "a validUntil change sets lastUpdate to now");
	is_json(at(r, "/desiredState/x/reconciliation"),
			"{'state': 'succeeded', 'when': '" NOW_TEXT "'}",
			"a validUntil change resets, then the equal value succeeds again");
	json_object_put(r);
	dg_machine_reset(&m);

	current = canon("{" MD ", " REP_X("1") ", " SUCCEEDED_X1 "}");
	dg_machine_init(&m, NOW);
	r = process(&m, current, "{'setDesiredValue': {'values': {'x': 1}}}", &err);
	ok(r && dg_json_equal(r, current), "setting the same desired value is a no-op");
	json_object_put(r);
	dg_machine_reset(&m);
	json_object_put(current);

	/* row g */
	r = run_case(&m, "{" MD ", " REP_X("1") ", 'desiredState': {'x': {'value': 2, 'lastUpdate': '" T0 "',"
				 " 'validUntil': '" T0 "', 'reconciliation': {'state': 'reconciling'}}}}",
				 "{'wakeup': {}}", NOW, &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'failed', 'when': '" NOW_TEXT "'}",
			"g: reconciling with validUntil in the past: failed, no reason");
	json_object_put(r);
	dg_machine_reset(&m);

	current = canon("{" MD ", " REP_X("1") ", 'desiredState': {'x': {'value': 2, 'lastUpdate': '" T0 "',"
					" 'validUntil': '2024-01-01T01:00:00Z'}}}");
	dg_machine_init(&m, NOW);
	r = process(&m, current, "{'wakeup': {}}", &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'reconciling'}",
			"g: reconciling with validUntil in the future stays reconciling");
	is_json(at(r, "/internal"), "{'waker': {'when': '2024-01-01T01:00:00Z', 'why': ['reconcile']}}",
			"g: waker requested at validUntil");
	again = r ? process(&m, r, "{'wakeup': {}}", &err) : NULL;
	ok(again && dg_json_equal(again, r), "g: processing again is a no-op (waker requested again)");
	json_object_put(again);
	json_object_put(r);
	dg_machine_reset(&m);
	json_object_put(current);

	r = run_case(&m, "{" MD ", " REP_X("2") ", 'desiredState': {'x': {'value': 2, 'lastUpdate': '" T0 "',"
				 " 'validUntil': '2024-01-01T01:00:00Z'}}}", "{'wakeup': {}}", NOW, &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'succeeded', 'when': '" NOW_TEXT "'}",
			"g: reconciling with an equal reported value: succeeded");
	ok(r && !has_at(r, "/internal"), "g: succeeded requests no waker");
	json_object_put(r);
	dg_machine_reset(&m);

	/* row c */
#define DISABLED_X2(until) \
	"'desiredState': {'x': {'value': 2, 'mode': 'disabled', 'lastUpdate': '" T0 "'" until "," \
	" 'reconciliation': {'state': 'disabled', 'when': '" T0 "'}}}"
	r = run_case(&m, "{" MD ", " REP_X("1") ", " DISABLED_X2(", 'validUntil': '" T0 "'") "}",
				 "{'merge': {'desiredState': {'x': {'mode': 'sync'}}}}", NOW, &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'failed', 'when': '" NOW_TEXT "',"
			" 'reason': 'Activated reconciliation with expired value'}",
			"c: disabled -> sync with an expired value: failed with reason");
	ok(r && !has_at(r, "/desiredState/x/mode"), "c: mode sync omitted");
	json_object_put(r);
	dg_machine_reset(&m);

	r = run_case(&m, "{" MD ", " REP_X("1") ", " DISABLED_X2("") "}",
				 "{'merge': {'desiredState': {'x': {'mode': 'sync'}}}}", NOW, &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'reconciling'}",
			"c: disabled -> sync with a valid value: reconciling");
	json_object_put(r);
	dg_machine_reset(&m);

	r = run_case(&m, "{" MD ", " REP_X("2") ", " DISABLED_X2("") "}",
				 "{'merge': {'desiredState': {'x': {'mode': 'once'}}}}", NOW, &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'succeeded', 'when': '" NOW_TEXT "'}",
			"c: disabled -> once with an equal value: succeeded");
	is_str(str_at(r, "/desiredState/x/mode"), "once", "c: mode once kept");
	json_object_put(r);
	dg_machine_reset(&m);

	/* row b and a */
	r = run_case(&m, "{" MD ", " REP_X("1") ", " SUCCEEDED_X1 "}",
				 "{'merge': {'desiredState': {'x': {'mode': 'disabled'}}}}", NOW, &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'disabled', 'when': '" NOW_TEXT "'}",
			"b: succeeded -> disabled: disabled now");
	json_object_put(r);
	dg_machine_reset(&m);

	current = canon("{" MD ", " REP_X("1") ", " DISABLED_X2("") "}");
	dg_machine_init(&m, NOW);
	r = process(&m, current, "{'wakeup': {}}", &err);
	ok(r && dg_json_equal(r, current), "a: disabled and disabled: unchanged");
	json_object_put(r);
	r = process(&m, current, "{'setDesiredValue': {'values': {'x': 5}}}", &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'disabled', 'when': '" NOW_TEXT "'}",
			"b: a value change on a disabled feature: disabled with a fresh when");
	is_str(str_at(r, "/desiredState/x/lastUpdate"), NOW_TEXT, "b: lastUpdate now");
	json_object_put(r);
	dg_machine_reset(&m);
	json_object_put(current);

	/* row d */
#define SUCCEEDED_X1_UNTIL(until) \
	"'desiredState': {'x': {'value': 1, 'lastUpdate': '" T0 "', 'validUntil': '" until "'," \
	" 'reconciliation': {'state': 'succeeded', 'when': '" T0 "'}}}"
	r = run_case(&m, "{" MD ", " REP_X("1") ", " SUCCEEDED_X1_UNTIL("2024-01-01T02:00:00Z") "}",
				 "{'reportState': {'state': {'x': 2}, 'partial': true}}", NOW, &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'reconciling'}",
			"d: succeeded + sync, drift while valid: reconciling");
	is_json(at(r, "/internal/waker"), "{'when': '2024-01-01T02:00:00Z', 'why': ['reconcile']}",
			"d: waker at validUntil");
	json_object_put(r);
	dg_machine_reset(&m);

	r = run_case(&m, "{" MD ", " REP_X("1") ", " SUCCEEDED_X1 "}",
				 "{'reportState': {'state': {'x': 2}, 'partial': true}}", NOW, &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'reconciling'}",
			"d: drift without validUntil: reconciling");
	ok(r && !has_at(r, "/internal"), "d: no validUntil, no waker");
	json_object_put(r);
	dg_machine_reset(&m);

	r = run_case(&m, "{" MD ", " REP_X("1") ", " SUCCEEDED_X1_UNTIL(T0) "}",
				 "{'reportState': {'state': {'x': 2}, 'partial': true}}", NOW, &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'succeeded', 'when': '" T0 "'}",
			"d: drift after expiry: unchanged");
	json_object_put(r);
	dg_machine_reset(&m);

	/* row e */
	r = run_case(&m, "{" MD ", " REP_X("1") ", 'desiredState': {'x': {'value': 1, 'mode': 'once',"
				 " 'lastUpdate': '" T0 "', 'reconciliation': {'state': 'succeeded', 'when': '" T0 "'}}}}",
				 "{'reportState': {'state': {'x': 2}, 'partial': true}}", NOW, &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'succeeded', 'when': '" T0 "'}",
			"e: succeeded + once, drift: unchanged");
	json_object_put(r);
	dg_machine_reset(&m);

	/* row f */
	r = run_case(&m, "{" MD ", " REP_X("2") ", 'desiredState': {'x': {'value': 1, 'lastUpdate': '" T0 "',"
				 " 'reconciliation': {'state': 'failed', 'when': '" T0 "',"
				 " 'reason': 'The dog ate my command'}}}}",
				 "{'reportState': {'state': {'x': 1}, 'partial': true}}", NOW, &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'failed', 'when': '" T0 "',"
			" 'reason': 'The dog ate my command'}",
			"f: failed stays failed even when the value now matches");
	json_object_put(r);
	dg_machine_reset(&m);

	/* manual */
	r = run_case(&m, "{" MD ", " REP_X("1") ", 'desiredState': {'x': {'value': 1, 'lastUpdate': '" T0 "',"
				 " 'method': 'manual'}}}", "{'wakeup': {}}", NOW, &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'reconciling'}",
			"manual: the state machine is skipped");
	json_object_put(r);
	dg_machine_reset(&m);
	r = run_case(&m, "{" MD ", " REP_X("1") ", 'desiredState': {'x': {'value': 1, 'lastUpdate': '" T0 "',"
				 " 'method': 'manual', 'reconciliation': {'state': 'succeeded', 'when': '" T0 "'}}}}",
				 "{'setDesiredValue': {'values': {'x': 2}}}", NOW, &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'reconciling'}",
			"manual: a value change still resets to reconciling");
	is_str(str_at(r, "/desiredState/x/lastUpdate"), NOW_TEXT, "manual: lastUpdate now");
	json_object_put(r);
	dg_machine_reset(&m);

	/* the synthetic value wins over the reported one */
	r = run_case(&m, "{" MD ", 'reportedState': {'x': {'value': 1, 'lastUpdate': '" T0 "'},"
				 " 'y': {'value': 5, 'lastUpdate': '" T0 "'}},"
				 " 'syntheticState': {'x': {'alias': 'y', 'value': 5, 'lastUpdate': '" T0 "'}},"
				 " 'desiredState': {'x': {'value': 5, 'lastUpdate': '" T0 "'}}}",
				 "{'wakeup': {}}", NOW, &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'succeeded', 'when': '" NOW_TEXT "'}",
			"sync compares with the synthetic value first");
	json_object_put(r);
	dg_machine_reset(&m);

	/* a missing reported value is null */
	r = run_case(&m, "{" MD ", 'desiredState': {'x': {'value': null, 'lastUpdate': '" T0 "'}}}",
				 "{'wakeup': {}}", NOW, &err);
	is_json(at(r, "/desiredState/x/reconciliation"), "{'state': 'succeeded', 'when': '" NOW_TEXT "'}",
			"a null desired value matches a missing reported value");
	json_object_put(r);
	dg_machine_reset(&m);
}

/* ---- desired.c: the command method (8.2) ---- */

static void
test_machine_commands(void)
{
	json_object *r;
	DgMachine	m;
	DgError		err;

	r = run_case(&m, "{" MD ", 'desiredState': {'temp': {'value': 23, 'lastUpdate': '" T0 "',"
				 " 'method': {'command': {'period': '30s'}}}}}", "{'wakeup': {}}", NOW, &err);
	is_json(m.commands, "[{'device': 't', 'channel': 'temp', 'payload': 23}]",
			"raw command: device is the thing name, channel the feature");
	is_json(at(r, "/desiredState/temp/reconciliation"),
			"{'state': 'reconciling', 'lastAttempt': '" NOW_TEXT "'}",
			"a command sets lastAttempt to now");
	ok(r && !has_at(r, "/internal"), "passive mode requests no waker");
	json_object_put(r);
	dg_machine_reset(&m);

	r = run_case(&m, "{'metadata': {'application': 'app', 'name': 'device1/sensor',"
				 " 'annotations': {'drogue.io/device': 'device1'}},"
				 " 'desiredState': {'temperature': {'value': 23, 'lastUpdate': '" T0 "',"
				 " 'method': {'command': {'period': '5s', 'encoding': 'raw'}}}}}",
				 "{'wakeup': {}}", NOW, &err);
	is_json(m.commands, "[{'device': 'device1', 'channel': 'temperature', 'payload': 23}]",
			"annotation drogue.io/device names the device");
	json_object_put(r);
	dg_machine_reset(&m);

	/* aggregation: raw first, then aggregates by device, then channel */
	r = run_case(&m, "{'metadata': {'application': 'app', 'name': 't',"
				 " 'annotations': {'drogue.io/device': 'dev', 'drogue.io/channel': 'ann'}},"
				 " 'desiredState': {"
				 "'a': {'value': 1, 'lastUpdate': '" T0 "', 'method': {'command': {'period': '30s',"
				 "  'encoding': {'channel': 'c'}}}},"
				 "'b': {'value': 2, 'lastUpdate': '" T0 "', 'method': {'command': {'period': '30s',"
				 "  'encoding': {'channel': 'c'}}}},"
				 "'q': {'value': 5, 'lastUpdate': '" T0 "', 'method': {'command': {'period': '30s',"
				 "  'encoding': {'remap': {'device': 'other', 'channel': 'x'}}}}},"
				 "'r': {'value': 3, 'lastUpdate': '" T0 "', 'method': {'command': {'period': '30s',"
				 "  'encoding': 'raw'}}},"
				 "'z': {'value': 4, 'lastUpdate': '" T0 "', 'method': {'command': {'period': '30s'}}}}}",
				 "{'wakeup': {}}", NOW, &err);
	is_json(m.commands, "[{'device': 'dev', 'channel': 'r', 'payload': 3},"
			" {'device': 'dev', 'channel': 'ann', 'payload': {'z': 4}},"
			" {'device': 'dev', 'channel': 'c', 'payload': {'a': 1, 'b': 2}},"
			" {'device': 'other', 'channel': 'x', 'payload': {'q': 5}}]",
			"channel encoding, drogue.io/channel and remap aggregate after the raw commands");
	is_str(dg_json_text(at(m.commands, "/2/payload"), NULL), "{\"a\":1,\"b\":2}",
		   "an aggregated payload has its keys sorted");
	ok(contains(str_at(r, "/desiredState/a/reconciliation/lastAttempt"), NOW_TEXT) &&
	   contains(str_at(r, "/desiredState/q/reconciliation/lastAttempt"), NOW_TEXT) &&
	   contains(str_at(r, "/desiredState/z/reconciliation/lastAttempt"), NOW_TEXT),
	   "every feature that sent gets lastAttempt");
	json_object_put(r);
	dg_machine_reset(&m);

	/* period gating */
#define GATED(mode, last) \
	"{" MD ", 'desiredState': {'temp': {'value': 23, 'lastUpdate': '" T0 "'," \
	" 'reconciliation': {'state': 'reconciling', 'lastAttempt': '" last "'}," \
	" 'method': {'command': {'period': '30s'" mode "}}}}}"
	r = run_case(&m, GATED("", "2023-12-31T23:59:50Z"), "{'wakeup': {}}", NOW, &err);
	is_int(count(m.commands), 0, "passive: no command before lastAttempt + period");
	is_str(str_at(r, "/desiredState/temp/reconciliation/lastAttempt"), "2023-12-31T23:59:50Z",
		   "passive: lastAttempt unchanged");
	ok(r && !has_at(r, "/internal"), "passive: no waker");
	json_object_put(r);
	dg_machine_reset(&m);

	r = run_case(&m, GATED(", 'mode': 'active'", "2023-12-31T23:59:50Z"), "{'wakeup': {}}", NOW, &err);
	is_int(count(m.commands), 0, "active: no command before lastAttempt + period");
	is_json(at(r, "/internal/waker"), "{'when': '2024-01-01T00:00:20Z', 'why': ['reconcile']}",
			"active: waker at lastAttempt + period");
	json_object_put(r);
	dg_machine_reset(&m);

	r = run_case(&m, GATED(", 'mode': 'active'", "2023-12-31T23:59:00Z"), "{'wakeup': {}}", NOW, &err);
	is_int(count(m.commands), 1, "active: a command once the period has passed");
	is_str(str_at(r, "/desiredState/temp/reconciliation/lastAttempt"), NOW_TEXT,
		   "active: lastAttempt now");
	is_str(str_at(r, "/internal/waker/when"), "2024-01-01T00:00:30Z", "active: waker at now + period");
	json_object_put(r);
	dg_machine_reset(&m);

	r = run_case(&m, GATED("", "2023-12-31T23:59:30Z"), "{'wakeup': {}}", NOW, &err);
	is_int(count(m.commands), 1, "a command exactly at lastAttempt + period");
	json_object_put(r);
	dg_machine_reset(&m);

	r = run_case(&m, "{" MD ", 'reportedState': {'temp': {'value': 23, 'lastUpdate': '" T0 "'}},"
				 " 'desiredState': {'temp': {'value': 23, 'lastUpdate': '" T0 "',"
				 " 'method': {'command': {'period': '30s'}}}}}", "{'wakeup': {}}", NOW, &err);
	is_int(count(m.commands), 0, "a succeeded feature sends no command");
	ok(r && !has_at(r, "/desiredState/temp/reconciliation/lastAttempt"),
	   "a succeeded feature gets no lastAttempt");
	json_object_put(r);
	dg_machine_reset(&m);

	/* a device name with \x01 must survive the aggregation */
	r = run_case(&m, "{" MD ", 'desiredState': {'f': {'value': 1, 'lastUpdate': '" T0 "',"
				 " 'method': {'command': {'period': '30s', 'encoding': {'remap':"
				 " {'device': 'd\\u0001x', 'channel': 'c'}}}}}}}", "{'wakeup': {}}", NOW, &err);
	is_json(m.commands, "[{'device': 'd\\u0001x', 'channel': 'c', 'payload': {'f': 1}}]",
			"remap to a device name holding \\x01 keeps device and channel apart");
	json_object_put(r);
	dg_machine_reset(&m);
}

/* ---- machine.c: timers that are not due, and code without a runner ---- */

#define TIMER(fields) \
	"{" MD ", 'reconciliation': {'timers': {'t': {'javaScript': 'x', " fields "}}}}"

static void
check_timer_next(const char *what, const char *fields, const char *now, const char *want)
{
	DgMachine	m;
	DgError		err;
	char		text[1024];
	json_object *r;

	snprintf(text, sizeof(text), TIMER("%s"), fields);
	r = run_case(&m, text, "{'wakeup': {}}", T(now), &err);

	is_str(str_at(r, "/internal/waker/when"), want, "timer %s: next run", what);
	dg_machine_reset(&m);
	json_object_put(r);
}

static void
test_machine_timers(void)
{
	DgMachine	m;
	DgError		err;
	json_object *r;

	/* 10.3 item 54, through lastRun */
	check_timer_next("1s at 00:01:00", "'period': '1s', 'lastStarted': '2024-01-01T00:00:00Z',"
					 " 'lastRun': '2024-01-01T00:01:00Z'", "2024-01-01T00:01:00.5Z",
					 "2024-01-01T00:01:01Z");
	check_timer_next("10s at 00:01:02", "'period': '10s', 'lastStarted': '2024-01-01T00:00:00Z',"
					 " 'lastRun': '2024-01-01T00:01:02Z'", "2024-01-01T00:01:05Z",
					 "2024-01-01T00:01:10Z");
	check_timer_next("1s at 00:00:01", "'period': '1s', 'lastStarted': '2024-01-01T00:00:00Z',"
					 " 'lastRun': '2024-01-01T00:00:01Z'", "2024-01-01T00:00:01.5Z",
					 "2024-01-01T00:00:02Z");

	r = run_case(&m, TIMER("'period': '1m', 'initialDelay': '10s'"), "{'wakeup': {}}", NOW, &err);
	is_json(at(r, "/reconciliation/timers/t"), "{'javaScript': 'x', 'period': '1m', 'stopped': false,"
			" 'initialDelay': '10s', 'lastStarted': '" NOW_TEXT "'}",
			"timer with initialDelay: lastStarted set to now, not run");
	is_str(str_at(r, "/internal/waker/when"), "2024-01-01T00:00:10Z", "timer: waker at now + initialDelay");
	json_object_put(r);
	dg_machine_reset(&m);

	r = run_case(&m, TIMER("'period': '1m', 'stopped': true, 'lastStarted': '" T0 "'"),
				 "{'wakeup': {}}", NOW, &err);
	is_json(at(r, "/reconciliation/timers/t"), "{'javaScript': 'x', 'period': '1m', 'stopped': true}",
			"stopped timer: lastStarted removed");
	ok(r && !has_at(r, "/internal"), "stopped timer: no waker");
	json_object_put(r);
	dg_machine_reset(&m);

	/* due: the hook must run, and there is no runner */
	dg_machine_init(&m, NOW);
	{
		json_object *current = canon(TIMER("'period': '1m'"));

		r = process(&m, current, "{'wakeup': {}}", &err);
		ok(r == NULL && err.kind == DG_ERR_HOOK && contains(err.message, "\"t\""),
		   "a due timer without a hook runner fails with DG_ERR_HOOK naming the timer");
		json_object_put(r);
		json_object_put(current);
	}
	dg_machine_reset(&m);
}

static void
check_needs_runner(const char *what, const char *thing_text, const char *name)
{
	DgMachine	m;
	DgError		err;
	json_object *current = canon(thing_text);
	json_object *r;

	dg_machine_init(&m, NOW);
	r = process(&m, current, "{'wakeup': {}}", &err);
	ok(r == NULL && err.kind == DG_ERR_HOOK && contains(err.message, name),
	   "%s without a hook runner fails with DG_ERR_HOOK", what);
	if (r != NULL || err.kind != DG_ERR_HOOK)
		diag("error %d: %s", err.kind, err.message);
	json_object_put(r);
	json_object_put(current);
	dg_machine_reset(&m);
}

static void
test_machine_code(void)
{
	check_needs_runner("a javaScript synthetic",
					   "{" MD ", 'syntheticState': {'syn': {'javaScript': '1'}}}", "\"syn\"");
	check_needs_runner("a function synthetic",
					   "{" MD ", 'syntheticState': {'fs': {'function': 'public.f'}}}", "\"fs\"");
	check_needs_runner("a changed hook",
					   "{" MD ", 'reconciliation': {'changed': {'hk': {'javaScript': 'x'}}}}", "\"hk\"");
	check_needs_runner("a reconciling code method",
					   "{" MD ", 'desiredState': {'cd': {'value': 1, 'lastUpdate': '" T0 "',"
					   " 'method': {'code': {'javaScript': 'true'}}}}}", "\"cd\"");
}

/* ---- machine.c: validation ---- */

#define SCHEMA "'schema': {'json': {'version': 'draft7', 'schema': {'type': 'object'," \
	" 'properties': {'reportedState': {'type': 'object'," \
	" 'properties': {'temp': {'type': 'number'}}}}}}}"

static void
test_validate(void)
{
	json_object *thing = canon("{" MD ", 'reportedState': {'temp': {'value': 20}}}");
	json_object *current;
	json_object *r;
	DgMachine	m;
	DgError		err;

	dg_error_clear(&err);
	ok(dg_machine_validate(thing, &err), "a thing without schema validates");
	json_object_put(thing);

	thing = canon("{" MD ", " SCHEMA ", 'reportedState': {'temp': {'value': 20}}}");
	dg_error_clear(&err);
	ok(dg_machine_validate(thing, &err), "a valid state validates against the schema");
	json_object_put(thing);
	thing = canon("{" MD ", " SCHEMA ", 'reportedState': {'temp': {'value': 'hot'}}}");
	dg_error_clear(&err);
	ok(!dg_machine_validate(thing, &err) && err.kind == DG_ERR_VALIDATION,
	   "an invalid state fails with DG_ERR_VALIDATION");
	json_object_put(thing);

	current = canon("{" MD ", " SCHEMA ", 'reportedState': {'temp': {'value': 20,"
					" 'lastUpdate': '" T0 "'}}}");
	dg_machine_init(&m, NOW);
	r = process(&m, current, "{'reportState': {'state': {'temp': 'hot'}, 'partial': true}}", &err);
	ok(r == NULL && err.kind == DG_ERR_VALIDATION, "the machine rejects a report the schema refuses");
	json_object_put(r);
	r = process(&m, current, "{'reportState': {'state': {'temp': 21}, 'partial': true}}", &err);
	ok(r != NULL, "the machine accepts a report the schema allows");
	json_object_put(r);
	dg_machine_reset(&m);
	json_object_put(current);
}

/* Number equality is exact, by value, as jsonb's (json.c). */
static void
test_number_equality(void)
{
	static const struct
	{
		const char *a;
		const char *b;
		bool		equal;
	}			cases[] = {
		{"42", "42.0", true},
		{"42", "4.2e1", true},
		{"0.5", "5e-1", true},
		{"-0.0", "0", true},
		{"100", "1e2", true},
		{"1.10", "1.1", true},
		{"0.1000000000000000000001", "0.1000000000000000000002", false},
		{"12345678901234567890.5", "12345678901234567890.6", false},
		{"9223372036854775807", "9223372036854775806", false},
		{"1", "-1", false},
		{"0.001", "0.01", false},
		{"1e300", "1e301", false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		json_object *a = J(cases[i].a);
		json_object *b = J(cases[i].b);

		ok(dg_json_equal(a, b) == cases[i].equal, "%s %s %s", cases[i].a,
		   cases[i].equal ? "equals" : "differs from", cases[i].b);
		json_object_put(a);
		json_object_put(b);
	}
}

int
main(void)
{
	NOW = T(NOW_TEXT);
	test_time();
	test_number_equality();
	test_duration();
	test_delay();
	test_names();
	test_canonical();
	test_waker();
	test_restore_and_view();
	test_messages();
	test_report_state();
	test_merge_patch();
	test_set_desired();
	test_string_maps();
	test_synthetic_put();
	test_desired_put();
	test_children();
	test_reconciliation_put();
	test_replace();
	test_machine_reported();
	test_machine_synthetics();
	test_machine_metadata();
	test_machine_sync();
	test_machine_commands();
	test_machine_timers();
	test_machine_code();
	test_validate();
	return done_testing();
}
