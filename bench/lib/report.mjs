// Markdown for bench/RESULTS.md: one dated section per run, newest first.
import { readFile, writeFile } from 'node:fs/promises';

const HEADER = `# Benchmark results

Written by \`make bench\` (bench/run.mjs); newest run first, earlier runs kept below for
comparison. How to read them: README, "Performance". Numbers from different machines, or from
a machine doing other work at the time (see each run's load average), are not comparable.
`;

const NAMES = {
  direct: 'direct (stand-in)',
  passthrough: 'JS pass-through (floor)',
  threadline: '**Threadline**',
  portkey: 'Portkey',
  litellm: 'LiteLLM',
  'threadline-wrangler-dev': 'Threadline under `wrangler dev` (extra)',
  'passthrough-wrangler-dev': 'JS pass-through under `wrangler dev` (extra)',
};
const f1 = (x) => (x == null || Number.isNaN(x) ? '–' : x.toFixed(1));
const f2 = (x) => (x == null || Number.isNaN(x) ? '–' : x.toFixed(2));
const f0 = (x) => (x == null || Number.isNaN(x) ? '–' : Math.round(x).toLocaleString('en-US'));
const plus = (x) => (x == null || Number.isNaN(x) ? '–' : `${x >= 0 ? '+' : ''}${x.toFixed(1)}`);
const ratio = (a, b) => (a == null || b == null || !b ? '–' : `${(a / b).toFixed(2)}×`);
const kib = (b) => `${(b / 1024).toFixed(0)} KiB`;
const errs = (r) => {
  const n = r.errorCount ?? r.errors;
  return n ? `**${n}**` : '0';
};
// Workers: workerd plus the Node process in front of it (Miniflare's host, or wrangler's).
const cpu = (r) => {
  const c = r.cpuPerReq ?? {};
  if (c.workerd != null) return `${f2(c.total)} (workerd ${f2(c.workerd)}, Node ${f2(c.node ?? 0)})`;
  return f2(c.total);
};
const yes = (ok) => (ok == null ? '–' : ok ? 'met' : '**not met**');

function nonStreamTable(cells, conc) {
  const rows = ['| c | target | req/s | p50 ms | p90 ms | p99 ms | added p50 | added p99 | errors | CPU ms/req |', '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|'];
  for (const c of conc) {
    const base = cells.direct?.[c];
    for (const [name, byC] of Object.entries(cells)) {
      const r = byC[c];
      if (!r) continue;
      const added = name === 'direct' || !base ? ['', ''] : [plus(r.p50 - base.p50), plus(r.p99 - base.p99)];
      rows.push(`| ${c} | ${NAMES[name] ?? name} | ${f0(r.rps)} | ${f1(r.p50)} | ${f1(r.p90)} | ${f1(r.p99)} | ${added[0]} | ${added[1]} | ${errs(r)} | ${cpu(r)} |`);
    }
  }
  return rows.join('\n');
}

function streamTable(cells, conc) {
  const rows = ['| c | target | req/s | TTFB p50 | TTFB p99 | TTLB p50 | TTLB p90 | TTLB p99 | added TTFB p50 | added TTLB p50 | errors | CPU ms/req |', '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'];
  for (const c of conc) {
    const base = cells.direct?.[c];
    for (const [name, byC] of Object.entries(cells)) {
      const r = byC[c];
      if (!r) continue;
      const added = name === 'direct' || !base ? ['', ''] : [plus(r.ttfb.p50 - base.ttfb.p50), plus(r.ttlb.p50 - base.ttlb.p50)];
      rows.push(`| ${c} | ${NAMES[name] ?? name} | ${f0(r.rps)} | ${f1(r.ttfb.p50)} | ${f1(r.ttfb.p99)} | ${f1(r.ttlb.p50)} | ${f1(r.ttlb.p90)} | ${f1(r.ttlb.p99)} | ${added[0]} | ${added[1]} | ${errs(r)} | ${cpu(r)} |`);
    }
  }
  return rows.join('\n');
}

function ratioTable(out) {
  const peers = ['passthrough', 'portkey', 'litellm'].filter((n) => out.cells.nonstream?.[n]);
  if (!peers.length) return '';
  const head = peers.map((n) => `req/s Threadline ÷ ${NAMES[n]}`).concat(peers.map((n) => `CPU/req Threadline ÷ ${NAMES[n]}`)).concat(peers.map((n) => `p50 Threadline ÷ ${NAMES[n]}`));
  const rows = [`| scenario | c | ${head.join(' | ')} |`, `|---|---:|${head.map(() => '---:').join('|')}|`];
  for (const scenario of ['nonstream', 'stream']) {
    const cells = out.cells[scenario];
    if (!cells?.threadline) continue;
    for (const c of out.cfg.conc) {
      const t = cells.threadline[c];
      if (!t) continue;
      const lat = (r) => (r ? (scenario === 'stream' ? r.ttlb.p50 : r.p50) : null);
      const vals = peers.map((n) => ratio(t.rps, cells[n]?.[c]?.rps))
        .concat(peers.map((n) => ratio(t.cpuPerReq?.total, cells[n]?.[c]?.cpuPerReq?.total)))
        .concat(peers.map((n) => ratio(lat(t), lat(cells[n]?.[c]))));
      rows.push(`| ${scenario === 'stream' ? 'stream (TTLB)' : 'non-stream'} | ${c} | ${vals.join(' | ')} |`);
    }
  }
  return rows.join('\n');
}

function messagesTable(out) {
  const rows = ['| scenario | c | req/s | p50 ms | p90 ms | p99 ms | errors | CPU ms/req |', '|---|---:|---:|---:|---:|---:|---:|---:|'];
  let any = false;
  for (const scenario of ['messages', 'messages-stream']) {
    const byC = out.cells[scenario]?.threadline;
    if (!byC) continue;
    for (const c of out.cfg.conc) {
      const r = byC[c];
      if (!r) continue;
      any = true;
      if (scenario === 'messages') {
        rows.push(`| JSON reply | ${c} | ${f0(r.rps)} | ${f1(r.p50)} | ${f1(r.p90)} | ${f1(r.p99)} | ${errs(r)} | ${cpu(r)} |`);
      } else {
        rows.push(`| streamed (TTLB; TTFB p50 ${f1(r.ttfb.p50)}) | ${c} | ${f0(r.rps)} | ${f1(r.ttlb.p50)} | ${f1(r.ttlb.p90)} | ${f1(r.ttlb.p99)} | ${errs(r)} | ${cpu(r)} |`);
      }
    }
  }
  return any ? rows.join('\n') : null;
}

function headline(out) {
  const ns = out.cells.nonstream ?? {};
  const st = out.cells.stream ?? {};
  const cs = [16, 64].filter((c) => out.cfg.conc.includes(c));
  if (!cs.length) cs.push(out.cfg.conc[out.cfg.conc.length - 1]);
  const names = Object.keys(ns);
  if (!names.length) return '';
  const head = `| | ${names.map((n) => NAMES[n] ?? n).join(' | ')} |`;
  const sep = `|---|${names.map(() => '---:').join('|')}|`;
  const row = (label, fn) => `| ${label} | ${names.map((n) => fn(n)).join(' | ')} |`;
  const lines = [head, sep];
  for (const c of cs) {
    const d = ns.direct?.[c];
    const ds = st.direct?.[c];
    lines.push(
      row(`non-stream req/s, c=${c}`, (n) => f0(ns[n]?.[c]?.rps)),
      row(`non-stream p50 ms (added), c=${c}`, (n) => (ns[n]?.[c] ? `${f1(ns[n][c].p50)}${n !== 'direct' && d ? ` (${plus(ns[n][c].p50 - d.p50)})` : ''}` : '–')),
      row(`non-stream CPU ms/req, c=${c}`, (n) => f2(ns[n]?.[c]?.cpuPerReq?.total)),
      row(`stream req/s, c=${c}`, (n) => f0(st[n]?.[c]?.rps)),
      row(`stream TTFB p50 ms (added), c=${c}`, (n) => (st[n]?.[c] ? `${f1(st[n][c].ttfb.p50)}${n !== 'direct' && ds ? ` (${plus(st[n][c].ttfb.p50 - ds.ttfb.p50)})` : ''}` : '–')),
      row(`stream CPU ms/req, c=${c}`, (n) => f2(st[n]?.[c]?.cpuPerReq?.total)),
    );
  }
  lines.push(row('errors, all cells', (n) => String(out.cfg.conc.reduce((a, c) => a + (ns[n]?.[c]?.errors ?? 0) + (st[n]?.[c]?.errorCount ?? 0), 0))));
  return lines.join('\n');
}

/** The hot path's targets, each against what this run measured. */
function targetsTable(out) {
  const ns = out.cells.nonstream ?? {};
  const st = out.cells.stream ?? {};
  const L = ['| target | measured | |', '|---|---|---|'];
  for (const c of [16, 64].filter((x) => out.cfg.conc.includes(x))) {
    const t = ns.threadline?.[c];
    const p = ns.portkey?.[c];
    if (t && p) L.push(`| \`/v1\` non-stream (API key) req/s at or above Portkey's, c=${c} | ${f0(t.rps)} against ${f0(p.rps)} (${ratio(t.rps, p.rps)}) | ${yes(t.rps >= p.rps)} |`);
  }
  const nsErrors = out.cfg.conc.reduce((a, c) => a + (ns.threadline?.[c]?.errors ?? 0), 0);
  if (ns.threadline) L.push(`| 0 errors (Threadline, non-stream, every c) | ${nsErrors} | ${yes(nsErrors === 0)} |`);
  for (const c of [16, 64].filter((x) => out.cfg.conc.includes(x))) {
    const t = ns.threadline?.[c]?.cpuPerReq?.total;
    const f = ns.passthrough?.[c]?.cpuPerReq?.total;
    if (t != null && f != null) L.push(`| CPU per request within 1.5× the pass-through floor's, non-stream, c=${c} | ${f2(t)} ms against ${f2(f)} ms (${ratio(t, f)}) | ${yes(t <= 1.5 * f)} |`);
  }
  const c16 = out.cfg.conc.includes(16) ? 16 : out.cfg.conc[out.cfg.conc.length - 1];
  const sT = st.threadline?.[c16]?.cpuPerReq?.total;
  const nT = ns.threadline?.[c16]?.cpuPerReq?.total;
  if (sT != null && nT != null && out.deltasPerStream) {
    const perDelta = (sT - nT) / out.deltasPerStream;
    L.push(`| streamed deltas forwarded with no more than ~0.1 ms of CPU each, c=${c16} | (${f2(sT)} − ${f2(nT)} ms) ÷ ${out.deltasPerStream} deltas = ${f2(perDelta)} ms | ${yes(perDelta <= 0.1)} |`);
  }
  const rows = out.storage?.routes ?? [];
  const worst = (re) => {
    const hits = rows.filter((r) => re.test(r.label));
    return hits.length ? Math.max(...hits.map((r) => r.before.sequential)) : null;
  };
  const v1Key = worst(/^POST \/v1\/chat\/completions \(API key/);
  const v1Jwt = worst(/^POST \/v1\/chat\/completions \(JWT/);
  const chat = worst(/^POST \/api\/chat.*stored chat/);
  if (v1Key != null) L.push(`| zero storage round trips before the provider call, warm \`/v1\` with an API key | ${v1Key} | ${yes(v1Key === 0)} |`);
  if (v1Jwt != null) L.push(`| zero storage round trips before the provider call, warm \`/v1\` with a JWT | ${v1Jwt} | ${yes(v1Jwt === 0)} |`);
  if (chat != null) L.push(`| at most one before the provider call, stored chat (\`/api/chat\`, existing conversation) | ${chat} | ${yes(chat <= 1)} |`);
  return L.length > 2 ? L.join('\n') : null;
}

function storageTable(out) {
  const S = out.storage;
  const rows = ['| route | before the provider call: D1, KV | round trips it waited for, one after another | in parallel with the provider call | after it (of them after the response) | all calls: D1, KV | provider request arrived (ms after sent) | response headers (ms) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of S.routes) {
    const noProvider = !r.providerCalls;
    rows.push(`| ${r.label}${noProvider ? ' (no provider call: split at the response)' : ''} | ${r.before.d1}, ${r.before.kv} | ${r.before.sequential}${r.before.longestChain !== r.before.sequential ? ` (longest chain ${r.before.longestChain})` : ''} | ${r.parallel.n} | ${r.after.n} (${r.after.afterResponse}) | ${r.total.d1}, ${r.total.kv} | ${r.providerReceivedMs == null ? '–' : f0(r.providerReceivedMs)} | ${f0(r.headersMs)} |`);
  }
  const L = [rows.join('\n'), '', "What each request did, in order (`→`: what follows began after what precedes had ended; `∥`: they overlapped; the provider fetch lasts until its response headers, the handler's *response* is when it returned):", ''];
  for (const r of S.routes) {
    L.push(`- ${r.label}: ${r.timeline}${r.before.waitedOn.length ? ` (waited for: ${r.before.waitedOn.join(' → ')})` : ''}${r.failed.length ? `; **failed: ${r.failed.join(', ')}**` : ''}`);
  }
  return L.join('\n');
}

function simTable(out) {
  const rows = ['| scenario | c | req/s | p50 ms (TTFB for streams) | p99 ms | the same without simulated latency, p50 | added by storage latency | errors | CPU ms/req |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|'];
  const label = { nonstream: '`/v1` non-stream (API key)', stream: '`/v1` stream (API key), TTFB', 'messages-stream': 'stored chat `POST /api/conversations/{id}/messages`, stream, TTFB' };
  for (const [scenario, byC] of Object.entries(out.simCells ?? {})) {
    for (const c of out.cfg.conc) {
      const r = byC[c];
      if (!r) continue;
      const base = out.cells[scenario]?.threadline?.[c];
      const stream = scenario !== 'nonstream';
      const p50 = stream ? r.ttfb.p50 : r.p50;
      const p99 = stream ? r.ttfb.p99 : r.p99;
      const b50 = base ? (stream ? base.ttfb.p50 : base.p50) : null;
      rows.push(`| ${label[scenario]} | ${c} | ${f0(r.rps)} | ${f1(p50)} | ${f1(p99)} | ${f1(b50)} | ${b50 == null ? '–' : plus(p50 - b50)} | ${errs(r)} | ${cpu(r)} |`);
    }
  }
  return rows.join('\n');
}

export function renderSection(out) {
  const F = out.facts;
  const B = out.bundle;
  const L = [];
  L.push(`## ${F.date}`);
  L.push('');
  if (out.problems.length) {
    L.push(`> **⚠ ${out.problems.length} problem(s) in this run — errors must be 0:**`);
    for (const p of out.problems) L.push(`> - ${p}`);
    L.push('');
  }
  const wranglerDev = out.cfg.targets.some((t) => t.endsWith('-wrangler-dev'));
  L.push(`- Machine: ${F.cores} cores, ${F.cpu}, ${F.memGiB} GiB; load average when the run began: ${F.loadavg}.`);
  L.push(`- Versions: Threadline ${F.threadline}, Miniflare ${F.miniflare} (workerd ${F.workerd}; compatibility ${F.compatibility}), Portkey gateway ${F.portkey}${F.litellm ? `, LiteLLM ${F.litellm}` : ''}${wranglerDev ? `, wrangler ${F.wrangler}` : ''}, Node ${F.node} (Miniflare's host, stand-in, Portkey, load client), ${F.loadTool}.`);
  L.push(`- Method: every process on one machine, on loopback, sharing its ${F.cores} cores with the load generator. Each cell runs ${out.cfg.duration} s, closed loop (c connections, each sending its next request when the previous answer has ended), after a 1 s warm-up per target. "Added" is the latency over the direct baseline at the same concurrency. **The workers run on the runtime, not the dev server**: workerd through Miniflare's programmatic API, each in its own Node host process, served on a direct socket of workerd (no Miniflare entry worker, no wrangler proxy, no inspector), with the compatibility date and flags of wrangler.toml. Threadline is its release build (a snapshot of build/ and src/entry.mjs) with local D1 and KV persisted to a fresh state directory with migrations/ applied, production settings (ENVIRONMENT=production, a ${F.jwtSecretBytes}-byte JWT_SECRET, LOG_LEVEL=info) and authentication on (an API key made through the API; rate limits raised so the load is not throttled). The floor is a one-file JavaScript worker served the same way that only forwards to the stand-in. Portkey runs from npm on Node, without authentication.`);
  L.push('- CPU ms/req: the CPU (user + system, from /proc) of the target\'s own processes over the cell, divided by its requests. Workers: the workerd process Miniflare spawns plus the Node process hosting Miniflare — with a direct socket the host does no HTTP work; what it does per request is read and parse the log lines the worker prints on workerd\'s stdout (the split is in the tables). Portkey: its Node process. Not counted: the load generator, the stand-in (except in the direct row). Threadline\'s workerd CPU includes the local D1 and KV simulators, which run in the same workerd; on Cloudflare they are remote services, not billed to the worker (the floor uses neither).');
  if (wranglerDev) L.push('- The `wrangler dev` rows are a labelled extra, the previous harness: the same build under `wrangler dev`, whose proxy worker, inspector and Node process are part of their numbers (CPU: workerd + wrangler\'s Node).');
  for (const n of out.notes) L.push(`- Note: ${n}`);
  L.push('');
  L.push('### Headline');
  L.push('');
  L.push(headline(out));
  L.push('');
  const tt = targetsTable(out);
  if (tt) {
    L.push("### The hot path's targets, as measured here");
    L.push('');
    L.push(tt);
    L.push('');
    L.push('CPU per streamed delta: what a stream costs over a non-stream request of the same reply, divided by the content deltas the stand-in sends for it. Storage round trips before the provider call: the D1/KV calls it waited for, one after another — read backwards from the provider fetch: the call that ended last before it began, then the one that ended last before that one began, and so on (one warm request; table below).');
    L.push('');
  }
  const rt = ratioTable(out);
  if (rt) {
    L.push('### Threadline against the floor and its peers (same run)');
    L.push('');
    L.push(rt);
    L.push('');
  }
  L.push('### Non-stream `POST /v1/chat/completions`');
  L.push('');
  L.push(nonStreamTable(out.cells.nonstream ?? {}, out.cfg.conc));
  L.push('');
  L.push('### Streamed `POST /v1/chat/completions` (TTFB: first body byte; TTLB: last byte; ms)');
  L.push('');
  L.push(streamTable(out.cells.stream ?? {}, out.cfg.conc));
  L.push('');
  if (out.deltasPerStream) {
    L.push(`Each stream carries ${out.deltasPerStream} content deltas (the stand-in's echo of the prompt, about 3 words each).`);
    L.push('');
  }
  L.push("### Threadline's own `POST /api/conversations/{id}/messages` (D1 reads and writes)");
  L.push('');
  const mt = messagesTable(out);
  L.push(mt ?? '_Skipped: the route is not in this build._');
  if (mt) L.push('\nEach cell uses fresh conversations, two per connection in rotation; every request stores the user message and the reply.');
  L.push('');
  if (out.storage?.routes) {
    const { d1, kv } = out.storage.latency;
    L.push(`### Storage calls per route, around the provider call (one warm request each; D1 ${d1} ms, KV ${kv} ms per call simulated)`);
    L.push('');
    L.push(`A second Threadline, the same build, behind \`bench/storage-sim.mjs\`: a facade over the real local D1 and KV bindings (the calls workers-rs makes: \`prepare/bind/first/all/run/raw\`, \`batch\`, \`exec\`; KV \`get/getWithMetadata/put/delete/list\`, arguments untouched) that waits the simulated latency before each call and records it (start, end and an exact order), and records the outbound provider \`fetch\` and when the handler returned its Response. Per route: one warm-up request, then the request measured; calls made after the response (\`waitUntil\`, the rest of a stream) are counted until ${200 + 6 * Math.max(d1, kv)} ms later. "Before the provider call" means finished before the provider \`fetch\` began; the round trips it waited for are the critical path read backwards from the fetch (the call that ended last before it, then the one that ended last before that one began, …), so a call that only finished early in the background is counted before but not waited for ("longest chain" when the two differ). A route that calls no provider is split at its response instead. The provider request's arrival is the recording stand-in's \`receivedAt\` (same clock as the client).`);
    L.push('');
    L.push(storageTable(out));
    L.push('');
  }
  if (out.simCells && Object.keys(out.simCells).length) {
    const { d1, kv } = out.storage.latency;
    L.push(`### Threadline with remote storage latency simulated (\`BENCH_STORAGE_LATENCY=${out.storage.spec}\`: every D1 call waits ${d1} ms, every KV call ${kv} ms)`);
    L.push('');
    L.push(simTable(out));
    L.push('');
    L.push("Same load as the tables above, against the storage-simulating Threadline; \"without\" is the plain Threadline's cell from this run. In production the waits are network round trips: they cost no CPU but sit in front of the first byte. CPU here includes the facade's own JavaScript.");
    L.push('');
  }
  if (out.probe) {
    L.push('### Streaming: time from the provider sending a delta to the client receiving it');
    L.push('');
    L.push('The probe stand-in sends 6 deltas 40 ms apart; the client (same process, same clock) timestamps each content delta on arrival. 5 streams per target at concurrency 1, after one warm-up.');
    L.push('');
    L.push('| target | first delta, median | all deltas, median | all deltas, max | deltas | streams where the delta count differed |');
    L.push('|---|---:|---:|---:|---:|---:|');
    for (const [name, p] of Object.entries(out.probe)) {
      const label = name === 'threadline-messages' ? '**Threadline** `POST /api/conversations/{id}/messages`' : NAMES[name] ?? name;
      L.push(`| ${label} | ${plus(p.firstMedian)} ms | ${plus(p.allMedian)} ms | ${plus(p.allMax)} ms | ${p.n} | ${p.mismatch} |`);
    }
    L.push('');
  }
  L.push('### Bundle and cold start');
  L.push('');
  L.push(`| wasm raw | wasm gzip | JS glue gzip | total gzip | budget (gzip) | V8 compile of the wasm (Node ${F.node}) |`);
  L.push('|---:|---:|---:|---:|---:|---:|');
  L.push(`| ${kib(B.wasmRaw)} | ${kib(B.wasmGzip)} | ${kib(B.jsGzip)} | ${kib(B.totalGzip)} | 1024 KiB (${((B.totalGzip / 1048576) * 100).toFixed(0)}% used) | ${f1(B.compileMs)} ms |`);
  L.push('');
  if (out.coldStarts?.length) {
    const med = (xs) => { const s = xs.filter((x) => x != null).sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
    const group = (what) => out.coldStarts.filter((c) => c.what === what);
    const labels = {
      threadline: '**Threadline** (`GET /health`), Miniflare',
      'threadline-storage-sim': 'Threadline behind the storage facade, Miniflare',
      passthrough: 'JS pass-through (floor), Miniflare',
      'threadline-wrangler-dev': 'Threadline under `wrangler dev` (extra)',
      'passthrough-wrangler-dev': 'JS pass-through under `wrangler dev` (extra)',
    };
    L.push('| worker | starts | spawn → socket open | spawn → first 200 | first request | steady-state request (median) |');
    L.push('|---|---:|---:|---:|---:|---:|');
    for (const what of Object.keys(labels)) {
      const g = group(what);
      if (!g.length) continue;
      L.push(`| ${labels[what]} | ${g.length} | ${f0(med(g.map((x) => x.spawn_to_listen_ms)))} ms | ${f0(med(g.map((x) => x.spawn_to_first_200_ms)))} ms | ${f1(med(g.map((x) => x.first_request_ms)))} ms | ${f1(med(g.map((x) => x.steady_median_ms)))} ms |`);
    }
    L.push('');
    L.push("Medians over the starts. Spawn → socket open is the Node host starting Miniflare and workerd (wrangler's own start-up for the extras); the first request carries the module's instantiation and the isolate's one-time setup.");
    L.push('');
  }
  if (out.routes) {
    L.push('### Per-route cost (sequential requests, concurrency 1, Miniflare)');
    L.push('');
    L.push("| route | wall p50 ms | worker's own `duration_ms` p50 | workerd CPU ms/req | host Node CPU ms/req |");
    L.push('|---|---:|---:|---:|---:|');
    for (const r of out.routes) L.push(`| ${r.label} | ${f1(r.wall)} | ${r.logged == null ? '–' : r.logged} | ${f2(r.workerd)} | ${f2(r.node)} |`);
    L.push('');
    L.push("`duration_ms` is the worker's wall time from request to response headers (whole milliseconds; for streams it ends before the body). workerd CPU includes the local D1 and KV simulators (Durable Objects and disk in the same workerd), which a deployment does not bill to the worker. Host Node CPU is Miniflare reading the worker's log lines; the LOG_LEVEL=warn rows drop the one request line per request.");
    L.push('');
  }
  if (out.hash) {
    L.push('### argon2id, one hash per OWASP parameter set (workerd)');
    L.push('');
    L.push('| m KiB, t, p | login (unknown email) p50 | validation-only p50 | ≈ hash, wall | ≈ hash, workerd CPU |');
    L.push('|---|---:|---:|---:|---:|');
    for (const h of out.hash) L.push(`| ${h.params}${h.params === '19456,2,1' ? ' (default)' : ''} | ${f1(h.loginMs)} ms | ${f1(h.invalidMs)} ms | ${f1(h.wallMs)} ms | ${f1(h.cpuMs)} ms |`);
    L.push('');
    L.push('The Free plan allows 10 ms of CPU per request, so login, registration and password changes need the Paid plan (30 s default) at any OWASP setting.');
    L.push('');
  }
  L.push(`_Run took ${Math.round(out.elapsedS)} s._`);
  L.push('');
  return L.join('\n');
}

export async function prependSection(file, section) {
  let old = '';
  try { old = await readFile(file, 'utf8'); } catch { /* first run */ }
  const body = old.startsWith('# Benchmark results') ? old.slice(old.indexOf('\n## ') >= 0 ? old.indexOf('\n## ') + 1 : old.length) : old;
  await writeFile(file, `${HEADER}\n${section}\n${body}`);
}
