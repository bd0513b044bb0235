#!/usr/bin/env bash
# Docker backend benchmark: 20 trivial sequential steps through gantry-docker (directly and
# through the Runtime) against shell loops of `docker run --rm` measured in the same run:
# one on the default bridge (the target: ratio <= 1.0) and one on a user-defined bridge
# network, which is what the backend gives every workflow.
#
#   bash bench/docker.sh [--steps N] [--rounds R] [--calls]
#
# --calls adds how long each backend call took. See bench/docker/README.md for figures.
set -euo pipefail
cd "$(dirname "$0")/.."

# Whatever a failed run left (everything the benchmark makes is labelled gantry.bench).
cleanup() {
    docker ps -aq --filter label=gantry.bench | xargs -r docker rm -f >/dev/null
    docker network ls -q --filter label=gantry.bench | xargs -r docker network rm >/dev/null
    docker volume ls -q --filter label=gantry.bench | xargs -r docker volume rm >/dev/null
}
trap cleanup EXIT

bash .ci/images.sh
cargo build --release --quiet -p gantry-docker --example bench_docker
target/release/examples/bench_docker "$@"
