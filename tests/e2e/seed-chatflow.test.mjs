// A Chatflow client, unchanged: its `.env` (JWT_SECRET_KEY, JWT_ALGORITHM,
// ACCESS_TOKEN_EXPIRE_MINUTES, OPENAI_API_KEY, GEMINI_API_KEY, DEBUG, ENVIRONMENT) and its routes
// (/auth/register, /auth/login, /auth/login-json, /auth/me, /conversations, /conversations/chat),
// with the bodies its README shows. The provider keys point at the stand-in; the base-URL
// settings doing that are test plumbing, not Chatflow's.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { call, envelope } from './harness.mjs';
import { GOOD_PASSWORD, uniqueEmail } from './accounts.mjs';
import { KEYS, startWithStandIn } from './provider-helpers.mjs';
import { claims, deltaText, formLogin, postSse, signedWith } from './seed-clients.mjs';

const JWT_SECRET_KEY = 'chatflow-super-secret-jwt-key-0123456789abcdef';

describe('a Chatflow client', () => {
  let env;
  const me = { email: uniqueEmail('chatflow'), password: GOOD_PASSWORD, full_name: 'John Doe' };

  before(async () => {
    env = await startWithStandIn({
      vars: {
        // Chatflow knew OpenAI and Gemini only.
        ANTHROPIC_API_KEY: undefined,
        OLLAMA_BASE_URL: undefined,
        DATABASE_URL: 'postgresql://user:password@localhost:5432/chatflow',
        REDIS_URL: 'redis://localhost:6379/0',
        JWT_SECRET: undefined,
        JWT_SECRET_KEY,
        JWT_ALGORITHM: 'HS256',
        ACCESS_TOKEN_EXPIRE_MINUTES: '30',
        OPENAI_API_KEY: KEYS.openai,
        GEMINI_API_KEY: KEYS.gemini,
        DEBUG: 'True',
        ENVIRONMENT: 'development',
        LOG_LEVEL: undefined,
      },
    });
  });
  after(async () => { await env?.stop(); });

  let token;
  let conversationId;

  test('registers with email, password and full_name', async () => {
    const reg = await call(env.w.url, 'POST', '/auth/register', { json: me });
    assert.equal(reg.status, 201, reg.text);
    assert.equal(reg.body.full_name, 'John Doe');
    const again = await call(env.w.url, 'POST', '/auth/register', { json: me });
    envelope(assert, again, 409, 'email_taken');
  });

  test('logs in with the form and with /auth/login-json; the token is 30 minutes, signed with JWT_SECRET_KEY', async () => {
    const form = await formLogin(env.w.url, '/auth/login', me.email, me.password);
    assert.equal(form.status, 200, form.text);
    const json = await call(env.w.url, 'POST', '/auth/login-json', { json: { email: me.email, password: me.password } });
    assert.equal(json.status, 200, json.text);
    token = json.body.access_token;
    assert.equal(json.body.expires_in, 30 * 60);
    assert.ok(signedWith(token, JWT_SECRET_KEY));
    const { exp, iat } = claims(token);
    assert.equal(exp - iat, 30 * 60);

    const wrong = await formLogin(env.w.url, '/auth/login', me.email, 'not the password at all');
    envelope(assert, wrong, 401, 'invalid_credentials');
  });

  test('GET /auth/me is the user', async () => {
    const res = await call(env.w.url, 'GET', '/auth/me', { token });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.email, me.email);
  });

  test('starts a conversation by sending a message, streamed, as its README shows', async () => {
    const res = await postSse(env.w.url, '/conversations/chat/stream', {
      token,
      json: { message: 'Hello, how are you?', stream: true },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.events[0].name, 'user_message');
    conversationId = res.events[0].data.conversation.id;
    assert.equal(deltaText(res.events), 'Echo: Hello, how are you?');
    assert.equal(res.events.at(-1).name, 'done');
    // DEBUG=True turned on debug logs: the turn's context line is one.
    await env.w.waitForOutput(/"msg":"chat context"/);
  });

  test('continues it without streaming, on a Gemini model', async () => {
    const res = await call(env.w.url, 'POST', '/conversations/chat', {
      token,
      json: { message: 'and now?', conversation_id: conversationId, model: 'gemini/gemini-2.0-flash' },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.assistant_message.content, 'Echo: and now?');
    assert.equal(res.body.assistant_message.model, 'gemini/gemini-2.0-flash');
    assert.ok(env.s.requests.some((r) => r.provider === 'gemini' && r.endpoint === 'chat'));
  });

  test('lists, creates and reads conversations', async () => {
    const created = await call(env.w.url, 'POST', '/conversations', { token, json: { title: 'Second' } });
    assert.equal(created.status, 201, created.text);
    const list = await call(env.w.url, 'GET', '/conversations', { token });
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(new Set(list.body.data.map((c) => c.id)), new Set([conversationId, created.body.id]));

    const one = await call(env.w.url, 'GET', `/conversations/${conversationId}`, { token });
    assert.equal(one.status, 200, one.text);
    assert.deepEqual(one.body.messages.map((m) => m.content), [
      'Hello, how are you?', 'Echo: Hello, how are you?', 'and now?', 'Echo: and now?',
    ]);
  });

  test('deletes a conversation; another user cannot see or delete it', async () => {
    const other = { email: uniqueEmail('chatflow-other'), password: GOOD_PASSWORD };
    await call(env.w.url, 'POST', '/auth/register', { json: other });
    const otherToken = (await call(env.w.url, 'POST', '/auth/login-json', { json: other })).body.access_token;
    envelope(assert, await call(env.w.url, 'GET', `/conversations/${conversationId}`, { token: otherToken }), 404);
    envelope(assert, await call(env.w.url, 'DELETE', `/conversations/${conversationId}`, { token: otherToken }), 404);

    const del = await call(env.w.url, 'DELETE', `/conversations/${conversationId}`, { token });
    assert.equal(del.status, 204, del.text);
    envelope(assert, await call(env.w.url, 'GET', `/conversations/${conversationId}`, { token }), 404);
  });

  test('settings Chatflow had that mean nothing here are named in a warning', async () => {
    await env.w.waitForOutput(/REDIS_URL is set but not used/);
  });
});
