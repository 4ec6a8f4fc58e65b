/** `objinfer results`, `report` and `export`: the predictions and errors, for people and for other tools. What they do is in ../actions/results. */
import { Command, Option } from 'commander';
import { EXPORT_FORMATS, type ExportFormat } from '../../exportFormats';
import { isoTime, outputOption, positiveInt, score, versionPair } from '../common';
import type { Format } from '../output';

function withRowFilters(command: Command): Command {
  return command
    .option('--label <label>', 'only this label')
    .option('--min-score <score>', 'only scores at least this', score)
    .option('--max-score <score>', 'only scores at most this', score)
    .option('--run <runId>', 'only rows written by this run')
    .option('--since <time>', 'only rows written since (ISO 8601)', isoTime)
    .option('--history', "also rows of images' earlier generations, and of images gone from the bucket (default: each image as it is now)");
}
export interface ResultFlags {
  config?: string;
  limit: number;
  all?: boolean;
  errors?: boolean;
  label?: string;
  minScore?: number;
  maxScore?: number;
  run?: string;
  since?: Date;
  history?: boolean;
  output: Format;
}

export interface ReportFlags {
  config?: string;
  out?: string;
  run?: string;
  history?: boolean;
  compare?: [string, string];
  output: Format;
}
export interface EvaluateFlags {
  config?: string;
  predictionVersion?: string;
  truthFromPath?: string;
  labelMap?: string;
  output: Format;
}
export type CompareFlags = Omit<EvaluateFlags, 'predictionVersion'>;
export type ExportFlags = Omit<ResultFlags, 'limit'> & { format: ExportFormat; out?: string };

const actions = () => import('../actions/results');

export function addResultCommands(program: Command): void {
  const results = program
    .command('results')
    .description('print predictions (or, with --errors, failures), newest first; readable while a run is writing')
    .option('-c, --config <file>', 'pipeline config (default: ./objinfer.yaml, else the demo)')
    .option('-n, --limit <n>', 'rows to show', positiveInt, 20)
    .option('--all', 'every row (no limit)')
    .option('--errors', 'show the errors table (images that could not be classified) instead');
  withRowFilters(results)
    .addOption(outputOption())
    .action(async (flags: ResultFlags) => (await actions()).printResults(flags));

  program
    .command('report')
    .description('write one HTML file (opens offline) with counts, charts, a gallery of thumbnails with their top-k, and the errors')
    .option('-c, --config <file>', 'pipeline config (default: ./objinfer.yaml, else the demo)')
    .option('--out <file>', 'where to write it (default: ./<pipeline>-report.html)')
    .option('--run <runId>', 'only rows written by this run')
    .option('--history', "also rows of images' earlier generations, and of images gone from the bucket")
    .option('--compare <A,B>', 'the two prediction versions whose changed images it shows side by side (default: the two newest)', versionPair)
    .addOption(outputOption())
    .action(async (options: ReportFlags) => (await actions()).report(options));

  const exporter = program
    .command('export')
    .description('write the results (or, with --errors, the failures) as Parquet, CSV, JSON lines or Label Studio tasks')
    .option('-c, --config <file>', 'pipeline config (default: ./objinfer.yaml, else the demo)')
    .addOption(new Option('--format <format>', 'file format').choices(EXPORT_FORMATS).makeOptionMandatory())
    .option('--out <file>', 'where to write it (default: ./<pipeline>-results.<ext>)')
    .option('--errors', 'the errors table instead of the results');
  withRowFilters(exporter)
    .addOption(outputOption())
    .action(async (options: ExportFlags) => (await actions()).exportTable(options));

  program
    .command('evaluate')
    .description('how often the model is right on the images whose class is known: accuracy, top-k, per-class precision/recall/F1, confusion matrix')
    .option('-c, --config <file>', 'pipeline config (default: ./objinfer.yaml, else the demo)')
    .option(
      '--prediction-version <version>',
      "the prediction version to evaluate, as the model_version column holds it (default: the newest written; not --version, which prints objinfer's)",
    )
    .option('--truth-from-path <pattern>', 'instead of the config\'s evaluation.groundTruth: the class is in the path, e.g. "flowers/{label}/*"')
    .option('--label-map <file>', "ground-truth names to the model's labels (JSON object, or CSV truth,label)")
    .addOption(outputOption())
    .action(async (options: EvaluateFlags) => (await import('../actions/evaluate')).printEvaluation(options));

  program
    .command('compare')
    .description(
      "what changed between two prediction versions: images whose top-1 changed, the flips between labels, and with ground truth both accuracies and McNemar's test",
    )
    .argument('<a>', 'the first prediction version (the model_version column)')
    .argument('<b>', 'the second')
    .option('-c, --config <file>', 'pipeline config (default: ./objinfer.yaml, else the demo)')
    .option('--truth-from-path <pattern>', 'instead of the config\'s evaluation.groundTruth: the class is in the path, e.g. "flowers/{label}/*"')
    .option('--label-map <file>', "ground-truth names to the model's labels (JSON object, or CSV truth,label)")
    .addOption(outputOption())
    .action(async (a: string, b: string, options: CompareFlags) => (await import('../actions/evaluate')).printComparison([a, b], options));
}
