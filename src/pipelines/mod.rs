//! Pipelines: owned, named, versioned lists of steps, run durably on Cloudflare Queues.
//!
//! - [`template`]: the `{{ variable }}` templates of steps (pure).
//! - [`definition`]: step kinds and the checks a pipeline passes at creation (pure).
//! - [`settings`]: `PIPELINE_*` limits and retry backoff.
//! - [`store`]: the SQL of pipelines, executions and step checkpoints.
//! - [`run`]: running or resuming one execution, checkpoint by checkpoint.
//! - [`consumer`]: the queue consumer (`#[event(queue)]` in `lib.rs` calls it).
//! - [`routes`]: `/api/pipelines…` and `/api/pipeline-executions…`.

pub mod consumer;
pub mod definition;
pub mod routes;
pub mod run;
pub mod settings;
pub mod store;
pub mod template;
