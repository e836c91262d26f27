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
# libchdb.so: ClickHouse 26.5 in-process (chDB), which the current-ClickHouse harness (internal/chcompat) loads
# through chdb-go without cgo. It ships in an npm package; kept in .local/chdb/ with its version.
chdb_version=26.5.3
chdb_dir="$root/.local/chdb"
if [ ! -f "$chdb_dir/libchdb.so" ] || [ "$(cat "$chdb_dir/version" 2>/dev/null)" != "$chdb_version" ]; then
  echo "install: npm @chdb/lib-linux-x64-gnu@$chdb_version (libchdb.so)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@chdb/lib-linux-x64-gnu@$chdb_version" >/dev/null)
  tar -xzf "$tmp"/chdb-lib-linux-x64-gnu-*.tgz -C "$tmp" package/libchdb.so
  mkdir -p "$chdb_dir"
  mv "$tmp/package/libchdb.so" "$chdb_dir/libchdb.so"
  echo "$chdb_version" >"$chdb_dir/version"
  rm -rf "$tmp"
fi
echo "install: done"
