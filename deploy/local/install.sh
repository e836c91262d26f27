#!/usr/bin/env bash
# install.sh installs every server the local stack needs: Debian packages for ClickHouse, PostgreSQL and
# Chromium, and pinned Go binaries for nats-server, the nats CLI and versitygw (into .bin/ of the repo).
# It is idempotent: what is already installed is left alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$root/.bin"
mkdir -p "$bin"

need_apt=()
command -v clickhouse-server >/dev/null 2>&1 || need_apt+=(clickhouse-server clickhouse-client)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql-15)
if [ "${FLAMESTREAM_SKIP_CHROMIUM:-}" = "" ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

goinstall() { # name module@version
  local name=$1 mod=$2
  if [ ! -x "$bin/$name" ] || [ "$(cat "$bin/.$name.version" 2>/dev/null)" != "$mod" ]; then
    echo "install: go install $mod"
    GOBIN="$bin" go install "$mod"
    echo "$mod" >"$bin/.$name.version"
  fi
}
goinstall nats-server github.com/nats-io/nats-server/v2@v2.15.2
goinstall nats github.com/nats-io/natscli/nats@v0.5.0
goinstall versitygw github.com/versity/versitygw/cmd/versitygw@v1.8.0
echo "install: done"
