/** The Cloud resource connection through which BigQuery reads the buckets, and its service account. */
import { ErrorType, ObjinferError } from '../../errors';
import type { ConnectionInfo, StepOutcome } from '../../workflows/contract';
import type { GcpContext } from './context';
import { isNotFound } from './errors';

export async function ensureConnection(ctx: GcpContext): Promise<ConnectionInfo> {
  const { connections } = ctx.clients;
  const { connection: id } = ctx.spec;
  return ctx.call(`connection ${id}`, async () => {
    let action: StepOutcome['action'] = 'exists';
    let connection;
    try {
      [connection] = await connections.getConnection({ name: ctx.connectionName });
    } catch (error) {
      if (!isNotFound(error)) throw error;
      [connection] = await connections.createConnection({
        parent: ctx.connectionName.replace(/\/connections\/[^/]+$/, ''),
        connectionId: id,
        connection: { friendlyName: id, description: 'created by objinfer', cloudResource: {} },
      });
      action = 'created';
      await ctx.record('connection', ctx.connectionName);
    }
    const serviceAccount = connection.cloudResource?.serviceAccountId;
    if (!serviceAccount) {
      throw new ObjinferError(
        ErrorType.ResourceConflict,
        `connection ${ctx.connectionName} is not a Cloud resource connection (it has no service account); choose another connection name`,
      );
    }
    return { step: 'connection', action, detail: `${ctx.connectionName} (service account ${serviceAccount})`, serviceAccount };
  });
}
