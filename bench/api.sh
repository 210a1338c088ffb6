#!/usr/bin/env bash
# bench/api.sh: dt_report_state calls per second against a baseline of a
# plain UPDATE of the same jsonb plus a pg_notify, one transaction each,
# measured in the same run on the same cluster.  The baseline is a single
# statement (UPDATE ... RETURNING feeding pg_notify), one round trip like
# the API call.
#
# Third, the same call over HTTP: PUT …/reportedStates through dg-gateway
# (bench/restload.mjs, keep-alive connections, as many as pgbench's clients),
# against the API call made directly.
#
# Each client count runs baseline and API alternately ROUNDS times and
# reports the median of the per-round ratios, which cancels most of the
# noise of a shared machine.  Durable commits (fsync on), as in production.
#
# Usage: bench/api.sh [seconds per run, default 8] [rounds, default 3]
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

SECONDS_PER_RUN=${1:-8}
ROUNDS=${2:-3}
THINGS=1000
DIR=/tmp/doppelganger-bench-api
PORT=55433

dg_install_packages
dg_build
dg_cluster_start "$DIR" "$PORT" "fsync = on" "synchronous_commit = on" "max_connections = 50"
GW_PID=
trap '[ -n "$GW_PID" ] && kill "$GW_PID"; dg_cluster_stop "$DIR"' EXIT

psql_() { as_postgres psql -XAtq -h "$DIR" -p "$PORT" -d postgres "$@"; }
psql_ -c "CREATE EXTENSION doppelganger" -c "
    SELECT count(doppelganger.dt_create_thing(jsonb_build_object('metadata',
        jsonb_build_object('application', 'bench', 'name', 'd' || i))))
    FROM generate_series(1, $THINGS) i" >/dev/null
# the baseline: the same jsonb shape in a plain table
psql_ -c "CREATE TABLE plain AS SELECT name, reported_state, generation FROM doppelganger.things" \
	-c "ALTER TABLE plain ADD PRIMARY KEY (name)" >/dev/null

as_root install -d -o postgres "$DIR/scripts"
as_postgres tee "$DIR/scripts/api.sql" >/dev/null <<EOF
\set id random(1, $THINGS)
\set v random(1, 1000000000)
SELECT doppelganger.dt_report_state('bench', 'd' || :id::text, jsonb_build_object('temp', :v::int, 'hum', :v::int % 100)) IS NOT NULL;
EOF
as_postgres tee "$DIR/scripts/baseline.sql" >/dev/null <<EOF
\set id random(1, $THINGS)
\set v random(1, 1000000000)
WITH u AS (
    UPDATE plain SET generation = generation + 1,
        reported_state = reported_state
            || jsonb_build_object('temp', jsonb_build_object('value', :v::int, 'lastUpdate', now()))
            || jsonb_build_object('hum', jsonb_build_object('value', :v::int % 100, 'lastUpdate', now()))
     WHERE name = 'd' || :id::text
    RETURNING name, generation)
SELECT pg_notify('thing_changes', json_build_object('op', 'updated', 'application', 'bench',
    'thing', name, 'generation', generation, 'resourceVersion', gen_random_uuid())::text) FROM u;
EOF

# the gateway, with a REST thread per client
"$DG_ROOT/gateway/bin/dg-gateway" --port 0 --pool 4 --db "dbname=postgres host=$DIR port=$PORT user=postgres" \
	>"$DIR.gw.out" 2>"$DIR.gw.log" &
GW_PID=$!
for _ in $(seq 100); do grep -q listening "$DIR.gw.out" 2>/dev/null && break; sleep 0.1; done
GW_URL=$(sed -n 's/^listening on //p' "$DIR.gw.out")
[ -n "$GW_URL" ] || { echo "the gateway did not start: $(tail -3 "$DIR.gw.log")" >&2; exit 1; }

rest() {
	node "$DG_ROOT/bench/restload.mjs" "$GW_URL" bench "$THINGS" "$1" "$SECONDS_PER_RUN" |
		perl -MJSON::PP -ne 'my $j = decode_json($_); die "REST calls failed: $_" if $j->{failed}; print $j->{rate}'
}

tps() {
	local out
	out=$(as_postgres pgbench -n -M prepared -c "$1" -j "$(($1 < 2 ? 1 : 2))" -T "$SECONDS_PER_RUN" \
		-f "$DIR/scripts/$2.sql" -h "$DIR" -p "$PORT" postgres 2>&1)
	sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | grep . || {
		echo "pgbench failed: $out" >&2
		exit 1
	}
}

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf '%-8s %-6s %14s %14s %8s %14s %9s\n' clients round "baseline tx/s" "api calls/s" ratio "REST calls/s" "REST/api"
for clients in 1 4; do
	ratios=()
	rest_ratios=()
	for round in $(seq 1 "$ROUNDS"); do
		b=$(tps "$clients" baseline)
		a=$(tps "$clients" api)
		g=$(rest "$clients")
		r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')
		rg=$(awk -v g="$g" -v a="$a" 'BEGIN { printf "%.2f", g / a }')
		ratios+=("$r")
		rest_ratios+=("$rg")
		printf '%-8s %-6s %14.0f %14.0f %8s %14.0f %9s\n' "$clients" "$round" "$b" "$a" "$r" "$g" "$rg"
	done
	printf 'clients=%s median ratio api/baseline = %s (target >= 0.70); REST through the gateway/api = %s\n' \
		"$clients" "$(median "${ratios[@]}")" "$(median "${rest_ratios[@]}")"
done
