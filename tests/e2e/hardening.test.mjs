// Hostile and malformed input, end to end: each defect found by fuzzing and by hand has a
// regression test here, against the real worker with local D1 and KV.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { call, envelope, startWorker } from './harness.mjs';
import { registerAndLogin } from './accounts.mjs';

describe('hostile input (development worker)', () => {
  let w;
  let ada;
  let bob;
  before(async () => {
    w = await startWorker({ vars: { RATE_LIMIT_REGISTER: '1000/600' } });
    ada = await registerAndLogin(w);
    bob = await registerAndLogin(w);
  });
  after(async () => { await w?.stop(); });

  test('a NUL or other control character in a search is a normal search, never a 500', async () => {
    // The full-text query only runs against rows, so there must be a conversation to search.
    const sent = await call(w.url, 'POST', '/api/chat', {
      token: ada.access_token,
      json: { message: 'hello world', model: 'dev/echo' },
    });
    assert.equal(sent.status, 200, sent.text);
    for (const path of ['/api/conversations', '/api/chat/threads', '/api/chats']) {
      const res = await call(w.url, 'GET', `${path}?q=a%00b%07c`, { token: ada.access_token });
      assert.equal(res.status, 200, `${path}: ${res.text}`);
    }
  });

  test('methods the router does not know are 405 with Allow, never run as GET', async () => {
    for (const method of ['PROPFIND', 'QUERY', 'SEARCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'PURGE']) {
      const res = await fetch(`${w.url}/api/modes`, { method });
      assert.equal(res.status, 405, method);
      assert.equal(res.headers.get('allow'), 'GET', method);
      const body = await res.json();
      assert.equal(body.error.code, 'method_not_allowed', method);
    }
  });

  test('a literal path asked with another method is 405, not read as an id', async () => {
    // POST /conversations/chat (Chatflow) beside GET /conversations/{id}.
    const res = await call(w.url, 'GET', '/conversations/chat', { token: ada.access_token });
    envelope(assert, res, 405, 'method_not_allowed');
    assert.equal(res.headers.get('allow'), 'POST');
  });

  test('a declared Content-Length over the limit is refused with 413 before anything else runs', async () => {
    // Authentication would answer 401 first if the size were checked only when the handler
    // reads the body; the declared length is checked before routing.
    const res = await call(w.url, 'POST', '/api/conversations', {
      headers: { 'content-type': 'application/json', authorization: 'Bearer not-a-token' },
      body: `{"title":"${'x'.repeat(2 * 1024 * 1024)}"}`,
    });
    envelope(assert, res, 413, 'payload_too_large');
  });

  test('unknown fields are 422 naming them, however deep; deep nesting is 400', async () => {
    const unknown = await call(w.url, 'PUT', '/api/users/profile', {
      token: ada.access_token,
      json: { full_name: 'Ada', nickname: 'A' },
    });
    const e = envelope(assert, unknown, 422, 'validation_failed');
    assert.equal(e.param, 'nickname');

    const deep = `{"full_name":"Ada","x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    const nested = await call(w.url, 'PUT', '/api/users/profile', {
      token: ada.access_token,
      headers: { 'content-type': 'application/json' },
      body: deep,
    });
    envelope(assert, nested, 400, 'invalid_json');
    const me = await call(w.url, 'GET', '/api/users/profile', { token: ada.access_token });
    assert.notEqual(me.body.full_name, 'Ada', 'nothing was written by the refused requests');
  });

  test('a body that is not a JSON object is 422, even an array that fits the fields in order', async () => {
    const res = await call(w.url, 'PUT', '/api/users/profile', {
      token: ada.access_token,
      headers: { 'content-type': 'application/json' },
      body: '["Array Name", {}]',
    });
    envelope(assert, res, 422, 'validation_failed');
    const me = await call(w.url, 'GET', '/api/users/profile', { token: ada.access_token });
    assert.notEqual(me.body.full_name, 'Array Name');
    const forgot = await call(w.url, 'POST', '/api/auth/forgot-password', {
      headers: { 'content-type': 'application/json' },
      body: '["someone@example.com"]',
    });
    envelope(assert, forgot, 422, 'validation_failed');
  });

  test('bytes after the JSON document are 400, and nothing is stored', async () => {
    const res = await call(w.url, 'POST', '/api/chat', {
      token: ada.access_token,
      headers: { 'content-type': 'application/json' },
      body: '{"message":"hi","model":"dev/echo"}\u0000',
    });
    envelope(assert, res, 400, 'invalid_json');
    const list = await call(w.url, 'GET', '/api/conversations?q=hi', { token: ada.access_token });
    assert.equal(list.status, 200, list.text);
    assert.equal(list.body.data.length, 0, 'no conversation holds the refused message');
  });

  test("another user's conversation is 404 on its messages, with or without a cursor", async () => {
    const sent = await call(w.url, 'POST', '/api/chat', {
      token: ada.access_token,
      json: { message: 'one', model: 'dev/echo' },
    });
    assert.equal(sent.status, 200, sent.text);
    const id = sent.body.conversation.id;
    const own = await call(w.url, 'GET', `/api/conversations/${id}/messages?limit=1`, { token: ada.access_token });
    assert.equal(own.status, 200, own.text);
    const cursor = own.body.next_cursor;
    assert.ok(cursor, `a next cursor: ${own.text}`);
    for (const query of ['', `?cursor=${encodeURIComponent(cursor)}`, '?order=desc']) {
      const res = await call(w.url, 'GET', `/api/conversations/${id}/messages${query}`, { token: bob.access_token });
      envelope(assert, res, 404, 'not_found');
    }
  });

  test('the development routes answer only a client on this machine', async () => {
    for (const path of ['/debug/outbox', '/debug/logs']) {
      const local = await call(w.url, 'GET', path);
      assert.equal(local.status, 200, `${path}: ${local.text}`);
      const proxied = await call(w.url, 'GET', path, { headers: { 'cf-connecting-ip': '203.0.113.7' } });
      envelope(assert, proxied, 404, 'route_not_found');
    }
  });
});
