/**
 * BigQuery jobs with IDs the caller derives (never random): inserting an ID that exists
 * (409) attaches to that job instead of running the statement twice, so a retry after a
 * lost response finds the job it started. Jobs are polled to the end and cancelled when
 * the caller's signal aborts.
 */
import type { BigQuery, Job, JobMetadata, Query } from '@google-cloud/bigquery';
import { setTimeout as sleep } from 'node:timers/promises';

export interface JobRequest {
  jobId: string;
  query: string;
  params?: Record<string, unknown>;
  types?: Record<string, string | string[]>;
  dryRun?: boolean;
}

export interface JobOutcome {
  job: Job;
  metadata: JobMetadata;
  /** Present when the job finished with an error. */
  error?: { reason?: string; message: string };
  /** True when the job already existed and this call attached to it. */
  attached: boolean;
}

function httpCode(error: unknown): number | undefined {
  return (error as { code?: number })?.code;
}

/** Starts (or attaches to) the job and waits for it to finish. */
export async function runJob(
  bigquery: BigQuery,
  location: string,
  request: JobRequest,
  options: { onPoll?: (jobId: string) => void; signal?: AbortSignal; pollMs?: number } = {},
): Promise<JobOutcome> {
  let job: Job;
  let attached = false;
  try {
    const query: Query = {
      query: request.query,
      jobId: request.jobId,
      location,
      useLegacySql: false,
      params: request.params,
      types: request.types,
      dryRun: request.dryRun,
    };
    [job] = await bigquery.createQueryJob(query);
  } catch (error) {
    if (httpCode(error) !== 409) throw error;
    job = bigquery.job(request.jobId, { location });
    attached = true;
  }
  let delay = options.pollMs ?? 200;
  for (;;) {
    options.onPoll?.(request.jobId); // the caller heartbeats the job it waits on
    const [metadata] = (await job.getMetadata()) as unknown as [JobMetadata];
    if (metadata.status?.state === 'DONE' || request.dryRun) {
      const result = metadata.status?.errorResult;
      return { job, metadata, attached, error: result ? { reason: result.reason ?? undefined, message: result.message ?? 'job failed' } : undefined };
    }
    if (options.signal?.aborted) {
      await job.cancel().catch(() => undefined);
      options.signal.throwIfAborted();
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 2000);
  }
}

/** Reasons BigQuery gives for failures that a new job may not meet. */
export const TRANSIENT_JOB_REASONS = new Set(['backendError', 'internalError', 'rateLimitExceeded', 'jobBackendError', 'jobInternalError']);
