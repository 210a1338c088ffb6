# Doppelganger: a digital-twin engine inside PostgreSQL.

EXTENSION = doppelganger
MODULE_big = doppelganger

# The pure layer compiles into the extension and into the unit tests.
PURE_SRCS = src/json.c src/time.c src/patch.c src/thing.c src/ops.c \
	src/machine.c src/desired.c src/schema.c src/script.c src/ecmaregex.c
EDGE_SRCS = src/doppelganger.c src/api.c src/service.c src/store.c \
	src/pgjson.c src/selector.c src/convert.c src/stats.c src/kafka.c \
	src/event.c src/deadletter.c src/processor.c src/launcher.c src/hooks.c \
	src/outbox.c src/worker.c src/relay.c src/waker.c src/acl.c
# Duktape, compiled from the source Debian ships (duktape-dev) with a config
# that enables the execution-timeout hook Debian's shared library lacks.
DUK_SRC = /usr/share/duktape
DUK_DIR = build/duktape
DUK_OBJ = $(DUK_DIR)/duktape.o

OBJS = $(PURE_SRCS:.c=.o) $(EDGE_SRCS:.c=.o) $(DUK_OBJ)

DATA = doppelganger--0.1.sql
PGFILEDESC = "doppelganger - digital twins for IoT"

PG_CONFIG ?= $(shell test -x /usr/lib/postgresql/15/bin/pg_config && \
	echo /usr/lib/postgresql/15/bin/pg_config || echo pg_config)

PKGS = json-c rdkafka
PG_CPPFLAGS = -Isrc -I$(DUK_DIR) $(shell pkg-config --cflags $(PKGS))
PG_CFLAGS = -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK = $(shell pkg-config --libs $(PKGS)) -lm

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# json-c's iteration macros declare variables mid-block.
$(PURE_SRCS:.c=.o): CFLAGS += -Wno-declaration-after-statement

$(DUK_DIR)/duk_config.h: $(DUK_SRC)/duk_config.h
	@mkdir -p $(DUK_DIR)
	sed -e 's|^#undef DUK_USE_EXEC_TIMEOUT_CHECK$$|extern int dg_duk_exec_timeout(void *udata);\n#define DUK_USE_EXEC_TIMEOUT_CHECK(udata) dg_duk_exec_timeout(udata)|' \
		-e 's|^#undef DUK_USE_INTERRUPT_COUNTER$$|#define DUK_USE_INTERRUPT_COUNTER|' \
		-e 's|^#undef DUK_USE_JSON_STRINGIFY_FASTPATH$$|#define DUK_USE_JSON_STRINGIFY_FASTPATH|' $< > $@.tmp
	grep -q 'define DUK_USE_EXEC_TIMEOUT_CHECK' $@.tmp && grep -q 'define DUK_USE_INTERRUPT_COUNTER' $@.tmp
	grep -q 'define DUK_USE_JSON_STRINGIFY_FASTPATH' $@.tmp
	mv $@.tmp $@
$(DUK_DIR)/duktape.h: $(DUK_SRC)/duktape.h $(DUK_DIR)/duk_config.h
	cp $< $@
# The regexp matcher never consults the timeout hook: make it, every 64k
# steps, so that a backtracking pattern ends at the deadline too.
$(DUK_DIR)/duktape.c: $(DUK_SRC)/duktape.c $(DUK_DIR)/duktape.h
	perl -pe 's|^(\s*)re_ctx->steps_count\+\+;$$|$$&\n$$1if ((re_ctx->steps_count & 0xffffUL) == 0 \&\& DUK_USE_EXEC_TIMEOUT_CHECK(re_ctx->thr->heap->heap_udata)) { DUK_ERROR_RANGE(re_ctx->thr, "execution timeout"); DUK_WO_NORETURN(return NULL;); }|' $< > $@.tmp
	grep -q 'steps_count & 0xffffUL' $@.tmp
	mv $@.tmp $@
# third-party code: its warnings are not ours to fix
$(DUK_OBJ): $(DUK_DIR)/duktape.c
	$(CC) $(filter-out -W%,$(CFLAGS)) -w -fPIC -O2 -I$(DUK_DIR) -c -o $@ $<
$(DUK_DIR)/duktape.bc: $(DUK_DIR)/duktape.c
	$(COMPILE.c.bc) -w -I$(DUK_DIR) -o $@ $<
src/script.o: $(DUK_DIR)/duktape.h

# ---- unit tests of the pure layer (no database) ----
UNIT_TESTS = $(patsubst test/unit/%.c,test/unit/bin/%,$(wildcard test/unit/test_*.c))
UNIT_CFLAGS = -std=gnu11 -O1 -g -Wall -Wextra -Werror -Wmissing-prototypes \
	-Wno-unused-parameter -Isrc -Itest/unit $(shell pkg-config --cflags $(PKGS))

test/unit/bin/%: test/unit/%.c $(PURE_SRCS) src/dg.h src/opkind.h test/unit/tap.h test/unit/fixtures.h $(DUK_OBJ)
	@mkdir -p test/unit/bin
	$(CC) $(UNIT_CFLAGS) -I$(DUK_DIR) -o $@ $< $(PURE_SRCS) $(DUK_OBJ) \
		$(shell pkg-config --libs $(PKGS)) -lm

unit: $(UNIT_TESTS)
	prove -f $(UNIT_TESTS)

.PHONY: unit
EXTRA_CLEAN = test/unit/bin build

unit-build: $(UNIT_TESTS)

# ---- the HTTP/WebSocket gateway (gateway/, its own Makefile) ----
gateway:
	$(MAKE) -C gateway

.PHONY: gateway

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
