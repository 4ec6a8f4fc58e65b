/** How an error reaches the user: one line, what to do, and the documented exit code. */
import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure, TerminatedFailure } from '@temporalio/common';
import { CommanderError } from 'commander';
import { ControlRefused, failureMessage, isTemporalUnavailable, NoSuchRun } from '../runs';
import { ConfigError, problemText } from '../config';
import { ObjinferError } from '../errors';
import { ScheduleSpecError } from '../schedules';
import { TemporalUnreachable } from '../temporal/connection';
import { commanderExit, Exit, Interrupted, UsageError } from './common';
import { printable } from './output';

export function reportError(error: unknown): number {
  const line = (message: string, hint?: string) => {
    console.error(`objinfer: ${printable(message)}`);
    if (hint) console.error(`  ${hint}`);
  };
  if (error instanceof CommanderError) return commanderExit(error);
  if (error instanceof Interrupted) return error.exitCode;
  if (error instanceof ConfigError) {
    const problems = error.problems.map((p) => printable(problemText(p)));
    // One line per problem: each escaped on its own, so the list keeps its line breaks.
    // A model that cannot be read or does not fit is the model's problem more often than the config's.
    const fix = error.field === 'model.source' ? 'fix or re-export the model (or point model.source at another)' : 'fix the config';
    if (problems.length === 1) line(`config error: ${problems[0]}`, `${fix} and run again; nothing was changed`);
    else line(`config errors (${problems.length}):`, `${problems.map((p) => `- ${p}`).join('\n  ')}\n  fix the config and run again; nothing was changed`);
    return Exit.usage;
  }
  if (error instanceof ScheduleSpecError) {
    line(`schedule error: ${error.message}`, 'nothing was created or changed; fix the flag and run again');
    return Exit.usage;
  }
  if (error instanceof UsageError) {
    line(error.message, error.hint);
    return Exit.usage;
  }
  if (error instanceof ControlRefused) {
    line(error.message, error.hint);
    return Exit.usage;
  }
  if (error instanceof NoSuchRun) {
    line(error.message, 'see the runs with `objinfer list`');
    return Exit.usage;
  }
  if (error instanceof TemporalUnreachable || isTemporalUnavailable(error)) {
    line((error as Error).message.split('\n')[0]!, 'set TEMPORAL_ADDRESS (or a profile in temporal.toml), or unset it to use a local dev server');
    return Exit.temporalUnreachable;
  }
  if (error instanceof ObjinferError) {
    line(error.message);
    return Exit.failed;
  }
  if (error instanceof WorkflowFailedError && (error.cause instanceof CancelledFailure || error.cause instanceof TerminatedFailure)) {
    line(`the run was ${error.cause instanceof CancelledFailure ? 'cancelled' : 'terminated'}; finished batches are kept; run it again to go on`);
    return Exit.cancelled;
  }
  const file = fileError(error);
  if (file) {
    line(file.message, file.hint);
    return file.exitCode;
  }
  line(`pipeline failed: ${failureMessage(error)}`, 'see the run in the Temporal UI for the full history; fix the cause and run again (finished work is kept)');
  return Exit.failed;
}

/** A plain file error of this process (a missing folder, a full disk), said as one: it is not the pipeline's failure. */
function fileError(error: unknown): { message: string; hint: string; exitCode: number } | undefined {
  const { code, path, syscall } = error as NodeJS.ErrnoException;
  if (!(error instanceof Error) || !code || !syscall) return undefined;
  const where = path ? ` ${path}` : '';
  if (code === 'ENOSPC')
    return { message: `no space left on device writing${where}`, hint: 'free some space or write elsewhere (--out), then run again', exitCode: Exit.failed };
  if (code === 'ENOENT') return { message: `no such file or folder:${where}`, hint: 'create the folder, or choose another path (--out)', exitCode: Exit.usage };
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return { message: `not allowed to ${syscall}${where} (${code})`, hint: 'choose a path you may write, or fix its permissions', exitCode: Exit.usage };
  }
  if (code === 'EISDIR') return { message: `${path ?? 'the path'} is a folder`, hint: 'give a file name (--out FILE)', exitCode: Exit.usage };
  return { message: `${syscall}${where} failed: ${code} (${error.message})`, hint: 'fix the path and run again', exitCode: Exit.failed };
}
