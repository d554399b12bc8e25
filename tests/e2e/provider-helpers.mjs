// Helpers for the provider end-to-end tests: the provider stand-in plus a worker pointed at it,
// a user with an API key, and an SSE reader that timestamps every event as it arrives.
import { startStandIn } from '../support/stand-in.mjs';
import { startWorker } from './harness.mjs';
import { createApiKey, registerAndLogin } from './accounts.mjs';

/** Fake keys the worker sends to the stand-in (any non-empty key but `bad-key` is accepted). */
export const KEYS = {
  openai: 'test-openai-key',
  anthropic: 'test-anthropic-key',
  gemini: 'test-gemini-key',
};

/** Worker vars that point every provider at the stand-in. */
export function standInVars(url) {
  return {
    OPENAI_API_KEY: KEYS.openai,
    OPENAI_BASE_URL: `${url}/v1`,
    ANTHROPIC_API_KEY: KEYS.anthropic,
    ANTHROPIC_BASE_URL: url,
    GEMINI_API_KEY: KEYS.gemini,
    GEMINI_BASE_URL: url,
    OLLAMA_BASE_URL: `${url}/ollama/v1`,
    // Accounts are created freely by the tests, all from one local IP.
    RATE_LIMIT_REGISTER: '1000/600',
  };
}

/** Starts the stand-in and a worker using it: `{ s, w, stop() }`. */
export async function startWithStandIn({ vars = {}, providers = true } = {}) {
  const s = await startStandIn({ port: 0, host: '127.0.0.1' });
  let w;
  try {
    w = await startWorker({ vars: { ...(providers ? standInVars(s.url) : {}), ...vars } });
  } catch (err) {
    await s.close();
    throw err;
  }
  return {
    s,
    w,
    async stop() {
      await w.stop();
      await s.close();
    },
  };
}

/** A fresh user with an API key: `{ access_token, key }`. */
export async function userWithKey(w) {
  const user = await registerAndLogin(w);
  const { key } = await createApiKey(w, user.access_token);
  return { ...user, key };
}

/**
 * POSTs a streaming request and reads the SSE body as it arrives.
 * Returns `{ status, headers, events: [{ data, json, at }], text }`; `at` is Date.now() when the
 * event's bytes arrived. `onEvent(event, abort)` may abort the request mid-stream.
 */
export async function streamSse(url, { body, token, headers = {}, onEvent } = {}) {
  const controller = new AbortController();
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers },
    body: JSON.stringify(body),
    signal: controller.signal,
  });
  const out = { status: res.status, headers: res.headers, events: [], text: '' };
  if (!res.headers.get('content-type')?.includes('text/event-stream')) {
    out.text = await res.text();
    try { out.json = JSON.parse(out.text); } catch { /* not JSON */ }
    return out;
  }
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of res.body) {
      const at = Date.now();
      const text = decoder.decode(chunk, { stream: true });
      out.text += text;
      buffer += text;
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).replace(/^ /, ''))
          .join('\n');
        if (!data) continue;
        let json;
        try { json = data === '[DONE]' ? undefined : JSON.parse(data); } catch { json = undefined; }
        const event = { data, json, at };
        out.events.push(event);
        if (onEvent && onEvent(event, () => controller.abort()) === 'stop') return out;
      }
    }
  } catch (err) {
    if (err.name !== 'AbortError') throw err;
    out.aborted = true;
  }
  return out;
}

/** The text of an OpenAI-format SSE stream's content deltas. */
export function contentOf(events) {
  return events
    .filter((e) => e.json?.choices?.length)
    .map((e) => e.json.choices[0].delta?.content ?? '')
    .join('');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
