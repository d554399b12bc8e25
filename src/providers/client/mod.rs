//! Calling AI providers: the [`ProviderClient`] handlers use, and the pieces under it.
//!
//! - [`engine`]: attempts, retries with capped backoff, fallbacks, and the policy behind them.
//! - [`failure`]: why an attempt failed and the API error it becomes. [`retry`]: what next.
//! - [`stream`]: unbuffered streaming with timeouts. [`echo`]: the offline `dev/echo` model.
//! - [`embed`]: embeddings, batched to what the provider accepts.
//! - [`disconnect`]: noticing that the client has gone.
//! - [`transport`]: the [`transport::Transport`] seam and the Workers `fetch` behind it.

pub mod disconnect;
pub mod echo;
pub mod embed;
pub mod engine;
pub mod failure;
pub mod retry;
pub mod stream;
pub mod transport;

#[cfg(test)]
mod tests;

use crate::providers::capability::capable_plan;
use crate::providers::client::disconnect::ClientDisconnect;
use crate::providers::client::engine::complete_with;
use crate::providers::client::engine::list_models_with;
use crate::providers::client::engine::stream_with;
use crate::providers::client::engine::Answer;
use crate::providers::client::engine::LogTarget;
use crate::providers::client::stream::ModelStream;
use crate::providers::client::transport::Transport;
use crate::providers::client::transport::WorkerTransport;
use crate::providers::resolve::plan;
use crate::providers::resolve::resolve_embedding_model;
use crate::providers::wire::embeddings::{EmbeddingRequest, Embeddings};
use std::rc::Rc;

use futures::stream::Stream;

use crate::config::Config;
use crate::http::ctx::Ctx;
use crate::http::error::ApiResult;
use crate::providers::resolve::ResolvedModel;
use crate::providers::settings::Upstream;
use crate::providers::wire::ChatRequest;

/// Provider calls on behalf of one request.
pub struct ProviderClient {
    config: Rc<Config>,
    transport: Rc<dyn Transport>,
    disconnect: ClientDisconnect,
    log: LogTarget,
}

impl ProviderClient {
    /// A client for this request, which aborts its upstream calls if our client disconnects.
    pub fn new(cx: &Ctx) -> ProviderClient {
        ProviderClient::with_disconnect(cx, ClientDisconnect::watch(&cx.req))
    }

    /// A client whose upstream calls are aborted when `disconnect` says so rather than when
    /// this request's client goes: a conversation's Durable Object ends a generation on a stop
    /// or when its last listener leaves.
    pub fn with_disconnect(cx: &Ctx, disconnect: ClientDisconnect) -> ProviderClient {
        ProviderClient {
            config: cx.config.clone(),
            transport: Rc::new(WorkerTransport {
                disconnect: disconnect.clone(),
            }),
            disconnect,
            log: LogTarget {
                request_id: cx.request_id.clone(),
                level: cx.config.log_level,
            },
        }
    }

    /// A client for work outside any request (the pipeline queue consumer): nobody can
    /// disconnect, and its log lines carry `request_id` (the execution's id).
    pub fn background(config: Rc<Config>, request_id: String) -> ProviderClient {
        let disconnect = ClientDisconnect::default();
        let level = config.log_level;
        ProviderClient {
            config,
            transport: Rc::new(WorkerTransport {
                disconnect: disconnect.clone(),
            }),
            disconnect,
            log: LogTarget { request_id, level },
        }
    }

    /// A client over another transport (tests).
    pub fn with_transport(config: Rc<Config>, transport: Rc<dyn Transport>) -> ProviderClient {
        let level = config.log_level;
        ProviderClient {
            config,
            transport,
            disconnect: ClientDisconnect::default(),
            log: LogTarget {
                request_id: String::new(),
                level,
            },
        }
    }

    /// The transport under this client, for other calls to the same servers (Ollama's
    /// native API).
    pub fn transport(&self) -> Rc<dyn Transport> {
        self.transport.clone()
    }

    /// What the request's client disconnecting looks like from here.
    pub fn disconnect(&self) -> &ClientDisconnect {
        &self.disconnect
    }

    /// The model and its fallbacks, or the 404/503 for an unusable name; no I/O.
    pub fn plan(&self, model: &str) -> ApiResult<Vec<ResolvedModel>> {
        Ok(plan(&self.config.providers, model)?)
    }

    /// The plan for `request`: [`Self::plan`] without the models that cannot take its media
    /// (422 when the requested model cannot).
    pub fn capable_plan(
        &self,
        model: &str,
        request: &ChatRequest,
    ) -> ApiResult<Vec<ResolvedModel>> {
        capable_plan(&self.config.providers, self.plan(model)?, &request.messages)
    }

    /// A whole reply. `request.model` and `request.stream` are set here.
    pub async fn complete(&self, model: &str, request: ChatRequest) -> ApiResult<Answer> {
        let plan = self.capable_plan(model, &request)?;
        complete_with(
            self.transport.clone(),
            &self.config.providers.retry,
            &self.log,
            &plan,
            request,
        )
        .await
    }

    /// A streamed reply; returns once output has begun. `request.model` and `request.stream`
    /// are set here.
    pub async fn stream(&self, model: &str, request: ChatRequest) -> ApiResult<ModelStream> {
        let plan = self.capable_plan(model, &request)?;
        stream_with(
            self.transport.clone(),
            &self.config.providers.retry,
            &self.log,
            &plan,
            request,
        )
        .await
    }

    /// The model `name` stands for in `POST /v1/embeddings`: 400 for one that cannot embed,
    /// 404 unknown, 503 unconfigured; no I/O.
    pub fn embedding_model(&self, name: &str) -> ApiResult<ResolvedModel> {
        Ok(resolve_embedding_model(&self.config.providers, name)?)
    }

    /// One vector per input of `request`, in order. `request.model` is set here.
    pub async fn embed(
        &self,
        model: &ResolvedModel,
        request: EmbeddingRequest,
    ) -> ApiResult<Embeddings> {
        crate::providers::client::embed::embed_with(
            self.transport.clone(),
            &self.config.providers.retry,
            &self.log,
            model,
            request,
        )
        .await
    }

    /// Model ids from `upstream`'s list endpoint (short timeout, no retries).
    pub async fn list_models(&self, upstream: &Upstream) -> Result<Vec<String>, String> {
        list_models_with(self.transport.as_ref(), upstream).await
    }
}

/// A `text/event-stream` response relaying `stream` write by write.
///
/// `no-transform` keeps Cloudflare (and well-behaved proxies) from compressing the stream,
/// which would buffer it; `x-accel-buffering: no` does the same for nginx in front of a
/// self-hosted deployment.
pub fn event_stream_response<S>(stream: S) -> ApiResult<worker::Response>
where
    S: Stream<Item = Result<Vec<u8>, worker::Error>> + 'static,
{
    let headers = worker::Headers::new();
    headers.set("content-type", "text/event-stream; charset=utf-8")?;
    headers.set("cache-control", "no-cache, no-transform")?;
    headers.set("x-accel-buffering", "no")?;
    Ok(worker::Response::from_stream(stream)?.with_headers(headers))
}
