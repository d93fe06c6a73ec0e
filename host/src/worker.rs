//! The low-priority thread where libraries are opened and closed: loading a plugin (reading and hashing the file, `dlopen`,
//! layout checks), closing a replaced one (`dlclose`), storing uploads and building `path`
//! groups (cargo inherits the priority).
//!
//! It runs at nice `admin.swap_nice` (default 10): on a host whose cores are busy serving, a deploy
//! takes longer instead of taking CPU time from requests (`ops/bench/swap.sh` measures both). One
//! thread per host also keeps that work serial, like the swaps themselves.

use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

/// A handle to the swap worker thread; the thread ends when the handle is dropped.
pub struct LibraryWorker {
    jobs: mpsc::Sender<Job>,
}

/// The worker thread is gone (it could not start, or a job panicked).
#[derive(Debug, thiserror::Error)]
#[error("the swap worker thread stopped: {0}")]
pub struct WorkerGone(pub String);

impl LibraryWorker {
    /// Starts the worker thread at `nice` (0 is normal, 19 the lowest priority).
    pub fn start(nice: i32) -> Self {
        let (jobs, rx) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new().name("berth-swap".into()).spawn(move || {
            if nice > 0 {
                if let Err(e) = berth_core::loader::lower_thread_priority(nice) {
                    tracing::warn!(error = %e, "swap worker: could not lower its priority; swaps compete with requests");
                }
            }
            for job in rx {
                job();
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "swap worker thread could not start; swaps will be refused");
        }
        LibraryWorker { jobs }
    }

    /// Runs `f` on the worker and waits for its result.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, WorkerGone> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(v) => {
                let _ = tx.send(v);
            }
            Err(_) => tracing::error!("a swap worker job panicked"),
        });
        self.jobs.send(job).map_err(|_| WorkerGone("not running".into()))?;
        rx.await.map_err(|_| WorkerGone("the job panicked".into()))
    }
}
