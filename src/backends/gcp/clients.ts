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
    return {
      bigquery: createBigQuery(spec),
      storage: new Storage({ projectId }),
      connections: new ConnectionServiceClient({ fallback: true }),
      projects: new ProjectsClient({ fallback: true }),
      reservations: new ReservationServiceClient({ fallback: true }),
    };
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
  return {
    bigquery: createBigQuery(spec, endpoints),
    storage: new Storage({ projectId, apiEndpoint: endpoints.baseUrl, authClient }),
    connections: new ConnectionServiceClient(gax),
    projects: new ProjectsClient(gax),
    reservations: new ReservationServiceClient(gax),
  };
}
