#!/usr/bin/env bash
# Runs every benchmark and prints its figures as ratios against a baseline measured in the
# same run. Usage: bash bench/run.sh [local|docker|log_ingest]...
set -euo pipefail
cd "$(dirname "$0")/.."

which=("$@")
[ ${#which[@]} -gt 0 ] || which=(local docker log_ingest)

for name in "${which[@]}"; do
  printf '\n### %s\n' "$name"
  bash "bench/$name.sh"
done
