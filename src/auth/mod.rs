//! Accounts: users, sessions, access tokens, email links, MFA and API keys.
//!
//! - [`crypto`]: the pure building blocks (password policy and hashing, signed access
//!   tokens, TOTP, random secrets); the clock arrives as a number and randomness through a
//!   `RandomSource`, so they are tested natively and never name `worker`.
//! - [`settings`]: the operator's settings for accounts and email.
//! - [`store`]: the SQL of accounts (users, password history, lockouts, email tokens, MFA,
//!   API keys, the development outbox).
//! - [`sessions`]: sessions and rotating refresh tokens over a small storage seam (its
//!   worker backend holds the refresh-token SQL and the KV session records).
//! - [`account`]: steps several routes share (start a session, check a new password, issue
//!   email links).
//! - [`guard`]: who is calling (access token or API key), over [`credential_cache`], the
//!   isolate's short memory of checked credentials. [`email`]: sending mail.
//! - [`routes`]: the HTTP handlers.

pub mod account;
pub mod credential_cache;
pub mod crypto;
pub mod email;
pub mod guard;
pub mod routes;
pub mod sessions;
pub mod settings;
pub mod store;
