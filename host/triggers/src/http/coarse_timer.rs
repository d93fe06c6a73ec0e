//! The timer behind the listeners' header-read timeout (the slowloris protection).
//!
//! hyper arms that timeout for every request head it waits for, and drops it once the head has
//! arrived: on a keep-alive connection that is one timer per request, almost never fired. With
//! tokio's timer each one is registered in and removed from the runtime's timer wheel (its lock,
//! its entry, and a wheel to look at on every park): `ops/bench/callgrind.sh` counts ~400
//! instructions a request more with it than with this timer (20,730 against 20,323; bare hyper
//! spends ~9,200 on the whole request).
//!
//! A header deadline of 30 s does not need millisecond precision. [`CoarseTimer`] keeps the
//! waiting sleeps in one slab; one task per timer looks at them every [`TICK`] and wakes those
//! whose deadline has passed. A sleep costs hyper's box, one slab slot while it waits (taken on its
//! first pending poll, given back on drop) and no clock read; it fires up to one tick late.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};

/// How often the waiting sleeps are looked at: how late a deadline may fire.
pub const TICK: Duration = Duration::from_millis(250);

/// A [`hyper::rt::Timer`] with [`TICK`] precision (see the module docs). Cloning shares it.
#[derive(Clone)]
pub struct CoarseTimer {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    waiting: Mutex<slab::Slab<Waiting>>,
}

struct Waiting {
    deadline: Instant,
    /// Set by the ticker once `deadline` has passed.
    fired: bool,
    waker: Option<Waker>,
}

impl Shared {
    fn waiting(&self) -> std::sync::MutexGuard<'_, slab::Slab<Waiting>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks every sleep whose deadline is `now` or earlier as fired; returns their wakers.
    fn expire(&self, now: Instant) -> Vec<Waker> {
        let mut waiting = self.waiting();
        waiting
            .iter_mut()
            .filter(|(_, w)| !w.fired && w.deadline <= now)
            .filter_map(|(_, w)| {
                w.fired = true;
                w.waker.take()
            })
            .collect()
    }
}

impl CoarseTimer {
    /// A timer and its ticker task, on the current tokio runtime. The task ends once the timer
    /// and every sleep made from it are dropped.
    pub fn start() -> Self {
        let shared = Arc::new(Shared::default());
        tokio::spawn(tick(Arc::downgrade(&shared)));
        CoarseTimer { shared }
    }

    /// Sleeps waiting now.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.shared.waiting().len()
    }
}

/// tokio's clock (the same as std's, except in tests with paused time).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn tick(shared: Weak<Shared>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        for waker in shared.expire(now()) {
            waker.wake();
        }
    }
}

impl Timer for CoarseTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(now() + duration)
    }

    fn now(&self) -> Instant {
        now()
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(CoarseSleep { shared: self.shared.clone(), deadline, key: None })
    }
}

/// One deadline of a [`CoarseTimer`].
struct CoarseSleep {
    shared: Arc<Shared>,
    deadline: Instant,
    /// Its slot among the waiting sleeps, from its first pending poll on.
    key: Option<usize>,
}

impl Sleep for CoarseSleep {}

impl Future for CoarseSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut waiting = this.shared.waiting();
        match this.key {
            Some(key) => {
                let w = &mut waiting[key];
                if w.fired {
                    return Poll::Ready(());
                }
                if !w.waker.as_ref().is_some_and(|old| old.will_wake(cx.waker())) {
                    w.waker = Some(cx.waker().clone());
                }
            }
            None => {
                let entry = Waiting { deadline: this.deadline, fired: false, waker: Some(cx.waker().clone()) };
                this.key = Some(waiting.insert(entry));
            }
        }
        Poll::Pending
    }
}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.shared.waiting().remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_sleep_fires_within_a_tick_of_its_deadline() {
        let timer = CoarseTimer::start();
        let started = tokio::time::Instant::now();
        let sleep = timer.sleep(Duration::from_secs(2));
        sleep.await;
        let took = started.elapsed();
        assert!(took >= Duration::from_secs(2), "fired early: {took:?}");
        assert!(took <= Duration::from_secs(2) + TICK, "fired more than a tick late: {took:?}");
        assert_eq!(timer.waiting(), 0, "a fired sleep that is dropped gives its slot back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_sleep_never_fires_and_frees_its_slot() {
        let timer = CoarseTimer::start();
        let mut sleep = timer.sleep(Duration::from_secs(1));
        assert!(futures_poll(&mut sleep).is_pending());
        assert_eq!(timer.waiting(), 1);
        drop(sleep);
        assert_eq!(timer.waiting(), 0);
        // A later sleep reusing the slot is not fired by the first one's deadline.
        let mut later = timer.sleep(Duration::from_secs(10));
        assert!(futures_poll(&mut later).is_pending());
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(futures_poll(&mut later).is_pending(), "fired at another sleep's deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn the_ticker_stops_with_its_timer() {
        let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
        let timer = CoarseTimer::start();
        let sleep = timer.sleep(Duration::from_secs(60));
        assert_eq!(tasks(), 1, "the ticker runs");
        drop(timer);
        tokio::time::sleep(TICK * 2).await;
        assert_eq!(tasks(), 1, "a sleep still waiting keeps the ticker");
        drop(sleep);
        tokio::time::sleep(TICK * 2).await;
        assert_eq!(tasks(), 0, "the ticker ended with its last sleep");
    }

    fn futures_poll(sleep: &mut Pin<Box<dyn Sleep>>) -> Poll<()> {
        let waker = Waker::noop();
        sleep.as_mut().poll(&mut Context::from_waker(waker))
    }
}
