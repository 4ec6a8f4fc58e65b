#!/usr/bin/env bash
# Builds goccy/bigquery-emulator (BigQuery's API over Google's ZetaSQL analyser) once, into
# a cache outside the clone keyed by version, and prints the binary's path. The gcp tests
# run every statement the backend issues through it.
#
# Offline-friendly: everything comes through the Go module proxy (`go install ...@latest`
# is refused there, so a scratch module pins the version). go-zetasql needs clang: g++ 12
# fails on it; Debian's clang-14 works. A first build takes ~15 minutes on 2 cores.
set -euo pipefail
VERSION=v0.6.6
CACHE="${OBJINFER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/objinfer}/bigquery-emulator/$VERSION"
BIN="$CACHE/bigquery-emulator"
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi

if ! command -v clang-14 >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "building the BigQuery emulator needs clang-14: sudo apt-get install -y clang-14" >&2
    exit 1
  fi
  echo "installing clang-14 (Debian) to build the BigQuery emulator" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends clang-14 >/dev/null
fi
command -v go >/dev/null 2>&1 || { echo "building the BigQuery emulator needs Go (https://go.dev/dl/)" >&2; exit 1; }

mkdir -p "$CACHE"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "building github.com/goccy/bigquery-emulator@$VERSION into $CACHE (once; ~15 minutes on 2 cores)" >&2
started=$(date +%s)
(
  cd "$work"
  go mod init objinfer-bigquery-emulator >/dev/null 2>&1
  go get "github.com/goccy/bigquery-emulator/cmd/bigquery-emulator@$VERSION" >&2
  CGO_ENABLED=1 CC=clang-14 CXX=clang++-14 go build -o "$BIN.partial" github.com/goccy/bigquery-emulator/cmd/bigquery-emulator >&2
)
mv "$BIN.partial" "$BIN"
echo "built the BigQuery emulator in $(( $(date +%s) - started ))s" >&2
echo "$BIN"
