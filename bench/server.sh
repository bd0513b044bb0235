#!/usr/bin/env bash
# Benchmarks of `gantry server` on the local backend: webhook -> first step running
# (p50 of 20), 10 builds x 20 steps, server RSS idle and during. Figures are printed with a
# baseline measured in the same run. Only 127.0.0.1 is contacted.
# Run by hand: bash bench/server.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p gantry
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
python3 bench/server_bench.py "$target_dir/release/gantry"
