/** DDL for the local warehouse: the tables of DESIGN §4 plus objinfer's own bookkeeping. */
import { quote } from './warehouse';

export const TOP_K_TYPE = 'STRUCT(label VARCHAR, "index" INTEGER, score DOUBLE)[]';

export const BOOKKEEPING_DDL = [
  'CREATE SCHEMA IF NOT EXISTS _objinfer',
  `CREATE TABLE IF NOT EXISTS _objinfer.datasets (
     name VARCHAR PRIMARY KEY, location VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS _objinfer.connections (
     project VARCHAR, location VARCHAR, name VARCHAR, service_account VARCHAR NOT NULL,
     created_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (project, location, name))`,
  `CREATE TABLE IF NOT EXISTS _objinfer.grants (
     bucket VARCHAR, member VARCHAR, role VARCHAR, granted_at TIMESTAMPTZ NOT NULL,
     PRIMARY KEY (bucket, member, role))`,
  `CREATE TABLE IF NOT EXISTS _objinfer.buckets (path VARCHAR PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS _objinfer.object_tables (
     dataset VARCHAR, name VARCHAR, connection VARCHAR NOT NULL, source_uris VARCHAR[] NOT NULL,
     PRIMARY KEY (dataset, name))`,
  `CREATE TABLE IF NOT EXISTS _objinfer.models (
     dataset VARCHAR, name VARCHAR, version VARCHAR NOT NULL, model_type VARCHAR NOT NULL,
     model_path VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (dataset, name))`,
];

export function objectTableDdl(dataset: string, table: string): string {
  return `CREATE TABLE IF NOT EXISTS ${quote(dataset)}.${quote(table)} (
    uri VARCHAR PRIMARY KEY, generation BIGINT NOT NULL, content_type VARCHAR, size BIGINT NOT NULL,
    md5_hash VARCHAR NOT NULL, updated TIMESTAMPTZ NOT NULL)`;
}

export function resultsDdl(dataset: string, table: string): string {
  return `CREATE TABLE IF NOT EXISTS ${quote(dataset)}.${quote(table)} (
    uri VARCHAR NOT NULL, generation BIGINT NOT NULL, model_version VARCHAR NOT NULL,
    label VARCHAR NOT NULL, score DOUBLE NOT NULL, top_k ${TOP_K_TYPE} NOT NULL,
    probabilities FLOAT[], run_id VARCHAR NOT NULL, predicted_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (uri, generation, model_version))`;
}

export function errorsDdl(dataset: string, table: string): string {
  return `CREATE TABLE IF NOT EXISTS ${quote(dataset)}.${quote(table)} (
    uri VARCHAR NOT NULL, generation BIGINT NOT NULL, model_version VARCHAR NOT NULL,
    error VARCHAR NOT NULL, run_id VARCHAR NOT NULL, failed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (uri, generation, model_version))`;
}

export function labelsDdl(dataset: string, table: string): string {
  return `CREATE TABLE IF NOT EXISTS ${quote(dataset)}.${quote(table)} (
    model_version VARCHAR NOT NULL, "index" INTEGER NOT NULL, label VARCHAR NOT NULL,
    PRIMARY KEY (model_version, "index"))`;
}
