/**
 * What every gcp test file sets up the same way: one emulator and fake-gcs-server for the
 * file, one Temporal client, fixtures whose gateways must have seen no request Google's
 * documents refuse.
 */
import type { Client, Connection } from '@temporalio/client';
import { testClient } from '../pipeline';
import { gcpFixture, startWorld, type GcpFixture, type GcpWorld } from './fixture';

export interface GcpSuite {
  readonly world: GcpWorld;
  readonly client: Client;
  fixture(options: Parameters<typeof gcpFixture>[2]): Promise<GcpFixture>;
}

/** Registers the file's hooks; the returned object's members are there once beforeAll ran. */
export function gcpSuite(): GcpSuite {
  // A gcp test runs whole workflows, every statement analysed by ZetaSQL and run on the emulator;
  // beside the other suites' load one isolating a bad image took over 300 s in a fresh-clone run.
  jest.setTimeout(600_000);
  let world: GcpWorld | undefined;
  let client: Client | undefined;
  let connection: Connection | undefined;
  const fixtures: GcpFixture[] = [];
  beforeAll(async () => {
    world = await startWorld();
    ({ client, connection } = await testClient());
  }, 120_000);
  afterEach(async () => {
    for (const f of fixtures.splice(0)) {
      expect(f.gateway.violations).toEqual([]);
      await f.gateway.stop();
    }
  });
  afterAll(async () => {
    await world?.stop();
    await connection?.close();
  });
  return {
    get world() {
      return world!;
    },
    get client() {
      return client!;
    },
    fixture: async (options) => {
      const f = await gcpFixture(world!, client!, options);
      fixtures.push(f);
      return f;
    },
  };
}

export { failureOf } from '../pipeline';
