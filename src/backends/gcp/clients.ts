/**
 * The official Google Cloud clients the gcp backend uses, with Application Default
 * Credentials. Clients that default to gRPC use their REST transport, so that one HTTP
 * endpoint can stand in for Google in tests (`GcpEndpoints`).
 */
import { BigQuery } from '@google-cloud/bigquery';
import { ConnectionServiceClient } from '@google-cloud/bigquery-connection';
import { ReservationServiceClient } from '@google-cloud/bigquery-reservation';
import { ProjectsClient } from '@google-cloud/resource-manager';
import { Storage } from '@google-cloud/storage';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { RunSpec } from '../../config';

export interface GcpClients {
  bigquery: BigQuery;
  storage: Storage;
  connections: ConnectionServiceClient;
  projects: ProjectsClient;
  reservations: ReservationServiceClient;
}

/** Where to send requests instead of Google (tests), and the credentials to send. */
export interface GcpEndpoints {
  /** e.g. http://127.0.0.1:8123 for BigQuery, Cloud Storage and the gax REST APIs alike. */
  baseUrl: string;
  /**
   * A google-auth-library client (e.g. an OAuth2Client holding a static token). Each
   * Google client bundles its own copy of the library, so the type is left open here.
   */
  authClient: object;
}

/** BigQuery alone (the read side needs nothing else). */
export function createBigQuery(spec: RunSpec, endpoints?: GcpEndpoints): BigQuery {
  const { project: projectId, location } = spec;
  if (!endpoints) return new BigQuery({ projectId, location });
  return new BigQuery({ projectId, location, apiEndpoint: endpoints.baseUrl, authClient: endpoints.authClient as never });
}

export function createGcpClients(spec: RunSpec, endpoints?: GcpEndpoints): GcpClients {
  const projectId = spec.project;
  if (!endpoints) {
    return lazyClients({
      bigquery: () => createBigQuery(spec),
      storage: () => new Storage({ projectId }),
      connections: () => new ConnectionServiceClient({ fallback: true }),
      projects: () => new ProjectsClient({ fallback: true }),
      reservations: () => new ReservationServiceClient({ fallback: true }),
    });
  }
  const url = new URL(endpoints.baseUrl);
  const authClient = endpoints.authClient as never; // see GcpEndpoints.authClient
  const gax = {
    fallback: true,
    apiEndpoint: url.hostname,
    port: Number(url.port),
    protocol: url.protocol.replace(':', ''),
    authClient,
  } as const;
  return lazyClients({
    bigquery: () => createBigQuery(spec, endpoints),
    // Authenticated as against Google (a custom endpoint is otherwise taken for an emulator and sent no token).
    // No client retries against a test's gateway: one that has stopped is not retried for Google's 10 minutes.
    storage: () => new Storage({ projectId, apiEndpoint: endpoints.baseUrl, authClient, useAuthWithCustomEndpoint: true, retryOptions: { autoRetry: false } }),
    connections: () => new ConnectionServiceClient(gax),
    projects: () => new ProjectsClient(gax),
    reservations: () => new ReservationServiceClient(gax),
  });
}

/**
 * Each client made on first use: a gax client looks for credentials as it is made (and on a
 * machine without them waits out the metadata server), which a command that never calls it,
 * like `objinfer plan`, should not pay for.
 */
function lazyClients(makers: { [K in keyof GcpClients]: () => GcpClients[K] }): GcpClients {
  const made: Partial<GcpClients> = {};
  const clients = {} as GcpClients;
  for (const key of Object.keys(makers) as (keyof GcpClients)[]) {
    Object.defineProperty(clients, key, { enumerable: true, get: () => (made[key] ??= makers[key]() as never) });
  }
  return clients;
}

/**
 * Where Application Default Credentials can come from, checked locally: the key file named by
 * GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file, or a Google Cloud machine (whose metadata
 * server holds them). Asking the auth library instead costs seconds of metadata-server
 * timeouts per call on a machine with none of these, which is what `objinfer plan` meets on
 * a laptop without credentials.
 */
export function hasApplicationDefaultCredentials(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.GOOGLE_APPLICATION_CREDENTIALS) return true;
  const gcloudConfig = env.CLOUDSDK_CONFIG ?? join(homedir(), '.config', 'gcloud');
  if (existsSync(join(gcloudConfig, 'application_default_credentials.json'))) return true;
  if (env.GCE_METADATA_HOST || env.GCE_METADATA_IP || env.K_SERVICE || env.FUNCTION_TARGET) return true;
  try {
    return /Google/i.test(readFileSync('/sys/class/dmi/id/product_name', 'utf8')); // a Compute Engine VM
  } catch {
    return false;
  }
}
