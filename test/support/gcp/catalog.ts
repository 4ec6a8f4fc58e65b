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
}

export async function analysisRequest(sql: string, params: QueryParameter[], sources: CatalogSources): Promise<AnalysisRequest> {
  const { analyser, emulator, shim, standIn } = sources;
  const tables: CatalogTable[] = [];
  for (const path of await analyser.tables(sql)) {
    const name = path.join('.');
    const [datasetId, tableId] = name.split('.').slice(-2) as [string, string];
    if (shim.objectTables.has(name) || shim.objectTables.has(`${emulator.project}.${name}`)) {
      tables.push({ path: name, objectTable: true });
      continue;
    }
    const table = tableId ? emulator.direct.dataset(datasetId).table(tableId) : undefined;
    if (!table || !(await table.exists())[0]) continue; // the statement creates it, or the analyser says it is not found
    const [metadata] = await table.getMetadata();
    tables.push({ path: name, schema: (metadata as { schema?: { fields?: unknown[] } }).schema?.fields ?? [] });
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
