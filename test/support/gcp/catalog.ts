/**
 * The catalog BigQuery would hold for a statement now, for ZetaSQL (zetasql.ts): the tables
 * it names (object tables with Google's documented schema, declared by the analyser; others
 * as the emulator holds them), the models it names (as the models API gives them) and the
 * project's connections.
 */
import type { Emulator } from './emulator';
import type { BigQueryShim } from './shim';
import type { StandIn } from './standIn';
import type { AnalysisRequest, CatalogModel, CatalogTable, QueryParameter, ZetaSqlAnalyser } from './zetasql';

export interface CatalogSources {
  analyser: ZetaSqlAnalyser;
  emulator: Emulator;
  shim: BigQueryShim;
  standIn: StandIn;
  /** Schemas read from the emulator, by table; whoever changes a table clears it. */
  schemas: Map<string, unknown[]>;
}

export async function analysisRequest(sql: string, params: QueryParameter[], sources: CatalogSources): Promise<AnalysisRequest> {
  const { analyser, emulator, shim, standIn, schemas } = sources;
  const tables: CatalogTable[] = [];
  for (const path of await analyser.tables(sql)) {
    const name = path.join('.');
    const [datasetId, tableId] = name.split('.').slice(-2) as [string, string];
    if (shim.objectTables.has(name) || shim.objectTables.has(`${emulator.project}.${name}`)) {
      tables.push({ path: name, objectTable: true });
      continue;
    }
    const schema = schemas.get(name) ?? (tableId ? await schemaOf(emulator, datasetId, tableId) : undefined);
    if (!schema) continue; // the statement creates it, or the analyser says it is not found
    schemas.set(name, schema);
    tables.push({ path: name, schema });
  }
  const models: CatalogModel[] = [];
  for (const reference of standIn.models.keys()) {
    if (!sql.includes(`\`${reference}\``)) continue;
    const [project, dataset, id] = reference.split('.') as [string, string, string];
    const [, resource] = standIn.modelResource(project, dataset, id) as [number, { featureColumns: unknown[]; labelColumns: unknown[] }];
    models.push({ path: reference, inputs: resource.featureColumns, outputs: resource.labelColumns });
  }
  const connections = [...standIn.connections.keys()].map((n) => n.replace(/^projects\/([^/]+)\/locations\/([^/]+)\/connections\/(.+)$/, '$1.$2.$3'));
  return { sql, params, tables, models, connections };
}

async function schemaOf(emulator: Emulator, datasetId: string, tableId: string): Promise<unknown[] | undefined> {
  try {
    const [metadata] = await emulator.direct.dataset(datasetId).table(tableId).getMetadata();
    return (metadata as { schema?: { fields?: unknown[] } }).schema?.fields ?? [];
  } catch (error) {
    if ((error as { code?: number }).code === 404) return undefined;
    throw error;
  }
}
