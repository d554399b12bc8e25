//! Model names to callable models, without any I/O: aliases, bare names, `provider/model`
//! ids, the offline `dev/echo` model and fallbacks. Its errors are typed, so callers decide
//! with a `match` (a conversation set to an unknown model is a 422, a send to it a 404).

use super::catalogue;
use super::settings::{
    enabling_setting, ProviderSettings, Upstream, DEV_ECHO_MODEL, DEV_EMBED_MODEL,
};
use super::wire::model::ProviderKind;
use crate::http::error::{ApiError, ApiResult};

/// The longest model name accepted.
pub const MAX_MODEL_CHARS: usize = 200;

/// Where a resolved model is served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Upstream(Upstream),
    /// The built-in offline `dev/echo` model.
    Echo,
}

/// A model name resolved to something that can be called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    /// `provider/model`, after alias resolution (`fast` → `gemini/gemini-2.0-flash`).
    pub id: String,
    /// The prefix of `id`, which names the provider in messages and logs.
    pub provider: String,
    /// The provider's own model name, sent upstream.
    pub upstream_model: String,
    pub target: Target,
}

/// Why a model name cannot be called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// No such model on this deployment (404 `model_not_found`).
    UnknownModel { name: String },
    /// The model exists but its provider is not configured (503 `provider_unavailable`).
    ProviderUnavailable {
        model: String,
        provider: String,
        enabling_setting: Option<&'static str>,
    },
    /// The model exists but makes no embeddings: a chat model, `dev/echo`, or a provider
    /// without an embeddings API (400 `model_cannot_embed`).
    CannotEmbed { model: String, reason: &'static str },
}

/// Long client-supplied names are cut in messages so an error cannot be used to echo junk.
fn shown(name: &str) -> String {
    let mut s: String = name.chars().take(100).collect();
    if s.len() < name.len() {
        s.push('…');
    }
    s
}

impl ResolveError {
    /// What the client is told.
    pub fn message(&self) -> String {
        match self {
            ResolveError::UnknownModel { name } => format!(
                "The model {:?} does not exist on this deployment; GET /api/models lists the models it serves.",
                shown(name)
            ),
            ResolveError::ProviderUnavailable {
                model,
                provider,
                enabling_setting,
            } => {
                let hint = enabling_setting
                    .map(|s| format!(" (an operator sets {s} to enable it)"))
                    .unwrap_or_default();
                format!(
                    "The model {:?} needs provider {provider}, which is not configured on this deployment{hint}.",
                    shown(model)
                )
            }
            ResolveError::CannotEmbed { model, reason } => format!(
                "The model {:?} cannot make embeddings: {reason}. Use an embedding model such as \"openai/text-embedding-3-small\".",
                shown(model)
            ),
        }
    }
}

impl From<ResolveError> for ApiError {
    fn from(err: ResolveError) -> Self {
        let message = err.message();
        match err {
            ResolveError::UnknownModel { .. } => {
                ApiError::new(404, "model_not_found", message).with_field("model")
            }
            ResolveError::ProviderUnavailable { .. } => {
                ApiError::new(503, "provider_unavailable", message)
                    .with_field("model")
                    // Retrying cannot help until an operator changes the configuration.
                    .with_header("x-should-retry", "false")
            }
            ResolveError::CannotEmbed { .. } => {
                ApiError::bad_request("model_cannot_embed", message).with_field("model")
            }
        }
    }
}

/// Resolves an alias or `provider/model` id, without any I/O.
pub fn resolve(settings: &ProviderSettings, name: &str) -> Result<ResolvedModel, ResolveError> {
    let qualified;
    let mut id = settings.catalogue.canonical_id(name.trim());
    if let Some(q) = settings.catalogue.qualify_bare_name(id) {
        qualified = q;
        id = &qualified;
    }
    if id == DEV_ECHO_MODEL && settings.dev_echo {
        return Ok(ResolvedModel {
            id: id.to_string(),
            provider: "dev".into(),
            upstream_model: "echo".into(),
            target: Target::Echo,
        });
    }
    let (prefix, model) = catalogue::parse_model_id(id).map_err(|_| unknown(name))?;
    let catalogued = settings.catalogue.resolve(id);
    let upstream_model = catalogued.map_or(model, |m| m.upstream.as_str());
    if let Some(upstream) = settings.upstream(prefix) {
        return Ok(ResolvedModel {
            id: id.to_string(),
            provider: prefix.to_string(),
            upstream_model: upstream_model.to_string(),
            target: Target::Upstream(upstream.clone()),
        });
    }
    let known_provider = catalogue::provider_kind_for_prefix(prefix).is_some();
    if known_provider || catalogued.is_some() {
        return Err(ResolveError::ProviderUnavailable {
            model: id.to_string(),
            provider: prefix.to_string(),
            enabling_setting: enabling_setting(prefix),
        });
    }
    Err(unknown(name))
}

fn unknown(name: &str) -> ResolveError {
    ResolveError::UnknownModel {
        name: name.to_string(),
    }
}

/// Resolves a model for `POST /v1/embeddings`, without any I/O: an alias, a bare embedding
/// model name (`text-embedding-3-small`) or a `provider/model` id. Chat models and
/// providers without embeddings are refused here, before any upstream call, so the client
/// gets a 400 that says why rather than a provider's puzzling error.
pub fn resolve_embedding_model(
    settings: &ProviderSettings,
    name: &str,
) -> Result<ResolvedModel, ResolveError> {
    let catalogue = &settings.catalogue;
    let qualified;
    let mut id = catalogue.canonical_id(name.trim());
    if let Some(q) = catalogue.qualify_bare_embedding_name(id) {
        qualified = q;
        id = &qualified;
    }
    let cannot_embed = |reason| ResolveError::CannotEmbed {
        model: id.to_string(),
        reason,
    };
    if id == DEV_EMBED_MODEL && settings.dev_echo {
        return Ok(ResolvedModel {
            id: id.to_string(),
            provider: "dev".into(),
            upstream_model: "embed".into(),
            target: Target::Echo,
        });
    }
    if id == DEV_ECHO_MODEL {
        return Err(if settings.dev_echo {
            cannot_embed("dev/echo is a chat model")
        } else {
            unknown(name)
        });
    }
    if catalogue.resolve(id).is_some() || catalogue.qualify_bare_name(id).is_some() {
        return Err(cannot_embed("it is a chat model"));
    }
    let (prefix, model) = catalogue::parse_model_id(id).map_err(|_| unknown(name))?;
    let catalogued = catalogue.resolve_embedding(id);
    if catalogue::provider_kind_for_prefix(prefix) == Some(ProviderKind::Anthropic) {
        return Err(cannot_embed("Anthropic has no embeddings API"));
    }
    if let Some(upstream) = settings.upstream(prefix) {
        if crate::providers::wire::embeddings::max_batch(upstream.endpoint.kind).is_none() {
            return Err(cannot_embed("its provider has no embeddings API"));
        }
        return Ok(ResolvedModel {
            id: id.to_string(),
            provider: prefix.to_string(),
            upstream_model: catalogued
                .map_or(model, |m| m.upstream.as_str())
                .to_string(),
            target: Target::Upstream(upstream.clone()),
        });
    }
    if catalogue::provider_kind_for_prefix(prefix).is_some() || catalogued.is_some() {
        return Err(ResolveError::ProviderUnavailable {
            model: id.to_string(),
            provider: prefix.to_string(),
            enabling_setting: enabling_setting(prefix),
        });
    }
    Err(unknown(name))
}

/// The requested model followed by its usable fallbacks, without duplicates. Fallbacks whose
/// provider is not configured are skipped: the requested model decides the error.
pub fn plan(settings: &ProviderSettings, name: &str) -> Result<Vec<ResolvedModel>, ResolveError> {
    let mut plan = vec![resolve(settings, name)?];
    for fallback in settings.fallbacks_for(name) {
        if let Ok(model) = resolve(settings, fallback) {
            if plan.iter().all(|m| m.id != model.id) {
                plan.push(model);
            }
        }
    }
    Ok(plan)
}

/// A model is named `provider/model` (`openai/gpt-4o`) or by an alias without `/`
/// (`fast`).
pub fn validate_model(model: &str) -> ApiResult<String> {
    let model = model.trim();
    let shape_ok = if model.contains('/') {
        catalogue::parse_model_id(model).is_ok()
    } else {
        !model.is_empty() && !model.chars().any(char::is_whitespace)
    };
    if !shape_ok || model.chars().count() > MAX_MODEL_CHARS {
        return Err(ApiError::validation(
            "model",
            "`model` must be a model id such as \"openai/gpt-4o\" or an alias; GET /models lists them.",
        ));
    }
    Ok(model.to_string())
}

/// A model the deployment has never heard of is refused when a conversation is set to it
/// (422, not at the first message). A known model whose provider is not configured is
/// accepted: an operator may configure it later, and sending answers 503 until then.
pub fn require_known_model(model: &str, providers: &ProviderSettings) -> ApiResult<()> {
    match resolve(providers, model) {
        Err(err @ ResolveError::UnknownModel { .. }) => {
            Err(ApiError::validation("model", err.message()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)], development: bool) -> ProviderSettings {
        let src: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProviderSettings::from_source(&src, development, &mut Vec::new())
    }

    fn all_providers() -> ProviderSettings {
        settings(
            &[
                ("OPENAI_API_KEY", "k"),
                ("ANTHROPIC_API_KEY", "k"),
                ("GEMINI_API_KEY", "k"),
                ("OLLAMA_BASE_URL", "http://localhost:11434/v1"),
                (
                    "MODEL_ALIASES",
                    r#"{"vectors":"gemini/gemini-embedding-001"}"#,
                ),
            ],
            false,
        )
    }

    #[test]
    fn embedding_models_resolve_by_id_bare_name_alias_and_pass_through() {
        let s = all_providers();
        for (name, id, upstream) in [
            (
                "openai/text-embedding-3-small",
                "openai/text-embedding-3-small",
                "text-embedding-3-small",
            ),
            (
                "text-embedding-3-large",
                "openai/text-embedding-3-large",
                "text-embedding-3-large",
            ),
            (
                "text-embedding-004",
                "gemini/text-embedding-004",
                "text-embedding-004",
            ),
            (
                "vectors",
                "gemini/gemini-embedding-001",
                "gemini-embedding-001",
            ),
            (
                "ollama/nomic-embed-text",
                "ollama/nomic-embed-text",
                "nomic-embed-text",
            ),
        ] {
            let model = resolve_embedding_model(&s, name).expect(name);
            assert_eq!(
                (model.id.as_str(), model.upstream_model.as_str()),
                (id, upstream)
            );
        }
    }

    #[test]
    fn chat_models_and_anthropic_cannot_embed() {
        let s = all_providers();
        for name in [
            "openai/gpt-4o",
            "gpt-4o",
            "claude-3-5-haiku-latest",
            "anthropic/anything",
        ] {
            let err = resolve_embedding_model(&s, name).expect_err(name);
            assert!(matches!(err, ResolveError::CannotEmbed { .. }), "{name}");
            let api = ApiError::from(err);
            assert_eq!((api.status, api.code), (400, "model_cannot_embed"));
            assert_eq!(api.field.as_deref(), Some("model"));
        }
    }

    #[test]
    fn dev_embed_exists_exactly_where_dev_echo_does() {
        let dev = resolve_embedding_model(&settings(&[], true), "dev/embed").expect("offline");
        assert_eq!(dev.target, Target::Echo);
        for s in [
            settings(&[], false),
            settings(&[("OPENAI_API_KEY", "k")], true),
        ] {
            assert!(matches!(
                resolve_embedding_model(&s, "dev/embed"),
                Err(ResolveError::UnknownModel { .. })
            ));
        }
    }

    #[test]
    fn dev_echo_cannot_embed_where_it_exists_and_is_unknown_elsewhere() {
        let dev = settings(&[], true);
        assert!(matches!(
            resolve_embedding_model(&dev, "dev/echo"),
            Err(ResolveError::CannotEmbed { .. })
        ));
        assert!(matches!(
            resolve_embedding_model(&settings(&[], false), "dev/echo"),
            Err(ResolveError::UnknownModel { .. })
        ));
    }

    #[test]
    fn an_unconfigured_embedding_provider_is_unavailable_and_junk_is_unknown() {
        let s = settings(&[("OPENAI_API_KEY", "k")], false);
        assert!(matches!(
            resolve_embedding_model(&s, "gemini-embedding-001"),
            Err(ResolveError::ProviderUnavailable { .. })
        ));
        for name in ["nomic-embed-text", "nope/thing", ""] {
            assert!(matches!(
                resolve_embedding_model(&s, name),
                Err(ResolveError::UnknownModel { .. })
            ));
        }
    }
}
