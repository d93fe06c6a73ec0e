//! Raw bytes on an HTTP listener, through hyper, into the handler of standalone Berth or of a
//! platform that calls Berth over HTTP (FC, SCF web functions, kubeless, Knative). No group is
//! loaded, so every decoder runs to the dispatcher, which finds no function.
//!
//! The oracle: the connection ends (hyper reads to the end of the input), and no answer is a
//! 500: with no function loaded, every answer to outside input is the platform's refusal (4xx)
//! or not-found, never an internal error.

use std::net::SocketAddr;

use berth_platforms::Platform;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LISTENERS: [Platform; 5] =
    [Platform::Standalone, Platform::Fc, Platform::ScfWeb, Platform::Kubeless, Platform::Knative];

pub fn run(data: &[u8]) {
    let (which, raw) = crate::split(data);
    let platform = LISTENERS[usize::from(which) % LISTENERS.len()];
    let answer = serve(platform, raw);
    for status in statuses(&answer) {
        assert_ne!(
            status,
            500,
            "{} answered 500 to outside input:\n{}",
            platform.name(),
            String::from_utf8_lossy(&answer)
        );
    }
}

/// Everything the listener of `platform` writes back to a client that sent `raw` and closed.
pub fn serve(platform: Platform, raw: &[u8]) -> Vec<u8> {
    let shim = crate::shims::shim(platform);
    let peer: SocketAddr = ([127, 0, 0, 1], 40000).into();
    crate::shims::block_on(async move {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let service = hyper::service::service_fn(move |req| berth_platforms::serve_http(shim.clone(), req, peer));
        let conn = hyper::server::conn::http1::Builder::new()
            // The client shuts its side once it has sent everything: still answer.
            .half_close(true)
            .serve_connection(hyper_util::rt::TokioIo::new(server), service);
        let (mut rx, mut tx) = tokio::io::split(client);
        let send = async move {
            let _ = tx.write_all(raw).await;
            let _ = tx.shutdown().await;
        };
        let mut answer = Vec::new();
        let (_, _, _) = tokio::join!(conn, send, rx.read_to_end(&mut answer));
        answer
    })
}

/// The status of each response in `answer`.
fn statuses(mut answer: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(n)) = res.parse(answer) else { return out };
        let Some(code) = res.code else { return out };
        out.push(code);
        let len = res
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok());
        // A chunked or unframed body: the statuses after it are not worth reading.
        let Some(len) = len else { return out };
        let Some(rest) = answer.get(n + len..) else { return out };
        answer = rest;
    }
}
