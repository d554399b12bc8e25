//! The OpenAI-compatible `/v1` facade, so OpenAI SDKs work against Threadline unchanged.
//!
//! - [`request`]: the chat completion body, validated and translated to the unified request.
//! - [`chunks`]: the `chat.completion` body and the streamed `chat.completion.chunk` events.
//! - [`embeddings`]: the embeddings body, validated, and the `list` of vectors it answers.
//! - [`responses`]: the Responses API, its stream events and stored responses.
//! - [`caller`]: who may call `/v1` (authentication and the per-user window).
//! - [`routes`]: the `/v1` routes and their handlers.

pub mod caller;
pub mod chunks;
pub mod embeddings;
pub mod request;
pub mod responses;
pub mod routes;
