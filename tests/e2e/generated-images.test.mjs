// Replies with pictures: an image-output model's images (Gemini `inlineData`, an
// OpenAI-compatible server's `images`) streamed as `part` events, stored as the user's files
// (R2 bytes and a row, downloadable, listed) with the message's parts pointing at them, replayed
// on resume, and passed through /v1 as `message.images` / `delta.images` for the official SDK.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { call } from './harness.mjs';
import { startWithStandIn, userWithKey } from './provider-helpers.mjs';

// The stand-in's `images: true` picture: a whole 1×1 PNG.
const PNG_B64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
const PNG = Buffer.from(PNG_B64, 'base64');

/** `[{ id, name, data }]` of an SSE body. */
function sseEvents(text) {
  return text
    .split('\n\n')
    .filter((block) => block.trim() && !block.startsWith(':'))
    .map((block) => {
      const field = (name) => block.split('\n').find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
      return { id: field('id'), name: field('event'), data: JSON.parse(field('data')) };
    });
}

describe('generated images', () => {
  let env;
  let user;
  before(async () => {
    env = await startWithStandIn({ vars: { PROVIDER_MAX_RETRIES: '0' } });
    user = await userWithKey(env.w);
  });
  after(async () => {
    await env?.stop();
  });
  beforeEach(() => env.s.reset());

  const streamChat = async (json) => {
    const res = await fetch(`${env.w.url}/api/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${user.access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...json, stream: true }),
    });
    assert.equal(res.status, 200);
    return sseEvents(await res.text());
  };

  test('a streamed Gemini picture is a part event, kept as a file the message points at', async () => {
    env.s.script({ images: true, text: 'Here is your cat.' });
    const events = await streamChat({ model: 'gemini/gemini-2.0-flash', content: 'Draw a cat' });
    const names = events.map((e) => e.name);
    assert.equal(names[0], 'user_message');
    assert.equal(names.at(-1), 'done');
    const part = events.find((e) => e.name === 'part');
    assert.ok(part, `a part event in ${names}`);
    assert.deepEqual(part.data, { part: { type: 'image', media_type: 'image/png', data: PNG_B64 } });
    // The picture comes after the text, as the model sent it.
    assert.ok(names.lastIndexOf('delta') < names.indexOf('part'), names.join());
    const deltas = events.filter((e) => e.name === 'delta').map((e) => e.data.text).join('');
    assert.equal(deltas, 'Here is your cat.');

    const message = events.at(-1).data.message;
    assert.equal(message.content, 'Here is your cat.');
    assert.equal(message.parts.length, 2);
    assert.deepEqual(message.parts[0], { type: 'text', text: 'Here is your cat.' });
    const file = message.parts[1];
    assert.equal(file.type, 'file');
    assert.equal(file.name, 'generated-1.png');
    assert.equal(file.media_type, 'image/png');

    // The bytes are in R2, served to the owner only, and listed with the user's files.
    const download = await fetch(`${env.w.url}/api/files/${file.file_id}/content`, {
      headers: { authorization: `Bearer ${user.access_token}` },
    });
    assert.equal(download.status, 200);
    assert.equal(download.headers.get('content-type'), 'image/png');
    assert.deepEqual(Buffer.from(await download.arrayBuffer()), PNG);
    const meta = await call(env.w.url, 'GET', `/api/files/${file.file_id}`, { token: user.access_token });
    assert.equal(meta.status, 200);
    assert.equal(meta.body.size, PNG.length);
    const stranger = await userWithKey(env.w);
    const theirs = await call(env.w.url, 'GET', `/api/files/${file.file_id}`, { token: stranger.access_token });
    assert.equal(theirs.status, 404);

    // Read back from D1: the same parts; the next turn tells the model about the picture in words.
    const conversationId = events[0].data.conversation.id;
    const history = await call(env.w.url, 'GET', `/api/conversations/${conversationId}/messages`, { token: user.access_token });
    assert.deepEqual(history.body.data[1].parts, message.parts);
    env.s.reset();
    await streamChat({ model: 'gemini/gemini-2.0-flash', conversation_id: conversationId, content: 'Thanks' });
    const [next] = env.s.requests.filter((r) => r.endpoint === 'chat');
    const modelTurn = next.body.contents.find((c) => c.role === 'model');
    assert.match(JSON.stringify(modelTurn.parts), /generated-1\.png/);
    assert.ok(!JSON.stringify(modelTurn.parts).includes(PNG_B64), 'the bytes are not sent again');
  });

  test('a resumed stream replays the picture without a second provider call', async () => {
    env.s.script({ images: true, text: 'Drawn.', chunkDelayMs: 150 });
    const events = await streamChat({ model: 'gemini/gemini-2.0-flash', content: 'Draw' });
    const conversationId = events[0].data.conversation.id;
    const partIndex = events.findIndex((e) => e.name === 'part');
    // Resume from just before the picture: it comes again, then the end.
    const res = await fetch(`${env.w.url}/api/conversations/${conversationId}/stream`, {
      headers: { authorization: `Bearer ${user.access_token}`, 'last-event-id': events[partIndex - 1].id },
    });
    assert.equal(res.status, 200);
    const replay = sseEvents(await res.text());
    assert.deepEqual(replay.map((e) => e.name), events.slice(partIndex).map((e) => e.name));
    assert.deepEqual(replay[0].data, events[partIndex].data);
    assert.equal(env.s.requests.filter((r) => r.endpoint === 'chat').length, 1);
  });

  test('a whole reply from an OpenAI-compatible server keeps its images too (Web+ files path)', async () => {
    env.s.script({ images: [{ mimeType: 'image/png' }, { mimeType: 'image/png' }], text: 'Two.' });
    const res = await call(env.w.url, 'POST', '/api/chat', {
      token: user.access_token,
      json: { model: 'ollama/llava', content: 'Draw two' },
    });
    assert.equal(res.status, 200, res.text);
    const parts = res.body.assistant_message.parts;
    assert.deepEqual(parts.map((p) => p.type), ['text', 'file', 'file']);
    assert.deepEqual(parts.slice(1).map((p) => p.name), ['generated-1.png', 'generated-2.png']);
    const viaWebPlus = await call(env.w.url, 'GET', `/files/${parts[2].file_id}`, { token: user.access_token });
    assert.equal(viaWebPlus.status, 200);
    assert.equal(viaWebPlus.body.media_type, 'image/png');
  });

  test('/v1 passes pictures through as message.images and delta.images, read by the official SDK', async () => {
    const client = new OpenAI({ apiKey: user.key, baseURL: `${env.w.url}/v1`, maxRetries: 0 });
    env.s.script({ images: true, text: 'A cat.' });
    const whole = await client.chat.completions.create({
      model: 'gemini/gemini-2.0-flash',
      messages: [{ role: 'user', content: 'Draw a cat' }],
    });
    assert.equal(whole.choices[0].message.content, 'A cat.');
    assert.deepEqual(whole.choices[0].message.images, [
      { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG_B64}` }, index: 0 },
    ]);

    env.s.script({ images: true, text: 'A cat.' });
    const stream = await client.chat.completions.create({
      model: 'ollama/llava',
      messages: [{ role: 'user', content: 'Draw a cat' }],
      stream: true,
    });
    let text = '';
    const images = [];
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta ?? {};
      text += delta.content ?? '';
      images.push(...(delta.images ?? []));
    }
    assert.equal(text, 'A cat.');
    assert.deepEqual(images.map((i) => i.image_url.url), [`data:image/png;base64,${PNG_B64}`]);
  });
});
