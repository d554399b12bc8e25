// Helpers for the seed-client tests: each of those files behaves like the client of one service
// Threadline replaces, using only that service's paths, bodies and setting names. These helpers
// only read what comes back (tokens, event streams); they never call a Threadline-only route.
import { createHmac } from 'node:crypto';

import { call } from './harness.mjs';

/** Whether an HS256 JWT was signed with `secret` (the operator's own setting value). */
export function signedWith(token, secret) {
  const [header, payload, signature] = token.split('.');
  const expected = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return expected === signature;
}

/** The claims of a JWT. */
export function claims(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

/** An OAuth2 password-grant login, as FastAPI clients send it. */
export function formLogin(base, route, username, password) {
  return call(base, 'POST', route, {
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username, password }).toString(),
  });
}

/**
 * POSTs and reads a Server-Sent Events answer to its end: `{ status, headers, events }`, each
 * event `{ name, data }` (`data` parsed as JSON unless it is `[DONE]`).
 */
export async function postSse(base, route, { json, token }) {
  const res = await fetch(`${base}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(json),
  });
  const out = { status: res.status, headers: res.headers, events: [] };
  if (!res.headers.get('content-type')?.includes('text/event-stream')) {
    out.text = await res.text();
    return out;
  }
  const text = await res.text();
  for (const block of text.split('\n\n')) {
    let name = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) name = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (data.length === 0) continue;
    const raw = data.join('\n');
    out.events.push({ name, data: raw === '[DONE]' ? raw : JSON.parse(raw) });
  }
  return out;
}

/** The text of a Threadline chat stream's `delta` events. */
export const deltaText = (events) => events.filter((e) => e.name === 'delta').map((e) => e.data.text).join('');

/** The text of an OpenAI chunk stream. */
export const chunkText = (events) => events
  .filter((e) => e.data !== '[DONE]' && e.data.choices?.length)
  .map((e) => e.data.choices[0].delta?.content ?? '')
  .join('');
