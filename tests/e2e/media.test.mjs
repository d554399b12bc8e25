// Images and documents in messages: the official OpenAI SDK's vision examples through /v1 to
// every provider, each provider's wire shape as the stand-in checks it, the capability 422
// before any provider call, and bad media refused with the status that says why.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { call, envelope } from './harness.mjs';
import { startWithStandIn, userWithKey } from './provider-helpers.mjs';

// A whole 1×1 PNG, and a minimal PDF.
const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63f8cfc0f01f0005000' +
    '1ff89993d1d0000000049454e44ae426082',
  'hex',
);
const PDF = Buffer.from('%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n');
const pngUrl = `data:image/png;base64,${PNG.toString('base64')}`;

const vision = (model, extra = []) => ({
  model,
  messages: [
    { role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: pngUrl, detail: 'auto' } }, ...extra] },
  ],
});

describe('images and documents in messages', () => {
  let env;
  let client;
  let key;
  before(async () => {
    env = await startWithStandIn({ vars: { PROVIDER_MAX_RETRIES: '0', MAX_FILE_SIZE: '65536' } });
    ({ key } = await userWithKey(env.w));
    client = new OpenAI({ apiKey: key, baseURL: `${env.w.url}/v1`, maxRetries: 0 });
  });
  after(async () => { await env?.stop(); });
  beforeEach(() => env.s.reset());
  const chatRequests = () => env.s.requests.filter((r) => r.endpoint === 'chat');

  test('the SDK vision example reaches OpenAI as image_url parts with a data: URL', async () => {
    const completion = await client.chat.completions.create(vision('gpt-4o'));
    assert.equal(completion.choices[0].message.content, 'Echo: What is this? [image/png]');
    const [rec] = chatRequests();
    assert.equal(rec.provider, 'openai');
    assert.deepEqual(rec.body.messages[0].content, [
      { type: 'text', text: 'What is this?' },
      { type: 'image_url', image_url: { url: pngUrl } },
    ]);
  });

  test('Anthropic gets image blocks with bare base64 and the media type beside it', async () => {
    const stream = await client.chat.completions.create({ ...vision('anthropic/claude-3-5-sonnet-latest'), stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'Echo: What is this? [image/png]');
    const [rec] = chatRequests();
    assert.equal(rec.provider, 'anthropic');
    assert.deepEqual(rec.body.messages[0].content[1], {
      type: 'image',
      source: { type: 'base64', media_type: 'image/png', data: PNG.toString('base64') },
    });
  });

  test('Gemini gets inlineData without a data: prefix, and https images as fileData', async () => {
    const body = vision('gemini/gemini-2.0-flash', [{ type: 'image_url', image_url: { url: 'https://example.com/cat.webp' } }]);
    const completion = await client.chat.completions.create(body);
    assert.equal(completion.choices[0].message.content, 'Echo: What is this? [image/png] [image/webp https://example.com/cat.webp]');
    const [rec] = chatRequests();
    assert.deepEqual(rec.body.contents[0].parts.slice(1), [
      { inlineData: { mimeType: 'image/png', data: PNG.toString('base64') } },
      { fileData: { mimeType: 'image/webp', fileUri: 'https://example.com/cat.webp' } },
    ]);
  });

  test('a PDF file part goes to OpenAI as file_data and to Anthropic as a document block', async () => {
    for (const file_data of [PDF.toString('base64'), `data:application/pdf;base64,${PDF.toString('base64')}`]) {
      const part = { type: 'file', file: { file_data, filename: 'a.pdf' } };
      const messages = [{ role: 'user', content: [{ type: 'text', text: 'Summarise' }, part] }];
      const openai = await client.chat.completions.create({ model: 'openai/gpt-4o', messages });
      assert.equal(openai.choices[0].message.content, 'Echo: Summarise [application/pdf]');
      const anthropic = await client.chat.completions.create({ model: 'anthropic/claude-3-5-sonnet-latest', messages });
      assert.equal(anthropic.choices[0].message.content, 'Echo: Summarise [application/pdf]');
    }
    const [openaiRec, anthropicRec] = chatRequests();
    assert.equal(openaiRec.body.messages[0].content[1].file.file_data, `data:application/pdf;base64,${PDF.toString('base64')}`);
    assert.equal(anthropicRec.body.messages[0].content[1].type, 'document');
    assert.equal(anthropicRec.body.messages[0].content[1].title, 'a.pdf');
  });

  test('a file part may name one of the caller’s stored files by file_id; another user’s is a 400', async () => {
    const { access_token } = await userWithKey(env.w);
    const upload = async (token, bytes, name) => {
      const form = new FormData();
      form.append('file', new Blob([bytes]), name);
      const res = await fetch(`${env.w.url}/api/files/upload`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
      assert.equal(res.status, 201);
      return (await res.json()).id;
    };
    // The key's owner uploads with the key itself; `access_token` is another user's session.
    const pdfId = await upload(key, PDF, 'report.pdf');
    const notesId = await upload(key, Buffer.from('alpha beta gamma\n'), 'notes.txt');
    const completion = await client.chat.completions.create({
      model: 'anthropic/claude-3-5-sonnet-latest',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Summarise' }, { type: 'file', file: { file_id: pdfId } }, { type: 'file', file: { file_id: notesId } }] }],
    });
    assert.match(completion.choices[0].message.content, /^Echo: Summarise/);
    const [rec] = chatRequests();
    const blocks = rec.body.messages[0].content;
    assert.equal(blocks[1].type, 'document');
    assert.equal(blocks[1].source.data, PDF.toString('base64'));
    assert.equal(blocks[1].title, 'report.pdf');
    assert.equal(blocks[2].type, 'text');
    assert.match(blocks[2].text, /alpha beta gamma/);

    const theirs = await upload(access_token, PDF, 'theirs.pdf');
    env.s.reset();
    const res = await call(env.w.url, 'POST', '/v1/chat/completions', {
      token: key,
      json: { model: 'openai/gpt-4o', messages: [{ role: 'user', content: [{ type: 'file', file: { file_id: theirs } }] }] },
    });
    const error = envelope(assert, res, 400, 'file_not_found');
    assert.equal(error.param, 'messages[0].content[0].file.file_id');
    assert.equal(chatRequests().length, 0);
  });

  test('an image for a model without vision is a 422 naming both, before any provider call', async () => {
    await assert.rejects(
      client.chat.completions.create(vision('anthropic/claude-3-5-haiku-latest')),
      (err) => {
        assert.equal(err.status, 422);
        assert.equal(err.code, 'model_capability_missing');
        assert.equal(err.param, 'model');
        assert.match(err.message, /claude-3-5-haiku-latest.*images \(vision\)/);
        return true;
      },
    );
    const pdf = { type: 'file', file: { file_data: PDF.toString('base64') } };
    const res = await call(env.w.url, 'POST', '/v1/chat/completions', {
      token: key,
      json: { model: 'ollama/llava', messages: [{ role: 'user', content: [pdf] }] },
    });
    assert.match(envelope(assert, res, 422, 'model_capability_missing').message, /documents/);
    assert.equal(chatRequests().length, 0, 'no provider was called');
  });

  test('bad media get 413, 415 or 422 naming the part, and no provider call', async () => {
    const post = (content, model = 'openai/gpt-4o') =>
      call(env.w.url, 'POST', '/v1/chat/completions', { token: key, json: { model, messages: [{ role: 'user', content }] } });
    const image = (url) => [{ type: 'image_url', image_url: { url } }];
    const svg = await post(image(`data:image/svg+xml;base64,${Buffer.from('<svg/>').toString('base64')}`));
    assert.equal(envelope(assert, svg, 415, 'unsupported_file_type').param, 'messages[0].content[0].image_url.url');
    const lying = await post(image(`data:image/jpeg;base64,${PNG.toString('base64')}`));
    envelope(assert, lying, 422, 'media_type_mismatch');
    const cut = await post(image(`data:image/png;base64,${PNG.subarray(0, 40).toString('base64')}`));
    envelope(assert, cut, 422, 'invalid_image');
    const big = Buffer.concat([PNG.subarray(0, 33), Buffer.alloc(70_000), PNG.subarray(33)]);
    const tooBig = await post(image(`data:image/png;base64,${big.toString('base64')}`));
    assert.match(envelope(assert, tooBig, 413, 'file_too_large').message, /MAX_FILE_SIZE \(65536 bytes\)/);
    const plain = await post(image('http://example.com/a.png'));
    envelope(assert, plain, 422);
    const audio = await post([{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }]);
    assert.equal(envelope(assert, audio, 400).param, 'messages[0].content[0].type');
    assert.equal(chatRequests().length, 0, 'no provider was called');
  });

  test('a /v1 body with an image may be larger than MAX_BODY_BYTES, up to a base64 MAX_FILE_SIZE', async () => {
    // MAX_BODY_BYTES is 1 MiB by default; this worker's MAX_FILE_SIZE is 64 KiB, so a 60 KiB
    // image passes, and a JSON body over 1 MiB + 4/3 × 64 KiB is a 413 before it is read.
    const image = Buffer.concat([PNG.subarray(0, 33), Buffer.alloc(60_000), PNG.subarray(33)]);
    const res = await call(env.w.url, 'POST', '/v1/chat/completions', {
      token: key,
      json: { model: 'openai/gpt-4o', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${image.toString('base64')}` } }] }] },
    });
    assert.equal(res.status, 200, res.text);
    const huge = await call(env.w.url, 'POST', '/v1/chat/completions', {
      token: key,
      json: { model: 'openai/gpt-4o', messages: [{ role: 'user', content: 'x'.repeat(1024 * 1024 + 100_000) }] },
    });
    envelope(assert, huge, 413, 'payload_too_large');
  });
});
