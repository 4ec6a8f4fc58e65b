/**
 * The compose stack and the worker image, checked without a Docker engine: the compose
 * file must validate (Debian's docker-compose) and keep the properties the README promises.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { SEARCH_ATTRIBUTE_DEFINITIONS } from '../src/workflows/contract';
import { PROJECT_ROOT } from './support/paths';

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  depends_on?: Record<string, { condition: string }>;
  environment?: Record<string, string>;
}

function composeConfig(): { services: Record<string, ComposeService> } {
  const result = spawnSync('docker-compose', ['-f', join(PROJECT_ROOT, 'docker-compose.yml'), 'config'], { encoding: 'utf8' });
  if (result.error) throw new Error(`docker-compose is not installed (run scripts/setup-test-deps.sh): ${result.error.message}`);
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  return parse(result.stdout) as { services: Record<string, ComposeService> };
}

test('docker-compose.yml validates with `docker-compose config -q`', () => {
  const result = spawnSync('docker-compose', ['-f', join(PROJECT_ROOT, 'docker-compose.yml'), 'config', '-q'], { encoding: 'utf8' });
  expect(result.error).toBeUndefined();
  expect(`${result.status} ${result.stderr}`).toBe('0 ');
});

test('the stack: postgres, schema set-up before the server, UI, and the objinfer worker built here', () => {
  const { services } = composeConfig();
  expect(Object.keys(services).sort()).toEqual(['objinfer-worker', 'postgresql', 'temporal', 'temporal-namespace', 'temporal-schema', 'temporal-ui']);
  expect(services.temporal!.depends_on).toEqual({ 'temporal-schema': { condition: 'service_completed_successfully' } });
  expect(services['objinfer-worker']!.build).toMatchObject({ dockerfile: 'Dockerfile' });
  expect(services['objinfer-worker']!.environment).toMatchObject({ TEMPORAL_ADDRESS: 'temporal:7233' });
  expect(services['objinfer-worker']!.depends_on).toEqual({ 'temporal-namespace': { condition: 'service_completed_successfully' } });
  for (const [name, service] of Object.entries(services)) {
    if (service.build) continue;
    expect(`${name}: ${service.image}`).toMatch(/^[\w-]+: [\w./-]+:\d+\.\d+(\.\d+)?(-[\w.]+)?$/); // a pinned version, never "latest"
  }
});

test('least privilege: the worker runs as non-root without capabilities; ports answer on this host only', () => {
  const { services } = composeConfig();
  const worker = services['objinfer-worker']! as Record<string, unknown>;
  expect(worker).toMatchObject({ user: 'node', cap_drop: ['ALL'], security_opt: ['no-new-privileges:true'], read_only: true });
  // docker-compose v1 prints "ip:host:container/tcp"; v2 prints { host_ip, ... }.
  const hostIp = (port: string | { host_ip?: string }) => (typeof port === 'string' ? port.split(':')[0] : port.host_ip);
  const published = Object.values(services).flatMap((s) => ((s as { ports?: (string | { host_ip?: string })[] }).ports ?? []).map(hostIp));
  expect(published).toEqual(['127.0.0.1', '127.0.0.1']);
});

test('the namespace set-up registers the search attributes the workflow upserts', () => {
  const script = readFileSync(join(PROJECT_ROOT, 'deploy', 'temporal', 'setup-namespace.sh'), 'utf8');
  for (const [name, type] of SEARCH_ATTRIBUTE_DEFINITIONS) expect(script).toContain(`${name}=${type}`);
});

test('the worker image is multi-stage, runs as non-root, and keeps production dependencies only', () => {
  const dockerfile = readFileSync(join(PROJECT_ROOT, 'Dockerfile'), 'utf8');
  const stages = dockerfile.match(/^FROM \S+/gm) ?? [];
  expect(stages).toHaveLength(2);
  for (const stage of stages) expect(stage).toMatch(/:\d+\.\d+\.\d+-/); // pinned base image
  expect(dockerfile).toMatch(/npm prune --omit=dev/);
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('FROM '));
  expect(runtime).toMatch(/^USER node$/m);
  expect(runtime).not.toMatch(/COPY (?!--from=build)\S*\s*(src|test)\b/);
});
