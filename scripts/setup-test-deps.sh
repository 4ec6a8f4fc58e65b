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
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "the tests need: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} (Debian packages) for the tests" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
