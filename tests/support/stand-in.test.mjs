// Tests for the provider stand-in. Run: node --test tests/support/
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startStandIn, splitWords, standInVector, float32Base64 } from './stand-in.mjs';

let s;
before(async () => {
  s = await startStandIn({ port: 0 });
});
after(async () => {
  await s.close();
});
beforeEach(() => s.reset());

// --- helpers ---------------------------------------------------------------

const OA = { authorization: 'Bearer sk-test', 'content-type': 'application/json' };
const AN = { 'x-api-key': 'ak-test', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
const GE = { 'x-goog-api-key': 'gk-test', 'content-type': 'application/json' };

const post = (path, headers, body) => fetch(s.url + path, { method: 'POST', headers, body: JSON.stringify(body) });
const openai = (body, headers = OA) => post('/v1/chat/completions', headers, { model: 'gpt-4o', messages: [{ role: 'user', content: 'hello there how are you' }], ...body });
const ollama = (body) => post('/ollama/v1/chat/completions', { 'content-type': 'application/json' }, { model: 'llama3.2', messages: [{ role: 'user', content: 'hello there how are you' }], ...body });
const anthropic = (body, headers = AN) => post('/v1/messages', headers, { model: 'claude-sonnet-4-20250514', max_tokens: 100, system: 'be brief', messages: [{ role: 'user', content: 'hello there how are you' }], ...body });
const gemini = (op, query = '', headers = GE, body = {}) =>
  post(`/v1beta/models/gemini-2.0-flash:${op}${query}`, headers, { contents: [{ role: 'user', parts: [{ text: 'hello there how are you' }] }], ...body });

/** Parse an SSE body into [{event, data}] (comments counted separately). */
function parseSse(text) {
  const events = [];
  let comments = 0;
  for (const block of text.split(/\r?\n\r?\n/)) {
    if (!block.trim()) continue;
    let event = null;
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(':')) comments++;
      else if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (event || data.length) events.push({ event, data: data.join('\n') });
  }
  events.comments = comments;
  return events;
}
const jsonData = (events) => events.filter((e) => e.data && e.data !== '[DONE]').map((e) => JSON.parse(e.data));

const EXPECTED = 'Echo: hello there how are you';

// --- OpenAI ----------------------------------------------------------------

test('openai non-stream shape', async () => {
  const r = await openai({});
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /application\/json/);
  assert.ok(r.headers.get('x-request-id'));
  const j = await r.json();
  assert.equal(j.object, 'chat.completion');
  assert.match(j.id, /^chatcmpl-/);
  assert.equal(j.choices[0].message.role, 'assistant');
  assert.equal(j.choices[0].message.content, EXPECTED);
  assert.equal(j.choices[0].message.refusal, null);
  assert.equal(j.choices[0].finish_reason, 'stop');
  assert.deepEqual([j.usage.prompt_tokens, j.usage.completion_tokens, j.usage.total_tokens], [5, 6, 11]);
});

test('openai stream: role chunk first, deltas, finish, usage chunk before [DONE]', async () => {
  const r = await openai({ stream: true, stream_options: { include_usage: true } });
  assert.match(r.headers.get('content-type'), /^text\/event-stream/);
  const text = await r.text();
  assert.ok(!text.includes('\r'), 'OpenAI uses LF');
  assert.ok(!text.includes('event:'), 'no event: lines');
  const ev = parseSse(text);
  assert.equal(ev.at(-1).data, '[DONE]');
  const chunks = jsonData(ev);
  assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '', refusal: null });
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
  const content = chunks.slice(1).flatMap((c) => c.choices).map((c) => c.delta.content ?? '').join('');
  assert.equal(content, EXPECTED);
  assert.equal(chunks.length, 1 + splitWords(EXPECTED).length + 2);
  assert.equal(chunks.at(-2).choices[0].finish_reason, 'stop');
  assert.deepEqual(chunks.at(-1).choices, []);
  assert.deepEqual(chunks.at(-1).usage, { prompt_tokens: 5, completion_tokens: 6, total_tokens: 11 });
  // without include_usage: no usage chunk
  const plain = jsonData(parseSse(await (await openai({ stream: true })).text()));
  assert.ok(plain.every((c) => c.choices.length === 1 && !('usage' in c)));
});

test('openai and anthropic model lists share GET /v1/models', async () => {
  const o = await (await fetch(s.url + '/v1/models', { headers: OA })).json();
  assert.equal(o.object, 'list');
  assert.ok(o.data.every((m) => m.object === 'model' && m.id && m.owned_by && m.created));
  const a = await (await fetch(s.url + '/v1/models', { headers: AN })).json();
  assert.ok(a.data.every((m) => m.type === 'model' && m.display_name && m.created_at));
  assert.equal(a.has_more, false);
  assert.deepEqual(s.requests.map((r) => r.provider), ['openai', 'anthropic']);
});

test('openai key checks: bad-key echoes key, missing key, scripted key', async () => {
  let r = await openai({}, { ...OA, authorization: 'Bearer bad-key' });
  assert.equal(r.status, 401);
  let j = await r.json();
  assert.equal(j.error.code, 'invalid_api_key');
  assert.equal(j.error.type, 'invalid_request_error');
  assert.match(j.error.message, /^Incorrect API key provided: bad-key/);
  r = await openai({}, { 'content-type': 'application/json' });
  assert.equal(r.status, 401);
  s.script({ keys: { openai: 'sk-right-key-123456' } });
  assert.equal((await openai({}, { ...OA, authorization: 'Bearer sk-right-key-123456' })).status, 200);
  r = await openai({}, { ...OA, authorization: 'Bearer sk-wrong-key-abcdef' });
  j = await r.json();
  assert.equal(r.status, 401);
  assert.match(j.error.message, /sk-\*+cdef/);
});

// --- Anthropic -------------------------------------------------------------

test('anthropic non-stream shape', async () => {
  const r = await anthropic({});
  assert.equal(r.status, 200);
  assert.ok(r.headers.get('request-id'));
  const j = await r.json();
  assert.equal(j.type, 'message');
  assert.match(j.id, /^msg_/);
  assert.deepEqual(j.content, [{ type: 'text', text: EXPECTED }]);
  assert.equal(j.stop_reason, 'end_turn');
  assert.equal(j.stop_sequence, null);
  assert.deepEqual(j.usage, { input_tokens: 7, output_tokens: 6 });
});

test('anthropic stream: exact event sequence', async () => {
  const r = await anthropic({ stream: true });
  assert.match(r.headers.get('content-type'), /^text\/event-stream/);
  const ev = parseSse(await r.text());
  const n = splitWords(EXPECTED).length;
  assert.deepEqual(ev.map((e) => e.event), [
    'message_start', 'content_block_start', 'ping',
    ...Array(n).fill('content_block_delta'),
    'content_block_stop', 'message_delta', 'message_stop',
  ]);
  for (const e of ev) assert.equal(JSON.parse(e.data).type, e.event);
  const data = ev.map((e) => JSON.parse(e.data));
  assert.equal(data[0].message.usage.input_tokens, 7);
  assert.equal(data.filter((d) => d.type === 'content_block_delta').map((d) => d.delta.text).join(''), EXPECTED);
  const md = data.find((d) => d.type === 'message_delta');
  assert.deepEqual(md.delta, { stop_reason: 'end_turn', stop_sequence: null });
  assert.equal(md.usage.output_tokens, 6);
});

test('anthropic auth and request checks', async () => {
  let r = await anthropic({}, { ...AN, 'x-api-key': 'bad-key' });
  assert.equal(r.status, 401);
  let j = await r.json();
  assert.equal(j.type, 'error');
  assert.equal(j.error.type, 'authentication_error');
  r = await anthropic({}, { 'x-api-key': 'k', 'content-type': 'application/json' });
  assert.equal(r.status, 400);
  assert.match((await r.json()).error.message, /anthropic-version/);
  r = await anthropic({ messages: [{ role: 'system', content: 'x' }, { role: 'user', content: 'y' }] });
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error.type, 'invalid_request_error');
  r = await anthropic({ max_tokens: undefined });
  j = await r.json();
  assert.equal(r.status, 400);
  assert.equal(j.error.message, 'max_tokens: Field required');
});

// --- Gemini ----------------------------------------------------------------

test('gemini non-stream, SSE stream with CRLF, JSON-array stream, models', async () => {
  let j = await (await gemini('generateContent')).json();
  assert.equal(j.candidates[0].content.role, 'model');
  assert.equal(j.candidates[0].content.parts[0].text, EXPECTED);
  assert.equal(j.candidates[0].finishReason, 'STOP');
  assert.deepEqual(j.usageMetadata, { promptTokenCount: 5, candidatesTokenCount: 6, totalTokenCount: 11 });

  const r = await gemini('streamGenerateContent', '?alt=sse');
  assert.match(r.headers.get('content-type'), /^text\/event-stream/);
  const text = await r.text();
  const blocks = text.split('\r\n\r\n');
  assert.equal(blocks.pop(), '', 'every event ends with \\r\\n\\r\\n');
  assert.ok(blocks.every((b) => b.startsWith('data: ') && !b.includes('\n')));
  assert.ok(!text.includes('[DONE]'));
  const chunks = blocks.map((b) => JSON.parse(b.slice(6)));
  assert.equal(chunks.map((c) => c.candidates[0].content.parts[0].text).join(''), EXPECTED);
  assert.equal(chunks.at(-1).candidates[0].finishReason, 'STOP');
  assert.ok(chunks.slice(0, -1).every((c) => !c.candidates[0].finishReason));
  assert.equal(chunks.at(-1).usageMetadata.totalTokenCount, 11);

  const arr = await (await gemini('streamGenerateContent')).json();
  assert.ok(Array.isArray(arr));
  assert.equal(arr.map((c) => c.candidates[0].content.parts[0].text).join(''), EXPECTED);

  const m = await (await fetch(s.url + '/v1beta/models', { headers: GE })).json();
  const flash = m.models.find((x) => x.name === 'models/gemini-2.0-flash');
  assert.ok(flash.displayName && flash.inputTokenLimit && flash.outputTokenLimit);
  assert.deepEqual(flash.supportedGenerationMethods, ['generateContent', 'countTokens']);
});

test('gemini key checks: ?key=, bad-key, missing key', async () => {
  assert.equal((await gemini('generateContent', '?key=abc', { 'content-type': 'application/json' })).status, 200);
  let r = await gemini('generateContent', '', { ...GE, 'x-goog-api-key': 'bad-key' });
  assert.equal(r.status, 400);
  const j = await r.json();
  assert.equal(j.error.status, 'INVALID_ARGUMENT');
  assert.equal(j.error.details[0].reason, 'API_KEY_INVALID');
  r = await gemini('generateContent', '', { 'content-type': 'application/json' });
  assert.equal(r.status, 403);
  assert.equal((await r.json()).error.status, 'PERMISSION_DENIED');
});

// --- Ollama ----------------------------------------------------------------

test('ollama flavour: fp_ollama, role only on first chunk, owned_by library, error shape', async () => {
  const ev = parseSse(await (await ollama({ stream: true, stream_options: { include_usage: true } })).text());
  assert.equal(ev.at(-1).data, '[DONE]');
  const chunks = jsonData(ev);
  assert.ok(chunks.every((c) => c.system_fingerprint === 'fp_ollama'));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.ok(chunks[0].choices[0].delta.content.length > 0);
  assert.ok(chunks.slice(1).every((c) => c.choices.every((ch) => !('role' in ch.delta))));
  assert.deepEqual(chunks.at(-1).choices, []);
  assert.equal(chunks.flatMap((c) => c.choices).map((c) => c.delta.content).join(''), EXPECTED);
  const models = await (await fetch(s.url + '/ollama/v1/models')).json();
  assert.ok(models.data.every((m) => m.owned_by === 'library'));
  s.script({ queue: [{ status: 500 }] });
  const r = await ollama({});
  assert.equal(r.status, 500);
  assert.deepEqual(await r.json(), { error: { message: 'internal server error', type: 'api_error', param: null, code: null } });
});

// --- Error statuses and queue ---------------------------------------------

test('error statuses carry provider bodies and retry headers', async () => {
  s.script({ queue: [{ status: 429, retryAfter: 3 }, { status: 429, insufficientQuota: true }, { status: 500 }, { status: 503 }] });
  let r = await openai({});
  assert.equal(r.status, 429);
  assert.equal(r.headers.get('retry-after'), '3');
  assert.equal((await r.json()).error.code, 'rate_limit_exceeded');
  r = await openai({});
  assert.equal((await r.json()).error.code, 'insufficient_quota');
  r = await openai({});
  assert.equal(r.status, 500);
  assert.equal((await r.json()).error.type, 'server_error');
  r = await openai({});
  assert.equal(r.status, 503);
  assert.match((await r.json()).error.message, /overloaded/);

  s.script({ queue: [{ status: 529, match: { provider: 'anthropic' } }, { status: 503, match: { provider: 'gemini' } }] });
  r = await anthropic({ stream: true });
  assert.equal(r.status, 529);
  assert.equal(r.headers.get('x-should-retry'), 'true');
  assert.deepEqual((await r.json()).error, { type: 'overloaded_error', message: 'Overloaded' });
  r = await gemini('streamGenerateContent', '?alt=sse');
  assert.equal(r.status, 503);
  assert.equal((await r.json()).error.status, 'UNAVAILABLE');

  s.script({ queue: [{ status: 418, body: { custom: true } }, { body: 'not json at all' }] });
  r = await openai({});
  assert.equal(r.status, 418);
  assert.deepEqual(await r.json(), { custom: true });
  r = await openai({});
  assert.equal(r.status, 200);
  assert.equal(await r.text(), 'not json at all');
});

test('queue sequencing, times, matching and default', async () => {
  s.script({
    queue: [{ status: 503, match: { model: 'gpt-4o' } }, { text: 'second', times: 2 }],
    default: { text: 'fallback' },
  });
  assert.equal((await openai({ model: 'gpt-4o-mini' })).status, 200); // does not match 503; takes 'second'
  assert.equal((await openai({})).status, 503);
  assert.equal((await (await openai({})).json()).choices[0].message.content, 'second');
  assert.equal((await (await openai({})).json()).choices[0].message.content, 'fallback');
  assert.deepEqual(s.requests.map((r) => r.scripted), ['queue', 'queue', 'queue', 'default']);
  // models lists are not consumed by chat behaviours
  s.script({ queue: [{ status: 500 }] });
  assert.equal((await fetch(s.url + '/v1/models', { headers: OA })).status, 200);
  assert.equal((await openai({})).status, 500);
});

// --- Byte-level behaviour ----------------------------------------------------

test('splitAt yields identical bytes, even split inside a multi-byte char', async () => {
  const text = 'Grüße — 日本語 ok done';
  const pinned = { text, id: 'chatcmpl-fixed', created: 1700000000 };
  s.script({ queue: [pinned] });
  const whole = Buffer.from(await (await openai({ stream: true })).arrayBuffer());
  const ü = whole.indexOf(Buffer.from('ü'));
  const ja = whole.indexOf(Buffer.from('日'));
  const dataInside = whole.indexOf(Buffer.from('data:'), 10) + 2;
  const splitAt = [3, ü + 1, dataInside, ja + 1, ja + 2, whole.length - 3];
  s.script({ queue: [{ ...pinned, splitAt, splitDelayMs: 15 }] });
  const r = await openai({ stream: true });
  const reads = [];
  for await (const c of r.body) reads.push(Buffer.from(c));
  assert.ok(Buffer.concat(reads).equals(whole));
  assert.ok(reads.length >= 4, `expected separate reads, got ${reads.length}`);
  assert.ok(reads.some((c) => new TextDecoder().decode(c).includes('\uFFFD')), 'a read ends inside a UTF-8 char');
  // non-stream bodies can be split too
  s.script({ queue: [{ ...pinned, splitAt: [5] }] });
  assert.equal((await (await openai({})).json()).choices[0].message.content, text);
});

test('midStreamError per provider', async () => {
  s.script({ default: { text: 'one two three four five six seven eight nine', midStreamError: { afterChunks: 2 } } });
  let ev = parseSse(await (await openai({ stream: true })).text());
  let last = JSON.parse(ev.at(-1).data);
  assert.equal(last.error.type, 'server_error');
  assert.ok(!ev.some((e) => e.data === '[DONE]'));
  assert.equal(s.requests.at(-1).chunksSent, 2);
  assert.equal(s.requests.at(-1).outcome, 'mid-stream-error');

  ev = parseSse(await (await anthropic({ stream: true })).text());
  assert.equal(ev.at(-1).event, 'error');
  assert.deepEqual(JSON.parse(ev.at(-1).data), { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
  assert.equal(ev.filter((e) => e.event === 'content_block_delta').length, 2);
  assert.ok(!ev.some((e) => e.event === 'message_stop'));

  const text = await (await gemini('streamGenerateContent', '?alt=sse')).text();
  ev = parseSse(text);
  last = JSON.parse(ev.at(-1).data);
  assert.equal(last.error.code, 503);
  assert.equal(last.error.status, 'UNAVAILABLE');
  assert.ok(text.endsWith('\r\n\r\n'));
  assert.ok(!text.includes('finishReason'));
});

test('truncateAfterChunks ends without terminator', async () => {
  s.script({ default: { text: 'one two three four five six seven eight nine', truncateAfterChunks: 1 } });
  let ev = parseSse(await (await openai({ stream: true })).text());
  assert.ok(!ev.some((e) => e.data === '[DONE]'));
  assert.ok(!jsonData(ev).some((c) => c.choices[0]?.finish_reason));
  ev = parseSse(await (await anthropic({ stream: true })).text());
  assert.deepEqual(ev.map((e) => e.event), ['message_start', 'content_block_start', 'ping', 'content_block_delta']);
  const text = await (await gemini('streamGenerateContent', '?alt=sse')).text();
  assert.ok(!text.includes('finishReason'));
  assert.equal(parseSse(text).length, 1);
  const arr = await (await gemini('streamGenerateContent')).text();
  assert.throws(() => JSON.parse(arr)); // array never closed
  assert.ok(s.requests.every((r) => r.outcome === 'truncated' && r.completed && r.chunksSent === 1));
});

test('extras: keep-alive comments, pings, unknown fields, usage:null', async () => {
  s.script({ default: { extras: true } });
  let ev = parseSse(await (await openai({ stream: true, stream_options: { include_usage: true } })).text());
  assert.ok(ev.comments > 0);
  const chunks = jsonData(ev);
  assert.ok(chunks.slice(0, -1).every((c) => c.usage === null && typeof c.obfuscation === 'string'));
  assert.equal(chunks.at(-1).usage.total_tokens, 11);
  ev = parseSse(await (await anthropic({ stream: true })).text());
  assert.ok(ev.filter((e) => e.event === 'ping').length > 1);
  assert.equal(ev.at(-1).event, 'message_stop');
  ev = parseSse(await (await gemini('streamGenerateContent', '?alt=sse')).text());
  assert.ok(ev.comments > 0);
  assert.equal(jsonData(ev).map((c) => c.candidates[0].content.parts[0].text).join(''), EXPECTED);
});

test('hangUp destroys the socket; firstByteDelayMs delays the response', async () => {
  s.script({ queue: [{ hangUp: true }, { firstByteDelayMs: 150 }] });
  await assert.rejects(openai({}));
  assert.equal(s.requests[0].outcome, 'hung-up');
  assert.equal(s.requests[0].clientClosedEarly, false);
  const t0 = Date.now();
  assert.equal((await openai({})).status, 200);
  assert.ok(Date.now() - t0 >= 140);
});

// --- Recording and control ---------------------------------------------------

test('recording and HTTP control endpoints', async () => {
  let r = await post('/__script', { 'content-type': 'application/json' }, { queue: [{ text: 'scripted over http' }] });
  assert.deepEqual(await r.json(), { ok: true, queued: 1 });
  await anthropic({ stream: true });
  const rec = s.requests[0];
  assert.equal(rec.provider, 'anthropic');
  assert.equal(rec.method, 'POST');
  assert.equal(rec.path, '/v1/messages');
  assert.equal(rec.headers['x-api-key'], 'ak-test');
  assert.equal(rec.headers['anthropic-version'], '2023-06-01');
  assert.equal(rec.body.system, 'be brief');
  assert.equal(rec.model, 'claude-sonnet-4-20250514');
  assert.equal(rec.stream, true);
  assert.equal(rec.completed, true);
  assert.equal(rec.clientClosedEarly, false);
  assert.equal(rec.chunksSent, splitWords('scripted over http').length);
  assert.equal(rec.chunkTimes.length, rec.chunksSent);
  assert.equal(typeof rec.receivedAt, 'number');
  await gemini('streamGenerateContent', '?alt=sse&key=zz', { 'content-type': 'application/json' });
  assert.deepEqual(s.requests[1].query, { alt: 'sse', key: 'zz' });
  const viaHttp = await (await fetch(s.url + '/__requests')).json();
  assert.equal(viaHttp.length, 2);
  assert.equal(viaHttp[0].body.messages[0].content, 'hello there how are you');
  const onlyGemini = await (await fetch(s.url + '/__requests?provider=gemini')).json();
  assert.equal(onlyGemini.length, 1);
  r = await post('/__reset', {}, {});
  assert.equal(r.status, 200);
  assert.equal(s.requests.length, 0);
});

test('clientClosedEarly when the client cancels mid-stream', async () => {
  s.script({ queue: [{ text: 'a b c d e f g h i j k l m n o p q r', chunkWords: 1, chunkDelayMs: 100 }] });
  const r = await openai({ stream: true }, OA);
  const reader = r.body.getReader();
  const first = await reader.read();
  assert.ok(!first.done);
  const firstAt = Date.now();
  await reader.cancel();
  const rec = await s.waitFor((x) => x.clientClosedEarly, { timeoutMs: 2000 });
  await new Promise((res) => setTimeout(res, 150));
  assert.equal(rec.completed, false);
  assert.equal(rec.outcome, 'client-closed');
  assert.ok(rec.chunksSent < 18, `stopped writing early (sent ${rec.chunksSent})`);
  assert.ok(firstAt < rec.receivedAt + 18 * 100, 'client saw the first chunk before the last would be sent');
  assert.ok(rec.chunkTimes[0] <= firstAt);
});

test('client abort via AbortController is seen too', async () => {
  s.script({ queue: [{ text: 'a b c d e f g h', chunkWords: 1, chunkDelayMs: 100 }] });
  const ac = new AbortController();
  const r = await fetch(s.url + '/v1/messages', {
    method: 'POST', headers: AN, signal: ac.signal,
    body: JSON.stringify({ model: 'claude-x', max_tokens: 5, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
  });
  const reader = r.body.getReader();
  await reader.read();
  ac.abort();
  await assert.rejects(reader.read());
  const rec = await s.waitFor((x) => x.clientClosedEarly);
  assert.ok(rec.chunksSent < 8);
});

// --- embeddings ------------------------------------------------------------

test('openai embeddings: one deterministic vector per input, floats or little-endian float32 base64', async () => {
  const body = { model: 'text-embedding-3-small', input: ['alpha beta', 'gamma'] };
  const floats = await (await post('/v1/embeddings', OA, body)).json();
  assert.equal(floats.object, 'list');
  assert.deepEqual(floats.data.map((d) => d.index), [0, 1]);
  assert.deepEqual(floats.data[0].embedding, standInVector('alpha beta', 8));
  assert.deepEqual(floats.usage, { prompt_tokens: 3, total_tokens: 3 });
  const b64 = await (await post('/v1/embeddings', OA, { ...body, encoding_format: 'base64', dimensions: 4 })).json();
  assert.equal(b64.data[1].embedding, float32Base64(standInVector('gamma', 4)));
  const decoded = Buffer.from(b64.data[1].embedding, 'base64');
  assert.equal(decoded.length, 16);
  assert.equal(decoded.readFloatLE(0), standInVector('gamma', 4)[0]);
  const [rec] = s.requests;
  assert.equal(rec.endpoint, 'embeddings');
  assert.equal(rec.model, 'text-embedding-3-small');
});

test('openai embeddings refuse empty input and bad keys like OpenAI', async () => {
  const empty = await post('/v1/embeddings', OA, { model: 'text-embedding-3-small', input: [] });
  assert.equal(empty.status, 400);
  assert.equal((await empty.json()).error.param, 'input');
  const bad = await post('/v1/embeddings', { ...OA, authorization: 'Bearer bad-key' }, { model: 'm', input: 'x' });
  assert.equal(bad.status, 401);
});

test('embeddings can be scripted like chat (match endpoint: embeddings)', async () => {
  s.script({ queue: [{ match: { endpoint: 'embeddings' }, status: 429, retryAfter: 3 }] });
  const limited = await post('/v1/embeddings', OA, { model: 'm', input: 'x' });
  assert.equal(limited.status, 429);
  assert.equal(limited.headers.get('retry-after'), '3');
  s.script({ default: { match: { endpoint: 'embeddings' }, shuffle: true } });
  const shuffled = await (await post('/v1/embeddings', OA, { model: 'm', input: ['a', 'b'] })).json();
  assert.deepEqual(shuffled.data.map((d) => d.index), [1, 0]);
});

test('gemini batchEmbedContents: one embedding per request, at most 100, model must match the URL', async () => {
  const url = '/v1beta/models/gemini-embedding-001:batchEmbedContents';
  const req = (text) => ({ model: 'models/gemini-embedding-001', content: { parts: [{ text }] }, outputDimensionality: 3 });
  const ok = await (await post(url, GE, { requests: [req('a'), req('b')] })).json();
  assert.deepEqual(ok, { embeddings: [{ values: standInVector('a', 3) }, { values: standInVector('b', 3) }] });
  const tooMany = await post(url, GE, { requests: Array.from({ length: 101 }, (_, i) => req(`t${i}`)) });
  assert.equal(tooMany.status, 400);
  assert.match((await tooMany.json()).error.message, /at most 100/);
  const wrongModel = await post(url, GE, { requests: [{ ...req('a'), model: 'models/other' }] });
  assert.equal(wrongModel.status, 400);
  const single = await (await post('/v1beta/models/text-embedding-004:embedContent', GE, { content: { parts: [{ text: 'a' }] } })).json();
  assert.deepEqual(single.embedding.values, standInVector('a', 8));
});

test('ollama embeddings: the OpenAI-compatible endpoint (floats only) and the native /api/embed', async () => {
  const H = { 'content-type': 'application/json' };
  const compat = await (await post('/ollama/v1/embeddings', H, { model: 'nomic-embed-text', input: 'hi', encoding_format: 'base64' })).json();
  assert.deepEqual(compat.data[0].embedding, standInVector('hi', 8), 'Ollama answers floats whatever was asked');
  const native = await (await post('/ollama/api/embed', H, { model: 'nomic-embed-text', input: ['a', 'b'] })).json();
  assert.deepEqual(native.embeddings, [standInVector('a', 8), standInVector('b', 8)]);
  assert.equal(native.prompt_eval_count, 2);
  const legacy = await (await post('/ollama/api/embeddings', H, { model: 'nomic-embed-text', prompt: 'a' })).json();
  assert.deepEqual(legacy.embedding, standInVector('a', 8));
});

test('CLI prints its URL', async () => {
  const file = fileURLToPath(new URL('./stand-in.mjs', import.meta.url));
  const child = spawn(process.execPath, [file, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const line = await new Promise((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (d) => {
        buf += d;
        if (buf.includes('\n')) resolve(buf.split('\n')[0]);
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}`)));
    });
    const m = line.match(/^stand-in listening on (http:\/\/127\.0\.0\.1:(\d+))$/);
    assert.ok(m, line);
    const r = await fetch(m[1] + '/__health');
    assert.equal(r.status, 200);
  } finally {
    child.kill('SIGTERM');
  }
});
