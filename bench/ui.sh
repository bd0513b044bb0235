#!/usr/bin/env bash
# Web UI benchmark in headless Chromium: a build page with a 100,000-line step log, time to
# the first log line painted and to the last line in the DOM, next to baselines measured in
# the same run (a static HTML page with the same 100,000 lines, and a 1,000-line log).
# Needs chromium and chromedriver (apt-get install chromium chromium-driver).
# Run by hand: bash bench/ui.sh [rounds]   (figures: bench/ui/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
export GANTRY_BENCH_ROUNDS=${1:-5}
cargo test --release --quiet -p gantry-server --test browser_bench -- \
  --ignored --nocapture --test-threads=1 2>&1 |
  grep -v '^running \|^test \|^$\|^test result'
