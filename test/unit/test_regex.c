/*-------------------------------------------------------------------------
 *
 * test_regex.c
 *		Unit tests of src/ecmaregex.c: ECMA-262 patterns on POSIX regex.
 *
 * Each pattern is compiled, tried against strings it must and must not
 * match, and freed.  The patterns are written as C strings, so an ECMA
 * backslash is doubled once.  What POSIX cannot express must be refused
 * with a message naming the construct, and a malformed pattern with
 * regerror's complaint; test_schema.c checks how schema.c words both.
 *
 * test/unit/test_regex.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg.h"
#include "tap.h"

/* Compile a pattern that must compile; a test that cannot is a bug, so stop. */
static DgRegex *
compiled(const char *pattern)
{
	char		msg[256];
	bool		unsupported;
	DgRegex    *re = dg_regex_compile(pattern, &unsupported, msg, sizeof(msg));

	if (re == NULL)
	{
		fprintf(stderr, "pattern /%s/ does not compile: %s\n", pattern, msg);
		exit(2);
	}
	return re;
}

/* s with control characters escaped, so that a TAP line stays one line. */
static const char *
shown(const char *s)
{
	static char buf[256];
	size_t		n = 0;

	for (; *s && n + 5 < sizeof(buf); s++)
	{
		if ((unsigned char) *s < 0x20)
			n += snprintf(buf + n, sizeof(buf) - n, "\\x%02x", (unsigned char) *s);
		else
			buf[n++] = *s;
	}
	buf[n] = '\0';
	return buf;
}

static void
matches(const char *pattern, const char *s)
{
	DgRegex    *re = compiled(pattern);

	ok(dg_regex_match(re, s, strlen(s)), "/%s/ matches \"%s\"", pattern, shown(s));
	dg_regex_free(re);
}

static void
no_match(const char *pattern, const char *s)
{
	DgRegex    *re = compiled(pattern);

	ok(!dg_regex_match(re, s, strlen(s)), "/%s/ does not match \"%s\"", pattern, shown(s));
	dg_regex_free(re);
}

/* The pattern must be refused as unsupported, with exactly this message. */
static void
unsupported(const char *pattern, const char *why)
{
	char		msg[256] = "";
	bool		is_unsupported = false;
	DgRegex    *re = dg_regex_compile(pattern, &is_unsupported, msg, sizeof(msg));

	ok(re == NULL && is_unsupported, "/%s/ is refused as unsupported", pattern);
	is_str(msg, why, "/%s/ is refused for: %s", pattern, why);
	dg_regex_free(re);
}

static void
test_classes(void)
{
	matches("^\\d+$", "0123456789");
	no_match("^\\d+$", "12a");
	no_match("^\\d$", "\xd9\xa3");	/* U+0663, an Arabic-Indic three */
	matches("^\\D$", "a");
	matches("^\\D$", "\xc3\xa4");	/* a non-ASCII character is not a digit */
	no_match("^\\D$", "7");
	matches("^\\w+$", "ab_Z9");
	no_match("^\\w+$", "a b");
	no_match("^\\w$", "\xc3\xa4");
	matches("^\\W$", "\xe2\x82\xac");	/* U+20AC, one character of three bytes */
	matches("^\\s\\S$", "\tx");
	no_match("^\\s$", "x");

	matches("^[a-f0-9]{8}$", "deadbeef");
	no_match("^[a-f0-9]{8}$", "deadbeeg");
	matches("^[\\d.]+$", "1.5");
	no_match("^[\\d.]+$", "1,5");
	matches("^[^a]{2}$", "\xc3\xa4\xc3\xb6");	/* two characters, four bytes */
	no_match("^[^a]$", "a");
	matches("^[\\]\\-^]+$", "]-^");
	no_match("^[^\\]\\-]+$", "a-b");
	matches("^[\\x41-\\x43]+$", "ABC");
	no_match("^[\\x41-\\x43]+$", "D");
}

static void
test_anchors(void)
{
	matches("b", "abc");			/* a search, not a full match */
	no_match("^b", "abc");
	no_match("b$", "abc");
	matches("^abc$", "abc");
	no_match("^abc$", "abcd");
	matches("^(?:ab)+?c{2,}$", "ababcc");
	no_match("^(?:ab)+?c{2,}$", "abc");
	matches("^\\$\\{x\\}$", "${x}");
	matches("^a{b$", "a{b");		/* a lone brace is literal */
}

static void
test_utf8(void)
{
	matches("^a.c$", "abc");
	matches("^a.c$", "a\xc3\xa4" "c");	/* two bytes */
	matches("^a.c$", "a\xe2\x82\xac" "c");	/* three bytes */
	matches("^a.c$", "a\xf0\x9f\x98\x80" "c");	/* four bytes */
	no_match("^a.c$", "a\xc3\xa4\xc3\xa4" "c");
	no_match("^a.c$", "a\nc");
	no_match("^a.c$", "a\rc");
	matches("^\xc3\xa4+$", "\xc3\xa4\xc3\xa4");	/* the quantifier takes all of it */
	matches("^\\u00e4{2}$", "\xc3\xa4\xc3\xa4");
	matches("^\\ud83d\\ude00$", "\xf0\x9f\x98\x80");	/* a surrogate pair */
}

static void
test_embedded_nul(void)
{
#ifdef REG_STARTEND
	DgRegex    *re = compiled("^a.*b$");

	ok(!dg_regex_match(re, "a\0b", 1), "only the given length is seen");
	ok(dg_regex_match(re, "ab\0c", 2), "a match may end before a NUL");
	dg_regex_free(re);
#endif
}

static void
test_refusals(void)
{
	char		msg[256] = "";
	bool		is_unsupported = true;
	DgRegex    *re;

	unsupported("^(?=a)", "lookaround or named group");
	unsupported("(?<!a)b", "lookaround or named group");
	unsupported("(?<name>a)", "lookaround or named group");
	unsupported("(a)\\1", "backreference");
	unsupported("\\bword", "word boundary");
	unsupported("\\p{L}", "unsupported escape");
	unsupported("[\\D]", "negated class escape inside brackets");
	unsupported("^[\xc3\xa4\xc3\xb6]$", "non-ASCII character inside brackets");
	unsupported("^[\\u00e4]$", "non-ASCII character inside brackets");
	unsupported("[ab", "unterminated character class");
	unsupported("[]", "empty character class");
	unsupported("a\\", "trailing backslash");
	unsupported("\\xZZ", "malformed hexadecimal escape");
	unsupported("\\ud800", "unpaired surrogate");
	unsupported("a\\0", "NUL character");

	/* what POSIX itself rejects comes with regerror's message */
	re = dg_regex_compile("(ab", &is_unsupported, msg, sizeof(msg));
	ok(re == NULL && !is_unsupported, "an unbalanced group is an invalid pattern");
	ok(msg[0] != '\0', "with a message: %s", msg);

	dg_regex_free(NULL);
	ok(true, "freeing NULL does nothing");
}

int
main(void)
{
	test_classes();
	test_anchors();
	test_utf8();
	test_embedded_nul();
	test_refusals();
	return done_testing();
}
