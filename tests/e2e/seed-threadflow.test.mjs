// A ThreadFlow client, unchanged: its `.env` (JWT_SECRET, GEMINI_API_KEY, OPENAI_API_KEY,
// ANTHROPIC_API_KEY, MONGODB_URI) and its routes (/, /health, /models, /chat, /debug/logs), on
// each of its three providers. ThreadFlow's README documents no login route, so the token comes
// from Threadline's own login, as a ThreadFlow deployment's would come from its identity service.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { call, envelope, TEST_JWT_SECRET } from './harness.mjs';
import { registerAndLogin } from './accounts.mjs';
import { startWithStandIn } from './provider-helpers.mjs';
import { signedWith } from './seed-clients.mjs';

describe('a ThreadFlow client', () => {
  let env;
  before(async () => {
    env = await startWithStandIn({
      vars: {
        ENVIRONMENT: 'production',
        MONGODB_URI: 'mongodb://mongo:27017/threadflow',
        OLLAMA_BASE_URL: undefined,
      },
    });
  });
  after(async () => { await env?.stop(); });
  const url = () => env.w.url;

  test('GET / and GET /health say the service is up', async () => {
    const root = await call(url(), 'GET', '/');
    assert.equal(root.status, 200);
    assert.equal(root.body.name, 'Threadline');
    const health = await call(url(), 'GET', '/health');
    assert.equal(health.status, 200, health.text);
  });

  test('GET /models lists the three providers', async () => {
    const res = await call(url(), 'GET', '/models');
    assert.equal(res.status, 200, res.text);
    const providers = new Set(res.body.models.map((m) => m.provider));
    for (const p of ['openai', 'anthropic', 'gemini']) assert.ok(providers.has(p), `${p} in ${[...providers]}`);
  });

  test('POST /chat answers on Gemini, Claude and GPT-4o', async () => {
    const user = await registerAndLogin(env.w);
    assert.ok(signedWith(user.access_token, TEST_JWT_SECRET), 'JWT_SECRET signs the tokens');
    for (const [model, provider] of [
      ['gemini/gemini-2.0-flash', 'gemini'],
      ['anthropic/claude-3-5-haiku-latest', 'anthropic'],
      ['openai/gpt-4o', 'openai'],
    ]) {
      const res = await call(url(), 'POST', '/chat', { token: user.access_token, json: { message: `hi ${provider}`, model } });
      assert.equal(res.status, 200, `${model}: ${res.text}`);
      assert.equal(res.body.assistant_message.content, `Echo: hi ${provider}`);
      assert.equal(res.body.assistant_message.model, model);
      assert.equal(env.s.requests.filter((r) => r.endpoint === 'chat').at(-1).provider, provider);
    }
    envelope(assert, await call(url(), 'POST', '/chat', { json: { message: 'no token' } }), 401);
  });

  test('GET /debug/logs is development-only, as ThreadFlow documents it', async () => {
    envelope(assert, await call(url(), 'GET', '/debug/logs?lines=100'), 404);
  });

  test('MONGODB_URI is named as unused', async () => {
    await env.w.waitForOutput(/MONGODB_URI is set but not used/);
  });
});
