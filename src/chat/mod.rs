//! Chat: sending a message in a conversation and relaying the provider's reply.
//!
//! - [`settings`]: the operator's limits for chat.
//! - [`input`]: the bodies of the send routes, validated.
//! - [`plan`]: which model, system prompt, settings and history budget a reply gets.
//! - [`budget`]: which part of the history fits in the context sent to the provider.
//! - [`turn`]: the chat turn (load, plan, store the user message, call the model, record the
//!   reply), written over small traits so it runs natively with in-memory fakes.
//! - [`events`]: the Server-Sent Events a streamed reply is made of.
//! - [`generated`]: images a model generates, kept as the user's files with the reply.
//! - [`reply`]: relaying a streamed reply and recording it, whatever way it ends.
//! - [`routes`]: the send routes and their aliases.

pub mod attachments;
pub mod budget;
pub mod events;
pub mod generated;
pub mod input;
pub mod plan;
pub mod reply;
pub mod routes;
pub mod settings;
pub mod turn;
