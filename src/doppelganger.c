/*-------------------------------------------------------------------------
 *
 * doppelganger.c
 *		Module entry: settings, shared memory and worker registration.
 *
 * The SQL API works whether or not the library is preloaded; the background
 * workers exist only when it is in shared_preload_libraries.
 *
 * src/doppelganger.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "doppelganger.h"

PG_MODULE_MAGIC;

char	   *dg_database = NULL;

void		_PG_init(void);

void
_PG_init(void)
{
	if (IsBinaryUpgrade)
		return;

	DefineCustomStringVariable("doppelganger.database",
							   "Database the background workers connect to.",
							   "It must have the doppelganger extension installed.",
							   &dg_database,
							   "postgres",
							   PGC_POSTMASTER,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	MarkGUCPrefixReserved("doppelganger");
}
