//! The OpenAI-compatible API: `POST /v1/chat/completions`, `POST /v1/responses` (and
//! `GET`/`DELETE /v1/responses/{id}`), `POST /v1/embeddings`, `GET /v1/models` and
//! `GET /v1/models/{model}`, so the official OpenAI SDKs (and frameworks built on them, such
//! as the Vercel AI SDK) work against Threadline by changing only their base URL
//! (`https://<host>/v1`) and key (a Threadline API key or access token), with any provider's
//! model behind them.
//!
//! Only the routes and their thin handlers live here (authenticate, rate-limit, call the
//! provider, answer); what the bodies mean and what the answers look like are the pure
//! modules beside this one ([`crate::openai::request`], [`crate::openai::chunks`],
//! [`crate::openai::embeddings`], [`crate::openai::responses`]), testable without the
//! Workers runtime.
//!
//! Errors use the API's one envelope, whose `type`/`param`/`code`/`message` are what the
//! SDKs read; statuses follow OpenAI's (401 bad key, 429 with `retry-after`, 5xx on provider
//! trouble, `x-should-retry: false` where retrying cannot help).

use serde_json::{json, Value};
use worker::Response;

use crate::http::coalesce::Coalesce;
use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::http::router::handler;
use crate::http::router::{BodyLimit, Method, Route};
use crate::openai::caller::v1_caller;
use crate::openai::chunks::{completion_body, completion_id, ChunkStream, ChunkWriter};
use crate::openai::embeddings::{self, EmbeddingsBody};
use crate::openai::request::{to_unified, CompletionRequest, FileRef};
use crate::platform::clock::{Clock, SystemClock};
use crate::providers::catalogue::{Catalogue, EmbeddingModel};
use crate::providers::client::echo::DEV_EMBED_DIMENSIONS;
use crate::providers::client::{event_stream_response, ProviderClient};
use crate::providers::settings::{ProviderSettings, DEV_EMBED_MODEL};

/// The `/v1` routes, mounted with the rest of the API.
pub fn routes() -> Vec<Route> {
    let mut routes = crate::openai::responses::routes::routes();
    routes.extend([
        Route::new(
            Method::Post,
            "/v1/chat/completions",
            handler!(chat_completions),
        )
        .with_body(BodyLimit::Media),
        Route::new(Method::Get, "/v1/models", handler!(list_models)),
        // Model ids have a slash (`openai/gpt-4o`): SDKs send it encoded, curl as it is.
        Route::new(Method::Get, "/v1/models/{model}", handler!(retrieve_model)).with_rest(),
        Route::new(Method::Post, "/v1/embeddings", handler!(create_embeddings)),
    ]);
    routes
}

/// POST /v1/chat/completions — OpenAI-compatible chat completion, streamed or not.
async fn chat_completions(cx: Ctx) -> ApiResult<Response> {
    completions(cx, false).await
}

/// An OpenAI chat completion, streamed when the body asks or `force_stream` (for routes of
/// replaced services that always stream).
pub(crate) async fn completions(mut cx: Ctx, force_stream: bool) -> ApiResult<Response> {
    let caller = v1_caller(&cx).await?;
    let body: CompletionRequest = cx.json().await?;
    let (mut options, mut request) = to_unified(body, cx.config.files.max_file_size)?;
    options.stream |= force_stream;
    read_files(&cx, &caller.user_id, &options.file_refs, &mut request).await?;
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

/// Reads the caller's stored files that `file` parts name by `file_id` into their places:
/// images and PDFs as media, text files as their text (cut to the history budget). A id that is
/// not one of the caller's files — missing or another user's alike — is a 400 naming the part.
async fn read_files(
    cx: &Ctx,
    user_id: &str,
    refs: &[FileRef],
    request: &mut crate::providers::wire::ChatRequest,
) -> ApiResult<()> {
    let max_text_chars = (cx.config.chat.context_budget_tokens as usize).saturating_mul(3);
    for file_ref in refs {
        let file = crate::files::routes::find(cx, user_id, &file_ref.file_id)
            .await?
            .ok_or_else(|| {
                ApiError::bad_request("file_not_found", "No file of yours has this id.")
                    .with_field(file_ref.param.clone())
            })?;
        let part = crate::files::routes::attachment(cx, &file, max_text_chars).await?;
        if let Some(slot) = request
            .messages
            .get_mut(file_ref.message)
            .and_then(|m| m.parts.get_mut(file_ref.part))
        {
            *slot = part;
        }
    }
    Ok(())
}

/// GET /v1/models — the models (and aliases) this deployment serves, in OpenAI's list shape:
/// the chat models of `GET /api/models` and the embedding models of configured providers.
async fn list_models(cx: Ctx) -> ApiResult<Response> {
    v1_caller(&cx).await?;
    let models = crate::providers::routes::available_models(&cx).await;
    let embedding = offered_embedding_models(&cx.config.providers);
    response::json(200, &model_list(&models, &embedding))
}

/// GET /v1/models/{model} — one model of the list, by id, alias or bare provider name
/// (`gpt-4o`), so `client.models.retrieve(id)` works; the id may hold slashes, encoded
/// (`openai%2Fgpt-4o`, as the SDKs send it) or not. 404 `model_not_found` otherwise.
async fn retrieve_model(cx: Ctx) -> ApiResult<Response> {
    v1_caller(&cx).await?;
    let raw = cx.param("model")?;
    let name = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| unknown_model(raw))?
        .into_owned();
    let models = crate::providers::routes::available_models(&cx).await;
    let embedding = offered_embedding_models(&cx.config.providers);
    let list = model_list(&models, &embedding);
    match find_model(&list, &cx.config.providers.catalogue, &name) {
        Some(model) => response::json(200, &model),
        None => Err(unknown_model(&name)),
    }
}

/// POST /v1/embeddings — OpenAI-compatible embeddings from OpenAI, Gemini or an
/// OpenAI-compatible server (Ollama, vLLM), as floats or base64; a chat model is a 400.
async fn create_embeddings(mut cx: Ctx) -> ApiResult<Response> {
    v1_caller(&cx).await?;
    let body: EmbeddingsBody = cx.json().await?;
    let valid = embeddings::validate(body)?;
    let client = ProviderClient::new(&cx);
    let model = client.embedding_model(&valid.model)?;
    let known_length = offered_embedding_models(&cx.config.providers)
        .into_iter()
        .find(|m| m.id == model.id)
        .map(|m| m.dimensions);
    embeddings::check_dimensions(&valid.request, known_length)?;
    let vectors = client.embed(&model, valid.request).await?;
    response::json(
        200,
        &embeddings::list_body(&model.id, &vectors, valid.format),
    )
}

/// The catalogued embedding models whose provider is configured, and `dev/embed` where
/// `dev/echo` is offered.
fn offered_embedding_models(settings: &ProviderSettings) -> Vec<EmbeddingModel> {
    let mut offered: Vec<EmbeddingModel> = settings
        .catalogue
        .embedding_models()
        .iter()
        .filter(|m| settings.upstream(&m.provider).is_some())
        .cloned()
        .collect();
    if settings.dev_echo {
        offered.push(EmbeddingModel {
            id: DEV_EMBED_MODEL.into(),
            provider: "dev".into(),
            upstream: "embed".into(),
            dimensions: DEV_EMBED_DIMENSIONS,
        });
    }
    offered
}

fn unknown_model(name: &str) -> ApiError {
    let shown: String = name.chars().take(100).collect();
    ApiError::new(
        404,
        "model_not_found",
        format!("The model `{shown}` does not exist on this deployment; GET /v1/models lists the models it serves."),
    )
    .with_field("model")
}

fn model_object(id: &str, provider: &str) -> Value {
    json!({ "id": id, "object": "model", "created": 0, "owned_by": provider })
}

/// `{"object":"list","data":[{"id","object":"model","created","owned_by"}]}`, aliases
/// included as ids of their own (they are valid `model` values).
fn model_list(
    models: &[crate::providers::routes::OfferedModel],
    embedding: &[EmbeddingModel],
) -> Value {
    let mut data = Vec::new();
    for model in models {
        data.push(model_object(&model.id, &model.provider));
    }
    for model in embedding {
        data.push(model_object(&model.id, &model.provider));
    }
    for model in models {
        for alias in &model.aliases {
            data.push(model_object(alias, &model.provider));
        }
    }
    json!({ "object": "list", "data": data })
}

/// The entry of `list` that `name` stands for: an id or alias as listed, or a bare name as
/// an OpenAI, Anthropic or Gemini SDK sends it (answered under that name, as asked).
fn find_model(list: &Value, catalogue: &Catalogue, name: &str) -> Option<Value> {
    let entries = list["data"].as_array()?;
    let by_id = |id: &str| entries.iter().find(|m| m["id"] == id);
    if let Some(model) = by_id(name) {
        return Some(model.clone());
    }
    let qualified = catalogue
        .qualify_bare_name(name)
        .or_else(|| catalogue.qualify_bare_embedding_name(name))?;
    let model = by_id(&qualified)?;
    Some(model_object(
        name,
        model["owned_by"].as_str().unwrap_or_default(),
    ))
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
        let embedding = Catalogue::builtin().embedding_models()[..1].to_vec();
        let list = model_list(&models, &embedding);
        assert_eq!(list["object"], "list");
        assert_eq!(list["data"][0]["id"], "openai/gpt-4o");
        assert_eq!(list["data"][0]["object"], "model");
        assert_eq!(list["data"][0]["owned_by"], "openai");
        assert_eq!(list["data"][1]["id"], "openai/text-embedding-3-small");
        assert_eq!(list["data"][2]["id"], "smart");
    }

    fn offered(id: &str, provider: &str) -> crate::providers::routes::OfferedModel {
        crate::providers::routes::OfferedModel {
            id: id.into(),
            provider: provider.into(),
            display_name: id.into(),
            context_window: 1,
            supports_streaming: true,
            supports_vision: false,
            source: "catalogue",
            aliases: Vec::new(),
        }
    }

    #[test]
    fn a_model_is_found_by_id_and_by_the_bare_name_an_sdk_sends() {
        let catalogue = Catalogue::builtin();
        let embedding = catalogue.embedding_models().to_vec();
        let list = model_list(&[offered("openai/gpt-4o", "openai")], &embedding);
        let by_id = find_model(&list, &catalogue, "openai/gpt-4o").expect("by id");
        assert_eq!(by_id, model_object("openai/gpt-4o", "openai"));
        let bare = find_model(&list, &catalogue, "gpt-4o").expect("bare");
        assert_eq!(bare["id"], "gpt-4o", "answered under the name asked for");
        let bare_embedding =
            find_model(&list, &catalogue, "text-embedding-3-large").expect("bare embedding");
        assert_eq!(bare_embedding["owned_by"], "openai");
        for missing in ["openai/gpt-9", "gpt-9", "claude-3-5-haiku-latest", ""] {
            assert!(
                find_model(&list, &catalogue, missing).is_none(),
                "{missing}"
            );
        }
    }

    #[test]
    fn only_configured_providers_embedding_models_are_offered() {
        let src: std::collections::BTreeMap<String, String> =
            [("GEMINI_API_KEY".to_string(), "k".to_string())].into();
        let settings = ProviderSettings::from_source(&src, false, &mut Vec::new());
        let ids: Vec<String> = offered_embedding_models(&settings)
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(
            ids,
            ["gemini/gemini-embedding-001", "gemini/text-embedding-004"]
        );
    }

    #[test]
    fn an_unknown_model_is_404_in_openais_terms() {
        let err = unknown_model("nope/x");
        assert_eq!((err.status, err.code), (404, "model_not_found"));
        assert_eq!(err.field.as_deref(), Some("model"));
        assert_eq!(err.openai_type(), "not_found_error");
    }
}
