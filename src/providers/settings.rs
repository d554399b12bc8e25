//! Which AI providers this deployment may call, and how: parsed once per isolate from vars and
//! secrets, like the rest of [`crate::config::Config`].
//!
//! | setting | kind | meaning |
//! |---|---|---|
//! | `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `GEMINI_API_KEY` | secret | a provider is offered only when its key is set |
//! | `OPENAI_BASE_URL` | var | default `https://api.openai.com/v1` (includes the version path, as in OpenAI's SDKs) |
//! | `ANTHROPIC_BASE_URL` | var | default `https://api.anthropic.com` |
//! | `GEMINI_BASE_URL` | var | default `https://generativelanguage.googleapis.com` |
//! | `OLLAMA_BASE_URL` | var | e.g. `http://localhost:11434/v1`; Ollama (or any OpenAI-compatible server: vLLM, llama.cpp) is offered only when set |
//! | `OLLAMA_API_KEY` | secret | optional bearer key for an OpenAI-compatible server that wants one |
//! | `PROVIDER_TIMEOUT_SECS` | var | default 120: longest wait for a provider's first byte, for a whole non-stream reply, and between two chunks of a stream |
//! | `OPENAI_TIMEOUT_SECS`, `ANTHROPIC_TIMEOUT_SECS`, `GEMINI_TIMEOUT_SECS`, `OLLAMA_TIMEOUT_SECS` | var | per-provider override of the above |
//! | `PROVIDER_MAX_RETRIES` | var | default 2: retries of a retryable failure on the same model, before any fallback |
//! | `MODEL_FALLBACKS` | var | JSON, `{"openai/gpt-4o":["anthropic/claude-3-5-haiku-latest"]}` |
//! | `EXTRA_MODELS` | var | JSON array of models to add to the catalogue (see [`super::catalogue::parse_operator_models`]) |
//! | `MODEL_ALIASES` | var | JSON object, `{"fast":"gemini/gemini-2.0-flash"}` (see [`super::catalogue::parse_aliases`]) |
//!
//! An invalid value never stops the deployment: it falls back to its default and is logged
//! as a configuration warning (none of these settings can make the service insecure).
//!
//! This module is pure — no `worker` types — so every rule here is tested natively.

use std::collections::BTreeMap;

use crate::config::source::{parse_number, ConfigSource};

use super::catalogue::{self, Catalogue, ModelInfo};
use super::wire::model::{ProviderEndpoint, ProviderKind};

/// The id of the built-in offline model (see [`ProviderSettings::dev_echo`]).
pub const DEV_ECHO_MODEL: &str = "dev/echo";
/// The built-in offline embedding model, offered exactly when `dev/echo` is.
pub const DEV_EMBED_MODEL: &str = "dev/embed";

pub const DEFAULT_TIMEOUT_SECS: u64 = 120;
pub const MAX_TIMEOUT_SECS: u64 = 900;
pub const DEFAULT_MAX_RETRIES: u32 = 2;
pub const MAX_RETRIES_LIMIT: u32 = 5;

/// One provider this deployment is configured to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The model-id prefix that routes here (`openai`, `anthropic`, `gemini`, `ollama`).
    pub name: &'static str,
    /// Wire format, base URL and key. Its `Debug` output never shows the key.
    pub endpoint: ProviderEndpoint,
    /// See `PROVIDER_TIMEOUT_SECS`.
    pub timeout_secs: u64,
}

/// How failed calls are retried. Backoff is exponential from `base_delay_ms`, capped at
/// `max_delay_ms`; a provider's `retry-after` is honoured when it is at most
/// `max_retry_after_secs`, and otherwise means "not worth waiting for": the next fallback
/// is tried, or the client gets the 429/503 with the provider's `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    pub max_retry_after_secs: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: DEFAULT_MAX_RETRIES,
            base_delay_ms: 250,
            max_delay_ms: 4_000,
            max_retry_after_secs: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    /// The configured providers, in a fixed order (OpenAI, Anthropic, Gemini, Ollama).
    pub upstreams: Vec<Upstream>,
    pub retry: RetryPolicy,
    /// Model id (or alias) → the models to try, in order, when it fails retryably.
    pub fallbacks: BTreeMap<String, Vec<String>>,
    /// Built-in models plus `EXTRA_MODELS`, and `MODEL_ALIASES`.
    pub catalogue: Catalogue,
    /// `dev/echo` is offered: only in development, and only when no provider is configured,
    /// so `make dev` is useful offline. It can never exist in production.
    pub dev_echo: bool,
}

/// The four built-in providers: prefix, kind, key setting, base-URL setting, default base
/// URL (`None`: offered only when the base URL is set), timeout setting.
struct Builtin {
    name: &'static str,
    kind: ProviderKind,
    key_var: &'static str,
    url_var: &'static str,
    default_url: Option<&'static str>,
    timeout_var: &'static str,
}

const BUILTINS: [Builtin; 4] = [
    Builtin {
        name: "openai",
        kind: ProviderKind::OpenAi,
        key_var: "OPENAI_API_KEY",
        url_var: "OPENAI_BASE_URL",
        default_url: Some(super::wire::openai::DEFAULT_BASE_URL),
        timeout_var: "OPENAI_TIMEOUT_SECS",
    },
    Builtin {
        name: "anthropic",
        kind: ProviderKind::Anthropic,
        key_var: "ANTHROPIC_API_KEY",
        url_var: "ANTHROPIC_BASE_URL",
        default_url: Some(super::wire::anthropic::DEFAULT_BASE_URL),
        timeout_var: "ANTHROPIC_TIMEOUT_SECS",
    },
    Builtin {
        name: "gemini",
        kind: ProviderKind::Gemini,
        key_var: "GEMINI_API_KEY",
        url_var: "GEMINI_BASE_URL",
        default_url: Some(super::wire::gemini::DEFAULT_BASE_URL),
        timeout_var: "GEMINI_TIMEOUT_SECS",
    },
    Builtin {
        name: "ollama",
        kind: ProviderKind::OpenAiCompatible,
        key_var: "OLLAMA_API_KEY",
        url_var: "OLLAMA_BASE_URL",
        default_url: None,
        timeout_var: "OLLAMA_TIMEOUT_SECS",
    },
];

/// The setting an operator sets to enable provider `name`, for error messages.
pub fn enabling_setting(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|b| b.name == name).map(|b| {
        if b.default_url.is_some() {
            b.key_var
        } else {
            b.url_var
        }
    })
}

impl ProviderSettings {
    /// Parses every provider setting. `development` comes from `ENVIRONMENT` (parsed by
    /// [`crate::config::Config`]); it only decides whether `dev/echo` may exist.
    pub fn from_source(
        src: &dyn ConfigSource,
        development: bool,
        warnings: &mut Vec<String>,
    ) -> ProviderSettings {
        let default_timeout = parse_number(
            src,
            "PROVIDER_TIMEOUT_SECS",
            DEFAULT_TIMEOUT_SECS,
            1,
            MAX_TIMEOUT_SECS,
            warnings,
        );
        let mut upstreams = Vec::new();
        for builtin in &BUILTINS {
            if let Some(upstream) = read_upstream(src, builtin, default_timeout, warnings) {
                upstreams.push(upstream);
            }
        }

        let retry = RetryPolicy {
            max_retries: parse_number(
                src,
                "PROVIDER_MAX_RETRIES",
                DEFAULT_MAX_RETRIES,
                0,
                MAX_RETRIES_LIMIT,
                warnings,
            ),
            ..RetryPolicy::default()
        };

        let extras = match src.get("EXTRA_MODELS") {
            None => Vec::new(),
            Some(raw) => catalogue::parse_operator_models(&raw).unwrap_or_else(|e| {
                warnings.push(format!("EXTRA_MODELS is ignored: {e}"));
                Vec::new()
            }),
        };
        let aliases = match src.get("MODEL_ALIASES") {
            None => BTreeMap::new(),
            Some(raw) => catalogue::parse_aliases(&raw).unwrap_or_else(|e| {
                warnings.push(format!("MODEL_ALIASES is ignored: {e}"));
                BTreeMap::new()
            }),
        };
        let fallbacks = match src.get("MODEL_FALLBACKS") {
            None => BTreeMap::new(),
            Some(raw) => parse_fallbacks(&raw, &aliases).unwrap_or_else(|e| {
                warnings.push(format!("MODEL_FALLBACKS is ignored: {e}"));
                BTreeMap::new()
            }),
        };

        let dev_echo = development && upstreams.is_empty();
        let mut extras = extras;
        if dev_echo {
            extras.push(dev_echo_info());
        }
        let catalogue = Catalogue::builtin()
            .with_operator_models(extras)
            .with_aliases(aliases);

        ProviderSettings {
            upstreams,
            retry,
            fallbacks,
            catalogue,
            dev_echo,
        }
    }

    /// The configured provider behind a model-id prefix.
    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// Whether any model can be served at all.
    pub fn any_provider(&self) -> bool {
        !self.upstreams.is_empty() || self.dev_echo
    }

    /// The fallback list for a model, looked up by the name the client used and then by
    /// the id it stands for, so both `fast` and its target can carry a list.
    pub fn fallbacks_for(&self, name: &str) -> &[String] {
        self.fallbacks
            .get(name)
            .or_else(|| self.fallbacks.get(self.catalogue.canonical_id(name)))
            .map_or(&[], Vec::as_slice)
    }

    /// The catalogue models this deployment can serve right now: those whose provider is
    /// configured (and `dev/echo` when it exists).
    pub fn offered_catalogue(&self) -> Vec<&ModelInfo> {
        self.catalogue
            .models()
            .iter()
            .filter(|m| {
                self.upstream(&m.provider).is_some() || (self.dev_echo && m.id == DEV_ECHO_MODEL)
            })
            .collect()
    }
}

fn dev_echo_info() -> ModelInfo {
    ModelInfo {
        id: DEV_ECHO_MODEL.into(),
        provider: "dev".into(),
        upstream: "echo".into(),
        display_name: "Echo (development only, no provider configured)".into(),
        context_window: catalogue::DEFAULT_CONTEXT_WINDOW,
        supports_streaming: true,
        supports_vision: false,
    }
}

fn read_upstream(
    src: &dyn ConfigSource,
    builtin: &Builtin,
    default_timeout: u64,
    warnings: &mut Vec<String>,
) -> Option<Upstream> {
    // Secrets pasted into `wrangler secret put` easily carry a trailing newline.
    let key = src
        .get(builtin.key_var)
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty());
    let configured_url = src.get(builtin.url_var).and_then(|raw| {
        let url = raw.trim().trim_end_matches('/').to_string();
        if valid_base_url(&url) {
            Some(with_default_path(builtin.kind, url))
        } else {
            warnings.push(format!(
                "{}={raw:?} is not an http(s) URL; using the default",
                builtin.url_var
            ));
            None
        }
    });
    let base_url = match (builtin.default_url, configured_url) {
        // A keyed provider is offered only with its key.
        (Some(_), _) if key.is_none() => return None,
        (Some(default), url) => url.unwrap_or_else(|| default.to_string()),
        // A keyless local server is offered only when its URL is set.
        (None, Some(url)) => url,
        (None, None) => return None,
    };
    if key.is_some() && base_url.starts_with("http://") && !is_local(&base_url) {
        warnings.push(format!(
            "{} is plain http to a non-local host: {} travels unencrypted",
            builtin.url_var, builtin.key_var
        ));
    }
    let timeout_secs = parse_number(
        src,
        builtin.timeout_var,
        default_timeout,
        1,
        MAX_TIMEOUT_SECS,
        warnings,
    );
    Some(Upstream {
        name: builtin.name,
        endpoint: ProviderEndpoint {
            kind: builtin.kind,
            base_url,
            api_key: key,
        },
        timeout_secs,
    })
}

/// An OpenAI-compatible server named by its bare address (`http://localhost:11434`, as Ollama
/// documents it and Web+'s `OLLAMA_BASE_URL` carries it) serves that API under `/v1`; a URL
/// with any path of its own is taken as it is (a proxy may mount the API elsewhere).
fn with_default_path(kind: ProviderKind, url: String) -> String {
    let bare = url::Url::parse(&url).is_ok_and(|u| u.path() == "/" || u.path().is_empty());
    if kind == ProviderKind::OpenAiCompatible && bare {
        format!("{url}/v1")
    } else {
        url
    }
}

fn valid_base_url(raw: &str) -> bool {
    match url::Url::parse(raw) {
        Ok(url) => {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some_and(|h| !h.is_empty())
                && url.query().is_none()
                && url.username().is_empty()
        }
        Err(_) => false,
    }
}

fn is_local(base_url: &str) -> bool {
    url::Url::parse(base_url).is_ok_and(|u| {
        matches!(
            u.host_str(),
            Some("localhost" | "127.0.0.1" | "[::1]" | "host.docker.internal")
        )
    })
}

/// Parses `{"model": ["fallback", …]}`. Keys and entries must be model ids or known
/// aliases; a model may not fall back to itself.
pub fn parse_fallbacks(
    raw: &str,
    aliases: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let map: BTreeMap<String, Vec<String>> = serde_json::from_str(raw)
        .map_err(|e| format!("it must be a JSON object of model id to a list of model ids: {e}"))?;
    let check = |name: &str| -> Result<(), String> {
        if aliases.contains_key(name) {
            return Ok(());
        }
        catalogue::parse_model_id(name).map(|_| ())
    };
    let canonical = |name: &str| {
        aliases
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    };
    for (model, list) in &map {
        check(model)?;
        for fallback in list {
            check(fallback)?;
            if canonical(fallback) == canonical(model) {
                return Err(format!("{model:?} cannot fall back to itself"));
            }
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> (ProviderSettings, Vec<String>) {
        settings_in(false, pairs)
    }

    fn settings_in(development: bool, pairs: &[(&str, &str)]) -> (ProviderSettings, Vec<String>) {
        let src: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut warnings = Vec::new();
        let s = ProviderSettings::from_source(&src, development, &mut warnings);
        (s, warnings)
    }

    fn names(s: &ProviderSettings) -> Vec<&str> {
        s.upstreams.iter().map(|u| u.name).collect()
    }

    #[test]
    fn nothing_configured_offers_no_provider() {
        let (s, warnings) = settings(&[]);
        assert!(s.upstreams.is_empty());
        assert!(!s.any_provider());
        assert!(warnings.is_empty());
    }

    #[test]
    fn a_key_enables_its_provider_at_the_public_endpoint() {
        let (s, _) = settings(&[("ANTHROPIC_API_KEY", "ak-1"), ("GEMINI_API_KEY", "g-1")]);
        assert_eq!(names(&s), ["anthropic", "gemini"]);
        let a = s.upstream("anthropic").expect("anthropic");
        assert_eq!(a.endpoint.base_url, "https://api.anthropic.com");
        assert_eq!(a.endpoint.kind, ProviderKind::Anthropic);
        assert_eq!(a.endpoint.key(), Some("ak-1"));
        assert_eq!(
            s.upstream("gemini").map(|g| g.endpoint.base_url.as_str()),
            Some("https://generativelanguage.googleapis.com")
        );
    }

    #[test]
    fn a_base_url_alone_does_not_enable_a_keyed_provider() {
        let (s, _) = settings(&[("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")]);
        assert!(s.upstream("openai").is_none());
    }

    #[test]
    fn base_urls_point_providers_anywhere_and_lose_a_trailing_slash() {
        let (s, _) = settings(&[
            ("OPENAI_API_KEY", "sk-test"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9999/v1/"),
        ]);
        assert_eq!(
            s.upstream("openai").map(|u| u.endpoint.base_url.as_str()),
            Some("http://127.0.0.1:9999/v1")
        );
    }

    #[test]
    fn an_ollama_address_without_a_path_gets_the_openai_compatible_v1() {
        for (set, used) in [
            ("http://localhost:11434", "http://localhost:11434/v1"),
            ("http://localhost:11434/", "http://localhost:11434/v1"),
            ("http://localhost:11434/v1", "http://localhost:11434/v1"),
            (
                "http://gpu-box:8000/openai/v1",
                "http://gpu-box:8000/openai/v1",
            ),
        ] {
            let (s, _) = settings(&[("OLLAMA_BASE_URL", set)]);
            let base = s.upstream("ollama").map(|u| u.endpoint.base_url.clone());
            assert_eq!(base.as_deref(), Some(used), "{set}");
        }
        // Only the keyless OpenAI-compatible server: other providers' paths are their own.
        let (s, _) = settings(&[
            ("OPENAI_API_KEY", "k"),
            ("OPENAI_BASE_URL", "http://localhost:9"),
        ]);
        let base = s.upstream("openai").map(|u| u.endpoint.base_url.clone());
        assert_eq!(base.as_deref(), Some("http://localhost:9"));
    }

    #[test]
    fn ollama_is_offered_only_when_its_base_url_is_set_and_needs_no_key() {
        let (without, _) = settings(&[("OLLAMA_API_KEY", "x")]);
        assert!(without.upstream("ollama").is_none());
        let (with, _) = settings(&[("OLLAMA_BASE_URL", "http://localhost:11434/v1")]);
        let o = with.upstream("ollama").expect("ollama");
        assert_eq!(o.endpoint.kind, ProviderKind::OpenAiCompatible);
        assert_eq!(o.endpoint.key(), None);
    }

    #[test]
    fn keys_are_trimmed_and_blank_keys_do_not_count() {
        let (s, _) = settings(&[("OPENAI_API_KEY", " sk-1\n"), ("GEMINI_API_KEY", "  ")]);
        assert_eq!(names(&s), ["openai"]);
        assert_eq!(
            s.upstream("openai").and_then(|u| u.endpoint.key()),
            Some("sk-1")
        );
    }

    #[test]
    fn an_invalid_base_url_falls_back_to_the_default_with_a_warning() {
        let (s, warnings) = settings(&[
            ("OPENAI_API_KEY", "sk-1"),
            ("OPENAI_BASE_URL", "ftp://example.com"),
        ]);
        assert_eq!(
            s.upstream("openai").map(|u| u.endpoint.base_url.as_str()),
            Some("https://api.openai.com/v1")
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("OPENAI_BASE_URL"));
        let (s, _) = settings(&[("OLLAMA_BASE_URL", "not a url")]);
        assert!(s.upstream("ollama").is_none());
    }

    #[test]
    fn a_key_sent_over_plain_http_to_a_remote_host_is_warned_about_without_the_key() {
        let (_, warnings) = settings(&[
            ("OPENAI_API_KEY", "sk-very-secret"),
            ("OPENAI_BASE_URL", "http://proxy.example.com/v1"),
        ]);
        assert_eq!(warnings.len(), 1);
        assert!(!warnings[0].contains("sk-very-secret"));
        let (_, local) = settings(&[
            ("OPENAI_API_KEY", "sk-1"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1"),
        ]);
        assert!(local.is_empty());
    }

    #[test]
    fn timeouts_default_globally_and_can_be_set_per_provider() {
        let (s, _) = settings(&[
            ("OPENAI_API_KEY", "k"),
            ("ANTHROPIC_API_KEY", "k"),
            ("PROVIDER_TIMEOUT_SECS", "30"),
            ("ANTHROPIC_TIMEOUT_SECS", "5"),
        ]);
        assert_eq!(s.upstream("openai").map(|u| u.timeout_secs), Some(30));
        assert_eq!(s.upstream("anthropic").map(|u| u.timeout_secs), Some(5));
        let (d, _) = settings(&[("GEMINI_API_KEY", "k")]);
        assert_eq!(
            d.upstream("gemini").map(|u| u.timeout_secs),
            Some(DEFAULT_TIMEOUT_SECS)
        );
    }

    #[test]
    fn out_of_range_timeouts_and_retries_fall_back_with_warnings() {
        let (s, warnings) = settings(&[
            ("OPENAI_API_KEY", "k"),
            ("OPENAI_TIMEOUT_SECS", "0"),
            ("PROVIDER_MAX_RETRIES", "50"),
        ]);
        assert_eq!(
            s.upstream("openai").map(|u| u.timeout_secs),
            Some(DEFAULT_TIMEOUT_SECS)
        );
        assert_eq!(s.retry.max_retries, DEFAULT_MAX_RETRIES);
        assert_eq!(warnings.len(), 2);
    }

    #[test]
    fn retries_default_to_two_and_can_be_turned_off() {
        assert_eq!(settings(&[]).0.retry.max_retries, 2);
        assert_eq!(
            settings(&[("PROVIDER_MAX_RETRIES", "0")])
                .0
                .retry
                .max_retries,
            0
        );
    }

    #[test]
    fn fallbacks_aliases_and_extra_models_are_parsed() {
        let (s, warnings) = settings(&[
            ("OPENAI_API_KEY", "k"),
            (
                "MODEL_FALLBACKS",
                r#"{"openai/gpt-4o":["anthropic/claude-3-5-haiku-latest","fast"]}"#,
            ),
            ("MODEL_ALIASES", r#"{"fast":"gemini/gemini-2.0-flash"}"#),
            ("EXTRA_MODELS", r#"[{"id":"openai/gpt-4.1"}]"#),
        ]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            s.fallbacks_for("openai/gpt-4o"),
            ["anthropic/claude-3-5-haiku-latest", "fast"]
        );
        assert!(s.fallbacks_for("openai/gpt-4o-mini").is_empty());
        assert_eq!(s.catalogue.canonical_id("fast"), "gemini/gemini-2.0-flash");
        assert!(s.catalogue.resolve("openai/gpt-4.1").is_some());
    }

    #[test]
    fn fallbacks_are_found_through_an_alias_of_the_model() {
        let (s, _) = settings(&[
            ("MODEL_ALIASES", r#"{"smart":"openai/gpt-4o"}"#),
            (
                "MODEL_FALLBACKS",
                r#"{"openai/gpt-4o":["gemini/gemini-2.0-flash"]}"#,
            ),
        ]);
        assert_eq!(s.fallbacks_for("smart"), ["gemini/gemini-2.0-flash"]);
    }

    #[test]
    fn invalid_model_json_is_ignored_with_a_warning_each() {
        let (s, warnings) = settings(&[
            ("MODEL_FALLBACKS", r#"{"openai/gpt-4o":"not-a-list"}"#),
            ("MODEL_ALIASES", r#"{"a/b":"openai/gpt-4o"}"#),
            ("EXTRA_MODELS", "nope"),
        ]);
        assert!(s.fallbacks.is_empty());
        assert!(s.catalogue.aliases().is_empty());
        assert_eq!(
            s.catalogue.models().len(),
            catalogue::builtin_models().len()
        );
        assert_eq!(warnings.len(), 3);
    }

    #[test]
    fn a_fallback_to_itself_or_to_a_bare_name_is_refused() {
        let aliases = BTreeMap::from([("same".to_string(), "openai/gpt-4o".to_string())]);
        assert!(parse_fallbacks(r#"{"openai/gpt-4o":["openai/gpt-4o"]}"#, &aliases).is_err());
        assert!(parse_fallbacks(r#"{"openai/gpt-4o":["same"]}"#, &aliases).is_err());
        assert!(parse_fallbacks(r#"{"openai/gpt-4o":["gpt-4o-mini"]}"#, &aliases).is_err());
    }

    #[test]
    fn dev_echo_exists_only_in_development_without_providers() {
        let (dev, _) = settings_in(true, &[]);
        assert!(dev.dev_echo);
        assert!(dev.catalogue.resolve(DEV_ECHO_MODEL).is_some());
        assert_eq!(
            dev.offered_catalogue()
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>(),
            [DEV_ECHO_MODEL]
        );

        let (prod, _) = settings_in(false, &[]);
        assert!(!prod.dev_echo);
        assert!(prod.catalogue.resolve(DEV_ECHO_MODEL).is_none());

        let (dev_with_provider, _) =
            settings_in(true, &[("OLLAMA_BASE_URL", "http://localhost:11434/v1")]);
        assert!(!dev_with_provider.dev_echo);
        assert!(dev_with_provider
            .catalogue
            .resolve(DEV_ECHO_MODEL)
            .is_none());
    }

    #[test]
    fn only_models_of_configured_providers_are_offered() {
        let (s, _) = settings(&[("ANTHROPIC_API_KEY", "k")]);
        let offered = s.offered_catalogue();
        assert!(!offered.is_empty());
        assert!(offered.iter().all(|m| m.provider == "anthropic"));
    }

    #[test]
    fn the_enabling_setting_is_the_key_or_for_ollama_the_url() {
        assert_eq!(enabling_setting("openai"), Some("OPENAI_API_KEY"));
        assert_eq!(enabling_setting("ollama"), Some("OLLAMA_BASE_URL"));
        assert_eq!(enabling_setting("nope"), None);
    }

    #[test]
    fn debug_output_of_the_settings_never_shows_a_key() {
        let (s, _) = settings(&[("OPENAI_API_KEY", "sk-top-secret-123")]);
        assert!(!format!("{s:?}").contains("sk-top-secret-123"));
    }
}
