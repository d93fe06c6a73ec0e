//! Failed-token limiting for every surface that checks a token (the admin API, direct invoke,
//! `[middleware.auth]`): after `max_failures` wrong or missing tokens from one client within a
//! `window`, that client's further attempts on that surface answer **429** `too_many_attempts`
//! with `retry-after` until the window ends, *without* the token being looked at, so guessing
//! cannot go on. A success does not reset anyone's count (an attacker holding one valid token
//! gains nothing, and nobody else's count moves).
//!
//! - The client is the TCP peer's address (no `X-Forwarded-For`: nothing in front of Berth is
//!   trusted to say who the caller is). IPv6 peers count per /64, the block one subscriber
//!   usually holds, so walking the addresses of one's own prefix does not reset the count;
//!   IPv4-mapped IPv6 peers count as their IPv4 address.
//! - Fixed windows, opened by a client's first failure: at most `max_failures` checked guesses
//!   per window per client and surface (2 × within any span of one window, at its boundary).
//! - Bounded memory: at most `max_clients` (client, surface) entries; a new one past it evicts
//!   the oldest window. An attacker with that many addresses can evict a throttled entry early;
//!   with 10,000 entries (about 1 MB) that takes 10,000 addresses (or /64s) per window.
//! - The success path takes no lock while no client has a failure on record (one atomic load);
//!   otherwise one short mutex lookup. Routes without a token check never reach this module.
//!
//! Metrics: `berth_auth_failures_total{surface}`, `berth_auth_throttled_total{surface}`.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{header, HeaderValue, Response, StatusCode};
use prometheus::core::{AtomicU64 as PromAtomicU64, GenericCounter};
use prometheus::{IntCounterVec, Opts};

use crate::error::{json_error, Body};
use crate::metrics::Metrics;

/// A token-checked surface, counted apart from the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Surface {
    /// The admin API's listener (`[admin] token`).
    Admin,
    /// `/invoke/...` (`server.invoke_token`).
    Invoke,
    /// A route behind `[middleware.auth]` (or `[groups.middleware.auth]`).
    Middleware,
}

impl Surface {
    const ALL: [Surface; 3] = [Surface::Admin, Surface::Invoke, Surface::Middleware];

    /// The `surface` label of the metrics.
    pub fn label(self) -> &'static str {
        match self {
            Surface::Admin => "admin",
            Surface::Invoke => "invoke",
            Surface::Middleware => "middleware",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How many failures are tolerated, over what window, for how many clients at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimitSettings {
    /// Failures per client and surface within `window` before attempts are refused; 0 turns the
    /// limit off (failures are still counted in the metric).
    pub max_failures: u32,
    pub window: Duration,
    /// Clients (per surface) remembered at once; the oldest window is dropped past it.
    pub max_clients: usize,
}

impl Default for AuthLimitSettings {
    fn default() -> Self {
        AuthLimitSettings { max_failures: 10, window: Duration::from_secs(60), max_clients: 10_000 }
    }
}

/// A refused attempt: the client has used up its failures for this window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Until the window ends.
    pub retry_after: Duration,
}

impl Throttled {
    /// Whole seconds until the window ends (at least 1), as `retry-after` says it.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }

    /// The 429 answer: `too_many_attempts`, with `retry-after`.
    pub fn response(&self, surface: Surface, request_id: Option<&str>) -> Response<Body> {
        let secs = self.retry_after_secs();
        let message = format!(
            "too many failed token attempts on the {} surface from this address; try again in {secs} s",
            surface.label()
        );
        let mut res = json_error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", &message, request_id);
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        res
    }
}

/// Who a failure is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    surface: Surface,
    client: IpAddr,
}

/// The client an address counts as: IPv4 as it is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64.
fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// When the window opened (on the limiter's clock).
    opened: Duration,
    failures: u32,
}

#[derive(Default)]
struct Table {
    entries: HashMap<Key, Entry>,
    /// Windows in the order they opened (each entry's, plus ones already dropped from
    /// `entries`, skipped when they reach the front).
    order: VecDeque<(Key, Duration)>,
}

/// The failure counts of every token-checked surface; one per host, shared by its listeners.
pub struct AuthLimiter {
    settings: AuthLimitSettings,
    table: Mutex<Table>,
    /// `table.entries.len()`, read without the lock by the success path.
    tracked: AtomicUsize,
    started: Instant,
    /// How far [`AuthLimiter::advance`] moved this limiter's clock, in nanoseconds.
    skew_nanos: AtomicU64,
    failures: [GenericCounter<PromAtomicU64>; 3],
    throttled: [GenericCounter<PromAtomicU64>; 3],
}

impl std::fmt::Debug for AuthLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLimiter")
            .field("settings", &self.settings)
            .field("tracked", &self.tracked.load(Ordering::Relaxed))
            .finish()
    }
}

impl AuthLimiter {
    /// A limiter counting into `metrics` (`berth_auth_failures_total`, `berth_auth_throttled_total`).
    pub fn new(settings: AuthLimitSettings, metrics: &Metrics) -> Self {
        let failures = metrics.register_once(|| {
            IntCounterVec::new(
                Opts::new("berth_auth_failures_total", "Requests refused for a missing or wrong token, by surface"),
                &["surface"],
            )
            .expect("valid metric")
        });
        let throttled = metrics.register_once(|| {
            IntCounterVec::new(
                Opts::new(
                    "berth_auth_throttled_total",
                    "Token attempts refused unchecked (429) after too many failures from the client, by surface",
                ),
                &["surface"],
            )
            .expect("valid metric")
        });
        let per_surface = |family: &IntCounterVec| Surface::ALL.map(|s| family.with_label_values(&[s.label()]));
        AuthLimiter {
            settings: AuthLimitSettings { max_clients: settings.max_clients.max(1), ..settings },
            table: Mutex::default(),
            tracked: AtomicUsize::new(0),
            started: Instant::now(),
            skew_nanos: AtomicU64::new(0),
            failures: per_surface(&failures),
            throttled: per_surface(&throttled),
        }
    }

    pub fn settings(&self) -> AuthLimitSettings {
        self.settings
    }

    /// Moves this limiter's clock forward by `by` (tests: a window ends without waiting for it).
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.skew_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn now(&self) -> Duration {
        self.started.elapsed() + Duration::from_nanos(self.skew_nanos.load(Ordering::Relaxed))
    }

    /// Whether `peer` may have its token checked on `surface` now. Call it before checking.
    pub fn check(&self, surface: Surface, peer: IpAddr) -> Result<(), Throttled> {
        if self.settings.max_failures == 0 || self.tracked.load(Ordering::Acquire) == 0 {
            return Ok(());
        }
        let key = Key { surface, client: client_of(peer) };
        let now = self.now();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = table.entries.get(&key).copied() else { return Ok(()) };
        let ends = entry.opened + self.settings.window;
        if ends <= now {
            table.entries.remove(&key);
            self.tracked.store(table.entries.len(), Ordering::Release);
            return Ok(());
        }
        drop(table);
        if entry.failures >= self.settings.max_failures {
            self.throttled[surface.index()].inc();
            return Err(Throttled { retry_after: ends - now });
        }
        Ok(())
    }

    /// Counts a missing or wrong token from `peer` on `surface`.
    pub fn failed(&self, surface: Surface, peer: IpAddr) {
        self.failures[surface.index()].inc();
        if self.settings.max_failures == 0 {
            return;
        }
        let key = Key { surface, client: client_of(peer) };
        let now = self.now();
        let window = self.settings.window;
        let mut guard = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let table = &mut *guard;
        // Windows that ended, oldest first; a queued window whose entry has been replaced or
        // dropped since is skipped.
        while let Some(&(old, opened)) = table.order.front() {
            if opened + window > now {
                break;
            }
            table.order.pop_front();
            if table.entries.get(&old).is_some_and(|e| e.opened == opened) {
                table.entries.remove(&old);
            }
        }
        match table.entries.get_mut(&key) {
            Some(entry) if entry.opened + window > now => entry.failures = entry.failures.saturating_add(1),
            _ => {
                while table.entries.len() >= self.settings.max_clients {
                    let Some((old, opened)) = table.order.pop_front() else { break };
                    if table.entries.get(&old).is_some_and(|e| e.opened == opened) {
                        table.entries.remove(&old);
                    }
                }
                table.entries.insert(key, Entry { opened: now, failures: 1 });
                table.order.push_back((key, now));
            }
        }
        self.tracked.store(table.entries.len(), Ordering::Release);
    }

    /// Clients (per surface) with a failure on record.
    pub fn tracked(&self) -> usize {
        self.tracked.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn limiter(max_failures: u32, max_clients: usize) -> (AuthLimiter, Metrics) {
        let metrics = Metrics::new();
        let settings = AuthLimitSettings { max_failures, window: Duration::from_secs(60), max_clients };
        (AuthLimiter::new(settings, &metrics), metrics)
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn counted(metrics: &Metrics, name: &str, surface: &str) -> f64 {
        let text = metrics.render();
        let line = format!("{name}{{surface=\"{surface}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&line)).map(|v| v.parse().expect("a number")).unwrap_or(0.0)
    }

    #[test]
    fn after_max_failures_a_client_is_refused_until_the_window_ends() {
        let (l, metrics) = limiter(3, 100);
        for _ in 0..3 {
            assert_eq!(l.check(Surface::Admin, ip(1)), Ok(()));
            l.failed(Surface::Admin, ip(1));
        }
        let refused = l.check(Surface::Admin, ip(1)).expect_err("the fourth attempt is refused");
        assert!(refused.retry_after <= Duration::from_secs(60) && refused.retry_after > Duration::from_secs(59));
        assert_eq!(refused.retry_after_secs(), 60);
        assert_eq!(counted(&metrics, "berth_auth_failures_total", "admin"), 3.0);
        assert_eq!(counted(&metrics, "berth_auth_throttled_total", "admin"), 1.0);
        l.advance(Duration::from_secs(59));
        let refused = l.check(Surface::Admin, ip(1)).expect_err("still within the window");
        assert_eq!(refused.retry_after_secs(), 1);
        l.advance(Duration::from_secs(1));
        assert_eq!(l.check(Surface::Admin, ip(1)), Ok(()), "the window has ended");
        assert_eq!(l.tracked(), 0, "an ended window is forgotten");
    }

    #[test]
    fn other_clients_and_other_surfaces_keep_their_own_counts() {
        let (l, _) = limiter(2, 100);
        l.failed(Surface::Invoke, ip(1));
        l.failed(Surface::Invoke, ip(1));
        assert!(l.check(Surface::Invoke, ip(1)).is_err());
        assert_eq!(l.check(Surface::Invoke, ip(2)), Ok(()), "another address");
        assert_eq!(l.check(Surface::Admin, ip(1)), Ok(()), "another surface");
        assert_eq!(l.check(Surface::Middleware, ip(1)), Ok(()), "another surface");
        l.failed(Surface::Invoke, ip(2));
        assert_eq!(l.check(Surface::Invoke, ip(2)), Ok(()), "one failure of two");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let (l, _) = limiter(2, 100);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        l.failed(Surface::Middleware, a);
        l.failed(Surface::Middleware, b);
        assert!(l.check(Surface::Middleware, a).is_err(), "the same /64");
        assert_eq!(l.check(Surface::Middleware, other), Ok(()), "another /64");
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 7).to_ipv6_mapped());
        l.failed(Surface::Middleware, mapped);
        l.failed(Surface::Middleware, ip(7));
        assert!(l.check(Surface::Middleware, ip(7)).is_err());
        assert_eq!(client_of(IpAddr::V6(Ipv6Addr::LOCALHOST)), IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    }

    #[test]
    fn the_table_is_bounded_and_drops_the_oldest_window() {
        let (l, _) = limiter(1, 3);
        for last in 1..=3 {
            l.failed(Surface::Admin, ip(last));
            l.advance(Duration::from_millis(10));
        }
        assert_eq!(l.tracked(), 3);
        for last in 4..=200 {
            l.failed(Surface::Admin, ip(last));
        }
        assert_eq!(l.tracked(), 3, "never more than max_clients");
        assert!(l.table.lock().unwrap().order.len() <= 3, "the order queue is bounded too");
        assert_eq!(l.check(Surface::Admin, ip(1)), Ok(()), "the oldest was dropped");
        assert!(l.check(Surface::Admin, ip(200)).is_err(), "the newest is kept");
    }

    #[test]
    fn a_window_reopens_after_it_ended_and_stale_order_entries_are_skipped() {
        let (l, _) = limiter(2, 2);
        l.failed(Surface::Admin, ip(1));
        l.advance(Duration::from_secs(61));
        // The ended window is dropped by `check`, its queue slot stays until it is pruned.
        assert_eq!(l.check(Surface::Admin, ip(1)), Ok(()));
        l.failed(Surface::Admin, ip(1));
        l.failed(Surface::Admin, ip(2));
        l.failed(Surface::Admin, ip(1));
        assert!(l.check(Surface::Admin, ip(1)).is_err(), "a fresh window counts from 0");
        assert_eq!(l.check(Surface::Admin, ip(2)), Ok(()));
        assert!(l.table.lock().unwrap().order.len() <= 2);
    }

    #[test]
    fn zero_turns_the_limit_off_but_failures_are_still_counted() {
        let (l, metrics) = limiter(0, 10);
        for _ in 0..50 {
            l.failed(Surface::Invoke, ip(1));
        }
        assert_eq!(l.check(Surface::Invoke, ip(1)), Ok(()));
        assert_eq!(l.tracked(), 0);
        assert_eq!(counted(&metrics, "berth_auth_failures_total", "invoke"), 50.0);
    }

    #[test]
    fn the_answer_is_a_429_with_retry_after() {
        let t = Throttled { retry_after: Duration::from_millis(2_100) };
        let res = t.response(Surface::Admin, Some("r-1"));
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "3");
        assert_eq!(Throttled { retry_after: Duration::ZERO }.retry_after_secs(), 1);
        assert_eq!(Throttled { retry_after: Duration::from_secs(5) }.retry_after_secs(), 5);
    }
}
