// `make fuzz`: schemathesis against the real worker (wrangler dev, local D1/KV, fresh state).
//
// Starts the worker through the e2e harness, makes the credentials, then runs schemathesis
// (tests/fuzz/.venv, pinned in tests/fuzz/requirements.txt) against openapi.json in three
// passes, and stops the worker at the end. Exits non-zero when any pass has a failure.
//
//   1. jwt       — every non-destructive operation, authenticated with user A's access token.
//   2. api-key   — the operations that need a credential, authenticated with user B's API key
//                  (`tl_…`; user B's own JWT is never handed to schemathesis, so pass 1
//                  cannot revoke the key, and the key cannot manage keys: 403).
//   3. throwaway — the destructive operations (below), each case as a brand-new user that
//                  tests/fuzz/hooks.py registers and logs in for that one request.
//
// Knobs (environment, or the Makefile's variables of the same name):
//   FUZZ_MAX_EXAMPLES  cases per operation and phase in the fuzzing phase (default 25)
//   FUZZ_SEED          schemathesis/hypothesis seed (default 1), for a reproducible run
//   FUZZ_MAX_TIME      schemathesis --max-time per pass, in seconds (default: none): the
//                      pass then keeps fuzzing until the time is spent, a depth by the clock
//   FUZZ_PASS_TIMEOUT  hard wall-clock limit per pass, in seconds (default: none): past it
//                      schemathesis is stopped and the pass fails
//   FUZZ_PHASES        schemathesis phases (default examples,coverage,fuzzing,stateful)
//   FUZZ_WORKERS       schemathesis workers (default 1)
//   FUZZ_PASSES        which passes to run (default jwt,api-key,throwaway)
//   FUZZ_REPORT_DIR    where the JUnit and NDJSON reports go (default tests/fuzz/report)
//   FUZZ_CHECKS        schemathesis checks (default: CHECKS below); e.g. add
//                      negative_data_rejection,positive_data_acceptance to look for places
//                      where the schema is looser or stricter than the server (these two also
//                      flag what no schema can say: unknown model ids, made-up cursors)
//   FUZZ_SERVE=1       start the worker, print the credentials and wait (for running
//                      schemathesis by hand against it); Ctrl-C stops it
//
// Rate limits: every RATE_LIMIT_* var is set far above what a run sends, or the run would be
// a wall of 429s from the per-IP and per-user windows; the 429s stay documented.

import { spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';

import { startWorker, call, ROOT } from '../e2e/harness.mjs';

const FUZZ_DIR = path.join(ROOT, 'tests', 'fuzz');
const SCHEMATHESIS = path.join(FUZZ_DIR, '.venv', 'bin', 'schemathesis');
const SCHEMA = path.join(ROOT, 'openapi.json');

const env = process.env;
const MAX_EXAMPLES = Number(env.FUZZ_MAX_EXAMPLES || 25);
const SEED = env.FUZZ_SEED || '1';
const MAX_TIME = env.FUZZ_MAX_TIME || '';
const PASS_TIMEOUT_S = Number(env.FUZZ_PASS_TIMEOUT || 0);
const PHASES = env.FUZZ_PHASES || 'examples,coverage,fuzzing,stateful';
// One worker: with two threads, hypothesis's lambda descriptions call ast.parse concurrently,
// which CPython 3.11 does not survive ("AST constructor recursion depth mismatch"), and a
// single worker keeps a seeded run's order of requests the same.
const WORKERS = env.FUZZ_WORKERS || '1';
const PASSES = (env.FUZZ_PASSES || 'jwt,api-key,throwaway').split(',').map((s) => s.trim()).filter(Boolean);
const REPORT_DIR = env.FUZZ_REPORT_DIR || path.join(FUZZ_DIR, 'report');
// No 5xx; every status, content type, documented header and body (SSE events one by one) as
// openapi.json says; an undocumented method answers 405 with an Allow that is right.
const CHECKS = env.FUZZ_CHECKS || [
  'not_a_server_error',
  'status_code_conformance',
  'content_type_conformance',
  'response_headers_conformance',
  'response_schema_conformance',
  'unsupported_method',
  'allow_header_conformance',
].join(',');

const GENEROUS = '1000000/60';
const WORKER_VARS = {
  RATE_LIMIT_REGISTER: GENEROUS,
  RATE_LIMIT_LOGIN: GENEROUS,
  RATE_LIMIT_LOGIN_ACCOUNT: GENEROUS,
  RATE_LIMIT_REFRESH: GENEROUS,
  RATE_LIMIT_FORGOT_PASSWORD: GENEROUS,
  RATE_LIMIT_MFA: GENEROUS,
  RATE_LIMIT_CHAT: GENEROUS,
  RATE_LIMIT_V1: GENEROUS,
  // A long pass outlives the default 15-minute access token.
  ACCESS_TOKEN_EXPIRE_MINUTES: '1440',
  // 16 KiB instead of 1 MiB, so that the boundary values the coverage phase sends (a 32000
  // character system prompt, 8 KB of settings) reach the 413 path of every body.
  MAX_BODY_BYTES: '16384',
};

// Destructive: each would end the credential of the pass that ran it (logout, logout-all,
// ending a session, a new password ends the other sessions, deleting the account), so they
// are left out of the jwt and api-key passes and run in the throwaway pass only.
const DESTRUCTIVE = [
  'deleteAccount', // DELETE /api/users/account
  'logoutAll', // POST /api/auth/logout-all
  'logout', // POST /api/auth/logout
  'changePassword', // POST /api/users/change-password
  'resetPassword', // POST /api/auth/reset-password
  'deleteSession', // DELETE /api/auth/sessions/{id}
];
// Not fuzzed at all: it answers 500 on purpose (development only), to prove panics are caught.
const NEVER = ['getDebugPanic'];

const PASSWORD = 'fuzz passphrase that is long 4471';

async function register(url, tag) {
  const email = `fuzz-${tag}-${process.pid}-${Date.now()}@fuzz.example.com`;
  const reg = await call(url, 'POST', '/api/auth/register', { json: { email, password: PASSWORD, full_name: `Fuzz ${tag}` } });
  if (reg.status !== 201) throw new Error(`register ${tag}: ${reg.status} ${reg.text}`);
  const login = await call(url, 'POST', '/api/auth/login-json', { json: { email, password: PASSWORD } });
  if (login.status !== 200) throw new Error(`login ${tag}: ${login.status} ${login.text}`);
  return { email, accessToken: login.body.access_token };
}

async function createApiKey(url, accessToken) {
  const res = await call(url, 'POST', '/api/keys', { token: accessToken, json: { name: 'fuzz api-key pass' } });
  if (res.status !== 201) throw new Error(`create key: ${res.status} ${res.text}`);
  return res.body.key;
}

/** Operation ids of openapi.json, and which of them need a credential. */
async function operations() {
  const doc = JSON.parse(await readFile(SCHEMA, 'utf8'));
  const all = [];
  const secured = [];
  for (const item of Object.values(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!['get', 'put', 'post', 'patch', 'delete'].includes(method)) continue;
      all.push(op.operationId);
      const security = op.security ?? doc.security ?? [];
      if (security.length > 0) secured.push(op.operationId);
    }
  }
  return { all, secured };
}

function runSchemathesis(pass, url, { include = [], exclude = [], authEnv, maxExamples }) {
  const args = [
    'run', SCHEMA,
    '--url', url,
    '--checks', CHECKS,
    '--phases', PHASES,
    '--max-examples', String(maxExamples),
    '--seed', SEED,
    '--workers', WORKERS,
    '--request-timeout', '30',
    '--generation-database', 'none',
    '--suppress-health-check', 'all',
    '--no-color',
    '--report', 'junit,ndjson',
    '--report-junit-path', path.join(REPORT_DIR, `${pass}.junit.xml`),
    '--report-ndjson-path', path.join(REPORT_DIR, `${pass}.ndjson`),
  ];
  if (MAX_TIME) args.push('--max-time', MAX_TIME);
  for (const id of include) args.push('--include-operation-id', id);
  for (const id of exclude) args.push('--exclude-operation-id', id);
  console.log(`\n== fuzz pass ${pass}: ${include.length ? `${include.length} operations` : 'all operations'}${exclude.length ? ` less ${exclude.length}` : ''}, ${maxExamples} examples, seed ${SEED}`);
  return new Promise((resolve) => {
    const child = spawn(SCHEMATHESIS, args, {
      cwd: FUZZ_DIR,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {
        ...env,
        SCHEMATHESIS_HOOKS: path.join(FUZZ_DIR, 'hooks.py'),
        FUZZ_BASE_URL: url,
        ...authEnv,
      },
    });
    // Passed through as it comes, and kept to read the case count from the summary.
    let out = '';
    child.stdout.on('data', (d) => { out += d; process.stdout.write(d); });
    const timer = PASS_TIMEOUT_S > 0 && setTimeout(() => {
      console.error(`\nfuzz pass ${pass}: over FUZZ_PASS_TIMEOUT=${PASS_TIMEOUT_S} s; stopping it`);
      child.kill('SIGTERM');
    }, PASS_TIMEOUT_S * 1000);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const cases = Number(/Test cases:\s*\n\s*(\d+) generated/.exec(out)?.[1] ?? 0);
      resolve({ code: signal ? 1 : code, cases });
    });
  });
}

async function main() {
  const started = Date.now();
  await mkdir(REPORT_DIR, { recursive: true });
  const { all, secured } = await operations();
  const worker = await startWorker({ vars: WORKER_VARS });
  const stop = async () => { await worker.stop(); };
  process.on('SIGINT', () => { stop().finally(() => process.exit(130)); });
  process.on('SIGTERM', () => { stop().finally(() => process.exit(143)); });
  const failed = [];
  const counts = [];
  let total = 0;
  try {
    const a = await register(worker.url, 'a');
    const b = await register(worker.url, 'b');
    const apiKey = await createApiKey(worker.url, b.accessToken);
    if (env.FUZZ_SERVE === '1') {
      console.log(`worker: ${worker.url}\nFUZZ_BEARER (jwt, user A)=${a.accessToken}\nFUZZ_BEARER (api key, user B)=${apiKey}`);
      console.log('serving; Ctrl-C stops the worker');
      await new Promise(() => {});
    }
    const passes = {
      jwt: () => runSchemathesis('jwt', worker.url, {
        exclude: [...DESTRUCTIVE, ...NEVER],
        authEnv: { FUZZ_AUTH: 'bearer', FUZZ_BEARER: a.accessToken },
        maxExamples: MAX_EXAMPLES,
      }),
      'api-key': () => runSchemathesis('api-key', worker.url, {
        include: secured.filter((id) => !DESTRUCTIVE.includes(id) && !NEVER.includes(id)),
        authEnv: { FUZZ_AUTH: 'bearer', FUZZ_BEARER: apiKey },
        maxExamples: MAX_EXAMPLES,
      }),
      throwaway: () => runSchemathesis('throwaway', worker.url, {
        include: DESTRUCTIVE.filter((id) => all.includes(id)),
        authEnv: { FUZZ_AUTH: 'throwaway' },
        maxExamples: Math.max(1, Math.ceil(MAX_EXAMPLES / 2)),
      }),
    };
    for (const name of PASSES) {
      if (!passes[name]) throw new Error(`unknown pass ${name}; passes are ${Object.keys(passes).join(', ')}`);
      const { code, cases } = await passes[name]();
      counts.push(`${name} ${cases}`);
      total += cases;
      if (code !== 0) failed.push(`${name} (exit ${code})`);
    }
  } finally {
    await stop();
  }
  console.log(`\nfuzz: ${total} cases (${counts.join(', ')}), seed ${SEED}, ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (failed.length) {
    console.error(`\nfuzz: failures in ${failed.join(', ')}; reports in ${path.relative(ROOT, REPORT_DIR)}/`);
    process.exit(1);
  }
  console.log(`fuzz: ${PASSES.join(', ')} passed`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
