/*-------------------------------------------------------------------------
 *
 * fleet.c
 *		dg-fleet: a simulated fleet of devices sending telemetry through
 *		Kafka, for the demo, the benchmarks and the tests.
 *
 * Each device has a temperature, a humidity and a battery level that drift
 * plausibly from event to event.  Events go to the devices round-robin, so
 * a count that is a multiple of the fleet size gives every device the same
 * number of events; the record key is "<application>/<prefix><i>", which
 * is what the engine uses to find the thing (and keeps each device's
 * events in order on one partition).  Every record carries the CloudEvent
 * headers the reference system writes (ce_application and ce_thing among
 * them) and a content-type.
 *
 * The producer is a real idempotent producer: what is delivered is
 * delivered exactly once and in order even when brokers go away and come
 * back, which is what the down/up tests rely on.  A token bucket on
 * CLOCK_MONOTONIC holds the requested rate; at rate 0 it produces as fast
 * as librdkafka takes the records, waiting briefly whenever its queue is
 * full.  Delivery reports are counted, and the exit code says whether
 * everything produced was delivered.
 *
 * The values depend only on the seed, the fleet size and the number of
 * events, so a run can be repeated; the CloudEvent ids are
 * "<seed>-<counter>", unique for different seeds.
 *
 * tools/fleet.c
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

/* never sleep longer than this, to notice signals and deadlines */
#define MAX_WAIT_MS		100
/* at rate 0: records produced between two rd_kafka_poll(rk, 0) calls */
#define POLL_EVERY		1000
/* how long the final flush may take */
#define FLUSH_TIMEOUT_S	30
/* delivery errors printed before going quiet about them */
#define MAX_DR_ERRORS	5

#define CE_TYPE			"io.drogue.doppelgeanger.event.v1"
#define CONTENT_TYPE	"application/json"

typedef enum
{
	FORMAT_MESSAGE,
	FORMAT_SIMPLE_JSON
} Format;

typedef struct Device
{
	double		temperature;	/* 15..30 */
	double		humidity;		/* 30..70 */
	double		battery;		/* 100..0, only ever going down */
} Device;

/* one event, built once and kept until librdkafka takes it */
typedef struct Event
{
	int			device;
	Device		next;			/* the device's state after this event */
	char		key[256];
	char		value[256];
	char		id[64];
	char		timestamp[40];
	size_t		key_len;
	size_t		value_len;
} Event;

static const char *progname = "dg-fleet";

static volatile sig_atomic_t stop_signals = 0;

/* delivery reports, all served on the main thread by rd_kafka_poll() */
static uint64_t delivered = 0;
static uint64_t failed = 0;
static bool quiet = false;
static bool fatal = false;

static uint64_t rng_state;

static void
usage(void)
{
	printf("Usage: %s -b BOOTSTRAP [options]\n"
		   "\n"
		   "A simulated fleet of devices sending telemetry to Kafka with an\n"
		   "idempotent producer.  Prints a progress line to stderr every second\n"
		   "and, at the end, \"produced N delivered N failed N\" to stdout; exits\n"
		   "with 0 only if everything produced was delivered.\n"
		   "\n"
		   "Options:\n"
		   "  -b BOOTSTRAP     Kafka bootstrap servers (host:port[,...]), required\n"
		   "  -t topic         topic to produce to (default events)\n"
		   "  -a application   application of the things (default demo)\n"
		   "  -n devices       number of devices (default 1000)\n"
		   "  -p prefix        device name prefix (default device): keys are\n"
		   "                   \"<application>/<prefix><i>\", i = 0..devices-1\n"
		   "  -r rate          events per second, all devices together; 0 = as fast\n"
		   "                   as possible (default 100)\n"
		   "  -c count         stop after this many events; 0 = unlimited (default 0)\n"
		   "  -d seconds       stop after this long; 0 = unlimited (default 0)\n"
		   "  -f format        message: {\"reportState\": {\"state\": {...},\n"
		   "                   \"partial\": true}}, or simplejson: the bare state\n"
		   "                   object {\"temperature\": ..., ...} (default message)\n"
		   "  -s seed          seed of the simulated values and of the event ids\n"
		   "                   (default: from the clock and the process id)\n"
		   "  -X name=value    set a librdkafka property (repeatable), e.g.\n"
		   "                   -X compression.type=none\n"
		   "  -q               quiet: no progress lines, no client errors\n"
		   "  -h               show this help\n"
		   "\n"
		   "Events go to the devices round-robin.  SIGINT or SIGTERM stops producing\n"
		   "and flushes for up to %d s (a second signal gives up at once).\n",
		   progname, FLUSH_TIMEOUT_S);
}

static void
bad_usage(const char *fmt,...)
{
	if (fmt)
	{
		va_list		ap;

		fprintf(stderr, "%s: ", progname);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	fprintf(stderr, "Usage: %s -b BOOTSTRAP [-t topic] [-a application] [-n devices] [-p prefix]\n"
			"       [-r rate] [-c count] [-d seconds] [-f message|simplejson] [-s seed]\n"
			"       [-X name=value]... [-q]\n"
			"Try \"%s -h\" for more information.\n", progname, progname);
	exit(1);
}

static void
die(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void
on_signal(int signo)
{
	(void) signo;
	stop_signals++;
}

static double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* splitmix64: small, fast, and the same everywhere for a given seed */
static uint64_t
rng_next(void)
{
	uint64_t	z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* uniform in [lo, hi) */
static double
rng_uniform(double lo, double hi)
{
	return lo + (hi - lo) * ((rng_next() >> 11) * (1.0 / 9007199254740992.0));
}

static double
clamp(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* ---- librdkafka callbacks ---- */

static void
dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	(void) rk;
	(void) opaque;
	if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		delivered++;
		return;
	}
	failed++;
	/* purged at exit: already reported, in one line */
	if (msg->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
		msg->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
		return;
	if (failed <= MAX_DR_ERRORS)
		fprintf(stderr, "%s: delivery failed: %s%s\n", progname,
				rd_kafka_err2str(msg->err),
				failed == MAX_DR_ERRORS ? " (further delivery errors are only counted)" : "");
}

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void) opaque;
	if (err == RD_KAFKA_RESP_ERR__FATAL)
	{
		char		buf[512];

		rd_kafka_fatal_error(rk, buf, sizeof(buf));
		fprintf(stderr, "%s: fatal producer error: %s\n", progname, buf);
		fatal = true;
		return;
	}
	/* transient: librdkafka retries (brokers down, connections lost) */
	if (!quiet)
		fprintf(stderr, "%s: kafka: %s: %s\n", progname, rd_kafka_err2name(err), reason);
}

static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void) rk;
	/* connection failures come to error_cb already */
	if (quiet || level > LOG_WARNING || strcmp(fac, "FAIL") == 0)
		return;
	fprintf(stderr, "%s: librdkafka %s: %s\n", progname, fac, buf);
}

/* ---- option parsing ---- */

static bool
parse_u64(const char *s, uint64_t max, uint64_t *result)
{
	char	   *end;
	unsigned long long v;

	if (*s == '\0' || *s == '-' || *s == '+')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return false;
	*result = v;
	return true;
}

static bool
parse_nonneg_double(const char *s, double *result)
{
	char	   *end;
	double		v;

	if (*s == '\0')
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v) || v < 0)
		return false;
	*result = v;
	return true;
}

static void
conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char		errstr[512];

	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		die("%s=%s: %s", name, value, errstr);
}

/* ---- events ---- */

static void
device_init(Device *d)
{
	d->temperature = rng_uniform(18.0, 26.0);
	d->humidity = rng_uniform(40.0, 60.0);
	d->battery = rng_uniform(60.0, 100.0);
}

/* RFC 3339 in UTC with milliseconds */
static void
format_timestamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm	tm;
	size_t		n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/*
 * Build event number "counter" (0-based): its device, the device's drifted
 * state, the key and the value.  Nothing changes until event_done().
 */
static void
event_build(Event *ev, uint64_t counter, const Device *devices, int ndevices,
			const char *application, const char *prefix, Format format,
			uint64_t seed)
{
	const Device *d;
	char		state[160];

	ev->device = (int) (counter % (uint64_t) ndevices);
	d = &devices[ev->device];

	/* a random walk, kept in range; the battery only drains */
	ev->next.temperature = clamp(d->temperature + rng_uniform(-0.3, 0.3), 15.0, 30.0);
	ev->next.humidity = clamp(d->humidity + rng_uniform(-1.0, 1.0), 30.0, 70.0);
	ev->next.battery = clamp(d->battery - rng_uniform(0.0, 0.02), 0.0, 100.0);

	snprintf(state, sizeof(state),
			 "{\"temperature\":%.1f,\"humidity\":%d,\"battery\":%d}",
			 ev->next.temperature, (int) lround(ev->next.humidity),
			 (int) ceil(ev->next.battery));
	if (format == FORMAT_MESSAGE)
		ev->value_len = snprintf(ev->value, sizeof(ev->value),
								 "{\"reportState\":{\"state\":%s,\"partial\":true}}", state);
	else
		ev->value_len = snprintf(ev->value, sizeof(ev->value), "%s", state);

	ev->key_len = snprintf(ev->key, sizeof(ev->key), "%s/%s%d",
						   application, prefix, ev->device);
	snprintf(ev->id, sizeof(ev->id), "%" PRIu64 "-%" PRIu64, seed, counter);
	format_timestamp(ev->timestamp, sizeof(ev->timestamp));
}

/*
 * Hand the event to librdkafka (which copies everything).  The thing's
 * name is the key after the application and its slash.
 */
static rd_kafka_resp_err_t
event_produce(rd_kafka_t *rk, rd_kafka_topic_t *rkt, const Event *ev,
			  const char *application)
{
	const char *thing = ev->key + strlen(application) + 1;

	return rd_kafka_producev(rk,
							 RD_KAFKA_V_RKT(rkt),
							 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
							 RD_KAFKA_V_KEY(ev->key, ev->key_len),
							 RD_KAFKA_V_VALUE((void *) ev->value, ev->value_len),
							 RD_KAFKA_V_HEADER("content-type", CONTENT_TYPE, -1),
							 RD_KAFKA_V_HEADER("ce_specversion", "1.0", -1),
							 RD_KAFKA_V_HEADER("ce_id", ev->id, -1),
							 RD_KAFKA_V_HEADER("ce_source", "dg-fleet", -1),
							 RD_KAFKA_V_HEADER("ce_type", CE_TYPE, -1),
							 RD_KAFKA_V_HEADER("ce_timestamp", ev->timestamp, -1),
							 RD_KAFKA_V_HEADER("ce_application", application, -1),
							 RD_KAFKA_V_HEADER("ce_thing", thing, -1),
							 RD_KAFKA_V_END);
}

static void
progress(double elapsed, uint64_t produced, double rate)
{
	fprintf(stderr, "%s: %.1f s produced %" PRIu64 " delivered %" PRIu64
			" failed %" PRIu64 " rate %.0f/s\n",
			progname, elapsed, produced, delivered, failed, rate);
}

int
main(int argc, char **argv)
{
	const char *bootstrap = NULL;
	const char *topic = "events";
	const char *application = "demo";
	const char *prefix = "device";
	uint64_t	ndevices = 1000;
	double		rate = 100;
	uint64_t	count = 0;
	double		duration = 0;
	Format		format = FORMAT_MESSAGE;
	uint64_t	seed;
	bool		seeded = false;
	char		errstr[512];
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	Device	   *devices;
	Event		ev;
	bool		pending = false;
	uint64_t	produced = 0;
	double		start,
				now,
				deadline,
				next_report,
				last_report,
				last_tick;
	uint64_t	last_produced = 0;
	double		tokens = 1,
				burst;
	struct sigaction sa;
	int			c;

	conf = rd_kafka_conf_new();

	/*
	 * The idempotent producer, tuned for throughput: big batches (written
	 * out, though 2.0.2 has the same defaults), a deep queue, and lz4, which
	 * our JSON shrinks well under and which lets the mock broker keep ten
	 * times more records.  -X overrides any of these.
	 */
	conf_set(conf, "enable.idempotence", "true");
	conf_set(conf, "linger.ms", "5");
	conf_set(conf, "batch.num.messages", "10000");
	conf_set(conf, "batch.size", "1000000");
	conf_set(conf, "queue.buffering.max.messages", "200000");
	conf_set(conf, "compression.type", "lz4");

	while ((c = getopt(argc, argv, "b:t:a:n:p:r:c:d:f:s:X:qh")) != -1)
	{
		switch (c)
		{
			case 'b':
				bootstrap = optarg;
				break;
			case 't':
				topic = optarg;
				break;
			case 'a':
				application = optarg;
				break;
			case 'n':
				if (!parse_u64(optarg, INT_MAX, &ndevices) || ndevices == 0)
					bad_usage("-n must be a number of devices, at least 1");
				break;
			case 'p':
				prefix = optarg;
				break;
			case 'r':
				if (!parse_nonneg_double(optarg, &rate))
					bad_usage("-r must be a rate in events per second, 0 or more");
				break;
			case 'c':
				if (!parse_u64(optarg, UINT64_MAX, &count))
					bad_usage("-c must be a count of events, 0 or more");
				break;
			case 'd':
				if (!parse_nonneg_double(optarg, &duration))
					bad_usage("-d must be a duration in seconds, 0 or more");
				break;
			case 'f':
				if (strcasecmp(optarg, "message") == 0)
					format = FORMAT_MESSAGE;
				else if (strcasecmp(optarg, "simplejson") == 0)
					format = FORMAT_SIMPLE_JSON;
				else
					bad_usage("-f must be message or simplejson");
				break;
			case 's':
				if (!parse_u64(optarg, UINT64_MAX, &seed))
					bad_usage("-s must be a number");
				seeded = true;
				break;
			case 'X':
				{
					char	   *eq = strchr(optarg, '=');

					if (eq == NULL || eq == optarg)
						bad_usage("-X takes name=value");
					*eq = '\0';
					conf_set(conf, optarg, eq + 1);
					*eq = '=';
				}
				break;
			case 'q':
				quiet = true;
				break;
			case 'h':
				usage();
				return 0;
			default:
				bad_usage(NULL);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument \"%s\"", argv[optind]);
	if (bootstrap == NULL)
		bad_usage("-b BOOTSTRAP is required");
	if (*application == '\0' || strchr(application, '/') != NULL)
		bad_usage("-a must be a non-empty application name without \"/\"");
	if (strlen(application) + strlen(prefix) > 200)
		bad_usage("the application and the prefix are too long");
	if (*topic == '\0')
		bad_usage("-t must not be empty");

	if (!seeded)
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		/* a short number, as it is in every event id */
		seed = ((uint64_t) ts.tv_sec * 1000003u ^ (uint64_t) ts.tv_nsec ^
				((uint64_t) getpid() << 20)) % 1000000000u;
	}
	rng_state = seed;

	conf_set(conf, "bootstrap.servers", bootstrap);
	rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_log_cb(conf, log_cb);

	/* librdkafka's threads block all signals: they come to this thread */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
		die("cannot create the producer: %s", errstr);
	rkt = rd_kafka_topic_new(rk, topic, NULL);
	if (rkt == NULL)
		die("topic \"%s\": %s", topic, rd_kafka_err2str(rd_kafka_last_error()));

	devices = malloc(sizeof(Device) * ndevices);
	if (devices == NULL)
		die("out of memory for %" PRIu64 " devices", ndevices);
	for (uint64_t i = 0; i < ndevices; i++)
		device_init(&devices[i]);

	start = now_mono();
	deadline = duration > 0 ? start + duration : INFINITY;
	next_report = start + 1.0;
	last_report = start;
	last_tick = start;
	/* a stall (queue full, brokers down) must not turn into a flood after */
	burst = rate / 10 > 1 ? rate / 10 : 1;

	while (stop_signals == 0 && !fatal)
	{
		double		wait_s;
		int			budget;

		now = now_mono();
		if (count > 0 && produced >= count)
			break;
		if (now >= deadline)
			break;
		if (now >= next_report)
		{
			if (!quiet)
				progress(now - start, produced,
						 (produced - last_produced) / (now - last_report));
			last_produced = produced;
			last_report = now;
			next_report += 1.0;
			if (next_report < now)
				next_report = now + 1.0;
		}

		if (rate > 0)
		{
			tokens += (now - last_tick) * rate;
			if (tokens > burst)
				tokens = burst;
			last_tick = now;
			if (tokens < 1)
			{
				wait_s = (1 - tokens) / rate;
				if (wait_s > next_report - now)
					wait_s = next_report - now;
				if (wait_s > deadline - now)
					wait_s = deadline - now;
				/* never a negative timeout: that would wait forever */
				rd_kafka_poll(rk, (int) clamp(ceil(wait_s * 1000), 0, MAX_WAIT_MS));
				continue;
			}
			budget = tokens > POLL_EVERY ? POLL_EVERY : (int) tokens;
		}
		else
			budget = POLL_EVERY;

		for (int i = 0; i < budget; i++)
		{
			rd_kafka_resp_err_t err;

			if (count > 0 && produced >= count)
				break;
			if (!pending)
			{
				event_build(&ev, produced, devices, (int) ndevices,
							application, prefix, format, seed);
				pending = true;
			}
			err = event_produce(rk, rkt, &ev, application);
			if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			{
				/* let deliveries make room; keep the event for later */
				rd_kafka_poll(rk, 10);
				break;
			}
			if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
			{
				if (err != RD_KAFKA_RESP_ERR__FATAL)
					fprintf(stderr, "%s: produce failed: %s\n", progname, rd_kafka_err2str(err));
				fatal = true;
				break;
			}
			devices[ev.device] = ev.next;
			pending = false;
			produced++;
			tokens -= 1;
		}
		rd_kafka_poll(rk, 0);
	}

	/* deliver what is queued: up to FLUSH_TIMEOUT_S, or a second signal */
	{
		int			signals_before = stop_signals;
		double		flush_end = now_mono() + FLUSH_TIMEOUT_S;

		while (rd_kafka_outq_len(rk) > 0 && !fatal &&
			   stop_signals == signals_before && now_mono() < flush_end)
		{
			rd_kafka_flush(rk, MAX_WAIT_MS);
			now = now_mono();
			if (!quiet && now >= next_report && rd_kafka_outq_len(rk) > 0)
			{
				progress(now - start, produced, 0);
				next_report = now + 1.0;
			}
		}
	}
	if (rd_kafka_outq_len(rk) > 0)
	{
		/* give up on the rest: their delivery reports count them failed */
		fprintf(stderr, "%s: giving up on %d undelivered records\n",
				progname, rd_kafka_outq_len(rk));
		rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_flush(rk, 1000);
	}
	rd_kafka_poll(rk, 0);

	now = now_mono();
	if (!quiet)
		progress(now - start, produced,
				 now > start ? produced / (now - start) : 0);
	printf("produced %" PRIu64 " delivered %" PRIu64 " failed %" PRIu64 "\n",
		   produced, delivered, failed);
	fflush(stdout);

	rd_kafka_topic_destroy(rkt);
	rd_kafka_destroy(rk);
	free(devices);

	return (!fatal && failed == 0 && delivered == produced) ? 0 : 1;
}
