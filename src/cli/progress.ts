/**
 * Shows a run's progress: a bar on a terminal, a line per change elsewhere (CI, logs), with
 * why the run waits when it does (a locked warehouse, IAM propagating, Temporal away), or
 * else what a long step is doing (a big bucket's listing).
 */
import { SingleBar } from 'cli-progress';
import { formatDuration } from '../format';
import type { PipelineProgress, PipelineSummary } from '../workflows/contract';
import { printable, progressLine, truncate } from './output';

export class ProgressView {
  private bar?: SingleBar;
  private lastLine = '';
  private waitingFor = '';
  private stepsDoing = '';
  private last?: PipelineProgress;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  update(p: PipelineProgress): void {
    if (this.last && this.last.stage !== p.stage) this.stepsDoing = ''; // said by a step of the stage before
    this.last = p;
    if (!this.stream.isTTY) {
      const line = progressLine(p) + (this.waitingFor ? ` (waiting: ${this.waitingFor})` : this.stepsDoing ? ` (${this.stepsDoing})` : '');
      if (line !== this.lastLine) this.stream.write(`${line}\n`);
      this.lastLine = line;
      return;
    }
    const planned = p.stage === 'infer' || p.stage === 'done';
    const width = Math.max(20, (this.stream.columns ?? 100) - 90);
    const payload = {
      stage: p.stage.padEnd(9),
      images: planned ? `${p.imagesDone}/${p.imagesTotal} images` : 'images -',
      batches: planned ? `${p.batchesDone}/${p.batchesTotal}` : '-',
      failures: p.imagesFailed,
      // Not "eta": cli-progress fills that name with its own estimate.
      remaining: p.etaSeconds === undefined ? '-' : p.etaSeconds < 1 ? '<1s' : formatDuration(p.etaSeconds * 1000),
      waiting: this.waitingFor || this.stepsDoing ? ` | ${truncate(this.waitingFor || this.stepsDoing, width)}` : '',
    };
    if (!this.bar) {
      this.bar = new SingleBar({
        stream: this.stream,
        format: '{stage} |{bar}| {images} | batches {batches} | failures {failures} | ETA {remaining}{waiting}',
        hideCursor: true,
        clearOnComplete: false,
        barsize: 24,
      });
      this.bar.start(Math.max(p.imagesTotal, 1), p.imagesDone, payload);
    }
    this.bar.setTotal(Math.max(p.imagesTotal, 1));
    this.bar.update(p.imagesDone, payload);
  }

  /** Why the run does not move, or undefined when it moves again. */
  waiting(reason: string | undefined): void {
    this.waitingFor = reason ? printable(reason) : '';
    if (this.last) this.update(this.last);
  }

  /** What the run's long steps are doing, or undefined when none says (shown unless the run waits). */
  doing(what: string | undefined): void {
    this.stepsDoing = what ? printable(what) : '';
    if (this.last) this.update(this.last);
  }

  /** A message of its own (e.g. Temporal unreachable), printed above the bar. */
  note(text: string): void {
    if (this.bar) this.stream.write('\n');
    this.stream.write(`${printable(text)}\n`);
  }

  /** Shows the finished run's final counts (the last poll may have come before the end). */
  complete(summary: PipelineSummary): void {
    const done = summary.predicted + summary.failed;
    this.waitingFor = '';
    this.stepsDoing = '';
    this.update({
      pipeline: summary.pipeline,
      stage: 'done',
      batchesDone: summary.batches,
      batchesTotal: summary.batches,
      imagesDone: done,
      imagesTotal: done,
      imagesFailed: summary.failed,
      imagesAlreadyDone: summary.alreadyDone,
      startedAt: '',
    });
  }

  stop(): void {
    this.bar?.stop();
  }
}
