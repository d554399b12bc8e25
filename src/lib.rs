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
    durable_object, event, Context, DurableObject, Env, MessageBatch, Request, Response, Result,
    ScheduleContext, ScheduledEvent, State, WebSocket, WebSocketIncomingMessage,
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
    let config = app::config(&env);
    pipelines::consumer::consume(batch, env, config).await
}

/// Every minute: sends lost pipeline messages again (see `pipelines::consumer::sweep`).
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    console_error_panic_hook::set_once();
    let config = app::config(&env);
    let _ = pipelines::consumer::sweep(env, config).await;
}

/// A conversation's Durable Object: its live generation, listeners and sockets (see
/// `live::object`). Declared here with the other entry points so it is handed the isolate's
/// configuration as the fetch, queue and cron handlers are.
#[durable_object]
pub struct ConversationLive(live::object::LiveObject);

impl DurableObject for ConversationLive {
    fn new(state: State, env: Env) -> Self {
        console_error_panic_hook::set_once();
        let config = app::config(&env);
        ConversationLive(live::object::LiveObject::new(state, env, config))
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        self.0.fetch(req).await
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        self.0.websocket_message(ws, message).await
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        reason: String,
        was_clean: bool,
    ) -> Result<()> {
        self.0.websocket_close(ws, code, reason, was_clean).await
    }

    async fn websocket_error(&self, ws: WebSocket, error: worker::Error) -> Result<()> {
        self.0.websocket_error(ws, error).await
    }

    async fn alarm(&self) -> Result<Response> {
        self.0.alarm().await
    }
}
