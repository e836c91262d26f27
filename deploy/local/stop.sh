#!/usr/bin/env bash
# stop.sh stops what start.sh started. Data stays in .local/ (remove it for a clean slate).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
for name in flamestream versitygw nats; do
  pidf="$root/.local/run/$name.pid"
  if [ -f "$pidf" ]; then
    kill "$(cat "$pidf")" 2>/dev/null && echo "stop: $name"
    rm -f "$pidf"
  fi
done
/etc/init.d/clickhouse-server stop >/dev/null 2>&1 && echo "stop: clickhouse"
pg_ctlcluster 15 main stop >/dev/null 2>&1 && echo "stop: postgresql"
exit 0
