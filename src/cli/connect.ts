/** The Temporal a command talks to: connected (starting a dev server when asked), announced, and closed after. */
import type { Connected, TargetOptions } from '../temporal/connection';

export async function withTemporal<T>(
  work: (temporal: Connected) => Promise<T>,
  startDevServer: 'detached' | 'no' = 'detached',
  target: TargetOptions = {},
): Promise<T> {
  const { connectTemporal } = await import('../temporal/connection'); // a command that only reads the warehouse never loads Temporal's client
  const temporal = await connectTemporal({ startDevServer, ...target, onNotice: (text) => console.error(`objinfer: ${text}`) });
  if (temporal.devServer) {
    console.error(`started a Temporal dev server at ${temporal.devServer.address} (UI ${temporal.devServer.uiUrl}); stop it with \`objinfer dev-server stop\``);
  }
  try {
    return await work(temporal);
  } finally {
    await temporal.close();
  }
}
