//! What a handler gets: the request, the parsed configuration, the request id and path
//! parameters, plus the body readers that turn every kind of bad input into a 4xx.

use std::rc::Rc;

use serde::de::DeserializeOwned;
use worker::{Env, Request};

use crate::config::Config;
use crate::http::error::{ApiError, ApiResult};

/// Path parameters by name (`{id}` → `params["id"]`).
pub type Params = std::collections::BTreeMap<&'static str, String>;

pub struct Ctx {
    pub req: Request,
    pub env: Env,
    pub worker_ctx: Rc<worker::Context>,
    pub config: Rc<Config>,
    pub request_id: String,
    pub params: Params,
    /// The matched route template, for logs (`/api/conversations/{id}`), never the raw path.
    pub route: &'static str,
}

impl Ctx {
    /// A path parameter; the router guarantees it exists for the matched template.
    pub fn param(&self, name: &str) -> ApiResult<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| ApiError::internal(format!("route has no parameter {name}")))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.req.headers().get(name).ok().flatten()
    }

    /// The query string as key/value pairs (percent-decoded).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        match self.req.url() {
            Ok(url) => url.query_pairs().into_owned().collect(),
            Err(_) => Vec::new(),
        }
    }

    pub fn query(&self, key: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Reads the body, refusing it with 413 when it is over the configured limit.
    /// `Content-Length` is checked first so an oversized upload is refused before it is read.
    pub async fn body_bytes(&mut self) -> ApiResult<Vec<u8>> {
        let limit = self.config.max_body_bytes;
        if let Some(len) = self.header("content-length") {
            if len.trim().parse::<u64>().is_ok_and(|n| n > limit as u64) {
                return Err(ApiError::payload_too_large(limit));
            }
        }
        let bytes = self.req.bytes().await.map_err(|e| {
            ApiError::bad_request("unreadable_body", "The request body could not be read.")
                .with_internal(e.to_string())
        })?;
        if bytes.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        Ok(bytes)
    }

    /// Parses a JSON body into `T`: 415 for another content type, 413 when too large,
    /// 400 for malformed JSON or invalid UTF-8, 422 naming the field for missing fields and
    /// wrong types.
    pub async fn json<T: DeserializeOwned>(&mut self) -> ApiResult<T> {
        require_media_type(self.header("content-type").as_deref(), "application/json")?;
        let bytes = self.body_bytes().await?;
        parse_json(&bytes)
    }

    /// Parses an `application/x-www-form-urlencoded` body (the OAuth2 password grant).
    pub async fn form(&mut self) -> ApiResult<Vec<(String, String)>> {
        require_media_type(
            self.header("content-type").as_deref(),
            "application/x-www-form-urlencoded",
        )?;
        let bytes = self.body_bytes().await?;
        Ok(url::form_urlencoded::parse(&bytes).into_owned().collect())
    }
}

/// A string field that must be present and non-empty (422 naming it otherwise).
pub fn required<'a>(value: &'a Option<String>, field: &str) -> ApiResult<&'a str> {
    match value.as_deref() {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError::validation(
            field,
            format!("`{field}` is required."),
        )),
    }
}

/// 415 unless the content type's media type (parameters ignored) is `expected`.
pub fn require_media_type(content_type: Option<&str>, expected: &str) -> ApiResult<()> {
    let media = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    match media {
        Some(m) if m == expected => Ok(()),
        _ => Err(ApiError::unsupported_media_type(expected)),
    }
}

/// JSON → `T` with errors that name the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_json",
            "The request body is empty; a JSON object is required.",
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| {
        ApiError::bad_request("invalid_json", "The request body is not valid UTF-8.")
    })?;
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        use serde_json::error::Category;
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
                "invalid_json",
                format!("The request body is not valid JSON: {inner}."),
            ),
            Category::Data => {
                let message = strip_position(&inner.to_string());
                // serde reports a missing field at the parent; name the field itself.
                let field = match missing_field_name(&message) {
                    Some(name) if path == "." => name.to_string(),
                    Some(name) => format!("{path}.{name}"),
                    None => path,
                };
                ApiError::validation(
                    field.clone(),
                    format!("Invalid field `{field}`: {message}."),
                )
            }
        }
    })
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn missing_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Register {
        email: String,
        password: String,
        profile: Option<Profile>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Profile {
        age: u32,
    }

    #[test]
    fn malformed_json_is_400_invalid_json() {
        let err = parse_json::<Register>(b"{\"email\": ").unwrap_err();
        assert_eq!((err.status, err.code), (400, "invalid_json"));
    }

    #[test]
    fn empty_body_is_400() {
        let err = parse_json::<Register>(b"  ").unwrap_err();
        assert_eq!(err.status, 400);
    }

    #[test]
    fn invalid_utf8_is_400() {
        let err = parse_json::<Register>(b"{\"email\":\"\xff\"}").unwrap_err();
        assert_eq!(err.status, 400);
    }

    #[test]
    fn missing_field_is_422_naming_it() {
        let err = parse_json::<Register>(br#"{"email":"a@b.c"}"#).unwrap_err();
        assert_eq!((err.status, err.code), (422, "validation_failed"));
        assert_eq!(err.field.as_deref(), Some("password"));
    }

    #[test]
    fn wrong_type_is_422_naming_the_nested_path() {
        let err = parse_json::<Register>(br#"{"email":"a","password":"b","profile":{"age":"x"}}"#)
            .unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(err.field.as_deref(), Some("profile.age"));
        assert!(err.message.contains("profile.age"));
    }

    #[test]
    fn json_array_instead_of_object_is_422() {
        let err = parse_json::<Register>(b"[1,2]").unwrap_err();
        assert_eq!(err.status, 422);
    }

    #[test]
    fn media_type_parameters_are_ignored_and_others_refused() {
        assert!(
            require_media_type(Some("application/json; charset=utf-8"), "application/json").is_ok()
        );
        assert!(require_media_type(Some("Application/JSON"), "application/json").is_ok());
        assert_eq!(
            require_media_type(Some("text/plain"), "application/json")
                .unwrap_err()
                .status,
            415
        );
        assert_eq!(
            require_media_type(None, "application/json")
                .unwrap_err()
                .status,
            415
        );
    }
}
