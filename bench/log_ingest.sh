#!/usr/bin/env bash
# Log ingest into SQLite and Postgres: the `log_ingest` example of gantry-store (runner-shaped
# batches of 100-byte and 1 KiB lines, each step filled past its cap) built from this tree
# and, as the baseline of the same run, from BASELINE_REV (the store before logs were kept
# in chunks) with the same example. Postgres is a throwaway cluster with default settings
# (fsync and synchronous_commit on) in a temp dir; without Postgres binaries only SQLite
# is measured. Rounds alternate baseline and current so load on the machine hits both.
# Run by hand: bash bench/log_ingest.sh [MiB per line length] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-64}
rounds=${2:-2}
baseline_rev=${BASELINE_REV:-de764b6}
work=$(mktemp -d)
pg_ctl=""
cleanup() {
    if [ -n "$pg_ctl" ]; then as_postgres "$pg_ctl" -D "$work/pg" stop -m fast >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

# The baseline: the store at BASELINE_REV, measured by this tree's example.
mkdir "$work/baseline"
git archive "$baseline_rev" | tar -x -C "$work/baseline"
cp crates/gantry-store/examples/log_ingest.rs "$work/baseline/crates/gantry-store/examples/"
# Its own target dir: cargo names a workspace's crates by their path inside the workspace,
# so the baseline's store would overwrite this tree's in the shared one.
baseline_target="$target_dir/log-ingest-baseline"
(cd "$work/baseline" && CARGO_TARGET_DIR="$baseline_target" cargo build --quiet --release -p gantry-store --example log_ingest)
cp "$baseline_target/release/examples/log_ingest" "$work/log_ingest.baseline"
cargo build --quiet --release -p gantry-store --example log_ingest
cp "$target_dir/release/examples/log_ingest" "$work/log_ingest.current"

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -n "$bin" ] && [ -x "$bin/initdb" ]; then
    mkdir "$work/pg"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$work" "$work/pg"
    as_postgres "$bin/initdb" -A trust -U postgres -E UTF8 -D "$work/pg" >/dev/null
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_postgres "$bin/pg_ctl" -w -D "$work/pg" -l "$work/pg.log" \
        -o "-p $port -k $work -c listen_addresses=127.0.0.1" start >/dev/null
    pg_ctl="$bin/pg_ctl"
    echo "postgres: $("$bin/postgres" --version), default settings (fsync on, synchronous_commit on)"
else
    echo "postgres: skipped (no binaries under /usr/lib/postgresql/*/bin; .ci/postgres.sh installs them)"
fi

for round in $(seq 1 "$rounds"); do
    for which in baseline current; do
        if [ -n "$pg_ctl" ]; then
            db="bench_${which}_$round"
            "$bin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -c "CREATE DATABASE $db"
            export GANTRY_BENCH_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/$db"
        fi
        echo "round $round, $which:"
        "$work/log_ingest.$which" "$mib" 100 1024 | tee "$work/round$round.$which" | sed 's/^/  /'
    done
done

# Per database and line length: medians, and the median of each round's current/baseline.
python3 - "$work" "$rounds" <<'PY'
import re, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
rates = {}
for r in range(1, rounds + 1):
    for which in ("baseline", "current"):
        for line in open(f"{work}/round{r}.{which}"):
            m = re.match(r"(\w+): +(\d+)-byte lines: +([\d.]+) MB/s, +(\d+) lines/s", line)
            if m:
                runs = rates.setdefault((m[1], int(m[2])), {"baseline": [], "current": []})
                runs[which].append((float(m[3]), int(m[4])))
print("summary (medians of the rounds; ratio: current / baseline within a round):")
for (db, size), runs in rates.items():
    base, cur = runs["baseline"], runs["current"]
    ratio = statistics.median(c[0] / b[0] for b, c in zip(base, cur))
    mb = lambda xs: statistics.median(x[0] for x in xs)
    lines = lambda xs: statistics.median(x[1] for x in xs)
    print(f"  {db:8} {size:>4}-byte lines: baseline {mb(base):5.1f} MB/s {lines(base):7.0f} lines/s"
          f" | current {mb(cur):5.1f} MB/s {lines(cur):7.0f} lines/s | {ratio:.2f}x")
PY
