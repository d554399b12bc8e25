// Pipeline benchmark (part of `make bench`): the release worker on workerd through Miniflare
// (bench/lib/runtime.mjs, with its local D1, KV and the pipeline queue, the same worker as
// the consumer) against the provider stand-in in this process.
//
// Measures
// - executions per second of a three-step pipeline: BENCH_PIPELINE_EXECUTIONS (60) executions
//   started at once, from the first 202 to the last `succeeded`;
// - the overhead of a step beyond its model call: executions run one at a time; per step,
//   (execution time − the model calls' own latency) / steps, and the queue hop (from the 202
//   to the consumer's start).
// Prints a Markdown section and puts it at the top of bench/RESULTS.md.
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

import { ROOT } from '../tests/e2e/harness.mjs';
import { startStandIn } from '../tests/support/stand-in.mjs';
import { startRuntimeWorker } from './lib/runtime.mjs';

const N = Number(process.env.BENCH_PIPELINE_EXECUTIONS ?? 60);
const SEQUENTIAL = Number(process.env.BENCH_PIPELINE_SEQUENTIAL ?? 10);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : NaN; };
const p90 = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * 0.9))] : NaN; };

async function api(base, method, route, { token, json } = {}) {
  const headers = {};
  if (json !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${base}${route}`, { method, headers, body: json === undefined ? undefined : JSON.stringify(json) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const standIn = await startStandIn({ port: 0, host: '127.0.0.1', record: false });
const w = await startRuntimeWorker({
  vars: {
    ENVIRONMENT: 'production',
    OPENAI_API_KEY: 'bench-key',
    OPENAI_BASE_URL: `${standIn.url}/v1`,
    RATE_LIMIT_REGISTER: '1000/60',
  },
});
try {
  const email = `bench-${Date.now()}@example.com`;
  const password = 'correct horse battery staple 42';
  await api(w.url, 'POST', '/api/auth/register', { json: { email, password } });
  const { body: { access_token: token } } = await api(w.url, 'POST', '/api/auth/login-json', { json: { email, password } });
  const p = await api(w.url, 'POST', '/api/pipelines', { token, json: {
    name: 'bench', inputs: ['topic'],
    steps: [
      { id: 'draft', model: 'openai/gpt-4o', prompt: 'Write about {{input.topic}}' },
      { id: 'critique', model: 'openai/gpt-4o-mini', prompt: 'Critique {{steps.draft.output}}' },
      { id: 'polish', model: 'openai/gpt-4.1-mini', prompt: 'Polish {{steps.draft.output}} with {{steps.critique.output}}' },
    ],
  } });
  if (p.status !== 201) throw new Error(`create: ${p.status} ${JSON.stringify(p.body)}`);
  const id = p.body.id;
  const execute = () => api(w.url, 'POST', `/api/pipelines/${id}/execute`, { token, json: { input: { topic: 'tides' } } });
  const waitAll = async (ids) => {
    const left = new Set(ids);
    const done = [];
    while (left.size) {
      await Promise.all([...left].map(async (eid) => {
        const r = await api(w.url, 'GET', `/api/pipeline-executions/${eid}`, { token });
        if (['succeeded', 'failed', 'cancelled'].includes(r.body.status)) { left.delete(eid); done.push({ ...r.body, seenAt: Date.now() }); }
      }));
      if (left.size) await sleep(50);
    }
    return done;
  };

  // One at a time: the cost of a step beyond its model call.
  const hops = [];
  const overheads = [];
  const totals = [];
  for (let i = 0; i < SEQUENTIAL; i++) {
    const r = await execute();
    const [e] = await waitAll([r.body.id]);
    if (e.status !== 'succeeded') throw new Error(`execution ${e.status}: ${JSON.stringify(e.error)}`);
    const model = e.steps.reduce((n, s) => n + s.latency_ms, 0);
    hops.push(e.started_at - e.created_at);
    overheads.push((e.finished_at - e.started_at - model) / e.steps.length);
    totals.push(e.finished_at - e.created_at);
  }

  // All at once: executions per second.
  const t0 = Date.now();
  const started = await Promise.all(Array.from({ length: N }, execute));
  const accepted = started.filter((r) => r.status === 202).map((r) => r.body.id);
  const done = await waitAll(accepted);
  const lastFinish = Math.max(...done.map((e) => e.finished_at ?? e.seenAt));
  const seconds = (lastFinish - t0) / 1000;
  const succeeded = done.filter((e) => e.status === 'succeeded').length;

  const section = [
    `## Pipelines — ${new Date().toISOString().slice(0, 10)} (${os.cpus().length} cores, ${os.cpus()[0]?.model ?? '?'})`,
    '',
    `Worker code: ${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()}. Release build on workerd (Miniflare, local D1/KV/queue; consumer \`max_batch_size\` 10, \`max_batch_timeout\` 1 s), a three-step prompt pipeline against the in-process OpenAI stand-in.`,
    '',
    '| measure | value |',
    '|---|---|',
    `| executions/s, ${N} started at once (three steps each) | ${(succeeded / seconds).toFixed(1)} (${succeeded}/${N} succeeded in ${seconds.toFixed(1)} s) |`,
    `| queue hop, 202 → consumer start (median / p90 of ${SEQUENTIAL}) | ${median(hops)} / ${p90(hops)} ms |`,
    `| overhead per step beyond its model call: checkpoint, lease, cancel check (median / p90) | ${median(overheads).toFixed(1)} / ${p90(overheads).toFixed(1)} ms |`,
    `| whole execution one at a time, 202 → succeeded (median) | ${median(totals)} ms |`,
    '',
    'The queue hop is mostly the consumer\'s batch wait (`max_batch_timeout`); on Cloudflare it is the platform\'s delivery latency. The per-step overhead is D1 work (the checkpoint batch and the cancel check) and the template expansion.',
    '',
  ].join('\n');
  console.log(section);
  const file = path.join(ROOT, 'bench/RESULTS.md');
  const old = await readFile(file, 'utf8').catch(() => '');
  const lines = old.split('\n');
  const at = lines.findIndex((l) => l.startsWith('## '));
  const head = at < 0 ? old : lines.slice(0, at).join('\n');
  const rest = at < 0 ? '' : lines.slice(at).join('\n');
  await writeFile(file, `${head.trimEnd()}\n\n${section}\n${rest}`);
} finally {
  await w.stop();
  await standIn.close();
}
