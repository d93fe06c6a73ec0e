//! Futures the host hands to plugins, with wakers that never outlive them.
//!
//! When a plugin awaits a host future (a timer, a service call), the waker that future sees is
//! the plugin's: async-ffi turns the plugin's `Context` into an `FfiContext` whose waker vtable is
//! code *in the plugin* library. A tokio primitive that keeps a clone of it (a timer entry, the
//! task cell behind a `spawn_blocking` `JoinHandle`, a channel) calls into the plugin when it wakes
//! or drops that clone, and that can happen after the future completed: a blocking task marks
//! itself complete, the `JoinHandle` takes the output, the plugin's stop hook returns, the swap
//! closes the library, and only then does the blocking thread wake and drop the stored waker.
//! That was a SIGSEGV in unmapped code, seen in the hot-swap tests (a stop hook writing a blob).
//!
//! [`FutureExt::into_ffi`] wraps a host future so that everything inside it only ever sees a
//! host-made waker (a [`WakerRelay`]). The relay forwards wakes to the plugin's latest waker while
//! the future is alive, and forgets that waker (dropping it while the plugin is certainly still
//! loaded) as soon as the future completes or is dropped. A late wake finds nothing to call.
//!
//! Every `into_ffi` of the host should be this one: `use crate::host_future::FutureExt as _;`
//! instead of `berth_plugin_api::async_ffi::FutureExt`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use berth_plugin_api::FfiFuture;

/// The plugin's waker, behind a host-owned waker.
#[derive(Default)]
pub struct WakerRelay {
    plugin: Mutex<Option<Waker>>,
}

impl WakerRelay {
    /// Forgets (drops) the plugin's waker; later wakes do nothing.
    fn disarm(&self) {
        let taken = self.plugin.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(taken);
    }
}

impl Wake for WakerRelay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Under the lock: `disarm` cannot complete (and the plugin future that owns us cannot be
        // gone) while a wake is calling into the plugin.
        if let Some(w) = &*self.plugin.lock().unwrap_or_else(|e| e.into_inner()) {
            w.wake_by_ref();
        }
    }
}

/// A host future whose inner wakers are host-made (see the module docs).
pub struct Relayed<F> {
    fut: Pin<Box<F>>,
    relay: Arc<WakerRelay>,
    host: Waker,
}

impl<F: Future> Relayed<F> {
    pub fn new(fut: F) -> Self {
        let relay = Arc::new(WakerRelay::default());
        Relayed { fut: Box::pin(fut), host: Waker::from(relay.clone()), relay }
    }
}

impl<F: Future> Future for Relayed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        {
            let mut plugin = self.relay.plugin.lock().unwrap_or_else(|e| e.into_inner());
            if !plugin.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *plugin = Some(cx.waker().clone());
            }
        }
        let this = &mut *self;
        let mut host_cx = Context::from_waker(&this.host);
        let out = this.fut.as_mut().poll(&mut host_cx);
        if out.is_ready() {
            this.relay.disarm();
        }
        out
    }
}

impl<F> Drop for Relayed<F> {
    fn drop(&mut self) {
        self.relay.disarm();
    }
}

/// `into_ffi` for host futures handed to plugins: an `FfiFuture` around a [`Relayed`] future.
pub trait FutureExt: Future + Send + Sized + 'static {
    fn into_ffi(self) -> FfiFuture<Self::Output> {
        FfiFuture::new(Relayed::new(self))
    }
}

impl<F: Future + Send + 'static> FutureExt for F {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);
    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn wakes_reach_the_caller_while_alive_and_nothing_after() {
        let counter = Arc::new(Counting(AtomicUsize::new(0)));
        let outer = Waker::from(counter.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut fut = Relayed::new(rx);
        let mut cx = Context::from_waker(&outer);
        // `counter` itself and `outer` hold references before the relay sees the waker.
        let baseline = Arc::strong_count(&counter);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        let inner = fut.host.clone();
        assert_eq!(Arc::strong_count(&counter), baseline + 1, "the relay holds the caller's waker");
        drop(fut);
        assert_eq!(Arc::strong_count(&counter), baseline, "dropping the future drops the caller's waker");
        inner.wake_by_ref();
        let _ = tx.send(());
        assert_eq!(counter.0.load(Ordering::SeqCst), 0, "a late wake calls nothing");
    }

    #[tokio::test]
    async fn a_completed_future_forgets_the_callers_waker() {
        let counter = Arc::new(Counting(AtomicUsize::new(0)));
        let outer = Waker::from(counter.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        let mut fut = Relayed::new(rx);
        let mut cx = Context::from_waker(&outer);
        let baseline = Arc::strong_count(&counter);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        tx.send(7).unwrap();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "the send woke the caller through the relay");
        assert!(matches!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready(Ok(7))));
        assert_eq!(Arc::strong_count(&counter), baseline, "completion dropped the caller's waker");
    }
}
