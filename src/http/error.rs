//! The one error type of the API and the one JSON envelope every error becomes.
//!
//! Every failure a client can see is an [`ApiError`], rendered as
//!
//! ```json
//! {"error": {"code": "validation_failed", "message": "…", "type": "invalid_request_error",
//!            "param": "email", "request_id": "…"}}
//! ```
//!
//! `code` is stable and machine-readable; `message` is for humans. `type` and `param` make the
//! same envelope a valid OpenAI error body, so the official OpenAI SDKs raise the right
//! exception class against `/v1` without a second error format. Internal details (D1 errors,
//! panics, upstream bodies) are logged in full but never put in `message`.

use serde_json::json;

/// A failure with everything needed to answer the client and to log it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, when there is one (`param` in the envelope).
    pub field: Option<String>,
    /// Extra response headers (`Allow`, `Retry-After`, `RateLimit-*`).
    pub headers: Vec<(String, String)>,
    /// What went wrong inside, for the log only.
    pub internal: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// `Retry-After` of a 429 whose cause did not say how long to wait.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 1;

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            headers: Vec::new(),
            internal: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The headers to answer with: the error's own, and a `Retry-After` on every 429 — when
    /// the cause gave no time (a provider rate-limiting without saying for how long), a
    /// short default, so a client never has to guess whether waiting helps.
    pub fn response_headers(&self) -> Vec<(String, String)> {
        let mut headers = self.headers.clone();
        let has_retry_after = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("retry-after"));
        if self.status == 429 && !has_retry_after {
            headers.push((
                "retry-after".to_string(),
                DEFAULT_RETRY_AFTER_SECS.to_string(),
            ));
        }
        headers
    }

    pub fn with_internal(mut self, detail: impl Into<String>) -> Self {
        self.internal = Some(detail.into());
        self
    }

    pub fn not_found() -> Self {
        Self::new(404, "not_found", "No such resource.")
    }

    pub fn route_not_found(method: &str, path: &str) -> Self {
        Self::new(
            404,
            "route_not_found",
            format!("No route for {method} {path}."),
        )
    }

    pub fn method_not_allowed(allowed: &[&str]) -> Self {
        Self::new(
            405,
            "method_not_allowed",
            format!(
                "Method not allowed; this route accepts {}.",
                allowed.join(", ")
            ),
        )
        .with_header("allow", allowed.join(", "))
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// 422: the body parsed but a field is missing, of the wrong type or out of range.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(422, "validation_failed", message).with_field(field)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(401, code, message).with_header("www-authenticate", "Bearer")
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(403, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(409, code, message)
    }

    pub fn payload_too_large(limit_bytes: usize) -> Self {
        Self::new(
            413,
            "payload_too_large",
            format!("Request body is larger than the limit of {limit_bytes} bytes."),
        )
    }

    pub fn unsupported_media_type(expected: &str) -> Self {
        Self::new(
            415,
            "unsupported_media_type",
            format!("Content-Type must be {expected}."),
        )
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(
            429,
            "rate_limited",
            format!("Too many requests; retry after {retry_after_secs} seconds."),
        )
        .with_header("retry-after", retry_after_secs.to_string())
    }

    /// 503 naming the setting an operator must fix.
    pub fn misconfigured(setting: &str, problem: &str) -> Self {
        Self::new(
            503,
            "server_misconfigured",
            format!("The server is misconfigured: {setting} {problem}."),
        )
        .with_field(setting.to_string())
    }

    /// 500 with a generic message; `detail` goes to the log only.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(500, "internal_error", "Internal server error.").with_internal(detail)
    }

    /// The OpenAI error `type` for this status, so OpenAI SDKs classify it correctly.
    pub fn openai_type(&self) -> &'static str {
        match self.status {
            400 | 405 | 413 | 415 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            409 => "conflict_error",
            429 => "rate_limit_error",
            503 => "service_unavailable",
            _ => "api_error",
        }
    }

    /// The JSON envelope sent to the client.
    /// The body of the error response. `detail` repeats the message where FastAPI puts it,
    /// so the replaced services' clients, which show `detail`, show ours.
    pub fn envelope(&self, request_id: &str) -> serde_json::Value {
        json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "type": self.openai_type(),
                "param": self.field,
                "request_id": request_id,
            },
            "detail": self.message,
        })
    }
}

impl From<worker::Error> for ApiError {
    fn from(err: worker::Error) -> Self {
        ApiError::internal(format!("worker: {err}"))
    }
}

impl From<worker::kv::KvError> for ApiError {
    fn from(err: worker::kv::KvError) -> Self {
        ApiError::internal(format!("kv: {err}"))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_429_answers_with_retry_after() {
        let silent = ApiError::new(429, "provider_rate_limited", "slow down");
        assert!(silent.response_headers().contains(&(
            "retry-after".to_string(),
            DEFAULT_RETRY_AFTER_SECS.to_string()
        )));
        let told = ApiError::rate_limited(42).response_headers();
        let retry_afters: Vec<_> = told.iter().filter(|(n, _)| n == "retry-after").collect();
        assert_eq!(
            retry_afters,
            [&("retry-after".to_string(), "42".to_string())]
        );
        assert!(ApiError::not_found().response_headers().is_empty());
    }

    #[test]
    fn envelope_is_also_a_valid_openai_error_body() {
        let err = ApiError::validation("email", "email is required");
        let body = err.envelope("req-1");
        let inner = &body["error"];
        assert_eq!(inner["code"], "validation_failed");
        assert_eq!(inner["message"], "email is required");
        assert_eq!(inner["type"], "invalid_request_error");
        assert_eq!(inner["param"], "email");
        assert_eq!(inner["request_id"], "req-1");
        assert_eq!(
            body["detail"], "email is required",
            "FastAPI clients read `detail`"
        );
    }

    #[test]
    fn internal_detail_never_reaches_the_message() {
        let err = ApiError::internal("D1_ERROR: no such table: users");
        let body = err.envelope("r").to_string();
        assert!(!body.contains("no such table"));
        assert_eq!(err.status, 500);
    }

    #[test]
    fn method_not_allowed_carries_allow_header() {
        let err = ApiError::method_not_allowed(&["GET", "POST"]);
        assert_eq!(err.status, 405);
        assert!(err
            .headers
            .contains(&("allow".to_string(), "GET, POST".to_string())));
    }

    #[test]
    fn rate_limited_carries_retry_after() {
        let err = ApiError::rate_limited(42);
        assert_eq!(err.status, 429);
        assert!(err
            .headers
            .contains(&("retry-after".to_string(), "42".to_string())));
        assert_eq!(err.openai_type(), "rate_limit_error");
    }
}
