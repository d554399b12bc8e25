//! Why one attempt at a provider failed, and the API error each failure becomes.

use crate::providers::settings::enabling_setting;

use crate::http::error::ApiError;
use crate::providers::wire::{ProviderError, ProviderErrorKind};

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// No HTTP response at all (DNS, connection refused, reset). The detail is for logs.
    Unreachable(String),
    /// Our own timeout, in seconds.
    TimedOut(u64),
    /// The provider answered with an error, or its reply could not be understood.
    Provider(ProviderError),
}

impl Failure {
    pub(super) fn code(&self) -> &'static str {
        match self {
            Failure::Unreachable(_) => "unreachable",
            Failure::TimedOut(_) => "timeout",
            Failure::Provider(e) => e.kind.code(),
        }
    }
}

/// The API error for a provider error, naming the provider. Used for failures before output
/// and, by streaming handlers, for `Error` events after it.
pub fn provider_error(provider: &str, error: &ProviderError) -> ApiError {
    use ProviderErrorKind::*;
    let detail = &error.message;
    let mut api = match error.kind {
        Auth => ApiError::new(
            502,
            "provider_auth_failed",
            format!(
                "Provider {provider} rejected this deployment's API key; an operator must fix {}.",
                enabling_setting(provider).unwrap_or("its key")
            ),
        )
        .with_header("x-should-retry", "false"),
        RateLimited => ApiError::new(
            429,
            "provider_rate_limited",
            format!("Provider {provider} is rate limiting requests: {detail}"),
        ),
        QuotaExceeded => ApiError::new(
            502,
            "provider_quota_exceeded",
            format!("Provider {provider} refused: this deployment's account is over its quota."),
        )
        .with_header("x-should-retry", "false"),
        InvalidRequest => ApiError::new(
            400,
            "provider_rejected_request",
            format!("Provider {provider} rejected the request: {detail}"),
        ),
        NotFound => ApiError::new(
            404,
            "model_not_found",
            format!("Provider {provider} does not know this model: {detail}"),
        )
        .with_field("model"),
        Overloaded => ApiError::new(
            503,
            "provider_overloaded",
            format!("Provider {provider} is overloaded: {detail}"),
        ),
        Server => ApiError::new(
            502,
            "provider_error",
            format!("Provider {provider} failed: {detail}"),
        ),
        Timeout => ApiError::new(
            504,
            "provider_timeout",
            format!("Provider {provider} timed out: {detail}"),
        ),
        Malformed => ApiError::new(
            502,
            "provider_bad_response",
            format!("Provider {provider} sent a reply that could not be understood: {detail}"),
        ),
    };
    if let Some(secs) = error.retry_after_secs {
        if matches!(error.kind, RateLimited | Overloaded | Server | Timeout) {
            api = api.with_header("retry-after", secs.to_string());
        }
    }
    api.with_internal(format!(
        "provider={provider} kind={} upstream_status={:?}",
        error.kind.code(),
        error.upstream_status
    ))
}

/// The API error for a failed attempt.
pub fn failure_error(provider: &str, failure: &Failure) -> ApiError {
    match failure {
        Failure::Unreachable(detail) => ApiError::new(
            502,
            "provider_unreachable",
            format!("Provider {provider} could not be reached."),
        )
        .with_internal(format!("provider={provider}: {detail}")),
        Failure::TimedOut(secs) => ApiError::new(
            504,
            "provider_timeout",
            format!("Provider {provider} did not answer within {secs} s."),
        )
        .with_internal(format!("provider={provider} timeout={secs}s")),
        Failure::Provider(error) => provider_error(provider, error),
    }
}
