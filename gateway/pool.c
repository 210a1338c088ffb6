/*
 * pool.c: REST calls run on a few threads with a database connection
 * each, so that a slow call (one waiting for a row lock, say) holds up
 * neither the other requests nor the WebSocket and SSE clients.
 *
 * Only strings and PGresults cross threads.  A finished job goes back to
 * the event loop through lws_cancel_service, whose
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED calls gw_pool_collect; the session a
 * job answers is only ever touched there, on the loop's thread.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;
static GwJob *pending_head,
		   *pending_tail;
static GwJob *done_head,
		   *done_tail;
static bool stopping;
static pthread_t *threads;
static int	nthreads;
static struct lws_context *pool_context;

static void
append(GwJob **head, GwJob **tail, GwJob *job)
{
	job->next = NULL;
	if (*tail)
		(*tail)->next = job;
	else
		*head = job;
	*tail = job;
}

static void *
worker(void *arg)
{
	GwConn	   *conn = gw_conn_new();

	(void) arg;
	pthread_mutex_lock(&lock);
	for (;;)
	{
		GwJob	   *job;

		while (!pending_head && !stopping)
			pthread_cond_wait(&work, &lock);
		if (stopping)
			break;
		job = pending_head;
		pending_head = job->next;
		if (!pending_head)
			pending_tail = NULL;
		pthread_mutex_unlock(&lock);

		job->res = conn ? gw_db_call_on(conn, &job->caller, job->sql, job->nparams,
										(const char *const *) job->params, job->read_only, &job->err)
			: NULL;
		if (!conn)
			job->err.http_status = 503;

		pthread_mutex_lock(&lock);
		append(&done_head, &done_tail, job);
		pthread_mutex_unlock(&lock);
		lws_cancel_service(pool_context);
		pthread_mutex_lock(&lock);
	}
	pthread_mutex_unlock(&lock);
	gw_conn_free(conn);
	return NULL;
}

bool
gw_pool_start(struct lws_context *context, int n)
{
	pool_context = context;
	threads = calloc(n, sizeof(pthread_t));
	if (!threads)
		return false;
	for (nthreads = 0; nthreads < n; nthreads++)
		if (pthread_create(&threads[nthreads], NULL, worker, NULL) != 0)
			return false;
	return true;
}

GwJob *
gw_job_new(const GwCaller *caller, const char *sql, int nparams, const char *const *params,
		   bool read_only)
{
	GwJob	   *job = calloc(1, sizeof(GwJob));

	if (!job)
		return NULL;
	job->sql = sql;
	job->nparams = nparams;
	job->read_only = read_only;
	job->caller.role = caller->role ? strdup(caller->role) : NULL;
	job->caller.claims = caller->claims ? strdup(caller->claims) : NULL;
	for (int i = 0; i < nparams; i++)
		job->params[i] = params[i] ? strdup(params[i]) : NULL;
	return job;
}

void
gw_job_free(GwJob *job)
{
	if (!job)
		return;
	PQclear(job->res);
	gw_caller_free(&job->caller);
	for (int i = 0; i < job->nparams; i++)
		free(job->params[i]);
	free(job->label);
	free(job);
}

void
gw_pool_submit(GwJob *job)
{
	pthread_mutex_lock(&lock);
	append(&pending_head, &pending_tail, job);
	pthread_cond_signal(&work);
	pthread_mutex_unlock(&lock);
}

/* on the loop's thread: answer what is done */
void
gw_pool_collect(void)
{
	GwJob	   *job;

	pthread_mutex_lock(&lock);
	job = done_head;
	done_head = done_tail = NULL;
	pthread_mutex_unlock(&lock);
	while (job)
	{
		GwJob	   *next = job->next;

		if (job->session)
			gw_http_job_done(job);
		else if (!job->res && job->label)
			lwsl_warn("%s: %s\n", job->label, job->err.message);
		gw_job_free(job);
		job = next;
	}
}

/* the session's connection closed: its answer goes nowhere */
void
gw_pool_forget(GwSession *s)
{
	if (s->job)
		s->job->session = NULL;
	s->job = NULL;
}

void
gw_pool_stop(void)
{
	GwJob	   *lists[2];

	pthread_mutex_lock(&lock);
	stopping = true;
	pthread_cond_broadcast(&work);
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	free(threads);
	threads = NULL;
	nthreads = 0;

	lists[0] = pending_head;
	lists[1] = done_head;
	pending_head = pending_tail = done_head = done_tail = NULL;
	for (int k = 0; k < 2; k++)
		while (lists[k])
		{
			GwJob	   *next = lists[k]->next;

			if (lists[k]->session)
				lists[k]->session->job = NULL;
			gw_job_free(lists[k]);
			lists[k] = next;
		}
}
