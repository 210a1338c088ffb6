/*-------------------------------------------------------------------------
 *
 * selector.c
 *		Kubernetes-style label selectors: "a=b,c!=d,e,!f".
 *
 * A selector becomes four conditions that jsonb operators on the GIN-indexed
 * labels column can test (see dg_store_list): labels that must equal, keys
 * that must exist, keys that must be absent, and pairs that must differ.
 * "a==b" is accepted for "a=b"; "a!=b" also matches things without "a", as
 * in Kubernetes.  White space around keys and values is ignored.
 *
 * src/selector.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/json.h"

#include "doppelganger.h"

static char *
trimmed(const char *start, const char *end)
{
	while (start < end && (*start == ' ' || *start == '\t'))
		start++;
	while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	return pnstrdup(start, end - start);
}

static void
check_key(const char *selector, const char *key)
{
	if (key[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid label selector \"%s\": a requirement has an empty key", selector),
				 errhint("Write requirements such as \"a=b\", \"a!=b\", \"a\" or \"!a\", separated by commas.")));
	if (strpbrk(key, "=!, \t") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid label selector \"%s\": key \"%s\" contains \"=\", \"!\" or white space",
						selector, key)));
}

static void
append_pair(StringInfo buf, const char *key, const char *value)
{
	if (buf->len > 1)
		appendStringInfoChar(buf, ',');
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
	escape_json(buf, value);
}

void
dg_selector_parse(const char *text, DgSelector *selector)
{
	StringInfoData equals;
	const char *p = text;

	memset(selector, 0, sizeof(*selector));
	initStringInfo(&equals);
	appendStringInfoChar(&equals, '{');
	while (text != NULL)
	{
		const char *end = strchr(p, ',');
		char	   *req = trimmed(p, end ? end : p + strlen(p));
		char	   *op;

		if (req[0] == '\0')
		{
			/* an empty selector selects everything; empty parts are mistakes */
			if (end != NULL || p != text)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid label selector \"%s\": empty requirement", text)));
		}
		else if ((op = strstr(req, "!=")) != NULL)
		{
			char	   *key = trimmed(req, op);
			char	   *value = trimmed(op + 2, req + strlen(req));
			StringInfoData pair;

			check_key(text, key);
			if (strpbrk(value, "=!") != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid label selector \"%s\": value \"%s\" contains \"=\" or \"!\"",
								text, value)));
			initStringInfo(&pair);
			appendStringInfoChar(&pair, '{');
			append_pair(&pair, key, value);
			appendStringInfoChar(&pair, '}');
			selector->differs = lappend(selector->differs, pair.data);
		}
		else if ((op = strchr(req, '=')) != NULL)
		{
			char	   *key = trimmed(req, op);
			const char *vstart = op[1] == '=' ? op + 2 : op + 1;
			char	   *value = trimmed(vstart, req + strlen(req));

			check_key(text, key);
			if (strpbrk(value, "=!") != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid label selector \"%s\": value \"%s\" contains \"=\" or \"!\"",
								text, value)));
			append_pair(&equals, key, value);
		}
		else if (req[0] == '!')
		{
			char	   *key = trimmed(req + 1, req + strlen(req));

			check_key(text, key);
			selector->absent = lappend(selector->absent, key);
		}
		else
		{
			check_key(text, req);
			selector->exists = lappend(selector->exists, req);
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	appendStringInfoChar(&equals, '}');
	selector->equals = equals.data;
}
