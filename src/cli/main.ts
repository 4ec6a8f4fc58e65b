/**
 * The objinfer command line. Every command validates its input before touching anything,
 * prints one readable line and a hint on error, and exits with a documented code
 * (see `Exit`): 0 ok, 1 the run failed, 2 bad input, 3 Temporal unreachable, 4 cancelled,
 * 130/143 interrupted while watching. Each command lives in ./commands, by what it is about.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { addPipelineCommands } from './commands/pipeline';
import { addResultCommands } from './commands/results';
import { addRunCommands } from './commands/runs';
import { addServerCommands } from './commands/server';
import { commanderExit } from './common';
import { chooseVerbosity } from './logging';
import { addScheduleCommands } from './commands/schedule';

const VERSION = (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

export function buildProgram(): Command {
  const program = new Command('objinfer')
    .description('Image classification over object tables, as a durable Temporal pipeline')
    .version(VERSION, '-V, --version')
    .option('-v, --verbose', "show the Temporal SDK's log lines (one per event)")
    .showHelpAfterError('(run `objinfer --help` for usage)')
    .exitOverride();
  program.hook('preAction', (_root, command) => {
    chooseVerbosity(command.name() === 'worker' ? 'service' : program.opts<{ verbose?: boolean }>().verbose ? 'verbose' : 'quiet');
  });
  addPipelineCommands(program);
  addRunCommands(program);
  addResultCommands(program);
  addServerCommands(program);
  addScheduleCommands(program);
  return program;
}

/**
 * A reader that stops early (`objinfer results --all | head`) closes the pipe: that ends the
 * output, not in a stack trace. Nothing is left to say to a closed pipe, so exit quietly.
 */
function endQuietlyOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw error;
    });
  }
}

export async function main(argv: string[]): Promise<void> {
  endQuietlyOnClosedPipe();
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    // Help and version end here; any other error loads what can explain it.
    process.exitCode = error instanceof CommanderError ? commanderExit(error) : (await import('./errors')).reportError(error);
  }
}
