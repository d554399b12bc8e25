//! Rate limits: fixed-window counters in KV.
//!
//! KV is eventually consistent across locations and has no atomic increment, so these limits
//! are approximate: two locations, or two requests racing in one, may each let a request
//! through that a perfect counter would refuse. That is acceptable for what they are for —
//! slowing down floods and guessing — and the checks that must be exact (account lockout,
//! refresh-token reuse) live in D1 instead. A limit is `N/SECONDS`, e.g. `10/60`.

//!
//! This file is the pure part (limits, their settings, the window arithmetic); [`local`] is
//! the isolate's own count of each window (pure too), and [`kv`] shares it through KV.

pub mod kv;
pub mod local;

use crate::config::source::{parse_number, ConfigSource};

/// Default of `RATE_LIMIT_SYNC_MS`: KV takes about one write per second per key.
pub const DEFAULT_SYNC_MS: u64 = 1000;
use crate::http::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window_secs: u64,
}

impl Limit {
    pub const fn new(max: u32, window_secs: u64) -> Limit {
        Limit { max, window_secs }
    }

    /// `"10/60"` → 10 requests per 60 seconds. `0/…` is refused: use a huge number to disable.
    pub fn parse(s: &str) -> Option<Limit> {
        let (max, window) = s.trim().split_once('/')?;
        let max: u32 = max.trim().parse().ok()?;
        let window_secs: u64 = window.trim().parse().ok()?;
        (max > 0 && (1..=86_400 * 7).contains(&window_secs)).then_some(Limit { max, window_secs })
    }
}

/// Every configurable limit, with defaults generous enough for real users behind one NAT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// `RATE_LIMIT_REGISTER` — registrations per client IP.
    pub register_per_ip: Limit,
    /// `RATE_LIMIT_LOGIN` — login attempts per client IP.
    pub login_per_ip: Limit,
    /// `RATE_LIMIT_LOGIN_ACCOUNT` — login attempts per email address.
    pub login_per_account: Limit,
    /// `RATE_LIMIT_REFRESH` — refreshes per client IP.
    pub refresh_per_ip: Limit,
    /// `RATE_LIMIT_FORGOT_PASSWORD` — reset requests per email address and per IP.
    pub forgot_password: Limit,
    /// `RATE_LIMIT_MFA` — MFA code attempts per user.
    pub mfa_per_user: Limit,
    /// `RATE_LIMIT_CHAT` — chat messages per user.
    pub chat_per_user: Limit,
    /// `RATE_LIMIT_V1` — `/v1` calls per user or API key owner.
    pub v1_per_user: Limit,
    /// `RATE_LIMIT_SYNC_MS` (1000) — how often at most an isolate reconciles a window's
    /// count with KV (see [`local`] for the tolerance this gives).
    pub sync_ms: u64,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            register_per_ip: Limit::new(100, 600),
            login_per_ip: Limit::new(100, 60),
            login_per_account: Limit::new(20, 60),
            refresh_per_ip: Limit::new(300, 60),
            forgot_password: Limit::new(5, 900),
            mfa_per_user: Limit::new(10, 300),
            chat_per_user: Limit::new(60, 60),
            v1_per_user: Limit::new(120, 60),
            sync_ms: DEFAULT_SYNC_MS,
        }
    }
}

impl RateLimits {
    pub fn from_source(src: &dyn ConfigSource, warnings: &mut Vec<String>) -> RateLimits {
        let d = RateLimits::default();
        let mut read = |name: &str, default: Limit| match src.get(name) {
            None => default,
            Some(raw) => Limit::parse(&raw).unwrap_or_else(|| {
                warnings.push(format!(
                    "{name}={raw:?} is not N/SECONDS; using {}/{}",
                    default.max, default.window_secs
                ));
                default
            }),
        };
        RateLimits {
            register_per_ip: read("RATE_LIMIT_REGISTER", d.register_per_ip),
            login_per_ip: read("RATE_LIMIT_LOGIN", d.login_per_ip),
            login_per_account: read("RATE_LIMIT_LOGIN_ACCOUNT", d.login_per_account),
            refresh_per_ip: read("RATE_LIMIT_REFRESH", d.refresh_per_ip),
            forgot_password: read("RATE_LIMIT_FORGOT_PASSWORD", d.forgot_password),
            mfa_per_user: read("RATE_LIMIT_MFA", d.mfa_per_user),
            chat_per_user: read("RATE_LIMIT_CHAT", d.chat_per_user),
            v1_per_user: read("RATE_LIMIT_V1", d.v1_per_user),
            sync_ms: parse_number(src, "RATE_LIMIT_SYNC_MS", d.sync_ms, 0, 60_000, warnings),
        }
    }
}

/// The outcome of counting one request against a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_secs: u64,
}

/// The window a moment falls in, and the decision given `count` requests already in it.
pub fn decide(limit: Limit, count: u32, now_secs: u64) -> (u64, Decision) {
    let window = now_secs / limit.window_secs;
    let reset_secs = (window + 1) * limit.window_secs - now_secs;
    let allowed = count < limit.max;
    let remaining = if allowed { limit.max - count - 1 } else { 0 };
    (
        window,
        Decision {
            allowed,
            limit: limit.max,
            remaining,
            reset_secs: reset_secs.max(1),
        },
    )
}

/// The 429 for a refused decision, with `Retry-After` and the IETF `RateLimit-*` headers.
pub fn refusal(decision: &Decision) -> ApiError {
    ApiError::rate_limited(decision.reset_secs)
        .with_header("ratelimit-limit", decision.limit.to_string())
        .with_header("ratelimit-remaining", "0")
        .with_header("ratelimit-reset", decision.reset_secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn limits_parse_n_per_seconds_and_refuse_nonsense() {
        assert_eq!(Limit::parse("10/60"), Some(Limit::new(10, 60)));
        assert_eq!(Limit::parse(" 5 / 900 "), Some(Limit::new(5, 900)));
        assert_eq!(Limit::parse("0/60"), None);
        assert_eq!(Limit::parse("10"), None);
        assert_eq!(Limit::parse("10/0"), None);
        assert_eq!(Limit::parse("x/60"), None);
    }

    #[test]
    fn requests_up_to_the_limit_pass_and_the_next_is_refused() {
        let limit = Limit::new(3, 60);
        for count in 0..3 {
            assert!(decide(limit, count, 1000).1.allowed);
        }
        let (_, refused) = decide(limit, 3, 1000);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
    }

    #[test]
    fn reset_counts_down_to_the_end_of_the_window() {
        let limit = Limit::new(3, 60);
        let (w1, d1) = decide(limit, 0, 120);
        assert_eq!((w1, d1.reset_secs), (2, 60));
        let (w2, d2) = decide(limit, 0, 179);
        assert_eq!((w2, d2.reset_secs), (2, 1));
        let (w3, _) = decide(limit, 0, 180);
        assert_eq!(w3, 3, "a new window starts, and with it a fresh count");
    }

    #[test]
    fn refusal_carries_retry_after_and_ratelimit_headers() {
        let (_, d) = decide(Limit::new(1, 60), 1, 30);
        let err = refusal(&d);
        assert_eq!(err.status, 429);
        let h: BTreeMap<_, _> = err.headers.iter().cloned().collect();
        assert_eq!(h["retry-after"], "30");
        assert_eq!(h["ratelimit-limit"], "1");
        assert_eq!(h["ratelimit-remaining"], "0");
        assert_eq!(h["ratelimit-reset"], "30");
    }

    #[test]
    fn invalid_configured_limits_fall_back_with_a_warning() {
        let src: BTreeMap<String, String> = [("RATE_LIMIT_LOGIN".to_string(), "lots".to_string())]
            .into_iter()
            .collect();
        let mut warnings = Vec::new();
        let limits = RateLimits::from_source(&src, &mut warnings);
        assert_eq!(limits.login_per_ip, RateLimits::default().login_per_ip);
        assert_eq!(warnings.len(), 1);
    }
}
