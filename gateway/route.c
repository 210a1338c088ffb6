/*
 * route.c: which endpoint a request path names.  {thing} may contain "/",
 * so suffixes such as /reportedStates are matched from the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"

static char *
strndup_or_null(const char *s, size_t n)
{
	char	   *r = malloc(n + 1);

	if (r)
	{
		memcpy(r, s, n);
		r[n] = '\0';
	}
	return r;
}

static bool
ends_with(const char *s, size_t len, const char *suffix, size_t *rest)
{
	size_t		n = strlen(suffix);

	if (len <= n || memcmp(s + len - n, suffix, n) != 0)
		return false;
	*rest = len - n;
	return true;
}

/*
 * The path after the prefix: {app}/things/{thing}[/suffix].  {thing} may
 * contain "/", so suffixes are matched from the end.
 */
bool
gw_route(const char *uri, Route *r)
{
	const char *p,
			   *slash,
			   *t;
	size_t		len,
				rest;
	const char *kw;

	memset(r, 0, sizeof(*r));
	if (strncmp(uri, GW_API, strlen(GW_API)) != 0)
		return false;
	p = uri + strlen(GW_API);
	if (*p == '\0' || strcmp(p, "/") == 0)
	{
		r->endpoint = EP_ROOT;
		return true;
	}
	if (*p++ != '/' || !(slash = strchr(p, '/')) || slash == p ||
		(size_t) (slash - p) >= sizeof(r->application))
		return false;
	memcpy(r->application, p, slash - p);
	r->application[slash - p] = '\0';
	p = slash;
	if (strcmp(p, "/notifications") == 0)
	{
		r->endpoint = EP_NOTIFICATIONS;
		return true;
	}
	if (strcmp(p, "/things") == 0 || strcmp(p, "/things/") == 0)
	{
		r->endpoint = EP_LIST;
		return true;
	}
	if (strncmp(p, "/things/", 8) != 0 || p[8] == '\0')
		return false;
	t = p + 8;
	len = strlen(t);

	if (ends_with(t, len, "/notifications", &rest))
		r->endpoint = EP_NOTIFICATIONS;
	else if (ends_with(t, len, "/events", &rest))
		r->endpoint = EP_EVENTS;
	else if (ends_with(t, len, "/reportedStates", &rest))
		r->endpoint = EP_REPORTED;
	else if (ends_with(t, len, "/reconciliations", &rest))
		r->endpoint = EP_RECONCILIATIONS;
	else if (ends_with(t, len, "/annotations", &rest))
		r->endpoint = EP_ANNOTATIONS;
	else if (ends_with(t, len, "/labels", &rest))
		r->endpoint = EP_LABELS;
	else
	{
		/* …/{thing}/syntheticStates/{name}, …/desiredStates/{name}[/value] */
		const char *end = t + len;
		bool		value = false;

		if (ends_with(t, len, "/value", &rest))
		{
			value = true;
			end = t + rest;
		}
		for (int k = 0; k < 2; k++)
		{
			const char *q;

			kw = k == 0 ? "/desiredStates/" : "/syntheticStates/";
			if (k == 1 && value)
				break;
			for (q = end - 1; q > t; q--)
				if (*q == '/')
					break;
			if (q <= t || (size_t) (q - t) + 1 < strlen(kw) ||
				strncmp(q - strlen(kw) + 1, kw, strlen(kw)) != 0 || q + 1 >= end)
				continue;
			r->endpoint = k == 0 ? (value ? EP_DESIRED_VALUE : EP_DESIRED) : EP_SYNTHETIC;
			r->feature = strndup_or_null(q + 1, end - q - 1);
			rest = (q - strlen(kw) + 1) - t;
			break;
		}
		if (r->endpoint == EP_NONE)
		{
			/* a plain thing, unless it looks like a feature's path gone wrong */
			if (strstr(t, "/desiredStates/") || strstr(t, "/syntheticStates/"))
				return false;
			rest = len;
			r->endpoint = EP_THING;
		}
	}
	if (rest == 0)
	{
		free(r->feature);
		r->feature = NULL;
		r->endpoint = EP_NONE;
		return false;
	}
	r->thing = strndup_or_null(t, rest);
	return true;
}

void
gw_route_free(Route *r)
{
	free(r->thing);
	free(r->feature);
}

int
gw_notifications_route(const char *uri, char *application, size_t app_size,
					   char **thing, bool *sse)
{
	Route		r;

	if (!gw_route(uri, &r) || (r.endpoint != EP_NOTIFICATIONS && r.endpoint != EP_EVENTS))
	{
		gw_route_free(&r);
		return -1;
	}
	snprintf(application, app_size, "%s", r.application);
	*thing = r.thing;
	*sse = r.endpoint == EP_EVENTS;
	free(r.feature);
	return 0;
}

