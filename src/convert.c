/*-------------------------------------------------------------------------
 *
 * convert.c
 *		jsonb to json-c and back, without going through JSON text.
 *
 * Every processed thing is read from jsonb columns and most are written
 * back; walking the jsonb tree and pushing JsonbValues directly saves the
 * printing and re-lexing of text on both sides.  Numbers keep their text:
 * an integer that fits in 64 bits becomes a json-c integer, any other
 * number a json-c double that remembers its original digits.
 *
 * This file includes json-c and PostgreSQL's jsonb, but not
 * utils/builtins.h (see doppelganger.h): the two numeric I/O functions it
 * needs are declared below.
 *
 * src/convert.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "common/jsonapi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "miscadmin.h"

#include "service.h"

/* from utils/fmgrprotos.h, which cannot be included next to json-c */
extern Datum numeric_in(PG_FUNCTION_ARGS);
extern Datum numeric_out(PG_FUNCTION_ARGS);

static json_object *
number_to_jsonc(Numeric num)
{
	char	   *text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(num)));
	json_object *obj;

	if (strpbrk(text, ".eE") == NULL && strlen(text) < 19)
		obj = json_object_new_int64(strtoll(text, NULL, 10));
	else
		obj = json_object_new_double_s(strtod(text, NULL), text);
	pfree(text);
	return obj;
}

static json_object *
scalar_to_jsonc(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return NULL;
		case jbvString:
			return json_object_new_string_len(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return number_to_jsonc(v->val.numeric);
		case jbvBool:
			return json_object_new_boolean(v->val.boolean);
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
	return NULL;
}

/*
 * Walk the container with a stack of the open json-c containers (and the
 * pending key of each object).  On an error, which only allocation can
 * raise, the partial tree is released.
 */
json_object *
dg_jsonc_from_jsonb(Jsonb *jb)
{
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			size = 16;
	json_object **stack = palloc(sizeof(json_object *) * size);
	char	  **keys = palloc(sizeof(char *) * size);
	int			depth = 0;
	json_object *volatile root = NULL;
	bool		scalar_doc = JB_ROOT_IS_SCALAR(jb);

	PG_TRY();
	{
		while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
		{
			json_object *value;

			if (tok == WJB_KEY)
			{
				keys[depth - 1] = pnstrdup(v.val.string.val, v.val.string.len);
				continue;
			}
			if (tok == WJB_END_OBJECT || tok == WJB_END_ARRAY)
			{
				if (!scalar_doc)
					depth--;
				continue;
			}
			if (tok == WJB_BEGIN_OBJECT || tok == WJB_BEGIN_ARRAY)
			{
				if (scalar_doc)
					continue;	/* the raw-scalar wrapper array */
				value = tok == WJB_BEGIN_OBJECT ? json_object_new_object() : json_object_new_array();
			}
			else
				value = scalar_to_jsonc(&v);

			if (scalar_doc || (depth == 0 && root == NULL))
				root = value;
			else if (json_object_get_type(stack[depth - 1]) == json_type_object)
			{
				json_object_object_add(stack[depth - 1], keys[depth - 1], value);
				pfree(keys[depth - 1]);
			}
			else
				json_object_array_add(stack[depth - 1], value);

			if (tok == WJB_BEGIN_OBJECT || tok == WJB_BEGIN_ARRAY)
			{
				if (depth == size)
				{
					size *= 2;
					stack = repalloc(stack, sizeof(json_object *) * size);
					keys = repalloc(keys, sizeof(char *) * size);
				}
				stack[depth++] = value;
			}
		}
	}
	PG_CATCH();
	{
		json_object_put(root);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pfree(stack);
	pfree(keys);
	return root;
}

static void
check_text(const char *s, size_t len)
{
	/* rejects invalid UTF-8 and NUL bytes, which jsonb cannot store */
	pg_verifymbstr(s, (int) len, false);
}

static JsonbValue *push_value(JsonbParseState **state, JsonbIteratorToken tok,
							  json_object *obj);

/* Push a container; returns what pushJsonbValue returns for its end. */
static JsonbValue *
push_container(JsonbParseState **state, json_object *obj)
{
	if (json_object_get_type(obj) == json_type_object)
	{
		pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
		{
			/* json-c's iteration macro declares variables: give it a block */
			json_object_object_foreach(obj, key, val)
			{
				JsonbValue	k;

				k.type = jbvString;
				k.val.string.len = strlen(key);
				k.val.string.val = key;
				check_text(key, k.val.string.len);
				pushJsonbValue(state, WJB_KEY, &k);
				push_value(state, WJB_VALUE, val);
			}
		}
		return pushJsonbValue(state, WJB_END_OBJECT, NULL);
	}
	else
	{
		size_t		n = json_object_array_length(obj);

		pushJsonbValue(state, WJB_BEGIN_ARRAY, NULL);
		for (size_t i = 0; i < n; i++)
			push_value(state, WJB_ELEM, json_object_array_get_idx(obj, i));
		return pushJsonbValue(state, WJB_END_ARRAY, NULL);
	}
}

static Numeric
jsonc_number(json_object *obj)
{
	if (json_object_get_type(obj) == json_type_int &&
		json_object_get_int64(obj) != INT64_MAX)
		return int64_to_numeric(json_object_get_int64(obj));
	if (json_object_get_type(obj) == json_type_double &&
		!isfinite(json_object_get_double(obj)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("JSON cannot hold NaN or Infinity")));
	/* a double with its original digits, or an integer beyond int64 */
	return DatumGetNumeric(DirectFunctionCall3(numeric_in,
											   CStringGetDatum(json_object_get_string(obj)),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
}

static JsonbValue *
push_value(JsonbParseState **state, JsonbIteratorToken tok, json_object *obj)
{
	JsonbValue	v;

	switch (json_object_get_type(obj))
	{
		case json_type_object:
		case json_type_array:
			return push_container(state, obj);
		case json_type_null:
			v.type = jbvNull;
			break;
		case json_type_boolean:
			v.type = jbvBool;
			v.val.boolean = json_object_get_boolean(obj);
			break;
		case json_type_int:
		case json_type_double:
			v.type = jbvNumeric;
			v.val.numeric = jsonc_number(obj);
			break;
		case json_type_string:
			v.type = jbvString;
			v.val.string.len = json_object_get_string_len(obj);
			v.val.string.val = (char *) json_object_get_string(obj);
			check_text(v.val.string.val, v.val.string.len);
			break;
	}
	return pushJsonbValue(state, tok, &v);
}

Jsonb *
dg_jsonb_from_jsonc(json_object *obj)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;

	if (json_object_get_type(obj) == json_type_object ||
		json_object_get_type(obj) == json_type_array)
		res = push_container(&state, obj);
	else
	{
		/* a scalar document is a raw-scalar array of one element */
		JsonbValue	arr;

		arr.type = jbvArray;
		arr.val.array.rawScalar = true;
		arr.val.array.nElems = 1;
		pushJsonbValue(&state, WJB_BEGIN_ARRAY, &arr);
		push_value(&state, WJB_ELEM, obj);
		res = pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	}
	return JsonbValueToJsonb(res);
}

/* ---- JSON text from outside (Kafka payloads) to json-c ---- */

typedef struct ParseState
{
	json_object *root;
	json_object **stack;
	char	  **keys;
	int			depth;
	int			size;
} ParseState;

static void
parse_add(ParseState *ps, json_object *value, bool container)
{
	if (ps->depth == 0)
		ps->root = value;
	else if (json_object_get_type(ps->stack[ps->depth - 1]) == json_type_object)
	{
		json_object_object_add(ps->stack[ps->depth - 1], ps->keys[ps->depth - 1], value);
		pfree(ps->keys[ps->depth - 1]);
		ps->keys[ps->depth - 1] = NULL;
	}
	else
		json_object_array_add(ps->stack[ps->depth - 1], value);
	if (container)
	{
		if (ps->depth == ps->size)
		{
			ps->size *= 2;
			ps->stack = repalloc(ps->stack, sizeof(json_object *) * ps->size);
			ps->keys = repalloc(ps->keys, sizeof(char *) * ps->size);
		}
		ps->keys[ps->depth] = NULL;
		ps->stack[ps->depth++] = value;
	}
}

static void
parse_object_start(void *state)
{
	parse_add((ParseState *) state, json_object_new_object(), true);
}

static void
parse_array_start(void *state)
{
	parse_add((ParseState *) state, json_object_new_array(), true);
}

static void
parse_end(void *state)
{
	((ParseState *) state)->depth--;
}

static void
parse_field(void *state, char *fname, bool isnull)
{
	ParseState *ps = (ParseState *) state;

	ps->keys[ps->depth - 1] = fname;
}

static void
parse_scalar(void *state, char *token, JsonTokenType type)
{
	ParseState *ps = (ParseState *) state;
	json_object *value = NULL;

	switch (type)
	{
		case JSON_TOKEN_STRING:
			value = json_object_new_string(token);
			break;
		case JSON_TOKEN_NUMBER:
			if (strpbrk(token, ".eE") == NULL && strlen(token) < 19)
				value = json_object_new_int64(strtoll(token, NULL, 10));
			else
				value = json_object_new_double_s(strtod(token, NULL), token);
			break;
		case JSON_TOKEN_TRUE:
		case JSON_TOKEN_FALSE:
			value = json_object_new_boolean(type == JSON_TOKEN_TRUE);
			break;
		default:
			value = NULL;
			break;
	}
	parse_add(ps, value, false);
}

/*
 * Parse JSON text with PostgreSQL's own lexer, building json-c directly:
 * numbers keep every digit (json-c's tokener saturates big integers),
 * strings are checked against the database encoding, and "\u0000",
 * which jsonb cannot store, is refused.  Returns false with *error set
 * instead of raising: a bad payload is data, not a failure.
 */
bool
dg_jsonc_parse_text(const char *text, size_t len, json_object **out, char **error)
{
	ParseState	ps;
	JsonSemAction sem;
	JsonLexContext *lex;
	JsonParseErrorType result;

	*out = NULL;
	*error = NULL;
	if (!pg_verifymbstr(text, (int) len, true))
	{
		*error = psprintf("the payload is not valid %s", GetDatabaseEncodingName());
		return false;
	}
	memset(&ps, 0, sizeof(ps));
	ps.size = 16;
	ps.stack = palloc(sizeof(json_object *) * ps.size);
	ps.keys = palloc(sizeof(char *) * ps.size);
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &ps;
	sem.object_start = parse_object_start;
	sem.object_end = parse_end;
	sem.array_start = parse_array_start;
	sem.array_end = parse_end;
	sem.object_field_start = parse_field;
	sem.scalar = parse_scalar;
	lex = makeJsonLexContextCstringLen((char *) text, (int) len, GetDatabaseEncoding(), true);
	PG_TRY();
	{
		result = pg_parse_json(lex, &sem);
	}
	PG_CATCH();
	{
		/* only a too deep nesting raises (stack depth): release, re-raise */
		json_object_put(ps.root);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (result != JSON_SUCCESS)
	{
		json_object_put(ps.root);
		*error = psprintf("invalid JSON: %s", json_errdetail(result, lex));
		return false;
	}
	*out = ps.root;
	return true;
}
