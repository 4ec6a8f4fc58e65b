/** The file formats `objinfer export` writes: apart from the writers, so the CLI can offer them without loading DuckDB. */
export const EXPORT_FORMATS = ['parquet', 'csv', 'jsonl', 'label-studio', 'fiftyone'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
