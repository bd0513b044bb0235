#!/usr/bin/env bash
# Remote runners: 1,000 builds of 5 local steps drained by 4 `gantry runner` processes
# against `gantry server --no-local-runner`, next to the same builds drained by the
# server's in-process runner (capacity 4) in the same run. SQLite, and Postgres on a
# throwaway cluster when its binaries are installed (.ci/postgres.sh; BENCH_POSTGRES=0
# skips it; BENCH_SQLITE=0 runs Postgres only). Figures: bench/runners/README.md. Only 127.0.0.1 is contacted.
# Run by hand: bash bench/runners.sh   (BENCH_BUILDS=N for a shorter run)
set -euo pipefail
cd "$(dirname "$0")/.."

root=$(mktemp -d /tmp/gantry-bench-runners.XXXXXX)
pg_bin=""
pg_data=""

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Everything started here stops, and the temp dir goes, on success, failure or Ctrl-C.
cleanup() {
  if [ -f "$root/pids" ]; then
    while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done <"$root/pids"
    sleep 1
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$root/pids"
  fi
  if [ -n "$pg_data" ]; then
    as_postgres "$pg_bin/pg_ctl" -D "$pg_data" stop -m immediate >/dev/null 2>&1 || true
  fi
  rm -rf "$root"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_postgres() {
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || return 1
  local dir="$root/pg" port
  mkdir -p "$dir/data"
  if [ "$(id -u)" = 0 ]; then
    # Postgres refuses root: its cluster belongs to the postgres user, who must reach it.
    chmod 755 "$root"
    chown -R postgres:postgres "$dir"
  fi
  as_postgres "$pg_bin/initdb" -A trust -U postgres --no-sync -E UTF8 -D "$dir/data" >/dev/null || return 1
  pg_data="$dir/data"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # Durability off, as in the test suite's throwaway cluster.
  as_postgres "$pg_bin/pg_ctl" -w -t 60 -D "$pg_data" -l "$dir/server.log" \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || return 1
  pg_url="postgres://postgres@127.0.0.1:$port/postgres"
}

# GANTRY_BIN: an already-built release binary to measure instead of building one.
binary=${GANTRY_BIN:-}
if [ -z "$binary" ]; then
  cargo build --quiet --release -p gantry
  target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  binary="$target_dir/release/gantry"
fi

pg_url=""
if [ "${BENCH_POSTGRES:-1}" != 0 ]; then
  start_postgres || echo "postgres: no throwaway cluster (binaries missing, see .ci/postgres.sh, or it did not start); SQLite only"
fi
# A copy, so a rebuild during the run cannot change the binary under test.
cp "$binary" "$root/gantry"
if [ -n "${GANTRY_BIN:-}" ]; then
  echo "gantry: $GANTRY_BIN"
else
  echo "gantry at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo ' (crates/ with uncommitted changes)')"
fi
python3 bench/runners/bench.py "$root/gantry" "$root" "$pg_url" "${pg_bin:+$pg_bin/psql}"
