//! Chat modes: named presets of a system prompt and generation settings.
//!
//! [`catalogue`] is the pure part (built-in modes, `CHAT_MODES`, settings overrides);
//! [`routes`] serves `GET /api/modes`.

pub mod catalogue;
pub mod routes;
