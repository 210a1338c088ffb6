# scripts/lib.sh: shared by scripts/test, scripts/demo and the benchmarks.
#
# Installs what is missing (Debian 12 packages), builds and installs the
# extension, and runs throwaway PostgreSQL clusters as the postgres user
# (the server refuses to run as root).

DG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGBIN=/usr/lib/postgresql/15/bin
export PATH="$PGBIN:$PATH"

DG_PACKAGES=(
	build-essential pkg-config
	postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
	libtap-parser-sourcehandler-pgtap-perl libipc-run-perl libdbd-pg-perl
	libjson-c-dev librdkafka-dev duktape-dev kcat
	libwebsockets-dev libjwt-dev libssl-dev libpq-dev
	chromium curl procps valgrind python3-websockets openssl libjson-xs-perl
)
# Packages wanted only when their command is missing: a machine may have
# Node.js from elsewhere, whose bundled npm conflicts with Debian's.
DG_COMMANDS=(node:nodejs npm:npm)

dg_log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Run a command as postgres, keeping the environment the tests rely on.
as_postgres() {
	if [ "$(id -un)" = postgres ]; then
		"$@"
	elif [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- env PATH="$PATH" "$@"
	else
		sudo -u postgres env PATH="$PATH" "$@"
	fi
}

dg_install_packages() {
	local missing=() p
	for p in "${DG_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	for p in "${DG_COMMANDS[@]}"; do
		command -v "${p%%:*}" >/dev/null || missing+=("${p#*:}")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		dg_log "installing ${missing[*]}"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"${missing[@]}" >/dev/null
	fi
	# the Debian package starts a cluster on 5432; ours use their own ports
}

dg_build() {
	# DG_NO_BUILD=1 reuses what is installed (for quick reruns)
	[ -n "${DG_NO_BUILD:-}" ] && return 0
	dg_log "building"
	make -C "$DG_ROOT" -s -j2 all tools gateway >/dev/null
	as_root make -C "$DG_ROOT" -s install >/dev/null
}

# dg_cluster_start DIR PORT [conf lines...]: a fresh cluster, preloaded.
dg_cluster_start() {
	local dir=$1 port=$2
	shift 2
	as_root rm -rf "$dir"
	as_root install -d -o postgres -g postgres "$dir"
	as_postgres initdb -D "$dir/data" -U postgres -A trust --no-sync >/dev/null
	{
		echo "port = $port"
		echo "listen_addresses = '127.0.0.1'"
		echo "unix_socket_directories = '$dir'"
		echo "shared_preload_libraries = 'doppelganger'"
		echo "max_connections = 120"
		echo "fsync = off"
		echo "log_line_prefix = '%m [%p] %b '"
		printf '%s\n' "$@"
	} | as_postgres tee -a "$dir/data/postgresql.conf" >/dev/null
	as_postgres pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
}

dg_cluster_stop() {
	local dir=$1
	[ -d "$dir/data" ] && as_postgres pg_ctl -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}
