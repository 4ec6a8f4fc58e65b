/**
 * cleanupPipeline: the procedure's last section. Removes what objinfer created for a
 * pipeline and nothing else; data, the dataset, the connection and the bucket only when
 * asked (`deleteData`, the CLI's --yes).
 */
import { proxyActivities, upsertMemo, workflowInfo } from '@temporalio/workflow';
import type { PipelineActivities } from '../activities';
import { NON_RETRYABLE_ERROR_TYPES } from '../errors';
import { SPEC_MEMO_KEY, type CleanupInput, type StepOutcome } from './contract';

const { cleanup } = proxyActivities<PipelineActivities>({
  startToCloseTimeout: '10m',
  heartbeatTimeout: '1m',
  summary: 'cleanup: remove what objinfer created',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES },
});

export async function cleanupPipeline(input: CleanupInput): Promise<StepOutcome[]> {
  if (!workflowInfo().memo?.[SPEC_MEMO_KEY]) upsertMemo({ [SPEC_MEMO_KEY]: input.spec });
  return cleanup({ name: input.spec.name, specKey: input.specKey }, input.deleteData);
}
