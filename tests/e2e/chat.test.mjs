// Chat end to end: the real worker (wrangler dev, local D1/KV) sending messages through the
// provider stand-in, streamed and not, on every chat route and legacy alias; plus a
// development worker without providers chatting with `dev/echo`, as `make dev` does.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { call, envelope, startWorker } from './harness.mjs';
import { registerAndLogin } from './accounts.mjs';
import { sleep, startWithStandIn } from './provider-helpers.mjs';

const MODEL = 'openai/gpt-4o';
// Titles are asked of another provider, so they never mix with the chat requests asserted.
const TITLE_MODEL = 'anthropic/claude-3-5-haiku-latest';
const BUDGET = 300;
const MAX_CHARS = 2000;

/**
 * POSTs a send and reads the reply: JSON, or the Server-Sent Events as they arrive
 * (`events: [{ name, data, at }]`, `received`: the text of the deltas read). With
 * `abortAfterDeltas: n` the client disconnects as soon as it has read n deltas, reading
 * nothing more.
 */
async function send(w, route, body, token, { abortAfterDeltas } = {}) {
  const controller = new AbortController();
  const started = Date.now();
  const res = await fetch(`${w.url}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
    signal: controller.signal,
  });
  const out = { status: res.status, headers: res.headers, started, events: [], received: '', aborted: false };
  if (!res.headers.get('content-type')?.includes('text/event-stream')) {
    out.text = await res.text();
    try { out.body = JSON.parse(out.text); } catch { /* not JSON */ }
    return out;
  }
  const decoder = new TextDecoder();
  let buffer = '';
  let deltas = 0;
  try {
    for await (const chunk of res.body) {
      const at = Date.now();
      buffer += decoder.decode(chunk, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let name = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) name = line.slice(7);
          else if (line.startsWith('data: ')) data.push(line.slice(6));
        }
        if (data.length === 0) {
          // A keepalive comment (`:`), written while the stream is idle.
          assert.equal(block, ':');
          out.comments = (out.comments ?? 0) + 1;
          continue;
        }
        assert.equal(data.length, 1, `one data line per event: ${block}`);
        const event = { name, data: JSON.parse(data[0]), at };
        out.events.push(event);
        if (name === 'delta') {
          out.received += event.data.text;
          deltas += 1;
          if (abortAfterDeltas && deltas === abortAfterDeltas) {
            controller.abort();
            out.aborted = true;
            return out;
          }
        }
      }
    }
  } catch (err) {
    if (err.name !== 'AbortError') throw err;
    out.aborted = true;
  }
  return out;
}

const names = (events) => events.map((e) => e.name);
const deltaText = (events) => events.filter((e) => e.name === 'delta').map((e) => e.data.text).join('');

/** Every message of a conversation, oldest first. */
async function history(w, token, id) {
  const res = await call(w.url, 'GET', `/api/conversations/${id}/messages?limit=200`, { token });
  assert.equal(res.status, 200, res.text);
  return res.body.data;
}

/** Waits until the conversation holds `count` messages (replies are recorded after the response). */
async function historyOf(w, token, id, count, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const messages = await history(w, token, id);
    if (messages.length >= count || Date.now() > deadline) return messages;
    await sleep(100);
  }
}

describe('chat through the provider stand-in', () => {
  let env; // { s, w }
  let alice;
  let bob;

  before(async () => {
    env = await startWithStandIn({
      vars: {
        CONTEXT_BUDGET_TOKENS: String(BUDGET),
        MAX_MESSAGE_CHARS: String(MAX_CHARS),
        TITLE_MODEL,
        PROVIDER_MAX_RETRIES: '0',
        RATE_LIMIT_CHAT: '10000/60',
      },
    });
    alice = await registerAndLogin(env.w);
    bob = await registerAndLogin(env.w);
  });
  after(async () => { await env?.stop(); });
  beforeEach(() => env.s.reset());

  const chatRequests = () => env.s.requests.filter((r) => r.endpoint === 'chat' && r.provider === 'openai');
  const create = async (token, json = {}) => {
    const res = await call(env.w.url, 'POST', '/api/conversations', { token, json });
    assert.equal(res.status, 201, res.text);
    return res.body;
  };

  test('POST /api/chat without a conversation creates one and answers both stored messages', async () => {
    const res = await send(env.w, '/api/chat', { message: 'Plan a weekend in Lisbon\nwith kids', model: MODEL }, alice.access_token);
    assert.equal(res.status, 200, res.text);
    const { conversation, user_message: user, assistant_message: reply } = res.body;
    assert.match(conversation.id, /^[0-9a-f]{32}$/);
    assert.equal(conversation.model, MODEL, 'the new conversation keeps the model');
    assert.equal(conversation.message_count, 2);
    assert.deepEqual(
      { role: user.role, content: user.content, status: user.status, conversation_id: user.conversation_id },
      { role: 'user', content: 'Plan a weekend in Lisbon\nwith kids', status: 'complete', conversation_id: conversation.id },
    );
    assert.equal(reply.role, 'assistant');
    assert.equal(reply.status, 'complete');
    assert.equal(reply.content, 'Echo: Plan a weekend in Lisbon\nwith kids');
    assert.equal(reply.model, MODEL);
    assert.equal(reply.usage.completion_tokens, 8);
    assert.equal(reply.usage.total_tokens, reply.usage.prompt_tokens + reply.usage.completion_tokens);
    assert.equal(typeof reply.latency_ms, 'number');
    assert.ok(reply.latency_ms >= 0 && reply.latency_ms < 10_000, `latency ${reply.latency_ms}`);
    const stored = await history(env.w, alice.access_token, conversation.id);
    assert.deepEqual(stored.map((m) => m.id), [user.id, reply.id]);
    assert.deepEqual(stored[1], reply);
    const [rec] = chatRequests();
    assert.equal(rec.stream, false);
    assert.deepEqual(rec.body.messages.map((m) => m.role), ['system', 'user']);
  });

  test('the first message titles the conversation, then TITLE_MODEL replaces that title in the background', async () => {
    const convo = await create(alice.access_token);
    assert.equal(convo.title, 'New conversation');
    const first = 'Help me choose a laptop for video editing\nBudget is flexible';
    const res = await send(env.w, `/api/conversations/${convo.id}/messages`, { content: first, model: MODEL }, alice.access_token);
    assert.equal(res.status, 200, res.text);
    // Named at once from the first line; the model's title follows.
    assert.ok(['Help me choose a laptop for video editing', 'Echo: Help me choose a laptop for video editing'].includes(res.body.conversation.title), res.body.conversation.title);
    const titleCall = await env.s.waitFor((r) => r.provider === 'anthropic' && r.endpoint === 'chat' && r.completed, { timeoutMs: 5000 });
    assert.match(titleCall.body.system, /title/i);
    assert.equal(titleCall.body.messages[0].content, first);
    let title;
    for (let i = 0; i < 50; i += 1) {
      title = (await call(env.w.url, 'GET', `/api/conversations/${convo.id}`, { token: alice.access_token })).body.title;
      if (title.startsWith('Echo')) break;
      await sleep(100);
    }
    // The stand-in "model" answers `Echo: <message>`; the title is its first line.
    assert.equal(title, 'Echo: Help me choose a laptop for video editing');

    // Later messages and user titles are never replaced.
    await send(env.w, `/api/conversations/${convo.id}/messages`, { content: 'Something else', model: MODEL }, alice.access_token);
    const named = await create(alice.access_token, { title: 'My own title' });
    await send(env.w, `/api/conversations/${named.id}/messages`, { content: 'Hello', model: MODEL }, alice.access_token);
    await sleep(300);
    assert.equal((await call(env.w.url, 'GET', `/api/conversations/${convo.id}`, { token: alice.access_token })).body.title, title);
    assert.equal((await call(env.w.url, 'GET', `/api/conversations/${named.id}`, { token: alice.access_token })).body.title, 'My own title');
  });

  test('streaming sends user_message, deltas as they arrive, usage and done with the stored reply', async (t) => {
    const convo = await create(alice.access_token);
    env.s.script({ chunkDelayMs: 100, text: Array.from({ length: 24 }, (_, i) => `w${i}`).join(' ') });
    const res = await send(env.w, `/api/conversations/${convo.id}/messages`, { content: 'stream please', model: MODEL, stream: true }, alice.access_token);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    assert.match(res.headers.get('cache-control'), /no-cache/);
    assert.equal(res.headers.get('content-encoding'), null, 'never compressed');
    const kinds = names(res.events);
    assert.equal(kinds[0], 'user_message');
    assert.deepEqual(kinds.slice(-2), ['usage', 'done']);
    assert.equal(kinds.filter((k) => k === 'delta').length, 8, 'one event per provider delta');

    const [opening] = res.events;
    assert.equal(opening.data.message.role, 'user');
    assert.equal(opening.data.message.content, 'stream please');
    assert.equal(opening.data.conversation.id, convo.id);
    assert.equal(opening.data.conversation.title, 'stream please', 'titled from the first message');

    const done = res.events.at(-1).data;
    const text = deltaText(res.events);
    assert.equal(text, Array.from({ length: 24 }, (_, i) => `w${i}`).join(' '));
    assert.equal(done.finish_reason, 'stop');
    assert.equal(done.message.content, text, 'the stored reply is exactly what was streamed');
    assert.equal(done.message.status, 'complete');
    assert.equal(done.message.model, MODEL);
    assert.deepEqual(done.message.usage, res.events.at(-2).data);
    assert.ok(done.message.latency_ms >= 700, `latency ${done.message.latency_ms} ms covers the whole reply`);

    // Not buffered: the first delta reached the client long before the stand-in sent its last.
    const [rec] = chatRequests();
    assert.equal(rec.stream, true);
    assert.equal(rec.chunkTimes.length, 8);
    const firstDelta = res.events.find((e) => e.name === 'delta');
    const lastSent = rec.chunkTimes.at(-1);
    assert.ok(firstDelta.at < lastSent, `first delta at ${firstDelta.at}, last sent at ${lastSent}`);
    assert.ok(lastSent - firstDelta.at >= 500, `received ${lastSent - firstDelta.at} ms before the end`);
    const relay = res.events.filter((e) => e.name === 'delta').map((e, i) => e.at - rec.chunkTimes[i]);
    t.diagnostic(`stand-in chunk sent → delta received through the worker: first ${relay[0]} ms, max ${Math.max(...relay)} ms; request → user_message ${opening.at - res.started} ms; request → first delta ${firstDelta.at - res.started} ms (stand-in received the request after ${rec.receivedAt - res.started} ms, sent the first chunk after ${rec.chunkTimes[0] - res.started} ms)`);
    assert.ok(Math.max(...relay) < 250, `every delta relayed within 250 ms (${relay.join(', ')})`);

    const stored = await history(env.w, alice.access_token, convo.id);
    assert.deepEqual(stored.map((m) => [m.role, m.status, m.content]), [['user', 'complete', 'stream please'], ['assistant', 'complete', text]]);
    assert.equal(stored[1].id, done.message.id);
  });

  test('a client disconnect mid-stream stores exactly the text the client received, as partial', async (t) => {
    const convo = await create(alice.access_token);
    const words = Array.from({ length: 60 }, (_, i) => `word${i}`);
    // Deltas further apart than two keepalive intervals (STREAM_KEEPALIVE_MS, 100 ms).
    env.s.script({ chunkDelayMs: 400, text: words.join(' ') });
    const res = await send(env.w, `/api/conversations/${convo.id}/messages`, { content: 'long answer please', model: MODEL, stream: true }, alice.access_token, { abortAfterDeltas: 3 });
    assert.ok(res.aborted);
    assert.equal(res.received, 'word0 word1 word2 word3 word4 word5 word6 word7 word8 ');
    const rec = await env.s.waitFor((r) => r.endpoint === 'chat' && r.provider === 'openai' && r.clientClosedEarly, { timeoutMs: 3000 });
    assert.equal(rec.completed, false, 'the upstream request was aborted');
    t.diagnostic(`stand-in sent ${rec.chunksSent} of 20 deltas before the worker closed the upstream request`);
    await sleep(500);
    const stored = await historyOf(env.w, alice.access_token, convo.id, 2);
    assert.equal(stored.length, 2, JSON.stringify(stored));
    const reply = stored[1];
    assert.equal(reply.role, 'assistant');
    assert.equal(reply.status, 'partial');
    assert.equal(reply.content, res.received, 'exactly what the client received');
    assert.equal(reply.model, MODEL);
    assert.equal(typeof reply.latency_ms, 'number');
  });

  test('a provider error mid-stream ends with an error event and stores the text so far as error', async () => {
    const convo = await create(alice.access_token);
    env.s.script({ queue: [{ match: { provider: 'openai' }, midStreamError: { afterChunks: 2 }, text: 'one two three four five six seven eight nine' }] });
    const res = await send(env.w, `/api/conversations/${convo.id}/messages`, { content: 'fail half way', model: MODEL, stream: true }, alice.access_token);
    assert.equal(res.status, 200);
    assert.deepEqual(names(res.events), ['user_message', 'delta', 'delta', 'error']);
    const error = res.events.at(-1).data;
    assert.match(error.error.code, /^provider_/);
    assert.equal(typeof error.error.request_id, 'string');
    assert.equal(error.message.status, 'error');
    assert.equal(error.message.content, deltaText(res.events));
    assert.equal(error.message.content, 'one two three four five six ');
    const stored = await history(env.w, alice.access_token, convo.id);
    assert.deepEqual(stored.map((m) => [m.role, m.status, m.content]), [
      ['user', 'complete', 'fail half way'],
      ['assistant', 'error', 'one two three four five six '],
    ]);
  });

  test('a provider failure before any output keeps the user message and stores no assistant message', async () => {
    const convo = await create(alice.access_token);
    env.s.script({ queue: [{ match: { provider: 'openai' }, status: 500, times: 2 }] });
    const streamed = await send(env.w, `/api/conversations/${convo.id}/messages`, { content: 'first try', model: MODEL, stream: true }, alice.access_token);
    assert.equal(streamed.status, 200);
    assert.deepEqual(names(streamed.events), ['user_message', 'error']);
    assert.equal(streamed.events[1].data.error.code, 'provider_error');
    assert.equal(streamed.events[1].data.message, null);

    const plain = await send(env.w, `/api/conversations/${convo.id}/messages`, { content: 'second try', model: MODEL }, alice.access_token);
    const e = envelope(assert, plain, 502, 'provider_error');
    assert.match(e.message, /openai/);

    await sleep(300);
    const stored = await history(env.w, alice.access_token, convo.id);
    assert.deepEqual(stored.map((m) => [m.role, m.content]), [['user', 'first try'], ['user', 'second try']]);

    // The next reply sees both (joined into one user turn) and answers normally.
    const ok = await send(env.w, `/api/conversations/${convo.id}/messages`, { content: 'third try', model: MODEL }, alice.access_token);
    assert.equal(ok.status, 200, ok.text);
    const last = chatRequests().at(-1);
    assert.deepEqual(last.body.messages.slice(1), [{ role: 'user', content: 'first try\n\nsecond try\n\nthird try' }]);
  });

  test('history beyond the budget is left out oldest first', async () => {
    // About 90 estimated tokens per message: with the system prompt, three fit in 300.
    const convo = await create(alice.access_token, { system_prompt: 'Be brief.' });
    const message = (n) => `m${n} ${'lorem ipsum '.repeat(28)}`.trim();
    for (const n of [1, 2, 3]) {
      const res = await send(env.w, `/api/conversations/${convo.id}/messages`, { content: message(n), model: MODEL }, alice.access_token);
      assert.equal(res.status, 200, res.text);
    }
    const [, second, third] = chatRequests();
    const summary = (rec) => rec.body.messages.map((m) => `${m.role}:${m.content.slice(0, 8)}`);
    assert.deepEqual(summary(second), ['system:Be brief', 'user:m1 lorem', 'assistant:Echo: m1', 'user:m2 lorem']);
    assert.deepEqual(summary(third), ['system:Be brief', 'user:m2 lorem', 'assistant:Echo: m2', 'user:m3 lorem'], 'm1 and its reply were dropped');
    // Everything is still stored.
    assert.equal((await history(env.w, alice.access_token, convo.id)).length, 6);
  });

  test('the conversation\'s mode and system prompt shape what the provider receives', async () => {
    const res = await send(env.w, '/api/chat', { message: 'What is a closure?', model: MODEL, mode: 'similar_questions' }, alice.access_token);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.conversation.mode, 'similar_questions');
    const [rec] = chatRequests();
    assert.match(rec.body.messages[0].content, /similar questions/);
    assert.equal(rec.body.temperature, 0.8, "the mode's settings");
    // A one-off system prompt for an existing conversation is not stored.
    const again = await send(env.w, '/api/chat', { message: 'And a callback?', conversation_id: res.body.conversation.id, system_prompt: 'Answer in French.', model: MODEL }, alice.access_token);
    assert.equal(again.status, 200, again.text);
    assert.equal(chatRequests()[1].body.messages[0].content, 'Answer in French.');
    assert.equal(again.body.conversation.system_prompt, null);
  });

  test('another user\'s conversation answers 404 on every send route, and nothing is stored', async () => {
    const convo = await create(alice.access_token);
    const other = bob.access_token;
    for (const [route, body] of [
      [`/api/conversations/${convo.id}/messages`, { content: 'hi', model: MODEL }],
      [`/api/conversations/${convo.id}/messages`, { content: 'hi', model: MODEL, stream: true }],
      [`/api/chats/${convo.id}/messages`, { content: 'hi', model: MODEL }],
      ['/api/chat', { message: 'hi', conversation_id: convo.id, model: MODEL }],
      ['/api/chat/stream', { message: 'hi', conversation_id: convo.id, model: MODEL }],
      ['/chat', { message: 'hi', conversation_id: convo.id, model: MODEL }],
      ['/api/chat/send', { message: 'hi', thread_id: convo.id, model: MODEL }],
    ]) {
      const res = await call(env.w.url, 'POST', route, { token: other, json: body });
      envelope(assert, res, 404, 'not_found');
    }
    for (const [method, route] of [['GET', `/api/chat/threads/${convo.id}`], ['DELETE', `/api/chat/threads/${convo.id}`], ['GET', `/api/chats/${convo.id}`], ['DELETE', `/api/chats/${convo.id}`]]) {
      envelope(assert, await call(env.w.url, method, route, { token: other }), 404, 'not_found');
    }
    envelope(assert, await call(env.w.url, 'PUT', `/api/chat/threads/${convo.id}/title`, { token: other, json: { title: 'x' } }), 404);
    envelope(assert, await call(env.w.url, 'PUT', `/api/chats/${convo.id}`, { token: other, json: { title: 'x' } }), 404);
    assert.equal(chatRequests().length, 0, 'no provider call');
    assert.deepEqual(await history(env.w, alice.access_token, convo.id), []);
  });

  test('invalid sends are clear 4xx answers and store nothing', async () => {
    const token = alice.access_token;
    const convo = await create(token);
    const route = `/api/conversations/${convo.id}/messages`;
    const cases = [
      [{ content: '   ' }, 422, 'validation_failed', 'content'],
      [{ message: '' }, 422, 'validation_failed', 'message'],
      [{ content: 'x'.repeat(MAX_CHARS + 1) }, 422, 'validation_failed', 'content'],
      [{ model: MODEL }, 422, 'validation_failed', 'content'],
      [{ content: 'a', message: 'b' }, 422, 'validation_failed', 'message'],
      [{ content: 'hi', model: 'nosuch/model' }, 422, 'model_not_found', 'model'],
      [{ content: 'hi', model: 'gpt 4' }, 422, 'validation_failed', 'model'],
      [{ content: 'hi', mode: 'pirate' }, 422, 'validation_failed', 'mode'],
      [{ content: 'hi', conversation_id: '0'.repeat(32) }, 422, 'validation_failed', 'conversation_id'],
      [{ content: 5 }, 422, 'validation_failed', 'content'],
    ];
    for (const [json, status, code, param] of cases) {
      const e = envelope(assert, await call(env.w.url, 'POST', route, { token, json }), status, code);
      assert.equal(e.param, param, JSON.stringify(json).slice(0, 80));
    }
    const badId = await call(env.w.url, 'POST', '/api/chat', { token, json: { message: 'hi', conversation_id: 'nope' } });
    assert.equal(envelope(assert, badId, 422, 'validation_failed').param, 'conversation_id');
    envelope(assert, await call(env.w.url, 'POST', '/api/conversations/not-an-id/messages', { token, json: { content: 'hi' } }), 404, 'not_found');
    envelope(assert, await call(env.w.url, 'POST', `/api/conversations/${'0'.repeat(32)}/messages`, { token, json: { content: 'hi' } }), 404, 'not_found');
    envelope(assert, await call(env.w.url, 'POST', route, { token, body: '{"content":', headers: { 'content-type': 'application/json' } }), 400, 'invalid_json');
    envelope(assert, await call(env.w.url, 'POST', route, { token, body: 'hi', headers: { 'content-type': 'text/plain' } }), 415);
    envelope(assert, await call(env.w.url, 'POST', route, { json: { content: 'hi' } }), 401);
    assert.equal(chatRequests().length, 0);
    assert.deepEqual(await history(env.w, token, convo.id), []);
  });

  test('pagination over chat messages returns each exactly once, in order', async () => {
    const convo = await create(alice.access_token);
    const sent = [];
    for (let i = 0; i < 5; i += 1) {
      const res = await send(env.w, `/api/conversations/${convo.id}/messages`, { content: `page test ${i}`, model: MODEL, stream: i % 2 === 1 }, alice.access_token);
      assert.equal(res.status, 200);
      if (res.body) sent.push(res.body.user_message.id, res.body.assistant_message.id);
      else sent.push(res.events[0].data.message.id, res.events.at(-1).data.message.id);
    }
    await historyOf(env.w, alice.access_token, convo.id, 10);
    for (const order of ['asc', 'desc']) {
      const seen = [];
      let cursor = null;
      for (let pages = 0; pages < 20; pages += 1) {
        const qs = new URLSearchParams({ limit: '3' });
        if (cursor) qs.set('cursor', cursor); else qs.set('order', order);
        const res = await call(env.w.url, 'GET', `/api/conversations/${convo.id}/messages?${qs}`, { token: alice.access_token });
        assert.equal(res.status, 200, res.text);
        seen.push(...res.body.data.map((m) => m.id));
        if (!res.body.has_more) break;
        cursor = res.body.next_cursor;
      }
      assert.deepEqual(seen, order === 'asc' ? sent : [...sent].reverse(), order);
    }
  });

  test('search finds conversations by chat text, and export round-trips it', async () => {
    const res = await send(env.w, '/api/chat', { message: 'Tell me about the quokkaesque marsupial', model: MODEL }, alice.access_token);
    assert.equal(res.status, 200, res.text);
    const id = res.body.conversation.id;
    // "Echo: …" makes the reply findable too, by a word only in it.
    const found = await call(env.w.url, 'GET', '/api/conversations?q=quokkaesque', { token: alice.access_token });
    assert.deepEqual(found.body.data.map((c) => c.id), [id]);
    const bobSearch = await call(env.w.url, 'GET', '/api/conversations?q=quokkaesque', { token: bob.access_token });
    assert.deepEqual(bobSearch.body.data, []);
    const replyOnly = await call(env.w.url, 'GET', '/api/conversations?q=echo%20marsupial', { token: alice.access_token });
    assert.ok(replyOnly.body.data.some((c) => c.id === id));

    const exported = await call(env.w.url, 'GET', `/api/conversations/${id}/export?format=json`, { token: alice.access_token });
    assert.equal(exported.status, 200, exported.text);
    assert.deepEqual(exported.body.messages, await history(env.w, alice.access_token, id));
    assert.deepEqual(exported.body.messages.map((m) => m.content), ['Tell me about the quokkaesque marsupial', 'Echo: Tell me about the quokkaesque marsupial']);
    const md = await call(env.w.url, 'GET', `/api/conversations/${id}/export?format=markdown`, { token: alice.access_token });
    assert.ok(md.text.includes('Echo: Tell me about the quokkaesque marsupial'));
  });

  test('POST /api/chat/stream always streams, and continues a conversation named by conversation_id', async () => {
    const first = await send(env.w, '/api/chat/stream', { message: 'streamed start', model: MODEL, stream: false }, alice.access_token);
    assert.equal(first.status, 200);
    assert.equal(first.events[0].name, 'user_message');
    assert.equal(first.events.at(-1).name, 'done');
    const id = first.events[0].data.conversation.id;
    const second = await send(env.w, '/api/chat/stream', { message: 'and more', conversation_id: id, model: MODEL }, alice.access_token);
    assert.equal(second.events.at(-1).data.message.content, 'Echo: and more');
    assert.equal(second.events[0].data.conversation.message_count, 3);
    assert.equal((await historyOf(env.w, alice.access_token, id, 4)).length, 4);
  });

  test('ThreadFlow POST /chat and ChronoChat thread routes', async () => {
    const token = alice.access_token;
    const tf = await send(env.w, '/chat', { message: 'ThreadFlow hello', model: MODEL }, token);
    assert.equal(tf.status, 200, tf.text);
    assert.equal(tf.body.assistant_message.content, 'Echo: ThreadFlow hello');

    const cc = await send(env.w, '/api/chat/send', { message: 'ChronoChat hello', model: MODEL }, token);
    assert.equal(cc.status, 200, cc.text);
    const thread = cc.body.conversation.id;
    const cont = await send(env.w, '/api/chat/send', { message: 'again', thread_id: thread, model: MODEL, stream: true }, token);
    assert.equal(cont.events.at(-1).name, 'done');

    const threads = await call(env.w.url, 'GET', '/api/chat/threads', { token });
    assert.equal(threads.status, 200);
    assert.equal(threads.body.data[0].id, thread, 'newest activity first');
    const one = await call(env.w.url, 'GET', `/api/chat/threads/${thread}`, { token });
    assert.equal(one.status, 200);
    await historyOf(env.w, token, thread, 4);
    const detail = await call(env.w.url, 'GET', `/api/chat/threads/${thread}`, { token });
    assert.deepEqual(detail.body.messages.map((m) => m.content), ['ChronoChat hello', 'Echo: ChronoChat hello', 'again', 'Echo: again']);
    const renamed = await call(env.w.url, 'PUT', `/api/chat/threads/${thread}/title`, { token, json: { title: 'Renamed thread' } });
    assert.equal(renamed.body.title, 'Renamed thread');
    const deleted = await call(env.w.url, 'DELETE', `/api/chat/threads/${thread}`, { token });
    assert.equal(deleted.status, 204);
    envelope(assert, await call(env.w.url, 'GET', `/api/chat/threads/${thread}`, { token }), 404);
  });

  test('LLM_MODES chat routes', async () => {
    const token = alice.access_token;
    const created = await call(env.w.url, 'POST', '/api/chats', { token, json: { title: 'Study', mode: 'similar_questions', model: MODEL } });
    assert.equal(created.status, 201, created.text);
    const id = created.body.id;
    const sent = await send(env.w, `/api/chats/${id}/messages`, { content: 'What is entropy?' }, token);
    assert.equal(sent.status, 200, sent.text);
    assert.equal(sent.body.assistant_message.model, MODEL, "the conversation's model");
    assert.match(chatRequests()[0].body.messages[0].content, /similar questions/);
    const streamed = await send(env.w, `/api/chats/${id}/messages`, { message: 'And enthalpy?', stream: true }, token);
    assert.equal(streamed.events.at(-1).name, 'done');

    const list = await call(env.w.url, 'GET', '/api/chats', { token });
    assert.ok(list.body.data.some((c) => c.id === id));
    const put = await call(env.w.url, 'PUT', `/api/chats/${id}`, { token, json: { pinned: true, title: 'Thermo' } });
    assert.equal(put.status, 200, put.text);
    assert.deepEqual([put.body.pinned, put.body.title], [true, 'Thermo']);
    await historyOf(env.w, token, id, 4);
    const got = await call(env.w.url, 'GET', `/api/chats/${id}`, { token });
    assert.equal(got.body.messages.length, 4);
    assert.equal((await call(env.w.url, 'DELETE', `/api/chats/${id}`, { token })).status, 204);
    envelope(assert, await call(env.w.url, 'GET', `/api/chats/${id}`, { token }), 404);
  });

  test('stats count chat messages and tokens by model', async () => {
    const user = await registerAndLogin(env.w);
    await send(env.w, '/api/chat', { message: 'count me', model: MODEL }, user.access_token);
    await send(env.w, '/api/chat', { message: 'and me', model: 'openai/gpt-4o-mini', stream: true }, user.access_token);
    await sleep(300);
    const stats = await call(env.w.url, 'GET', '/api/chat/stats', { token: user.access_token });
    assert.equal(stats.status, 200, stats.text);
    assert.equal(stats.body.conversations.total, 2);
    assert.deepEqual([stats.body.messages.user, stats.body.messages.assistant], [2, 2]);
    assert.deepEqual(stats.body.by_model.map((m) => m.model).sort(), [MODEL, 'openai/gpt-4o-mini']);
  });
});

describe('chat on a development worker without providers (make dev)', () => {
  let w;
  before(async () => {
    w = await startWorker({ vars: { RATE_LIMIT_CHAT: '4/60', RATE_LIMIT_REGISTER: '1000/600' } });
  });
  after(async () => { await w?.stop(); });

  test('dev/echo answers when no model is named, streamed and not; the title is the first line', async () => {
    const user = await registerAndLogin(w);
    const res = await send(w, '/api/chat', { message: '  Hello from make dev\nsecond line' }, user.access_token);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.conversation.title, 'Hello from make dev');
    assert.equal(res.body.assistant_message.model, 'dev/echo');
    assert.equal(res.body.assistant_message.content, 'Echo: Hello from make dev\nsecond line');
    const streamed = await send(w, '/api/chat', { message: 'stream it', conversation_id: res.body.conversation.id, stream: true }, user.access_token);
    assert.deepEqual([streamed.events[0].name, streamed.events.at(-1).name], ['user_message', 'done']);
    assert.equal(deltaText(streamed.events), 'Echo: stream it');
    assert.equal(streamed.events.at(-1).data.message.model, 'dev/echo');
    const unavailable = await call(w.url, 'POST', '/api/chat', { token: user.access_token, json: { message: 'hi', model: MODEL } });
    const e = envelope(assert, unavailable, 422, 'provider_unavailable');
    assert.equal(e.param, 'model');
  });

  test('the per-user chat limit answers 429 with Retry-After', async () => {
    const user = await registerAndLogin(w);
    for (let i = 0; i < 4; i += 1) {
      const ok = await call(w.url, 'POST', '/api/chat', { token: user.access_token, json: { message: `hi ${i}` } });
      assert.equal(ok.status, 200, ok.text);
    }
    const limited = await call(w.url, 'POST', '/api/chat', { token: user.access_token, json: { message: 'one too many' } });
    envelope(assert, limited, 429, 'rate_limited');
    assert.ok(Number(limited.headers.get('retry-after')) > 0);
    const other = await registerAndLogin(w);
    const fine = await call(w.url, 'POST', '/api/chat', { token: other.access_token, json: { message: 'hi' } });
    assert.equal(fine.status, 200, 'the limit is per user');
  });
});
