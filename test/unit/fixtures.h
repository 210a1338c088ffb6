/*
 * fixtures.h
 *		Helpers the model and script unit tests share: test JSON written with
 *		single quotes ('...' for "..." and ` for an escaped quote), timestamps,
 *		canonical test things, JSON pointer lookups and structural comparison.
 *		A malformed fixture is a bug in the test: it stops the run.
 */
#ifndef DG_FIXTURES_H
#define DG_FIXTURES_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dg.h"
#include "tap.h"

static inline size_t
count(json_object *array)
{
	return array ? json_object_array_length(array) : 0;
}

/* Parse test input: ' stands for ", ` for \" (see the header); a typo stops the run. */
static inline json_object *
J(const char *text)
{
	size_t		len = strlen(text);
	char	   *s = malloc(2 * len + 1);
	char	   *o = s;
	json_object *obj;
	DgError		err;

	if (s == NULL)
		abort();
	for (const char *p = text; *p; p++)
	{
		if (*p == '\'')
			*o++ = '"';
		else if (*p == '`')
		{
			*o++ = '\\';
			*o++ = '"';
		}
		else
			*o++ = *p;
	}
	*o = '\0';
	dg_error_clear(&err);
	if (!dg_json_parse(s, strlen(s), &obj, &err))
	{
		fprintf(stderr, "bad test JSON %s: %s\n", text, err.message);
		exit(2);
	}
	free(s);
	return obj;
}

static inline dg_time
T(const char *text)
{
	dg_time		t;

	if (!dg_time_parse(text, &t))
	{
		fprintf(stderr, "bad test timestamp %s\n", text);
		exit(2);
	}
	return t;
}

static inline json_object *
canon_at(const char *text, dg_time now)
{
	json_object *in = J(text);
	json_object *out;
	DgError		err;

	dg_error_clear(&err);
	out = dg_thing_canonical(in, now, &err);
	if (out == NULL)
	{
		fprintf(stderr, "bad test thing %s: %s\n", text, err.message);
		exit(2);
	}
	json_object_put(in);
	return out;
}

static inline json_object *
at(json_object *doc, const char *pointer)
{
	json_object *v = NULL;

	if (doc == NULL || !dg_pointer_get(doc, pointer, &v))
		return NULL;
	return v;
}

static inline bool
has_at(json_object *doc, const char *pointer)
{
	json_object *v;

	return doc != NULL && dg_pointer_get(doc, pointer, &v);
}

static inline const char *
str_at(json_object *doc, const char *pointer)
{
	json_object *v = at(doc, pointer);

	return json_object_get_type(v) == json_type_string ? json_object_get_string(v) : NULL;
}

static inline bool
contains(const char *haystack, const char *needle)
{
	return haystack != NULL && strstr(haystack, needle) != NULL;
}

static inline void is_json(json_object *got, const char *want_text, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

static inline void
is_json(json_object *got, const char *want_text, const char *fmt,...)
{
	json_object *want = J(want_text);
	bool		same = dg_json_equal(got, want);
	char		name[512];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	ok(same, "%s", name);
	if (!same)
	{
		diag("     got: %s", got ? dg_json_text(got, NULL) : "(missing)");
		diag("expected: %s", dg_json_text(want, NULL));
	}
	json_object_put(want);
}

#endif
