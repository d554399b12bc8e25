//! OpenAI's Responses API (`/v1/responses`) over the providers' chat APIs.
//!
//! - [`request`]: the body, validated, and the unified chat request for a turn (pure).
//! - [`object`]: the `response` object and the stream's events (pure).
//! - [`stream`]: a model's stream relayed as those events, storing the turn before the end.
//! - [`store`]: stored responses in D1, for `previous_response_id` and GET.
//! - [`routes`]: the handlers.

pub mod object;
pub mod request;
pub mod routes;
pub mod store;
pub mod stream;
