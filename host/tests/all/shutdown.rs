//! SIGTERM: stop accepting, let in-flight requests finish, exit cleanly.

use std::time::Duration;

use crate::support::{group, request, BerthProcess};

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let mut berth = BerthProcess::start("", &group("examples/hello"));
    let addr = berth.addr;
    let in_flight = tokio::spawn(async move { request(addr, "GET", "/slow?ms=1500", &[], b"").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    berth.terminate();
    let res = in_flight.await.unwrap();
    assert_eq!(res.status, 200, "the in-flight request must complete: {}", res.text());
    assert_eq!(res.json()["slept_ms"], 1500);
    let status = tokio::task::spawn_blocking(move || {
        let status = berth.child.wait().expect("wait for berth");
        (status, berth)
    })
    .await
    .unwrap()
    .0;
    assert!(status.success(), "berth exited with {status}");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listener must be closed");
}
