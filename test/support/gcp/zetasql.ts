/**
 * Google's ZetaSQL analyser, run on every statement the gcp backend sends, character for
 * character, before the emulator or the shim touch it (zetasql/Analyse.java says what its
 * catalog declares and from which document). One JVM per test file; requests go one at a time.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../paths';

export interface CatalogTable {
  /** project.dataset.table, as a statement names it. */
  path: string;
  /** An object table: the analyser declares Google's documented schema for it. */
  objectTable?: boolean;
  /** Otherwise its schema as tables.get gives it. */
  schema?: unknown[];
}

export interface CatalogModel {
  path: string;
  /** As models.get gives them: featureColumns and labelColumns (StandardSqlField). */
  inputs: unknown[];
  outputs: unknown[];
}

/** One of jobs.insert's queryParameters: its name and declared parameterType. */
export interface QueryParameter {
  name?: string;
  parameterType?: unknown;
}

export interface AnalysisRequest {
  sql: string;
  params: QueryParameter[];
  tables: CatalogTable[];
  models: CatalogModel[];
  /** project.location.connection */
  connections: string[];
}

export type Analysis = { ok: true; kinds: string[] } | { ok: false; error: string };

let classpath: string | undefined;

function analyserClasspath(): string {
  if (classpath) return classpath;
  const setup = spawnSync(join(PROJECT_ROOT, 'scripts', 'setup-zetasql.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (setup.status !== 0) throw new Error('ZetaSQL is not set up; run scripts/setup-zetasql.sh');
  return (classpath = setup.stdout.trim());
}

export class ZetaSqlAnalyser {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly waiting: ((line: string) => void)[] = [];
  private stderr = '';

  private constructor(private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => this.waiting.shift()?.(line));
    child.stderr!.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString()).slice(-4000)));
    child.on('exit', () => {
      for (const done of this.waiting.splice(0)) done(JSON.stringify({ ok: false, error: `the ZetaSQL analyser exited: ${this.stderr}` }));
    });
  }

  static async start(): Promise<ZetaSqlAnalyser> {
    const child = spawn('java', ['-cp', analyserClasspath(), 'Analyse'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const analyser = new ZetaSqlAnalyser(child);
    const ready = await analyser.next();
    if (!ready.includes('"ready"')) throw new Error(`the ZetaSQL analyser did not start: ${ready}`);
    return analyser;
  }

  /** The tables a script names, as ZetaSQL's parser finds them. */
  tables(sql: string): Promise<string[][]> {
    return this.ask<{ tables: string[][] }>({ op: 'tables', sql }).then((a) => a.tables ?? []);
  }

  /** ZetaSQL's answer; a refusal's position is written as BigQuery writes it (`at [line:column]`). */
  analyse(request: AnalysisRequest): Promise<Analysis> {
    return this.ask<Analysis>(request).then((a) => (a.ok ? a : { ok: false, error: a.error.replace(/ \[at (\d+:\d+)\]$/, ' at [$1]') }));
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }

  private ask<T>(request: object): Promise<T> {
    const answer = this.queue.then(async () => {
      const line = this.next();
      if (process.env.ZETASQL_LOG) appendFileSync(process.env.ZETASQL_LOG, `${JSON.stringify(request)}\n`);
      this.child.stdin!.write(`${JSON.stringify(request)}\n`);
      return JSON.parse(await line) as T;
    });
    this.queue = answer.catch(() => undefined);
    return answer;
  }

  private next(): Promise<string> {
    return new Promise((done) => this.waiting.push(done));
  }
}
