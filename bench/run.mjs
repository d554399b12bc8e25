// The benchmark behind `make bench` (see the README's "Performance" section).
//
// Measures the runtime, not the dev server. Starts, all on loopback: the provider stand-in
// (tests/support/stand-in.mjs, recording nothing), Threadline's release build on workerd
// through Miniflare's programmatic API (bench/lib/runtime.mjs: a direct socket, local D1/KV
// with the migrations applied, production settings, authentication on with an API key made
// through the API), a one-file JavaScript pass-through worker served the same way (the
// floor) and the Portkey gateway; then drives each from a separate process (wrk, or oha, and
// bench/stream-load.mjs for streams). Then, on a second Threadline behind
// bench/storage-sim.mjs, it counts the D1 and KV calls each route makes around its provider
// call, and repeats the Threadline cells with every storage call delayed as a remote one would
// be. It writes a dated section at the top of bench/RESULTS.md.
//
// Knobs (environment): BENCH_DURATION (seconds per cell, default 6), BENCH_CONCURRENCY
// (default "1,16,64"), BENCH_TARGETS (default direct,passthrough,threadline,portkey; also
// litellm, and the labelled extras threadline-wrangler-dev and passthrough-wrangler-dev),
// BENCH_SCENARIOS (default nonstream,stream,messages,messages-stream), BENCH_STORAGE_LATENCY
// (default "d1=30,kv=5", milliseconds per call), BENCH_SKIP (any of
// hash,routes,probe,storage), BENCH_RESULTS (default bench/RESULTS.md; "-" prints only).
import { execFileSync } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { ROOT, TEST_JWT_SECRET } from '../tests/e2e/harness.mjs';
import { startStandIn } from '../tests/support/stand-in.mjs';
import { startDevWorker } from './lib/worker.mjs';
import { startRuntimeWorker, wranglerSettings } from './lib/runtime.mjs';
import {
  startStandInProcess, startPortkey, startLiteLLM, LITELLM_MASTER_KEY, cpuMs, cpuDelta, processesOf, sleep,
} from './lib/procs.mjs';
import { httpLoad, streamLoad, loadTool, loadToolVersion } from './lib/load.mjs';
import { splitAroundProvider } from './lib/storage-ops.mjs';
import { renderSection, prependSection } from './lib/report.mjs';
import { readDeltas } from './lib/deltas.mjs';

const env = process.env;
const CFG = {
  duration: Number(env.BENCH_DURATION ?? 6),
  conc: (env.BENCH_CONCURRENCY ?? '1,16,64').split(',').map(Number),
  targets: (env.BENCH_TARGETS ?? 'direct,passthrough,threadline,portkey').split(',').map((s) => s.trim()).filter(Boolean),
  scenarios: (env.BENCH_SCENARIOS ?? 'nonstream,stream,messages,messages-stream').split(','),
  storageLatency: env.BENCH_STORAGE_LATENCY ?? 'd1=30,kv=5',
  skip: new Set((env.BENCH_SKIP ?? '').split(',').filter(Boolean)),
  results: env.BENCH_RESULTS ?? path.join(ROOT, 'bench/RESULTS.md'),
};
// Threadline is always started: the other Threadline phases need it.
if (!CFG.targets.includes('threadline')) CFG.targets.push('threadline');
const PROMPT = 'Say hello to the benchmark in a few short words, please';
const LIMITS = { RATE_LIMIT_V1: '100000000/60', RATE_LIMIT_CHAT: '100000000/60', RATE_LIMIT_REGISTER: '1000/600' };
const UPSTREAM_KEY = 'sk-bench-upstream';
const PROBE_TEXT = 'one two three four five six seven eight nine ten eleven twelve';
const started = Date.now();
const log = (...a) => console.log(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s]`, ...a);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : null; };
const problems = [];

const cleanup = [];
async function stopAll() {
  while (cleanup.length) {
    const f = cleanup.pop();
    try { await f(); } catch { /* best effort */ }
  }
}
/** Registers `stop` for the end of the run and returns a function that stops it now. */
function stopLater(stop) {
  let done = false;
  const once = async () => { if (!done) { done = true; await stop(); } };
  cleanup.push(once);
  return once;
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, async () => { await stopAll(); process.exit(130); });

// ---- facts about the machine, the versions and the build ----------------------------------

function sh(cmd, args) {
  try { return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { return null; }
}
async function pkgVersion(rel) {
  try { return JSON.parse(await readFile(path.join(ROOT, 'node_modules', rel, 'package.json'), 'utf8')).version; } catch { return '?'; }
}
function miniflareVersion() {
  try {
    const fromWrangler = createRequire(createRequire(import.meta.url).resolve('wrangler/package.json'));
    return fromWrangler('miniflare/package.json').version;
  } catch { return '?'; }
}
async function facts() {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? '?';
  const cargo = await readFile(path.join(ROOT, 'Cargo.toml'), 'utf8');
  const version = /^version = "(.*)"/m.exec(cargo)?.[1] ?? '?';
  const sha = sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no', '--', 'src', 'Cargo.toml', 'Cargo.lock']);
  // The commit that last changed the worker's code: what the numbers are of, whatever
  // benchmark-only commits came after it.
  const srcSha = sh('git', ['-C', ROOT, 'log', '-1', '--format=%h', '--', 'src', 'Cargo.toml', 'Cargo.lock', 'wrangler.toml', 'migrations']);
  const litellm = CFG.targets.includes('litellm')
    ? sh(path.join(ROOT, 'bench/.venv/bin/python'), ['-c', 'import importlib.metadata as m; print(m.version("litellm"))'])
    : null;
  const settings = await wranglerSettings();
  return {
    date: new Date().toISOString().replace('T', ' ').replace(/:\d\d\.\d+Z$/, ' UTC'),
    cpu: model,
    cores: os.cpus().length,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    loadavg: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    threadline: `${version} (${sha ?? 'no git'}${srcSha && srcSha !== sha ? `; worker code as of ${srcSha}` : ''}${dirty ? ', with uncommitted changes' : ''})`,
    wrangler: await pkgVersion('wrangler'),
    miniflare: miniflareVersion(),
    workerd: await pkgVersion('workerd'),
    compatibility: `${settings.compatibilityDate}${settings.compatibilityFlags.length ? `, ${settings.compatibilityFlags.join(', ')}` : ''}`,
    portkey: await pkgVersion('@portkey-ai/gateway'),
    litellm,
    node: process.version,
    jwtSecretBytes: Buffer.byteLength(TEST_JWT_SECRET),
    loadTool: loadToolVersion(loadTool()),
  };
}

async function bundle() {
  const wasm = await readFile(path.join(ROOT, 'build/index_bg.wasm'));
  const js = await readFile(path.join(ROOT, 'build/index.js'));
  const shim = await readFile(path.join(ROOT, 'build/worker/shim.mjs'));
  const entry = await readFile(path.join(ROOT, 'src/entry.mjs'));
  const gz = (b) => zlib.gzipSync(b, { level: 9 }).length;
  const jsAll = Buffer.concat([js, shim, entry]);
  // V8 compiling the module, as workerd does on a cold start (Node's V8, so indicative).
  const compile = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await WebAssembly.compile(wasm);
    compile.push(performance.now() - t);
  }
  return {
    wasmRaw: wasm.length, wasmGzip: gz(wasm), jsRaw: jsAll.length, jsGzip: gz(jsAll),
    totalGzip: gz(wasm) + gz(jsAll), compileMs: median(compile), builtAt: (await stat(path.join(ROOT, 'build/index_bg.wasm'))).mtime,
  };
}

// ---- targets -----------------------------------------------------------------------------

const BODY = (model, stream) => JSON.stringify({ model, stream, messages: [{ role: 'user', content: PROMPT }] });

/** A JSON call against a worker: { status, body, text }. */
async function callJson(base, method, route, { json, token } = {}) {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: { ...(json !== undefined ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: json !== undefined ? JSON.stringify(json) : undefined,
  });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = undefined; }
  return { status: res.status, body, text };
}

/** A started Threadline with an account: an access token and an API key made through the API. */
async function withAccount(w) {
  const call = (method, route, opts) => callJson(w.url, method, route, opts);
  const email = `bench-${Date.now()}@example.com`;
  const password = 'correct horse battery staple 42';
  let r = await call('POST', '/api/auth/register', { json: { email, password } });
  if (r.status !== 201) throw new Error(`register: ${r.status} ${r.text}`);
  r = await call('POST', '/api/auth/login-json', { json: { email, password } });
  if (r.status !== 200) throw new Error(`login: ${r.status} ${r.text}`);
  const access = r.body.access_token;
  r = await call('POST', '/api/keys', { token: access, json: { name: 'benchmark' } });
  if (r.status !== 201) throw new Error(`api key: ${r.status} ${r.text}`);
  return { w, key: r.body.key, access, call };
}

async function newConversations(tl, n, model = 'openai/gpt-4o-mini') {
  const ids = [];
  for (let i = 0; i < n; i++) {
    const r = await tl.call('POST', '/api/conversations', { token: tl.key, json: { model } });
    if (r.status !== 201) throw new Error(`create conversation: ${r.status} ${r.text}`);
    ids.push(r.body.id);
  }
  return ids;
}

// ---- measurements ------------------------------------------------------------------------

/** Runs one cell, with the CPU the target's own processes used over it. */
async function cell(kind, target, spec, concurrency) {
  const pids = await target.pids();
  const before = await cpuMs(pids);
  const r = kind === 'stream'
    ? await streamLoad({ ...spec, concurrency, durationS: CFG.duration })
    : await httpLoad({ ...spec, concurrency, durationS: CFG.duration });
  const cpu = cpuDelta(before, await cpuMs(pids));
  const n = r.requests || 1;
  r.cpuPerReq = Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, v / n]));
  const errors = kind === 'stream' ? r.errorCount : r.errors;
  if (errors > 0) {
    const msg = `${spec.label} c=${concurrency}: ${errors} ERRORS ${JSON.stringify(r.errors ?? r.errorDetail)} ${JSON.stringify(r.samples ?? r.error_samples ?? [])}`;
    problems.push(msg);
    log(`!!!!! ${msg}`);
  }
  return r;
}

function logCell(prefix, c, r, stream) {
  const lat = stream ? `ttfb p50 ${r.ttfb.p50?.toFixed(1)} ttlb p50 ${r.ttlb.p50?.toFixed(1)} p99 ${r.ttlb.p99?.toFixed(1)}` : `p50 ${r.p50?.toFixed(1)} p99 ${r.p99?.toFixed(1)}`;
  log(`${prefix} c=${String(c).padEnd(3)} ${r.rps.toFixed(0).padStart(6)} req/s  ${lat} ms  errors ${stream ? r.errorCount : r.errors}  CPU ${r.cpuPerReq.total.toFixed(2)} ms/req`);
}

/** The load spec of a Threadline scenario (the conversation ones get fresh conversations). */
async function threadlineSpec(tl, scenario, c) {
  const stream = scenario === 'stream' || scenario === 'messages-stream';
  if (scenario.startsWith('messages')) {
    // Fresh conversations for each cell (2 per connection, in rotation), so history,
    // bounded by the context budget anyway, stays a few messages long.
    // Four conversations per connection: a conversation runs one streamed generation at a
    // time (a second is a 409), so a connection never comes back to one still generating.
    const ids = await newConversations(tl, Math.max(4, c * 4));
    return {
      label: `${scenario} threadline`, url: `${tl.w.url}/api/conversations/${ids[0]}/messages`,
      paths: ids.map((id) => `/api/conversations/${id}/messages`), headers: { authorization: `Bearer ${tl.key}` },
      body: JSON.stringify({ content: PROMPT, stream }), expect: stream ? 'event: done' : undefined,
    };
  }
  return { label: `${scenario} threadline`, url: `${tl.w.url}/v1/chat/completions`, headers: { authorization: `Bearer ${tl.key}` }, body: BODY('openai/gpt-4o-mini', stream), expect: '[DONE]' };
}

/** Sequential requests against one Threadline route: wall, worker-logged duration, process CPU. */
async function routeCost(tl, label, routeTemplate, fn, n = 200) {
  for (let i = 0; i < 5; i++) await fn();
  const pids = await tl.pids();
  tl.clearOutput();
  const before = await cpuMs(pids);
  const walls = [];
  let bad = 0;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const status = await fn();
    walls.push(performance.now() - t);
    if (status >= 400 && routeTemplate !== 'unmatched') bad += 1;
  }
  const cpu = cpuDelta(before, await cpuMs(pids));
  await sleep(300);
  const durations = tl.output().split('\n')
    .filter((l) => l.includes('"msg":"request"') && l.includes(`"route":"${routeTemplate}"`))
    .map((l) => { try { return JSON.parse(l.slice(l.indexOf('{'))).duration_ms; } catch { return null; } })
    .filter((x) => typeof x === 'number');
  if (bad) problems.push(`route cost ${label}: ${bad} failed requests`);
  return {
    label, wall: median(walls), logged: median(durations), logged_n: durations.length,
    workerd: (cpu.workerd ?? 0) / n, node: (cpu.node ?? 0) / n, total: cpu.total / n,
  };
}

/**
 * One warm request per route on the storage-simulating Threadline: its D1/KV calls split
 * around the provider call (bench/lib/storage-ops.mjs), and when the provider request arrived
 * at the recording stand-in, after the client sent it.
 */
async function storageOpsByRoute(sim, probe, latency) {
  const settleMs = 200 + 6 * Math.max(latency.d1, latency.kv);
  const model = 'ollama/bench-probe';
  const [cid] = await newConversations(sim, 1, model);
  const send = (method, route, json, token) => async () => {
    const t0 = Date.now();
    const res = await fetch(`${sim.w.url}${route}`, {
      method,
      headers: { ...(json ? { 'content-type': 'application/json' } : {}), authorization: `Bearer ${token}` },
      body: json ? JSON.stringify(json) : undefined,
    });
    const headersAt = Date.now();
    await res.arrayBuffer();
    return { t0, headersAt, endAt: Date.now(), status: res.status };
  };
  const v1 = (stream) => JSON.parse(BODY(model, stream));
  const routes = [
    ['POST /v1/chat/completions (API key)', send('POST', '/v1/chat/completions', v1(false), sim.key)],
    ['POST /v1/chat/completions (API key, stream)', send('POST', '/v1/chat/completions', v1(true), sim.key)],
    ['POST /v1/chat/completions (JWT access token)', send('POST', '/v1/chat/completions', v1(false), sim.access)],
    ['POST /v1/chat/completions (JWT, stream)', send('POST', '/v1/chat/completions', v1(true), sim.access)],
    ['POST /api/chat (stored chat, API key)', send('POST', '/api/chat', { content: PROMPT, conversation_id: cid }, sim.key)],
    ['POST /api/chat/stream (stored chat, API key)', send('POST', '/api/chat/stream', { content: PROMPT, conversation_id: cid }, sim.key)],
    ['POST /api/chat (stored chat, JWT)', send('POST', '/api/chat', { content: PROMPT, conversation_id: cid }, sim.access)],
    ['POST /api/chat/stream (stored chat, JWT)', send('POST', '/api/chat/stream', { content: PROMPT, conversation_id: cid }, sim.access)],
    ['POST /api/chat (new conversation, API key)', send('POST', '/api/chat', { content: PROMPT, model }, sim.key)],
    ['GET /v1/models (API key)', send('GET', '/v1/models', null, sim.key)],
  ];
  const rows = [];
  for (const [label, run] of routes) {
    const warm = await run();
    if (warm.status >= 400) throw new Error(`${label}: warm-up answered ${warm.status}`);
    await sleep(settleMs);
    await sim.w.storageOps();
    probe.reset();
    const r = await run();
    await sleep(settleMs);
    const { ops } = await sim.w.storageOps();
    if (r.status >= 400) problems.push(`storage ops ${label}: answered ${r.status}`);
    const rec = probe.requests.find((q) => q.endpoint === 'chat');
    const split = splitAroundProvider(ops);
    rows.push({
      label, status: r.status, ...split,
      providerReceivedMs: rec ? rec.receivedAt - r.t0 : null,
      headersMs: r.headersAt - r.t0,
      endMs: r.endAt - r.t0,
    });
    log(`storage ${label.padEnd(46)} before provider: D1 ${split.before.d1} KV ${split.before.kv} (${split.before.sequential} sequential) | parallel ${split.parallel.n} | after ${split.after.n} | provider got it +${rec ? rec.receivedAt - r.t0 : '–'} ms`);
  }
  return rows;
}

function parseLatency(spec) {
  const out = { d1: 0, kv: 0 };
  for (const part of spec.split(',')) {
    const m = /^\s*(d1|kv)\s*=\s*(\d+(?:\.\d+)?)\s*$/i.exec(part);
    if (m) out[m[1].toLowerCase()] = Number(m[2]);
  }
  return out;
}

// ---- main --------------------------------------------------------------------------------

const out = { cfg: { ...CFG, skip: [...CFG.skip] }, cells: {}, simCells: {}, notes: [] };
try {
  out.facts = await facts();
  log('machine', out.facts.cores, 'cores,', out.facts.cpu, '| load', out.facts.loadavg);
  out.bundle = await bundle();
  log(`bundle: wasm ${out.bundle.wasmRaw} B raw, ${out.bundle.wasmGzip} B gzip; JS ${out.bundle.jsGzip} B gzip`);

  const standIn = await startStandInProcess();
  cleanup.push(() => standIn.stop());
  const probe = await startStandIn({ port: 0, host: '127.0.0.1', record: true });
  cleanup.push(() => probe.close());
  probe.script({ chunkDelayMs: 40, chunkWords: 2, text: PROBE_TEXT });
  log('stand-in', standIn.url, '| probe stand-in', probe.url);

  // Threadline, production settings, authentication on, limits raised so the load is not throttled.
  const tlVars = {
    ENVIRONMENT: 'production', LOG_LEVEL: 'info', ...LIMITS,
    OPENAI_API_KEY: UPSTREAM_KEY, OPENAI_BASE_URL: `${standIn.url}/v1`,
    OLLAMA_BASE_URL: `${probe.url}/ollama/v1`, EXTRA_MODELS: '[{"id":"ollama/bench-probe"}]',
  };
  const coldStarts = [];
  const startTl = async (what, start) => {
    const w = await start();
    coldStarts.push({ ...w.timings, what });
    return w;
  };
  const tlWorker = await startTl('threadline', () => startRuntimeWorker({ vars: tlVars }));
  const stopTl = stopLater(() => tlWorker.stop());
  const tl = await withAccount(tlWorker);
  log('threadline (Miniflare)', tl.w.url, 'cold start', JSON.stringify(tl.w.timings));

  const targets = {};
  const stops = [];
  const v1Target = (label, w, key) => ({
    label, url: `${w.url}/v1/chat/completions`, model: 'openai/gpt-4o-mini',
    headers: { authorization: `Bearer ${key}` }, pids: () => w.pids(),
    probe: { url: `${w.url}/v1/chat/completions`, model: 'ollama/bench-probe', headers: { authorization: `Bearer ${key}` } },
  });
  const passTarget = (label, w) => ({
    label, url: `${w.url}/v1/chat/completions`, model: 'gpt-4o-mini',
    headers: { authorization: `Bearer ${UPSTREAM_KEY}` }, pids: () => w.pids(),
    probe: { url: `${w.url}/v1/chat/completions`, model: 'gpt-4o-mini', headers: { authorization: `Bearer ${UPSTREAM_KEY}`, 'x-upstream': probe.url } },
  });
  targets.direct = {
    label: 'direct (stand-in)', url: `${standIn.url}/v1/chat/completions`, model: 'gpt-4o-mini',
    headers: { authorization: `Bearer ${UPSTREAM_KEY}` }, pids: async () => [standIn.pid],
    probe: { url: `${probe.url}/v1/chat/completions`, model: 'gpt-4o-mini', headers: { authorization: `Bearer ${UPSTREAM_KEY}` } },
  };
  targets.threadline = v1Target('Threadline', tl.w, tl.key);
  stops.push(stopTl);
  if (CFG.targets.includes('passthrough')) {
    const pt = await startTl('passthrough', () => startRuntimeWorker({ vars: { UPSTREAM: standIn.url }, entry: path.join(ROOT, 'bench/passthrough-worker.mjs'), migrate: false }));
    stops.push(stopLater(() => pt.stop()));
    targets.passthrough = passTarget('JS pass-through (floor)', pt);
  }
  if (CFG.targets.includes('portkey')) {
    const pk = await startPortkey();
    stops.push(stopLater(() => pk.stop()));
    const pkHeaders = (base) => ({ authorization: `Bearer ${UPSTREAM_KEY}`, 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${base}/v1` });
    targets.portkey = {
      label: 'Portkey', url: `${pk.url}/v1/chat/completions`, model: 'gpt-4o-mini', headers: pkHeaders(standIn.url),
      pids: async () => (await processesOf({ pgid: pk.pid })).map((p) => p.pid),
      probe: { url: `${pk.url}/v1/chat/completions`, model: 'gpt-4o-mini', headers: pkHeaders(probe.url) },
    };
    log('portkey', pk.url);
  }
  if (CFG.targets.includes('litellm')) {
    const ll = await startLiteLLM({ 'gpt-4o-mini': `${standIn.url}/v1`, 'bench-probe': `${probe.url}/v1` });
    stops.push(stopLater(() => ll.stop()));
    targets.litellm = {
      label: 'LiteLLM', url: `${ll.url}/v1/chat/completions`, model: 'gpt-4o-mini',
      headers: { authorization: `Bearer ${LITELLM_MASTER_KEY}` },
      pids: async () => (await processesOf({ pgid: ll.pid })).map((p) => p.pid),
      probe: { url: `${ll.url}/v1/chat/completions`, model: 'bench-probe', headers: { authorization: `Bearer ${LITELLM_MASTER_KEY}` } },
    };
    log('litellm', ll.url);
  }
  // The labelled extras: the same two workers under `wrangler dev` (the previous harness).
  if (CFG.targets.includes('threadline-wrangler-dev')) {
    const w = await startTl('threadline-wrangler-dev', () => startDevWorker({ vars: tlVars }));
    stops.push(stopLater(() => w.stop()));
    const acct = await withAccount(w);
    targets['threadline-wrangler-dev'] = v1Target('Threadline under wrangler dev', w, acct.key);
  }
  if (CFG.targets.includes('passthrough-wrangler-dev')) {
    const w = await startTl('passthrough-wrangler-dev', () => startDevWorker({ vars: { UPSTREAM: standIn.url }, entry: path.join(ROOT, 'bench/passthrough-worker.mjs'), migrate: false }));
    stops.push(stopLater(() => w.stop()));
    targets['passthrough-wrangler-dev'] = passTarget('JS pass-through under wrangler dev', w);
  }
  const order = CFG.targets.filter((t) => targets[t]);

  // Smoke: every target answers both shapes before any load; count Threadline's deltas.
  for (const name of order) {
    const t = targets[name];
    for (const stream of [false, true]) {
      const res = await fetch(t.url, { method: 'POST', headers: { 'content-type': 'application/json', ...t.headers }, body: BODY(t.model, stream) });
      if (name === 'threadline' && stream) {
        if (res.status !== 200) throw new Error(`threadline (stream) answered ${res.status}: ${(await res.text()).slice(0, 400)}`);
        out.deltasPerStream = (await readDeltas(res, 'openai')).length;
        continue;
      }
      const text = await res.text();
      if (res.status !== 200 || !text.includes('Echo:')) throw new Error(`${name} (stream=${stream}) answered ${res.status}: ${text.slice(0, 400)}`);
    }
  }
  log('all targets answer:', order.join(', '), `| a /v1 stream carries ${out.deltasPerStream} content deltas`);

  // Does the conversation route exist in this build?
  const [firstConv] = await newConversations(tl, 1);
  const msg = await tl.call('POST', `/api/conversations/${firstConv}/messages`, { token: tl.key, json: { content: PROMPT, stream: false } });
  const hasMessages = msg.status === 200 || msg.status === 201;
  if (!hasMessages) {
    const note = `POST /api/conversations/{id}/messages is not in this build (answered ${msg.status} ${msg.body?.error?.code ?? ''}): the "messages" scenarios were skipped.`;
    out.notes.push(note);
    log(note);
  }

  // ---- load cells ----
  for (const scenario of CFG.scenarios) {
    out.cells[scenario] = {};
    const isMessages = scenario.startsWith('messages');
    if (isMessages && !hasMessages) continue;
    const stream = scenario === 'stream' || scenario === 'messages-stream';
    const names = isMessages ? ['threadline'] : order;
    for (const name of names) {
      const t = targets[name];
      out.cells[scenario][name] = {};
      for (const c of CFG.conc) {
        const spec = name === 'threadline'
          ? await threadlineSpec(tl, scenario, c)
          : { label: `${scenario} ${name}`, url: t.url, headers: t.headers, body: BODY(t.model, stream), expect: '[DONE]' };
        if (c === CFG.conc[0]) {
          // Warm-up: one short run, not recorded.
          const warm = { ...spec, concurrency: 4, durationS: 1 };
          await (stream ? streamLoad(warm) : httpLoad(warm));
        }
        const r = await cell(stream ? 'stream' : 'http', { pids: t.pids }, spec, c);
        out.cells[scenario][name][c] = r;
        logCell(`${scenario.padEnd(15)} ${name.padEnd(11)}`, c, r, stream);
      }
    }
  }

  // ---- streaming: does anything sit on the deltas? ----
  if (!CFG.skip.has('probe')) {
    out.probe = {};
    const probeOne = async (url, headers, body, kind) => {
      const t0 = performance.timeOrigin + performance.now();
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
      if (res.status !== 200) throw new Error(`probe ${url}: ${res.status} ${await res.text()}`);
      const deltas = await readDeltas(res, kind);
      const rec = await probe.waitFor((r) => r.completed && r.receivedAt >= Math.floor(t0) - 1, { timeoutMs: 5000 }).catch(() => null);
      const sent = rec ? rec.chunkTimes : [];
      const lags = deltas.slice(0, sent.length).map((d, i) => d.at - sent[i]);
      return { lags, gotDeltas: deltas.length, sentDeltas: sent.length };
    };
    const probes = order.map((n) => [n, targets[n].probe, 'openai']);
    if (hasMessages) {
      const [id] = await newConversations(tl, 1, 'ollama/bench-probe');
      probes.push(['threadline-messages', { url: `${tl.w.url}/api/conversations/${id}/messages`, headers: { authorization: `Bearer ${tl.key}` }, messages: true }, 'messages']);
    }
    for (const [name, p, kind] of probes) {
      const first = [];
      const all = [];
      let mismatch = 0;
      for (let i = 0; i < 6; i++) {
        probe.reset();
        probe.script({ chunkDelayMs: 40, chunkWords: 2, text: PROBE_TEXT });
        const body = p.messages ? JSON.stringify({ content: 'probe', stream: true }) : BODY(p.model, true);
        const r = await probeOne(p.url, p.headers, body, kind);
        if (i === 0) continue; // warm-up
        if (r.gotDeltas !== r.sentDeltas) mismatch += 1;
        if (r.lags.length) first.push(r.lags[0]);
        all.push(...r.lags);
      }
      out.probe[name] = { firstMedian: median(first), allMedian: median(all), allMax: Math.max(...all), n: all.length, mismatch };
      log(`probe ${name.padEnd(24)} first delta +${median(first)?.toFixed(1)} ms, all deltas median +${median(all)?.toFixed(1)} max +${Math.max(...all).toFixed(1)} ms`);
    }
  }

  // ---- per-route cost at concurrency 1 ----
  if (!CFG.skip.has('routes')) {
    const w = tl.w;
    const f = async (base, method, route, json, token) => {
      const res = await fetch(`${base}${route}`, {
        method,
        headers: { ...(json ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: json ? JSON.stringify(json) : undefined,
      });
      await res.arrayBuffer();
      return res.status;
    };
    const [cid] = await newConversations(tl, 1);
    for (let i = 0; i < 5 && hasMessages; i++) await f(w.url, 'POST', `/api/conversations/${cid}/messages`, { content: PROMPT, stream: false }, tl.key);
    const rows = [];
    const ok = (base, key) => ({
      get: (route) => () => f(base, 'GET', route, null, key),
      post: (route, json) => () => f(base, 'POST', route, json, key),
    });
    const t = ok(w.url, tl.key);
    rows.push(await routeCost(w, 'unknown path (404)', 'unmatched', () => f(w.url, 'GET', '/bench-no-such-route')));
    rows.push(await routeCost(w, 'GET /health', '/health', () => f(w.url, 'GET', '/health')));
    rows.push(await routeCost(w, 'GET /v1/models (API key)', '/v1/models', t.get('/v1/models')));
    rows.push(await routeCost(w, 'POST /v1/chat/completions', '/v1/chat/completions', t.post('/v1/chat/completions', JSON.parse(BODY('openai/gpt-4o-mini', false)))));
    rows.push(await routeCost(w, 'POST /v1/chat/completions (stream)', '/v1/chat/completions', t.post('/v1/chat/completions', JSON.parse(BODY('openai/gpt-4o-mini', true)))));
    rows.push(await routeCost(w, 'POST /v1/chat/completions (JWT access token)', '/v1/chat/completions', () => f(w.url, 'POST', '/v1/chat/completions', JSON.parse(BODY('openai/gpt-4o-mini', false)), tl.access)));
    rows.push(await routeCost(w, 'GET /api/conversations', '/api/conversations', t.get('/api/conversations')));
    rows.push(await routeCost(w, 'GET /api/conversations/{id}/messages', '/api/conversations/{id}/messages', t.get(`/api/conversations/${cid}/messages`)));
    if (hasMessages) {
      rows.push(await routeCost(w, 'POST /api/conversations/{id}/messages', '/api/conversations/{id}/messages', t.post(`/api/conversations/${cid}/messages`, { content: PROMPT, stream: false }), 100));
    }
    if (targets.passthrough) {
      const pt = targets.passthrough;
      const r = await routeCost({ pids: pt.pids, clearOutput: () => {}, output: () => '' }, 'pass-through worker: POST /v1/chat/completions', '-', async () => {
        const res = await fetch(pt.url, { method: 'POST', headers: { 'content-type': 'application/json', ...pt.headers }, body: BODY(pt.model, false) });
        await res.arrayBuffer();
        return res.status;
      });
      r.logged = null;
      rows.push(r);
    }
    // The same two routes with LOG_LEVEL=warn (no request log line): each line the worker
    // prints is read and parsed by Miniflare in its Node host.
    const quiet = await withAccount(await startTl('threadline', () => startRuntimeWorker({ vars: { ...tlVars, LOG_LEVEL: 'warn' } })));
    rows.push(await routeCost(quiet.w, 'unknown path (404), LOG_LEVEL=warn', 'unmatched', () => f(quiet.w.url, 'GET', '/bench-no-such-route')));
    rows.push(await routeCost(quiet.w, 'POST /v1/chat/completions, LOG_LEVEL=warn', '/v1/chat/completions', () => f(quiet.w.url, 'POST', '/v1/chat/completions', JSON.parse(BODY('openai/gpt-4o-mini', false)), quiet.key)));
    await quiet.w.stop();
    out.routes = rows;
    for (const r of rows) log(`route ${r.label.padEnd(48)} wall ${r.wall.toFixed(1)} ms, logged ${r.logged ?? '-'} ms, workerd CPU ${r.workerd.toFixed(2)} ms, host Node CPU ${r.node.toFixed(2)} ms`);
  }

  // Done with the load targets; the stand-ins stay for the storage phase.
  for (const stop of stops) await stop();

  // ---- storage: the calls around the provider call, and remote latency simulated ----
  if (!CFG.skip.has('storage')) {
    const latency = parseLatency(CFG.storageLatency);
    out.storage = { latency, spec: CFG.storageLatency };
    const simWorker = await startTl('threadline-storage-sim', () => startRuntimeWorker({ vars: tlVars, storageLatency: CFG.storageLatency }));
    const stopSim = stopLater(() => simWorker.stop());
    const sim = await withAccount(simWorker);
    log(`storage-simulating Threadline ${sim.w.url} (${CFG.storageLatency})`);
    probe.reset();
    out.storage.routes = await storageOpsByRoute(sim, probe, latency);
    for (const scenario of ['nonstream', 'stream', 'messages-stream']) {
      if (scenario.startsWith('messages') && !hasMessages) continue;
      const stream = scenario !== 'nonstream';
      out.simCells[scenario] = {};
      for (const c of CFG.conc) {
        const spec = await threadlineSpec(sim, scenario, c);
        if (c === CFG.conc[0]) await (stream ? streamLoad : httpLoad)({ ...spec, concurrency: 4, durationS: 1 });
        const r = await cell(stream ? 'stream' : 'http', { pids: () => sim.w.pids() }, { ...spec, label: `${spec.label} (storage latency ${CFG.storageLatency})` }, c);
        out.simCells[scenario][c] = r;
        logCell(`${scenario.padEnd(15)} sim-latency`, c, r, stream);
      }
    }
    await stopSim();
  }

  // Done with the stand-ins; stop them before the hash measurements (each starts a worker).
  await stopAll();

  // ---- argon2id per OWASP parameter set (folded from bench/hash-cost.mjs) ----
  if (!CFG.skip.has('hash')) {
    const { hashCost, OWASP_SETS } = await import('./hash-cost.mjs');
    out.hash = [];
    for (const params of OWASP_SETS) {
      const r = await hashCost(params, { onStart: (timings) => coldStarts.push({ ...timings, what: 'threadline' }) });
      out.hash.push(r);
      log(`argon2id ${params}: ≈ ${r.wallMs.toFixed(1)} ms wall, ${r.cpuMs.toFixed(1)} ms workerd CPU per hash`);
    }
  }
  out.coldStarts = coldStarts;
} catch (err) {
  await stopAll();
  console.error(err);
  process.exit(2);
}
await stopAll();

out.problems = problems;
out.elapsedS = (Date.now() - started) / 1000;
const md = renderSection(out);
if (CFG.results === '-') {
  console.log(md);
} else {
  await prependSection(CFG.results, md);
  log(`wrote ${path.relative(ROOT, CFG.results)} (${out.elapsedS.toFixed(0)} s in all)`);
}
if (problems.length) {
  console.error(`\n!!!!! ${problems.length} PROBLEM(S) — errors must be 0:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  process.exit(1);
}
