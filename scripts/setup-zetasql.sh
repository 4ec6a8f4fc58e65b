#!/usr/bin/env bash
# Google's ZetaSQL analyser (BigQuery's SQL front end), Java client from Maven Central with
# its native JNI channel, for the gcp tests: every statement the backend sends is analysed
# as written (test/support/gcp/zetasql/Analyse.java). Fetched once into a cache outside the
# clone keyed by version; the analyser's class is compiled there, keyed by its source.
# Prints the classpath.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=2025.09.1
SRC=test/support/gcp/zetasql
CACHE="${OBJINFER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/objinfer}/zetasql/$VERSION"
grep -q "<version>$VERSION</version>" "$SRC/pom.xml" || { echo "setup-zetasql.sh: $SRC/pom.xml does not pin $VERSION" >&2; exit 1; }
pom_key=$(sha256sum "$SRC/pom.xml" | cut -c1-12)
if [ ! -f "$CACHE/lib/.complete-$pom_key" ]; then
  command -v mvn >/dev/null 2>&1 || { echo "the gcp tests need Maven (and Java 17) to fetch ZetaSQL: apt-get install maven" >&2; exit 1; }
  echo "fetching com.google.zetasql:zetasql-jni-channel:$VERSION from Maven Central into $CACHE" >&2
  rm -rf "$CACHE/lib" && mkdir -p "$CACHE/lib"
  mvn -q -B -f "$SRC/pom.xml" dependency:copy-dependencies -DoutputDirectory="$CACHE/lib" >&2
  touch "$CACHE/lib/.complete-$pom_key"
fi
key=$(cat "$SRC/Analyse.java" | sha256sum | cut -c1-12)
classes="$CACHE/classes-$key"
if [ ! -f "$classes/Analyse.class" ]; then
  rm -rf "$classes.partial" && mkdir -p "$classes.partial"
  javac -nowarn -d "$classes.partial" -cp "$CACHE/lib/*" "$SRC/Analyse.java" >&2
  rm -rf "$classes" && mv "$classes.partial" "$classes"
fi
echo "$classes:$CACHE/lib/*"
