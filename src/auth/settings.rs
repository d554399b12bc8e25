//! Account settings, read once with the rest of the configuration. Names follow what the
//! users of the services Threadline replaces already set (`ACCESS_TOKEN_EXPIRE_MINUTES`,
//! `MAX_LOGIN_ATTEMPTS`).

use crate::auth::crypto::password_hash::{parse_params, Argon2Params};
use crate::auth::crypto::password_policy::PasswordPolicy;
use crate::config::source::{parse_number, ConfigSource};

#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `JWT_ISSUER` (default `threadline`) and `JWT_AUDIENCE` (default `threadline-api`).
    pub issuer: String,
    pub audience: String,
    /// `ACCESS_TOKEN_EXPIRE_MINUTES`, default 15.
    pub access_token_ttl_secs: u64,
    /// `REFRESH_TOKEN_EXPIRE_DAYS`, default 30: the absolute lifetime of a session.
    pub refresh_token_ttl_secs: u64,
    /// `PASSWORD_MIN_LENGTH` (12, never below 8), `PASSWORD_MAX_LENGTH` (128),
    /// `PASSWORD_REQUIRE_COMPOSITION` (false).
    pub password_policy: PasswordPolicy,
    /// `PASSWORD_HASH_PARAMS`: an OWASP argon2id set such as `19456,2,1` (the default).
    pub argon2: Argon2Params,
    /// `MAX_LOGIN_ATTEMPTS` (5) failures within `LOGIN_ATTEMPT_WINDOW_MINUTES` (15) lock the
    /// account for `LOCKOUT_DURATION_MINUTES` (15).
    pub max_login_attempts: u32,
    pub login_attempt_window_secs: u64,
    pub lockout_secs: u64,
    /// `REQUIRE_EMAIL_VERIFICATION` (false): refuse login until the email is verified.
    pub require_verified_email: bool,
    /// `EMAIL_TOKEN_EXPIRE_MINUTES` (60): lifetime of verification and reset links.
    pub email_token_ttl_secs: u64,
    /// `AUTH_CACHE_SECS` (10; 0 turns it off): how long an isolate trusts an API key or a
    /// session it has read, so a warm request reads neither D1 nor KV. A key revoked or a
    /// session ended through another isolate keeps working there for at most this long.
    pub credential_cache_secs: u64,
}

pub fn parse_bool(
    src: &dyn ConfigSource,
    name: &str,
    default: bool,
    warnings: &mut Vec<String>,
) -> bool {
    match src.get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => default,
        Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => true,
        Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => false,
        Some(v) => {
            warnings.push(format!("{name}={v:?} is not true/false; using {default}"));
            default
        }
    }
}

/// A duration in minutes (fractions allowed, e.g. `0.5`), returned in whole seconds (≥ 1).
pub fn parse_minutes(
    src: &dyn ConfigSource,
    name: &str,
    default_minutes: u64,
    max_minutes: u64,
    warnings: &mut Vec<String>,
) -> u64 {
    match src.get(name) {
        None => default_minutes * 60,
        Some(raw) => match raw.trim().parse::<f64>() {
            Ok(m) if m.is_finite() && m > 0.0 && m <= max_minutes as f64 => {
                ((m * 60.0).round() as u64).max(1)
            }
            _ => {
                warnings.push(format!("{name}={raw:?} is not a number of minutes up to {max_minutes}; using {default_minutes}"));
                default_minutes * 60
            }
        },
    }
}

impl AuthSettings {
    pub fn from_source(src: &dyn ConfigSource, warnings: &mut Vec<String>) -> AuthSettings {
        let argon2 = match src.get("PASSWORD_HASH_PARAMS") {
            None => Argon2Params::OWASP_DEFAULT,
            Some(raw) => parse_params(&raw).unwrap_or_else(|e| {
                warnings.push(format!(
                    "PASSWORD_HASH_PARAMS={raw:?}: {e}; using 19456,2,1"
                ));
                Argon2Params::OWASP_DEFAULT
            }),
        };
        let defaults = PasswordPolicy::default();
        let password_policy = PasswordPolicy {
            min_length: parse_number(
                src,
                "PASSWORD_MIN_LENGTH",
                defaults.min_length,
                8,
                128,
                warnings,
            ),
            max_length: parse_number(
                src,
                "PASSWORD_MAX_LENGTH",
                defaults.max_length,
                64,
                1024,
                warnings,
            ),
            require_composition: parse_bool(src, "PASSWORD_REQUIRE_COMPOSITION", false, warnings),
        };
        AuthSettings {
            issuer: src.get("JWT_ISSUER").unwrap_or_else(|| "threadline".into()),
            audience: src
                .get("JWT_AUDIENCE")
                .unwrap_or_else(|| "threadline-api".into()),
            access_token_ttl_secs: 60
                * parse_number(
                    src,
                    "ACCESS_TOKEN_EXPIRE_MINUTES",
                    15u64,
                    1,
                    24 * 60,
                    warnings,
                ),
            refresh_token_ttl_secs: 86_400
                * parse_number(src, "REFRESH_TOKEN_EXPIRE_DAYS", 30u64, 1, 365, warnings),
            password_policy,
            argon2,
            max_login_attempts: parse_number(src, "MAX_LOGIN_ATTEMPTS", 5u32, 1, 1000, warnings),
            login_attempt_window_secs: parse_minutes(
                src,
                "LOGIN_ATTEMPT_WINDOW_MINUTES",
                15,
                24 * 60,
                warnings,
            ),
            lockout_secs: parse_minutes(src, "LOCKOUT_DURATION_MINUTES", 15, 24 * 60, warnings),
            require_verified_email: parse_bool(src, "REQUIRE_EMAIL_VERIFICATION", false, warnings),
            email_token_ttl_secs: 60
                * parse_number(
                    src,
                    "EMAIL_TOKEN_EXPIRE_MINUTES",
                    60u64,
                    5,
                    7 * 24 * 60,
                    warnings,
                ),
            credential_cache_secs: parse_number(src, "AUTH_CACHE_SECS", 10u64, 0, 300, warnings),
        }
    }
}

/// Where account email goes. In development it lands in the D1 outbox (`/debug/outbox`);
/// elsewhere it is POSTed to an HTTP email API when `EMAIL_API_URL` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSettings {
    /// `EMAIL_API_URL`: an endpoint accepting `{"from","to","subject","text"}` as JSON.
    pub api_url: Option<String>,
    /// `EMAIL_API_KEY` (secret): sent as `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// `EMAIL_FROM`: the sender address.
    pub from: String,
    /// `APP_BASE_URL`: where links in emails point (the app's verify/reset pages).
    pub app_base_url: String,
}

impl EmailSettings {
    pub fn from_source(src: &dyn ConfigSource) -> EmailSettings {
        EmailSettings {
            api_url: src.get("EMAIL_API_URL"),
            api_key: src.get("EMAIL_API_KEY"),
            from: src
                .get("EMAIL_FROM")
                .unwrap_or_else(|| "Threadline <no-reply@threadline.invalid>".into()),
            app_base_url: src
                .get("APP_BASE_URL")
                .unwrap_or_else(|| "http://localhost:3000".into())
                .trim_end_matches('/')
                .to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn src(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_follow_the_issue_and_owasp() {
        let mut w = Vec::new();
        let s = AuthSettings::from_source(&src(&[]), &mut w);
        assert_eq!(s.access_token_ttl_secs, 15 * 60);
        assert_eq!(s.refresh_token_ttl_secs, 30 * 86_400);
        assert_eq!(s.argon2, Argon2Params::OWASP_DEFAULT);
        assert_eq!(s.password_policy.min_length, 12);
        assert_eq!(
            (
                s.max_login_attempts,
                s.login_attempt_window_secs,
                s.lockout_secs
            ),
            (5, 900, 900)
        );
        assert!(!s.require_verified_email);
        assert!(w.is_empty());
    }

    #[test]
    fn lockout_durations_accept_fractions_of_a_minute() {
        let mut w = Vec::new();
        let s = AuthSettings::from_source(
            &src(&[
                ("LOCKOUT_DURATION_MINUTES", "0.05"),
                ("LOGIN_ATTEMPT_WINDOW_MINUTES", "-1"),
            ]),
            &mut w,
        );
        assert_eq!(s.lockout_secs, 3);
        assert_eq!(s.login_attempt_window_secs, 900);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn minimum_password_length_is_never_below_eight() {
        let mut w = Vec::new();
        let s = AuthSettings::from_source(&src(&[("PASSWORD_MIN_LENGTH", "4")]), &mut w);
        assert_eq!(
            s.password_policy.min_length, 12,
            "an out-of-range value falls back to the default"
        );
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn weaker_than_owasp_hash_parameters_are_refused() {
        let mut w = Vec::new();
        let s = AuthSettings::from_source(&src(&[("PASSWORD_HASH_PARAMS", "1024,1,1")]), &mut w);
        assert_eq!(s.argon2, Argon2Params::OWASP_DEFAULT);
        assert_eq!(w.len(), 1);
        let s = AuthSettings::from_source(&src(&[("PASSWORD_HASH_PARAMS", "7168,5,1")]), &mut w);
        assert_eq!(s.argon2, Argon2Params::OWASP_M7168_T5);
    }
}
