// The files and images benchmark, part of `make bench` (see the README's "Performance"):
// on the runtime (workerd through Miniflare, bench/lib/runtime.mjs, local D1/KV/R2), it times
// - uploading and downloading a 10 MiB file through Threadline (multipart upload with
//   sniffing, SHA-256, D1 row; streamed download) against writing and reading the same bytes in
//   local R2 directly (bench/r2-direct-worker.mjs, the floor);
// - the runtime's resident memory (workerd, sampled every 5 ms) during those uploads, beside
//   the 128 MB a Worker may use;
// - the CPU time per request of a chat message with one 1 MiB inline image against a
//   text-only one (non-streamed, against the provider stand-in; workerd's CPU over N requests).
// Knobs: BENCH_FILES_ROUNDS (default 5), BENCH_FILES_CHAT (requests per chat cell, default 30),
// BENCH_RESULTS (default bench/RESULTS.md; "-" prints only).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ROOT } from '../tests/e2e/harness.mjs';
import { startStandIn } from '../tests/support/stand-in.mjs';
import { startRuntimeWorker } from './lib/runtime.mjs';
import { cpuMs, cpuDelta } from './lib/procs.mjs';
import { prependSection } from './lib/report.mjs';

const ROUNDS = Number(process.env.BENCH_FILES_ROUNDS ?? 5);
const CHAT_N = Number(process.env.BENCH_FILES_CHAT ?? 30);
const RESULTS = process.env.BENCH_RESULTS ?? path.join(ROOT, 'bench/RESULTS.md');
const MIB = 1024 * 1024;
const log = (...a) => console.log('[bench files]', ...a);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** A whole PNG of about `bytes` bytes (a real header, padding, the end chunk). */
function png(bytes) {
  const one = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63f8cfc0f01f00050001ff89993d1d0000000049454e44ae426082', 'hex');
  return Buffer.concat([one.subarray(0, 33), Buffer.alloc(bytes - one.length), one.subarray(33)]);
}

/** Peak resident memory (MiB) of the worker's workerd while `work` runs. */
async function peakRss(w, work) {
  const pids = await w.pids();
  const rss = async () => {
    let total = 0;
    for (const pid of pids) {
      try {
        const status = await readFile(`/proc/${pid}/status`, 'utf8');
        const name = /^Name:\s*(\S+)/m.exec(status)?.[1];
        if (name === 'workerd') total += Number(/^VmRSS:\s*(\d+)/m.exec(status)?.[1] ?? 0);
      } catch { /* gone */ }
    }
    return total / 1024;
  };
  const before = await rss();
  let peak = before;
  let done = false;
  const sampler = (async () => { while (!done) { peak = Math.max(peak, await rss()); await new Promise((r) => setTimeout(r, 5)); } })();
  const result = await work();
  done = true;
  await sampler;
  return { before, peak, result };
}

async function account(url) {
  const call = async (route, json, token) => {
    const res = await fetch(`${url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(json) });
    return res.json();
  };
  const email = `bench-files-${Date.now()}@example.com`;
  const password = 'correct horse battery staple 42';
  await call('/api/auth/register', { email, password });
  const { access_token } = await call('/api/auth/login-json', { email, password });
  return (await call('/api/keys', { name: 'bench' }, access_token)).key;
}

const mbps = (bytes, ms) => (bytes / MIB) / (ms / 1000);

async function main() {
  const s = await startStandIn({ port: 0, host: '127.0.0.1', record: false });
  const tl = await startRuntimeWorker({
    vars: {
      OPENAI_API_KEY: 'sk-bench', OPENAI_BASE_URL: `${s.url}/v1`,
      RATE_LIMIT_CHAT: '100000000/60', RATE_LIMIT_REGISTER: '1000/600', FILE_STORAGE_QUOTA_BYTES: String(100 * 1024 * MIB),
    },
  });
  const floor = await startRuntimeWorker({ entry: path.join(ROOT, 'bench/r2-direct-worker.mjs'), migrate: false, probePath: '/health' });
  const out = { rounds: ROUNDS, chatN: CHAT_N };
  try {
    const key = await account(tl.url);
    const file = png(10 * MIB);
    const up = [];
    const down = [];
    const ids = [];
    const upMem = await peakRss(tl, async () => {
      for (let i = 0; i < ROUNDS; i++) {
        const form = new FormData();
        form.append('file', new Blob([file], { type: 'image/png' }), `big-${i}.png`);
        const t = performance.now();
        const res = await fetch(`${tl.url}/api/files/upload`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form });
        const body = await res.json();
        up.push(performance.now() - t);
        if (res.status !== 201) throw new Error(`upload: ${res.status} ${JSON.stringify(body)}\n${tl.output().slice(-3000)}`);
        ids.push(body.id);
      }
    });
    for (const id of ids) {
      const t = performance.now();
      const res = await fetch(`${tl.url}/api/files/${id}/content`, { headers: { authorization: `Bearer ${key}` } });
      const got = Buffer.from(await res.arrayBuffer());
      down.push(performance.now() - t);
      if (got.length !== file.length) throw new Error(`download: ${got.length} bytes`);
    }
    const floorUp = [];
    const floorDown = [];
    const floorMem = await peakRss(floor, async () => {
      for (let i = 0; i < ROUNDS; i++) {
        const t = performance.now();
        const res = await fetch(`${floor.url}/obj-${i}`, { method: 'PUT', body: file });
        await res.arrayBuffer();
        floorUp.push(performance.now() - t);
      }
    });
    for (let i = 0; i < ROUNDS; i++) {
      const t = performance.now();
      const res = await fetch(`${floor.url}/obj-${i}`);
      await res.arrayBuffer();
      floorDown.push(performance.now() - t);
    }
    Object.assign(out, {
      upload: { ms: median(up), mbps: mbps(file.length, median(up)), rssBefore: upMem.before, rssPeak: upMem.peak },
      download: { ms: median(down), mbps: mbps(file.length, median(down)) },
      floorUpload: { ms: median(floorUp), mbps: mbps(file.length, median(floorUp)), rssBefore: floorMem.before, rssPeak: floorMem.peak },
      floorDownload: { ms: median(floorDown), mbps: mbps(file.length, median(floorDown)) },
    });

    // CPU per chat message: text only, then one 1 MiB inline image.
    const image = png(MIB).toString('base64');
    const bodies = {
      text: { model: 'openai/gpt-4o', content: 'Describe a picture of a cat in a few words, please' },
      image: { model: 'openai/gpt-4o', content: [{ type: 'text', text: 'Describe this picture in a few words, please' }, { type: 'image', media_type: 'image/png', data: image }] },
    };
    out.chat = {};
    for (const [name, json] of Object.entries(bodies)) {
      const body = JSON.stringify(json);
      const send = async () => {
        const res = await fetch(`${tl.url}/api/chat`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`chat ${name}: ${res.status}`);
      };
      for (let i = 0; i < 3; i++) await send();
      const pids = await tl.pids();
      const before = await cpuMs(pids);
      const t = performance.now();
      for (let i = 0; i < CHAT_N; i++) await send();
      const wall = performance.now() - t;
      const cpu = cpuDelta(before, await cpuMs(pids));
      out.chat[name] = { cpuMs: (cpu.workerd ?? 0) / CHAT_N, wallMs: wall / CHAT_N, bodyBytes: body.length };
    }
  } finally {
    await tl.stop();
    await floor.stop();
    await s.close();
  }
  const f = (x) => x.toFixed(1);
  const section = [
    `## Files and images — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `\`node bench/files.mjs\` on workerd (Miniflare, local D1/KV/R2); medians of ${out.rounds} rounds; chat CPU over ${out.chatN} requests each.`,
    '',
    '| 10 MiB file | Threadline | local R2 directly (floor) |',
    '|---|---|---|',
    `| upload | ${f(out.upload.ms)} ms (${f(out.upload.mbps)} MiB/s) | ${f(out.floorUpload.ms)} ms (${f(out.floorUpload.mbps)} MiB/s) |`,
    `| download | ${f(out.download.ms)} ms (${f(out.download.mbps)} MiB/s) | ${f(out.floorDownload.ms)} ms (${f(out.floorDownload.mbps)} MiB/s) |`,
    `| workerd resident memory during uploads (before → peak) | ${f(out.upload.rssBefore)} → ${f(out.upload.rssPeak)} MiB | ${f(out.floorUpload.rssBefore)} → ${f(out.floorUpload.rssPeak)} MiB |`,
    '',
    '| chat message (`POST /api/chat`, not streamed) | request body | workerd CPU per request | wall per request |',
    '|---|---|---|---|',
    ...Object.entries(out.chat).map(([k, v]) => `| ${k === 'text' ? 'text only' : 'one 1 MiB inline PNG'} | ${(v.bodyBytes / 1024).toFixed(0)} KiB | ${f(v.cpuMs)} ms | ${f(v.wallMs)} ms |`),
    '',
    'The resident memory is the whole workerd process (runtime, isolate and local storage), an upper bound on what the upload adds; the Workers limit is 128 MB per isolate.',
    '',
  ].join('\n');
  console.log(section);
  if (RESULTS !== '-') await prependSection(RESULTS, section);
}

main().catch((err) => { console.error(err); process.exit(1); });
