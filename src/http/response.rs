//! Building responses: JSON bodies, the error envelope, request ids, CORS and the headers
//! every response carries.

use serde::Serialize;
use worker::{Headers, Response};

use crate::http::error::{ApiError, ApiResult};

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: u16, body: &T) -> ApiResult<Response> {
    let text =
        serde_json::to_string(body).map_err(|e| ApiError::internal(format!("serialize: {e}")))?;
    let headers = Headers::new();
    headers.set("content-type", "application/json; charset=utf-8")?;
    Ok(Response::ok(text)?
        .with_status(status)
        .with_headers(headers))
}

/// 204 No Content.
pub fn no_content() -> ApiResult<Response> {
    Ok(Response::empty()?.with_status(204))
}

/// The error envelope as a response. Never fails: if even that cannot be built, a plain 500.
pub fn error_response(err: &ApiError, request_id: &str) -> Response {
    let body = err.envelope(request_id).to_string();
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json; charset=utf-8");
    for (name, value) in &err.response_headers() {
        let _ = headers.set(name, value);
    }
    match Response::ok(body) {
        Ok(r) => r.with_status(err.status).with_headers(headers),
        Err(_) => Response::empty()
            .map(|r| r.with_status(500))
            .unwrap_or_else(|_| Response::error("internal error", 500).expect("plain response")),
    }
}

/// Whether `origin` may call us from a browser.
pub fn origin_allowed(allowed: &[String], origin: &str) -> bool {
    allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
}

pub const CORS_ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
pub const CORS_ALLOW_HEADERS: &str = "authorization, content-type, x-request-id, x-api-key";
pub const CORS_EXPOSE_HEADERS: &str =
    "x-request-id, retry-after, ratelimit-limit, ratelimit-remaining, ratelimit-reset";

/// Headers every response gets: the request id, no caching of API answers (they carry tokens
/// and private data), no MIME sniffing, and CORS when the origin is allowed.
pub fn finish_headers(
    headers: &Headers,
    request_id: &str,
    cors_origin: Option<&str>,
) -> worker::Result<()> {
    headers.set("x-request-id", request_id)?;
    headers.set("x-content-type-options", "nosniff")?;
    if !headers.has("cache-control")? {
        headers.set("cache-control", "no-store")?;
    }
    if let Some(origin) = cors_origin {
        headers.set("access-control-allow-origin", origin)?;
        headers.set("access-control-expose-headers", CORS_EXPOSE_HEADERS)?;
        headers.append("vary", "Origin")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_or_by_wildcard() {
        let allowed = vec!["https://app.example".to_string()];
        assert!(origin_allowed(&allowed, "https://app.example"));
        assert!(!origin_allowed(&allowed, "https://app.example.evil"));
        assert!(!origin_allowed(&[], "https://app.example"));
        assert!(origin_allowed(&["*".to_string()], "https://x"));
    }
}
