/**
 * Google's own API schemas, as a judge: the discovery documents shipped in PyPI's
 * google-api-python-client (pinned in scripts/setup-tools.sh). Every request the gcp
 * backend sends is matched to a method of these documents (HTTP method and path), its
 * query parameters checked against the method's, and its JSON body against the request
 * schema: an unknown field, a wrong type or an unknown method is a violation. Answers
 * made by the stand-in are checked against the response schema the same way.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../paths';

interface Parameter {
  type?: string;
  location?: string;
  required?: boolean;
  repeated?: boolean;
  enum?: string[];
  pattern?: string;
  format?: string;
}

export interface Schema {
  id?: string;
  type?: string;
  $ref?: string;
  format?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema;
  items?: Schema;
  enum?: string[];
}

interface Method {
  id: string;
  httpMethod: string;
  path: string;
  flatPath?: string;
  parameters?: Record<string, Parameter>;
  request?: { $ref: string };
  response?: { $ref: string };
  mediaUpload?: { protocols?: Record<string, { path: string }> };
}

interface Document {
  name: string;
  version: string;
  servicePath: string;
  parameters: Record<string, Parameter>;
  schemas: Record<string, Schema>;
  resources?: Record<string, Resource>;
}

interface Resource {
  methods?: Record<string, Method>;
  resources?: Record<string, Resource>;
}

export interface MatchedMethod {
  service: string;
  method: Method;
  document: Document;
  /** Path parameters by name. */
  params: Record<string, string>;
}

/** The documents the gcp backend's APIs are described by. */
export const DOCUMENTS = ['bigquery.v2', 'storage.v1', 'bigqueryconnection.v1', 'bigqueryreservation.v1', 'cloudresourcemanager.v3'] as const;

/** Where setup-tools.sh installs google-api-python-client's documents. */
export function discoveryDir(): string {
  const lib = join(PROJECT_ROOT, '.objinfer', 'tools', 'venv', 'lib');
  const python = existsSync(lib) ? readdirSync(lib).find((d) => d.startsWith('python')) : undefined;
  const dir = python && join(lib, python, 'site-packages', 'googleapiclient', 'discovery_cache', 'documents');
  if (!dir || !existsSync(dir)) throw new Error(`no discovery documents under ${lib}: run scripts/setup-tools.sh (make tools)`);
  return dir;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A discovery path template as a regular expression with named groups. */
function templateRegExp(prefix: string, template: string): { regexp: RegExp; names: string[] } {
  const names: string[] = [];
  let source = '';
  let rest = template;
  for (;;) {
    const at = rest.indexOf('{');
    if (at < 0) {
      source += escapeRegExp(rest);
      break;
    }
    source += escapeRegExp(rest.slice(0, at));
    const end = rest.indexOf('}', at);
    const variable = rest.slice(at + 1, end);
    const multi = variable.startsWith('+');
    names.push(multi ? variable.slice(1) : variable);
    source += multi ? '(.+?)' : '([^/]+)';
    rest = rest.slice(end + 1);
  }
  return { regexp: new RegExp(`^${escapeRegExp(prefix)}${source}$`), names };
}

export class Discovery {
  private readonly documents: Document[];
  private readonly routes: { service: string; document: Document; method: Method; httpMethod: string; regexp: RegExp; names: string[] }[] = [];

  constructor(dir = discoveryDir()) {
    this.documents = DOCUMENTS.map((name) => JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as Document);
    for (const document of this.documents) {
      const service = `${document.name}.${document.version}`;
      const visit = (resource: Resource) => {
        for (const method of Object.values(resource.methods ?? {})) {
          const base = `/${document.servicePath}`;
          // The path names the method's own parameters ({+name} may span "/"; its pattern says how).
          this.routes.push({ service, document, method, httpMethod: method.httpMethod, ...templateRegExp(base, method.path) });
          for (const protocol of Object.values(method.mediaUpload?.protocols ?? {})) {
            this.routes.push({ service, document, method, httpMethod: method.httpMethod, ...templateRegExp('', protocol.path) });
          }
        }
        for (const child of Object.values(resource.resources ?? {})) visit(child);
      };
      visit({ resources: document.resources });
    }
  }

  /** The method a request calls, or undefined (a violation in itself). */
  match(httpMethod: string, pathname: string): MatchedMethod | undefined {
    const path = decodeURIComponent(pathname);
    for (const route of this.routes) {
      if (route.httpMethod !== httpMethod) continue;
      const found = path.match(route.regexp) ?? pathname.match(route.regexp);
      if (!found) continue;
      const params = Object.fromEntries(route.names.map((name, i) => [name, found[i + 1]!]));
      // Several methods share a template ({+resource}:testIamPermissions): the path patterns decide.
      const fits = Object.entries(params).every(([name, value]) => {
        const pattern = route.method.parameters?.[name]?.pattern;
        return !pattern || new RegExp(pattern).test(value);
      });
      if (!fits) continue;
      return { service: route.service, document: route.document, method: route.method, params };
    }
    return undefined;
  }

  /** Everything wrong with a request to a matched method; empty when it is as the document says. */
  checkRequest(matched: MatchedMethod, query: URLSearchParams, body: unknown): string[] {
    const { method, document } = matched;
    const problems: string[] = [];
    const where = method.id;
    for (const [name, value] of query) {
      // System parameters may be written with a "$" ($alt, $fields), as gax's REST transport does.
      const parameter = method.parameters?.[name] ?? document.parameters[name] ?? document.parameters[name.replace(/^\$/, '')];
      if (!parameter || parameter.location === 'path') {
        problems.push(`${where}: unknown query parameter "${name}"`);
        continue;
      }
      if (query.getAll(name).length > 1 && !parameter.repeated) problems.push(`${where}: query parameter "${name}" given more than once`);
      // A system parameter's value may carry options after ";" (alt=json;enum-encoding=int).
      problems.push(...checkScalar(`${where}?${name}`, parameter.enum ? value.split(';')[0]! : value, parameter));
    }
    for (const [name, parameter] of Object.entries(method.parameters ?? {})) {
      if (parameter.location === 'query' && parameter.required && !query.has(name)) problems.push(`${where}: missing required query parameter "${name}"`);
      const value = matched.params[name];
      if (parameter.location === 'path' && value !== undefined && parameter.pattern && !new RegExp(parameter.pattern).test(value)) {
        problems.push(`${where}: path parameter ${name}="${value}" does not match ${parameter.pattern}`);
      }
    }
    if (body !== undefined && method.request) problems.push(...this.checkValue(`${where} request`, body, { $ref: method.request.$ref }, document));
    if (body !== undefined && !method.request) problems.push(`${where}: takes no request body, got one`);
    return problems;
  }

  /** Everything in an answer that the method's response schema does not define. */
  checkResponse(matched: MatchedMethod, body: unknown): string[] {
    if (body === undefined) return []; // an empty answer (204) is outside no schema
    if (!matched.method.response)
      return body === undefined || (typeof body === 'object' && body !== null && Object.keys(body).length === 0)
        ? []
        : [`${matched.method.id}: has no response body`];
    return this.checkValue(`${matched.method.id} response`, body, { $ref: matched.method.response.$ref }, matched.document);
  }

  private checkValue(at: string, value: unknown, schema: Schema, document: Document): string[] {
    const resolved = schema.$ref ? document.schemas[schema.$ref] : schema;
    if (!resolved) return [`${at}: unknown schema ${schema.$ref}`];
    if (value === null || value === undefined) return [];
    switch (resolved.type) {
      case 'object': {
        if (typeof value !== 'object' || Array.isArray(value)) return [`${at}: expected an object, got ${JSON.stringify(value).slice(0, 60)}`];
        const problems: string[] = [];
        for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
          const property = resolved.properties?.[key] ?? resolved.additionalProperties;
          if (!property) problems.push(`${at}: unknown field "${key}" (${resolved.id ?? schema.$ref ?? 'object'})`);
          else problems.push(...this.checkValue(`${at}.${key}`, child, property, document));
        }
        return problems;
      }
      case 'array':
        if (!Array.isArray(value)) return [`${at}: expected an array`];
        return value.flatMap((item, i) => this.checkValue(`${at}[${i}]`, item, resolved.items ?? {}, document));
      case 'any':
        return [];
      default:
        return checkScalar(at, value, resolved);
    }
  }
}

/** A scalar as the document types it: int64 travels as a string, int32 as a number. */
function checkScalar(at: string, value: unknown, schema: { type?: string; format?: string; enum?: string[] }): string[] {
  const text = typeof value === 'string' ? value : undefined;
  switch (schema.type) {
    case 'string':
      // Protobuf's JSON mapping lets an enum travel as its number (gax asks for enum-encoding=int).
      if (schema.enum && typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < schema.enum.length) return [];
      if (typeof value !== 'string') return [`${at}: expected a string, got ${typeof value} ${JSON.stringify(value)}`];
      if (schema.format === 'int64' || schema.format === 'uint64') return /^-?\d+$/.test(value) ? [] : [`${at}: expected an int64 string, got "${value}"`];
      if (schema.enum && !schema.enum.includes(value)) return [`${at}: "${value}" is not one of ${schema.enum.join(', ')}`];
      return [];
    case 'integer':
      if (typeof value === 'number' && Number.isInteger(value)) return [];
      if (text !== undefined && /^-?\d+$/.test(text)) return []; // query parameters are text
      return [`${at}: expected an integer, got ${JSON.stringify(value)}`];
    case 'number':
      if (typeof value === 'number' || (text !== undefined && /^-?\d+(\.\d+)?(e-?\d+)?$/i.test(text))) return [];
      return [`${at}: expected a number, got ${JSON.stringify(value)}`];
    case 'boolean':
      if (typeof value === 'boolean' || text === 'true' || text === 'false') return [];
      return [`${at}: expected a boolean, got ${JSON.stringify(value)}`];
    default:
      return [];
  }
}
