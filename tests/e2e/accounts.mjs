// Account helpers for end-to-end tests: register users and log them in through the real API.
import { call } from './harness.mjs';

let counter = 0;
/** A fresh, unique email address for this test run. */
export function uniqueEmail(tag = 'user') {
  counter += 1;
  return `${tag}-${process.pid}-${Date.now()}-${counter}@example.com`;
}

/** A password the policy accepts (long, not common, not the email). */
export const GOOD_PASSWORD = 'correct horse battery staple 42';

/** Registers a new user and logs in: `{ email, password, user, access_token, refresh_token }`. */
export async function registerAndLogin(w, { email = uniqueEmail(), password = GOOD_PASSWORD, full_name } = {}) {
  const reg = await call(w.url, 'POST', '/api/auth/register', { json: { email, password, full_name } });
  if (reg.status !== 201) throw new Error(`register failed: ${reg.status} ${reg.text}`);
  const login = await call(w.url, 'POST', '/api/auth/login-json', { json: { email, password } });
  if (login.status !== 200) throw new Error(`login failed: ${login.status} ${login.text}`);
  return { email, password, user: reg.body, ...login.body };
}

/** Creates an API key for a logged-in user: `{ id, key, prefix, name }`. */
export async function createApiKey(w, accessToken, { name = 'test key', expires_in_days } = {}) {
  const res = await call(w.url, 'POST', '/api/keys', { token: accessToken, json: { name, expires_in_days } });
  if (res.status !== 201) throw new Error(`create key failed: ${res.status} ${res.text}`);
  return res.body;
}

/** The newest development-outbox message to `email`, or undefined. */
export async function latestEmail(w, email) {
  const res = await call(w.url, 'GET', `/debug/outbox?to=${encodeURIComponent(email)}`);
  if (res.status !== 200) throw new Error(`outbox: ${res.status} ${res.text}`);
  return res.body.messages[0];
}

/** The raw token in an account email (the line after "token to POST …:"). */
export function tokenFromEmail(message) {
  const m = /token=([A-Za-z0-9_-]+)/.exec(message.text);
  if (!m) throw new Error(`no token in email: ${message.text}`);
  return m[1];
}
