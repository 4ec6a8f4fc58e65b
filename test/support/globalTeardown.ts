import { existsSync, readFileSync } from 'node:fs';
import { SERVER_FILE, type TestServer } from './paths';
import { removeSuiteTmp } from './suiteTmp';

export default async function globalTeardown(): Promise<void> {
  if (!existsSync(SERVER_FILE)) return;
  const { pid, tmp } = JSON.parse(readFileSync(SERVER_FILE, 'utf8')) as TestServer;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // already gone
  }
  if (tmp) removeSuiteTmp(tmp);
}
