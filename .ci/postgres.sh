#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for the history tests (installed by
# .ci/system.sh; this script installs nothing).
# Prints the DSN to use; the data directory lives under $1 (default: a new temp dir).
set -euo pipefail
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "PostgreSQL is not installed: run .ci/system.sh (Debian's postgresql package)" >&2
  exit 1
fi
id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
root=${1:-$(mktemp -d)}
mkdir -p "$root"
chown postgres "$root"
port=${PGPORT_FOR_TESTS:-55432}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$bindir/initdb" -D "$root/data" -U postgres -A trust >/dev/null
as_pg "$bindir/pg_ctl" -D "$root/data" -l "$root/log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$root -c fsync=off" start >&2
as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres plait_test >&2
echo "postgresql://postgres@127.0.0.1:$port/plait_test"
