/**
 * `objinfer export`: the results (or the errors) of a pipeline as a file other tools read:
 * Parquet, CSV, JSON lines, Label Studio tasks with predictions for people to review, or a
 * FiftyOne dataset folder. Where the config has ground truth, results carry it beside the prediction.
 * Rows come through the read port (either backend, the filters of `objinfer results`);
 * Parquet is written by DuckDB in memory, so `top_k` stays a list of structs.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { writeAtomically, writeFolderAtomically } from './outputFiles';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { csv, type Row } from './cli/output';
import { readErrors, readResults } from './reads';
import type { ErrorRow, ResultFilter, ResultRow } from './backends/port';
import type { RunSpec } from './config';
import type { ExportFormat } from './exportFormats';
import { truthLookup } from './evaluation';
import { writeFiftyOne } from './exportFiftyOne';

/** The columns of `results` and of exports, in one order: the same with no rows as with many (a CSV header always). */
export const RESULT_COLUMNS = ['uri', 'generation', 'label', 'score', 'top_k', 'model_version', 'run_id', 'predicted_at'] as const;
export const ERROR_COLUMNS = ['uri', 'generation', 'error', 'kind', 'model_version', 'run_id', 'failed_at'] as const;

/** DuckDB types of the exported columns: what `read_json` is told, so that nothing is guessed. */
const RESULT_TYPES = {
  uri: 'VARCHAR',
  generation: 'BIGINT',
  model_version: 'VARCHAR',
  label: 'VARCHAR',
  score: 'DOUBLE',
  top_k: 'STRUCT(label VARCHAR, "index" INTEGER, score DOUBLE)[]',
  run_id: 'VARCHAR',
  predicted_at: 'TIMESTAMPTZ',
};
const ERROR_TYPES = {
  uri: 'VARCHAR',
  generation: 'BIGINT',
  model_version: 'VARCHAR',
  error: 'VARCHAR',
  kind: 'VARCHAR',
  run_id: 'VARCHAR',
  failed_at: 'TIMESTAMPTZ',
};

export interface ExportRequest {
  format: ExportFormat;
  out: string;
  errors?: boolean;
  filter?: ResultFilter;
}

export interface ExportOutcome {
  format: ExportFormat;
  out: string;
  rows: number;
  table: 'results' | 'errors';
  /** Rows that carry a ground truth (when the config has one). */
  withGroundTruth?: number;
  /** fiftyone: the one prediction version exported. */
  modelVersion?: string | null;
}

/** The column results exports add when the config has ground truth: the true class as a model label. */
export const GROUND_TRUTH_COLUMN = 'ground_truth';

/** A result as `results -o json` and exports write it: typed, snake_case, top_k a list of objects. */
export const resultRecord = (r: ResultRow): Row => ({
  uri: r.uri,
  generation: r.generation,
  label: r.label,
  score: r.score,
  top_k: r.topK.map((t) => ({ label: t.label, index: t.index, score: t.score })),
  model_version: r.modelVersion,
  run_id: r.runId,
  predicted_at: r.predictedAt,
});

export const errorRecord = (e: ErrorRow): Row => ({
  uri: e.uri,
  generation: e.generation,
  error: e.error,
  kind: e.kind,
  model_version: e.modelVersion,
  run_id: e.runId,
  failed_at: e.failedAt,
});

/**
 * Label Studio's import format: one task per image with the model's answer as a prediction
 * (a `choices` result with its score), for an image-classification labelling config whose
 * `<Choices name="choice" toName="image">` holds the model's labels. Where the ground truth
 * is known (`truthOf`, as a model label) it is the task's annotation, beside the prediction.
 */
export function labelStudioTasks(rows: ResultRow[], truthOf?: (uri: string) => string | undefined): object[] {
  const choice = (label: string) => ({ from_name: 'choice', to_name: 'image', type: 'choices', value: { choices: [label] } });
  return rows.map((r) => ({
    data: { image: r.uri, objinfer: { generation: r.generation, run_id: r.runId, top_k: r.topK } },
    ...(truthOf?.(r.uri) !== undefined ? { annotations: [{ result: [choice(truthOf(r.uri)!)] }] } : {}),
    predictions: [
      {
        model_version: r.modelVersion,
        score: r.score,
        result: [{ ...choice(r.label), score: r.score }],
      },
    ],
  }));
}

/** Escapes a path for a single-quoted SQL string. */
const sqlString = (text: string) => `'${text.replace(/'/g, "''")}'`;

async function writeParquet(records: Row[], types: Record<string, string>, out: string): Promise<void> {
  const scratch = await mkdtemp(join(tmpdir(), 'objinfer-export-'));
  try {
    const lines = join(scratch, 'rows.jsonl');
    await writeFile(lines, records.map((r) => JSON.stringify(r)).join('\n'));
    const columns = `{${Object.entries(types)
      .map(([name, type]) => `${sqlString(name)}: ${sqlString(type)}`)
      .join(', ')}}`;
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    try {
      const source = records.length
        ? `read_json(${sqlString(lines)}, format = 'newline_delimited', columns = ${columns})`
        : `(SELECT ${Object.entries(types)
            .map(([name, type]) => `NULL::${type} AS "${name}"`)
            .join(', ')} LIMIT 0)`;
      await connection.run(`COPY (SELECT * FROM ${source}) TO ${sqlString(out)} (FORMAT PARQUET)`);
    } finally {
      connection.closeSync();
      instance.closeSync();
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

export async function exportRows(spec: RunSpec, request: ExportRequest): Promise<ExportOutcome> {
  const filter = { ...request.filter };
  const table = request.errors ? 'errors' : 'results';
  const { format, out } = request;
  if (format === 'label-studio' || format === 'fiftyone') {
    if (request.errors) throw new Error(`--format ${format} exports predictions; errors have none to review`);
    const rows = await readResults(spec, filter);
    const truthOf = await truthLookup(spec);
    if (format === 'fiftyone') {
      const written = await writeFolderAtomically(out, (folder) => writeFiftyOne(folder, rows, truthOf));
      return {
        format,
        out,
        rows: written.samples,
        table,
        modelVersion: written.modelVersion,
        ...(truthOf ? { withGroundTruth: written.withGroundTruth } : {}),
      };
    }
    const tasks = labelStudioTasks(rows, truthOf);
    await writeAtomically(out, (file) => writeFile(file, `${JSON.stringify(tasks, null, 2)}\n`));
    return { format, out, rows: rows.length, table, ...(truthOf ? { withGroundTruth: rows.filter((r) => truthOf(r.uri) !== undefined).length } : {}) };
  }
  if (request.errors) {
    const records = (await readErrors(spec, filter)).map(errorRecord);
    await writeRecords(format, out, records, [...ERROR_COLUMNS], ERROR_TYPES);
    return { format, out, rows: records.length, table };
  }
  const truthOf = await truthLookup(spec);
  const rows = await readResults(spec, filter);
  const records = rows.map((r) => (truthOf ? { ...resultRecord(r), [GROUND_TRUTH_COLUMN]: truthOf(r.uri) ?? null } : resultRecord(r)));
  const columns = truthOf ? [...RESULT_COLUMNS, GROUND_TRUTH_COLUMN] : [...RESULT_COLUMNS];
  await writeRecords(format, out, records, columns, truthOf ? { ...RESULT_TYPES, [GROUND_TRUTH_COLUMN]: 'VARCHAR' } : RESULT_TYPES);
  return { format, out, rows: records.length, table, ...(truthOf ? { withGroundTruth: rows.filter((r) => truthOf(r.uri) !== undefined).length } : {}) };
}

async function writeRecords(format: 'csv' | 'jsonl' | 'parquet', out: string, records: Row[], columns: string[], types: Record<string, string>): Promise<void> {
  await writeAtomically(out, async (file) => {
    if (format === 'csv') await writeFile(file, csv(records, columns));
    else if (format === 'jsonl') await writeFile(file, records.map((r) => JSON.stringify(r)).join('\n') + (records.length ? '\n' : ''));
    else await writeParquet(records, types, file);
  });
}
