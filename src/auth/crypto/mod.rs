//! The pure cryptographic building blocks of accounts. Nothing here names `worker` (a lint in
//! `make lint` checks it): time comes in as a number and randomness through
//! [`crate::platform::random::RandomSource`].

pub mod access_token;
pub mod password_hash;
pub mod password_policy;
pub mod secrets;
pub mod totp;
