/**
 * What every module of the local backend shares: the spec, the warehouse, the names of
 * things, and the labels of each model version (read once per process).
 */
import { join } from 'node:path';
import type { RunSpec } from '../../config';
import { labelOf } from '../common/model';
import { assertRoomToWrite } from './failures';
import { assertConnectionCanRead, localServiceAccount } from './iam';
import { BOOKKEEPING_DDL } from './schema';
import { patternRoot, pathToUri } from './storage';
import { quote, Warehouse, type Db } from './warehouse';

/** Warehouse files whose bookkeeping tables exist, by file identity: a recreated file gets them again. */
const bookkept = new Set<string>();

export class LocalContext {
  readonly warehouse: Warehouse;
  private readonly labels = new Map<string, Promise<string[]>>();

  constructor(readonly spec: RunSpec) {
    this.warehouse = new Warehouse(spec.local.warehouse);
  }

  /** Opens the warehouse (creating objinfer's bookkeeping tables in a new file) and runs `work`. */
  use<T>(work: (db: Db) => Promise<T>, options?: Parameters<Warehouse['use']>[1]): Promise<T> {
    assertRoomToWrite(this.spec);
    return this.warehouse.use(async (db, identity) => {
      const key = `${this.spec.local.warehouse}:${identity}`;
      if (!bookkept.has(key)) {
        for (const ddl of BOOKKEEPING_DDL) await db.run(ddl);
        bookkept.add(key);
      }
      return work(db);
    }, options);
  }

  transaction<T>(work: (db: Db) => Promise<T>): Promise<T> {
    return this.use((db) => db.transaction(() => work(db)));
  }

  /** A table of the pipeline's dataset, quoted. */
  table(name: string): string {
    return `${quote(this.spec.dataset)}.${quote(name)}`;
  }

  get bucketPath(): string {
    return join(this.spec.local.storage, this.spec.bucket);
  }

  get bucketUri(): string {
    return pathToUri(this.bucketPath);
  }

  get serviceAccount(): string {
    const { project, location, connection } = this.spec;
    return localServiceAccount(project, location, connection);
  }

  /** The folders the object table reads: the "buckets" of the source patterns. */
  get imageBuckets(): string[] {
    return [...new Set(this.spec.sourceUris.map((uri) => pathToUri(patternRoot(uri))))];
  }

  /** Throws what a read through the connection would meet while a grant is missing or propagating. */
  async assertCanRead(db: Db, buckets: string[]): Promise<void> {
    for (const bucket of buckets) {
      await assertConnectionCanRead(db, bucket, this.serviceAccount, this.spec.iam.simulatedPropagationDelayMs, this.spec.local.warehouse);
    }
  }

  /** The labels of a model version, from its labels table (written when the tables were provisioned). */
  labelsOf(version: string, classCount: number): Promise<string[]> {
    let labels = this.labels.get(version);
    if (!labels) {
      labels = this.use((db) =>
        db.all<{ label: string }>(`SELECT label FROM ${this.table(this.spec.results.labelsTable)} WHERE model_version = $1 ORDER BY "index"`, [version]),
      ).then((rows) => Array.from({ length: classCount }, (_, i) => rows[i]?.label ?? labelOf([], i)));
      labels.catch(() => this.labels.delete(version));
      this.labels.set(version, labels);
    }
    return labels;
  }
}
