//! Threadline — an AI chat backend that runs at the edge as a Cloudflare Worker.
//!
//! This file is only the entry point: everything else lives in one module per concern.

pub mod api_keys;
pub mod app;
pub mod auth;
pub mod chat;
pub mod config;
pub mod context;
pub mod conversations;
pub mod db;
pub mod email;
pub mod error;
pub mod health;
pub mod http;
pub mod ids;
pub mod logging;
pub mod meta;
pub mod models;
pub mod modes;
pub mod openai_compat;
pub mod openapi;
pub mod platform;
pub mod provider_client;
pub mod providers;
pub mod rate_limit;
pub mod router;
pub mod users;

use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    console_error_panic_hook::set_once();
    Ok(app::handle(req, env, ctx).await)
}
