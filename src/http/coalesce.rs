//! A streamed response body that writes, in one piece, everything its source has ready.
//!
//! Each item of a Rust stream behind `Response::from_stream` is a crossing into JS (a
//! `Uint8Array`, a `ReadableStream` enqueue). When one upstream chunk decodes into several
//! events — common: providers send several SSE events per TCP read — they are ready together,
//! and joining them costs nothing in latency (nothing waits) and saves a crossing each.
//!
//! Only for a source that does not count its items as delivered when polled again (the chat
//! relay does, to store exactly what the client took, and is not joined).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::Stream;
use futures::StreamExt;

/// The stream of `inner`, items that are ready at the same poll joined into one.
pub struct Coalesce<S, E> {
    inner: S,
    /// An error that came after bytes already taken: sent on the next poll.
    held_error: Option<E>,
    done: bool,
}

impl<S, E> Coalesce<S, E> {
    pub fn new(inner: S) -> Self {
        Coalesce {
            inner,
            held_error: None,
            done: false,
        }
    }
}

impl<S, E> Stream for Coalesce<S, E>
where
    S: Stream<Item = Result<Vec<u8>, E>> + Unpin,
    E: Unpin,
{
    type Item = Result<Vec<u8>, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(err) = this.held_error.take() {
            return Poll::Ready(Some(Err(err)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        let mut joined: Option<Vec<u8>> = None;
        loop {
            match this.inner.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(bytes))) => match joined.as_mut() {
                    Some(buffer) => buffer.extend_from_slice(&bytes),
                    None => joined = Some(bytes),
                },
                Poll::Ready(Some(Err(err))) => {
                    return match joined {
                        Some(bytes) => {
                            this.held_error = Some(err);
                            Poll::Ready(Some(Ok(bytes)))
                        }
                        None => Poll::Ready(Some(Err(err))),
                    };
                }
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(joined.map(Ok));
                }
                Poll::Pending => {
                    return match joined {
                        Some(bytes) => Poll::Ready(Some(Ok(bytes))),
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::task::Waker;

    use super::*;

    type Item = Result<Vec<u8>, &'static str>;
    /// `None` is one `Pending`.
    type Step = Option<Item>;

    /// A source that is ready with its items until a `None` entry, which is one `Pending`.
    struct Scripted(RefCell<VecDeque<Step>>);

    impl Stream for Scripted {
        type Item = Item;
        fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Item>> {
            match self.0.borrow_mut().pop_front() {
                Some(Some(item)) => Poll::Ready(Some(item)),
                Some(None) => Poll::Pending,
                None => Poll::Ready(None),
            }
        }
    }

    fn polls(script: Vec<Step>) -> Vec<Poll<Option<Item>>> {
        let mut stream = Coalesce::new(Scripted(RefCell::new(script.into())));
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        loop {
            let poll = stream.poll_next_unpin(&mut cx);
            let end = matches!(poll, Poll::Ready(None));
            out.push(poll);
            if end {
                return out;
            }
        }
    }

    fn bytes(s: &str) -> Step {
        Some(Ok(s.as_bytes().to_vec()))
    }

    #[test]
    fn items_ready_together_are_written_as_one_and_nothing_waits() {
        let out = polls(vec![bytes("a"), bytes("b"), None, bytes("c")]);
        assert_eq!(
            out,
            vec![
                Poll::Ready(Some(Ok(b"ab".to_vec()))),
                Poll::Ready(Some(Ok(b"c".to_vec()))),
                Poll::Ready(None),
            ]
        );
    }

    #[test]
    fn a_pending_source_with_nothing_taken_is_pending() {
        let out = polls(vec![None, bytes("x")]);
        assert_eq!(out[0], Poll::Pending);
        assert_eq!(out[1], Poll::Ready(Some(Ok(b"x".to_vec()))));
    }

    #[test]
    fn an_error_after_bytes_comes_after_them() {
        let out = polls(vec![bytes("a"), Some(Err("broken")), bytes("never")]);
        assert_eq!(out[0], Poll::Ready(Some(Ok(b"a".to_vec()))));
        assert_eq!(out[1], Poll::Ready(Some(Err("broken"))));
    }
}
