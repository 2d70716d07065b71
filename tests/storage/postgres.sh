#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback for the storage tests (CI and developers' machines).
#   start: initdb into a temp dir as the `postgres` OS user, listen on 127.0.0.1 only, create a role
#          and a database, and print the SQLAlchemy URL for TDM1_CDS_TEST_POSTGRES_URL on stdout.
#   stop:  stop that cluster and remove its directory.
# Uses Debian's packages (apt-get install postgresql); it does not touch the system's own cluster.
set -euo pipefail

DATA_ROOT="${TDM1_CDS_PG_DIR:-/tmp/tdm1-cds-pg}"
PORT="${TDM1_CDS_PG_PORT:-55432}"
# The `postgres` user may not be allowed into the caller's directory (a root-owned checkout).
cd /
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
if [[ -z "$BIN" ]]; then
  echo "postgres.sh: PostgreSQL is not installed (apt-get install -y postgresql)" >&2
  exit 1
fi
# initdb and postgres refuse to run as root: run them as the package's `postgres` user when we are root.
as_pg() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "${1:-start}" in
  start)
    if [[ -f "$DATA_ROOT/data/postmaster.pid" ]] && as_pg "$BIN/pg_ctl" -D "$DATA_ROOT/data" status >/dev/null 2>&1; then
      :  # already running: reuse it
    else
      rm -rf "$DATA_ROOT"
      mkdir -p "$DATA_ROOT"
      [[ "$(id -u)" == 0 ]] && chown postgres:postgres "$DATA_ROOT"
      as_pg "$BIN/initdb" -D "$DATA_ROOT/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 --no-sync -E UTF8 >"$DATA_ROOT/initdb.log" 2>&1
      # fsync stays on: the kill -9 tests are about durability.
      as_pg "$BIN/pg_ctl" -D "$DATA_ROOT/data" -l "$DATA_ROOT/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA_ROOT -c max_connections=200" start >/dev/null
      as_pg "$BIN/psql" -h "$DATA_ROOT" -p "$PORT" -U postgres -d postgres -q -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE tdm1 LOGIN CREATEDB PASSWORD 'tdm1-test'" \
        -c "GRANT pg_signal_backend TO tdm1" \
        -c "CREATE DATABASE tdm1_test OWNER tdm1" >/dev/null
    fi
    echo "postgresql+psycopg://tdm1:tdm1-test@127.0.0.1:$PORT/tdm1_test"
    ;;
  stop)
    if [[ -d "$DATA_ROOT/data" ]]; then
      as_pg "$BIN/pg_ctl" -D "$DATA_ROOT/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$DATA_ROOT"
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
