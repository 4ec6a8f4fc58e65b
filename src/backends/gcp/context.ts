/**
 * What every module of the gcp backend shares: the spec, one set of Google clients per
 * pipeline (made once per worker), classified calls, statement jobs, and the record of what
 * objinfer created (the dataset's `_objinfer_created` table), which cleanup reads.
 */
import { createHash } from 'node:crypto';
import type { TableField } from '@google-cloud/bigquery';
import type { RunSpec } from '../../config';
import { createGcpClients, hasApplicationDefaultCredentials, type GcpClients, type GcpEndpoints } from './clients';
import { classifyGoogleError, classifyInfo, isAlreadyExists } from './errors';
import { runJob, type JobOutcome } from './jobs';

export const CREATED_TABLE = '_objinfer_created';

const CREATED_SCHEMA: TableField[] = [
  { name: 'kind', type: 'STRING', mode: 'REQUIRED' },
  { name: 'name', type: 'STRING', mode: 'REQUIRED' },
  { name: 'created_at', type: 'TIMESTAMP', mode: 'REQUIRED' },
];

export type CreatedKind = 'dataset' | 'connection' | 'bucket' | 'grant' | 'object' | 'table' | 'model' | 'reservation' | 'assignment';

export class GcpContext {
  readonly clients: GcpClients;
  /** Whether calls can be authorised: always with test endpoints, else when ADC are found (see hasApplicationDefaultCredentials). */
  readonly hasCredentials: boolean;

  constructor(
    readonly spec: RunSpec,
    private readonly endpoints?: GcpEndpoints,
  ) {
    this.clients = createGcpClients(spec, endpoints);
    this.hasCredentials = endpoints !== undefined || hasApplicationDefaultCredentials();
  }

  get dataset() {
    return this.clients.bigquery.dataset(this.spec.dataset);
  }

  /** Cloud Storage's JSON API root, for requests made without credentials (is a bucket public?). */
  get storageRoot(): string {
    return this.endpoints?.baseUrl ?? 'https://storage.googleapis.com';
  }

  get connectionName(): string {
    const { project, location, connection } = this.spec;
    return `projects/${project}/locations/${location.toLowerCase()}/connections/${connection}`;
  }

  /** Runs a Google call and turns its failure into a classified ObjinferError. */
  async call<T>(doing: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw classifyGoogleError(error, doing);
    }
  }

  /**
   * A statement that is safe to run again (DDL, a count): its job ID carries the time, so a
   * later run never attaches to an earlier run's job. Batch jobs use batchJobId instead.
   */
  statementJobId(kind: string, sql: string): string {
    const digest = createHash('sha256').update(sql).digest('hex').slice(0, 12);
    return `objinfer_${kind}_${digest}_${Date.now().toString(36)}`;
  }

  /** Runs a statement to the end; a failed job becomes a classified error. */
  async statement(doing: string, jobId: string, sql: string, params: Record<string, string | string[]> = {}, signal?: AbortSignal): Promise<JobOutcome> {
    return this.call(doing, async () => {
      const outcome = await runJob(this.clients.bigquery, this.spec.location, { jobId, query: sql, params }, { signal });
      if (outcome.error) throw classifyInfo(outcome.error, doing);
      return outcome;
    });
  }

  /** The rows of a finished job's result. */
  async rows<T>(outcome: JobOutcome): Promise<T[]> {
    const [rows] = await outcome.job.getQueryResults();
    return rows as T[];
  }

  async record(kind: CreatedKind, name: string): Promise<void> {
    await this.call('record what objinfer created', async () => {
      const table = this.dataset.table(CREATED_TABLE);
      const [exists] = await table.exists();
      if (!exists) {
        await this.dataset.createTable(CREATED_TABLE, { schema: CREATED_SCHEMA }).catch((error: unknown) => {
          if (!isAlreadyExists(error)) throw error;
        });
      }
      await table.insert([{ insertId: `${kind}:${name}`, json: { kind, name, created_at: new Date().toISOString() } }], { raw: true });
    });
  }

  /** What objinfer created, each once. */
  async created(): Promise<{ kind: CreatedKind; name: string }[]> {
    const table = this.dataset.table(CREATED_TABLE);
    const [exists] = await table.exists();
    if (!exists) return [];
    const [rows] = await table.getRows();
    const seen = new Map<string, { kind: CreatedKind; name: string }>();
    for (const row of rows as { kind: CreatedKind; name: string }[]) seen.set(`${row.kind}:${row.name}`, { kind: row.kind, name: row.name });
    return [...seen.values()];
  }
}
