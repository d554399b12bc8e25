//! The OpenAI-compatible API: `POST /v1/chat/completions` and `GET /v1/models`, so the
//! official OpenAI SDKs work against Threadline by changing only their base URL
//! (`https://<host>/v1`) and key (a Threadline API key or access token), with any provider's
//! model behind them.
//!
//! Only the routes and their thin handlers live here (authenticate, rate-limit, call the
//! provider, answer); what the body means is [`crate::openai::request`] and what the answer
//! looks like is [`crate::openai::chunks`], both testable without the Workers runtime.
//!
//! Errors use the API's one envelope, whose `type`/`param`/`code`/`message` are what the
//! SDKs read; statuses follow OpenAI's (401 bad key, 429 with `retry-after`, 5xx on provider
//! trouble, `x-should-retry: false` where retrying cannot help).

use serde_json::{json, Value};
use worker::Response;

use crate::auth::guard::authenticate;
use crate::http::coalesce::Coalesce;
use crate::http::ctx::Ctx;
use crate::http::error::ApiResult;
use crate::http::response;
use crate::http::router::handler;
use crate::http::router::{Method, Route};
use crate::openai::chunks::{completion_body, completion_id, ChunkStream, ChunkWriter};
use crate::openai::request::{to_unified, CompletionRequest};
use crate::platform::clock::{Clock, SystemClock};
use crate::providers::client::{event_stream_response, ProviderClient};
use crate::rate_limit::kv as rate_limit;

/// The `/v1` routes, mounted with the rest of the API.
pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::Post,
            "/v1/chat/completions",
            handler!(chat_completions),
        ),
        Route::new(Method::Get, "/v1/models", handler!(list_models)),
    ]
}

/// POST /v1/chat/completions — OpenAI-compatible chat completion, streamed or not.
async fn chat_completions(cx: Ctx) -> ApiResult<Response> {
    completions(cx, false).await
}

/// An OpenAI chat completion, streamed when the body asks or `force_stream` (for routes of
/// replaced services that always stream).
pub(crate) async fn completions(mut cx: Ctx, force_stream: bool) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    rate_limit::enforce(
        &cx,
        "v1",
        &principal.user_id,
        cx.config.rate_limits.v1_per_user,
    )
    .await?;
    let body: CompletionRequest = cx.json().await?;
    let (mut options, request) = to_unified(body)?;
    options.stream |= force_stream;
    let client = ProviderClient::new(&cx);
    let created = SystemClock.now_secs();
    if !options.stream {
        let answer = client.complete(&options.model, request).await?;
        let body = completion_body(
            &completion_id()?,
            created,
            &answer.model.id,
            &answer.completion,
        );
        return response::json(200, &body);
    }
    let stream = client.stream(&options.model, request).await?;
    let writer = ChunkWriter {
        id: completion_id()?,
        created,
        model: stream.model().id.clone(),
        include_usage: options.include_usage,
        request_id: cx.request_id.clone(),
    };
    // Chunks decoded from one upstream read are written as one (the chat relay does its own
    // accounting of what the client took, so only this stream is joined).
    event_stream_response(Coalesce::new(ChunkStream::new(stream, writer)))
}

/// GET /v1/models — the models (and aliases) this deployment serves, in OpenAI's list shape.
async fn list_models(cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    rate_limit::enforce(
        &cx,
        "v1",
        &principal.user_id,
        cx.config.rate_limits.v1_per_user,
    )
    .await?;
    let models = crate::providers::routes::available_models(&cx).await;
    response::json(200, &model_list(&models))
}

/// `{"object":"list","data":[{"id","object":"model","created","owned_by"}]}`, aliases
/// included as ids of their own (they are valid `model` values).
fn model_list(models: &[crate::providers::routes::OfferedModel]) -> Value {
    let mut data = Vec::new();
    for model in models {
        data.push(
            json!({ "id": model.id, "object": "model", "created": 0, "owned_by": model.provider }),
        );
    }
    for model in models {
        for alias in &model.aliases {
            data.push(
                json!({ "id": alias, "object": "model", "created": 0, "owned_by": model.provider }),
            );
        }
    }
    json!({ "object": "list", "data": data })
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_list_has_openais_shape_with_aliases_as_ids() {
        let models = vec![crate::providers::routes::OfferedModel {
            id: "openai/gpt-4o".into(),
            provider: "openai".into(),
            display_name: "GPT-4o".into(),
            context_window: 1,
            supports_streaming: true,
            supports_vision: true,
            source: "catalogue",
            aliases: vec!["smart".into()],
        }];
        let list = model_list(&models);
        assert_eq!(list["object"], "list");
        assert_eq!(list["data"][0]["id"], "openai/gpt-4o");
        assert_eq!(list["data"][0]["object"], "model");
        assert_eq!(list["data"][0]["owned_by"], "openai");
        assert_eq!(list["data"][1]["id"], "smart");
    }
}
