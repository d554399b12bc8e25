//! Operations routes: the index, health, the OpenAPI document and docs page, and the
//! development-only debug routes.

pub mod debug;
pub mod docs;
pub mod health;
