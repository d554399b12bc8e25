//! Pipelines (placeholder while building).
pub mod routes;
pub mod settings;
