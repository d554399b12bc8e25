// The official OpenAI SDK against /v1/responses, /v1/models/{model} and /v1/embeddings, with
// every provider behind the stand-in: what the SDK gets, and what the provider was sent.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { standInVector } from '../support/stand-in.mjs';
import { startWithStandIn, streamSse, userWithKey } from './provider-helpers.mjs';

const CHAT_MODELS = {
  openai: 'openai/gpt-4o',
  anthropic: 'anthropic/claude-3-5-haiku-latest',
  gemini: 'gemini/gemini-2.0-flash',
};

/** The system prompt and the turns a provider was sent, whatever its wire format. */
function sentConversation(rec) {
  const text = (c) => (typeof c === 'string' ? c : (c ?? []).map((p) => p.text).join(''));
  if (rec.provider === 'gemini') {
    return {
      system: rec.body.systemInstruction?.parts.map((p) => p.text).join('\n') ?? null,
      turns: rec.body.contents.map((c) => [c.role === 'model' ? 'assistant' : c.role, c.parts.map((p) => p.text).join('\n')]),
    };
  }
  if (rec.provider === 'anthropic') {
    return { system: rec.body.system ?? null, turns: rec.body.messages.map((m) => [m.role, text(m.content)]) };
  }
  const system = rec.body.messages.filter((m) => m.role === 'system').map((m) => m.content);
  return {
    system: system.length ? system.join('\n') : null,
    turns: rec.body.messages.filter((m) => m.role !== 'system').map((m) => [m.role, text(m.content)]),
  };
}

describe('the OpenAI SDK against /v1/responses, /v1/models/{model} and /v1/embeddings', () => {
  let env;
  before(async () => {
    env = await startWithStandIn({
      vars: { PROVIDER_MAX_RETRIES: '0', MODEL_ALIASES: '{"smart":"openai/gpt-4o"}' },
    });
  });
  after(async () => { await env?.stop(); });
  beforeEach(() => env.s.reset());

  async function sdk(options = {}) {
    const user = await userWithKey(env.w);
    return { client: new OpenAI({ apiKey: user.key, baseURL: `${env.w.url}/v1`, maxRetries: 0, ...options }), user };
  }
  const upstream = (endpoint = 'chat') => env.s.requests.filter((r) => r.endpoint === endpoint);

  for (const [provider, model] of Object.entries(CHAT_MODELS)) {
    test(`responses.create with ${provider}: instructions become its system prompt, the reply one output_text`, async () => {
      const { client } = await sdk();
      const response = await client.responses.create({
        model,
        instructions: 'Be brief.',
        input: 'hello there how are you',
        max_output_tokens: 50,
      });
      assert.match(response.id, /^resp_[0-9a-f]{48}$/);
      assert.equal(response.object, 'response');
      assert.equal(response.status, 'completed');
      assert.equal(response.model, model);
      assert.equal(response.output_text, 'Echo: hello there how are you');
      assert.equal(response.output.length, 1);
      assert.equal(response.output[0].type, 'message');
      assert.equal(response.output[0].content[0].type, 'output_text');
      assert.equal(response.usage.output_tokens, 6);
      assert.equal(response.usage.total_tokens, response.usage.input_tokens + 6);
      const [rec] = upstream();
      assert.equal(rec.provider, provider);
      assert.equal(rec.stream, false);
      assert.deepEqual(sentConversation(rec), { system: 'Be brief.', turns: [['user', 'hello there how are you']] });
      const maxTokens = { openai: rec.body.max_completion_tokens, anthropic: rec.body.max_tokens, gemini: rec.body.generationConfig?.maxOutputTokens };
      assert.equal(maxTokens[provider], 50);
    });

    test(`responses.stream with ${provider}: the event sequence the SDK assembles`, async () => {
      const { client } = await sdk();
      env.s.script({ chunkDelayMs: 20 });
      const stream = client.responses.stream({ model, input: 'stream these few words please' });
      const types = [];
      let deltas = '';
      for await (const event of stream) {
        types.push(event.type);
        if (event.type === 'response.output_text.delta') deltas += event.delta;
      }
      const final = await stream.finalResponse();
      assert.equal(deltas, 'Echo: stream these few words please');
      assert.equal(final.output_text, deltas);
      assert.equal(final.status, 'completed');
      assert.ok(final.usage.output_tokens > 0);
      assert.deepEqual(types.slice(0, 4), ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
      assert.deepEqual(types.slice(-4), ['response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed']);
      assert.ok(types.filter((t) => t === 'response.output_text.delta').length >= 2, types.join(','));
      assert.equal(upstream()[0].stream, true, 'the provider was asked to stream');
    });
  }

  test('the raw stream: event lines, sequence numbers from 0, no [DONE], deltas as they arrive', async () => {
    const { user } = await sdk();
    env.s.script({ chunkDelayMs: 150, chunkWords: 1 });
    const res = await streamSse(`${env.w.url}/v1/responses`, {
      token: user.key,
      body: { model: CHAT_MODELS.openai, input: 'one two three four', stream: true, store: false },
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    assert.ok(!res.text.includes('[DONE]'));
    const blocks = res.text.split('\n\n').filter(Boolean);
    for (const block of blocks) assert.match(block, /^event: [a-z_.]+\ndata: \{/);
    const events = res.events.map((e) => e.json);
    assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
    for (const [i, block] of blocks.entries()) assert.equal(block.split('\n')[0], `event: ${events[i].type}`);
    const deltas = res.events.filter((e) => e.json.type === 'response.output_text.delta');
    assert.ok(deltas.length >= 5, `${deltas.length} deltas`);
    assert.ok(deltas.at(-1).at - deltas[0].at >= 400, 'deltas were relayed as the provider sent them, not buffered');
    assert.equal(events.at(-1).response.store, false);
  });

  test('previous_response_id continues a stored turn: its input and reply, not its instructions', async () => {
    const { client } = await sdk();
    const first = await client.responses.create({ model: CHAT_MODELS.anthropic, instructions: 'Be brief.', input: 'first question' });
    const second = await client.responses.create({ model: CHAT_MODELS.gemini, input: 'second question', previous_response_id: first.id });
    assert.equal(second.previous_response_id, first.id);
    const third = client.responses.stream({ model: CHAT_MODELS.openai, input: 'third question', previous_response_id: second.id, instructions: 'Answer in French.' });
    const final = await third.finalResponse();
    assert.equal(final.output_text, 'Echo: third question');
    const [, toGemini, toOpenAi] = upstream();
    assert.deepEqual(sentConversation(toGemini), {
      system: null,
      turns: [['user', 'first question'], ['assistant', 'Echo: first question'], ['user', 'second question']],
    });
    assert.deepEqual(sentConversation(toOpenAi), {
      system: 'Answer in French.',
      turns: [
        ['user', 'first question'], ['assistant', 'Echo: first question'],
        ['user', 'second question'], ['assistant', 'Echo: second question'],
        ['user', 'third question'],
      ],
    });
    const [row] = await env.w.sql(`select user_id, created_at, expires_at, previous_response_id from responses where id = '${second.id}'`);
    assert.equal(row.previous_response_id, first.id);
    assert.equal(row.expires_at - row.created_at, 30 * 24 * 3600 * 1000, 'kept 30 days');
  });

  test('a response that was not stored, or is another user\'s, cannot be continued (400 naming the param)', async () => {
    const { client } = await sdk();
    const { client: other } = await sdk();
    const unstored = await client.responses.create({ model: CHAT_MODELS.openai, input: 'x', store: false });
    assert.equal(unstored.store, false);
    const stored = await client.responses.create({ model: CHAT_MODELS.openai, input: 'y' });
    for (const [who, id] of [[client, unstored.id], [other, stored.id], [client, 'resp_nope']]) {
      await assert.rejects(who.responses.create({ model: CHAT_MODELS.openai, input: 'z', previous_response_id: id }), (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError, err.constructor.name);
        assert.equal(err.code, 'previous_response_not_found');
        assert.equal(err.param, 'previous_response_id');
        return true;
      });
    }
    assert.equal(upstream().length, 2, 'refused before any provider call');
    const rows = await env.w.sql(`select id from responses where id = '${unstored.id}'`);
    assert.equal(rows.length, 0, 'store: false wrote nothing');
  });

  test('responses.retrieve answers a stored response as it was; delete forgets it', async () => {
    const { client } = await sdk();
    const { client: other } = await sdk();
    const created = await client.responses.create({ model: CHAT_MODELS.gemini, input: 'keep me', metadata: { topic: 'test' } });
    const got = await client.responses.retrieve(created.id);
    assert.equal(got.id, created.id);
    assert.equal(got.output_text, 'Echo: keep me');
    assert.deepEqual(got.metadata, { topic: 'test' });
    await assert.rejects(other.responses.retrieve(created.id), OpenAI.NotFoundError, 'another user sees nothing');
    await client.responses.delete(created.id);
    await assert.rejects(client.responses.retrieve(created.id), OpenAI.NotFoundError);
    await assert.rejects(client.responses.delete(created.id), OpenAI.NotFoundError);
  });

  test('an item_reference stands for the stored answer it names', async () => {
    const { user } = await sdk();
    const first = await fetch(`${env.w.url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${user.key}` },
      body: JSON.stringify({ model: CHAT_MODELS.openai, input: 'remember this' }),
    }).then((r) => r.json());
    const messageId = first.output[0].id;
    const res = await fetch(`${env.w.url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${user.key}` },
      body: JSON.stringify({
        model: CHAT_MODELS.anthropic,
        input: [{ role: 'user', content: 'remember this' }, { type: 'item_reference', id: messageId }, { role: 'user', content: 'and?' }],
      }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(sentConversation(upstream()[1]).turns, [['user', 'remember this'], ['assistant', 'Echo: remember this'], ['user', 'and?']]);
  });

  test('a provider failure mid-stream is an error event, then response.failed; the SDK raises APIError', async () => {
    const { client, user } = await sdk();
    env.s.script({ default: { match: { provider: 'openai' }, midStreamError: { afterChunks: 1 } } });
    const stream = client.responses.stream({ model: CHAT_MODELS.openai, input: 'one two three four five six' });
    await assert.rejects(async () => { for await (const _ of stream) { /* drain */ } }, (err) => {
      assert.ok(err instanceof OpenAI.APIError, err.constructor.name);
      assert.match(err.message, /openai/);
      return true;
    });
    const raw = await streamSse(`${env.w.url}/v1/responses`, {
      token: user.key, body: { model: CHAT_MODELS.openai, input: 'one two three four five six', stream: true },
    });
    const tail = raw.events.slice(-2).map((e) => e.json);
    assert.equal(tail[0].type, 'error');
    assert.equal(tail[0].error.code, 'provider_error');
    assert.equal(tail[1].type, 'response.failed');
    assert.equal(tail[1].response.status, 'failed');
    assert.equal(tail[1].response.output[0].content[0].text, 'Echo: one two ');
    const stored = await env.w.sql(`select id from responses where id = '${tail[1].response.id}'`);
    assert.equal(stored.length, 0, 'a failed response is not stored');
  });

  test('tools, tool_choice and images are a 400 naming the parameter, on both APIs', async () => {
    const { client } = await sdk();
    const cases = [
      [() => client.responses.create({ model: CHAT_MODELS.openai, input: 'x', tools: [{ type: 'function', name: 'f', parameters: { type: 'object' } }] }), 'tools'],
      [() => client.responses.create({ model: CHAT_MODELS.openai, input: 'x', tool_choice: 'required' }), 'tool_choice'],
      [() => client.responses.create({
        model: CHAT_MODELS.openai,
        input: [{ role: 'user', content: [{ type: 'input_text', text: 'what?' }, { type: 'input_image', image_url: 'data:image/png;base64,AAAA', detail: 'auto' }] }],
      }), 'input[0].content[1]'],
      [() => client.chat.completions.create({ model: CHAT_MODELS.openai, messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'f' } }] }), 'tools'],
      [() => client.chat.completions.create({ model: CHAT_MODELS.openai, messages: [{ role: 'user', content: 'x' }], tool_choice: 'required' }), 'tool_choice'],
    ];
    for (const [call, param] of cases) {
      await assert.rejects(call(), (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError, err.constructor.name);
        assert.equal(err.code, 'unsupported_parameter');
        assert.equal(err.param, param);
        assert.match(err.message, /not supported yet/);
        return true;
      });
    }
    assert.equal(env.s.requests.length, 0, 'nothing reached a provider');
  });

  test('models.retrieve by id (the SDK encodes the slash), alias and bare name; unknown is NotFoundError', async () => {
    const { client, user } = await sdk();
    const byId = await client.models.retrieve('anthropic/claude-3-7-sonnet-latest');
    assert.deepEqual(byId, { id: 'anthropic/claude-3-7-sonnet-latest', object: 'model', created: 0, owned_by: 'anthropic' });
    assert.equal((await client.models.retrieve('smart')).owned_by, 'openai');
    assert.equal((await client.models.retrieve('gpt-4o')).id, 'gpt-4o');
    assert.equal((await client.models.retrieve('openai/text-embedding-3-small')).owned_by, 'openai');
    assert.equal((await client.models.retrieve('ollama/qwen2.5:0.5b')).owned_by, 'ollama', 'a model only the provider lists');
    const unencoded = await fetch(`${env.w.url}/v1/models/gemini/gemini-2.0-flash`, { headers: { authorization: `Bearer ${user.key}` } });
    assert.equal(unencoded.status, 200);
    assert.equal((await unencoded.json()).id, 'gemini/gemini-2.0-flash');
    for (const missing of ['nope/nothing', 'gpt-9000', 'openai/gpt-4o/extra']) {
      await assert.rejects(client.models.retrieve(missing), (err) => {
        assert.ok(err instanceof OpenAI.NotFoundError, `${missing}: ${err.constructor.name}`);
        assert.equal(err.code, 'model_not_found');
        return true;
      });
    }
  });

  const EMBEDDING_MODELS = {
    openai: ['openai/text-embedding-3-small', 'text-embedding-3-small'],
    gemini: ['gemini/gemini-embedding-001', 'gemini-embedding-001'],
    ollama: ['ollama/nomic-embed-text', 'nomic-embed-text'],
  };
  for (const [provider, [model, upstreamName]] of Object.entries(EMBEDDING_MODELS)) {
    test(`embeddings.create with ${provider}: base64 (the SDK's default) and float give the provider's vectors in order`, async () => {
      const { client } = await sdk();
      const input = ['the first text', 'a second one', 'third'];
      const b64 = await client.embeddings.create({ model, input, dimensions: 4 });
      assert.equal(b64.object, 'list');
      assert.equal(b64.model, model);
      assert.deepEqual(b64.data.map((d) => d.index), [0, 1, 2]);
      input.forEach((text, i) => assert.deepEqual(b64.data[i].embedding, standInVector(text, 4), text));
      const floats = await client.embeddings.create({ model, input: 'just one', encoding_format: 'float' });
      assert.deepEqual(floats.data[0].embedding.map(Math.fround), standInVector('just one', 8));
      assert.equal(floats.usage.prompt_tokens, provider === 'gemini' ? 0 : 2);
      const [rec] = upstream('embeddings');
      assert.equal(rec.provider, provider);
      if (provider === 'gemini') {
        assert.equal(rec.path, `/v1beta/models/${upstreamName}:batchEmbedContents`);
        assert.deepEqual(rec.body.requests.map((r) => r.content.parts[0].text), input);
        assert.equal(rec.body.requests[0].outputDimensionality, 4);
      } else {
        assert.equal(rec.body.model, upstreamName);
        assert.deepEqual(rec.body.input, input);
        assert.equal(rec.body.encoding_format, 'float', 'floats are asked for upstream whatever the client wants');
        assert.equal(rec.body.dimensions, 4);
      }
    });
  }

  test('embeddings: more inputs than Gemini takes in one batch are split and rejoined in order', async () => {
    const { client } = await sdk();
    const input = Array.from({ length: 150 }, (_, i) => `text number ${i}`);
    const res = await client.embeddings.create({ model: 'gemini-embedding-001', input, encoding_format: 'float' });
    assert.equal(res.data.length, 150);
    assert.deepEqual(res.data[149].embedding.map(Math.fround), standInVector('text number 149', 8));
    assert.deepEqual(upstream('embeddings').map((r) => r.body.requests.length), [100, 50]);
  });

  test('embeddings: an answer out of order is put back in input order by index', async () => {
    const { client } = await sdk();
    env.s.script({ default: { match: { endpoint: 'embeddings' }, shuffle: true } });
    const res = await client.embeddings.create({ model: 'text-embedding-3-large', input: ['a', 'b', 'c'] });
    assert.deepEqual(res.data[0].embedding, standInVector('a', 8));
    assert.deepEqual(res.data[2].embedding, standInVector('c', 8));
  });

  test('embeddings: a model that cannot embed, too many dimensions or token input is a 400 before any provider call', async () => {
    const { client } = await sdk();
    const cases = [
      [{ model: 'openai/gpt-4o', input: 'x' }, 'model_cannot_embed', 'model'],
      [{ model: 'anthropic/claude-3-5-haiku-latest', input: 'x' }, 'model_cannot_embed', 'model'],
      [{ model: 'openai/text-embedding-3-small', input: 'x', dimensions: 4096 }, 'invalid_request', 'dimensions'],
      [{ model: 'openai/text-embedding-3-small', input: [[1, 2, 3]] }, 'invalid_request', 'input'],
      [{ model: 'openai/text-embedding-3-small', input: ['ok', ''] }, 'invalid_request', 'input[1]'],
    ];
    for (const [body, code, param] of cases) {
      await assert.rejects(client.embeddings.create(body), (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError, `${JSON.stringify(body)}: ${err.constructor.name}`);
        assert.equal(err.code, code);
        assert.equal(err.param, param);
        return true;
      });
    }
    await assert.rejects(client.embeddings.create({ model: 'nope/thing', input: 'x' }), OpenAI.NotFoundError);
    assert.equal(env.s.requests.length, 0);
  });

  test("embeddings: a provider's 429 reaches the SDK as RateLimitError with its retry-after", async () => {
    const { client } = await sdk();
    env.s.script({ queue: [{ match: { endpoint: 'embeddings' }, status: 429, retryAfter: 33 }] });
    await assert.rejects(client.embeddings.create({ model: 'text-embedding-3-small', input: 'x' }), (err) => {
      assert.ok(err instanceof OpenAI.RateLimitError, err.constructor.name);
      assert.equal(err.code, 'provider_rate_limited');
      assert.equal(err.headers.get('retry-after'), '33');
      return true;
    });
  });
});
