#!/usr/bin/env bash
# Runs every benchmark and prints its figures as ratios against a baseline measured in the
# same run. Usage: bash bench/run.sh [local|docker|log_ingest|server|runners|ui]...
# Without arguments it runs local, docker, log_ingest and server; runners (1,000 builds
# twice per database) and ui (needs Chromium) take longer and run when named.
set -euo pipefail
cd "$(dirname "$0")/.."

which=("$@")
[ ${#which[@]} -gt 0 ] || which=(local docker log_ingest server)

for name in "${which[@]}"; do
  printf '\n### %s\n' "$name"
  bash "bench/$name.sh"
done
