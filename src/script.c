/*-------------------------------------------------------------------------
 *
 * script.c
 *		Running JavaScript hooks in Duktape (ECMAScript 5.1).
 *
 * One Duktape heap per process, and in it one global environment per
 * owner role (the role that configured the code), created on first use:
 * the builtins, every object reachable from them frozen, become the
 * prototype of an empty global object that then gets the helpers,
 * read-only.  After each run, the global's other own properties (what the
 * run declared or assigned) are deleted; scripts are compiled as eval code,
 * whose declarations can be deleted.  So nothing a script leaves behind
 * reaches the next run, as with upstream's fresh runtime per execution,
 * without the cost of building the builtins again for every run (most of a
 * trivial hook's time), and code of one role never shares an environment
 * with code of another.  The price is that builtins and helpers cannot be
 * extended or changed: assigning to them fails silently, as for any frozen
 * object in ES5.  A script that leaves a global that cannot be deleted
 * costs its environment, which is built anew.
 *
 * Each script text is compiled once per environment and kept in the
 * environment's global stash.
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
 * The context goes in by walking the json-c tree and comes out as JSON
 * text, the contract of §3.6.
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
"function log(message) {\n"
"  if (!context.logs) throw new TypeError('log() is not available in a ' + context.action);\n"
"  context.logs.push(String(message));\n"
"}\n"
"function sendMessage(thing, message) {\n"
"  if (!context.outbox) throw new TypeError('sendMessage() is not available in a ' + context.action);\n"
"  context.outbox.push({thing: thing, message: message});\n"
"}\n"
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
"  function same(a, b) {\n"
"    if (a === b) return true;\n"
"    if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;\n"
"    if (Array.isArray(a) !== Array.isArray(b)) return false;\n"
"    var ka = Object.keys(a), kb = Object.keys(b);\n"
"    if (ka.length !== kb.length) return false;\n"
"    for (var i = 0; i < ka.length; i++)\n"
"      if (!Object.prototype.hasOwnProperty.call(b, ka[i]) || !same(a[ka[i]], b[ka[i]])) return false;\n"
"    return true;\n"
"  }\n"
"  var now = valueOf(context.newState), before = valueOf(context.currentState);\n"
"  if (!same(now, before)) callback(now, before);\n"
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
static size_t collected_at = 0;	/* heap_used after the last collection */

/* garbage a run's budget may find left over from earlier runs */
#define GC_SLACK (256 * 1024)

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

/*
 * Duktape makes and frees many small blocks; malloc's bookkeeping for them
 * was a fifth of a trivial hook's time.  Blocks up to POOL_MAX bytes are
 * kept on free lists by size class (of POOL_STEP bytes) and handed out
 * again.  heap_used counts the sizes asked for, pooled or not.
 */
#define POOL_STEP 16
#define POOL_MAX 512
#define POOL_CLASSES (POOL_MAX / POOL_STEP)

static void *pool[POOL_CLASSES];	/* free lists, linked through the payload */

static inline int
pool_class(size_t size)
{
	return size <= POOL_MAX ? (int) ((size + POOL_STEP - 1) / POOL_STEP) - (size > 0) : -1;
}

static void *
counting_alloc(void *udata, duk_size_t size)
{
	Header	   *h;
	int			c = pool_class(size);

	(void) udata;
	if (heap_budget && heap_used + size > heap_budget)
	{
		out_of_memory = true;
		return NULL;
	}
	if (c >= 0 && pool[c] != NULL)
	{
		h = (Header *) pool[c] - 1;
		pool[c] = *(void **) pool[c];
	}
	else
	{
		h = malloc(sizeof(Header) + (c >= 0 ? (size_t) (c + 1) * POOL_STEP : size));
		if (h == NULL)
			return NULL;
	}
	h->size = size;
	heap_used += size;
	return h + 1;
}

static void
counting_free(void *udata, void *ptr)
{
	Header	   *h;
	int			c;

	(void) udata;
	if (ptr == NULL)
		return;
	h = (Header *) ptr - 1;
	heap_used -= h->size;
	c = pool_class(h->size);
	if (c >= 0)
	{
		*(void **) ptr = pool[c];
		pool[c] = ptr;
	}
	else
		free(h);
}

static void *
counting_realloc(void *udata, void *ptr, duk_size_t size)
{
	Header	   *h;
	Header	   *n;
	void	   *p;
	int			c;

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
	c = pool_class(h->size);
	if (c >= 0 && c == pool_class(size))
	{
		/* the block has room */
		heap_used = heap_used - h->size + size;
		h->size = size;
		return ptr;
	}
	if (c >= 0 || pool_class(size) >= 0)
	{
		/* from or into the pool: move */
		p = counting_alloc(udata, size);
		if (p == NULL)
			return NULL;
		memcpy(p, ptr, size < h->size ? size : h->size);
		counting_free(udata, ptr);
		return p;
	}
	n = realloc(h, sizeof(Header) + size);
	if (n == NULL)
		return NULL;
	heap_used = heap_used - n->size + size;
	n->size = size;
	return n + 1;
}

/* Give the pooled blocks back to malloc. */
static void
pool_free_all(void)
{
	for (int c = 0; c < POOL_CLASSES; c++)
	{
		while (pool[c] != NULL)
		{
			void	   *next = *(void **) pool[c];

			free((Header *) pool[c] - 1);
			pool[c] = next;
		}
	}
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
	collected_at = 0;
	pool_free_all();
}

/* Freeze every object reachable from the global object, and it too. */
static const char lockdown[] =
"(function (g) {\n"
"  function freeze(o) {\n"
"    if (o === null || (typeof o !== 'object' && typeof o !== 'function') || Object.isFrozen(o)) return;\n"
"    Object.freeze(o);\n"
"    var names = Object.getOwnPropertyNames(o);\n"
"    for (var i = 0; i < names.length; i++) {\n"
"      var d = Object.getOwnPropertyDescriptor(o, names[i]);\n"
"      if ('value' in d) freeze(d.value); else { freeze(d.get); freeze(d.set); }\n"
"    }\n"
"    freeze(Object.getPrototypeOf(o));\n"
"  }\n"
"  freeze(g);\n"
"})\n";

/* Make the helpers read-only; return their names (as keys of an object). */
static const char seal_helpers[] =
"(function (g) {\n"
"  var names = Object.getOwnPropertyNames(g), base = Object.create(null);\n"
"  for (var i = 0; i < names.length; i++) {\n"
"    Object.defineProperty(g, names[i], {writable: false, configurable: false});\n"
"    base[names[i]] = true;\n"
"  }\n"
"  return base;\n"
"})\n";

/* Run a function source (compiled as eval code) on the global object. */
static bool
apply_to_global(duk_context *t, const char *source, const char *what)
{
	duk_push_string(t, source);
	duk_push_string(t, what);
	if (duk_pcompile(t, DUK_COMPILE_EVAL) != 0 || duk_pcall(t, 0) != 0)
		return false;
	duk_push_global_object(t);
	return duk_pcall(t, 1) == 0;
}

/* The object at key in the stash at index i, made anew when missing or full. */
static void
push_map(duk_context *c, duk_idx_t i, const char *key, const char *count_key, int limit)
{
	duk_get_prop_string(c, i, count_key);
	if (duk_get_prop_string(c, i, key) && duk_get_int(c, -2) < limit)
	{
		duk_remove(c, -2);
		return;
	}
	/* none yet, or so many that starting over beats growing */
	duk_pop_2(c);
	duk_push_bare_object(c);
	duk_dup_top(c);
	duk_put_prop_string(c, i, key);
	duk_push_int(c, 0);
	duk_put_prop_string(c, i, count_key);
}

/* stash[count_key] += 1 */
static void
count_one(duk_context *c, duk_idx_t i, const char *count_key)
{
	duk_get_prop_string(c, i, count_key);
	duk_push_int(c, duk_get_int(c, -1) + 1);
	duk_put_prop_string(c, i, count_key);
	duk_pop(c);
}

/*
 * Push onto h the thread of the owner's environment, building it if there
 * is none; NULL if building failed (which is not a hook's fault).
 */
static duk_context *
push_env(duk_context *h, const char *owner)
{
	duk_idx_t	stash,
				envs;
	duk_context *t;

	duk_push_heap_stash(h);
	stash = duk_get_top_index(h);
	push_map(h, stash, "envs", "envcount", 64);
	envs = duk_get_top_index(h);
	if (duk_get_prop_string(h, envs, owner))
	{
		t = duk_get_context(h, -1);
		duk_remove(h, stash);
		duk_remove(h, stash);
		return t;
	}
	duk_pop(h);

	/*
	 * The builtins, frozen, become the prototype of an empty global object:
	 * a run's globals are then the global's own properties, few and quick
	 * to find afterwards, and builtins resolve through the prototype.
	 */
	duk_push_thread_new_globalenv(h);
	t = duk_get_context(h, -1);
	if (!apply_to_global(t, lockdown, "the hook lockdown"))
		return NULL;
	duk_pop(t);
	duk_push_global_object(t);
	duk_push_bare_object(t);
	duk_swap_top(t, -2);
	duk_set_prototype(t, -2);
	duk_set_global_object(t);
	/* the helpers, declared on the new global, read-only */
	duk_push_string(t, prelude);
	duk_push_string(t, "the hook prelude");
	if (duk_pcompile(t, 0) != 0 || duk_pcall(t, 0) != 0)
		return NULL;
	duk_pop(t);
	if (!apply_to_global(t, seal_helpers, "the hook helpers"))
		return NULL;
	duk_push_global_stash(t);
	duk_swap_top(t, -2);
	duk_put_prop_string(t, -2, "base");
	duk_set_top(t, 0);
	duk_dup_top(h);
	duk_put_prop_string(h, envs, owner);
	count_one(h, stash, "envcount");
	duk_remove(h, stash);
	duk_remove(h, stash);
	return t;
}

/* Forget the owner's environment: its globals could not be put back. */
static void
drop_env(duk_context *h, const char *owner)
{
	duk_push_heap_stash(h);
	if (duk_get_prop_string(h, -1, "envs"))
		duk_del_prop_string(h, -1, owner);
	duk_pop_2(h);
}

/*
 * Push the compiled code of a script onto t (compiled on first use, as
 * eval code so that its declarations can be deleted afterwards); false with
 * the compiler's message on a syntax error.
 */
static bool
push_code(duk_context *t, const char *source, const char *what, DgError *err)
{
	duk_idx_t	stash,
				code;

	duk_push_global_stash(t);
	stash = duk_get_top_index(t);
	push_map(t, stash, "code", "codecount", 1000);
	code = duk_get_top_index(t);
	if (!duk_get_prop_string(t, code, source))
	{
		duk_pop(t);
		duk_push_string(t, source);
		duk_push_string(t, what);
		if (duk_pcompile(t, DUK_COMPILE_EVAL) != 0)
		{
			dg_fail(err, DG_ERR_HOOK, "%s has a syntax error: %s", what, duk_safe_to_string(t, -1));
			duk_set_top(t, stash);
			return false;
		}
		duk_dup_top(t);
		duk_put_prop_string(t, code, source);
		count_one(t, stash, "codecount");
	}
	duk_remove(t, stash);
	duk_remove(t, stash);
	return true;
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
		const char *message;
		int			line = 0;

		/*
		 * First (duk_safe_to_string replaces the error by a string), and
		 * only for a line of the hook's own code, not of a helper.
		 */
		if (duk_is_error(t, -1))
		{
			duk_get_prop_string(t, -1, "fileName");
			if (duk_is_string(t, -1) && strcmp(duk_get_string(t, -1), what) == 0)
			{
				duk_get_prop_string(t, -2, "lineNumber");
				line = duk_get_int_default(t, -1, 0);
				duk_pop(t);
			}
			duk_pop(t);
		}
		message = duk_safe_to_string(t, -1);
		if (line > 0)
			dg_fail(err, DG_ERR_HOOK, "%s failed: %s (line %d)", what, message, line);
		else
			dg_fail(err, DG_ERR_HOOK, "%s failed: %s", what, message);
	}
}

/*
 * The context goes in by walking json-c's tree (JSON text in between cost
 * twice: printing, then Duktape's parser), except currentState, which few
 * hooks read: it is built on first access only.
 */
typedef struct Input
{
	json_object *context;
	const char *state;			/* newState as Duktape writes it, or NULL */
	size_t		state_len;
} Input;

static json_object *lazy_current;	/* currentState while a run lasts */

/* Push a JSON value as the ECMAScript value JSON.parse would give. */
static void
push_jsonc(duk_context *t, json_object *v)
{
	duk_require_stack(t, 4);
	switch (json_object_get_type(v))
	{
		case json_type_null:
			duk_push_null(t);
			break;
		case json_type_boolean:
			duk_push_boolean(t, json_object_get_boolean(v));
			break;
		case json_type_int:
			duk_push_number(t, (double) json_object_get_int64(v));
			break;
		case json_type_double:
			duk_push_number(t, json_object_get_double(v));
			break;
		case json_type_string:
			duk_push_lstring(t, json_object_get_string(v), json_object_get_string_len(v));
			break;
		case json_type_array:
			{
				size_t		n = json_object_array_length(v);

				duk_push_array(t);
				for (size_t i = 0; i < n; i++)
				{
					push_jsonc(t, json_object_array_get_idx(v, i));
					duk_put_prop_index(t, -2, (duk_uarridx_t) i);
				}
				break;
			}
		case json_type_object:
			duk_push_object(t);
			json_object_object_foreach(v, key, value)
			{
				push_jsonc(t, value);
				duk_put_prop_string(t, -2, key);
			}
			break;
	}
}

/* Getter of context.currentState: build it, then keep it as a plain property. */
static duk_ret_t
get_current_state(duk_context *t)
{
	duk_push_this(t);
	if (lazy_current == NULL)
		duk_push_undefined(t);
	else
		push_jsonc(t, lazy_current);
	duk_push_string(t, "currentState");
	duk_dup(t, -2);
	duk_def_prop(t, -4, DUK_DEFPROP_HAVE_VALUE | DUK_DEFPROP_SET_WRITABLE |
				 DUK_DEFPROP_SET_ENUMERABLE | DUK_DEFPROP_SET_CONFIGURABLE);
	return 1;
}

/* Its setter: the assigned value becomes the plain property. */
static duk_ret_t
set_current_state(duk_context *t)
{
	duk_push_this(t);
	duk_push_string(t, "currentState");
	duk_dup(t, 0);
	duk_def_prop(t, -3, DUK_DEFPROP_HAVE_VALUE | DUK_DEFPROP_SET_WRITABLE |
				 DUK_DEFPROP_SET_ENUMERABLE | DUK_DEFPROP_SET_CONFIGURABLE);
	return 0;
}

/*
 * global context = the input, protected: it may run out of memory.  The
 * newState is also written out as JSON right away, for telling afterwards
 * whether the run changed it.
 */
static duk_ret_t
decode_context(duk_context *t, void *udata)
{
	Input	   *in = udata;

	duk_push_object(t);
	json_object_object_foreach(in->context, key, value)
	{
		if (strcmp(key, "currentState") == 0 && value != NULL)
		{
			lazy_current = value;
			duk_push_string(t, "currentState");
			duk_push_c_function(t, get_current_state, 0);
			duk_push_c_function(t, set_current_state, 1);
			duk_def_prop(t, -4, DUK_DEFPROP_HAVE_GETTER | DUK_DEFPROP_HAVE_SETTER |
						 DUK_DEFPROP_SET_ENUMERABLE | DUK_DEFPROP_SET_CONFIGURABLE);
			continue;
		}
		push_jsonc(t, value);
		if (strcmp(key, "newState") == 0)
		{
			/* kept reachable in the stash for as long as the pointer is used */
			duk_push_global_stash(t);
			duk_dup(t, -2);
			duk_json_encode(t, -1);
			in->state = duk_get_lstring(t, -1, &in->state_len);
			duk_put_prop_string(t, -2, "newStateText");
			duk_pop(t);
		}
		duk_put_prop_string(t, -2, key);
	}
	duk_put_global_string(t, "context");
	return 0;
}

/*
 * The result as JSON text, protected: a cyclic context, a toJSON or a
 * getter may throw (or run into the limits).  A synthetic gives one text,
 * {"value": completion value}; a hook gives two, its newState (or
 * undefined) and the rest of the context but for currentState, which
 * nothing reads back.
 */
static duk_ret_t
encode_result(duk_context *t, void *udata)
{
	if (*(bool *) udata)
	{
		duk_push_object(t);
		duk_swap_top(t, -2);
		if (duk_is_undefined(t, -1) || duk_is_function(t, -1))
		{
			duk_pop(t);
			duk_push_null(t);
		}
		duk_put_prop_string(t, -2, "value");
		duk_json_encode(t, -1);
		return 1;
	}
	duk_pop(t);
	duk_get_global_string(t, "context");
	if (!duk_is_object(t, -1))
	{
		duk_push_undefined(t);
		duk_swap_top(t, -2);
		duk_json_encode(t, -1);
		return 2;
	}
	duk_get_prop_string(t, -1, "newState");
	if (!duk_is_undefined(t, -1))
		duk_json_encode(t, -1);
	duk_swap_top(t, -2);
	duk_del_prop_string(t, -1, "newState");
	duk_del_prop_string(t, -1, "currentState");
	duk_json_encode(t, -1);
	return 2;
}

static char *cesu_to_utf8(const char *s, size_t len);

/* Parse JSON text from Duktape (CESU-8, see below) into *out. */
static bool
parse_output(const char *text, size_t len, const char *what, json_object **out, DgError *err)
{
	char	   *utf8 = cesu_to_utf8(text, len);
	bool		parsed;

	if (utf8 == NULL)
		return dg_fail(err, DG_ERR_HOOK, "%s: out of memory", what);
	parsed = dg_json_parse(utf8, strlen(utf8), out, err);
	free(utf8);
	if (!parsed)
	{
		dg_error_prefix(err, "%s returned something that is not JSON", what);
		err->kind = DG_ERR_HOOK;
	}
	return parsed;
}

/*
 * Duktape keeps UTF-16 surrogates as 3-byte sequences (CESU-8), which are
 * not UTF-8: join a pair into its 4-byte form, replace a lone one by
 * U+FFFD.  Returns a malloc'd copy, or NULL.
 */
static char *
cesu_to_utf8(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *) s;
	unsigned char *out = malloc(len + 1);
	size_t		o = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len;)
	{
		if (p[i] == 0xED && i + 5 < len && p[i + 1] >= 0xA0 && p[i + 1] <= 0xAF &&
			p[i + 3] == 0xED && p[i + 4] >= 0xB0 && p[i + 4] <= 0xBF)
		{
			unsigned int hi = ((p[i + 1] & 0x0F) << 6) | (p[i + 2] & 0x3F);
			unsigned int lo = ((p[i + 4] & 0x0F) << 6) | (p[i + 5] & 0x3F);
			unsigned int cp = 0x10000 + (hi << 10) + lo;

			out[o++] = 0xF0 | (cp >> 18);
			out[o++] = 0x80 | ((cp >> 12) & 0x3F);
			out[o++] = 0x80 | ((cp >> 6) & 0x3F);
			out[o++] = 0x80 | (cp & 0x3F);
			i += 6;
		}
		else if (p[i] == 0xED && i + 2 < len && p[i + 1] >= 0xA0)
		{
			out[o++] = 0xEF;
			out[o++] = 0xBF;
			out[o++] = 0xBD;
			i += 3;
		}
		else
			out[o++] = p[i++];
	}
	out[o] = '\0';
	return (char *) out;
}

/* The run itself, in the owner's environment t, with the limits on. */
static bool
run_in_env(duk_context *t, const DgHookCall *call, json_object **result, DgError *err)
{
	json_object *js;
	json_object *new_state = NULL;
	Input		in;
	const char *text;
	const char *state_text;
	size_t		len;
	size_t		state_len;
	bool		synthetic = call->action == DG_ACTION_SYNTHETIC;
	char		what[300];

	snprintf(what, sizeof(what), "%s \"%s\"", call->kind, call->name);
	if (!dg_json_has(call->code, "javaScript", &js) || json_object_get_type(js) != json_type_string)
		return dg_fail(err, DG_ERR_HOOK, "%s has no JavaScript", what);

	memset(&in, 0, sizeof(in));
	in.context = call->context;
	if (duk_safe_call(t, decode_context, &in, 0, 1) != 0)
	{
		describe_error(t, call, limits, err);
		return false;
	}
	duk_pop(t);

	if (!push_code(t, json_object_get_string(js), what, err))
		return false;
	if (duk_pcall(t, 0) != 0)
	{
		describe_error(t, call, limits, err);
		return false;
	}
	if (duk_safe_call(t, encode_result, &synthetic, 1, synthetic ? 1 : 2) != 0)
	{
		/* the error comes first, then undefined for the other result */
		if (!synthetic)
			duk_pop(t);
		describe_error(t, call, limits, err);
		return false;
	}
	text = duk_get_lstring(t, -1, &len);
	if (text == NULL)
		return dg_fail(err, DG_ERR_HOOK, "%s left no context", what);
	if (!parse_output(text, len, what, result, err))
		return false;
	if (synthetic || !json_object_is_type(*result, json_type_object))
		return true;

	/*
	 * A newState that writes out as it did before the run is unchanged, the
	 * common case: leave it out, and the machine keeps the thing as it was
	 * rather than checking it anew.
	 */
	state_text = duk_get_lstring(t, -2, &state_len);
	if (state_text != NULL)
	{
		if (in.state == NULL || in.state_len != state_len ||
			memcmp(in.state, state_text, state_len) != 0)
		{
#ifdef DG_DEBUG_FAST
			fprintf(stderr, "IN  %.*s\nOUT %.*s\n", (int) in.state_len, in.state, (int) state_len, state_text);
#endif
			if (!parse_output(state_text, state_len, what, &new_state, err))
			{
				json_object_put(*result);
				*result = NULL;
				return false;
			}
			dg_json_set(*result, "newState", new_state);
		}
	}
	return true;
}

/* Delete the globals the run added; throws if one cannot be deleted. */
static duk_ret_t
delete_new_globals(duk_context *t, void *udata)
{
	duk_idx_t	base,
				global;

	duk_push_global_stash(t);
	duk_get_prop_string(t, -1, "base");
	base = duk_get_top_index(t);
	duk_push_global_object(t);
	global = duk_get_top_index(t);
	duk_enum(t, global, DUK_ENUM_OWN_PROPERTIES_ONLY | DUK_ENUM_INCLUDE_NONENUMERABLE);
	while (duk_next(t, -1, 0))
	{
		duk_dup_top(t);
		if (duk_has_prop(t, base))
			duk_pop(t);
		else
			duk_del_prop(t, global);
	}
	return 0;
}

/*
 * Put t's globals back as they were before the run (the builtins and
 * helpers cannot change); false if that was not possible.
 */
static bool
restore_globals(duk_context *t)
{
	bool		clean;

	duk_set_top(t, 0);
	clean = duk_safe_call(t, delete_new_globals, NULL, 0, 1) == 0;
	duk_set_top(t, 0);
	return clean;
}

bool
dg_script_run(const DgHookCall *call, const DgScriptLimits *lim, json_object **result,
			  DgError *err)
{
	duk_context *h = get_heap();
	jmp_buf		jump;
	jmp_buf    *outer = fatal_jump;
	volatile bool ok = false;
	json_object *owner_json;
	const char *owner = "";
	duk_idx_t	base;

	*result = NULL;
	if (h == NULL)
		return dg_fail(err, DG_ERR_HOOK, "could not create a JavaScript heap");
	if (dg_json_has(call->code, "owner", &owner_json) &&
		json_object_get_type(owner_json) == json_type_string)
		owner = json_object_get_string(owner_json);
	timed_out = stopped = out_of_memory = false;
	base = duk_get_top(h);
	fatal_jump = &jump;
	if (setjmp(jump) == 0)
	{
		duk_context *t = push_env(h, owner);

		if (t == NULL)
			ok = dg_fail(err, DG_ERR_HOOK, "%s \"%s\": could not prepare the JavaScript environment",
						 call->kind, call->name);
		else
		{
			/*
			 * The budget is for this run: most garbage of earlier runs went
			 * with its last reference, but cycles (every function makes one)
			 * wait for a collection, so collect once they may matter.
			 */
			if (heap_used > collected_at + GC_SLACK)
			{
				duk_gc(h, 0);
				collected_at = heap_used;
			}
			limits = lim;
			heap_budget = lim && lim->heap_limit ? heap_used + lim->heap_limit : 0;
			ok = run_in_env(t, call, result, err);
			lazy_current = NULL;
			limits = NULL;
			heap_budget = 0;
			if (!restore_globals(t))
				drop_env(h, owner);
		}
		duk_set_top(h, base);
	}
	else
	{
		lazy_current = NULL;

		/*
		 * An internal error of Duktape: its state is not to be trusted, so
		 * not even to be freed; drop the heap, start a new one next time.
		 */
		heap = NULL;
		heap_used = collected_at = 0;
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
