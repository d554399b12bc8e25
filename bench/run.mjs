// The benchmark behind `make bench` (see the README's "Performance" section).
//
// Starts, all on loopback: the provider stand-in (tests/support/stand-in.mjs, recording
// nothing), Threadline's release build under `wrangler dev` with authentication on (an API key
// made through the API), a one-file JavaScript pass-through worker under the same wrangler dev
// (the platform's floor), the Portkey gateway and the LiteLLM proxy; then drives each from a
// separate process (wrk, or oha, and bench/stream-load.mjs for streams) and writes a dated
// section at the top of bench/RESULTS.md.
//
// Knobs (environment): BENCH_DURATION (seconds per cell, default 6), BENCH_CONCURRENCY
// (default "1,16,64"), BENCH_TARGETS (default all: direct,passthrough,threadline,portkey,litellm),
// BENCH_SCENARIOS (default nonstream,stream,messages,messages-stream), BENCH_SKIP (any of
// hash,routes,probe,cold), BENCH_RESULTS (default bench/RESULTS.md; "-" prints only).
import { execFileSync } from 'node:child_process';
import { readFile, writeFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { ROOT } from '../tests/e2e/harness.mjs';
import { startStandIn } from '../tests/support/stand-in.mjs';
import { startDevWorker } from './lib/worker.mjs';
import {
  startStandInProcess, startPortkey, startLiteLLM, LITELLM_MASTER_KEY, cpuMs, cpuDelta, processesOf, sleep,
} from './lib/procs.mjs';
import { httpLoad, streamLoad, loadTool, loadToolVersion } from './lib/load.mjs';
import { renderSection, prependSection } from './lib/report.mjs';

const env = process.env;
const CFG = {
  duration: Number(env.BENCH_DURATION ?? 6),
  conc: (env.BENCH_CONCURRENCY ?? '1,16,64').split(',').map(Number),
  targets: (env.BENCH_TARGETS ?? 'direct,passthrough,threadline,portkey,litellm').split(','),
  scenarios: (env.BENCH_SCENARIOS ?? 'nonstream,stream,messages,messages-stream').split(','),
  skip: new Set((env.BENCH_SKIP ?? '').split(',').filter(Boolean)),
  results: env.BENCH_RESULTS ?? path.join(ROOT, 'bench/RESULTS.md'),
};
const PROMPT = 'Say hello to the benchmark in a few short words, please';
const LIMITS = { RATE_LIMIT_V1: '100000000/60', RATE_LIMIT_CHAT: '100000000/60', RATE_LIMIT_REGISTER: '1000/600' };
const UPSTREAM_KEY = 'sk-bench-upstream';
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
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, async () => { await stopAll(); process.exit(130); });

// ---- facts about the machine, the versions and the build ----------------------------------

function sh(cmd, args) {
  try { return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { return null; }
}
async function pkgVersion(rel) {
  try { return JSON.parse(await readFile(path.join(ROOT, 'node_modules', rel, 'package.json'), 'utf8')).version; } catch { return '?'; }
}
async function facts() {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? '?';
  const cargo = await readFile(path.join(ROOT, 'Cargo.toml'), 'utf8');
  const version = /^version = "(.*)"/m.exec(cargo)?.[1] ?? '?';
  const sha = sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no', '--', 'src', 'Cargo.toml', 'Cargo.lock']);
  const litellm = sh(path.join(ROOT, 'bench/.venv/bin/python'), ['-c', 'import importlib.metadata as m; print(m.version("litellm"))']);
  const nodeForWrangler = sh(path.join(ROOT, 'node_modules/.bin/node'), ['--version']);
  return {
    date: new Date().toISOString().replace('T', ' ').replace(/:\d\d\.\d+Z$/, ' UTC'),
    cpu: model,
    cores: os.cpus().length,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    loadavg: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    threadline: `${version} (${sha ?? 'no git'}${dirty ? ', with uncommitted changes' : ''})`,
    wrangler: await pkgVersion('wrangler'),
    workerd: await pkgVersion('workerd'),
    portkey: await pkgVersion('@portkey-ai/gateway'),
    litellm: litellm ?? '?',
    node: process.version,
    nodeForWrangler: nodeForWrangler ?? '?',
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

async function setUpThreadline(vars) {
  const w = await startDevWorker({ vars });
  cleanup.push(() => w.stop());
  const call = async (method, route, { json, token } = {}) => {
    const res = await fetch(`${w.url}${route}`, {
      method,
      headers: { ...(json !== undefined ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: json !== undefined ? JSON.stringify(json) : undefined,
    });
    const text = await res.text();
    let body;
    try { body = JSON.parse(text); } catch { body = undefined; }
    return { status: res.status, body, text };
  };
  const email = `bench-${Date.now()}@example.com`;
  const password = 'correct horse battery staple 42';
  let r = await call('POST', '/api/auth/register', { json: { email, password } });
  if (r.status !== 201) throw new Error(`register: ${r.status} ${r.text}`);
  r = await call('POST', '/api/auth/login-json', { json: { email, password } });
  if (r.status !== 200) throw new Error(`login: ${r.status} ${r.text}`);
  const access = r.body.access_token;
  r = await call('POST', '/api/keys', { token: access, json: { name: 'benchmark' } });
  if (r.status !== 201) throw new Error(`api key: ${r.status} ${r.text}`);
  return { w, key: r.body.key, call };
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

/** Sequential requests against one Threadline route: wall, worker-logged duration, process CPU. */
async function routeCost(tl, label, routeTemplate, fn, n = 60) {
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

/** Reads an SSE response, timestamping each content delta as it arrives. */
async function readDeltas(res, kind) {
  const decoder = new TextDecoder();
  let buffer = '';
  const deltas = [];
  for await (const chunk of res.body) {
    const at = performance.timeOrigin + performance.now();
    buffer += decoder.decode(chunk, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
      if (!data || data === '[DONE]') continue;
      let j;
      try { j = JSON.parse(data); } catch { continue; }
      const text = kind === 'messages' ? (event === 'delta' ? j.text : '') : j.choices?.[0]?.delta?.content;
      if (text) deltas.push({ at, text });
    }
  }
  return deltas;
}

// ---- main --------------------------------------------------------------------------------

const out = { cfg: { ...CFG, skip: [...CFG.skip] }, cells: {}, notes: [] };
try {
  out.facts = await facts();
  log('machine', out.facts.cores, 'cores,', out.facts.cpu, '| load', out.facts.loadavg);
  out.bundle = await bundle();
  log(`bundle: wasm ${out.bundle.wasmRaw} B raw, ${out.bundle.wasmGzip} B gzip; JS ${out.bundle.jsGzip} B gzip`);

  const standIn = await startStandInProcess();
  cleanup.push(() => standIn.stop());
  const probe = await startStandIn({ port: 0, host: '127.0.0.1', record: true });
  cleanup.push(() => probe.close());
  probe.script({ chunkDelayMs: 40, chunkWords: 2, text: 'one two three four five six seven eight nine ten eleven twelve' });
  log('stand-in', standIn.url, '| probe stand-in', probe.url);

  // Threadline, production settings, authentication on, limits raised so the load is not throttled.
  const tlVars = {
    ENVIRONMENT: 'production', LOG_LEVEL: 'info', ...LIMITS,
    OPENAI_API_KEY: UPSTREAM_KEY, OPENAI_BASE_URL: `${standIn.url}/v1`,
    OLLAMA_BASE_URL: `${probe.url}/ollama/v1`, EXTRA_MODELS: '[{"id":"ollama/bench-probe"}]',
  };
  const tl = await setUpThreadline(tlVars);
  const coldStarts = [{ ...tl.w.timings, what: 'threadline' }];
  log('threadline', tl.w.url, 'cold start', JSON.stringify(tl.w.timings));

  const targets = {};
  targets.direct = {
    label: 'direct (stand-in)', url: `${standIn.url}/v1/chat/completions`, model: 'gpt-4o-mini',
    headers: { authorization: `Bearer ${UPSTREAM_KEY}` }, pids: async () => [standIn.pid],
    probe: { url: `${probe.url}/v1/chat/completions`, model: 'gpt-4o-mini', headers: { authorization: `Bearer ${UPSTREAM_KEY}` } },
  };
  targets.threadline = {
    label: 'Threadline', url: `${tl.w.url}/v1/chat/completions`, model: 'openai/gpt-4o-mini',
    headers: { authorization: `Bearer ${tl.key}` }, pids: () => tl.w.pids(),
    probe: { url: `${tl.w.url}/v1/chat/completions`, model: 'ollama/bench-probe', headers: { authorization: `Bearer ${tl.key}` } },
  };
  if (CFG.targets.includes('passthrough')) {
    const pt = await startDevWorker({ vars: { UPSTREAM: standIn.url }, entry: path.join(ROOT, 'bench/passthrough-worker.mjs'), migrate: false });
    cleanup.push(() => pt.stop());
    coldStarts.push({ ...pt.timings, what: 'passthrough' });
    targets.passthrough = {
      label: 'wrangler dev floor (JS pass-through)', url: `${pt.url}/v1/chat/completions`, model: 'gpt-4o-mini',
      headers: { authorization: `Bearer ${UPSTREAM_KEY}` }, pids: () => pt.pids(),
      probe: { url: `${pt.url}/v1/chat/completions`, model: 'gpt-4o-mini', headers: { authorization: `Bearer ${UPSTREAM_KEY}`, 'x-upstream': probe.url } },
    };
  }
  if (CFG.targets.includes('portkey')) {
    const pk = await startPortkey();
    cleanup.push(() => pk.stop());
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
    cleanup.push(() => ll.stop());
    targets.litellm = {
      label: 'LiteLLM', url: `${ll.url}/v1/chat/completions`, model: 'gpt-4o-mini',
      headers: { authorization: `Bearer ${LITELLM_MASTER_KEY}` },
      pids: async () => (await processesOf({ pgid: ll.pid })).map((p) => p.pid),
      probe: { url: `${ll.url}/v1/chat/completions`, model: 'bench-probe', headers: { authorization: `Bearer ${LITELLM_MASTER_KEY}` } },
    };
    log('litellm', ll.url);
  }
  const order = CFG.targets.filter((t) => targets[t]);

  // Smoke: every target answers both shapes before any load.
  for (const name of order) {
    const t = targets[name];
    for (const stream of [false, true]) {
      const res = await fetch(t.url, { method: 'POST', headers: { 'content-type': 'application/json', ...t.headers }, body: BODY(t.model, stream) });
      const text = await res.text();
      if (res.status !== 200 || !text.includes('Echo:')) throw new Error(`${name} (stream=${stream}) answered ${res.status}: ${text.slice(0, 400)}`);
    }
  }
  log('all targets answer:', order.join(', '));

  // Does the chat route exist in this build?
  let conv = await tl.call('POST', '/api/conversations', { token: tl.key, json: { model: 'openai/gpt-4o-mini' } });
  if (conv.status !== 201) throw new Error(`create conversation: ${conv.status} ${conv.text}`);
  const msg = await tl.call('POST', `/api/conversations/${conv.body.id}/messages`, { token: tl.key, json: { content: PROMPT, stream: false } });
  const hasMessages = msg.status === 200 || msg.status === 201;
  if (!hasMessages) {
    const note = `POST /api/conversations/{id}/messages is not in this build (answered ${msg.status} ${msg.body?.error?.code ?? ''}): the "messages" scenarios were skipped.`;
    out.notes.push(note);
    log(note);
  }
  const newConversations = async (n, model = 'openai/gpt-4o-mini') => {
    const ids = [];
    for (let i = 0; i < n; i++) {
      const r = await tl.call('POST', '/api/conversations', { token: tl.key, json: { model } });
      if (r.status !== 201) throw new Error(`create conversation: ${r.status} ${r.text}`);
      ids.push(r.body.id);
    }
    return ids;
  };

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
        let spec;
        if (isMessages) {
          // Fresh conversations for each cell (2 per connection, in rotation), so history,
          // bounded by the context budget anyway, stays a few messages long.
          const ids = await newConversations(Math.max(2, c * 2));
          spec = {
            label: `${scenario} threadline`, url: `${tl.w.url}/api/conversations/${ids[0]}/messages`,
            paths: ids.map((id) => `/api/conversations/${id}/messages`), headers: { authorization: `Bearer ${tl.key}` },
            body: JSON.stringify({ content: PROMPT, stream }), expect: stream ? 'event: done' : undefined,
          };
        } else {
          spec = { label: `${scenario} ${name}`, url: t.url, headers: t.headers, body: BODY(t.model, stream), expect: '[DONE]' };
        }
        if (c === CFG.conc[0]) {
          // Warm-up: one short run, not recorded.
          const warm = { ...spec, concurrency: 4, durationS: 1 };
          await (stream ? streamLoad(warm) : httpLoad(warm));
        }
        const r = await cell(stream ? 'stream' : 'http', { pids: t.pids }, spec, c);
        out.cells[scenario][name][c] = r;
        const lat = stream ? `ttfb p50 ${r.ttfb.p50?.toFixed(1)} ttlb p50 ${r.ttlb.p50?.toFixed(1)} p99 ${r.ttlb.p99?.toFixed(1)}` : `p50 ${r.p50.toFixed(1)} p99 ${r.p99.toFixed(1)}`;
        log(`${scenario.padEnd(15)} ${name.padEnd(11)} c=${String(c).padEnd(3)} ${r.rps.toFixed(0).padStart(6)} req/s  ${lat} ms  errors ${stream ? r.errorCount : r.errors}`);
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
      const [id] = await newConversations(1, 'ollama/bench-probe');
      probes.push(['threadline-messages', { url: `${tl.w.url}/api/conversations/${id}/messages`, headers: { authorization: `Bearer ${tl.key}` }, messages: true }, 'messages']);
    }
    for (const [name, p, kind] of probes) {
      const first = [];
      const all = [];
      let mismatch = 0;
      for (let i = 0; i < 6; i++) {
        probe.reset();
        probe.script({ chunkDelayMs: 40, chunkWords: 2, text: 'one two three four five six seven eight nine ten eleven twelve' });
        const body = p.messages ? JSON.stringify({ content: 'probe', stream: true }) : BODY(p.model, true);
        const r = await probeOne(p.url, p.headers, body, kind);
        if (i === 0) continue; // warm-up
        if (r.gotDeltas !== r.sentDeltas) mismatch += 1;
        if (r.lags.length) first.push(r.lags[0]);
        all.push(...r.lags);
      }
      out.probe[name] = { firstMedian: median(first), allMedian: median(all), allMax: Math.max(...all), n: all.length, mismatch };
      log(`probe ${name.padEnd(20)} first delta +${median(first)?.toFixed(1)} ms, all deltas median +${median(all)?.toFixed(1)} max +${Math.max(...all).toFixed(1)} ms`);
    }
  }

  // ---- per-route cost at concurrency 1 ----
  if (!CFG.skip.has('routes')) {
    const w = tl.w;
    const f = async (method, route, json, token = tl.key) => {
      const res = await fetch(`${w.url}${route}`, {
        method,
        headers: { ...(json ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: json ? JSON.stringify(json) : undefined,
      });
      await res.arrayBuffer();
      return res.status;
    };
    const [cid] = await newConversations(1);
    for (let i = 0; i < 5 && hasMessages; i++) await f('POST', `/api/conversations/${cid}/messages`, { content: PROMPT, stream: false });
    const rows = [];
    const tlObj = { pids: () => w.pids(), clearOutput: () => w.clearOutput(), output: () => w.output() };
    rows.push(await routeCost(tlObj, 'unknown path (404)', 'unmatched', () => f('GET', '/bench-no-such-route', null, null)));
    rows.push(await routeCost(tlObj, 'GET /health', '/health', () => f('GET', '/health', null, null)));
    rows.push(await routeCost(tlObj, 'GET /v1/models (API key)', '/v1/models', () => f('GET', '/v1/models')));
    rows.push(await routeCost(tlObj, 'POST /v1/chat/completions', '/v1/chat/completions', () => f('POST', '/v1/chat/completions', JSON.parse(BODY('openai/gpt-4o-mini', false)))));
    rows.push(await routeCost(tlObj, 'POST /v1/chat/completions (stream)', '/v1/chat/completions', () => f('POST', '/v1/chat/completions', JSON.parse(BODY('openai/gpt-4o-mini', true)))));
    rows.push(await routeCost(tlObj, 'GET /api/conversations', '/api/conversations', () => f('GET', '/api/conversations')));
    rows.push(await routeCost(tlObj, 'GET /api/conversations/{id}/messages', '/api/conversations/{id}/messages', () => f('GET', `/api/conversations/${cid}/messages`)));
    if (hasMessages) {
      rows.push(await routeCost(tlObj, 'POST /api/conversations/{id}/messages', '/api/conversations/{id}/messages', () => f('POST', `/api/conversations/${cid}/messages`, { content: PROMPT, stream: false }), 40));
    }
    if (targets.passthrough) {
      const pt = targets.passthrough;
      const ptObj = { pids: pt.pids, clearOutput: () => {}, output: () => '' };
      const r = await routeCost(ptObj, 'pass-through worker: POST /v1/chat/completions', '-', async () => {
        const res = await fetch(pt.url, { method: 'POST', headers: { 'content-type': 'application/json', ...pt.headers }, body: BODY(pt.model, false) });
        await res.arrayBuffer();
        return res.status;
      });
      r.logged = null;
      rows.push(r);
    }
    // The same two routes with LOG_LEVEL=warn (no request log line): under wrangler dev every
    // console.log travels over the inspector protocol to wrangler's Node process.
    const quiet = await setUpThreadline({ ...tlVars, LOG_LEVEL: 'warn' });
    const qf = async (method, route, json, token) => {
      const res = await fetch(`${quiet.w.url}${route}`, {
        method,
        headers: { ...(json ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: json ? JSON.stringify(json) : undefined,
      });
      await res.arrayBuffer();
      return res.status;
    };
    const qObj = { pids: () => quiet.w.pids(), clearOutput: () => quiet.w.clearOutput(), output: () => quiet.w.output() };
    rows.push(await routeCost(qObj, 'unknown path (404), LOG_LEVEL=warn', 'unmatched', () => qf('GET', '/bench-no-such-route')));
    rows.push(await routeCost(qObj, 'POST /v1/chat/completions, LOG_LEVEL=warn', '/v1/chat/completions', () => qf('POST', '/v1/chat/completions', JSON.parse(BODY('openai/gpt-4o-mini', false)), quiet.key)));
    await quiet.w.stop();
    out.routes = rows;
    for (const r of rows) log(`route ${r.label.padEnd(48)} wall ${r.wall.toFixed(1)} ms, logged ${r.logged ?? '-'} ms, workerd CPU ${r.workerd.toFixed(2)} ms, wrangler node CPU ${r.node.toFixed(2)} ms`);
  }

  // Done with the load; stop the gateways before the hash measurements (each starts a worker).
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
