#!/usr/bin/env bash
# The Python peer's packages, pinned, into the tools venv (benchmarks only; from PyPI).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.objinfer/tools/venv
PACKAGES=(onnxruntime==1.20.1 pillow==11.0.0 numpy==2.1.3)
stamp="$VENV/.peer-$(IFS=-; echo "${PACKAGES[*]}")"
[ -f "$stamp" ] && exit 0
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${PACKAGES[@]}"
touch "$stamp"
