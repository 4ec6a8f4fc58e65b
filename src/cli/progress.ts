/** Shows a run's progress: a bar on a terminal, a line per change elsewhere (CI, logs). */
import { SingleBar } from 'cli-progress';
import type { PipelineProgress } from '../workflows/contract';
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
    const payload = {
      stage: p.stage.padEnd(9),
      batches: `${p.batchesDone}/${p.batchesTotal}`,
      failures: p.imagesFailed,
      eta: p.etaSeconds !== undefined ? formatDuration(p.etaSeconds * 1000) : '-',
    };
    if (!this.bar) {
      this.bar = new SingleBar({
        stream: this.stream,
        format: '{stage} |{bar}| {value}/{total} images | batches {batches} | failures {failures} | ETA {eta}',
        hideCursor: true,
        clearOnComplete: false,
      });
      this.bar.start(Math.max(p.imagesTotal, 1), p.imagesDone, payload);
    }
    this.bar.setTotal(Math.max(p.imagesTotal, 1));
    this.bar.update(p.imagesDone, payload);
  }

  stop(): void {
    this.bar?.stop();
  }
}
