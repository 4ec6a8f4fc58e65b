import type { SearchAttributePair } from '@temporalio/common';
import type { RunSpec } from '../config';
import { SearchAttributes } from './contract';

/** The search attributes a run starts with (stage and images done are updated as it goes). */
export function searchAttributesFor(spec: RunSpec): SearchAttributePair[] {
  return [
    { key: SearchAttributes.pipeline, value: spec.name },
    { key: SearchAttributes.backend, value: spec.backend },
    { key: SearchAttributes.project, value: spec.project },
    { key: SearchAttributes.dataset, value: spec.dataset },
    { key: SearchAttributes.model, value: spec.model.name },
    { key: SearchAttributes.stage, value: 'preflight' },
    { key: SearchAttributes.imagesDone, value: 0 },
  ];
}
