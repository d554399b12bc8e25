-- Accounts: MFA, lockout, password history, API keys, one-time email tokens, refresh-token
-- rotation, and the development email outbox.

-- TOTP: the shared secret (base32) while set up, when it was enabled, and the last time step
-- accepted, so no code is accepted twice.
alter table users add column mfa_secret text;
alter table users add column mfa_enabled_at integer;
alter table users add column mfa_last_step integer;
alter table users add column password_changed_at integer;

-- Failed logins counted per email address (not per user row), so an unknown address is
-- locked out exactly like a real one and lockout cannot be used to find accounts. D1 is
-- strongly consistent, unlike KV, so the count is exact.
create table login_failures (
    email         text primary key collate nocase,
    failures      integer not null,
    window_start  integer not null,
    locked_until  integer
);

-- The user's previous password hashes; a new password may not repeat any of the last five.
create table password_history (
    id            integer primary key autoincrement,
    user_id       text not null references users(id) on delete cascade,
    password_hash text not null,
    created_at    integer not null
);
create index password_history_by_user on password_history (user_id, created_at desc);

-- API keys: shown once, stored as SHA-256 of the whole key (256-bit keys need no slow hash).
create table api_keys (
    id           text primary key,
    user_id      text not null references users(id) on delete cascade,
    name         text not null,
    prefix       text not null,
    key_hash     text not null unique,
    created_at   integer not null,
    last_used_at integer,
    expires_at   integer,
    revoked_at   integer
);
create index api_keys_by_user on api_keys (user_id, created_at desc);

-- Email verification and password reset tokens: random, stored hashed, single-use, expiring.
create table email_tokens (
    token_hash text primary key,
    user_id    text not null references users(id) on delete cascade,
    purpose    text not null check (purpose in ('verify_email', 'reset_password')),
    created_at integer not null,
    expires_at integer not null,
    used_at    integer
);
create index email_tokens_by_user on email_tokens (user_id, purpose);

-- MFA recovery codes, hashed; each works once.
create table mfa_recovery_codes (
    code_hash text primary key,
    user_id   text not null references users(id) on delete cascade,
    used_at   integer
);
create index mfa_recovery_codes_by_user on mfa_recovery_codes (user_id);

-- Refresh tokens, hashed. The session itself lives in KV (read on every request); the
-- rotation lives here because it needs compare-and-set, which KV cannot do: marking a token
-- used is one conditional update, so of two concurrent refreshes exactly one wins, and a
-- token presented again after use is recognised as reuse.
create table refresh_tokens (
    token_hash text primary key,
    session_id text not null,
    user_id    text not null references users(id) on delete cascade,
    created_at integer not null,
    expires_at integer not null,
    used_at    integer
);
create index refresh_tokens_by_session on refresh_tokens (session_id);
create index refresh_tokens_by_user on refresh_tokens (user_id);

-- Development outbox: where email goes when ENVIRONMENT=development (read at /debug/outbox).
create table dev_outbox (
    id         integer primary key autoincrement,
    to_address text not null,
    subject    text not null,
    body       text not null,
    created_at integer not null
);
