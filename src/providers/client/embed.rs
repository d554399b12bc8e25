//! Embeddings through the engine: the inputs split into batches the provider accepts, each
//! batch one call with the same retries and timeouts as chat, the vectors put back together
//! in input order.
//!
//! `dev/embed` (development without providers) answers locally, like `dev/echo`.
//!
//! No fallbacks: another model's vectors live in another space, so "some other model"
//! would be a silently wrong answer rather than a degraded one.

use std::rc::Rc;

use crate::http::error::ApiResult;
use crate::providers::client::echo::{dev_embedding, DEV_EMBED_DIMENSIONS};
use crate::providers::client::engine::{run_plan, LogTarget};
use crate::providers::client::failure::Failure;
use crate::providers::client::transport::{scrub, send_and_read, within, Transport};
use crate::providers::resolve::{ResolvedModel, Target};
use crate::providers::settings::RetryPolicy;
use crate::providers::wire::embeddings::{
    build_embedding_request, max_batch, parse_embeddings, EmbeddingRequest, Embeddings,
};
use crate::providers::wire::{ProviderError, ProviderErrorKind};

/// The most inputs sent upstream in one call, whatever the provider would take: it bounds
/// the size of one reply (512 vectors of 3072 floats is about 20 MB of JSON).
pub const MAX_INPUTS_PER_CALL: usize = 512;
/// The largest embeddings reply accepted.
const MAX_EMBEDDINGS_BYTES: usize = 32 * 1024 * 1024;

fn cannot_embed() -> Failure {
    Failure::Provider(ProviderError::new(
        ProviderErrorKind::InvalidRequest,
        "this model cannot make embeddings",
    ))
}

async fn attempt_embed(
    transport: &dyn Transport,
    model: &ResolvedModel,
    request: &EmbeddingRequest,
) -> Result<Embeddings, Failure> {
    let upstream = match &model.target {
        Target::Upstream(upstream) => upstream,
        Target::Echo => {
            let dimensions = request.dimensions.unwrap_or(DEV_EMBED_DIMENSIONS);
            return Ok(Embeddings {
                vectors: request
                    .inputs
                    .iter()
                    .map(|text| dev_embedding(text, dimensions))
                    .collect(),
                prompt_tokens: Some(
                    request
                        .inputs
                        .iter()
                        .map(|t| u32::try_from(t.split_whitespace().count()).unwrap_or(u32::MAX))
                        .fold(0, u32::saturating_add),
                ),
            });
        }
    };
    let mut request = request.clone();
    request.model = model.upstream_model.clone();
    let outbound =
        build_embedding_request(&request, &upstream.endpoint).ok_or_else(cannot_embed)?;
    let expected = request.inputs.len();
    let work = async {
        let body = send_and_read(transport, upstream, outbound, MAX_EMBEDDINGS_BYTES).await?;
        parse_embeddings(
            upstream.endpoint.kind,
            &String::from_utf8_lossy(&body),
            expected,
        )
        .map_err(|e| Failure::Provider(scrub(e, upstream)))
    };
    within(transport, upstream.timeout_secs * 1000, work)
        .await
        .unwrap_or(Err(Failure::TimedOut(upstream.timeout_secs)))
}

/// How many inputs go in each upstream call for `model`.
pub fn batch_size(model: &ResolvedModel) -> usize {
    match &model.target {
        Target::Upstream(upstream) => max_batch(upstream.endpoint.kind)
            .unwrap_or(1)
            .clamp(1, MAX_INPUTS_PER_CALL),
        Target::Echo => MAX_INPUTS_PER_CALL,
    }
}

/// Every input's vector, in order, in as many calls as the batch size needs (one after
/// another: a burst of parallel calls would only meet the provider's rate limit sooner).
pub async fn embed_with(
    transport: Rc<dyn Transport>,
    policy: &RetryPolicy,
    log: &LogTarget,
    model: &ResolvedModel,
    request: EmbeddingRequest,
) -> ApiResult<Embeddings> {
    let mut all = Embeddings {
        vectors: Vec::with_capacity(request.inputs.len()),
        prompt_tokens: Some(0),
    };
    for inputs in request.inputs.chunks(batch_size(model)) {
        let batch = EmbeddingRequest {
            inputs: inputs.to_vec(),
            ..request.clone()
        };
        let t = transport.clone();
        let batch = &batch;
        let (_, part) = run_plan(&transport, policy, log, std::slice::from_ref(model), |m| {
            let t = t.clone();
            async move { attempt_embed(t.as_ref(), &m, batch).await }
        })
        .await?;
        all.vectors.extend(part.vectors);
        all.prompt_tokens = match (all.prompt_tokens, part.prompt_tokens) {
            (Some(sum), Some(n)) => Some(sum.saturating_add(n)),
            _ => None,
        };
    }
    Ok(all)
}
