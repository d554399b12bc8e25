//! A streamed reply: upstream bytes through the SSE parser and the provider's decoder into
//! unified events, relayed as they arrive, with the silence timeout between chunks.

use crate::providers::client::echo::EchoEvents;
use crate::providers::client::failure::Failure;
use crate::providers::client::transport::error_of;
use crate::providers::client::transport::is_success;
use crate::providers::client::transport::scrub;
use crate::providers::client::transport::upstream_request;
use crate::providers::client::transport::within;
use crate::providers::client::transport::Body;
use crate::providers::client::transport::Transport;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::future::LocalBoxFuture;
use futures::stream::Stream;
use futures::{FutureExt, StreamExt};

use crate::providers::resolve::{ResolvedModel, Target};
use crate::providers::settings::Upstream;
use crate::providers::wire::{
    self, ChatRequest, ProviderError, ProviderErrorKind, ProviderEvent, SseParser, StreamDecoder,
};

/// The events of one reply, relayed as they arrive. See the module docs for the order.
pub struct ModelStream {
    pub(super) model: ResolvedModel,
    pub(super) source: Source,
}

pub(super) enum Source {
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
pub(super) struct UpstreamEvents {
    transport: Rc<dyn Transport>,
    upstream: Upstream,
    /// `None` once the body ended or was given up (dropping it aborts the fetch).
    body: Option<Body>,
    parser: SseParser,
    decoder: Box<dyn StreamDecoder>,
    pending: VecDeque<ProviderEvent>,
    /// A `Finish` or `Error` was queued: nothing more is emitted.
    ended: bool,
    /// One timer per silence period, not one per chunk (a timer is a JS crossing each way):
    /// a chunk only notes when it came, and a timer that fires after chunks is re-armed for
    /// what is left of the timeout since the last one.
    idle_timer: Option<LocalBoxFuture<'static, ()>>,
    /// A chunk arrived since the timer was armed, at `last_chunk_ms`.
    chunk_since_armed: bool,
    last_chunk_ms: u64,
    /// Our idle timeout fired (as opposed to the provider reporting a timeout).
    timed_out: bool,
}

impl UpstreamEvents {
    fn new(transport: Rc<dyn Transport>, upstream: Upstream, body: Body) -> Self {
        UpstreamEvents {
            decoder: wire::stream_decoder(upstream.endpoint.kind),
            transport,
            upstream,
            body: Some(body),
            parser: SseParser::new(),
            pending: VecDeque::new(),
            ended: false,
            idle_timer: None,
            chunk_since_armed: false,
            last_chunk_ms: 0,
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
                    if self.idle_timer.is_some() {
                        self.chunk_since_armed = true;
                        self.last_chunk_ms = self.transport.clock().now_ms();
                    }
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
                        Poll::Ready(()) if self.chunk_since_armed => {
                            // Not silent for the whole period: wait out the rest of it.
                            self.chunk_since_armed = false;
                            let since = self
                                .transport
                                .clock()
                                .now_ms()
                                .saturating_sub(self.last_chunk_ms);
                            let rest = (secs * 1000).saturating_sub(since).max(1);
                            self.idle_timer = Some(self.transport.sleep(rest));
                        }
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

pub(super) fn shorten(detail: &str) -> String {
    detail.chars().take(120).collect()
}

pub(super) async fn attempt_stream(
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
