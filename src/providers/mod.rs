//! AI providers behind one interface.
//!
//! - [`wire`]: pure translators between the unified model and each provider's wire format
//!   (no `worker`, no API error type; a lint in `make lint` checks it).
//! - [`catalogue`]: which `provider/model` ids exist. [`settings`]: providers, keys, timeouts,
//!   retries and fallbacks from the environment.
//! - [`resolve`]: model names to callable models, with typed errors. [`capability`]: which
//!   of them can take a request's images and documents (422 before any call).
//! - [`client`]: the I/O — retries, fallbacks, timeouts, cancellation, streaming, `dev/echo`.
//! - [`routes`]: `GET /api/models`.
//! - [`ollama`]: managing an Ollama server's models through its native API (admin only).

pub mod capability;
pub mod catalogue;
pub mod client;
pub mod ollama;
pub mod resolve;
pub mod routes;
pub mod settings;
pub mod wire;
