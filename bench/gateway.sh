#!/usr/bin/env bash
# bench/gateway.sh: the gateway under load, loopback only.  SUBSCRIBERS
# WebSocket clients (bench/wsload.mjs), one per thing, while tools/bin/dg-fleet
# streams RATE events/s through the test broker and the processors into
# those things.  Side by side, the baseline: a plain LISTEN thing_changes
# session in the database (bench/listen-latency.pl), which is what the
# gateway itself listens to.  Both measure from a change's processing (its
# newest lastUpdate, set in the transaction that committed it) to the
# client; the difference is what the gateway adds.  Also the gateway's
# resident memory before, with the subscribers, and its peak under load.
#
# Target: p99 under 100 ms at 5,000 changes/s.
#
# Usage: bench/gateway.sh [subscribers, default 1000] [events/s, default 5000] [seconds, default 20]
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

SUBSCRIBERS=${1:-1000}
RATE=${2:-5000}
DURATION=${3:-20}
WORKERS=2
DIR=/tmp/doppelganger-bench-gateway
PORT=55438

dg_install_packages
dg_build
. "$(dirname "$0")/kafka.sh"
(cd "$DG_ROOT/bench" && { [ -d node_modules ] || npm ci --silent --no-audit --no-fund; })

GW_PID=
stop_all() {
	[ -n "$GW_PID" ] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null
	GW_PID=
	stop
}
trap stop_all EXIT

dg_log "$SUBSCRIBERS subscribers, $RATE events/s for $DURATION s over $SUBSCRIBERS things"
start 1000 "doppelganger.batch_timeout = 10" "max_connections = 200" >&2
make_things "$SUBSCRIBERS" >&2
CONN="dbname=postgres host=$DIR port=$PORT user=postgres"
"$DG_ROOT/gateway/bin/dg-gateway" --port 0 --db "$CONN" >"$DIR.gw.out" 2>"$DIR.gw.log" &
GW_PID=$!
for _ in $(seq 100); do grep -q listening "$DIR.gw.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$DIR.gw.out")
[ -n "$URL" ] || { dg_log "the gateway did not start: $(tail -3 "$DIR.gw.log")"; exit 1; }
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$GW_PID/status"; }
RSS_IDLE=$(rss)

perl "$DG_ROOT/bench/listen-latency.pl" "$CONN" $((DURATION + 8)) >"$DIR.listen" &
LISTEN_PID=$!
node "$DG_ROOT/bench/wsload.mjs" "$URL" bench device "$SUBSCRIBERS" "$DURATION" >"$DIR.ws" &
WS_PID=$!
for _ in $(seq 600); do grep -q ready "$DIR.ws" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$DIR.ws" || { dg_log "the subscribers did not connect"; exit 1; }
RSS_SUBSCRIBED=$(rss)

BEFORE=$(consumed)
T0=$(now_ms)
"$DG_ROOT/tools/bin/dg-fleet" -b "$BOOTSTRAP" -a bench -n "$SUBSCRIBERS" -r "$RATE" -d "$DURATION" -q >/dev/null &
FLEET_PID=$!
PEAK=$RSS_SUBSCRIBED
while kill -0 "$WS_PID" 2>/dev/null; do
	r=$(rss)
	[ "$r" -gt "$PEAK" ] && PEAK=$r
	sleep 0.5
done
wait "$FLEET_PID" || true
AFTER=$(consumed)
T1=$(now_ms)
wait "$LISTEN_PID" || true

WS=$(grep '^{' "$DIR.ws")
LS=$(grep '^{' "$DIR.listen")
field() { echo "$1" | perl -MJSON::PP -ne 'my $j = decode_json($_); print $j->{'"$2"'} // "-"'; }
COMMITTED=$(awk -v n=$((AFTER - BEFORE)) -v ms=$((T1 - T0)) 'BEGIN { printf "%.0f", n * 1000 / ms }')

printf '\n%-40s %10s %8s %8s %8s %8s\n' "" "changes" "p50 ms" "p90 ms" "p99 ms" "max ms"
printf '%-40s %10s %8s %8s %8s %8s\n' "baseline: LISTEN in the database" \
	"$(field "$LS" changes)" "$(field "$LS" p50)" "$(field "$LS" p90)" "$(field "$LS" p99)" "$(field "$LS" max)"
printf '%-40s %10s %8s %8s %8s %8s\n' "subject: $SUBSCRIBERS WebSocket subscribers" \
	"$(field "$WS" changes)" "$(field "$WS" p50)" "$(field "$WS" p90)" "$(field "$WS" p99)" "$(field "$WS" max)"
printf '\nevents committed: %s/s (asked %s/s); lag reported to clients: %s; socket errors: %s\n' \
	"$COMMITTED" "$RATE" "$(field "$WS" lag)" "$(field "$WS" errors)"
printf 'gateway resident memory: %s kB idle, %s kB with %s subscribers, %s kB peak under load\n' \
	"$RSS_IDLE" "$RSS_SUBSCRIBED" "$SUBSCRIBERS" "$PEAK"
printf 'target: subject p99 < 100 ms at 5,000 changes/s\n'
