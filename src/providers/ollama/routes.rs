//! `POST /api/models/start`, `POST /api/models/stop`, `GET /api/models/{id}/status` — the
//! models of the configured Ollama server, managed through its native API. They change a
//! server every user shares, so they are admin only (403 for anyone else).
//!
//! A model is named as chat names it (`ollama/llama3.2`) or bare (`llama3.2`, what Web+
//! clients send); in the status path its slash is sent encoded (`ollama%2Fllama3.2`). A model
//! of another provider (`openai/gpt-4o`) is a 422: only an Ollama server can load or unload.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::Response;

use crate::admin::access::require_admin;
use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::http::router::{handler, Method, Route};
use crate::providers::client::ProviderClient;
use crate::providers::ollama::manage::{ManageError, ModelStatus, OllamaServer};
use crate::providers::ollama::native::PullSummary;
use crate::providers::settings::Upstream;
use crate::providers::wire::ProviderKind;

/// The longest model name accepted.
const MAX_NAME_CHARS: usize = 200;

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::Post, "/api/models/start", handler!(start)),
        Route::new(Method::Post, "/api/models/stop", handler!(stop)),
        Route::new(Method::Get, "/api/models/{id}/status", handler!(status)),
    ]
}

/// The Ollama upstream and the model's name on it, or why there is none.
fn target<'a>(cx: &'a Ctx, model: &str) -> ApiResult<(&'a Upstream, String)> {
    let model = model.trim();
    if model.is_empty()
        || model.chars().count() > MAX_NAME_CHARS
        || model.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::validation(
            "model",
            "`model` must be a model name such as \"llama3.2\" or \"ollama/llama3.2\".",
        ));
    }
    let upstreams = &cx.config.providers.upstreams;
    let (prefix, rest) = model.split_once('/').unwrap_or(("", model));
    if let Some(upstream) = upstreams.iter().find(|u| u.name == prefix) {
        if upstream.endpoint.kind != ProviderKind::OpenAiCompatible {
            return Err(not_manageable(model));
        }
        return Ok((upstream, rest.to_string()));
    }
    if matches!(prefix, "openai" | "anthropic" | "gemini" | "dev") {
        return Err(not_manageable(model));
    }
    let ollama = upstreams
        .iter()
        .find(|u| u.endpoint.kind == ProviderKind::OpenAiCompatible)
        .ok_or_else(|| {
            ApiError::new(
                422,
                "model_not_manageable",
                "No Ollama server is configured: set OLLAMA_BASE_URL to manage its models.",
            )
            .with_field("model")
        })?;
    // A bare name, or an Ollama namespace (`library/llama3.2`).
    Ok((ollama, model.to_string()))
}

fn not_manageable(model: &str) -> ApiError {
    ApiError::new(
        422,
        "model_not_manageable",
        format!(
            "{model:?} is not a model of an Ollama server: only Ollama's models can be started, stopped or inspected here."
        ),
    )
    .with_field("model")
}

fn manage_error(err: ManageError) -> ApiError {
    match err {
        ManageError::NotOllama => ApiError::new(
            422,
            "not_ollama",
            "The server at OLLAMA_BASE_URL does not answer Ollama's native API (/api/tags); only an Ollama server's models can be managed.",
        ),
        ManageError::ModelNotFound(detail) => ApiError::new(
            404,
            "model_not_found",
            format!("The Ollama server has no such model: {detail}"),
        )
        .with_field("model"),
        ManageError::Unreachable(detail) => ApiError::new(
            502,
            "provider_unreachable",
            "The Ollama server could not be reached.",
        )
        .with_internal(detail),
        ManageError::Upstream { status, message } => ApiError::new(
            502,
            "provider_error",
            format!("The Ollama server failed: {message}"),
        )
        .with_internal(format!("ollama status={status}")),
        ManageError::TimedOut(secs) => ApiError::new(
            504,
            "provider_timeout",
            format!("The Ollama server did not answer within {secs} s."),
        ),
    }
}

fn server(cx: &Ctx, upstream: &Upstream) -> OllamaServer {
    OllamaServer::new(ProviderClient::new(cx).transport(), upstream)
}

/// `keep_alive` as Ollama takes it: seconds, or a duration such as `"10m"`, `"24h"`, `"-1"`.
fn check_keep_alive(value: &Value) -> ApiResult<()> {
    let ok = match value {
        Value::Number(n) => n.is_i64() || n.is_u64(),
        Value::String(s) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            let number_end = digits
                .find(|c: char| !c.is_ascii_digit() && c != '.')
                .unwrap_or(digits.len());
            let (number, unit) = digits.split_at(number_end);
            !number.is_empty()
                && number.parse::<f64>().is_ok()
                && matches!(unit, "" | "ms" | "s" | "m" | "h")
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "keep_alive",
            "`keep_alive` must be seconds or a duration such as \"10m\" (negative: keep loaded).",
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    model: String,
    #[serde(default)]
    keep_alive: Option<Value>,
}

#[derive(Serialize)]
struct Started {
    #[serde(flatten)]
    status: ModelStatus,
    /// Whether the model had to be pulled first.
    pulled: bool,
    /// The pull's progress (statuses, each layer's bytes), when there was one.
    pull: Option<PullSummary>,
}

/// POST /api/models/start — loads a model into the Ollama server's memory, pulling it first
/// when the server does not have it; answers when it is loaded, with the pull's progress.
async fn start(mut cx: Ctx) -> ApiResult<Response> {
    require_admin(&cx).await?;
    let body: StartBody = cx.json().await?;
    if let Some(keep_alive) = &body.keep_alive {
        check_keep_alive(keep_alive)?;
    }
    let (upstream, name) = target(&cx, &body.model)?;
    let server = server(&cx, upstream);
    let (status, pull) = server
        .start(&name, body.keep_alive.as_ref())
        .await
        .map_err(manage_error)?;
    if pull.is_some() {
        // The model list shows the new model at once rather than within the hour.
        if let Ok(kv) = cx.env.kv("KV") {
            let _ = kv
                .delete(&crate::providers::routes::cache_key(upstream))
                .await;
        }
    }
    response::json(
        200,
        &Started {
            status,
            pulled: pull.is_some(),
            pull,
        },
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StopBody {
    model: String,
}

/// POST /api/models/stop — unloads a model from the Ollama server's memory (`keep_alive: 0`).
async fn stop(mut cx: Ctx) -> ApiResult<Response> {
    require_admin(&cx).await?;
    let body: StopBody = cx.json().await?;
    let (upstream, name) = target(&cx, &body.model)?;
    let status = server(&cx, upstream)
        .stop(&name)
        .await
        .map_err(manage_error)?;
    response::json(200, &status)
}

/// GET /api/models/{id}/status — whether the model is on the server and loaded, its size,
/// VRAM use and when it will be unloaded (from `/api/tags` and `/api/ps`).
async fn status(cx: Ctx) -> ApiResult<Response> {
    require_admin(&cx).await?;
    let raw = cx.param("id")?;
    let model = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::validation("id", "The model id is not valid UTF-8."))?
        .into_owned();
    let (upstream, name) = target(&cx, &model)?;
    let status = server(&cx, upstream)
        .status(&name)
        .await
        .map_err(manage_error)?;
    if !status.available && !status.loaded {
        return Err(manage_error(ManageError::ModelNotFound(format!(
            "model '{}' not found; POST /api/models/start pulls it",
            status.name
        ))));
    }
    response::json(200, &status)
}

#[cfg(test)]
mod tests {
    use super::check_keep_alive;
    use serde_json::json;

    #[test]
    fn keep_alive_is_seconds_or_an_ollama_duration() {
        for ok in [
            json!(0),
            json!(3600),
            json!(-1),
            json!("10m"),
            json!("24h"),
            json!("-1m"),
            json!("1.5h"),
            json!("30"),
        ] {
            assert!(check_keep_alive(&ok).is_ok(), "{ok}");
        }
        for bad in [
            json!("soon"),
            json!("10d"),
            json!(""),
            json!(1.5),
            json!(true),
            json!(null),
        ] {
            assert!(check_keep_alive(&bad).is_err(), "{bad}");
        }
    }
}
