#!/usr/bin/env bash
# bench/hooks.sh: the cost of user hooks on Kafka ingest, in one run.
#
#   (a) baseline  no hook: EVENTS events over THINGS things through the test
#                 broker and the processors (as bench/ingest.sh's subject)
#   (b)           each thing with a trivial JavaScript changed hook (it reads
#                 the new state and returns)
#   (c)           each thing with a SQL function changed hook
#                 (LANGUAGE sql, returns its context)
#
# Each phase on a fresh broker and cluster; ROUNDS rounds, alternating the
# phases, and the median of each ratio to the baseline of its own round.
# Target: (b) keeps at least 50% of (a).
#
# Usage: bench/hooks.sh [events, default 200000] [things, default 20000] [rounds, default 3]
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

EVENTS=${1:-200000}
THINGS=${2:-20000}
ROUNDS=${3:-3}
WORKERS=2
DIR=/tmp/doppelganger-bench-hooks
PORT=55436

dg_install_packages
dg_build
. "$(dirname "$0")/kafka.sh"

JS='{"changed": {"trivial": {"javaScript": "var t = context.newState.reportedState.temperature; if (t && t.value > 1000) log(\"hot\");", "owner": "postgres"}}}'
FN='{"changed": {"trivial": {"function": "public.bench_hook", "owner": "postgres"}}}'

phase() {
	local recon=$1 rate dead
	trap stop EXIT			# a subshell: the caller's trap does not reach here
	{
		start 1000
		psql_ -c "CREATE FUNCTION public.bench_hook(c jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS 'SELECT c'"
		make_things "$THINGS" "$recon"
	} >&2
	rate=$(stream "$EVENTS" "$THINGS")
	# every event went through the hook, none into the dead letters
	dead=$(psql_ -c "SELECT count(*) FROM doppelganger.dead_letters")
	if [ "$dead" != 0 ]; then
		dg_log "$dead dead letters: $(psql_ -c "SELECT message FROM doppelganger.dead_letters LIMIT 1")"
		exit 1
	fi
	stop >&2
	echo "$rate"
}

A=() B=() C=() RB=() RC=()
for r in $(seq "$ROUNDS"); do
	dg_log "round $r of $ROUNDS: $EVENTS events over $THINGS things, $WORKERS processors"
	a=$(phase '{}')
	b=$(phase "$JS")
	c=$(phase "$FN")
	[ -n "$a" ] && [ -n "$b" ] && [ -n "$c" ] || exit 1
	A+=("$a") B+=("$b") C+=("$c")
	RB+=("$(awk -v x="$b" -v y="$a" 'BEGIN { printf "%.2f", x / y }')")
	RC+=("$(awk -v x="$c" -v y="$a" 'BEGIN { printf "%.2f", x / y }')")
	dg_log "round $r: none $a/s, JavaScript $b/s (${RB[-1]}), SQL function $c/s (${RC[-1]})"
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf '\n%-44s %12s %10s\n' "" "events/s" "ratio"
printf '%-44s %12s %10s\n' "(a) no hook" "$(median "${A[@]}")" ""
printf '%-44s %12s %10s\n' "(b) trivial JavaScript changed hook" "$(median "${B[@]}")" "$(median "${RB[@]}")"
printf '%-44s %12s %10s\n' "(c) SQL function changed hook" "$(median "${C[@]}")" "$(median "${RC[@]}")"
printf '\nmedians of %s rounds; ratios per round: (b) %s, (c) %s; target (b) >= 0.50\n' \
	"$ROUNDS" "${RB[*]}" "${RC[*]}"
