//! udpcat on real networks: multicast, broadcast, interfaces, shared ports, allow-lists and
//! receive buffers, across network namespaces that each test builds for itself.
//!
//! Every test makes its own namespaces (`ucT<pid>n<counter><host>`), joins them with veth
//! pairs (or a bridge in a switch namespace when a segment needs three hosts), puts private
//! addresses on them (10.77.x.x, fd77::/64, fe80::N) and runs the real binary inside with
//! `ip netns exec`. A [`Net`] guard deletes the namespaces on drop, also when the test fails.
//! Nothing is ever sent outside the namespaces or loopback.
//!
//! These tests need root and iproute2 (`ip`, `bridge`); where a namespace cannot be created
//! they fail, saying why, instead of skipping. The TTL test also needs python3, the
//! receive-buffer shortfall test `setpriv` (util-linux).

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::util::*;

/// Setting up namespaces is serialised: concurrent `ip netns add` race on the shared
/// `/run/netns` mount.
static SETUP: Mutex<()> = Mutex::new(());

/// How long a link may take to come up (veth and bridge ports are up at once; a safety net).
const LINK_UP: Duration = Duration::from_secs(10);

/// Run a command to completion; panic with its output when it fails.
#[track_caller]
fn must(cmd: &mut Command, why: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{why}: cannot run {cmd:?}: {e} (these tests need iproute2)"));
    if !out.status.success() {
        panic!(
            "{why}: {cmd:?} failed with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) -> String {
    must(Command::new("ip").args(args), "network setup")
}

/// The network namespaces of one test; deleted on drop (their links go with them).
struct Net {
    prefix: String,
    names: Vec<String>,
}

impl Net {
    fn new() -> Net {
        static N: AtomicUsize = AtomicUsize::new(0);
        Net {
            prefix: format!(
                "ucT{}n{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ),
            names: Vec::new(),
        }
    }

    /// A new namespace `<prefix><host>` with loopback up and IPv6 duplicate address
    /// detection and automatic link-local addresses off (tests add `fe80::N` themselves,
    /// so every address is known and usable at once).
    fn host(&mut self, host: &str) -> String {
        let name = format!("{}{host}", self.prefix);
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "cannot create a network namespace (`ip netns add {name}` failed with {}: {}). \
                 These tests build real networks in namespaces and need root (CAP_SYS_ADMIN \
                 and CAP_NET_ADMIN) and iproute2; they do not skip.",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!(
                "cannot run `ip netns add {name}`: {e}. These tests need iproute2 (apt-get \
                 install iproute2) and root; they do not skip."
            ),
        }
        self.names.push(name.clone());
        must(
            Command::new("ip").args([
                "netns",
                "exec",
                &name,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.default.addr_gen_mode=1",
            ]),
            "turning off IPv6 DAD",
        );
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// A veth pair: `a_if` in `a`, `b_if` in `b`, both up with multicast on.
    fn link(&self, a: &str, a_if: &str, b: &str, b_if: &str) {
        ip(&[
            "-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b,
        ]);
        up(a, a_if);
        up(b, b_if);
    }

    /// `n` hosts `h1..hn` on one Ethernet segment (a bridge in a switch namespace), each with
    /// `eth0` = 10.77.0.i/24, fd77::i/64, fe80::i/64. Returns the host namespaces.
    fn lan(&mut self, n: usize) -> Vec<String> {
        let sw = self.host("sw");
        ip(&[
            "-n",
            &sw,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ]);
        up(&sw, "br0");
        let mut hosts = Vec::new();
        for i in 1..=n {
            let h = self.host(&format!("h{i}"));
            let port = format!("p{i}");
            self.link(&h, "eth0", &sw, &port);
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"]);
            addrs(&h, "eth0", i);
            hosts.push(h);
        }
        for h in &hosts {
            wait_up(h, "eth0");
        }
        // A bridge port forwards only once it is in the forwarding state.
        let deadline = Instant::now() + LINK_UP;
        loop {
            let state = must(
                Command::new("bridge").args(["-n", &sw, "link", "show"]),
                "bridge port state",
            );
            let forwarding = state.lines().filter(|l| l.contains("forwarding")).count();
            if forwarding == n {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "bridge ports not forwarding after {LINK_UP:?}:\n{state}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        hosts
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "del", n])
                .stdin(Stdio::null())
                .output();
        }
    }
}

/// Bring `ifname` up with multicast on.
fn up(ns: &str, ifname: &str) {
    ip(&["-n", ns, "link", "set", ifname, "up", "multicast", "on"]);
}

/// Host number `i` on `ifname`: 10.77.0.i/24, fd77::i/64, fe80::i/64.
fn addrs(ns: &str, ifname: &str, i: usize) {
    ip(&[
        "-n",
        ns,
        "addr",
        "add",
        &format!("10.77.0.{i}/24"),
        "dev",
        ifname,
    ]);
    for a in [format!("fd77::{i}/64"), format!("fe80::{i}/64")] {
        ip(&["-n", ns, "addr", "add", &a, "dev", ifname, "nodad"]);
    }
}

/// The bounded wait for a link to have carrier (veth pairs have it as soon as both ends are
/// up; this is only a safety net).
fn wait_up(ns: &str, ifname: &str) {
    let deadline = Instant::now() + LINK_UP;
    loop {
        let s = ip(&["-n", ns, "-o", "link", "show", "dev", ifname]);
        if s.contains("LOWER_UP") && s.contains(",UP") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ifname} in {ns} not up after {LINK_UP:?}: {s}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The interface index of `ifname` in `ns` (how udpcat prints an IPv6 scope).
fn ifindex(ns: &str, ifname: &str) -> u32 {
    let s = ip(&["-n", ns, "-o", "link", "show", "dev", ifname]);
    s.split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no interface index in {s:?}"))
}

/// Two hosts `a` and `b` joined by one veth pair, `eth0` on each:
/// a = 10.77.0.1, fd77::1, fe80::1; b = 10.77.0.2, fd77::2, fe80::2.
fn pair(net: &mut Net) -> (String, String) {
    let _g = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    let a = net.host("a");
    let b = net.host("b");
    net.link(&a, "eth0", &b, "eth0");
    addrs(&a, "eth0", 1);
    addrs(&b, "eth0", 2);
    wait_up(&a, "eth0");
    wait_up(&b, "eth0");
    (a, b)
}

/// Three hosts in a line, `a -- b -- c`, with `b` routing between two subnets:
/// a eth0 10.77.1.1 -- 10.77.1.2 eth0 b eth1 10.77.2.2 -- 10.77.2.3 eth0 c.
fn line3(net: &mut Net) -> (String, String, String) {
    let _g = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    let a = net.host("a");
    let b = net.host("b");
    let c = net.host("c");
    net.link(&a, "eth0", &b, "eth0");
    net.link(&b, "eth1", &c, "eth0");
    for (ns, ifname, addr) in [
        (&a, "eth0", "10.77.1.1/24"),
        (&b, "eth0", "10.77.1.2/24"),
        (&b, "eth1", "10.77.2.2/24"),
        (&c, "eth0", "10.77.2.3/24"),
    ] {
        ip(&["-n", ns, "addr", "add", addr, "dev", ifname]);
    }
    ip(&["-n", &a, "route", "add", "default", "via", "10.77.1.2"]);
    ip(&["-n", &c, "route", "add", "default", "via", "10.77.2.2"]);
    must(
        Command::new("ip").args([
            "netns",
            "exec",
            &b,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]),
        "routing in b",
    );
    for (ns, ifname) in [(&a, "eth0"), (&b, "eth0"), (&b, "eth1"), (&c, "eth0")] {
        wait_up(ns, ifname);
    }
    (a, b, c)
}

/// `udpcat ARGS` inside namespace `ns`.
fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, udpcat_path()]).args(args);
    cmd.env_remove("RUST_LOG");
    cmd.env_remove("RUST_BACKTRACE");
    cmd
}

/// `udpcat listen ARGS` inside `ns`, once its `sockets` readiness lines are out.
fn listen_in(ns: &str, args: &[&str], sockets: usize) -> Listener {
    let mut full = vec!["listen"];
    full.extend_from_slice(args);
    spawn_listen_cmd(in_ns(ns, &full), sockets)
}

/// `udpcat ARGS` inside `ns`, run to completion (stdin empty).
fn run_in(ns: &str, args: &[&str]) -> Run {
    Proc::spawn(in_ns(ns, args)).finish()
}

/// `udpcat send ARGS` inside `ns` must succeed quietly.
#[track_caller]
fn send_ok(ns: &str, args: &[&str]) {
    let mut full = vec!["send"];
    full.extend_from_slice(args);
    run_in(ns, &full).check(0, Expect::Empty, Expect::Empty);
}

/// Stdout is exactly these `-s` records: `FROM_IP:<any port>\tPAYLOAD`, in order.
fn from_lines(want: &[(&str, &str)]) -> Expect {
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(ip, p)| (ip.to_string(), p.to_string()))
        .collect();
    with(move |out| {
        let text = String::from_utf8_lossy(out);
        let got: Vec<&str> = text.lines().collect();
        let ok = got.len() == want.len()
            && got.iter().zip(&want).all(|(l, (ip, p))| {
                l.split_once('\t').is_some_and(|(from, payload)| {
                    payload == p
                        && from
                            .parse::<SocketAddr>()
                            .is_ok_and(|a| a.to_string().starts_with(&format!("{ip}:")))
                })
            })
            && text.ends_with('\n');
        if ok {
            Ok(())
        } else {
            Err(format!(
                "should be these records, in order, as FROM:PORT<TAB>PAYLOAD: {want:?}"
            ))
        }
    })
}

/// Like [`from_lines`] in any order (replies from several responders).
fn from_lines_any_order(want: &[(&str, &str)]) -> Expect {
    let mut want: Vec<String> = want.iter().map(|(ip, p)| format!("{ip}\t{p}")).collect();
    want.sort();
    with(move |out| {
        let text = String::from_utf8_lossy(out);
        let mut got: Vec<String> = text
            .lines()
            .map(|l| match l.split_once('\t') {
                Some((from, p)) => {
                    let ip = from.rsplit_once(':').map_or(from, |(ip, _)| ip);
                    format!("{ip}\t{p}")
                }
                None => l.to_string(),
            })
            .collect();
        got.sort();
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "should be one record per responder (ports aside, any order): {want:?}, got {got:?}"
            ))
        }
    })
}

// ---------------------------------------------------------------------------------------
// Multicast: joining, interfaces, IP_MULTICAST_ALL, loopback, hop limits
// ---------------------------------------------------------------------------------------

/// `listen --join GROUP --interface NAME|ADDR` receives the group on that interface only.
/// b has two links: eth0 to a, eth1 to c; both a and c send to the group.
#[test]
fn join_receives_the_group_only_on_the_named_interface() {
    let mut net = Net::new();
    let (a, b, c) = line3(&mut net);
    for (iface, (wrong, wrong_from), (right, right_from)) in [
        ("eth1", (&a, "a"), (&c, "10.77.2.3")),
        ("10.77.1.2", (&c, "c"), (&a, "10.77.1.1")),
    ] {
        let l = listen_in(
            &b,
            &[
                "--join",
                "239.77.0.1",
                "--interface",
                iface,
                "-s",
                "-c",
                "1",
                "0.0.0.0:0",
            ],
            1,
        );
        let to = format!("239.77.0.1:{}", l.addr().port());
        // The datagram on the other link comes first: it must not be printed.
        send_ok(wrong, &["--interface", "eth0", &to, wrong_from]);
        send_ok(right, &["--interface", "eth0", &to, "right link"]);
        l.finish_check(0, from_lines(&[(right_from, "right link")]));
    }
}

/// Binding the listening address to the group joins it too (here through the multicast
/// route, as on a host where 224.0.0.0/4 points at the LAN).
#[test]
fn binding_a_group_address_joins_the_group() {
    let mut net = Net::new();
    let (a, b) = pair(&mut net);
    ip(&["-n", &b, "route", "add", "224.0.0.0/4", "dev", "eth0"]);
    let l = listen_in(&b, &["-s", "-c", "1", "239.77.0.2:0"], 1);
    let to = format!("239.77.0.2:{}", l.addr().port());
    send_ok(&a, &["--interface", "eth0", &to, "to the group"]);
    l.finish_check(0, from_lines(&[("10.77.0.1", "to the group")]));
}

/// An IPv6 group joined on the dual-stack wildcard `[::]`, sent to with the scope in the
/// address (`[ff12::...%eth0]`); the link-local sender prints with its numeric scope.
#[test]
fn ipv6_group_on_dual_stack_wildcard_with_scoped_send() {
    let mut net = Net::new();
    let (a, b) = pair(&mut net);
    let idx = ifindex(&b, "eth0");
    for iface in ["eth0", "fe80::2"] {
        let l = listen_in(
            &b,
            &[
                "--join",
                "ff12::77:1",
                "--interface",
                iface,
                "-s",
                "-c",
                "1",
                "[::]:0",
            ],
            1,
        );
        let port = l.addr().port();
        send_ok(&a, &[&format!("[ff12::77:1%eth0]:{port}"), "hello six"]);
        let addrs = l.addrs.clone();
        let want = format!("[fe80::1%{idx}]:");
        l.finish().check(
            0,
            with(move |out| {
                let text = String::from_utf8_lossy(out);
                if text.starts_with(&want)
                    && text.ends_with("\thello six\n")
                    && text.lines().count() == 1
                {
                    Ok(())
                } else {
                    Err(format!("should be one record `{want}PORT<TAB>hello six`"))
                }
            }),
            ready_then(&addrs, vec![]),
        );
    }
}

/// A socket bound to the wildcard gets only the groups it joined, even when another socket
/// on the host joined other groups (IP_MULTICAST_ALL / IPV6_MULTICAST_ALL off).
#[test]
fn wildcard_socket_gets_only_the_groups_it_joined() {
    let mut net = Net::new();
    let (a, b) = pair(&mut net);
    for (wild, mine, other, to_mine, to_other) in [
        (
            "0.0.0.0:0",
            "239.77.1.1",
            "239.77.2.2",
            "239.77.1.1:{}",
            "239.77.2.2:{}",
        ),
        (
            "[::]:0",
            "ff12::77:11",
            "ff12::77:22",
            "[ff12::77:11%eth0]:{}",
            "[ff12::77:22%eth0]:{}",
        ),
    ] {
        let x = listen_in(
            &b,
            &["--join", mine, "--interface", "eth0", "-c", "1", wild],
            1,
        );
        let y = listen_in(
            &b,
            &["--join", other, "--interface", "eth0", "-c", "1", wild],
            1,
        );
        let (p, q) = (x.addr().port(), y.addr().port());
        let at = |f: &str, port: u16| f.replace("{}", &port.to_string());
        // To X's port but Y's group: the host is a member, X is not; X must not print it.
        send_ok(&a, &["--interface", "eth0", &at(to_other, p), "not joined"]);
        // The marker: X's own group.
        send_ok(&a, &["--interface", "eth0", &at(to_mine, p), "joined"]);
        send_ok(&a, &["--interface", "eth0", &at(to_other, q), "for y"]);
        let addrs = x.addrs.clone();
        x.finish()
            .check(0, bytes("joined\n"), ready_then(&addrs, vec![]));
        let addrs = y.addrs.clone();
        y.finish()
            .check(0, bytes("for y\n"), ready_then(&addrs, vec![]));
    }
}

/// `send --interface NAME|ADDR` picks the link a multicast datagram leaves on; on a unicast
/// destination it binds the socket to the device.
#[test]
fn send_interface_picks_the_outgoing_link() {
    let mut net = Net::new();
    let (a, b, c) = line3(&mut net);
    let la = listen_in(
        &a,
        &[
            "--join",
            "239.77.3.3",
            "--interface",
            "eth0",
            "-c",
            "2",
            "0.0.0.0:0",
        ],
        1,
    );
    let lc = listen_in(
        &c,
        &[
            "--join",
            "239.77.3.3",
            "--interface",
            "eth0",
            "-c",
            "2",
            la.addr().to_string().as_str(),
        ],
        1,
    );
    let to = format!("239.77.3.3:{}", la.addr().port());
    send_ok(&b, &["--interface", "eth1", &to, "c by name"]);
    send_ok(&b, &["--interface", "eth0", &to, "a by name"]);
    send_ok(&b, &["--interface", "10.77.1.2", &to, "a by address"]);
    send_ok(&b, &["--interface", "10.77.2.2", &to, "c by address"]);
    la.finish_check(0, bytes("a by name\na by address\n"));
    lc.finish_check(0, bytes("c by name\nc by address\n"));

    // Unicast: bound to eth0, c (behind eth1) is not reached; bound to eth1 it is.
    let l = listen_in(&c, &["-s", "-c", "1", "10.77.2.3:0"], 1);
    let to = l.addr().to_string();
    // (The kernel takes an address without a route on the bound device as on-link there, so
    // the send succeeds and the datagram goes nowhere.)
    send_ok(&b, &["--interface", "eth0", &to, "wrong device"]);
    send_ok(&b, &["--interface", "eth1", &to, "right device"]);
    l.finish_check(0, from_lines(&[("10.77.2.2", "right device")]));
}

/// Multicast loopback is off by default: a listener on the sending host hears its own
/// host's datagram only with `--multicast-loop`.
#[test]
fn multicast_loop_reaches_this_host_only_when_asked() {
    let mut net = Net::new();
    let (a, b) = pair(&mut net);
    let join = [
        "--join",
        "239.77.4.4",
        "--interface",
        "eth0",
        "-s",
        "-c",
        "1",
        "0.0.0.0:0",
    ];
    let l = listen_in(&a, &join, 1);
    let to = format!("239.77.4.4:{}", l.addr().port());
    send_ok(&a, &["--interface", "eth0", &to, "no loop"]);
    // The marker from the other host.
    send_ok(&b, &["--interface", "eth0", &to, "marker"]);
    l.finish_check(0, from_lines(&[("10.77.0.2", "marker")]));

    let l = listen_in(&a, &join, 1);
    let to = format!("239.77.4.4:{}", l.addr().port());
    send_ok(
        &a,
        &["--multicast-loop", "--interface", "eth0", &to, "looped"],
    );
    l.finish_check(0, from_lines(&[("10.77.0.1", "looped")]));
}

/// A receiver in python3 that prints the TTL / hop limit each datagram arrived with:
/// `python3 -c TTL_RECEIVER FAMILY GROUP|- IFNAME COUNT`.
const TTL_RECEIVER: &str = r#"
import socket, struct, sys
fam, group, ifname, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if fam == "4":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    s.setsockopt(socket.IPPROTO_IP, 12, 1)  # IP_RECVTTL
    if group != "-":
        mreqn = struct.pack("4s4si", socket.inet_aton(group), bytes(4), socket.if_nametoindex(ifname))
        s.setsockopt(socket.IPPROTO_IP, 35, mreqn)  # IP_ADD_MEMBERSHIP
    level, kind = socket.IPPROTO_IP, 2  # IP_TTL
    print("listening on 0.0.0.0:%d" % s.getsockname()[1], file=sys.stderr, flush=True)
else:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind(("::", 0))
    s.setsockopt(socket.IPPROTO_IPV6, 51, 1)  # IPV6_RECVHOPLIMIT
    if group != "-":
        mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", socket.if_nametoindex(ifname))
        s.setsockopt(socket.IPPROTO_IPV6, 20, mreq)  # IPV6_ADD_MEMBERSHIP
    level, kind = socket.IPPROTO_IPV6, 52  # IPV6_HOPLIMIT
    print("listening on [::]:%d" % s.getsockname()[1], file=sys.stderr, flush=True)
for _ in range(count):
    data, anc, _, _ = s.recvmsg(65536, 256)
    ttl = [struct.unpack("i", d[:4])[0] for (l, k, d) in anc if l == level and k == kind]
    print(ttl[0] if ttl else "?", data.decode(), flush=True)
"#;

fn ttl_receiver(ns: &str, fam: &str, group: &str, count: usize) -> Listener {
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        ns,
        "python3",
        "-c",
        TTL_RECEIVER,
        fam,
        group,
    ])
    .arg("eth0")
    .arg(count.to_string());
    spawn_listen_cmd(cmd, 1)
}

/// `--ttl N` sets the hop limit of multicast and unicast datagrams, IPv4 and IPv6; the
/// receiver one hop away sees exactly N (a link does not decrement it). Multicast without
/// `--ttl` keeps the system's hop limit of 1, which still reaches the next host.
#[test]
fn ttl_sets_the_hop_limit_multicast_and_unicast() {
    let mut net = Net::new();
    let (a, b) = pair(&mut net);

    let r = ttl_receiver(&b, "4", "239.77.5.5", 4);
    let port = r.addr().port();
    let group = format!("239.77.5.5:{port}");
    let unicast = format!("10.77.0.2:{port}");
    send_ok(&a, &["--interface", "eth0", &group, "default"]);
    send_ok(&a, &["--interface", "eth0", "--ttl", "1", &group, "one"]);
    send_ok(&a, &["--interface", "eth0", "--ttl", "7", &group, "seven"]);
    send_ok(&a, &["--ttl", "9", &unicast, "nine"]);
    r.finish_check(0, bytes("1 default\n1 one\n7 seven\n9 nine\n"));

    let r = ttl_receiver(&b, "6", "ff12::77:5", 3);
    let port = r.addr().port();
    let group = format!("[ff12::77:5%eth0]:{port}");
    let unicast = format!("[fd77::2]:{port}");
    send_ok(&a, &[&group, "default"]);
    send_ok(&a, &["--ttl", "5", &group, "five"]);
    send_ok(&a, &["--ttl", "6", &unicast, "six"]);
    r.finish_check(0, bytes("1 default\n5 five\n6 six\n"));
}

/// A hop limit of 1 does not cross a router; 2 does.
#[test]
fn ttl_1_does_not_cross_a_router() {
    let mut net = Net::new();
    let (a, _b, c) = line3(&mut net);
    let l = listen_in(&c, &["-s", "-c", "1", "10.77.2.3:0"], 1);
    let to = l.addr().to_string();
    send_ok(&a, &["--ttl", "1", &to, "dropped by the router"]);
    send_ok(&a, &["--ttl", "2", &to, "crossed"]);
    l.finish_check(0, from_lines(&[("10.77.1.1", "crossed")]));
}

// ---------------------------------------------------------------------------------------
// Broadcast and discovery
// ---------------------------------------------------------------------------------------

/// A broadcast address needs `--broadcast`; without it udpcat stops naming the flag. With
/// `--interface`, the limited broadcast 255.255.255.255 leaves on that device.
#[test]
fn broadcast_needs_the_flag() {
    let mut net = Net::new();
    let (a, b) = pair(&mut net);
    let l = listen_in(&b, &["-s", "-c", "2", "0.0.0.0:0"], 1);
    let port = l.addr().port();
    let subnet = format!("10.77.0.255:{port}");
    let limited = format!("255.255.255.255:{port}");
    for args in [
        vec!["send", &subnet, "no flag"],
        vec!["send", "--interface", "eth0", &limited, "no flag"],
    ] {
        let to = args[args.len() - 2];
        run_in(&a, &args).check(
            1,
            Expect::Empty,
            lines(vec![line(&["udpcat: error:", to, "--broadcast"])]),
        );
    }
    send_ok(&a, &["--broadcast", &subnet, "subnet"]);
    send_ok(
        &a,
        &["--broadcast", "--interface", "eth0", &limited, "limited"],
    );
    l.finish_check(
        0,
        from_lines(&[("10.77.0.1", "subnet"), ("10.77.0.1", "limited")]),
    );
}

/// Three hosts on one segment: h1 asks, h2 and h3 answer.
fn lan3(net: &mut Net) -> (String, String, String) {
    let _g = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    let mut hosts = net.lan(3).into_iter();
    let mut next = || hosts.next().unwrap();
    (next(), next(), next())
}

/// Discovery: responders `listen LISTEN_ARGS` (ending in a wildcard `...:0`) on h2 and h3,
/// all on one port; h1 runs `send --wait 2s -s SEND_ARGS DEST:PORT` and must print one
/// record per responder, `want` giving the responders' addresses.
fn discover(
    (h1, h2, h3): (&str, &str, &str),
    listen_args: &[&str],
    send_args: &[&str],
    dest: &str,
    want: &[(&str, &str)],
) {
    let r2 = listen_in(h2, listen_args, 1);
    let port = r2.addr().port();
    let wild = listen_args[listen_args.len() - 1].replace(":0", &format!(":{port}"));
    let mut args3 = listen_args.to_vec();
    *args3.last_mut().unwrap() = &wild;
    let r3 = listen_in(h3, &args3, 1);
    let to = format!("{dest}:{port}");
    let mut args = vec!["send", "--wait", "2s", "-s"];
    args.extend_from_slice(send_args);
    args.extend([to.as_str(), "who is there"]);
    let asked = run_in(h1, &args);
    // The responders first: each got the question and answered it without a complaint.
    for r in [r2, r3] {
        let addrs = r.addrs.clone();
        r.finish()
            .check(0, bytes("who is there\n"), ready_then(&addrs, vec![]));
    }
    asked.check(0, from_lines_any_order(want), Expect::Empty);
}

/// Discovery by broadcast: `send --broadcast --wait` prints the answer of every responder
/// (`listen --echo` on the wildcard), with `-s` the responder's address first; when nobody
/// answers, exit 3.
#[test]
fn broadcast_discovery_prints_every_responder() {
    let mut net = Net::new();
    let (h1, h2, h3) = lan3(&mut net);
    let to = format!("10.77.0.255:{}", free_port4());
    run_in(
        &h1,
        &["send", "--broadcast", "--wait", "300ms", &to, "anyone?"],
    )
    .check(
        3,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: error: no datagram came back within 300ms",
        ])]),
    );
    discover(
        (&h1, &h2, &h3),
        &["--echo", "-c", "1", "0.0.0.0:0"],
        &["--broadcast"],
        "10.77.0.255",
        &[("10.77.0.2", "who is there"), ("10.77.0.3", "who is there")],
    );
}

/// Discovery by multicast, IPv4 and IPv6 (link-local responders print with the scope).
#[test]
fn multicast_discovery_prints_every_responder() {
    let mut net = Net::new();
    let (h1, h2, h3) = lan3(&mut net);
    let hosts = (h1.as_str(), h2.as_str(), h3.as_str());
    let join = |group| ["--join", group, "--interface", "eth0", "--echo", "-c", "1"];
    let mut args = join("239.77.6.6").to_vec();
    args.push("0.0.0.0:0");
    discover(
        hosts,
        &args,
        &["--interface", "eth0"],
        "239.77.6.6",
        &[("10.77.0.2", "who is there"), ("10.77.0.3", "who is there")],
    );
    let idx = ifindex(&h1, "eth0");
    let (ll2, ll3) = (format!("[fe80::2%{idx}]"), format!("[fe80::3%{idx}]"));
    let mut args = join("ff12::77:6").to_vec();
    args.push("[::]:0");
    discover(
        hosts,
        &args,
        &[],
        "[ff12::77:6%eth0]",
        &[(&ll2, "who is there"), (&ll3, "who is there")],
    );
}

// ---------------------------------------------------------------------------------------
// Shared ports, allow-lists, receive buffers, link-local scopes
// ---------------------------------------------------------------------------------------

/// Two listeners share a port only when both ask for `--reuse-port`; otherwise the second
/// fails with exit 1 naming the address and the cause.
#[test]
fn reuse_port_only_when_both_ask() {
    let mut net = Net::new();
    let (a, _b) = pair(&mut net);
    let first = listen_in(&a, &["--reuse-port", "-c", "1", "10.77.0.1:0"], 1);
    let addr = first.addr().to_string();
    let second = listen_in(&a, &["--reuse-port", "-c", "1", &addr], 1);
    assert_eq!(second.addr(), first.addr());
    for l in [first, second] {
        l.p.signal(Signal::SIGTERM);
        let addrs = l.addrs.clone();
        l.finish()
            .check(143, Expect::Empty, ready_then(&addrs, vec![]));
    }

    let msg = |addr: &str| {
        lines(vec![line(&[
            &format!("udpcat: error: cannot listen on {addr}: Address"),
            "in use",
            "another socket has this port; pick another port, or --reuse-port on both",
        ])])
    };
    for (first_args, second_args) in [
        (vec!["--reuse-port"], vec![]),
        (vec![], vec!["--reuse-port"]),
    ] {
        let mut args = first_args.clone();
        args.push("10.77.0.1:0");
        let first = listen_in(&a, &args, 1);
        let addr = first.addr().to_string();
        let mut args = vec!["listen"];
        args.extend(second_args.iter().copied());
        args.push(&addr);
        run_in(&a, &args).check(1, Expect::Empty, msg(&addr));
        first.p.signal(Signal::SIGTERM);
        let addrs = first.addrs.clone();
        first
            .finish()
            .check(143, Expect::Empty, ready_then(&addrs, vec![]));
    }
}

/// `--allow` across a link: senders outside the networks are neither printed nor echoed
/// and are counted; IPv4 senders on the dual-stack `[::]` socket match IPv4 networks.
#[test]
fn allow_lets_in_only_the_listed_networks() {
    let mut net = Net::new();
    let (a, b) = pair(&mut net);
    ip(&["-n", &a, "addr", "add", "10.77.0.11/24", "dev", "eth0"]);
    ip(&[
        "-n",
        &a,
        "addr",
        "add",
        "fd77::3/64",
        "dev",
        "eth0",
        "nodad",
    ]);
    let l = listen_in(
        &b,
        &[
            "--allow",
            "10.77.0.8/29",
            "--allow",
            "fd77::1",
            "--echo",
            "--stats",
            "-s",
            "-c",
            "2",
            "[::]:0",
        ],
        1,
    );
    let port = l.addr().port();
    let v4 = format!("10.77.0.2:{port}");
    let v6 = format!("[fd77::2]:{port}");
    send_ok(&a, &["-b", "10.77.0.1:0", &v4, "refused four"]);
    send_ok(&a, &["-b", "[fd77::3]:0", &v6, "refused six"]);
    for (bind, to, msg) in [
        ("10.77.0.11:0", &v4, "allowed four"),
        ("[fd77::1]:0", &v6, "allowed six"),
    ] {
        run_in(&a, &["send", "--reply", "-b", bind, to, msg]).check(
            0,
            bytes(format!("{msg}\n")),
            Expect::Empty,
        );
    }
    let addrs = l.addrs.clone();
    l.finish().check(
        0,
        from_lines(&[("10.77.0.11", "allowed four"), ("[fd77::1]", "allowed six")]),
        ready_then(
            &addrs,
            vec![line(&[
                "udpcat: received 2 datagrams",
                "; 2 refused by --allow;",
            ])],
        ),
    );
}

/// A refused sender gets no echo: after the allowed sender's echo is back, a marker sent to
/// the refused sender's socket is the first thing it receives (loopback, test sockets).
#[test]
fn allow_refused_sender_gets_no_echo() {
    let l = spawn_listen(
        &["--allow", "127.0.0.2", "--echo", "-c", "1", "127.0.0.1:0"],
        1,
    );
    let stranger = udp4();
    let friend = sock("127.0.0.2:0");
    send_to(&stranger, b"stranger", l.addr());
    send_to(&friend, b"friend", l.addr());
    assert_eq!(recv(&friend), (b"friend".to_vec(), l.addr()));
    send_to(&friend, b"marker", stranger.local_addr().unwrap());
    assert_eq!(
        recv(&stranger).0,
        b"marker",
        "the refused sender got an echo"
    );
    let addrs = l.addrs.clone();
    l.finish()
        .check(0, bytes("friend\n"), ready_then(&addrs, vec![]));
}

/// IPv4 senders on the dual-stack `[::]` socket match IPv4 networks (in a namespace of its
/// own, so the wildcard is reachable from its loopback only); an IPv6 sender does not.
#[test]
fn allow_matches_ipv4_senders_on_dual_stack_wildcard() {
    let mut net = Net::new();
    let ns = {
        let _g = SETUP.lock().unwrap_or_else(|e| e.into_inner());
        net.host("lo")
    };
    let l = listen_in(
        &ns,
        &["--allow", "127.0.0.2", "--stats", "-s", "-c", "1", "[::]:0"],
        1,
    );
    let port = l.addr().port();
    let v4 = format!("127.0.0.1:{port}");
    let v6 = format!("[::1]:{port}");
    send_ok(&ns, &["-b", "127.0.0.1:0", &v4, "stranger four"]);
    send_ok(&ns, &[&v6, "stranger six"]);
    send_ok(&ns, &["-b", "127.0.0.2:0", &v4, "friend"]);
    let addrs = l.addrs.clone();
    l.finish().check(
        0,
        from_lines(&[("127.0.0.2", "friend")]),
        ready_then(
            &addrs,
            vec![line(&[
                "udpcat: received 1 datagram",
                "; 2 refused by --allow;",
            ])],
        ),
    );
}

/// `--recv-buffer`: what the system granted is reported at `-v`; as root (SO_RCVBUFFORCE)
/// the whole size is granted.
#[test]
fn recv_buffer_reports_what_was_granted() {
    let l = spawn_listen(&["-v", "--recv-buffer", "3M", "-c", "1", "127.0.0.1:0"], 1);
    send_to(&udp4(), b"x", l.addr());
    let addr = l.addr().to_string();
    l.finish().check(
        0,
        bytes("x\n"),
        with(move |err| {
            let text = String::from_utf8_lossy(err);
            let want = format!("udpcat: info: {addr}: receive buffer 3145728 bytes granted");
            if !text.lines().any(|l| l == want) {
                return Err(format!("should have the line {want:?}"));
            }
            if text.contains("warning") {
                return Err("should have no warning (the whole buffer was granted)".into());
            }
            Ok(())
        }),
    );
}

/// Without `--recv-buffer`, listen asks for 32 MiB, which root is granted past
/// net.core.rmem_max (SO_RCVBUFFORCE), and `-v` says so. (Bursts of 64 KiB datagrams at
/// loopback speed were lost at the old 8 MiB.)
#[test]
fn default_recv_buffer_is_32_mib_for_root() {
    let l = spawn_listen(&["-v", "-c", "1", "127.0.0.1:0"], 1);
    send_to(&udp4(), b"x", l.addr());
    let want = format!(
        "udpcat: info: {}: receive buffer 33554432 bytes granted",
        l.addr()
    );
    l.finish().check(
        0,
        bytes("x\n"),
        with(move |err| {
            let text = String::from_utf8_lossy(err);
            if text.lines().any(|l| l == want) {
                Ok(())
            } else {
                Err(format!("should have the line {want:?}"))
            }
        }),
    );
}

/// `--recv-buffer` above net.core.rmem_max for a user without CAP_NET_ADMIN: a warning says
/// what was granted and how to raise the limit.
#[test]
fn recv_buffer_shortfall_warns_with_the_sysctl() {
    let max: u64 = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .expect("read /proc/sys/net/core/rmem_max")
        .trim()
        .parse()
        .expect("rmem_max is a number");
    let ask = max * 2;
    assert!(
        ask <= i32::MAX as u64,
        "net.core.rmem_max ({max}) is too large to ask for more than it"
    );
    let ask_s = ask.to_string();
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        udpcat_path(),
        "-v",
        "listen",
        "--recv-buffer",
        &ask_s,
        "-c",
        "1",
        "127.0.0.1:0",
    ]);
    cmd.env_remove("RUST_LOG");
    // (setpriv is in util-linux; a missing one fails here, naming the command.)
    let l = spawn_listen_cmd(cmd, 1);
    send_to(&udp4(), b"x", l.addr());
    let addr = l.addr().to_string();
    l.finish().check(
        0,
        bytes("x\n"),
        with(move |err| {
            let text = String::from_utf8_lossy(err);
            let info = format!("udpcat: info: {addr}: receive buffer {max} bytes granted");
            let warn = format!(
                "udpcat: warning: {addr}: asked for {ask} bytes of receive buffer, the system \
                 granted {max}; raise the limit with: sysctl -w net.core.rmem_max={ask}"
            );
            for want in [info, warn] {
                if !text.lines().any(|l| l == want) {
                    return Err(format!("should have the line {want:?}"));
                }
            }
            Ok(())
        }),
    );
}

/// Link-local IPv6 with the scope works both ways (listen and send); the scope prints as
/// the interface index; without a scope udpcat says to add `%IFACE`.
#[test]
fn link_local_with_scope_and_without() {
    let mut net = Net::new();
    let (a, b) = pair(&mut net);
    let ia = ifindex(&a, "eth0");
    let ib = ifindex(&b, "eth0");
    let l = listen_in(&b, &["--echo", "-s", "-c", "1", "[fe80::2%eth0]:0"], 1);
    let port = l.addr().port();
    assert_eq!(l.addr().to_string(), format!("[fe80::2%{ib}]:{port}"));
    let to = format!("[fe80::2%eth0]:{port}");
    run_in(&a, &["send", "--reply", "-s", &to, "hello link"]).check(
        0,
        bytes(format!("[fe80::2%{ia}]:{port}\thello link\n")),
        Expect::Empty,
    );
    let addrs = l.addrs.clone();
    let want = format!("[fe80::1%{ib}]:");
    l.finish().check(
        0,
        with(move |out| {
            let text = String::from_utf8_lossy(out);
            if text.starts_with(&want)
                && text.ends_with("\thello link\n")
                && text.lines().count() == 1
            {
                Ok(())
            } else {
                Err(format!("should be one record `{want}PORT<TAB>hello link`"))
            }
        }),
        ready_then(&addrs, vec![]),
    );

    for cmd in ["send", "listen"] {
        let mut args = vec![cmd, "[fe80::2]:9"];
        if cmd == "send" {
            args.push("x");
        }
        run_in(&a, &args).check(
            1,
            Expect::Empty,
            lines(vec![line(&[
                "udpcat: error: [fe80::2]:9 is link-local: add the interface, e.g. [fe80::2%eth0]:9",
            ])]),
        );
    }
}

/// A host made only of digits and dots must be a full dotted quad: the resolver would read
/// `1.2.3` as 1.2.0.3 and `10.1` as 10.0.0.1 and send there. Run in a namespace of its
/// own, so that even a udpcat that got it wrong sends nothing off this machine.
#[test]
fn abbreviated_ipv4_literals_are_errors_not_other_addresses() {
    let mut net = Net::new();
    let ns = net.host("h");
    for arg in ["1.2.3:5", "10.1:5", "1.2.3.4.5:5"] {
        run_in(&ns, &["send", arg, "x"]).check(
            1,
            Expect::Empty,
            lines(vec![line(&["udpcat: error:", arg, "not an IPv4 address"])]),
        );
        run_in(&ns, &["listen", "-c", "1", arg]).check(
            1,
            Expect::Empty,
            lines(vec![line(&["udpcat: error:", arg, "not an IPv4 address"])]),
        );
    }
}

/// Chunks larger than the path's MTU: the kernel refuses a segmented send there (each
/// segment must fit the MTU), and send falls back to one datagram per message, which the
/// kernel fragments. Every chunk arrives whole, in order, and nothing is said about it.
#[test]
fn segmented_send_falls_back_where_the_path_refuses_it() {
    let mut net = Net::new();
    let (a, b) = pair(&mut net);
    for ns in [&a, &b] {
        ip(&["-n", ns, "link", "set", "eth0", "mtu", "1280"]);
    }
    let l = listen_in(&b, &["-f", "raw", "-c", "20", "10.77.0.2:0"], 1);
    let input = pattern(20 * 1400);
    let file = scratch_dir("gso-fallback").join("in");
    std::fs::write(&file, &input).expect("write the input");
    let to = l.addr().to_string();
    let out = in_ns(&a, &["send", "--chunk", "1400", &to])
        .stdin(std::fs::File::open(&file).expect("open the input"))
        .output()
        .expect("run udpcat send");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", show(&out.stderr));
    let r = l.finish();
    assert!(r.stdout == input, "the chunks did not all arrive whole");
    assert_eq!(r.status.code(), Some(0), "{}", show(&r.stderr));
}
