/**
 * scheduledPipeline: what a schedule starts. It runs the pipeline as a child under the
 * pipeline's own workflow ID, so that one pipeline has one run at a time whoever starts
 * it: a slot that finds a run going (started by hand) stands aside, and a manual run that
 * finds a scheduled one going attaches to it.
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { executeChild, ParentClosePolicy, workflowInfo } from '@temporalio/workflow';
import { Ids, SPEC_MEMO_KEY, type PipelineInput, type ScheduledOutcome } from './contract';
import { inferencePipeline } from './pipeline';
import { searchAttributesFor } from './searchAttributes';

export async function scheduledPipeline(input: PipelineInput): Promise<ScheduledOutcome> {
  const workflowId = Ids.pipeline(input.spec.name);
  try {
    const summary = await executeChild(inferencePipeline, {
      workflowId,
      args: [input],
      // Deleting or pausing a schedule never stops a run; cancelling the slot does.
      parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      memo: { [SPEC_MEMO_KEY]: input.spec },
      typedSearchAttributes: input.searchAttributes ? searchAttributesFor(input.spec) : undefined,
      staticSummary: `objinfer ${input.spec.name} (scheduled by ${workflowInfo().workflowId})`,
    });
    return { ran: true, summary };
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) {
      return { ran: false, reason: 'a run of this pipeline was already going (started by hand); this slot stood aside', runningWorkflowId: workflowId };
    }
    throw error;
  }
}
