#!/usr/bin/env bash
# start.sh starts the local stack on 127.0.0.1: ClickHouse, PostgreSQL, NATS with JetStream and versitygw
# (S3). It is idempotent: servers already answering are left alone. State lives in .local/ of the repo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$root/.bin"
state="$root/.local"
mkdir -p "$state/nats" "$state/s3" "$state/logs" "$state/run"

wait_for() { # what seconds command...
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "start: $what did not come up in ${secs}s" >&2
  return 1
}

# ClickHouse (Debian's 18.16 package and its init script).
if ! clickhouse-client -q 'SELECT 1' >/dev/null 2>&1; then
  install -d -o clickhouse -g clickhouse /var/run/clickhouse-server 2>/dev/null || true
  /etc/init.d/clickhouse-server start >"$state/logs/clickhouse-start.log" 2>&1 || true
  wait_for clickhouse 90 clickhouse-client -q 'SELECT 1'
fi
echo "start: clickhouse $(clickhouse-client -q 'SELECT version()') on 127.0.0.1:9000"

# PostgreSQL 15 with a flamestream role and database.
if ! runuser -u postgres -- psql -qAtc 'SELECT 1' >/dev/null 2>&1; then
  pg_ctlcluster 15 main start || true
  wait_for postgresql 30 runuser -u postgres -- psql -qAtc 'SELECT 1'
fi
if [ "$(runuser -u postgres -- psql -qAtc "SELECT 1 FROM pg_roles WHERE rolname='flamestream'")" != 1 ]; then
  runuser -u postgres -- psql -qc "CREATE ROLE flamestream LOGIN PASSWORD 'flamestream' CREATEDB"
fi
if [ "$(runuser -u postgres -- psql -qAtc "SELECT 1 FROM pg_database WHERE datname='flamestream'")" != 1 ]; then
  runuser -u postgres -- psql -qc "CREATE DATABASE flamestream OWNER flamestream"
fi
echo "start: postgresql on 127.0.0.1:5432 (database flamestream)"

# NATS with JetStream.
if ! curl -fsS 'http://127.0.0.1:8222/healthz?js-enabled-only=true' >/dev/null 2>&1; then
  nohup "$bin/nats-server" -a 127.0.0.1 -p 4222 -js -sd "$state/nats" -m 8222 \
    >"$state/logs/nats.log" 2>&1 &
  echo $! >"$state/run/nats.pid"
  wait_for nats 30 curl -fsS 'http://127.0.0.1:8222/healthz?js-enabled-only=true'
fi
echo "start: nats-server with JetStream on 127.0.0.1:4222"

# versitygw as the S3 server (posix backend: a bucket is a directory).
if ! curl -s -o /dev/null http://127.0.0.1:7070/ 2>/dev/null; then
  ROOT_ACCESS_KEY=flamestream ROOT_SECRET_KEY=flamestream-secret \
    nohup "$bin/versitygw" --port 127.0.0.1:7070 --keep-alive --quiet posix "$state/s3" >"$state/logs/versitygw.log" 2>&1 &
  echo $! >"$state/run/versitygw.pid"
  wait_for versitygw 30 curl -s -o /dev/null http://127.0.0.1:7070/
fi
echo "start: versitygw (S3) on 127.0.0.1:7070"
