//! The OpenAI-compatible `/v1` facade, so OpenAI SDKs work against Threadline unchanged.

pub mod routes;
