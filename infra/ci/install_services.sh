#!/usr/bin/env bash
# Installs what the production-profile tests start on 127.0.0.1: Debian's PostgreSQL server.
# (S3 is moto's server, from the dev extra.) Idempotent: does nothing when it is present.
# The tests start their own throw-away cluster on a free port; Debian's default cluster,
# if the package starts one, is stopped so nothing else listens.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then
  echo "install_services: postgresql already installed ($(ls /usr/lib/postgresql))"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install_services: postgresql is missing and this is not root; install Debian's 'postgresql' package" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends postgresql
# Stop the package's default cluster, if it started one (no systemd here: pg_ctlcluster).
if command -v pg_lsclusters > /dev/null; then
  pg_lsclusters --no-header | while read -r version cluster _; do
    pg_ctlcluster "$version" "$cluster" stop 2>/dev/null || true
  done
fi
echo "install_services: installed $(ls /usr/lib/postgresql)"
