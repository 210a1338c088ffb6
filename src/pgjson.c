/*-------------------------------------------------------------------------
 *
 * pgjson.c
 *		Conversions between JSON text and PostgreSQL's jsonb.
 *
 * The pure layer speaks json-c and the database speaks jsonb; they meet
 * here as text, in a file that sees no json-c (see doppelganger.h).
 *
 * src/pgjson.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "doppelganger.h"

Datum
dg_jsonb_from_text(const char *text)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(text));
}

char *
dg_jsonb_to_text(Jsonb *jsonb)
{
	return JsonbToCString(NULL, &jsonb->root, VARSIZE(jsonb));
}
