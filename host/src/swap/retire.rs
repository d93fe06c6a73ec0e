//! Retiring a replaced version: drain → stop hook → drop everything → the library closes →
//! check `/proc/self/maps` that it really went.
//!
//! Order matters: the stop hook runs only once nothing can call the instance any more, and every
//! object the plugin made (its group object, futures, responses) is dropped before its library is
//! closed; `GroupInstance` drops the group before its `Arc<LoadedPlugin>`, and the last
//! `Arc<LoadedPlugin>` closes the library.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{drain, Deployments, Retiring};

/// Pause between the stop hook and closing the library (see step 3 of [`retire`]).
const SETTLE: Duration = Duration::from_millis(50);
use berth_core::GroupInstance;

/// Starts retiring `old` in the background; [`super::Deployments::wait_retired`] waits for it.
pub fn spawn(d: Arc<Deployments>, old: Arc<GroupInstance>) {
    let id = d.next_id.fetch_add(1, Ordering::Relaxed);
    d.retiring.lock().expect("retiring lock").push(Retiring {
        id,
        name: old.name.clone(),
        version: old.version.clone(),
        sha256: old.sha256().to_owned(),
        group: Arc::downgrade(&old),
        since: std::time::Instant::now(),
    });
    let task = tokio::spawn(retire(d.clone(), old, id));
    let mut tasks = d.retirements.lock().expect("retirements lock");
    tasks.retain(|t| !t.is_finished());
    tasks.push(task);
}

async fn retire(d: Arc<Deployments>, old: Arc<GroupInstance>, id: u64) {
    let grace = d.config.server.shutdown_grace;
    let started = Instant::now();
    let (name, version) = (old.name.clone(), old.version.clone());

    // 1. Drain: every routing table, dispatcher entry and request that could reach it is gone.
    if !drain::drained(&old, grace).await {
        tracing::warn!(
            group = %name,
            version,
            inflight = old.calls.current(),
            references = Arc::strong_count(&old) - 1,
            grace_secs = grace.as_secs_f64(),
            "the replaced version did not drain within the grace period; running its stop hook anyway"
        );
    }
    let drained_ms = started.elapsed().as_millis() as u64;

    // 2. Stop hook.
    if tokio::time::timeout(grace, old.shutdown()).await.is_err() {
        tracing::warn!(group = %name, version, "the stop hook did not finish within the grace period; dropped it");
    }

    // 3. Let wake-ups of host futures that just completed land first. Host futures made through
    //    `host_future::FutureExt` never keep a plugin waker past their own life, but those still
    //    made with async-ffi's own `into_ffi` can be woken by another thread (a blocking-pool task,
    //    a connection driver) a moment after they completed; that wake runs plugin code.
    tokio::time::sleep(SETTLE).await;

    // 4. Drop everything; the last reference closes the library (on the swap worker: `dlclose`
    //    takes the dynamic loader's lock and runs the library's finalizers).
    let Some(library) = old.library() else {
        // A worker's version: its stop hook ran in the worker, which has exited; nothing of it
        // is mapped here.
        drop(old);
        d.metrics.versions_loaded.dec();
        d.retiring.lock().expect("retiring lock").retain(|r| r.id != id);
        tracing::info!(group = %name, version, drained_ms, "replaced version retired (its worker exited)");
        return;
    };
    let plugin = Arc::downgrade(library);
    let copy = library.copy.canonicalize().unwrap_or_else(|_| library.copy.clone());
    let _ = d.runtime.worker.run(move || drop(old)).await;
    // Calls still running past the grace period hold the instance; their own timeouts end them.
    let mut wait = Duration::from_millis(1);
    let mut warned = false;
    while plugin.strong_count() > 0 {
        if !warned && started.elapsed() > grace * 2 {
            warned = true;
            tracing::warn!(group = %name, version, "the replaced version is still referenced; its library stays loaded until the last call ends");
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(1));
    }
    d.metrics.versions_loaded.dec();
    d.retiring.lock().expect("retiring lock").retain(|r| r.id != id);

    // 5. Verify, under the swap lock so that no load is mapping the same private copy meanwhile.
    //    When a straggler dropped the last reference, its thread may still be inside `dlclose`
    //    although the count is zero: look again a few times before calling the library stuck.
    let _swapping = d.lock.lock().await;
    let mut census = d.refresh_census().await;
    for pause in [1, 5, 20, 50, 100] {
        if !census.stuck.iter().any(|s| s.path == copy) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(pause)).await;
        census = d.refresh_census().await;
    }
    d.remember_census(&census);
    if let Some(stuck) = census.stuck.iter().find(|s| s.path == copy) {
        tracing::warn!(
            group = %name,
            version,
            library = %copy.display(),
            reason = %stuck.reason,
            stuck_libraries = census.stuck.len(),
            "plugin library could not be unloaded"
        );
    } else if census.mapped.contains(&copy) {
        tracing::debug!(group = %name, version, "retired; its library stays mapped for a newer instance of the same file");
    } else {
        tracing::info!(
            group = %name,
            version,
            drained_ms,
            retired_ms = started.elapsed().as_millis() as u64,
            "replaced version retired; library unloaded"
        );
    }
}
