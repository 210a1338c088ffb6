/*-------------------------------------------------------------------------
 *
 * json.c
 *		Small helpers over json-c and the DgError type, shared by the pure layer.
 *
 * json-c represents JSON null as a NULL pointer, so "missing" and "null"
 * differ only through json_object_object_get_ex; dg_json_has keeps that
 * distinction visible at every call site.
 *
 * src/json.c
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg.h"

/* Deep enough for any jsonb document we are likely to meet. */
#define DG_JSON_MAX_DEPTH 1000

void
dg_error_clear(DgError *err)
{
	memset(err, 0, sizeof(*err));
}

bool
dg_fail(DgError *err, DgErrorKind kind, const char *fmt,...)
{
	va_list		ap;

	err->kind = kind;
	err->sqlstate[0] = '\0';
	err->detail[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return false;
}

void
dg_error_detail(DgError *err, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
}

void
dg_error_prefix(DgError *err, const char *fmt,...)
{
	char		buf[sizeof(err->message) * 2];
	size_t		n;
	va_list		ap;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(err->message), fmt, ap);
	va_end(ap);
	if (n >= sizeof(err->message))
		n = sizeof(err->message) - 1;
	/* the message is cut to fit, never the prefix that names the culprit */
	memcpy(buf + n, ": ", 2);
	strcpy(buf + n + 2, err->message);
	buf[sizeof(err->message) - 1] = '\0';
	strcpy(err->message, buf);
}

bool
dg_json_parse(const char *text, size_t len, json_object **out, DgError *err)
{
	json_tokener *tok;
	json_object *obj;
	enum json_tokener_error jerr;
	size_t		end;

	*out = NULL;
	tok = json_tokener_new_ex(DG_JSON_MAX_DEPTH);
	if (tok == NULL)
		return dg_fail(err, DG_ERR_INTERNAL, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, text, (int) len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (jerr == json_tokener_continue)
	{
		/* a bare number or literal needs a terminator to be complete */
		obj = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		end = len;
	}
	json_tokener_free(tok);
	if (jerr != json_tokener_success)
	{
		json_object_put(obj);
		return dg_fail(err, DG_ERR_INVALID, "invalid JSON: %s",
					   json_tokener_error_desc(jerr));
	}
	/* only whitespace may follow the value */
	while (end < len && (text[end] == ' ' || text[end] == '\t' ||
						 text[end] == '\n' || text[end] == '\r' || text[end] == '\0'))
		end++;
	if (end < len)
	{
		json_object_put(obj);
		return dg_fail(err, DG_ERR_INVALID, "invalid JSON: trailing characters");
	}
	*out = obj;
	return true;
}

const char *
dg_json_text(json_object *obj, size_t *len)
{
	const char *s;

	if (obj == NULL)
	{
		if (len)
			*len = 4;
		return "null";
	}
	s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
									   JSON_C_TO_STRING_NOSLASHESCAPE);
	if (len)
		*len = strlen(s);
	return s;
}

json_object *
dg_json_copy(json_object *obj)
{
	json_object *copy = NULL;

	if (obj == NULL)
		return NULL;
	if (json_object_deep_copy(obj, &copy, NULL) != 0)
		abort();				/* only fails on allocation failure */
	return copy;
}

static bool
is_number(json_object *o)
{
	enum json_type t = json_object_get_type(o);

	return t == json_type_int || t == json_type_double;
}

/*
 * A decimal number in a canonical form: sign, significant digits without
 * leading or trailing zeros, and the exponent of the first digit.  Zero is
 * the empty digit string.
 */
typedef struct Decimal
{
	bool		negative;
	char		digits[400];
	long		exponent;
} Decimal;

static void
decimal_parse(const char *s, Decimal *d)
{
	int			n = 0;
	long		point = -1;
	long		lead = 0;		/* digits before the first significant one */
	long		count = 0;

	d->negative = *s == '-';
	if (*s == '-' || *s == '+')
		s++;
	for (; *s && *s != 'e' && *s != 'E'; s++)
	{
		if (*s == '.')
		{
			point = count;
			continue;
		}
		count++;
		if (n == 0 && *s == '0')
		{
			lead++;
			continue;
		}
		if (n < (int) sizeof(d->digits) - 1)
			d->digits[n++] = *s;
	}
	while (n > 0 && d->digits[n - 1] == '0')
		n--;
	d->digits[n] = '\0';
	if (point < 0)
		point = count;
	d->exponent = point - lead + (*s ? strtol(s + 1, NULL, 10) : 0);
	if (n == 0)
	{
		d->negative = false;
		d->exponent = 0;
	}
}

/*
 * Numbers are equal when their values are, exactly, as jsonb compares
 * them: 42 equals 42.0, but two decimals that only differ beyond double
 * precision are different.  json-c keeps the digits a number was parsed
 * from, so the text is exact.
 */
static bool
numbers_equal(json_object *a, json_object *b)
{
	Decimal		da,
				db;

	if (json_object_get_type(a) == json_type_int &&
		json_object_get_type(b) == json_type_int)
		return json_object_get_int64(a) == json_object_get_int64(b) &&
			json_object_get_uint64(a) == json_object_get_uint64(b);
	decimal_parse(json_object_get_string(a), &da);
	decimal_parse(json_object_get_string(b), &db);
	return da.negative == db.negative && da.exponent == db.exponent &&
		strcmp(da.digits, db.digits) == 0;
}

bool
dg_json_equal(json_object *a, json_object *b)
{
	enum json_type ta,
				tb;

	if (a == NULL || b == NULL)
		return a == b;
	if (is_number(a) && is_number(b))
		return numbers_equal(a, b);
	ta = json_object_get_type(a);
	tb = json_object_get_type(b);
	if (ta != tb)
		return false;
	switch (ta)
	{
		case json_type_boolean:
			return json_object_get_boolean(a) == json_object_get_boolean(b);
		case json_type_string:
			return json_object_get_string_len(a) == json_object_get_string_len(b) &&
				memcmp(json_object_get_string(a), json_object_get_string(b),
					   json_object_get_string_len(a)) == 0;
		case json_type_array:
			{
				size_t		n = json_object_array_length(a);

				if (n != json_object_array_length(b))
					return false;
				for (size_t i = 0; i < n; i++)
					if (!dg_json_equal(json_object_array_get_idx(a, i),
									   json_object_array_get_idx(b, i)))
						return false;
				return true;
			}
		case json_type_object:
			{
				if (json_object_object_length(a) != json_object_object_length(b))
					return false;
				json_object_object_foreach(a, key, va)
				{
					json_object *vb;

					if (!json_object_object_get_ex(b, key, &vb))
						return false;
					if (!dg_json_equal(va, vb))
						return false;
				}
				return true;
			}
		default:
			return false;
	}
}

bool
dg_json_has(json_object *obj, const char *key, json_object **value)
{
	json_object *v = NULL;
	bool		found;

	if (obj == NULL || json_object_get_type(obj) != json_type_object)
	{
		if (value)
			*value = NULL;
		return false;
	}
	found = json_object_object_get_ex(obj, key, &v);
	if (value)
		*value = v;
	return found;
}

static int
compare_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

const char **
dg_json_sorted_keys(json_object *obj, size_t *count)
{
	const char **keys;
	size_t		n = 0;

	*count = 0;
	if (obj == NULL || json_object_get_type(obj) != json_type_object)
		return NULL;
	keys = malloc(sizeof(char *) * (json_object_object_length(obj) + 1));
	if (keys == NULL)
		abort();
	json_object_object_foreach(obj, key, val)
	{
		(void) val;
		keys[n++] = key;
	}
	qsort(keys, n, sizeof(char *), compare_keys);
	*count = n;
	return keys;
}

int
dg_json_object_size(json_object *obj)
{
	if (obj == NULL || json_object_get_type(obj) != json_type_object)
		return 0;
	return json_object_object_length(obj);
}

const char *
dg_json_type_name(json_object *obj)
{
	switch (json_object_get_type(obj))
	{
		case json_type_null:
			return "null";
		case json_type_boolean:
			return "a boolean";
		case json_type_int:
		case json_type_double:
			return "a number";
		case json_type_string:
			return "a string";
		case json_type_array:
			return "an array";
		case json_type_object:
			return "an object";
	}
	return "unknown";
}

void
dg_json_set(json_object *obj, const char *key, json_object *value)
{
	json_object_object_add(obj, key, value);
}

json_object *
dg_json_ensure_object(json_object *obj, const char *key)
{
	json_object *v;

	if (dg_json_has(obj, key, &v) && json_object_get_type(v) == json_type_object)
		return v;
	v = json_object_new_object();
	json_object_object_add(obj, key, v);
	return v;
}
