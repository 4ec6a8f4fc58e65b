/**
 * The read side alone: what `results`, `report` and `export` need. Only the named backend's
 * reader is loaded, so reading a local warehouse loads neither Google's clients nor the
 * inference engines.
 */
import type { RunSpec } from '../config';
import type { ResultsPort } from './port';

export async function openResults(spec: RunSpec): Promise<ResultsPort> {
  if (spec.backend === 'local') {
    const { LocalResults } = await import('./local/results');
    return new LocalResults(spec);
  }
  const { openGcpResults } = await import('./gcp');
  return openGcpResults(spec);
}
