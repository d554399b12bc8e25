// Markdown for bench/RESULTS.md: one dated section per run, newest first.
import { readFile, writeFile } from 'node:fs/promises';

const HEADER = `# Benchmark results

Written by \`make bench\` (bench/run.mjs); newest run first, earlier runs kept below for
comparison. How to read them: README, "Performance". Numbers from different machines, or from
a machine doing other work at the time (see each run's load average), are not comparable.
`;

const NAMES = {
  direct: 'direct (stand-in)',
  passthrough: 'wrangler dev floor',
  threadline: '**Threadline**',
  portkey: 'Portkey',
  litellm: 'LiteLLM',
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
const cpu = (r) => {
  const c = r.cpuPerReq ?? {};
  if (c.workerd != null) return `${f2(c.total)} (workerd ${f2(c.workerd)})`;
  return f2(c.total);
};

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
  const rows = ['| scenario | c | req/s Threadline ÷ Portkey | req/s Threadline ÷ LiteLLM | p50 Threadline ÷ Portkey | p50 Threadline ÷ LiteLLM |', '|---|---:|---:|---:|---:|---:|'];
  for (const scenario of ['nonstream', 'stream']) {
    const cells = out.cells[scenario];
    if (!cells?.threadline) continue;
    for (const c of out.cfg.conc) {
      const t = cells.threadline[c];
      const p = cells.portkey?.[c];
      const l = cells.litellm?.[c];
      if (!t) continue;
      const lat = (r) => (r ? (scenario === 'stream' ? r.ttlb.p50 : r.p50) : null);
      rows.push(`| ${scenario === 'stream' ? 'stream (TTLB)' : 'non-stream'} | ${c} | ${ratio(t.rps, p?.rps)} | ${ratio(t.rps, l?.rps)} | ${ratio(lat(t), lat(p))} | ${ratio(lat(t), lat(l))} |`);
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
  const c = out.cfg.conc.includes(16) ? 16 : out.cfg.conc[Math.floor(out.cfg.conc.length / 2)];
  const names = Object.keys(ns);
  if (!names.length) return '';
  const head = `| c=${c} | ${names.map((n) => NAMES[n] ?? n).join(' | ')} |`;
  const sep = `|---|${names.map(() => '---:').join('|')}|`;
  const row = (label, fn) => `| ${label} | ${names.map((n) => fn(n)).join(' | ')} |`;
  const d = ns.direct?.[c];
  const ds = st.direct?.[c];
  return [head, sep,
    row('non-stream req/s', (n) => f0(ns[n]?.[c]?.rps)),
    row('non-stream p50 ms (added)', (n) => (ns[n]?.[c] ? `${f1(ns[n][c].p50)}${n !== 'direct' && d ? ` (${plus(ns[n][c].p50 - d.p50)})` : ''}` : '–')),
    row('stream req/s', (n) => f0(st[n]?.[c]?.rps)),
    row('stream TTFB p50 ms (added)', (n) => (st[n]?.[c] ? `${f1(st[n][c].ttfb.p50)}${n !== 'direct' && ds ? ` (${plus(st[n][c].ttfb.p50 - ds.ttfb.p50)})` : ''}` : '–')),
    row('errors', (n) => String((ns[n]?.[c]?.errors ?? 0) + (st[n]?.[c]?.errorCount ?? 0))),
  ].join('\n');
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
  L.push(`- Machine: ${F.cores} cores, ${F.cpu}, ${F.memGiB} GiB; load average when the run began: ${F.loadavg}.`);
  L.push(`- Versions: Threadline ${F.threadline}, wrangler ${F.wrangler} (workerd ${F.workerd}, Node ${F.nodeForWrangler}), Portkey gateway ${F.portkey}, LiteLLM ${F.litellm}, Node ${F.node} (stand-in, Portkey, load client), ${F.loadTool}.`);
  L.push(`- Method: every process on one machine, on loopback, sharing its ${F.cores} cores with the load generator. Each cell runs ${out.cfg.duration} s, closed loop (c connections, each sending its next request when the previous answer has ended), after a 1 s warm-up per target. "Added" is the latency over the direct baseline at the same concurrency. Threadline runs its release build under \`wrangler dev\` (local workerd, local D1/KV) with production settings and authentication on (an API key made through the API; rate limits raised). "wrangler dev floor" is a one-file JavaScript worker under the same wrangler dev that only forwards to the stand-in: the local dev server's own cost, which Threadline's numbers include and a deployment does not. CPU ms/req is the CPU the target's own processes used over the cell divided by its requests (for workers: workerd plus wrangler's Node proxy; the load generator and the stand-in not counted).`);
  for (const n of out.notes) L.push(`- Note: ${n}`);
  L.push('');
  L.push('### Headline');
  L.push('');
  L.push(headline(out));
  L.push('');
  L.push('### Threadline against its peers (same run)');
  L.push('');
  L.push(ratioTable(out));
  L.push('');
  L.push('### Non-stream `POST /v1/chat/completions`');
  L.push('');
  L.push(nonStreamTable(out.cells.nonstream ?? {}, out.cfg.conc));
  L.push('');
  L.push('### Streamed `POST /v1/chat/completions` (TTFB: first body byte; TTLB: last byte; ms)');
  L.push('');
  L.push(streamTable(out.cells.stream ?? {}, out.cfg.conc));
  L.push('');
  L.push("### Threadline's own `POST /api/conversations/{id}/messages` (D1 reads and writes)");
  L.push('');
  const mt = messagesTable(out);
  L.push(mt ?? '_Skipped: the route is not in this build._');
  if (mt) L.push('\nEach cell uses fresh conversations, two per connection in rotation; every request stores the user message and the reply.');
  L.push('');
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
    L.push('| worker under `wrangler dev` | starts | spawn → port open | spawn → first 200 | first request | steady-state request (median) |');
    L.push('|---|---:|---:|---:|---:|---:|');
    for (const what of ['threadline', 'passthrough']) {
      const g = group(what);
      if (!g.length) continue;
      L.push(`| ${what === 'threadline' ? '**Threadline** (`GET /health`)' : 'JS pass-through (floor)'} | ${g.length} | ${f0(med(g.map((x) => x.spawn_to_listen_ms)))} ms | ${f0(med(g.map((x) => x.spawn_to_first_200_ms)))} ms | ${f1(med(g.map((x) => x.first_request_ms)))} ms | ${f1(med(g.map((x) => x.steady_median_ms)))} ms |`);
    }
    L.push('');
    L.push("Medians over the starts. Spawn times are mostly wrangler's own start-up; the first request carries the module's instantiation and the isolate's one-time setup.");
    L.push('');
  }
  if (out.routes) {
    L.push('### Per-route cost (sequential requests, concurrency 1)');
    L.push('');
    L.push("| route | wall p50 ms | worker's own `duration_ms` p50 | workerd CPU ms/req | wrangler Node CPU ms/req |");
    L.push('|---|---:|---:|---:|---:|');
    for (const r of out.routes) L.push(`| ${r.label} | ${f1(r.wall)} | ${r.logged == null ? '–' : r.logged} | ${f2(r.workerd)} | ${f2(r.node)} |`);
    L.push('');
    L.push("`duration_ms` is the worker's wall time from request to response headers (whole milliseconds; for streams it ends before the body). workerd CPU includes wrangler dev's proxy worker and the local D1/KV simulators, so the pass-through row is the floor to subtract. The LOG_LEVEL=warn rows drop the one log line per request, which under wrangler dev travels over the inspector protocol to wrangler's Node process.");
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
