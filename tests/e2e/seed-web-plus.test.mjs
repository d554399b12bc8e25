// A Web+ client, unchanged: its `.env` (JWT_SECRET_KEY, JWT_ALGORITHM, JWT_EXPIRATION_HOURS, a
// bare OLLAMA_BASE_URL) and its routes (/auth/*, /models/available, /conversations,
// /chat/completions), in the order a client calls them. Production settings: nothing here leans
// on development defaults.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { call, envelope, startWorker } from './harness.mjs';
import { GOOD_PASSWORD, uniqueEmail } from './accounts.mjs';
import { startStandIn } from '../support/stand-in.mjs';
import { chunkText, claims, deltaText, formLogin, postSse, signedWith } from './seed-clients.mjs';

const JWT_SECRET_KEY = 'web-plus-secret-key-that-is-long-enough-0123';

describe('a Web+ client', () => {
  let ollama;
  let w;
  const me = { email: uniqueEmail('webplus'), password: GOOD_PASSWORD };

  before(async () => {
    // Web+ runs models on a local Ollama, addressed without /v1 as Ollama documents it.
    ollama = await startStandIn({ ollamaAtRoot: true });
    w = await startWorker({
      vars: {
        ENVIRONMENT: 'production',
        LOG_LEVEL: 'INFO',
        JWT_SECRET: undefined,
        DATABASE_URL: 'sqlite+aiosqlite:///./web_plus.db',
        JWT_SECRET_KEY,
        JWT_ALGORITHM: 'HS256',
        JWT_EXPIRATION_HOURS: '24',
        API_HOST: '0.0.0.0',
        API_PORT: '8002',
        OLLAMA_BASE_URL: ollama.url,
        UPLOAD_DIR: './uploads',
        MAX_FILE_SIZE: '10485760',
      },
    });
  });
  after(async () => {
    await w?.stop();
    await ollama?.close();
  });

  let tokens;
  let model;
  let apiKey;
  let conversationId;

  test('registers and logs in with the OAuth2 form and with JSON', async () => {
    const reg = await call(w.url, 'POST', '/auth/register', { json: { ...me, full_name: 'Web Plus' } });
    assert.equal(reg.status, 201, reg.text);
    assert.equal(reg.body.email, me.email);

    const form = await formLogin(w.url, '/auth/login', me.email, me.password);
    assert.equal(form.status, 200, form.text);
    const json = await call(w.url, 'POST', '/auth/login', { json: { username: me.email, password: me.password } });
    assert.equal(json.status, 200, json.text);
    tokens = json.body;

    // JWT_EXPIRATION_HOURS=24 sets the access-token lifetime; JWT_SECRET_KEY signs it.
    assert.equal(tokens.expires_in, 24 * 3600);
    const { exp, iat } = claims(tokens.access_token);
    assert.equal(exp - iat, 24 * 3600);
    assert.ok(signedWith(tokens.access_token, JWT_SECRET_KEY), 'signed with JWT_SECRET_KEY');
  });

  test('reads itself, refreshes, and creates an API key whose prefix begins the key', async () => {
    const current = await call(w.url, 'GET', '/auth/me', { token: tokens.access_token });
    assert.equal(current.status, 200, current.text);
    assert.equal(current.body.email, me.email);

    const refreshed = await call(w.url, 'POST', '/auth/refresh', { json: { refresh_token: tokens.refresh_token } });
    assert.equal(refreshed.status, 200, refreshed.text);
    assert.notEqual(refreshed.body.refresh_token, tokens.refresh_token);
    tokens = refreshed.body;

    const key = await call(w.url, 'POST', '/auth/api-keys', { token: tokens.access_token, json: { name: 'web+' } });
    assert.equal(key.status, 201, key.text);
    assert.ok(key.body.key.startsWith(key.body.prefix), `${key.body.key} / ${key.body.prefix}`);
    assert.ok(key.body.prefix.startsWith('tl_'));
    apiKey = key.body.key;
  });

  test('finds the Ollama models at the bare OLLAMA_BASE_URL', async () => {
    const res = await call(w.url, 'GET', '/models/available', { token: tokens.access_token });
    assert.equal(res.status, 200, res.text);
    const offered = res.body.models.filter((m) => m.provider === 'ollama');
    assert.ok(offered.length > 0, res.text);
    model = offered[0].id;
    const listing = ollama.requests.find((r) => r.endpoint === 'models');
    assert.equal(listing?.path, '/v1/models', 'the OpenAI-compatible API under /v1 of the address');
  });

  test('creates, lists and reads a conversation', async () => {
    const created = await call(w.url, 'POST', '/conversations', {
      token: tokens.access_token,
      json: { title: 'Release plan', model },
    });
    assert.equal(created.status, 201, created.text);
    conversationId = created.body.id;

    const list = await call(w.url, 'GET', '/conversations', { token: tokens.access_token });
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.body.data.map((c) => c.id), [conversationId]);

    const one = await call(w.url, 'GET', `/conversations/${conversationId}`, { token: tokens.access_token });
    assert.equal(one.status, 200, one.text);
    assert.equal(one.body.title, 'Release plan');
  });

  test('POST /chat/completions with a chat body stores both messages in the conversation', async () => {
    const res = await call(w.url, 'POST', '/chat/completions', {
      token: tokens.access_token,
      json: { message: 'hello from web plus', conversation_id: conversationId },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.conversation.id, conversationId);
    assert.equal(res.body.user_message.content, 'hello from web plus');
    assert.equal(res.body.assistant_message.content, 'Echo: hello from web plus');
    assert.equal(res.body.assistant_message.model, model);
    const upstream = ollama.requests.filter((r) => r.endpoint === 'chat').at(-1);
    assert.equal(upstream.path, '/v1/chat/completions');

    const stored = await call(w.url, 'GET', `/conversations/${conversationId}`, { token: tokens.access_token });
    assert.deepEqual(stored.body.messages.map((m) => m.role), ['user', 'assistant']);
  });

  test('POST /chat/completions/stream streams a chat body and stores it', async () => {
    const res = await postSse(w.url, '/chat/completions/stream', {
      token: tokens.access_token,
      json: { message: 'stream this please', conversation_id: conversationId },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.events[0].name, 'user_message');
    assert.equal(deltaText(res.events), 'Echo: stream this please');
    assert.equal(res.events.at(-1).name, 'done');
    const stored = await call(w.url, 'GET', `/conversations/${conversationId}`, { token: tokens.access_token });
    assert.equal(stored.body.messages.length, 4);
  });

  test('POST /chat/completions with an OpenAI body answers as /v1 does and stores nothing', async () => {
    const before = await call(w.url, 'GET', '/conversations', { token: apiKey });
    const res = await call(w.url, 'POST', '/chat/completions', {
      token: apiKey,
      json: { model, messages: [{ role: 'user', content: 'openai shaped' }] },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.object, 'chat.completion');
    assert.equal(res.body.choices[0].message.content, 'Echo: openai shaped');

    const streamed = await postSse(w.url, '/chat/completions', {
      token: apiKey,
      json: { model, stream: true, messages: [{ role: 'user', content: 'openai streamed' }] },
    });
    assert.equal(streamed.status, 200, streamed.text);
    assert.equal(chunkText(streamed.events), 'Echo: openai streamed');
    assert.equal(streamed.events.at(-1).data, '[DONE]');

    // The /stream path streams an OpenAI body too, even without `stream: true`.
    const forced = await postSse(w.url, '/chat/completions/stream', {
      token: apiKey,
      json: { model, messages: [{ role: 'user', content: 'always streamed' }] },
    });
    assert.equal(chunkText(forced.events), 'Echo: always streamed');

    const after = await call(w.url, 'GET', '/conversations', { token: apiKey });
    assert.deepEqual(after.body.data.map((c) => c.id), before.body.data.map((c) => c.id));
  });

  test('bad bodies on /chat/completions get the envelope, never a 500', async () => {
    const noMessage = await call(w.url, 'POST', '/chat/completions', { token: tokens.access_token, json: { conversation_id: conversationId } });
    envelope(assert, noMessage, 422);
    const emptyMessages = await call(w.url, 'POST', '/chat/completions', { token: apiKey, json: { model, messages: [] } });
    assert.ok([400, 422].includes(emptyMessages.status), emptyMessages.text);
    const notJson = await call(w.url, 'POST', '/chat/completions', {
      token: tokens.access_token,
      headers: { 'content-type': 'application/json' },
      body: '{"message": ',
    });
    envelope(assert, notJson, 400);
    const anonymous = await call(w.url, 'POST', '/chat/completions', { json: { message: 'hi' } });
    envelope(assert, anonymous, 401);
  });

  test('deletes the conversation; it is gone', async () => {
    const del = await call(w.url, 'DELETE', `/conversations/${conversationId}`, { token: tokens.access_token });
    assert.equal(del.status, 204, del.text);
    const gone = await call(w.url, 'GET', `/conversations/${conversationId}`, { token: tokens.access_token });
    envelope(assert, gone, 404, 'not_found');
  });

  test('reads the API reference at /docs and /redoc, served without a CDN', async () => {
    for (const page of ['/docs', '/redoc']) {
      const res = await call(w.url, 'GET', page);
      assert.equal(res.status, 200, page);
      assert.match(res.headers.get('content-type'), /text\/html/);
      assert.doesNotMatch(res.text, /https?:\/\//, `${page} loads nothing from elsewhere`);
    }
    const redoc = await call(w.url, 'GET', '/redoc');
    const script = /<script src="([^"]+)"/.exec(redoc.text)[1];
    const asset = await fetch(`${w.url}${script}`);
    assert.equal(asset.status, 200);
    assert.ok((await asset.text()).length > 100_000, 'the ReDoc bundle itself');
  });

  test('files answer under Web+\'s paths: upload, metadata, analyze; a missing id is a 404', async () => {
    const form = new FormData();
    form.append('file', new Blob([Buffer.from('# Notes\nShip on Friday.\n')], { type: 'text/plain' }), 'notes.md');
    const up = await fetch(`${w.url}/files/upload`, { method: 'POST', headers: { authorization: `Bearer ${tokens.access_token}` }, body: form });
    assert.equal(up.status, 201, await up.clone().text());
    const file = await up.json();
    assert.equal(file.media_type, 'text/markdown');
    const meta = await call(w.url, 'GET', `/files/${file.id}`, { token: tokens.access_token });
    assert.equal(meta.status, 200);
    assert.equal(meta.body.name, 'notes.md');
    const missing = await call(w.url, 'GET', `/files/${'0'.repeat(32)}`, { token: tokens.access_token });
    envelope(assert, missing, 404);
  });

  test('pipelines and model management answer under Web+\'s paths', async () => {
    // A pipeline without steps is refused naming the field; model management is for admins.
    const p = envelope(assert, await call(w.url, 'POST', '/pipelines', { token: tokens.access_token, json: { name: 'p' } }), 422);
    assert.equal(p.param, 'steps');
    assert.equal((await call(w.url, 'GET', '/pipelines', { token: tokens.access_token })).status, 200);
    envelope(assert, await call(w.url, 'POST', '/models/start', { token: tokens.access_token, json: { model: 'llama3.2' } }), 403, 'admin_required');
  });

  test('settings that mean nothing on Workers are named in a warning', async () => {
    // The warning is logged once, when the isolate reads its configuration.
    await w.waitForOutput(/DATABASE_URL is set but not used/);
    await w.waitForOutput(/UPLOAD_DIR is set but not used/);
  });
});
