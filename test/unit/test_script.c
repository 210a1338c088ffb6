/*-------------------------------------------------------------------------
 *
 * test_script.c
 *		Unit tests of the JavaScript hook runner (src/script.c) and of the
 *		reconciliation machine running real JavaScript (src/machine.c,
 *		src/desired.c), plus the code-owner stamping of src/thing.c.
 *
 * The first part calls dg_script_run directly with hand-built contexts: the
 * script contract of §3.6 (completion values of synthetics, the context
 * round trip, the helpers), isolation between runs, the compiled-code cache,
 * and every way a script can fail (syntax, exceptions, time, memory,
 * interruption, output JSON cannot hold).
 *
 * The second part runs the machine with a hook runner that calls the real
 * dg_script_run (not a mock): synthetics (§3.7, E8), changed hooks (§3.8,
 * E2, §10.2 items 16-19), timers (§3.9, §10.2 items 21-26), the desired
 * code method (§3.10.3) and deleting hooks.  Time is simulated: every
 * reconcile is given an explicit "now", starting at 2024-01-01T00:00:00Z.
 *
 * Test documents are written with single quotes, which J() turns into
 * double quotes; a backquote stands for an escaped double quote (\"), so
 * the JavaScript inside a JSON test document writes its string literals
 * with backquotes: 'javaScript': 'log(`hi`)' is the script log("hi").
 * (ES5.1 has no template strings, so no script needs a real backquote.)
 *
 * Duktape's heap is process-wide; dg_script_reset() at the end frees it so
 * that the program stays clean under valgrind.
 *
 * test/unit/test_script.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg.h"
#include "tap.h"
#include "fixtures.h"

#define NOW_TEXT "2024-01-01T00:00:00Z"
#define T0 "2023-12-31T23:00:00Z"
#define MD "'metadata': {'application': 'app', 'name': 't'}"
#define MB (1024 * 1024)

static dg_time NOW;

/* ---- helpers ---- */

static long long
int_at(json_object *doc, const char *pointer)
{
	json_object *v = at(doc, pointer);

	return json_object_get_type(v) == json_type_int ? (long long) json_object_get_int64(v) : -999999;
}


/* Whether s is well-formed UTF-8 (no overlong forms, no surrogates, <= U+10FFFF). */
static bool
valid_utf8(const char *str)
{
	const unsigned char *s = (const unsigned char *) str;

	if (s == NULL)
		return false;
	while (*s)
	{
		unsigned int c = *s;
		int			n;
		unsigned int cp;

		if (c < 0x80)
		{
			s++;
			continue;
		}
		else if ((c & 0xE0) == 0xC0)
			n = 1, cp = c & 0x1F;
		else if ((c & 0xF0) == 0xE0)
			n = 2, cp = c & 0x0F;
		else if ((c & 0xF8) == 0xF0)
			n = 3, cp = c & 0x07;
		else
			return false;
		for (int i = 1; i <= n; i++)
		{
			if ((s[i] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i] & 0x3F);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
			(cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
			return false;
		s += n + 1;
	}
	return true;
}

static void
hexdump_diag(const char *what, const char *s)
{
	char		buf[256];
	size_t		o = 0;

	for (const unsigned char *p = (const unsigned char *) s; p && *p && o + 4 < sizeof(buf); p++)
		o += snprintf(buf + o, sizeof(buf) - o, "%02x ", *p);
	buf[o] = '\0';
	diag("%s bytes: %s", what, buf);
}

/* ---- part 1: dg_script_run directly ---- */

static const char *
kind_of(DgHookAction action)
{
	switch (action)
	{
		case DG_ACTION_CHANGED:
			return "changed hook";
		case DG_ACTION_TIMER:
			return "timer";
		case DG_ACTION_DELETING:
			return "deleting hook";
		case DG_ACTION_SYNTHETIC:
			return "synthetic";
		case DG_ACTION_DESIRED:
			return "desired state code";
	}
	return "?";
}

static DgScriptLimits
limits_ms(int ms, size_t heap)
{
	DgScriptLimits l;

	memset(&l, 0, sizeof(l));
	l.deadline_ns = dg_monotonic_ns() + (int64_t) ms * DG_NS_PER_MS;
	l.timeout_ms = ms;
	l.heap_limit = heap;
	l.interrupted = NULL;
	return l;
}

/* Run code (an object such as {"javaScript": ...}) with a context object. */
static bool
run_code(DgHookAction action, const char *name, json_object *code, json_object *ctx,
		 const DgScriptLimits *lim, json_object **result, DgError *err)
{
	DgHookCall	call;
	DgScriptLimits def;

	call.action = action;
	call.kind = kind_of(action);
	call.name = name;
	call.code = code;
	call.context = ctx;
	if (lim == NULL)
	{
		def = limits_ms(1000, 4 * MB);
		lim = &def;
	}
	dg_error_clear(err);
	return dg_script_run(&call, lim, result, err);
}

/* Run JavaScript source (a C string, not a J document) with a context given as J text. */
static bool
run_js_lim(DgHookAction action, const char *name, const char *source, const char *ctx_text,
		   const DgScriptLimits *lim, json_object **result, DgError *err)
{
	json_object *code = json_object_new_object();
	json_object *ctx = J(ctx_text);
	bool		res;

	dg_json_set(code, "javaScript", json_object_new_string(source));
	res = run_code(action, name, code, ctx, lim, result, err);
	json_object_put(code);
	json_object_put(ctx);
	return res;
}

/* A run expected to succeed: the result, or NULL (with a diagnostic). */
static json_object *
run_ok(DgHookAction action, const char *source, const char *ctx_text)
{
	json_object *result = NULL;
	DgError		err;

	if (!run_js_lim(action, "h", source, ctx_text, NULL, &result, &err))
	{
		diag("script failed: %s", err.message);
		return NULL;
	}
	return result;
}

#define SYN_CTX \
	"{'newState': {" MD ", 'reportedState': {'temp': {'value': 2, 'lastUpdate': '" T0 "'}}}," \
	" 'action': 'synthetic'}"

#define HOOK_CTX \
	"{'currentState': {" MD ", 'reportedState': {'temp': {'value': 1, 'lastUpdate': '" T0 "'}}}," \
	" 'newState': {" MD ", 'reportedState': {'temp': {'value': 2, 'lastUpdate': '" T0 "'}}}," \
	" 'action': 'changed', 'outbox': [], 'logs': []}"

/* A synthetic's completion value. */
static void
check_synthetic(const char *source, const char *want, const char *name)
{
	json_object *r = run_ok(DG_ACTION_SYNTHETIC, source, SYN_CTX);
	char		w[512];

	snprintf(w, sizeof(w), "{'value': %s}", want);
	is_json(r, w, "synthetic completion value: %s", name);
	json_object_put(r);
}

static void
test_synthetic_values(void)
{
	check_synthetic("1 + 2", "3", "a number");
	check_synthetic("'a' + 'b'", "'ab'", "a string");
	check_synthetic("({a: [1, 2], b: null, c: {d: true}})", "{'a': [1, 2], 'b': null, 'c': {'d': true}}",
					"an object");
	check_synthetic("undefined", "null", "undefined becomes null");
	check_synthetic("var x = 1;", "null", "a statement without value becomes null");
	check_synthetic("(function () { return 1; })", "null", "a function becomes null");
	check_synthetic("// the constant\n23", "23", "a comment and a constant (E8 syn1)");
	check_synthetic("if (context.newState.reportedState.temp.value > 1) { 'big'; } else { 'small'; }",
					"'big'", "the completion value of an if statement");
	check_synthetic("context.newState.reportedState.temp.value * 9 / 5 + 32", "35.6",
					"computed from the snapshot");
	check_synthetic("true", "true", "a boolean");
	check_synthetic("NaN", "null", "NaN becomes null, as JSON.stringify does");
	check_synthetic("typeof context.currentState + '/' + context.action", "'undefined/synthetic'",
					"a synthetic sees only newState and action");
	check_synthetic("[1, 'two', null]", "[1, 'two', null]", "an array");
}

static void
test_hook_context(void)
{
	json_object *r;
	json_object *ctx;
	DgError		err;

	r = run_ok(DG_ACTION_CHANGED,
			   "var s = context.newState; s.reportedState.temp.value += 40;"
			   " s.metadata.labels = {seen: context.action}; s.reportedState.fresh = {value: 'new'};",
			   HOOK_CTX);
	is_int(int_at(r, "/newState/reportedState/temp/value"), 42, "changed hook: newState edit round trips");
	is_str(str_at(r, "/newState/metadata/labels/seen"), "changed", "changed hook: context.action is changed");
	is_str(str_at(r, "/newState/reportedState/fresh/value"), "new", "changed hook: a new feature round trips");
	ok(!has_at(r, "/currentState"), "changed hook: the currentState is not read back");
	is_json(at(r, "/outbox"), "[]", "changed hook: empty outbox stays");
	json_object_put(r);

	/*
	 * A script that does nothing gives the context back unchanged, but for
	 * currentState, and for newState, which is left out when unchanged.
	 */
	ctx = J(HOOK_CTX);
	json_object_object_del(ctx, "currentState");
	json_object_object_del(ctx, "newState");
	r = run_ok(DG_ACTION_CHANGED, "1;", HOOK_CTX);
	ok(r && dg_json_equal(r, ctx), "a script that does nothing returns its context unchanged");
	json_object_put(r);
	json_object_put(ctx);

	r = run_ok(DG_ACTION_CHANGED,
			   "var c = context.currentState; log(c.reportedState.temp.value); c.x = 1;"
			   " log(context.currentState.x); context.currentState = 5; log(context.currentState);"
			   " log(Object.keys(context).join());", HOOK_CTX);
	is_json(at(r, "/logs"), "['1', '1', '5', 'currentState,newState,action,outbox,logs']",
			"currentState, decoded when first read, behaves as a plain property");
	json_object_put(r);
	r = run_ok(DG_ACTION_CHANGED, "context.newState.reportedState.temp.value = 2;", HOOK_CTX);
	ok(r && !has_at(r, "/newState"), "a newState assigned its own values reads back as unchanged");
	json_object_put(r);
	r = run_ok(DG_ACTION_CHANGED, "context.newState.reportedState.temp.value = 2.5;", HOOK_CTX);
	ok(r && has_at(r, "/newState/metadata"), "a changed newState reads back whole");
	json_object_put(r);

	r = run_ok(DG_ACTION_CHANGED, "log('a'); log(42); log(null); log({x: 1});", HOOK_CTX);
	is_json(at(r, "/logs"), "['a', '42', 'null', '[object Object]']", "log() appends strings to context.logs");
	json_object_put(r);

	r = run_ok(DG_ACTION_CHANGED,
			   "sendMessage('t1', {merge: {a: 1}}); sendMerge('t2', {b: 2});"
			   " sendPatch('t3', [{op: 'remove', path: '/x'}]);", HOOK_CTX);
	is_json(at(r, "/outbox"),
			"[{'thing': 't1', 'message': {'merge': {'a': 1}}},"
			" {'thing': 't2', 'message': {'merge': {'b': 2}}},"
			" {'thing': 't3', 'message': {'patch': [{'op': 'remove', 'path': '/x'}]}}]",
			"sendMessage, sendMerge and sendPatch fill context.outbox");
	json_object_put(r);

	r = run_ok(DG_ACTION_CHANGED, "wakeup('5s');", HOOK_CTX);
	is_str(str_at(r, "/waker"), "5s", "wakeup('5s') sets context.waker");
	json_object_put(r);
	r = run_ok(DG_ACTION_CHANGED, "wakeup(3);", HOOK_CTX);
	is_int(int_at(r, "/waker"), 3, "wakeup(3) sets context.waker to 3");
	json_object_put(r);

	/* the desired code method's context: no thing, no logs */
	r = run_ok(DG_ACTION_DESIRED,
			   "context.commands = [{channel: 'c', payload: {sees: typeof context.newState, v: context.value}}];",
			   "{'value': 7, 'action': 'desiredReconciliation'}");
	is_json(at(r, "/commands"), "[{'channel': 'c', 'payload': {'sees': 'undefined', 'v': 7}}]",
			"desired code: context.commands read back");
	json_object_put(r);

	ok(!run_js_lim(DG_ACTION_DESIRED, "d", "log('x');", "{'value': 7, 'action': 'desiredReconciliation'}",
				   NULL, &r, &err) && err.kind == DG_ERR_HOOK && contains(err.message, "desired state code \"d\""),
	   "desired code: log() throws (no context.logs)");
	ok(r == NULL, "a failed run leaves no result");

	r = run_ok(DG_ACTION_CHANGED, "context = 5;", HOOK_CTX);
	ok(r && json_object_get_type(r) == json_type_int && json_object_get_int(r) == 5,
	   "a script may replace context by a non-object (the machine rejects it)");
	json_object_put(r);

	r = run_ok(DG_ACTION_CHANGED, "context = null;", HOOK_CTX);
	ok(r == NULL, "context = null reads back as JSON null");
	json_object_put(r);

	/* text outside ASCII */
	r = run_ok(DG_ACTION_CHANGED, "context.out = context.inp + '!'; context.len = context.inp.length;",
			   "{'inp': 'gr\xc3\xbc\xc3\x9f\x65 \xe2\x82\xac'}");
	is_str(str_at(r, "/out"), "gr\xc3\xbc\xc3\x9f\x65 \xe2\x82\xac!", "UTF-8 text round trips");
	is_int(int_at(r, "/len"), 7, "UTF-8 input decodes to characters");
	json_object_put(r);
	r = run_ok(DG_ACTION_CHANGED, "context.out = context.inp;", "{'inp': '\xf0\x9f\x98\x80'}");
	is_str(str_at(r, "/out"), "\xf0\x9f\x98\x80", "a non-BMP character from the input round trips");
	json_object_put(r);
}

/*
 * Text a script builds from UTF-16 code units: JavaScript's only way to
 * write a non-BMP character with an escape ('\ud83d\ude00') or to build
 * one (String.fromCharCode).  The result must be UTF-8, which jsonb
 * requires (convert.c rejects anything else with pg_verifymbstr).
 */
static void
test_utf16_output(void)
{
	json_object *r;
	DgError		err;
	bool		res;

	r = run_ok(DG_ACTION_CHANGED,
			   "context.pair = String.fromCharCode(0xD83D, 0xDE00); context.escaped = '\\ud83d\\ude00';",
			   HOOK_CTX);
	ok(r != NULL && valid_utf8(dg_json_text(r, NULL)),
	   "a surrogate pair built by a script reads back as valid UTF-8");
	if (r && !valid_utf8(dg_json_text(r, NULL)))
		hexdump_diag("pair", str_at(r, "/pair"));
	is_str(str_at(r, "/pair"), "\xf0\x9f\x98\x80", "String.fromCharCode(0xD83D, 0xDE00) is U+1F600");
	is_str(str_at(r, "/escaped"), "\xf0\x9f\x98\x80", "'\\ud83d\\ude00' is U+1F600");
	json_object_put(r);

	res = run_js_lim(DG_ACTION_CHANGED, "lone", "context.lone = String.fromCharCode(0xD800);", HOOK_CTX,
					 NULL, &r, &err);
	ok((!res && err.kind == DG_ERR_HOOK) || (res && valid_utf8(dg_json_text(r, NULL))),
	   "a lone surrogate either fails the hook or reads back as valid UTF-8");
	if (res && !valid_utf8(dg_json_text(r, NULL)))
		hexdump_diag("lone", str_at(r, "/lone"));
	json_object_put(r);
}

/* whenValueChanged(name, cb) on a hand-built currentState/newState pair. */
static void
check_when(const char *current, const char *new_state, const char *want_logs, const char *name)
{
	char		ctx[2048];
	json_object *r;

	snprintf(ctx, sizeof(ctx), "{'currentState': %s, 'newState': %s, 'action': 'changed',"
			 " 'outbox': [], 'logs': []}", current, new_state);
	r = run_ok(DG_ACTION_CHANGED,
			   "whenValueChanged('temp', function (n, o) { log(JSON.stringify(n) + '/' + JSON.stringify(o)); });",
			   ctx);
	is_json(at(r, "/logs"), want_logs, "whenValueChanged: %s", name);
	json_object_put(r);
}

#define REP(v) "{'reportedState': {'temp': {'value': " v "}}}"
#define SYN_REP(s, r) "{'syntheticState': {'temp': {'value': " s "}}, 'reportedState': {'temp': {'value': " r "}}}"

static void
test_when_value_changed(void)
{
	check_when(REP("1"), REP("2"), "['2/1']", "called with (new, old) when the value changes");
	check_when(REP("1"), REP("1"), "[]", "not called when the value is the same");
	check_when(REP("1"), REP("1.0"), "[]", "1 and 1.0 are the same value");
	check_when("{}", REP("5"), "['5/undefined']", "a new feature: old is undefined");
	check_when(REP("5"), "{}", "['undefined/5']", "a removed feature: new is undefined");
	check_when(REP("{'a': 1}"), REP("{'a': 2}"), "['{`a`:2}/{`a`:1}']", "object values are compared deeply");
	check_when(SYN_REP("5", "1"), SYN_REP("5", "2"), "[]",
			   "the synthetic value is preferred: equal synthetic, changed reported");
	check_when(SYN_REP("5", "1"), SYN_REP("6", "1"), "['6/5']",
			   "the synthetic value is preferred: changed synthetic, equal reported");
	check_when(REP("null"), REP("null"), "[]", "null to null is no change");
	/* same structure, members in another order (jsonb stores keys sorted by length) */
	check_when(REP("{'a': 1, 'bb': 2}"), REP("{'bb': 2, 'a': 1}"), "[]",
			   "equal objects with members in another order are no change");
}

static int	polls;

static bool
stop_on_third_poll(void)
{
	return ++polls >= 3;
}

static bool
never_stop(void)
{
	polls++;
	return false;
}

static void
test_isolation_and_cache(void)
{
	json_object *r;
	json_object *r2;
	DgScriptLimits lim;
	DgError		err;

	r = run_ok(DG_ACTION_CHANGED,
			   "var leaked = 1; implicitGlobal = 2; Object.prototype.polluted = 3;"
			   " log = function () {}; JSON.stringify = null; context.x = 1;", HOOK_CTX);
	ok(r != NULL, "a script that rewrites globals and builtins runs");
	json_object_put(r);
	r = run_ok(DG_ACTION_CHANGED,
			   "log(typeof leaked + ' ' + typeof implicitGlobal + ' ' + typeof ({}).polluted"
			   " + ' ' + typeof JSON.stringify);", HOOK_CTX);
	is_json(at(r, "/logs"), "['undefined undefined undefined function']",
			"globals, builtins and helpers do not leak into the next run");
	json_object_put(r);
	r = run_ok(DG_ACTION_CHANGED,
			   "Object.prototype.polluted = 3; Array.prototype.first = 1; JSON.stringify = null;"
			   " log = null; Math.PI = 3; log(typeof ({}).polluted + ' ' + typeof [].first + ' '"
			   " + typeof JSON.stringify + ' ' + Math.PI.toFixed(2));", HOOK_CTX);
	is_json(at(r, "/logs"), "['undefined undefined function 3.14']",
			"builtins and helpers are read-only: assigning to them fails silently, in the run too");
	json_object_put(r);
	r = run_ok(DG_ACTION_CHANGED,
			   "Object.defineProperty(this, 'sticky', {value: 1}); function f() {} this.g = f;", HOOK_CTX);
	ok(r != NULL, "a script that defines a global that cannot be deleted runs");
	json_object_put(r);
	r = run_ok(DG_ACTION_CHANGED, "log(typeof sticky + ' ' + typeof f + ' ' + typeof g);", HOOK_CTX);
	is_json(at(r, "/logs"), "['undefined undefined undefined']",
			"... and the next run gets a new environment without it");
	json_object_put(r);
	r = run_ok(DG_ACTION_SYNTHETIC, "var g = 5; g", SYN_CTX);
	json_object_put(r);
	r = run_ok(DG_ACTION_SYNTHETIC, "typeof g", SYN_CTX);
	is_json(r, "{'value': 'undefined'}", "a synthetic's var does not leak either");
	json_object_put(r);
	r = run_ok(DG_ACTION_CHANGED, "log(typeof print + typeof alert + typeof require + typeof setTimeout);",
			   HOOK_CTX);
	is_json(at(r, "/logs"), "['undefinedundefinedundefinedundefined']",
			"no print, alert, require or setTimeout");
	json_object_put(r);

	/* the compiled-code cache */
	r = run_ok(DG_ACTION_CHANGED, "log(context.newState.reportedState.temp.value * 10);", HOOK_CTX);
	r2 = run_ok(DG_ACTION_CHANGED, "log(context.newState.reportedState.temp.value * 10);", HOOK_CTX);
	ok(r && r2 && dg_json_equal(r, r2), "a second run of the same script gives the same result");
	is_json(at(r2, "/logs"), "['20']", "... which is the right one");
	json_object_put(r);
	json_object_put(r2);
	r = run_ok(DG_ACTION_CHANGED, "log(context.newState.reportedState.temp.value * 10);",
			   "{'newState': {'reportedState': {'temp': {'value': 3}}}, 'logs': []}");
	is_json(at(r, "/logs"), "['30']", "the cache keeps code, not results");
	json_object_put(r);
	r = run_ok(DG_ACTION_SYNTHETIC, "context.x = 7; 8", SYN_CTX);
	is_json(r, "{'value': 8}", "same text as a synthetic: completion value");
	json_object_put(r);
	r = run_ok(DG_ACTION_CHANGED, "context.x = 7; 8", HOOK_CTX);
	ok(int_at(r, "/x") == 7 && !has_at(r, "/value"), "same text as a hook: the context");
	json_object_put(r);
	r = run_ok(DG_ACTION_SYNTHETIC, "context.x = 7; 8", SYN_CTX);
	is_json(r, "{'value': 8}", "... and as a synthetic again (eval and program are cached apart)");
	json_object_put(r);

	dg_script_reset();
	r = run_ok(DG_ACTION_SYNTHETIC, "context.x = 7; 8", SYN_CTX);
	is_json(r, "{'value': 8}", "after dg_script_reset a new heap runs the script");
	json_object_put(r);

	/* limits that are off, and an interrupted callback that never fires */
	memset(&lim, 0, sizeof(lim));
	lim.interrupted = never_stop;
	polls = 0;
	ok(run_js_lim(DG_ACTION_SYNTHETIC, "s", "var n = 0; for (var i = 0; i < 300000; i++) n += i; n",
				  SYN_CTX, &lim, &r, &err) && int_at(r, "/value") == INT64_C(44999850000),
	   "no deadline, no heap limit: a long loop completes");
	ok(polls > 0, "the interrupted callback is polled during a long run (%d polls)", polls);
	json_object_put(r);
}

static void
check_fail(DgHookAction action, const char *name, const char *source, const char *ctx,
		   const DgScriptLimits *lim, const char *want1, const char *want2, const char *what)
{
	json_object *r = NULL;
	DgError		err;
	bool		res = run_js_lim(action, name, source, ctx, lim, &r, &err);

	ok(!res && r == NULL && err.kind == DG_ERR_HOOK && contains(err.message, want1) &&
	   (want2 == NULL || contains(err.message, want2)), "%s", what);
	if (res)
		diag("succeeded with %.200s", r ? dg_json_text(r, NULL) : "null");
	else if (!contains(err.message, want1) || (want2 && !contains(err.message, want2)) ||
			 err.kind != DG_ERR_HOOK)
		diag("error %d: %s", err.kind, err.message);
	json_object_put(r);
}

/* A normal run right after a failure: the heap is usable. */
static void
check_usable(const char *after)
{
	json_object *r = run_ok(DG_ACTION_SYNTHETIC, "var a = []; for (var i = 0; i < 1000; i++) a.push('s' + i); a.length",
							SYN_CTX);

	is_json(r, "{'value': 1000}", "the heap is usable after %s", after);
	json_object_put(r);
}

static void
test_errors(void)
{
	json_object *code;
	json_object *ctx;
	json_object *r;
	DgError		err;
	DgScriptLimits lim;
	int64_t		t0,
				ms;

	check_fail(DG_ACTION_CHANGED, "broken", "var = ;", HOOK_CTX, NULL, "syntax error", "changed hook \"broken\"",
			   "a syntax error names the hook");
	check_fail(DG_ACTION_CHANGED, "broken", "var = ;", HOOK_CTX, NULL, "syntax error", "SyntaxError",
			   "a syntax error again (errors are not cached as code)");
	check_fail(DG_ACTION_SYNTHETIC, "syn", "1 +", SYN_CTX, NULL, "synthetic \"syn\" has a syntax error", NULL,
			   "a synthetic's syntax error");
	check_fail(DG_ACTION_CHANGED, "thrower", "var a = 1;\nvar b = 2;\nthrow new Error('boom');", HOOK_CTX, NULL,
			   "boom", "line 3", "a thrown Error: its message and line");
	check_fail(DG_ACTION_CHANGED, "thrower", "var a = 1;\nvar b = 2;\nthrow new Error('boom');", HOOK_CTX, NULL,
			   "changed hook \"thrower\" failed: Error: boom", "(line 3)",
			   "the same from the compiled-code cache keeps the line");
	check_fail(DG_ACTION_CHANGED, "ref", "nosuchvar.x = 1;", HOOK_CTX, NULL, "ReferenceError", "nosuchvar",
			   "a ReferenceError");
	check_fail(DG_ACTION_TIMER, "tt", "null.x;", HOOK_CTX, NULL, "timer \"tt\" failed: TypeError", NULL,
			   "a TypeError in a timer");
	check_fail(DG_ACTION_CHANGED, "plain", "throw 'plain words';", HOOK_CTX, NULL, "plain words", NULL,
			   "a thrown string");
	check_fail(DG_ACTION_SYNTHETIC, "syn", "log('x'); 1", SYN_CTX, NULL, "synthetic \"syn\" failed", NULL,
			   "log() inside a synthetic throws (no context.logs)");
	check_fail(DG_ACTION_SYNTHETIC, "syn", "sendMessage('t', {merge: {}}); 1", SYN_CTX, NULL,
			   "synthetic \"syn\" failed", NULL, "sendMessage() inside a synthetic throws (no context.outbox)");
	check_fail(DG_ACTION_CHANGED, "gone", "context = undefined;", HOOK_CTX, NULL, "left no context", NULL,
			   "context = undefined fails");

	/* code that is not JavaScript */
	code = J("{'function': 'public.f'}");
	ctx = J(HOOK_CTX);
	ok(!run_code(DG_ACTION_CHANGED, "fn", code, ctx, NULL, &r, &err) &&
	   err.kind == DG_ERR_HOOK && contains(err.message, "has no JavaScript"),
	   "code without javaScript fails");
	json_object_put(code);
	json_object_put(ctx);

	/* time */
	lim = limits_ms(300, 4 * MB);
	t0 = dg_monotonic_ns();
	check_fail(DG_ACTION_CHANGED, "loop", "while (true) {}", HOOK_CTX, &lim,
			   "changed hook \"loop\" ran longer than the hook timeout", "(300 ms)", "an endless loop stops");
	ms = (dg_monotonic_ns() - t0) / DG_NS_PER_MS;
	ok(ms >= 270 && ms <= 900, "... after about the timeout (%lld ms)", (long long) ms);
	lim = limits_ms(300, 4 * MB);
	t0 = dg_monotonic_ns();
	check_fail(DG_ACTION_CHANGED, "sly", "for (;;) { try { for (;;) {} } catch (e) {} finally { log('x'); } }",
			   HOOK_CTX, &lim, "ran longer than the hook timeout", NULL,
			   "a loop that catches the timeout error still stops");
	ms = (dg_monotonic_ns() - t0) / DG_NS_PER_MS;
	ok(ms >= 270 && ms <= 900, "... after about the timeout (%lld ms)", (long long) ms);
	check_usable("a timeout");

	/*
	 * memory: 256 kB, the smallest doppelganger.hook_memory; distinct 1 kB
	 * strings (the deadline is far so that only the memory limit can stop it)
	 */
	lim = limits_ms(60000, 256 * 1024);
	check_fail(DG_ACTION_CHANGED, "hog", "var a = [], s = new Array(1000).join('x'); for (;;) a.push(s + a.length);",
			   HOOK_CTX, &lim, "changed hook \"hog\" used more than the 256 kB of memory", NULL,
			   "a memory hog stops with a memory error");
	check_usable("a memory error");
	lim = limits_ms(60000, 256 * 1024);
	ok(run_js_lim(DG_ACTION_SYNTHETIC, "s",
				  "var a = [], s = new Array(1000).join('y'); for (var i = 0; i < 100; i++) a.push(s + i); a.length",
				  SYN_CTX, &lim, &r, &err) && int_at(r, "/value") == 100,
	   "after a memory error a run gets its whole budget again (100 kB of 256 kB)");
	if (r == NULL)
		diag("error: %s", err.message);
	json_object_put(r);
	check_fail(DG_ACTION_CHANGED, "deeprec", "function f(n) { return f(n + 1) + 1; } f(0);", HOOK_CTX, NULL,
			   "changed hook \"deeprec\" failed: RangeError", NULL, "endless recursion fails as an error of the hook");
	check_usable("endless recursion");

	/*
	 * Time spent inside the regular expression engine: Duktape's regexp
	 * executor never calls the execution-timeout hook, so (a+)+$ on
	 * 'aaa...b' backtracks 2^n steps past the deadline (and past a query
	 * cancel).  18 a's take about 100 ms natively.  The deadline allows three
	 * times what a trivial run costs here (plus 10 ms), so that under
	 * valgrind it does not expire before the expression even starts.
	 */
	r = run_ok(DG_ACTION_SYNTHETIC, "0", SYN_CTX);
	json_object_put(r);
	t0 = dg_monotonic_ns();
	r = run_ok(DG_ACTION_SYNTHETIC, "0", SYN_CTX);
	json_object_put(r);
	ms = 3 * (dg_monotonic_ns() - t0) / DG_NS_PER_MS + 10;
	lim = limits_ms((int) ms, 4 * MB);
	t0 = dg_monotonic_ns();
	check_fail(DG_ACTION_SYNTHETIC, "regex", "/(a+)+$/.test(new Array(19).join('a') + 'b')", SYN_CTX, &lim,
			   "synthetic \"regex\" ran longer than the hook timeout", NULL,
			   "a backtracking regular expression stops at the deadline");
	diag("the regular expression ran %lld ms with a %d ms deadline",
		 (long long) ((dg_monotonic_ns() - t0) / DG_NS_PER_MS), lim.timeout_ms);

	/* interruption (a query cancel at the edge) */
	memset(&lim, 0, sizeof(lim));
	lim.interrupted = stop_on_third_poll;
	polls = 0;
	check_fail(DG_ACTION_CHANGED, "cancelled", "while (true) {}", HOOK_CTX, &lim,
			   "changed hook \"cancelled\" was interrupted", NULL, "the interrupted callback stops a loop");
	is_int(polls, 3, "... at the poll that said so");
	check_usable("an interruption");
}

/*
 * Output JSON cannot hold, and input the budget cannot hold.  These must
 * fail as errors of the hook, saying why; the engine must stay.  Should
 * script.c decode or encode the context outside a protected call, the error
 * reaches Duktape's fatal handler, which drops the heap without freeing it:
 * valgrind then reports one lost heap per case.  Set DG_TEST_SKIP_ENGINE_DROP
 * to leave these cases out (to check the rest of the program for leaks).
 */
static void
test_unencodable(void)
{
	DgScriptLimits lim;
	char	   *big;
	size_t		n = 600 * 1024;
	size_t		o;

	check_fail(DG_ACTION_CHANGED, "selfref", "context.newState.self = context.newState;", HOOK_CTX, NULL,
			   "changed hook \"selfref\"", "cyclic", "a cyclic context fails as an error of the hook, saying why");
	check_usable("a cyclic context");
	check_fail(DG_ACTION_CHANGED, "deep", "var o = context.deep = {}; for (var i = 0; i < 2000; i++) o = o.a = {};",
			   HOOK_CTX, NULL, "changed hook \"deep\"", "failed", "a context nested too deeply fails as an error of the hook");
	lim = limits_ms(300, 4 * MB);
	check_fail(DG_ACTION_CHANGED, "tojson", "context.toJSON = function () { for (;;) {} };", HOOK_CTX, &lim,
			   "changed hook \"tojson\"", "ran longer than the hook timeout",
			   "an endless toJSON stops as a timeout");

	/*
	 * A context bigger than the heap budget: two copies of a 600 kB string,
	 * 1 MB budget.  On a fresh heap, so that no garbage of earlier runs can
	 * make room (see test_memory_history).
	 */
	dg_script_reset();
	big = malloc(2 * n + 200);
	o = (size_t) sprintf(big, "{'currentState': {'big': '");
	memset(big + o, 'x', n);
	o += n;
	o += (size_t) sprintf(big + o, "'}, 'newState': {'big': '");
	memset(big + o, 'y', n);
	o += n;
	sprintf(big + o, "'}, 'logs': []}");
	lim = limits_ms(1000, 1 * MB);
	check_fail(DG_ACTION_CHANGED, "huge", "1;", big, &lim, "changed hook \"huge\"", "memory",
			   "a context larger than the memory budget fails with a memory error");
	free(big);
	check_usable("an oversized context");
}

/*
 * The memory budget of a run must not depend on earlier runs.  Each run's
 * thread (its fresh global environment) is cyclic garbage once the run
 * ends, so everything the run allocated survives until Duktape's next
 * mark-and-sweep; the budget, counted from the heap's size at the start of
 * the next run, then also covers that garbage, which the next run's
 * collections free for it to use.
 */
static void
test_memory_history(void)
{
	const char *two_mb = "var a = [], s = new Array(1000).join('x');"
		" for (var i = 0; i < 2000; i++) a.push(s + i); context.n = a.length;";
	DgScriptLimits lim;
	json_object *r = NULL;
	DgError		err;

	dg_script_reset();
	lim = limits_ms(10000, 1 * MB);
	check_fail(DG_ACTION_CHANGED, "twomb", two_mb, HOOK_CTX, &lim, "used more than the 1024 kB", NULL,
			   "fresh heap: 2 MB of strings exceed a 1 MB budget");
	lim = limits_ms(10000, 4 * MB);
	ok(run_js_lim(DG_ACTION_CHANGED, "twomb", two_mb, HOOK_CTX, &lim, &r, &err) && int_at(r, "/n") == 2000,
	   "with a 4 MB budget they fit");
	json_object_put(r);
	lim = limits_ms(10000, 1 * MB);
	check_fail(DG_ACTION_CHANGED, "twomb", two_mb, HOOK_CTX, &lim, "used more than the 1024 kB", NULL,
			   "right after a run that used 2 MB, they still exceed a 1 MB budget");
	check_usable("the budget tests");
}

/* ---- part 2: the machine with the JavaScript runner ---- */

static int	hook_calls;
static char hook_trace[2048];

static bool
js_runner(void *arg, const DgHookCall *call, json_object **result, DgError *err)
{
	DgScriptLimits lim = limits_ms(1000, 4 * MB);
	size_t		len = strlen(hook_trace);

	(void) arg;
	hook_calls++;
	snprintf(hook_trace + len, sizeof(hook_trace) - len, "%s%s:%s", len ? " " : "",
			 dg_action_name(call->action), call->name);
	return dg_script_run(call, &lim, result, err);
}

static void
machine_init(DgMachine *m, dg_time now)
{
	dg_machine_init(m, now);
	m->run_hook = js_runner;
	m->hook_arg = NULL;
	hook_calls = 0;
	hook_trace[0] = '\0';
}

/* Reconcile a copy of "thing" against "current" at m->now: the result, or NULL with err. */
static json_object *
reconcile(DgMachine *m, json_object *current, json_object *thing, DgError *err)
{
	json_object *work = dg_json_copy(thing);

	dg_error_clear(err);
	if (!dg_machine_reconcile(m, current, &work, err))
	{
		json_object_put(work);
		return NULL;
	}
	return work;
}

/* Create: the thing (J text, canonical at now) reconciled against the empty thing. */
static json_object *
create_at(DgMachine *m, const char *text, dg_time now, DgError *err)
{
	json_object *thing = canon_at(text, now);
	json_object *empty = dg_thing_new("app", "t");
	json_object *r;

	machine_init(m, now);
	r = reconcile(m, empty, thing, err);
	if (r == NULL)
		diag("machine error: %s", err->message);
	json_object_put(thing);
	json_object_put(empty);
	return r;
}

/* Apply a message to a copy of current at now and reconcile (machine initialized here). */
static json_object *
process_at(DgMachine *m, json_object *current, const char *message, dg_time now, DgError *err)
{
	json_object *msg = J(message);
	json_object *thing = dg_json_copy(current);
	DgOp		op;

	/* the machine was initialized by an earlier step: free its outputs */
	dg_machine_reset(m);
	machine_init(m, now);
	dg_error_clear(err);
	if (!dg_op_from_message(msg, &op, err) ||
		!dg_op_apply(&thing, &op, now, err) ||
		!dg_machine_reconcile(m, current, &thing, err))
	{
		json_object_put(thing);
		thing = NULL;
	}
	json_object_put(msg);
	return thing;
}

/* Step: replace *thing by the result of processing message at now (NULL on failure). */
static void
step(DgMachine *m, json_object **thing, const char *message, dg_time now, DgError *err)
{
	json_object *next = *thing ? process_at(m, *thing, message, now, err) : NULL;

	if (*thing && next == NULL)
		diag("step failed: %s", err->message);
	json_object_put(*thing);
	*thing = next;
}

static dg_time
waker_when(json_object *thing)
{
	return thing ? dg_waker_when(thing) : DG_NO_TIME;
}

static void
is_time(dg_time got, dg_time want, const char *what)
{
	char		g[64] = "(none)",
				w[64] = "(none)";

	if (got != DG_NO_TIME)
		dg_time_format(got, g);
	if (want != DG_NO_TIME)
		dg_time_format(want, w);
	is_str(g, w, "%s", what);
}

static const char *
fmt_time(dg_time t, char *buf)
{
	dg_time_format(t, buf);
	return buf;
}

#define WAKE "{'wakeup': {'reasons': ['reconcile']}}"
#define REPORT(json) "{'reportState': {'state': " json ", 'partial': true}}"

static void
test_machine_synthetics_js(void)
{
	DgMachine	m;
	DgError		err;
	json_object *t;

	/* E8 */
	t = create_at(&m, "{" MD ", 'reportedState': {'temperature': {'value': 43}}, 'syntheticState': {"
				  "'const': {'javaScript': '// the constant\\n23'},"
				  " 'temperature_f': {'javaScript': 'var r = context.newState.reportedState || {};"
				  " r.temperature ? r.temperature.value * 9 / 5 + 32 : null'},"
				  " 'add': {'javaScript': 'var r = context.newState.reportedState || {};"
				  " (r.value1 && r.value2) ? r.value1.value + r.value2.value : null'},"
				  " 'rename1': {'alias': 'value1'}}}", NOW, &err);
	is_int(int_at(t, "/syntheticState/const/value"), 23, "E8: const = 23");
	is_json(at(t, "/syntheticState/temperature_f/value"), "109.4", "E8: temperature_f of 43 is 109.4");
	is_json(at(t, "/syntheticState/add/value"), "null", "E8: add is null while value1 and value2 are missing");
	is_str(str_at(t, "/syntheticState/const/lastUpdate"), NOW_TEXT, "E8: a computed value gets lastUpdate now");
	is_int(hook_calls, 3, "E8: three scripts ran (the alias is not a script)");
	step(&m, &t, REPORT("{'value1': 42}"), NOW + 60 * DG_NS_PER_S, &err);
	is_json(at(t, "/syntheticState/add/value"), "null", "E8: add is still null with value1 alone");
	is_int(int_at(t, "/syntheticState/rename1/value"), 42, "E8: the alias rename1 follows value1");
	step(&m, &t, REPORT("{'value2': 23}"), NOW + 120 * DG_NS_PER_S, &err);
	is_int(int_at(t, "/syntheticState/add/value"), 65, "E8: add = 65, computed in the same request");
	is_str(str_at(t, "/syntheticState/add/lastUpdate"), "2024-01-01T00:02:00Z", "E8: add's lastUpdate moves");
	is_str(str_at(t, "/syntheticState/const/lastUpdate"), NOW_TEXT, "E8: const's lastUpdate does not move");
	step(&m, &t, "{'reportState': {'state': {'value1': 42, 'value2': 23}}}", NOW + 180 * DG_NS_PER_S, &err);
	is_json(at(t, "/syntheticState/temperature_f/value"), "null", "E8: temperature_f is null without temperature");
	json_object_put(t);
	dg_machine_reset(&m);

	/* the snapshot: 'a' reads 'z' (later in name order), 'z' reads 'a' (earlier) */
	t = create_at(&m, "{" MD ", 'reportedState': {'n': {'value': 1}}, 'syntheticState': {"
				  "'a': {'javaScript': 'context.newState.reportedState.n.value * 10'},"
				  " 'b': {'javaScript': 'var s = context.newState.syntheticState.a; s ? s.value : -1'},"
				  " 'z': {'javaScript': 'var s = context.newState.syntheticState.a; s ? s.value : -1'}}}",
				  NOW, &err);
	is_int(int_at(t, "/syntheticState/a/value"), 10, "snapshot: a computed");
	ok(at(t, "/syntheticState/z/value") == NULL, "snapshot: z saw a's previous value (null), not 10");
	step(&m, &t, REPORT("{'n': 2}"), NOW + DG_NS_PER_S, &err);
	is_int(int_at(t, "/syntheticState/a/value"), 20, "snapshot: a recomputed");
	is_int(int_at(t, "/syntheticState/b/value"), 10, "snapshot: b sees a's value of the previous run");
	is_int(int_at(t, "/syntheticState/z/value"), 10, "snapshot: z sees a's value of the previous run");
	json_object_put(t);
	dg_machine_reset(&m);

	/* a failing synthetic fails the reconcile */
	t = create_at(&m, "{" MD ", 'syntheticState': {'bad': {'javaScript': 'no.such.thing'}}}", NOW, &err);
	ok(t == NULL && err.kind == DG_ERR_HOOK && contains(err.message, "synthetic \"bad\""),
	   "a throwing synthetic fails the reconcile, naming it");
	json_object_put(t);
	dg_machine_reset(&m);
}

#define RECON1 \
	"'var s = context.newState; var r = s.reportedState || {};" \
	" var t = r.temperature ? r.temperature.value : null; var l = s.metadata.labels || {};" \
	" if (t > 60) { l.overTemp = ``; } else { delete l.overTemp; }" \
	" if (t > 50) { l.highTemp = ``; } else { delete l.highTemp; }" \
	" s.metadata.labels = l;'"

#define LOGGER \
	"'var v = context.newState.reportedState.temperature.value; if (v > 50) { log(`hot ` + v); log(context.action); }'"

static void
test_machine_changed_js(void)
{
	DgMachine	m;
	DgError		err;
	json_object *t;
	json_object *rec;
	json_object *cur;
	char		buf[64];

	/* E2 with a logging hook beside it */
	t = create_at(&m, "{" MD ", 'reportedState': {'temperature': {'value': 43}},"
				  " 'reconciliation': {'changed': {'overTemp': {'javaScript': " RECON1 "},"
				  " 'logger': {'javaScript': " LOGGER "}}}}", NOW, &err);
	ok(t && !has_at(t, "/metadata/labels"), "E2: at 43 no labels");
	ok(t && !has_at(t, "/reconciliation/changed/logger/lastLog"), "a hook that logs nothing has no lastLog");
	is_str(hook_trace, "changed:logger changed:overTemp", "changed hooks run in name order");
	step(&m, &t, REPORT("{'temperature': 62}"), NOW + DG_NS_PER_S, &err);
	is_json(at(t, "/metadata/labels"), "{'highTemp': '', 'overTemp': ''}", "E2: at 62 highTemp and overTemp");
	is_json(at(t, "/reconciliation/changed/logger/lastLog"), "['hot 62', 'changed']",
			"a hook's logs land in its lastLog");
	ok(!has_at(t, "/reconciliation/changed/overTemp/lastLog"), "... and only in its own");
	step(&m, &t, REPORT("{'temperature': 55}"), NOW + 2 * DG_NS_PER_S, &err);
	is_json(at(t, "/metadata/labels"), "{'highTemp': ''}", "E2: at 55 only highTemp");
	is_json(at(t, "/reconciliation/changed/logger/lastLog"), "['hot 55', 'changed']", "lastLog replaced");
	step(&m, &t, REPORT("{'temperature': 45}"), NOW + 3 * DG_NS_PER_S, &err);
	ok(t && !has_at(t, "/metadata/labels"), "E2: at 45 no labels (the field is omitted)");
	ok(t && !has_at(t, "/reconciliation/changed/logger/lastLog"), "lastLog is cleared by a run without logs");
	ok(t && !has_at(t, "/internal"), "E2: no waker");
	json_object_put(t);
	dg_machine_reset(&m);

	/* logs that are not strings are stored as their JSON text */
	t = create_at(&m, "{" MD ", 'reconciliation': {'changed': {'raw': {'javaScript':"
				  " 'context.logs.push({a: [1]}); context.logs.push(2); context.logs.push(null); log(`s`);'}}}}",
				  NOW, &err);
	is_json(at(t, "/reconciliation/changed/raw/lastLog"), "['{`a`:[1]}', '2', 'null', 's']",
			"log entries that are not strings are kept as JSON text");
	json_object_put(t);
	dg_machine_reset(&m);

	/* hooks cannot change the reconciliation section, nor the identity */
	t = create_at(&m, "{" MD ", 'reconciliation': {'changed': {'self': {'javaScript':"
				  " 'var c = context.newState.reconciliation; c.changed.self.javaScript = `evil`;"
				  " c.changed.added = {javaScript: `1`}; c.timers = {t: {javaScript: `1`, period: `1s`}};"
				  " context.newState.metadata.name = `other`; context.newState.metadata.labels = {kept: `yes`};'}}}}",
				  NOW, &err);
	rec = J("{'changed': {'self': {'javaScript': 'var c = context.newState.reconciliation;"
			" c.changed.self.javaScript = `evil`; c.changed.added = {javaScript: `1`};"
			" c.timers = {t: {javaScript: `1`, period: `1s`}}; context.newState.metadata.name = `other`;"
			" context.newState.metadata.labels = {kept: `yes`};'}}}");
	ok(t && dg_json_equal(at(t, "/reconciliation"), rec), "a hook's change to reconciliation is undone");
	if (t && !dg_json_equal(at(t, "/reconciliation"), rec))
		diag("got %s", dg_json_text(at(t, "/reconciliation"), NULL));
	is_str(str_at(t, "/metadata/name"), "t", "a hook cannot rename the thing");
	is_str(str_at(t, "/metadata/labels/kept"), "yes", "... while its other changes are kept");
	json_object_put(rec);
	json_object_put(t);
	dg_machine_reset(&m);

	/* the outbox */
	t = create_at(&m, "{" MD ", 'reconciliation': {'changed': {'out': {'javaScript':"
				  " 'sendMerge(`other`, {reportedState: {a: {value: 1}}}); sendMessage(`third`, {wakeup: {}});"
				  " sendPatch(`p`, [{op: `add`, path: `/reportedState/x`, value: {value: 1}}]);'}}}}", NOW, &err);
	is_json(m.outbox, "[{'thing': 'other', 'message': {'merge': {'reportedState': {'a': {'value': 1}}}}},"
			" {'thing': 'third', 'message': {'wakeup': {}}},"
			" {'thing': 'p', 'message': {'patch': [{'op': 'add', 'path': '/reportedState/x', 'value': {'value': 1}}]}}]",
			"a hook's outbox lands in m.outbox as {thing, message}");
	is_int(count(m.commands), 0, "no commands");
	json_object_put(t);
	dg_machine_reset(&m);
	t = create_at(&m, "{" MD ", 'reconciliation': {'changed': {'out': {'javaScript':"
				  " 'sendMessage(`x`, {bogus: 1});'}}}}", NOW, &err);
	ok(t == NULL && err.kind == DG_ERR_HOOK && contains(err.message, "changed hook \"out\""),
	   "an outbox message that is not an operation fails the hook");
	json_object_put(t);
	dg_machine_reset(&m);

	/* wakeup */
	t = create_at(&m, "{" MD ", 'reconciliation': {'changed': {'a': {'javaScript': 'wakeup(`30s`);'},"
				  " 'b': {'javaScript': 'wakeup(10);'}}}}", NOW, &err);
	is_time(waker_when(t), NOW + 10 * DG_NS_PER_S, "two hooks' wake-ups: the earlier one wins");
	is_json(at(t, "/internal/waker/why"), "['reconcile']", "the waker reason is reconcile");
	json_object_put(t);
	dg_machine_reset(&m);
	t = create_at(&m, "{" MD ", 'reconciliation': {'changed': {'w': {'javaScript': 'wakeup(`soon`);'}}}}",
				  NOW, &err);
	ok(t == NULL && err.kind == DG_ERR_HOOK && contains(err.message, "context.waker"),
	   "an unparsable wake-up fails the hook");
	json_object_put(t);
	dg_machine_reset(&m);

	/* order: B < a < b in byte order, whatever the order in the document */
#define ORDER_HOOK(n) \
	"'" n "': {'javaScript': 'var r = context.newState.reportedState = context.newState.reportedState || {};" \
	" var o = r.order ? r.order.value : []; o.push(`" n "`); r.order = {value: o};'}"
	t = create_at(&m, "{" MD ", 'reconciliation': {'changed': {" ORDER_HOOK("b") ", " ORDER_HOOK("a") ", "
				  ORDER_HOOK("B") "}}}", NOW, &err);
	is_json(at(t, "/reportedState/order/value"), "['B', 'a', 'b']", "hooks run in byte order of their names");
	is_str(str_at(t, "/reportedState/order/lastUpdate"), NOW_TEXT, "a feature a hook adds gets lastUpdate now");
	json_object_put(t);
	dg_machine_reset(&m);

	/* a throwing hook, and a hook returning an invalid newState */
	t = create_at(&m, "{" MD ", 'reconciliation': {'changed': {'ok': {'javaScript': '1;'},"
				  " 'thrower': {'javaScript': 'throw new Error(`nope`);'}}}}", NOW, &err);
	ok(t == NULL && err.kind == DG_ERR_HOOK && contains(err.message, "changed hook \"thrower\"") &&
	   contains(err.message, "nope"), "a throwing hook fails the reconcile, naming the hook");
	json_object_put(t);
	dg_machine_reset(&m);
	t = create_at(&m, "{" MD ", 'reportedState': {'x': {'value': 1}}, 'reconciliation': {'changed': {'inv':"
				  " {'javaScript': 'context.newState.reportedState.x = 5;'}}}}", NOW, &err);
	ok(t == NULL && err.kind == DG_ERR_HOOK && contains(err.message, "changed hook \"inv\"") &&
	   contains(err.message, "invalid newState"), "a hook returning an invalid newState fails (DG_ERR_HOOK)");
	json_object_put(t);
	dg_machine_reset(&m);
	t = create_at(&m, "{" MD ", 'reconciliation': {'changed': {'num': {'javaScript': 'context = 5;'}}}}",
				  NOW, &err);
	ok(t == NULL && err.kind == DG_ERR_HOOK && contains(err.message, "did not return a context object"),
	   "a hook replacing its context by a number fails");
	json_object_put(t);
	dg_machine_reset(&m);
	t = create_at(&m, "{" MD ", 'reportedState': {'x': {'value': 1}}, 'reconciliation': {'changed': {'del':"
				  " {'javaScript': 'delete context.newState;'}}}}", NOW, &err);
	is_int(int_at(t, "/reportedState/x/value"), 1, "a hook that deletes newState keeps the working thing");
	json_object_put(t);
	dg_machine_reset(&m);

	/* currentState: the stored thing, or the empty thing on create */
	cur = canon_at("{'metadata': {'application': 'app', 'name': 't', 'uid': 'u1', 'generation': 4},"
				   " 'reportedState': {'x': {'value': 1, 'lastUpdate': '" T0 "'}},"
				   " 'reconciliation': {'changed': {'seen': {'javaScript': 'context.newState.metadata.labels ="
				   " {cur: String(context.currentState.reportedState.x.value), gen: String(context.currentState.metadata.generation),"
				   " uid: context.newState.metadata.uid};'}}}}", NOW);
	t = process_at(&m, cur, REPORT("{'x': 2}"), NOW + DG_NS_PER_S, &err);
	is_json(at(t, "/metadata/labels"), "{'cur': '1', 'gen': '4', 'uid': 'u1'}",
			"a hook sees the stored thing as currentState, system metadata included");
	is_str(str_at(t, "/reportedState/x/lastUpdate"), fmt_time(NOW + DG_NS_PER_S, buf),
		   "the reported change gets the time of the run");
	json_object_put(t);
	json_object_put(cur);
	dg_machine_reset(&m);
}

/* §10.2 items 16-19: the waker test hook. */
static void
test_machine_waker_hook(void)
{
	DgMachine	m;
	DgError		err;
	json_object *t;

	t = create_at(&m, "{" MD ", 'reconciliation': {'changed': {'test': {'javaScript':"
				  " 'var s = context.newState; var a = s.metadata.annotations || {};"
				  " if (s.reportedState && s.reportedState.foo !== undefined) {}"
				  " else if (a.test === `true`) { s.reportedState = s.reportedState || {};"
				  " s.reportedState.foo = {value: `bar`, lastUpdate: new Date().toISOString()}; }"
				  " else { s.metadata.annotations = {test: `true`}; wakeup(`5s`); }'}}}}", NOW, &err);
	is_json(at(t, "/internal/waker/why"), "['reconcile']", "item 16: create requests a reconcile wake-up");
	is_time(waker_when(t), NOW + 5 * DG_NS_PER_S, "item 16: ... 5 s in the future");
	is_str(str_at(t, "/metadata/annotations/test"), "true", "item 17: a script can set annotations on create");
	ok(t && !has_at(t, "/reportedState/foo"), "no foo yet");
	step(&m, &t, WAKE, NOW + 7 * DG_NS_PER_S, &err);
	ok(t && !has_at(t, "/internal"), "item 18: after the wake-up the waker is empty");
	is_str(str_at(t, "/reportedState/foo/value"), "bar", "item 19: foo = bar");
	step(&m, &t, WAKE, NOW + 8 * DG_NS_PER_S, &err);
	ok(t && !has_at(t, "/internal") && str_at(t, "/reportedState/foo/value") != NULL,
	   "a further run changes nothing and asks for nothing");
	json_object_put(t);
	dg_machine_reset(&m);
}

#define TIMER_JS(extra) \
	"'var r = context.newState.reportedState = context.newState.reportedState || {};" \
	" var n = (r.timer ? r.timer.value : 0) + 1; r.timer = {value: n};" extra "'"

/* §3.9 and §10.2 items 21-26, with explicit times. */
static void
test_machine_timers_js(void)
{
	DgMachine	m;
	DgError		err;
	json_object *t;
	char		buf[64];
	const dg_time S = DG_NS_PER_S;

	t = create_at(&m, "{" MD ", 'reconciliation': {'timers': {'timer1': {'javaScript': " TIMER_JS("") ","
				  " 'period': '5s', 'initialDelay': '3s'}}}}", NOW, &err);
	ok(t && !has_at(t, "/reconciliation/timers/timer1/lastRun"), "item 21: no lastRun after create");
	is_json(at(t, "/reconciliation/timers/timer1/stopped"), "false", "item 21: stopped = false");
	is_str(str_at(t, "/reconciliation/timers/timer1/lastStarted"), NOW_TEXT, "item 21: lastStarted set");
	ok(t && !has_at(t, "/reportedState/timer"), "item 22: reportedState.timer absent");
	is_json(at(t, "/internal/waker/why"), "['reconcile']", "item 23: waker reasons {reconcile}");
	is_time(waker_when(t), NOW + 3 * S, "item 23: ... at the end of the initial delay");
	is_int(hook_calls, 0, "the timer did not run at create");

	step(&m, &t, WAKE, NOW + 2 * S, &err);
	ok(t && !has_at(t, "/reportedState/timer"), "a run before the initial delay does not run the timer");
	is_time(waker_when(t), NOW + 3 * S, "... and asks again for the end of the delay");

	step(&m, &t, WAKE, NOW + 4 * S, &err);
	is_json(at(t, "/internal/waker/why"), "['reconcile']", "item 24: waker reasons exactly [reconcile]");
	is_str(str_at(t, "/reconciliation/timers/timer1/lastRun"), fmt_time(NOW + 4 * S, buf),
		   "item 24: lastRun set");
	is_int(int_at(t, "/reportedState/timer/value"), 1, "item 24: timer = 1");
	is_time(waker_when(t), NOW + 5 * S, "next run at the boundary lastStarted + 5 s");
	is_str(str_at(t, "/reconciliation/timers/timer1/lastStarted"), NOW_TEXT, "lastStarted stays");

	step(&m, &t, WAKE, NOW + 4 * S + 500 * DG_NS_PER_MS, &err);
	is_int(int_at(t, "/reportedState/timer/value"), 1, "not due before the boundary: no run");
	is_time(waker_when(t), NOW + 5 * S, "... the boundary is asked for again");

	step(&m, &t, WAKE, NOW + 10 * S, &err);
	is_int(int_at(t, "/reportedState/timer/value"), 2, "item 25: timer = 2 after about 10 s");
	is_str(str_at(t, "/reconciliation/timers/timer1/lastRun"), fmt_time(NOW + 10 * S, buf),
		   "item 25: lastRun is the time of the run");
	is_time(waker_when(t), NOW + 15 * S, "a run exactly on a boundary asks for the next one");
	json_object_put(t);
	dg_machine_reset(&m);

	/* exactly on the boundary */
	t = create_at(&m, "{" MD ", 'reconciliation': {'timers': {'t': {'javaScript': " TIMER_JS("") ","
				  " 'period': '5s', 'initialDelay': '3s'}}}}", NOW, &err);
	step(&m, &t, WAKE, NOW + 3 * S, &err);
	is_int(int_at(t, "/reportedState/timer/value"), 1, "a run exactly at the initial delay runs the timer");
	step(&m, &t, WAKE, NOW + 5 * S, &err);
	is_int(int_at(t, "/reportedState/timer/value"), 2, "a run exactly at the boundary runs it");
	is_time(waker_when(t), NOW + 10 * S, "... and the next boundary is strictly after now");
	json_object_put(t);
	dg_machine_reset(&m);

	/* no initialDelay: right away; logs in lastLog; action timer */
	t = create_at(&m, "{" MD ", 'reconciliation': {'timers': {'t': {'javaScript': "
				  TIMER_JS(" if (n == 1) { log(`first ` + context.action); }") ", 'period': '5s'}}}}",
				  NOW, &err);
	is_int(int_at(t, "/reportedState/timer/value"), 1, "no initialDelay: the timer runs at create");
	is_str(str_at(t, "/reconciliation/timers/t/lastRun"), NOW_TEXT, "... lastRun = now");
	is_str(str_at(t, "/reconciliation/timers/t/lastStarted"), NOW_TEXT, "... lastStarted = now");
	is_time(waker_when(t), NOW + 5 * S, "... next run one period later");
	is_json(at(t, "/reconciliation/timers/t/lastLog"), "['first timer']", "a timer's logs land in its lastLog");
	step(&m, &t, WAKE, NOW + 2 * S, &err);
	is_json(at(t, "/reconciliation/timers/t/lastLog"), "['first timer']",
			"a timer that did not run keeps its lastLog");
	step(&m, &t, WAKE, NOW + 5 * S, &err);
	is_int(int_at(t, "/reportedState/timer/value"), 2, "second run");
	ok(t && !has_at(t, "/reconciliation/timers/t/lastLog"),
	   "a run without logs leaves no lastLog (lastLog holds the logs of the last run)");
	if (t && has_at(t, "/reconciliation/timers/t/lastLog"))
		diag("lastLog: %s", dg_json_text(at(t, "/reconciliation/timers/t/lastLog"), NULL));
	json_object_put(t);
	dg_machine_reset(&m);

	/* several missed periods: one run, then the next future boundary */
	t = create_at(&m, "{" MD ", 'reportedState': {'timer': {'value': 5}},"
				  " 'reconciliation': {'timers': {'t': {'javaScript': " TIMER_JS("") ", 'period': '5s',"
				  " 'lastStarted': '" NOW_TEXT "', 'lastRun': '2024-01-01T00:00:05Z'}}}}", NOW + 23 * S, &err);
	is_int(int_at(t, "/reportedState/timer/value"), 6, "missed periods: the timer runs once");
	is_int(hook_calls, 1, "... one script run");
	is_time(waker_when(t), NOW + 25 * S, "... and jumps to the next future boundary");
	json_object_put(t);
	dg_machine_reset(&m);

	/* lastRun before lastStarted: due now */
	t = create_at(&m, "{" MD ", 'reconciliation': {'timers': {'t': {'javaScript': " TIMER_JS("") ", 'period': '5s',"
				  " 'initialDelay': '1m', 'lastStarted': '" NOW_TEXT "', 'lastRun': '" T0 "'}}}}", NOW + S, &err);
	is_int(int_at(t, "/reportedState/timer/value"), 1, "lastRun before lastStarted: due now");
	is_time(waker_when(t), NOW + 5 * S, "... next at the boundary after now");
	json_object_put(t);
	dg_machine_reset(&m);

	/* stopped */
	t = create_at(&m, "{" MD ", 'reconciliation': {'timers': {'t': {'javaScript': " TIMER_JS("") ", 'period': '5s',"
				  " 'stopped': true, 'lastStarted': '" T0 "', 'lastRun': '" T0 "'}}}}", NOW, &err);
	ok(t && !has_at(t, "/reconciliation/timers/t/lastStarted"), "a stopped timer loses lastStarted");
	is_str(str_at(t, "/reconciliation/timers/t/lastRun"), T0, "... keeps lastRun");
	ok(t && !has_at(t, "/reportedState/timer") && hook_calls == 0, "... does not run");
	ok(t && !has_at(t, "/internal"), "... and requests no wake-up");
	json_object_put(t);
	dg_machine_reset(&m);

	/* a timer cannot rewrite its own bookkeeping; timers run in name order */
	t = create_at(&m, "{" MD ", 'reconciliation': {'timers': {"
				  "'t2': {'javaScript': 'var r = context.newState.reportedState = context.newState.reportedState || {};"
				  " r.order = {value: (r.order ? r.order.value : []).concat([`t2`])};', 'period': '1m'},"
				  " 't1': {'javaScript': 'var x = context.newState.reconciliation.timers.t1; x.stopped = true;"
				  " x.period = `1s`; x.lastRun = `2000-01-01T00:00:00Z`;"
				  " var r = context.newState.reportedState = context.newState.reportedState || {};"
				  " r.order = {value: (r.order ? r.order.value : []).concat([`t1`])};', 'period': '1m'}}}}",
				  NOW, &err);
	is_json(at(t, "/reportedState/order/value"), "['t1', 't2']", "timers run in name order");
	is_json(at(t, "/reconciliation/timers/t1/stopped"), "false", "a timer cannot stop itself");
	is_str(str_at(t, "/reconciliation/timers/t1/period"), "1m", "... nor change its period");
	is_str(str_at(t, "/reconciliation/timers/t1/lastRun"), NOW_TEXT, "... nor its lastRun");
	is_time(waker_when(t), NOW + 60 * S, "both timers ask for their next run");
	json_object_put(t);
	dg_machine_reset(&m);

	/* a failing timer fails the reconcile */
	t = create_at(&m, "{" MD ", 'reconciliation': {'timers': {'tick': {'javaScript': 'throw 1;', 'period': '1s'}}}}",
				  NOW, &err);
	ok(t == NULL && err.kind == DG_ERR_HOOK && contains(err.message, "timer \"tick\""),
	   "a throwing timer fails the reconcile, naming the timer");
	json_object_put(t);
	dg_machine_reset(&m);
}

/* §3.10.3: the desired code method. */
static void
test_machine_desired_code(void)
{
	DgMachine	m;
	DgError		err;
	json_object *t;
	char		buf[64];
	char		want[256];

	t = create_at(&m, "{" MD ", 'desiredState': {'x': {'value': 1, 'method': {'code': {'javaScript':"
				  " 'context.commands = [{channel: `c`, payload: {x: 1}}]; context.waker = `10s`;'}}}}}",
				  NOW, &err);
	is_json(m.commands, "[{'device': 't', 'channel': 'c', 'payload': {'x': 1}}]",
			"code method: the script's command, with its payload, to the thing");
	is_str(str_at(t, "/desiredState/x/reconciliation/lastAttempt"), NOW_TEXT, "code method: lastAttempt = now");
	is_str(str_at(t, "/desiredState/x/reconciliation/state"), "reconciling", "code method: still reconciling");
	is_time(waker_when(t), NOW + 10 * DG_NS_PER_S, "code method: the waker it asked for");
	is_str(hook_trace, "desiredReconciliation:x", "code method: one run");
	json_object_put(t);
	dg_machine_reset(&m);

	/* what the script sees, the device annotation and an explicit device */
	t = create_at(&m, "{'metadata': {'application': 'app', 'name': 't', 'annotations': {'drogue.io/device': 'dev1'}},"
				  " 'desiredState': {'x': {'value': 1, 'method': {'code': {'javaScript':"
				  " 'context.commands = [{channel: `echo`, payload: {value: context.value, action: context.action,"
				  " lastAttempt: context.lastAttempt === undefined ? null : context.lastAttempt,"
				  " sees: typeof context.newState + typeof context.logs}}, {channel: `d`, device: `dev2`}];'}}}}}",
				  NOW, &err);
	is_json(m.commands, "[{'device': 'dev1', 'channel': 'echo', 'payload': {'value': 1, 'action': 'desiredReconciliation',"
			" 'lastAttempt': null, 'sees': 'undefinedundefined'}}, {'device': 'dev2', 'channel': 'd', 'payload': null}]",
			"code method: context {value, action}, device from the annotation or the command");
	step(&m, &t, WAKE, NOW + 60 * DG_NS_PER_S, &err);
	snprintf(want, sizeof(want), "'%s'", NOW_TEXT);
	is_json(at(m.commands, "/0/payload/lastAttempt"), want, "code method: lastAttempt is passed in");
	is_str(str_at(t, "/desiredState/x/reconciliation/lastAttempt"), fmt_time(NOW + 60 * DG_NS_PER_S, buf),
		   "code method: lastAttempt moves with every command");
	ok(t && !has_at(t, "/internal"), "code method: no waker unless asked for");
	json_object_put(t);
	dg_machine_reset(&m);

	/* no commands: no lastAttempt */
	t = create_at(&m, "{" MD ", 'desiredState': {'x': {'value': 1, 'method': {'code': {'javaScript':"
				  " 'context.commands = [];'}}}}}", NOW, &err);
	ok(t && !has_at(t, "/desiredState/x/reconciliation/lastAttempt") && count(m.commands) == 0,
	   "code method: empty commands set no lastAttempt");
	json_object_put(t);
	dg_machine_reset(&m);

	/* a succeeded feature does not run its code */
	t = create_at(&m, "{" MD ", 'reportedState': {'x': {'value': 1}}, 'desiredState': {'x': {'value': 1,"
				  " 'method': {'code': {'javaScript': 'throw 1;'}}}}}", NOW, &err);
	is_str(str_at(t, "/desiredState/x/reconciliation/state"), "succeeded", "code method: reported equal, succeeded");
	is_int(hook_calls, 0, "code method: not run when not reconciling");
	json_object_put(t);
	dg_machine_reset(&m);

	/* failures */
	t = create_at(&m, "{" MD ", 'desiredState': {'x': {'value': 1, 'method': {'code': {'javaScript':"
				  " 'log(`x`);'}}}}}", NOW, &err);
	ok(t == NULL && err.kind == DG_ERR_HOOK && contains(err.message, "desired state code \"x\""),
	   "code method: log() throws and fails the reconcile");
	json_object_put(t);
	dg_machine_reset(&m);
	t = create_at(&m, "{" MD ", 'desiredState': {'x': {'value': 1, 'method': {'code': {'javaScript':"
				  " 'context.commands = [{payload: 1}];'}}}}}", NOW, &err);
	ok(t == NULL && err.kind == DG_ERR_HOOK && contains(err.message, "channel"),
	   "code method: a command without channel fails");
	json_object_put(t);
	dg_machine_reset(&m);
}

static void
test_machine_deleting_js(void)
{
	DgMachine	m;
	DgError		err;
	json_object *t = canon_at("{" MD ", 'reportedState': {'x': {'value': 1, 'lastUpdate': '" T0 "'}},"
							  " 'reconciliation': {'deleting': {'bye': {'javaScript':"
							  " 'context.newState.reportedState.x.value = 2;"
							  " sendMerge(`parent`, {reportedState: {gone: {value: context.action + `:`"
							  " + context.currentState.metadata.name}}}); log(`ignored`);'}}}}", NOW);
	json_object *before = dg_json_copy(t);

	machine_init(&m, NOW);
	dg_error_clear(&err);
	ok(dg_machine_deleting(&m, t, &err), "deleting hooks run");
	is_json(m.outbox, "[{'thing': 'parent', 'message': {'merge': {'reportedState': {'gone': {'value': 'deleting:t'}}}}}]",
			"a deleting hook's outbox is collected; it sees the thing as currentState");
	ok(dg_json_equal(t, before), "a deleting hook's changes are ignored");
	dg_machine_reset(&m);
	json_object_put(t);
	json_object_put(before);
}

/* ---- part 3: dg_thing_stamp_owners ---- */

static bool
has_function(json_object *functions, const char *name)
{
	for (size_t i = 0; i < count(functions); i++)
		if (strcmp(json_object_get_string(json_object_array_get_idx(functions, i)), name) == 0)
			return true;
	return false;
}

static void
test_stamp_owners(void)
{
	json_object *current = canon_at("{" MD ", 'reconciliation': {"
									"'changed': {'same': {'javaScript': 'a', 'owner': 'alice'},"
									" 'edited': {'javaScript': 'b1', 'owner': 'alice'},"
									" 'samefn': {'function': 'public.f_same', 'owner': 'alice'},"
									" 'switched': {'javaScript': 'x', 'owner': 'alice'},"
									" 'noowner': {'javaScript': 'n'}},"
									" 'timers': {'t': {'javaScript': 'tick', 'period': '2s', 'owner': 'alice'}},"
									" 'deleting': {'d': {'function': 'public.f_old_del', 'owner': 'alice'}}},"
									" 'syntheticState': {'s': {'javaScript': 's1', 'owner': 'alice'}},"
									" 'desiredState': {'x': {'value': 1, 'method': {'code': {'function': 'public.f_des', 'owner': 'alice'}}}}}",
									NOW);
	json_object *thing = canon_at("{" MD ", 'reconciliation': {"
								  "'changed': {'same': {'javaScript': 'a', 'owner': 'mallory'},"
								  " 'edited': {'javaScript': 'b2', 'owner': 'alice'},"
								  " 'samefn': {'function': 'public.f_same'},"
								  " 'switched': {'function': 'public.f_switched'},"
								  " 'noowner': {'javaScript': 'n'},"
								  " 'brandnew': {'function': 'public.f_new', 'owner': 'alice'}},"
								  " 'timers': {'t': {'javaScript': 'tick', 'period': '5s'}},"
								  " 'deleting': {'d': {'function': 'public.f_del'}}},"
								  " 'syntheticState': {'s': {'javaScript': 's1'}, 'fs': {'function': 'public.f_syn'},"
								  " 'al': {'alias': 'x'}},"
								  " 'desiredState': {'x': {'value': 2, 'method': {'code': {'function': 'public.f_des'}}},"
								  " 'y': {'value': 1, 'method': {'code': {'function': 'public.f_des_y'}}},"
								  " 'z': {'value': 1, 'method': 'manual'}}}", NOW);
	json_object *functions = json_object_new_array();
	json_object *again;

	dg_thing_stamp_owners(thing, current, "bob", functions);
	is_str(str_at(thing, "/reconciliation/changed/same/owner"), "alice",
		   "unchanged code keeps its owner, whatever the input claims");
	is_str(str_at(thing, "/reconciliation/changed/edited/owner"), "bob",
		   "changed code gets the new role, whatever the input claims");
	is_str(str_at(thing, "/reconciliation/changed/samefn/owner"), "alice", "an unchanged function keeps its owner");
	is_str(str_at(thing, "/reconciliation/changed/switched/owner"), "bob", "JavaScript replaced by a function: new role");
	is_str(str_at(thing, "/reconciliation/changed/noowner/owner"), "bob", "unchanged code without owner gets the role");
	is_str(str_at(thing, "/reconciliation/changed/brandnew/owner"), "bob", "new code gets the role");
	is_str(str_at(thing, "/reconciliation/timers/t/owner"), "alice", "a timer whose period changed keeps its owner");
	is_str(str_at(thing, "/reconciliation/deleting/d/owner"), "bob", "a deleting hook with another function: new role");
	is_str(str_at(thing, "/syntheticState/s/owner"), "alice", "an unchanged synthetic keeps its owner");
	is_str(str_at(thing, "/syntheticState/fs/owner"), "bob", "a new synthetic function gets the role");
	ok(!has_at(thing, "/syntheticState/al/owner"), "an alias has no owner");
	is_str(str_at(thing, "/desiredState/x/method/code/owner"), "alice", "unchanged desired code keeps its owner");
	is_str(str_at(thing, "/desiredState/y/method/code/owner"), "bob", "new desired code gets the role");
	ok(!has_at(thing, "/desiredState/z/method/owner"), "a manual method has no owner");

	is_int(count(functions), 5, "five functions are newly configured");
	ok(has_function(functions, "public.f_switched") && has_function(functions, "public.f_new") &&
	   has_function(functions, "public.f_del") && has_function(functions, "public.f_syn") &&
	   has_function(functions, "public.f_des_y"),
	   "... changed, deleting, synthetic and desired code functions are collected");
	ok(!has_function(functions, "public.f_same") && !has_function(functions, "public.f_des"),
	   "... unchanged functions are not");
	if (count(functions) != 5)
		diag("functions: %s", dg_json_text(functions, NULL));
	json_object_put(functions);

	/* stamping the result again against itself changes nothing and collects nothing */
	again = dg_json_copy(thing);
	functions = json_object_new_array();
	dg_thing_stamp_owners(again, thing, "carol", functions);
	ok(dg_json_equal(again, thing) && count(functions) == 0, "re-stamping unchanged code is a no-op");
	json_object_put(functions);
	json_object_put(again);

	/* a create: everything is new; functions may be NULL */
	again = dg_json_copy(thing);
	{
		json_object *empty = dg_thing_new("app", "t");

		dg_thing_stamp_owners(again, empty, "carol", NULL);
		is_str(str_at(again, "/reconciliation/changed/same/owner"), "carol", "create: all code gets the role");
		is_str(str_at(again, "/desiredState/x/method/code/owner"), "carol", "create: desired code too");
		json_object_put(empty);
	}
	json_object_put(again);
	json_object_put(thing);
	json_object_put(current);
}

int
main(void)
{
	NOW = T(NOW_TEXT);
	test_synthetic_values();
	test_hook_context();
	test_utf16_output();
	test_when_value_changed();
	test_isolation_and_cache();
	test_errors();
	test_memory_history();
	if (getenv("DG_TEST_SKIP_ENGINE_DROP") == NULL)
		test_unencodable();
	else
		diag("skipped test_unencodable (DG_TEST_SKIP_ENGINE_DROP is set)");
	test_machine_synthetics_js();
	test_machine_changed_js();
	test_machine_waker_hook();
	test_machine_timers_js();
	test_machine_desired_code();
	test_machine_deleting_js();
	test_stamp_owners();
	dg_script_reset();
	return done_testing();
}
