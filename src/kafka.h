/*-------------------------------------------------------------------------
 *
 * kafka.h
 *		What the workers see of Kafka.  rdkafka.h stays inside kafka.c;
 *		records cross over as palloc'd copies.
 *
 * src/kafka.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef DG_KAFKA_H
#define DG_KAFKA_H

#include "postgres.h"

#include "doppelganger.h"

typedef struct DgKafkaHeader
{
	char	   *name;
	char	   *value;			/* NUL-terminated copy; NULL for a null value */
	size_t		len;
} DgKafkaHeader;

typedef struct DgKafkaRecord
{
	char	   *topic;
	int32		partition;
	int64		offset;
	int64		timestamp_ms;	/* -1 when the record has none */
	char	   *key;			/* NULL when the record has none */
	size_t		key_len;
	char	   *payload;		/* NULL when the record has none */
	size_t		len;
	int			nheaders;
	DgKafkaHeader *headers;
} DgKafkaRecord;

typedef struct DgTopicPartition
{
	char	   *topic;
	int32		partition;
	int64		offset;			/* next offset; -1: from the beginning */
} DgTopicPartition;

/*
 * Rebalance callbacks, called on the worker's own thread from inside
 * dg_consumer_poll (never inside a transaction).  On assignment, fill in
 * each partition's next offset; returning false makes the consumer fail.
 */
typedef bool (*DgAssignFn) (void *arg, DgTopicPartition *parts, int n);
typedef void (*DgRevokeFn) (void *arg, DgTopicPartition *parts, int n);

typedef struct DgConsumer DgConsumer;

extern DgConsumer *dg_consumer_create(const char *client_id, const char *group,
									  const char *topics, DgAssignFn assign,
									  DgRevokeFn revoke, void *arg);
/*
 * Fill records (up to max) in memory context cxt: wait up to wait_ms for a
 * first record, then at most batch_ms for more.  Records of partitions
 * revoked meanwhile are dropped.  Returns the number of records.
 */
extern int	dg_consumer_poll(DgConsumer *c, DgKafkaRecord *records, int max,
							 int wait_ms, int batch_ms, MemoryContext cxt);
extern void dg_consumer_seek(DgConsumer *c, const char *topic, int32 partition, int64 offset);
extern void dg_consumer_commit(DgConsumer *c, DgTopicPartition *parts, int n);
extern int	dg_consumer_stats(DgConsumer *c, DgPartitionStat *out, int max);
extern bool dg_consumer_failed(DgConsumer *c, char *why, size_t len);
extern void dg_consumer_close(DgConsumer *c);

typedef struct DgProducer DgProducer;

extern DgProducer *dg_producer_create(const char *client_id, int capacity);
extern bool dg_producer_send(DgProducer *p, const char *topic, const char *key, size_t key_len,
							 const char *value, size_t len, DgKafkaHeader *headers, int nheaders,
							 int64 id);
extern int	dg_producer_flush(DgProducer *p, int64 **ids, bool **oks);
extern bool dg_producer_failed(DgProducer *p, char *why, size_t len);
extern void dg_producer_close(DgProducer *p);

#endif							/* DG_KAFKA_H */
