/** What `objinfer demo`, `run`, `plan` and `cleanup` do (their flags are in ../commands/pipeline). */
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { cleanupPipeline, describePlan } from '../../client';
import { loadConfig } from '../../config';
import { formatPercent } from '../../format';
import { stateDir } from '../../stateDir';
import { resolveTarget, workflowUiUrl } from '../../temporal/connection';
import { Ids } from '../../workflows/contract';
import type { CleanupFlags, DemoFlags, PlanFlags, RunFlags } from '../commands/pipeline';
import { Exit, exitCodeOf } from '../common';
import { withTemporal } from '../connect';
import { printSummary, render } from '../output';
import { checkModelFirst, runPipeline, whileWorking } from '../run';

export async function demo(options: DemoFlags): Promise<void> {
  // What only the demo uses (images drawn with sharp, the report, the results table) is loaded here, not for `run`.
  const [{ prepareDemo }, { writeReport }, { printDemoResults }] = await Promise.all([import('../../demo'), import('../../report'), import('./results')]);
  const demo = await prepareDemo(join(stateDir(), 'demo'), { fresh: options.fresh, perLabel: options.imagesPerLabel });
  const added = demo.added ? `, and ${demo.added} more added since` : '';
  console.error(`demo inputs in ${demo.dir}: ${demo.images.length} generated images (one corrupt)${added}, config ${demo.configFile}`);
  const spec = loadConfig(demo.configFile);
  const target = { port: options.port, uiPort: options.uiPort };
  const summary = await runPipeline(spec, { worker: true, target });
  // Hints name the config as seen from here: the demo's absolute path would not fit a terminal line.
  const shownConfig = relative(process.cwd(), demo.configFile) || demo.configFile;
  printSummary(summary, 'table', shownConfig);
  await printDemoResults(demo.configFile, join(demo.dir, 'images'), 12, shownConfig);
  const { evaluate } = await import('../../evaluation');
  const evaluation = await evaluate(spec);
  const topK = evaluation.topK.at(-1);
  if (evaluation.accuracy !== null && topK) {
    console.log(
      `\nevaluated against the colour in each file name (${evaluation.evaluated} images): accuracy ${formatPercent(evaluation.accuracy)}, top-${topK.k} ${formatPercent(topK.accuracy)}` +
        `\n  per class, and the confusion matrix: objinfer evaluate --config ${shownConfig}`,
    );
  }
  const report = join(demo.dir, 'report.html');
  await writeReport(spec, { out: report });
  console.log(`\nthe report (images, labels, scores, errors), to open in a browser:\n  ${report}`);
  const url = workflowUiUrl(resolveTarget(process.env, options.port ? target : {}), Ids.pipeline(spec.name));
  if (url) console.log(`the run in the Temporal UI:\n  ${url}`);
  console.log(`run it again: only new or changed images are classified; its config:\n  ${demo.configFile}`);
}

export async function run(options: RunFlags): Promise<void> {
  const overrides = options.retryFailed ? { retryFailed: true } : {};
  const spec = loadConfig(options.config, overrides, { checkFiles: options.worker });
  const summary = await runPipeline(spec, { worker: options.worker, maxImages: options.maxImages });
  printSummary(summary, options.output, options.config);
  process.exitCode = exitCodeOf(summary);
  if (process.exitCode !== Exit.ok)
    console.error(`objinfer: no image was predicted: all ${summary.failed} failed (see why: objinfer results --errors --config ${options.config})`);
}

export async function plan(options: PlanFlags): Promise<void> {
  const spec = loadConfig(options.config, {}, { checkFiles: false });
  if (spec.backend === 'local' || existsSync(spec.model.source)) {
    for (const warning of await checkModelFirst(spec)) console.error(`objinfer: warning: ${warning}`);
  }
  const calls = await describePlan(spec);
  if (options.output !== 'table') {
    process.stdout.write(
      render(
        calls.map((c, i) => ({ order: i + 1, step: c.step, call: c.call, estimatedBytes: c.estimatedBytes ?? null, note: c.estimateNote ?? null })),
        options.output,
      ),
    );
    return;
  }
  calls.forEach((c, i) => {
    const bytes =
      c.estimatedBytes !== undefined
        ? `  -- dry run: ${c.estimatedBytes} bytes${c.estimateNote ? ` ${c.estimateNote}` : ''}`
        : c.estimateNote
          ? `  -- ${c.estimateNote}`
          : '';
    console.log(`${String(i + 1).padStart(2)}. ${c.step}${bytes}\n${c.call.replace(/^/gm, '    ')}`);
  });
  if (spec.backend === 'gcp' && !calls.some((c) => c.estimatedBytes !== undefined)) {
    console.log('\n(no dry-run estimates: they need Google credentials (gcloud auth application-default login) and the tables a first run creates)');
  }
}

export async function cleanup(options: CleanupFlags): Promise<void> {
  const spec = loadConfig(options.config, {}, { checkFiles: false });
  await withTemporal(async ({ client, target }) => {
    const outcomes = await whileWorking(options.worker, target, spec, () => cleanupPipeline(client, spec, { deleteData: options.yes ?? false }));
    process.stdout.write(
      render(
        outcomes.map((o) => ({ step: o.step, result: o.action, detail: o.detail })),
        options.output,
      ),
    );
  });
}
