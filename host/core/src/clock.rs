//! Time as the host reads it: wall-clock milliseconds for plugins, records and events, and the
//! [`Clock`] timers schedule by (a [`ManualClock`] in tests).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

/// Wall-clock time in Unix milliseconds (0 before 1970, which no real clock reports).
pub fn now_unix_ms() -> u64 {
    unix_ms(SystemTime::now())
}

/// `time` in Unix milliseconds (0 before 1970).
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `time` as RFC 3339 in UTC, to the second (`2026-12-01T20:15:00Z`).
pub fn rfc3339_seconds(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What timers read the time from and sleep on.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
    /// Resolves once `now() >= at`.
    fn sleep_until(&self, at: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn sleep_until(&self, at: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // Re-check after waking: the wall clock may have been adjusted while we slept.
            loop {
                let left = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(Duration::from_secs(60))).await;
            }
        })
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    moved: Notify,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Arc<Self> {
        Arc::new(ManualClock { now: Mutex::new(start), moved: Notify::new() })
    }
    /// Moves time forward and wakes every sleeper that is due.
    pub fn advance(&self, by: Duration) {
        *self.now.lock().expect("clock lock") += chrono::Duration::from_std(by).expect("duration fits");
        self.moved.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock lock")
    }
    fn sleep_until(&self, at: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            loop {
                let notified = self.moved.notified();
                if self.now() >= at {
                    return;
                }
                notified.await;
            }
        })
    }
}
