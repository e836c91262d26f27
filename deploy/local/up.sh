#!/usr/bin/env bash
# up.sh runs `flamestream all` in the background against the local stack, creates the demo user and an
# agent token, sends an hour of demo profiles, and prints where the UI is. Run after start.sh (the Taskfile's
# `up` task does all of it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$root/.bin"
state="$root/.local"
mkdir -p "$state/logs" "$state/run"
export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
addr=${FLAMESTREAM_INGEST_ADDR:-127.0.0.1:8080}
user=${FLAMESTREAM_ADMIN_USER:-admin}
password=${FLAMESTREAM_ADMIN_PASSWORD:-flamestream}

if [ -f "$state/run/flamestream.pid" ] && kill -0 "$(cat "$state/run/flamestream.pid")" 2>/dev/null; then
  kill "$(cat "$state/run/flamestream.pid")"
  sleep 1
fi
FLAMESTREAM_LOG_LEVEL=warn "$bin/flamestream" migrate >/dev/null
"$bin/flamestream" user add "$user" "$password" >/dev/null
FLAMESTREAM_LOG_FORMAT=json nohup "$bin/flamestream" all >"$state/logs/flamestream.log" 2>&1 &
echo $! >"$state/run/flamestream.pid"
for _ in $(seq 1 150); do
  curl -fsS "http://$addr/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://$addr/readyz" >/dev/null || { echo "up: flamestream did not become ready; see $state/logs/flamestream.log" >&2; exit 1; }
token=$("$bin/flamestream" token create --service demo --name demo-agents | tail -n 1)
"$bin/flamestream" demo -url "http://$addr" -token "$token" -service demo -hosts 3 -minutes 60
echo
echo "Flamestream is running: http://$addr  (user: $user  password: $password)"
echo "Agent token for service demo: $token"
echo "Logs: $state/logs/flamestream.log    Stop: go tool task down"
