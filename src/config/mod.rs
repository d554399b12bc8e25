//! Typed configuration, parsed once per isolate from `[vars]` and secrets.
//!
//! Every setting has a safe default and is documented in the README's configuration table.
//! A setting that would make the deployment insecure (a missing or short `JWT_SECRET` outside
//! development) is not replaced by a default: it is kept as a [`ConfigProblem`] and every
//! request answers 503 naming it, so an operator finds out at once instead of running open.

use crate::platform::logging::LogLevel;
use crate::platform::random::RandomUnavailable;
use source::{parse_number, ConfigSource};

pub mod list;
pub mod source;

use list::parse_origin_list;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Production => "production",
        }
    }
}

/// A setting that stops the deployment from serving safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub setting: &'static str,
    pub problem: String,
}

/// Minimum length of `JWT_SECRET` in bytes (RFC 8725 §3.5: HS256 keys need 256 bits).
pub const MIN_JWT_SECRET_BYTES: usize = 32;
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub log_level: LogLevel,
    /// Origins allowed by CORS; `*` allows any origin (never with credentials).
    pub cors_origins: Vec<String>,
    /// The HS256 signing secret; empty only when `problems` says why.
    pub jwt_secret: Vec<u8>,
    pub max_body_bytes: usize,
    pub auth: crate::auth::settings::AuthSettings,
    pub email: crate::auth::settings::EmailSettings,
    pub rate_limits: crate::rate_limit::RateLimits,
    /// Chat limits and modes (`MAX_MESSAGE_CHARS`, `CONTEXT_BUDGET_TOKENS`, `CHAT_MODES`).
    pub chat: crate::chat::settings::ChatSettings,
    /// AI providers, models, timeouts, retries and fallbacks (see `providers::settings`).
    pub providers: crate::providers::settings::ProviderSettings,
    /// File and media limits (`MAX_FILE_SIZE`, `MAX_FILES_PER_UPLOAD`, …).
    pub files: crate::files::settings::FileSettings,
    /// Who is an admin besides the users granted the role (`ADMIN_EMAILS`).
    pub admin: crate::admin::role::AdminSettings,
    /// Pipeline limits (`PIPELINE_*`).
    pub pipelines: crate::pipelines::settings::PipelineSettings,
    /// Settings that make every request answer 503 until fixed.
    pub problems: Vec<ConfigProblem>,
    /// Settings that were invalid and fell back to their defaults (logged as warnings).
    pub warnings: Vec<String>,
}

impl Config {
    /// Parses every setting; never fails, so the worker can always answer with what is wrong.
    ///
    /// `dev_fallback_secret` is used when `ENVIRONMENT=development` and no `JWT_SECRET` is set,
    /// so `wrangler dev` works before `make dev` has written `.dev.vars`.
    pub fn from_source(
        src: &dyn ConfigSource,
        dev_fallback_secret: impl FnOnce() -> Result<Vec<u8>, RandomUnavailable>,
    ) -> Config {
        let mut warnings = Vec::new();
        let mut problems = Vec::new();

        let environment = match src.get("ENVIRONMENT").as_deref().map(str::trim) {
            Some(e) if e.eq_ignore_ascii_case("development") || e.eq_ignore_ascii_case("dev") => {
                Environment::Development
            }
            Some(e) if e.eq_ignore_ascii_case("production") || e.eq_ignore_ascii_case("prod") => {
                Environment::Production
            }
            None => Environment::Production,
            Some(other) => {
                // Anything unrecognised is treated as production: the safe side.
                warnings.push(format!(
                    "ENVIRONMENT={other:?} is not development or production; treating it as production"
                ));
                Environment::Production
            }
        };

        let log_level = match src.get("LOG_LEVEL") {
            None => LogLevel::Info,
            Some(raw) => LogLevel::parse(&raw).unwrap_or_else(|| {
                warnings.push(format!(
                    "LOG_LEVEL={raw:?} is not debug/info/warn/error; using info"
                ));
                LogLevel::Info
            }),
        };

        let cors_origins = match src.get("CORS_ORIGINS") {
            Some(raw) => parse_origin_list(&raw),
            None if environment == Environment::Development => vec![
                "http://localhost:3000".into(),
                "http://localhost:5173".into(),
                "http://localhost:8787".into(),
                "http://127.0.0.1:3000".into(),
                "http://127.0.0.1:5173".into(),
                "http://127.0.0.1:8787".into(),
            ],
            None => Vec::new(),
        };

        // `SECRET_KEY` or `JWT_SECRET_KEY` may stand for `JWT_SECRET`; messages name the one set.
        let secret_setting = src.provided_by("JWT_SECRET");
        let jwt_secret = match src.get("JWT_SECRET") {
            Some(s) if s.len() >= MIN_JWT_SECRET_BYTES => s.into_bytes(),
            Some(_) if environment == Environment::Development => {
                warnings.push(format!(
                    "{secret_setting} is shorter than {MIN_JWT_SECRET_BYTES} bytes; using a random development secret"
                ));
                development_secret(dev_fallback_secret, &mut problems)
            }
            None if environment == Environment::Development => {
                warnings.push("JWT_SECRET is not set; using a random development secret".into());
                development_secret(dev_fallback_secret, &mut problems)
            }
            Some(_) => {
                problems.push(ConfigProblem {
                    setting: secret_setting,
                    problem: format!("is shorter than {MIN_JWT_SECRET_BYTES} bytes"),
                });
                Vec::new()
            }
            None => {
                problems.push(ConfigProblem {
                    setting: "JWT_SECRET",
                    problem: "is not set".into(),
                });
                Vec::new()
            }
        };

        // Tokens are signed HS256 and nothing else; a deployment configured for another
        // algorithm would hand out tokens its other services cannot check, so it is refused
        // rather than ignored.
        if let Some(algorithm) = src.get("JWT_ALGORITHM") {
            if !algorithm.trim().eq_ignore_ascii_case("HS256") {
                problems.push(ConfigProblem {
                    setting: "JWT_ALGORITHM",
                    problem: format!(
                        "is {:?}, but only HS256 is supported (unset it or set HS256)",
                        algorithm.trim()
                    ),
                });
            }
        }
        warnings.extend(src.notices());

        let max_body_bytes = parse_number(
            src,
            "MAX_BODY_BYTES",
            DEFAULT_MAX_BODY_BYTES,
            1024,
            100 * 1024 * 1024,
            &mut warnings,
        );

        let auth = crate::auth::settings::AuthSettings::from_source(src, &mut warnings);
        let files = crate::files::settings::FileSettings::from_source(src, &mut warnings);
        let email = crate::auth::settings::EmailSettings::from_source(src);
        let rate_limits = crate::rate_limit::RateLimits::from_source(src, &mut warnings);
        let chat = crate::chat::settings::ChatSettings::from_source(src, &mut warnings);
        let providers = crate::providers::settings::ProviderSettings::from_source(
            src,
            environment == Environment::Development,
            &mut warnings,
        );
        let admin = crate::admin::role::AdminSettings::from_source(src);
        let pipelines =
            crate::pipelines::settings::PipelineSettings::from_source(src, &mut warnings);

        Config {
            environment,
            log_level,
            cors_origins,
            jwt_secret,
            max_body_bytes,
            auth,
            email,
            rate_limits,
            chat,
            providers,
            files,
            admin,
            pipelines,
            problems,
            warnings,
        }
    }

    /// The body limit of a route taking `body` ([`BodyLimit`]).
    pub fn body_limit(&self, body: BodyLimit) -> usize {
        match body {
            BodyLimit::Default => self.max_body_bytes,
            BodyLimit::Media => self.files.media_body_bytes(self.max_body_bytes),
            BodyLimit::Upload => self.files.upload_body_bytes(),
        }
    }

    pub fn is_development(&self) -> bool {
        self.environment == Environment::Development
    }
}

/// The random development `JWT_SECRET`; without secure randomness there is none, and the
/// deployment answers 503 until `JWT_SECRET` is set (never a predictable secret).
fn development_secret(
    make: impl FnOnce() -> Result<Vec<u8>, RandomUnavailable>,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<u8> {
    match make() {
        Ok(secret) => secret,
        Err(err) => {
            problems.push(ConfigProblem {
                setting: "JWT_SECRET",
                problem: format!(
                    "is not set and no random development secret could be made ({err})"
                ),
            });
            Vec::new()
        }
    }
}

/// Which size limit a route's body is held to. Most routes take small JSON documents
/// (`MAX_BODY_BYTES`); a route whose JSON may carry inline media (base64 images and
/// documents) takes `MAX_BODY_BYTES` plus a base64 `MAX_FILE_SIZE`; an upload route takes
/// `MAX_FILES_PER_UPLOAD` files of `MAX_FILE_SIZE` (each file is checked on its own too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    Default,
    Media,
    Upload,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn source(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn dev_secret() -> Result<Vec<u8>, RandomUnavailable> {
        Ok(vec![7; 32])
    }

    #[test]
    fn production_without_jwt_secret_is_a_problem_naming_the_setting() {
        let cfg = Config::from_source(&source(&[("ENVIRONMENT", "production")]), dev_secret);
        assert_eq!(cfg.problems.len(), 1);
        assert_eq!(cfg.problems[0].setting, "JWT_SECRET");
        assert!(cfg.jwt_secret.is_empty());
    }

    #[test]
    fn short_jwt_secret_outside_development_is_a_problem() {
        let cfg = Config::from_source(&source(&[("JWT_SECRET", "too-short")]), dev_secret);
        assert_eq!(cfg.environment, Environment::Production);
        assert_eq!(cfg.problems[0].setting, "JWT_SECRET");
        assert!(cfg.problems[0].problem.contains("shorter than 32"));
    }

    #[test]
    fn jwt_algorithm_other_than_hs256_is_a_problem_naming_itself() {
        let secret = "x".repeat(32);
        let ok = Config::from_source(
            &source(&[("JWT_SECRET", &secret), ("JWT_ALGORITHM", "hs256")]),
            dev_secret,
        );
        assert!(ok.problems.is_empty());
        let refused = Config::from_source(
            &source(&[("JWT_SECRET", &secret), ("JWT_ALGORITHM", "RS256")]),
            dev_secret,
        );
        assert_eq!(refused.problems.len(), 1);
        assert_eq!(refused.problems[0].setting, "JWT_ALGORITHM");
        assert!(refused.problems[0].problem.contains("RS256"));
    }

    #[test]
    fn unknown_environment_is_treated_as_production() {
        let cfg = Config::from_source(&source(&[("ENVIRONMENT", "staging")]), dev_secret);
        assert_eq!(cfg.environment, Environment::Production);
        assert!(!cfg.problems.is_empty());
    }

    #[test]
    fn development_without_secret_uses_the_random_fallback() {
        let cfg = Config::from_source(&source(&[("ENVIRONMENT", "development")]), dev_secret);
        assert!(cfg.problems.is_empty());
        assert_eq!(cfg.jwt_secret, vec![7; 32]);
    }

    #[test]
    fn development_without_randomness_is_a_problem_not_a_predictable_secret() {
        let cfg = Config::from_source(&source(&[("ENVIRONMENT", "development")]), || {
            Err(RandomUnavailable("no entropy".into()))
        });
        assert_eq!(cfg.problems.len(), 1);
        assert_eq!(cfg.problems[0].setting, "JWT_SECRET");
        assert!(cfg.jwt_secret.is_empty());
    }

    #[test]
    fn long_enough_secret_is_used_as_is() {
        let secret = "x".repeat(32);
        let cfg = Config::from_source(&source(&[("JWT_SECRET", &secret)]), dev_secret);
        assert!(cfg.problems.is_empty());
        assert_eq!(cfg.jwt_secret, secret.as_bytes());
    }

    #[test]
    fn cors_defaults_to_none_in_production_and_localhost_in_development() {
        let prod = Config::from_source(&source(&[("JWT_SECRET", &"x".repeat(40))]), dev_secret);
        assert!(prod.cors_origins.is_empty());
        let dev = Config::from_source(&source(&[("ENVIRONMENT", "development")]), dev_secret);
        assert!(dev
            .cors_origins
            .iter()
            .all(|o| o.contains("localhost") || o.contains("127.0.0.1")));
    }

    #[test]
    fn cors_origins_accepts_comma_list_and_json_array() {
        let a = Config::from_source(
            &source(&[("CORS_ORIGINS", "https://a.example, https://b.example/")]),
            dev_secret,
        );
        assert_eq!(
            a.cors_origins,
            vec!["https://a.example", "https://b.example"]
        );
        let b = Config::from_source(
            &source(&[("CORS_ORIGINS", r#"["http://localhost:3000"]"#)]),
            dev_secret,
        );
        assert_eq!(b.cors_origins, vec!["http://localhost:3000"]);
    }

    #[test]
    fn invalid_numbers_fall_back_with_a_warning() {
        let cfg = Config::from_source(
            &source(&[("MAX_BODY_BYTES", "lots"), ("LOG_LEVEL", "loud")]),
            dev_secret,
        );
        assert_eq!(cfg.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(cfg.log_level, LogLevel::Info);
        assert_eq!(cfg.warnings.len(), 2);
    }
}
