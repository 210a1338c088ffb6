/*-------------------------------------------------------------------------
 *
 * script.c
 *		Running JavaScript hooks in Duktape (ECMAScript 5.1).
 *
 * One Duktape heap per process.  Each run gets a thread with a fresh
 * global environment, so nothing a script leaves in globals survives to
 * the next run, as with upstream's fresh runtime per execution.  Compiling
 * is the expensive part, so each script text is compiled once per process
 * and kept as bytecode in the heap's stash; a run loads it into its new
 * environment.
 *
 * Limits that hold:
 * - time: Duktape is built with DUK_USE_EXEC_TIMEOUT_CHECK (see the
 *   Makefile), which calls dg_duk_exec_timeout every few thousand
 *   instructions; past the deadline of the reconcile run, or when the
 *   caller says so (a query cancel), the run ends with an error;
 * - memory: the heap's allocator counts bytes and refuses to grow a run
 *   past its budget.
 * A failure is an error of the hook, never of the process: the context is
 * reported through DgError and the heap stays usable.  Duktape's fatal
 * handler (an internal error) jumps back here; the heap is then dropped.
 *
 * The context goes in and out as JSON text, the contract of §3.6.
 *
 * src/script.c
 *
 *-------------------------------------------------------------------------
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "duktape.h"

#include "dg.h"

/* The helpers of §3.6, and the conveniences the port adds, in ES5.1. */
static const char prelude[] =
"function log(message) { context.logs.push(String(message)); }\n"
"function sendMessage(thing, message) { context.outbox.push({thing: thing, message: message}); }\n"
"function sendMerge(thing, merge) { sendMessage(thing, {merge: merge}); }\n"
"function sendPatch(thing, patch) { sendMessage(thing, {patch: patch}); }\n"
"function wakeup(delay) { context.waker = delay; }\n"
"function whenValueChanged(name, callback) {\n"
"  function valueOf(state) {\n"
"    if (!state) return undefined;\n"
"    var s = state.syntheticState, r = state.reportedState;\n"
"    if (s && s[name] !== undefined) return s[name].value;\n"
"    if (r && r[name] !== undefined) return r[name].value;\n"
"    return undefined;\n"
"  }\n"
"  var now = valueOf(context.newState), before = valueOf(context.currentState);\n"
"  if (JSON.stringify(now) !== JSON.stringify(before)) callback(now, before);\n"
"}\n";

typedef struct Header
{
	size_t		size;
	size_t		pad;			/* keep the payload 16-byte aligned */
} Header;

static duk_context *heap = NULL;
static size_t heap_used = 0;
static size_t heap_budget = 0;	/* 0: unlimited */
static const DgScriptLimits *limits = NULL;
static bool timed_out;
static bool stopped;
static bool out_of_memory;
static jmp_buf *fatal_jump = NULL;

int64_t
dg_monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * DG_NS_PER_S + ts.tv_nsec;
}

/* Called by Duktape's executor now and then: true ends the run. */
int			dg_duk_exec_timeout(void *udata);
int
dg_duk_exec_timeout(void *udata)
{
	(void) udata;
	if (limits == NULL)
		return 0;
	if (limits->deadline_ns && dg_monotonic_ns() > limits->deadline_ns)
	{
		timed_out = true;
		return 1;
	}
	if (limits->interrupted && limits->interrupted())
	{
		stopped = true;
		return 1;
	}
	return 0;
}

static void *
counting_alloc(void *udata, duk_size_t size)
{
	Header	   *h;

	(void) udata;
	if (heap_budget && heap_used + size > heap_budget)
	{
		out_of_memory = true;
		return NULL;
	}
	h = malloc(sizeof(Header) + size);
	if (h == NULL)
		return NULL;
	h->size = size;
	heap_used += size;
	return h + 1;
}

static void
counting_free(void *udata, void *ptr)
{
	Header	   *h;

	(void) udata;
	if (ptr == NULL)
		return;
	h = (Header *) ptr - 1;
	heap_used -= h->size;
	free(h);
}

static void *
counting_realloc(void *udata, void *ptr, duk_size_t size)
{
	Header	   *h;
	Header	   *n;

	if (ptr == NULL)
		return counting_alloc(udata, size);
	if (size == 0)
	{
		counting_free(udata, ptr);
		return NULL;
	}
	h = (Header *) ptr - 1;
	if (size > h->size && heap_budget && heap_used + (size - h->size) > heap_budget)
	{
		out_of_memory = true;
		return NULL;
	}
	n = realloc(h, sizeof(Header) + size);
	if (n == NULL)
		return NULL;
	heap_used = heap_used - n->size + size;
	n->size = size;
	return n + 1;
}

static void
fatal_handler(void *udata, const char *msg)
{
	(void) udata;
	(void) msg;
	/* Duktape must not return from here; jump back to the run */
	if (fatal_jump)
		longjmp(*fatal_jump, 1);
	abort();
}

static duk_context *
get_heap(void)
{
	if (heap == NULL)
		heap = duk_create_heap(counting_alloc, counting_realloc, counting_free, NULL,
							   fatal_handler);
	return heap;
}

void
dg_script_reset(void)
{
	if (heap)
		duk_destroy_heap(heap);
	heap = NULL;
}

/*
 * Push the bytecode of a script (compiled and cached on first use) onto
 * the heap's stack; false with the compiler's message on a syntax error.
 */
static bool
push_bytecode(duk_context *h, const char *source, bool eval, const char *what, DgError *err)
{
	duk_push_heap_stash(h);
	duk_push_string(h, eval ? "e:" : "g:");
	duk_push_string(h, source);
	duk_concat(h, 2);
	if (duk_get_prop(h, -2))
	{
		duk_remove(h, -2);
		return true;
	}
	duk_pop(h);
	duk_push_string(h, source);
	duk_push_string(h, what);
	if (duk_pcompile(h, eval ? DUK_COMPILE_EVAL : 0) != 0)
	{
		dg_fail(err, DG_ERR_HOOK, "%s has a syntax error: %s", what, duk_safe_to_string(h, -1));
		duk_pop_2(h);
		return false;
	}
	duk_dump_function(h);
	/* stash[kind + source] = bytecode */
	duk_push_string(h, eval ? "e:" : "g:");
	duk_push_string(h, source);
	duk_concat(h, 2);
	duk_dup(h, -2);
	duk_put_prop(h, -4);
	duk_remove(h, -2);
	return true;
}

/* Load bytecode from the heap into thread t and call it; pops nothing on h. */
static duk_int_t
call_bytecode(duk_context *h, duk_context *t, int index)
{
	duk_dup(h, index);
	duk_xmove_top(t, h, 1);
	duk_load_function(t);
	return duk_pcall(t, 0);
}

static void
describe_error(duk_context *t, const DgHookCall *call, const DgScriptLimits *lim, DgError *err)
{
	char		what[300];

	snprintf(what, sizeof(what), "%s \"%s\"", call->kind, call->name);
	if (timed_out)
		dg_fail(err, DG_ERR_HOOK, "%s ran longer than the hook timeout (%d ms)", what,
				lim ? lim->timeout_ms : 0);
	else if (stopped)
		dg_fail(err, DG_ERR_HOOK, "%s was interrupted", what);
	else if (out_of_memory)
		dg_fail(err, DG_ERR_HOOK, "%s used more than the %zu kB of memory a hook may use", what,
				lim ? lim->heap_limit / 1024 : 0);
	else
	{
		const char *message = duk_safe_to_string(t, -1);
		int			line = 0;

		if (duk_is_error(t, -1))
		{
			duk_get_prop_string(t, -1, "lineNumber");
			line = duk_get_int_default(t, -1, 0);
			duk_pop(t);
		}
		if (line > 0)
			dg_fail(err, DG_ERR_HOOK, "%s failed: %s (line %d)", what, message, line);
		else
			dg_fail(err, DG_ERR_HOOK, "%s failed: %s", what, message);
	}
}

/* The run itself, between the fatal-error jump and the cleanup. */
static bool
run_in_thread(duk_context *h, duk_context *t, const DgHookCall *call, json_object **result,
			  DgError *err)
{
	json_object *code = call->code;
	json_object *js;
	const char *text;
	size_t		len;
	bool		eval = call->action == DG_ACTION_SYNTHETIC;
	char		what[300];

	snprintf(what, sizeof(what), "%s \"%s\"", call->kind, call->name);
	if (!dg_json_has(code, "javaScript", &js) || json_object_get_type(js) != json_type_string)
		return dg_fail(err, DG_ERR_HOOK, "%s has no JavaScript", what);

	/* the helpers, then the context, then the script */
	if (!push_bytecode(h, prelude, false, "the hook prelude", err))
		return false;
	if (call_bytecode(h, t, -1) != 0)
	{
		describe_error(t, call, limits, err);
		duk_pop(h);
		return false;
	}
	duk_pop(t);
	duk_pop(h);

	text = dg_json_text(call->context, &len);
	duk_push_lstring(t, text, len);
	duk_json_decode(t, -1);
	duk_put_global_string(t, "context");

	if (!push_bytecode(h, json_object_get_string(js), eval, what, err))
		return false;
	if (call_bytecode(h, t, -1) != 0)
	{
		describe_error(t, call, limits, err);
		duk_pop(h);
		return false;
	}
	duk_pop(h);

	/* read back: a synthetic's completion value, or the context */
	if (eval)
	{
		duk_push_object(t);
		duk_swap_top(t, -2);
		if (duk_is_undefined(t, -1) || duk_is_function(t, -1))
		{
			duk_pop(t);
			duk_push_null(t);
		}
		duk_put_prop_string(t, -2, "value");
	}
	else
		duk_get_global_string(t, "context");
	text = duk_json_encode(t, -1);
	if (text == NULL)
		return dg_fail(err, DG_ERR_HOOK, "%s left no context", what);
	if (!dg_json_parse(text, strlen(text), result, err))
	{
		dg_error_prefix(err, "%s returned something that is not JSON", what);
		err->kind = DG_ERR_HOOK;
		return false;
	}
	return true;
}

bool
dg_script_run(const DgHookCall *call, const DgScriptLimits *lim, json_object **result,
			  DgError *err)
{
	duk_context *h = get_heap();
	duk_context *t;
	jmp_buf		jump;
	jmp_buf    *outer = fatal_jump;
	volatile bool ok = false;
	duk_idx_t	base;

	*result = NULL;
	if (h == NULL)
		return dg_fail(err, DG_ERR_HOOK, "could not create a JavaScript heap");
	timed_out = stopped = out_of_memory = false;
	limits = lim;
	/* garbage of earlier runs is freed as it goes; the budget is for this run */
	heap_budget = lim && lim->heap_limit ? heap_used + lim->heap_limit : 0;
	base = duk_get_top(h);
	fatal_jump = &jump;
	if (setjmp(jump) == 0)
	{
		duk_push_thread_new_globalenv(h);
		t = duk_get_context(h, -1);
		ok = run_in_thread(h, t, call, result, err);
		duk_set_top(h, base);
		/* a run must not leave what it allocated counted against the next */
		heap_budget = 0;
	}
	else
	{
		/* an internal error of Duktape: drop the heap, start a new one next time */
		heap = NULL;
		ok = dg_fail(err, DG_ERR_HOOK, "%s \"%s\" stopped the JavaScript engine", call->kind,
					 call->name);
	}
	fatal_jump = outer;
	limits = NULL;
	heap_budget = 0;
	if (!ok)
	{
		json_object_put(*result);
		*result = NULL;
	}
	return ok;
}
