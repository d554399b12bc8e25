// The cost of one argon2id password verification in workerd (served through Miniflare, as the
// rest of the benchmark: bench/lib/runtime.mjs), for each OWASP parameter set:
// a login that fails after verifying against the dummy hash (unknown email) against a request
// refused before any work (validation error), both as wall time (medians) and as the workerd
// processes' CPU time (from /proc). Local workerd enforces no CPU limit and argon2 is
// CPU-bound, so this is close to the CPU time a deployment pays for a login.
//
// Part of `make bench` (bench/run.mjs imports it). Alone: make build, then
// PATH=node_modules/.bin:$PATH node bench/hash-cost.mjs
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRuntimeWorker } from './lib/runtime.mjs';
import { cpuMs } from './lib/procs.mjs';

/** OWASP's argon2id recommendations (m KiB, t, p), strongest memory first; 19456,2,1 is the default. */
export const OWASP_SETS = ['47104,1,1', '19456,2,1', '12288,3,1', '9216,4,1', '7168,5,1'];

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function hashCost(params, { n = 15, onStart } = {}) {
  const w = await startRuntimeWorker({
    vars: {
      PASSWORD_HASH_PARAMS: params, RATE_LIMIT_LOGIN: '100000/60', RATE_LIMIT_LOGIN_ACCOUNT: '100000/60', MAX_LOGIN_ATTEMPTS: '1000',
    },
  });
  onStart?.(w.timings);
  try {
    const post = async (json) => {
      const t = performance.now();
      const res = await fetch(`${w.url}/api/auth/login-json`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) });
      await res.arrayBuffer();
      return { ms: performance.now() - t, status: res.status };
    };
    const login = (i) => post({ email: `nobody${i}@example.com`, password: 'some wrong password' });
    const invalid = () => post({ email: 'not-an-email', password: '' });
    for (let i = 0; i < 3; i++) { await login(i); await invalid(); }
    const pids = await w.pids();
    const walls = { login: [], invalid: [] };
    let c0 = await cpuMs(pids);
    for (let i = 0; i < n; i++) {
      const r = await login(i);
      if (r.status !== 401) throw new Error(`login with an unknown email answered ${r.status}, expected 401`);
      walls.login.push(r.ms);
    }
    let c1 = await cpuMs(pids);
    const cpuLogin = (c1.workerd - c0.workerd) / n;
    c0 = await cpuMs(pids);
    for (let i = 0; i < n; i++) walls.invalid.push((await invalid()).ms);
    c1 = await cpuMs(pids);
    const cpuInvalid = (c1.workerd - c0.workerd) / n;
    return {
      params,
      loginMs: median(walls.login),
      invalidMs: median(walls.invalid),
      wallMs: median(walls.login) - median(walls.invalid),
      cpuMs: cpuLogin - cpuInvalid,
    };
  } finally {
    await w.stop();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const params of OWASP_SETS) {
    const r = await hashCost(params);
    console.log(`${params}\tlogin(unknown email) median ${r.loginMs.toFixed(1)} ms\tvalidation-only median ${r.invalidMs.toFixed(1)} ms\t=> hash ≈ ${r.wallMs.toFixed(1)} ms wall, ${r.cpuMs.toFixed(1)} ms workerd CPU`);
  }
}
