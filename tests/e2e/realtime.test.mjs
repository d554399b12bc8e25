// Realtime end to end: the conversation's Durable Object under wrangler dev (local D1/KV and
// Durable Objects) owning the generation in progress. Real clients: fetch reading
// Server-Sent Events, and the `ws` npm package as the WebSocket client. A slow provider
// stream (the stand-in, one word per delta with a pause between) leaves time to reconnect,
// stop, and leave in the middle.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

import { call, envelope } from './harness.mjs';
import { registerAndLogin } from './accounts.mjs';
import { sleep, startWithStandIn } from './provider-helpers.mjs';

const MODEL = 'openai/gpt-4o';
const WORDS = Array.from({ length: 12 }, (_, i) => `w${i + 1} `);
const FULL = WORDS.join('');
const SLOW = { chunks: WORDS, chunkDelayMs: 150 };
// workerd evicts an object with nothing but hibernatable sockets about 10 s after its last event.
const HIBERNATE_MS = 12_000;

/** Reads SSE frames from a fetch response: `[{ id, name, data }]`; `onEvent` may return 'stop'. */
async function readSse(res, { onEvent, controller } = {}) {
  const events = [];
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = { id: null, name: 'message', data: null };
        for (const line of block.split('\n')) {
          if (line.startsWith('id: ')) event.id = line.slice(4);
          else if (line.startsWith('event: ')) event.name = line.slice(7);
          else if (line.startsWith('data: ')) event.data = JSON.parse(line.slice(6));
        }
        if (event.data === null) continue; // a keepalive comment
        events.push(event);
        if (onEvent && onEvent(event, events) === 'stop') {
          controller?.abort();
          return events;
        }
      }
    }
  } catch (err) {
    if (err.name !== 'AbortError') throw err;
  }
  return events;
}

/** POSTs a streamed send; reads until `stopWhen(events)` (then disconnects) or the end. */
async function sendSse(w, conversationId, token, body, { stopWhen } = {}) {
  const controller = new AbortController();
  const res = await fetch(`${w.url}/api/conversations/${conversationId}/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ model: MODEL, stream: true, ...body }),
    signal: controller.signal,
  });
  if (!res.headers.get('content-type')?.includes('text/event-stream')) {
    const text = await res.text();
    return { status: res.status, text, body: JSON.parse(text), headers: res.headers };
  }
  const events = await readSse(res, {
    controller,
    onEvent: stopWhen ? (_e, all) => (stopWhen(all) ? 'stop' : undefined) : undefined,
  });
  return { status: res.status, events };
}

/** GET /stream (resume) with an optional Last-Event-ID. */
async function resumeSse(w, conversationId, token, lastEventId, { stopWhen } = {}) {
  const controller = new AbortController();
  const headers = { authorization: `Bearer ${token}` };
  if (lastEventId) headers['last-event-id'] = lastEventId;
  const res = await fetch(`${w.url}/api/conversations/${conversationId}/stream`, { headers, signal: controller.signal });
  if (res.status !== 200) return { status: res.status, text: await res.text(), events: [] };
  const events = await readSse(res, {
    controller,
    onEvent: stopWhen ? (_e, all) => (stopWhen(all) ? 'stop' : undefined) : undefined,
  });
  return { status: res.status, events };
}

const deltas = (events) => events.filter((e) => e.name === 'delta');
const textOf = (events) => deltas(events).map((e) => e.data.text).join('');
const last = (events) => events[events.length - 1];

/** A `ws` client on the conversation's socket, collecting every message. */
function openSocket(w, conversationId, token, { protocol = true, prefix = '/api' } = {}) {
  const url = `${w.url.replace('http', 'ws')}${prefix}/conversations/${conversationId}/ws`;
  const ws = protocol
    ? new WebSocket(url, ['threadline', `bearer.${token}`])
    : new WebSocket(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const messages = [];
  const waiters = [];
  ws.on('message', (raw) => {
    messages.push(JSON.parse(String(raw)));
    for (const waiter of [...waiters]) waiter();
  });
  const socket = {
    ws,
    messages,
    opened: new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    }),
    send: (message) => ws.send(JSON.stringify(message)),
    /** Waits until `pred(messages)` holds. */
    until(pred, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pred(messages)) {
            waiters.splice(waiters.indexOf(check), 1);
            clearTimeout(timer);
            resolve(messages);
          }
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(check), 1);
          reject(new Error(`socket never matched; got ${JSON.stringify(messages).slice(0, 2000)}`));
        }, timeoutMs);
        waiters.push(check);
        check();
      });
    },
    close() {
      ws.close();
      return new Promise((r) => (ws.readyState === WebSocket.CLOSED ? r() : ws.once('close', r)));
    },
  };
  return socket;
}

/** The generation's events a socket got (those with an id), from its `user_message` on. */
const generationEvents = (messages) => messages.filter((m) => m.id && !m.id.startsWith('stored:'));
const ended = (messages) => generationEvents(messages).some((m) => m.event === 'done' || m.event === 'error');

describe('realtime: the conversation\'s Durable Object', () => {
  let env;
  let alice;
  let bob;

  before(async () => {
    env = await startWithStandIn({ vars: { RATE_LIMIT_CHAT: '1000/60', STREAM_KEEPALIVE_MS: '50' } });
    alice = await registerAndLogin(env.w);
    bob = await registerAndLogin(env.w);
  });
  after(async () => { await env?.stop(); });
  beforeEach(() => { env.s.reset(); });

  async function conversation(token = alice.access_token) {
    const res = await call(env.w.url, 'POST', '/api/conversations', { token, json: { title: 'live' } });
    assert.equal(res.status, 201, res.text);
    return res.body;
  }

  const chatRequests = () => env.s.requests.filter((r) => r.endpoint === 'chat' || /chat\/completions/.test(r.path ?? r.url ?? ''));

  async function storedReplies(id) {
    const res = await call(env.w.url, 'GET', `/api/conversations/${id}/messages`, { token: alice.access_token });
    assert.equal(res.status, 200, res.text);
    return res.body.data.filter((m) => m.role === 'assistant');
  }

  async function eventually(fn, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await fn();
      if (value) return value;
      if (Date.now() > deadline) throw new Error('condition never held');
      await sleep(100);
    }
  }

  test('an SSE send that reconnects with Last-Event-ID gets every delta exactly once, from one provider call', async () => {
    env.s.script(SLOW);
    const convo = await conversation();
    const first = await sendSse(env.w, convo.id, alice.access_token, { content: 'tell me', background: true }, {
      stopWhen: (events) => deltas(events).length === 3,
    });
    assert.equal(first.status, 200);
    assert.equal(first.events[0].name, 'user_message');
    assert.match(first.events[0].id, /^[0-9a-f]{32}:0$/);
    assert.equal(deltas(first.events).length, 3);
    await sleep(400); // the stream goes on without anyone listening
    const rest = await resumeSse(env.w, convo.id, alice.access_token, last(first.events).id);
    assert.equal(rest.status, 200);
    assert.equal(last(rest.events).name, 'done');
    const seen = [...first.events, ...rest.events];
    const ids = seen.map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, 'no event twice');
    assert.equal(textOf(seen), FULL, 'every delta exactly once, in order');
    assert.equal(last(rest.events).data.message.content, FULL);
    assert.equal(last(rest.events).data.message.status, 'complete');
    assert.equal(chatRequests().length, 1, 'no second provider call');
    const [stored] = await storedReplies(convo.id);
    assert.equal(stored.content, FULL);
    assert.equal(stored.status, 'complete');

    // After the end: a resume with the last id has nothing more (204), one without gets the
    // whole generation again from memory.
    const again = await resumeSse(env.w, convo.id, alice.access_token, last(rest.events).id);
    assert.equal(again.status, 204);
    const whole = await resumeSse(env.w, convo.id, alice.access_token);
    assert.equal(textOf(whole.events), FULL);
    assert.equal(last(whole.events).name, 'done');
  });

  test('two sockets on one conversation see the same stream; a second send meanwhile is refused', async () => {
    env.s.script(SLOW);
    const convo = await conversation();
    const a = openSocket(env.w, convo.id, alice.access_token);
    const b = openSocket(env.w, convo.id, alice.access_token, { protocol: false });
    await Promise.all([a.opened, b.opened]);
    assert.equal(a.ws.protocol, 'threadline');
    await Promise.all([a.until((m) => m.some((x) => x.event === 'ready')), b.until((m) => m.some((x) => x.event === 'ready'))]);
    a.send({ type: 'send', content: 'hello both', model: MODEL });
    await b.until((m) => generationEvents(m).some((x) => x.event === 'delta'));
    b.send({ type: 'send', content: 'me too', model: MODEL });
    await b.until((m) => m.some((x) => !x.id && x.event === 'error'));
    const refused = b.messages.find((x) => !x.id && x.event === 'error');
    assert.equal(refused.data.error.code, 'generation_in_progress');
    // HTTP sends are refused too while it runs.
    const http = await sendSse(env.w, convo.id, alice.access_token, { content: 'and me' });
    envelope(assert, http, 409, 'generation_in_progress');
    await Promise.all([a.until(ended), b.until(ended)]);
    const ga = generationEvents(a.messages);
    const gb = generationEvents(b.messages);
    assert.deepEqual(ga, gb, 'both sockets got the same events');
    assert.equal(ga[0].event, 'user_message');
    assert.equal(ga[0].data.message.content, 'hello both');
    assert.equal(last(ga).event, 'done');
    assert.equal(ga.filter((m) => m.event === 'delta').map((m) => m.data.text).join(''), FULL);
    assert.equal(chatRequests().length, 1);
    const stored = await storedReplies(convo.id);
    assert.equal(stored.length, 1);
    assert.equal(stored[0].status, 'complete');
    // Keepalive: ping → pong.
    a.send({ type: 'ping' });
    await a.until((m) => m.some((x) => x.event === 'pong'));
    await Promise.all([a.close(), b.close()]);
  });

  test('a socket that reconnects mid-stream and resumes gets every delta exactly once', async () => {
    env.s.script(SLOW);
    const convo = await conversation();
    const keeper = openSocket(env.w, convo.id, alice.access_token); // keeps the generation going
    await keeper.opened;
    const a = openSocket(env.w, convo.id, alice.access_token);
    await a.opened;
    keeper.send({ type: 'send', content: 'go', model: MODEL });
    await a.until((m) => generationEvents(m).filter((x) => x.event === 'delta').length >= 4);
    const before = generationEvents(a.messages).slice();
    await a.close();
    await sleep(300);
    const again = openSocket(env.w, convo.id, alice.access_token);
    await again.opened;
    const ready = (await again.until((m) => m.some((x) => x.event === 'ready'))).find((x) => x.event === 'ready');
    assert.equal(ready.data.generation.running, true);
    again.send({ type: 'resume', last_event_id: last(before).id });
    await again.until(ended);
    const seen = [...before, ...generationEvents(again.messages)];
    const ids = seen.map((m) => m.id);
    assert.equal(new Set(ids).size, ids.length, 'no event twice');
    assert.equal(seen.filter((m) => m.event === 'delta').map((m) => m.data.text).join(''), FULL);
    assert.equal(chatRequests().length, 1);
    await Promise.all([keeper.close(), again.close()]);
  });

  test('a stop from a second session aborts the upstream call and stores partial', async () => {
    env.s.script({ chunks: WORDS, chunkDelayMs: 400 });
    const convo = await conversation();
    const second = await call(env.w.url, 'POST', '/api/auth/login-json', { json: { email: alice.email, password: alice.password } });
    assert.equal(second.status, 200);
    let stopAnswer;
    const started = Date.now();
    const streamed = await sendSse(env.w, convo.id, alice.access_token, { content: 'long one' }, {
      stopWhen: (events) => {
        if (deltas(events).length === 2 && !stopAnswer) {
          stopAnswer = call(env.w.url, 'POST', `/api/conversations/${convo.id}/stop`, { token: second.body.access_token });
        }
        return false;
      },
    });
    const stop = await stopAnswer;
    assert.equal(stop.status, 200, stop.text);
    assert.equal(stop.body.stopped, true);
    assert.equal(stop.body.message.status, 'partial');
    assert.ok(Date.now() - started < WORDS.length * 400, 'ended well before the provider would have');
    const end = last(streamed.events);
    assert.equal(end.name, 'error');
    assert.equal(end.data.error.code, 'generation_stopped');
    assert.equal(end.data.message.id, stop.body.message.id);
    assert.equal(end.data.message.content, textOf(streamed.events));
    assert.ok(FULL.startsWith(stop.body.message.content) && stop.body.message.content.length < FULL.length);
    const [stored] = await storedReplies(convo.id);
    assert.equal(stored.status, 'partial');
    assert.equal(stored.content, stop.body.message.content);
    const upstream = await eventually(() => chatRequests().find((r) => r.clientClosedEarly));
    assert.ok(upstream, 'the upstream request was aborted');
    // Nothing runs now: a second stop says so.
    const idle = await call(env.w.url, 'POST', `/api/conversations/${convo.id}/stop`, { token: alice.access_token });
    assert.equal(idle.status, 200);
    assert.deepEqual(idle.body, { stopped: false, message: null });
  });

  test('every listener leaving stops the generation (partial) unless it asked for background', async () => {
    env.s.script(SLOW);
    const plain = await conversation();
    const left = await sendSse(env.w, plain.id, alice.access_token, { content: 'leave' }, {
      stopWhen: (events) => deltas(events).length === 2,
    });
    const partial = await eventually(async () => (await storedReplies(plain.id))[0]);
    assert.equal(partial.status, 'partial');
    assert.ok(partial.content.startsWith(textOf(left.events)));
    assert.ok(partial.content.length < FULL.length);
    await eventually(() => chatRequests().find((r) => r.clientClosedEarly));
    // A resume afterwards gets the stored result: the closing event with the partial reply.
    const after = await resumeSse(env.w, plain.id, alice.access_token);
    assert.equal(last(after.events).name, 'error');
    assert.equal(last(after.events).data.message.status, 'partial');

    env.s.reset();
    env.s.script(SLOW);
    const kept = await conversation();
    await sendSse(env.w, kept.id, alice.access_token, { content: 'keep going', background: true }, {
      stopWhen: (events) => deltas(events).length === 2,
    });
    const complete = await eventually(async () => (await storedReplies(kept.id))[0], 15_000);
    assert.equal(complete.status, 'complete');
    assert.equal(complete.content, FULL);

    // The same over a socket: closing the only socket stops it; with background it finishes.
    env.s.reset();
    env.s.script(SLOW);
    const viaSocket = await conversation();
    const s1 = openSocket(env.w, viaSocket.id, alice.access_token);
    await s1.opened;
    s1.send({ type: 'send', content: 'socket leaves', model: MODEL });
    await s1.until((m) => generationEvents(m).filter((x) => x.event === 'delta').length >= 2);
    await s1.close();
    const socketPartial = await eventually(async () => (await storedReplies(viaSocket.id))[0]);
    assert.equal(socketPartial.status, 'partial');

    env.s.reset();
    env.s.script(SLOW);
    const viaSocketBg = await conversation();
    const s2 = openSocket(env.w, viaSocketBg.id, alice.access_token);
    await s2.opened;
    s2.send({ type: 'send', content: 'socket leaves, keep going', model: MODEL, background: true });
    await s2.until((m) => generationEvents(m).filter((x) => x.event === 'delta').length >= 2);
    await s2.close();
    const socketComplete = await eventually(async () => (await storedReplies(viaSocketBg.id))[0], 15_000);
    assert.equal(socketComplete.status, 'complete');
    assert.equal(socketComplete.content, FULL);
  });

  test('another user\'s conversation is a 404 on resume, stop and the socket; credentials are required', async () => {
    const convo = await conversation();
    for (const [method, route] of [['GET', 'stream'], ['POST', 'stop']]) {
      envelope(assert, await call(env.w.url, method, `/api/conversations/${convo.id}/${route}`, { token: bob.access_token }), 404, 'not_found');
      envelope(assert, await call(env.w.url, method, `/api/conversations/${convo.id}/${route}`), 401);
    }
    // An id we never sent (control bytes, non-ASCII) is no id, never a 500: nothing yet here.
    const odd = await call(env.w.url, 'GET', `/api/conversations/${convo.id}/stream?last_event_id=%00%F1%AD%B8%BE%C3%BE`, { token: alice.access_token });
    assert.equal(odd.status, 204, odd.text);
    const missing = '0'.repeat(32);
    envelope(assert, await call(env.w.url, 'POST', `/api/conversations/${missing}/stop`, { token: alice.access_token }), 404, 'not_found');
    await assert.rejects(openSocket(env.w, convo.id, bob.access_token).opened, { status: 404 });
    await assert.rejects(openSocket(env.w, convo.id, null, { protocol: false }).opened, { status: 401 });
    await assert.rejects(openSocket(env.w, convo.id, 'not-a-token').opened, { status: 401 });
    // A plain GET of the socket route says what it wants.
    envelope(assert, await call(env.w.url, 'GET', `/api/conversations/${convo.id}/ws`, { token: alice.access_token }), 426, 'upgrade_required');
    // Web+ clients find it under their conversations path.
    const plus = openSocket(env.w, convo.id, alice.access_token, { prefix: '' });
    await plus.opened;
    await plus.until((m) => m.some((x) => x.event === 'ready' && x.data.conversation === convo.id));
    await plus.close();
    await assert.rejects(openSocket(env.w, convo.id, bob.access_token, { prefix: '' }).opened, { status: 404 });
  });

  test('an idle socket outlives its object in memory (hibernation) and still sends, resumes and pings', async () => {
    const convo = await conversation();
    const s = openSocket(env.w, convo.id, alice.access_token);
    await s.opened;
    s.send({ type: 'send', content: 'short', model: MODEL });
    await s.until(ended);
    const firstEnd = last(generationEvents(s.messages));
    assert.equal(firstEnd.event, 'done');
    // Idle: the runtime evicts the object from memory but keeps the socket open.
    await sleep(HIBERNATE_MS);
    s.send({ type: 'ping' });
    await s.until((m) => m.some((x) => x.event === 'pong'));
    // The object has forgotten the generation: a resume answers the stored reply from D1.
    s.send({ type: 'resume' });
    await s.until((m) => m.some((x) => x.id?.startsWith('stored:')));
    const stored = s.messages.find((x) => x.id?.startsWith('stored:'));
    assert.equal(stored.event, 'done');
    assert.equal(stored.data.message.id, firstEnd.data.message.id);
    // The woken object knows the socket again: a new send streams to it.
    env.s.script({ chunks: ['again'] });
    s.send({ type: 'send', content: 'after the nap', model: MODEL });
    await s.until((m) => m.filter((x) => x.event === 'done').length >= 3);
    const dones = s.messages.filter((x) => x.event === 'done' && !x.id.startsWith('stored:'));
    assert.equal(dones.length, 2);
    assert.equal(last(dones).data.message.content, 'again');
    await s.close();
  });

  test('bad socket messages get a clear error event and change nothing', async () => {
    const convo = await conversation();
    const s = openSocket(env.w, convo.id, alice.access_token);
    await s.opened;
    s.ws.send('not json');
    s.send({ type: 'dance' });
    s.send({ type: 'send' });
    s.send({ type: 'stop' });
    await s.until((m) => m.filter((x) => x.event === 'error').length >= 4);
    const codes = s.messages.filter((x) => x.event === 'error').map((x) => x.data.error.code);
    assert.deepEqual(codes, ['invalid_json', 'validation_failed', 'validation_failed', 'generation_not_running']);
    assert.ok(s.messages.filter((x) => x.event === 'error').every((x) => !x.id), 'refusals carry no event id');
    assert.equal((await storedReplies(convo.id)).length, 0);
    await s.close();
  });
});
