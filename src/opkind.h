/*-------------------------------------------------------------------------
 *
 * opkind.h
 *		The kinds of operation on a thing, shared by the pure layer and the
 *		SQL-callable edge (which must not see json-c, see service.h).
 *
 * src/opkind.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef DG_OPKIND_H
#define DG_OPKIND_H

typedef enum DgOpKind
{
	/* messages, from Kafka or dt_process_event */
	DG_OP_REPORT_STATE,
	DG_OP_MERGE,
	DG_OP_PATCH,
	DG_OP_SET_DESIRED_VALUES,
	DG_OP_WAKEUP,
	DG_OP_REGISTER_CHILD,
	DG_OP_UNREGISTER_CHILD,
	/* the SQL API's own */
	DG_OP_REPLACE,
	DG_OP_ANNOTATIONS,
	DG_OP_LABELS,
	DG_OP_SYNTHETIC_PUT,
	DG_OP_SYNTHETIC_DELETE,
	DG_OP_DESIRED_PUT,
	DG_OP_RECONCILIATION_PUT
} DgOpKind;

#endif							/* DG_OPKIND_H */
