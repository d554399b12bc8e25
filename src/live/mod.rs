//! Realtime: the conversation's Durable Object, which owns the generation in progress so it
//! survives a reload, reaches every tab and socket, and stops when asked.
//!
//! - [`log`]: a generation's numbered events and the resume arithmetic (pure).
//! - [`protocol`]: the WebSocket client messages (pure).
//! - [`object`]: the Durable Object's behaviour (the `ConversationLive` class in `lib.rs`).
//! - [`routes`]: resume, stop and WebSocket routes, and the streamed send's way in.

pub mod log;
pub mod object;
pub mod protocol;
pub mod routes;
