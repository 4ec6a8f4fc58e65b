#!/bin/sh
# Creates Temporal's databases and schemas in PostgreSQL (idempotent: safe on every start).
set -eu
sql() { temporal-sql-tool --plugin postgres12 --ep postgresql -p 5432 -u "$POSTGRES_USER" --pw "$POSTGRES_PWD" "$@"; }
until nc -z postgresql 5432; do echo 'waiting for postgresql'; sleep 1; done
for db in temporal temporal_visibility; do
  sql --db "$db" create || true   # exists on restart
done
sql --db temporal setup-schema -v 0.0 || true
sql --db temporal update-schema -d /etc/temporal/schema/postgresql/v12/temporal/versioned
sql --db temporal_visibility setup-schema -v 0.0 || true
sql --db temporal_visibility update-schema -d /etc/temporal/schema/postgresql/v12/visibility/versioned
echo 'schema ready'
