// The foundation, end to end: the real worker in workerd with local D1 and KV.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { call, envelope, startWorker } from './harness.mjs';

describe('development worker', () => {
  let w;
  before(async () => { w = await startWorker(); });
  after(async () => { await w?.stop(); });

  test('GET / names the service and links to the docs', async () => {
    const res = await call(w.url, 'GET', '/');
    assert.equal(res.status, 200);
    assert.equal(res.body.name, 'Threadline');
    assert.match(res.body.version, /^\d+\.\d+\.\d+/);
    assert.equal(res.body.links.docs, '/docs');
    assert.match(res.headers.get('x-request-id'), /^[0-9a-f]{32}$/);
  });

  test('GET /health reports D1 and KV up with their latency', async () => {
    const res = await call(w.url, 'GET', '/health');
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.status, 'ok');
    for (const c of ['d1', 'kv']) {
      assert.equal(res.body.components[c].status, 'ok');
      assert.equal(typeof res.body.components[c].latency_ms, 'number');
    }
  });

  test('a well-formed client request id is kept, a hostile one replaced', async () => {
    const kept = await call(w.url, 'GET', '/', { headers: { 'x-request-id': 'client-trace.42' } });
    assert.equal(kept.headers.get('x-request-id'), 'client-trace.42');
    const replaced = await call(w.url, 'GET', '/', { headers: { 'x-request-id': 'x'.repeat(300) } });
    assert.match(replaced.headers.get('x-request-id'), /^[0-9a-f]{32}$/);
  });

  test('an unknown route answers the 404 envelope', async () => {
    const res = await call(w.url, 'GET', '/no/such/route');
    const e = envelope(assert, res, 404, 'route_not_found');
    assert.equal(e.type, 'not_found_error');
  });

  test('a wrong method answers 405 with Allow', async () => {
    const res = await call(w.url, 'DELETE', '/health');
    envelope(assert, res, 405, 'method_not_allowed');
    assert.equal(res.headers.get('allow'), 'GET');
  });

  test('OPTIONS without an Origin lists the allowed methods; on an unknown path it is 404', async () => {
    const res = await fetch(`${w.url}/health`, { method: 'OPTIONS' });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('allow'), 'GET, OPTIONS');
    envelope(assert, await call(w.url, 'OPTIONS', '/no/such/route'), 404, 'route_not_found');
  });

  test('GET /openapi.json is an OpenAPI 3.1 document listing /health', async () => {
    const res = await call(w.url, 'GET', '/openapi.json');
    assert.equal(res.status, 200);
    assert.match(res.body.openapi, /^3\.1/);
    assert.ok(res.body.paths['/health'].get);
  });

  test('GET /docs serves the reference page and its assets from the worker itself', async () => {
    const page = await call(w.url, 'GET', '/docs');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type'), /text\/html/);
    const srcs = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    assert.ok(srcs.length >= 3, page.text);
    for (const src of srcs) {
      assert.ok(src.startsWith('/'), `asset ${src} must be local, not a CDN`);
      const asset = await call(w.url, 'GET', src);
      assert.equal(asset.status, 200, `${src}: ${asset.status}`);
      assert.ok(asset.text.length > 10, src);
    }
    const bundle = await call(w.url, 'GET', '/docs/assets/swagger-ui-bundle.js');
    assert.ok(bundle.text.length > 100_000, 'the Swagger UI bundle is served whole');
  });

  test('every request is logged as one JSON line; /debug/logs returns recent lines', async () => {
    const id = `log-probe-${Date.now()}`;
    await call(w.url, 'GET', '/health', { headers: { 'x-request-id': id } });
    const res = await call(w.url, 'GET', '/debug/logs?lines=50');
    assert.equal(res.status, 200, res.text);
    const line = res.body.lines.find((l) => l.request_id === id);
    assert.ok(line, `no log line for ${id}`);
    assert.equal(line.level, 'info');
    assert.equal(line.method, 'GET');
    assert.equal(line.route, '/health');
    assert.equal(line.status, 200);
    assert.equal(typeof line.duration_ms, 'number');
    assert.match(line.time, /^\d{4}-\d\d-\d\dT/);
    // The same line reached the console (wrangler's output), as JSON.
    await w.waitForOutput(new RegExp(`"request_id":"${id}"`));
  });

  test('/debug/logs refuses a nonsensical line count with 422', async () => {
    const res = await call(w.url, 'GET', '/debug/logs?lines=0');
    envelope(assert, res, 422, 'validation_failed');
  });

  test('a panic is logged, answered with a 500 envelope, and the next request works', async () => {
    const res = await call(w.url, 'GET', '/debug/panic', { headers: { 'x-request-id': 'panic-probe' } });
    const e = envelope(assert, res, 500, 'internal_error');
    assert.equal(e.request_id, 'panic-probe');
    assert.doesNotMatch(res.text, /deliberate/, 'panic message stays out of the response');
    const next = await call(w.url, 'GET', '/health');
    assert.equal(next.status, 200);
    await w.waitForOutput(/deliberate panic from \/debug\/panic/);
    await w.waitForOutput(/"msg":"panic","request_id":"panic-probe"/);
  });

  test('CORS: a localhost origin is allowed in development, another refused', async () => {
    const ok = await fetch(`${w.url}/health`, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'GET' },
    });
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get('access-control-allow-origin'), 'http://localhost:3000');
    const get = await call(w.url, 'GET', '/health', { headers: { origin: 'http://localhost:3000' } });
    assert.equal(get.headers.get('access-control-allow-origin'), 'http://localhost:3000');
    const evil = await fetch(`${w.url}/health`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' },
    });
    assert.equal(evil.status, 403);
    assert.equal(evil.headers.get('access-control-allow-origin'), null);
  });
});

describe('production worker', () => {
  test('without JWT_SECRET every request answers 503 naming the setting', async () => {
    const w = await startWorker({ vars: { ENVIRONMENT: 'production', JWT_SECRET: null } });
    try {
      for (const route of ['/', '/health', '/no/such/route']) {
        const res = await call(w.url, 'GET', route);
        const e = envelope(assert, res, 503, 'server_misconfigured');
        assert.equal(e.param, 'JWT_SECRET');
        assert.match(e.message, /JWT_SECRET/);
      }
    } finally {
      await w.stop();
    }
  });

  test('a short JWT_SECRET is refused the same way, and a good one serves without debug routes or CORS', async () => {
    const short = await startWorker({ vars: { ENVIRONMENT: 'production', JWT_SECRET: 'short-secret' } });
    try {
      const res = await call(short.url, 'GET', '/health');
      const e = envelope(assert, res, 503, 'server_misconfigured');
      assert.match(e.message, /shorter than 32/);
    } finally {
      await short.stop();
    }
    const w = await startWorker({ vars: { ENVIRONMENT: 'production' } });
    try {
      assert.equal((await call(w.url, 'GET', '/health')).status, 200);
      envelope(assert, await call(w.url, 'GET', '/debug/logs'), 404, 'route_not_found');
      envelope(assert, await call(w.url, 'GET', '/debug/panic'), 404, 'route_not_found');
      const pre = await fetch(`${w.url}/health`, {
        method: 'OPTIONS',
        headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'GET' },
      });
      assert.equal(pre.status, 403, 'no origin is allowed by default in production');
    } finally {
      await w.stop();
    }
  });
});
