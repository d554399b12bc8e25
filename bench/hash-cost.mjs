// The cost of one argon2id password verification in workerd, for each OWASP parameter set:
// the wall time of a login that fails after verifying against the dummy hash, minus that of a
// request refused before any work. Local workerd enforces no CPU limit, and argon2 is
// CPU-bound, so this is close to the CPU time a deployment pays. Run: make build, then
// node bench/hash-cost.mjs (with node_modules/.bin on PATH).
import { startWorker, call } from '../tests/e2e/harness.mjs';
const sets = ['19456,2,1', '47104,1,1', '12288,3,1', '9216,4,1', '7168,5,1'];
const N = 15;
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const params of sets) {
  const w = await startWorker({ vars: { PASSWORD_HASH_PARAMS: params, RATE_LIMIT_LOGIN: '100000/60', RATE_LIMIT_LOGIN_ACCOUNT: '100000/60', MAX_LOGIN_ATTEMPTS: '1000' } });
  try {
    // warm up
    for (let i = 0; i < 3; i++) await call(w.url, 'POST', '/api/auth/login-json', { json: { email: `nobody${i}@example.com`, password: 'some wrong password' } });
    const login = [], base = [];
    for (let i = 0; i < N; i++) {
      let t = performance.now();
      await call(w.url, 'POST', '/api/auth/login-json', { json: { email: `nobody${i}@example.com`, password: 'some wrong password' } });
      login.push(performance.now() - t);
      t = performance.now();
      await call(w.url, 'POST', '/api/auth/login-json', { json: { email: 'not-an-email', password: '' } });
      base.push(performance.now() - t);
    }
    console.log(`${params}\tlogin(unknown email) median ${median(login).toFixed(1)} ms\tvalidation-only median ${median(base).toFixed(1)} ms\t=> hash ≈ ${(median(login) - median(base)).toFixed(1)} ms`);
  } finally { await w.stop(); }
}
