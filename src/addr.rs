//! Address syntax and resolution: `HOST:PORT`, `[v6%scope]:PORT`, bare `PORT`, `-4`/`-6`,
//! and the rule that `localhost` is loopback, resolved here and never through DNS.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};

use crate::output::escape_message;

/// Any address udpcat receives from or sends to: an IP socket address or a Unix datagram
/// socket. Shown as std shows IP addresses, and `unix:PATH`, `unix:@NAME`, `unix:` (a
/// sender whose socket has no name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    Ip(SocketAddr),
    Unix(UnixAddr),
}

/// A Unix datagram socket's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UnixAddr {
    Path(PathBuf),
    /// Linux's abstract namespace (no file), without the leading NUL.
    Abstract(Vec<u8>),
    /// A socket that never bound a name: nobody can answer it.
    Unnamed,
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Ip(a) => write!(f, "{a}"),
            Addr::Unix(u) => write!(f, "{u}"),
        }
    }
}

impl fmt::Display for UnixAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnixAddr::Path(p) => write!(
                f,
                "unix:{}",
                escape_message(p.as_os_str().as_encoded_bytes())
            ),
            UnixAddr::Abstract(name) => write!(f, "unix:@{}", escape_message(name)),
            UnixAddr::Unnamed => f.write_str("unix:"),
        }
    }
}

impl Addr {
    /// The IP address, for what only IP has (--allow, pktinfo).
    pub fn ip(&self) -> Option<SocketAddr> {
        match self {
            Addr::Ip(a) => Some(*a),
            Addr::Unix(_) => None,
        }
    }

    /// As udpcat shows it: IPv4-mapped IPv6 as plain IPv4.
    /// A Unix address is borrowed as it is: no copy of its path per datagram.
    pub fn canonical(&self) -> std::borrow::Cow<'_, Addr> {
        match self {
            Addr::Ip(a) => std::borrow::Cow::Owned(Addr::Ip(canonical(*a))),
            other => std::borrow::Cow::Borrowed(other),
        }
    }

    /// Whether an answer can be sent here (a nameless Unix socket cannot be answered).
    pub fn answerable(&self) -> bool {
        !matches!(self, Addr::Unix(UnixAddr::Unnamed))
    }
}

/// A Unix socket argument: `unix:PATH`, `unix:@NAME` (Linux abstract), or anything with a
/// `/` in it (`/dev/log`, `./s.sock`). `None` when `arg` is not one.
pub fn parse_unix(arg: &str) -> Option<Result<UnixAddr>> {
    let rest = match arg.strip_prefix("unix:") {
        Some(rest) => rest,
        None if arg.contains('/') && !arg.starts_with('[') => arg,
        None => return None,
    };
    let bad = |why: &str| anyhow!(escape_message(format!("address '{arg}': {why}")));
    if !crate::net::UNIX_SOCKETS {
        return Some(Err(crate::exit::usage(escape_message(format!(
            "address '{arg}' is a Unix socket, and {} has no Unix datagram sockets",
            crate::net::SYSTEM
        )))));
    }
    Some(if let Some(name) = rest.strip_prefix('@') {
        if name.is_empty() {
            Err(bad("an abstract name after @ is needed (unix:@NAME)"))
        } else if crate::net::ABSTRACT_NAMES {
            Ok(UnixAddr::Abstract(name.as_bytes().to_vec()))
        } else {
            Err(bad(&format!(
                "abstract names (unix:@NAME) are Linux only, not on {}",
                crate::net::SYSTEM
            )))
        }
    } else if rest.is_empty() {
        Err(bad("a path after unix: is needed (unix:/run/app.sock)"))
    } else {
        Ok(UnixAddr::Path(PathBuf::from(rest)))
    })
}

/// Which address families the user allows (`-4`, `-6`, or both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    #[default]
    Any,
    V4,
    V6,
}

impl Family {
    pub fn allows(self, ip: &IpAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
        }
    }
}

/// The host part of an address as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// `localhost` (and names under `.localhost`), a bare `PORT` or `:PORT`.
    Localhost,
    /// A literal address; IPv6 may carry a scope (interface index).
    Ip(IpAddr, u32),
    /// Anything else, for the system resolver.
    Name(String),
}

/// A parsed, not yet resolved, address argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Host,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Localhost => write!(f, "localhost:{}", self.port),
            Host::Ip(IpAddr::V4(ip), _) => write!(f, "{ip}:{}", self.port),
            Host::Ip(IpAddr::V6(ip), 0) => write!(f, "[{ip}]:{}", self.port),
            Host::Ip(IpAddr::V6(ip), scope) => write!(f, "[{ip}%{scope}]:{}", self.port),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

/// Parses one address argument. Errors name what is wrong and how to write it instead.
pub fn parse(arg: &str) -> Result<Endpoint> {
    parse_with(arg, None)
}

/// Parses a local address to send from (`--bind`): like [`parse`], but a host without a
/// port (`127.0.0.2`, `::1`, `[::1]`, `localhost`) means port 0, any free port.
pub fn parse_local(arg: &str) -> Result<Endpoint> {
    if let Ok(ip) = arg.parse::<Ipv6Addr>() {
        return parse_with(&format!("[{ip}]"), Some(0));
    }
    parse_with(arg, Some(0))
}

fn parse_with(arg: &str, default_port: Option<u16>) -> Result<Endpoint> {
    // Every piece of the argument quoted below is escaped with the whole message.
    let bad = |why: &str| anyhow!(escape_message(format!("address '{arg}': {why}")));
    if arg.is_empty() {
        return Err(bad("empty (try 127.0.0.1:9000, [::1]:9000 or 9000)"));
    }
    // A bare PORT or :PORT means localhost.
    if let Some(port) = arg.strip_prefix(':').or(Some(arg)).filter(|p| is_digits(p)) {
        return Ok(Endpoint {
            host: Host::Localhost,
            port: parse_port(port).map_err(|e| bad(&e))?,
        });
    }
    if let Some(rest) = arg.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("missing ']' (IPv6 is written [::1]:9000)"))?;
        let port = match (after.strip_prefix(':'), default_port) {
            (Some(port), _) => parse_port(port).map_err(|e| bad(&e))?,
            (None, Some(port)) if after.is_empty() => port,
            (None, _) => return Err(bad("missing :PORT after ']' (try [::1]:9000)")),
        };
        let (ip, scope) = match inside.split_once('%') {
            Some((ip, scope)) => (ip, parse_scope(scope).map_err(|e| bad(&e))?),
            None => (inside, 0),
        };
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| bad(&format!("'{ip}' is not an IPv6 address")))?;
        return Ok(Endpoint {
            host: Host::Ip(IpAddr::V6(ip), scope),
            port,
        });
    }
    let (host, port) = match (arg.rsplit_once(':'), default_port) {
        (Some((host, port)), _) => (host, parse_port(port).map_err(|e| bad(&e))?),
        (None, Some(port)) => (arg, port),
        (None, None) => {
            return Err(bad("missing :PORT (try HOST:PORT, e.g. 127.0.0.1:9000)"));
        }
    };
    if host.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(bad("not a host name"));
    }
    if host.contains(':') {
        return Err(bad(
            "an IPv6 address needs brackets when a port follows (try [::1]:9000)",
        ));
    }
    let lower = host.to_ascii_lowercase();
    let host = if lower == "localhost" || lower == "localhost." || lower.ends_with(".localhost") {
        Host::Localhost
    } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
        Host::Ip(IpAddr::V4(ip), 0)
    } else if !host.is_empty() && host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // The resolver would read 1.2.3 as 1.2.0.3 and 10.1 as 10.0.0.1: never guess.
        return Err(bad(
            "not an IPv4 address: write all four parts (e.g. 10.0.0.1); a name is never only digits and dots",
        ));
    } else if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(bad("not a host name"));
    } else {
        Host::Name(host.to_string())
    };
    Ok(Endpoint { host, port })
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_port(s: &str) -> Result<u16, String> {
    if !is_digits(s) {
        return Err(format!("'{s}' is not a port (0-65535)"));
    }
    s.parse()
        .map_err(|_| format!("port {s} is out of range (0-65535)"))
}

fn parse_scope(s: &str) -> Result<u32, String> {
    if is_digits(s) {
        return s
            .parse()
            .map_err(|_| format!("scope '{s}' is out of range"));
    }
    crate::net::interface_index(s).ok_or_else(|| format!("no network interface named '{s}'"))
}

/// The addresses an endpoint stands for, in order, restricted to `family`.
/// `localhost` gives 127.0.0.1 then ::1 (the caller decides whether ::1 is optional).
pub fn resolve(ep: &Endpoint, family: Family) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = match &ep.host {
        Host::Localhost => [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]
        .into_iter()
        .filter(|ip| family.allows(ip))
        .map(|ip| SocketAddr::new(ip, ep.port))
        .collect(),
        Host::Ip(ip, scope) => {
            if !family.allows(ip) {
                bail!("{ep} is not an {} address", family_name(family));
            }
            if let IpAddr::V6(v6) = ip {
                if *scope == 0 && needs_scope(v6) {
                    bail!(
                        "{ep} is link-local: add the interface, e.g. [{v6}%eth0]:{}",
                        ep.port
                    );
                }
                vec![SocketAddr::V6(SocketAddrV6::new(*v6, ep.port, 0, *scope))]
            } else {
                vec![SocketAddr::new(*ip, ep.port)]
            }
        }
        Host::Name(name) => {
            let found = (name.as_str(), ep.port)
                .to_socket_addrs()
                .with_context(|| format!("cannot resolve '{name}'"))?;
            let mut out: Vec<SocketAddr> = Vec::new();
            for a in found.filter(|a| family.allows(&a.ip())) {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            if out.is_empty() {
                bail!("'{name}' has no {} address", family_name(family));
            }
            out
        }
    };
    Ok(addrs)
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::Any => "IP",
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

/// Link-local unicast and link/interface-local multicast mean nothing without an interface.
fn needs_scope(ip: &Ipv6Addr) -> bool {
    let seg0 = ip.segments()[0];
    (seg0 & 0xffc0) == 0xfe80 || (ip.is_multicast() && matches!(seg0 & 0x000f, 1 | 2))
}

/// How udpcat shows an address: IPv4-mapped IPv6 as plain IPv4 (scopes stay numeric).
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(arg: &str) -> Endpoint {
        match parse(arg) {
            Ok(ep) => ep,
            Err(e) => panic!("{arg}: {e}"),
        }
    }

    #[test]
    fn forms() {
        assert_eq!(
            ep("9000"),
            Endpoint {
                host: Host::Localhost,
                port: 9000
            }
        );
        assert_eq!(
            ep(":9000"),
            Endpoint {
                host: Host::Localhost,
                port: 9000
            }
        );
        assert_eq!(
            ep("localhost:0"),
            Endpoint {
                host: Host::Localhost,
                port: 0
            }
        );
        assert_eq!(ep("LocalHost:1").host, Host::Localhost);
        assert_eq!(
            ep("1.2.3.4:5").host,
            Host::Ip("1.2.3.4".parse().unwrap(), 0)
        );
        assert_eq!(ep("[::1]:5").host, Host::Ip("::1".parse().unwrap(), 0));
        assert_eq!(
            ep("[fe80::1%7]:5").host,
            Host::Ip("fe80::1".parse().unwrap(), 7)
        );
        assert_eq!(
            ep("[fe80::1%lo]:5").host,
            Host::Ip("fe80::1".parse().unwrap(), 1)
        );
        assert_eq!(
            ep("example.test:53").host,
            Host::Name("example.test".into())
        );
    }

    #[test]
    fn bad_forms_say_what_is_wrong() {
        for (arg, says) in [
            ("", "empty"),
            ("host", "missing :PORT"),
            ("::1:9000", "brackets"),
            ("[::1]", "missing :PORT"),
            ("[::1:9000", "missing ']'"),
            ("[nope]:1", "not an IPv6 address"),
            ("1.2.3.4:70000", "out of range"),
            ("1.2.3.4:http", "not a port"),
            ("[fe80::1%nosuchif0]:1", "no network interface"),
            ("\u{202e}x\x1b:1", "'\\u{202e}x\\x1b:1'"),
            ("1.2.3:5", "not an IPv4 address"),
            ("10.1:5", "not an IPv4 address"),
            ("1.2.3.4.5:5", "not an IPv4 address"),
            ("256.1.1.1:5", "not an IPv4 address"),
            ("1..2.3:5", "not an IPv4 address"),
        ] {
            let err = parse(arg).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                err.contains(says),
                "{arg:?}: {err:?} should contain {says:?}"
            );
        }
    }

    #[test]
    fn a_local_address_without_a_port_is_port_0() {
        for (arg, host) in [("127.0.0.2", "127.0.0.2"), ("::1", "::1"), ("[::1]", "::1")] {
            let ep = parse_local(arg).unwrap();
            assert_eq!(ep.port, 0, "{arg}");
            assert_eq!(ep.host, Host::Ip(host.parse().unwrap(), 0), "{arg}");
        }
        assert_eq!(parse_local("localhost").unwrap().host, Host::Localhost);
        assert_eq!(parse_local("127.0.0.2:5").unwrap().port, 5);
        assert!(parse_local("1.2.3").is_err());
        assert!(parse("127.0.0.2").is_err());
    }

    #[test]
    fn localhost_is_both_families_without_dns() {
        let both = resolve(&ep("localhost:7"), Family::Any).unwrap();
        assert_eq!(
            both,
            vec!["127.0.0.1:7".parse().unwrap(), "[::1]:7".parse().unwrap()]
        );
        let v6 = resolve(&ep("7"), Family::V6).unwrap();
        assert_eq!(v6, vec!["[::1]:7".parse().unwrap()]);
    }

    #[test]
    fn family_conflicts_and_scopes() {
        assert!(resolve(&ep("[::1]:1"), Family::V4).is_err());
        let err = resolve(&ep("[fe80::1]:1"), Family::Any)
            .unwrap_err()
            .to_string();
        assert!(err.contains("%eth0"), "{err}");
        let err = resolve(&ep("[ff02::1]:1"), Family::Any)
            .unwrap_err()
            .to_string();
        assert!(err.contains("link-local"), "{err}");
    }

    #[test]
    fn mapped_addresses_show_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:1.2.3.4]:5".parse().unwrap();
        assert_eq!(canonical(mapped).to_string(), "1.2.3.4:5");
        let v6: SocketAddr = "[::1]:5".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }
}
