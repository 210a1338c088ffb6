/*-------------------------------------------------------------------------
 *
 * ecmaregex.c
 *		ECMA-262 regular expressions, as JSON Schema writes them, run by the
 *		POSIX <regex.h> of libc.
 *
 * "pattern" and "patternProperties" hold ECMA-262 regular expressions.
 * Rather than carry a regex engine of its own, this file translates each
 * pattern into a POSIX extended regular expression for regcomp: the common
 * subset (classes, anchors, groups, quantifiers, \d \w \s and their
 * negations, \x and \u escapes) carries over, and what POSIX cannot express
 * (lookaround, backreferences, word boundaries, \p and the like) is refused
 * with a message naming it rather than approximated, so that a pattern
 * never silently means something else.
 *
 * What a POSIX dot or bracket expression matches depends on LC_CTYPE, which
 * differs from one database to the next.  So every regex is compiled and run
 * in the C locale, where it sees bytes, and the translation spells UTF-8 out
 * as bytes: a multi-byte character becomes a group, the dot and the negated
 * sets match a lead byte with its continuation bytes, and a bracket
 * expression takes ASCII members only.  A pattern thus means the same in
 * every database, whatever its locale.
 *
 * src/ecmaregex.c
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <locale.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg.h"

struct DgRegex
{
	regex_t		re;				/* compiled in the C locale */
};

typedef struct StrBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} StrBuf;

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

/* ---- translation into POSIX extended regular expressions ---- */

/*
 * Any one non-ASCII UTF-8 character, as bytes: what the negated sets below
 * must match besides their ASCII members, since the C locale sees bytes.
 */
#define NON_ASCII "[\xc0-\xff][\x80-\xbf]*"

/* What a class escape stands for outside and inside a bracket expression. */
static const char *
class_escape(char cls, bool in_bracket)
{
	switch (cls)
	{
		case 'd':
			return in_bracket ? "0-9" : "[0-9]";
		case 'w':
			return in_bracket ? "A-Za-z0-9_" : "[A-Za-z0-9_]";
		case 's':
			return in_bracket ? " \t\n\r\f\v" : "[ \t\n\r\f\v]";
		case 'D':
			return in_bracket ? NULL : "([^0-9\x80-\xff]|" NON_ASCII ")";
		case 'W':
			return in_bracket ? NULL : "([^A-Za-z0-9_\x80-\xff]|" NON_ASCII ")";
		case 'S':
			return in_bracket ? NULL : "([^ \t\n\r\f\v\x80-\xff]|" NON_ASCII ")";
	}
	return NULL;
}

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

/*
 * Decode the escape sequence after a backslash at *pp and advance past it.
 * Sets *cls to one of "dDwWsS" for a class escape, else *cp to the code
 * point of a character.  Returns NULL, or what makes it unsupported.
 */
static const char *
decode_escape(const char **pp, bool in_bracket, char *cls, long *cp)
{
	const char *p = *pp;
	char		c = *p++;

	*cls = '\0';
	*cp = (unsigned char) c;
	if (c == '\0')
		return "trailing backslash";
	if (strchr("dDwWsS", c))
		*cls = c;
	else if (strchr("nrtfv", c))
		*cp = "\n\r\t\f\v"[strchr("nrtfv", c) - "nrtfv"];
	else if (c == 'b' && in_bracket)
		*cp = '\b';
	else if (c == 'b' || c == 'B')
		return "word boundary";
	else if (c >= '1' && c <= '9')
		return "backreference";
	else if (c == 'x' || c == 'u')
	{
		int			digits = (c == 'x') ? 2 : 4;

		if ((*cp = hex_value(p, digits)) < 0)
			return "malformed hexadecimal escape";
		p += digits;
		/* a UTF-16 surrogate pair spells one character */
		if (c == 'u' && *cp >= 0xD800 && *cp <= 0xDBFF && p[0] == '\\' && p[1] == 'u')
		{
			long		low = hex_value(p + 2, 4);

			if (low >= 0xDC00 && low <= 0xDFFF)
			{
				*cp = 0x10000 + ((*cp - 0xD800) << 10) + (low - 0xDC00);
				p += 6;
			}
		}
		if (*cp >= 0xD800 && *cp <= 0xDFFF)
			return "unpaired surrogate";
	}
	else if (c == '0')
		*cp = 0;
	else if (isalnum((unsigned char) c) || (unsigned char) c >= 0x80)
		return "unsupported escape";	/* \c, \k, \p... mean what POSIX lacks */
	if (*cls == '\0' && *cp == 0)
		return "NUL character";
	*pp = p;
	return NULL;
}

static int
utf8_encode(long cp, char *buf)
{
	static const unsigned char lead[] = {0, 0, 0xC0, 0xE0, 0xF0};
	int			n = cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;

	for (int i = n - 1; i > 0; i--, cp >>= 6)
		buf[i] = (char) (0x80 | (cp & 0x3F));
	buf[0] = (char) (lead[n] | cp);
	return n;
}

/*
 * Emit one literal character outside brackets.  A multi-byte character is
 * grouped so that a following quantifier repeats all of it, not its last
 * byte (the regex may well run in the C locale, where it sees bytes).
 */
static void
emit_char(StrBuf *out, long cp)
{
	char		buf[4];

	if (cp >= 0x80)
	{
		sb_putc(out, '(');
		sb_putn(out, buf, utf8_encode(cp, buf));
		sb_putc(out, ')');
		return;
	}
	if (strchr(".[]{}()*+?^$|\\", (int) cp))
		sb_putc(out, '\\');
	sb_putc(out, (char) cp);
}

/*
 * Translate the bracket expression at *pp and advance past it.  ECMA escapes
 * work inside brackets, whereas a POSIX backslash is literal there and "]",
 * "[", "^" and "-" are special depending on their position; so the members
 * are collected first and written in an order POSIX reads unambiguously.
 * Members are ASCII only, as the C locale would split other characters
 * into bytes; a negated class also matches every non-ASCII character.
 */
static const char *
translate_bracket(const char **pp, StrBuf *out)
{
	const char *p = *pp + 1;
	const char *why = NULL;
	bool		negated = false;
	bool		close = false,
				open = false,
				caret = false,
				dash = false;
	bool		can_start_range = false;
	StrBuf		body;

	if (*p == '^')
	{
		negated = true;
		p++;
	}
	if (*p == ']')
		return "empty character class";
	sb_init(&body);
	while (why == NULL && *p != ']')
	{
		bool		escaped = (*p == '\\');
		char		cls = '\0';
		long		cp;

		if (*p == '\0')
		{
			why = "unterminated character class";
			break;
		}
		if (escaped)
		{
			p++;
			if ((why = decode_escape(&p, true, &cls, &cp)) != NULL)
				break;
		}
		else
			cp = (unsigned char) *p++;

		if (cls != '\0')
		{
			const char *set = class_escape(cls, true);

			if (set == NULL)
				why = "negated class escape inside brackets";
			else
				sb_puts(&body, set);
			can_start_range = false;
		}
		else if (cp >= 0x80)
			why = "non-ASCII character inside brackets";
		else if (cp == '-' && !escaped && can_start_range && *p != ']')
		{
			/* a range: its start is already in body, so add "-end" */
			long		end = (unsigned char) *p;

			if (*p == '\\')
			{
				p++;
				if ((why = decode_escape(&p, true, &cls, &end)) != NULL)
					break;
			}
			else if (*p != '\0')
				p++;
			if (cls != '\0' || end == 0 || end >= 0x80 || strchr("[]^-", (int) end))
				why = "unsupported character range";
			sb_putc(&body, '-');
			sb_putc(&body, (char) end);
			can_start_range = false;
		}
		else
		{
			/* the position-sensitive ones are placed when writing out */
			close |= (cp == ']');
			open |= (cp == '[');
			caret |= (cp == '^');
			dash |= (cp == '-');
			can_start_range = !strchr("[]^-", (int) cp);
			if (can_start_range)
				sb_putc(&body, (char) cp);
		}
	}
	if (why == NULL)
	{
		/* a caret is literal anywhere but first, and the dash goes last */
		bool		caret_first = caret && !negated && !close && !open && body.len == 0;

		*pp = p + 1;
		if (caret_first && !dash)
			sb_puts(out, "\\^");	/* "[^]" would be something else */
		else
		{
			sb_puts(out, negated ? "([^" : "[");
			if (close)
				sb_putc(out, ']');
			sb_puts(out, body.data);
			if (negated)
				sb_puts(out, "\x80-\xff");
			if (open)
				sb_putc(out, '[');
			if (caret_first)
				sb_puts(out, "-^");
			else
			{
				if (caret)
					sb_putc(out, '^');
				if (dash)
					sb_putc(out, '-');
			}
			sb_puts(out, negated ? "]|" NON_ASCII ")" : "]");
		}
	}
	free(body.data);
	return why;
}

/* Length of a {n}, {n,} or {n,m} quantifier at p, or 0 (a literal brace). */
static size_t
quantifier_length(const char *p)
{
	size_t		n = 1;

	if (!isdigit((unsigned char) p[n]))
		return 0;
	while (isdigit((unsigned char) p[n]))
		n++;
	if (p[n] == ',')
		while (isdigit((unsigned char) p[++n]))
			;
	return p[n] == '}' ? n + 1 : 0;
}

/* Translate an ECMA-262 pattern; NULL, or what makes it unsupported. */
static const char *
translate_regex(const char *p, StrBuf *out)
{
	bool		after_quantifier = false;
	const char *why;

	while (*p)
	{
		unsigned char c = *p;
		bool		quantifier = false;
		size_t		n;

		if (c == '\\')
		{
			char		cls;
			long		cp;

			p++;
			if ((why = decode_escape(&p, false, &cls, &cp)) != NULL)
				return why;
			if (cls != '\0')
				sb_puts(out, class_escape(cls, false));
			else
				emit_char(out, cp);
		}
		else if (c == '[')
		{
			if ((why = translate_bracket(&p, out)) != NULL)
				return why;
		}
		else if (c == '(' && p[1] == '?')
		{
			if (p[2] != ':')
				return "lookaround or named group";
			/* nothing is captured anyway, so a plain group will do */
			sb_putc(out, '(');
			p += 3;
		}
		else if (c == '?' && after_quantifier)
			p++;				/* lazy or greedy, it matches the same strings */
		else if (c == '*' || c == '+' || c == '?')
		{
			sb_putc(out, (char) c);
			p++;
			quantifier = true;
		}
		else if (c == '{' && (n = quantifier_length(p)) > 0)
		{
			sb_putn(out, p, n);
			p += n;
			quantifier = true;
		}
		else if (c == '.')
		{
			/* ECMA's dot matches a character, but no line terminator */
			sb_puts(out, "([^\n\r\x80-\xff]|" NON_ASCII ")");
			p++;
		}
		else if (c >= 0x80)
		{
			/* a literal multi-byte character, grouped as in emit_char */
			for (n = 1; ((unsigned char) p[n] & 0xC0) == 0x80; n++)
				;
			sb_putc(out, '(');
			sb_putn(out, p, n);
			sb_putc(out, ')');
			p += n;
		}
		else
		{
			/* a lone brace is literal in ECMA but an error to POSIX */
			if (c == '{' || c == '}')
				sb_putc(out, '\\');
			sb_putc(out, (char) c);
			p++;
		}
		after_quantifier = quantifier;
	}
	return NULL;
}

/* The C locale, in which every regex is compiled and run. */
static locale_t
c_locale(void)
{
	static locale_t c = (locale_t) 0;

	if (c == (locale_t) 0)
		c = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
	if (c == (locale_t) 0)
		abort();
	return c;
}


/* ---- compiling and matching ---- */

DgRegex *
dg_regex_compile(const char *pattern, bool *unsupported,
				 char *errbuf, size_t errlen)
{
	StrBuf		posix;
	const char *why;
	DgRegex    *re;
	locale_t	saved;
	int			rc;

	*unsupported = false;
	sb_init(&posix);
	if ((why = translate_regex(pattern, &posix)) != NULL)
	{
		free(posix.data);
		*unsupported = true;
		if (errlen > 0)
			snprintf(errbuf, errlen, "%s", why);
		return NULL;
	}
	re = must(malloc(sizeof(DgRegex)));
	saved = uselocale(c_locale());
	rc = regcomp(&re->re, posix.data, REG_EXTENDED | REG_NOSUB);
	uselocale(saved);
	free(posix.data);
	if (rc != 0)
	{
		regerror(rc, &re->re, errbuf, errlen);
		free(re);				/* a failed regcomp leaves nothing to regfree */
		return NULL;
	}
	return re;
}

bool
dg_regex_match(DgRegex *re, const char *s, size_t len)
{
	locale_t	saved = uselocale(c_locale());
	int			rc;

#ifdef REG_STARTEND
	/* a JSON string may hold U+0000; let the regex see all of it */
	regmatch_t	range;

	range.rm_so = 0;
	range.rm_eo = (regoff_t) len;
	rc = regexec(&re->re, s, 1, &range, REG_STARTEND);
#else
	(void) len;
	rc = regexec(&re->re, s, 0, NULL, 0);
#endif
	uselocale(saved);
	return rc == 0;
}

void
dg_regex_free(DgRegex *re)
{
	if (re == NULL)
		return;
	regfree(&re->re);
	free(re);
}
