// Threadline under `wrangler dev` for the benchmark. Like tests/e2e/harness.mjs (a fresh state
// directory, local D1 and KV, exactly the vars asked for), with two differences:
// - it runs a SNAPSHOT of build/ and src/entry.mjs copied to a temporary directory, so the
//   worker measured is the one whose size is reported, and a rebuild in the work tree during
//   the run (wrangler dev watches its entry's imports) cannot reload it mid-measurement;
// - it times the phases of a cold start: spawn → port open → first 200, and the first
//   request's latency against the steady state.
import { spawn, execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, ROOT, TEST_JWT_SECRET } from '../../tests/e2e/harness.mjs';
import { processesOf, sleep, timeFirstRequests } from './procs.mjs';

const execFileAsync = promisify(execFile);
const NODE_BIN = path.join(ROOT, 'node_modules', '.bin');
const WRANGLER = path.join(NODE_BIN, 'wrangler');

function childEnv() {
  return { ...process.env, PATH: `${NODE_BIN}:${process.env.PATH}`, WRANGLER_SEND_METRICS: 'false', CI: 'true', NO_COLOR: '1' };
}

function devVars(vars) {
  return Object.entries(vars)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => {
      const s = String(v);
      return /['\n\r]/.test(s) ? `${k}=${JSON.stringify(s)}` : `${k}='${s}'`;
    })
    .join('\n') + '\n';
}

function portOpen(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port }, () => { sock.destroy(); resolve(true); });
    sock.on('error', () => resolve(false));
  });
}

/**
 * Starts a worker under wrangler dev. `entry` defaults to Threadline (snapshot of build/ and
 * src/entry.mjs; `buildRoot` names another checkout's, to compare two builds); pass another module
 * (e.g. bench/passthrough-worker.mjs) as `entry` to run that instead.
 * Returns { url, port, pgid, dir, timings, output(), stop() }.
 */
export async function startDevWorker({ vars = {}, entry = null, migrate = true, probePath = '/health', buildRoot = ROOT } = {}) {
  const dir = await mkdtemp(path.join(tmpdir(), 'threadline-bench-'));
  let main;
  if (entry) {
    main = path.join(dir, path.basename(entry));
    await cp(entry, main);
  } else {
    await mkdir(path.join(dir, 'src'));
    await cp(path.join(buildRoot, 'build'), path.join(dir, 'build'), { recursive: true });
    await cp(path.join(buildRoot, 'src/entry.mjs'), path.join(dir, 'src/entry.mjs'));
    main = path.join(dir, 'src/entry.mjs');
  }
  let toml = await readFile(path.join(ROOT, 'wrangler.toml'), 'utf8');
  toml = toml
    .replace(/^main = ".*"$/m, `main = "${main}"`)
    .replace(/^directory = ".*"$/m, `directory = "${path.join(entry ? ROOT : dir, 'build/public')}"`)
    .replace(/^migrations_dir = ".*"$/m, `migrations_dir = "${path.join(ROOT, 'migrations')}"`);
  const config = path.join(dir, 'wrangler.toml');
  await writeFile(config, toml);
  await writeFile(path.join(dir, '.dev.vars'), devVars({ ENVIRONMENT: 'development', JWT_SECRET: TEST_JWT_SECRET, ...vars }));
  const stateDir = path.join(dir, 'state');

  if (migrate) {
    await execFileAsync(WRANGLER, ['d1', 'migrations', 'apply', 'threadline', '--local', '--persist-to', stateDir, '--config', config],
      { cwd: dir, env: childEnv(), timeout: 120_000 });
  }

  const port = await freePort();
  const inspectorPort = await freePort();
  const t0 = performance.now();
  const child = spawn(WRANGLER, [
    'dev', '--config', config, '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspectorPort),
    '--persist-to', stateDir, '--show-interactive-dev-session=false', '--log-level', 'log',
  ], { cwd: dir, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  const keep = (d) => {
    output += d;
    if (output.length > 4_000_000) output = output.slice(-2_000_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = false;
  child.on('exit', () => { exited = true; });

  const url = `http://127.0.0.1:${port}`;
  const timings = {};
  const deadline = Date.now() + 90_000;
  const fail = async (why) => {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
    throw new Error(`${why}:\n${output.slice(-4000)}`);
  };
  while (!(await portOpen(port))) {
    if (exited) await fail('wrangler dev exited early');
    if (Date.now() > deadline) await fail('wrangler dev never opened its port');
    await sleep(20);
  }
  timings.spawn_to_listen_ms = performance.now() - t0;
  await timeFirstRequests({
    url, probePath, t0, deadline, timings, fail,
    exited: () => exited,
    exitedMessage: 'wrangler dev exited early',
    timeoutMessage: 'wrangler dev did not answer 200 within 90 s',
  });

  return {
    url,
    port,
    inspectorPort,
    pgid: child.pid,
    dir,
    timings,
    output: () => output,
    /** Drops what was printed so far (the log lines of a finished phase). */
    clearOutput: () => { output = ''; },
    pids: async () => (await processesOf({ pgid: child.pid })).map((p) => p.pid),
    async stop() {
      if (!exited) {
        try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
        await new Promise((r) => {
          const t = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } r(); }, 5000);
          child.on('exit', () => { clearTimeout(t); r(); });
          if (exited) { clearTimeout(t); r(); }
        });
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
