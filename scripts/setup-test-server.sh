#!/usr/bin/env bash
# The Temporal time-skipping test server (Java, from Maven Central: io.temporal:temporal-test-server,
# pinned), for the workflow tests in TestWorkflowEnvironment.createTimeSkipping. The SDK would
# download a native build from temporal.download; this machine reaches only package registries.
# Idempotent: does nothing when the pinned version is there.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=1.31.0
DIR=.objinfer/tools/temporal-test-server
stamp="$DIR/.version-$VERSION"
if [ -x "$DIR/temporal-test-server" ] && [ -f "$stamp" ]; then exit 0; fi
command -v mvn >/dev/null 2>&1 || { echo "the workflow tests need Maven (and Java) to fetch the Temporal test server: apt-get install maven" >&2; exit 1; }
echo "fetching io.temporal:temporal-test-server:$VERSION from Maven Central into $DIR" >&2
rm -rf "$DIR" && mkdir -p "$DIR"
cat > "$DIR/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>objinfer</groupId>
  <artifactId>temporal-test-server</artifactId>
  <version>1</version>
  <dependencies>
    <dependency><groupId>io.temporal</groupId><artifactId>temporal-test-server</artifactId><version>$VERSION</version></dependency>
  </dependencies>
</project>
POM
mvn -q -B -f "$DIR/pom.xml" dependency:copy-dependencies -DoutputDirectory="$PWD/$DIR/lib" >&2
cat > "$DIR/temporal-test-server" <<'SH'
#!/bin/sh
# Started by the TypeScript SDK as `temporal-test-server PORT [--enable-time-skipping]`.
exec java -cp "$(dirname "$0")/lib/*" io.temporal.testserver.TestServer "$@"
SH
chmod +x "$DIR/temporal-test-server"
touch "$stamp"
