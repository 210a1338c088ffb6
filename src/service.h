/*-------------------------------------------------------------------------
 *
 * service.h
 *		The pipeline's building blocks, for the files that see both json-c
 *		and PostgreSQL (the service itself, the processor, the hook runners).
 *
 * src/service.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef DG_SERVICE_H
#define DG_SERVICE_H

#include "dg.h"
#include "doppelganger.h"

/* What the machine's hooks need from the edge (hooks.c). */
typedef struct DgHookRunner
{
	int64		deadline_ns;	/* of the current machine run */
} DgHookRunner;

/*
 * The json-c trees of one thing's processing.  Every tree alive across a
 * call that can ereport must hang from one of these slots: the context's
 * reset callback releases them on any exit.
 */
typedef struct DgWork
{
	MemoryContext cxt;
	MemoryContextCallback callback;
	dg_time		now;
	DgRow	   *row;			/* the row as loaded, NULL if none */
	json_object *stored;		/* the thing as loaded (or as created) */
	json_object *thing;			/* the working thing; NULL: no such thing */
	json_object *next;			/* an operation's result in the making */
	json_object *temp;			/* an input being read */
	json_object *temp2;			/* scratch of a step that may raise */
	bool		deleted;		/* the row was deleted */
	DgWriter   *writer;			/* shared by a batch; NULL: one of its own */
	Oid			role;			/* who asks: owner of the code it configures */
	char	   *role_name;
	bool		from_event;		/* an event (Kafka, outbox, waker), not a SQL call */
	int			hops;			/* handovers that led to this event */
	DgHookRunner runner;
	DgMachine	machine;
} DgWork;

extern DgWork *dg_work_begin(dg_time now);
extern void dg_work_end(DgWork *w);
extern bool dg_work_load(DgWork *w, const char *application, const char *name);
extern bool dg_work_apply(DgWork *w, DgOp *op, DgError *err);
extern bool dg_work_create(DgWork *w, DgError *err);
extern bool dg_work_delete(DgWork *w, bool *deleted, DgError *err);
extern bool dg_work_event(DgWork *w, const char *application, const char *name,
						  DgOp *op, DgError *err);
extern bool dg_work_persist(DgWork *w);

extern dg_time dg_now(void);
extern void dg_raise(DgError *err) pg_attribute_noreturn();
extern json_object *dg_row_to_thing(DgRow *row);
extern void dg_thing_to_row(json_object *thing, DgRow *row, json_object *prev, DgRow *prev_row);

/* convert.c */
extern json_object *dg_jsonc_from_jsonb(Jsonb *jb);
extern Jsonb *dg_jsonb_from_jsonc(json_object *obj);
extern bool dg_jsonc_parse_text(const char *text, size_t len, json_object **out, char **error);
extern void dg_notify_change(const char *op, json_object *before, json_object *after);

/* ---- hooks.c ---- */
extern void dg_runner_start(DgHookRunner *r);
extern bool dg_run_hook(void *arg, const DgHookCall *call, json_object **result, DgError *err);
extern bool dg_check_functions(json_object *functions, Oid role, bool from_event, DgError *err);

/* ---- event.c: Kafka records to operations ---- */

typedef enum DgPayloadFormat
{
	DG_FORMAT_MESSAGE,
	DG_FORMAT_SIMPLE_JSON,
	DG_FORMAT_SIMPLE_STATE
} DgPayloadFormat;

typedef struct DgTopicFormat
{
	char	   *topic;
	DgPayloadFormat format;
	bool		partial;
	bool		timestamp;
} DgTopicFormat;

typedef struct DgEvent
{
	char	   *application;
	char	   *name;
	json_object *message;		/* owned */
	DgOp		op;				/* borrows from message */
	int			hops;			/* from the doppelganger-hops header */
} DgEvent;

struct DgKafkaRecord;

extern bool dg_topic_formats_parse(const char *setting, List **formats, char **error);
extern bool dg_event_decode(const struct DgKafkaRecord *rec, List *formats, DgEvent *ev,
							DgError *err);
extern void dg_event_free(DgEvent *ev);

/* ---- outbox.c ---- */
extern void dg_outbox_flush(DgWork *w);
extern void dg_outbox_notification(json_object *thing);
extern void dg_outbox_notify_command(const char *application, const char *device,
									 const char *channel, const char *payload);
extern bool dg_outbox_pending(const char *application, const char *source);

/* ---- deadletter.c ---- */
extern void dg_dead_letter_insert(const struct DgKafkaRecord *rec, const char *application,
								  const char *name, const char *sqlstate, const char *message,
								  const char *detail);
extern const char *dg_error_sqlstate(DgError *err);
extern bool dg_apply_record(DgEvent *ev, DgError *err);

#endif							/* DG_SERVICE_H */
