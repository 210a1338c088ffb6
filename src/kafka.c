/*-------------------------------------------------------------------------
 *
 * kafka.c
 *		The only file that includes rdkafka.h: configuration from the
 *		settings, the consumer with its rebalance handling, log and error
 *		routing.
 *
 * librdkafka runs threads of its own.  Handles are created only inside a
 * background worker, and everything librdkafka wants to tell us (logs,
 * errors, rebalances) is queued and served by rd_kafka_consumer_poll on
 * the worker's thread, where elog is safe.  Callbacks never ereport
 * ERROR: a longjmp out of librdkafka would leave it inconsistent, so
 * failures are turned into flags that the caller checks after the poll.
 *
 * Offsets are not committed to Kafka for correctness: the processor stores
 * them in PostgreSQL with the state they produced.  The commits made here
 * are for monitoring tools only.
 *
 * src/kafka.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "kafka.h"

struct DgConsumer
{
	rd_kafka_t *rk;
	DgAssignFn	assign;
	DgRevokeFn	revoke;
	void	   *arg;
	/* partitions revoked during the current poll, to drop their records */
	List	   *revoked;		/* of DgTopicPartition * */
	bool		failed;
	char		why[256];
	bool		brokers_down;
};

static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	/* syslog levels: 0-3 are errors, 4 warnings, the rest noise */
	ereport(level <= 4 ? LOG : DEBUG1,
			(errmsg_internal("librdkafka %s: %s", fac, buf)));
}

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	DgConsumer *c = (DgConsumer *) opaque;

	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
	{
		/* log the change of state once, not every retry */
		if (!c->brokers_down)
			ereport(LOG,
					(errmsg("doppelganger: all Kafka brokers are unreachable, waiting for them"),
					 errdetail("%s", reason)));
		c->brokers_down = true;
		return;
	}
	if (err == RD_KAFKA_RESP_ERR__FATAL)
	{
		char		buf[256];

		rd_kafka_fatal_error(rk, buf, sizeof(buf));
		c->failed = true;
		snprintf(c->why, sizeof(c->why), "fatal Kafka error: %s", buf);
		return;
	}
	ereport(DEBUG1, (errmsg_internal("librdkafka error: %s: %s", rd_kafka_err2str(err), reason)));
}

static DgTopicPartition *
to_parts(rd_kafka_topic_partition_list_t *list)
{
	DgTopicPartition *parts = palloc0(sizeof(DgTopicPartition) * (list->cnt + 1));

	for (int i = 0; i < list->cnt; i++)
	{
		parts[i].topic = pstrdup(list->elems[i].topic);
		parts[i].partition = list->elems[i].partition;
		parts[i].offset = -1;
	}
	return parts;
}

/*
 * Rebalances: on assignment, start each partition where the stored offset
 * says; on revocation, drop what was polled for it and not yet applied.
 * The next owner starts from the stored offset, so nothing is lost and
 * nothing applied twice.
 */
static void
rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *list, void *opaque)
{
	DgConsumer *c = (DgConsumer *) opaque;
	DgTopicPartition *parts = to_parts(list);

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
	{
		if (!c->assign(c->arg, parts, list->cnt))
		{
			c->failed = true;
			snprintf(c->why, sizeof(c->why), "could not read the stored offsets");
			rd_kafka_assign(rk, NULL);
			return;
		}
		for (int i = 0; i < list->cnt; i++)
			list->elems[i].offset = parts[i].offset >= 0 ? parts[i].offset : RD_KAFKA_OFFSET_BEGINNING;
		rd_kafka_assign(rk, list);
		ereport(LOG,
				(errmsg("doppelganger: assigned %d partition(s) of the events topic", list->cnt)));
	}
	else
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		for (int i = 0; i < list->cnt; i++)
		{
			DgTopicPartition *p = palloc(sizeof(DgTopicPartition));

			p->topic = pstrdup(parts[i].topic);
			p->partition = parts[i].partition;
			c->revoked = lappend(c->revoked, p);
		}
		MemoryContextSwitchTo(old);
		c->revoke(c->arg, parts, list->cnt);
		rd_kafka_assign(rk, NULL);
	}
}

static void
set_conf(rd_kafka_conf_t *conf, const char *key, const char *value)
{
	char		errstr[512];

	if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid Kafka setting %s: %s", key, errstr)));
	}
}

/* doppelganger.kafka_properties: key=value pairs separated by semicolons. */
static void
set_properties(rd_kafka_conf_t *conf, const char *properties)
{
	char	   *copy = pstrdup(properties);
	char	   *save = NULL;

	for (char *item = strtok_r(copy, ";", &save); item; item = strtok_r(NULL, ";", &save))
	{
		char	   *eq = strchr(item, '=');
		char	   *key = item;

		while (*key == ' ')
			key++;
		if (*key == '\0')
			continue;
		if (eq == NULL)
		{
			rd_kafka_conf_destroy(conf);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid entry \"%s\" in doppelganger.kafka_properties", item),
					 errhint("Write key=value pairs separated by semicolons.")));
		}
		*eq = '\0';
		set_conf(conf, key, eq + 1);
	}
	pfree(copy);
}

DgConsumer *
dg_consumer_create(const char *client_id, const char *group, const char *topics,
				   DgAssignFn assign, DgRevokeFn revoke, void *arg)
{
	DgConsumer *c = MemoryContextAllocZero(TopMemoryContext, sizeof(DgConsumer));
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *subscription;
	char		errstr[512];
	char	   *copy;
	char	   *save = NULL;
	rd_kafka_resp_err_t err;

	c->assign = assign;
	c->revoke = revoke;
	c->arg = arg;
	set_conf(conf, "bootstrap.servers", dg_kafka_brokers);
	set_conf(conf, "client.id", client_id);
	set_conf(conf, "group.id", group);
	set_conf(conf, "enable.auto.commit", "false");
	set_conf(conf, "enable.auto.offset.store", "false");
	set_conf(conf, "auto.offset.reset", "earliest");
	set_conf(conf, "enable.partition.eof", "false");
	set_conf(conf, "log.queue", "true");
	/* a crashed worker's partitions move after 10 s, not librdkafka's 45 */
	set_conf(conf, "session.timeout.ms", "10000");
	set_conf(conf, "heartbeat.interval.ms", "1000");
	set_properties(conf, dg_kafka_properties);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	rd_kafka_conf_set_opaque(conf, c);

	c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (c->rk == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not create a Kafka consumer: %s", errstr)));
	/* logs and errors are served by the consumer poll, on this thread */
	rd_kafka_set_log_queue(c->rk, NULL);
	rd_kafka_poll_set_consumer(c->rk);

	subscription = rd_kafka_topic_partition_list_new(4);
	copy = pstrdup(topics);
	for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
		rd_kafka_topic_partition_list_add(subscription, t, RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(c->rk, subscription);
	rd_kafka_topic_partition_list_destroy(subscription);
	pfree(copy);
	if (err)
	{
		rd_kafka_destroy(c->rk);
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not subscribe to the events topic: %s", rd_kafka_err2str(err))));
	}
	return c;
}

static bool
is_revoked(DgConsumer *c, const char *topic, int32 partition)
{
	ListCell   *lc;

	foreach(lc, c->revoked)
	{
		DgTopicPartition *p = lfirst(lc);

		if (p->partition == partition && strcmp(p->topic, topic) == 0)
			return true;
	}
	return false;
}

static void
copy_record(rd_kafka_message_t *m, DgKafkaRecord *r)
{
	rd_kafka_headers_t *hdrs = NULL;
	rd_kafka_timestamp_type_t tstype;

	r->topic = pstrdup(rd_kafka_topic_name(m->rkt));
	r->partition = m->partition;
	r->offset = m->offset;
	r->timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
	r->key = m->key ? pnstrdup(m->key, m->key_len) : NULL;
	r->key_len = m->key_len;
	r->payload = NULL;
	r->len = m->len;
	if (m->payload)
	{
		r->payload = palloc(m->len + 1);
		memcpy(r->payload, m->payload, m->len);
		r->payload[m->len] = '\0';
	}
	r->nheaders = 0;
	r->headers = NULL;
	if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		size_t		n = rd_kafka_header_cnt(hdrs);

		r->headers = palloc0(sizeof(DgKafkaHeader) * (n + 1));
		for (size_t i = 0; i < n; i++)
		{
			const char *name;
			const void *value;
			size_t		size;

			if (rd_kafka_header_get_all(hdrs, i, &name, &value, &size))
				break;
			r->headers[i].name = pstrdup(name);
			r->headers[i].value = value ? pnstrdup(value, size) : NULL;
			r->headers[i].len = size;
			r->nheaders++;
		}
	}
}

int
dg_consumer_poll(DgConsumer *c, DgKafkaRecord *records, int max, int wait_ms,
				 int batch_ms, MemoryContext cxt)
{
	int			n = 0;
	TimestampTz deadline = 0;
	MemoryContext old;

	list_free_deep(c->revoked);
	c->revoked = NIL;
	old = MemoryContextSwitchTo(cxt);
	while (n < max && !c->failed)
	{
		int			timeout = wait_ms;
		rd_kafka_message_t *m;

		if (n > 0)
		{
			long		secs;
			int			usecs;

			TimestampDifference(GetCurrentTimestamp(), deadline, &secs, &usecs);
			timeout = (int) (secs * 1000 + usecs / 1000);
			if (timeout <= 0)
				break;
		}
		m = rd_kafka_consumer_poll(c->rk, timeout);
		if (m == NULL)
			break;
		if (m->err)
		{
			if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				ereport(DEBUG1,
						(errmsg_internal("Kafka consumer: %s", rd_kafka_message_errstr(m))));
			rd_kafka_message_destroy(m);
			continue;
		}
		if (c->brokers_down)
		{
			ereport(LOG, (errmsg("doppelganger: Kafka brokers are reachable again")));
			c->brokers_down = false;
		}
		copy_record(m, &records[n++]);
		rd_kafka_message_destroy(m);
		if (n == 1)
			deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), batch_ms);
	}
	MemoryContextSwitchTo(old);

	/* drop records of partitions that went to another consumer meanwhile */
	if (c->revoked != NIL)
	{
		int			kept = 0;

		for (int i = 0; i < n; i++)
			if (!is_revoked(c, records[i].topic, records[i].partition))
				records[kept++] = records[i];
		n = kept;
	}
	return n;
}

void
dg_consumer_seek(DgConsumer *c, const char *topic, int32 partition, int64 offset)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
	rd_kafka_error_t *error;

	rd_kafka_topic_partition_list_add(list, topic, partition)->offset =
		offset >= 0 ? offset : RD_KAFKA_OFFSET_BEGINNING;
	error = rd_kafka_seek_partitions(c->rk, list, 5000);
	rd_kafka_topic_partition_list_destroy(list);
	if (error)
	{
		c->failed = true;
		snprintf(c->why, sizeof(c->why), "could not seek %s [%d]: %s", topic, partition,
				 rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	}
}

void
dg_consumer_commit(DgConsumer *c, DgTopicPartition *parts, int n)
{
	rd_kafka_topic_partition_list_t *list;

	if (n == 0)
		return;
	list = rd_kafka_topic_partition_list_new(n);
	for (int i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(list, parts[i].topic, parts[i].partition)->offset =
			parts[i].offset;
	/* asynchronous and best effort: only monitoring reads these */
	rd_kafka_commit(c->rk, list, 1);
	rd_kafka_topic_partition_list_destroy(list);
}

int
dg_consumer_stats(DgConsumer *c, DgPartitionStat *out, int max)
{
	rd_kafka_topic_partition_list_t *list = NULL;
	int			n = 0;

	if (rd_kafka_assignment(c->rk, &list) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return 0;
	rd_kafka_position(c->rk, list);
	for (int i = 0; i < list->cnt && n < max; i++)
	{
		int64_t		low,
					high;
		DgPartitionStat *p = &out[n++];

		strlcpy(p->topic, list->elems[i].topic, sizeof(p->topic));
		p->partition = list->elems[i].partition;
		p->position = list->elems[i].offset >= 0 ? list->elems[i].offset : -1;
		/* cached from fetch responses: no round trip */
		if (rd_kafka_get_watermark_offsets(c->rk, list->elems[i].topic, list->elems[i].partition,
										   &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
			p->high_watermark = high;
		else
			p->high_watermark = -1;
	}
	rd_kafka_topic_partition_list_destroy(list);
	return n;
}

bool
dg_consumer_failed(DgConsumer *c, char *why, size_t len)
{
	if (c->failed)
		strlcpy(why, c->why, len);
	return c->failed;
}

void
dg_consumer_close(DgConsumer *c)
{
	/* leaves the group at once, so the partitions move without waiting */
	rd_kafka_consumer_close(c->rk);
	rd_kafka_destroy(c->rk);
	list_free_deep(c->revoked);
	pfree(c);
}

/* ---- the producer (the relay's) ---- */

typedef struct Delivery
{
	int64		id;
	bool		ok;
} Delivery;

struct DgProducer
{
	rd_kafka_t *rk;
	Delivery   *deliveries;		/* filled by delivery reports */
	int			ndeliveries;
	int			capacity;
	bool		brokers_down;
	bool		failed;
	char		why[256];
	int			nfailed;		/* failed deliveries since the last flush */
	rd_kafka_resp_err_t first_error;
};

static void
delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	DgProducer *p = (DgProducer *) opaque;

	if (p->ndeliveries == p->capacity)
		return;					/* cannot happen: the relay sends at most capacity */
	p->deliveries[p->ndeliveries].id = (int64) (intptr_t) m->_private;
	p->deliveries[p->ndeliveries].ok = m->err == RD_KAFKA_RESP_ERR_NO_ERROR;
	p->ndeliveries++;
	if (m->err && p->nfailed++ == 0)
		p->first_error = m->err;
}

static void
producer_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	DgProducer *p = (DgProducer *) opaque;

	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
	{
		if (!p->brokers_down)
			ereport(LOG,
					(errmsg("doppelganger relay: all Kafka brokers are unreachable, waiting for them"),
					 errdetail("%s", reason)));
		p->brokers_down = true;
		return;
	}
	if (err == RD_KAFKA_RESP_ERR__FATAL)
	{
		char		buf[256];

		rd_kafka_fatal_error(rk, buf, sizeof(buf));
		p->failed = true;
		snprintf(p->why, sizeof(p->why), "fatal Kafka error: %s", buf);
	}
}

DgProducer *
dg_producer_create(const char *client_id, int capacity)
{
	DgProducer *p = MemoryContextAllocZero(TopMemoryContext, sizeof(DgProducer));
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char		errstr[512];

	p->capacity = capacity;
	p->deliveries = MemoryContextAlloc(TopMemoryContext, sizeof(Delivery) * capacity);
	set_conf(conf, "bootstrap.servers", dg_kafka_brokers);
	set_conf(conf, "client.id", client_id);
	/* the order of one thing's events is the order of the outbox */
	set_conf(conf, "enable.idempotence", "true");
	set_conf(conf, "linger.ms", "5");
	set_conf(conf, "log.queue", "true");

	/*
	 * The relay waits for every record's report before it reads the outbox
	 * again, so that a record still in flight is never sent twice; this
	 * bounds that wait during an outage.
	 */
	set_conf(conf, "message.timeout.ms", "30000");
	set_properties(conf, dg_kafka_properties);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, producer_error_cb);
	rd_kafka_conf_set_dr_msg_cb(conf, delivery_cb);
	rd_kafka_conf_set_opaque(conf, p);
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (p->rk == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not create a Kafka producer: %s", errstr)));
	rd_kafka_set_log_queue(p->rk, NULL);
	return p;
}

/* Queue one record; its delivery is reported under "id". */
bool
dg_producer_send(DgProducer *p, const char *topic, const char *key, size_t key_len,
				 const char *value, size_t len, DgKafkaHeader *headers, int nheaders, int64 id)
{
	rd_kafka_headers_t *hdrs = rd_kafka_headers_new(nheaders);
	rd_kafka_resp_err_t err;

	for (int i = 0; i < nheaders; i++)
		rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value,
							headers[i].value ? (ssize_t) headers[i].len : 0);
	for (;;)
	{
		err = rd_kafka_producev(p->rk,
								RD_KAFKA_V_TOPIC(topic),
								RD_KAFKA_V_KEY(key, key_len),
								RD_KAFKA_V_VALUE((void *) value, len),
								RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
								RD_KAFKA_V_HEADERS(hdrs),
								RD_KAFKA_V_OPAQUE((void *) (intptr_t) id),
								RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		/* the queue drains as deliveries come back */
		rd_kafka_poll(p->rk, 100);
		CHECK_FOR_INTERRUPTS();
	}
	if (err)
	{
		rd_kafka_headers_destroy(hdrs);
		ereport(LOG, (errmsg("doppelganger relay: could not queue a record for %s: %s", topic,
							 rd_kafka_err2str(err))));
		return false;
	}
	return true;
}

/*
 * Wait until every queued record has been reported, delivered or failed
 * (message.timeout.ms bounds this), and return the reports in delivery
 * order.  Returning earlier would let the caller send a record again while
 * its first copy may still arrive.  Interrupts are served meanwhile; on
 * shutdown the records not yet reported stay in the outbox and may arrive
 * twice, the one case of at-least-once delivery.
 */
int
dg_producer_flush(DgProducer *p, int64 **ids, bool **oks)
{
	int64	   *id = palloc(sizeof(int64) * (p->capacity + 1));
	bool	   *ok = palloc(sizeof(bool) * (p->capacity + 1));
	int			n;

	while (rd_kafka_flush(p->rk, 1000) == RD_KAFKA_RESP_ERR__TIMED_OUT)
	{
		CHECK_FOR_INTERRUPTS();
		if (ShutdownRequestPending)
			break;
	}
	rd_kafka_poll(p->rk, 0);
	n = p->ndeliveries;
	for (int i = 0; i < n; i++)
	{
		id[i] = p->deliveries[i].id;
		ok[i] = p->deliveries[i].ok;
	}
	if (p->nfailed > 0)
		ereport(LOG,
				(errmsg("doppelganger relay: %d of %d records were not delivered: %s",
						p->nfailed, n, rd_kafka_err2str(p->first_error)),
				 errdetail("They stay in the outbox and are sent again.")));
	else if (n > 0 && p->brokers_down)
	{
		ereport(LOG, (errmsg("doppelganger relay: Kafka brokers are reachable again")));
		p->brokers_down = false;
	}
	p->ndeliveries = 0;
	p->nfailed = 0;
	*ids = id;
	*oks = ok;
	return n;
}

bool
dg_producer_failed(DgProducer *p, char *why, size_t len)
{
	if (p->failed)
		strlcpy(why, p->why, len);
	return p->failed;
}

void
dg_producer_close(DgProducer *p)
{
	rd_kafka_flush(p->rk, 5000);
	rd_kafka_destroy(p->rk);
}
