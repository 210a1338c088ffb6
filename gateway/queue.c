/*
 * queue.c: messages shared by every client they go to (one allocation per
 * change, however many subscribers), and each client's bounded queue of
 * them: a client that does not read loses messages, never the server's
 * memory.
 */
#include <stdlib.h>
#include <string.h>

#include "gw.h"

GwMsg *
gw_msg_new(const char *parts[], int nparts)
{
	GwMsg	   *msg = malloc(sizeof(GwMsg));
	size_t		len = 0;
	unsigned char *p;

	if (!msg)
		return NULL;
	for (int i = 0; i < nparts; i++)
		len += strlen(parts[i]);
	msg->data = malloc(LWS_PRE + len + 1);
	if (!msg->data)
	{
		free(msg);
		return NULL;
	}
	p = msg->data + LWS_PRE;
	for (int i = 0; i < nparts; i++)
	{
		size_t		n = strlen(parts[i]);

		memcpy(p, parts[i], n);
		p += n;
	}
	*p = '\0';
	msg->len = len;
	msg->refs = 1;
	return msg;
}

GwMsg *
gw_msg_ref(GwMsg *msg)
{
	msg->refs++;
	return msg;
}

void
gw_msg_unref(GwMsg *msg)
{
	if (msg && --msg->refs == 0)
	{
		free(msg->data);
		free(msg);
	}
}

void
gw_queue_init(GwQueue *q, int capacity)
{
	q->items = calloc(capacity, sizeof(GwMsg *));
	q->capacity = q->items ? capacity : 0;
	q->head = 0;
	q->count = 0;
	q->dropped = 0;
}

/* takes a reference when queued; false (and counted) when full */
bool
gw_queue_push(GwQueue *q, GwMsg *msg)
{
	if (q->count >= q->capacity)
	{
		q->dropped++;
		return false;
	}
	q->items[(q->head + q->count) % q->capacity] = gw_msg_ref(msg);
	q->count++;
	return true;
}

GwMsg *
gw_queue_peek(GwQueue *q)
{
	return q->count ? q->items[q->head] : NULL;
}

void
gw_queue_pop(GwQueue *q)
{
	if (!q->count)
		return;
	gw_msg_unref(q->items[q->head]);
	q->head = (q->head + 1) % q->capacity;
	q->count--;
}

void
gw_queue_free(GwQueue *q)
{
	while (q->count)
		gw_queue_pop(q);
	free(q->items);
	q->items = NULL;
	q->capacity = 0;
}
