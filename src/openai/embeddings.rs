//! `POST /v1/embeddings`, the pure part: OpenAI's embeddings body validated into the
//! unified [`EmbeddingRequest`], and the `list` of `embedding` objects built from the
//! vectors, as floats or as base64.
//!
//! - `input` is a string or an array of up to [`MAX_INPUTS`] non-empty strings. Token-id
//!   arrays are refused (400 naming `input`): only OpenAI itself could read them, and a
//!   model behind Gemini or Ollama would have to guess a tokenizer.
//! - `encoding_format` is `float` (the default) or `base64`: the standard base64 of the
//!   vector's little-endian IEEE-754 `f32`s, which is what both official SDKs ask for by
//!   default and decode themselves. Upstream is always asked for floats, so every provider
//!   answers in either format.
//! - `dimensions` asks for shorter vectors; for a catalogued model, more than its length is
//!   a 400 rather than a provider error.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::error::{ApiError, ApiResult};
use crate::providers::wire::embeddings::{EmbeddingRequest, Embeddings};

/// The most inputs one request may carry (OpenAI's limit too).
pub(super) const MAX_INPUTS: usize = 2048;

/// The fields of an OpenAI embeddings request that Threadline reads; `user` and anything
/// else is ignored, as on the rest of `/v1`.
#[derive(Debug, Deserialize)]
pub(super) struct EmbeddingsBody {
    model: String,
    input: Value,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<u32>,
}

/// How the vectors are written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EncodingFormat {
    Float,
    Base64,
}

/// A validated request: the model name as sent, the output format and the unified request.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ValidEmbeddings {
    pub(super) model: String,
    pub(super) format: EncodingFormat,
    pub(super) request: EmbeddingRequest,
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_request", message).with_field(param)
}

/// Validates the body (the model is resolved by the handler).
pub(super) fn validate(body: EmbeddingsBody) -> ApiResult<ValidEmbeddings> {
    let model = body.model.trim().to_string();
    if model.is_empty() {
        return Err(invalid(
            "model",
            "`model` must name an embedding model, e.g. \"openai/text-embedding-3-small\".",
        ));
    }
    let inputs = read_inputs(body.input)?;
    let format = match body.encoding_format.as_deref() {
        None | Some("float") => EncodingFormat::Float,
        Some("base64") => EncodingFormat::Base64,
        Some(_) => {
            return Err(invalid(
                "encoding_format",
                "`encoding_format` must be \"float\" or \"base64\".",
            ))
        }
    };
    if body.dimensions == Some(0) {
        return Err(invalid("dimensions", "`dimensions` must be at least 1."));
    }
    Ok(ValidEmbeddings {
        model,
        format,
        request: EmbeddingRequest {
            model: String::new(),
            inputs,
            dimensions: body.dimensions,
        },
    })
}

/// 400 naming `dimensions` when it asks for longer vectors than the model makes.
pub(super) fn check_dimensions(request: &EmbeddingRequest, max: Option<u32>) -> ApiResult<()> {
    match (request.dimensions, max) {
        (Some(asked), Some(max)) if asked > max => Err(invalid(
            "dimensions",
            format!("`dimensions` may be at most {max} for this model."),
        )),
        _ => Ok(()),
    }
}

fn read_inputs(input: Value) -> ApiResult<Vec<String>> {
    let tokens = || {
        invalid(
            "input",
            "Token-id input is not supported; send the text as a string or an array of strings.",
        )
    };
    let items = match input {
        Value::String(text) => vec![Value::String(text)],
        Value::Array(items) => items,
        _ => {
            return Err(invalid(
                "input",
                "`input` must be a string or an array of strings.",
            ))
        }
    };
    if items.is_empty() {
        return Err(invalid("input", "`input` must hold at least one text."));
    }
    if items.len() > MAX_INPUTS {
        return Err(invalid(
            "input",
            format!("`input` may hold at most {MAX_INPUTS} texts."),
        ));
    }
    let mut texts = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::String(text) if text.is_empty() => {
                return Err(invalid(
                    format!("input[{i}]"),
                    "An input must not be an empty string.",
                ))
            }
            Value::String(text) => texts.push(text),
            Value::Number(_) | Value::Array(_) => return Err(tokens()),
            _ => {
                return Err(invalid(
                    format!("input[{i}]"),
                    "Each input must be a string.",
                ))
            }
        }
    }
    Ok(texts)
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector<'a> {
    Floats(&'a [f32]),
    Base64(String),
}

#[derive(Serialize)]
struct Item<'a> {
    object: &'static str,
    index: usize,
    embedding: Vector<'a>,
}

#[derive(Serialize)]
struct UsageOut {
    prompt_tokens: u32,
    total_tokens: u32,
}

/// The `{"object":"list","data":[…],"model","usage"}` body, borrowing the vectors so a large
/// reply is serialized once, without an intermediate JSON tree.
#[derive(Serialize)]
pub(super) struct EmbeddingsList<'a> {
    object: &'static str,
    data: Vec<Item<'a>>,
    model: &'a str,
    usage: UsageOut,
}

/// The reply body. A provider that counts no tokens (Gemini) reports 0.
pub(super) fn list_body<'a>(
    model: &'a str,
    embeddings: &'a Embeddings,
    format: EncodingFormat,
) -> EmbeddingsList<'a> {
    let data = embeddings
        .vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| Item {
            object: "embedding",
            index,
            embedding: match format {
                EncodingFormat::Float => Vector::Floats(vector),
                EncodingFormat::Base64 => Vector::Base64(base64_of(vector)),
            },
        })
        .collect();
    let tokens = embeddings.prompt_tokens.unwrap_or(0);
    EmbeddingsList {
        object: "list",
        data,
        model,
        usage: UsageOut {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    }
}

/// Standard base64 of the little-endian `f32`s, with no header.
fn base64_of(vector: &[f32]) -> String {
    use base64ct::{Base64, Encoding};
    let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
    Base64::encode_string(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ctx::parse_json;

    fn parse(body: &str) -> ApiResult<ValidEmbeddings> {
        validate(parse_json::<EmbeddingsBody>(body.as_bytes())?)
    }

    #[test]
    fn a_string_or_an_array_of_strings_becomes_the_inputs() {
        let one = parse(r#"{"model":"text-embedding-3-small","input":"hello"}"#).expect("valid");
        assert_eq!(one.request.inputs, ["hello"]);
        assert_eq!(one.format, EncodingFormat::Float);
        let many = parse(
            r#"{"model":"m/x","input":["a","b"],"encoding_format":"base64","dimensions":8,"user":"u"}"#,
        )
        .expect("valid");
        assert_eq!(many.request.inputs, ["a", "b"]);
        assert_eq!(many.format, EncodingFormat::Base64);
        assert_eq!(many.request.dimensions, Some(8));
    }

    #[test]
    fn bad_inputs_and_parameters_are_400_naming_the_param() {
        let too_many = format!(
            r#"{{"model":"m/x","input":[{}]}}"#,
            vec!["\"t\""; MAX_INPUTS + 1].join(",")
        );
        let cases = [
            (r#"{"model":" ","input":"x"}"#.to_string(), "model"),
            (r#"{"model":"m/x","input":[]}"#.to_string(), "input"),
            (
                r#"{"model":"m/x","input":["a",""]}"#.to_string(),
                "input[1]",
            ),
            (r#"{"model":"m/x","input":[1,2,3]}"#.to_string(), "input"),
            (r#"{"model":"m/x","input":[[1,2]]}"#.to_string(), "input"),
            (
                r#"{"model":"m/x","input":{"text":"a"}}"#.to_string(),
                "input",
            ),
            (
                r#"{"model":"m/x","input":["a",null]}"#.to_string(),
                "input[1]",
            ),
            (too_many, "input"),
            (
                r#"{"model":"m/x","input":"a","encoding_format":"int8"}"#.to_string(),
                "encoding_format",
            ),
            (
                r#"{"model":"m/x","input":"a","dimensions":0}"#.to_string(),
                "dimensions",
            ),
        ];
        for (body, param) in cases {
            let err = parse(&body).expect_err(&body);
            assert_eq!(
                (err.status, err.field.as_deref()),
                (400, Some(param)),
                "{body}"
            );
        }
        let missing = parse(r#"{"model":"m/x"}"#).expect_err("no input");
        assert_eq!(
            (missing.status, missing.field.as_deref()),
            (422, Some("input"))
        );
    }

    #[test]
    fn dimensions_beyond_a_known_models_length_are_refused() {
        let req = EmbeddingRequest {
            dimensions: Some(4096),
            ..Default::default()
        };
        let err = check_dimensions(&req, Some(3072)).expect_err("too long");
        assert_eq!(err.field.as_deref(), Some("dimensions"));
        assert!(
            check_dimensions(&req, None).is_ok(),
            "unknown models: the provider decides"
        );
    }

    #[test]
    fn the_list_has_openais_shape_in_float_and_base64() {
        let embeddings = Embeddings {
            vectors: vec![vec![0.5, -1.25], vec![3.0]],
            prompt_tokens: Some(4),
        };
        let floats =
            serde_json::to_value(list_body("openai/e", &embeddings, EncodingFormat::Float))
                .expect("json");
        assert_eq!(
            floats,
            serde_json::json!({"object":"list","model":"openai/e",
                "data":[{"object":"embedding","index":0,"embedding":[0.5,-1.25]},
                        {"object":"embedding","index":1,"embedding":[3.0]}],
                "usage":{"prompt_tokens":4,"total_tokens":4}})
        );
        let b64 = serde_json::to_value(list_body("openai/e", &embeddings, EncodingFormat::Base64))
            .expect("json");
        // 0.5 = 0x3f000000, -1.25 = 0xbfa00000, little-endian.
        assert_eq!(b64["data"][0]["embedding"], "AAAAPwAAoL8=");
        use base64ct::{Base64, Encoding};
        let bytes =
            Base64::decode_vec(b64["data"][1]["embedding"].as_str().expect("str")).expect("base64");
        assert_eq!(
            f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            3.0
        );
    }

    #[test]
    fn a_provider_without_token_counts_reports_zero_usage() {
        let embeddings = Embeddings {
            vectors: vec![vec![1.0]],
            prompt_tokens: None,
        };
        let body = serde_json::to_value(list_body("gemini/e", &embeddings, EncodingFormat::Float))
            .expect("json");
        assert_eq!(body["usage"]["prompt_tokens"], 0);
    }
}
