//! Calling AI providers: model resolution, retries with capped backoff, fallbacks, timeouts,
//! client-disconnect cancellation and unbuffered streaming. The pure adapters in
//! [`crate::providers`] translate; this module does the I/O around them.
//!
//! # Using it (for handlers such as `/v1/chat/completions` and the conversations feature)
//!
//! ```ignore
//! use futures::StreamExt;
//! use crate::provider_client::ProviderClient;
//! use crate::providers::{ChatMessage, ChatRequest, ProviderEvent, Role};
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
//!             let api_error = provider_client::provider_error(&stream.model().provider, &error);
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
//! **Client disconnect.** [`ProviderClient::disconnect`] gives a [`ClientDisconnect`]:
//! `is_gone()` says whether the client has left, and `gone()` is a future that completes when
//! it does. Workers notice a disconnect only at the next write to the client (see
//! TOOLCHAIN.md), and a response stream built with `Response::from_stream` is *dropped* when
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
//! runs natively under `cargo test` with a scripted fake; [`WorkerTransport`] is the real
//! one (fetch + `AbortController` + `Delay`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use futures::future::{select, Either, LocalBoxFuture};
use futures::stream::{LocalBoxStream, Stream};
use futures::{FutureExt, StreamExt};

use crate::config::{Config, LogLevel};
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::logging::LogLine;
use crate::platform::{Clock, SystemClock};
use crate::providers::settings::{enabling_setting, RetryPolicy, Upstream, DEV_ECHO_MODEL};
use crate::providers::{
    self, catalogue, ChatRequest, Completion, FinishReason, OutboundRequest, ProviderError,
    ProviderErrorKind, ProviderEvent, SseParser, StreamDecoder, Usage,
};

/// The most of an error body read to learn what went wrong.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// The largest non-stream reply accepted.
const MAX_COMPLETION_BYTES: usize = 8 * 1024 * 1024;
/// The largest model list accepted.
const MAX_MODEL_LIST_BYTES: usize = 4 * 1024 * 1024;
/// List endpoints are a nicety for `GET /api/models`: never wait long for them.
const MODEL_LIST_TIMEOUT_SECS: u64 = 10;
/// Pause between the deltas of `dev/echo`, so it visibly streams.
const ECHO_DELTA_DELAY_MS: u64 = 25;

// ---------------------------------------------------------------------------------------------
// Resolution
// ---------------------------------------------------------------------------------------------

/// Where a resolved model is served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Upstream(Upstream),
    /// The built-in offline `dev/echo` model.
    Echo,
}

/// A model name resolved to something that can be called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    /// `provider/model`, after alias resolution (`fast` → `gemini/gemini-2.0-flash`).
    pub id: String,
    /// The prefix of `id`, which names the provider in messages and logs.
    pub provider: String,
    /// The provider's own model name, sent upstream.
    pub upstream_model: String,
    pub target: Target,
}

/// Long client-supplied names are cut in messages so an error cannot be used to echo junk.
fn shown(name: &str) -> String {
    let mut s: String = name.chars().take(100).collect();
    if s.len() < name.len() {
        s.push('…');
    }
    s
}

fn model_not_found(name: &str) -> ApiError {
    ApiError::new(
        404,
        "model_not_found",
        format!(
            "The model {:?} does not exist on this deployment; GET /api/models lists the models it serves.",
            shown(name)
        ),
    )
    .with_field("model")
}

/// Resolves an alias or `provider/model` id, without any I/O.
pub fn resolve(
    settings: &providers::settings::ProviderSettings,
    name: &str,
) -> ApiResult<ResolvedModel> {
    let qualified;
    let mut id = settings.catalogue.canonical_id(name.trim());
    if let Some(q) = settings.catalogue.qualify_bare_name(id) {
        qualified = q;
        id = &qualified;
    }
    if id == DEV_ECHO_MODEL && settings.dev_echo {
        return Ok(ResolvedModel {
            id: id.to_string(),
            provider: "dev".into(),
            upstream_model: "echo".into(),
            target: Target::Echo,
        });
    }
    let (prefix, model) = catalogue::parse_model_id(id).map_err(|_| model_not_found(name))?;
    let catalogued = settings.catalogue.resolve(id);
    let upstream_model = catalogued.map_or(model, |m| m.upstream.as_str());
    if let Some(upstream) = settings.upstream(prefix) {
        return Ok(ResolvedModel {
            id: id.to_string(),
            provider: prefix.to_string(),
            upstream_model: upstream_model.to_string(),
            target: Target::Upstream(upstream.clone()),
        });
    }
    let known_provider = catalogue::provider_kind_for_prefix(prefix).is_some();
    if known_provider || catalogued.is_some() {
        let hint = enabling_setting(prefix)
            .map(|s| format!(" (an operator sets {s} to enable it)"))
            .unwrap_or_default();
        return Err(ApiError::new(
            503,
            "provider_unavailable",
            format!(
                "The model {:?} needs provider {prefix}, which is not configured on this deployment{hint}.",
                shown(id)
            ),
        )
        .with_field("model")
        // Retrying cannot help until an operator changes the configuration.
        .with_header("x-should-retry", "false"));
    }
    Err(model_not_found(name))
}

/// The requested model followed by its usable fallbacks, without duplicates. Fallbacks whose
/// provider is not configured are skipped: the requested model decides the error.
pub fn plan(
    settings: &providers::settings::ProviderSettings,
    name: &str,
) -> ApiResult<Vec<ResolvedModel>> {
    let mut plan = vec![resolve(settings, name)?];
    for fallback in settings.fallbacks_for(name) {
        if let Ok(model) = resolve(settings, fallback) {
            if plan.iter().all(|m| m.id != model.id) {
                plan.push(model);
            }
        }
    }
    Ok(plan)
}

// ---------------------------------------------------------------------------------------------
// Failures and their mapping to the API's errors
// ---------------------------------------------------------------------------------------------

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
    fn code(&self) -> &'static str {
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

// ---------------------------------------------------------------------------------------------
// Retry decisions (pure)
// ---------------------------------------------------------------------------------------------

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Try the same model again after this many milliseconds.
    RetryAfterMs(u64),
    /// Give up on this model; try the next fallback.
    NextModel,
    /// The failure is not transient: retrying or falling back cannot help the requested
    /// model (a bad request, a rejected key).
    GiveUp,
}

/// Capped exponential backoff with "equal jitter": half of the delay is fixed, half is
/// random (`jitter` in `[0, 1)`), so isolates retrying together spread out.
pub fn backoff_ms(policy: &RetryPolicy, retries_done: u32, jitter: f64) -> u64 {
    let exponential = policy
        .base_delay_ms
        .saturating_mul(1u64 << retries_done.min(30));
    let capped = exponential.min(policy.max_delay_ms);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.5
    };
    capped / 2 + ((capped / 2) as f64 * jitter) as u64
}

/// Decides what follows a failure, given how many retries of this model were already made.
pub fn next_step(
    policy: &RetryPolicy,
    retries_done: u32,
    failure: &Failure,
    jitter: f64,
) -> NextStep {
    let retry_after = match failure {
        Failure::Unreachable(_) => None,
        Failure::TimedOut(_) => return NextStep::NextModel,
        Failure::Provider(e) if e.is_retryable() => e.retry_after_secs,
        Failure::Provider(_) => return NextStep::GiveUp,
    };
    if retries_done >= policy.max_retries {
        return NextStep::NextModel;
    }
    let backoff = backoff_ms(policy, retries_done, jitter);
    match retry_after {
        Some(secs) if secs > policy.max_retry_after_secs => NextStep::NextModel,
        Some(secs) => NextStep::RetryAfterMs(backoff.max(secs.saturating_mul(1000))),
        None => NextStep::RetryAfterMs(backoff),
    }
}

// ---------------------------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------------------------

/// A response body, chunk by chunk as it arrives. Dropping it aborts the fetch.
pub type Body = LocalBoxStream<'static, Result<Vec<u8>, String>>;

/// A provider's HTTP response.
pub struct Reply {
    pub status: u16,
    pub retry_after_ms: Option<String>,
    pub retry_after: Option<String>,
    pub body: Body,
}

/// Outbound HTTP and time, abstracted so the logic above runs under `cargo test`.
pub trait Transport {
    /// Sends a request; `Err` means no response at all. Dropping the future aborts it.
    fn send(&self, request: OutboundRequest) -> LocalBoxFuture<'static, Result<Reply, String>>;
    fn sleep(&self, ms: u64) -> LocalBoxFuture<'static, ()>;
    fn now_secs(&self) -> u64;
    /// A random number in `[0, 1)`, for backoff jitter.
    fn random_unit(&self) -> f64;
    /// Whether our own client has disconnected (then nothing more is worth doing).
    fn client_gone(&self) -> bool;
}

/// `Some(output)`, or `None` when `ms` passed first (the future is then dropped, which aborts
/// a fetch).
async fn within<T>(transport: &dyn Transport, ms: u64, work: impl Future<Output = T>) -> Option<T> {
    let work = Box::pin(work);
    match select(work, transport.sleep(ms)).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
}

/// Reads a body to its end, or to `limit` bytes.
async fn read_body(body: &mut Body, limit: usize) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk?);
        if bytes.len() >= limit {
            bytes.truncate(limit);
            break;
        }
    }
    Ok(bytes)
}

fn scrub(error: ProviderError, upstream: &Upstream) -> ProviderError {
    match upstream.endpoint.key() {
        Some(key) => error.without_secret(key),
        None => error,
    }
}

/// The provider's error for a non-2xx reply.
async fn error_of(transport: &dyn Transport, upstream: &Upstream, mut reply: Reply) -> Failure {
    let retry_after = providers::retry_after_secs(
        reply.retry_after_ms.as_deref(),
        reply.retry_after.as_deref(),
        transport.now_secs(),
    );
    let body = read_body(&mut reply.body, MAX_ERROR_BODY_BYTES)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let error = providers::parse_error(upstream.endpoint.kind, reply.status, retry_after, &text);
    Failure::Provider(scrub(error, upstream))
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

fn upstream_request(
    model: &ResolvedModel,
    upstream: &Upstream,
    request: &ChatRequest,
) -> OutboundRequest {
    let mut request = request.clone();
    request.model = model.upstream_model.clone();
    providers::build_request(&request, &upstream.endpoint)
}

// ---------------------------------------------------------------------------------------------
// Non-stream
// ---------------------------------------------------------------------------------------------

/// A whole reply and the model that produced it (after fallbacks).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub model: ResolvedModel,
    pub completion: Completion,
}

async fn attempt_complete(
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
        let mut reply = transport
            .send(outbound)
            .await
            .map_err(Failure::Unreachable)?;
        if !is_success(reply.status) {
            return Err(error_of(transport, upstream, reply).await);
        }
        let body = read_body(&mut reply.body, MAX_COMPLETION_BYTES)
            .await
            .map_err(Failure::Unreachable)?;
        providers::parse_completion(upstream.endpoint.kind, &String::from_utf8_lossy(&body))
            .map_err(|e| Failure::Provider(scrub(e, upstream)))
    };
    within(transport, upstream.timeout_secs * 1000, work)
        .await
        .unwrap_or(Err(Failure::TimedOut(upstream.timeout_secs)))
}

// ---------------------------------------------------------------------------------------------
// Stream
// ---------------------------------------------------------------------------------------------

/// The events of one reply, relayed as they arrive. See the module docs for the order.
pub struct ModelStream {
    model: ResolvedModel,
    source: Source,
}

enum Source {
    Upstream(Box<UpstreamEvents>),
    Echo(EchoEvents),
}

impl ModelStream {
    /// The model actually serving this reply (a fallback, when the requested one failed).
    pub fn model(&self) -> &ResolvedModel {
        &self.model
    }
}

impl std::fmt::Debug for ModelStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelStream")
            .field("model", &self.model.id)
            .finish_non_exhaustive()
    }
}

impl Stream for ModelStream {
    type Item = ProviderEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ProviderEvent>> {
        match &mut self.get_mut().source {
            Source::Upstream(events) => events.poll_event(cx),
            Source::Echo(events) => events.poll_event(cx),
        }
    }
}

/// Drives the SSE parser and the provider's decoder over a body, with an idle timeout.
struct UpstreamEvents {
    transport: Rc<dyn Transport>,
    upstream: Upstream,
    /// `None` once the body ended or was given up (dropping it aborts the fetch).
    body: Option<Body>,
    parser: SseParser,
    decoder: Box<dyn StreamDecoder>,
    pending: VecDeque<ProviderEvent>,
    /// A `Finish` or `Error` was queued: nothing more is emitted.
    ended: bool,
    idle_timer: Option<LocalBoxFuture<'static, ()>>,
    /// Our idle timeout fired (as opposed to the provider reporting a timeout).
    timed_out: bool,
}

impl UpstreamEvents {
    fn new(transport: Rc<dyn Transport>, upstream: Upstream, body: Body) -> Self {
        UpstreamEvents {
            decoder: providers::stream_decoder(upstream.endpoint.kind),
            transport,
            upstream,
            body: Some(body),
            parser: SseParser::new(),
            pending: VecDeque::new(),
            ended: false,
            idle_timer: None,
            timed_out: false,
        }
    }

    fn accept(&mut self, events: Vec<ProviderEvent>) {
        for event in events {
            if self.ended {
                return;
            }
            match event {
                ProviderEvent::Error(error) => {
                    self.ended = true;
                    // Nothing after an error is worth reading: let the upstream go.
                    self.body = None;
                    let error = scrub(error, &self.upstream);
                    self.pending.push_back(ProviderEvent::Error(error));
                }
                ProviderEvent::Finish(reason) => {
                    // The body is still drained, so the connection ends cleanly.
                    self.ended = true;
                    self.pending.push_back(ProviderEvent::Finish(reason));
                }
                other => self.pending.push_back(other),
            }
        }
    }

    fn on_chunk(&mut self, chunk: &[u8]) {
        for sse in self.parser.push(chunk) {
            let events = self.decoder.on_event(&sse);
            self.accept(events);
        }
    }

    fn on_end(&mut self) {
        self.body = None;
        if self.transport.client_gone() {
            // The abort ended the body: there is nobody to tell.
            self.ended = true;
            return;
        }
        for sse in self.parser.finish() {
            let events = self.decoder.on_event(&sse);
            self.accept(events);
        }
        let events = self.decoder.finish();
        self.accept(events);
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<ProviderEvent>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Poll::Ready(Some(event));
            }
            let Some(body) = self.body.as_mut() else {
                return Poll::Ready(None);
            };
            match body.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    self.idle_timer = None;
                    self.on_chunk(&chunk);
                }
                Poll::Ready(Some(Err(_))) if self.transport.client_gone() => self.on_end(),
                Poll::Ready(Some(Err(detail))) => {
                    self.body = None;
                    self.accept(vec![ProviderEvent::Error(ProviderError::new(
                        ProviderErrorKind::Server,
                        format!(
                            "the connection to the provider broke mid-stream ({})",
                            shorten(&detail)
                        ),
                    ))]);
                }
                Poll::Ready(None) => self.on_end(),
                Poll::Pending => {
                    let secs = self.upstream.timeout_secs;
                    let transport = self.transport.clone();
                    let timer = self
                        .idle_timer
                        .get_or_insert_with(|| transport.sleep(secs * 1000));
                    match timer.poll_unpin(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(()) => {
                            self.idle_timer = None;
                            self.body = None;
                            self.timed_out = true;
                            self.accept(vec![ProviderEvent::Error(ProviderError::new(
                                ProviderErrorKind::Timeout,
                                format!("the provider sent nothing for {secs} s"),
                            ))]);
                        }
                    }
                }
            }
        }
    }

    /// Reads until the first event, so a failure before any output can still be retried.
    async fn first_event(mut self) -> Result<UpstreamEvents, Failure> {
        let first = futures::future::poll_fn(|cx| self.poll_event(cx)).await;
        match first {
            // Silence before any output is our timeout, which is not retried on this model.
            Some(ProviderEvent::Error(_)) if self.timed_out => {
                Err(Failure::TimedOut(self.upstream.timeout_secs))
            }
            Some(ProviderEvent::Error(error)) => Err(Failure::Provider(error)),
            Some(event) => {
                self.pending.push_front(event);
                Ok(self)
            }
            // Only when the client left: the attempt is moot.
            None => Err(Failure::Unreachable("client disconnected".into())),
        }
    }
}

fn shorten(detail: &str) -> String {
    detail.chars().take(120).collect()
}

async fn attempt_stream(
    transport: &Rc<dyn Transport>,
    model: &ResolvedModel,
    request: &ChatRequest,
) -> Result<Source, Failure> {
    let upstream = match &model.target {
        Target::Echo => return Ok(Source::Echo(EchoEvents::new(transport.clone(), request))),
        Target::Upstream(upstream) => upstream,
    };
    let outbound = upstream_request(model, upstream, request);
    let timeout_ms = upstream.timeout_secs * 1000;
    let reply = within(transport.as_ref(), timeout_ms, transport.send(outbound))
        .await
        .ok_or(Failure::TimedOut(upstream.timeout_secs))?
        .map_err(Failure::Unreachable)?;
    if !is_success(reply.status) {
        return within(
            transport.as_ref(),
            timeout_ms,
            error_of(transport.as_ref(), upstream, reply),
        )
        .await
        .map_or(Err(Failure::TimedOut(upstream.timeout_secs)), Err);
    }
    let events = UpstreamEvents::new(transport.clone(), upstream.clone(), reply.body);
    events
        .first_event()
        .await
        .map(|events| Source::Upstream(Box::new(events)))
}

// ---------------------------------------------------------------------------------------------
// dev/echo
// ---------------------------------------------------------------------------------------------

fn echo_text(request: &ChatRequest) -> String {
    let last_user = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == providers::Role::User)
        .map(|m| m.content.trim())
        .filter(|t| !t.is_empty());
    match last_user {
        Some(text) => format!("Echo: {text}"),
        None => "Echo: (no user message)".to_string(),
    }
}

fn echo_usage(request: &ChatRequest, reply: &str) -> Usage {
    let words = |s: &str| u32::try_from(s.split_whitespace().count()).unwrap_or(u32::MAX);
    let prompt: u32 = request
        .messages
        .iter()
        .map(|m| words(&m.content))
        .fold(0, u32::saturating_add);
    Usage::from_counts(prompt, words(reply))
}

fn echo_completion(request: &ChatRequest) -> Completion {
    let text = echo_text(request);
    Completion {
        usage: Some(echo_usage(request, &text)),
        text,
        finish_reason: FinishReason::Stop,
        provider_model: Some(DEV_ECHO_MODEL.into()),
    }
}

/// `dev/echo`'s reply, one word per delta, a little apart.
struct EchoEvents {
    transport: Rc<dyn Transport>,
    events: VecDeque<ProviderEvent>,
    timer: Option<LocalBoxFuture<'static, ()>>,
    started: bool,
}

impl EchoEvents {
    fn new(transport: Rc<dyn Transport>, request: &ChatRequest) -> Self {
        let text = echo_text(request);
        let mut events: VecDeque<ProviderEvent> = text
            .split_inclusive(' ')
            .map(|word| ProviderEvent::TextDelta(word.to_string()))
            .collect();
        events.push_back(ProviderEvent::Usage(echo_usage(request, &text)));
        events.push_back(ProviderEvent::Finish(FinishReason::Stop));
        EchoEvents {
            transport,
            events,
            timer: None,
            started: false,
        }
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<ProviderEvent>> {
        if self.started && matches!(self.events.front(), Some(ProviderEvent::TextDelta(_))) {
            let transport = self.transport.clone();
            let timer = self
                .timer
                .get_or_insert_with(|| transport.sleep(ECHO_DELTA_DELAY_MS));
            if timer.poll_unpin(cx).is_pending() {
                return Poll::Pending;
            }
            self.timer = None;
        }
        self.started = true;
        Poll::Ready(self.events.pop_front())
    }
}

// ---------------------------------------------------------------------------------------------
// The engine: attempts, retries, fallbacks
// ---------------------------------------------------------------------------------------------

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

fn client_closed() -> ApiError {
    ApiError::new(
        499,
        "client_closed_request",
        "The client closed the request.",
    )
}

/// Runs `attempt` over the plan with retries and fallbacks; the first success wins.
async fn run_plan<T, F, Fut>(
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
            let step = next_step(policy, retries_done, &failure, transport.random_unit());
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
    let outbound = providers::models_request(&upstream.endpoint);
    let secs = upstream.timeout_secs.min(MODEL_LIST_TIMEOUT_SECS);
    let work = async {
        let mut reply = transport.send(outbound).await?;
        if !is_success(reply.status) {
            return Err(match error_of(transport, upstream, reply).await {
                Failure::Provider(e) => format!("HTTP error: {e}"),
                other => other.code().to_string(),
            });
        }
        let body = read_body(&mut reply.body, MAX_MODEL_LIST_BYTES).await?;
        providers::parse_model_list(upstream.endpoint.kind, &String::from_utf8_lossy(&body))
            .map_err(|e| e.to_string())
    };
    within(transport, secs * 1000, work)
        .await
        .unwrap_or_else(|| Err(format!("timed out after {secs} s")))
}

// ---------------------------------------------------------------------------------------------
// The client handlers use
// ---------------------------------------------------------------------------------------------

/// Provider calls on behalf of one request.
pub struct ProviderClient {
    config: Rc<Config>,
    transport: Rc<dyn Transport>,
    disconnect: ClientDisconnect,
    log: LogTarget,
}

impl ProviderClient {
    /// A client for this request, which aborts its upstream calls if our client disconnects.
    pub fn new(cx: &Ctx) -> ProviderClient {
        let disconnect = ClientDisconnect::watch(&cx.req);
        ProviderClient {
            config: cx.config.clone(),
            transport: Rc::new(WorkerTransport {
                disconnect: disconnect.clone(),
            }),
            disconnect,
            log: LogTarget {
                request_id: cx.request_id.clone(),
                level: cx.config.log_level,
            },
        }
    }

    /// A client over another transport (tests).
    pub fn with_transport(config: Rc<Config>, transport: Rc<dyn Transport>) -> ProviderClient {
        let level = config.log_level;
        ProviderClient {
            config,
            transport,
            disconnect: ClientDisconnect::default(),
            log: LogTarget {
                request_id: String::new(),
                level,
            },
        }
    }

    /// What the request's client disconnecting looks like from here.
    pub fn disconnect(&self) -> &ClientDisconnect {
        &self.disconnect
    }

    /// The model and its fallbacks, or the 404/503 for an unusable name; no I/O.
    pub fn plan(&self, model: &str) -> ApiResult<Vec<ResolvedModel>> {
        plan(&self.config.providers, model)
    }

    /// A whole reply. `request.model` and `request.stream` are set here.
    pub async fn complete(&self, model: &str, request: ChatRequest) -> ApiResult<Answer> {
        let plan = self.plan(model)?;
        complete_with(
            self.transport.clone(),
            &self.config.providers.retry,
            &self.log,
            &plan,
            request,
        )
        .await
    }

    /// A streamed reply; returns once output has begun. `request.model` and `request.stream`
    /// are set here.
    pub async fn stream(&self, model: &str, request: ChatRequest) -> ApiResult<ModelStream> {
        let plan = self.plan(model)?;
        stream_with(
            self.transport.clone(),
            &self.config.providers.retry,
            &self.log,
            &plan,
            request,
        )
        .await
    }

    /// Model ids from `upstream`'s list endpoint (short timeout, no retries).
    pub async fn list_models(&self, upstream: &Upstream) -> Result<Vec<String>, String> {
        list_models_with(self.transport.as_ref(), upstream).await
    }
}

/// A `text/event-stream` response relaying `stream` write by write.
///
/// `no-transform` keeps Cloudflare (and well-behaved proxies) from compressing the stream,
/// which would buffer it; `x-accel-buffering: no` does the same for nginx in front of a
/// self-hosted deployment.
pub fn event_stream_response<S>(stream: S) -> ApiResult<worker::Response>
where
    S: Stream<Item = Result<Vec<u8>, worker::Error>> + 'static,
{
    let headers = worker::Headers::new();
    headers.set("content-type", "text/event-stream; charset=utf-8")?;
    headers.set("cache-control", "no-cache, no-transform")?;
    headers.set("x-accel-buffering", "no")?;
    Ok(worker::Response::from_stream(stream)?.with_headers(headers))
}

// ---------------------------------------------------------------------------------------------
// Client disconnect
// ---------------------------------------------------------------------------------------------

/// Whether the client of this request has gone away, learnt from an `abort` listener on
/// `request.signal`
/// (compatibility flag `enable_request_signal`). Cloning shares the state.
#[derive(Clone, Default)]
pub struct ClientDisconnect {
    state: Rc<DisconnectState>,
}

/// The signal listened to, and the listener.
type AbortListener = (
    worker::web_sys::AbortSignal,
    wasm_bindgen::closure::Closure<dyn FnMut()>,
);

#[derive(Default)]
struct DisconnectState {
    gone: Cell<bool>,
    /// Fetches to abort when the client goes.
    controllers: RefCell<Vec<worker::web_sys::AbortController>>,
    wakers: RefCell<Vec<Waker>>,
    /// The `abort` listener, kept alive while we listen and removed on drop so JS never
    /// calls a freed closure.
    listener: RefCell<Option<AbortListener>>,
}

impl DisconnectState {
    fn mark_gone(&self) {
        if self.gone.replace(true) {
            return;
        }
        for controller in self.controllers.borrow_mut().drain(..) {
            controller.abort();
        }
        for waker in self.wakers.borrow_mut().drain(..) {
            waker.wake();
        }
    }
}

impl Drop for DisconnectState {
    fn drop(&mut self) {
        if let Some((signal, closure)) = self.listener.get_mut().take() {
            let _ = call_method(&signal, "removeEventListener", closure.as_ref());
        }
    }
}

/// `target[method]("abort", listener)`. Called through `Reflect` because web-sys exposes
/// `addEventListener` only with its `EventTarget` feature, which this crate does not pull
/// in; a listener (unlike `onabort`) lets several watchers share one request.
fn call_method(
    target: &worker::web_sys::AbortSignal,
    method: &str,
    listener: &wasm_bindgen::JsValue,
) -> Result<(), wasm_bindgen::JsValue> {
    use wasm_bindgen::JsCast;
    let function: worker::js_sys::Function =
        worker::js_sys::Reflect::get(target, &wasm_bindgen::JsValue::from_str(method))?
            .dyn_into()?;
    function.call2(target, &wasm_bindgen::JsValue::from_str("abort"), listener)?;
    Ok(())
}

impl ClientDisconnect {
    /// Starts listening for the client of `req` to disconnect.
    pub fn watch(req: &worker::Request) -> ClientDisconnect {
        let disconnect = ClientDisconnect::default();
        let signal = req.inner().signal();
        // A weak reference: the closure lives inside the state, and a strong one would
        // keep the state (and the closure) alive forever.
        let weak: Weak<DisconnectState> = Rc::downgrade(&disconnect.state);
        let closure = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || {
            if let Some(state) = weak.upgrade() {
                state.mark_gone();
            }
        });
        if call_method(&signal, "addEventListener", closure.as_ref()).is_err() {
            // No way to learn of a disconnect: requests still work, they just cannot be
            // cancelled early.
            return disconnect;
        }
        let already = signal.aborted();
        *disconnect.state.listener.borrow_mut() = Some((signal, closure));
        if already {
            disconnect.state.mark_gone();
        }
        disconnect
    }

    pub fn is_gone(&self) -> bool {
        self.state.gone.get()
    }

    /// Completes when the client disconnects (never, if it does not).
    pub fn gone(&self) -> impl Future<Output = ()> + 'static {
        let state = self.state.clone();
        futures::future::poll_fn(move |cx| {
            if state.gone.get() {
                return Poll::Ready(());
            }
            let mut wakers = state.wakers.borrow_mut();
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }

    /// Marks the client as gone (what the abort listener does; also for tests).
    pub fn mark_gone(&self) {
        self.state.mark_gone();
    }

    fn register(&self, controller: worker::web_sys::AbortController) {
        if self.is_gone() {
            controller.abort();
        } else {
            self.state.controllers.borrow_mut().push(controller);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The Workers transport
// ---------------------------------------------------------------------------------------------

/// `fetch` with an `AbortController` per request, aborted when the caller drops the request
/// or its body early (timeouts, a client that left) and when the client disconnects.
pub struct WorkerTransport {
    disconnect: ClientDisconnect,
}

/// Aborts a fetch when dropped, unless its body was read to the end.
struct AbortOnDrop {
    controller: worker::web_sys::AbortController,
    armed: bool,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.controller.abort();
        }
    }
}

struct GuardedBody {
    inner: worker::ByteStream,
    guard: AbortOnDrop,
}

impl Stream for GuardedBody {
    type Item = Result<Vec<u8>, String>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.inner.poll_next_unpin(cx) {
            Poll::Ready(None) => {
                this.guard.armed = false;
                Poll::Ready(None)
            }
            Poll::Ready(Some(item)) => Poll::Ready(Some(item.map_err(|e| e.to_string()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

async fn worker_fetch(
    disconnect: ClientDisconnect,
    request: OutboundRequest,
) -> Result<Reply, String> {
    let controller = worker::web_sys::AbortController::new()
        .map_err(|_| "AbortController is unavailable".to_string())?;
    let guard = AbortOnDrop {
        controller: controller.clone(),
        armed: true,
    };
    disconnect.register(controller.clone());

    let headers = worker::Headers::new();
    for (name, value) in &request.headers {
        headers
            .set(name, value)
            .map_err(|e| format!("header {name}: {e}"))?;
    }
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::from(request.method.to_string()))
        .with_headers(headers);
    if !request.body.is_empty() {
        init.with_body(Some(wasm_bindgen::JsValue::from_str(&request.body)));
    }
    let outbound =
        worker::Request::new_with_init(&request.url, &init).map_err(|e| e.to_string())?;
    let signal = worker::AbortSignal::from(controller.signal());
    let mut response = worker::Fetch::Request(outbound)
        .send_with_signal(&signal)
        .await
        .map_err(|e| e.to_string())?;
    let header = |name: &str| response.headers().get(name).ok().flatten();
    let status = response.status_code();
    let retry_after_ms = header("retry-after-ms");
    let retry_after = header("retry-after");
    let body: Body = match response.stream() {
        Ok(inner) => Box::pin(GuardedBody { inner, guard }),
        Err(_) => Box::pin(futures::stream::empty()),
    };
    Ok(Reply {
        status,
        retry_after_ms,
        retry_after,
        body,
    })
}

impl Transport for WorkerTransport {
    fn send(&self, request: OutboundRequest) -> LocalBoxFuture<'static, Result<Reply, String>> {
        Box::pin(worker_fetch(self.disconnect.clone(), request))
    }

    fn sleep(&self, ms: u64) -> LocalBoxFuture<'static, ()> {
        Box::pin(worker::Delay::from(std::time::Duration::from_millis(ms)))
    }

    fn now_secs(&self) -> u64 {
        SystemClock.now_secs()
    }

    fn random_unit(&self) -> f64 {
        match crate::platform::random_bytes::<8>() {
            Ok(bytes) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
            Err(_) => 0.5,
        }
    }

    fn client_gone(&self) -> bool {
        self.disconnect.is_gone()
    }
}

#[cfg(test)]
mod tests;
