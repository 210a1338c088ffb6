# bench/kafka.sh: what the Kafka benchmarks share, sourced by them after
# scripts/lib.sh.  The caller sets DIR, PORT and WORKERS.
#
#   start BATCH [conf...]  a fresh test broker (topic events, 32 partitions)
#                          and cluster with the processors joined, so no
#                          phase warms another's caches or measures a join
#   stop                   both gone (also on exit)
#   make_things N [reconciliation]   N things bench/device0.. in bulk
#   stream EVENTS THINGS   dg-fleet produces; prints events/s until the
#                          last event's offset is committed in PostgreSQL

BROKER_LOG=$DIR.broker
BROKER_PID=

now_ms() { date +%s%3N; }
psql_() { as_postgres psql -XAtq -h "$DIR" -p "$PORT" -d postgres "$@"; }

start() {
	local batch=$1
	shift
	"$DG_ROOT/tools/bin/dg-broker" -t events:32 >"$BROKER_LOG" 2>&1 </dev/null &
	BROKER_PID=$!
	for _ in $(seq 50); do [ -s "$BROKER_LOG" ] && break; sleep 0.1; done
	BOOTSTRAP=$(head -1 "$BROKER_LOG")
	dg_cluster_start "$DIR" "$PORT" "fsync = on" "synchronous_commit = on" \
		"shared_buffers = 512MB" "max_wal_size = 4GB" \
		"doppelganger.kafka_brokers = '$BOOTSTRAP'" "doppelganger.processor_workers = $WORKERS" \
		"doppelganger.batch_size = $batch" "doppelganger.batch_timeout = 100" \
		"doppelganger.kafka_properties = 'fetch.min.bytes=100000;fetch.wait.max.ms=20'" "$@"
	psql_ -c "CREATE EXTENSION doppelganger"
	for _ in $(seq 600); do
		[ "$(psql_ -c "SELECT count(*) FROM doppelganger.dt_partitions")" = 32 ] && break
		sleep 0.1
	done
}

stop() {
	dg_cluster_stop "$DIR"
	[ -n "$BROKER_PID" ] || return 0
	kill "$BROKER_PID" 2>/dev/null || true
	wait "$BROKER_PID" 2>/dev/null || true
	BROKER_PID=
}
trap stop EXIT

# Straight into the table (the API would do, slower); a reconciliation
# given here must carry its owners, as the API would have stamped them.
make_things() {
	local recon=${2:-'{}'}
	psql_ -v recon="$recon" <<SQL
INSERT INTO doppelganger.things (application, name, uid, creation_timestamp, generation,
                                 resource_version, reconciliation)
SELECT 'bench', 'device' || i, gen_random_uuid(), now(), 1, gen_random_uuid(), :'recon'
FROM generate_series(0, $1 - 1) i;
VACUUM ANALYZE doppelganger.things;
SQL
}

consumed() { psql_ -c "SELECT coalesce(sum(next_offset), 0) FROM doppelganger.offsets"; }

stream() {
	local events=$1 things=$2 t0 t1
	t0=$(now_ms)
	"$DG_ROOT/tools/bin/dg-fleet" -b "$BOOTSTRAP" -t events -a bench -n "$things" -c "$events" -r 0 -q >/dev/null
	while [ "$(consumed)" -lt "$events" ]; do sleep 0.05; done
	t1=$(now_ms)
	awk -v n="$events" -v ms=$((t1 - t0)) 'BEGIN { printf "%.0f", n * 1000 / ms }'
}
