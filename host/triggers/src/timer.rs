//! The timer trigger: cron expressions with seconds (`0 */5 * * * *`) in a time zone, or fixed
//! intervals (`@every 30s`). A run that is still going when the next one is due is skipped
//! unless the function allows overlap. Each run is logged and counted; the event id is
//! `<group>.<function>.<scheduled time>`, the same for every delivery of one scheduled run.
//!
//! Intervals are aligned to the Unix epoch (`@every 30s` fires at :00 and :30), so every host
//! with the same schedule has the same ticks. Replicas that share a claim store ([`TickClaims`],
//! `[timers] lock`) claim each tick before running it: each tick runs in exactly one replica, and
//! when a replica dies the others claim the next tick as they claim every tick — there is no
//! leader to hand over.
//!
//! Time comes from a [`Clock`], so tests drive schedules with a
//! [`ManualClock`](berth_core::clock::ManualClock) instead of waiting for minutes.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use prometheus::IntCounterVec;
use tokio::task::JoinHandle;

use berth_core::clock::Clock;
use berth_core::dispatcher::{EventBinding, EventData};
use berth_core::loader::TriggerSpec;
use berth_core::trigger::{RunnerContext, Trigger};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    Cron(Box<cron::Schedule>, Tz),
    Every(Duration),
}

impl Schedule {
    /// Parses `0 */5 * * * *` (6 or 7 fields, seconds first) or `@every 30s`, in `timezone`
    /// (an IANA name; empty = UTC).
    pub fn parse(schedule: &str, timezone: &str) -> Result<Schedule, String> {
        if let Some(every) = schedule.strip_prefix("@every ") {
            let d = humantime_serde::re::humantime::parse_duration(every.trim())
                .map_err(|e| format!("bad interval `{every}`: {e}"))?;
            if d < Duration::from_millis(10) {
                return Err(format!("interval `{every}` is too short (at least 10ms)"));
            }
            return Ok(Schedule::Every(d));
        }
        let tz: Tz = if timezone.is_empty() {
            Tz::UTC
        } else {
            timezone
                .parse()
                .map_err(|_| format!("unknown time zone `{timezone}` (use an IANA name like Europe/Paris)"))?
        };
        let cron = cron::Schedule::from_str(schedule).map_err(|e| {
            format!("bad cron expression `{schedule}`: {e} (6 or 7 fields, seconds first: `0 */5 * * * *`)")
        })?;
        Ok(Schedule::Cron(Box::new(cron), tz))
    }

    /// The first run strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron(s, tz) => s.after(&after.with_timezone(tz)).next().map(|t| t.with_timezone(&Utc)),
            Schedule::Every(d) => {
                let step = i64::try_from(d.as_millis()).ok()?.max(1);
                let next = (after.timestamp_millis().div_euclid(step) + 1) * step;
                DateTime::from_timestamp_millis(next)
            }
        }
    }
}

/// A claim's future: `Ok(true)` when this host got the tick.
pub type ClaimFuture<'a> = Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>>;

/// Where replicas claim scheduled runs, so that each tick runs once across them.
pub trait TickClaims: Send + Sync {
    /// Claims `key` for `ttl`; true when this host got it, false when another one had.
    fn claim(&self, key: String, ttl: Duration) -> ClaimFuture<'_>;
    /// For logs: where claims are made.
    fn describe(&self) -> String;
}

/// How long a tick's claim is kept: long past any clock skew or late wake-up between replicas.
fn claim_ttl(due: DateTime<Utc>, next: Option<DateTime<Utc>>) -> Duration {
    let period = next.and_then(|n| (n - due).to_std().ok()).unwrap_or_default();
    (period * 2).max(Duration::from_secs(300))
}

/// How long one claim may take before the tick is given up (not run here).
#[cfg(any(feature = "redis", feature = "postgres"))]
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(2);

/// Who holds a claim, for whoever reads the store: the pod (`HOSTNAME`) and process.
#[cfg(any(feature = "redis", feature = "postgres"))]
fn claim_owner() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "berth".into());
    format!("{host}/{}", std::process::id())
}

/// Claims in Redis: `SET <prefix>:timer:<group>:<function>:<tick ms> <owner> NX PX <ttl>`.
#[cfg(feature = "redis")]
pub struct RedisClaims {
    client: redis::Client,
    url: String,
    conn: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    owner: String,
}

#[cfg(feature = "redis")]
impl RedisClaims {
    pub fn new(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("`timers.lock`: bad Redis URL: {e}"))?;
        Ok(RedisClaims {
            client,
            url: berth_core::error::shown_url(url),
            conn: tokio::sync::OnceCell::new(),
            owner: claim_owner(),
        })
    }

    async fn try_claim(&self, key: String, ttl: Duration) -> Result<bool, String> {
        let conn = self
            .conn
            .get_or_try_init(|| {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CLAIM_TIMEOUT))
                    .set_response_timeout(Some(CLAIM_TIMEOUT))
                    .set_number_of_retries(1);
                redis::aio::ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.url))?;
        let mut conn = conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&self.owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("claiming `{key}` in {}: {e}", self.url))?;
        Ok(set.is_some())
    }
}

/// Claims in PostgreSQL: a row per tick in `berth_timer_claims` (created when missing), taken
/// by `INSERT … ON CONFLICT DO UPDATE … WHERE` the old claim expired; expired rows are deleted
/// now and then.
#[cfg(feature = "postgres")]
pub struct PostgresClaims {
    pool: sqlx::PgPool,
    url: String,
    ready: tokio::sync::OnceCell<()>,
    owner: String,
    claims: std::sync::atomic::AtomicU64,
}

#[cfg(feature = "postgres")]
impl PostgresClaims {
    /// Expired claims are deleted once every this many claims.
    const CLEAN_EVERY: u64 = 1000;

    /// Checks `url` without connecting (and without a runtime: config validation calls it).
    pub fn check_url(url: &str) -> Result<sqlx::postgres::PgConnectOptions, String> {
        url.parse().map_err(|e| format!("`timers.lock`: bad PostgreSQL URL: {e}"))
    }

    /// Claims in the database at `url`; connects on the first claim. Call it on a runtime.
    pub fn new(url: &str) -> Result<Self, String> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(CLAIM_TIMEOUT)
            .connect_lazy_with(Self::check_url(url)?);
        Ok(PostgresClaims {
            pool,
            url: berth_core::error::shown_url(url),
            ready: tokio::sync::OnceCell::new(),
            owner: claim_owner(),
            claims: std::sync::atomic::AtomicU64::new(0),
        })
    }

    async fn try_claim(&self, key: String, ttl: Duration) -> Result<bool, String> {
        let failed = |e: sqlx::Error| format!("claiming `{key}` in {}: {e}", self.url);
        self.ready
            .get_or_try_init(|| async {
                sqlx::query(
                    "CREATE TABLE IF NOT EXISTS berth_timer_claims \
                     (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)",
                )
                .execute(&self.pool)
                .await
                .map(|_| ())
            })
            .await
            .map_err(failed)?;
        let done = sqlx::query(
            "INSERT INTO berth_timer_claims (key, owner, expires_at) \
             VALUES ($1, $2, now() + $3 * interval '1 millisecond') \
             ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at \
             WHERE berth_timer_claims.expires_at < now()",
        )
        .bind(&key)
        .bind(&self.owner)
        .bind(ttl.as_millis() as i64)
        .execute(&self.pool)
        .await
        .map_err(failed)?;
        if self.claims.fetch_add(1, Ordering::Relaxed) % Self::CLEAN_EVERY == Self::CLEAN_EVERY - 1 {
            let _ = sqlx::query("DELETE FROM berth_timer_claims WHERE expires_at < now()").execute(&self.pool).await;
        }
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(feature = "postgres")]
impl TickClaims for PostgresClaims {
    fn claim(&self, key: String, ttl: Duration) -> ClaimFuture<'_> {
        within(&self.url, self.try_claim(key, ttl))
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

/// A claim that gives up after [`CLAIM_TIMEOUT`] (the tick is then not run here).
#[cfg(any(feature = "redis", feature = "postgres"))]
fn within<'a>(store: &'a str, claim: impl Future<Output = Result<bool, String>> + Send + 'a) -> ClaimFuture<'a> {
    Box::pin(async move {
        tokio::time::timeout(CLAIM_TIMEOUT, claim)
            .await
            .unwrap_or_else(|_| Err(format!("{store} did not answer within {CLAIM_TIMEOUT:?}")))
    })
}

#[cfg(feature = "redis")]
impl TickClaims for RedisClaims {
    fn claim(&self, key: String, ttl: Duration) -> ClaimFuture<'_> {
        within(&self.url, self.try_claim(key, ttl))
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

/// The timer trigger kind.
pub struct TimerTrigger {
    clock: Arc<dyn Clock>,
    runs: IntCounterVec,
    claims: Option<(Arc<dyn TickClaims>, String)>,
}

impl TimerTrigger {
    pub fn new(clock: Arc<dyn Clock>, metrics: &berth_core::metrics::Metrics) -> Self {
        TimerTrigger { clock, runs: metrics.timer_runs(), claims: None }
    }

    /// Claims every tick in `claims` (keys under `prefix`) before running it.
    pub fn with_claims(mut self, claims: Arc<dyn TickClaims>, prefix: &str) -> Self {
        tracing::info!(store = %claims.describe(), prefix, "timer ticks are claimed across replicas");
        self.claims = Some((claims, prefix.to_owned()));
        self
    }
}

impl Trigger for TimerTrigger {
    fn kind(&self) -> &'static str {
        "timer"
    }

    fn start(&self, binding: &EventBinding, ctx: RunnerContext) -> Result<JoinHandle<()>, String> {
        let TriggerSpec::Timer { schedule, timezone, allow_overlap } = &binding.trigger else {
            return Err("not a timer binding".into());
        };
        let parsed = Schedule::parse(schedule, timezone)?;
        let runner = TimerRunner {
            binding: binding.clone(),
            schedule: parsed,
            description: schedule.clone(),
            allow_overlap: *allow_overlap,
            clock: self.clock.clone(),
            runs: self.runs.clone(),
            claims: self.claims.clone(),
        };
        Ok(tokio::spawn(runner.run(ctx)))
    }
}

struct TimerRunner {
    binding: EventBinding,
    schedule: Schedule,
    description: String,
    allow_overlap: bool,
    clock: Arc<dyn Clock>,
    runs: IntCounterVec,
    claims: Option<(Arc<dyn TickClaims>, String)>,
}

impl TimerRunner {
    /// Whether this host runs the tick due at `due`: always without a claim store; else when
    /// its claim wins. A store that fails means the tick is not run here (never twice).
    async fn claimed(&self, due: DateTime<Utc>) -> bool {
        let Some((claims, prefix)) = &self.claims else { return true };
        let key = format!("{prefix}:timer:{}:{}:{}", self.binding.group, self.binding.function, due.timestamp_millis());
        let ttl = claim_ttl(due, self.schedule.next_after(due));
        match claims.claim(key, ttl).await {
            Ok(true) => true,
            Ok(false) => {
                self.count("elsewhere");
                tracing::debug!(group = %self.binding.group, function = %self.binding.function, scheduled = %due.to_rfc3339(),
                    "timer tick claimed by another replica");
                false
            }
            Err(e) => {
                self.count("unclaimed");
                tracing::warn!(group = %self.binding.group, function = %self.binding.function, scheduled = %due.to_rfc3339(),
                    error = %e, "timer tick not run: it could not be claimed (the claim store is unreachable)");
                false
            }
        }
    }

    fn count(&self, outcome: &str) {
        self.runs.with_label_values(&[&self.binding.group, &self.binding.function, outcome]).inc();
    }

    async fn run(self, mut ctx: RunnerContext) {
        let me = Arc::new(self);
        let running = Arc::new(AtomicBool::new(false));
        let mut in_flight: Vec<JoinHandle<()>> = Vec::new();
        let mut last = me.clock.now();
        loop {
            let Some(due) = me.schedule.next_after(last) else {
                tracing::info!(group = %me.binding.group, function = %me.binding.function, "timer schedule has no further runs");
                break;
            };
            tokio::select! {
                _ = me.clock.sleep_until(due) => {}
                _ = ctx.stop.changed() => break,
            }
            last = due;
            in_flight.retain(|t| !t.is_finished());
            if !me.allow_overlap && running.load(Ordering::Acquire) {
                me.count("skipped");
                tracing::warn!(group = %me.binding.group, function = %me.binding.function, scheduled = %due.to_rfc3339(),
                    "timer run skipped: the previous run is still going (set overlap = true to allow)");
                continue;
            }
            let (me2, running2, dispatcher) = (me.clone(), running.clone(), ctx.dispatcher.clone());
            in_flight.push(tokio::spawn(async move {
                // A tick this host is not running yet may be claimed (and run) by another one; a
                // claim in flight is not a run in flight.
                if !me2.claimed(due).await {
                    return;
                }
                if running2.swap(true, Ordering::AcqRel) && !me2.allow_overlap {
                    me2.count("skipped");
                    tracing::warn!(group = %me2.binding.group, function = %me2.binding.function, scheduled = %due.to_rfc3339(),
                        "timer run skipped: the previous run is still going (set overlap = true to allow)");
                    return;
                }
                let scheduled = due.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let event = EventData {
                    id: format!("{}.{}.{}", me2.binding.group, me2.binding.function, due.timestamp_millis()),
                    source: format!("berth/timer/{}/{}", me2.binding.group, me2.binding.function),
                    ty: "berth.timer.fired".into(),
                    time: Some(scheduled.clone()),
                    datacontenttype: Some("application/json".into()),
                    data: serde_json::json!({ "scheduled": scheduled, "schedule": me2.description }).to_string().into_bytes(),
                    ..Default::default()
                };
                match dispatcher.deliver(&me2.binding.group, &me2.binding.function, "timer", event).await {
                    Ok(_) => {
                        me2.count("ok");
                        tracing::info!(group = %me2.binding.group, function = %me2.binding.function, %scheduled, "timer run finished");
                    }
                    Err(e) => {
                        me2.count("failed");
                        tracing::warn!(group = %me2.binding.group, function = %me2.binding.function, %scheduled, error = %e, "timer run failed");
                    }
                }
                running2.store(false, Ordering::Release);
            }));
        }
        for t in in_flight {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::clock::ManualClock;
    use chrono::TimeZone;

    #[test]
    fn cron_with_seconds_and_time_zones() {
        let s = Schedule::parse("0 30 9 * * *", "Europe/Paris").unwrap();
        // 2026-01-15 08:00 UTC = 09:00 in Paris (CET): the next 09:30 Paris is 08:30 UTC.
        let after = Utc.with_ymd_and_hms(2026, 1, 15, 8, 0, 0).unwrap();
        assert_eq!(s.next_after(after), Some(Utc.with_ymd_and_hms(2026, 1, 15, 8, 30, 0).unwrap()));
        // In July (CEST, UTC+2) the same schedule is 07:30 UTC.
        let after = Utc.with_ymd_and_hms(2026, 7, 15, 7, 0, 0).unwrap();
        assert_eq!(s.next_after(after), Some(Utc.with_ymd_and_hms(2026, 7, 15, 7, 30, 0).unwrap()));
        let every = Schedule::parse("@every 90s", "").unwrap();
        assert_eq!(every.next_after(after), Some(after + chrono::Duration::seconds(90)));
        // Intervals are aligned to the epoch: every replica has the same ticks.
        let odd = after + chrono::Duration::milliseconds(1234);
        assert_eq!(every.next_after(odd), Some(after + chrono::Duration::seconds(90)));
        let ms = Schedule::parse("@every 100ms", "").unwrap();
        assert_eq!(ms.next_after(odd), Some(after + chrono::Duration::milliseconds(1300)));
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        assert!(Schedule::parse("*/5 * * * *", "").unwrap_err().contains("seconds first"));
        assert!(Schedule::parse("0 * * * * *", "Mars/Olympus").unwrap_err().contains("unknown time zone"));
        assert!(Schedule::parse("@every soon", "").unwrap_err().contains("bad interval"));
    }

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_when_advanced() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let clock = ManualClock::new(start);
        let c2 = clock.clone();
        let waiter = tokio::spawn(async move { c2.sleep_until(start + chrono::Duration::seconds(5)).await });
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(3));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        clock.advance(Duration::from_secs(2));
        tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
    }
}
