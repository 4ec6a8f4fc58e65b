/** The label map file: a JSON object, or a CSV of two columns (ground-truth name, model label) with a header row. */
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../config';

/** RFC 4180 records of a CSV text: quoted fields may hold commas, doubled quotes and line breaks. */
export function csvRecords(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false;
  const endField = () => {
    record.push(field);
    field = '';
  };
  const endRecord = () => {
    endField();
    records.push(record);
    record = [];
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted && c === '"' && text[i + 1] === '"') {
      field += '"';
      i++;
    } else if (quoted) {
      if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"' && field === '') quoted = true;
    else if (c === ',') endField();
    else if (c === '\n') endRecord();
    else if (c !== '\r') field += c;
  }
  if (field !== '' || record.length > 0) endRecord();
  return records.filter((r) => !(r.length === 1 && r[0] === ''));
}

export async function readLabelMap(path: string): Promise<[string, string][]> {
  const bad = (what: string) =>
    new ConfigError({
      field: 'evaluation.labelMap',
      problem: `${path}: ${what}; give a JSON object {"truth": "model label"} or a CSV with a header row and two columns (truth, model label)`,
    });
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) =>
    Promise.reject(bad(error.code === 'ENOENT' ? 'file not found' : error.message)),
  );
  let pairs: [string, string][];
  if (path.toLowerCase().endsWith('.json')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw bad(`not JSON (${(error as Error).message})`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad('not a JSON object');
    pairs = Object.entries(parsed).map(([from, to]) => {
      if (typeof to !== 'string') throw bad(`the value of "${from}" is not a string`);
      return [from, to];
    });
  } else {
    const records = csvRecords(text).slice(1);
    const wrong = records.findIndex((r) => r.length !== 2);
    if (wrong >= 0) throw bad(`line ${wrong + 2} has ${records[wrong]!.length} fields, not 2`);
    pairs = records.map(([from, to]) => [from!, to!]);
  }
  const seen = new Map<string, string>();
  for (const [from, to] of pairs) {
    if (seen.has(from) && seen.get(from) !== to) throw bad(`"${from}" is mapped twice ("${seen.get(from)}" and "${to}")`);
    seen.set(from, to);
  }
  return [...seen];
}
