//! A timer that wakes whoever polled it last.
//!
//! `worker::Delay` keeps the waker of its first poll. A timer that lives across polls from
//! different tasks — an idle timeout kept over several writes of a streamed body, each
//! pulled by its own task — would then wake a task that has already finished, and the
//! timeout would never fire. This one hands `Delay` a waker of its own that forwards to the
//! most recent poller.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures::future::LocalBoxFuture;

/// Completes after `ms` milliseconds; safe to keep across polls from different tasks.
pub fn sleep(ms: u64) -> LocalBoxFuture<'static, ()> {
    let latest = Arc::new(Forward(Mutex::new(None)));
    Box::pin(Timer {
        delay: worker::Delay::from(Duration::from_millis(ms)),
        forward: Waker::from(latest.clone()),
        latest,
    })
}

struct Timer {
    delay: worker::Delay,
    latest: Arc<Forward>,
    forward: Waker,
}

/// The waker `Delay` holds: wakes the task that polled the timer last.
struct Forward(Mutex<Option<Waker>>);

impl Wake for Forward {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(waker) = self.0.lock().ok().and_then(|mut w| w.take()) {
            waker.wake();
        }
    }
}

impl Future for Timer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Ok(mut latest) = this.latest.0.lock() {
            *latest = Some(cx.waker().clone());
        }
        let mut forwarding = Context::from_waker(&this.forward);
        Pin::new(&mut this.delay).poll(&mut forwarding)
    }
}
