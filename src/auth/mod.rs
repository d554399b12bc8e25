//! Authentication building blocks: password policy and hashing, signed access tokens, TOTP
//! two-factor codes, and random secrets.
//!
//! Everything here is pure: the clock arrives as `now_unix_secs` and randomness through
//! [`secrets::RandomSource`], so the whole module is tested natively with `cargo test`, and
//! the Worker glue that supplies real time and `getrandom` stays thin.

pub mod access_token;
pub mod accounts;
pub mod guard;
pub mod mfa;
pub mod password_hash;
pub mod password_policy;
pub mod routes;
pub mod secrets;
pub mod sessions;
pub mod settings;
pub mod totp;
