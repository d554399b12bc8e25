//! `GET /api/models` — the models this deployment can serve right now.
//!
//! The answer merges three sources: the catalogue entries (built-in and `EXTRA_MODELS`) of
//! the configured providers, the operator's aliases, and — for each configured provider —
//! what its list endpoint says, cached in KV for an hour. The list endpoints only ever add
//! models: they do not return the `-latest` names the catalogue uses (Anthropic lists dated
//! ids), and a provider being down must never empty or fail this route. A failed listing is
//! cached for a minute so a provider outage does not slow every call down.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use worker::Response;

use crate::http::ctx::Ctx;
use crate::http::error::ApiResult;
use crate::http::response;
use crate::http::router::handler;
use crate::http::router::{Method, Route};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::logging::LogLine;
use crate::providers::catalogue::DEFAULT_CONTEXT_WINDOW;
use crate::providers::client::ProviderClient;
use crate::providers::ollama::manage::OllamaServer;
use crate::providers::settings::{ProviderSettings, Upstream};
use crate::providers::wire::ProviderKind;

pub fn routes() -> Vec<Route> {
    vec![Route::new(Method::Get, "/api/models", handler!(list))]
}

/// How long a successful provider listing is cached.
pub const LIST_CACHE_TTL_SECS: u64 = 3600;
/// How long a failed listing is remembered (KV's minimum TTL).
pub const FAILED_LIST_CACHE_TTL_SECS: u64 = 60;

/// One model a client may ask for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferedModel {
    /// `provider/model`: the name to send as `model`.
    pub id: String,
    pub provider: String,
    pub display_name: String,
    pub context_window: u32,
    pub supports_streaming: bool,
    pub supports_vision: bool,
    /// `catalogue` (built in or added by the operator) or `provider` (found only through the
    /// provider's list endpoint; capabilities are then conservative defaults).
    pub source: &'static str,
    /// Other names that reach this model.
    pub aliases: Vec<String>,
}

/// What is stored in KV per provider. Pinned by a test: changing it needs a new key prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedListing {
    pub fetched_at_ms: u64,
    pub ok: bool,
    pub models: Vec<String>,
}

/// The KV key of a provider's cached listing; the base URL is hashed in so pointing a
/// provider elsewhere is not answered from the old server's cache.
pub fn cache_key(upstream: &Upstream) -> String {
    let url_hash = crate::auth::crypto::secrets::sha256_hex(&upstream.endpoint.base_url);
    format!("models:list:v1:{}:{}", upstream.name, &url_hash[..16])
}

/// Whether a listed model can chat. OpenAI's list holds embeddings, speech, image and
/// moderation models too; the other providers' lists are chat models (Gemini's adapter
/// already keeps only `generateContent` ones).
pub fn is_chat_model(provider: &str, name: &str) -> bool {
    if provider != "openai" {
        return true;
    }
    let chat_family = ["gpt-", "chatgpt-", "o1", "o3", "o4"]
        .iter()
        .any(|p| name.starts_with(p));
    let not_chat = [
        "embedding",
        "tts",
        "whisper",
        "dall-e",
        "audio",
        "realtime",
        "transcribe",
        "image",
        "search",
        "moderation",
        "instruct",
    ]
    .iter()
    .any(|w| name.contains(w));
    chat_family && !not_chat
}

/// Merges the offered catalogue with the providers' listings (`provider → names`).
pub fn merge(
    settings: &ProviderSettings,
    listings: &BTreeMap<String, Vec<String>>,
) -> Vec<OfferedModel> {
    let mut offered: Vec<OfferedModel> = settings
        .offered_catalogue()
        .into_iter()
        .map(|m| OfferedModel {
            id: m.id.clone(),
            provider: m.provider.clone(),
            display_name: m.display_name.clone(),
            context_window: m.context_window,
            supports_streaming: m.supports_streaming,
            supports_vision: m.supports_vision,
            source: "catalogue",
            aliases: Vec::new(),
        })
        .collect();
    for upstream in &settings.upstreams {
        let Some(names) = listings.get(upstream.name) else {
            continue;
        };
        let mut names: Vec<&String> = names
            .iter()
            .filter(|n| is_chat_model(upstream.name, n))
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            let id = format!("{}/{name}", upstream.name);
            let known = settings
                .catalogue
                .models()
                .iter()
                .any(|m| m.provider == upstream.name && (m.upstream == *name || m.id == id));
            if known || offered.iter().any(|m| m.id == id) {
                continue;
            }
            offered.push(OfferedModel {
                id,
                provider: upstream.name.to_string(),
                display_name: name.clone(),
                context_window: DEFAULT_CONTEXT_WINDOW,
                supports_streaming: true,
                supports_vision: false,
                source: "provider",
                aliases: Vec::new(),
            });
        }
    }
    for (alias, target) in settings.catalogue.aliases() {
        if let Some(model) = offered.iter_mut().find(|m| m.id == *target) {
            model.aliases.push(alias.clone());
        }
    }
    offered
}

/// The aliases whose target is offered.
pub fn offered_aliases(offered: &[OfferedModel]) -> BTreeMap<String, String> {
    offered
        .iter()
        .flat_map(|m| m.aliases.iter().map(|a| (a.clone(), m.id.clone())))
        .collect()
}

/// A provider's listing, from KV when fresh, otherwise from its list endpoint (then cached).
async fn listing(cx: &Ctx, client: &ProviderClient, upstream: &Upstream) -> Vec<String> {
    let kv = cx.env.kv("KV").ok();
    let key = cache_key(upstream);
    if let Some(kv) = &kv {
        if let Ok(Some(text)) = kv.get(&key).text().await {
            if let Ok(cached) = serde_json::from_str::<CachedListing>(&text) {
                return cached.models;
            }
        }
    }
    let now_ms = SystemClock.now_ms();
    let entry = match listed_models(client, upstream).await {
        Ok(models) => CachedListing {
            fetched_at_ms: now_ms,
            ok: true,
            models,
        },
        Err(problem) => {
            // The key never reaches this message: errors are scrubbed by the client.
            LogLine::new(
                crate::platform::logging::LogLevel::Warn,
                now_ms,
                "model list failed",
            )
            .field("request_id", cx.request_id.as_str())
            .field("provider", upstream.name)
            .field("problem", problem.as_str())
            .emit(cx.config.log_level);
            CachedListing {
                fetched_at_ms: now_ms,
                ok: false,
                models: Vec::new(),
            }
        }
    };
    if let (Some(kv), Ok(text)) = (&kv, serde_json::to_string(&entry)) {
        let ttl = if entry.ok {
            LIST_CACHE_TTL_SECS
        } else {
            FAILED_LIST_CACHE_TTL_SECS
        };
        if let Ok(put) = kv.put(&key, text) {
            let _ = put.expiration_ttl(ttl).execute().await;
        }
    }
    entry.models
}

/// The list endpoint's models; for an OpenAI-compatible server, also those of Ollama's
/// native `/api/tags` (a server that has no such endpoint adds nothing, and either list
/// alone is enough).
async fn listed_models(
    client: &ProviderClient,
    upstream: &Upstream,
) -> Result<Vec<String>, String> {
    let listed = client.list_models(upstream);
    if upstream.endpoint.kind != ProviderKind::OpenAiCompatible {
        return listed.await;
    }
    let server = OllamaServer::new(client.transport(), upstream);
    let (listed, native) = futures::future::join(listed, server.local_models()).await;
    match (listed, native) {
        (Ok(mut names), Ok(native)) => {
            names.extend(native.into_iter().map(|m| m.name));
            Ok(names)
        }
        (Ok(names), Err(_)) => Ok(names),
        (Err(_), Ok(native)) => Ok(native.into_iter().map(|m| m.name).collect()),
        (Err(problem), Err(_)) => Err(problem),
    }
}

/// Every model this deployment can serve right now. Never fails.
pub async fn available_models(cx: &Ctx) -> Vec<OfferedModel> {
    let settings = &cx.config.providers;
    let client = ProviderClient::new(cx);
    let fetches = settings.upstreams.iter().map(|upstream| {
        let client = &client;
        async move {
            (
                upstream.name.to_string(),
                listing(cx, client, upstream).await,
            )
        }
    });
    let listings: BTreeMap<String, Vec<String>> = futures::future::join_all(fetches)
        .await
        .into_iter()
        .collect();
    merge(settings, &listings)
}

#[derive(Serialize)]
struct ModelsBody {
    models: Vec<OfferedModel>,
    aliases: BTreeMap<String, String>,
}

/// GET /api/models — public: which models can be used here, with their capabilities.
async fn list(cx: Ctx) -> ApiResult<Response> {
    let models = available_models(&cx).await;
    let aliases = offered_aliases(&models);
    response::json(200, &ModelsBody { models, aliases })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> ProviderSettings {
        let src: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProviderSettings::from_source(&src, false, &mut Vec::new())
    }

    fn ids(models: &[OfferedModel]) -> Vec<&str> {
        models.iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn without_providers_nothing_is_offered() {
        assert!(merge(&settings(&[]), &BTreeMap::new()).is_empty());
    }

    #[test]
    fn only_configured_providers_catalogue_entries_are_offered() {
        let offered = merge(&settings(&[("OPENAI_API_KEY", "k")]), &BTreeMap::new());
        assert_eq!(ids(&offered), ["openai/gpt-4o", "openai/gpt-4o-mini"]);
        assert!(offered.iter().all(|m| m.source == "catalogue"));
    }

    #[test]
    fn listed_models_are_added_after_the_catalogue_without_duplicates() {
        let s = settings(&[("OPENAI_API_KEY", "k"), ("ANTHROPIC_API_KEY", "k")]);
        let listings = BTreeMap::from([
            (
                "openai".to_string(),
                vec![
                    "gpt-4o".to_string(),
                    "o3-mini".to_string(),
                    "text-embedding-3-small".to_string(),
                    "gpt-4.1".to_string(),
                ],
            ),
            (
                "anthropic".to_string(),
                vec!["claude-3-5-haiku-20241022".to_string()],
            ),
        ]);
        let offered = merge(&s, &listings);
        let provider_ids: Vec<&str> = offered
            .iter()
            .filter(|m| m.source == "provider")
            .map(|m| m.id.as_str())
            .collect();
        assert_eq!(
            provider_ids,
            [
                "openai/gpt-4.1",
                "openai/o3-mini",
                "anthropic/claude-3-5-haiku-20241022"
            ]
        );
        assert_eq!(
            offered.iter().filter(|m| m.id == "openai/gpt-4o").count(),
            1
        );
    }

    #[test]
    fn listings_of_unconfigured_providers_are_ignored() {
        let s = settings(&[("OPENAI_API_KEY", "k")]);
        let listings = BTreeMap::from([("gemini".to_string(), vec!["gemini-9".to_string()])]);
        assert!(merge(&s, &listings).iter().all(|m| m.provider == "openai"));
    }

    #[test]
    fn aliases_are_attached_to_offered_targets_only() {
        let s = settings(&[
            ("OPENAI_API_KEY", "k"),
            (
                "MODEL_ALIASES",
                r#"{"smart":"openai/gpt-4o","fast":"gemini/gemini-2.0-flash"}"#,
            ),
        ]);
        let offered = merge(&s, &BTreeMap::new());
        let gpt = offered
            .iter()
            .find(|m| m.id == "openai/gpt-4o")
            .expect("gpt-4o");
        assert_eq!(gpt.aliases, ["smart"]);
        assert_eq!(
            offered_aliases(&offered),
            BTreeMap::from([("smart".to_string(), "openai/gpt-4o".to_string())])
        );
    }

    #[test]
    fn openai_listings_keep_chat_models_only() {
        for chat in [
            "gpt-4o",
            "gpt-4.1-mini",
            "o3-mini",
            "chatgpt-4o-latest",
            "o1",
        ] {
            assert!(is_chat_model("openai", chat), "{chat}");
        }
        for other in [
            "text-embedding-3-large",
            "tts-1",
            "whisper-1",
            "dall-e-3",
            "gpt-4o-realtime-preview",
            "gpt-4o-audio-preview",
            "omni-moderation-latest",
            "gpt-3.5-turbo-instruct",
            "babbage-002",
        ] {
            assert!(!is_chat_model("openai", other), "{other}");
        }
        assert!(is_chat_model("ollama", "nomic-embed-text"));
    }

    #[test]
    fn the_kv_format_of_a_cached_listing_is_stable() {
        let entry = CachedListing {
            fetched_at_ms: 1,
            ok: true,
            models: vec!["gpt-4o".into()],
        };
        assert_eq!(
            serde_json::to_string(&entry).expect("json"),
            r#"{"fetched_at_ms":1,"ok":true,"models":["gpt-4o"]}"#
        );
    }

    #[test]
    fn the_cache_key_names_the_provider_and_changes_with_the_base_url() {
        let a = settings(&[("OPENAI_API_KEY", "k")]);
        let b = settings(&[
            ("OPENAI_API_KEY", "k"),
            ("OPENAI_BASE_URL", "http://localhost:1/v1"),
        ]);
        let key_a = cache_key(a.upstream("openai").expect("openai"));
        let key_b = cache_key(b.upstream("openai").expect("openai"));
        assert!(key_a.starts_with("models:list:v1:openai:"));
        assert_ne!(key_a, key_b);
    }
}
