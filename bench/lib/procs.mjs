// Processes for the benchmark: the provider stand-in, the Portkey gateway and the LiteLLM
// proxy, each on a free loopback port, plus process-tree CPU accounting from /proc.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtemp, writeFile, readFile, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, ROOT } from '../../tests/e2e/harness.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A started worker's cold start, once its socket is open: the first 200 from `probePath`
 * (module instantiation — wasm compile and instantiate — and the isolate's one-time setup
 * happen on or before it), then the median of 30 warm requests. Adds `first_request_ms`,
 * `spawn_to_first_200_ms` (from `t0`) and `steady_median_ms` to `timings`; `fail(message)`
 * when the process exits or `deadline` passes first.
 */
export async function timeFirstRequests({ url, probePath, t0, deadline, timings, fail, exited, exitedMessage, timeoutMessage }) {
  for (;;) {
    const t = performance.now();
    try {
      const res = await fetch(`${url}${probePath}`, { signal: AbortSignal.timeout(30_000) });
      await res.arrayBuffer();
      if (res.status === 200) {
        timings.first_request_ms = performance.now() - t;
        timings.spawn_to_first_200_ms = performance.now() - t0;
        break;
      }
    } catch { /* not ready */ }
    if (exited()) await fail(exitedMessage);
    if (Date.now() > deadline) await fail(timeoutMessage);
    await sleep(20);
  }
  const steady = [];
  for (let i = 0; i < 30; i++) {
    const t = performance.now();
    const res = await fetch(`${url}${probePath}`);
    await res.arrayBuffer();
    steady.push(performance.now() - t);
  }
  steady.sort((a, b) => a - b);
  timings.steady_median_ms = steady[Math.floor(steady.length / 2)];
}
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** Spawns a long-running child in its own process group; `stop()` ends that group. */
function spawnService(name, cmd, args, { env = {}, cwd = ROOT } = {}) {
  const child = spawn(cmd, args, {
    cwd,
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  const keep = (d) => {
    output += d;
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = false;
  child.on('exit', () => { exited = true; });
  return {
    name,
    pid: child.pid,
    output: () => output,
    exited: () => exited,
    async stop() {
      if (exited) return;
      try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
      await new Promise((r) => {
        const t = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } r(); }, 5000);
        child.on('exit', () => { clearTimeout(t); r(); });
        if (exited) { clearTimeout(t); r(); }
      });
    },
  };
}

/** Polls `probe()` until it returns true; throws with the service's output on timeout. */
async function waitReady(svc, probe, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (svc.exited()) throw new Error(`${svc.name} exited early:\n${svc.output().slice(-4000)}`);
    try {
      if (await probe()) return;
    } catch { /* not yet */ }
    if (Date.now() > deadline) {
      await svc.stop();
      throw new Error(`${svc.name} not ready within ${timeoutMs / 1000} s:\n${svc.output().slice(-4000)}`);
    }
    await sleep(200);
  }
}

const ok = async (url, init) => {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.ok;
};

/** The stand-in as its own process, recording nothing (it serves the load). */
export async function startStandInProcess() {
  const port = await freePort();
  const svc = spawnService('stand-in', process.execPath, ['tests/support/stand-in.mjs', '--port', String(port), '--no-record']);
  const url = `http://127.0.0.1:${port}`;
  await waitReady(svc, () => ok(`${url}/__health`), 20_000);
  return { ...svc, url, port };
}

/** Portkey's gateway (`npx @portkey-ai/gateway` equivalent), headless, on loopback. */
export async function startPortkey() {
  const port = await freePort();
  const entry = path.join(ROOT, 'node_modules/@portkey-ai/gateway/build/start-server.js');
  const svc = spawnService('portkey', process.execPath, [entry, `--port=${port}`, '--headless']);
  const url = `http://127.0.0.1:${port}`;
  await waitReady(svc, () => ok(`${url}/`), 30_000);
  return { ...svc, url, port };
}

export const LITELLM_MASTER_KEY = 'sk-bench-litellm-master-key';

/** The LiteLLM proxy from bench/.venv, offline, with `models` ({name: api_base}) configured. */
export async function startLiteLLM(models) {
  const port = await freePort();
  const dir = await mkdtemp(path.join(tmpdir(), 'threadline-bench-litellm-'));
  const list = Object.entries(models)
    .map(([name, base]) => `  - model_name: ${name}\n    litellm_params:\n      model: openai/${name}\n      api_base: ${base}\n      api_key: sk-bench-upstream\n`)
    .join('');
  await writeFile(path.join(dir, 'config.yaml'),
    `model_list:\n${list}general_settings:\n  master_key: ${LITELLM_MASTER_KEY}\nlitellm_settings:\n  telemetry: false\n`);
  const bin = path.join(ROOT, 'bench/.venv/bin/litellm');
  const svc = spawnService('litellm', bin, ['--config', path.join(dir, 'config.yaml'), '--host', '127.0.0.1', '--port', String(port)], {
    cwd: dir,
    env: { LITELLM_LOCAL_MODEL_COST_MAP: 'True', LITELLM_MASTER_KEY, LITELLM_TELEMETRY: 'False', LITELLM_LOG: 'ERROR' },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitReady(svc, () => ok(`${url}/health/liveliness`), 120_000);
  return {
    ...svc, url, port,
    async stop() { await svc.stop(); await rm(dir, { recursive: true, force: true }); },
  };
}

// ---- CPU accounting -------------------------------------------------------------------------

async function statOf(pid) {
  try {
    const s = await readFile(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // fields after the command: state(3) ppid(4) pgrp(5) … utime(14) stime(15)
    return { pid, comm: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), ppid: Number(rest[1]), pgrp: Number(rest[2]), ticks: Number(rest[11]) + Number(rest[12]) };
  } catch {
    return null;
  }
}

async function allStats() {
  const out = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = await statOf(Number(name));
    if (st) out.push(st);
  }
  return out;
}

/** Processes in the process group `pgid`, or whose working directory is `cwd`. */
export async function processesOf({ pgid, cwd }) {
  const out = [];
  for (const st of await allStats()) {
    if (pgid && st.pgrp === pgid) { out.push(st); continue; }
    if (cwd) {
      try { if ((await readlink(`/proc/${st.pid}/cwd`)) === cwd) out.push(st); } catch { /* gone */ }
    }
  }
  return out;
}

/** CPU milliseconds used so far by these pids, by command name ({workerd: 123, node: 45}). */
export async function cpuMs(pids) {
  const out = {};
  for (const pid of pids) {
    const st = await statOf(pid);
    if (st) out[st.comm] = (out[st.comm] ?? 0) + (st.ticks * 1000) / CLK_TCK;
  }
  return out;
}

export function cpuDelta(before, after) {
  const out = {};
  let total = 0;
  for (const k of Object.keys(after)) {
    const d = after[k] - (before[k] ?? 0);
    out[k] = d;
    total += d;
  }
  out.total = total;
  return out;
}
