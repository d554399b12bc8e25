//! The I/O under the engine: the [`Transport`] trait the retry and stream logic is written
//! against (so it runs natively with a scripted fake), helpers that read bodies and errors
//! through it, and [`WorkerTransport`], the real one (fetch with an `AbortController` per
//! request, and `Delay` for timers).

use crate::providers::client::disconnect::ClientDisconnect;
use crate::providers::client::failure::Failure;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The most of an error body read to learn what went wrong.
pub(super) const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

use futures::future::{select, Either, LocalBoxFuture};
use futures::stream::{LocalBoxStream, Stream};
use futures::StreamExt;

use crate::platform::clock::{Clock, SystemClock};
use crate::platform::random::{RandomSource, SystemRandom};
use crate::providers::resolve::ResolvedModel;
use crate::providers::settings::Upstream;
use crate::providers::wire::{self, ChatRequest, OutboundRequest, ProviderError};

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
    /// The clock, for `Retry-After` dates (the one time seam).
    fn clock(&self) -> &dyn Clock;
    /// Randomness, for backoff jitter (the one randomness seam).
    fn random(&self) -> &dyn RandomSource;
    /// Whether our own client has disconnected (then nothing more is worth doing).
    fn client_gone(&self) -> bool;
}

/// `Some(output)`, or `None` when `ms` passed first (the future is then dropped, which aborts
/// a fetch).
pub(super) async fn within<T>(
    transport: &dyn Transport,
    ms: u64,
    work: impl Future<Output = T>,
) -> Option<T> {
    let work = Box::pin(work);
    match select(work, transport.sleep(ms)).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
}

/// Sends `outbound` and reads the body of a successful answer (to `limit` bytes): no answer
/// or an unreadable body is `Unreachable`, another status the provider's error as
/// [`error_of`] reads it. What the non-stream calls (completions, embeddings, model lists)
/// share.
pub(super) async fn send_and_read(
    transport: &dyn Transport,
    upstream: &Upstream,
    outbound: OutboundRequest,
    limit: usize,
) -> Result<Vec<u8>, Failure> {
    let mut reply = transport
        .send(outbound)
        .await
        .map_err(Failure::Unreachable)?;
    if !is_success(reply.status) {
        return Err(error_of(transport, upstream, reply).await);
    }
    read_body(&mut reply.body, limit)
        .await
        .map_err(Failure::Unreachable)
}

/// Reads a body to its end, or to `limit` bytes.
pub(super) async fn read_body(body: &mut Body, limit: usize) -> Result<Vec<u8>, String> {
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

pub(super) fn scrub(error: ProviderError, upstream: &Upstream) -> ProviderError {
    match upstream.endpoint.key() {
        Some(key) => error.without_secret(key),
        None => error,
    }
}

/// The provider's error for a non-2xx reply.
pub(super) async fn error_of(
    transport: &dyn Transport,
    upstream: &Upstream,
    mut reply: Reply,
) -> Failure {
    let retry_after = wire::retry_after_secs(
        reply.retry_after_ms.as_deref(),
        reply.retry_after.as_deref(),
        transport.clock().now_secs(),
    );
    let body = read_body(&mut reply.body, MAX_ERROR_BODY_BYTES)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let error = wire::parse_error(upstream.endpoint.kind, reply.status, retry_after, &text);
    Failure::Provider(scrub(error, upstream))
}

pub(super) fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

pub(super) fn upstream_request(
    model: &ResolvedModel,
    upstream: &Upstream,
    request: &ChatRequest,
) -> OutboundRequest {
    let mut request = request.clone();
    request.model = model.upstream_model.clone();
    wire::build_request(&request, &upstream.endpoint)
}

/// The largest non-stream answer read in one piece (by its `Content-Length`); anything larger
/// or of unknown length is read chunk by chunk, so the size limits of the callers hold
/// before the bytes are in memory.
const WHOLE_BODY_MAX_BYTES: usize = 4 * 1024 * 1024;

/// `fetch` with an `AbortController` per request, aborted when the caller drops the request
/// or its body early (timeouts, a client that left) and when the client disconnects.
pub struct WorkerTransport {
    pub(super) disconnect: ClientDisconnect,
}

/// Aborts a fetch when dropped, unless its body was read to the end.
pub(super) struct AbortOnDrop {
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

pub(super) struct GuardedBody {
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

pub(super) async fn worker_fetch(
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
    let streamed = request
        .headers
        .iter()
        .any(|(name, value)| name == "accept" && value == "text/event-stream");
    let small_enough = header("content-length")
        .and_then(|n| n.trim().parse::<usize>().ok())
        .is_some_and(|n| n <= WHOLE_BODY_MAX_BYTES);
    let body: Body = if !streamed && small_enough {
        // A JSON answer of known, bounded size is read in one piece: one promise instead of
        // a reader's promise per chunk.
        Box::pin(futures::stream::once(async move {
            let mut guard = guard;
            let bytes = response.bytes().await.map_err(|e| e.to_string());
            guard.armed = false;
            bytes
        }))
    } else {
        match response.stream() {
            Ok(inner) => Box::pin(GuardedBody { inner, guard }),
            Err(_) => Box::pin(futures::stream::empty()),
        }
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
        crate::platform::timer::sleep(ms)
    }

    fn clock(&self) -> &dyn Clock {
        &SystemClock
    }

    fn random(&self) -> &dyn RandomSource {
        &SystemRandom
    }

    fn client_gone(&self) -> bool {
        self.disconnect.is_gone()
    }
}
