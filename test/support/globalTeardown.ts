import { existsSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { SERVER_FILE, type TestServer } from './paths';

export default async function globalTeardown(): Promise<void> {
  if (!existsSync(SERVER_FILE)) return;
  const { pid, tmp } = JSON.parse(readFileSync(SERVER_FILE, 'utf8')) as TestServer;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // already gone
  }
  if (tmp) {
    // A test that failed mid-way may leave a folder it made unreadable, or a small disk mounted.
    spawnSync('chmod', ['-R', 'u+rwx', tmp]);
    if (process.getuid?.() === 0) spawnSync('sh', ['-c', `grep -o " ${tmp}/[^ ]*" /proc/mounts | xargs -r umount -l`]);
    rmSync(tmp, { recursive: true, force: true });
  }
}
