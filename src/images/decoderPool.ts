/**
 * Decoding isolated from the worker: a few long-lived decoder processes (one per core),
 * each under a memory cap, each decoding one image at a time. A native crash, a memory
 * blow-up or a hang ends only that process: the object it was decoding is retried once in
 * a fresh process, and if that dies too it fails alone, with the reason. Pixels come back
 * through a file in memory (one read straight into the caller's tensor), or over the pipe
 * when that file cannot be had.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync, unlinkSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { DECODE_TIMEOUT_MS, DECODER_MEMORY_MB } from './limits';
import { STATUS_IN_FILE, STATUS_OK, type DecodeFailure, type DecodeJob } from './decoderProtocol';

export interface DecodeRequest {
  path: string | Buffer;
  expect?: DecodeJob['expect'];
  height: number;
  width: number;
  preserveAspectRatio: boolean;
  /** Where the pixels go: height x width x 3 floats. */
  into: Float32Array;
}

export type DecodeOutcome = { ok: true } | { ok: false; failure: DecodeFailure };

/**
 * What the runtime itself makes writable at start, which `ulimit -d` counts though nothing is
 * written there: Node.js 24's V8 (13.x) makes its whole 512 MB code range writable and
 * executable at once (Node.js 22's V8 12 a few hundred KB; measured with strace: mprotect of
 * 536 870 912 bytes RWX), so a cap of 200 MB stopped Node.js 24 before it ran any code. The
 * cap a decode gets (memoryMb) comes on top.
 */
function runtimeReservationMb(): number {
  return Number(process.versions.v8.split('.')[0]) >= 13 ? 512 : 0;
}

export interface DecoderPoolOptions {
  processes?: number;
  memoryMb?: number;
  timeoutMs?: number;
  /** false: pixels come back over the pipe, as they do when no pixel file can be made. */
  pixelFile?: boolean;
}

interface Pending {
  id: number;
  request: DecodeRequest;
  deaths: number;
  resolve(outcome: DecodeOutcome): void;
}

/** The compiled decoder script: next to this file when built, else in dist/ (tests run src/ through jest). */
function decoderScript(): string {
  const beside = join(__dirname, 'decoderProcess.js');
  if (existsSync(beside)) return beside;
  const built = resolve(__dirname, '..', '..', 'dist', 'images', 'decoderProcess.js');
  if (existsSync(built)) return built;
  throw new Error(`the decoder process script is missing (${built}); run \`make build\``);
}

/** Times a fresh process gets at an object whose decoder died before it fails for good. */
const DEATHS_ALLOWED = 2;

/**
 * Jobs a decoder holds at once: the one it decodes and the next, so it starts the next as
 * soon as it has answered instead of waiting for the parent to read the answer and reply
 * (measured: see docs/benchmarks.md). It decodes them one after the other, so when it dies
 * the first unanswered job is the one it was decoding; the next goes back to the queue.
 */
const JOBS_PER_DECODER = 2;

/** Room for one job's pixels in the pixel file: a job whose tensor is larger goes over the pipe. */
const SLOT_BYTES = 2 ** 30;

/**
 * A pixel file for one decoder (see PIXELS_FD): in /dev/shm where there is one, created
 * anew and unlinked at once, so that a killed worker leaves nothing behind; undefined when
 * it cannot be made (the pipe carries the pixels then).
 */
function openPixelFile(): number | undefined {
  const dir = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const path = join(dir, `objinfer-pixels-${process.pid}-${randomUUID()}`);
  try {
    const fd = openSync(path, 'wx+', 0o600);
    unlinkSync(path);
    return fd;
  } catch {
    return undefined;
  }
}

const NO_SLOT: DecodeFailure = { kind: 'transient', message: 'the decoder answered from a pixel file slot it was not given; the next run tries again' };

class DecoderProcess {
  private readonly child: ChildProcess;
  /** Sent and not yet answered, in the order the child decodes them. */
  private readonly jobs: Pending[] = [];
  private readonly pixelFile: number | undefined;
  /** Pixel file slots not held by a job; a slot is free again once its pixels are read. */
  private readonly freeSlots = Array.from({ length: JOBS_PER_DECODER }, (_, slot) => slot);
  private readonly slots = new Map<Pending, number>();
  private timer?: NodeJS.Timeout;
  private timedOut = false;
  private stderrTail = '';
  private header = Buffer.alloc(0);
  private frame?: { id: number; status: number; length: number; received: number; chunks: Buffer[] };
  exited = false;

  constructor(
    script: string,
    private readonly options: Required<DecoderPoolOptions>,
    private readonly onIdle: (process: DecoderProcess) => void,
    private readonly onExit: (process: DecoderProcess, orphan: Pending | undefined, unstarted: Pending[], reason: string) => void,
  ) {
    this.pixelFile = options.pixelFile ? openPixelFile() : undefined;
    const memoryKb = String((options.memoryMb + runtimeReservationMb()) * 1024);
    // `ulimit -d` caps the memory a process writes to: a decode that needs more fails (or dies) here, alone.
    this.child = spawn(
      '/bin/sh',
      ['-c', 'ulimit -d "$1" 2>/dev/null; shift; exec "$@"', 'sh', memoryKb, process.execPath, '--max-old-space-size=512', script],
      {
        stdio: ['pipe', 'ignore', 'pipe', 'pipe', this.pixelFile ?? 'ignore'],
        // The child's messages name the cap it runs under; one malloc arena per thread would scatter its memory.
        env: { ...process.env, OBJINFER_DECODER_MEMORY_MB: String(options.memoryMb), MALLOC_ARENA_MAX: '2' },
      },
    );
    this.child.stderr!.on('data', (chunk: Buffer) => (this.stderrTail = (this.stderrTail + chunk.toString()).slice(-600)));
    (this.child.stdio[3] as Readable).on('data', (chunk: Buffer) => this.receive(chunk));
    this.child.stdin!.on('error', () => undefined); // a dead child's stdin; the exit handler reports it
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      clearTimeout(this.timer);
      if (this.pixelFile !== undefined) closeSync(this.pixelFile);
      const how = this.timedOut
        ? `took longer than ${Math.round(this.options.timeoutMs / 1000)}s and was stopped`
        : signal
          ? `was killed by ${signal}`
          : `exited with code ${code}`;
      const detail = this.stderrTail.trim().split('\n').pop();
      const jobs = this.jobs.splice(0);
      // Exit code 0: the decoder ended itself after an answer (its memory was spent); it started nothing after.
      const orphan = code === 0 && !signal && !this.timedOut ? undefined : jobs.shift();
      this.onExit(this, orphan, jobs, `the decoder process ${how}${detail ? ` (${detail.slice(0, 200)})` : ''}`);
    });
    this.setRef(false);
  }

  /** Can take another job. */
  get idle(): boolean {
    return this.jobs.length < JOBS_PER_DECODER && !this.exited;
  }

  get busy(): boolean {
    return this.jobs.length > 0;
  }

  get load(): number {
    return this.jobs.length;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  run(job: Pending): void {
    this.jobs.push(job);
    if (this.jobs.length === 1) this.startClock();
    this.setRef(true);
    const { request } = job;
    const slot = this.pixelFile !== undefined && request.into.byteLength <= SLOT_BYTES ? this.freeSlots.pop() : undefined;
    if (slot !== undefined) this.slots.set(job, slot);
    const wire: DecodeJob = {
      id: job.id,
      path: Buffer.from(request.path).toString('base64'),
      expect: request.expect,
      height: request.height,
      width: request.width,
      preserveAspectRatio: request.preserveAspectRatio,
      offset: slot === undefined ? undefined : slot * SLOT_BYTES,
    };
    (this.child.stdin as Writable).write(`${JSON.stringify(wire)}\n`);
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }

  /** The first job's time limit, counted from when the child can start it. */
  private startClock(): void {
    clearTimeout(this.timer);
    this.timedOut = false;
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.child.kill('SIGKILL');
    }, this.options.timeoutMs);
  }

  /** Keeps the parent alive only while a decode is under way. */
  private setRef(on: boolean): void {
    for (const handle of [this.child, this.child.stdin, this.child.stderr, this.child.stdio[3]] as unknown as { ref?(): void; unref?(): void }[]) {
      if (on) handle?.ref?.();
      else handle?.unref?.();
    }
  }

  private receive(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (!this.frame) {
        const need = 12 - this.header.length;
        this.header = Buffer.concat([this.header, chunk.subarray(at, at + need)]);
        at += Math.min(need, chunk.length - at);
        if (this.header.length < 12) return;
        this.frame = { id: this.header.readUInt32LE(0), status: this.header.readUInt32LE(4), length: this.header.readUInt32LE(8), received: 0, chunks: [] };
        this.header = Buffer.alloc(0);
      }
      const frame = this.frame;
      const take = Math.min(frame.length - frame.received, chunk.length - at);
      const part = chunk.subarray(at, at + take);
      at += take;
      const job = this.jobs[0];
      if (frame.status === STATUS_OK && job?.id === frame.id && frame.length === job.request.into.byteLength) {
        const { into } = job.request;
        new Uint8Array(into.buffer, into.byteOffset, into.byteLength).set(part, frame.received);
      } else {
        frame.chunks.push(Buffer.from(part));
      }
      frame.received += take;
      if (frame.received === frame.length) {
        this.frame = undefined;
        this.finish(frame);
      }
    }
  }

  private finish(frame: { id: number; status: number; length: number; chunks: Buffer[] }): void {
    const job = this.jobs[0];
    if (!job || job.id !== frame.id) return;
    clearTimeout(this.timer);
    this.jobs.shift();
    if (this.jobs.length > 0) this.startClock();
    else this.setRef(false);
    const slot = this.slots.get(job);
    this.slots.delete(job);
    if (frame.status === STATUS_IN_FILE) job.resolve(slot === undefined ? { ok: false, failure: NO_SLOT } : this.readSlot(slot, job.request.into));
    else if (frame.status === STATUS_OK && frame.length === job.request.into.byteLength) job.resolve({ ok: true });
    else if (frame.status === STATUS_OK)
      job.resolve({ ok: false, failure: { kind: 'permanent', message: `decoder returned ${frame.length} bytes, expected ${job.request.into.byteLength}` } });
    else job.resolve({ ok: false, failure: JSON.parse(Buffer.concat(frame.chunks).toString('utf8')) as DecodeFailure });
    if (slot !== undefined) this.freeSlots.push(slot);
    this.onIdle(this);
  }

  /** Reads a job's pixels from its slot in the pixel file into its tensor. */
  private readSlot(slot: number, into: Float32Array): DecodeOutcome {
    const bytes = new Uint8Array(into.buffer, into.byteOffset, into.byteLength);
    try {
      for (let done = 0; done < bytes.length;) {
        const read = readSync(this.pixelFile!, bytes, done, bytes.length - done, slot * SLOT_BYTES + done);
        if (read === 0) throw new Error(`only ${done} of ${bytes.length} bytes there`);
        done += read;
      }
      return { ok: true };
    } catch (error) {
      return {
        ok: false,
        failure: { kind: 'transient', message: `cannot read the decoded pixels back (${(error as Error).message}); the next run tries again` },
      };
    }
  }
}

export class DecoderPool {
  private readonly options: Required<DecoderPoolOptions>;
  private readonly processes: DecoderProcess[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private script?: string;
  /** Decoder processes that died (crash, memory, timeout): for tests and reports. */
  deaths = 0;

  constructor(options: DecoderPoolOptions = {}) {
    this.options = {
      processes: options.processes ?? availableParallelism(),
      memoryMb: options.memoryMb ?? DECODER_MEMORY_MB,
      timeoutMs: options.timeoutMs ?? DECODE_TIMEOUT_MS,
      pixelFile: options.pixelFile ?? true,
    };
  }

  decode(request: DecodeRequest): Promise<DecodeOutcome> {
    return new Promise((resolve) => {
      this.queue.push({ id: this.nextId++, request, deaths: 0, resolve });
      this.dispatch();
    });
  }

  /**
   * Starts every decoder now, before the first image: a decoder's start (Node, its
   * libraries, the resize kernel) takes about 0.2 s of CPU, which the first batch would
   * otherwise wait for. Called while the model loads, which keeps only one core busy.
   */
  start(): void {
    while (this.processes.length < this.options.processes) this.spawnDecoder();
  }

  close(): void {
    for (const process of this.processes) process.kill();
    this.processes.length = 0;
  }

  /** Process IDs of the decoders, and whether each is decoding now (diagnostics and tests). */
  decoders(): { pid: number; busy: boolean }[] {
    return this.processes.filter((p) => p.pid !== undefined && !p.exited).map((p) => ({ pid: p.pid!, busy: p.busy }));
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      // The least loaded decoder that can take a job; a new one while every decoder has work.
      let process = this.processes.filter((p) => p.idle).sort((a, b) => a.load - b.load)[0];
      if ((!process || process.load > 0) && this.processes.length < this.options.processes) process = this.spawnDecoder();
      if (!process) return;
      process.run(this.queue.shift()!);
    }
  }

  private spawnDecoder(): DecoderProcess {
    this.script ??= decoderScript();
    const process = new DecoderProcess(
      this.script,
      this.options,
      () => this.dispatch(),
      (p, orphan, unstarted, reason) => this.exited(p, orphan, unstarted, reason),
    );
    this.processes.push(process);
    return process;
  }

  private exited(process: DecoderProcess, orphan: Pending | undefined, unstarted: Pending[], reason: string): void {
    this.processes.splice(this.processes.indexOf(process), 1);
    this.queue.unshift(...unstarted); // not this process's doing, nor theirs
    if (orphan) {
      this.deaths++;
      orphan.deaths++;
      if (orphan.deaths >= DEATHS_ALLOWED || /took longer/.test(reason)) {
        orphan.resolve({
          ok: false,
          failure: { kind: 'permanent', message: `${reason} while decoding this object${orphan.deaths > 1 ? ` (${orphan.deaths} times)` : ''}` },
        });
      } else {
        this.queue.unshift(orphan); // once more, in a fresh process: the death may not have been this object's fault
      }
    }
    this.dispatch();
  }
}

let shared: DecoderPool | undefined;

/** The process-wide pool. */
export function decoderPool(): DecoderPool {
  shared ??= new DecoderPool();
  return shared;
}
