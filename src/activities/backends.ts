/**
 * One backend per pipeline spec per worker: its Google clients, DuckDB handles, ONNX
 * sessions and label tables are made once and reused by every step and batch. Steps
 * carry only the spec's key; a worker that has not seen the spec yet reads it from the
 * run's memo, where the workflow keeps it.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { createBackend } from '../backends';
import type { Backend, BackendFactory } from '../backends/port';
import { specKey, type RunSpec } from '../config';
import { ErrorType } from '../errors';
import { SPEC_MEMO_KEY, type PipelineRef } from '../workflows/contract';

/** Backends kept at once; the least recently used is closed beyond this. */
const MAX_BACKENDS = 32;

export class BackendRegistry {
  private readonly specs = new Map<string, RunSpec>();
  private readonly backends = new Map<string, Backend>();

  constructor(private readonly create: BackendFactory = createBackend) {}

  /** Makes a spec known without a round trip (the CLI's in-process worker knows it already). */
  remember(spec: RunSpec): void {
    this.specs.set(specKey(spec), spec);
  }

  async get(ref: PipelineRef): Promise<Backend> {
    const cached = this.backends.get(ref.specKey);
    if (cached) {
      this.backends.delete(ref.specKey); // most recently used goes last
      this.backends.set(ref.specKey, cached);
      return cached;
    }
    const spec = this.specs.get(ref.specKey) ?? (await this.fetchSpec(ref));
    const backend = this.create(spec);
    this.backends.set(ref.specKey, backend);
    if (this.backends.size > MAX_BACKENDS) {
      const [oldestKey, oldest] = this.backends.entries().next().value as [string, Backend];
      this.backends.delete(oldestKey);
      void oldest.close?.();
    }
    return backend;
  }

  async close(): Promise<void> {
    await Promise.all([...this.backends.values()].map((b) => b.close?.()));
    this.backends.clear();
  }

  /** The spec from the memo of the run this activity belongs to. */
  private async fetchSpec(ref: PipelineRef): Promise<RunSpec> {
    const { info, client } = Context.current();
    const execution = info.workflowExecution;
    if (!execution) throw new Error('objinfer activities run only inside its workflows');
    const { workflowId, runId } = execution;
    const { memo } = await client.workflow.getHandle(workflowId, runId).describe();
    const spec = memo?.[SPEC_MEMO_KEY] as RunSpec | undefined;
    if (!spec || specKey(spec) !== ref.specKey) {
      throw ApplicationFailure.create({
        type: ErrorType.InvalidConfig,
        nonRetryable: true,
        message: `run ${workflowId} holds no pipeline spec with key ${ref.specKey} in its memo; start it with objinfer's client (objinfer run)`,
      });
    }
    this.specs.set(ref.specKey, spec);
    return spec;
  }
}
