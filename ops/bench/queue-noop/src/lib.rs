//! The function `ops/bench/queue.sh` measures queue throughput through: it takes every message of
//! `[queues.bench]` and does nothing with it, so what is measured is the host's share.

use berth::StatusCode;

#[berth::queue(stream = "bench")]
async fn noop() -> StatusCode {
    StatusCode::NO_CONTENT
}

berth::group! {
    name: "queue-noop",
    functions: [noop],
}
