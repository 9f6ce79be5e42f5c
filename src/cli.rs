//! The command line as clap sees it: derive structs and value parsers. Nothing runs here;
//! `listen::Config` and `send::Config` turn these into validated settings.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

use crate::exit;

/// Defines [`EXAMPLES`] and, from the same literals at compile time, the text after
/// `--help`'s options (building it at run time cost 11 % of `send`'s start-up instructions).
macro_rules! examples {
    ($(($what:literal, $cmd:literal $(,)?)),* $(,)?) => {
        /// (what it does, the command): shown in `--help`, the man page and the README.
        pub const EXAMPLES: &[(&str, &str)] = &[$(($what, $cmd)),*];

        /// `--help`'s text after the options: every example, then the exit statuses.
        const LONG_HELP: &str = concat!(
            "Examples:\n",
            $("  ", $what, ":\n    ", $cmd, "\n",)*
            "\n",
            exit::exit_table!()
        );
    };
}

examples![
    (
        "Watch a port (Ctrl-C stops; -s shows who sent each datagram)",
        "udpcat listen -s 127.0.0.1:12345",
    ),
    (
        "Send lines as datagrams, one per line, each as soon as it is complete",
        "tail -f app.log | udpcat send 192.0.2.5:514",
    ),
    (
        "Script a check: wait at most 2 s for one datagram, exit 3 if none comes",
        "udpcat listen --count 1 --timeout 2s --ready-file /tmp/ready 127.0.0.1:9000",
    ),
    (
        "Ping a service: one reply per datagram, round trips with --stats",
        "udpcat send --reply --stats 127.0.0.1:7 hello",
    ),
    (
        "Bytes exactly, in both directions",
        "udpcat listen -f hex 127.0.0.1:9000 | udpcat send --hex 127.0.0.1:9001",
    ),
    (
        "One JSON object per datagram",
        "udpcat listen -f json 127.0.0.1:9000",
    ),
    (
        "Watch a multicast group on one interface",
        "udpcat listen -s --join 239.1.2.3 --interface eth0 0.0.0.0:5000",
    ),
    (
        "Discover: broadcast a probe and print every answer for 1 s",
        "udpcat send --broadcast --wait 1s -s 192.0.2.255:5000 who-is-there",
    ),
    (
        "Mock a service: each datagram runs a command, its output is the reply",
        "udpcat listen --exec 'tr a-z A-Z' 127.0.0.1:9000",
    ),
    (
        "Relay to a server and show both directions",
        "udpcat listen -s --forward 192.0.2.53:53 127.0.0.1:5353",
    ),
    (
        "Watch with Wireshark, no capture rights needed",
        "udpcat listen -f pcap 127.0.0.1:9000 | wireshark -k -i -",
    ),
    (
        "Replay a capture at the captured pace",
        "udpcat send --replay traffic.pcap 127.0.0.1:9000",
    ),
];

/// Send, watch and script UDP datagrams: one datagram is one record, in both directions.
///
/// `udpcat listen` receives datagrams and prints each one as a record on stdout; `udpcat send`
/// sends MESSAGE, or stdin cut into records (one per line by default), as datagrams. Nothing is
/// truncated (buffers hold the largest UDP payload), a listener never latches onto one sender,
/// a record is sent as soon as it is complete, payloads are escaped before they reach a
/// terminal, and every outcome has its own exit status.
#[derive(Debug, Parser)]
#[command(
    name = "udpcat",
    version,
    after_help = "See --help for examples and the exit statuses.",
    after_long_help = LONG_HELP,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More messages on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides
    #[arg(short, long, action = ArgAction::Count, global = true, help_heading = "Global options")]
    pub verbose: u8,

    /// Only errors on stderr; hides the "listening on" line
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Global options"
    )]
    pub quiet: bool,

    /// IPv4 only: resolve names and localhost to IPv4 addresses
    #[arg(
        short = '4',
        long = "ipv4",
        global = true,
        conflicts_with = "ipv6",
        help_heading = "Global options"
    )]
    pub ipv4: bool,

    /// IPv6 only: resolve names and localhost to IPv6 addresses
    #[arg(
        short = '6',
        long = "ipv6",
        global = true,
        help_heading = "Global options"
    )]
    pub ipv6: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive datagrams and print one record per datagram on stdout
    #[command(after_long_help = LONG_HELP)]
    Listen(ListenArgs),
    /// Send MESSAGE, or stdin, as datagrams
    #[command(after_long_help = LONG_HELP)]
    Send(SendArgs),
    /// Print a shell completion script
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff) on stdout
    Man,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

/// How a received datagram is written as a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// The payload, then a newline (none added when it already ends in one)
    #[default]
    Text,
    /// The payload bytes exactly, nothing added
    Raw,
    /// The payload as lowercase hex on one line
    Hex,
    /// One JSON object per line: ts, from, to, len, text or base64
    Json,
    /// For people: a header line per datagram, then the payload as hexdump -C shows it
    Dump,
    /// A pcap capture stream (Wireshark, tshark, tcpdump): IP sockets only, not a terminal
    Pcap,
}

/// Options shared by everything that prints datagrams (listen, and send's replies).
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Record format
    ///
    /// text: the payload and a newline (none added when it already ends in one); on a
    /// terminal, control characters, bidi overrides and bytes that are not UTF-8 are shown
    /// escaped (\x1b, \u{202e}, \xff). raw: the payload bytes exactly, nothing added. hex: the
    /// payload as lowercase hex on one line (send --hex reads it back). json: one object per
    /// line with ts, from, to, len, and text (UTF-8) or base64. dump: a header line (arrival
    /// time, sender > receiving address, length), the payload as hexdump -C shows it, a blank
    /// line; safe on any terminal. pcap: a classic libpcap stream (nanosecond times, link type
    /// RAW) with a synthesized IP and UDP header per datagram, for `| wireshark -k -i -` or
    /// `| tshark -r -`; never to a terminal, IP sockets only.
    #[arg(short, long, value_enum, default_value_t)]
    pub format: Format,

    /// Start text and hex records with the arrival time (RFC 3339, UTC, microseconds) and a
    /// TAB, before the -s address
    ///
    /// The kernel's receive timestamp of each datagram, so records read late still show
    /// when they arrived.
    #[arg(short = 'T', long)]
    pub timestamp: bool,

    /// Start text and hex records with the sender's address and a TAB
    ///
    /// On a terminal, a newline inside a payload is then shown as \n, so no payload can print
    /// a line that looks like another sender's record. Not with raw or json.
    #[arg(short, long)]
    pub source: bool,
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Addresses to bind: HOST:PORT, 1.2.3.4:PORT, [::1]:PORT, PORT or :PORT (localhost);
    /// port 0 picks a free port. localhost binds 127.0.0.1 and ::1. unix:PATH (or any path
    /// with a /) is a Unix datagram socket, created and removed at exit; unix:@NAME a Linux
    /// abstract one.
    #[arg(value_name = "ADDR", required = true)]
    pub addrs: Vec<String>,

    #[command(flatten)]
    pub output: OutputArgs,

    /// End each text or hex record with NUL instead of a newline (text and hex only)
    #[arg(short = '0', long)]
    pub null: bool,

    /// Exit after N datagrams
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Give up after DUR without a datagram (500ms, 2s, 1m)
    ///
    /// The clock restarts with every datagram. When it runs out, udpcat exits 3 if --count was
    /// not reached (or, without --count, if no datagram came at all), and 0 otherwise.
    #[arg(short, long, value_name = "DUR", value_parser = parse_wait)]
    pub timeout: Option<Duration>,

    /// Send each datagram back to its sender, unchanged
    #[arg(long, conflicts_with = "exec")]
    pub echo: bool,

    /// Answer each datagram with what CMD prints (CMD runs through the shell per datagram)
    ///
    /// CMD runs as `sh -c CMD` (`cmd /C CMD` on Windows) with the payload on its stdin, then
    /// end of file; the payload is never put on a command line or in the environment. The
    /// environment adds UDPCAT_PEER, UDPCAT_PEER_ADDR, UDPCAT_PEER_PORT, UDPCAT_LOCAL,
    /// UDPCAT_LOCAL_ADDR, UDPCAT_LOCAL_PORT and UDPCAT_INDEX (1 for the first datagram). When
    /// CMD exits 0, everything it printed goes back to the sender as one datagram, from the
    /// address the datagram arrived on; empty output sends nothing. A non-zero exit, a
    /// signal, output larger than a datagram or --exec-timeout: a warning naming the
    /// datagram, and no reply. CMD's stderr is udpcat's. With --count N, udpcat ends once
    /// N commands have finished. Anyone who can reach the port runs CMD with their payload
    /// as input: bind to loopback or use --allow.
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,

    /// Relay each datagram to DEST and DEST's replies back to the sender (repeatable: a copy
    /// to each)
    ///
    /// Each sender (peer) gets its own socket per DEST (an ephemeral port, connected), so
    /// DEST sees one steady address per peer and each peer gets exactly its own replies, from
    /// the address its datagram arrived on. Both directions are printed (-s shows who sent
    /// each; json adds "dir": "forward" or "reply"). A DEST that is slow, refuses or is
    /// unreachable never delays or loses what goes to the others; its errors are counted.
    /// With --count N, udpcat ends after N datagrams from peers, once their replies came
    /// (or after a grace of 500ms).
    #[arg(long, value_name = "DEST", conflicts_with_all = ["exec", "echo"])]
    pub forward: Vec<String>,

    /// With --forward, close a peer's sockets after DUR without a datagram either way
    /// (default 60s)
    #[arg(long, value_name = "DUR", value_parser = parse_wait)]
    pub forward_idle: Option<Duration>,

    /// With --forward, at most N peers at once (default 1024); one more closes the least
    /// recently active
    #[arg(long, value_name = "N", value_parser = parse_max_peers)]
    pub max_peers: Option<usize>,

    /// With --exec, how long a command may run (default 10s); then it and what it started
    /// are stopped, and nothing is sent
    #[arg(long, value_name = "DUR", value_parser = parse_wait)]
    pub exec_timeout: Option<Duration>,

    /// With --exec, how many commands run at once (default 16); with all busy, udpcat stops
    /// reading and the system queues datagrams. --jobs 1 answers in order
    #[arg(long, value_name = "N", value_parser = parse_jobs)]
    pub jobs: Option<usize>,

    /// Accept only senders in this network (repeatable; a bare IP is a /32 or /128)
    ///
    /// Datagrams from anywhere else are neither printed nor echoed; --stats counts them. IPv4
    /// senders on a dual-stack [::] socket match IPv4 networks.
    #[arg(long, value_name = "CIDR", value_parser = parse_net)]
    pub allow: Vec<IpNet>,

    /// Join a multicast group (repeatable, IPv4 or IPv6); binding ADDR to a group joins it too
    #[arg(long, value_name = "GROUP", value_parser = parse_group)]
    pub join: Vec<IpAddr>,

    /// The interface (name or one of its addresses) to join groups on
    #[arg(long, value_name = "NAME|ADDR")]
    pub interface: Option<String>,

    /// Share the port with other sockets that also ask for it (SO_REUSEPORT)
    #[arg(long)]
    pub reuse_port: bool,

    /// Socket receive buffer, 4K to 1G (e.g. 8M); the default asks for 32 MiB so bursts are
    /// not dropped (granted past net.core.rmem_max only to root; -v says what was granted)
    #[arg(long, value_name = "BYTES", value_parser = parse_recv_buffer)]
    pub recv_buffer: Option<usize>,

    /// Once every socket is bound, write their addresses to PATH, one per line (atomically)
    ///
    /// A file left at PATH by an earlier run is removed before binding, so a script waiting
    /// for PATH never reads an old address.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,

    /// On exit, a summary on stderr: datagrams, bytes, elapsed, rate, refused, dropped
    #[arg(long)]
    pub stats: bool,

    /// While running, one live status line on stderr: datagrams, bytes, rate, kernel drops
    ///
    /// Only when stderr is a terminal (into a pipe or file it does nothing); redrawn at most
    /// ten times a second and erased at exit.
    #[arg(long)]
    pub progress: bool,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Destination: HOST:PORT, 1.2.3.4:PORT, [::1]:PORT, PORT or :PORT (localhost), or a Unix
    /// datagram socket: unix:PATH (or any path with a /), unix:@NAME (Linux abstract)
    #[arg(value_name = "ADDR")]
    pub addr: String,

    /// Words joined by single spaces make one datagram; without them, stdin is read
    #[arg(value_name = "MESSAGE", value_parser = clap::value_parser!(OsString))]
    pub message: Vec<OsString>,

    /// Send the UDP datagrams of a capture instead of stdin records (- for stdin)
    ///
    /// pcap (microsecond or nanosecond, either byte order), pcapng, or the json lines of
    /// listen -f json, recognised by content. Every UDP datagram in it (IPv4 and IPv6,
    /// fragments reassembled) goes to ADDR with its payload unchanged, at the captured times
    /// (see --speed); other packets are skipped (-v says how many). A damaged file stops
    /// udpcat naming the packet: every datagram before it was sent.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["message", "null", "whole", "chunk", "hex", "binary"])]
    pub replay: Option<PathBuf>,

    /// With --replay, only datagrams whose original destination port was PORT (repeatable)
    #[arg(long, value_name = "PORT")]
    pub replay_port: Vec<u16>,

    /// With --replay, play the capture X times as fast (default 1; 2 is twice as fast; max
    /// sends without waiting)
    #[arg(long, value_name = "X|max", value_parser = parse_speed)]
    pub speed: Option<f64>,

    /// With --replay, play the whole capture N times
    #[arg(long = "loop", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub loop_count: Option<u64>,

    /// stdin holds NUL-terminated records instead of lines
    #[arg(short = '0', long, conflicts_with_all = ["whole", "chunk", "message"])]
    pub null: bool,

    /// All of stdin is one datagram
    #[arg(long, conflicts_with_all = ["chunk", "message"])]
    pub whole: bool,

    /// stdin is cut into datagrams of BYTES (the last one shorter); implies --binary
    ///
    /// For binary streams: a chunk may split a UTF-8 character, so no UTF-8 check is made.
    /// BYTES may carry a suffix (1472, 64K) and must fit one datagram (65507 over IPv4).
    #[arg(long, value_name = "BYTES", value_parser = parse_chunk, conflicts_with = "message")]
    pub chunk: Option<usize>,

    /// Send bytes unchanged (records need not be UTF-8)
    #[arg(long, conflicts_with = "hex")]
    pub binary: bool,

    /// Read each record as hex text and send the bytes it spells
    ///
    /// Whitespace and ':' may sit between bytes ("de ad:be ef"); each byte needs two digits.
    /// `udpcat listen -f hex` output, piped in, is sent back byte for byte.
    #[arg(short = 'x', long, conflicts_with = "chunk")]
    pub hex: bool,

    /// Local address (and port) to send from; without a port, any free port
    ///
    /// With a name that has addresses of both families (localhost), the one of the
    /// destination's family is used.
    #[arg(short, long, value_name = "ADDR")]
    pub bind: Option<String>,

    /// Send each datagram N times in a row
    ///
    /// Records are repeated as they are read, so stdin is never held in memory.
    #[arg(short = 'n', long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub repeat: u64,

    /// At most N datagrams per second, evenly spaced
    ///
    /// An absolute schedule: datagram k goes at k/N s, so the rate holds on average (within
    /// 1 % up to 10,000/s); when udpcat itself falls behind it sends what is due in one batch.
    /// Time spent waiting for input or a reply is not made up: no burst after idle input.
    #[arg(long, value_name = "N", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// After each datagram wait for one reply and print it, then send the next (UDP ping)
    ///
    /// A reply that does not come within --timeout is reported as a warning and udpcat goes on
    /// with the next record; it exits 3 at the end if any reply was missing. With --stats the
    /// summary adds loss % and round-trip min/avg/max/mdev and p50/p90/p99.
    #[arg(short, long)]
    pub reply: bool,

    /// After the last datagram, print every datagram that comes back for DUR
    ///
    /// For discovery over broadcast or multicast, where any number of hosts may answer (use
    /// -s to see who). Exits 3 if nothing came back at all.
    #[arg(short, long, value_name = "DUR", value_parser = parse_wait)]
    pub wait: Option<Duration>,

    /// With --reply, how long to wait for each reply (default 2s)
    #[arg(short, long, value_name = "DUR", value_parser = parse_wait)]
    pub timeout: Option<Duration>,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Allow sending to a broadcast address
    ///
    /// A unicast destination is still a connected socket with it: "port unreachable" is
    /// reported (exit 4).
    #[arg(long)]
    pub broadcast: bool,

    /// Hop limit (unicast and multicast)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=255))]
    pub ttl: Option<u32>,

    /// Outgoing interface (name or one of its addresses): for multicast, the interface to
    /// send on; otherwise the socket is bound to it
    #[arg(long, value_name = "NAME|ADDR")]
    pub interface: Option<String>,

    /// Deliver multicast to listeners on this host too (off by default)
    #[arg(long)]
    pub multicast_loop: bool,

    /// On exit, a summary on stderr: datagrams and bytes sent, replies, round trips
    ///
    /// With --reply, like ping: loss % (datagrams without their reply in time) and round
    /// trip min/avg/max/mdev with the p50/p90/p99 percentiles.
    #[arg(long)]
    pub stats: bool,

    /// While running, one live status line on stderr: datagrams, bytes, rate, and percent
    /// and time left when stdin or the --replay capture is a file
    ///
    /// Only when stderr is a terminal (into a pipe or file it does nothing); redrawn at most
    /// ten times a second and erased at exit. A capture's percent is of its bytes read
    /// (the reader is up to 256 KiB ahead of what was sent; every --loop counts).
    #[arg(long)]
    pub progress: bool,
}

/// `500ms`, `2s`, `1m`, `1h 30m`: humantime's syntax, plus a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let shown = crate::output::escape_message(s);
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("'{shown}' is not a duration (try 500ms, 2s, 1m)"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("'{shown}' is not a duration ({e}; try 500ms, 2s, 1m)"))
}

/// The longest wait udpcat takes: long enough for anything, short enough that deadlines
/// computed from it never overflow.
pub const MAX_WAIT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A duration for --timeout and --wait: more than zero, at most ten years.
pub fn parse_wait(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    let shown = crate::output::escape_message(s);
    if d.is_zero() {
        return Err(format!(
            "'{shown}' is no time at all: give more than 0 (e.g. 500ms)"
        ));
    }
    if d > MAX_WAIT {
        return Err(format!(
            "'{shown}' is longer than udpcat waits (at most 10 years)"
        ));
    }
    Ok(d)
}

/// A byte count with an optional binary suffix: `4096`, `64K`, `8M`, `8MiB`.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let shown = crate::output::escape_message(s);
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits);
    let n: usize = num
        .parse()
        .map_err(|_| format!("'{shown}' is not a byte count (try 4096, 64K, 8M)"))?;
    let mult: usize = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("'{shown}' is not a byte count (try 4096, 64K, 8M)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{shown}' is too large"))
}

/// `--chunk BYTES`: at least 1. Whether it fits one datagram depends on the destination's
/// family, so `send::Config` checks that, the same way for every size.
fn parse_chunk(s: &str) -> Result<usize, String> {
    match parse_bytes(s)? {
        0 => Err("a chunk must be at least 1 byte".into()),
        n => Ok(n),
    }
}

/// The smallest `--recv-buffer` udpcat asks for (the kernel's own floor is about 2 KiB).
pub const MIN_RECV_BUFFER: usize = 4 << 10;
/// The largest: Linux keeps a socket's buffer size in an int, twice what it can use.
pub const MAX_RECV_BUFFER: usize = 1 << 30;

fn parse_recv_buffer(s: &str) -> Result<usize, String> {
    match parse_bytes(s)? {
        n if n < MIN_RECV_BUFFER => Err(format!(
            "{n} bytes is too small a receive buffer: at least 4K ({MIN_RECV_BUFFER} bytes)"
        )),
        n if n > MAX_RECV_BUFFER => Err(format!(
            "{n} bytes is more receive buffer than a socket can have: at most 1G ({MAX_RECV_BUFFER} bytes)"
        )),
        n => Ok(n),
    }
}

fn parse_max_peers(s: &str) -> Result<usize, String> {
    let shown = crate::output::escape_message(s);
    match s.parse::<usize>() {
        Ok(n @ 1..=1_000_000) => Ok(n),
        _ => Err(format!("'{shown}' is not a number of peers (1 to 1000000)")),
    }
}

/// `--speed`: a factor more than 0, or `max` (infinity: no waiting).
fn parse_speed(s: &str) -> Result<f64, String> {
    let shown = crate::output::escape_message(s);
    if s.eq_ignore_ascii_case("max") {
        return Ok(f64::INFINITY);
    }
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!(
            "'{shown}' is not a speed (a factor more than 0, e.g. 2 or 0.5, or max)"
        )),
    }
}

fn parse_jobs(s: &str) -> Result<usize, String> {
    let shown = crate::output::escape_message(s);
    match s.parse::<usize>() {
        Ok(n @ 1..=4096) => Ok(n),
        _ => Err(format!("'{shown}' is not a number of jobs (1 to 4096)")),
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let shown = crate::output::escape_message(s);
    match s.parse::<f64>() {
        // The gap between datagrams (1/N s) must be a time udpcat can wait.
        Ok(r) if r.is_finite() && r > 0.0 && 1.0 / r <= MAX_WAIT.as_secs_f64() => Ok(r),
        _ => Err(format!(
            "'{shown}' is not a rate (datagrams per second, more than 0; at least one per 10 years)"
        )),
    }
}

fn parse_group(s: &str) -> Result<IpAddr, String> {
    let shown = crate::output::escape_message(s);
    match s.parse::<IpAddr>() {
        Ok(ip) if ip.is_multicast() => Ok(ip),
        Ok(_) => Err(format!(
            "{s} is not a multicast group (224.0.0.0/4, ff00::/8)"
        )),
        Err(_) => Err(format!("'{shown}' is not an IP address")),
    }
}

/// A network in CIDR notation, or a bare address meaning just that host.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let shown = crate::output::escape_message(s);
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("'{shown}' is not a network (try 10.0.0.0/8, 192.0.2.7, fd00::/8)"))
}

/// clap's error as udpcat's one line, `udpcat: error: ...` with its newline: clap's message
/// with its lists folded in (`... not provided: <ADDR>`), its tips after a `;`, and a hint
/// naming the help of the command that failed (`(see 'udpcat listen --help')`). `args` is the
/// command line after the program name, to find that command. Everything the user typed that
/// clap quotes is escaped first, so the only newlines left are clap's own layout.
pub fn usage_error_line(mut err: clap::Error, args: &[OsString]) -> String {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let cmd = Cli::command();
    let escape = |s: &str| crate::output::escape_message(s);
    // The first word that is not a flag names the command: the top level has no flag that
    // takes a value.
    let sub = args
        .iter()
        .find(|a| !a.as_encoded_bytes().starts_with(b"-"))
        .and_then(|a| a.to_str())
        .filter(|w| *w != "help" && cmd.find_subcommand(w).is_some());
    let hint = match sub {
        Some(sub) => format!("(see 'udpcat {sub} --help')"),
        None => "(see 'udpcat --help')".to_string(),
    };
    let missing = matches!(
        err.kind(),
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    let message = if missing && sub.is_none() {
        let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
        let list = match names.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        format!("a command is needed: {list}")
    } else if let (Some(sub), ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) =
        (sub, err.kind())
    {
        // clap would print the whole help here; one line says the same.
        format!("'udpcat {sub}' needs arguments")
    } else {
        let quoted: Vec<(ContextKind, ContextValue)> = err
            .context()
            .filter_map(|(kind, value)| match value {
                ContextValue::String(s) => Some((kind, ContextValue::String(escape(s)))),
                ContextValue::Strings(v) => Some((
                    kind,
                    ContextValue::Strings(v.iter().map(|s| escape(s)).collect()),
                )),
                // Tips quote the argument too (`to pass '-Z' as a value, use '-- -Z'`).
                ContextValue::StyledStrs(v) => Some((
                    kind,
                    ContextValue::StyledStrs(
                        v.iter().map(|s| escape(&s.to_string()).into()).collect(),
                    ),
                )),
                _ => None,
            })
            .collect();
        for (kind, value) in quoted {
            err.insert(kind, value);
        }
        fold_clap_message(&err.render().to_string())
    };
    // A defensive last pass: anything clap added that could still drive a terminal.
    format!("udpcat: error: {} {hint}\n", escape(&message))
}

/// clap's rendered error (`error: MESSAGE\n  item...\n\n  tip: ...\n\nUsage: ...\n\nFor more
/// information...`) as one line: the message, list items joined after a `:` with commas,
/// tips after `; `. Usage and the pointer to `--help` are left out (the caller adds its own).
fn fold_clap_message(rendered: &str) -> String {
    let rendered = rendered.trim();
    let rendered = rendered.strip_prefix("error:").unwrap_or(rendered).trim();
    let mut parts: Vec<String> = Vec::new();
    for (i, block) in rendered.split("\n\n").enumerate() {
        let block = block.trim();
        if block.starts_with("Usage:") || block.starts_with("For more information") {
            continue;
        }
        let mut lines = block.lines().map(str::trim).filter(|l| !l.is_empty());
        if i == 0 {
            let head = lines.next().unwrap_or_default().to_string();
            let items: Vec<&str> = lines.collect();
            parts.push(match (head.ends_with(':'), items.is_empty()) {
                (_, true) => head,
                (true, false) => format!("{head} {}", items.join(", ")),
                (false, false) => format!("{head} {}", items.join(" ")),
            });
        } else {
            parts.extend(lines.map(String::from));
        }
    }
    parts.join("; ")
}

/// Writes the man page: the top-level page, then each subcommand's options, EXAMPLES and
/// EXIT STATUS, all from the same clap definition as `--help`.
pub fn write_man(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap::CommandFactory;
    use clap_mangen::roff::{Roff, bold, roman};
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    render_commands(&cmd, out)?;
    for (name, heading) in [("listen", "LISTEN OPTIONS"), ("send", "SEND OPTIONS")] {
        if let Some(sub) = cmd.find_subcommand(name) {
            let sub = sub
                .clone()
                .disable_help_flag(true)
                .mut_args(|a| a.help_heading(heading));
            clap_mangen::Man::new(sub).render_options_section(out)?;
        }
    }
    let mut roff = Roff::default();
    roff.control("SH", ["EXAMPLES"]);
    for (what, example) in EXAMPLES {
        roff.control("TP", []);
        roff.text([roman(format!("{what}:"))]);
        roff.control("RS", ["4"]);
        roff.control("nf", []);
        roff.text([bold(*example)]);
        roff.control("fi", []);
        roff.control("RE", []);
    }
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in exit::entries() {
        roff.control("TP", []);
        roff.text([bold(code)]);
        roff.text([roman(meaning)]);
    }
    roff.to_writer(out)?;
    man.render_version_section(out)
}

/// The COMMANDS section: each command described here, its options pointed to by the
/// section heading they have on this page. (clap_mangen's own section points to
/// udpcat-listen(1) and the like, pages that do not exist, and lists `help`.)
fn render_commands(cmd: &clap::Command, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap_mangen::roff::{Roff, bold, italic, roman};
    let mut roff = Roff::default();
    roff.control("SH", ["COMMANDS"]);
    for sub in cmd.get_subcommands() {
        let name = sub.get_name();
        let mut synopsis = vec![bold(format!("udpcat {name}"))];
        if sub
            .get_arguments()
            .any(|a| !a.is_positional() && !a.is_global_set())
        {
            synopsis.push(roman(" [OPTIONS]"));
        }
        for arg in sub.get_positionals() {
            let value = arg.get_value_names().and_then(|v| v.first()).map_or_else(
                || arg.get_id().to_string().to_uppercase(),
                |v| v.to_string(),
            );
            let many = arg.get_num_args().is_some_and(|n| n.max_values() > 1)
                || matches!(arg.get_action(), ArgAction::Append);
            let (open, close) = if arg.is_required_set() {
                (" ", "")
            } else {
                (" [", "]")
            };
            synopsis.push(roman(open));
            synopsis.push(italic(value));
            synopsis.push(roman(format!("{}{close}", if many { "..." } else { "" })));
        }
        roff.control("TP", []);
        roff.text(synopsis);
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let mut text = format!("{about}.");
        for arg in sub.get_positionals() {
            let values = arg.get_possible_values();
            if !values.is_empty() {
                let names: Vec<&str> = values.iter().map(|v| v.get_name()).collect();
                let shown = arg.get_value_names().and_then(|v| v.first());
                let shown = shown.map_or(arg.get_id().as_str(), |v| v.as_str());
                text += &format!(" {shown} is one of {}.", names.join(", "));
            }
        }
        if matches!(name, "listen" | "send") {
            text += &format!(
                " Its options are under {} OPTIONS below.",
                name.to_uppercase()
            );
        }
        roff.text([roman(text)]);
    }
    roff.to_writer(out)
}

/// Writes the completion script for `shell`, generated from the same clap definition.
pub fn write_completions(shell: Shell, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap::CommandFactory;
    use clap_complete::Shell as S;
    let shell = match shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
        Shell::Elvish => S::Elvish,
        Shell::Powershell => S::PowerShell,
    };
    // clap_complete panics when a write fails (a closed pipe); render first, then write,
    // so a reader that goes away is the ordinary quiet exit.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "udpcat", &mut script);
    out.write_all(&script)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn usage_line(args: &[&str]) -> String {
        let err = Cli::try_parse_from(std::iter::once("udpcat").chain(args.iter().copied()))
            .expect_err("a usage error");
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        usage_error_line(err, &args)
    }

    #[test]
    fn usage_errors_fold_into_one_line() {
        assert_eq!(
            usage_line(&["listen"]),
            "udpcat: error: the following required arguments were not provided: <ADDR>... \
             (see 'udpcat listen --help')\n"
        );
        assert_eq!(
            usage_line(&["-v", "listen", "--cont", "1", "x"]),
            "udpcat: error: unexpected argument '--cont' found; \
             tip: a similar argument exists: '--count' (see 'udpcat listen --help')\n"
        );
        assert_eq!(
            usage_line(&[]),
            "udpcat: error: a command is needed: listen, send, completions or man \
             (see 'udpcat --help')\n"
        );
        assert_eq!(
            usage_line(&["send", "--bind", "listen", "-c"]),
            "udpcat: error: unexpected argument '-c' found; \
             tip: to pass '-c' as a value, use '-- -c' (see 'udpcat send --help')\n"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_wait("0").is_err());
        assert!(parse_wait("0s").is_err());
        assert!(parse_wait("1e19").is_err());
        assert_eq!(parse_wait("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_rate("1e-20").is_err());
        assert!(parse_rate("1e-300").is_err());
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64K"), Ok(65536));
        assert_eq!(parse_bytes("8MiB"), Ok(8 << 20));
        assert!(parse_bytes("8X").is_err());
        assert!(parse_bytes("").is_err());
        assert!(parse_chunk("0").is_err());
        assert_eq!(parse_chunk("1472"), Ok(1472));
        assert!(parse_recv_buffer("0").is_err());
        assert!(parse_recv_buffer("4095").is_err());
        assert_eq!(parse_recv_buffer("4K"), Ok(4096));
        assert_eq!(parse_recv_buffer("1G"), Ok(1 << 30));
        assert!(parse_recv_buffer("1025M").is_err());
    }

    #[test]
    fn networks() {
        assert_eq!(
            parse_net("10.1.2.3/8").map(|n| n.to_string()),
            Ok("10.0.0.0/8".into())
        );
        assert_eq!(
            parse_net("192.0.2.7").map(|n| n.to_string()),
            Ok("192.0.2.7/32".into())
        );
        assert_eq!(
            parse_net("::1").map(|n| n.to_string()),
            Ok("::1/128".into())
        );
        assert!(parse_net("10.0.0.0/33").is_err());
    }
}
