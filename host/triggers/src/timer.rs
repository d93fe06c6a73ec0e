//! The timer trigger: cron expressions with seconds (`0 */5 * * * *`) in a time zone, or fixed
//! intervals (`@every 30s`). A run that is still going when the next one is due is skipped
//! unless the function allows overlap. Each run is logged and counted; the event id is
//! `<group>.<function>.<scheduled time>`, the same for every delivery of one scheduled run.
//!
//! Time comes from a [`Clock`], so tests drive schedules with a
//! [`ManualClock`](berth_core::clock::ManualClock) instead of waiting for minutes.

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
            Schedule::Every(d) => Some(after + chrono::Duration::from_std(*d).ok()?),
        }
    }
}

/// The timer trigger kind.
pub struct TimerTrigger {
    clock: Arc<dyn Clock>,
    runs: IntCounterVec,
}

impl TimerTrigger {
    pub fn new(clock: Arc<dyn Clock>, metrics: &berth_core::metrics::Metrics) -> Self {
        TimerTrigger { clock, runs: metrics.timer_runs() }
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
}

impl TimerRunner {
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
            running.store(true, Ordering::Release);
            let (me2, running2, dispatcher) = (me.clone(), running.clone(), ctx.dispatcher.clone());
            in_flight.push(tokio::spawn(async move {
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
