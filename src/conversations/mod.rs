//! Conversations: threads of messages in D1, owned by one user each.
//!
//! - [`model`]: conversations and messages as the API shows them.
//! - [`input`]: request bodies and query parameters, validated. [`parts`]: a message's typed
//!   parts (text, image, file).
//! - [`cursor`]: opaque page cursors. [`search`]: user text to a safe full-text query.
//! - [`title`]: titles, including those made from a first message.
//! - [`export`]: JSON and Markdown files. [`stats`]: per-user counts.
//! - [`store`]: the D1 statements. [`routes`](mod@routes): the HTTP handlers and the
//!   aliases the replaced services' clients know.
//!
//! Another user's conversation answers 404 exactly like a missing one, on every route.

pub mod cursor;
pub mod export;
pub mod input;
pub mod model;
pub mod parts;
pub mod routes;
pub mod search;
pub mod stats;
pub mod store;
pub mod title;
