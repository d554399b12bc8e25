//! Client disconnect: learning that the client of this request has gone, so the upstream
//! call is cut short and a partial reply is recorded.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};

/// Whether the client of this request has gone away, learnt from an `abort` listener on
/// `request.signal`
/// (compatibility flag `enable_request_signal`). Cloning shares the state.
#[derive(Clone, Default)]
pub struct ClientDisconnect {
    state: Rc<DisconnectState>,
}

/// The signal listened to, and the listener.
pub(super) type AbortListener = (
    worker::web_sys::AbortSignal,
    wasm_bindgen::closure::Closure<dyn FnMut()>,
);

#[derive(Default)]
pub(super) struct DisconnectState {
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
pub(super) fn call_method(
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

    pub(super) fn register(&self, controller: worker::web_sys::AbortController) {
        if self.is_gone() {
            controller.abort();
        } else {
            self.state.controllers.borrow_mut().push(controller);
        }
    }
}
