//! Timer, queue and blob triggers with their options, and the keyed `group! { .. }` form.

use berth::__private::TriggerDef;
use berth::{Context, Event, GroupContext, Result, StatusCode};

#[berth::timer("0 */5 * * * *", timezone = "Europe/Paris", overlap = true, timeout = "1m")]
async fn cron(_event: Event) {}

#[berth::timer(every = "30s")]
async fn every(_ctx: Context, _event: Event) -> Result<()> {
    Ok(())
}

#[berth::queue(stream = "orders", concurrency = 4, max_attempts = 5, timeout = "30s")]
async fn orders(_event: Event) -> StatusCode {
    StatusCode::NO_CONTENT
}

#[berth::queue("jobs")]
async fn jobs(_event: Event) {}

#[berth::queue(queue = "mail")]
async fn mail(_event: Event) {}

#[berth::blob(bucket = "uploads", events = ["created"], timeout = "2m")]
async fn uploaded(_event: Event) {}

#[berth::blob(bucket = "archive")]
async fn archived(_event: Event) {}

async fn setup(_ctx: GroupContext) -> Result<()> {
    Ok(())
}

async fn teardown(_ctx: GroupContext) -> Result<()> {
    Ok(())
}

berth::group! {
    name: "events",
    version: "2.0.0",
    functions: [cron, every, orders, jobs, mail, uploaded, archived],
    init: setup,
    stop: teardown,
    services: [queue("orders"), blob("uploads"), kv("state")],
}

fn main() {
    let def = berth_group();
    assert_eq!((def.name, def.version), ("events", "2.0.0"));
    assert!(def.init.is_some() && def.stop.is_some());
    assert_eq!(def.services.len(), 3);
    let triggers: Vec<String> = def.functions.iter().map(|f| format!("{} {:?}", f.timeout_ms, f.triggers[0])).collect();
    assert_eq!(
        triggers,
        [
            r#"60000 Timer { schedule: "0 */5 * * * *", timezone: "Europe/Paris", allow_overlap: true }"#,
            r#"0 Timer { schedule: "@every 30s", timezone: "", allow_overlap: false }"#,
            r#"30000 Queue { queue: "orders", concurrency: 4, max_attempts: 5 }"#,
            r#"0 Queue { queue: "jobs", concurrency: 0, max_attempts: 0 }"#,
            r#"0 Queue { queue: "mail", concurrency: 0, max_attempts: 0 }"#,
            r#"120000 Blob { bucket: "uploads", events: ["created"] }"#,
            r#"0 Blob { bucket: "archive", events: ["created", "deleted"] }"#,
        ]
    );
    assert!(matches!(def.functions[0].triggers[0], TriggerDef::Timer { .. }));
}
