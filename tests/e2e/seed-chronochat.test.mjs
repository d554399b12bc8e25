// A ChronoChat client, unchanged: its `.env` (SECRET_KEY, ACCESS_TOKEN_EXPIRE_MINUTES, DEBUG,
// CORS_ORIGINS as a JSON list, DATABASE_URL, REDIS_URL) and its routes (/api/auth/*, /api/chat/*,
// /api/users/*) in a client's order: JSON login, send, threads, rename, stats, profile, change
// password, logout-all, account deletion. Production, with DEBUG=True (which turns on debug logs
// and nothing else).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { call, envelope } from './harness.mjs';
import { GOOD_PASSWORD, uniqueEmail } from './accounts.mjs';
import { startWithStandIn } from './provider-helpers.mjs';
import { signedWith } from './seed-clients.mjs';

const SECRET_KEY = 'chronochat-secret-key-with-enough-bytes-0123456789';
const FRONTEND = 'http://localhost:3000';

describe('a ChronoChat client', () => {
  let env;
  const me = { email: uniqueEmail('chronochat'), password: GOOD_PASSWORD, full_name: 'Chrono' };

  before(async () => {
    env = await startWithStandIn({
      vars: {
        ENVIRONMENT: 'production',
        JWT_SECRET: undefined,
        LOG_LEVEL: undefined,
        DATABASE_URL: 'postgresql://username:password@localhost/chronochat',
        REDIS_URL: 'redis://localhost:6379',
        SECRET_KEY,
        ACCESS_TOKEN_EXPIRE_MINUTES: '30',
        DEBUG: 'True',
        CORS_ORIGINS: JSON.stringify([FRONTEND]),
        ANTHROPIC_API_KEY: undefined,
        GEMINI_API_KEY: undefined,
        OLLAMA_BASE_URL: undefined,
      },
    });
  });
  after(async () => { await env?.stop(); });
  const url = () => env.w.url;

  let tokens;
  let threadId;

  test('its frontend origin from CORS_ORIGINS may call the API', async () => {
    const res = await fetch(`${url()}/api/auth/login`, {
      method: 'OPTIONS',
      headers: { origin: FRONTEND, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('access-control-allow-origin'), FRONTEND);
  });

  test('registers, logs in with JSON and verifies the token', async () => {
    assert.equal((await call(url(), 'POST', '/api/auth/register', { json: me })).status, 201);
    const login = await call(url(), 'POST', '/api/auth/login', { json: { email: me.email, password: me.password } });
    assert.equal(login.status, 200, login.text);
    tokens = login.body;
    assert.equal(tokens.expires_in, 30 * 60);
    assert.ok(signedWith(tokens.access_token, SECRET_KEY));
    const verify = await call(url(), 'GET', '/api/auth/verify', { token: tokens.access_token });
    assert.equal(verify.status, 200, verify.text);
  });

  test('sends a message, which starts a thread', async () => {
    const res = await call(url(), 'POST', '/api/chat/send', { token: tokens.access_token, json: { message: 'Remind me what we said' } });
    assert.equal(res.status, 200, res.text);
    threadId = res.body.conversation.id;
    assert.equal(res.body.assistant_message.content, 'Echo: Remind me what we said');
    // DEBUG=True: debug logs are on, but production stays production.
    await env.w.waitForOutput(/"msg":"chat context"/);
    envelope(assert, await call(url(), 'GET', '/debug/logs'), 404);
  });

  test('continues the thread, reads its history and renames it', async () => {
    const next = await call(url(), 'POST', '/api/chat/send', { token: tokens.access_token, json: { message: 'And then?', thread_id: threadId } });
    assert.equal(next.status, 200, next.text);
    assert.equal(next.body.conversation.id, threadId);

    const threads = await call(url(), 'GET', '/api/chat/threads', { token: tokens.access_token });
    assert.deepEqual(threads.body.data.map((t) => t.id), [threadId]);
    const history = await call(url(), 'GET', `/api/chat/threads/${threadId}`, { token: tokens.access_token });
    assert.deepEqual(history.body.messages.map((m) => m.role), ['user', 'assistant', 'user', 'assistant']);

    const renamed = await call(url(), 'PUT', `/api/chat/threads/${threadId}/title`, { token: tokens.access_token, json: { title: 'Memories' } });
    assert.equal(renamed.status, 200, renamed.text);
    assert.equal(renamed.body.title, 'Memories');
  });

  test('reads its statistics', async () => {
    const stats = await call(url(), 'GET', '/api/chat/stats', { token: tokens.access_token });
    assert.equal(stats.status, 200, stats.text);
    assert.equal(stats.body.conversations.total, 1, stats.text);
    assert.equal(stats.body.messages.total, 4, stats.text);
  });

  test('updates its profile by PUTting back what it read', async () => {
    const profile = await call(url(), 'GET', '/api/users/profile', { token: tokens.access_token });
    assert.equal(profile.status, 200, profile.text);
    const put = await call(url(), 'PUT', '/api/users/profile', {
      token: tokens.access_token,
      json: { ...profile.body, full_name: 'Chrono Chat', email: 'ignored@example.com' },
    });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.body.full_name, 'Chrono Chat');
    assert.equal(put.body.email, me.email, 'the email is read-only here');
  });

  test('changes the password, logs out everywhere, deletes the thread and the account', async () => {
    const newPassword = 'chronochat new passphrase 2026';
    const changed = await call(url(), 'POST', '/api/users/change-password', {
      token: tokens.access_token,
      json: { current_password: me.password, new_password: newPassword },
    });
    assert.equal(changed.status, 200, changed.text);
    const second = await call(url(), 'POST', '/api/auth/login', { json: { email: me.email, password: newPassword } });
    assert.equal(second.status, 200, second.text);

    const del = await call(url(), 'DELETE', `/api/chat/threads/${threadId}`, { token: second.body.access_token });
    assert.equal(del.status, 204, del.text);

    const all = await call(url(), 'POST', '/api/auth/logout-all', { token: second.body.access_token });
    assert.equal(all.status, 204, all.text);
    envelope(assert, await call(url(), 'GET', '/api/auth/me', { token: second.body.access_token }), 401);

    const third = await call(url(), 'POST', '/api/auth/login', { json: { email: me.email, password: newPassword } });
    const gone = await call(url(), 'DELETE', '/api/users/account', { token: third.body.access_token, json: { password: newPassword } });
    assert.ok([200, 204].includes(gone.status), gone.text);
    envelope(assert, await call(url(), 'POST', '/api/auth/login', { json: { email: me.email, password: newPassword } }), 401);
  });

  test('REDIS_URL and DATABASE_URL are named as unused', async () => {
    await env.w.waitForOutput(/REDIS_URL is set but not used/);
    await env.w.waitForOutput(/DATABASE_URL is set but not used/);
  });
});
