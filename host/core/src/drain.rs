//! In-flight calls of one group instance, and waiting for an old instance to drain.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::group::GroupInstance;

/// How often a drain re-checks references that no counter reports (a request between its route
/// lookup and its call, a trigger holding a looked-up entry).
const DRAIN_POLL: Duration = Duration::from_millis(2);

/// Calls executing in one group instance. Every call goes through [`crate::call::call`], which
/// holds an [`InflightCall`] for its duration.
#[derive(Debug, Default)]
pub struct InflightCalls {
    count: AtomicUsize,
    idle: Notify,
}

/// One call in flight; dropping it ends the call.
#[derive(Debug)]
pub struct InflightCall<'a>(&'a InflightCalls);

impl InflightCalls {
    /// Counts a call until the returned guard drops.
    pub fn enter(&self) -> InflightCall<'_> {
        self.count.fetch_add(1, Ordering::AcqRel);
        InflightCall(self)
    }

    /// Calls in flight right now.
    pub fn current(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }
}

impl Drop for InflightCall<'_> {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Waits until nothing but `group` itself refers to the instance: no routing table, dispatcher
/// entry, export or request still holds it, so no call is in flight and none can start. Returns
/// false when `grace` ran out first.
///
/// The strong count is the exact condition (a request that looked up its route but has not called
/// yet holds a `FunctionEntry`, hence the group); the in-flight counter only wakes the wait early.
pub async fn drained(group: &Arc<GroupInstance>, grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    loop {
        let idle = group.calls.idle.notified();
        if Arc::strong_count(group) == 1 {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let wait = DRAIN_POLL.min(deadline - now);
        let _ = tokio::time::timeout(wait, idle).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_until_their_guard_drops() {
        let calls = InflightCalls::default();
        let a = calls.enter();
        let b = calls.enter();
        assert_eq!(calls.current(), 2);
        drop(a);
        assert_eq!(calls.current(), 1);
        drop(b);
        assert_eq!(calls.current(), 0);
    }
}
