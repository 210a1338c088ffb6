/*-------------------------------------------------------------------------
 *
 * test_schema.c
 *		Unit tests of src/schema.c: JSON Schema draft 7 validation.
 *
 * Every supported keyword gets an instance it accepts and one it rejects;
 * every kind of schema the compiler must refuse is checked to be refused
 * with DG_ERR_INVALID, since refusing is what keeps a schema from being
 * silently half-enforced.  Each schema is freed by the test right after
 * compiling, which checks that the compiled form owns its own copy.
 *
 * test/unit/test_schema.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg.h"
#include "tap.h"

/*
 * Parse test input, written with single quotes to spare the backslashes
 * (no test needs a literal apostrophe).  The text is wrapped in an array so
 * that bare scalars parse like everything else.  A typo in a test is a bug
 * in the test, so stop.
 */
static json_object *
J(const char *text)
{
	size_t		len = strlen(text);
	char	   *wrapped = malloc(len + 3);
	json_object *array;
	json_object *obj;
	DgError		err;

	if (wrapped == NULL)
		abort();
	dg_error_clear(&err);
	wrapped[0] = '[';
	for (size_t i = 0; i < len; i++)
		wrapped[i + 1] = text[i] == '\'' ? '"' : text[i];
	wrapped[len + 1] = ']';
	wrapped[len + 2] = '\0';
	if (!dg_json_parse(wrapped, len + 2, &array, &err) ||
		json_object_array_length(array) != 1)
	{
		fprintf(stderr, "bad test JSON %s: %s\n", text, err.message);
		exit(2);
	}
	obj = json_object_get(json_object_array_get_idx(array, 0));
	json_object_put(array);
	free(wrapped);
	return obj;
}

/* Compile, dropping the caller's document at once. */
static DgSchema *
compile(const char *schema_text, DgError *err)
{
	json_object *schema = J(schema_text);
	DgSchema   *compiled;

	dg_error_clear(err);
	compiled = dg_schema_compile(schema, err);
	json_object_put(schema);
	return compiled;
}

/*
 * Validate instance against schema; returns the error kind (DG_OK when
 * valid) and copies the message out.
 */
static DgErrorKind
run(const char *schema_text, const char *instance_text, char *message)
{
	json_object *instance = J(instance_text);
	DgError		err;
	DgSchema   *compiled = compile(schema_text, &err);
	DgErrorKind kind;

	if (compiled == NULL)
	{
		diag("%s does not compile: %s", schema_text, err.message);
		json_object_put(instance);
		return DG_ERR_INTERNAL;
	}
	dg_error_clear(&err);
	kind = dg_schema_validate(compiled, instance, &err) ? DG_OK : err.kind;
	if (message)
		strcpy(message, err.message);
	dg_schema_free(compiled);
	json_object_put(instance);
	return kind;
}

static void
accepts(const char *schema, const char *instance)
{
	char		message[1024];
	DgErrorKind kind = run(schema, instance, message);

	ok(kind == DG_OK, "%s accepts %s", schema, instance);
	if (kind != DG_OK)
		diag("%s", message);
}

static void
rejects(const char *schema, const char *instance)
{
	is_int(run(schema, instance, NULL), DG_ERR_VALIDATION,
		   "%s rejects %s", schema, instance);
}

static void
message_is(const char *schema, const char *instance, const char *want)
{
	char		message[1024] = "";

	run(schema, instance, message);
	is_str(message, want, "message for %s against %s", instance, schema);
}

/* The compiler refuses schema, with a message that contains fragment. */
static void
refuses(const char *schema, const char *fragment)
{
	DgError		err;
	DgSchema   *compiled = compile(schema, &err);

	ok(compiled == NULL && err.kind == DG_ERR_INVALID &&
	   strstr(err.message, fragment) != NULL, "refuses %s", schema);
	if (compiled != NULL)
		diag("compiled");
	else if (strstr(err.message, fragment) == NULL)
		diag("message: %s", err.message);
	dg_schema_free(compiled);
}

static void
test_types(void)
{
	const char *names[] = {"null", "boolean", "object", "array", "number", "string"};
	const char *values[] = {"null", "true", "{}", "[]", "1.5", "'x'"};

	for (int i = 0; i < 6; i++)
	{
		char		schema[64];

		snprintf(schema, sizeof(schema), "{'type':'%s'}", names[i]);
		accepts(schema, values[i]);
		rejects(schema, values[(i + 1) % 6]);
	}
	accepts("{'type':'number'}", "1");
	accepts("{'type':'integer'}", "1");
	accepts("{'type':'integer'}", "1.0");
	accepts("{'type':'integer'}", "-20000000000");
	rejects("{'type':'integer'}", "1.5");
	rejects("{'type':'integer'}", "'1'");
	accepts("{'type':['string','null']}", "null");
	accepts("{'type':['string','null']}", "'x'");
	rejects("{'type':['string','null']}", "0");
	message_is("{'type':['string','null']}", "0",
			   "new state did not validate against configured schema: (root): expected null or a string, got a number");
}

static void
test_generic(void)
{
	accepts("{'enum':[1,'a',{'b':[null]}]}", "'a'");
	accepts("{'enum':[1,'a',{'b':[null]}]}", "{'b':[null]}");
	accepts("{'enum':[1,'a']}", "1.0");
	rejects("{'enum':[1,'a']}", "'b'");
	rejects("{'enum':[1,'a']}", "[1]");
	accepts("{'const':{'a':[1,2]}}", "{'a':[1,2.0]}");
	rejects("{'const':{'a':[1,2]}}", "{'a':[2,1]}");
	accepts("{'const':null}", "null");
	rejects("{'const':null}", "false");
	/* annotations are accepted and do not constrain */
	accepts("{'$schema':'http://json-schema.org/draft-07/schema#','$id':'http://example.com/s.json',"
			"'$comment':'c','title':'t','description':'d','default':5,'examples':[1],"
			"'readOnly':true,'writeOnly':false,'contentMediaType':'text/plain',"
			"'contentEncoding':'base64','format':'email'}", "'not an email'");
	accepts("{'$schema':'http://json-schema.org/draft-07/schema'}", "1");
	accepts("{'properties':{'a':{'$id':'#anchor','type':'string'}}}", "{'a':'x'}");
}

static void
test_numbers(void)
{
	accepts("{'multipleOf':5}", "-15");
	rejects("{'multipleOf':5}", "7");
	accepts("{'multipleOf':0.01}", "0.07");
	accepts("{'multipleOf':0.01}", "12345678.91");
	rejects("{'multipleOf':0.01}", "0.075");
	accepts("{'multipleOf':0.5}", "3");
	rejects("{'multipleOf':2}", "3.0");
	accepts("{'multipleOf':3}", "18446744073709551615");
	accepts("{'maximum':10}", "10");
	rejects("{'maximum':10}", "10.5");
	accepts("{'exclusiveMaximum':10}", "9.99");
	rejects("{'exclusiveMaximum':10}", "10");
	accepts("{'minimum':-1.5}", "-1.5");
	rejects("{'minimum':-1.5}", "-2");
	accepts("{'exclusiveMinimum':0}", "0.001");
	rejects("{'exclusiveMinimum':0}", "0");
	/* no rounding through doubles: 2^53 + 1 is not 2^53 */
	rejects("{'maximum':9007199254740992}", "9007199254740993");
	rejects("{'maximum':9007199254740992.0}", "9007199254740993");
	accepts("{'maximum':9007199254740993}", "9007199254740992.0");
	accepts("{'maximum':18446744073709551615}", "18446744073709551614");
	rejects("{'exclusiveMaximum':18446744073709551615}", "18446744073709551615");
	accepts("{'minimum':-9223372036854775808}", "-9223372036854775807");
	rejects("{'exclusiveMinimum':-9223372036854775807}", "-9223372036854775808");
	/* number keywords ignore other types */
	accepts("{'minimum':5}", "'3'");
	message_is("{'properties':{'t':{'maximum':30}}}", "{'t':31}",
			   "new state did not validate against configured schema: /t: 31 is greater than the maximum 30");
}

static void
test_strings(void)
{
	accepts("{'maxLength':2}", "'ää'");
	rejects("{'maxLength':1}", "'ää'");
	accepts("{'minLength':2}", "'ää'");
	rejects("{'minLength':3}", "'ää'");
	accepts("{'minLength':2.0}", "'ab'");
	accepts("{'pattern':'^\\\\d+$'}", "'123'");
	rejects("{'pattern':'^\\\\d+$'}", "'12a'");
	accepts("{'pattern':'b'}", "'abc'");		/* a search, not a full match */
	accepts("{'pattern':'^\\\\w+-\\\\s?\\\\S$'}", "'ab_1- x'");
	rejects("{'pattern':'^\\\\w+$'}", "'a b'");
	accepts("{'pattern':'^[\\\\d.]+$'}", "'1.5'");
	rejects("{'pattern':'^[\\\\d.]+$'}", "'1,5'");
	accepts("{'pattern':'^[^\\\\]\\\\-]+$'}", "'ab'");
	rejects("{'pattern':'^[^\\\\]\\\\-]+$'}", "'a-b'");
	rejects("{'pattern':'^[^\\\\]\\\\-]+$'}", "'a]b'");
	accepts("{'pattern':'^(?:ab)+?c{2,}$'}", "'ababcc'");
	rejects("{'pattern':'^(?:ab)+?c{2,}$'}", "'abc'");
	accepts("{'pattern':'^ä+$'}", "'ää'");
	accepts("{'pattern':'^\\\\u00e4{2}$'}", "'ää'");
	accepts("{'pattern':'^a.c$'}", "'abc'");
	/* characters, not bytes, whatever the locale */
	accepts("{'pattern':'^a.c$'}", "'a€c'");
	accepts("{'pattern':'^[^a]{2}$'}", "'äö'");
	accepts("{'pattern':'^\\\\D\\\\W\\\\S$'}", "'ä€😀'");
	rejects("{'pattern':'^\\\\D$'}", "'ää'");
	rejects("{'pattern':'^a.c$'}", "'a\\nc'");
	accepts("{'pattern':'^\\\\$\\\\{x\\\\}$'}", "'${x}'");
	accepts("{'pattern':'^[a-f0-9]{8}$'}", "'deadbeef'");
	rejects("{'pattern':'^[a-f0-9]{8}$'}", "'deadbeeg'");
	accepts("{'maxLength':1}", "5");
	message_is("{'pattern':'^\\\\d+$'}", "'x'",
			   "new state did not validate against configured schema: (root): string does not match pattern \"^\\d+$\"");
}

static void
test_arrays(void)
{
	accepts("{'items':{'type':'integer'}}", "[1,2,3]");
	rejects("{'items':{'type':'integer'}}", "[1,'2',3]");
	message_is("{'items':{'type':'integer'}}", "[1,'2',3]",
			   "new state did not validate against configured schema: /1: expected an integer, got a string");
	accepts("{'items':[{'type':'string'},{'type':'number'}]}", "['a',1,null]");
	rejects("{'items':[{'type':'string'},{'type':'number'}]}", "[1,'a']");
	accepts("{'items':[{'type':'string'}],'additionalItems':{'type':'number'}}", "['a',1,2]");
	rejects("{'items':[{'type':'string'}],'additionalItems':{'type':'number'}}", "['a',1,'b']");
	accepts("{'items':[{},{}],'additionalItems':false}", "[1,2]");
	rejects("{'items':[{},{}],'additionalItems':false}", "[1,2,3]");
	accepts("{'additionalItems':false}", "[1,2,3]");	/* ignored without an items list */
	accepts("{'maxItems':2}", "[1,2]");
	rejects("{'maxItems':2}", "[1,2,3]");
	accepts("{'minItems':1}", "[1]");
	rejects("{'minItems':1}", "[]");
	accepts("{'uniqueItems':true}", "[1,'1',[1],{'a':1}]");
	rejects("{'uniqueItems':true}", "[1,2,1.0]");
	rejects("{'uniqueItems':true}", "[{'a':1,'b':2},{'b':2,'a':1}]");
	accepts("{'uniqueItems':false}", "[1,1]");
	accepts("{'contains':{'const':3}}", "[1,2,3]");
	rejects("{'contains':{'const':3}}", "[1,2]");
	rejects("{'contains':{}}", "[]");
}

static void
test_objects(void)
{
	accepts("{'maxProperties':1}", "{'a':1}");
	rejects("{'maxProperties':1}", "{'a':1,'b':2}");
	accepts("{'minProperties':1}", "{'a':1}");
	rejects("{'minProperties':1}", "{}");
	accepts("{'required':['a','b']}", "{'a':1,'b':null}");
	rejects("{'required':['a','b']}", "{'a':1}");
	accepts("{'required':['a']}", "['a']");
	accepts("{'properties':{'a':{'type':'string'}}}", "{'a':'x','b':1}");
	rejects("{'properties':{'a':{'type':'string'}}}", "{'a':1}");
	accepts("{'patternProperties':{'^x_':{'type':'integer'}}}", "{'x_1':1,'y':'s'}");
	rejects("{'patternProperties':{'^x_':{'type':'integer'}}}", "{'x_1':'s'}");
	accepts("{'properties':{'a':{}},'patternProperties':{'^x':{}},'additionalProperties':false}",
			"{'a':1,'xy':2}");
	rejects("{'properties':{'a':{}},'patternProperties':{'^x':{}},'additionalProperties':false}",
			"{'a':1,'b':2}");
	message_is("{'properties':{'a':{}},'additionalProperties':false}", "{'a':1,'b':2}",
			   "new state did not validate against configured schema: (root): property \"b\" is not allowed");
	accepts("{'properties':{'a':{}},'additionalProperties':{'type':'number'}}", "{'a':'s','b':2}");
	rejects("{'properties':{'a':{}},'additionalProperties':{'type':'number'}}", "{'a':'s','b':'t'}");
	accepts("{'dependencies':{'card':['billing']}}", "{'card':1,'billing':2}");
	accepts("{'dependencies':{'card':['billing']}}", "{'billing':2}");
	rejects("{'dependencies':{'card':['billing']}}", "{'card':1}");
	accepts("{'dependencies':{'card':{'required':['cvv']}}}", "{'card':1,'cvv':2}");
	rejects("{'dependencies':{'card':{'required':['cvv']}}}", "{'card':1}");
	accepts("{'propertyNames':{'maxLength':3}}", "{'abc':1}");
	rejects("{'propertyNames':{'maxLength':3}}", "{'abcd':1}");
	rejects("{'propertyNames':{'pattern':'^[a-z]+$'}}", "{'A':1}");
	message_is("{'required':['a']}", "{}",
			   "new state did not validate against configured schema: (root): required property \"a\" is missing");
}

static void
test_combinators(void)
{
	accepts("{'allOf':[{'type':'integer'},{'minimum':2}]}", "3");
	rejects("{'allOf':[{'type':'integer'},{'minimum':2}]}", "1");
	accepts("{'anyOf':[{'type':'string'},{'minimum':2}]}", "'x'");
	accepts("{'anyOf':[{'type':'string'},{'minimum':2}]}", "5");
	rejects("{'anyOf':[{'type':'string'},{'minimum':2}]}", "1");
	message_is("{'properties':{'a':{'anyOf':[{'type':'string'},{'type':'null'}]}}}", "{'a':1}",
			   "new state did not validate against configured schema: /a: did not match any schema of anyOf");
	accepts("{'oneOf':[{'type':'integer'},{'minimum':2}]}", "1");
	accepts("{'oneOf':[{'type':'integer'},{'minimum':2}]}", "2.5");
	rejects("{'oneOf':[{'type':'integer'},{'minimum':2}]}", "3");
	rejects("{'oneOf':[{'type':'integer'},{'minimum':2}]}", "1.5");
	message_is("{'oneOf':[{'type':'integer'},{'minimum':2}]}", "3",
			   "new state did not validate against configured schema: (root): matched 2 schemas of oneOf, expected exactly 1");
	accepts("{'not':{'type':'string'}}", "1");
	rejects("{'not':{'type':'string'}}", "'x'");
	accepts("{'if':{'minimum':10},'then':{'multipleOf':10},'else':{'multipleOf':3}}", "20");
	rejects("{'if':{'minimum':10},'then':{'multipleOf':10},'else':{'multipleOf':3}}", "25");
	accepts("{'if':{'minimum':10},'then':{'multipleOf':10},'else':{'multipleOf':3}}", "6");
	rejects("{'if':{'minimum':10},'then':{'multipleOf':10},'else':{'multipleOf':3}}", "7");
	accepts("{'then':false}", "1");	/* no if: then and else do nothing */
}

static void
test_booleans(void)
{
	accepts("true", "{'anything':[1]}");
	rejects("false", "null");
	accepts("{'properties':{'a':true,'b':false}}", "{'a':1}");
	rejects("{'properties':{'a':true,'b':false}}", "{'b':1}");
	accepts("{'items':false}", "[]");
	rejects("{'items':false}", "[1]");
}

static void
test_refs(void)
{
	const char *tree =
		"{'type':'object','required':['name'],"
		"'properties':{'name':{'type':'string'},"
		"'children':{'type':'array','items':{'$ref':'#'}}},"
		"'additionalProperties':false}";
	char		deep[8192];
	char		message[1024];

	accepts("{'definitions':{'pos':{'type':'integer','minimum':0}},"
			"'properties':{'a':{'$ref':'#/definitions/pos'}}}", "{'a':3}");
	rejects("{'definitions':{'pos':{'type':'integer','minimum':0}},"
			"'properties':{'a':{'$ref':'#/definitions/pos'}}}", "{'a':-3}");
	accepts("{'properties':{'x':{'type':'string'},'y':{'$ref':'#/properties/x'}}}", "{'y':'s'}");
	rejects("{'properties':{'x':{'type':'string'},'y':{'$ref':'#/properties/x'}}}", "{'y':1}");
	/* RFC 6901 escapes and percent-encoding, pointers through arrays */
	accepts("{'definitions':{'a/b':{'type':'string'},'c~d':{'type':'null'},'e%f':{'minimum':1}},"
			"'allOf':[{'$ref':'#/definitions/a~1b'}]}", "'s'");
	rejects("{'definitions':{'a/b':{'type':'string'},'c~d':{'type':'null'}},"
			"'properties':{'x':{'$ref':'#/definitions/c~0d'}}}", "{'x':1}");
	rejects("{'definitions':{'e%f':{'minimum':1}},'properties':{'x':{'$ref':'#/definitions/e%25f'}}}",
			"{'x':0}");
	rejects("{'anyOf':[{'type':'string'}],'properties':{'x':{'$ref':'#/anyOf/0'}}}", "{'x':1}");
	/* draft 7: siblings of $ref are ignored */
	accepts("{'definitions':{'s':{'type':'string'}},"
			"'properties':{'a':{'$ref':'#/definitions/s','type':'number','maxLength':1}}}",
			"{'a':'long string'}");
	/* a recursive tree, three levels deep */
	accepts(tree, "{'name':'root','children':[{'name':'a','children':[{'name':'a1'},{'name':'a2'}]},"
			"{'name':'b','children':[]}]}");
	rejects(tree, "{'name':'root','children':[{'name':'a','children':[{'name':7}]}]}");
	message_is(tree, "{'name':'root','children':[{'name':'a','children':[{'name':'x','bad':1}]}]}",
			   "new state did not validate against configured schema: /children/0/children/0: property \"bad\" is not allowed");
	/* $ref cycles that never consume the instance are refused, not run */
	refuses("{'$ref':'#'}", "cycle");
	refuses("{'definitions':{'a':{'$ref':'#/definitions/b'},'b':{'$ref':'#/definitions/a'}},"
			"'properties':{'x':{'$ref':'#/definitions/a'}}}", "cycle");
	refuses("{'definitions':{'a':{'anyOf':[{'type':'string'},{'$ref':'#/definitions/a'}]}}}", "cycle");
	refuses("{'not':{'$ref':'#'}}", "cycle");
	/* a cycle that consumes the instance is fine, but depth stays bounded */
	strcpy(deep, "{'items':{'$ref':'#'}}");
	accepts(deep, "[[[[[]]]]]");
	for (int i = 0; i < 700; i++)
		deep[i] = '[';
	for (int i = 700; i < 1400; i++)
		deep[i] = ']';
	deep[1400] = '\0';
	is_int(run("{'items':{'$ref':'#'}}", deep, message), DG_ERR_VALIDATION,
		   "a 700-level instance of a recursive schema is rejected cleanly");
	ok(strstr(message, "depth limit") != NULL, "and the message says why");
}

static void
test_refusals(void)
{
	refuses("{'properties':{'a':{'unevaluatedProperties':false}}}",
			"unsupported JSON Schema keyword \"unevaluatedProperties\" at \"#/properties/a\"");
	refuses("{'$defs':{}}", "\"$defs\" at \"#\"");
	refuses("{'dependentRequired':{}}", "dependentRequired");
	refuses("{'prefixItems':[]}", "prefixItems");
	refuses("{'$anchor':'x'}", "$anchor");
	refuses("{'$recursiveRef':'#'}", "$recursiveRef");
	refuses("{'items':{'foo':1}}", "unsupported JSON Schema keyword \"foo\" at \"#/items\"");
	refuses("{'definitions':{'unused':{'foo':1}}}", "\"#/definitions/unused\"");
	refuses("{'allOf':[{},{'foo':1}]}", "\"#/allOf/1\"");
	/* property names are not keywords, wherever they appear */
	accepts("{'properties':{'foo':{},'$ref':{}},'patternProperties':{'bar':{}},"
			"'dependencies':{'baz':['foo']},'definitions':{'qux':{}}}", "{'foo':1}");

	refuses("{'$ref':'http://example.com/schema.json'}", "only references within the schema");
	refuses("{'$ref':'other.json#/definitions/a'}", "only references within the schema");
	refuses("{'properties':{'a':{'$ref':'#foo'}}}", "\"#/properties/a\"");
	refuses("{'$ref':'#/definitions/missing'}", "does not resolve");
	refuses("{'$ref':'#/definitions/a~2'}", "does not resolve");
	refuses("{'properties':{'a':{'$ref':'#/properties'}}}", "unsupported JSON Schema keyword \"a\"");
	refuses("{'$ref':'#/default','default':1}", "must be an object or a boolean");
	refuses("{'$ref':5}", "\"$ref\" at \"#\" must be a string");

	refuses("{'type':5}", "\"type\" at \"#\"");
	refuses("{'type':'float'}", "unknown type \"float\"");
	refuses("{'type':[]}", "\"type\"");
	refuses("{'type':['string','string']}", "twice");
	refuses("{'properties':{'a':{'minimum':'x'}}}", "\"minimum\" at \"#/properties/a\" must be a number");
	refuses("{'maximum':null}", "\"maximum\"");
	refuses("{'required':[1]}", "\"required\" at \"#\" must be an array of unique strings");
	refuses("{'required':['a','a']}", "twice");
	refuses("{'minLength':-1}", "\"minLength\" at \"#\" must be a non-negative integer");
	refuses("{'maxItems':1.5}", "\"maxItems\"");
	refuses("{'multipleOf':0}", "\"multipleOf\" at \"#\" must be a number greater than 0");
	refuses("{'multipleOf':-2}", "\"multipleOf\"");
	refuses("{'enum':[]}", "\"enum\"");
	refuses("{'enum':1}", "\"enum\"");
	refuses("{'uniqueItems':1}", "\"uniqueItems\"");
	refuses("{'allOf':[]}", "\"allOf\"");
	refuses("{'anyOf':{}}", "\"anyOf\"");
	refuses("{'items':1}", "schema at \"#/items\" must be an object or a boolean");
	refuses("{'properties':[]}", "\"properties\"");
	refuses("{'dependencies':{'a':[1]}}", "\"dependencies\"");
	refuses("{'dependencies':{'a':'b'}}", "#/dependencies/a");
	refuses("{'definitions':[]}", "\"definitions\"");
	refuses("{'title':1}", "\"title\"");
	refuses("{'format':true}", "\"format\"");
	refuses("{'readOnly':'yes'}", "\"readOnly\"");
	refuses("{'examples':{}}", "\"examples\"");
	refuses("{'$schema':'https://json-schema.org/draft/2020-12/schema'}", "\"$schema\"");
	refuses("{'properties':{'a':{'$id':'http://example.com/a.json'}}}", "\"$id\" at \"#/properties/a\"");
	refuses("5", "must be an object or a boolean");
	refuses("null", "must be an object or a boolean");

	/* patterns POSIX cannot express */
	refuses("{'pattern':'^(?=a)'}", "lookaround");
	refuses("{'pattern':'(?<!a)b'}", "lookaround");
	refuses("{'pattern':'(a)\\\\1'}", "backreference");
	refuses("{'pattern':'\\\\bword'}", "word boundary");
	refuses("{'pattern':'[\\\\D]'}", "negated class escape");
	refuses("{'pattern':'^[äö]$'}", "non-ASCII character inside brackets");
	refuses("{'pattern':'(ab'}", "invalid regular expression");
	refuses("{'pattern':'[ab'}", "unterminated");
	refuses("{'patternProperties':{'(?!x)':{}}}", "\"patternProperties\" at \"#\"");
}

static void
test_realistic(void)
{
	const char *schema =
		"{'type':'object','properties':{'reportedState':{'type':'object',"
		"'properties':{'temperature':{'type':'number'}}}}}";

	accepts(schema, "{'reportedState':{'temperature':21}}");
	rejects(schema, "{'reportedState':{'temperature':'hot'}}");
	message_is(schema, "{'reportedState':{'temperature':'hot'}}",
			   "new state did not validate against configured schema: /reportedState/temperature: expected a number, got a string");
	message_is("{'properties':{'a/b':{'properties':{'c~d':{'type':'string'}}}}}",
			   "{'a/b':{'c~d':1}}",
			   "new state did not validate against configured schema: /a~1b/c~0d: expected a string, got a number");
	message_is("{'type':'object'}", "[]",
			   "new state did not validate against configured schema: (root): expected an object, got an array");
}

/* One compiled schema, validated many times: the compiled form is reusable. */
static void
test_reuse(void)
{
	DgError		err;
	DgSchema   *compiled = compile("{'properties':{'a':{'pattern':'^a'}},'required':['a']}", &err);
	json_object *good = J("{'a':'abc'}");
	json_object *bad = J("{'a':'xbc'}");
	bool		all = compiled != NULL;

	for (int i = 0; all && i < 100; i++)
		all = dg_schema_validate(compiled, good, &err) &&
			!dg_schema_validate(compiled, bad, &err) &&
			err.kind == DG_ERR_VALIDATION;
	ok(all, "a compiled schema validates repeatedly");
	dg_schema_free(compiled);
	dg_schema_free(NULL);
	json_object_put(good);
	json_object_put(bad);
}

int
main(void)
{
	test_types();
	test_generic();
	test_numbers();
	test_strings();
	test_arrays();
	test_objects();
	test_combinators();
	test_booleans();
	test_refs();
	test_refusals();
	test_realistic();
	test_reuse();
	return done_testing();
}
