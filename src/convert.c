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

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

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
