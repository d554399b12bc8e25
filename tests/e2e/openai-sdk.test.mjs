// The official OpenAI SDK against Threadline's /v1, changing only its base URL and key.
// The worker runs with PROVIDER_MAX_RETRIES=0 so that provider failures reach the SDK and its
// own retry logic can be observed, and with a small per-user /v1 rate limit.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { startWithStandIn, userWithKey } from './provider-helpers.mjs';

const MESSAGES = [
  { role: 'developer', content: 'Be brief.' },
  { role: 'user', content: 'hello there how are you' },
];
const EXPECTED = 'Echo: hello there how are you';
const V1_LIMIT = 6;

describe('the official OpenAI SDK against /v1', () => {
  let env;
  before(async () => {
    env = await startWithStandIn({
      vars: {
        PROVIDER_MAX_RETRIES: '0',
        RATE_LIMIT_V1: `${V1_LIMIT}/60`,
        // Only OpenAI and Anthropic: Gemini models are then known but unavailable.
        GEMINI_API_KEY: undefined,
        OLLAMA_BASE_URL: undefined,
      },
    });
  });
  after(async () => { await env?.stop(); });
  beforeEach(() => env.s.reset());

  /** A client for a fresh user, so each test has its own rate-limit budget. */
  async function sdk(options = {}) {
    const { key } = await userWithKey(env.w);
    return new OpenAI({ apiKey: key, baseURL: `${env.w.url}/v1`, ...options });
  }
  const chatRequests = () => env.s.requests.filter((r) => r.endpoint === 'chat');

  test('chat.completions.create without streaming', async () => {
    const client = await sdk();
    const completion = await client.chat.completions.create({
      model: 'anthropic/claude-3-5-haiku-latest',
      messages: MESSAGES,
      max_completion_tokens: 64,
    });
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.choices[0].message.content, EXPECTED);
    assert.equal(completion.choices[0].finish_reason, 'stop');
    assert.equal(completion.usage.completion_tokens, 6);
    const [rec] = chatRequests();
    assert.equal(rec.provider, 'anthropic');
    assert.equal(rec.body.system, 'Be brief.', 'developer became the system prompt');
    assert.equal(rec.body.max_tokens, 64);
  });

  test('chat.completions.create with stream: true and include_usage', async () => {
    const client = await sdk();
    env.s.script({ chunkDelayMs: 30 });
    const stream = await client.chat.completions.create({
      model: 'openai/gpt-4o',
      messages: MESSAGES,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish;
    let usage;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks += 1;
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (chunk.choices[0]) {
        text += chunk.choices[0].delta.content ?? '';
        finish = chunk.choices[0].finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, EXPECTED);
    assert.equal(finish, 'stop');
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
    assert.ok(chunks >= 4, `${chunks} chunks`);
  });

  test('a provider error mid-stream surfaces as an APIError from the iterator', async () => {
    const client = await sdk();
    env.s.script({ queue: [{ match: { provider: 'openai' }, midStreamError: { afterChunks: 1 } }] });
    const stream = await client.chat.completions.create({ model: 'openai/gpt-4o', messages: MESSAGES, stream: true });
    let text = '';
    await assert.rejects(async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    }, (err) => {
      assert.ok(err instanceof OpenAI.APIError, err.constructor.name);
      assert.match(err.message, /openai/);
      return true;
    });
    assert.ok(text.length > 0, 'the first delta arrived before the error');
  });

  test('models.list()', async () => {
    const client = await sdk();
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    assert.ok(ids.includes('openai/gpt-4o'), ids.join(','));
    assert.ok(ids.includes('anthropic/claude-3-7-sonnet-latest'));
    assert.ok(!ids.some((id) => id.startsWith('gemini/')), 'Gemini is not configured here');
  });

  test('a bad key raises AuthenticationError', async () => {
    const client = new OpenAI({ apiKey: 'tl_definitely-not-a-key-0000000000000000', baseURL: `${env.w.url}/v1`, maxRetries: 0 });
    await assert.rejects(
      client.chat.completions.create({ model: 'openai/gpt-4o', messages: MESSAGES }),
      (err) => {
        assert.ok(err instanceof OpenAI.AuthenticationError, err.constructor.name);
        assert.equal(err.status, 401);
        assert.equal(err.type, 'authentication_error');
        return true;
      },
    );
  });

  test('an unknown model raises NotFoundError with code and param', async () => {
    const client = await sdk({ maxRetries: 0 });
    await assert.rejects(
      client.chat.completions.create({ model: 'nope/nothing', messages: MESSAGES }),
      (err) => {
        assert.ok(err instanceof OpenAI.NotFoundError, err.constructor.name);
        assert.equal(err.code, 'model_not_found');
        assert.equal(err.param, 'model');
        assert.ok(err.requestID, 'the request id is exposed');
        return true;
      },
    );
  });

  test('the per-user /v1 limit raises RateLimitError carrying retry-after', async () => {
    const client = await sdk({ maxRetries: 0 });
    for (let i = 0; i < V1_LIMIT; i++) await client.models.list();
    await assert.rejects(client.models.list(), (err) => {
      assert.ok(err instanceof OpenAI.RateLimitError, err.constructor.name);
      assert.equal(err.status, 429);
      assert.equal(err.code, 'rate_limited');
      const retryAfter = Number(err.headers.get('retry-after'));
      assert.ok(retryAfter >= 1 && retryAfter <= 60, `retry-after ${retryAfter}`);
      return true;
    });
  });

  test("a provider's 429 raises RateLimitError with the provider's retry-after", async () => {
    const client = await sdk({ maxRetries: 0 });
    env.s.script({ queue: [{ match: { provider: 'openai' }, status: 429, retryAfter: 42 }] });
    await assert.rejects(
      client.chat.completions.create({ model: 'openai/gpt-4o', messages: MESSAGES }),
      (err) => {
        assert.ok(err instanceof OpenAI.RateLimitError, err.constructor.name);
        assert.equal(err.code, 'provider_rate_limited');
        assert.equal(err.headers.get('retry-after'), '42');
        return true;
      },
    );
  });

  test("the SDK's automatic retry gets past a 503 to a success", async () => {
    const client = await sdk({ maxRetries: 2 });
    env.s.script({ queue: [{ match: { provider: 'openai' }, status: 503, retryAfter: 1 }] });
    const completion = await client.chat.completions.create({ model: 'openai/gpt-4o', messages: MESSAGES });
    assert.equal(completion.choices[0].message.content, EXPECTED);
    const calls = chatRequests();
    assert.equal(calls.length, 2, 'the worker passed the 503 on (no retries of its own here) and the SDK retried');
    assert.ok(calls[1].receivedAt - calls[0].receivedAt >= 900, 'the SDK honoured retry-after: 1');
  });

  test('a model whose provider is not configured is a 503 the SDK does not retry', async () => {
    const client = await sdk({ maxRetries: 2 });
    const started = Date.now();
    await assert.rejects(
      client.chat.completions.create({ model: 'gemini/gemini-2.0-flash', messages: MESSAGES }),
      (err) => {
        assert.ok(err instanceof OpenAI.InternalServerError, err.constructor.name);
        assert.equal(err.status, 503);
        assert.equal(err.code, 'provider_unavailable');
        return true;
      },
    );
    assert.ok(Date.now() - started < 450, 'x-should-retry: false stopped the SDK from retrying');
  });
});
