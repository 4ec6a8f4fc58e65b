#!/usr/bin/env bash
# System packages some tests use, from Debian: docker-compose (validates docker-compose.yml;
# no Docker engine needed), chromium (the Temporal UI browser test) and Maven with a JRE
# (fetches the Temporal time-skipping test server, see setup-test-server.sh). Installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
# pyarrow: an independent reader for the Parquet that `objinfer export` writes; Python's duckdb:
# the guide's example of reading the warehouse, with what `pip install duckdb` gives today (tests only).
# scikit-learn and statsmodels: the references `objinfer evaluate` and `compare` are held to (test/evaluation.test.ts).
PYARROW_VERSION=18.1.0
SKLEARN_VERSION=1.5.2
STATSMODELS_VERSION=0.14.4
# Their own dependencies, pinned so that a new release cannot change the reference.
REFERENCE_DEPS=(numpy==2.4.6 scipy==1.17.1 joblib==1.6.0 threadpoolctl==3.8.0 pandas==3.1.1 patsy==1.0.3 python-dateutil==4.0.0 tzdata==2026.6 packaging==26.4)
DUCKDB_VERSION=2.0.0
venv=.objinfer/tools/venv
if ! "$venv/bin/python" -c "import pyarrow, duckdb, sklearn, statsmodels, sys; sys.exit(pyarrow.__version__ != '$PYARROW_VERSION' or duckdb.__version__ != '$DUCKDB_VERSION' or sklearn.__version__ != '$SKLEARN_VERSION' or statsmodels.__version__ != '$STATSMODELS_VERSION')" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pyarrow==$PYARROW_VERSION" "duckdb==$DUCKDB_VERSION" "scikit-learn==$SKLEARN_VERSION" "statsmodels==$STATSMODELS_VERSION" "${REFERENCE_DEPS[@]}"
fi
# FiftyOne: the reader of `objinfer export --format fiftyone` (test/report-export.test.ts). It
# brings over a hundred packages (about 1 GB), so it has a venv of its own, outside the clone,
# keyed by the pinned set (test/support/fiftyone-requirements.txt, FiftyOne's release and its
# dependencies as pip resolved them).
FIFTYONE_VERSION=1.22.1
fiftyone_requirements=test/support/fiftyone-requirements.txt
fiftyone_key=$(sha256sum "$fiftyone_requirements" | cut -c1-12)
fiftyone_venv="${XDG_CACHE_HOME:-$HOME/.cache}/objinfer/fiftyone/$FIFTYONE_VERSION-$fiftyone_key"
if ! "$fiftyone_venv/bin/python" -c "import fiftyone.utils.data, sys; sys.exit(fiftyone.__version__ != '$FIFTYONE_VERSION')" 2>/dev/null; then
  echo "installing FiftyOne $FIFTYONE_VERSION for the export tests into $fiftyone_venv (once)" >&2
  rm -rf "$fiftyone_venv.partial"
  python3 -m venv "$fiftyone_venv.partial"
  "$fiftyone_venv.partial/bin/pip" install --quiet --disable-pip-version-check -r "$fiftyone_requirements"
  rm -rf "$fiftyone_venv"
  mv "$fiftyone_venv.partial" "$fiftyone_venv"
fi
ln -sfn "$fiftyone_venv" .objinfer/tools/fiftyone-venv
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "the tests need: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} (Debian packages) for the tests" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
