//! The outbound allow-list (`[[groups]] allowed_outbound_hosts`): calls, redirects and resolved
//! addresses checked against a group's list, against servers on 127.0.0.1 started here. Names
//! that must resolve to a guarded address go through an injected resolver, so nothing here
//! leaves the machine.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use berth_host::config::BerthConfig;
use berth_host::core::loader::ServiceNeed;
use berth_host::core::Metrics;
use berth_host::services::config::HttpClientConfig;
use berth_host::services::http_client::{Lookup, OutboundClient};
use berth_host::services::outbound::{AllowedHosts, GrantSite, OutboundPolicy};
use berth_host::services::registry::{GroupSettings, RegistrySettings, ServiceRegistry};
use berth_plugin_api::{service_error_kind, OutboundRequest, RResult, Response, ServiceError};

use crate::support::workspace;

/// An HTTP/1.1 server on 127.0.0.1 answering every request with `answer(path)` (a status line
/// and headers, no body), counting what it got.
struct Server {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Server {
    fn start(answer: impl Fn(&str) -> String + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).map_or(true, |n| n == 0) || header == "\r\n" {
                        break;
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let head = answer(&path);
                let _ = write!(stream, "{head}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            }
        });
        Server { port, hits }
    }

    fn ok() -> Server {
        Server::start(|_| "HTTP/1.1 200 OK".into())
    }

    /// Answers every request with a redirect to `to`.
    fn redirecting(to: String) -> Server {
        Server::start(move |_| format!("HTTP/1.1 302 Found\r\nlocation: {to}"))
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A resolver that knows only the names it is given.
struct FixedLookup(BTreeMap<String, Vec<IpAddr>>);

impl Lookup for FixedLookup {
    fn lookup(
        &self,
        name: &str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        let answer = self.0.get(name).cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("{name}: not a name of this test"))
        });
        Box::pin(async move { answer })
    }
}

fn policy(entries: &[&str]) -> OutboundPolicy {
    OutboundPolicy { group: "shop".into(), hosts: AllowedHosts::parse(entries).unwrap(), site: GrantSite::BerthToml }
}

fn client(entries: &[&str], metrics: &Metrics) -> OutboundClient {
    OutboundClient::new(&HttpClientConfig::default(), metrics, policy(entries))
}

fn client_resolving(entries: &[&str], metrics: &Metrics, names: &[(&str, &str)]) -> OutboundClient {
    let map = names.iter().map(|(n, a)| ((*n).to_owned(), vec![a.parse().unwrap()])).collect();
    OutboundClient::with_lookup(&HttpClientConfig::default(), metrics, policy(entries), Arc::new(FixedLookup(map)))
}

fn get(url: &str) -> OutboundRequest {
    OutboundRequest {
        method: "GET".into(),
        url: url.into(),
        headers: Default::default(),
        body: Default::default(),
        timeout_ms: 5000,
    }
}

/// The refused call's error: a `NOT_DECLARED` service error of `http`.
async fn refused(client: &OutboundClient, url: &str) -> String {
    let e = client.fetch(get(url)).await.err().unwrap_or_else(|| panic!("{url} was not refused"));
    assert_eq!(e.kind, service_error_kind::NOT_DECLARED, "{}", e.message);
    assert_eq!(e.service.as_str(), "http");
    e.message.into_string()
}

fn refused_count(metrics: &Metrics, reason: &str) -> u64 {
    let line = format!("berth_outbound_refused_total{{group=\"shop\",reason=\"{reason}\"}} ");
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&line).map(|n| n.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no `{line}` in the metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_not_on_the_list_is_refused_naming_the_host_and_the_key() {
    let server = Server::ok();
    let metrics = Metrics::new();
    let url = format!("http://127.0.0.1:{}/pay", server.port);

    let allowed = client(&[&format!("http://127.0.0.1:{}", server.port)], &metrics);
    assert_eq!(allowed.fetch(get(&url)).await.unwrap().status, 200);

    let other = client(&["https://api.stripe.com", "http://127.0.0.1:1"], &metrics);
    let m = refused(&other, &url).await;
    assert!(m.contains(&format!("http://127.0.0.1:{}", server.port)), "names the host and port: {m}");
    assert!(m.contains("group `shop`"), "{m}");
    assert!(
        m.contains(&format!("allowed_outbound_hosts = [\"http://127.0.0.1:{}\"]", server.port))
            && m.contains("berth.toml"),
        "names the key to add: {m}"
    );
    let nothing = client(&[], &metrics);
    refused(&nothing, &url).await;
    assert_eq!(server.hits(), 1, "refused calls never reach the server");
    assert_eq!(refused_count(&metrics, "not_listed"), 2);
    assert_eq!(refused_count(&metrics, "address"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_link_local_addresses_are_refused_by_default() {
    let metrics = Metrics::new();
    let anything = client(&["*://*:*"], &metrics);
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.170.2/v2/credentials",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://100.100.100.200/latest/meta-data/",
        "http://[fe80::1]:8080/",
        "http://0.0.0.0:8080/",
    ] {
        let m = refused(&anything, url).await;
        assert!(m.contains("refused unless listed by address"), "{url}: {m}");
    }
    assert_eq!(refused_count(&metrics, "address"), 7);
    // Loopback: `*` does not name it.
    let server = Server::ok();
    let m = refused(&anything, &format!("http://127.0.0.1:{}/", server.port)).await;
    assert!(m.contains("loopback"), "{m}");
    assert_eq!(server.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_a_host_not_on_the_list_is_refused() {
    let target = Server::ok();
    let metrics = Metrics::new();
    let elsewhere = Server::redirecting(format!("http://localhost:{}/stolen", target.port));
    let allowed = client(&[&format!("http://127.0.0.1:{}", elsewhere.port)], &metrics);
    let m = refused(&allowed, &format!("http://127.0.0.1:{}/start", elsewhere.port)).await;
    assert!(m.contains(&format!("redirected to http://localhost:{}", target.port)), "{m}");
    assert!(m.contains(&format!("\"http://localhost:{}\"", target.port)), "names the entry to add: {m}");
    assert_eq!((elsewhere.hits(), target.hits()), (1, 0), "the redirect is not followed");
    assert_eq!(refused_count(&metrics, "redirect"), 1);

    // A redirect to the metadata address is refused even when the list allows any host.
    let to_metadata = Server::redirecting("http://169.254.169.254/latest/meta-data/".into());
    let anything = client(&["*://*:*", &format!("http://127.0.0.1:{}", to_metadata.port)], &metrics);
    let m = refused(&anything, &format!("http://127.0.0.1:{}/", to_metadata.port)).await;
    assert!(m.contains("169.254.169.254") && m.contains("link-local"), "{m}");

    // A redirect within the list is followed.
    let landing = Server::ok();
    let hop = Server::redirecting(format!("http://127.0.0.1:{}/landed", landing.port));
    let both =
        client(&[&format!("http://127.0.0.1:{}", hop.port), &format!("http://127.0.0.1:{}", landing.port)], &metrics);
    assert_eq!(both.fetch(get(&format!("http://127.0.0.1:{}/", hop.port))).await.unwrap().status, 200);
    assert_eq!(landing.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_into_a_refused_range_is_refused() {
    let server = Server::ok();
    let metrics = Metrics::new();
    let names = [("metadata.test", "169.254.169.254"), ("rebind.test", "127.0.0.1"), ("app.test", "127.0.0.1")];
    let port = server.port;
    let listed = [
        "http://metadata.test".to_owned(),
        format!("http://rebind.test:{port}"),
        format!("http://app.test:{port}"),
        format!("http://127.0.0.1:{port}"),
    ];
    let entries: Vec<&str> = listed.iter().map(String::as_str).collect();

    // Listed by name only: its link-local answer is refused.
    let c = client_resolving(&entries[..2], &metrics, &names);
    let m = refused(&c, "http://metadata.test/latest/meta-data/").await;
    assert!(m.contains("`metadata.test` resolves to 169.254.169.254") && m.contains("link-local"), "{m}");
    assert!(m.contains("allowed_outbound_hosts = [\"http://169.254.169.254\"]"), "names the address to list: {m}");
    // A listed name answering loopback (DNS rebinding) is refused, and nothing connects.
    let m = refused(&c, &format!("http://rebind.test:{port}/")).await;
    assert!(m.contains("`rebind.test` resolves to 127.0.0.1") && m.contains("loopback"), "{m}");
    assert_eq!(server.hits(), 0);
    assert_eq!(refused_count(&metrics, "address"), 2);

    // Listing the address as well lets the name through: the resolver's answer is what is used.
    let c = client_resolving(&entries[2..], &metrics, &names);
    assert_eq!(c.fetch(get(&format!("http://app.test:{port}/"))).await.unwrap().status, 200);
    assert_eq!(server.hits(), 1);

    // The system resolver: `localhost` is loopback, allowed when `localhost` is listed.
    let by_name = client(&[&format!("http://localhost:{port}")], &metrics);
    assert_eq!(by_name.fetch(get(&format!("http://localhost:{port}/"))).await.unwrap().status, 200);
    let any = client(&["*://*:*"], &metrics);
    let m = refused(&any, &format!("http://localhost:{port}/")).await;
    assert!(m.contains("`localhost` resolves to") && m.contains("loopback"), "{m}");
}

/// berth.toml → `[[groups]] allowed_outbound_hosts` → the registry → the group's client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_groups_entry_in_berth_toml_is_the_groups_list() {
    let server = Server::ok();
    let text = format!(
        "[[groups]]\nfile = \"shop.so\"\nname = \"shop\"\nallowed_outbound_hosts = [\"http://127.0.0.1:{}\"]\n\n\
         [[groups]]\nfile = \"other.so\"\nname = \"other\"\n",
        server.port
    );
    let config = BerthConfig::parse(&text, &workspace(), &BTreeMap::new()).expect("config parses");
    let metrics = Metrics::new();
    let dir = tempfile::tempdir().unwrap();
    let settings = RegistrySettings { data_dir: dir.path().to_owned(), ..Default::default() };
    let registry = ServiceRegistry::new(settings, metrics.clone(), None);
    let need =
        [ServiceNeed { kind: "http".into(), name: "http".into(), interface: String::new(), version: String::new() }];
    let url = format!("http://127.0.0.1:{}/", server.port);
    let mut answers = Vec::new();
    for gc in &config.groups {
        let group = gc.name.as_deref().unwrap();
        let settings = GroupSettings {
            config: &gc.config,
            secrets: &gc.secrets,
            bind: &gc.bind,
            migrations: None,
            outbound: &gc.allowed_outbound_hosts,
        };
        let services = registry.resolve(group, &need, settings).await.unwrap();
        let answer: RResult<Response, ServiceError> = services.http().unwrap().fetch(get(&url)).await;
        answers.push(answer.into_result());
    }
    assert_eq!(answers[0].as_ref().map(|r| r.status).unwrap(), 200);
    let e = answers[1].as_ref().unwrap_err();
    assert!(e.message.contains("group `other`") && e.message.contains("allowed_outbound_hosts"), "{}", e.message);
    assert!(metrics.render().contains("berth_outbound_refused_total{group=\"other\",reason=\"not_listed\"} 1"));
}

#[test]
fn a_malformed_entry_is_refused_at_config_parse_with_the_fix() {
    let text =
        "[[groups]]\nfile = \"shop.so\"\nallowed_outbound_hosts = [\"https://api.stripe.com\", \"api.example.com\"]\n";
    let e = BerthConfig::parse(text, &workspace(), &BTreeMap::new()).unwrap_err().to_string();
    assert!(e.contains("`api.example.com`") && e.contains("write `https://api.example.com`"), "{e}");
    let text = "[[groups]]\nfile = \"shop.so\"\nallowed_outbound_hosts = [\"*://example.com\"]\n";
    let e = BerthConfig::parse(text, &workspace(), &BTreeMap::new()).unwrap_err().to_string();
    assert!(e.contains("`*://example.com:*`"), "{e}");
}
