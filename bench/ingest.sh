#!/usr/bin/env bash
# bench/ingest.sh: end-to-end Kafka ingest against two baselines, in one run.
#
#   subject   EVENTS events over THINGS things, produced by tools/bin/dg-fleet
#             (as fast as it can) to the test broker and consumed by the
#             processor workers: events/s from the first produce until the
#             last event's offset is committed in PostgreSQL.
#   (a)       a plain batched SQL UPDATE of the same changes (the same
#             jsonb merge, with lastUpdate), 1000 rows per statement.
#   (b)       the same processors doing one event per transaction
#             (batch_size = 1), on a tenth of the events.
#   memory    the processor's private memory (RssAnon) after a stream over
#             10,000 things and after one over 1,000,000 things.
#
# Durable commits (fsync on).  Targets: subject >= 50% of (a), >= 20x (b),
# memory flat.
#
# Usage: bench/ingest.sh [events, default 400000] [things, default 20000]
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

EVENTS=${1:-400000}
THINGS=${2:-20000}
WORKERS=2
DIR=/tmp/doppelganger-bench-ingest
PORT=55435

dg_install_packages
dg_build
. "$(dirname "$0")/kafka.sh"

processor_rss_kb() {
	local pid
	pid=$(psql_ -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'doppelganger processor' LIMIT 1")
	awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status"
}

dg_log "subject: $EVENTS events over $THINGS things, $WORKERS processors, batches of 1000"
start 1000
make_things "$THINGS"
SUBJECT=$(stream "$EVENTS" "$THINGS")
DEAD=$(psql_ -c "SELECT count(*) FROM doppelganger.dead_letters")
stop

dg_log "baseline (a): plain UPDATE of the same changes, 1000 rows per statement"
start 1000
psql_ -c "CREATE TABLE plain (name text PRIMARY KEY, reported_state jsonb NOT NULL DEFAULT '{}')" \
	-c "INSERT INTO plain SELECT 'device' || i FROM generate_series(0, $THINGS - 1) i" \
	-c "VACUUM ANALYZE plain"
as_root install -d -o postgres "$DIR/sql"
# EVENTS changes in statements of 1000 rows, round-robin over the things like the fleet
perl -e '
	my ($events, $things) = @ARGV;
	for (my $s = 0; $s < $events; $s += 1000) {
		my @rows;
		for my $e ($s .. $s + 999) {
			last if $e >= $events;
			my $d = $e % $things;
			push @rows, sprintf("(%s, %.1f, %d, %d)", "\x27device$d\x27", 15 + rand(15), 30 + int(rand(40)), 100 - int($e / $things));
		}
		print "UPDATE plain p SET reported_state = p.reported_state
			|| jsonb_build_object(\x27temperature\x27, jsonb_build_object(\x27value\x27, v.t, \x27lastUpdate\x27, now()))
			|| jsonb_build_object(\x27humidity\x27, jsonb_build_object(\x27value\x27, v.h, \x27lastUpdate\x27, now()))
			|| jsonb_build_object(\x27battery\x27, jsonb_build_object(\x27value\x27, v.b, \x27lastUpdate\x27, now()))
			FROM (VALUES ", join(",", @rows), ") v(name, t, h, b) WHERE p.name = v.name;\n";
	}' "$EVENTS" "$THINGS" | as_postgres tee "$DIR/sql/baseline.sql" >/dev/null
t0=$(now_ms)
psql_ -f "$DIR/sql/baseline.sql" >/dev/null
t1=$(now_ms)
BASE_A=$(awk -v n="$EVENTS" -v ms=$((t1 - t0)) 'BEGIN { printf "%.0f", n * 1000 / ms }')
stop

SMALL=$((EVENTS / 10))
dg_log "baseline (b): the processors with one event per transaction, $SMALL events"
start 1
make_things "$THINGS"
BASE_B=$(stream "$SMALL" "$THINGS")
stop

dg_log "memory: the processor after 100000 events over 10,000 things, then over 1,000,000"
start 1000
make_things 10000
stream 100000 10000 >/dev/null
MEM_SMALL=$(processor_rss_kb)
stop
start 1000
make_things 1000000
stream 100000 1000000 >/dev/null
MEM_LARGE=$(processor_rss_kb)
stop

printf '\n%-52s %12s %10s\n' "" "events/s" "ratio"
printf '%-52s %12s %10s\n' "subject: Kafka -> processors -> committed" "$SUBJECT" ""
printf '%-52s %12s %10s\n' "(a) plain UPDATE, 1000 rows per statement" "$BASE_A" \
	"$(awk -v s="$SUBJECT" -v b="$BASE_A" 'BEGIN { printf "%.2f", s / b }')"
printf '%-52s %12s %10s\n' "(b) one event per transaction" "$BASE_B" \
	"$(awk -v s="$SUBJECT" -v b="$BASE_B" 'BEGIN { printf "%.1fx", s / b }')"
printf '\nsubject/(a) target >= 0.50; subject/(b) target >= 20x; dead letters: %s\n' "$DEAD"
printf 'processor private memory (RssAnon): %s kB with 10,000 things, %s kB with 1,000,000\n' \
	"$MEM_SMALL" "$MEM_LARGE"
