import { readFileSync } from 'node:fs';
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

/** The lowest port the kernel hands out by itself (to `listen(0)` and to outgoing connections). */
function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

/**
 * Like freePorts, but below the kernel's ephemeral range, for a server that is stopped and
 * started again on the same port: while it is down, a port from freePorts can be handed to
 * any other process's `listen(0)` or outgoing connection (a client retrying it can even
 * connect to itself), and the restart then fails with "address already in use".
 */
export async function freePortsOutsideEphemeralRange(count: number): Promise<number[]> {
  const high = ephemeralLow() - 1;
  const low = Math.max(10_000, high - 20_000);
  const servers: Server[] = [];
  try {
    while (servers.length < count) {
      const port = low + Math.floor(Math.random() * (high - low));
      const server = createServer();
      const listening = await new Promise<boolean>((done) => {
        server.once('error', () => done(false));
        server.listen(port, '127.0.0.1', () => done(true));
      });
      if (listening) servers.push(server);
    }
    return servers.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((done) => s.close(done))));
  }
}
