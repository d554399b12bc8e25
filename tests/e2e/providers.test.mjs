// AI providers end to end: the real worker (wrangler dev, local D1/KV) calling the provider
// stand-in for OpenAI, Anthropic, Gemini and Ollama, through /v1 and /api/models.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { call, envelope } from './harness.mjs';
import { KEYS, contentOf, sleep, startWithStandIn, streamSse, userWithKey } from './provider-helpers.mjs';

const USER_TEXT = 'hello there how are you';
const EXPECTED = `Echo: ${USER_TEXT}`;
const MESSAGES = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: USER_TEXT },
];

// Per provider: a model with a fallback, one without (for the error classes), and the
// fallback the first one lands on.
const PROVIDERS = {
  openai: { model: 'openai/gpt-4o', plain: 'openai/gpt-4o-mini', fallback: 'anthropic/claude-3-5-haiku-latest' },
  anthropic: { model: 'anthropic/claude-3-7-sonnet-latest', plain: 'anthropic/claude-3-5-sonnet-latest', fallback: 'gemini/gemini-2.0-flash' },
  gemini: { model: 'gemini/gemini-2.0-flash-lite', plain: 'gemini/gemini-1.5-pro', fallback: 'ollama/qwen2.5:0.5b' },
  ollama: { model: 'ollama/qwen2.5:0.5b', plain: 'ollama/llama3.2', fallback: 'openai/gpt-4o-mini' },
};
const FALLBACKS = Object.fromEntries(Object.values(PROVIDERS).map((p) => [p.model, [p.fallback]]));

const providerOf = (model) => model.split('/')[0];

describe('providers through the worker', () => {
  let env; // { s, w }
  let key;
  let token;

  before(async () => {
    env = await startWithStandIn({
      vars: {
        MODEL_FALLBACKS: JSON.stringify(FALLBACKS),
        MODEL_ALIASES: JSON.stringify({ fast: 'gemini/gemini-2.0-flash' }),
        PROVIDER_TIMEOUT_SECS: '2',
        RATE_LIMIT_V1: '10000/60',
      },
    });
    const user = await userWithKey(env.w);
    key = user.key;
    token = user.access_token;
  });
  after(async () => { await env?.stop(); });
  beforeEach(() => env.s.reset());

  const chat = (body, { auth = key, headers } = {}) =>
    call(env.w.url, 'POST', '/v1/chat/completions', { json: { messages: MESSAGES, ...body }, token: auth, headers });
  const stream = (body, opts = {}) =>
    streamSse(`${env.w.url}/v1/chat/completions`, { body: { messages: MESSAGES, stream: true, ...body }, token: key, ...opts });
  const chatRequests = (provider) => env.s.requests.filter((r) => r.endpoint === 'chat' && (!provider || r.provider === provider));

  // ---- /api/models first, while the KV cache is still empty -------------------------------

  test('GET /api/models is public, merges catalogue, list endpoints and aliases, and survives a failing list', async () => {
    env.s.script({ queue: [{ match: { provider: 'gemini', endpoint: 'models' }, status: 500 }] });
    const res = await call(env.w.url, 'GET', '/api/models');
    assert.equal(res.status, 200, res.text);
    const ids = res.body.models.map((m) => m.id);
    for (const id of ['openai/gpt-4o', 'anthropic/claude-3-7-sonnet-latest', 'gemini/gemini-2.5-pro', 'gemini/gemini-2.0-flash']) {
      assert.ok(ids.includes(id), `${id} in ${ids}`);
    }
    // From the list endpoints (OpenAI's filtered to chat models; Ollama's as served).
    for (const id of ['openai/o3-mini', 'openai/gpt-4.1-mini', 'anthropic/claude-sonnet-4-20250514', 'ollama/llama3.2:latest', 'ollama/qwen2.5:0.5b']) {
      assert.ok(ids.includes(id), `${id} in ${ids}`);
    }
    assert.ok(!ids.includes('dev/echo'), 'no dev/echo when providers are configured');
    const listed = res.body.models.find((m) => m.id === 'openai/o3-mini');
    assert.equal(listed.source, 'provider');
    const gpt = res.body.models.find((m) => m.id === 'openai/gpt-4o');
    assert.deepEqual(
      { source: gpt.source, context_window: gpt.context_window, supports_streaming: gpt.supports_streaming, supports_vision: gpt.supports_vision },
      { source: 'catalogue', context_window: 128000, supports_streaming: true, supports_vision: true },
    );
    assert.deepEqual(res.body.aliases, { fast: 'gemini/gemini-2.0-flash' });
    assert.deepEqual(res.body.models.find((m) => m.id === 'gemini/gemini-2.0-flash').aliases, ['fast']);

    const lists = env.s.requests.filter((r) => r.endpoint === 'models');
    assert.deepEqual(lists.map((r) => r.provider).sort(), ['anthropic', 'gemini', 'ollama', 'openai']);
    const byProvider = Object.fromEntries(lists.map((r) => [r.provider, r]));
    assert.equal(byProvider.openai.headers.authorization, `Bearer ${KEYS.openai}`);
    assert.equal(byProvider.anthropic.headers['x-api-key'], KEYS.anthropic);
    assert.equal(byProvider.anthropic.headers['anthropic-version'], '2023-06-01');
    assert.equal(byProvider.gemini.headers['x-goog-api-key'], KEYS.gemini);
    assert.equal(byProvider.gemini.query.key, undefined, 'the Gemini key never goes in the URL');
  });

  test('model lists are cached in KV: a second GET /models asks no provider', async () => {
    const res = await call(env.w.url, 'GET', '/models');
    assert.equal(res.status, 200);
    assert.ok(res.body.models.some((m) => m.id === 'openai/o3-mini'));
    assert.equal(env.s.requests.filter((r) => r.endpoint === 'models').length, 0);
    const keys = await env.w.kvKeys('models:list:');
    assert.equal(keys.length, 4, keys.join(', '));
  });

  // ---- every provider: non-stream, stream, what the stand-in received ----------------------

  for (const [provider, p] of Object.entries(PROVIDERS)) {
    test(`${provider}: non-stream chat.completion through /v1`, async () => {
      const res = await chat({ model: p.plain, max_tokens: 50, temperature: 0.5, stop: 'END' });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.object, 'chat.completion');
      assert.match(res.body.id, /^chatcmpl-[0-9a-f]{24}$/);
      assert.equal(res.body.model, p.plain);
      assert.equal(res.body.choices[0].message.role, 'assistant');
      assert.equal(res.body.choices[0].message.content, EXPECTED);
      assert.equal(res.body.choices[0].finish_reason, 'stop');
      assert.equal(res.body.usage.completion_tokens, 6);
      assert.equal(res.body.usage.total_tokens, res.body.usage.prompt_tokens + res.body.usage.completion_tokens);

      const [rec] = chatRequests(provider);
      assert.ok(rec, 'the stand-in was called');
      assert.equal(rec.stream, false);
      const upstreamModel = p.plain.slice(provider.length + 1);
      if (provider === 'openai' || provider === 'ollama') {
        assert.equal(rec.body.model, upstreamModel);
        assert.deepEqual(rec.body.messages.map((m) => m.role), ['system', 'user']);
        assert.deepEqual(rec.body.stop, ['END']);
        if (provider === 'openai') {
          assert.equal(rec.headers.authorization, `Bearer ${KEYS.openai}`);
          assert.equal(rec.body.max_completion_tokens, 50);
        } else {
          assert.equal(rec.path, '/ollama/v1/chat/completions');
          assert.equal(rec.headers.authorization, undefined, 'Ollama gets no key');
          assert.equal(rec.body.max_tokens, 50, 'Ollama ignores max_completion_tokens');
        }
      } else if (provider === 'anthropic') {
        assert.equal(rec.path, '/v1/messages');
        assert.equal(rec.headers['x-api-key'], KEYS.anthropic);
        assert.equal(rec.headers['anthropic-version'], '2023-06-01');
        assert.equal(rec.headers.authorization, undefined);
        assert.equal(rec.body.model, upstreamModel);
        assert.equal(rec.body.system, 'Be brief.');
        assert.deepEqual(rec.body.messages.map((m) => m.role), ['user']);
        assert.equal(rec.body.max_tokens, 50);
        assert.deepEqual(rec.body.stop_sequences, ['END']);
      } else {
        assert.equal(rec.path, `/v1beta/models/${upstreamModel}:generateContent`);
        assert.equal(rec.headers['x-goog-api-key'], KEYS.gemini);
        assert.equal(rec.query.key, undefined);
        assert.deepEqual(rec.body.systemInstruction.parts, [{ text: 'Be brief.' }]);
        assert.deepEqual(rec.body.contents.map((c) => c.role), ['user']);
        assert.equal(rec.body.generationConfig.maxOutputTokens, 50);
      }
    });

    test(`${provider}: stream with include_usage relays chat.completion.chunk events and [DONE]`, async () => {
      env.s.script({ chunkDelayMs: 20, extras: true });
      const res = await stream({ model: p.plain, stream_options: { include_usage: true } });
      assert.equal(res.status, 200, res.text);
      assert.match(res.headers.get('content-type'), /^text\/event-stream/);
      assert.match(res.headers.get('cache-control'), /no-cache/);
      assert.equal(res.headers.get('content-encoding'), null, 'never compressed');
      const { events } = res;
      assert.equal(events.at(-1).data, '[DONE]');
      const chunks = events.filter((e) => e.json);
      assert.ok(chunks.every((e) => e.json.object === 'chat.completion.chunk' && e.json.model === p.plain));
      assert.ok(chunks.every((e) => 'usage' in e.json), 'usage:null on every chunk when include_usage');
      assert.equal(chunks[0].json.choices[0].delta.role, 'assistant');
      assert.equal(contentOf(events), EXPECTED);
      const finish = chunks.find((e) => e.json.choices[0]?.finish_reason);
      assert.equal(finish.json.choices[0].finish_reason, 'stop');
      const usage = chunks.at(-1).json;
      assert.deepEqual(usage.choices, []);
      assert.equal(usage.usage.completion_tokens, 6);
      assert.ok(chunks.length >= 5, `deltas relayed one by one (${chunks.length} chunks)`);

      const [rec] = chatRequests(provider);
      assert.equal(rec.stream, true);
      if (provider === 'gemini') {
        assert.match(rec.path, /:streamGenerateContent$/);
        assert.equal(rec.query.alt, 'sse');
      } else if (provider !== 'anthropic') {
        assert.deepEqual(rec.body.stream_options, { include_usage: true });
      }
    });

    test(`${provider}: a 503 is retried and then succeeds`, async () => {
      env.s.script({ queue: [{ match: { provider }, status: 503 }] });
      const res = await chat({ model: p.plain });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.choices[0].message.content, EXPECTED);
      assert.equal(chatRequests(provider).length, 2);
    });

    test(`${provider}: retries exhausted, the fallback model answers (non-stream and stream)`, async () => {
      env.s.script({ queue: [{ match: { provider }, status: 503, times: 6 }] });
      const res = await chat({ model: p.model });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.model, p.fallback, 'the answer names the model that served it');
      assert.equal(res.body.choices[0].message.content, EXPECTED);
      assert.equal(chatRequests(provider).length, 3, 'one try and two retries');
      assert.equal(chatRequests(providerOf(p.fallback)).length, 1);

      const streamed = await stream({ model: p.model });
      assert.equal(streamed.status, 200, streamed.text);
      assert.equal(contentOf(streamed.events), EXPECTED);
      assert.equal(streamed.events.find((e) => e.json).json.model, p.fallback);
    });

    test(`${provider}: an error before the first delta is retried; one after it ends the stream`, async () => {
      env.s.script({ queue: [{ match: { provider }, midStreamError: { afterChunks: 0 } }] });
      const retried = await stream({ model: p.plain });
      assert.equal(retried.status, 200);
      assert.equal(contentOf(retried.events), EXPECTED);
      assert.equal(chatRequests(provider).length, 2);

      env.s.reset();
      env.s.script({ queue: [{ match: { provider }, midStreamError: { afterChunks: 1 } }] });
      const failed = await stream({ model: p.plain });
      assert.equal(failed.status, 200);
      const last = failed.events.at(-1);
      assert.ok(last.json?.error, `last event is an error: ${last.data}`);
      assert.match(last.json.error.message, new RegExp(provider));
      assert.equal(typeof last.json.error.type, 'string');
      assert.ok(!failed.events.some((e) => e.data === '[DONE]'), 'no [DONE] after an error');
      assert.ok(contentOf(failed.events).length > 0, 'the first delta was relayed');
      assert.equal(chatRequests(provider).length, 1, 'no retry once output began');
    });

    test(`${provider}: upstream 401/403 is 502 provider_auth_failed and never echoes the key`, async () => {
      const status = provider === 'gemini' ? 403 : 401;
      env.s.script({ queue: [{ match: { provider }, status }] });
      const res = await chat({ model: p.model });
      const e = envelope(assert, res, 502, 'provider_auth_failed');
      assert.match(e.message, new RegExp(provider));
      assert.equal(res.headers.get('x-should-retry'), 'false');
      for (const k of Object.values(KEYS)) assert.ok(!res.text.includes(k), 'no key in the body');
      assert.equal(chatRequests().length, 1, 'not retried, no fallback');
    });

    test(`${provider}: upstream 429 passes Retry-After on`, async () => {
      env.s.script({ queue: [{ match: { provider }, status: 429, retryAfter: 30 }] });
      const res = await chat({ model: p.plain });
      const e = envelope(assert, res, 429, 'provider_rate_limited');
      assert.equal(e.type, 'rate_limit_error');
      assert.equal(res.headers.get('retry-after'), '30');
      assert.match(e.message, new RegExp(provider));
      assert.equal(chatRequests(provider).length, 1, 'a long Retry-After is not waited for');
    });

    test(`${provider}: an upstream 429 that gives no time still answers with Retry-After`, async () => {
      env.s.script({ queue: [{ match: { provider }, status: 429, times: 10 }] });
      const res = await chat({ model: p.plain });
      envelope(assert, res, 429, 'provider_rate_limited');
      assert.match(res.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    });

    test(`${provider}: upstream 5xx after retries is 502/503 naming the provider`, async () => {
      env.s.script({ queue: [{ match: { provider }, status: 500, times: 3 }] });
      const res = await chat({ model: p.plain });
      const e = envelope(assert, res, 502, 'provider_error');
      assert.match(e.message, new RegExp(provider));
      assert.equal(chatRequests(provider).length, 3);

      // One meaning, one mapping: a 503 (and Anthropic's 529) is overloaded for every provider.
      for (const overloaded of provider === 'anthropic' ? [529, 503] : [503]) {
        env.s.reset();
        env.s.script({ queue: [{ match: { provider }, status: overloaded, times: 3 }] });
        const busy = await chat({ model: p.plain });
        envelope(assert, busy, 503, 'provider_overloaded');
        assert.equal(chatRequests(provider).length, 3, `status ${overloaded}`);
      }
    });

    test(`${provider}: a provider that does not answer in time is 504`, async () => {
      env.s.script({ queue: [{ match: { provider }, firstByteDelayMs: 4000 }] });
      const started = Date.now();
      const res = await chat({ model: p.plain });
      const e = envelope(assert, res, 504, 'provider_timeout');
      assert.match(e.message, new RegExp(provider));
      const took = Date.now() - started;
      assert.ok(took >= 1900 && took < 3900, `timed out after the 2 s timeout (${took} ms)`);
      const rec = await env.s.waitFor((r) => r.endpoint === 'chat' && r.clientClosedEarly, { timeoutMs: 3000 });
      assert.equal(rec.completed, false, 'the upstream fetch was aborted');
    });

    test(`${provider}: a client that disconnects mid-stream aborts the upstream request`, async () => {
      env.s.script({ chunkDelayMs: 200, text: Array.from({ length: 60 }, (_, i) => `word${i}`).join(' ') });
      let seen = 0;
      const res = await stream({ model: p.plain }, {
        onEvent: (event, abort) => {
          if (event.json?.choices?.[0]?.delta?.content) seen += 1;
          if (seen === 2) abort();
        },
      });
      assert.ok(res.aborted, 'the client aborted');
      const rec = await env.s.waitFor((r) => r.endpoint === 'chat' && r.clientClosedEarly, { timeoutMs: 3000 });
      assert.equal(rec.completed, false, 'the stand-in never finished sending');
      assert.ok(rec.chunksSent < 20, `stopped early (${rec.chunksSent} of 20 deltas)`);
    });

    test(`${provider}: streaming is not buffered — the first delta arrives before the last is sent`, async () => {
      env.s.script({ chunkDelayMs: 100, text: Array.from({ length: 24 }, (_, i) => `w${i}`).join(' ') });
      const res = await stream({ model: p.plain });
      assert.equal(res.status, 200);
      const firstDelta = res.events.find((e) => e.json?.choices?.[0]?.delta?.content);
      const rec = chatRequests(provider)[0];
      const lastSent = rec.chunkTimes.at(-1);
      assert.equal(rec.chunkTimes.length, 8);
      assert.ok(firstDelta.at < lastSent, `first delta at ${firstDelta.at}, last sent at ${lastSent}`);
      assert.ok(lastSent - firstDelta.at >= 500, `received ${lastSent - firstDelta.at} ms before the end`);
    });
  }

  // ---- details that need only one provider ------------------------------------------------

  test('an upstream 400 is a 400 provider_rejected_request, not retried', async () => {
    env.s.script({ queue: [{ match: { provider: 'openai' }, status: 400, errorMessage: 'max_tokens is too large' }] });
    const res = await chat({ model: 'openai/gpt-4o' });
    const e = envelope(assert, res, 400, 'provider_rejected_request');
    assert.equal(e.type, 'invalid_request_error');
    assert.equal(chatRequests().length, 1);
  });

  test('a small Retry-After on a 429 is waited for, then the retry succeeds', async () => {
    env.s.script({ queue: [{ match: { provider: 'anthropic' }, status: 429, retryAfter: 1 }] });
    const started = Date.now();
    const res = await chat({ model: 'anthropic/claude-3-5-sonnet-latest' });
    assert.equal(res.status, 200, res.text);
    const [first, second] = chatRequests('anthropic');
    assert.ok(second.receivedAt - first.receivedAt >= 950, `waited ${second.receivedAt - first.receivedAt} ms`);
    assert.ok(Date.now() - started < 5000);
  });

  test('a stream that goes silent mid-way ends with a provider_timeout error event', async () => {
    env.s.script({ queue: [{ match: { provider: 'openai' }, chunkDelayMs: 3000 }] });
    const res = await stream({ model: 'openai/gpt-4o-mini' });
    assert.equal(res.status, 200);
    const last = res.events.at(-1);
    assert.equal(last.json?.error?.code, 'provider_timeout', last.data);
  });

  test('a truncated stream ends with an error event instead of [DONE]', async () => {
    env.s.script({ queue: [{ match: { provider: 'gemini' }, truncateAfterChunks: 1 }] });
    const res = await stream({ model: 'gemini/gemini-1.5-pro' });
    assert.equal(res.status, 200);
    assert.equal(res.events.at(-1).json?.error?.code, 'provider_bad_response', res.text);
  });

  test('an alias reaches its target model', async () => {
    const res = await chat({ model: 'fast' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.model, 'gemini/gemini-2.0-flash');
    assert.match(chatRequests('gemini')[0].path, /gemini-2\.0-flash:generateContent$/);
  });

  test('an uncatalogued model of a configured provider is passed through', async () => {
    const res = await chat({ model: 'ollama/qwen3:8b' });
    assert.equal(res.status, 200, res.text);
    assert.equal(chatRequests('ollama')[0].body.model, 'qwen3:8b');
  });

  test('a bare model name as OpenAI SDK code sends it (gpt-4o) reaches its provider', async () => {
    const res = await chat({ model: 'gpt-4o' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.model, 'openai/gpt-4o');
    assert.equal(chatRequests('openai').at(-1).body.model, 'gpt-4o');
  });

  test('an unknown model is 404 model_not_found with param model', async () => {
    for (const model of ['nope/x', 'llama3.2', 'dev/echo']) {
      const res = await chat({ model });
      const e = envelope(assert, res, 404, 'model_not_found');
      assert.equal(e.param, 'model');
      assert.equal(e.type, 'not_found_error');
    }
    assert.equal(chatRequests().length, 0);
  });

  test('invalid OpenAI requests are 400 naming the param; unknown fields are ignored', async () => {
    const bad = await chat({ model: 'openai/gpt-4o', n: 3 });
    assert.equal(envelope(assert, bad, 400, 'invalid_request').param, 'n');
    const tool = await chat({ model: 'openai/gpt-4o', messages: [{ role: 'tool', content: 'x', tool_call_id: '1' }] });
    assert.equal(envelope(assert, tool, 400).param, 'messages[0].role');
    const ok = await chat({
      model: 'openai/gpt-4o',
      messages: [{ role: 'developer', content: 'Be brief.' }, { role: 'user', content: USER_TEXT }],
      user: 'u-1', seed: 1, frequency_penalty: 0, response_format: { type: 'text' }, max_completion_tokens: 9, stop: ['a', 'b'],
    });
    assert.equal(ok.status, 200, ok.text);
    const [rec] = chatRequests('openai');
    assert.deepEqual(rec.body.messages.map((m) => m.role), ['system', 'user']);
    assert.equal(rec.body.max_completion_tokens, 9);
    assert.equal(rec.body.user, undefined, 'unknown fields are not forwarded');
  });

  test('/v1 needs authentication; an access token works as well as an API key', async () => {
    const none = await call(env.w.url, 'POST', '/v1/chat/completions', { json: { model: 'openai/gpt-4o', messages: MESSAGES } });
    const e = envelope(assert, none, 401);
    assert.equal(e.type, 'authentication_error');
    const badKey = await chat({ model: 'openai/gpt-4o' }, { auth: 'tl_not-a-real-key-000000000000000000000000' });
    envelope(assert, badKey, 401);
    const models = await call(env.w.url, 'GET', '/v1/models');
    envelope(assert, models, 401);
    const withToken = await chat({ model: 'openai/gpt-4o' }, { auth: token });
    assert.equal(withToken.status, 200, withToken.text);
  });

  test('GET /v1/models answers the OpenAI list shape, aliases included', async () => {
    const res = await call(env.w.url, 'GET', '/v1/models', { token: key });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.object, 'list');
    const ids = res.body.data.map((m) => m.id);
    assert.ok(ids.includes('openai/gpt-4o') && ids.includes('fast') && ids.includes('ollama/llama3.2:latest'), ids.join(','));
    for (const m of res.body.data) {
      assert.equal(m.object, 'model');
      assert.equal(typeof m.created, 'number');
      assert.equal(typeof m.owned_by, 'string');
    }
  });

  test('no log line ever holds a provider key', async () => {
    env.s.script({ queue: [{ match: { provider: 'openai' }, status: 401 }] });
    await chat({ model: 'openai/gpt-4o' });
    await sleep(300);
    const out = env.w.output();
    for (const k of Object.values(KEYS)) assert.ok(!out.includes(k), `${k} leaked into the logs`);
  });

  test('time to first byte through the worker is close to calling the provider directly', async () => {
    env.s.script({ chunkDelayMs: 0 });
    const body = { model: 'gpt-4o-mini', messages: MESSAGES, stream: true };
    const ttfb = async (url, headers, payload) => {
      const started = performance.now();
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(payload) });
      const reader = res.body.getReader();
      await reader.read();
      const first = performance.now() - started;
      while (!(await reader.read()).done) { /* drain */ }
      return first;
    };
    const direct = [];
    const viaWorker = [];
    for (let i = 0; i < 5; i++) {
      direct.push(await ttfb(`${env.s.url}/v1/chat/completions`, { authorization: `Bearer ${KEYS.openai}` }, body));
      viaWorker.push(await ttfb(`${env.w.url}/v1/chat/completions`, { authorization: `Bearer ${key}` }, { ...body, model: 'openai/gpt-4o-mini' }));
    }
    const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const d = median(direct);
    const v = median(viaWorker);
    console.log(`# TTFB median: direct ${d.toFixed(1)} ms, through the worker ${v.toFixed(1)} ms (added ${(v - d).toFixed(1)} ms)`);
    assert.ok(v - d < 500, `the worker adds ${v - d} ms before the first byte`);
  });
});

describe('development worker without providers', () => {
  let env;
  let key;
  before(async () => {
    env = await startWithStandIn({ providers: false, vars: { RATE_LIMIT_REGISTER: '1000/600' } });
    ({ key } = await userWithKey(env.w));
  });
  after(async () => { await env?.stop(); });

  test('offers only dev/echo, which streams a deterministic reply', async () => {
    const models = await call(env.w.url, 'GET', '/api/models');
    assert.equal(models.status, 200);
    assert.deepEqual(models.body.models.map((m) => m.id), ['dev/echo']);
    const res = await streamSse(`${env.w.url}/v1/chat/completions`, {
      token: key,
      body: { model: 'dev/echo', messages: [{ role: 'user', content: 'offline please' }], stream: true },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(contentOf(res.events), 'Echo: offline please');
    assert.equal(res.events.at(-1).data, '[DONE]');
    const again = await call(env.w.url, 'POST', '/v1/chat/completions', {
      token: key, json: { model: 'dev/echo', messages: [{ role: 'user', content: 'offline please' }] },
    });
    assert.equal(again.body.choices[0].message.content, 'Echo: offline please');
  });

  test('a catalogued model of an unconfigured provider is 503 provider_unavailable', async () => {
    const res = await call(env.w.url, 'POST', '/v1/chat/completions', {
      token: key, json: { model: 'openai/gpt-4o', messages: [{ role: 'user', content: 'x' }] },
    });
    const e = envelope(assert, res, 503, 'provider_unavailable');
    assert.match(e.message, /OPENAI_API_KEY/);
    assert.equal(res.headers.get('x-should-retry'), 'false');
  });
});
