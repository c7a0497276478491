// test_responses.mjs: real replies of a live `qn serve` against schema/openapi.yaml.
//
// Starts `qn serve` (QN_BIN, default build/qn) on a free loopback port with a
// temporary database and drives every route with node:http, in the ways the
// daemon answers them: successes (a device, a simulate, a train job to its
// model, a CSV upload, a prediction, HEAD of each GET), and the errors the
// document declares (400, 401 once a user exists, 403 on a foreign Host,
// 404 on a job addressed by name, 409, 413, 414, 415, 422, 431). Each reply
// is then checked with openapi-backend (its router and response validator,
// on Ajv's JSON Schema 2020-12, the dialect of OpenAPI 3.1):
//   - the request matches a documented operation;
//   - the reply's status is one that operation declares;
//   - a reply with a body has a declared media type, and a JSON body
//     validates against the declared schema; a HEAD reply has no body;
//   - the event stream's events are the documented ones.
// The daemon must exit 0 on SIGTERM (under ASan: no leak). Ends with the
// line "openapi: N passed, N failed"; exit status 1 on a failure.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, tally } from '../support/qn_serve.mjs';
import { OpenAPIBackend } from 'openapi-backend';
import { bundle, loadConfig } from '@redocly/openapi-core';
import Ajv2020Module from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
const Ajv2020 = Ajv2020Module.default || Ajv2020Module;
const addFormats = addFormatsModule.default || addFormatsModule;

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const QN = resolve(process.env.QN_BIN || join(root, 'build', 'qn'));
const SPEC = join(root, 'schema', 'openapi.yaml');

const T = tally();
const check = T.check;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let PORT = 0;

/* One request on its own connection; resolves to {status, headers, text, json}.
 * A JSON body (an object) is sent as application/json unless headers say otherwise. */
function call(method, path, opts = {}) {
  return new Promise((res, rej) => {
    const headers = Object.assign({ Host: `127.0.0.1:${PORT}`, Connection: 'close' }, opts.headers || {});
    let body = opts.body;
    if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
      body = JSON.stringify(body);
      if (!headers['Content-Type']) headers['Content-Type'] = 'application/json';
    }
    if (body !== undefined) headers['Content-Length'] = Buffer.byteLength(body);
    const req = request({ host: '127.0.0.1', port: PORT, method, path, headers, agent: false }, (r) => {
      const chunks = [];
      r.on('data', (c) => chunks.push(c));
      r.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
        res({ status: r.statusCode, headers: r.headers, text, json });
      });
      r.on('error', rej);
    });
    req.on('error', rej);
    if (body !== undefined && opts.expectContinue) {
      // The body only once the daemon asked for it (it refuses a large one first).
      req.setHeader('Expect', '100-continue');
      req.on('continue', () => req.end(body));
      req.flushHeaders();
    } else {
      if (body !== undefined) req.write(body);
      req.end();
    }
  });
}

/* The first events of a stream, read for ms milliseconds: [{event, data}]. */
function events(path, ms) {
  return new Promise((res, rej) => {
    const req = request({ host: '127.0.0.1', port: PORT, path, agent: false,
      headers: { Host: `127.0.0.1:${PORT}` } }, (r) => {
      let text = '';
      r.on('data', (c) => { text += c; });
      setTimeout(() => {
        req.destroy();
        const evs = text.split('\n\n').filter((b) => /^event: /m.test(b)).map((b) => ({
          event: (b.match(/^event: (.*)$/m) || [])[1], data: (b.match(/^data: (.*)$/m) || [])[1] }));
        res({ status: r.statusCode, headers: r.headers, events: evs });
      }, ms);
    });
    req.on('error', (e) => { if (e.code !== 'ECONNRESET') rej(e); });
    req.end();
  });
}

const recorded = [];
/* Calls and records the exchange for validation; returns the reply. */
async function rec(method, path, opts = {}, want) {
  const r = await call(method, path, opts);
  recorded.push({ method, path, headers: opts.headers || {}, r });
  if (want !== undefined) check(r.status === want, `${method} ${path.slice(0, 60)} answers ${want}`, `${r.status} ${r.text.slice(0, 200)}`);
  return r;
}

/* The reply's media type without parameters. */
const mediaType = (h) => (h['content-type'] || '').split(';')[0].trim();

/* Checks one recorded exchange against the document. */
function validate(api, { method, path, headers, r }) {
  const [p, q] = path.split('?');
  const what = `${method} ${path.slice(0, 60)} -> ${r.status}`;
  const op = api.matchOperation({ method, path: p, query: q || '', headers });
  if (!check(!!op, `${what}: a documented operation`)) return;
  const declared = op.responses && op.responses[String(r.status)];
  if (!check(!!declared, `${what}: ${op.operationId} declares ${r.status}`,
    `declared: ${Object.keys(op.responses || {}).join(', ')}`)) return;
  if (method === 'HEAD') {
    check(r.text.length === 0, `${what}: no body`);
    return;
  }
  if (!r.text.length) return;
  const types = Object.keys(declared.content || {});
  const mt = mediaType(r.headers);
  if (!check(types.includes(mt), `${what}: media type ${mt} declared`, `declared: ${types.join(', ')}`)) return;
  if (mt === 'application/json') {
    const v = api.validateResponse(r.json, op, r.status);
    check(r.json !== null && !(v.errors && v.errors.length), `${what}: body validates`,
      JSON.stringify(v.errors) + ' ' + r.text.slice(0, 300));
  }
}

const DEVICE = { name: 'crn', kind: 'crn_relu', drive: 'dot', params: { kappa: 0.01 } };
const TRAIN = {
  type: 'train', name: 'openapi xor',
  spec: {
    dataset: 'xor',
    network: [{ devices: 2, device: { kind: 'neuron', params: { activation: 'tanh' } } },
      { devices: 1, device: { kind: 'neuron', params: { activation: 'identity' } } }],
    loss: 'mse', optimizer: { name: 'adam', lr: 0.05 }, epochs: 200, batch: 4, seed: 1,
  },
};

/* A train job of `layers` layers of `width` neurons: far over any memory budget when large. */
function hugeTrain(layers, width) {
  const network = [];
  for (let l = 0; l < layers; l++)
    network.push({ devices: l + 1 === layers ? 1 : width, device: { kind: 'neuron', params: { activation: 'tanh' } } });
  return { type: 'train', spec: { dataset: 'xor', network, epochs: 1 } };
}

async function waitJob(id) {
  let j = null;
  for (let i = 0; i < 600 && !(j && ['succeeded', 'failed', 'canceled'].includes(j.state)); i++) {
    await sleep(100);
    j = (await call('GET', `/v1/jobs/${id}`)).json;
  }
  return j;
}

async function exercise(dir) {
  // The routes without a token, and the page.
  await rec('GET', '/healthz', {}, 200);
  await rec('GET', '/metrics', {}, 200);
  await rec('GET', '/', {}, 200);
  await rec('GET', '/assets/app.js', {}, 200);
  await rec('GET', '/assets/nope.js', {}, 404);
  await rec('GET', '/v1/whoami', {}, 200);

  // Devices.
  await rec('POST', '/v1/devices', { body: DEVICE }, 201);
  await rec('POST', '/v1/devices', { body: DEVICE }, 409);
  await rec('POST', '/v1/devices', { body: { name: 'bad', kind: 'crn_relu', params: { kappa: 'x' } } }, 400);
  await rec('POST', '/v1/devices', { body: JSON.stringify(DEVICE), headers: { 'Content-Type': 'text/plain' } }, 415);
  await rec('POST', '/v1/devices', { body: JSON.stringify({ name: 'x'.repeat(2 << 20) }), headers: { 'Content-Type': 'application/json' }, expectContinue: true }, 413);
  await rec('GET', '/v1/devices', {}, 200);
  await rec('GET', '/v1/devices?limit=0', {}, 400);
  await rec('GET', '/v1/devices/crn', {}, 200);
  await rec('GET', '/v1/devices/nope', {}, 404);
  await rec('POST', '/v1/devices/crn/simulate', { body: { inputs: { u1: 0.5 }, max_points: 20 } }, 200);
  await rec('POST', '/v1/devices/crn/simulate', { body: { inputs: { u1: 0.5 }, curve: { input: 'u1', from: 0, to: 1, points: 5 } } }, 200);
  await rec('POST', '/v1/devices/crn/simulate', { body: { inputs: { u1: 'x' } } }, 400);

  // Jobs: one that trains to a model, one far too large, names and ids.
  const sub = await rec('POST', '/v1/jobs', { body: TRAIN }, 201);
  await rec('POST', '/v1/jobs', { body: hugeTrain(15, 65536) }, 422);
  await rec('POST', '/v1/jobs', { body: { type: 'train', spec: { epochs: -1 } } }, 400);
  const id = sub.json && sub.json.id;
  const stream = await events(`/v1/jobs/${id}/events`, 1500);
  check(stream.status === 200 && mediaType(stream.headers) === 'text/event-stream', 'GET /v1/jobs/{id}/events is an event stream',
    `${stream.status} ${stream.headers['content-type']}`);
  const names = new Set(stream.events.map((e) => e.event));
  check(stream.events.length > 0 && [...names].every((n) => ['metric', 'state', 'progress'].includes(n)),
    'the stream sends only the documented events (metric, state, progress)', [...names].join(', '));
  await rec('GET', '/v1/jobs', {}, 200);
  await rec('GET', '/v1/jobs?state=bogus', {}, 400);
  await rec('GET', `/v1/jobs/${id}`, {}, 200);
  await rec('GET', '/v1/jobs/openapi%20xor', {}, 404);
  await rec('GET', `/v1/jobs/${id}/metrics?limit=50`, {}, 200);
  await rec('GET', `/v1/jobs/${id}/metrics?max_points=10`, {}, 200);
  await rec('GET', `/v1/jobs/${id}/metrics?since=x`, {}, 400);
  const job = await waitJob(id);
  check(job && job.state === 'succeeded', 'the train job succeeds', JSON.stringify(job));
  await rec('GET', `/v1/jobs/${id}`, {}, 200);
  await rec('POST', `/v1/jobs/${id}/cancel`, {}, 409);
  await rec('POST', '/v1/jobs/999999/cancel', {}, 404);

  // Models and predictions.
  const models = await rec('GET', '/v1/models', {}, 200);
  const mid = models.json && models.json.models && models.json.models[0] && models.json.models[0].id;
  await rec('GET', `/v1/models/${mid}`, {}, 200);
  await rec('POST', `/v1/models/${mid}/predict`, { body: { rows: [[0, 1], [1, 1]] } }, 200);
  await rec('POST', `/v1/models/${mid}/predict`, { body: { rows: [] } }, 400);
  await rec('GET', '/v1/models/nope', {}, 404);
  await rec('GET', '/v1/surrogates', {}, 200);
  await rec('GET', '/v1/surrogates/nope', {}, 404);

  // Datasets.
  const csv = 'x,y\n0,1\n1,2.5\n2,4\n';
  await rec('POST', '/v1/datasets?name=line', { body: csv, headers: { 'Content-Type': 'text/csv' } }, 201);
  await rec('POST', '/v1/datasets?name=line', { body: csv, headers: { 'Content-Type': 'text/csv' } }, 409);
  await rec('POST', '/v1/datasets?name=bad', { body: 'not,a\ncsv', headers: { 'Content-Type': 'text/csv' } }, 400);
  await rec('POST', '/v1/datasets', { body: csv, headers: { 'Content-Type': 'application/json' } }, 415);
  await rec('GET', '/v1/datasets', {}, 200);
  await rec('GET', '/v1/datasets/line', {}, 200);
  await rec('GET', '/v1/datasets/line/data', {}, 200);
  await rec('GET', '/v1/datasets/nope/data', {}, 404);

  // HEAD of each GET route.
  for (const p of ['/healthz', '/metrics', '/', '/assets/app.js', '/v1/whoami', '/v1/devices', '/v1/devices/crn',
    '/v1/jobs', `/v1/jobs/${id}`, `/v1/jobs/${id}/metrics`, '/v1/datasets', '/v1/datasets/line',
    '/v1/datasets/line/data', `/v1/jobs/${id}/events`, '/v1/surrogates', '/v1/models', `/v1/models/${mid}`, '/v1/jobs/nope'])
    await rec('HEAD', p, {}, p === '/v1/jobs/nope' ? 404 : 200);

  // What the head and the transport refuse.
  await rec('GET', '/v1/jobs?owner=' + 'a'.repeat(9000), {}, 414);
  await rec('GET', '/v1/jobs', { headers: { 'X-Big': 'b'.repeat(40000) } }, 431);
  await rec('GET', '/v1/jobs', { headers: { Host: 'evil.example' } }, 403);
  await rec('POST', '/v1/jobs', { body: TRAIN, headers: { Origin: 'http://evil.example' } }, 403);
  await rec('GET', '/v1/jobs', { headers: { 'Transfer-Encoding': 'gzip, chunked' } }, 400);

  // With a user, every /v1 route needs the token.
  const tok = execFileSync(QN, ['user', 'add', 'alice', '--db', join(dir, 'api.db')], { encoding: 'utf8' });
  const token = (tok.match(/[A-Za-z0-9_-]{20,}/) || [''])[0];
  await sleep(300);
  await rec('GET', '/v1/jobs', {}, 401);
  await rec('POST', '/v1/jobs', { body: TRAIN }, 401);
  await rec('GET', '/v1/devices/crn', {}, 401);
  await rec('GET', '/v1/whoami', { headers: { Authorization: `Bearer ${token}` } }, 200);
  await rec('GET', '/healthz', {}, 200);
}

/* The document with every $ref (the JSON Schema files' too) resolved by redocly. */
async function bundled() {
  const r = await bundle({ ref: SPEC, config: await loadConfig() });
  return r.bundle.parsed;
}

async function main() {
  const api = new OpenAPIBackend({
    // quick: openapi-backend's own check of the document knows OpenAPI 3.0 only;
    // redocly lint (make test-openapi) checks the document.
    definition: await bundled(), strict: false, quick: true, validate: true, lazyCompileValidators: true,
    customizeAjv: (_ajv, opts) => { const a = new Ajv2020({ ...opts, strict: false }); addFormats(a); return a; },
  });
  await api.init();
  const dir = mkdtempSync(join(tmpdir(), 'qn-openapi-'));
  const { proc, port } = await startDaemon(QN, dir, 'api.db');
  PORT = port;
  try {
    await exercise(dir);
    for (const x of recorded) validate(api, x);
  } finally {
    proc.kill('SIGTERM');
    const code = await new Promise((r) => proc.once('exit', (c) => r(c)));
    check(code === 0, 'qn serve exits 0 on SIGTERM', `exit ${code}`);
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit(T.close('openapi') ? 1 : 0);
}

main().catch((e) => { T.check(false, 'the test ran to its end', e.stack || e); T.close('openapi'); process.exit(1); });
