/**
 * The activities a pipeline run calls, with the options of each kind of step, and how their
 * failures read: the workflow decides on these (see pipeline.ts runSlice and waitingOutIam).
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  proxyActivities,
  TimeoutFailure,
  type ActivityOptions,
  type RetryPolicy,
} from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { PipelineActivities } from '../activities';
import type { RunSpec } from '../config';
import { ErrorType, NON_RETRYABLE_ERROR_TYPES } from '../errors';

const RETRY: RetryPolicy = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES };

/** Attempts a batch gets before the workflow looks at why it keeps failing. */
export const BATCH_ATTEMPTS = 5;

/**
 * The three ways steps are run, each its own proxy so that no option leaks into another:
 * provisioning steps are retried a bounded number of times; steps that read through the
 * connection wait out IAM propagation for as long as `iam.propagationTimeout` allows, with
 * no attempt cap; batches get a few attempts, then the workflow decides (see runSlice).
 */
export function stepsFor(spec: RunSpec) {
  const heartbeatTimeout = spec.batch.heartbeatTimeoutMs;
  const provisioning: ActivityOptions = { startToCloseTimeout: '5m', heartbeatTimeout, retry: { ...RETRY, maximumAttempts: 10 } };
  const throughConnection: ActivityOptions = {
    // A bucket's metadata refresh can take minutes; heartbeats notice a dead worker sooner.
    startToCloseTimeout: '30m',
    heartbeatTimeout,
    scheduleToCloseTimeout: spec.iam.propagationTimeoutMs,
    retry: { ...RETRY, backoffCoefficient: 1.5, maximumInterval: '20s' }, // no maximumAttempts: unlimited
  };
  const batches: ActivityOptions = {
    startToCloseTimeout: '30m',
    heartbeatTimeout,
    // A cancelled run ends only when its batches have stopped: nothing writes after it.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { ...RETRY, maximumInterval: '60s', maximumAttempts: BATCH_ATTEMPTS },
  };
  return {
    provisioning: proxyActivities<PipelineActivities>(provisioning),
    throughConnection: proxyActivities<PipelineActivities>(throughConnection),
    batches: proxyActivities<PipelineActivities>(batches),
  };
}

/** The timeout behind a failed activity when its worker stopped heartbeating or never finished. */
export function workerDeath(error: unknown): TimeoutFailure | undefined {
  if (!(error instanceof ActivityFailure) || !(error.cause instanceof TimeoutFailure)) return undefined;
  const { timeoutType } = error.cause;
  return timeoutType === TimeoutType.HEARTBEAT || timeoutType === TimeoutType.START_TO_CLOSE ? error.cause : undefined;
}

/** An activity that failed with an error a later attempt may not meet. */
export function isRetryable(error: unknown): boolean {
  const cause = error instanceof ActivityFailure ? error.cause : undefined;
  return cause instanceof ApplicationFailure && !cause.nonRetryable && !NON_RETRYABLE_ERROR_TYPES.includes(cause.type as ErrorType);
}

/** Walks a failure's causes for an ApplicationFailure of the given type. */
export function findFailure(error: unknown, type: string): ApplicationFailure | undefined {
  let current: unknown = error;
  while (current instanceof Error) {
    if (current instanceof ApplicationFailure && current.type === type) return current;
    current = current.cause;
  }
  return undefined;
}
