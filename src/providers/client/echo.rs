//! `dev/echo`: the built-in offline model, so a development deployment answers (and
//! streams) without any provider configured; and `dev/embed`, its embedding counterpart.

use crate::providers::client::transport::Transport;
use crate::providers::settings::DEV_ECHO_MODEL;
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context, Poll};

/// Pause between the deltas of `dev/echo`, so it visibly streams.
pub(super) const ECHO_DELTA_DELAY_MS: u64 = 25;

use futures::future::LocalBoxFuture;
use futures::FutureExt;

use crate::providers::wire::{self, ChatRequest, Completion, FinishReason, ProviderEvent, Usage};

pub(super) fn echo_text(request: &ChatRequest) -> String {
    let last_user = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == wire::Role::User)
        .map(|m| {
            let mut said = m.text().trim().to_owned();
            for media in m.media() {
                let what = match media.kind {
                    wire::MediaKind::Image => "image",
                    wire::MediaKind::Document => "document",
                };
                if !said.is_empty() {
                    said.push(' ');
                }
                said.push_str(&format!("[{what} {}]", media.media_type));
            }
            said
        })
        .filter(|t| !t.is_empty());
    match last_user {
        Some(text) => format!("Echo: {text}"),
        None => "Echo: (no user message)".to_string(),
    }
}

pub(super) fn echo_usage(request: &ChatRequest, reply: &str) -> Usage {
    let words = |s: &str| u32::try_from(s.split_whitespace().count()).unwrap_or(u32::MAX);
    let prompt: u32 = request
        .messages
        .iter()
        .map(|m| words(&m.text()))
        .fold(0, u32::saturating_add);
    Usage::from_counts(prompt, words(reply))
}

pub(super) fn echo_completion(request: &ChatRequest) -> Completion {
    let text = echo_text(request);
    Completion {
        media: Vec::new(),
        usage: Some(echo_usage(request, &text)),
        text,
        finish_reason: FinishReason::Stop,
        provider_model: Some(DEV_ECHO_MODEL.into()),
    }
}

/// The length of `dev/embed`'s vectors (`dimensions` may ask for fewer).
pub const DEV_EMBED_DIMENSIONS: u32 = 16;

/// `dev/embed`'s vector for `text`: deterministic values in [-1, 1), the same for the same
/// text, so code using embeddings can be tried offline. They mean nothing.
pub fn dev_embedding(text: &str, dimensions: u32) -> Vec<f32> {
    // FNV-1a over the text, then a linear congruential sequence from it.
    let mut state: u32 = 2_166_136_261;
    for byte in text.bytes() {
        state = (state ^ u32::from(byte)).wrapping_mul(16_777_619);
    }
    (0..dimensions)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (f64::from(state) / 2_147_483_648.0 - 1.0) as f32
        })
        .collect()
}

/// `dev/echo`'s reply, one word per delta, a little apart.
pub(super) struct EchoEvents {
    transport: Rc<dyn Transport>,
    events: VecDeque<ProviderEvent>,
    timer: Option<LocalBoxFuture<'static, ()>>,
    started: bool,
}

impl EchoEvents {
    pub(super) fn new(transport: Rc<dyn Transport>, request: &ChatRequest) -> Self {
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

    pub(super) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<ProviderEvent>> {
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
