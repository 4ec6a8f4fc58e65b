/**
 * preflight and provision, as a run does them before it plans, and as a watch does them once
 * for all its micro-batches: the same steps, in the same order, with IAM propagation waited out.
 */
import { ActivityFailure, ApplicationFailure, log, TimeoutFailure } from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { RunSpec } from '../config';
import { ErrorType } from '../errors';
import { formatDuration } from '../format';
import type { ModelArtifact, ModelDescription, PipelineRef, Stage, StepOutcome } from './contract';
import { provision } from './provision';
import { findFailure, isRetryable, type stepsFor } from './steps';

export interface Provisioned {
  provisioned: StepOutcome[];
  warnings: string[];
  artifact: ModelArtifact;
  model: ModelDescription;
}

export interface PrepareDeps {
  spec: RunSpec;
  ref: PipelineRef;
  steps: ReturnType<typeof stepsFor>;
  /** Called as each stage begins (progress, search attributes). */
  enter(stage: Stage): void;
}

export async function preflightAndProvision({ spec, ref, steps, enter }: PrepareDeps): Promise<Provisioned> {
  enter('preflight');
  const { warnings } = await steps.provisioning.preflight.executeWithOptions({ summary: 'preflight: check config and permissions' }, [ref]);
  enter('provision');
  const provisioned: StepOutcome[] = [];
  const { outcomes, artifact, model } = await provision({ spec, ref, steps, waitingOutIam: (step, work) => waitingOutIam(spec, step, work) });
  for (const step of outcomes.flat()) {
    provisioned.push({ step: step.step, action: step.action, detail: step.detail });
    warnings.push(...(step.warnings ?? []));
  }
  warnings.push(...(model.warnings ?? []));
  log.info('provisioned', { steps: provisioned.map((s) => `${s.step}: ${s.action}`) });
  return { provisioned, warnings, artifact, model };
}

/**
 * Runs a step that reads through the connection. Its retries wait out IAM propagation;
 * when the bound runs out, the failure says so instead of showing a bare timeout.
 */
export async function waitingOutIam<T>(spec: RunSpec, step: string, work: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    return await work();
  } catch (error) {
    const bound = formatDuration(spec.iam.propagationTimeoutMs);
    const waited = formatDuration(Date.now() - started);
    const pending = findFailure(error, ErrorType.IamPropagationPending);
    if (pending) {
      throw ApplicationFailure.create({
        type: ErrorType.IamPropagationTimeout,
        nonRetryable: true,
        message:
          `${step}: IAM permissions did not propagate within ${bound} ` +
          `(waited ${waited}; last error: ${pending.message}). Check the grant of roles/storage.objectViewer ` +
          "to the connection's service account, or raise iam.propagationTimeout.",
      });
    }
    // The same bound, run out by other errors (these steps retry without an attempt cap, so a
    // retryable failure ends them only at the bound) or while an attempt was still running.
    const timeout = error instanceof ActivityFailure && error.cause instanceof TimeoutFailure ? error.cause : undefined;
    const last = timeout ? timeout.cause : isRetryable(error) ? (error as ActivityFailure).cause : undefined;
    if (timeout?.timeoutType === TimeoutType.SCHEDULE_TO_CLOSE || (!timeout && last)) {
      const seen = last instanceof Error ? `last error: ${last.message}` : 'an attempt was still running';
      throw ApplicationFailure.create({
        type: ErrorType.IamPropagationTimeout,
        nonRetryable: true,
        message: `${step}: did not finish within iam.propagationTimeout, ${bound}, the bound on steps that read through the connection (waited ${waited}; ${seen}). Raise iam.propagationTimeout if this step needs longer.`,
      });
    }
    throw error;
  }
}
