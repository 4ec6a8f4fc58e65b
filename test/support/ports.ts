import { createServer, type Server } from 'node:net';

/**
 * `count` distinct TCP ports nothing listens on right now, for servers started by tests and
 * benchmarks. All are held open until every one is found, so two calls of one request
 * cannot return the same port.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((done, fail) => {
        server.once('error', fail);
        server.listen(0, '127.0.0.1', () => done());
      });
    }
    return servers.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((done) => s.close(done))));
  }
}

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}
