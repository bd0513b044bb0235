#!/usr/bin/env bash
# Benchmarks of gantry-runner on the local backend. Every figure is printed next to a
# baseline measured in the same run (fork/exec loop; the same command read from a pipe).
# Run by hand: bash bench/local.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p gantry-runner --example bench_local
run() { cargo run --quiet --release -p gantry-runner --example bench_local -- "$@"; }
run overhead
echo
run throughput
