/** What `objinfer evaluate` does (its flags are in ../commands/results). */
import { resolve } from 'node:path';
import { ConfigError } from '../../config';
import { formatPercent } from '../../format';
import { compare, evaluate, type Comparison, type Evaluation } from '../../evaluation';
import { topConfusion } from '../../evaluation/metrics';
import { pathPatternRegex, type EvaluationSpec } from '../../evaluation/spec';
import type { CompareFlags, EvaluateFlags } from '../commands/results';
import { UsageError } from '../common';
import { findConfig } from '../context';
import { render, table, terminalWidth, type Row } from '../output';

const percent = formatPercent;
const fixed = (x: number) => x.toFixed(3);

/** The config's evaluation section, with the flags in its place where given. */
function evaluationFrom(flags: CompareFlags, configured: EvaluationSpec | undefined): EvaluationSpec | undefined {
  if (flags.truthFromPath === undefined && flags.labelMap === undefined) return configured;
  let groundTruth = configured?.groundTruth;
  if (flags.truthFromPath !== undefined) {
    try {
      groundTruth = { kind: 'path', pattern: flags.truthFromPath, regex: pathPatternRegex(flags.truthFromPath) };
    } catch (error) {
      throw new ConfigError({ field: '--truth-from-path', problem: (error as Error).message });
    }
  }
  if (!groundTruth) return undefined;
  const labelMap = flags.labelMap === undefined ? configured?.labelMap : resolve(flags.labelMap);
  return { groundTruth, ...(labelMap ? { labelMap } : {}) };
}

function classRows(evaluation: Evaluation): Row[] {
  return evaluation.classes.map((c) => ({ label: c.label, precision: c.precision, recall: c.recall, f1: c.f1, support: c.support, predicted: c.predicted }));
}

/** For people: the numbers, the per-class table and the confusion matrix of the largest classes, fitted to the terminal. */
function evaluationText(e: Evaluation & { groundTruth: string }): string {
  const width = terminalWidth() ?? 100;
  const lines = [
    `prediction version ${e.modelVersion ?? '(none yet)'}, ground truth ${e.groundTruth}`,
    `images ${e.images}: evaluated ${e.evaluated}, without ground truth ${e.withoutGroundTruth}, without a prediction ${e.withoutPrediction}`,
  ];
  if (e.evaluated === 0) {
    lines.push(
      e.modelVersion === null
        ? 'nothing to evaluate: no predictions yet (objinfer run --config FILE)'
        : 'nothing to evaluate: no image has both a ground truth and a prediction; check the ground-truth pattern against `objinfer results` URIs',
    );
    return `${lines.join('\n')}\n`;
  }
  lines.push(`accuracy ${percent(e.accuracy)}   ${e.topK.map((t) => `top-${t.k} ${percent(t.accuracy)}`).join('  ')}`);
  lines.push(
    `macro    precision ${fixed(e.macro.precision)}  recall ${fixed(e.macro.recall)}  f1 ${fixed(e.macro.f1)}`,
    `weighted precision ${fixed(e.weighted.precision)}  recall ${fixed(e.weighted.recall)}  f1 ${fixed(e.weighted.f1)}`,
  );
  if (e.unmapped.length) lines.push(`not in the label map (compared as they are): ${e.unmapped.join(', ')}`);
  const classes = e.classes.map((c) => ({
    label: c.label,
    precision: fixed(c.precision),
    recall: fixed(c.recall),
    f1: fixed(c.f1),
    support: c.support,
    predicted: c.predicted,
  }));
  lines.push('', table(classes, { maxWidth: width }));
  const shown = topConfusion(e.confusion, 8);
  const matrix = shown.labels.map((label, i) => ({
    'truth \\ predicted': label,
    ...Object.fromEntries(shown.labels.map((l, j) => [l, shown.matrix[i]![j]!])),
  }));
  lines.push(
    '',
    `confusion matrix${shown.labels.length < e.confusion.labels.length ? ' (the 8 classes with most support; the rest summed)' : ''}:`,
    table(matrix, { maxWidth: width }),
  );
  return `${lines.join('\n')}\n`;
}

export async function printEvaluation(flags: EvaluateFlags): Promise<void> {
  const spec = findConfig(flags.config, { checkFiles: false });
  const evaluation = await evaluate(spec, { modelVersion: flags.predictionVersion, evaluation: evaluationFrom(flags, spec.evaluation) });
  if (flags.output === 'table') process.stdout.write(evaluationText(evaluation));
  else if (flags.output === 'json') process.stdout.write(`${JSON.stringify(evaluation, null, 2)}\n`);
  else process.stdout.write(render(classRows(evaluation), flags.output, { columns: ['label', 'precision', 'recall', 'f1', 'support', 'predicted'] }));
}

/** The flips between labels (off the diagonal), most first: what a person reads of the flip matrix. */
function flipRows(c: Comparison): Row[] {
  const rows = c.flips.labels.flatMap((from, i) => c.flips.labels.map((to, j) => ({ from, to, images: c.flips.matrix[i]![j]! })));
  return rows.filter((r) => r.from !== r.to && r.images > 0).sort((x, y) => y.images - x.images || (x.from < y.from ? -1 : 1));
}

function comparisonText(c: Comparison & { groundTruthFrom?: string }): string {
  const [a, b] = c.versions;
  const lines = [
    `${a} -> ${b}: ${c.images} images, ${c.both} with both predictions (only ${a}: ${c.onlyA}, only ${b}: ${c.onlyB}, neither: ${c.neither})`,
    `top-1 changed for ${c.changed} of ${c.both}${c.both ? ` (${percent(c.changed / c.both)})` : ''}`,
  ];
  const truth = c.groundTruth;
  if (truth) {
    const m = truth.mcnemar;
    const p = m.test === 'exact' ? m.exactPValue : m.chiSquarePValue!;
    lines.push(
      `ground truth ${c.groundTruthFrom} (${truth.evaluated} images): accuracy ${percent(truth.accuracy[0])} -> ${percent(truth.accuracy[1])}`,
      `  right only with ${a}: ${m.aRightBWrong}, only with ${b}: ${m.aWrongBRight}; McNemar (${m.test}) p ${p === 0 ? '< 1e-300' : `= ${p.toPrecision(3)}`}: ${m.significant ? 'a significant difference at the 5% level' : 'no significant difference at the 5% level'}`,
    );
  }
  const flips = flipRows(c);
  if (flips.length) lines.push('', `the flips (${a} label -> ${b} label):`, table(flips.slice(0, 20), { maxWidth: terminalWidth() ?? 100 }));
  if (flips.length > 20) lines.push(`... ${flips.length - 20} more: -o json has the whole matrix`);
  return `${lines.join('\n')}\n`;
}

export async function printComparison(versions: [string, string], flags: CompareFlags): Promise<void> {
  const spec = findConfig(flags.config, { checkFiles: false });
  const comparison = await compare(spec, versions, { evaluation: evaluationFrom(flags, spec.evaluation) });
  const missing = versions.filter((_, i) => (i === 0 ? comparison.onlyA : comparison.onlyB) + comparison.both === 0);
  if (missing.length) {
    throw new UsageError(
      `no current image has a prediction of version ${missing.join(' or ')}`,
      'the versions are in the model_version column: objinfer results -o csv',
    );
  }
  if (flags.output === 'table') process.stdout.write(comparisonText(comparison));
  else if (flags.output === 'json') process.stdout.write(`${JSON.stringify(comparison, null, 2)}\n`);
  else process.stdout.write(render(flipRows(comparison), flags.output, { columns: ['from', 'to', 'images'] }));
}
