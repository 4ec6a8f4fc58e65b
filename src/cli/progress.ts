/** Shows a run's progress: a bar on a terminal, a line per change elsewhere (CI, logs). */
import { SingleBar } from 'cli-progress';
import type { PipelineProgress, PipelineSummary } from '../workflows/contract';
import { formatDuration } from '../duration';
import { progressLine } from './output';

export class ProgressView {
  private bar?: SingleBar;
  private lastLine = '';

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  update(p: PipelineProgress): void {
    if (!this.stream.isTTY) {
      const line = progressLine(p);
      if (line !== this.lastLine) this.stream.write(`${line}\n`);
      this.lastLine = line;
      return;
    }
    const planned = p.stage === 'infer' || p.stage === 'done';
    const payload = {
      stage: p.stage.padEnd(9),
      images: planned ? `${p.imagesDone}/${p.imagesTotal} images` : 'images -',
      batches: planned ? `${p.batchesDone}/${p.batchesTotal}` : '-',
      failures: p.imagesFailed,
      // Not "eta": cli-progress fills that name with its own estimate.
      remaining: p.etaSeconds === undefined ? '-' : p.etaSeconds < 1 ? '<1s' : formatDuration(p.etaSeconds * 1000),
    };
    if (!this.bar) {
      this.bar = new SingleBar({
        stream: this.stream,
        format: '{stage} |{bar}| {images} | batches {batches} | failures {failures} | ETA {remaining}',
        hideCursor: true,
        clearOnComplete: false,
      });
      this.bar.start(Math.max(p.imagesTotal, 1), p.imagesDone, payload);
    }
    this.bar.setTotal(Math.max(p.imagesTotal, 1));
    this.bar.update(p.imagesDone, payload);
  }

  /** Shows the finished run's final counts (the last poll may have come before the end). */
  complete(summary: PipelineSummary): void {
    const done = summary.predicted + summary.failed;
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
