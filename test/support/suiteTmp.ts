/** The suite's own temporary folder: made at its start, removed at its end (or at the next start, after an interrupted run). */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';

export function removeSuiteTmp(tmp: string): void {
  // A test that failed mid-way may leave a folder it made unreadable, or a small disk mounted.
  spawnSync('chmod', ['-R', 'u+rwx', tmp]);
  if (process.getuid?.() === 0) spawnSync('sh', ['-c', `grep -o " ${tmp}/[^ ]*" /proc/mounts | xargs -r umount -l`]);
  rmSync(tmp, { recursive: true, force: true });
}
