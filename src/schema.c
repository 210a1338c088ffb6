/*-------------------------------------------------------------------------
 *
 * schema.c
 *		JSON Schema draft 7 validation over json-c.
 *
 * A schema is compiled once into a graph of SchemaNodes: every subschema
 * becomes a node, every keyword value is checked, regular expressions are
 * compiled and every "$ref" is resolved to the node it names.  A keyword
 * this file does not implement is refused rather than skipped, because a
 * skipped keyword is a constraint that silently goes unenforced.
 *
 * Only references inside the schema document are supported ("#" followed
 * by a JSON Pointer): there is no network and no registry of other
 * documents.  A cycle of references that never descends into the instance
 * is refused at compile time, and the validation depth is capped as well,
 * so no schema can hang a backend or overflow its stack.
 *
 * "pattern" and "patternProperties" hold ECMA-262 regular expressions,
 * which ecmaregex.c translates for the POSIX regex of libc; a pattern it
 * cannot translate exactly is refused, like an unimplemented keyword.
 *
 * src/schema.c
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg.h"

/*
 * Bound on recursion, both over the nesting of the schema at compile time
 * and over the subschemas applied at validation time.  Once in-place
 * reference cycles are refused, validation recurses a few times per level
 * of the instance, so this admits any reasonable document.
 */
#define SCHEMA_MAX_DEPTH 1000

#define TYPE_EXPECTED "a type name or a non-empty array of type names"

#define VALIDATION_FAILED "new state did not validate against configured schema"

/* The primitive types of draft 7, as bit numbers of SchemaNode.types. */
enum
{
	T_NULL, T_BOOLEAN, T_OBJECT, T_ARRAY, T_NUMBER, T_STRING, T_INTEGER, NTYPES
};

static const char *const type_names[NTYPES] = {
	"null", "boolean", "object", "array", "number", "string", "integer"
};
static const char *const type_descriptions[NTYPES] = {
	"null", "a boolean", "an object", "an array", "a number", "a string",
	"an integer"
};

typedef struct SchemaNode SchemaNode;

typedef struct SchemaList
{
	SchemaNode **items;
	size_t		n;
} SchemaList;

typedef struct Pattern
{
	const char *source;			/* the ECMA-262 text, borrowed from the schema */
	DgRegex    *re;
} Pattern;

/* A member of "properties" or "dependencies". */
typedef struct NamedSchema
{
	const char *name;
	SchemaNode *schema;			/* NULL for a dependency given as an array */
	json_object *names;			/* that array */
} NamedSchema;

typedef struct PatternSchema
{
	Pattern    *pattern;
	SchemaNode *schema;
} PatternSchema;

/*
 * One compiled subschema.  Absent keywords are NULL pointers, empty lists
 * or -1 counts; json_object pointers borrow from DgSchema.root.
 */
struct SchemaNode
{
	json_object *json;			/* this subschema in DgSchema.root */
	char	   *where;			/* its location, such as "#/properties/a" */
	int			mark;			/* state of the cycle check */
	bool		is_boolean;		/* true or false as a schema */
	bool		boolean;

	const char *ref_text;		/* "$ref", which overrides everything else */
	SchemaNode *ref;

	unsigned	types;			/* bits of T_*; 0 means any type */
	json_object *enumeration;
	bool		has_const;
	json_object *constant;

	json_object *multiple_of;
	json_object *maximum;
	json_object *exclusive_maximum;
	json_object *minimum;
	json_object *exclusive_minimum;

	int64_t		max_length;
	int64_t		min_length;
	Pattern    *pattern;

	SchemaNode *items;
	bool		items_is_list;
	SchemaList	item_list;
	SchemaNode *additional_items;
	int64_t		max_items;
	int64_t		min_items;
	bool		unique_items;
	SchemaNode *contains;

	int64_t		max_properties;
	int64_t		min_properties;
	json_object *required;
	json_object *properties_json;	/* to ask "is this key a property?" */
	NamedSchema *properties;
	size_t		nproperties;
	PatternSchema *pattern_properties;
	size_t		npattern_properties;
	SchemaNode *additional_properties;
	NamedSchema *dependencies;
	size_t		ndependencies;
	SchemaNode *property_names;

	SchemaNode *if_schema;
	SchemaNode *then_schema;
	SchemaNode *else_schema;
	SchemaList	all_of;
	SchemaList	any_of;
	SchemaList	one_of;
	SchemaNode *not_schema;
};

struct DgSchema
{
	json_object *root;			/* our deep copy of the schema document */
	SchemaNode *top;
	SchemaNode **nodes;			/* every node: for $ref lookup and freeing */
	size_t		nnodes;
	size_t		capacity;
};

typedef struct Compiler
{
	DgSchema   *schema;
	DgError    *err;
} Compiler;

typedef struct StrBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} StrBuf;

typedef struct Validator
{
	DgError    *err;
	StrBuf		path;			/* JSON Pointer to the current instance value */
	int			depth;
	int			quiet;			/* > 0: only whether it matches is wanted */
} Validator;

static SchemaNode *compile_schema(Compiler *c, json_object *json, char *where,
								  int depth);
static bool validate(Validator *v, SchemaNode *node, json_object *inst);
static bool report(Validator *v, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

/* json-c aborts when memory runs out, and so do we: there is no way back. */
static void *
must(void *p)
{
	if (p == NULL)
		abort();
	return p;
}

static void
sb_init(StrBuf *b)
{
	b->cap = 64;
	b->len = 0;
	b->data = must(malloc(b->cap));
	b->data[0] = '\0';
}

static void
sb_putn(StrBuf *b, const char *s, size_t n)
{
	while (b->len + n + 1 > b->cap)
	{
		b->cap *= 2;
		b->data = must(realloc(b->data, b->cap));
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
sb_puts(StrBuf *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

static void
sb_putc(StrBuf *b, char c)
{
	sb_putn(b, &c, 1);
}

/* Append "/" and a JSON Pointer reference token, escaped per RFC 6901. */
static void
sb_put_token(StrBuf *b, const char *token)
{
	sb_putc(b, '/');
	for (; *token; token++)
	{
		if (*token == '~')
			sb_puts(b, "~0");
		else if (*token == '/')
			sb_puts(b, "~1");
		else
			sb_putc(b, *token);
	}
}

/* ---- patterns: ECMA-262 regular expressions (see ecmaregex.c) ---- */

static void
free_pattern(Pattern *pattern)
{
	if (pattern == NULL)
		return;
	dg_regex_free(pattern->re);
	free(pattern);
}

static Pattern *
compile_pattern(Compiler *c, SchemaNode *node, const char *keyword,
				const char *source)
{
	char		msg[256];
	bool		unsupported;
	DgRegex    *re;
	Pattern    *pattern;

	re = dg_regex_compile(source, &unsupported, msg, sizeof(msg));
	if (re == NULL)
	{
		if (unsupported)
			dg_fail(c->err, DG_ERR_INVALID,
					"\"%s\" at \"%s\": regular expression \"%s\" is not supported (%s)",
					keyword, node->where, source, msg);
		else
			dg_fail(c->err, DG_ERR_INVALID,
					"\"%s\" at \"%s\": invalid regular expression \"%s\": %s",
					keyword, node->where, source, msg);
		return NULL;
	}
	pattern = must(malloc(sizeof(Pattern)));
	pattern->source = source;
	pattern->re = re;
	return pattern;
}

static bool
pattern_matches(Pattern *pattern, const char *s, size_t len)
{
	return dg_regex_match(pattern->re, s, len);
}

/* ---- compilation ---- */

typedef enum KeywordKind
{
	KW_ANY,						/* an annotation with any value */
	KW_STRING,					/* an annotation that must be a string */
	KW_BOOLEAN,					/* a boolean, stored if there is a field */
	KW_ARRAY,					/* an annotation that must be an array */
	KW_COUNT,					/* a non-negative integer */
	KW_NUMBER,					/* any number */
	KW_SCHEMA,					/* one subschema */
	KW_SCHEMA_LIST,				/* a non-empty array of subschemas */
	KW_SPECIAL					/* see compile_special */
} KeywordKind;

typedef struct Keyword
{
	const char *name;
	KeywordKind kind;
	size_t		offset;			/* of the SchemaNode field, or NO_FIELD */
} Keyword;

#define NO_FIELD ((size_t) -1)
#define FIELD(f) offsetof(SchemaNode, f)

/* Every keyword we accept; "$ref" is handled before these are looked at. */
static const Keyword keywords[] = {
	{"$schema", KW_SPECIAL, NO_FIELD},
	{"$id", KW_SPECIAL, NO_FIELD},
	{"$comment", KW_STRING, NO_FIELD},
	{"title", KW_STRING, NO_FIELD},
	{"description", KW_STRING, NO_FIELD},
	{"default", KW_ANY, NO_FIELD},
	{"examples", KW_ARRAY, NO_FIELD},
	{"readOnly", KW_BOOLEAN, NO_FIELD},
	{"writeOnly", KW_BOOLEAN, NO_FIELD},
	{"contentMediaType", KW_STRING, NO_FIELD},
	{"contentEncoding", KW_STRING, NO_FIELD},
	{"format", KW_STRING, NO_FIELD},
	{"definitions", KW_SPECIAL, NO_FIELD},
	{"type", KW_SPECIAL, NO_FIELD},
	{"enum", KW_SPECIAL, NO_FIELD},
	{"const", KW_SPECIAL, NO_FIELD},
	{"multipleOf", KW_SPECIAL, NO_FIELD},
	{"maximum", KW_NUMBER, FIELD(maximum)},
	{"exclusiveMaximum", KW_NUMBER, FIELD(exclusive_maximum)},
	{"minimum", KW_NUMBER, FIELD(minimum)},
	{"exclusiveMinimum", KW_NUMBER, FIELD(exclusive_minimum)},
	{"maxLength", KW_COUNT, FIELD(max_length)},
	{"minLength", KW_COUNT, FIELD(min_length)},
	{"pattern", KW_SPECIAL, NO_FIELD},
	{"items", KW_SPECIAL, NO_FIELD},
	{"additionalItems", KW_SCHEMA, FIELD(additional_items)},
	{"maxItems", KW_COUNT, FIELD(max_items)},
	{"minItems", KW_COUNT, FIELD(min_items)},
	{"uniqueItems", KW_BOOLEAN, FIELD(unique_items)},
	{"contains", KW_SCHEMA, FIELD(contains)},
	{"maxProperties", KW_COUNT, FIELD(max_properties)},
	{"minProperties", KW_COUNT, FIELD(min_properties)},
	{"required", KW_SPECIAL, NO_FIELD},
	{"properties", KW_SPECIAL, NO_FIELD},
	{"patternProperties", KW_SPECIAL, NO_FIELD},
	{"additionalProperties", KW_SCHEMA, FIELD(additional_properties)},
	{"dependencies", KW_SPECIAL, NO_FIELD},
	{"propertyNames", KW_SCHEMA, FIELD(property_names)},
	{"if", KW_SCHEMA, FIELD(if_schema)},
	{"then", KW_SCHEMA, FIELD(then_schema)},
	{"else", KW_SCHEMA, FIELD(else_schema)},
	{"allOf", KW_SCHEMA_LIST, FIELD(all_of)},
	{"anyOf", KW_SCHEMA_LIST, FIELD(any_of)},
	{"oneOf", KW_SCHEMA_LIST, FIELD(one_of)},
	{"not", KW_SCHEMA, FIELD(not_schema)},
};

static bool
is_number(json_object *o)
{
	return json_object_is_type(o, json_type_int) ||
		json_object_is_type(o, json_type_double);
}

static bool
bad_value(Compiler *c, SchemaNode *node, const char *keyword, const char *what)
{
	return dg_fail(c->err, DG_ERR_INVALID, "\"%s\" at \"%s\" must be %s",
				   keyword, node->where, what);
}

static SchemaNode *
new_node(DgSchema *s, json_object *json, char *where)
{
	SchemaNode *node = must(calloc(1, sizeof(SchemaNode)));

	node->json = json;
	node->where = where;
	node->max_length = node->min_length = -1;
	node->max_items = node->min_items = -1;
	node->max_properties = node->min_properties = -1;
	if (s->nnodes == s->capacity)
	{
		s->capacity = s->capacity ? 2 * s->capacity : 16;
		s->nodes = must(realloc(s->nodes, s->capacity * sizeof(SchemaNode *)));
	}
	s->nodes[s->nnodes++] = node;
	return node;
}

/* Compile the subschema at parent's location + "/a" (+ "/b"). */
static SchemaNode *
compile_child(Compiler *c, SchemaNode *parent, const char *a, const char *b,
			  json_object *json, int depth)
{
	StrBuf		where;

	sb_init(&where);
	sb_puts(&where, parent->where);
	sb_put_token(&where, a);
	if (b != NULL)
		sb_put_token(&where, b);
	return compile_schema(c, json, where.data, depth + 1);
}

static bool
compile_list(Compiler *c, SchemaNode *node, const char *keyword,
			 json_object *value, SchemaList *list, bool allow_empty, int depth)
{
	if (!json_object_is_type(value, json_type_array) ||
		(!allow_empty && json_object_array_length(value) == 0))
		return bad_value(c, node, keyword, allow_empty ? "an array of schemas" :
						 "a non-empty array of schemas");
	list->n = json_object_array_length(value);
	list->items = must(calloc(list->n + 1, sizeof(SchemaNode *)));
	for (size_t i = 0; i < list->n; i++)
	{
		char		index[32];

		snprintf(index, sizeof(index), "%zu", i);
		list->items[i] = compile_child(c, node, keyword, index,
									   json_object_array_get_idx(value, i), depth);
		if (list->items[i] == NULL)
			return false;
	}
	return true;
}

/* Draft 7 counts are integers by value, so 2.0 will do for 2. */
static bool
compile_count(Compiler *c, SchemaNode *node, const char *keyword,
			  json_object *value, int64_t *out)
{
	double		d;

	if (json_object_is_type(value, json_type_int) &&
		json_object_get_int64(value) >= 0)
	{
		*out = json_object_get_int64(value);	/* saturates, which is fine */
		return true;
	}
	d = json_object_get_double(value);
	if (!json_object_is_type(value, json_type_double) || d < 0 || floor(d) != d)
		return bad_value(c, node, keyword, "a non-negative integer");
	*out = d >= (double) INT64_MAX ? INT64_MAX : (int64_t) d;
	return true;
}

/* "required" and array dependencies: an array of unique strings. */
static bool
check_names(Compiler *c, SchemaNode *node, const char *keyword, json_object *value)
{
	size_t		n;

	if (!json_object_is_type(value, json_type_array))
		return bad_value(c, node, keyword, "an array of unique strings");
	n = json_object_array_length(value);
	for (size_t i = 0; i < n; i++)
	{
		json_object *name = json_object_array_get_idx(value, i);

		if (!json_object_is_type(name, json_type_string))
			return bad_value(c, node, keyword, "an array of unique strings");
		for (size_t j = 0; j < i; j++)
			if (dg_json_equal(name, json_object_array_get_idx(value, j)))
				return dg_fail(c->err, DG_ERR_INVALID,
							   "\"%s\" at \"%s\" lists \"%s\" twice", keyword,
							   node->where, json_object_get_string(name));
	}
	return true;
}

static bool
add_type(Compiler *c, SchemaNode *node, json_object *name)
{
	const char *s;

	if (!json_object_is_type(name, json_type_string))
		return bad_value(c, node, "type", TYPE_EXPECTED);
	s = json_object_get_string(name);
	for (int t = 0; t < NTYPES; t++)
	{
		if (strcmp(s, type_names[t]) != 0)
			continue;
		if (node->types & (1u << t))
			return dg_fail(c->err, DG_ERR_INVALID,
						   "\"type\" at \"%s\" lists \"%s\" twice", node->where, s);
		node->types |= 1u << t;
		return true;
	}
	return dg_fail(c->err, DG_ERR_INVALID,
				   "\"type\" at \"%s\" names unknown type \"%s\"", node->where, s);
}

/* Keywords whose values need more than a generic check. */
static bool
compile_special(Compiler *c, SchemaNode *node, const char *key,
				json_object *value, int depth)
{
	bool		is_object = json_object_is_type(value, json_type_object);
	bool		is_string = json_object_is_type(value, json_type_string);
	const char *s = is_string ? json_object_get_string(value) : NULL;

	if (strcmp(key, "$schema") == 0)
	{
		if (!is_string ||
			(strcmp(s, "http://json-schema.org/draft-07/schema#") != 0 &&
			 strcmp(s, "http://json-schema.org/draft-07/schema") != 0))
			return bad_value(c, node, key, "\"http://json-schema.org/draft-07/schema#\"");
	}
	else if (strcmp(key, "$id") == 0)
	{
		if (!is_string)
			return bad_value(c, node, key, "a string");

		/*
		 * Below the root, an $id other than a plain-name fragment moves the
		 * base URI of the references beneath it to another document, which
		 * we would wrongly resolve against this one.
		 */
		if (node->json != c->schema->root && s[0] != '#')
			return dg_fail(c->err, DG_ERR_INVALID,
						   "\"$id\" at \"%s\" is not supported: only the root schema may set a base URI",
						   node->where);
	}
	else if (strcmp(key, "definitions") == 0)
	{
		/* compiled now so that mistakes show even in unreferenced ones */
		if (!is_object)
			return bad_value(c, node, key, "an object of schemas");
		json_object_object_foreach(value, name, sub)
		{
			if (compile_child(c, node, key, name, sub, depth) == NULL)
				return false;
		}
	}
	else if (strcmp(key, "type") == 0)
	{
		if (!json_object_is_type(value, json_type_array))
			return add_type(c, node, value);
		if (json_object_array_length(value) == 0)
			return bad_value(c, node, key, TYPE_EXPECTED);
		for (size_t i = 0; i < json_object_array_length(value); i++)
			if (!add_type(c, node, json_object_array_get_idx(value, i)))
				return false;
	}
	else if (strcmp(key, "enum") == 0)
	{
		if (!json_object_is_type(value, json_type_array) ||
			json_object_array_length(value) == 0)
			return bad_value(c, node, key, "a non-empty array");
		node->enumeration = value;
	}
	else if (strcmp(key, "const") == 0)
	{
		node->has_const = true;
		node->constant = value;
	}
	else if (strcmp(key, "multipleOf") == 0)
	{
		if (!is_number(value) || json_object_get_double(value) <= 0)
			return bad_value(c, node, key, "a number greater than 0");
		node->multiple_of = value;
	}
	else if (strcmp(key, "pattern") == 0)
	{
		if (!is_string)
			return bad_value(c, node, key, "a string");
		node->pattern = compile_pattern(c, node, key, s);
		return node->pattern != NULL;
	}
	else if (strcmp(key, "items") == 0)
	{
		if (json_object_is_type(value, json_type_array))
		{
			node->items_is_list = true;
			return compile_list(c, node, key, value, &node->item_list, true, depth);
		}
		node->items = compile_child(c, node, key, NULL, value, depth);
		return node->items != NULL;
	}
	else if (strcmp(key, "required") == 0)
	{
		if (!check_names(c, node, key, value))
			return false;
		node->required = value;
	}
	else if (strcmp(key, "properties") == 0)
	{
		if (!is_object)
			return bad_value(c, node, key, "an object of schemas");
		node->properties_json = value;
		node->properties = must(calloc(json_object_object_length(value) + 1,
									   sizeof(NamedSchema)));
		json_object_object_foreach(value, name, sub)
		{
			NamedSchema *property = &node->properties[node->nproperties++];

			property->name = name;
			property->schema = compile_child(c, node, key, name, sub, depth);
			if (property->schema == NULL)
				return false;
		}
	}
	else if (strcmp(key, "patternProperties") == 0)
	{
		if (!is_object)
			return bad_value(c, node, key, "an object of schemas");
		node->pattern_properties = must(calloc(json_object_object_length(value) + 1,
											   sizeof(PatternSchema)));
		json_object_object_foreach(value, regex, sub)
		{
			PatternSchema *pp = &node->pattern_properties[node->npattern_properties++];

			pp->pattern = compile_pattern(c, node, key, regex);
			if (pp->pattern == NULL)
				return false;
			pp->schema = compile_child(c, node, key, regex, sub, depth);
			if (pp->schema == NULL)
				return false;
		}
	}
	else if (strcmp(key, "dependencies") == 0)
	{
		if (!is_object)
			return bad_value(c, node, key, "an object of schemas and arrays of names");
		node->dependencies = must(calloc(json_object_object_length(value) + 1,
										 sizeof(NamedSchema)));
		json_object_object_foreach(value, name, dep)
		{
			NamedSchema *d = &node->dependencies[node->ndependencies++];

			d->name = name;
			if (json_object_is_type(dep, json_type_array))
			{
				if (!check_names(c, node, key, dep))
					return false;
				d->names = dep;
			}
			else
			{
				d->schema = compile_child(c, node, key, name, dep, depth);
				if (d->schema == NULL)
					return false;
			}
		}
	}
	return true;
}

static bool
compile_keyword(Compiler *c, SchemaNode *node, const char *key,
				json_object *value, int depth)
{
	const Keyword *kw = NULL;
	char	   *field;

	for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
		if (strcmp(keywords[i].name, key) == 0)
			kw = &keywords[i];
	if (kw == NULL)
		return dg_fail(c->err, DG_ERR_INVALID,
					   "unsupported JSON Schema keyword \"%s\" at \"%s\"",
					   key, node->where);
	field = (char *) node + kw->offset;
	switch (kw->kind)
	{
		case KW_ANY:
			return true;
		case KW_STRING:
			if (!json_object_is_type(value, json_type_string))
				return bad_value(c, node, key, "a string");
			return true;
		case KW_BOOLEAN:
			if (!json_object_is_type(value, json_type_boolean))
				return bad_value(c, node, key, "a boolean");
			if (kw->offset != NO_FIELD)
				*(bool *) field = json_object_get_boolean(value);
			return true;
		case KW_ARRAY:
			if (!json_object_is_type(value, json_type_array))
				return bad_value(c, node, key, "an array");
			return true;
		case KW_COUNT:
			return compile_count(c, node, key, value, (int64_t *) field);
		case KW_NUMBER:
			if (!is_number(value))
				return bad_value(c, node, key, "a number");
			*(json_object **) field = value;
			return true;
		case KW_SCHEMA:
			*(SchemaNode **) field = compile_child(c, node, key, NULL, value, depth);
			return *(SchemaNode **) field != NULL;
		case KW_SCHEMA_LIST:
			return compile_list(c, node, key, value, (SchemaList *) field,
								false, depth);
		case KW_SPECIAL:
			return compile_special(c, node, key, value, depth);
	}
	return false;
}

/* Compile one (sub)schema; takes ownership of where, a malloc'd string. */
static SchemaNode *
compile_schema(Compiler *c, json_object *json, char *where, int depth)
{
	SchemaNode *node;
	json_object *ref;
	json_object *sibling;

	if (depth > SCHEMA_MAX_DEPTH ||
		(!json_object_is_type(json, json_type_object) &&
		 !json_object_is_type(json, json_type_boolean)))
	{
		if (depth > SCHEMA_MAX_DEPTH)
			dg_fail(c->err, DG_ERR_INVALID, "schema at \"%s\" is nested too deeply",
					where);
		else
			dg_fail(c->err, DG_ERR_INVALID,
					"schema at \"%s\" must be an object or a boolean, not %s",
					where, dg_json_type_name(json));
		free(where);
		return NULL;
	}
	node = new_node(c->schema, json, where);
	if (json_object_is_type(json, json_type_boolean))
	{
		node->is_boolean = true;
		node->boolean = json_object_get_boolean(json);
		return node;
	}
	if (dg_json_has(json, "$ref", &ref))
	{
		/*
		 * In draft 7 "$ref" stands for the whole schema object and its
		 * siblings are ignored.  Still, "definitions" holds schemas that
		 * references may name, and "$schema" says how to read the document,
		 * so those two are checked.  The target is resolved once the whole
		 * document has been compiled.
		 */
		if (!json_object_is_type(ref, json_type_string))
		{
			bad_value(c, node, "$ref", "a string");
			return NULL;
		}
		node->ref_text = json_object_get_string(ref);
		if (dg_json_has(json, "$schema", &sibling) &&
			!compile_keyword(c, node, "$schema", sibling, depth))
			return NULL;
		if (dg_json_has(json, "definitions", &sibling) &&
			!compile_keyword(c, node, "definitions", sibling, depth))
			return NULL;
		return node;
	}
	json_object_object_foreach(json, key, value)
	{
		if (!compile_keyword(c, node, key, value, depth))
			return NULL;
	}
	return node;
}

/* The value of n hex digits at p, or -1. */
static long
hex_value(const char *p, int n)
{
	long		v = 0;

	/* stops at the terminating NUL, which is not a hex digit */
	for (int i = 0; i < n; i++)
	{
		if (!isxdigit((unsigned char) p[i]))
			return -1;
		v = v * 16 + (isdigit((unsigned char) p[i]) ? p[i] - '0' :
					  tolower((unsigned char) p[i]) - 'a' + 10);
	}
	return v;
}

/* Percent-decode a URI fragment; NULL when malformed or when it holds NUL. */
static char *
percent_decode(const char *s)
{
	char	   *out = must(malloc(strlen(s) + 1));
	char	   *o = out;

	for (; *s; s++)
	{
		long		byte;

		if (*s != '%')
			*o++ = *s;
		else if ((byte = hex_value(s + 1, 2)) > 0)
		{
			*o++ = (char) byte;
			s += 2;
		}
		else
		{
			free(out);
			return NULL;
		}
	}
	*o = '\0';
	return out;
}

/* Step from *cur to its member named by an RFC 6901 token (unescaped in place). */
static bool
pointer_step(json_object **cur, char *token)
{
	char	   *o = token;

	for (char *t = token; *t; t++)
	{
		if (*t == '~' && (t[1] == '0' || t[1] == '1'))
			*o++ = *++t == '0' ? '~' : '/';
		else if (*t == '~')
			return false;
		else
			*o++ = *t;
	}
	*o = '\0';
	if (json_object_is_type(*cur, json_type_object))
		return json_object_object_get_ex(*cur, token, cur);
	if (json_object_is_type(*cur, json_type_array))
	{
		size_t		len = strlen(token);
		size_t		index = 0;

		/* digits only, and no leading zeros (RFC 6901 section 4) */
		if (len == 0 || len > 18 || (len > 1 && token[0] == '0') ||
			strspn(token, "0123456789") != len)
			return false;
		index = strtoull(token, NULL, 10);
		if (index >= json_object_array_length(*cur))
			return false;
		*cur = json_object_array_get_idx(*cur, index);
		return true;
	}
	return false;
}

/*
 * Resolve node's "$ref" within our copy of the document.  Only fragments
 * are supported: "#" and "#/a/b" JSON Pointers, percent-decoded first as
 * the URI syntax requires (RFC 6901 section 6).
 */
static bool
resolve_ref(Compiler *c, SchemaNode *node)
{
	const char *ref = node->ref_text;
	json_object *target = c->schema->root;
	char	   *pointer;
	char	   *p;
	bool		found = true;

	if (ref[0] != '#')
		return dg_fail(c->err, DG_ERR_INVALID,
					   "$ref \"%s\" at \"%s\" is not supported: only references within the schema (\"#/...\") are allowed",
					   ref, node->where);
	pointer = percent_decode(ref + 1);
	if (pointer == NULL || (pointer[0] != '\0' && pointer[0] != '/'))
	{
		free(pointer);
		return dg_fail(c->err, DG_ERR_INVALID,
					   "$ref \"%s\" at \"%s\" is not supported: only JSON Pointer fragments (\"#/...\") are",
					   ref, node->where);
	}
	for (p = pointer; found && *p == '/';)
	{
		char	   *end = p + 1 + strcspn(p + 1, "/");
		char		saved = *end;

		*end = '\0';
		found = pointer_step(&target, p + 1);
		*end = saved;
		p = end;
	}
	free(pointer);
	if (!found)
		return dg_fail(c->err, DG_ERR_INVALID, "$ref \"%s\" at \"%s\" does not resolve",
					   ref, node->where);

	/* most targets were compiled already; anything else is compiled now */
	for (size_t i = 0; i < c->schema->nnodes && node->ref == NULL; i++)
		if (c->schema->nodes[i]->json == target)
			node->ref = c->schema->nodes[i];
	if (node->ref == NULL)
		node->ref = compile_schema(c, target, must(strdup(ref)), 0);
	return node->ref != NULL;
}

enum
{
	MARK_NEW, MARK_ACTIVE, MARK_DONE
};

/*
 * Refuse a cycle of subschemas that apply to the same instance value.
 * "$ref", the combinators, if/then/else and schema dependencies do not
 * descend into the instance, so looping through them never ends.  Loops
 * through items, properties and the like are fine (that is how a tree is
 * described): each turn consumes a level of the instance.
 */
static bool
check_cycles(Compiler *c, SchemaNode *node, int depth)
{
	SchemaNode *single[5];
	SchemaList *lists[3];

	if (node == NULL || node->mark == MARK_DONE)
		return true;
	if (node->mark == MARK_ACTIVE)
		return dg_fail(c->err, DG_ERR_INVALID,
					   "$ref cycle at \"%s\" never consumes any of the instance",
					   node->where);
	if (depth > SCHEMA_MAX_DEPTH)
		return dg_fail(c->err, DG_ERR_INVALID,
					   "$ref chain at \"%s\" is nested too deeply", node->where);
	node->mark = MARK_ACTIVE;
	single[0] = node->ref;
	single[1] = node->if_schema;
	single[2] = node->then_schema;
	single[3] = node->else_schema;
	single[4] = node->not_schema;
	for (int i = 0; i < 5; i++)
		if (!check_cycles(c, single[i], depth + 1))
			return false;
	lists[0] = &node->all_of;
	lists[1] = &node->any_of;
	lists[2] = &node->one_of;
	for (int i = 0; i < 3; i++)
		for (size_t j = 0; j < lists[i]->n; j++)
			if (!check_cycles(c, lists[i]->items[j], depth + 1))
				return false;
	for (size_t i = 0; i < node->ndependencies; i++)
		if (!check_cycles(c, node->dependencies[i].schema, depth + 1))
			return false;
	node->mark = MARK_DONE;
	return true;
}

DgSchema *
dg_schema_compile(json_object *schema, DgError *err)
{
	DgSchema   *s = must(calloc(1, sizeof(DgSchema)));
	Compiler	c;
	bool		ok;

	c.schema = s;
	c.err = err;
	/* the caller may free its document; $ref and messages need ours */
	s->root = dg_json_copy(schema);
	s->top = compile_schema(&c, s->root, must(strdup("#")), 0);
	ok = s->top != NULL;

	/* resolving may compile new targets, which may hold more references */
	for (size_t i = 0; ok && i < s->nnodes; i++)
		if (s->nodes[i]->ref_text != NULL)
			ok = resolve_ref(&c, s->nodes[i]);
	for (size_t i = 0; ok && i < s->nnodes; i++)
		ok = check_cycles(&c, s->nodes[i], 0);
	if (!ok)
	{
		dg_schema_free(s);
		return NULL;
	}
	return s;
}

void
dg_schema_free(DgSchema *schema)
{
	if (schema == NULL)
		return;
	for (size_t i = 0; i < schema->nnodes; i++)
	{
		SchemaNode *node = schema->nodes[i];

		free_pattern(node->pattern);
		for (size_t j = 0; j < node->npattern_properties; j++)
			free_pattern(node->pattern_properties[j].pattern);
		free(node->pattern_properties);
		free(node->properties);
		free(node->dependencies);
		free(node->item_list.items);
		free(node->all_of.items);
		free(node->any_of.items);
		free(node->one_of.items);
		free(node->where);
		free(node);
	}
	free(schema->nodes);
	json_object_put(schema->root);
	free(schema);
}

/* ---- validation ---- */

static uint64_t
int_magnitude(json_object *o)
{
	int64_t		i = json_object_get_int64(o);

	/* json-c saturates the int64 view of a uint64 above INT64_MAX */
	if (i == INT64_MAX)
		return json_object_get_uint64(o);
	return i < 0 ? (uint64_t) 0 - (uint64_t) i : (uint64_t) i;
}

/* An integral number as sign and magnitude; false if beyond uint64. */
static bool
integer_parts(json_object *o, bool *negative, uint64_t *magnitude)
{
	double		d;

	if (json_object_is_type(o, json_type_int))
	{
		*negative = json_object_get_int64(o) < 0;
		*magnitude = int_magnitude(o);
		return true;
	}
	d = json_object_get_double(o);
	if (fabs(d) >= 18446744073709551616.0)
		return false;
	*negative = d < 0;
	*magnitude = (uint64_t) fabs(d);
	return true;
}

/*
 * Compare two JSON numbers exactly (-1, 0, 1), although json-c holds them
 * as int64, uint64 or double and doubles cannot hold every integer: a
 * maximum of 2^53 must reject 2^53 + 1.
 */
static int
compare_numbers(json_object *a, json_object *b)
{
	double		da = json_object_get_double(a);
	double		db = json_object_get_double(b);
	bool		an,
				bn;
	uint64_t	am,
				bm;

	/* rounding to double is monotonic, so a strict order survives it */
	if (da != db)
		return da < db ? -1 : 1;
	if (!json_object_is_type(a, json_type_int) &&
		!json_object_is_type(b, json_type_int))
		return 0;

	/*
	 * A tie involving an integer: the double side is integral too, and
	 * only 2^64 (where 2^64 - 1 rounds to) lies beyond every json-c integer.
	 */
	if (!integer_parts(a, &an, &am))
		return 1;
	if (!integer_parts(b, &bn, &bm))
		return -1;
	if (an != bn)
		return an ? -1 : 1;
	if (am == bm)
		return 0;
	return (am < bm) != an ? -1 : 1;
}

static bool
is_multiple(json_object *value, json_object *divisor)
{
	double		q;

	if (json_object_is_type(value, json_type_int) &&
		json_object_is_type(divisor, json_type_int))
		return int_magnitude(value) % int_magnitude(divisor) == 0;

	/*
	 * Decimal fractions are inexact in binary (0.07 / 0.01 gives
	 * 7.000000000000001), so accept a quotient within a few rounding errors
	 * of an integer.  Those errors grow with the quotient, which is why the
	 * tolerance is relative to it rather than fixed on fmod's remainder.
	 */
	q = json_object_get_double(value) / json_object_get_double(divisor);
	if (!isfinite(q))
		return false;
	return fabs(q - nearbyint(q)) <= 4 * DBL_EPSILON * fmax(1.0, fabs(q));
}

static bool
type_matches(unsigned types, json_object *inst)
{
	double		d;

	switch (json_object_get_type(inst))
	{
		case json_type_null:
			return types & (1u << T_NULL);
		case json_type_boolean:
			return types & (1u << T_BOOLEAN);
		case json_type_object:
			return types & (1u << T_OBJECT);
		case json_type_array:
			return types & (1u << T_ARRAY);
		case json_type_string:
			return types & (1u << T_STRING);
		case json_type_int:
			return types & ((1u << T_NUMBER) | (1u << T_INTEGER));
		case json_type_double:
			/* "integer" is about the value: 1.0 is one */
			d = json_object_get_double(inst);
			return (types & (1u << T_NUMBER)) ||
				((types & (1u << T_INTEGER)) && isfinite(d) && floor(d) == d);
	}
	return false;
}

static bool
report(Validator *v, const char *fmt,...)
{
	char		reason[512];
	va_list		ap;

	if (v->quiet > 0)
		return false;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (v->path.len == 0)
		return dg_fail(v->err, DG_ERR_VALIDATION, VALIDATION_FAILED ": (root): %s",
					   reason);
	/* elide the middle of a very deep path, so that the reason still fits */
	if (v->path.len > 240)
		return dg_fail(v->err, DG_ERR_VALIDATION, VALIDATION_FAILED ": %.80s...%s: %s",
					   v->path.data, v->path.data + v->path.len - 150, reason);
	return dg_fail(v->err, DG_ERR_VALIDATION, VALIDATION_FAILED ": %s: %s",
				   v->path.data, reason);
}

/* Does inst match node?  Asked by the combinators, which word their own failure. */
static bool
matches(Validator *v, SchemaNode *node, json_object *inst)
{
	bool		ok;

	v->quiet++;
	ok = validate(v, node, inst);
	v->quiet--;
	return ok;
}

/* Validate a member or item of the current value, named by key. */
static bool
validate_member(Validator *v, SchemaNode *node, json_object *inst,
				const char *key)
{
	size_t		saved = v->path.len;
	bool		ok;

	sb_put_token(&v->path, key);
	ok = validate(v, node, inst);
	v->path.len = saved;
	v->path.data[saved] = '\0';
	return ok;
}

static bool
validate_item(Validator *v, SchemaNode *node, json_object *inst, size_t index)
{
	char		key[32];

	snprintf(key, sizeof(key), "%zu", index);
	return validate_member(v, node, inst, key);
}

static bool
validate_number(Validator *v, SchemaNode *n, json_object *inst)
{
	if (n->multiple_of && !is_multiple(inst, n->multiple_of))
		return report(v, "%s is not a multiple of %s",
					  dg_json_text(inst, NULL), dg_json_text(n->multiple_of, NULL));
	if (n->maximum && compare_numbers(inst, n->maximum) > 0)
		return report(v, "%s is greater than the maximum %s",
					  dg_json_text(inst, NULL), dg_json_text(n->maximum, NULL));
	if (n->exclusive_maximum && compare_numbers(inst, n->exclusive_maximum) >= 0)
		return report(v, "%s is not less than the exclusive maximum %s",
					  dg_json_text(inst, NULL),
					  dg_json_text(n->exclusive_maximum, NULL));
	if (n->minimum && compare_numbers(inst, n->minimum) < 0)
		return report(v, "%s is less than the minimum %s",
					  dg_json_text(inst, NULL), dg_json_text(n->minimum, NULL));
	if (n->exclusive_minimum && compare_numbers(inst, n->exclusive_minimum) <= 0)
		return report(v, "%s is not greater than the exclusive minimum %s",
					  dg_json_text(inst, NULL),
					  dg_json_text(n->exclusive_minimum, NULL));
	return true;
}

static bool
validate_string(Validator *v, SchemaNode *n, json_object *inst)
{
	const char *s = json_object_get_string(inst);
	size_t		len = (size_t) json_object_get_string_len(inst);
	int64_t		chars = 0;

	/* lengths count code points, and UTF-8 continuation bytes start none */
	for (size_t i = 0; i < len; i++)
		chars += ((unsigned char) s[i] & 0xC0) != 0x80;
	if (n->max_length >= 0 && chars > n->max_length)
		return report(v, "string is longer than %lld characters",
					  (long long) n->max_length);
	if (n->min_length >= 0 && chars < n->min_length)
		return report(v, "string is shorter than %lld characters",
					  (long long) n->min_length);
	if (n->pattern && !pattern_matches(n->pattern, s, len))
		return report(v, "string does not match pattern \"%s\"", n->pattern->source);
	return true;
}

static bool
validate_array(Validator *v, SchemaNode *n, json_object *inst)
{
	size_t		len = json_object_array_length(inst);
	bool		found;

	if (n->max_items >= 0 && len > (uint64_t) n->max_items)
		return report(v, "array has more than %lld items", (long long) n->max_items);
	if (n->min_items >= 0 && len < (uint64_t) n->min_items)
		return report(v, "array has fewer than %lld items", (long long) n->min_items);
	if (n->unique_items)
		for (size_t i = 1; i < len; i++)
			for (size_t j = 0; j < i; j++)
				if (dg_json_equal(json_object_array_get_idx(inst, i),
								  json_object_array_get_idx(inst, j)))
					return report(v, "array items %zu and %zu are equal", j, i);
	for (size_t i = 0; i < len; i++)
	{
		json_object *item = json_object_array_get_idx(inst, i);
		SchemaNode *schema = n->items;

		if (n->items_is_list)
			schema = i < n->item_list.n ? n->item_list.items[i] : n->additional_items;
		if (schema == NULL)
			continue;
		if (schema->is_boolean && !schema->boolean && n->items_is_list &&
			i >= n->item_list.n)
			return report(v, "array has more than %zu items, and additionalItems is false",
						  n->item_list.n);
		if (!validate_item(v, schema, item, i))
			return false;
	}
	if (n->contains)
	{
		found = false;
		for (size_t i = 0; i < len && !found; i++)
			found = matches(v, n->contains, json_object_array_get_idx(inst, i));
		if (!found)
			return report(v, "no item matches the schema of contains");
	}
	return true;
}

static bool
validate_object(Validator *v, SchemaNode *n, json_object *inst)
{
	int64_t		count = json_object_object_length(inst);
	json_object *member;

	if (n->max_properties >= 0 && count > n->max_properties)
		return report(v, "object has more than %lld properties",
					  (long long) n->max_properties);
	if (n->min_properties >= 0 && count < n->min_properties)
		return report(v, "object has fewer than %lld properties",
					  (long long) n->min_properties);
	for (size_t i = 0; n->required && i < json_object_array_length(n->required); i++)
	{
		json_object *required = json_object_array_get_idx(n->required, i);
		const char *name = json_object_get_string(required);

		if (!dg_json_has(inst, name, NULL))
			return report(v, "required property \"%s\" is missing", name);
	}
	for (size_t i = 0; i < n->nproperties; i++)
		if (dg_json_has(inst, n->properties[i].name, &member) &&
			!validate_member(v, n->properties[i].schema, member, n->properties[i].name))
			return false;
	if (n->npattern_properties > 0 || n->additional_properties)
	{
		json_object_object_foreach(inst, key, value)
		{
			bool		matched = dg_json_has(n->properties_json, key, NULL);
			SchemaNode *extra = n->additional_properties;

			for (size_t i = 0; i < n->npattern_properties; i++)
			{
				PatternSchema *pp = &n->pattern_properties[i];

				if (!pattern_matches(pp->pattern, key, strlen(key)))
					continue;
				matched = true;
				if (!validate_member(v, pp->schema, value, key))
					return false;
			}
			if (matched || extra == NULL)
				continue;
			if (extra->is_boolean && !extra->boolean)
				return report(v, "property \"%s\" is not allowed", key);
			if (!validate_member(v, extra, value, key))
				return false;
		}
	}
	for (size_t i = 0; i < n->ndependencies; i++)
	{
		NamedSchema *d = &n->dependencies[i];

		if (!dg_json_has(inst, d->name, NULL))
			continue;
		if (d->schema && !validate(v, d->schema, inst))
			return false;
		for (size_t j = 0; d->names && j < json_object_array_length(d->names); j++)
		{
			json_object *required = json_object_array_get_idx(d->names, j);
			const char *name = json_object_get_string(required);

			if (!dg_json_has(inst, name, NULL))
				return report(v, "property \"%s\" requires property \"%s\"",
							  d->name, name);
		}
	}
	if (n->property_names)
	{
		json_object_object_foreach(inst, key, value)
		{
			json_object *name = json_object_new_string(key);
			bool		ok = matches(v, n->property_names, name);

			(void) value;
			json_object_put(name);
			if (!ok)
				return report(v, "property name \"%s\" does not match the schema of propertyNames",
							  key);
		}
	}
	return true;
}

static bool
validate_combinators(Validator *v, SchemaNode *n, json_object *inst)
{
	size_t		count = 0;

	for (size_t i = 0; i < n->all_of.n; i++)
		if (!validate(v, n->all_of.items[i], inst))
			return false;
	if (n->any_of.n > 0)
	{
		for (size_t i = 0; i < n->any_of.n && count == 0; i++)
			count += matches(v, n->any_of.items[i], inst);
		if (count == 0)
			return report(v, "did not match any schema of anyOf");
	}
	if (n->one_of.n > 0)
	{
		count = 0;
		for (size_t i = 0; i < n->one_of.n; i++)
			count += matches(v, n->one_of.items[i], inst);
		if (count == 0)
			return report(v, "did not match any schema of oneOf");
		if (count > 1)
			return report(v, "matched %zu schemas of oneOf, expected exactly 1", count);
	}
	if (n->not_schema && matches(v, n->not_schema, inst))
		return report(v, "matched the schema of not");
	if (n->if_schema)
	{
		SchemaNode *branch = matches(v, n->if_schema, inst) ?
			n->then_schema : n->else_schema;

		if (branch && !validate(v, branch, inst))
			return false;
	}
	return true;
}

static bool
validate_node(Validator *v, SchemaNode *n, json_object *inst)
{
	if (n->is_boolean)
		return n->boolean || report(v, "no value is allowed here");
	if (n->ref)
		return validate(v, n->ref, inst);
	if (n->types && !type_matches(n->types, inst))
	{
		char		expected[128] = "";

		for (int t = 0; t < NTYPES; t++)
			if (n->types & (1u << t))
			{
				if (expected[0])
					strcat(expected, " or ");
				strcat(expected, type_descriptions[t]);
			}
		return report(v, "expected %s, got %s", expected, dg_json_type_name(inst));
	}
	if (n->enumeration)
	{
		bool		found = false;

		for (size_t i = 0; i < json_object_array_length(n->enumeration) && !found; i++)
			found = dg_json_equal(inst, json_object_array_get_idx(n->enumeration, i));
		if (!found)
			return report(v, "value is not one of the values of enum");
	}
	if (n->has_const && !dg_json_equal(inst, n->constant))
		return report(v, "value does not equal the value of const");
	switch (json_object_get_type(inst))
	{
		case json_type_int:
		case json_type_double:
			if (!validate_number(v, n, inst))
				return false;
			break;
		case json_type_string:
			if (!validate_string(v, n, inst))
				return false;
			break;
		case json_type_array:
			if (!validate_array(v, n, inst))
				return false;
			break;
		case json_type_object:
			if (!validate_object(v, n, inst))
				return false;
			break;
		default:
			break;
	}
	return validate_combinators(v, n, inst);
}

static bool
validate(Validator *v, SchemaNode *node, json_object *inst)
{
	bool		ok;

	if (v->depth >= SCHEMA_MAX_DEPTH)
		return report(v, "nesting exceeds the validation depth limit of %d",
					  SCHEMA_MAX_DEPTH);
	v->depth++;
	ok = validate_node(v, node, inst);
	v->depth--;
	return ok;
}

bool
dg_schema_validate(DgSchema *schema, json_object *instance, DgError *err)
{
	Validator	v;
	bool		ok;

	v.err = err;
	v.depth = 0;
	v.quiet = 0;
	sb_init(&v.path);
	ok = validate(&v, schema->top, instance);
	free(v.path.data);
	return ok;
}
