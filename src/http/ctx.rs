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
    /// A body already read by a handler that handed the request on ([`Ctx::put_back_body`]).
    pub read_body: Option<Vec<u8>>,
    /// The most bytes the route's body may hold (`MAX_BODY_BYTES`, or more for the routes that
    /// take media: [`crate::http::router::BodyLimit`]).
    pub body_limit: usize,
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

    /// Reads the body, refusing it with 413 when it is over the configured limit. A declared
    /// `Content-Length` over the limit never gets here: the pipeline refuses it before routing.
    pub async fn body_bytes(&mut self) -> ApiResult<Vec<u8>> {
        if let Some(bytes) = self.read_body.take() {
            return Ok(bytes);
        }
        let limit = self.body_limit;
        let bytes = self.req.bytes().await.map_err(|e| {
            ApiError::bad_request("unreadable_body", "The request body could not be read.")
                .with_internal(e.to_string())
        })?;
        if bytes.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        Ok(bytes)
    }

    /// Keeps a body that was read to decide where the request goes, for the handler it goes
    /// to: a request body can be read only once.
    pub fn put_back_body(&mut self, bytes: Vec<u8>) {
        self.read_body = Some(bytes);
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
    // Every body is an object: serde would otherwise read a struct from an array, matching
    // its items to the fields in order (`["Ada"]` setting a name).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::new(
            422,
            "validation_failed",
            "The request body must be a JSON object.",
        ));
    }
    if nesting_depth(bytes) > MAX_JSON_DEPTH {
        return Err(ApiError::bad_request(
            "invalid_json",
            format!("The request body nests deeper than {MAX_JSON_DEPTH} levels."),
        ));
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut *de)
        .map_err(|err| {
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
        .map_err(name_unknown_field)?;
    // Nothing but whitespace may follow the document (a trailing NUL or a second document
    // is malformed input, not something to ignore).
    de.end().map_err(|_| {
        ApiError::bad_request(
            "invalid_json",
            "The request body has data after the JSON document.",
        )
    })?;
    Ok(value)
}

/// The deepest a request body may nest objects and arrays: far beyond any real request, and
/// a bound on the work a hostile body can cause even in fields that are ignored.
pub const MAX_JSON_DEPTH: usize = 64;

/// How deeply `bytes` nest `{` and `[` (outside strings), without parsing them.
fn nesting_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// serde reports an unknown field of a `deny_unknown_fields` body at its parent; name the
/// field itself in `param`, as for every other 422.
fn name_unknown_field(mut err: ApiError) -> ApiError {
    let Some(start) = err.message.find("unknown field `") else {
        return err;
    };
    let rest = &err.message[start + "unknown field `".len()..];
    let Some(name) = rest.split('`').next().map(str::to_string) else {
        return err;
    };
    let field = match err.field.as_deref() {
        None | Some(".") | Some("") => name.clone(),
        Some(path) if path == name || path.ends_with(&format!(".{name}")) => path.to_string(),
        Some(parent) => format!("{parent}.{name}"),
    };
    let expected = rest.find("expected").map(|i| &rest[i..]).unwrap_or("");
    err.message = format!("Unknown field `{field}`; {expected}.")
        .replace("; .", ".")
        .replace("..", ".");
    err.field = Some(field);
    err
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

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        name: Option<String>,
        inner: Option<StrictInner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct StrictInner {
        n: Option<u32>,
    }

    #[test]
    fn bytes_after_the_document_are_400_invalid_json() {
        let err = parse_json::<Register>(b"{\"email\":\"a\",\"password\":\"b\"}\0").unwrap_err();
        assert_eq!((err.status, err.code), (400, "invalid_json"));
        let err = parse_json::<Register>(br#"{"email":"a","password":"b"} {}"#).unwrap_err();
        assert_eq!(err.status, 400);
        // Trailing whitespace is fine.
        assert!(parse_json::<Register>(b"{\"email\":\"a\",\"password\":\"b\"}\n ").is_ok());
    }

    #[test]
    fn nesting_beyond_the_limit_is_400_even_inside_an_ignored_field() {
        let deep = format!(
            "{{\"email\":\"a\",\"password\":\"b\",\"x\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let err = parse_json::<Register>(deep.as_bytes()).unwrap_err();
        assert_eq!((err.status, err.code), (400, "invalid_json"));
        let ok = format!(
            "{{\"x\":{}{}}}",
            "[".repeat(MAX_JSON_DEPTH - 1),
            "]".repeat(MAX_JSON_DEPTH - 1)
        );
        assert_eq!(nesting_depth(ok.as_bytes()), MAX_JSON_DEPTH);
    }

    #[test]
    fn brackets_inside_strings_do_not_count_as_nesting() {
        assert_eq!(nesting_depth(br#"{"a":"[[[{{{"]]]"}"#), 1);
    }

    #[test]
    fn an_unknown_field_is_422_naming_it_with_its_path() {
        let err = parse_json::<Strict>(br#"{"nmae":"x"}"#).unwrap_err();
        assert_eq!((err.status, err.field.as_deref()), (422, Some("nmae")));
        let err = parse_json::<Strict>(br#"{"inner":{"m":1}}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("inner.m"));
        assert!(
            err.message.starts_with("Unknown field `inner.m`"),
            "{}",
            err.message
        );
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
    fn an_array_that_fits_the_fields_in_order_is_still_refused() {
        let err = parse_json::<Register>(br#"["a@b.c", "a password"]"#).unwrap_err();
        assert_eq!((err.status, err.code), (422, "validation_failed"));
        for body in [&b"null"[..], b"\"text\"", b"42", b" [null, null]"] {
            assert_eq!(parse_json::<Register>(body).unwrap_err().status, 422);
        }
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
