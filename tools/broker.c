/*-------------------------------------------------------------------------
 *
 * broker.c
 *		dg-broker: a Kafka protocol endpoint for the tests and the demo,
 *		built on librdkafka's mock cluster.
 *
 * The tests need a real Kafka wire protocol (the extension's consumer, kcat
 * and dg-fleet are ordinary clients) but not a JVM, ZooKeeper or a disk.
 * librdkafka ships a mock cluster: N brokers on loopback ephemeral ports,
 * in-memory partitions, produce (idempotent too), fetch, metadata and
 * consumer groups with offset commits.  This program owns one, creates the
 * topics it is told to, prints the bootstrap servers on one line and then
 * runs until SIGTERM or SIGINT.
 *
 * Commands on stdin (one a line, each answered "ok" or "error: ..." on
 * stdout) let a test take the brokers down and bring them up again, or
 * create topics later.  End of input is not a request to stop: the broker
 * is often started in the background with stdin from /dev/null.
 *
 * The mock cluster is a test fixture, not a store: it keeps about 100000
 * record batches or 5 MB per partition and silently drops older ones.
 *
 * Signals are blocked in every thread (librdkafka's and the mock cluster's
 * threads inherit the mask) and only let through inside ppoll(), so the
 * main thread notices them promptly and nothing else ever runs a handler.
 *
 * tools/broker.c
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_BROKERS		64
#define MAX_PARTITIONS	100000
#define LINE_MAX_LEN	1024

static const char *progname = "dg-broker";

static volatile sig_atomic_t stop_signal = 0;

#define USAGE_LINE "Usage: %s [-n brokers] [-t topic[:partitions]]...\n"

static void
usage(void)
{
	printf(USAGE_LINE
			"\n"
			"A Kafka protocol endpoint on loopback for tests and demos (librdkafka's\n"
			"mock cluster).  Prints one line with the bootstrap servers, then runs\n"
			"until SIGTERM or SIGINT.\n"
			"\n"
			"Options:\n"
			"  -n brokers            number of brokers (default 1, at most %d)\n"
			"  -t topic[:partitions] create a topic (default 1 partition); repeatable\n"
			"  -h                    show this help\n"
			"\n"
			"Commands on stdin, one a line, each answered \"ok\" or \"error: ...\":\n"
			"  down                  take every broker down: connections are closed\n"
			"                        and refused, clients see the brokers unreachable\n"
			"  up                    bring every broker up again\n"
			"  topic NAME PARTITIONS create a topic\n"
			"  quit                  stop (as SIGTERM does)\n"
			"End of input only stops the reading of commands, not the broker.\n"
			"\n"
			"Topics a producer asks for that do not exist are created with 4\n"
			"partitions.  The mock cluster keeps messages in memory only: about\n"
			"100000 record batches or 5 MB per partition, whichever is reached\n"
			"first; older messages are dropped silently.\n",
			progname, MAX_BROKERS);
}

static void
bad_usage(void)
{
	fprintf(stderr, USAGE_LINE "Try \"%s -h\" for more information.\n",
			progname, progname);
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
	stop_signal = signo;
}

/* librdkafka's log lines: only warnings and errors, and not the owner
 * handle's complaint that it has no bootstrap servers (it needs none). */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void) rk;
	if (level > LOG_WARNING || strcmp(fac, "CONFWARN") == 0)
		return;
	fprintf(stderr, "%s: librdkafka %s: %s\n", progname, fac, buf);
}

/* Parse a whole decimal number in [min, max]; false if it is not one. */
static bool
parse_int(const char *s, int min, int max, int *result)
{
	char	   *end;
	long		v;

	if (*s == '\0')
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*result = (int) v;
	return true;
}

/* Kafka's rule for topic names: 1..249 of [a-zA-Z0-9._-]. */
static bool
valid_topic(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > 249)
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "0123456789._-") == len;
}

/*
 * Create a topic; on failure, write why into errbuf and return false.
 */
static bool
create_topic(rd_kafka_mock_cluster_t *mcluster, const char *name,
			 int partitions, char *errbuf, size_t errlen)
{
	rd_kafka_resp_err_t err;

	if (!valid_topic(name))
	{
		snprintf(errbuf, errlen, "invalid topic name \"%s\"", name);
		return false;
	}
	if (partitions < 1 || partitions > MAX_PARTITIONS)
	{
		snprintf(errbuf, errlen, "partitions must be 1..%d", MAX_PARTITIONS);
		return false;
	}
	err = rd_kafka_mock_topic_create(mcluster, name, partitions, 1);
	if (err)
	{
		snprintf(errbuf, errlen, "topic \"%s\": %s", name, rd_kafka_err2str(err));
		return false;
	}
	return true;
}

static void
answer(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

/*
 * Run one command line.  Returns false for "quit".
 */
static bool
run_command(rd_kafka_mock_cluster_t *mcluster, char *line)
{
	char	   *save = NULL;
	char	   *cmd = strtok_r(line, " \t\r", &save);
	char	   *arg1 = strtok_r(NULL, " \t\r", &save);
	char	   *arg2 = strtok_r(NULL, " \t\r", &save);
	char	   *extra = strtok_r(NULL, " \t\r", &save);
	rd_kafka_resp_err_t err;

	if (cmd == NULL)
		return true;			/* a blank line is not a command */

	if (strcmp(cmd, "down") == 0 || strcmp(cmd, "up") == 0)
	{
		bool		down = (cmd[0] == 'd');

		if (arg1 != NULL)
		{
			answer("error: %s takes no argument", cmd);
			return true;
		}
		/* broker id -1: every broker */
		err = down ? rd_kafka_mock_broker_set_down(mcluster, -1)
			: rd_kafka_mock_broker_set_up(mcluster, -1);
		if (err)
			answer("error: %s: %s", cmd, rd_kafka_err2str(err));
		else
			answer("ok");
	}
	else if (strcmp(cmd, "topic") == 0)
	{
		int			partitions;
		char		errbuf[512];

		if (arg1 == NULL || arg2 == NULL || extra != NULL)
			answer("error: usage: topic NAME PARTITIONS");
		else if (!parse_int(arg2, 1, MAX_PARTITIONS, &partitions))
			answer("error: partitions must be a number 1..%d", MAX_PARTITIONS);
		else if (!create_topic(mcluster, arg1, partitions, errbuf, sizeof(errbuf)))
			answer("error: %s", errbuf);
		else
			answer("ok");
	}
	else if (strcmp(cmd, "quit") == 0)
	{
		answer("ok");
		return false;
	}
	else
		answer("error: unknown command \"%s\" (use down, up, topic NAME PARTITIONS or quit)", cmd);
	return true;
}

int
main(int argc, char **argv)
{
	int			nbrokers = 1;
	char		errstr[512];
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mcluster;
	sigset_t	blocked,
				waitmask;
	struct sigaction sa;
	bool		reading = true;
	bool		running = true;
	char		line[LINE_MAX_LEN];
	size_t		used = 0;
	bool		overlong = false;
	int			c;

	/*
	 * Block the stop signals before librdkafka starts any thread, so that
	 * they are delivered to the main thread inside ppoll() only.
	 */
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGTERM);
	sigaddset(&blocked, SIGINT);
	if (sigprocmask(SIG_BLOCK, &blocked, &waitmask) != 0)
		die("sigprocmask: %s", strerror(errno));
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* in the background of an interactive shell, read() gets EIO instead */
	signal(SIGTTIN, SIG_IGN);

	/* the topics are created once the cluster exists: parse them twice */
	while ((c = getopt(argc, argv, "n:t:h")) != -1)
	{
		switch (c)
		{
			case 'n':
				if (!parse_int(optarg, 1, MAX_BROKERS, &nbrokers))
					die("-n must be a number of brokers 1..%d", MAX_BROKERS);
				break;
			case 't':
				break;
			case 'h':
				usage();
				return 0;
			default:
				bad_usage();
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "%s: unexpected argument \"%s\"\n", progname, argv[optind]);
		bad_usage();
	}

	/* a producer handle whose only job is to own the mock cluster */
	conf = rd_kafka_conf_new();
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
		die("cannot create the librdkafka handle: %s", errstr);
	mcluster = rd_kafka_mock_cluster_new(rk, nbrokers);
	if (mcluster == NULL)
		die("cannot create the mock cluster");

	optind = 1;
	while ((c = getopt(argc, argv, "n:t:h")) != -1)
	{
		if (c == 't')
		{
			char	   *spec = strdup(optarg);
			char	   *colon = strrchr(spec, ':');
			int			partitions = 1;

			if (colon != NULL)
			{
				*colon = '\0';
				if (!parse_int(colon + 1, 1, MAX_PARTITIONS, &partitions))
					die("-t %s: partitions must be a number 1..%d", optarg, MAX_PARTITIONS);
			}
			if (!create_topic(mcluster, spec, partitions, errstr, sizeof(errstr)))
				die("-t %s: %s", optarg, errstr);
			free(spec);
		}
	}

	printf("%s\n", rd_kafka_mock_cluster_bootstraps(mcluster));
	if (fflush(stdout) != 0)
		die("cannot write to stdout: %s", strerror(errno));

	while (running && stop_signal == 0)
	{
		struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
		int			r;

		/* without stdin, wait for a signal alone */
		r = ppoll(&pfd, reading ? 1 : 0, NULL, &waitmask);
		if (r < 0)
		{
			if (errno == EINTR)
				continue;
			die("ppoll: %s", strerror(errno));
		}
		if (r == 0 || !reading)
			continue;

		r = read(STDIN_FILENO, line + used, sizeof(line) - 1 - used);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
		{
			/* end of input (or unreadable input): keep serving */
			reading = false;
			continue;
		}
		used += r;

		/* run every complete line in the buffer */
		for (;;)
		{
			char	   *nl = memchr(line, '\n', used);
			size_t		len;

			if (nl == NULL)
			{
				if (used == sizeof(line) - 1)
				{
					/* too long: drop it, answer once at its end */
					overlong = true;
					used = 0;
				}
				break;
			}
			*nl = '\0';
			len = nl - line + 1;
			if (overlong)
			{
				answer("error: command line too long");
				overlong = false;
			}
			else if (memchr(line, '\0', len - 1) != NULL)
				answer("error: NUL byte in command");
			else if (!run_command(mcluster, line))
			{
				running = false;
				break;
			}
			memmove(line, line + len, used - len);
			used -= len;
		}
	}

	rd_kafka_mock_cluster_destroy(mcluster);
	rd_kafka_destroy(rk);
	return 0;
}
