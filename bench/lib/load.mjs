// Load generators, each run as a separate process: wrk (or oha where wrk is missing) for
// plain request/response, bench/stream-load.mjs for Server-Sent Events (TTFB and TTLB).
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { ROOT } from '../../tests/e2e/harness.mjs';

function run(cmd, args, { env = {}, timeoutMs = 120_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** Which HTTP load generator is installed: 'wrk' (preferred) or 'oha'. */
export function loadTool() {
  if (has('wrk')) return 'wrk';
  if (has('oha')) return 'oha';
  throw new Error('neither wrk nor oha is installed (make bench installs one)');
}

export function loadToolVersion(tool) {
  const r = spawnSync(tool, tool === 'wrk' ? ['-v'] : ['--version'], { encoding: 'utf8' });
  const text = `${r.stdout}${r.stderr}`;
  const m = /(\d+\.\d+\.\d+)/.exec(text);
  return `${tool} ${m ? m[1] : '?'}`;
}

/**
 * POST `body` to `url` (or to `paths` on its origin in rotation) with `concurrency`
 * connections for `durationS` seconds. Returns
 * { requests, rps, p50, p90, p99, errors, errorDetail, samples } with latencies in ms.
 */
export async function httpLoad({ url, headers = {}, body, paths = null, concurrency, durationS, tool = loadTool() }) {
  if (tool === 'wrk') {
    const threads = Math.min(2, concurrency);
    const env = {
      BENCH_BODY: body,
      BENCH_HEADERS: Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\n'),
      BENCH_PATHS: paths ? paths.join('|') : '',
    };
    const r = await run('wrk', ['-t', String(threads), '-c', String(concurrency), '-d', `${durationS}s`, '--timeout', '30s',
      '-s', path.join(ROOT, 'bench/wrk-post.lua'), url], { env, timeoutMs: (durationS + 60) * 1000 });
    const line = r.stdout.split('\n').reverse().find((l) => l.startsWith('{'));
    if (!line) throw new Error(`wrk printed no result (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    const j = JSON.parse(line);
    const e = j.errors;
    const errors = e.connect + e.read + e.write + e.timeout + Math.max(e.non2xx, e.status);
    return {
      requests: j.requests - Math.max(e.non2xx, e.status),
      rps: (j.requests - Math.max(e.non2xx, e.status)) / (j.duration_us / 1e6),
      p50: j.p50_ms,
      p90: j.p90_ms,
      p99: j.p99_ms,
      errors,
      errorDetail: e,
      samples: r.stderr.split('\n').filter((l) => l.startsWith('non-2xx')).slice(0, 3),
    };
  }
  // oha: one URL only, so rotate paths by running against the first (oha has no scripting).
  const target = paths ? new URL(paths[0], url).href : url;
  const args = ['--no-tui', '--output-format', 'json', '-z', `${durationS}s`, '-c', String(concurrency), '-m', 'POST',
    '-T', 'application/json', '-d', body, '-t', '30s'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  args.push(target);
  const r = await run('oha', args, { timeoutMs: (durationS + 60) * 1000 });
  const j = JSON.parse(r.stdout);
  const codes = j.statusCodeDistribution ?? {};
  const ok = Object.entries(codes).filter(([c]) => c >= '200' && c < '300').reduce((a, [, n]) => a + n, 0);
  const bad = Object.entries(codes).filter(([c]) => !(c >= '200' && c < '300')).reduce((a, [, n]) => a + n, 0);
  const netErr = Object.values(j.errorDistribution ?? {}).reduce((a, n) => a + n, 0);
  const lp = j.latencyPercentiles ?? {};
  return {
    requests: ok,
    rps: ok / j.summary.total,
    p50: lp.p50 * 1000,
    p90: lp.p90 * 1000,
    p99: lp.p99 * 1000,
    errors: bad + netErr,
    errorDetail: { status: codes, network: j.errorDistribution },
    samples: Object.keys(j.errorDistribution ?? {}).slice(0, 3),
  };
}

/** Streamed requests through bench/stream-load.mjs: { requests, rps, ttfb{}, ttlb{}, errors… }. */
export async function streamLoad({ url, headers = {}, body, paths = null, concurrency, durationS, expect = '[DONE]' }) {
  const spec = JSON.stringify({ url, headers, body, paths, concurrency, durationS, expect });
  const r = await run(process.execPath, [path.join(ROOT, 'bench/stream-load.mjs'), spec], { timeoutMs: (durationS + 90) * 1000 });
  const line = r.stdout.split('\n').reverse().find((l) => l.startsWith('{'));
  if (!line) throw new Error(`stream-load printed no result (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  const j = JSON.parse(line);
  j.errorCount = Object.values(j.errors).reduce((a, n) => a + n, 0);
  return j;
}
