//! The OpenAI-compatible `/v1` facade, so OpenAI SDKs work against Threadline unchanged.
//!
//! - [`request`]: the chat completion body, validated and translated to the unified request.
//! - [`chunks`]: the `chat.completion` body and the streamed `chat.completion.chunk` events.
//! - [`routes`]: the `/v1` routes and their handlers.

pub mod chunks;
pub mod request;
pub mod routes;
