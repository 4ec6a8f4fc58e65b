/**
 * Control of a running pipeline through a Workflow Update: pause (batches in flight finish,
 * none start), resume, the number of batches at once, and a budget of images for this run. The validator refuses a bad change
 * before it is accepted, so it never reaches history; an accepted change wakes the batch loop.
 */
import { ApplicationFailure, setHandler } from '@temporalio/workflow';
import { ErrorType } from '../errors';
import { controlUpdate, type RunControlChange, type RunControlState } from './contract';
import { MAX_CONCURRENCY } from './limits';

export class RunControl {
  private current: RunControlState;
  private wake!: () => void;
  /** Settles at the next accepted change: what the batch loop waits on beside its batches. */
  changed!: Promise<void>;

  constructor(initial: RunControlState, onChange: (state: RunControlState) => void) {
    this.current = { ...initial };
    this.arm();
    setHandler(
      controlUpdate,
      (change) => {
        this.current = { ...this.current, ...definedOnly(change) };
        onChange(this.state);
        this.wake();
        this.arm();
        return this.state;
      },
      { validator: validateControlChange },
    );
  }

  get state(): RunControlState {
    return { ...this.current };
  }

  get paused(): boolean {
    return this.current.paused;
  }

  get concurrency(): number {
    return this.current.concurrency;
  }

  /** Whether `done` images reach the budget, if there is one. */
  spent(done: number): boolean {
    return this.current.maxImages !== undefined && done >= this.current.maxImages;
  }

  private arm(): void {
    this.changed = new Promise<void>((resolve) => (this.wake = resolve));
  }
}

/** Throws, naming the field, for a change a running pipeline cannot take. */
export function validateControlChange(change: RunControlChange): void {
  const refuse = (message: string) => {
    throw ApplicationFailure.create({ type: ErrorType.InvalidConfig, nonRetryable: true, message });
  };
  if (typeof change !== 'object' || change === null) refuse('a control change is an object: { paused?, concurrency?, maxImages?, note? }');
  const unknown = Object.keys(change).filter((key) => !['paused', 'concurrency', 'maxImages', 'note'].includes(key));
  if (unknown.length) refuse(`unknown field(s) ${unknown.join(', ')}: a control change has paused, concurrency, maxImages and note`);
  if (change.paused !== undefined && typeof change.paused !== 'boolean') refuse('paused must be true or false');
  const n = change.concurrency;
  if (n !== undefined && (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_CONCURRENCY)) {
    refuse(`concurrency must be a whole number from 1 to ${MAX_CONCURRENCY} (got ${JSON.stringify(n)})`);
  }
  const budget = change.maxImages;
  if (budget !== undefined && (typeof budget !== 'number' || !Number.isInteger(budget) || budget < 1)) {
    refuse(`maxImages must be a whole number of at least 1 (got ${JSON.stringify(budget)})`);
  }
  if (change.note !== undefined && (typeof change.note !== 'string' || change.note.length > 500)) refuse('note must be text of at most 500 characters');
}

function definedOnly(change: RunControlChange): RunControlChange {
  return Object.fromEntries(Object.entries(change).filter(([, value]) => value !== undefined));
}
