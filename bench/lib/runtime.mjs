// A worker on the runtime itself for the benchmark: workerd through Miniflare's programmatic
// API (bench/lib/miniflare-host.mjs, its own process group), on a direct socket, with local
// D1 and KV persisted to a fresh temporary state directory that has the migrations applied.
// Same shape as bench/lib/worker.mjs's `startDevWorker` (which stays for the labelled
// `wrangler dev` rows), and like it:
// - it runs a SNAPSHOT of build/ and src/entry.mjs copied to a temporary directory, so the
//   worker measured is the one whose size is reported and a rebuild mid-run changes nothing;
// - it times the phases of a cold start: spawn → socket open → first 200, and the steady state.
// The compatibility date and flags, the D1 and KV ids and the [vars] come from wrangler.toml,
// with a 32+ byte JWT_SECRET and the caller's vars on top. No ASSETS binding: the routes
// measured never read it (only /docs does).
//
// `storageLatency` ("d1=30,kv=5") serves Threadline behind bench/storage-sim.mjs, which
// delays and records every D1 and KV call; `storageOps()` then answers (and clears) the records.
import { spawn, execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT, TEST_JWT_SECRET } from '../../tests/e2e/harness.mjs';
import { processesOf, sleep, timeFirstRequests } from './procs.mjs';

const execFileAsync = promisify(execFile);
const NODE_BIN = path.join(ROOT, 'node_modules', '.bin');
const WRANGLER = path.join(NODE_BIN, 'wrangler');
const HOST = path.join(ROOT, 'bench/lib/miniflare-host.mjs');

function childEnv() {
  return { ...process.env, PATH: `${NODE_BIN}:${process.env.PATH}`, WRANGLER_SEND_METRICS: 'false', CI: 'true', NO_COLOR: '1' };
}

/** What the runtime needs from wrangler.toml: dates, flags, binding ids and [vars]. */
export async function wranglerSettings() {
  const toml = await readFile(path.join(ROOT, 'wrangler.toml'), 'utf8');
  const str = (re) => re.exec(toml)?.[1];
  const flags = str(/^compatibility_flags\s*=\s*\[([^\]]*)\]/m) ?? '';
  const varsBlock = /^\[vars\]\n([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(toml)?.[1] ?? '';
  const vars = {};
  for (const m of varsBlock.matchAll(/^([A-Z0-9_]+)\s*=\s*"(.*)"\s*$/gm)) vars[m[1]] = m[2];
  return {
    compatibilityDate: str(/^compatibility_date\s*=\s*"(.*)"/m),
    compatibilityFlags: [...flags.matchAll(/"([^"]+)"/g)].map((m) => m[1]),
    d1Id: str(/^database_id\s*=\s*"(.*)"/m),
    d1Name: str(/^database_name\s*=\s*"(.*)"/m),
    kvId: str(/^\[\[kv_namespaces\]\][\s\S]*?^id\s*=\s*"(.*)"/m),
    vars,
  };
}

/** The worker's modules: `main` first, then every other .mjs/.js/.wasm of the snapshot. */
async function moduleList(dir, main) {
  const out = [{ type: 'ESModule', path: main }];
  const walk = async (d) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (p !== path.join(dir, 'state') && p !== path.join(dir, 'build/public')) await walk(p);
      } else if (p !== main && /\.(m?js)$/.test(e.name)) out.push({ type: 'ESModule', path: p });
      else if (/\.wasm$/.test(e.name)) out.push({ type: 'CompiledWasm', path: p });
    }
  };
  await walk(dir);
  return out;
}

/** Applies migrations/ to a fresh local D1 under `stateDir`, as `make dev` does. */
async function migrate(dir, stateDir, settings) {
  let toml = await readFile(path.join(ROOT, 'wrangler.toml'), 'utf8');
  toml = toml.replace(/^migrations_dir = ".*"$/m, `migrations_dir = "${path.join(ROOT, 'migrations')}"`)
    .replace(/^main = ".*"$/m, `main = "${path.join(dir, 'src/entry.mjs')}"`)
    .replace(/^directory = ".*"$/m, `directory = "${dir}"`);
  const config = path.join(dir, 'wrangler.toml');
  await writeFile(config, toml);
  await execFileAsync(WRANGLER, ['d1', 'migrations', 'apply', settings.d1Name, '--local', '--persist-to', stateDir, '--config', config],
    { cwd: dir, env: childEnv(), timeout: 120_000 });
}

/**
 * Starts a worker on Miniflare. `entry` defaults to Threadline (a snapshot of build/ and
 * src/entry.mjs; `buildRoot` names another checkout's); pass a module path (e.g.
 * bench/passthrough-worker.mjs) to serve that instead. Returns
 * { url, port, pgid, dir, timings, output(), clearOutput(), pids(), storageOps(), stop() }.
 */
export async function startRuntimeWorker({ vars = {}, entry = null, migrate: withMigrations = true, probePath = '/health', buildRoot = ROOT, storageLatency = null } = {}) {
  const settings = await wranglerSettings();
  const dir = await mkdtemp(path.join(tmpdir(), 'threadline-bench-rt-'));
  let main;
  if (entry) {
    main = path.join(dir, path.basename(entry));
    await cp(entry, main);
  } else {
    await mkdir(path.join(dir, 'src'));
    await cp(path.join(buildRoot, 'build'), path.join(dir, 'build'), { recursive: true });
    await cp(path.join(buildRoot, 'src/entry.mjs'), path.join(dir, 'src/entry.mjs'));
    main = path.join(dir, 'src/entry.mjs');
    if (storageLatency) {
      main = path.join(dir, 'storage-sim.mjs');
      await cp(path.join(ROOT, 'bench/storage-sim.mjs'), main);
    }
  }
  const stateDir = path.join(dir, 'state');
  if (withMigrations) await migrate(dir, stateDir, settings);

  const bindings = { ...settings.vars, JWT_SECRET: TEST_JWT_SECRET, ...vars };
  if (storageLatency) bindings.BENCH_STORAGE_LATENCY = storageLatency;
  for (const [k, v] of Object.entries(bindings)) {
    if (v === undefined || v === null) delete bindings[k];
    else bindings[k] = String(v);
  }
  const cfg = {
    modules: await moduleList(dir, main),
    modulesRoot: dir,
    compatibilityDate: settings.compatibilityDate,
    compatibilityFlags: settings.compatibilityFlags,
    bindings,
    d1Databases: { DB: settings.d1Id },
    kvNamespaces: { KV: settings.kvId },
    // File bytes (binding FILES), local R2 in the same state directory.
    r2Buckets: { FILES: 'threadline-files' },
    // As wrangler.toml's [[queues.*]]: pipeline executions run on the local queue.
    queueProducers: { PIPELINE_QUEUE: { queueName: 'threadline-pipelines' } },
    queueConsumers: { 'threadline-pipelines': { maxBatchSize: 10, maxBatchTimeout: 1, maxRetries: 10, deadLetterQueue: 'threadline-pipelines-dlq' } },
    persistTo: path.join(stateDir, 'v3'),
  };
  // Threadline's conversations' Durable Object (wrangler.toml); a one-file entry has none.
  if (!entry) cfg.durableObjects = { CONVERSATION_LIVE: { className: 'ConversationLive', useSQLite: true } };

  const t0 = performance.now();
  const child = spawn(process.execPath, [HOST, JSON.stringify(cfg)], {
    cwd: dir, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  let output = '';
  const keep = (d) => {
    output += d;
    if (output.length > 4_000_000) output = output.slice(-2_000_000);
  };
  let url = null;
  let firstLine = '';
  child.stdout.on('data', (d) => {
    if (!url) {
      firstLine += d;
      const m = /^\{"url":"([^"]+)"\}$/m.exec(firstLine);
      if (m) url = m[1].replace(/\/$/, '');
      return;
    }
    keep(d);
  });
  child.stderr.on('data', keep);
  let exited = false;
  child.on('exit', () => { exited = true; });

  const kill = () => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } };
  const fail = async (why) => {
    kill();
    await rm(dir, { recursive: true, force: true });
    throw new Error(`${why}:\n${firstLine.slice(-2000)}\n${output.slice(-4000)}`);
  };
  const deadline = Date.now() + 90_000;
  while (!url) {
    if (exited) await fail('the Miniflare host exited early');
    if (Date.now() > deadline) await fail('the Miniflare host never opened its socket');
    await sleep(10);
  }
  const timings = { spawn_to_listen_ms: performance.now() - t0 };
  await timeFirstRequests({
    url, probePath, t0, deadline, timings, fail,
    exited: () => exited,
    exitedMessage: 'the Miniflare host exited early',
    timeoutMessage: `${probePath} did not answer 200 within 90 s`,
  });

  return {
    url,
    port: Number(new URL(url).port),
    pgid: child.pid,
    dir,
    timings,
    output: () => output,
    /** Drops what was printed so far (the log lines of a finished phase). */
    clearOutput: () => { output = ''; },
    /** The host's Node process and the workerd it spawned (same process group). */
    pids: async () => (await processesOf({ pgid: child.pid })).map((p) => p.pid),
    /** With `storageLatency`: the D1/KV calls recorded since the last call ({now, ops}). */
    async storageOps() {
      const res = await fetch(`${url}/__bench/storage-ops`);
      if (res.status !== 200) throw new Error(`storage ops: ${res.status} ${await res.text()}`);
      return res.json();
    },
    async stop() {
      if (!exited) {
        try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
        await new Promise((r) => {
          const t = setTimeout(() => { kill(); r(); }, 5000);
          child.on('exit', () => { clearTimeout(t); r(); });
          if (exited) { clearTimeout(t); r(); }
        });
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
