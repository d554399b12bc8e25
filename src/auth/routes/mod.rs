//! The account routes, one file per group of handlers.

pub mod api_keys;
pub mod email_links;
pub mod login;
pub mod mfa;
pub mod users;
