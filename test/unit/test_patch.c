/*-------------------------------------------------------------------------
 *
 * test_patch.c
 *		Unit tests of src/patch.c: JSON Pointer, JSON Patch, JSON Merge Patch
 *		and the diff that produces patches.
 *
 * Most cases come from the RFCs' own examples; each failing patch is also
 * checked to leave the document untouched, since all-or-nothing is the
 * property callers rely on.
 *
 * test/unit/test_patch.c
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
 * Parse test input; a typo in a test is a bug in the test, so stop.  The
 * text is wrapped in an array so that bare numbers at the root parse the same
 * way as everything else: this file tests patches, not the parser.
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
	memcpy(wrapped + 1, text, len);
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

static char *
text_of(json_object *obj)
{
	char	   *s = strdup(dg_json_text(obj, NULL));

	if (s == NULL)
		abort();
	return s;
}

static void
check_patch(const char *name, const char *doc_text, const char *patch_text,
			const char *want_text)
{
	json_object *doc = J(doc_text);
	json_object *patch = J(patch_text);
	json_object *want = J(want_text);
	char	   *patch_before = text_of(patch);
	DgError		err;
	bool		applied;

	dg_error_clear(&err);
	applied = dg_patch_apply(&doc, patch, &err);
	ok(applied && dg_json_equal(doc, want), "patch: %s", name);
	if (!applied)
		diag("error: %s", err.message);
	else if (!dg_json_equal(doc, want))
		diag("got %s", dg_json_text(doc, NULL));
	/* the values in the patch are copied, never adopted */
	ok(strcmp(dg_json_text(patch, NULL), patch_before) == 0,
	   "patch: %s: patch left intact", name);
	free(patch_before);
	json_object_put(doc);
	json_object_put(patch);
	json_object_put(want);
}

static void
check_patch_error(const char *name, const char *doc_text,
				  const char *patch_text, const char *want_message)
{
	json_object *doc = J(doc_text);
	json_object *before_root = doc;
	json_object *patch = J(patch_text);
	char	   *before = text_of(doc);
	DgError		err;
	bool		applied;

	dg_error_clear(&err);
	applied = dg_patch_apply(&doc, patch, &err);
	ok(!applied, "patch error: %s: refused", name);
	is_int(err.kind, DG_ERR_INVALID, "patch error: %s: kind", name);
	is_str(err.message, want_message, "patch error: %s: message", name);
	ok(doc == before_root && strcmp(dg_json_text(doc, NULL), before) == 0,
	   "patch error: %s: document unchanged", name);
	free(before);
	json_object_put(doc);
	json_object_put(patch);
}

static void
check_merge(const char *doc_text, const char *merge_text, const char *want_text)
{
	json_object *doc = J(doc_text);
	json_object *merge = J(merge_text);
	json_object *want = J(want_text);
	char	   *merge_before = text_of(merge);
	DgError		err;
	bool		applied;

	dg_error_clear(&err);
	applied = dg_merge_apply(&doc, merge, &err);
	ok(applied && dg_json_equal(doc, want) &&
	   strcmp(dg_json_text(merge, NULL), merge_before) == 0,
	   "merge: %s + %s = %s", doc_text, merge_text, want_text);
	if (!dg_json_equal(doc, want))
		diag("got %s", dg_json_text(doc, NULL));
	free(merge_before);
	json_object_put(doc);
	json_object_put(merge);
	json_object_put(want);
}

static void
check_roundtrip(const char *from_text, const char *to_text)
{
	json_object *from = J(from_text);
	json_object *to = J(to_text);
	json_object *work = dg_json_copy(from);
	json_object *diff = dg_patch_diff(from, to);
	DgError		err;
	bool		applied;

	dg_error_clear(&err);
	applied = dg_patch_apply(&work, diff, &err);
	ok(applied && dg_json_equal(work, to), "diff round-trip: %s -> %s",
	   from_text, to_text);
	if (!applied || !dg_json_equal(work, to))
		diag("diff %s; %s", dg_json_text(diff, NULL),
			 applied ? dg_json_text(work, NULL) : err.message);
	json_object_put(from);
	json_object_put(to);
	json_object_put(work);
	json_object_put(diff);
}

static void
check_diff(const char *from_text, const char *to_text, const char *want_text)
{
	json_object *from = J(from_text);
	json_object *to = J(to_text);
	json_object *want = J(want_text);
	json_object *diff = dg_patch_diff(from, to);

	ok(dg_json_equal(diff, want), "diff: %s -> %s is %s",
	   from_text, to_text, want_text);
	if (!dg_json_equal(diff, want))
		diag("got %s", dg_json_text(diff, NULL));
	json_object_put(from);
	json_object_put(to);
	json_object_put(want);
	json_object_put(diff);
}

static void
check_pointer(json_object *doc, const char *pointer, const char *want_text)
{
	json_object *value = NULL;
	bool		found = dg_pointer_get(doc, pointer, &value);

	if (want_text == NULL)
		ok(!found, "pointer \"%s\" does not resolve", pointer);
	else
	{
		json_object *want = J(want_text);

		ok(found && dg_json_equal(value, want), "pointer \"%s\" is %s",
		   pointer, want_text);
		json_object_put(want);
	}
}

static void
test_pointer(void)
{
	/* RFC 6901 section 5 */
	json_object *doc = J("{\"foo\": [\"bar\", \"baz\"], \"\": 0, \"a/b\": 1,"
						 " \"c%d\": 2, \"e^f\": 3, \"g|h\": 4, \"i\\\\j\": 5,"
						 " \"k\\\"l\": 6, \" \": 7, \"m~n\": 8,"
						 " \"~1\": 9, \"n\": null}");
	char	   *whole = text_of(doc);

	check_pointer(doc, "", whole);
	check_pointer(doc, "/foo", "[\"bar\", \"baz\"]");
	check_pointer(doc, "/foo/0", "\"bar\"");
	check_pointer(doc, "/foo/1", "\"baz\"");
	check_pointer(doc, "/", "0");
	check_pointer(doc, "/a~1b", "1");
	check_pointer(doc, "/c%d", "2");
	check_pointer(doc, "/e^f", "3");
	check_pointer(doc, "/g|h", "4");
	check_pointer(doc, "/i\\j", "5");
	check_pointer(doc, "/k\"l", "6");
	check_pointer(doc, "/ ", "7");
	check_pointer(doc, "/m~0n", "8");
	/* ~01 is "~" then "1", not "/" */
	check_pointer(doc, "/~01", "9");
	check_pointer(doc, "/n", "null");

	check_pointer(doc, "/foo/2", NULL);
	check_pointer(doc, "/foo/-", NULL);
	check_pointer(doc, "/foo/01", NULL);
	check_pointer(doc, "/foo/-1", NULL);
	check_pointer(doc, "/foo/0/x", NULL);
	check_pointer(doc, "/n/x", NULL);
	check_pointer(doc, "/missing", NULL);
	check_pointer(doc, "/m~n", NULL);
	check_pointer(doc, "/m~2n", NULL);
	check_pointer(doc, "foo", NULL);
	check_pointer(doc, "/foo/99999999999999999999999999", NULL);

	free(whole);
	json_object_put(doc);
}

static void
test_patch_ops(void)
{
	/* RFC 6902 appendix A */
	check_patch("A.1 add an object member", "{\"foo\": \"bar\"}",
				"[{\"op\": \"add\", \"path\": \"/baz\", \"value\": \"qux\"}]",
				"{\"baz\": \"qux\", \"foo\": \"bar\"}");
	check_patch("A.2 add an array element", "{\"foo\": [\"bar\", \"baz\"]}",
				"[{\"op\": \"add\", \"path\": \"/foo/1\", \"value\": \"qux\"}]",
				"{\"foo\": [\"bar\", \"qux\", \"baz\"]}");
	check_patch("A.3 remove an object member",
				"{\"baz\": \"qux\", \"foo\": \"bar\"}",
				"[{\"op\": \"remove\", \"path\": \"/baz\"}]",
				"{\"foo\": \"bar\"}");
	check_patch("A.4 remove an array element",
				"{\"foo\": [\"bar\", \"qux\", \"baz\"]}",
				"[{\"op\": \"remove\", \"path\": \"/foo/1\"}]",
				"{\"foo\": [\"bar\", \"baz\"]}");
	check_patch("A.5 replace a value", "{\"baz\": \"qux\", \"foo\": \"bar\"}",
				"[{\"op\": \"replace\", \"path\": \"/baz\", \"value\": \"boo\"}]",
				"{\"baz\": \"boo\", \"foo\": \"bar\"}");
	check_patch("A.6 move a value",
				"{\"foo\": {\"bar\": \"baz\", \"waldo\": \"fred\"},"
				" \"qux\": {\"corge\": \"grault\"}}",
				"[{\"op\": \"move\", \"from\": \"/foo/waldo\", \"path\": \"/qux/thud\"}]",
				"{\"foo\": {\"bar\": \"baz\"},"
				" \"qux\": {\"corge\": \"grault\", \"thud\": \"fred\"}}");
	check_patch("A.7 move an array element",
				"{\"foo\": [\"all\", \"grass\", \"cows\", \"eat\"]}",
				"[{\"op\": \"move\", \"from\": \"/foo/1\", \"path\": \"/foo/3\"}]",
				"{\"foo\": [\"all\", \"cows\", \"eat\", \"grass\"]}");
	check_patch("A.8 test a value",
				"{\"baz\": \"qux\", \"foo\": [\"a\", 2, \"c\"]}",
				"[{\"op\": \"test\", \"path\": \"/baz\", \"value\": \"qux\"},"
				" {\"op\": \"test\", \"path\": \"/foo/1\", \"value\": 2}]",
				"{\"baz\": \"qux\", \"foo\": [\"a\", 2, \"c\"]}");
	check_patch("A.10 add a nested member object", "{\"foo\": \"bar\"}",
				"[{\"op\": \"add\", \"path\": \"/child\","
				" \"value\": {\"grandchild\": {}}}]",
				"{\"foo\": \"bar\", \"child\": {\"grandchild\": {}}}");
	check_patch("A.11 ignore unrecognized elements", "{\"foo\": \"bar\"}",
				"[{\"op\": \"add\", \"path\": \"/baz\", \"value\": \"qux\", \"xyz\": 123}]",
				"{\"foo\": \"bar\", \"baz\": \"qux\"}");
	check_patch("A.14 ~ escape ordering", "{\"/\": 9, \"~1\": 10}",
				"[{\"op\": \"test\", \"path\": \"/~01\", \"value\": 10}]",
				"{\"/\": 9, \"~1\": 10}");
	check_patch("A.16 add an array value", "{\"foo\": [\"bar\"]}",
				"[{\"op\": \"add\", \"path\": \"/foo/-\", \"value\": [\"abc\", \"def\"]}]",
				"{\"foo\": [\"bar\", [\"abc\", \"def\"]]}");

	/* add */
	check_patch("add replaces an existing member", "{\"a\": 1, \"b\": 2}",
				"[{\"op\": \"add\", \"path\": \"/a\", \"value\": {\"x\": [1]}}]",
				"{\"a\": {\"x\": [1]}, \"b\": 2}");
	check_patch("add a null value", "{\"a\": 1}",
				"[{\"op\": \"add\", \"path\": \"/b\", \"value\": null}]",
				"{\"a\": 1, \"b\": null}");
	check_patch("add at the start of an array", "[1, 2, 3]",
				"[{\"op\": \"add\", \"path\": \"/0\", \"value\": 0}]",
				"[0, 1, 2, 3]");
	check_patch("add in the middle of an array", "[1, 2, 4, 5]",
				"[{\"op\": \"add\", \"path\": \"/2\", \"value\": 3}]",
				"[1, 2, 3, 4, 5]");
	check_patch("add at index == length", "[1, 2]",
				"[{\"op\": \"add\", \"path\": \"/2\", \"value\": 3}]",
				"[1, 2, 3]");
	check_patch("add with - appends", "{\"a\": [1, 2]}",
				"[{\"op\": \"add\", \"path\": \"/a/-\", \"value\": 3},"
				" {\"op\": \"add\", \"path\": \"/a/-\", \"value\": null}]",
				"{\"a\": [1, 2, 3, null]}");
	check_patch("add into an empty array", "[]",
				"[{\"op\": \"add\", \"path\": \"/0\", \"value\": {\"k\": 1}}]",
				"[{\"k\": 1}]");
	check_patch("add a member named -", "{}",
				"[{\"op\": \"add\", \"path\": \"/-\", \"value\": 1}]",
				"{\"-\": 1}");
	check_patch("add a member with an empty name", "{\"a\": {}}",
				"[{\"op\": \"add\", \"path\": \"/a/\", \"value\": 1}]",
				"{\"a\": {\"\": 1}}");
	check_patch("add at the root replaces the document", "{\"a\": 1}",
				"[{\"op\": \"add\", \"path\": \"\", \"value\": [1, 2]}]",
				"[1, 2]");
	check_patch("add at the root of a null document", "null",
				"[{\"op\": \"add\", \"path\": \"\", \"value\": {\"a\": 1}}]",
				"{\"a\": 1}");
	check_patch("add with escaped keys", "{}",
				"[{\"op\": \"add\", \"path\": \"/a~1b\", \"value\": 1},"
				" {\"op\": \"add\", \"path\": \"/m~0n\", \"value\": 2},"
				" {\"op\": \"add\", \"path\": \"/~0~1~01\", \"value\": 3}]",
				"{\"a/b\": 1, \"m~n\": 2, \"~/~1\": 3}");

	/* remove */
	check_patch("remove the last array element", "[1, 2, 3]",
				"[{\"op\": \"remove\", \"path\": \"/2\"}]", "[1, 2]");
	check_patch("remove a nested member",
				"{\"reportedState\": {\"x\": {\"value\": 1}, \"y\": 2}}",
				"[{\"op\": \"remove\", \"path\": \"/reportedState/x\"}]",
				"{\"reportedState\": {\"y\": 2}}");
	check_patch("remove a null member", "{\"a\": null, \"b\": 1}",
				"[{\"op\": \"remove\", \"path\": \"/a\"}]", "{\"b\": 1}");
	check_patch("remove escaped keys", "{\"a/b\": 1, \"m~n\": 2, \"c\": 3}",
				"[{\"op\": \"remove\", \"path\": \"/a~1b\"},"
				" {\"op\": \"remove\", \"path\": \"/m~0n\"}]",
				"{\"c\": 3}");

	/* replace */
	check_patch("replace an array element", "[1, [2], 3]",
				"[{\"op\": \"replace\", \"path\": \"/1\", \"value\": {\"two\": 2}}]",
				"[1, {\"two\": 2}, 3]");
	check_patch("replace with null", "{\"a\": {\"b\": 1}}",
				"[{\"op\": \"replace\", \"path\": \"/a\", \"value\": null}]",
				"{\"a\": null}");
	check_patch("replace the root", "{\"a\": 1}",
				"[{\"op\": \"replace\", \"path\": \"\", \"value\": \"x\"}]",
				"\"x\"");
	check_patch("replace the root with null", "[1]",
				"[{\"op\": \"replace\", \"path\": \"\", \"value\": null}]",
				"null");
	check_patch("replace a member named -", "{\"-\": 1}",
				"[{\"op\": \"replace\", \"path\": \"/-\", \"value\": 2}]",
				"{\"-\": 2}");

	/* move */
	check_patch("move to itself is a no-op", "{\"a\": {\"b\": 1}}",
				"[{\"op\": \"move\", \"from\": \"/a\", \"path\": \"/a\"}]",
				"{\"a\": {\"b\": 1}}");
	check_patch("move the root to itself", "[1]",
				"[{\"op\": \"move\", \"from\": \"\", \"path\": \"\"}]",
				"[1]");
	check_patch("move an array element to the end", "[1, 2, 3]",
				"[{\"op\": \"move\", \"from\": \"/0\", \"path\": \"/-\"}]",
				"[2, 3, 1]");
	check_patch("move between arrays", "{\"a\": [1, 2], \"b\": [3]}",
				"[{\"op\": \"move\", \"from\": \"/a/1\", \"path\": \"/b/0\"}]",
				"{\"a\": [1], \"b\": [2, 3]}");
	check_patch("move replaces an existing member",
				"{\"a\": {\"x\": 1}, \"b\": 2}",
				"[{\"op\": \"move\", \"from\": \"/a\", \"path\": \"/b\"}]",
				"{\"b\": {\"x\": 1}}");
	check_patch("move a child up to the root", "{\"a\": {\"b\": [1]}}",
				"[{\"op\": \"move\", \"from\": \"/a/b\", \"path\": \"\"}]",
				"[1]");
	check_patch("move a null value", "{\"a\": null}",
				"[{\"op\": \"move\", \"from\": \"/a\", \"path\": \"/b\"}]",
				"{\"b\": null}");
	check_patch("move to a sibling that shares a prefix", "{\"a\": 1}",
				"[{\"op\": \"move\", \"from\": \"/a\", \"path\": \"/ab\"}]",
				"{\"ab\": 1}");

	/* copy */
	check_patch("copy is deep", "{\"a\": {\"b\": 1}}",
				"[{\"op\": \"copy\", \"from\": \"/a\", \"path\": \"/c\"},"
				" {\"op\": \"replace\", \"path\": \"/c/b\", \"value\": 2}]",
				"{\"a\": {\"b\": 1}, \"c\": {\"b\": 2}}");
	check_patch("copy into its own child", "{\"a\": {\"b\": 1}}",
				"[{\"op\": \"copy\", \"from\": \"/a\", \"path\": \"/a/c\"}]",
				"{\"a\": {\"b\": 1, \"c\": {\"b\": 1}}}");
	check_patch("copy the root into an array", "[1]",
				"[{\"op\": \"copy\", \"from\": \"\", \"path\": \"/0\"}]",
				"[[1], 1]");

	/* test */
	check_patch("test compares numbers by value", "{\"n\": 42}",
				"[{\"op\": \"test\", \"path\": \"/n\", \"value\": 42.0}]",
				"{\"n\": 42}");
	check_patch("test a null value", "{\"n\": null}",
				"[{\"op\": \"test\", \"path\": \"/n\", \"value\": null}]",
				"{\"n\": null}");
	check_patch("test the whole document, members in any order",
				"{\"a\": 1, \"b\": [true, {\"c\": null}]}",
				"[{\"op\": \"test\", \"path\": \"\","
				" \"value\": {\"b\": [true, {\"c\": null}], \"a\": 1}}]",
				"{\"a\": 1, \"b\": [true, {\"c\": null}]}");

	check_patch("an empty patch", "{\"a\": 1}", "[]", "{\"a\": 1}");
	check_patch("a sequence sees the effect of earlier operations", "{}",
				"[{\"op\": \"add\", \"path\": \"/a\", \"value\": []},"
				" {\"op\": \"add\", \"path\": \"/a/-\", \"value\": {}},"
				" {\"op\": \"add\", \"path\": \"/a/0/b\", \"value\": 1},"
				" {\"op\": \"copy\", \"from\": \"/a/0\", \"path\": \"/c\"},"
				" {\"op\": \"test\", \"path\": \"/c/b\", \"value\": 1},"
				" {\"op\": \"remove\", \"path\": \"/a\"}]",
				"{\"c\": {\"b\": 1}}");
}

static void
test_patch_errors(void)
{
	/* the shape of the patch */
	check_patch_error("not an array", "{}",
					  "{\"op\": \"add\", \"path\": \"/a\", \"value\": 1}",
					  "patch must be a JSON array of operations");
	check_patch_error("operation not an object", "{}", "[1]",
					  "patch operation 0: operation must be an object, not a number");
	check_patch_error("op missing", "{}", "[{\"path\": \"/a\"}]",
					  "patch operation 0: \"op\" is missing");
	check_patch_error("op not a string", "{}", "[{\"op\": 1, \"path\": \"/a\"}]",
					  "patch operation 0: \"op\" must be a string, not a number");
	check_patch_error("unknown op", "{}",
					  "[{\"op\": \"frobnicate\", \"path\": \"/a\"}]",
					  "patch operation 0: \"op\" must be one of add, remove, replace, move, copy, test");
	check_patch_error("path missing", "{\"a\": 1}", "[{\"op\": \"remove\"}]",
					  "patch operation 0 (remove): \"path\" is missing");
	check_patch_error("path not a string", "{\"a\": 1}",
					  "[{\"op\": \"remove\", \"path\": null}]",
					  "patch operation 0 (remove): \"path\" must be a string, not null");
	check_patch_error("add without value", "{}",
					  "[{\"op\": \"add\", \"path\": \"/a\"}]",
					  "patch operation 0 (add): \"value\" is missing");
	check_patch_error("replace without value", "{\"a\": 1}",
					  "[{\"op\": \"replace\", \"path\": \"/a\"}]",
					  "patch operation 0 (replace): \"value\" is missing");
	check_patch_error("test without value", "{\"a\": 1}",
					  "[{\"op\": \"test\", \"path\": \"/a\"}]",
					  "patch operation 0 (test): \"value\" is missing");
	check_patch_error("move without from", "{\"a\": 1}",
					  "[{\"op\": \"move\", \"path\": \"/b\"}]",
					  "patch operation 0 (move): \"from\" is missing");
	check_patch_error("copy with a non-string from", "{\"a\": 1}",
					  "[{\"op\": \"copy\", \"from\": [], \"path\": \"/b\"}]",
					  "patch operation 0 (copy): \"from\" must be a string, not an array");
	check_patch_error("path not a pointer", "{\"a\": 1}",
					  "[{\"op\": \"remove\", \"path\": \"a\"}]",
					  "patch operation 0 (remove): \"path\" \"a\" is not a valid JSON pointer");
	check_patch_error("bad escape in path", "{\"a~2\": 1}",
					  "[{\"op\": \"remove\", \"path\": \"/a~2\"}]",
					  "patch operation 0 (remove): \"path\" \"/a~2\" is not a valid JSON pointer");
	check_patch_error("from not a pointer", "{\"a\": 1}",
					  "[{\"op\": \"copy\", \"from\": \"/a~\", \"path\": \"/b\"}]",
					  "patch operation 0 (copy): \"from\" \"/a~\" is not a valid JSON pointer");
	check_patch_error("a bad operation after good ones", "{\"a\": 1}",
					  "[{\"op\": \"add\", \"path\": \"/b\", \"value\": 2},"
					  " {\"op\": \"remove\", \"path\": \"/a\"},"
					  " {\"op\": \"nope\", \"path\": \"/a\"}]",
					  "patch operation 2: \"op\" must be one of add, remove, replace, move, copy, test");

	/* remove */
	check_patch_error("remove a missing member after changes",
					  "{\"reportedState\": {\"y\": 1}}",
					  "[{\"op\": \"add\", \"path\": \"/reportedState/z\", \"value\": 1},"
					  " {\"op\": \"remove\", \"path\": \"/reportedState/y\"},"
					  " {\"op\": \"remove\", \"path\": \"/reportedState/x\"}]",
					  "patch operation 2 (remove): path \"/reportedState/x\" does not exist");
	check_patch_error("remove the root", "{\"a\": 1}",
					  "[{\"op\": \"remove\", \"path\": \"\"}]",
					  "patch operation 0 (remove): cannot remove the whole document");
	check_patch_error("remove past the end", "[1, 2]",
					  "[{\"op\": \"remove\", \"path\": \"/2\"}]",
					  "patch operation 0 (remove): path \"/2\" does not exist");
	check_patch_error("remove -", "[1, 2]",
					  "[{\"op\": \"remove\", \"path\": \"/-\"}]",
					  "patch operation 0 (remove): path \"/-\" does not exist");
	check_patch_error("remove with a leading zero", "{\"a\": [1, 2]}",
					  "[{\"op\": \"remove\", \"path\": \"/a/01\"}]",
					  "patch operation 0 (remove): path \"/a/01\": \"01\" is not a valid array index");
	check_patch_error("remove below a scalar", "{\"a\": 1}",
					  "[{\"op\": \"remove\", \"path\": \"/a/b\"}]",
					  "patch operation 0 (remove): path \"/a/b\" does not exist");
	check_patch_error("remove an unescaped key", "{\"m~n\": 1}",
					  "[{\"op\": \"remove\", \"path\": \"/m~1n\"}]",
					  "patch operation 0 (remove): path \"/m~1n\" does not exist");

	/* replace */
	check_patch_error("replace a missing member", "{\"a\": 1}",
					  "[{\"op\": \"replace\", \"path\": \"/b\", \"value\": 1}]",
					  "patch operation 0 (replace): path \"/b\" does not exist");
	check_patch_error("replace past the end", "[1]",
					  "[{\"op\": \"replace\", \"path\": \"/1\", \"value\": 1}]",
					  "patch operation 0 (replace): path \"/1\" does not exist");
	check_patch_error("replace under a missing parent", "{}",
					  "[{\"op\": \"replace\", \"path\": \"/a/b\", \"value\": 1}]",
					  "patch operation 0 (replace): path \"/a/b\" does not exist");

	/* add */
	check_patch_error("A.12 add to a nonexistent target", "{\"foo\": \"bar\"}",
					  "[{\"op\": \"add\", \"path\": \"/baz/bat\", \"value\": \"qux\"}]",
					  "patch operation 0 (add): parent of path \"/baz/bat\" does not exist");
	check_patch_error("add below a scalar", "{\"a\": 1}",
					  "[{\"op\": \"add\", \"path\": \"/a/b\", \"value\": 1}]",
					  "patch operation 0 (add): path \"/a/b\": parent \"/a\" is a number, not an object or array");
	check_patch_error("add below a null root", "null",
					  "[{\"op\": \"add\", \"path\": \"/a\", \"value\": 1}]",
					  "patch operation 0 (add): path \"/a\": parent \"\" is null, not an object or array");
	check_patch_error("add out of range", "{\"arr\": [1, 2, 3]}",
					  "[{\"op\": \"add\", \"path\": \"/arr/5\", \"value\": 1}]",
					  "patch operation 0 (add): path \"/arr/5\": index 5 is out of range for an array of 3 elements");
	check_patch_error("add with a leading zero", "[1, 2]",
					  "[{\"op\": \"add\", \"path\": \"/01\", \"value\": 1}]",
					  "patch operation 0 (add): path \"/01\": \"01\" is not a valid array index");
	check_patch_error("add with a negative index", "[1, 2]",
					  "[{\"op\": \"add\", \"path\": \"/-1\", \"value\": 1}]",
					  "patch operation 0 (add): path \"/-1\": \"-1\" is not a valid array index");
	check_patch_error("add with a name on an array", "[1, 2]",
					  "[{\"op\": \"add\", \"path\": \"/x\", \"value\": 1}]",
					  "patch operation 0 (add): path \"/x\": \"x\" is not a valid array index");

	/* test */
	check_patch_error("A.9 test a value (error)", "{\"baz\": \"qux\"}",
					  "[{\"op\": \"test\", \"path\": \"/baz\", \"value\": \"bar\"}]",
					  "patch operation 0 (test): value at \"/baz\" does not match");
	check_patch_error("test after a change", "{\"a\": 1}",
					  "[{\"op\": \"replace\", \"path\": \"/a\", \"value\": 2},"
					  " {\"op\": \"test\", \"path\": \"/a\", \"value\": 1}]",
					  "patch operation 1 (test): value at \"/a\" does not match");
	check_patch_error("A.15 strings are not numbers", "{\"/\": 9, \"~1\": 10}",
					  "[{\"op\": \"test\", \"path\": \"/~01\", \"value\": \"10\"}]",
					  "patch operation 0 (test): value at \"/~01\" does not match");
	check_patch_error("test null against missing", "{}",
					  "[{\"op\": \"test\", \"path\": \"/a\", \"value\": null}]",
					  "patch operation 0 (test): path \"/a\" does not exist");
	check_patch_error("test arrays by order", "{\"a\": [1, 2]}",
					  "[{\"op\": \"test\", \"path\": \"/a\", \"value\": [2, 1]}]",
					  "patch operation 0 (test): value at \"/a\" does not match");

	/* move and copy */
	check_patch_error("move from a missing location", "{\"a\": 1}",
					  "[{\"op\": \"move\", \"from\": \"/x\", \"path\": \"/b\"}]",
					  "patch operation 0 (move): \"from\" location \"/x\" does not exist");
	check_patch_error("move into its own child", "{\"a\": {\"b\": 1}}",
					  "[{\"op\": \"move\", \"from\": \"/a\", \"path\": \"/a/b\"}]",
					  "patch operation 0 (move): \"from\" \"/a\" is a prefix of \"path\" \"/a/b\"");
	check_patch_error("move the root into a child", "{\"a\": 1}",
					  "[{\"op\": \"move\", \"from\": \"\", \"path\": \"/a\"}]",
					  "patch operation 0 (move): \"from\" \"\" is a prefix of \"path\" \"/a\"");
	check_patch_error("move whose add fails after the remove", "{\"a\": 1}",
					  "[{\"op\": \"move\", \"from\": \"/a\", \"path\": \"/x/y\"}]",
					  "patch operation 0 (move): parent of path \"/x/y\" does not exist");
	check_patch_error("move to an index that the remove put out of range",
					  "[1, 2]",
					  "[{\"op\": \"move\", \"from\": \"/0\", \"path\": \"/2\"}]",
					  "patch operation 0 (move): path \"/2\": index 2 is out of range for an array of 1 elements");
	check_patch_error("copy from a missing location", "{\"a\": [1]}",
					  "[{\"op\": \"copy\", \"from\": \"/a/1\", \"path\": \"/b\"}]",
					  "patch operation 0 (copy): \"from\" location \"/a/1\" does not exist");
	check_patch_error("copy out of range", "{\"a\": [1]}",
					  "[{\"op\": \"copy\", \"from\": \"/a/0\", \"path\": \"/a/3\"}]",
					  "patch operation 0 (copy): path \"/a/3\": index 3 is out of range for an array of 1 elements");
}

static void
test_merge(void)
{
	/* RFC 7396 section 3 */
	check_merge("{\"title\": \"Goodbye!\","
				" \"author\": {\"givenName\": \"John\", \"familyName\": \"Doe\"},"
				" \"tags\": [\"example\", \"sample\"],"
				" \"content\": \"This will be unchanged\"}",
				"{\"title\": \"Hello!\", \"phoneNumber\": \"+01-234-567-8901\","
				" \"author\": {\"familyName\": null}, \"tags\": [\"example\"]}",
				"{\"title\": \"Hello!\", \"author\": {\"givenName\": \"John\"},"
				" \"tags\": [\"example\"], \"content\": \"This will be unchanged\","
				" \"phoneNumber\": \"+01-234-567-8901\"}");

	/* RFC 7396 appendix A */
	check_merge("{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
	check_merge("{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}");
	check_merge("{\"a\":\"b\"}", "{\"a\":null}", "{}");
	check_merge("{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}");
	check_merge("{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
	check_merge("{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}");
	check_merge("{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}",
				"{\"a\":{\"b\":\"d\"}}");
	check_merge("{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}");
	check_merge("[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]");
	check_merge("{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]");
	check_merge("{\"a\":\"foo\"}", "null", "null");
	check_merge("{\"a\":\"foo\"}", "\"bar\"", "\"bar\"");
	check_merge("{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}");
	check_merge("[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}");
	check_merge("{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}");

	/* beyond the RFC */
	check_merge("null", "{\"a\":{\"b\":null,\"c\":1}}", "{\"a\":{\"c\":1}}");
	check_merge("{\"a\":{\"b\":{\"c\":1,\"d\":2}}}", "{\"a\":{\"b\":{\"d\":null,\"e\":3}}}",
				"{\"a\":{\"b\":{\"c\":1,\"e\":3}}}");
	check_merge("{\"a\":1}", "{}", "{\"a\":1}");
	check_merge("{\"a\":1}", "{\"missing\":null}", "{\"a\":1}");
}

static void
test_diff(void)
{
	/* exact output: sorted keys, removes before adds, escaped paths */
	check_diff("{\"b\": 1, \"a/x\": 1, \"c\": 1}",
			   "{\"b\": 2, \"a/x\": 1, \"d~\": 1}",
			   "[{\"op\": \"replace\", \"path\": \"/b\", \"value\": 2},"
			   " {\"op\": \"remove\", \"path\": \"/c\"},"
			   " {\"op\": \"add\", \"path\": \"/d~0\", \"value\": 1}]");
	check_diff("{\"a\": [1, 2, 3]}", "{\"a\": [1, 2, 3]}", "[]");
	check_diff("{\"a\": 1}", "{\"a\": 1.0}", "[]");
	check_diff("[1, 2, 3, 4]", "[1]",
			   "[{\"op\": \"remove\", \"path\": \"/3\"},"
			   " {\"op\": \"remove\", \"path\": \"/2\"},"
			   " {\"op\": \"remove\", \"path\": \"/1\"}]");
	check_diff("1", "\"1\"",
			   "[{\"op\": \"replace\", \"path\": \"\", \"value\": \"1\"}]");
	check_diff("{\"a\": null}", "{\"a\": {}}",
			   "[{\"op\": \"replace\", \"path\": \"/a\", \"value\": {}}]");

	check_roundtrip("{}", "{}");
	check_roundtrip("{\"a\": 1}", "{\"a\": 2}");
	check_roundtrip("{\"a\": 1, \"b\": 2}", "{\"b\": 3, \"c\": 4}");
	check_roundtrip("{\"a\": {\"b\": {\"c\": 1, \"d\": [1, 2]}}, \"z\": true}",
					"{\"a\": {\"b\": {\"c\": 2, \"d\": [1, 2, 3]}, \"e\": null}}");
	check_roundtrip("[1, 2]", "[1, 2, 3, 4]");
	check_roundtrip("[1, 2, 3, 4, 5]", "[1, 3]");
	check_roundtrip("[1, 2, 3]", "[]");
	check_roundtrip("[]", "[{\"a\": [1]}, null]");
	check_roundtrip("[{\"a\": 1}, {\"b\": 2}]", "[{\"a\": 2}, {\"b\": 2}, {\"c\": 3}]");
	check_roundtrip("[[1, 2], [3]]", "[[1], [3, 4, 5], []]");
	check_roundtrip("{\"a\": [1], \"b\": {\"x\": 1}, \"c\": \"s\", \"d\": null}",
					"{\"a\": {\"0\": 1}, \"b\": [1], \"c\": null, \"d\": \"s\"}");
	check_roundtrip("{\"a/b\": 1, \"m~n\": {\"~1\": 2}, \"~\": 3}",
					"{\"a/b\": 2, \"m~n\": {\"~1\": 3, \"/\": 4}, \"~0\": 5}");
	check_roundtrip("{\"\": 1}", "{\"\": 2, \"x\": {\"\": []}}");
	check_roundtrip("1", "\"x\"");
	check_roundtrip("null", "{\"a\": 1}");
	check_roundtrip("{\"a\": 1}", "[1]");
	check_roundtrip("{\"a\": 1}", "null");
	check_roundtrip("{\"metadata\": {\"name\": \"t1\", \"labels\": {\"k\": \"v\"}},"
					" \"reportedState\": {\"temp\": {\"value\": 20.5,"
					" \"lastUpdate\": \"2024-01-01T00:00:00Z\"}},"
					" \"desiredState\": {\"on\": {\"value\": true}}}",
					"{\"metadata\": {\"name\": \"t1\"},"
					" \"reportedState\": {\"temp\": {\"value\": 21,"
					" \"lastUpdate\": \"2024-01-01T00:01:00Z\"},"
					" \"hum\": {\"value\": [40, 41]}},"
					" \"desiredState\": {}}");
}

int
main(void)
{
	test_pointer();
	test_patch_ops();
	test_patch_errors();
	test_merge();
	test_diff();
	return done_testing();
}
