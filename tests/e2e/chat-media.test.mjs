// Messages made of parts in stored chat: inline images and attached files through /api/chat to
// each provider's wire format, the image_description mode with a vision model, the capability
// 422 before anything is stored, parts kept and read back (plain strings unchanged), export
// naming attachments, and deleting a conversation keeping its files.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { call, envelope } from './harness.mjs';
import { startWithStandIn, userWithKey } from './provider-helpers.mjs';

const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63f8cfc0f01f0005000' +
    '1ff89993d1d0000000049454e44ae426082',
  'hex',
);
const PDF = Buffer.from('%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n');
const b64 = PNG.toString('base64');

async function upload(w, token, bytes, name) {
  const form = new FormData();
  form.append('file', new Blob([bytes]), name);
  const res = await fetch(`${w.url}/api/files/upload`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
  assert.equal(res.status, 201);
  return res.json();
}

describe('parts in stored chat', () => {
  let env;
  let user;
  before(async () => {
    env = await startWithStandIn({ vars: { PROVIDER_MAX_RETRIES: '0' } });
    user = await userWithKey(env.w);
  });
  after(async () => { await env?.stop(); });
  beforeEach(() => env.s.reset());
  const chatRequests = () => env.s.requests.filter((r) => r.endpoint === 'chat');
  const send = (json) => call(env.w.url, 'POST', '/api/chat', { token: user.access_token, json });

  test('an inline image reaches OpenAI as image_url and is stored as parts', async () => {
    const res = await send({
      model: 'openai/gpt-4o',
      content: [{ type: 'text', text: 'What is this?' }, { type: 'image', media_type: 'image/png', data: b64 }],
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.assistant_message.content, 'Echo: What is this? [image/png]');
    assert.equal(res.body.user_message.content, 'What is this?');
    assert.deepEqual(res.body.user_message.parts, [
      { type: 'text', text: 'What is this?' },
      { type: 'image', media_type: 'image/png', data: b64 },
    ]);
    const [rec] = chatRequests();
    assert.deepEqual(rec.body.messages.at(-1).content[1], { type: 'image_url', image_url: { url: `data:image/png;base64,${b64}` } });
    const history = await call(env.w.url, 'GET', `/api/conversations/${res.body.conversation.id}/messages`, { token: user.access_token });
    assert.deepEqual(history.body.data[0].parts, res.body.user_message.parts);
    assert.deepEqual(history.body.data[1].parts, [{ type: 'text', text: 'Echo: What is this? [image/png]' }]);
  });

  test('the image_description mode works end to end with a vision model, streamed', async () => {
    const res = await fetch(`${env.w.url}/api/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${user.access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gemini/gemini-2.0-flash', mode: 'image_description', stream: true, content: [{ type: 'image', url: `data:image/png;base64,${b64}` }] }),
    });
    assert.equal(res.status, 200);
    const text = await res.text();
    const deltas = [...text.matchAll(/^event: delta\ndata: (.*)$/gm)].map((m) => JSON.parse(m[1]).text).join('');
    assert.equal(deltas, 'Echo: [image/png]');
    assert.match(text, /event: done/);
    const [rec] = chatRequests();
    assert.match(rec.body.systemInstruction.parts[0].text, /You describe images/);
    assert.deepEqual(rec.body.contents.at(-1).parts, [{ inlineData: { mimeType: 'image/png', data: b64 } }]);
  });

  test('attached files: a PDF to Anthropic as a document, a text file as its text; another user’s id is a 422', async () => {
    const pdf = await upload(env.w, user.access_token, PDF, 'report.pdf');
    const notes = await upload(env.w, user.access_token, Buffer.from('alpha beta\n'), 'notes.md');
    const res = await send({
      model: 'anthropic/claude-3-5-sonnet-latest',
      content: [{ type: 'text', text: 'Summarise' }, { type: 'file', file_id: pdf.id }, { type: 'file', file_id: notes.id }],
    });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body.user_message.parts.slice(1), [
      { type: 'file', file_id: pdf.id, name: 'report.pdf', media_type: 'application/pdf' },
      { type: 'file', file_id: notes.id, name: 'notes.md', media_type: 'text/markdown' },
    ]);
    const [rec] = chatRequests();
    const blocks = rec.body.messages.at(-1).content;
    assert.deepEqual(blocks[1], { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF.toString('base64') }, title: 'report.pdf' });
    assert.deepEqual(blocks[2], { type: 'text', text: 'File notes.md:\nalpha beta\n' });

    // A later turn sees the attachments as notes naming them, not their bytes again.
    const next = await send({ model: 'anthropic/claude-3-5-sonnet-latest', conversation_id: res.body.conversation.id, content: 'And?' });
    assert.equal(next.status, 200, next.text);
    const later = chatRequests()[1].body.messages[0].content;
    assert.equal(later, `Summarise\n[attached file report.pdf (application/pdf), id ${pdf.id}]\n[attached file notes.md (text/markdown), id ${notes.id}]`);

    const other = await userWithKey(env.w);
    const theirs = await call(env.w.url, 'POST', '/api/chat', { token: other.access_token, json: { content: [{ type: 'file', file_id: pdf.id }] } });
    assert.equal(envelope(assert, theirs, 422, 'file_not_found').param, 'content[0].file_id');

    // Export names the attachments; deleting the conversation keeps the files.
    const md = await call(env.w.url, 'GET', `/api/conversations/${res.body.conversation.id}/export?format=markdown`, { token: user.access_token });
    assert.match(md.text, new RegExp(`- Attached file: report\\.pdf \\(application/pdf\\), id \`${pdf.id}\``));
    const json = await call(env.w.url, 'GET', `/api/conversations/${res.body.conversation.id}/export`, { token: user.access_token });
    assert.equal(json.body.messages[0].parts[1].file_id, pdf.id);
    const del = await call(env.w.url, 'DELETE', `/api/conversations/${res.body.conversation.id}`, { token: user.access_token });
    assert.equal(del.status, 204);
    assert.equal((await call(env.w.url, 'GET', `/api/files/${pdf.id}`, { token: user.access_token })).status, 200);
  });

  test('an image for a model without vision is a 422 before anything is stored', async () => {
    const before = await env.w.sql('select count(*) as n from messages');
    const res = await send({ model: 'anthropic/claude-3-5-haiku-latest', content: [{ type: 'text', text: 'hi' }, { type: 'image', media_type: 'image/png', data: b64 }] });
    const err = envelope(assert, res, 422, 'model_capability_missing');
    assert.match(err.message, /claude-3-5-haiku-latest.*images \(vision\)/);
    assert.equal(chatRequests().length, 0);
    assert.deepEqual(await env.w.sql('select count(*) as n from messages'), before);
  });

  test('bad parts are refused naming them; a plain string is still one text part', async () => {
    const unknown = await send({ content: [{ type: 'tool_call', name: 'f' }] });
    assert.equal(envelope(assert, unknown, 422).param, 'content[0]');
    assert.match(unknown.body.error.message, /unknown part type `tool_call`/);
    const svg = await send({ content: [{ type: 'image', media_type: 'image/svg+xml', data: Buffer.from('<svg/>').toString('base64') }] });
    envelope(assert, svg, 415, 'unsupported_file_type');
    const plain = await send({ model: 'openai/gpt-4o', content: 'Just text' });
    assert.equal(plain.status, 200, plain.text);
    assert.deepEqual(plain.body.user_message.parts, [{ type: 'text', text: 'Just text' }]);
    const [row] = await env.w.sql(`select content, parts from messages where id = '${plain.body.user_message.id}'`);
    assert.deepEqual(row, { content: 'Just text', parts: null }, 'stored as before parts existed');
  });

  test('analyze: a text file is read into the prompt and the result stored; Web+ path too', async () => {
    const csv = await upload(env.w, user.access_token, Buffer.from('a,b\n1,2\n'), 'data.csv');
    const res = await call(env.w.url, 'POST', `/api/files/${csv.id}/analyze`, {
      token: user.access_token,
      json: { instruction: 'Sum it', model: 'openai/gpt-4o' },
    });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(
      { file_id: res.body.file_id, model: res.body.model, instruction: res.body.instruction, truncated: res.body.truncated },
      { file_id: csv.id, model: 'openai/gpt-4o', instruction: 'Sum it', truncated: false },
    );
    assert.match(res.body.analysis, /^Echo: Sum it/);
    const [rec] = chatRequests();
    assert.equal(rec.body.messages.at(-1).content, 'Sum it\nFile data.csv:\na,b\n1,2\n');
    const meta = await call(env.w.url, 'GET', `/api/files/${csv.id}`, { token: user.access_token });
    assert.deepEqual(meta.body.analysis, res.body);
    const web = await call(env.w.url, 'POST', `/files/${csv.id}/analyze`, { token: user.access_token, json: { model: 'openai/gpt-4o' } });
    assert.equal(web.status, 200, web.text);
    assert.match(chatRequests()[1].body.messages.at(-1).content, /^Analyse this file/);
  });

  test('analyze: a long text is cut to the budget and says so', async () => {
    const long = await upload(env.w, user.access_token, Buffer.from('row of the table\n'.repeat(8000)), 'long.txt');
    const res = await call(env.w.url, 'POST', `/api/files/${long.id}/analyze`, { token: user.access_token, json: { model: 'openai/gpt-4o' } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.truncated, true);
    const sent = chatRequests()[0].body.messages.at(-1).content;
    assert.match(sent, /File long\.txt \(truncated: the first \d+ of 136000 characters/);
    assert.ok(sent.length < 136000);
  });

  test('analyze: an image goes to a vision model (streamed), and to one without vision is a 422', async () => {
    const png = await upload(env.w, user.access_token, PNG, 'pixel.png');
    const refused = await call(env.w.url, 'POST', `/api/files/${png.id}/analyze`, { token: user.access_token, json: { model: 'anthropic/claude-3-5-haiku-latest' } });
    envelope(assert, refused, 422, 'model_capability_missing');
    assert.equal(chatRequests().length, 0);
    const res = await fetch(`${env.w.url}/api/files/${png.id}/analyze`, {
      method: 'POST',
      headers: { authorization: `Bearer ${user.access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'anthropic/claude-3-5-sonnet-latest', instruction: 'Describe', stream: true }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/event-stream/);
    const text = await res.text();
    const deltas = [...text.matchAll(/^event: delta\ndata: (.*)$/gm)].map((m) => JSON.parse(m[1]).text).join('');
    assert.equal(deltas, 'Echo: Describe [image/png]');
    const done = JSON.parse(/^event: done\ndata: (.*)$/m.exec(text)[1]);
    assert.equal(done.analysis, deltas);
    const [rec] = chatRequests();
    assert.equal(rec.body.messages[0].content[1].type, 'image');
    const meta = await call(env.w.url, 'GET', `/api/files/${png.id}`, { token: user.access_token });
    assert.equal(meta.body.analysis.analysis, deltas);
    const other = await userWithKey(env.w);
    envelope(assert, await call(env.w.url, 'POST', `/api/files/${png.id}/analyze`, { token: other.access_token }), 404, 'not_found');
  });
});
