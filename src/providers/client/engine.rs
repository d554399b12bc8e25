//! The engine of provider calls: attempts over the resolved plan, retries with capped backoff,
//! fallbacks, timeouts, client-disconnect cancellation and unbuffered streaming. The pure
//! translators in [`crate::providers::wire`] translate; the client does the I/O around them.
//!
//! # Using it (for handlers such as `/v1/chat/completions` and the conversations feature)
//!
//! ```ignore
//! use futures::StreamExt;
//! use crate::providers::client::ProviderClient;
//! use crate::providers::wire::{ChatMessage, ChatRequest, ProviderEvent, Role};
//!
//! let client = ProviderClient::new(&cx);          // also starts watching for client disconnect
//! let request = ChatRequest {
//!     messages: vec![ChatMessage::new(Role::User, "Hello")],
//!     include_usage: true,                        // ask OpenAI-style servers for usage too
//!     ..ChatRequest::default()                    // `model` and `stream` are filled in for you
//! };
//! // Errors before any output (unknown model 404, unconfigured provider 503, provider 429
//! // with Retry-After, auth 502, timeout 504…) come back as an `ApiError`: just `?` it.
//! let mut stream = client.stream("openai/gpt-4o", request).await?;
//! let served_by = stream.model().id.clone();      // differs from the request after a fallback
//! while let Some(event) = stream.next().await {
//!     match event {
//!         ProviderEvent::TextDelta(text) => { /* relay it */ }
//!         ProviderEvent::Usage(usage) => { /* prompt/completion/total tokens */ }
//!         ProviderEvent::Finish(reason) => { /* reason.as_openai_str(); nothing follows */ }
//!         ProviderEvent::Error(error) => {
//!             // Mid-stream failure, after output began: nothing follows. For the envelope:
//!             let api_error = failure::provider_error(&stream.model().provider, &error);
//!         }
//!     }
//! }
//! // Non-stream: `client.complete(model, request).await?` → `Answer { model, completion }`.
//! ```
//!
//! The event order is always: text deltas, at most one `Usage`, then exactly one `Finish` —
//! or one `Error` at any point. If the client disconnects, the upstream fetch is aborted and
//! the stream just ends (no `Finish`, no `Error`).
//!
//! **Client disconnect.** [`ProviderClient::disconnect`](super::ProviderClient::disconnect) gives a [`ClientDisconnect`](super::disconnect::ClientDisconnect):
//! `is_gone()` says whether the client has left, and `gone()` is a future that completes when
//! it does. Workers notice a disconnect only at the next write to the client (the request's
//! `signal` aborts then, with the `enable_request_signal` compatibility flag), and a response stream built with `Response::from_stream` is *dropped* when
//! the client goes — so code that must run afterwards (saving a partial answer) should share
//! its state with a future given to `cx.worker_ctx.wait_until`, one that waits for either the
//! end of the stream or `disconnect.gone()`.
//!
//! # Policy
//!
//! - A model name is an alias or `provider/model`. Unknown names are 404 `model_not_found`;
//!   a known provider that is not configured is 503 `provider_unavailable`.
//! - Retryable failures — connection errors, 429, 5xx, 529, and in-stream errors of those
//!   kinds — are retried on the same model up to `PROVIDER_MAX_RETRIES` times with capped
//!   exponential backoff (with jitter), waiting at least the provider's `retry-after` when it
//!   is small. Then the model's `MODEL_FALLBACKS` are tried in order. All of this happens only
//!   before the first event of output; after that an error is an `Error` event.
//! - Our own timeout (no first byte, no complete non-stream reply, or silence between two
//!   chunks for the provider's timeout) is not retried on the same model: the caller has
//!   already waited the full timeout once, so only a fallback is tried.
//! - When nothing worked, the error of the *requested* model is returned, as that is the one
//!   the client asked about (fallback failures are logged).
//!
//! The retry/fallback/stream logic is written against the small [`Transport`] trait, so it
//! runs natively under `cargo test` with a scripted fake; [`WorkerTransport`](super::transport::WorkerTransport) is the real
//! one (fetch + `AbortController` + `Delay`).

/// The largest non-stream reply accepted.
pub(super) const MAX_COMPLETION_BYTES: usize = 8 * 1024 * 1024;
/// The largest model list accepted.
pub(super) const MAX_MODEL_LIST_BYTES: usize = 4 * 1024 * 1024;
/// List endpoints are a nicety for `GET /api/models`: never wait long for them.
pub(super) const MODEL_LIST_TIMEOUT_SECS: u64 = 10;

use crate::providers::client::echo::echo_completion;
use crate::providers::client::failure::failure_error;
use crate::providers::client::failure::Failure;
use crate::providers::client::retry::next_step;
use crate::providers::client::retry::NextStep;
use crate::providers::client::stream::attempt_stream;
use crate::providers::client::stream::shorten;
use crate::providers::client::stream::ModelStream;
use crate::providers::client::transport::scrub;
use crate::providers::client::transport::send_and_read;
use crate::providers::client::transport::upstream_request;
use crate::providers::client::transport::within;
use crate::providers::client::transport::Transport;
use std::future::Future;
use std::rc::Rc;

use crate::http::error::{ApiError, ApiResult};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::logging::{LogLevel, LogLine};
use crate::platform::random::unit_interval;
use crate::providers::resolve::{ResolvedModel, Target};
use crate::providers::settings::{RetryPolicy, Upstream};
use crate::providers::wire::{self, ChatRequest, Completion};

/// A whole reply and the model that produced it (after fallbacks).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub model: ResolvedModel,
    pub completion: Completion,
}

pub(super) async fn attempt_complete(
    transport: &dyn Transport,
    model: &ResolvedModel,
    request: &ChatRequest,
) -> Result<Completion, Failure> {
    let upstream = match &model.target {
        Target::Echo => return Ok(echo_completion(request)),
        Target::Upstream(upstream) => upstream,
    };
    let outbound = upstream_request(model, upstream, request);
    let work = async {
        let body = send_and_read(transport, upstream, outbound, MAX_COMPLETION_BYTES).await?;
        wire::parse_completion(upstream.endpoint.kind, &String::from_utf8_lossy(&body))
            .map_err(|e| Failure::Provider(scrub(e, upstream)))
    };
    within(transport, upstream.timeout_secs * 1000, work)
        .await
        .unwrap_or(Err(Failure::TimedOut(upstream.timeout_secs)))
}

/// Where failed attempts are logged.
#[derive(Debug, Clone)]
pub struct LogTarget {
    pub request_id: String,
    pub level: LogLevel,
}

impl LogTarget {
    fn attempt_failed(
        &self,
        model: &ResolvedModel,
        attempt: u32,
        failure: &Failure,
        next: NextStep,
    ) {
        let next = match next {
            NextStep::RetryAfterMs(ms) => format!("retry in {ms} ms"),
            NextStep::NextModel => "next model".into(),
            NextStep::GiveUp => "give up".into(),
        };
        let mut line = LogLine::new(
            LogLevel::Warn,
            SystemClock.now_ms(),
            "provider attempt failed",
        )
        .field("request_id", self.request_id.as_str())
        .field("provider", model.provider.as_str())
        .field("model", model.id.as_str())
        .field("attempt", attempt)
        .field("failure", failure.code())
        .field("next", next);
        match failure {
            Failure::Provider(e) => {
                line = line.field("upstream_status", e.upstream_status);
            }
            Failure::Unreachable(detail) => line = line.field("detail", shorten(detail)),
            Failure::TimedOut(_) => {}
        }
        line.emit(self.level);
    }
}

pub(super) fn client_closed() -> ApiError {
    ApiError::new(
        499,
        "client_closed_request",
        "The client closed the request.",
    )
}

/// Runs `attempt` over the plan with retries and fallbacks; the first success wins.
pub(super) async fn run_plan<T, F, Fut>(
    transport: &Rc<dyn Transport>,
    policy: &RetryPolicy,
    log: &LogTarget,
    plan: &[ResolvedModel],
    mut attempt: F,
) -> ApiResult<(ResolvedModel, T)>
where
    F: FnMut(ResolvedModel) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut first_failure: Option<ApiError> = None;
    for (index, model) in plan.iter().enumerate() {
        let primary = index == 0;
        let mut retries_done = 0;
        loop {
            if transport.client_gone() {
                return Err(client_closed());
            }
            let failure = match attempt(model.clone()).await {
                Ok(value) => return Ok((model.clone(), value)),
                Err(failure) => failure,
            };
            // Without secure randomness the request fails rather than retrying on a guess.
            let jitter = unit_interval(transport.random())?;
            let step = next_step(policy, retries_done, &failure, jitter);
            log.attempt_failed(model, retries_done + 1, &failure, step);
            if primary {
                first_failure = Some(failure_error(&model.provider, &failure));
            }
            match step {
                NextStep::RetryAfterMs(ms) => {
                    transport.sleep(ms).await;
                    retries_done += 1;
                }
                NextStep::GiveUp if primary => {
                    return Err(
                        first_failure.unwrap_or_else(|| failure_error(&model.provider, &failure))
                    );
                }
                NextStep::GiveUp | NextStep::NextModel => break,
            }
        }
    }
    Err(first_failure.unwrap_or_else(|| ApiError::internal("empty provider plan")))
}

/// Non-stream completion over `plan`.
pub async fn complete_with(
    transport: Rc<dyn Transport>,
    policy: &RetryPolicy,
    log: &LogTarget,
    plan: &[ResolvedModel],
    mut request: ChatRequest,
) -> ApiResult<Answer> {
    request.stream = false;
    let request = &request;
    let t = transport.clone();
    let (model, completion) = run_plan(&transport, policy, log, plan, |model| {
        let t = t.clone();
        async move { attempt_complete(t.as_ref(), &model, request).await }
    })
    .await?;
    Ok(Answer { model, completion })
}

/// Streamed completion over `plan`: returns once the first event has arrived.
pub async fn stream_with(
    transport: Rc<dyn Transport>,
    policy: &RetryPolicy,
    log: &LogTarget,
    plan: &[ResolvedModel],
    mut request: ChatRequest,
) -> ApiResult<ModelStream> {
    request.stream = true;
    let request = &request;
    let t = transport.clone();
    let (model, source) = run_plan(&transport, policy, log, plan, |model| {
        let t = t.clone();
        async move { attempt_stream(&t, &model, request).await }
    })
    .await?;
    Ok(ModelStream { model, source })
}

/// Model ids from a provider's list endpoint.
pub async fn list_models_with(
    transport: &dyn Transport,
    upstream: &Upstream,
) -> Result<Vec<String>, String> {
    let outbound = wire::models_request(&upstream.endpoint);
    let secs = upstream.timeout_secs.min(MODEL_LIST_TIMEOUT_SECS);
    let work = async {
        let body = send_and_read(transport, upstream, outbound, MAX_MODEL_LIST_BYTES)
            .await
            .map_err(|failure| match failure {
                Failure::Unreachable(detail) => detail,
                Failure::Provider(e) => format!("HTTP error: {e}"),
                other => other.code().to_string(),
            })?;
        wire::parse_model_list(upstream.endpoint.kind, &String::from_utf8_lossy(&body))
            .map_err(|e| e.to_string())
    };
    within(transport, secs * 1000, work)
        .await
        .unwrap_or_else(|| Err(format!("timed out after {secs} s")))
}
