// The realtime benchmark (`make bench` runs it after bench/run.mjs): what the conversation's
// Durable Object costs and holds, on the same runtime harness (workerd through Miniflare, the
// release build, local D1/KV/Durable Objects; bench/lib/runtime.mjs).
//
// 1. Extra latency per delta through the object: the provider stand-in stamps each delta as it
//    writes it; the client stamps it as it arrives. A streamed `/v1/chat/completions` is today's
//    direct relay (request → provider → client); a streamed `POST /api/conversations/{id}/messages`
//    goes request → object → provider, and back object → request → client. Same stand-in, same
//    deltas, one request at a time.
// 2. Fan-out: one generation watched by BENCH_FANOUT sockets; the lag of every delta at every
//    socket.
// 3. Concurrent open sockets held by one local worker: BENCH_SOCKETS sockets (default 1000) over
//    conversations of BENCH_SOCKETS_PER_CONVERSATION each, opened BENCH_OPEN_BATCH at a time; the
//    resident memory of workerd before, with them open, and after the objects hibernate (idle
//    ~10 s); then every socket pinged.
//
// Knobs: BENCH_SOCKETS, BENCH_SOCKETS_PER_CONVERSATION (10), BENCH_OPEN_BATCH (50),
// BENCH_FANOUT (20), BENCH_RESULTS (default bench/RESULTS.md; "-" prints only).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import WebSocket from 'ws';

import { ROOT } from '../tests/e2e/harness.mjs';
import { startStandIn } from '../tests/support/stand-in.mjs';
import { startRuntimeWorker } from './lib/runtime.mjs';
import { processesOf, sleep } from './lib/procs.mjs';
import { prependSection } from './lib/report.mjs';
import { readDeltas } from './lib/deltas.mjs';

const env = process.env;
const CFG = {
  sockets: Number(env.BENCH_SOCKETS ?? 1000),
  perConversation: Number(env.BENCH_SOCKETS_PER_CONVERSATION ?? 10),
  batch: Number(env.BENCH_OPEN_BATCH ?? 50),
  fanout: Number(env.BENCH_FANOUT ?? 20),
  results: env.BENCH_RESULTS ?? path.join(ROOT, 'bench/RESULTS.md'),
};
const WORDS = Array.from({ length: 20 }, (_, i) => `word${i + 1} `);
const PROBE = { chunks: WORDS, chunkDelayMs: 40 };
const started = Date.now();
const log = (...a) => console.log(`[realtime ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s]`, ...a);
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))] : null;
};
const ms = (x) => (x === null || x === undefined ? '—' : x.toFixed(1));
const now = () => performance.timeOrigin + performance.now(); // the clock readDeltas stamps with

async function call(base, method, route, { json, token } = {}) {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: { ...(json ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: json ? JSON.stringify(json) : undefined,
  });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = undefined; }
  return { status: res.status, text, body };
}

/** Resident memory (MiB) of the worker's workerd processes. */
async function workerdRssMiB(w) {
  let kib = 0;
  for (const p of await processesOf({ pgid: w.pgid })) {
    if (p.comm !== 'workerd') continue;
    try {
      const status = await readFile(`/proc/${p.pid}/status`, 'utf8');
      kib += Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    } catch { /* gone */ }
  }
  return kib / 1024;
}


function openSocket(w, id, key) {
  const ws = new WebSocket(`${w.url.replace('http', 'ws')}/api/conversations/${id}/ws`, ['threadline', `bearer.${key}`]);
  const socket = { ws, messages: [], onMessage: null };
  ws.on('message', (raw) => {
    const m = JSON.parse(String(raw));
    m.at = now();
    socket.messages.push(m);
    socket.onMessage?.(m);
  });
  socket.ready = new Promise((resolve, reject) => {
    ws.on('message', function first(raw) {
      if (JSON.parse(String(raw)).event === 'ready') { ws.off('message', first); resolve(); }
    });
    ws.once('error', reject);
    ws.once('unexpected-response', (_q, res) => reject(new Error(`socket: HTTP ${res.statusCode}`)));
  });
  return socket;
}

const out = { cfg: CFG, notes: [] };
const cleanup = [];
try {
  const probe = await startStandIn({ port: 0, host: '127.0.0.1', record: true });
  cleanup.push(() => probe.close());
  const w = await startRuntimeWorker({
    vars: {
      ENVIRONMENT: 'production', LOG_LEVEL: 'warn',
      RATE_LIMIT_CHAT: '100000000/60', RATE_LIMIT_V1: '100000000/60', RATE_LIMIT_REGISTER: '1000/600',
      OPENAI_API_KEY: 'sk-bench', OPENAI_BASE_URL: `${probe.url}/v1`,
    },
  });
  cleanup.push(() => w.stop());
  log('threadline (Miniflare)', w.url);
  const email = `bench-rt-${Date.now()}@example.com`;
  const password = 'correct horse battery staple 42';
  await call(w.url, 'POST', '/api/auth/register', { json: { email, password } });
  const login = await call(w.url, 'POST', '/api/auth/login-json', { json: { email, password } });
  const keyRes = await call(w.url, 'POST', '/api/keys', { token: login.body.access_token, json: { name: 'bench' } });
  const key = keyRes.body.key;
  const conversation = async () => (await call(w.url, 'POST', '/api/conversations', { token: key, json: { model: 'openai/gpt-4o-mini' } })).body.id;

  // ---- 1. latency per delta: direct relay against through the object ----
  const lagOf = async (url, body, kind) => {
    probe.reset();
    probe.script(PROBE);
    const t0 = now();
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body) });
    if (res.status !== 200) throw new Error(`${url}: ${res.status} ${await res.text()}`);
    const deltas = await readDeltas(res, kind);
    const rec = await probe.waitFor((r) => r.completed && r.receivedAt >= Math.floor(t0) - 1, { timeoutMs: 5000 });
    return { lags: deltas.slice(0, rec.chunkTimes.length).map((d, i) => d.at - rec.chunkTimes[i]), got: deltas.length, sent: rec.chunkTimes.length };
  };
  out.lag = {};
  const convForProbe = await conversation();
  const routes = {
    direct: [`${w.url}/v1/chat/completions`, { model: 'openai/gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'probe' }] }, 'openai'],
    object: [`${w.url}/api/conversations/${convForProbe}/messages`, { content: 'probe', stream: true, model: 'openai/gpt-4o-mini' }, 'messages'],
  };
  for (const [name, [url, body, kind]] of Object.entries(routes)) {
    const lags = [];
    let mismatch = 0;
    for (let i = 0; i < 11; i++) {
      const r = await lagOf(url, body, kind);
      if (i === 0) continue; // warm-up
      if (r.got !== r.sent) mismatch += 1;
      lags.push(...r.lags);
    }
    out.lag[name] = { p50: pct(lags, 50), p90: pct(lags, 90), p99: pct(lags, 99), n: lags.length, mismatch };
    log(`lag ${name}: p50 +${ms(out.lag[name].p50)} p90 +${ms(out.lag[name].p90)} ms over ${lags.length} deltas`);
  }

  // ---- 2. fan-out: one generation, many sockets ----
  {
    const id = await conversation();
    const sockets = [];
    for (let i = 0; i < CFG.fanout; i++) sockets.push(openSocket(w, id, key));
    await Promise.all(sockets.map((s) => s.ready));
    probe.reset();
    probe.script(PROBE);
    const t0 = now();
    const done = Promise.all(sockets.map((s) => new Promise((resolve) => {
      s.onMessage = (m) => { if (m.id && (m.event === 'done' || m.event === 'error')) resolve(); };
    })));
    sockets[0].ws.send(JSON.stringify({ type: 'send', content: 'fan out', model: 'openai/gpt-4o-mini' }));
    await done;
    const rec = await probe.waitFor((r) => r.completed && r.receivedAt >= Math.floor(t0) - 1, { timeoutMs: 5000 });
    const lags = [];
    let complete = 0;
    for (const s of sockets) {
      const deltas = s.messages.filter((m) => m.id && m.event === 'delta');
      if (deltas.map((d) => d.data.text).join('') === WORDS.join('')) complete += 1;
      deltas.slice(0, rec.chunkTimes.length).forEach((d, i) => lags.push(d.at - rec.chunkTimes[i]));
    }
    out.fanout = { sockets: CFG.fanout, complete, p50: pct(lags, 50), p90: pct(lags, 90), max: Math.max(...lags) };
    log(`fan-out to ${CFG.fanout} sockets: ${complete} got every delta; lag p50 +${ms(out.fanout.p50)} p90 +${ms(out.fanout.p90)} max +${ms(out.fanout.max)} ms`);
    for (const s of sockets) s.ws.close();
  }

  // ---- 3. concurrent open sockets and their memory ----
  {
    await sleep(12_000); // let the objects of the phases above go
    const before = await workerdRssMiB(w);
    const ids = [];
    for (let i = 0; i < Math.ceil(CFG.sockets / CFG.perConversation); i++) ids.push(await conversation());
    const sockets = [];
    const t0 = now();
    let failed = 0;
    for (let i = 0; i < CFG.sockets; i += CFG.batch) {
      const batch = [];
      for (let j = i; j < Math.min(CFG.sockets, i + CFG.batch); j++) batch.push(openSocket(w, ids[j % ids.length], key));
      const results = await Promise.allSettled(batch.map((s) => s.ready));
      failed += results.filter((r) => r.status === 'rejected').length;
      sockets.push(...batch);
    }
    const openMs = now() - t0;
    await sleep(1000);
    const open = await workerdRssMiB(w);
    await sleep(12_000);
    const hibernated = await workerdRssMiB(w);
    const stillOpen = sockets.filter((s) => s.ws.readyState === WebSocket.OPEN).length;
    const pongs = await Promise.all(sockets.filter((s) => s.ws.readyState === WebSocket.OPEN).map((s) => new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 10_000);
      s.onMessage = (m) => { if (m.event === 'pong') { clearTimeout(timer); resolve(true); } };
      s.ws.send('{"type":"ping"}');
    })));
    out.sockets = {
      opened: CFG.sockets - failed, failed, conversations: ids.length, openS: openMs / 1000, stillOpen,
      pongs: pongs.filter(Boolean).length, rssBefore: before, rssOpen: open, rssHibernated: hibernated,
      perSocketKiB: ((open - before) * 1024) / Math.max(1, CFG.sockets - failed),
    };
    log(`sockets: ${out.sockets.opened} open (${failed} failed) over ${ids.length} conversations in ${out.sockets.openS.toFixed(1)} s; workerd RSS ${before.toFixed(0)} → ${open.toFixed(0)} MiB open → ${hibernated.toFixed(0)} MiB after 12 s idle; ${out.sockets.pongs}/${stillOpen} pongs`);
    await Promise.all(sockets.map((s) => new Promise((r) => { s.ws.once('close', r); s.ws.close(); setTimeout(r, 2000); })));
  }

  const L = [];
  L.push(`## Realtime ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`);
  L.push('');
  L.push('Workerd through Miniflare (the release build, local D1/KV/Durable Objects, production settings, an API key), `bench/realtime.mjs`. Lag = when the client read a delta minus when the provider stand-in wrote it, one request at a time.');
  L.push('');
  L.push('| per delta | p50 ms | p90 ms | p99 ms | deltas |');
  L.push('|---|---:|---:|---:|---:|');
  L.push(`| direct relay (\`/v1/chat/completions\`, stream) | ${ms(out.lag.direct.p50)} | ${ms(out.lag.direct.p90)} | ${ms(out.lag.direct.p99)} | ${out.lag.direct.n} |`);
  L.push(`| through the conversation's object (\`/api/conversations/{id}/messages\`, stream) | ${ms(out.lag.object.p50)} | ${ms(out.lag.object.p90)} | ${ms(out.lag.object.p99)} | ${out.lag.object.n} |`);
  L.push(`| **extra through the object** | **${ms(out.lag.object.p50 - out.lag.direct.p50)}** | ${ms(out.lag.object.p90 - out.lag.direct.p90)} | | |`);
  L.push('');
  L.push(`Fan-out: one generation watched by ${out.fanout.sockets} sockets — ${out.fanout.complete} of them got every delta; lag p50 ${ms(out.fanout.p50)} ms, p90 ${ms(out.fanout.p90)}, max ${ms(out.fanout.max)}.`);
  L.push('');
  const s = out.sockets;
  L.push(`Open sockets: ${s.opened} held by one local worker (${s.failed} failed to open) over ${s.conversations} conversations, opened ${CFG.batch} at a time in ${s.openS.toFixed(1)} s; workerd resident memory ${s.rssBefore.toFixed(0)} MiB before, ${s.rssOpen.toFixed(0)} MiB with them open (≈ ${s.perSocketKiB.toFixed(1)} KiB per socket), ${s.rssHibernated.toFixed(0)} MiB after 12 s idle (objects hibernated); ${s.pongs} of ${s.stillOpen} still-open sockets answered a ping.`);
  L.push('');
  const section = L.join('\n');
  console.log(`\n${section}`);
  if (CFG.results !== '-') {
    await prependSection(CFG.results, section);
    log('wrote', CFG.results);
  }
} finally {
  while (cleanup.length) {
    try { await cleanup.pop()(); } catch { /* best effort */ }
  }
}
