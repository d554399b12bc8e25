// The Vercel AI SDK (`ai` with `@ai-sdk/openai`) against Threadline's /v1, configured the way
// its docs say for any OpenAI-compatible base URL: `createOpenAI({ baseURL, apiKey })`. Its
// default `openai(model)` speaks the Responses API, so this is /v1/responses as a framework
// drives it, with every provider behind the stand-in.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createOpenAI } from '@ai-sdk/openai';
import { embedMany, generateText, streamText } from 'ai';

import { standInVector } from '../support/stand-in.mjs';
import { startWithStandIn, userWithKey } from './provider-helpers.mjs';

const MODELS = {
  openai: 'openai/gpt-4o',
  anthropic: 'anthropic/claude-3-5-haiku-latest',
  gemini: 'gemini/gemini-2.0-flash',
};

describe('the Vercel AI SDK against /v1', () => {
  let env;
  let openai;
  /** The JSON bodies the SDK sent to Threadline, in order. */
  const sent = [];
  before(async () => {
    env = await startWithStandIn({ vars: { PROVIDER_MAX_RETRIES: '0' } });
    const { key } = await userWithKey(env.w);
    const recording = async (url, init) => {
      if (typeof init?.body === 'string') sent.push({ url: String(url), body: JSON.parse(init.body) });
      return fetch(url, init);
    };
    openai = createOpenAI({ baseURL: `${env.w.url}/v1`, apiKey: key, fetch: recording });
  });
  after(async () => { await env?.stop(); });
  beforeEach(() => {
    env.s.reset();
    sent.length = 0;
  });

  const chatRequests = () => env.s.requests.filter((r) => r.endpoint === 'chat');
  const lastUserText = (rec) => {
    const turns = rec.provider === 'gemini' ? rec.body.contents : rec.body.messages;
    const last = turns.at(-1);
    const content = rec.provider === 'gemini' ? last.parts : last.content;
    return typeof content === 'string' ? content : content.map((p) => p.text).join('');
  };

  for (const [provider, model] of Object.entries(MODELS)) {
    test(`generateText with ${provider}: text, usage and the system prompt where the provider wants it`, async () => {
      const result = await generateText({
        model: openai(model),
        system: 'Be brief.',
        prompt: 'hello there how are you',
        maxOutputTokens: 40,
      });
      assert.equal(result.text, 'Echo: hello there how are you');
      assert.equal(result.finishReason, 'stop');
      assert.equal(result.usage.outputTokens, 6);
      assert.equal(result.usage.totalTokens, result.usage.inputTokens + 6);
      assert.match(result.providerMetadata.openai.responseId, /^resp_/);
      const [rec] = chatRequests();
      assert.equal(rec.provider, provider);
      const system = { openai: rec.body.messages?.[0]?.content, anthropic: rec.body.system, gemini: rec.body.systemInstruction?.parts?.[0]?.text };
      assert.equal(system[provider], 'Be brief.');
      assert.equal(lastUserText(rec), 'hello there how are you');
    });

    test(`streamText with ${provider}: the text arrives piece by piece and finishes`, async () => {
      env.s.script({ chunkDelayMs: 40, chunkWords: 1 });
      const result = streamText({ model: openai(model), prompt: 'stream these words' });
      const pieces = [];
      for await (const piece of result.textStream) pieces.push(piece);
      assert.equal(pieces.join(''), 'Echo: stream these words');
      assert.ok(pieces.length >= 3, `${pieces.length} pieces`);
      assert.equal(await result.finishReason, 'stop');
      assert.equal((await result.usage).outputTokens, 4);
      assert.equal(chatRequests()[0].stream, true);
    });
  }

  test('a conversation carried on with response.messages: earlier answers go back by reference', async () => {
    const first = await generateText({ model: openai(MODELS.openai), prompt: 'first question' });
    const second = await generateText({
      model: openai(MODELS.anthropic),
      messages: [
        { role: 'user', content: 'first question' },
        ...first.response.messages,
        { role: 'user', content: 'second question' },
      ],
    });
    assert.equal(second.text, 'Echo: second question');
    assert.ok(sent.every((r) => r.url.endsWith('/v1/responses')), 'the default model speaks the Responses API');
    const reference = sent[1].body.input[1];
    assert.deepEqual(reference, { type: 'item_reference', id: first.response.messages[0].content[0].providerOptions.openai.itemId });
    const rec = chatRequests()[1];
    assert.deepEqual(
      rec.body.messages.map((m) => [m.role, typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('')]),
      [['user', 'first question'], ['assistant', 'Echo: first question'], ['user', 'second question']],
    );
  });

  test('previousResponseId continues a stored response', async () => {
    const first = await generateText({ model: openai(MODELS.gemini), prompt: 'remember the word apple' });
    const second = await generateText({
      model: openai(MODELS.openai),
      prompt: 'which word?',
      providerOptions: { openai: { previousResponseId: first.providerMetadata.openai.responseId } },
    });
    assert.equal(second.text, 'Echo: which word?');
    const sent = chatRequests()[1].body.messages.map((m) => [m.role, m.content]);
    assert.deepEqual(sent, [['user', 'remember the word apple'], ['assistant', 'Echo: remember the word apple'], ['user', 'which word?']]);
  });

  test('tools are refused with a 400 naming them, surfaced as an APICallError', async () => {
    const { jsonSchema, tool } = await import('ai');
    await assert.rejects(
      generateText({
        model: openai(MODELS.openai),
        prompt: 'weather?',
        tools: { weather: tool({ description: 'weather', inputSchema: jsonSchema({ type: 'object', properties: {} }) }) },
        maxRetries: 0,
      }),
      (err) => {
        assert.equal(err.statusCode, 400, err.message);
        assert.match(err.responseBody, /"param":"tools"/);
        assert.match(err.message, /not supported yet/);
        return true;
      },
    );
    assert.equal(chatRequests().length, 0);
  });

  test('embedMany through openai.embedding gets the provider\'s vectors in order', async () => {
    const values = ['alpha', 'beta', 'gamma'];
    const { embeddings, usage } = await embedMany({ model: openai.embedding('text-embedding-3-small'), values });
    values.forEach((v, i) => assert.deepEqual(embeddings[i].map(Math.fround), standInVector(v, 8), v));
    assert.equal(usage.tokens, 3);
    const [rec] = env.s.requests.filter((r) => r.endpoint === 'embeddings');
    assert.deepEqual(rec.body.input, values);
  });
});
