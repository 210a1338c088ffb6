/*
 * auth.c: the caller of a request.  With a key, a JWT (HS256 or RS256, as
 * PostgREST takes them) names the database role; without one, only
 * loopback clients are served, as the gateway's own login role.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jwt.h>

#include "gw.h"

bool
gw_auth_configured(void)
{
	return gw_config.jwt_secret != NULL || gw_config.jwt_key != NULL;
}

static bool
is_loopback(struct lws *wsi)
{
	char		peer[64];

	if (!lws_get_peer_simple(wsi, peer, sizeof(peer)))
		return false;
	return strncmp(peer, "127.", 4) == 0 || strcmp(peer, "::1") == 0 ||
		strncmp(peer, "::ffff:127.", 11) == 0;
}

/* the token of Authorization: Bearer, or of ?token= */
static bool
find_token(struct lws *wsi, char *buf, size_t size, bool *other_scheme)
{
	int			n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	bool		too_long;

	*other_scheme = false;
	if (n > 0)
	{
		char	   *h = malloc(n + 1);
		bool		ok = false;

		if (!h)
			return false;
		if (lws_hdr_copy(wsi, h, n + 1, WSI_TOKEN_HTTP_AUTHORIZATION) > 0)
		{
			if (strncasecmp(h, "Bearer ", 7) == 0 && strlen(h + 7) < size)
			{
				strcpy(buf, h + 7);
				ok = true;
			}
			else
				*other_scheme = true;
		}
		free(h);
		return ok;
	}
	if (gw_url_arg(wsi, "token=", buf, (int) size, &too_long))
		return true;
	/* a token too long to read is a bad token, not a missing one */
	*other_scheme = too_long;
	return false;
}

static GwAuthResult
unauthorized(char *message, size_t size, const char *text)
{
	snprintf(message, size, "%s", text);
	return GW_AUTH_UNAUTHORIZED;
}

GwAuthResult
gw_authenticate(struct lws *wsi, GwCaller *caller, char *message, size_t size)
{
	char		token[8192];
	bool		other_scheme;
	jwt_t	   *jwt = NULL;
	const char *role;
	char	   *claims;
	json_object *parsed,
			   *exp;
	int			rc;

	caller->role = NULL;
	caller->claims = NULL;
	if (!gw_auth_configured())
	{
		if (is_loopback(wsi))
			return GW_AUTH_OK;
		snprintf(message, size, "without a token key only loopback clients are served");
		return GW_AUTH_FORBIDDEN;
	}

	if (!find_token(wsi, token, sizeof(token), &other_scheme))
	{
		if (other_scheme)
			return unauthorized(message, size, "only Bearer tokens of at most 8 KiB are accepted");
		if (!gw_config.anon_role)
			return unauthorized(message, size, "a token is required");
		caller->role = strdup(gw_config.anon_role);
		return GW_AUTH_OK;
	}

	if (gw_config.jwt_secret)
		rc = jwt_decode(&jwt, token, (const unsigned char *) gw_config.jwt_secret,
						(int) strlen(gw_config.jwt_secret));
	else
		rc = jwt_decode(&jwt, token, (const unsigned char *) gw_config.jwt_key,
						(int) strlen(gw_config.jwt_key));
	if (rc != 0 || !jwt)
		return unauthorized(message, size, "the token is invalid or not signed with the configured key");

	/* the algorithm is the key's, never the token's choice */
	if (jwt_get_alg(jwt) != (gw_config.jwt_secret ? JWT_ALG_HS256 : JWT_ALG_RS256))
	{
		jwt_free(jwt);
		return unauthorized(message, size, "the token is not signed with the configured algorithm");
	}
	/* exp is a NumericDate: seconds, possibly with a fraction */
	claims = jwt_get_grants_json(jwt, NULL);
	parsed = claims ? json_tokener_parse(claims) : NULL;
	if (!parsed || !json_object_is_type(parsed, json_type_object))
	{
		json_object_put(parsed);
		free(claims);
		jwt_free(jwt);
		return unauthorized(message, size, "the token's claims are not a JSON object");
	}
	if (json_object_object_get_ex(parsed, "exp", &exp) &&
		(!(json_object_is_type(exp, json_type_int) || json_object_is_type(exp, json_type_double)) ||
		 json_object_get_double(exp) <= (double) time(NULL)))
	{
		json_object_put(parsed);
		free(claims);
		jwt_free(jwt);
		return unauthorized(message, size, "the token has expired");
	}
	json_object_put(parsed);
	role = jwt_get_grant(jwt, gw_config.role_claim);
	if (!role && !gw_config.anon_role)
	{
		free(claims);
		jwt_free(jwt);
		snprintf(message, size, "the token has no \"%s\" claim", gw_config.role_claim);
		return GW_AUTH_UNAUTHORIZED;
	}
	/* "none" would mean the gateway's own login role */
	if (strcmp(role ? role : gw_config.anon_role, "none") == 0)
	{
		free(claims);
		jwt_free(jwt);
		return unauthorized(message, size, "the role \"none\" cannot be taken");
	}
	caller->role = strdup(role ? role : gw_config.anon_role);
	caller->claims = claims;
	jwt_free(jwt);
	return GW_AUTH_OK;
}

void
gw_caller_free(GwCaller *caller)
{
	free(caller->role);
	free(caller->claims);
	caller->role = NULL;
	caller->claims = NULL;
}
