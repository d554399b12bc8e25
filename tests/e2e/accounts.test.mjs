// Accounts, sessions, MFA and API keys, end to end — each security property of accounts
// (password storage and policy, token validation, session rotation and revocation, lockout,
// reset links, rate limits, log hygiene) is a test here, against the real worker with local
// D1 and KV.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { rm } from 'node:fs/promises';

import { call, envelope, startWorker, TEST_JWT_SECRET } from './harness.mjs';
import {
  createApiKey, GOOD_PASSWORD, latestEmail, registerAndLogin, tokenFromEmail, uniqueEmail,
} from './accounts.mjs';

// ---- JWT and TOTP helpers (independent implementations, to test ours against) ---------------

const b64url = (buf) => Buffer.from(buf).toString('base64url');
function signJwt(header, claims, { secret = TEST_JWT_SECRET, hash = 'sha256' } = {}) {
  const head = b64url(JSON.stringify(header));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac(hash, secret).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64url(sig)}`;
}
function decodeJwt(token) {
  const [h, p] = token.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), claims: JSON.parse(Buffer.from(p, 'base64url')) };
}
function base32Decode(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of s.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}
function totp(secretB32, atMs = Date.now()) {
  const step = Math.floor(atMs / 1000 / 30);
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32Decode(secretB32)).update(msg).digest();
  const off = mac[mac.length - 1] & 0xf;
  const code = (mac.readUInt32BE(off) & 0x7fffffff) % 1_000_000;
  return String(code).padStart(6, '0');
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const me = (w, token) => call(w.url, 'GET', '/api/auth/me', { token });
const refresh = (w, refresh_token) => call(w.url, 'POST', '/api/auth/refresh', { json: { refresh_token } });

describe('accounts (development worker, default settings)', () => {
  let w;
  before(async () => { w = await startWorker(); });
  after(async () => { await w?.stop(); });

  // ---- registration and bad input ------------------------------------------------------------

  test('register answers 201 with the user and no secret', async () => {
    const email = uniqueEmail('reg');
    const res = await call(w.url, 'POST', '/api/auth/register', { json: { email, password: GOOD_PASSWORD, full_name: 'Ada L' } });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.body.email, email);
    assert.equal(res.body.full_name, 'Ada L');
    assert.equal(res.body.email_verified, false);
    assert.match(res.body.id, /^[0-9a-f]{32}$/);
    assert.doesNotMatch(res.text, /argon2|password/i);
  });

  test('a duplicate email (in any letter case) is 409', async () => {
    const email = uniqueEmail('dup');
    await call(w.url, 'POST', '/api/auth/register', { json: { email, password: GOOD_PASSWORD } });
    const res = await call(w.url, 'POST', '/api/auth/register', { json: { email: email.toUpperCase().replace('@EXAMPLE.COM', '@example.com'), password: GOOD_PASSWORD } });
    const e = envelope(assert, res, 409, 'email_taken');
    assert.equal(e.param, 'email');
  });

  test('passwords are argon2id PHC strings with OWASP parameters and unique salts', async () => {
    const a = await registerAndLogin(w);
    const b = await registerAndLogin(w);
    const rows = await w.sql(`select password_hash from users where id in ('${a.user.id}', '${b.user.id}')`);
    assert.equal(rows.length, 2);
    for (const r of rows) assert.match(r.password_hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    assert.notEqual(rows[0].password_hash, rows[1].password_hash, 'same password, different salt');
  });

  test('short, common and email-derived passwords are refused with the reason', async () => {
    const email = uniqueEmail('policy');
    const cases = [
      ['short-pass1', 'password_too_short', /at least 12/],
      ['iloveyou1234', 'password_common', /common/i],
      [`${email}!x`, 'password_contains_email', /email/i],
    ];
    for (const [password, code, why] of cases) {
      const res = await call(w.url, 'POST', '/api/auth/register', { json: { email, password } });
      const e = envelope(assert, res, 422, code);
      assert.equal(e.param, 'password');
      assert.match(e.message, why);
    }
  });

  test('a long Unicode passphrase is accepted unmodified', async () => {
    const password = 'ünïcödé pässphrasé 🦀 with spaces — '.repeat(2) + 'end';
    assert.ok([...password].length >= 64);
    const u = await registerAndLogin(w, { password });
    assert.ok(u.access_token);
    const bad = await call(w.url, 'POST', '/api/auth/login-json', { json: { email: u.email, password: password.trim() + ' ' } });
    assert.equal(bad.status, 401, 'the password is not trimmed or normalised');
  });

  test('malformed input gets a clear 4xx envelope, never a 500', async () => {
    const r = '/api/auth/register';
    envelope(assert, await call(w.url, 'POST', r, { body: '{"email":', headers: { 'content-type': 'application/json' } }), 400, 'invalid_json');
    const missing = envelope(assert, await call(w.url, 'POST', r, { json: { password: GOOD_PASSWORD } }), 422, 'validation_failed');
    assert.equal(missing.param, 'email');
    const wrongType = envelope(assert, await call(w.url, 'POST', r, { json: { email: 5, password: GOOD_PASSWORD } }), 422, 'validation_failed');
    assert.equal(wrongType.param, 'email');
    envelope(assert, await call(w.url, 'POST', r, { body: 'email=a', headers: { 'content-type': 'text/plain' } }), 415, 'unsupported_media_type');
    envelope(assert, await call(w.url, 'POST', r, { json: { email: 'x'.repeat(2 * 1024 * 1024), password: 'p' } }), 413, 'payload_too_large');
    const badEmail = envelope(assert, await call(w.url, 'POST', r, { json: { email: "a'; drop table users;--", password: GOOD_PASSWORD } }), 422);
    assert.equal(badEmail.param, 'email');
    const invalidUtf8 = await fetch(`${w.url}${r}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]) });
    assert.equal(invalidUtf8.status, 400);
    const sqlish = await call(w.url, 'POST', '/api/auth/login-json', { json: { email: "' or 1=1 --@x.io", password: "' or '1'='1" } });
    envelope(assert, sqlish, 401, 'invalid_credentials');
    assert.equal((await w.sql('select count(*) as n from users where 1=1'))[0].n > 0, true, 'users table intact');
  });

  // ---- login, tokens ---------------------------------------------------------------------------

  test('login (form and JSON) answers a bearer pair; the access token is an HS256 JWT with every claim', async () => {
    const u = await registerAndLogin(w);
    assert.equal(u.token_type, 'bearer');
    assert.equal(u.expires_in, 900);
    const { header, claims } = decodeJwt(u.access_token);
    assert.equal(header.alg, 'HS256');
    for (const c of ['sub', 'sid', 'iat', 'nbf', 'exp', 'iss', 'aud', 'typ']) assert.ok(claims[c] !== undefined, `claim ${c}`);
    assert.equal(claims.sub, u.user.id);
    assert.equal(claims.typ, 'access');
    assert.equal(claims.exp - claims.iat, 900);
    const form = await call(w.url, 'POST', '/api/auth/login', {
      body: new URLSearchParams({ username: u.email, password: u.password, grant_type: 'password' }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(form.status, 200, form.text);
    assert.equal(form.body.token_type, 'bearer');
    assert.equal((await me(w, form.body.access_token)).body.email, u.email);
  });

  test('every login creates a new session with a new refresh token', async () => {
    const u = await registerAndLogin(w);
    const again = await call(w.url, 'POST', '/api/auth/login-json', { json: { email: u.email, password: u.password } });
    assert.notEqual(decodeJwt(again.body.access_token).claims.sid, decodeJwt(u.access_token).claims.sid);
    assert.notEqual(again.body.refresh_token, u.refresh_token);
    const sessions = await call(w.url, 'GET', '/api/auth/sessions', { token: u.access_token });
    assert.equal(sessions.body.sessions.length, 2);
    assert.equal(sessions.body.sessions.filter((s) => s.current).length, 1);
  });

  test('tokens with another algorithm in the header are rejected', async () => {
    const u = await registerAndLogin(w);
    const { claims } = decodeJwt(u.access_token);
    const forged = [
      `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}.`,
      `${b64url(JSON.stringify({ alg: 'None', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}.`,
      signJwt({ alg: 'hs256', typ: 'JWT' }, claims),
      signJwt({ alg: 'HS512', typ: 'JWT' }, claims, { hash: 'sha512' }),
      signJwt({ alg: 'RS256', typ: 'JWT' }, claims),
    ];
    for (const token of forged) envelope(assert, await me(w, token), 401);
    assert.equal((await me(w, signJwt({ alg: 'HS256', typ: 'JWT' }, claims))).status, 200, 'the same claims, properly signed, pass');
  });

  test('tampered, expired, not-yet-valid and wrong-claim tokens are rejected', async () => {
    const u = await registerAndLogin(w);
    const { claims } = decodeJwt(u.access_token);
    const now = Math.floor(Date.now() / 1000);
    const [h, p, s] = u.access_token.split('.');
    const flipped = s[0] === 'A' ? 'B' + s.slice(1) : 'A' + s.slice(1);
    const other = b64url(JSON.stringify({ ...claims, sub: '0'.repeat(32) }));
    const bad = {
      tamperedSignature: `${h}.${p}.${flipped}`,
      tamperedPayload: `${h}.${other}.${s}`,
      expired: signJwt({ alg: 'HS256' }, { ...claims, iat: now - 3600, nbf: now - 3600, exp: now - 120 }),
      notYetValid: signJwt({ alg: 'HS256' }, { ...claims, nbf: now + 600, exp: now + 1200 }),
      wrongIss: signJwt({ alg: 'HS256' }, { ...claims, iss: 'someone-else' }),
      missingIss: signJwt({ alg: 'HS256' }, { ...claims, iss: undefined }),
      wrongAud: signJwt({ alg: 'HS256' }, { ...claims, aud: 'other-api' }),
      missingAud: signJwt({ alg: 'HS256' }, { ...claims, aud: undefined }),
      wrongTyp: signJwt({ alg: 'HS256' }, { ...claims, typ: 'refresh' }),
      missingTyp: signJwt({ alg: 'HS256' }, { ...claims, typ: undefined }),
      otherSecret: signJwt({ alg: 'HS256' }, claims, { secret: 'another-secret-of-enough-length-0123456789' }),
      garbage: 'not.a.jwt',
    };
    for (const [name, token] of Object.entries(bad)) {
      const res = await me(w, token);
      assert.equal(res.status, 401, `${name}: ${res.text}`);
    }
    assert.equal((await me(w, bad.expired)).body.error.code, 'token_expired');
  });

  test('a refresh token is no access token, and an access token no refresh token', async () => {
    const u = await registerAndLogin(w);
    envelope(assert, await me(w, u.refresh_token), 401);
    envelope(assert, await refresh(w, u.access_token), 401, 'refresh_token_invalid');
  });

  // ---- sessions and refresh rotation -----------------------------------------------------------

  test('refresh rotates; presenting a rotated token revokes the whole session', async () => {
    const u = await registerAndLogin(w);
    const first = await refresh(w, u.refresh_token);
    assert.equal(first.status, 200, first.text);
    assert.notEqual(first.body.refresh_token, u.refresh_token);
    assert.equal((await me(w, first.body.access_token)).status, 200);
    envelope(assert, await refresh(w, u.refresh_token), 401, 'refresh_token_reused');
    envelope(assert, await refresh(w, first.body.refresh_token), 401, 'refresh_token_invalid');
    envelope(assert, await me(w, first.body.access_token), 401, 'session_revoked');
  });

  test('refresh tokens have an absolute expiry that refreshing does not extend', async () => {
    const u = await registerAndLogin(w);
    const { claims } = decodeJwt(u.access_token);
    const rows = await w.sql(`select created_at, expires_at from refresh_tokens where session_id = '${claims.sid}'`);
    assert.equal(rows.length, 1);
    assert.equal(rows[0].expires_at - rows[0].created_at, 30 * 86_400_000, 'REFRESH_TOKEN_EXPIRE_DAYS defaults to 30');
    const rotated = await refresh(w, u.refresh_token);
    const after = await w.sql(`select expires_at from refresh_tokens where session_id = '${claims.sid}' and used_at is null`);
    assert.equal(after[0].expires_at, rows[0].expires_at, 'the new token keeps the session\'s end');
    await w.sql(`update refresh_tokens set expires_at = 1 where session_id = '${claims.sid}'`);
    envelope(assert, await refresh(w, rotated.body.refresh_token), 401, 'refresh_token_invalid');
  });

  test('two concurrent refreshes with one token: exactly one succeeds', async () => {
    const u = await registerAndLogin(w);
    const results = await Promise.all([refresh(w, u.refresh_token), refresh(w, u.refresh_token)]);
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 401], results.map((r) => r.text).join('\n'));
  });

  test('logout ends that session at once (access and refresh), and only that one', async () => {
    const u = await registerAndLogin(w);
    const other = await call(w.url, 'POST', '/api/auth/login-json', { json: { email: u.email, password: u.password } });
    assert.equal((await call(w.url, 'POST', '/api/auth/logout', { token: u.access_token })).status, 204);
    envelope(assert, await me(w, u.access_token), 401, 'session_revoked');
    envelope(assert, await refresh(w, u.refresh_token), 401);
    assert.equal((await me(w, other.body.access_token)).status, 200);
  });

  test('logout-all ends every session of the user', async () => {
    const u = await registerAndLogin(w);
    const other = await call(w.url, 'POST', '/api/auth/login-json', { json: { email: u.email, password: u.password } });
    assert.equal((await call(w.url, 'POST', '/api/auth/logout-all', { token: u.access_token })).status, 204);
    for (const t of [u.access_token, other.body.access_token]) envelope(assert, await me(w, t), 401);
    for (const t of [u.refresh_token, other.body.refresh_token]) envelope(assert, await refresh(w, t), 401);
  });

  test('sessions can be listed and ended one by one; another user\'s session is 404', async () => {
    const u = await registerAndLogin(w);
    const second = await call(w.url, 'POST', '/api/auth/login-json', { json: { email: u.email, password: u.password }, headers: { 'user-agent': 'second-device/1.0' } });
    const list = await call(w.url, 'GET', '/api/auth/sessions', { token: u.access_token });
    const target = list.body.sessions.find((s) => s.user_agent === 'second-device/1.0');
    assert.ok(target, list.text);
    assert.ok(target.created_at && target.last_used_at);
    const stranger = await registerAndLogin(w);
    envelope(assert, await call(w.url, 'DELETE', `/api/auth/sessions/${target.id}`, { token: stranger.access_token }), 404, 'not_found');
    assert.equal((await call(w.url, 'DELETE', `/api/auth/sessions/${target.id}`, { token: u.access_token })).status, 204);
    envelope(assert, await me(w, second.body.access_token), 401);
    assert.equal((await me(w, u.access_token)).status, 200);
  });

  test('GET /api/auth/verify says whose credential it is', async () => {
    const u = await registerAndLogin(w);
    const res = await call(w.url, 'GET', '/api/auth/verify', { token: u.access_token });
    assert.equal(res.status, 200);
    assert.equal(res.body.valid, true);
    assert.equal(res.body.user_id, u.user.id);
    assert.equal(res.body.credential, 'access_token');
    envelope(assert, await call(w.url, 'GET', '/api/auth/verify'), 401, 'unauthorized');
  });

  // ---- enumeration -----------------------------------------------------------------------------

  test('unknown email and wrong password answer identically, in similar time', async () => {
    const u = await registerAndLogin(w);
    const timed = async (email) => {
      const t = performance.now();
      const res = await call(w.url, 'POST', '/api/auth/login-json', { json: { email, password: 'definitely wrong pass 9' } });
      return { res, ms: performance.now() - t };
    };
    const wrong = await timed(u.email);
    const unknown = await timed(uniqueEmail('ghost'));
    assert.equal(wrong.res.status, unknown.res.status);
    const strip = (b) => ({ ...b.error, request_id: undefined });
    assert.deepEqual(strip(wrong.res.body), strip(unknown.res.body));
    const names = (h) => [...h.keys()].filter((k) => !['date', 'x-request-id', 'content-length'].includes(k)).sort();
    assert.deepEqual(names(wrong.res.headers), names(unknown.res.headers));
    // Both paths run one argon2id verification; compare medians of a few tries.
    const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const a = []; const b = [];
    for (let i = 0; i < 3; i++) { a.push((await timed(u.email)).ms); b.push((await timed(uniqueEmail('ghost'))).ms); }
    const [ma, mb] = [median(a), median(b)];
    assert.ok(Math.abs(ma - mb) < Math.max(ma, mb) * 0.5 + 15, `wrong password ${ma.toFixed(1)} ms vs unknown ${mb.toFixed(1)} ms`);
  });

  test('forgot-password answers the same whether or not the email exists', async () => {
    const u = await registerAndLogin(w);
    const known = await call(w.url, 'POST', '/api/auth/forgot-password', { json: { email: u.email } });
    const unknown = await call(w.url, 'POST', '/api/auth/forgot-password', { json: { email: uniqueEmail('nobody') } });
    assert.equal(known.status, 202);
    assert.equal(unknown.status, 202);
    assert.deepEqual(known.body, unknown.body);
  });

  test('reset tokens are random, stored hashed, single-use, and end every session', async () => {
    const u = await registerAndLogin(w);
    await call(w.url, 'POST', '/api/auth/forgot-password', { json: { email: u.email } });
    let mail;
    for (let i = 0; i < 40 && !(mail?.subject ?? '').includes('Reset'); i++) { await sleep(50); mail = await latestEmail(w, u.email); }
    assert.match(mail.subject, /Reset/);
    const token = tokenFromEmail(mail);
    assert.ok(token.length >= 43);
    const stored = await w.sql(`select token_hash from email_tokens where user_id = '${u.user.id}' and purpose = 'reset_password'`);
    assert.equal(stored.length, 1);
    assert.notEqual(stored[0].token_hash, token);
    const newPassword = 'a completely new passphrase 77';
    const weak = await call(w.url, 'POST', '/api/auth/reset-password', { json: { token, new_password: 'short' } });
    envelope(assert, weak, 422, 'password_too_short');
    const ok = await call(w.url, 'POST', '/api/auth/reset-password', { json: { token, new_password: newPassword } });
    assert.equal(ok.status, 200, ok.text);
    envelope(assert, await call(w.url, 'POST', '/api/auth/reset-password', { json: { token, new_password: 'yet another passphrase 88' } }), 400, 'token_invalid');
    envelope(assert, await me(w, u.access_token), 401);
    envelope(assert, await refresh(w, u.refresh_token), 401);
    assert.equal((await call(w.url, 'POST', '/api/auth/login-json', { json: { email: u.email, password: newPassword } })).status, 200);
  });

  test('an expired reset token is refused', async () => {
    const u = await registerAndLogin(w);
    await call(w.url, 'POST', '/api/auth/forgot-password', { json: { email: u.email } });
    let mail;
    for (let i = 0; i < 40 && !(mail?.subject ?? '').includes('Reset'); i++) { await sleep(50); mail = await latestEmail(w, u.email); }
    await w.sql(`update email_tokens set expires_at = 1 where user_id = '${u.user.id}'`);
    envelope(assert, await call(w.url, 'POST', '/api/auth/reset-password', { json: { token: tokenFromEmail(mail), new_password: 'fine new passphrase 123' } }), 400, 'token_invalid');
  });

  test('email verification: the emailed token verifies once, and /me shows it', async () => {
    const u = await registerAndLogin(w);
    assert.equal((await me(w, u.access_token)).body.email_verified, false);
    const token = tokenFromEmail(await latestEmail(w, u.email));
    const res = await call(w.url, 'POST', '/api/auth/verify-email', { json: { token } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.email_verified, true);
    assert.equal((await me(w, u.access_token)).body.email_verified, true);
    envelope(assert, await call(w.url, 'POST', '/api/auth/verify-email', { json: { token } }), 400, 'token_invalid');
    assert.equal((await call(w.url, 'POST', '/api/auth/resend-verification', { json: { email: u.email } })).status, 202);
  });

  // ---- passwords -------------------------------------------------------------------------------

  test('change-password needs the current one, refuses the last five, ends other sessions', async () => {
    const u = await registerAndLogin(w);
    const other = await call(w.url, 'POST', '/api/auth/login-json', { json: { email: u.email, password: u.password } });
    const change = (current_password, new_password) => call(w.url, 'POST', '/api/users/change-password', { token: u.access_token, json: { current_password, new_password } });
    envelope(assert, await change('not my password at all', 'brand new passphrase 1'), 403, 'invalid_password');
    envelope(assert, await change(u.password, u.password), 422, 'password_reused');
    const history = ['brand new passphrase 1', 'brand new passphrase 2', 'brand new passphrase 3', 'brand new passphrase 4'];
    let current = u.password;
    for (const next of history) {
      const res = await change(current, next);
      assert.equal(res.status, 200, res.text);
      current = next;
    }
    // The original is now the 5th most recent: still refused. The session that made the changes lives.
    envelope(assert, await change(current, u.password), 422, 'password_reused');
    assert.equal((await me(w, u.access_token)).status, 200);
    envelope(assert, await me(w, other.body.access_token), 401);
    envelope(assert, await call(w.url, 'POST', '/api/auth/login-json', { json: { email: u.email, password: u.password } }), 401);
    const rows = await w.sql(`select count(*) as n from password_history where user_id = '${u.user.id}'`);
    assert.equal(rows[0].n, 5, 'history keeps the last five');
  });

  // ---- lockout ---------------------------------------------------------------------------------

  test('five failures lock the address for existing and unknown emails alike', async () => {
    const u = await registerAndLogin(w);
    const ghost = uniqueEmail('ghost');
    const attempt = (email, password = 'wrong wrong wrong 1') => call(w.url, 'POST', '/api/auth/login-json', { json: { email, password } });
    for (let i = 0; i < 5; i++) {
      envelope(assert, await attempt(u.email), 401, 'invalid_credentials');
      envelope(assert, await attempt(ghost), 401, 'invalid_credentials');
    }
    const lockedReal = await attempt(u.email, u.password);
    const lockedGhost = await attempt(ghost);
    envelope(assert, lockedReal, 429, 'account_locked');
    envelope(assert, lockedGhost, 429, 'account_locked');
    assert.equal(lockedReal.body.error.message, lockedGhost.body.error.message);
    assert.ok(Number(lockedReal.headers.get('retry-after')) > 800);
    assert.ok(Number(lockedGhost.headers.get('retry-after')) > 800);
  });

  // ---- MFA -------------------------------------------------------------------------------------

  test('MFA: setup, enable with a code, login challenge, no code twice, recovery codes once, disable', async () => {
    const u = await registerAndLogin(w);
    const setup = await call(w.url, 'POST', '/api/auth/mfa/setup', { token: u.access_token });
    assert.equal(setup.status, 200, setup.text);
    assert.match(setup.body.otpauth_uri, /^otpauth:\/\/totp\/Threadline:.+\?secret=[A-Z2-7]+&issuer=Threadline/);
    const secret = setup.body.secret;
    envelope(assert, await call(w.url, 'POST', '/api/auth/mfa/enable', { token: u.access_token, json: { code: '000000' === totp(secret) ? '111111' : '000000' } }), 401, 'mfa_code_invalid');
    // Codes of the previous step are accepted (±1 step), so enabling uses it and login the current one.
    const enable = await call(w.url, 'POST', '/api/auth/mfa/enable', { token: u.access_token, json: { code: totp(secret, Date.now() - 30_000) } });
    assert.equal(enable.status, 200, enable.text);
    assert.equal(enable.body.recovery_codes.length, 10);
    assert.equal(new Set(enable.body.recovery_codes).size, 10);
    const stored = await w.sql(`select code_hash from mfa_recovery_codes where user_id = '${u.user.id}'`);
    assert.equal(stored.length, 10);
    assert.ok(!stored.some((r) => enable.body.recovery_codes.includes(r.code_hash)), 'recovery codes are stored hashed');

    const login = await call(w.url, 'POST', '/api/auth/login-json', { json: { email: u.email, password: u.password } });
    assert.equal(login.body.mfa_required, true, login.text);
    assert.equal(login.body.access_token, undefined);
    const challenge = login.body.mfa_token;
    envelope(assert, await me(w, challenge), 401, undefined);
    const code = totp(secret);
    const verified = await call(w.url, 'POST', '/api/auth/mfa/verify', { json: { mfa_token: challenge, code } });
    assert.equal(verified.status, 200, verified.text);
    assert.equal((await me(w, verified.body.access_token)).body.mfa_enabled, true);
    envelope(assert, await call(w.url, 'POST', '/api/auth/mfa/verify', { json: { mfa_token: challenge, code } }), 401, 'mfa_code_invalid');

    const recovery = enable.body.recovery_codes[0];
    assert.equal((await call(w.url, 'POST', '/api/auth/mfa/verify', { json: { mfa_token: challenge, recovery_code: recovery } })).status, 200);
    envelope(assert, await call(w.url, 'POST', '/api/auth/mfa/verify', { json: { mfa_token: challenge, recovery_code: recovery } }), 401, 'mfa_code_invalid');

    envelope(assert, await call(w.url, 'POST', '/api/auth/mfa/disable', { token: u.access_token, json: { password: 'not the password 1', code: enable.body.recovery_codes[1] } }), 403, 'invalid_password');
    const disabled = await call(w.url, 'POST', '/api/auth/mfa/disable', { token: u.access_token, json: { password: u.password, code: enable.body.recovery_codes[1] } });
    assert.equal(disabled.status, 200, disabled.text);
    const plain = await call(w.url, 'POST', '/api/auth/login-json', { json: { email: u.email, password: u.password } });
    assert.ok(plain.body.access_token, 'login without MFA again');
  });

  // ---- API keys --------------------------------------------------------------------------------

  test('API keys: shown once, stored hashed, work as bearer, revoked at once, expire', async () => {
    const u = await registerAndLogin(w);
    const k = await createApiKey(w, u.access_token, { name: 'ci' });
    assert.match(k.key, /^tl_[A-Za-z0-9]{40}$/);
    // The prefix is literally how the key begins, `tl_` included, so a user can match them.
    assert.equal(k.prefix, k.key.slice(0, 11));
    const list = await call(w.url, 'GET', '/api/keys', { token: u.access_token });
    assert.equal(list.body.keys.length, 1);
    assert.equal(list.body.keys[0].prefix, k.prefix);
    assert.doesNotMatch(list.text, new RegExp(k.key));
    const rows = await w.sql(`select key_hash from api_keys where id = '${k.id}'`);
    assert.notEqual(rows[0].key_hash, k.key);
    assert.equal((await me(w, k.key)).body.id, u.user.id);
    envelope(assert, await call(w.url, 'POST', '/api/keys', { token: k.key, json: { name: 'minted by a key' } }), 403, 'session_required');
    await sleep(50);
    const used = await call(w.url, 'GET', '/api/keys', { token: u.access_token });
    assert.ok(used.body.keys[0].last_used_at, 'last use is recorded');
    const stranger = await registerAndLogin(w);
    envelope(assert, await call(w.url, 'DELETE', `/api/keys/${k.id}`, { token: stranger.access_token }), 404);
    assert.equal((await call(w.url, 'DELETE', `/api/keys/${k.id}`, { token: u.access_token })).status, 204);
    envelope(assert, await me(w, k.key), 401, 'api_key_invalid');
    // Expired (made so in D1 before its first use: once used, the isolate remembers the row
    // for AUTH_CACHE_SECS, and checks the expiry it read on every request).
    const expiring = await createApiKey(w, u.access_token, { name: 'short', expires_in_days: 1 });
    await w.sql(`update api_keys set expires_at = 1 where id = '${expiring.id}'`);
    envelope(assert, await me(w, expiring.key), 401, 'api_key_invalid');
    envelope(assert, await call(w.url, 'POST', '/api/keys', { token: u.access_token, json: { name: '' } }), 422);
  });

  // ---- profile and deletion --------------------------------------------------------------------

  test('profile: read and update full name and preferences', async () => {
    const u = await registerAndLogin(w, { full_name: 'First' });
    const put = await call(w.url, 'PUT', '/api/users/profile', { token: u.access_token, json: { full_name: 'Second', preferences: { theme: 'dark' } } });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.body.full_name, 'Second');
    assert.deepEqual(put.body.preferences, { theme: 'dark' });
    const get = await call(w.url, 'GET', '/api/users/profile', { token: u.access_token });
    assert.equal(get.body.full_name, 'Second');
    envelope(assert, await call(w.url, 'PUT', '/api/users/profile', { token: u.access_token, json: { preferences: [1] } }), 422);
  });

  test('deleting the account needs the password and leaves nothing of the user', async () => {
    const u = await registerAndLogin(w);
    const second = await call(w.url, 'POST', '/api/auth/login-json', { json: { email: u.email, password: u.password } });
    await createApiKey(w, u.access_token);
    await call(w.url, 'POST', '/api/auth/mfa/setup', { token: u.access_token });
    await call(w.url, 'POST', '/api/auth/forgot-password', { json: { email: u.email } });
    await call(w.url, 'POST', '/api/auth/login-json', { json: { email: u.email, password: 'a wrong one here 1' } });
    const now = Date.now();
    await w.sql(`insert into conversations (id, user_id, title, created_at, updated_at) values ('${'c'.repeat(32)}', '${u.user.id}', 'mine', ${now}, ${now})`);
    await w.sql(`insert into messages (id, conversation_id, role, content, created_at) values ('${'d'.repeat(32)}', '${'c'.repeat(32)}', 'user', 'hello', ${now})`);
    await sleep(300);

    envelope(assert, await call(w.url, 'DELETE', '/api/users/account', { token: u.access_token, json: { password: 'not it at all 1' } }), 403, 'invalid_password');
    assert.equal((await call(w.url, 'DELETE', '/api/users/account', { token: u.access_token, json: { password: u.password } })).status, 204);

    const id = u.user.id;
    const tables = ['password_history', 'api_keys', 'email_tokens', 'mfa_recovery_codes', 'refresh_tokens', 'conversations'];
    for (const t of tables) {
      assert.equal((await w.sql(`select count(*) as n from ${t} where user_id = '${id}'`))[0].n, 0, t);
    }
    assert.equal((await w.sql(`select count(*) as n from users where id = '${id}' or email = '${u.email}'`))[0].n, 0);
    assert.equal((await w.sql(`select count(*) as n from messages where conversation_id = '${'c'.repeat(32)}'`))[0].n, 0);
    assert.equal((await w.sql(`select count(*) as n from login_failures where email = '${u.email}'`))[0].n, 0);
    assert.equal((await w.sql(`select count(*) as n from dev_outbox where to_address = '${u.email}'`))[0].n, 0);
    const keys = await w.kvKeys();
    const sids = [u.access_token, second.body.access_token].map((t) => decodeJwt(t).claims.sid);
    assert.ok(!keys.some((k) => k.includes(id) || sids.some((s) => k.includes(s))), `KV still holds: ${keys.filter((k) => k.includes(id))}`);
    envelope(assert, await me(w, second.body.access_token), 401);
    envelope(assert, await call(w.url, 'POST', '/api/auth/login-json', { json: { email: u.email, password: u.password } }), 401);
  });

  // ---- secrets stay secret ---------------------------------------------------------------------

  test('no password, token, key or secret appears in the logs', async () => {
    const u = await registerAndLogin(w);
    const k = await createApiKey(w, u.access_token);
    await me(w, k.key);
    await refresh(w, u.refresh_token);
    await sleep(300);
    const out = w.output();
    for (const secret of [u.password, u.refresh_token, u.access_token, k.key, TEST_JWT_SECRET]) {
      assert.ok(!out.includes(secret), `a secret leaked into the logs: ${secret.slice(0, 12)}…`);
    }
  });
});

describe('accounts under tight limits', () => {
  let w;
  before(async () => {
    w = await startWorker({
      vars: {
        RATE_LIMIT_REGISTER: '3/4',
        RATE_LIMIT_LOGIN: '4/4',
        RATE_LIMIT_REFRESH: '2/4',
        RATE_LIMIT_FORGOT_PASSWORD: '1/4',
        MAX_LOGIN_ATTEMPTS: '3',
        LOCKOUT_DURATION_MINUTES: '0.05',
        REQUIRE_EMAIL_VERIFICATION: 'true',
      },
    });
  });
  after(async () => { await w?.stop(); });

  const waitForWindow = async (res) => sleep(Number(res.headers.get('retry-after')) * 1000 + 300);

  test('register, login, refresh and forgot-password are rate limited with Retry-After and recover', async () => {
    const limited = async (fire) => {
      for (let i = 0; i < 10; i++) {
        const res = await fire();
        if (res.status === 429) return res;
      }
      throw new Error('never limited');
    };
    const reg = await limited(() => call(w.url, 'POST', '/api/auth/register', { json: { email: uniqueEmail('rl'), password: GOOD_PASSWORD } }));
    envelope(assert, reg, 429, 'rate_limited');
    assert.ok(Number(reg.headers.get('retry-after')) >= 1);
    assert.equal(reg.headers.get('ratelimit-limit'), '3');
    assert.equal(reg.headers.get('ratelimit-remaining'), '0');
    assert.ok(reg.headers.get('ratelimit-reset'));
    await waitForWindow(reg);
    assert.equal((await call(w.url, 'POST', '/api/auth/register', { json: { email: uniqueEmail('rl'), password: GOOD_PASSWORD } })).status, 201);

    const login = await limited(() => call(w.url, 'POST', '/api/auth/login-json', { json: { email: uniqueEmail('nobody'), password: 'whatever it is 1' } }));
    envelope(assert, login, 429, 'rate_limited');
    await waitForWindow(login);

    const fp = await limited(() => call(w.url, 'POST', '/api/auth/forgot-password', { json: { email: 'same@example.com' } }));
    envelope(assert, fp, 429, 'rate_limited');
    assert.ok(fp.headers.get('retry-after'));

    const rf = await limited(() => call(w.url, 'POST', '/api/auth/refresh', { json: { refresh_token: 'x' } }));
    envelope(assert, rf, 429, 'rate_limited');
    await waitForWindow(rf);
    envelope(assert, await call(w.url, 'POST', '/api/auth/refresh', { json: { refresh_token: 'x' } }), 401);
  });

  test('the lockout lifts after its duration', async () => {
    const email = uniqueEmail('lock');
    await call(w.url, 'POST', '/api/auth/register', { json: { email, password: GOOD_PASSWORD } });
    const attempt = (password) => call(w.url, 'POST', '/api/auth/login-json', { json: { email, password } });
    let locked;
    for (let i = 0; i < 6 && !locked; i++) {
      const res = await attempt('wrong wrong wrong 2');
      if (res.status === 429) locked = res;
      else await sleep(1100); // stay under the per-IP login limit of this worker
    }
    assert.ok(locked, 'locked after the configured failures');
    assert.equal(locked.body.error.code === 'account_locked' || locked.body.error.code === 'rate_limited', true);
    await sleep(4500);
    const after = await attempt(GOOD_PASSWORD);
    assert.notEqual(after.status, 429, after.text);
  });

  test('with REQUIRE_EMAIL_VERIFICATION, login waits for the verified address', async () => {
    await sleep(4200);
    const email = uniqueEmail('verify');
    assert.equal((await call(w.url, 'POST', '/api/auth/register', { json: { email, password: GOOD_PASSWORD } })).status, 201);
    envelope(assert, await call(w.url, 'POST', '/api/auth/login-json', { json: { email, password: GOOD_PASSWORD } }), 403, 'email_not_verified');
    const token = tokenFromEmail(await latestEmail(w, email));
    assert.equal((await call(w.url, 'POST', '/api/auth/verify-email', { json: { token } })).status, 200);
    assert.equal((await call(w.url, 'POST', '/api/auth/login-json', { json: { email, password: GOOD_PASSWORD } })).status, 200);
  });
});

describe('accounts across configurations', () => {
  test('a hash made with older parameters is upgraded at the next login', async () => {
    const first = await startWorker();
    let u;
    try {
      u = await registerAndLogin(first);
    } finally {
      await first.stop({ keepState: true });
    }
    const second = await startWorker({ stateDir: first.stateDir, vars: { PASSWORD_HASH_PARAMS: '12288,3,1' } });
    try {
      const before = await second.sql(`select password_hash from users where id = '${u.user.id}'`);
      assert.match(before[0].password_hash, /m=19456,t=2,p=1/);
      assert.equal((await call(second.url, 'POST', '/api/auth/login-json', { json: { email: u.email, password: u.password } })).status, 200);
      const afterRows = await second.sql(`select password_hash from users where id = '${u.user.id}'`);
      assert.match(afterRows[0].password_hash, /^\$argon2id\$v=19\$m=12288,t=3,p=1\$/);
      assert.equal((await call(second.url, 'POST', '/api/auth/login-json', { json: { email: u.email, password: u.password } })).status, 200);
    } finally {
      await second.stop();
      await rm(first.dir, { recursive: true, force: true });
    }
  });

  test('in production without EMAIL_API_URL, mail routes answer 503 and /health says why', async () => {
    const w = await startWorker({ vars: { ENVIRONMENT: 'production' } });
    try {
      const health = await call(w.url, 'GET', '/health');
      assert.equal(health.body.email.status, 'unconfigured');
      const res = await call(w.url, 'POST', '/api/auth/forgot-password', { json: { email: uniqueEmail('p') } });
      const e = envelope(assert, res, 503, 'email_unconfigured');
      assert.match(e.message, /EMAIL_API_URL/);
      envelope(assert, await call(w.url, 'GET', '/debug/outbox'), 404, 'route_not_found');
      // Registration still works; the verification mail simply is not sent.
      assert.equal((await call(w.url, 'POST', '/api/auth/register', { json: { email: uniqueEmail('p'), password: GOOD_PASSWORD } })).status, 201);
    } finally {
      await w.stop();
    }
  });
});

describe('credentials the isolate remembers (AUTH_CACHE_SECS)', () => {
  const CACHE_SECS = 2;
  let w;
  before(async () => {
    w = await startWorker({ vars: { AUTH_CACHE_SECS: String(CACHE_SECS), RATE_LIMIT_REGISTER: '1000/600' } });
  });
  after(async () => { await w?.stop(); });
  const waitPastTheBound = () => sleep(CACHE_SECS * 1000 + 500);

  test('a key revoked elsewhere stops working here within AUTH_CACHE_SECS; revoked here, at once', async () => {
    const u = await registerAndLogin(w);
    const elsewhere = await createApiKey(w, u.access_token, { name: 'revoked elsewhere' });
    const here = await createApiKey(w, u.access_token, { name: 'revoked here' });
    assert.equal((await me(w, elsewhere.key)).status, 200);
    assert.equal((await me(w, here.key)).status, 200);

    // Another isolate's revocation reaches D1 but not this isolate's memory.
    await w.sql(`update api_keys set revoked_at = ${Date.now()} where id = '${elsewhere.id}'`);
    await waitPastTheBound();
    envelope(assert, await me(w, elsewhere.key), 401, 'api_key_invalid');

    assert.equal((await call(w.url, 'DELETE', `/api/keys/${here.id}`, { token: u.access_token })).status, 204);
    envelope(assert, await me(w, here.key), 401, 'api_key_invalid');
  });

  test('a session ended elsewhere stops working here within AUTH_CACHE_SECS; logged out here, at once', async () => {
    const u = await registerAndLogin(w);
    const other = await call(w.url, 'POST', '/api/auth/login-json', { json: { email: u.email, password: u.password } });
    assert.equal((await me(w, u.access_token)).status, 200);
    assert.equal((await me(w, other.body.access_token)).status, 200);

    const sid = JSON.parse(Buffer.from(u.access_token.split('.')[1], 'base64url')).sid;
    await w.kvDelete(`session:${sid}`);
    await waitPastTheBound();
    envelope(assert, await me(w, u.access_token), 401, 'session_revoked');

    assert.equal((await call(w.url, 'POST', '/api/auth/logout', { token: other.body.access_token })).status, 204);
    envelope(assert, await me(w, other.body.access_token), 401, 'session_revoked');
  });
});
