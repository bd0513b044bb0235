#!/usr/bin/env bash
# Makes sure PostgreSQL server binaries (initdb, pg_ctl) are installed, for the Postgres
# half of gantry-store's conformance suite. The tests start and remove their own
# throwaway cluster; this script only installs. Idempotent: does nothing when present.
set -euo pipefail

have_initdb() {
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

if have_initdb; then
  echo "postgres: $(ls -d /usr/lib/postgresql/*/bin/initdb | tail -n 1)"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# postgresql-15 where the distribution has it; otherwise the distribution's default.
if apt-cache show postgresql-15 >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
else
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
# The package may start a cluster of its own; the tests do not use it.
if command -v pg_ctlcluster >/dev/null 2>&1; then
  for cluster in /etc/postgresql/*/main; do
    [ -d "$cluster" ] || continue
    version=$(basename "$(dirname "$cluster")")
    pg_ctlcluster "$version" main stop >/dev/null 2>&1 || true
  done
fi
have_initdb || { echo "postgres: initdb is still missing after install" >&2; exit 1; }
echo "postgres: installed $(ls -d /usr/lib/postgresql/*/bin/initdb | tail -n 1)"
