//! Managing the models of an Ollama server through its native API (beside the
//! OpenAI-compatible one chat uses): which are local, loading (pulling first when absent),
//! unloading, and what is in memory.
//!
//! - [`native`]: the native API's requests and answers, and its NDJSON streams (pure).
//! - [`manage`]: the operations over the provider client's transport seam.
//! - [`routes`]: `POST /api/models/start`, `POST /api/models/stop`,
//!   `GET /api/models/{id}/status` (admin only).

pub mod manage;
pub mod native;
pub mod routes;
