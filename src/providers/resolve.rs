//! Model names to callable models, without any I/O: aliases, bare names, `provider/model`
//! ids, the offline `dev/echo` model and fallbacks. Its errors are typed, so callers decide
//! with a `match` (a conversation set to an unknown model is a 422, a send to it a 404).

use super::catalogue;
use super::settings::{enabling_setting, ProviderSettings, Upstream, DEV_ECHO_MODEL};
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
