// The operator role and Ollama model management end to end: the real worker (wrangler dev,
// local D1/KV) against the stand-in's Ollama native API (/api/tags, /api/ps, /api/pull with
// NDJSON progress, /api/generate load/unload).
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { call, envelope, startWorker } from './harness.mjs';
import { registerAndLogin, uniqueEmail } from './accounts.mjs';
import { startWithStandIn } from './provider-helpers.mjs';
import { startStandIn } from '../support/stand-in.mjs';

const BOSS = uniqueEmail('boss');

describe('operator role and Ollama model management', () => {
  let env;
  let boss; // admin through ADMIN_EMAILS
  let ada; // ordinary user

  before(async () => {
    env = await startWithStandIn({ vars: { ADMIN_EMAILS: ` ${BOSS.toUpperCase()} , nobody@example.com` } });
    boss = await registerAndLogin(env.w, { email: BOSS });
    ada = await registerAndLogin(env.w);
  });
  after(async () => { await env?.stop(); });
  beforeEach(() => env.s.reset());

  const as = (who, method, route, json) => call(env.w.url, method, route, { token: who.access_token, json });
  const native = (op) => env.s.requests.filter((r) => r.endpoint === 'native' && (!op || r.path.endsWith(op)));

  test('every operator route is 403 with the envelope for an ordinary user, 401 without a credential', async () => {
    const routes = [
      ['POST', '/api/models/start', { model: 'llama3.2' }],
      ['POST', '/api/models/stop', { model: 'llama3.2' }],
      ['GET', '/api/models/llama3.2/status'],
      ['POST', '/models/start', { model: 'llama3.2' }],
      ['GET', '/api/admin/usage'],
      ['GET', `/api/admin/users/${ada.user.id}/role`],
      ['PUT', `/api/admin/users/${ada.user.id}/role`, { role: 'admin' }],
    ];
    for (const [method, route, json] of routes) {
      envelope(assert, await as(ada, method, route, json), 403, 'admin_required');
      envelope(assert, await call(env.w.url, method, route, { json }), 401);
    }
    assert.equal(native().length, 0, 'nothing reached the Ollama server');
    // Everything else is unchanged for the ordinary user.
    assert.equal((await as(ada, 'GET', '/api/auth/me')).status, 200);
  });

  test('an admin sees every user\'s usage totals, paged', async () => {
    await as(ada, 'POST', '/api/chat', { message: 'hello there', model: 'openai/gpt-4o' });
    const res = await as(boss, 'GET', '/api/admin/usage?limit=500');
    assert.equal(res.status, 200, res.text);
    const mine = res.body.data.find((u) => u.user_id === ada.user.id);
    assert.equal(mine.email, ada.email);
    assert.equal(mine.role, 'user');
    assert.equal(mine.conversations, 1);
    assert.equal(mine.messages, 2);
    assert.ok(mine.prompt_tokens > 0 && mine.completion_tokens > 0, res.text);
    assert.equal(mine.total_tokens, mine.prompt_tokens + mine.completion_tokens);
    assert.equal(res.body.data.find((u) => u.user_id === boss.user.id).role, 'admin');
    const page = await as(boss, 'GET', '/api/admin/usage?limit=1');
    assert.equal(page.body.data.length, 1);
    assert.equal(page.body.has_more, true);
    const next = await as(boss, 'GET', `/api/admin/usage?limit=1&after=${page.body.next_cursor}`);
    assert.notEqual(next.body.data[0].user_id, page.body.data[0].user_id);
    envelope(assert, await as(boss, 'GET', '/api/admin/usage?after=nope'), 422, 'validation_failed');
  });

  test('granting and revoking the role takes effect on the next request and is audited', async () => {
    const carl = await registerAndLogin(env.w);
    // A first request caches carl's credential in the isolate.
    envelope(assert, await as(carl, 'GET', '/api/admin/usage'), 403, 'admin_required');
    const grant = await as(boss, 'PUT', `/api/admin/users/${carl.user.id}/role`, { role: 'admin' });
    assert.equal(grant.status, 200, grant.text);
    assert.deepEqual(grant.body, { user_id: carl.user.id, email: carl.email, role: 'admin', from_setting: false });
    assert.equal((await as(carl, 'GET', '/api/admin/usage')).status, 200, 'the same token is an admin at once');
    assert.equal((await as(carl, 'GET', `/api/admin/users/${carl.user.id}/role`)).body.role, 'admin');
    const revoke = await as(carl, 'PUT', `/api/admin/users/${carl.user.id}/role`, { role: 'user' });
    assert.equal(revoke.status, 200, revoke.text);
    envelope(assert, await as(carl, 'GET', '/api/admin/usage'), 403, 'admin_required');
    await env.w.waitForOutput(/"msg":"role_changed"[^\n]*"to":"user"/);
    const audit = env.w.output().split('\n').filter((l) => l.includes('"msg":"role_changed"')).map((l) => JSON.parse(l.slice(l.indexOf('{'))));
    assert.deepEqual(
      audit.map((a) => [a.actor_user_id, a.user_id, a.from, a.to]),
      [[boss.user.id, carl.user.id, 'user', 'admin'], [carl.user.id, carl.user.id, 'admin', 'user']],
    );
    assert.ok(audit.every((a) => typeof a.request_id === 'string'));
  });

  test('role changes refuse bad input: the setting\'s admins, unknown users, wrong roles', async () => {
    const r = await as(boss, 'PUT', `/api/admin/users/${boss.user.id}/role`, { role: 'user' });
    envelope(assert, r, 409, 'role_from_setting');
    assert.equal((await as(boss, 'GET', `/api/admin/users/${boss.user.id}/role`)).body.from_setting, true);
    envelope(assert, await as(boss, 'PUT', `/api/admin/users/${'0'.repeat(32)}/role`, { role: 'admin' }), 404, 'not_found');
    envelope(assert, await as(boss, 'GET', '/api/admin/users/junk/role'), 404, 'not_found');
    const bad = envelope(assert, await as(boss, 'PUT', `/api/admin/users/${ada.user.id}/role`, { role: 'root' }), 422);
    assert.equal(bad.param, 'role');
    envelope(assert, await as(boss, 'PUT', `/api/admin/users/${ada.user.id}/role`, { role: 'admin', extra: 1 }), 422);
  });

  test('status, start (already on disk) and stop of a model, as Ollama reports them', async () => {
    let res = await as(boss, 'GET', '/api/models/ollama%2Fllama3.2/status');
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.id, 'ollama/llama3.2:latest');
    assert.deepEqual([res.body.available, res.body.loaded, res.body.size_vram, res.body.expires_at], [true, false, null, null]);
    assert.equal(res.body.details.family, 'llama');

    res = await as(boss, 'POST', '/api/models/start', { model: 'ollama/llama3.2', keep_alive: '10m' });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual([res.body.loaded, res.body.pulled, res.body.pull], [true, false, null]);
    assert.ok(res.body.size_vram > 0);
    const expires = Date.parse(res.body.expires_at);
    assert.ok(expires > Date.now() + 9 * 60_000 && expires < Date.now() + 11 * 60_000, res.body.expires_at);
    const load = native('/api/generate')[0];
    assert.deepEqual(load.body, { model: 'llama3.2:latest', stream: false, keep_alive: '10m' });
    assert.equal(native('/api/pull').length, 0, 'nothing pulled for a model on disk');

    res = await as(boss, 'GET', '/api/models/llama3.2/status');
    assert.equal(res.body.loaded, true);

    res = await as(boss, 'POST', '/api/models/stop', { model: 'llama3.2:latest' });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual([res.body.available, res.body.loaded], [true, false]);
    assert.deepEqual(native('/api/generate').at(-1).body, { model: 'llama3.2:latest', stream: false, keep_alive: 0 });
  });

  test('start pulls an absent model first, reports the progress, and the model list shows it', async () => {
    const before = (await call(env.w.url, 'GET', '/api/models')).body.models.map((m) => m.id);
    assert.ok(before.includes('ollama/llama3.2:latest'), 'tags and /v1/models merged');
    assert.ok(!before.includes('ollama/phi3:mini'));
    env.s.script({ default: { match: { endpoint: 'native' }, splitAt: [5, 40, 41, 100, 250] } });
    const res = await as(boss, 'POST', '/models/start', { model: 'phi3:mini' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.pulled, true);
    assert.equal(res.body.loaded, true);
    const statuses = res.body.pull.events.map((e) => e.status);
    assert.equal(statuses[0], 'pulling manifest');
    assert.deepEqual(statuses.slice(-3), ['verifying sha256 digest', 'writing manifest', 'success']);
    const layers = res.body.pull.events.filter((e) => e.digest);
    assert.equal(layers.length, 4, 'one entry per layer');
    assert.ok(layers.every((l) => l.completed === l.total));
    assert.equal(res.body.pull.total_bytes, 2176177120 + 1084 + 148 + 78);
    assert.equal(res.body.pull.completed_bytes, res.body.pull.total_bytes);
    assert.equal(native('/api/pull')[0].body.model, 'phi3:mini');
    const after = (await call(env.w.url, 'GET', '/models/available')).body.models.map((m) => m.id);
    assert.ok(after.includes('ollama/phi3:mini'), `${after}`);
  });

  test('unknown models, other providers\' models and failed pulls are clear 4xx/5xx errors', async () => {
    envelope(assert, await as(boss, 'POST', '/api/models/start', { model: 'no-such-model' }), 404, 'model_not_found');
    envelope(assert, await as(boss, 'POST', '/api/models/stop', { model: 'no-such-model' }), 404, 'model_not_found');
    envelope(assert, await as(boss, 'GET', '/api/models/ollama%2Fno-such-model/status'), 404, 'model_not_found');
    envelope(assert, await as(boss, 'POST', '/api/models/start', { model: 'openai/gpt-4o' }), 422, 'model_not_manageable');
    envelope(assert, await as(boss, 'GET', '/api/models/anthropic%2Fclaude-3-5-haiku-latest/status'), 422, 'model_not_manageable');
    envelope(assert, await as(boss, 'POST', '/api/models/start', { model: 'llama3.2', keep_alive: 'forever' }), 422, 'validation_failed');
    envelope(assert, await as(boss, 'POST', '/api/models/start', {}), 422);
    envelope(assert, await as(boss, 'POST', '/api/models/start', { model: 'a b' }), 422, 'validation_failed');

    env.s.script({ default: { match: { endpoint: 'native', path: /pull$/ }, pullError: { afterLines: 3, message: 'max retries exceeded: connection reset' } } });
    const e = envelope(assert, await as(boss, 'POST', '/api/models/start', { model: 'tinyllama' }), 502, 'provider_error');
    assert.match(e.message, /connection reset/);
    const tags = await fetch(`${env.s.url}/ollama/api/tags`).then((r) => r.json());
    assert.ok(!tags.models.some((m) => m.name === 'tinyllama:latest'), 'a failed pull leaves nothing');

    env.s.script({ default: { match: { endpoint: 'native' }, status: 500, errorMessage: 'out of memory' } });
    const down = envelope(assert, await as(boss, 'GET', '/api/models/llama3.2/status'), 502, 'provider_error');
    assert.match(down.message, /out of memory/);
  });
});

describe('model management against a server that is not an Ollama', () => {
  let s;
  let w;
  let boss;
  before(async () => {
    s = await startStandIn({ port: 0 });
    const email = uniqueEmail('boss');
    // The stand-in's OpenAI API at /v1: OpenAI-compatible, with no native Ollama endpoints.
    w = await startWorker({ vars: { OLLAMA_BASE_URL: `${s.url}/v1`, ADMIN_EMAILS: email } });
    boss = await registerAndLogin(w, { email });
  });
  after(async () => { await w?.stop(); await s?.close(); });

  test('start, stop and status answer 422 not_ollama', async () => {
    const opts = { token: boss.access_token };
    envelope(assert, await call(w.url, 'POST', '/api/models/start', { ...opts, json: { model: 'llama3.2' } }), 422, 'not_ollama');
    envelope(assert, await call(w.url, 'POST', '/api/models/stop', { ...opts, json: { model: 'llama3.2' } }), 422, 'not_ollama');
    envelope(assert, await call(w.url, 'GET', '/api/models/llama3.2/status', opts), 422, 'not_ollama');
    assert.equal(s.requests.filter((r) => r.path === '/api/generate' || r.path === '/api/pull').length, 0);
  });
});
