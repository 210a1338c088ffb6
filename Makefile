# Doppelganger: a digital-twin engine inside PostgreSQL.

EXTENSION = doppelganger
MODULE_big = doppelganger

# The pure layer compiles into the extension and into the unit tests.
PURE_SRCS = src/json.c src/time.c src/patch.c src/thing.c src/ops.c \
	src/machine.c src/desired.c src/schema.c src/ecmaregex.c
EDGE_SRCS = src/doppelganger.c src/api.c src/service.c src/store.c \
	src/pgjson.c src/selector.c src/convert.c src/stats.c src/kafka.c \
	src/event.c src/deadletter.c src/processor.c src/launcher.c
OBJS = $(PURE_SRCS:.c=.o) $(EDGE_SRCS:.c=.o)

DATA = doppelganger--0.1.sql
PGFILEDESC = "doppelganger - digital twins for IoT"

PG_CONFIG ?= $(shell test -x /usr/lib/postgresql/15/bin/pg_config && \
	echo /usr/lib/postgresql/15/bin/pg_config || echo pg_config)

PKGS = json-c rdkafka
PG_CPPFLAGS = -Isrc $(shell pkg-config --cflags $(PKGS))
PG_CFLAGS = -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK = $(shell pkg-config --libs $(PKGS)) -lm

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# json-c's iteration macros declare variables mid-block.
$(PURE_SRCS:.c=.o): CFLAGS += -Wno-declaration-after-statement

# ---- unit tests of the pure layer (no database) ----
UNIT_TESTS = $(patsubst test/unit/%.c,test/unit/bin/%,$(wildcard test/unit/test_*.c))
UNIT_CFLAGS = -std=gnu11 -O1 -g -Wall -Wextra -Werror -Wmissing-prototypes \
	-Wno-unused-parameter -Isrc -Itest/unit $(shell pkg-config --cflags $(PKGS))

test/unit/bin/%: test/unit/%.c $(PURE_SRCS) src/dg.h src/opkind.h test/unit/tap.h
	@mkdir -p test/unit/bin
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(PURE_SRCS) $(shell pkg-config --libs $(PKGS)) -lm

unit: $(UNIT_TESTS)
	prove -f $(UNIT_TESTS)

.PHONY: unit
EXTRA_CLEAN = test/unit/bin

unit-build: $(UNIT_TESTS)

# ---- programs: the test broker and the fleet simulator (tools/) ----
TOOLS = tools/bin/dg-broker tools/bin/dg-fleet
TOOLS_CFLAGS = -std=gnu11 -O2 -g -Wall -Wextra -Werror

tools: $(TOOLS)

tools/bin/dg-broker: tools/broker.c
	@mkdir -p tools/bin
	gcc $(TOOLS_CFLAGS) $(shell pkg-config --cflags rdkafka) -o $@ $< $(shell pkg-config --libs rdkafka)

tools/bin/dg-fleet: tools/fleet.c
	@mkdir -p tools/bin
	gcc $(TOOLS_CFLAGS) $(shell pkg-config --cflags rdkafka) -o $@ $< $(shell pkg-config --libs rdkafka) -lm

.PHONY: unit-build tools
