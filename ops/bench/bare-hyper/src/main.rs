//! `bare-hyper [ADDR]`: the baseline berth's HTTP benchmark compares against.
//!
//! A bare hyper 1 HTTP/1.1 server that answers `GET /hello/{name}` with exactly what berth's
//! `hello` example answers (`{"message":"Hello, <name>!"}`, `content-type: application/json`,
//! 200; the parameter percent-decoded like berth's router does, the message JSON-escaped like
//! serde_json does) and 404 to anything else. No routing table, limits, metrics, request ids,
//! timers or plugin boundary: what is left is the cost of hyper and tokio themselves.
//!
//! ADDR defaults to 127.0.0.1:18081; `WORKERS` (default 1) sets tokio's worker threads.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const DEFAULT_ADDR: &str = "127.0.0.1:18081";

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    let addr: SocketAddr = match arg.as_deref().unwrap_or(DEFAULT_ADDR).parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "bare-hyper: `{}` is not a socket address ({e}); usage: bare-hyper [ADDR]",
                arg.unwrap_or_default()
            );
            return ExitCode::from(2);
        }
    };
    let workers = match std::env::var("WORKERS").ok().map(|w| w.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("bare-hyper: WORKERS must be a positive integer");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bare-hyper: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare-hyper: cannot listen on {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    eprintln!("bare-hyper: listening on {}", listener.local_addr()?);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                eprintln!("bare-hyper: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Same socket option as berth's listener.
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(handle)).await;
        });
    }
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let name = match (req.method(), req.uri().path().strip_prefix("/hello/")) {
        (&Method::GET, Some(name)) if !name.is_empty() && !name.contains('/') => name,
        _ => {
            let mut res = Response::new(Full::new(Bytes::new()));
            *res.status_mut() = StatusCode::NOT_FOUND;
            return Ok(res);
        }
    };
    let mut res = Response::new(Full::new(Bytes::from(greeting(&percent_decode(name)))));
    res.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    Ok(res)
}

/// `{"message":"Hello, <name>!"}`, escaped as serde_json escapes strings.
fn greeting(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 27);
    out.push_str(r#"{"message":"Hello, "#);
    for c in name.chars() {
        match c {
            '"' => out.push_str(r#"\""#),
            '\\' => out.push_str(r"\\"),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            '\u{8}' => out.push_str(r"\b"),
            '\u{c}' => out.push_str(r"\f"),
            c if c < ' ' => {
                let _ = write!(out, r"\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push_str(r#"!"}"#);
    out
}

/// Percent-decodes a path segment; invalid UTF-8 is replaced (like `decode_utf8_lossy`).
fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('%') {
        return s.into();
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_is_the_json_berth_returns() {
        assert_eq!(greeting("world"), r#"{"message":"Hello, world!"}"#);
        assert_eq!(greeting("a\"b\\c\u{1}"), r#"{"message":"Hello, a\"b\\c\u0001!"}"#);
    }

    #[test]
    fn names_are_percent_decoded() {
        assert_eq!(percent_decode("J%C3%BCrgen%20x"), "Jürgen x");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
