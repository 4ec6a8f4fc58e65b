/**
 * BigQuery jobs with IDs the caller derives (never random): inserting an ID that exists
 * (409) attaches to that job instead of running the statement twice, so a retry after a
 * lost response finds the job it started. Jobs are polled to the end and cancelled when
 * the caller's signal aborts. A statement BigQuery refuses at creation (its insert
 * response already holds errors; the client throws without a code) is not retried.
 */
import type { BigQuery, Job, JobMetadata, Query } from '@google-cloud/bigquery';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeGoogleError, type GoogleErrorInfo } from './errors';

export interface JobRequest {
  jobId: string;
  query: string;
  /** STRING and ARRAY<STRING> parameters: numbers and dates are cast in SQL, so every value travels as text. */
  params?: Record<string, string | string[]>;
}

export interface JobOutcome {
  job: Job;
  metadata: JobMetadata;
  /** Present when the job ran and failed (a failure at creation throws instead). */
  error?: GoogleErrorInfo;
  /** The job existed already (an earlier attempt started it): this call waited on it. */
  attached: boolean;
}

/**
 * Query parameters as the API defines them. Built here rather than by the client's
 * `params`/`types`, which sends `types` along as a field of the job (not one BigQuery defines).
 */
export function namedParameters(params: Record<string, string | string[]> = {}): Pick<Query, 'parameterMode' | 'queryParameters'> {
  const entries = Object.entries(params);
  if (entries.length === 0) return {};
  return {
    parameterMode: 'NAMED',
    queryParameters: entries.map(([name, value]) =>
      Array.isArray(value)
        ? { name, parameterType: { type: 'ARRAY', arrayType: { type: 'STRING' } }, parameterValue: { arrayValues: value.map((v) => ({ value: v })) } }
        : { name, parameterType: { type: 'STRING' }, parameterValue: { value } },
    ),
  };
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
    const query: Query = { query: request.query, jobId: request.jobId, location, useLegacySql: false, ...namedParameters(request.params) };
    [job] = await bigquery.createQueryJob(query);
  } catch (error) {
    if (describeGoogleError(error).kind !== 'conflict') throw error;
    job = bigquery.job(request.jobId, { location });
    attached = true;
  }
  let delay = options.pollMs ?? 200;
  for (;;) {
    options.onPoll?.(request.jobId); // the caller heartbeats the job it waits on
    const [metadata] = (await job.getMetadata()) as unknown as [JobMetadata];
    if (metadata.status?.state === 'DONE') {
      const result = metadata.status.errorResult;
      const error = result ? describeGoogleError({ message: result.message ?? 'job failed', reason: result.reason ?? undefined }) : undefined;
      return { job, metadata, error, attached };
    }
    if (options.signal?.aborted) {
      await job.cancel().catch(() => undefined);
      options.signal.throwIfAborted();
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 2000);
  }
}
