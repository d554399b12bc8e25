//! Embeddings: the unified request and reply, and each provider's wire format for them.
//!
//! - OpenAI and the servers imitating it (Ollama, vLLM, llama.cpp): `POST {base}/embeddings`
//!   with `{"model","input":[…],"encoding_format":"float","dimensions"?}`, answered with
//!   `{"data":[{"index","embedding":[…]}],"usage":{"prompt_tokens","total_tokens"}}`.
//!   Floats are always asked for: the client's `encoding_format` is applied by Threadline, so
//!   one reading serves every server (some compatible servers ignore `base64`).
//! - Gemini: `POST {base}/v1beta/models/{model}:batchEmbedContents` with one request per input
//!   (`{"model":"models/…","content":{"parts":[{"text"}]},"outputDimensionality"?}`), answered
//!   with `{"embeddings":[{"values":[…]}]}` in input order. Gemini reports no token count.
//! - Anthropic has no embeddings API: [`max_batch`] is `None` for it.
//!
//! Pure, like the rest of `wire`: errors come back through each provider's `parse_error`.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::gemini;
use super::model::{
    header, saturating_u32, OutboundRequest, ProviderEndpoint, ProviderError, ProviderKind,
};

/// A provider-neutral embeddings request: one vector per input, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmbeddingRequest {
    /// The provider's own model name (`text-embedding-3-small`), without the prefix.
    pub model: String,
    pub inputs: Vec<String>,
    /// Shorter vectors, for the models that can make them.
    pub dimensions: Option<u32>,
}

/// The vectors for one request, in input order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    /// Input tokens, when the provider counts them (OpenAI and compatible servers do).
    pub prompt_tokens: Option<u32>,
}

/// How many inputs one upstream request may carry: OpenAI takes 2048, Gemini's
/// `batchEmbedContents` 100. `None`: the provider cannot embed at all.
pub fn max_batch(kind: ProviderKind) -> Option<usize> {
    match kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => Some(2048),
        ProviderKind::Gemini => Some(100),
        ProviderKind::Anthropic => None,
    }
}

/// The upstream request for `req`, or `None` for a provider without embeddings.
pub fn build_embedding_request(
    req: &EmbeddingRequest,
    endpoint: &ProviderEndpoint,
) -> Option<OutboundRequest> {
    match endpoint.kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
            Some(openai_request(req, endpoint))
        }
        ProviderKind::Gemini => Some(gemini_request(req, endpoint)),
        ProviderKind::Anthropic => None,
    }
}

fn openai_request(req: &EmbeddingRequest, endpoint: &ProviderEndpoint) -> OutboundRequest {
    let mut body = Map::new();
    body.insert("model".into(), req.model.clone().into());
    body.insert("input".into(), req.inputs.clone().into());
    body.insert("encoding_format".into(), "float".into());
    if let Some(dimensions) = req.dimensions {
        body.insert("dimensions".into(), dimensions.into());
    }
    let auth = endpoint
        .key()
        .map(|key| header("authorization", format!("Bearer {key}")));
    OutboundRequest::post_json(endpoint.url("embeddings"), false, auth, Value::Object(body))
}

fn gemini_request(req: &EmbeddingRequest, endpoint: &ProviderEndpoint) -> OutboundRequest {
    let name = req.model.strip_prefix("models/").unwrap_or(&req.model);
    let requests: Vec<Value> = req
        .inputs
        .iter()
        .map(|text| {
            let mut one = Map::new();
            one.insert("model".into(), format!("models/{name}").into());
            one.insert("content".into(), json!({ "parts": [{ "text": text }] }));
            if let Some(dimensions) = req.dimensions {
                one.insert("outputDimensionality".into(), dimensions.into());
            }
            Value::Object(one)
        })
        .collect();
    let url = endpoint.url(&format!(
        "{}/models/{}:batchEmbedContents",
        gemini::API_VERSION,
        gemini::model_path_segment(name)
    ));
    let auth = endpoint.key().map(|key| header("x-goog-api-key", key));
    OutboundRequest::post_json(url, false, auth, json!({ "requests": requests }))
}

/// Reads a successful reply, which must hold exactly `expected` vectors.
pub fn parse_embeddings(
    kind: ProviderKind,
    body: &str,
    expected: usize,
) -> Result<Embeddings, ProviderError> {
    let embeddings = match kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => parse_openai(body)?,
        ProviderKind::Gemini => parse_gemini(body)?,
        ProviderKind::Anthropic => {
            return Err(ProviderError::malformed(
                "this provider has no embeddings API",
            ))
        }
    };
    if embeddings.vectors.len() != expected {
        return Err(ProviderError::malformed(format!(
            "the provider returned {} embeddings for {expected} inputs",
            embeddings.vectors.len()
        )));
    }
    Ok(embeddings)
}

fn not_understood() -> ProviderError {
    ProviderError::malformed("the provider's embeddings reply was not understood")
}

/// An `embedding` as numbers, or as base64 of little-endian `f32`s from a server that
/// answers in base64 whatever it was asked.
#[derive(Deserialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f32>),
    Base64(String),
}

impl Vector {
    fn into_floats(self) -> Result<Vec<f32>, ProviderError> {
        match self {
            Vector::Floats(values) => Ok(values),
            Vector::Base64(text) => {
                use base64ct::{Base64, Encoding};
                let bytes = Base64::decode_vec(&text).map_err(|_| not_understood())?;
                if bytes.len() % 4 != 0 {
                    return Err(not_understood());
                }
                Ok(bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect())
            }
        }
    }
}

fn parse_openai(body: &str) -> Result<Embeddings, ProviderError> {
    #[derive(Deserialize)]
    struct Reply {
        data: Vec<Item>,
        usage: Option<UsageBody>,
    }
    #[derive(Deserialize)]
    struct Item {
        index: Option<usize>,
        embedding: Vector,
    }
    #[derive(Deserialize)]
    struct UsageBody {
        #[serde(default)]
        prompt_tokens: u64,
    }
    let reply: Reply = serde_json::from_str(body).map_err(|_| not_understood())?;
    let count = reply.data.len();
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; count];
    for (position, item) in reply.data.into_iter().enumerate() {
        // `index` says which input a vector belongs to; servers that omit it answer in order.
        let index = item.index.unwrap_or(position);
        let slot = slots.get_mut(index).ok_or_else(not_understood)?;
        if slot.is_some() {
            return Err(not_understood());
        }
        *slot = Some(item.embedding.into_floats()?);
    }
    let vectors = slots
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(not_understood)?;
    Ok(Embeddings {
        vectors,
        prompt_tokens: reply.usage.map(|u| saturating_u32(u.prompt_tokens)),
    })
}

fn parse_gemini(body: &str) -> Result<Embeddings, ProviderError> {
    #[derive(Deserialize)]
    struct Reply {
        #[serde(default)]
        embeddings: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        values: Vec<f32>,
    }
    let reply: Reply = serde_json::from_str(body).map_err(|_| not_understood())?;
    Ok(Embeddings {
        vectors: reply.embeddings.into_iter().map(|e| e.values).collect(),
        prompt_tokens: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::wire::{parse_error, ProviderErrorKind};

    fn endpoint(kind: ProviderKind, base_url: &str) -> ProviderEndpoint {
        ProviderEndpoint {
            kind,
            base_url: base_url.into(),
            api_key: Some("k-1".into()),
        }
    }

    fn request(inputs: &[&str], dimensions: Option<u32>) -> EmbeddingRequest {
        EmbeddingRequest {
            model: "text-embedding-3-small".into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            dimensions,
        }
    }

    fn body(outbound: &OutboundRequest) -> Value {
        serde_json::from_str(&outbound.body).expect("json body")
    }

    #[test]
    fn openai_requests_always_ask_for_floats_and_pass_dimensions() {
        let out = build_embedding_request(
            &request(&["a", "b"], Some(256)),
            &endpoint(ProviderKind::OpenAi, "https://api.openai.com/v1"),
        )
        .expect("openai embeds");
        assert_eq!(out.url, "https://api.openai.com/v1/embeddings");
        assert_eq!(out.header("authorization"), Some("Bearer k-1"));
        assert_eq!(
            body(&out),
            json!({"model":"text-embedding-3-small","input":["a","b"],"encoding_format":"float","dimensions":256})
        );
    }

    #[test]
    fn compatible_servers_use_the_openai_path_under_their_base_url() {
        let mut e = endpoint(ProviderKind::OpenAiCompatible, "http://localhost:11434/v1");
        e.api_key = None;
        let out = build_embedding_request(&request(&["x"], None), &e).expect("embeds");
        assert_eq!(out.url, "http://localhost:11434/v1/embeddings");
        assert_eq!(out.header("authorization"), None);
        assert!(body(&out).get("dimensions").is_none());
    }

    #[test]
    fn gemini_requests_are_one_batch_entry_per_input_with_the_key_in_a_header() {
        let mut req = request(&["a", "b"], Some(64));
        req.model = "gemini-embedding-001".into();
        let out = build_embedding_request(
            &req,
            &endpoint(ProviderKind::Gemini, gemini::DEFAULT_BASE_URL),
        )
        .expect("gemini embeds");
        assert_eq!(
            out.url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:batchEmbedContents"
        );
        assert_eq!(out.header("x-goog-api-key"), Some("k-1"));
        assert!(!out.url.contains("k-1"));
        let b = body(&out);
        assert_eq!(b["requests"].as_array().map(Vec::len), Some(2));
        assert_eq!(b["requests"][1]["model"], "models/gemini-embedding-001");
        assert_eq!(b["requests"][1]["content"]["parts"][0]["text"], "b");
        assert_eq!(b["requests"][0]["outputDimensionality"], 64);
    }

    #[test]
    fn anthropic_cannot_embed() {
        assert_eq!(max_batch(ProviderKind::Anthropic), None);
        assert!(build_embedding_request(
            &request(&["a"], None),
            &endpoint(ProviderKind::Anthropic, "https://api.anthropic.com")
        )
        .is_none());
    }

    #[test]
    fn openai_replies_are_put_in_input_order_by_index() {
        let reply = r#"{"object":"list","data":[
            {"object":"embedding","index":1,"embedding":[0.5,-1]},
            {"object":"embedding","index":0,"embedding":[0.25,2]}],
            "model":"text-embedding-3-small","usage":{"prompt_tokens":3,"total_tokens":3}}"#;
        let parsed = parse_embeddings(ProviderKind::OpenAi, reply, 2).expect("parsed");
        assert_eq!(parsed.vectors, vec![vec![0.25, 2.0], vec![0.5, -1.0]]);
        assert_eq!(parsed.prompt_tokens, Some(3));
    }

    #[test]
    fn a_base64_vector_from_a_server_is_decoded() {
        use base64ct::{Base64, Encoding};
        let bytes: Vec<u8> = [1.5f32, -0.25]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        let reply = format!(
            r#"{{"data":[{{"index":0,"embedding":"{}"}}]}}"#,
            Base64::encode_string(&bytes)
        );
        let parsed = parse_embeddings(ProviderKind::OpenAiCompatible, &reply, 1).expect("parsed");
        assert_eq!(parsed.vectors, vec![vec![1.5, -0.25]]);
        assert_eq!(parsed.prompt_tokens, None);
    }

    #[test]
    fn gemini_replies_come_in_input_order_without_usage() {
        let reply = r#"{"embeddings":[{"values":[1,2]},{"values":[3,4]}]}"#;
        let parsed = parse_embeddings(ProviderKind::Gemini, reply, 2).expect("parsed");
        assert_eq!(parsed.vectors, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        assert_eq!(parsed.prompt_tokens, None);
    }

    #[test]
    fn a_reply_with_the_wrong_number_or_shape_of_vectors_is_malformed() {
        for (kind, reply, expected) in [
            (
                ProviderKind::Gemini,
                r#"{"embeddings":[{"values":[1]}]}"#,
                2,
            ),
            (
                ProviderKind::OpenAi,
                r#"{"data":[{"index":5,"embedding":[1]}]}"#,
                1,
            ),
            (
                ProviderKind::OpenAi,
                r#"{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[2]}]}"#,
                2,
            ),
            (
                ProviderKind::OpenAi,
                r#"{"data":[{"index":0,"embedding":"%%"}]}"#,
                1,
            ),
            (ProviderKind::OpenAi, "<html>", 1),
        ] {
            let err = parse_embeddings(kind, reply, expected).expect_err(reply);
            assert_eq!(err.kind, ProviderErrorKind::Malformed, "{reply}");
        }
    }

    #[test]
    fn embedding_errors_read_like_chat_errors() {
        let openai = r#"{"error":{"message":"The model `x` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
        assert_eq!(
            parse_error(ProviderKind::OpenAi, 404, None, openai).kind,
            ProviderErrorKind::NotFound
        );
    }
}
