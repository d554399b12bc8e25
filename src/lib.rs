//! Threadline — an AI chat backend that runs at the edge as a Cloudflare Worker.
//!
//! This file is only the entry point: [`app`] runs the request pipeline, [`routes`] names
//! every resource's routes, and each resource lives in a module of its own (see the README's
//! "Architecture" section for the floor plan).

pub mod app;
pub mod auth;
pub mod chat;
pub mod compat;
pub mod config;
pub mod conversations;
pub mod files;
pub mod http;
pub mod live;
pub mod meta;
pub mod modes;
pub mod openai;
pub mod platform;
pub mod providers;
pub mod rate_limit;
pub mod routes;
// The operator role and pipelines on Queues.
pub mod admin;
pub mod pipelines;

use worker::{
    event, Context, Env, MessageBatch, Request, Response, Result, ScheduleContext, ScheduledEvent,
};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    console_error_panic_hook::set_once();
    Ok(app::handle(req, env, ctx).await)
}

/// The pipeline queue's consumer (see `pipelines::consumer`).
#[event(queue)]
async fn queue(batch: MessageBatch<serde_json::Value>, env: Env, _ctx: Context) -> Result<()> {
    console_error_panic_hook::set_once();
    pipelines::consumer::consume(batch, env).await
}

/// Every minute: sends lost pipeline messages again (see `pipelines::consumer::sweep`).
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    console_error_panic_hook::set_once();
    let _ = pipelines::consumer::sweep(env).await;
}
