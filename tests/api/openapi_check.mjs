// openapi_check.mjs SPEC URL TOKEN FIXTURES_JSON SOURCE.c...: docs/openapi.yaml against a running
// keeld, both ways (run by tests/server/server_test.sh openapi, which starts keeld and makes the
// fixtures). Exits 1 with every finding listed.
//   1. SPEC is a valid OpenAPI 3 document (@apidevtools/swagger-parser).
//   2. Every route keeld serves is described: each path literal in the router's sources
//      ("/v1/...", and the methods of api.c's table of known paths) is a described path or the
//      prefix of one with a parameter after it.
//   3. Every described operation is served and answers as documented: without a token it is 401
//      (or served, for the public ones), never "no endpoint"; with the token, GETs on the
//      fixtures answer a documented status with a body that validates against its schema; bad
//      bodies and unknown ids answer their documented 400 / 404 with the error schema; a set of
//      writes (tags, token, command, rollout pause/resume/abort) answer their documented success.
import { readFileSync } from 'node:fs';
import SwaggerParser from '@apidevtools/swagger-parser';
import Ajv from 'ajv';

const [specPath, url, token, fixturesJson, ...sources] = process.argv.slice(2);
const fx = JSON.parse(fixturesJson);
const problems = [];
const bad = (msg) => problems.push(msg);

const api = await SwaggerParser.validate(specPath);
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
const paths = Object.keys(api.paths);
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

// ---- 2. served -> described ---------------------------------------------------------------------
for (const file of sources) {
  // The code, not its comments (which show example paths like "/v1/deployments/12/force").
  const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  for (const m of text.matchAll(/"(\/(?:v1|metrics)[A-Za-z0-9_./-]*)"/g)) {
    const lit = m[1];
    const ok = paths.some((p) => p === lit || (lit.endsWith('/') && p.startsWith(lit) && p.slice(lit.length).startsWith('{')));
    if (!ok) bad(`${file}: route literal "${lit}" is not a described path`);
  }
  // api.c's table of known paths and their methods (the 405 answers).
  for (const m of text.matchAll(/\{"(\/[^"]*)", "([A-Z, ]+)"\}/g)) {
    const [lit, methods] = [m[1], m[2].split(', ')];
    const p = paths.find((q) => q === lit || (lit.endsWith('/') && q.startsWith(lit) && /^\{[^}]+\}$/.test(q.slice(lit.length))));
    for (const meth of methods) {
      if (!p || !api.paths[p][meth.toLowerCase()]) bad(`${file}: ${meth} ${lit} is served but not described`);
    }
  }
}

// ---- 3. described -> served, as documented ------------------------------------------------------
const fill = (p, over = {}) => p.replace(/\{([^}]+)\}/g, (_, name) => {
  const v = over[name] ?? fx[`${p}:${name}`] ?? fx[name];
  if (v === undefined) throw new Error(`no fixture for {${name}} of ${p}`);
  return encodeURIComponent(String(v));
});

async function call(method, path, { auth = true, body, type = 'application/json', raw = false } = {}) {
  const headers = {};
  if (auth) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = type;
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 15000);
  try {
    const r = await fetch(url + path, { method: method.toUpperCase(), headers, body, signal: ctl.signal });
    const ct = r.headers.get('content-type') || '';
    if (ct.startsWith('text/event-stream')) {
      ctl.abort(); // a stream: the status and type are the answer
      return { status: r.status, type: ct, json: undefined };
    }
    const text = await r.text();
    let json;
    if (ct.startsWith('application/json')) {
      try { json = JSON.parse(text); } catch { bad(`${method} ${path}: not JSON: ${text.slice(0, 80)}`); }
    }
    return { status: r.status, type: ct, json, text };
  } finally {
    clearTimeout(timer);
  }
}

function check(op, method, path, r, want) {
  const doc = op.responses[String(r.status)];
  const where = `${method.toUpperCase()} ${path}`;
  if (want !== undefined && r.status !== want) {
    bad(`${where}: answered ${r.status}, expected ${want} (${(r.text || '').slice(0, 160)})`);
    return;
  }
  if (!doc) {
    bad(`${where}: answered ${r.status}, which is not documented (${Object.keys(op.responses).join(', ')})`);
    return;
  }
  const types = Object.keys(doc.content || {});
  if (types.length && !types.some((t) => r.type.startsWith(t))) bad(`${where}: ${r.status} is ${r.type}, documented ${types}`);
  const schema = doc.content?.['application/json']?.schema;
  if (schema && r.json !== undefined) {
    const v = ajv.compile(schema);
    if (!v(r.json)) bad(`${where}: ${r.status} body does not match its schema: ${ajv.errorsText(v.errors)}`);
  }
}

let operations = 0;
for (const p of paths) {
  for (const method of METHODS) {
    const op = api.paths[p][method];
    if (!op) continue;
    operations++;
    const path = fill(p);
    const isPublic = Array.isArray(op.security) && op.security.length === 0;
    // Served at all: without a token, 401 (never "no endpoint").
    const anon = await call(method, path, { auth: false, body: method === 'get' ? undefined : '{}' });
    if (isPublic) {
      if (!op.responses[String(anon.status)]) bad(`${method.toUpperCase()} ${path} (public): ${anon.status} undocumented`);
    } else if (anon.status !== 401) {
      bad(`${method.toUpperCase()} ${path}: ${anon.status} without a token, expected 401 (${(anon.text || '').slice(0, 120)})`);
    }
    if (method === 'get') {
      check(op, method, path, await call(method, path));
      // An unknown id, where the path has one and 404 is documented.
      if (op.responses['404'] && /\{(id|ref|sha256)\}/.test(p)) {
        const unknown = fill(p, { id: p.startsWith('/v1/devices') ? 'no-such-device' : 999999, ref: 999999, sha256: '0'.repeat(64) });
        check(op, method, unknown, await call(method, unknown), 404);
      }
    } else if (op.requestBody?.content?.['application/json'] && op.responses['400']) {
      check(op, method, path, await call(method, path, { body: '{"bad": ' }), 400);
    }
  }
}

// Writes that change nothing the rest relies on, each answering its documented success.
const op = (p, m) => api.paths[p][m];
let r = await call('patch', fill('/v1/devices/{id}'), { body: JSON.stringify({ tags: { openapi: 'yes' } }) });
check(op('/v1/devices/{id}', 'patch'), 'patch', fill('/v1/devices/{id}'), r, 200);
r = await call('post', '/v1/tokens', { body: JSON.stringify({ name: 'openapi' }) });
check(op('/v1/tokens', 'post'), 'post', '/v1/tokens', r, 201);
r = await call('post', '/v1/commands', { body: JSON.stringify({ device: fx.id, kind: 'ping' }) });
check(op('/v1/commands', 'post'), 'post', '/v1/commands', r, 201);
for (const [o, want] of [['pause', 200], ['pause', 409], ['resume', 200], ['abort', 200]]) {
  const path = fill('/v1/rollouts/{id}/{op}', { id: fx.rollout, op: o });
  r = await call('post', path, { body: JSON.stringify({ reason: 'openapi check' }) });
  check(op('/v1/rollouts/{id}/{op}', 'post'), 'post', path, r, want);
}
// The served document is this one.
r = await call('get', '/v1/openapi.yaml', { auth: false });
if (r.text !== readFileSync(specPath, 'utf8')) bad('GET /v1/openapi.yaml is not docs/openapi.yaml');

if (problems.length) {
  console.error(`openapi: ${problems.length} problem(s):\n  ` + problems.join('\n  '));
  process.exit(1);
}
console.log(`openapi: valid; ${paths.length} paths, ${operations} operations described and served as documented`);
