//! Which hosts a group's outbound HTTP client may reach: `[[groups]] allowed_outbound_hosts`,
//! in Spin's syntax, and the address ranges refused unless named.
//!
//! An entry is `scheme://host[:port]`:
//!
//! - `scheme` is `http`, `https` or `*` (both);
//! - `host` is a name (`api.stripe.com`), `*.example.com` (any subdomain of `example.com`, not
//!   `example.com` itself), `*` (any host), an IP address (`127.0.0.1`, `[::1]`) or an IP range
//!   (`10.0.0.0/8`, `[fd00::/8]`);
//! - `port` is a number, a range `8000..8099` (end excluded, as Spin writes it), or `*` (any);
//!   without a port, the scheme's default (80 for http, 443 for https; `*://` needs one).
//!
//! `*://*:*` lets a group call anything — except the addresses below.
//!
//! Whatever the list says, an address in these ranges is refused unless an entry names it by
//! address (`http://169.254.169.254`, `http://127.0.0.0/8:*`): the unspecified addresses
//! (`0.0.0.0/8`, `::`), link-local addresses (`169.254.0.0/16`, `fe80::/10`, where cloud
//! metadata services answer) and the metadata addresses `fd00:ec2::254` (AWS) and
//! `100.100.100.200` (Alibaba Cloud); IPv4-mapped (`::ffff:169.254.169.254`) and NAT64
//! (`64:ff9b::a9fe:a9fe`) forms count as their IPv4 address. Loopback (`127.0.0.0/8`, `::1`) is
//! reachable when an entry names it by address, or names `localhost` (or a `*.localhost` name)
//! and the call is to that name. This holds for the addresses a name resolves to as well as for
//! addresses written in the URL, so a listed name that resolves into one of these ranges (DNS
//! rebinding) is refused.
//!
//! Nothing here depends on the HTTP client: the host's config parsing checks entries in a build
//! without it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// A group's `allowed_outbound_hosts`, parsed. Empty (the default) allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    entries: Vec<HostPattern>,
}

/// One entry of `allowed_outbound_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    raw: String,
    scheme: Option<Scheme>,
    host: HostSel,
    /// Half-open port ranges; `None` is any port.
    ports: Option<(u16, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostSel {
    Any,
    Name(String),
    /// `*.<suffix>`: any name ending in `.<suffix>`.
    Subdomains(String),
    /// An address, or a range of `prefix` bits.
    Net(IpAddr, u8),
}

/// Why an entry of `allowed_outbound_hosts` is malformed: the entry and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`allowed_outbound_hosts` entry `{entry}` {problem}")]
pub struct PatternError {
    pub entry: String,
    pub problem: String,
}

const SYNTAX: &str = "entries are `scheme://host[:port]`, e.g. `https://api.example.com`, `http://127.0.0.1:*`, \
                      `https://*.example.com`, `*://*:*`";

impl std::str::FromStr for HostPattern {
    type Err = PatternError;

    fn from_str(raw: &str) -> Result<Self, PatternError> {
        let fail = |problem: String| PatternError { entry: raw.to_owned(), problem };
        let text = raw.trim();
        let Some((scheme, rest)) = text.split_once("://") else {
            let host = text.trim_end_matches('/');
            return Err(fail(format!("has no scheme: write `https://{host}` (or `http://`, `*://`); {SYNTAX}")));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            "*" => None,
            other => {
                return Err(fail(format!(
                    "has scheme `{other}`, which the outbound HTTP client does not use: write `http://`, `https://` \
                     or `*://`"
                )))
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('@') {
            return Err(fail("has user info (`user@`): list the host only; credentials go in the request".into()));
        }
        if rest.contains(['?', '#']) {
            return Err(fail(format!("has a query or fragment: list the origin only; {SYNTAX}")));
        }
        // Split the host (which may be `[v6]`, `[v6/len]` or `v4/len`) from the port.
        let (host_text, port_text) = if let Some(inner) = rest.strip_prefix('[') {
            let (inside, after) =
                inner.split_once(']').ok_or_else(|| fail("has a `[` without its `]`: write `[::1]`".into()))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| fail(format!("has `{p}` after the IPv6 address: write `[{inside}]:port`")))?,
                ),
            };
            (inside, port)
        } else if rest.matches(':').count() > 1 {
            return Err(fail(format!(
                "has an IPv6 address without brackets: write `[{rest}]` (and `[address]:port` for a port)"
            )));
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let host = parse_host(host_text, rest.starts_with('[')).map_err(fail)?;
        let ports = match port_text {
            None => match scheme {
                Some(Scheme::Http) => Some((80, 81)),
                Some(Scheme::Https) => Some((443, 444)),
                None => {
                    return Err(fail(format!(
                        "has scheme `*` and no port: write `*://{host_text}:*` (any port) or a port number"
                    )))
                }
            },
            Some("*") => None,
            Some(p) => Some(parse_ports(p).map_err(fail)?),
        };
        Ok(HostPattern { raw: text.to_owned(), scheme, host, ports })
    }
}

fn parse_host(text: &str, bracketed: bool) -> Result<HostSel, String> {
    if text.is_empty() {
        return Err(format!("has no host; {SYNTAX}"));
    }
    if text == "*" {
        return Ok(HostSel::Any);
    }
    if text.eq_ignore_ascii_case("self") {
        return Err("is Spin's `self`, which berth has no notion of: name the host and port, \
                    `http://127.0.0.1:8080`"
            .into());
    }
    if let Some((addr, len)) = text.split_once('/') {
        let ip: IpAddr = addr.parse().map_err(|_| {
            format!("has `/` in its host: a path cannot be listed (write the origin only, `{addr}`), and `{addr}` is not an IP address for a range like `10.0.0.0/8`")
        })?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("has range `{text}` whose prefix length is not a number from 0 to {max}"))?;
        if ip.is_ipv6() && !bracketed {
            return Err(format!("has an IPv6 range without brackets: write `[{text}]`"));
        }
        return Ok(HostSel::Net(canonical(ip), len));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        if ip.is_ipv6() && !bracketed {
            return Err(format!("has an IPv6 address without brackets: write `[{text}]`"));
        }
        let len = if ip.is_ipv4() { 32 } else { 128 };
        return Ok(HostSel::Net(canonical(ip), len));
    }
    if bracketed {
        return Err(format!("has `[{text}]`, which is not an IPv6 address"));
    }
    let name = text.trim_end_matches('.').to_ascii_lowercase();
    let (sel, labels) = match name.strip_prefix("*.") {
        Some(suffix) => (HostSel::Subdomains(suffix.to_owned()), suffix),
        None => (HostSel::Name(name.clone()), name.as_str()),
    };
    if labels.contains('*') {
        return Err(format!(
            "has `*` inside its host: a wildcard is the whole host (`*`) or its first label (`*.example.com`); {SYNTAX}"
        ));
    }
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
    };
    if !labels.split('.').all(valid_label) {
        return Err(format!(
            "has host `{text}`, which is not a DNS name (letters, digits, `-`, dot-separated; an international name in its `xn--` form)"
        ));
    }
    Ok(sel)
}

fn parse_ports(text: &str) -> Result<(u16, u32), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("has port `{text}`: a port is a number from 0 to 65535, a range `8000..8100`, or `*`"))
    };
    match text.split_once("..") {
        None => port(text).map(|p| (p, u32::from(p) + 1)),
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if a >= b {
                return Err(format!("has port range `{text}` that is empty (the end is excluded: `{a}..{}`)", a + 1));
            }
            Ok((a, u32::from(b)))
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// The host part of a call's URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A name, lower case (as URLs are parsed).
    Name(&'a str),
    Ip(IpAddr),
}

impl<'a> Host<'a> {
    /// The host of a URL's host text (`example.com`, `127.0.0.1`, `[::1]`).
    pub fn parse(text: &'a str) -> Self {
        let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
        match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(text.trim_end_matches('.')),
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// An address range refused unless listed by address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    Unspecified,
    Loopback,
    LinkLocal,
    Metadata,
}

impl Guarded {
    /// The range of `ip`, if it is one of the guarded ones.
    pub fn of(ip: IpAddr) -> Option<Guarded> {
        match canonical(ip) {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                if o[0] == 0 {
                    Some(Guarded::Unspecified)
                } else if v4.is_loopback() {
                    Some(Guarded::Loopback)
                } else if v4.is_link_local() {
                    Some(Guarded::LinkLocal)
                } else if v4 == Ipv4Addr::new(100, 100, 100, 200) {
                    Some(Guarded::Metadata)
                } else {
                    None
                }
            }
            IpAddr::V6(v6) => {
                if v6.is_unspecified() {
                    Some(Guarded::Unspecified)
                } else if v6.is_loopback() {
                    Some(Guarded::Loopback)
                } else if v6.segments()[0] & 0xffc0 == 0xfe80 {
                    Some(Guarded::LinkLocal)
                } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                    Some(Guarded::Metadata)
                } else {
                    None
                }
            }
        }
    }

    /// What the range is, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Guarded::Unspecified => "an unspecified address (0.0.0.0/8 or ::, which reaches this machine)",
            Guarded::Loopback => "a loopback address (this machine)",
            Guarded::LinkLocal => {
                "a link-local address (169.254.0.0/16 or fe80::/10, where cloud metadata services answer)"
            }
            Guarded::Metadata => "a cloud metadata address",
        }
    }
}

/// `ip` with IPv4-mapped (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`) addresses as their
/// IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            ip
        }
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (canonical(ip), net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn is_localhost_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

impl HostPattern {
    fn host_matches(&self, host: Host<'_>) -> bool {
        match (&self.host, host) {
            (HostSel::Any, _) => true,
            (HostSel::Name(n), Host::Name(h)) => n.eq_ignore_ascii_case(h),
            (HostSel::Subdomains(s), Host::Name(h)) => {
                h.len() > s.len() + 1
                    && h[h.len() - s.len()..].eq_ignore_ascii_case(s)
                    && h.as_bytes()[h.len() - s.len() - 1] == b'.'
            }
            (HostSel::Net(net, len), Host::Ip(ip)) => in_net(ip, *net, *len),
            _ => false,
        }
    }

    fn matches(&self, scheme: &str, host: Host<'_>, port: u16) -> bool {
        let scheme_ok = match self.scheme {
            None => matches!(scheme, "http" | "https"),
            Some(Scheme::Http) => scheme == "http",
            Some(Scheme::Https) => scheme == "https",
        };
        scheme_ok && self.ports.is_none_or(|(lo, hi)| port >= lo && u32::from(port) < hi) && self.host_matches(host)
    }

    /// Whether this entry names `ip` by address (an address or a range containing it).
    fn names_address(&self, ip: IpAddr) -> bool {
        matches!(self.host, HostSel::Net(net, len) if in_net(ip, net, len))
    }
}

impl AllowedHosts {
    /// The empty list: nothing is allowed.
    pub const fn new() -> Self {
        AllowedHosts { entries: Vec::new() }
    }

    /// Parses every entry; the first malformed one is the error.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, PatternError> {
        let entries = entries.iter().map(|e| e.as_ref().parse()).collect::<Result<Vec<HostPattern>, _>>()?;
        Ok(AllowedHosts { entries })
    }

    /// `*://*:*`: anything but the guarded ranges.
    pub fn any() -> Self {
        Self::parse(&["*://*:*"]).expect("a valid pattern")
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries as written.
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.raw.as_str())
    }

    /// Whether a call to `scheme://host:port` is on the list (the addresses it reaches are
    /// checked with [`AllowedHosts::address_allowed`]).
    pub fn allows(&self, scheme: &str, host: Host<'_>, port: u16) -> bool {
        self.entries.iter().any(|e| e.matches(scheme, host, port))
    }

    /// Whether a call to `host` may connect to `addr` (`host`'s own address, or one it resolved
    /// to): `Err` with the guarded range it is in when not.
    pub fn address_allowed(&self, host: Host<'_>, addr: IpAddr) -> Result<(), Guarded> {
        let Some(range) = Guarded::of(addr) else { return Ok(()) };
        if self.entries.iter().any(|e| e.names_address(addr)) {
            return Ok(());
        }
        if range == Guarded::Loopback {
            if let Host::Name(name) = host {
                let named = self
                    .entries
                    .iter()
                    .any(|e| matches!(e.host, HostSel::Name(_) | HostSel::Subdomains(_)) && e.host_matches(host));
                if named && is_localhost_name(&name.to_ascii_lowercase()) {
                    return Ok(());
                }
            }
        }
        Err(range)
    }
}

impl<'de> serde::Deserialize<'de> for AllowedHosts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Vec::<String>::deserialize(d)?;
        AllowedHosts::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Where the entry that would allow a call is added, for refusal messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GrantSite {
    /// The group's `[[groups]]` entry of `berth.toml` (or of a `groups_file`).
    #[default]
    BerthToml,
    /// `berth::testing`'s `TestGroup::builder(..).allow_outbound(..)`.
    TestHarness,
}

/// One group's outbound policy: its list, built when the group is installed.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    pub group: Arc<str>,
    pub hosts: AllowedHosts,
    pub site: GrantSite,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalCause {
    /// `scheme://host:port` is not on the list.
    NotListed,
    /// A redirect from `from` led to a call not on the list.
    Redirect { from: String },
    /// The host is, or resolves to, a guarded address.
    Address { addr: IpAddr, range: Guarded },
}

/// A refused call: the group, what it called, why, and the entry that would allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Refusal {
    pub group: Arc<str>,
    pub scheme: String,
    /// The host as the URL has it (`[::1]` for IPv6).
    pub host: String,
    pub port: u16,
    pub cause: RefusalCause,
    pub site: GrantSite,
}

impl Refusal {
    /// The `berth_outbound_refused_total` reason label.
    pub fn reason(&self) -> &'static str {
        match self.cause {
            RefusalCause::NotListed => "not_listed",
            RefusalCause::Redirect { .. } => "redirect",
            RefusalCause::Address { .. } => "address",
        }
    }

    /// The entry that would allow this call.
    pub fn entry(&self) -> String {
        let host = match &self.cause {
            RefusalCause::Address { addr: IpAddr::V6(v6), .. } => format!("[{v6}]"),
            RefusalCause::Address { addr, .. } => addr.to_string(),
            _ => self.host.clone(),
        };
        let default = match self.scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => 0,
        };
        if self.port == default {
            format!("{}://{host}", self.scheme)
        } else {
            format!("{}://{host}:{}", self.scheme, self.port)
        }
    }

    fn fix(&self) -> String {
        let entry = self.entry();
        match self.site {
            GrantSite::BerthToml => format!(
                "add `allowed_outbound_hosts = [\"{entry}\"]` (or the entry to the existing list) under group `{}`'s \
                 `[[groups]]` entry in berth.toml",
                self.group
            ),
            GrantSite::TestHarness => format!(
                "allow it with `.allow_outbound(&[\"{entry}\"])` on `TestGroup::builder` (in berth.toml: \
                 `allowed_outbound_hosts = [\"{entry}\"]` under the group's `[[groups]]` entry)"
            ),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = format!("{}://{}:{}", self.scheme, self.host, self.port);
        let group = &self.group;
        match &self.cause {
            RefusalCause::NotListed => write!(
                f,
                "group `{group}` may not call {target}: it is not in the group's `allowed_outbound_hosts`; {}",
                self.fix()
            ),
            RefusalCause::Redirect { from } => write!(
                f,
                "group `{group}`: {from} redirected to {target}, which is not in the group's `allowed_outbound_hosts`; \
                 the redirect was not followed; {}",
                self.fix()
            ),
            RefusalCause::Address { addr, range } => {
                let via = if self.host.trim_start_matches('[').trim_end_matches(']') == addr.to_string() {
                    String::new()
                } else {
                    format!(" (`{}` resolves to {addr})", self.host)
                };
                write!(
                    f,
                    "group `{group}` may not call {target}{via}: {addr} is {}, refused unless listed by address; {}",
                    range.describe(),
                    self.fix()
                )
            }
        }
    }
}

impl OutboundPolicy {
    /// A policy that allows nothing.
    pub fn deny_all(group: &str) -> Self {
        OutboundPolicy { group: group.into(), hosts: AllowedHosts::default(), site: GrantSite::BerthToml }
    }

    fn refusal(&self, scheme: &str, host: Host<'_>, port: u16, cause: RefusalCause) -> Refusal {
        Refusal {
            group: self.group.clone(),
            scheme: scheme.to_owned(),
            host: host.to_string(),
            port,
            cause,
            site: self.site,
        }
    }

    /// Checks a call (or a redirect from `redirect_from`) to `scheme://host:port`: on the list,
    /// and, for an IP host, not a guarded address. A name's resolved addresses are checked with
    /// [`OutboundPolicy::check_resolved`].
    pub fn check(&self, scheme: &str, host: Host<'_>, port: u16, redirect_from: Option<&str>) -> Result<(), Refusal> {
        if !self.hosts.allows(scheme, host, port) {
            let cause = match redirect_from {
                Some(from) => RefusalCause::Redirect { from: from.to_owned() },
                None => RefusalCause::NotListed,
            };
            return Err(self.refusal(scheme, host, port, cause));
        }
        if let Host::Ip(ip) = host {
            self.hosts
                .address_allowed(host, ip)
                .map_err(|range| self.refusal(scheme, host, port, RefusalCause::Address { addr: ip, range }))?;
        }
        Ok(())
    }

    /// Checks the addresses `name` resolved to; any guarded one refuses the call (the scheme
    /// and port are unknown to a resolver: the caller fills them in).
    pub fn check_resolved(&self, name: &str, addrs: &[IpAddr]) -> Result<(), Refusal> {
        let host = Host::Name(name);
        for &addr in addrs {
            if let Err(range) = self.hosts.address_allowed(host, addr) {
                return Err(self.refusal("", host, 0, RefusalCause::Address { addr, range }));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(entries).unwrap()
    }

    fn err(entry: &str) -> String {
        entry.parse::<HostPattern>().unwrap_err().to_string()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_entry_without_a_port_is_the_schemes_default() {
        let l = list(&["https://api.stripe.com", "http://example.org"]);
        assert!(l.allows("https", Host::Name("api.stripe.com"), 443));
        assert!(!l.allows("https", Host::Name("api.stripe.com"), 8443));
        assert!(!l.allows("http", Host::Name("api.stripe.com"), 443), "the scheme is part of the entry");
        assert!(l.allows("http", Host::Name("example.org"), 80));
        assert!(!l.allows("https", Host::Name("example.org"), 443));
        assert!(!l.allows("https", Host::Name("stripe.com"), 443));
        assert!(!l.allows("https", Host::Name("evil-api.stripe.com"), 443));
    }

    #[test]
    fn wildcards_for_scheme_port_and_subdomains() {
        let l = list(&["*://127.0.0.1:*", "https://*.example.com", "http://localhost:3000..3003"]);
        assert!(l.allows("http", Host::Ip(ip("127.0.0.1")), 1));
        assert!(l.allows("https", Host::Ip(ip("127.0.0.1")), 65535));
        assert!(l.allows("https", Host::Ip(ip("::ffff:127.0.0.1")), 80), "a mapped address is its IPv4 address");
        assert!(!l.allows("http", Host::Ip(ip("127.0.0.2")), 80));
        assert!(l.allows("https", Host::Name("a.example.com"), 443));
        assert!(l.allows("https", Host::Name("a.b.example.com"), 443));
        assert!(!l.allows("https", Host::Name("example.com"), 443), "`*.` is subdomains only");
        assert!(!l.allows("https", Host::Name("badexample.com"), 443));
        assert!(l.allows("http", Host::Name("localhost"), 3000));
        assert!(l.allows("http", Host::Name("localhost"), 3002));
        assert!(!l.allows("http", Host::Name("localhost"), 3003), "a range's end is excluded");
        let any = list(&["*://*:*"]);
        assert!(any.allows("http", Host::Name("anything.test"), 8080));
        assert!(any.allows("https", Host::Ip(ip("10.1.2.3")), 1));
        assert!(!AllowedHosts::default().allows("https", Host::Name("api.stripe.com"), 443), "empty denies");
    }

    #[test]
    fn ranges_and_ipv6_entries() {
        let l = list(&["http://10.0.0.0/8:*", "https://[::1]:8443", "http://[fd00::/8]"]);
        assert!(l.allows("http", Host::Ip(ip("10.200.0.1")), 9000));
        assert!(!l.allows("http", Host::Ip(ip("11.0.0.1")), 9000));
        assert!(l.allows("https", Host::Ip(ip("::1")), 8443));
        assert!(l.allows("http", Host::Ip(ip("fd12::1")), 80));
        assert!(!l.allows("http", Host::Ip(ip("fe80::1")), 80));
    }

    #[test]
    fn malformed_entries_say_what_to_write() {
        assert!(err("api.stripe.com").contains("write `https://api.stripe.com`"), "{}", err("api.stripe.com"));
        assert!(err("redis://cache:6379").contains("`redis`"));
        assert!(err("*://example.com").contains("`*://example.com:*`"));
        assert!(err("https://api.example.com/v1").contains("path"));
        assert!(err("https://api.*.com").contains("`*` inside its host"));
        assert!(err("https://example.com:99999").contains("0 to 65535"));
        assert!(err("https://example.com:90..80").contains("empty"));
        assert!(err("https://::1").contains("brackets"), "{}", err("https://::1"));
        assert!(err("https://[::1").contains("`]`"));
        assert!(err("http://10.0.0.0/33").contains("0 to 32"));
        assert!(err("https://user@example.com").contains("user info"));
        assert!(err("http://self").contains("self"));
        assert!(err("https://exa mple.com").contains("not a DNS name"));
        assert!(err("https://").contains("no host"));
        let e = "api.stripe.com".parse::<HostPattern>().unwrap_err();
        assert_eq!(e.entry, "api.stripe.com");
        assert!(e.to_string().starts_with("`allowed_outbound_hosts` entry `api.stripe.com`"), "{e}");
    }

    #[test]
    fn guarded_ranges_are_refused_unless_named_by_address() {
        let any = list(&["*://*:*"]);
        for a in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "fd00:ec2::254",
            "100.100.100.200",
            "0.0.0.0",
            "0.1.2.3",
            "::",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(any.address_allowed(Host::Name("x.test"), ip(a)).is_err(), "{a} must be refused");
            assert!(any.address_allowed(Host::Ip(ip(a)), ip(a)).is_err(), "{a} must be refused as a literal");
        }
        for a in ["10.0.0.1", "192.168.1.1", "8.8.8.8", "2001:db8::1", "fd00:ec2::253"] {
            assert!(any.address_allowed(Host::Name("x.test"), ip(a)).is_ok(), "{a} is not guarded");
        }
        assert_eq!(any.address_allowed(Host::Name("x"), ip("169.254.169.254")), Err(Guarded::LinkLocal));
        assert_eq!(any.address_allowed(Host::Name("x"), ip("fd00:ec2::254")), Err(Guarded::Metadata));
        let named = list(&["http://169.254.169.254", "http://[fd00:ec2::254]", "http://127.0.0.0/8:*"]);
        assert!(named.address_allowed(Host::Ip(ip("169.254.169.254")), ip("169.254.169.254")).is_ok());
        assert!(named.address_allowed(Host::Name("metadata.test"), ip("169.254.169.254")).is_ok());
        assert!(named.address_allowed(Host::Ip(ip("::ffff:169.254.169.254")), ip("::ffff:169.254.169.254")).is_ok());
        assert!(named.address_allowed(Host::Name("x"), ip("169.254.169.253")).is_err());
        assert!(named.address_allowed(Host::Name("x"), ip("fd00:ec2::254")).is_ok());
        assert!(named.address_allowed(Host::Name("x"), ip("127.9.9.9")).is_ok());
    }

    #[test]
    fn loopback_needs_a_loopback_entry() {
        let by_name = list(&["http://localhost:*", "https://*.example.com"]);
        assert!(by_name.address_allowed(Host::Name("localhost"), ip("127.0.0.1")).is_ok());
        assert!(by_name.address_allowed(Host::Name("localhost"), ip("::1")).is_ok());
        assert!(by_name.address_allowed(Host::Name("localhost"), ip("169.254.1.1")).is_err());
        assert!(
            by_name.address_allowed(Host::Name("rebind.example.com"), ip("127.0.0.1")).is_err(),
            "a listed name resolving to loopback is rebinding"
        );
        let any = list(&["*://*:*"]);
        assert!(any.address_allowed(Host::Name("localhost"), ip("127.0.0.1")).is_err(), "`*` does not name loopback");
        let by_ip = list(&["http://127.0.0.1:*"]);
        assert!(by_ip.address_allowed(Host::Ip(ip("127.0.0.1")), ip("127.0.0.1")).is_ok());
        assert!(by_ip.address_allowed(Host::Ip(ip("::1")), ip("::1")).is_err());
    }

    #[test]
    fn refusals_name_the_group_the_target_and_the_entry_to_add() {
        let p = OutboundPolicy {
            group: "shop".into(),
            hosts: list(&["https://api.stripe.com"]),
            site: GrantSite::BerthToml,
        };
        assert!(p.check("https", Host::Name("api.stripe.com"), 443, None).is_ok());
        let r = p.check("https", Host::Name("evil.test"), 443, None).unwrap_err();
        assert_eq!(r.reason(), "not_listed");
        let m = r.to_string();
        assert!(m.contains("group `shop`") && m.contains("https://evil.test:443"), "{m}");
        assert!(m.contains("allowed_outbound_hosts = [\"https://evil.test\"]") && m.contains("berth.toml"), "{m}");
        let r = p.check("http", Host::Name("evil.test"), 8080, Some("https://api.stripe.com/pay")).unwrap_err();
        assert_eq!(r.reason(), "redirect");
        assert!(r.to_string().contains("https://api.stripe.com/pay redirected to http://evil.test:8080"), "{r}");
        assert!(r.to_string().contains("\"http://evil.test:8080\""), "{r}");

        let any = OutboundPolicy { hosts: AllowedHosts::any(), site: GrantSite::TestHarness, ..p.clone() };
        let r = any.check("http", Host::Ip(ip("169.254.169.254")), 80, None).unwrap_err();
        assert_eq!(r.reason(), "address");
        let m = r.to_string();
        assert!(m.contains("link-local") && m.contains(".allow_outbound(&[\"http://169.254.169.254\"])"), "{m}");
        let r = any.check_resolved("rebind.test", &[ip("10.0.0.1"), ip("fd00:ec2::254")]).unwrap_err();
        assert!(r.to_string().contains("resolves to fd00:ec2::254"), "{r}");
        let r = Refusal { scheme: "https".into(), port: 8443, ..r };
        assert_eq!(r.entry(), "https://[fd00:ec2::254]:8443", "an address is granted by address");
        assert!(any.check_resolved("fine.test", &[ip("10.0.0.1")]).is_ok());
    }
}
