/*-------------------------------------------------------------------------
 *
 * dg.h
 *		Declarations of the pure layer: the thing model, JSON patches, time,
 *		operations and the reconciliation machine.
 *
 * Nothing declared here depends on PostgreSQL: these files compile into the
 * extension and, unchanged, into the unit-test programs under test/unit.
 * They allocate with malloc (json-c does) and never longjmp; every failure
 * is reported through a DgError that the edge turns into an ereport.
 *
 * src/dg.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef DG_H
#define DG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "opkind.h"

/* Nanoseconds since the Unix epoch, UTC. */
typedef int64_t dg_time;

#define DG_NO_TIME INT64_MIN
#define DG_NS_PER_US INT64_C(1000)
#define DG_NS_PER_MS INT64_C(1000000)
#define DG_NS_PER_S INT64_C(1000000000)

/* Limits of the thing model. */
#define DG_MAX_APPLICATION_LEN 64
#define DG_MAX_NAME_LEN 256

/*
 * Error kinds; the edge maps each to one SQLSTATE (see service.c).
 */
typedef enum DgErrorKind
{
	DG_OK = 0,
	DG_ERR_INVALID,				/* 22023: malformed input */
	DG_ERR_NOT_FOUND,			/* PT404 */
	DG_ERR_EXISTS,				/* 23505 */
	DG_ERR_PRECONDITION,		/* PT412 */
	DG_ERR_VALIDATION,			/* 23514: schema validation failed */
	DG_ERR_HOOK,				/* 38000: a hook failed or timed out */
	DG_ERR_HOOK_PRIVILEGE,		/* 42501 raised inside a hook */
	DG_ERR_LIMIT,				/* 54000: a size limit was exceeded */
	DG_ERR_INTERNAL				/* XX000 */
} DgErrorKind;

typedef struct DgError
{
	DgErrorKind kind;
	char		sqlstate[6];	/* optional: a more precise SQLSTATE */
	char		message[1024];
	char		detail[1024];
} DgError;

extern void dg_error_clear(DgError *err);
extern bool dg_fail(DgError *err, DgErrorKind kind, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));
extern void dg_error_detail(DgError *err, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));
/* Prefix the message with "<prefix>: " (used to name the failing part). */
extern void dg_error_prefix(DgError *err, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

/* ---- json.c: helpers over json-c ---- */

/* Parse a complete JSON text; NULL with err on failure (JSON null gives *out NULL and true). */
extern bool dg_json_parse(const char *text, size_t len, json_object **out, DgError *err);
/* Serialize compactly; the string lives as long as obj. */
extern const char *dg_json_text(json_object *obj, size_t *len);
/* Deep copy (NULL stays NULL). */
extern json_object *dg_json_copy(json_object *obj);
/* Structural equality; numbers compare by value (42 equals 42.0), as jsonb does. */
extern bool dg_json_equal(json_object *a, json_object *b);
/* Object member lookup that tells "missing" from "null". */
extern bool dg_json_has(json_object *obj, const char *key, json_object **value);
/* Object keys in byte order: a malloc'd array of borrowed strings. */
extern const char **dg_json_sorted_keys(json_object *obj, size_t *count);
/* Number of members of an object, 0 for non-objects. */
extern int	dg_json_object_size(json_object *obj);
/* Describe a JSON type for messages ("a string", "an object", ...). */
extern const char *dg_json_type_name(json_object *obj);
/* Add or replace a member; takes ownership of value. */
extern void dg_json_set(json_object *obj, const char *key, json_object *value);
/* Return obj[key] as an object, creating an empty one when missing or not an object. */
extern json_object *dg_json_ensure_object(json_object *obj, const char *key);

/* ---- patch.c: RFC 6901, RFC 6902 and RFC 7396 ---- */

/*
 * Apply an RFC 6902 patch (a JSON array of operations) to *doc.  All or
 * nothing: on failure *doc is untouched and err names the failing operation.
 * On success *doc may be a new root (the old one is released).
 */
extern bool dg_patch_apply(json_object **doc, json_object *patch, DgError *err);

/* Apply an RFC 7396 merge patch to *doc; on success *doc may be a new root. */
extern bool dg_merge_apply(json_object **doc, json_object *merge, DgError *err);

/*
 * Compute an RFC 6902 patch that turns "from" into "to" (a new array,
 * possibly empty).  Uses add, remove and replace only.
 */
extern json_object *dg_patch_diff(json_object *from, json_object *to);

/*
 * Resolve an RFC 6901 pointer.  Returns true and sets *value (borrowed;
 * may be NULL for JSON null) when the target exists.
 */
extern bool dg_pointer_get(json_object *doc, const char *pointer, json_object **value);

/* ---- time.c: RFC 3339 timestamps and humantime durations ---- */

/* Parse an RFC 3339 timestamp (any offset) to UTC nanoseconds. */
extern bool dg_time_parse(const char *text, dg_time *out);
/* Format as RFC 3339 UTC with a Z and 0, 3, 6 or 9 fraction digits; buf >= 40. */
extern void dg_time_format(dg_time t, char *buf);
extern json_object *dg_time_json(dg_time t);
/* Parse a humantime duration ("1m", "1h 30m", "500ms") to nanoseconds (>= 0). */
extern bool dg_duration_parse(const char *text, int64_t *out);
/* Format in humantime's canonical form ("1m 30s", "0s"); buf >= 128. */
extern void dg_duration_format(int64_t ns, char *buf);
/*
 * A script's wake-up delay: a humantime string or a number of seconds
 * (truncated toward zero, negative allowed).  Returns false when the value is
 * neither; *present is false for null.
 */
extern bool dg_delay_from_json(json_object *value, int64_t *out, bool *present);

/* ---- thing.c: the thing model ---- */

/* Validate an application or thing name; false with a message saying what is wrong. */
extern bool dg_check_application(const char *application, DgError *err);
extern bool dg_check_name(const char *name, DgError *err);

/*
 * Bring a thing given by a client, an operation or a script into canonical
 * form: known sections only, each checked, defaults filled in (a reported or
 * desired feature without lastUpdate gets "now"), timestamps and durations
 * normalized, empty sections dropped.  The system-owned metadata (uid,
 * creationTimestamp, deletionTimestamp, generation, resourceVersion) is kept
 * as given; dg_thing_restore_system puts back the stored values.
 * Returns a new object, or NULL with err.
 */
extern json_object *dg_thing_canonical(json_object *in, dg_time now, DgError *err);

/* A new thing that holds only {metadata: {application, name}}. */
extern json_object *dg_thing_new(const char *application, const char *name);

/* Borrowed accessors (NULL when missing). */
extern const char *dg_thing_application(json_object *thing);
extern const char *dg_thing_name(json_object *thing);
extern json_object *dg_thing_section(json_object *thing, const char *section);
/* Section object, created (empty) when missing. */
extern json_object *dg_thing_ensure(json_object *thing, const char *section);
/* Drop the empty sections and empty optional maps that canonical form omits. */
extern void dg_thing_prune(json_object *thing);

/* Copy the system-owned metadata of "from" into "to" (removing it when absent in "from"). */
extern void dg_thing_restore_system(json_object *to, json_object *from);

/* The ThingState view (values only) used for schema validation. */
extern json_object *dg_thing_state_view(json_object *thing);

/*
 * Record who configured each piece of code (hooks, timers, synthetics,
 * desired code): code that did not change since "current" keeps its owner,
 * new or changed code gets "role".  The names of functions newly configured
 * are appended to "functions" (an array, or NULL) for the edge to check.
 */
extern void dg_thing_stamp_owners(json_object *thing, json_object *current, const char *role,
								  json_object *functions);

/* Waker algebra on internal.waker (§1.8 of the reference). */
typedef enum DgWakeReason
{
	DG_WAKE_RECONCILE = 1,
	DG_WAKE_OUTBOX = 2,
	DG_WAKE_DELETION = 4
} DgWakeReason;

extern void dg_waker_request(json_object *thing, dg_time when, DgWakeReason why);
extern void dg_waker_clear(json_object *thing, DgWakeReason why);
/* internal.waker.when, or DG_NO_TIME. */
extern dg_time dg_waker_when(json_object *thing);

/* ---- ops.c: operations on a thing (reference §2.3) ---- */


typedef struct DgOp
{
	DgOpKind	kind;
	json_object *arg;			/* borrowed: the operation's payload */
	bool		partial;		/* reportState: merge (true) or replace */
	const char *feature;		/* synthetic and desired puts */
	/* set by dg_op_apply: unregisterChild left no children */
	bool		delete_requested;
} DgOp;

/*
 * Read an event message ({"reportState": {...}}, {"merge": {...}}, ...) into
 * an op that borrows from it.  An unknown or malformed message is
 * DG_ERR_INVALID.
 */
extern bool dg_op_from_message(json_object *message, DgOp *op, DgError *err);
extern const char *dg_op_name(DgOpKind kind);

/*
 * Apply op to *thing (canonical, owned by the caller; may be replaced).
 * All or nothing: on failure *thing is unchanged.
 */
extern bool dg_op_apply(json_object **thing, DgOp *op, dg_time now, DgError *err);

/* ---- machine.c: the reconciliation machine (reference §3.4 to §3.10) ---- */

typedef enum DgHookAction
{
	DG_ACTION_CHANGED,
	DG_ACTION_TIMER,
	DG_ACTION_DELETING,
	DG_ACTION_SYNTHETIC,
	DG_ACTION_DESIRED
} DgHookAction;

extern const char *dg_action_name(DgHookAction action);

typedef struct DgHookCall
{
	DgHookAction action;
	const char *kind;			/* "changed hook", "synthetic", ... for messages */
	const char *name;			/* hook or feature name */
	json_object *code;			/* {"javaScript"|"function": ..., "owner"?} */
	json_object *context;		/* the input context object */
} DgHookCall;

/*
 * Runs one hook.  On success *result is the context object after the run
 * but for its currentState, which nothing reads back (for a synthetic:
 * {"value": <completion value>}), owned by the caller.
 * A failure must name the hook in err (DG_ERR_HOOK or a precise kind).
 */
typedef bool (*DgRunHook) (void *arg, const DgHookCall *call,
						   json_object **result, DgError *err);

typedef struct DgMachine
{
	dg_time		now;
	DgRunHook	run_hook;		/* NULL: things with code cannot be processed */
	void	   *hook_arg;
	/* outputs, arrays owned by the machine (dg_machine_reset frees them) */
	json_object *outbox;		/* [{thing, message}] for other things; NULL: none */
	json_object *commands;		/* [{device, channel, payload}]; NULL: none */
} DgMachine;

extern void dg_machine_init(DgMachine *m, dg_time now);
extern void dg_machine_reset(DgMachine *m);

/*
 * Reconcile *thing after an operation.  current is the stored thing (for a
 * create, the empty thing of dg_thing_new); it is not modified.  Runs
 * synthetics, changed hooks, timers, the desired-state machine, normalizes
 * reported timestamps, restores system metadata from current and validates
 * against the thing's schema.  On failure *thing is left unusable and must
 * be discarded by the caller.
 */
extern bool dg_machine_reconcile(DgMachine *m, json_object *current,
								 json_object **thing, DgError *err);

/* Run the deleting hooks of thing, collecting their outbox messages. */
extern bool dg_machine_deleting(DgMachine *m, json_object *thing, DgError *err);

/* Validate thing against its schema, if it has one. */
extern bool dg_machine_validate(json_object *thing, DgError *err);

/* ---- script.c: JavaScript hooks in Duktape ---- */

typedef struct DgScriptLimits
{
	int64_t		deadline_ns;	/* CLOCK_MONOTONIC; 0: none */
	int			timeout_ms;		/* for the message when it passes */
	size_t		heap_limit;		/* bytes one run may add to the heap; 0: none */
	bool		(*interrupted) (void);	/* polled with the deadline */
} DgScriptLimits;

/* Run {"javaScript": ...} code for a hook call (see DgRunHook). */
extern bool dg_script_run(const DgHookCall *call, const DgScriptLimits *limits,
						  json_object **result, DgError *err);
extern int64_t dg_monotonic_ns(void);
/* Drop the process's JavaScript heap (and its compiled code). */
extern void dg_script_reset(void);

/* ---- desired.c: desired-state reconciliation (reference §3.10, §8.2) ---- */

extern bool dg_desired_reconcile(DgMachine *m, json_object *current,
								 json_object *thing, DgError *err);

/* ---- ecmaregex.c: ECMA-262 patterns on POSIX regex ---- */

typedef struct DgRegex DgRegex;

/*
 * Compile an ECMA-262 pattern.  On failure returns NULL and writes to errbuf
 * what is wrong.  With *unsupported set, that is the construct POSIX cannot
 * express, in lowercase ("backreference", "lookaround or named group",
 * "non-ASCII character inside brackets"...); otherwise it is regerror's
 * complaint about a malformed pattern.
 */
extern DgRegex *dg_regex_compile(const char *pattern, bool *unsupported,
								 char *errbuf, size_t errlen);
/*
 * Whether the pattern matches anywhere in s[0, len), which may hold NULs
 * where libc has REG_STARTEND (elsewhere the match stops at the first NUL).
 */
extern bool dg_regex_match(DgRegex *re, const char *s, size_t len);
extern void dg_regex_free(DgRegex *re);

/* ---- schema.c: JSON Schema draft 7 ---- */

typedef struct DgSchema DgSchema;

/*
 * Compile a draft 7 schema (an object or a boolean).  A keyword the
 * validator does not implement, a bad keyword value or a $ref that is not a
 * local "#..." pointer is refused with DG_ERR_INVALID, so a schema is never
 * silently half-enforced.
 */
extern DgSchema *dg_schema_compile(json_object *schema, DgError *err);

/* Validate; false with DG_ERR_VALIDATION and a message naming the instance path. */
extern bool dg_schema_validate(DgSchema *schema, json_object *instance, DgError *err);
extern void dg_schema_free(DgSchema *schema);

#endif							/* DG_H */
