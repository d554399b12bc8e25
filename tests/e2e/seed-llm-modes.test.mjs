// An LLM_MODES client, unchanged: its `.env` (SECRET_KEY, ACCESS_TOKEN_EXPIRE_MINUTES,
// MAX_LOGIN_ATTEMPTS, DEBUG, LOG_LEVEL, DATABASE_URL) and its routes (/api/auth/*, /api/chats/*),
// in the order a client calls them: JSON login, email verification, password reset, chats with
// modes, pin/archive by PUTting the whole chat back, messages, lockout.
// The development outbox stands in for the user's mailbox; the client itself never calls it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { call, envelope } from './harness.mjs';
import { GOOD_PASSWORD, latestEmail, tokenFromEmail, uniqueEmail } from './accounts.mjs';
import { sleep, startWithStandIn } from './provider-helpers.mjs';
import { claims, signedWith } from './seed-clients.mjs';

const SECRET_KEY = 'llm-modes-token-urlsafe-32-bytes-abcdefghijklmn';

async function mail(w, email, subject) {
  for (let i = 0; i < 60; i++) {
    const m = await latestEmail(w, email);
    if (m && subject.test(m.subject)) return m;
    await sleep(50);
  }
  throw new Error(`no ${subject} email to ${email}`);
}

describe('an LLM_MODES client', () => {
  let env;
  const me = { email: uniqueEmail('llm-modes'), password: GOOD_PASSWORD };

  before(async () => {
    env = await startWithStandIn({
      vars: {
        JWT_SECRET: undefined,
        SECRET_KEY,
        DATABASE_URL: 'sqlite:///./app.db',
        ACCESS_TOKEN_EXPIRE_MINUTES: '15',
        MAX_LOGIN_ATTEMPTS: '3',
        DEBUG: 'false',
        LOG_LEVEL: 'INFO',
        ENVIRONMENT: 'development',
      },
    });
  });
  after(async () => { await env?.stop(); });
  const url = () => env.w.url;

  let tokens;
  let chat;

  test('registers, then logs in by posting JSON to /api/auth/login', async () => {
    const reg = await call(url(), 'POST', '/api/auth/register', { json: me });
    assert.equal(reg.status, 201, reg.text);
    const login = await call(url(), 'POST', '/api/auth/login', { json: me });
    assert.equal(login.status, 200, login.text);
    tokens = login.body;
    assert.ok(signedWith(tokens.access_token, SECRET_KEY), 'SECRET_KEY signs the tokens');
    const { exp, iat } = claims(tokens.access_token);
    assert.equal(exp - iat, 15 * 60);
    // `username` works as well as `email`, as in the OAuth2 form.
    const byUsername = await call(url(), 'POST', '/api/auth/login', { json: { username: me.email, password: me.password } });
    assert.equal(byUsername.status, 200, byUsername.text);
    // Neither JSON nor the form: 415 naming both.
    const text = await call(url(), 'POST', '/api/auth/login', { headers: { 'content-type': 'text/plain' }, body: 'hi' });
    const e = envelope(assert, text, 415, 'unsupported_media_type');
    assert.match(e.message, /x-www-form-urlencoded/);
    assert.match(e.message, /application\/json/);
  });

  test('verifies the email with the emailed token', async () => {
    const token = tokenFromEmail(await mail(env.w, me.email, /erif/));
    const res = await call(url(), 'POST', '/api/auth/verify-email', { json: { token } });
    assert.equal(res.status, 200, res.text);
    const current = await call(url(), 'GET', '/api/auth/me', { token: tokens.access_token });
    assert.equal(current.body.email_verified, true);
  });

  test('resets a forgotten password, then logs in with the new one', async () => {
    const asked = await call(url(), 'POST', '/api/auth/forgot-password', { json: { email: me.email } });
    assert.equal(asked.status, 202, asked.text);
    const token = tokenFromEmail(await mail(env.w, me.email, /Reset/));
    me.password = 'a brand new llm modes passphrase 7';
    const reset = await call(url(), 'POST', '/api/auth/reset-password', { json: { token, new_password: me.password } });
    assert.equal(reset.status, 200, reset.text);
    const login = await call(url(), 'POST', '/api/auth/login', { json: me });
    assert.equal(login.status, 200, login.text);
    tokens = login.body;
  });

  test('refreshes the access token', async () => {
    const res = await call(url(), 'POST', '/api/auth/refresh', { json: { refresh_token: tokens.refresh_token } });
    assert.equal(res.status, 200, res.text);
    tokens = res.body;
  });

  test('creates a chat in a mode and lists it', async () => {
    const created = await call(url(), 'POST', '/api/chats', {
      token: tokens.access_token,
      json: { title: 'Exam prep', mode: 'similar_questions' },
    });
    assert.equal(created.status, 201, created.text);
    chat = created.body;
    assert.equal(chat.mode, 'similar_questions');
    const list = await call(url(), 'GET', '/api/chats', { token: tokens.access_token });
    assert.deepEqual(list.body.data.map((c) => c.id), [chat.id]);
  });

  test('sends a message in the chat; the mode shapes the system prompt', async () => {
    const res = await call(url(), 'POST', `/api/chats/${chat.id}/messages`, {
      token: tokens.access_token,
      json: { content: 'What is 2 + 2?' },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.user_message.content, 'What is 2 + 2?');
    assert.ok(res.body.assistant_message.content.startsWith('Echo: '), res.text);
    const sent = env.s.requests.filter((r) => r.endpoint === 'chat').at(-1);
    assert.match(JSON.stringify(sent.body), /similar/i, 'the similar_questions prompt went upstream');
  });

  test('pins and archives by PUTting back the whole chat it read', async () => {
    const read = await call(url(), 'GET', `/api/chats/${chat.id}`, { token: tokens.access_token });
    assert.equal(read.status, 200, read.text);
    const whole = { ...read.body, pinned: true, archived: true, title: 'Exam prep (done)' };
    const put = await call(url(), 'PUT', `/api/chats/${chat.id}`, { token: tokens.access_token, json: whole });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.body.pinned, true);
    assert.equal(put.body.archived, true);
    assert.equal(put.body.title, 'Exam prep (done)');
    assert.equal(put.body.created_at, read.body.created_at, 'read-only fields are not written');

    // Archived chats leave the default list; asking for them brings them back.
    const visible = await call(url(), 'GET', '/api/chats', { token: tokens.access_token });
    assert.deepEqual(visible.body.data, []);
    const archived = await call(url(), 'GET', '/api/chats?archived=true', { token: tokens.access_token });
    assert.deepEqual(archived.body.data.map((c) => c.id), [chat.id]);

    // A field a chat does not have is still refused, by name.
    const wrong = await call(url(), 'PUT', `/api/chats/${chat.id}`, { token: tokens.access_token, json: { ...whole, colour: 'red' } });
    const e = envelope(assert, wrong, 422);
    assert.match(e.message, /colour/);
  });

  test('deletes the chat and logs out', async () => {
    const del = await call(url(), 'DELETE', `/api/chats/${chat.id}`, { token: tokens.access_token });
    assert.equal(del.status, 204, del.text);
    envelope(assert, await call(url(), 'GET', `/api/chats/${chat.id}`, { token: tokens.access_token }), 404);
    const out = await call(url(), 'POST', '/api/auth/logout', { token: tokens.access_token });
    assert.equal(out.status, 204, out.text);
    envelope(assert, await call(url(), 'GET', '/api/auth/me', { token: tokens.access_token }), 401);
  });

  test('MAX_LOGIN_ATTEMPTS failures lock the account, with Retry-After', async () => {
    const wrong = { email: me.email, password: 'definitely not the password' };
    for (let i = 0; i < 3; i++) envelope(assert, await call(url(), 'POST', '/api/auth/login', { json: wrong }), 401);
    const locked = await call(url(), 'POST', '/api/auth/login', { json: me });
    envelope(assert, locked, 429, 'account_locked');
    assert.match(locked.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
  });

  test('the docs are at /docs and /redoc', async () => {
    for (const page of ['/docs', '/redoc']) assert.equal((await call(url(), 'GET', page)).status, 200, page);
    const health = await call(url(), 'GET', '/health');
    assert.equal(health.status, 200, health.text);
  });
});
