import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

/** A server listening on `port` of 127.0.0.1 (0: any the kernel picks), or undefined when the port is taken. */
function listenOn(port: number): Promise<Server | undefined> {
  const server = createServer();
  return new Promise((done) => {
    server.once('error', () => done(undefined));
    server.listen(port, '127.0.0.1', () => done(server));
  });
}

/**
 * `count` distinct ports from `candidate()` that nothing listens on right now. All are held
 * open until every one is found, so one call cannot return the same port twice.
 */
async function heldPorts(count: number, candidate: () => number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    while (servers.length < count) {
      const port = candidate();
      const server = await listenOn(port);
      if (server) servers.push(server);
      else if (port === 0) throw new Error('no free TCP port on 127.0.0.1');
    }
    return servers.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((done) => s.close(done))));
  }
}

/** `count` distinct TCP ports nothing listens on right now, for servers started by tests and benchmarks. */
export function freePorts(count: number): Promise<number[]> {
  return heldPorts(count, () => 0);
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
export function freePortsOutsideEphemeralRange(count: number): Promise<number[]> {
  const high = ephemeralLow() - 1;
  const low = Math.max(10_000, high - 20_000);
  return heldPorts(count, () => low + Math.floor(Math.random() * (high - low)));
}
