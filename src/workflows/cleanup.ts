/**
 * cleanupPipeline: the procedure's last section. Removes what objinfer created for a
 * pipeline and nothing else; data, the dataset, the connection and the bucket only when
 * asked (`deleteData`, the CLI's --yes).
 */
import { proxyActivities } from '@temporalio/workflow';
import type { PipelineActivities } from '../activities';
import type { StepOutcome } from '../backends/backend';
import type { PipelineConfig } from '../config';
import { NON_RETRYABLE_ERROR_TYPES } from '../errors';

export interface CleanupInput {
  config: PipelineConfig;
  deleteData: boolean;
}

const { cleanup } = proxyActivities<PipelineActivities>({
  startToCloseTimeout: '10m',
  summary: 'cleanup: remove what objinfer created',
  retry: { initialInterval: 1000, backoffCoefficient: 2, maximumInterval: 30_000, maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES },
});

export async function cleanupPipeline(input: CleanupInput): Promise<StepOutcome[]> {
  return cleanup(input.config, input.deleteData);
}
