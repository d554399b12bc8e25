// End-to-end harness: runs the real worker (build/, made by `make build`) under `wrangler dev`
// — workerd with local D1 and KV — on a free port with a fresh, throwaway state directory,
// after applying the migrations to it. Nothing here is an in-memory stand-in for D1 or KV.
//
// Each worker gets its own copy of wrangler.toml in a temporary directory, with absolute paths
// and a .dev.vars holding exactly the vars the test asked for, so a developer's own .dev.vars
// (which may hold real provider keys) never leaks into a test run.

import { spawn, execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const WRANGLER = path.join(ROOT, 'node_modules', '.bin', 'wrangler');
const NODE_BIN = path.join(ROOT, 'node_modules', '.bin');

/** A JWT secret long enough for production checks (tests never use it for anything real). */
export const TEST_JWT_SECRET = 'e2e-test-secret-0123456789abcdef0123456789abcdef';

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function childEnv() {
  return {
    ...process.env,
    PATH: `${NODE_BIN}:${process.env.PATH}`,
    WRANGLER_SEND_METRICS: 'false',
    CI: 'true',
    NO_COLOR: '1',
  };
}

async function writeConfig(dir) {
  let toml = await readFile(path.join(ROOT, 'wrangler.toml'), 'utf8');
  toml = toml
    .replace(/^main = ".*"$/m, `main = "${path.join(ROOT, 'src/entry.mjs')}"`)
    .replace(/^directory = ".*"$/m, `directory = "${path.join(ROOT, 'build/public')}"`)
    .replace(/^migrations_dir = ".*"$/m, `migrations_dir = "${path.join(ROOT, 'migrations')}"`);
  const file = path.join(dir, 'wrangler.toml');
  await writeFile(file, toml);
  return file;
}

/**
 * Starts the worker. `vars` are merged over development defaults; pass
 * `{ ENVIRONMENT: 'production' }` and friends to test production behaviour.
 */
export async function startWorker({ vars = {}, stateDir: sharedState, devArgs = [] } = {}) {
  const dir = await mkdtemp(path.join(tmpdir(), 'threadline-e2e-'));
  // Pass `stateDir` of a stopped worker to restart on the same D1/KV (e.g. with other vars).
  const stateDir = sharedState ?? path.join(dir, 'state');
  const config = await writeConfig(dir);
  const allVars = {
    ENVIRONMENT: 'development',
    LOG_LEVEL: 'debug',
    JWT_SECRET: TEST_JWT_SECRET,
    ...vars,
  };
  const devVars = Object.entries(allVars)
    .filter(([, v]) => v !== undefined && v !== null)
    // dotenv does not unescape \" inside double quotes, so a JSON value (CHAT_MODES, extra
    // models…) goes in single quotes, which dotenv takes literally.
    .map(([k, v]) => {
      const s = String(v);
      return /['\n\r]/.test(s) ? `${k}=${JSON.stringify(s)}` : `${k}='${s}'`;
    })
    .join('\n');
  await writeFile(path.join(dir, '.dev.vars'), devVars + '\n');

  await execFileAsync(
    WRANGLER,
    ['d1', 'migrations', 'apply', 'threadline', '--local', '--persist-to', stateDir, '--config', config],
    { cwd: dir, env: childEnv(), timeout: 120_000 },
  );

  const port = await freePort();
  const inspectorPort = await freePort();
  const child = spawn(
    WRANGLER,
    [
      'dev', '--config', config, '--ip', '127.0.0.1', '--port', String(port),
      '--inspector-port', String(inspectorPort), '--persist-to', stateDir,
      '--show-interactive-dev-session=false', '--log-level', 'log',
      // e.g. --test-scheduled, which serves GET /__scheduled to run the cron handler.
      ...devArgs,
    ],
    { cwd: dir, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  let exited = false;
  child.on('exit', () => { exited = true; });

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (exited) throw new Error(`wrangler dev exited early:\n${output}`);
    try {
      const res = await fetch(`${url}/`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`wrangler dev did not answer within 90 s:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  return {
    url,
    port,
    dir,
    stateDir,
    config,
    /** Everything wrangler and the worker printed so far (console.log lines included). */
    output: () => output,
    /** Waits until the output matches `pattern` (log lines arrive a little after responses). */
    async waitForOutput(pattern, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(output)) {
        if (Date.now() > deadline) throw new Error(`output never matched ${pattern}:\n${output.slice(-4000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    /** Runs SQL against the worker's local D1 (for asserting what was or was not stored). */
    async sql(query) {
      const { stdout } = await execFileAsync(
        WRANGLER,
        ['d1', 'execute', 'threadline', '--local', '--persist-to', stateDir, '--config', config, '--json', '--command', query],
        { cwd: dir, env: childEnv(), timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
      );
      const parsed = JSON.parse(stdout);
      return parsed[0]?.results ?? [];
    },
    /** The names of the keys in the worker's local KV starting with `prefix`. */
    async kvKeys(prefix = '') {
      const args = ['kv', 'key', 'list', '--binding', 'KV', '--local', '--persist-to', stateDir, '--config', config];
      if (prefix) args.push('--prefix', prefix);
      const { stdout } = await execFileAsync(WRANGLER, args, { cwd: dir, env: childEnv(), timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
      return JSON.parse(stdout).map((k) => k.name);
    },
    /** Deletes a key from the worker's local KV behind its back (as another isolate would). */
    async kvDelete(key) {
      const args = ['kv', 'key', 'delete', key, '--binding', 'KV', '--local', '--persist-to', stateDir, '--config', config];
      await execFileAsync(WRANGLER, args, { cwd: dir, env: childEnv(), timeout: 60_000 });
    },
    /** Whether the worker's local R2 bucket FILES holds `key` (read behind the worker's back). */
    async r2Has(key) {
      const file = path.join(dir, 'r2-object');
      const args = ['r2', 'object', 'get', `threadline-files/${key}`, '--local', '--persist-to', stateDir, '--config', config, '--file', file];
      try {
        await execFileAsync(WRANGLER, args, { cwd: dir, env: childEnv(), timeout: 60_000 });
        return true;
      } catch {
        return false;
      }
    },
    async stop({ keepState = false } = {}) {
      if (!exited) {
        try { process.kill(-child.pid, 'SIGTERM'); } catch { /* already gone */ }
        await new Promise((r) => {
          const t = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } r(); }, 5000);
          child.on('exit', () => { clearTimeout(t); r(); });
          if (exited) { clearTimeout(t); r(); }
        });
      }
      // keepState: leave D1/KV on disk so another worker can start on them (then remove
      // `dir` yourself).
      if (!keepState) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** fetch + JSON body, returning { status, headers, body, text }. */
export async function call(base, method, route, { json, headers = {}, body, token } = {}) {
  const h = { ...headers };
  if (json !== undefined) h['content-type'] = h['content-type'] ?? 'application/json';
  if (token) h.authorization = `Bearer ${token}`;
  const res = await fetch(`${base}${route}`, {
    method,
    headers: h,
    body: json !== undefined ? JSON.stringify(json) : body,
  });
  const text = await res.text();
  let parsed;
  try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

/** Asserts the JSON error envelope and returns its inner object. */
export function envelope(assert, res, status, code) {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.text}`);
  assert.ok(res.body && res.body.error, `no error envelope in: ${res.text}`);
  const e = res.body.error;
  if (code) assert.equal(e.code, code);
  assert.equal(typeof e.message, 'string');
  assert.equal(e.request_id, res.headers.get('x-request-id'));
  return e;
}
