/*-------------------------------------------------------------------------
 *
 * pgbuiltins.h
 *		utils/builtins.h for files that also use json-c.
 *
 * builtins.h (through fmgrprotos.h) declares the SQL function json_object(),
 * and json-c names its type json_object.  Including builtins.h with the
 * function renamed lets one file use both; nothing here calls that
 * function.
 *
 * src/pgbuiltins.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef DG_PGBUILTINS_H
#define DG_PGBUILTINS_H

#define json_object pg_json_object_sql_function
#include "utils/builtins.h"
#undef json_object

#endif							/* DG_PGBUILTINS_H */
