//! The listen loop: bind every address, announce readiness, receive in batches, print each
//! datagram as a record, flush whenever nothing is waiting, stop on --count, --timeout, a
//! signal or a reader that went away.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use ipnet::IpNet;

use crate::addr::{self, Addr, Family, Host, UnixAddr};
use crate::cli::{Format, ListenArgs};
use crate::exit::{self, Fail, Status};
use crate::logging;
use crate::net::{self, ListenOptions, Listener, Poller, Receiver};
use crate::output::{self, Datagram, Dir, Printer};
use crate::progress::{self, Progress};
use crate::role::echo::Echo;
use crate::role::exec::{self as exec_role, Exec, ExecConfig};
use crate::role::forward::{self as forward_role, Forward, ForwardConfig};
use crate::role::{Incoming, Role};
use crate::signal::Signals;

/// One address to bind; `optional` ones (::1 for localhost) are skipped where the system
/// has no IPv6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindGroup {
    pub arg: String,
    pub addrs: Vec<SocketAddr>,
    pub v6_optional: bool,
    /// A Unix datagram socket instead of IP addresses.
    pub unix: Option<UnixAddr>,
}

/// The role a listener plays besides printing.
#[derive(Debug, Clone)]
pub enum RoleConfig {
    Print,
    Echo,
    Exec(ExecConfig),
    Forward(ForwardConfig),
}

/// Everything `listen` needs, validated.
#[derive(Debug)]
pub struct Config {
    pub groups: Vec<BindGroup>,
    pub output: output::Options,
    pub count: Option<u64>,
    pub timeout: Option<Duration>,
    /// What is done with each datagram besides printing it.
    pub role: RoleConfig,
    pub allow: Vec<IpNet>,
    pub socket: ListenOptions,
    /// `--recv-buffer` was given (a shortfall is then worth a warning).
    pub recv_buffer_asked: bool,
    /// Groups to join: `--join` and every ADDR that is a multicast group.
    pub join: Vec<std::net::IpAddr>,
    pub interface: Option<net::Interface>,
    pub ready_file: Option<PathBuf>,
    pub stats: bool,
    /// --progress: a live status line on a terminal's stderr.
    pub progress: bool,
    pub quiet: bool,
}

impl Config {
    pub fn new(args: ListenArgs, family: Family, quiet: bool) -> Result<Self> {
        let mut groups = Vec::new();
        for arg in &args.addrs {
            if let Some(unix) = addr::parse_unix(arg) {
                groups.push(BindGroup {
                    arg: arg.clone(),
                    addrs: Vec::new(),
                    v6_optional: false,
                    unix: Some(unix?),
                });
                continue;
            }
            let ep = addr::parse(arg)?;
            let addrs = addr::resolve(&ep, family)?;
            groups.push(BindGroup {
                arg: arg.clone(),
                addrs,
                v6_optional: ep.host == Host::Localhost && family == Family::Any,
                unix: None,
            });
        }
        if let Some(unix) = groups.iter().find(|g| g.unix.is_some()) {
            exit::refuse_ip_only(
                &[
                    (!args.join.is_empty(), "--join"),
                    (!args.allow.is_empty(), "--allow"),
                    (args.interface.is_some(), "--interface"),
                    (args.reuse_port, "--reuse-port"),
                ],
                family,
                &unix.arg,
            )?;
        }
        let mut join = args.join.clone();
        for g in &groups {
            for a in &g.addrs {
                if a.ip().is_multicast() && !join.contains(&a.ip()) {
                    join.push(a.ip());
                }
            }
        }
        for group in &args.join {
            let has_family = groups
                .iter()
                .flat_map(|g| &g.addrs)
                .any(|a| a.is_ipv4() == group.is_ipv4());
            if !has_family {
                let example = if group.is_ipv4() { "0.0.0.0" } else { "[::]" };
                anyhow::bail!(
                    "--join {group}: no listening address of its family (try {example}:PORT or the group itself)"
                );
            }
        }
        let interface = args.interface.as_deref().map(net::interface).transpose()?;
        if !args.join.is_empty() {
            // A socket bound to one unicast address only gets datagrams sent to that address.
            for a in groups.iter().flat_map(|g| &g.addrs) {
                if !a.ip().is_unspecified() && !a.ip().is_multicast() {
                    let any = if a.is_ipv4() { "0.0.0.0" } else { "[::]" };
                    tracing::warn!(
                        "{a} receives only datagrams addressed to it, not the groups it joins; \
                         listen on {any}:{} or on the group address instead",
                        a.port()
                    );
                }
            }
        }
        if interface.is_some() && join.is_empty() {
            anyhow::bail!(
                "--interface picks where to join multicast groups: give --join GROUP or a group ADDR"
            );
        }
        let sockets: usize = groups.iter().map(|g| g.addrs.len()).sum();
        let output = output::Options {
            format: args.output.format,
            null: args.null,
            source: args.output.source,
            timestamp: args.output.timestamp,
            escape: false,
        };
        output.check().map_err(exit::usage)?;
        if let (Format::Pcap, Some(unix)) =
            (output.format, groups.iter().find(|g| g.unix.is_some()))
        {
            return Err(exit::usage(output::escape_message(format!(
                "--format pcap is for IP sockets, and '{}' is a Unix socket",
                unix.arg
            ))));
        }
        check_twice(&groups)?;
        let role = match (&args.exec, args.echo) {
            _ if !args.forward.is_empty() => {
                let mut dests = Vec::new();
                for d in &args.forward {
                    if let Some(unix) = addr::parse_unix(d) {
                        dests.push(Addr::Unix(unix.context("--forward")?));
                        continue;
                    }
                    let ep = addr::parse(d).context("--forward")?;
                    if ep.port == 0 {
                        return Err(exit::usage(output::escape_message(format!(
                            "--forward {d}: a destination needs its port (0 only means \"any free port\" when binding)"
                        ))));
                    }
                    let first = addr::resolve(&ep, family)
                        .context("--forward")?
                        .into_iter()
                        .next();
                    dests.push(Addr::Ip(
                        first.ok_or_else(|| anyhow::anyhow!("--forward {d}: no address"))?,
                    ));
                }
                if args.allow.is_empty() {
                    for a in groups.iter().flat_map(|g| &g.addrs) {
                        if a.ip().is_unspecified() {
                            tracing::warn!(
                                "{a} with --forward and no --allow: anyone who can reach this \
                                 port can relay through udpcat to {}",
                                args.forward.join(", ")
                            );
                        }
                    }
                }
                RoleConfig::Forward(ForwardConfig {
                    dests,
                    idle: args.forward_idle.unwrap_or(forward_role::DEFAULT_IDLE),
                    max_peers: args.max_peers.unwrap_or(forward_role::DEFAULT_MAX_PEERS),
                    timestamps: output.needs_time(),
                })
            }
            (Some(command), _) => RoleConfig::Exec(ExecConfig {
                command: command.clone(),
                timeout: args.exec_timeout.unwrap_or(exec_role::DEFAULT_TIMEOUT),
                jobs: args.jobs.unwrap_or(exec_role::DEFAULT_JOBS),
            }),
            (None, true) => RoleConfig::Echo,
            (None, false) => RoleConfig::Print,
        };
        let no_exec = args.exec.is_none();
        exit::refuse_given(
            &[
                (no_exec && args.exec_timeout.is_some(), "--exec-timeout"),
                (no_exec && args.jobs.is_some(), "--jobs"),
            ],
            |flag| format!("{flag} has no effect without --exec (it shapes how commands run)"),
        )?;
        let no_forward = args.forward.is_empty();
        exit::refuse_given(
            &[
                (no_forward && args.forward_idle.is_some(), "--forward-idle"),
                (no_forward && args.max_peers.is_some(), "--max-peers"),
            ],
            |flag| format!("{flag} has no effect without --forward (it shapes the relay)"),
        )?;
        Ok(Config {
            groups,
            output,
            count: args.count,
            timeout: args.timeout,
            role,
            allow: args.allow,
            socket: ListenOptions {
                // Arrival times for json's `ts`, and to write the records of several sockets
                // in the order they arrived.
                timestamps: output.needs_time() || sockets > 1,
                reuse_port: args.reuse_port,
                recv_buffer: args.recv_buffer.unwrap_or(net::DEFAULT_RECV_BUFFER),
            },
            recv_buffer_asked: args.recv_buffer.is_some(),
            join,
            interface,
            ready_file: args.ready_file,
            stats: args.stats,
            progress: args.progress,
            quiet,
        })
    }
}

/// The same address given twice (`listen X X`, or `localhost:9000 127.0.0.1:9000`) would
/// fail as "another socket has this port": say what really happened.
fn check_twice(groups: &[BindGroup]) -> Result<()> {
    let mut seen: Vec<(SocketAddr, &str)> = Vec::new();
    for g in groups {
        for &a in g.addrs.iter().filter(|a| a.port() != 0) {
            if let Some((_, first)) = seen.iter().find(|(s, _)| *s == a) {
                let by = if *first == g.arg {
                    format!("'{first}' twice")
                } else {
                    format!("by both '{first}' and '{}'", g.arg)
                };
                return Err(exit::usage(output::escape_message(format!(
                    "{a} is given {by}: each address can be listened on once"
                ))));
            }
            seen.push((a, &g.arg));
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Stats {
    datagrams: u64,
    bytes: u64,
    refused: u64,
    /// Per socket, the kernel's cumulative drop counter (SO_RXQ_OVFL, then /proc at exit),
    /// where the system keeps one.
    drops: Vec<Option<u64>>,
    /// --progress, when it shows: told the totals after each batch.
    progress: Option<Progress>,
}

impl Stats {
    /// Hands the totals to the --progress line (a few stores; it draws on its own thread).
    fn publish(&self) {
        if let Some(p) = &self.progress {
            p.counts(self.datagrams, self.bytes);
            p.drops(self.drops.iter().copied().sum());
        }
    }
}

/// The most datagrams one round of listen's drain takes from a socket.
const DRAIN: usize = net::SEND_BATCH;

/// stdout buffer of listen.
const OUTPUT_BUFFER: usize = 32 * 1024;

pub fn run(cfg: Config, signals: &Signals) -> Result<Status> {
    if let Some(path) = &cfg.ready_file {
        // A script waiting for the file must never read an earlier run's address as fresh.
        remove_stale(path)?;
    }
    let mut listeners = bind_all(&cfg)?;
    let mut poller = Poller::new().context("starting the event loop")?;
    for (i, l) in listeners.iter_mut().enumerate() {
        poller
            .add(&mut l.socket, i)
            .with_context(|| format!("watching {}", l.local))?;
    }
    signals
        .register(&mut poller)
        .context("watching for signals")?;
    poller.watch_stdout().context("watching stdout")?;
    announce(&cfg, &listeners)?;

    let mut opts = cfg.output;
    opts.escape = opts.format == Format::Text && io::stdout().is_terminal();
    opts.check_stdout(io::stdout().is_terminal())
        .map_err(|e| anyhow::anyhow!(e))?;
    let mut printer = Printer::new(opts);
    // Records smaller than this are gathered into few writes; larger payloads (bulk
    // datagrams) go straight from the receive buffer, skipping a copy.
    let progress = if cfg.progress {
        Progress::start(progress::Kind::Listen)
    } else {
        None
    };
    let stdout = progress::stdout(net::stdout().context("opening stdout")?, progress.as_ref());
    let mut out = BufWriter::with_capacity(OUTPUT_BUFFER, stdout);
    // pcap's file header goes out as soon as the sockets are bound, so a reader such as
    // `wireshark -k -i -` starts at once.
    printer.begin(&mut out).context("writing to stdout")?;
    out.flush().context("writing to stdout")?;
    let mut stats = Stats {
        // The live line shows the drop counter from the start where the system keeps one.
        drops: match progress {
            Some(_) => listeners
                .iter()
                .map(|l| net::kernel_drops(&l.socket))
                .collect(),
            None => vec![None; listeners.len()],
        },
        progress,
        ..Stats::default()
    };
    let started = Instant::now();

    let mut role: Option<Box<dyn Role>> = match &cfg.role {
        RoleConfig::Print => None,
        RoleConfig::Echo => Some(Box::new(Echo::default())),
        RoleConfig::Exec(exec) => Some(Box::new(
            Exec::new(exec.clone(), &mut poller).context("starting --exec")?,
        )),
        RoleConfig::Forward(fwd) => Some(Box::new(
            Forward::new(fwd.clone(), &poller).context("starting --forward")?,
        )),
    };
    let result = receive(
        &cfg,
        &listeners,
        signals,
        &mut poller,
        &mut role,
        (&mut out, &mut printer),
        &mut stats,
    );
    // Whatever ended the loop, nothing the role started outlives it.
    if let Some(r) = role.as_mut() {
        r.stop();
    }
    let flushed = out.flush().context("writing to stdout");
    // The live line is erased before anything else is said.
    drop(stats.progress.take());
    for (l, drops) in listeners.iter().zip(&mut stats.drops) {
        if let Some(final_count) = net::kernel_drops(&l.socket) {
            *drops = Some(final_count);
        }
    }
    if cfg.stats {
        let extra = role.as_ref().map(|r| r.stats()).unwrap_or_default();
        print_stats(&stats, started.elapsed(), &extra);
    }
    let status = result?;
    flushed?;
    Ok(status)
}

fn bind_all(cfg: &Config) -> Result<Vec<Listener>> {
    let mut listeners = Vec::new();
    for group in &cfg.groups {
        listeners.extend(bind_group(group, cfg.socket)?);
    }
    for l in &listeners {
        if !cfg.join.is_empty() {
            net::join_groups(l, &cfg.join, cfg.interface.as_ref())?;
        }
        let granted = l.recv_buffer;
        tracing::info!("{}: receive buffer {granted} bytes granted", l.local);
        if l.coalesced {
            tracing::debug!(
                "{}: runs of equal-size datagrams arrive coalesced (UDP_GRO), split here",
                l.local
            );
        }
        // The kernel keeps twice the size in an int: a little under 1 GiB is the most usable.
        let asked = cfg.socket.recv_buffer.min(i32::MAX as usize / 2);
        if granted < asked {
            let msg = format!(
                "{}: asked for {asked} bytes of receive buffer, the system granted {granted}; \
                 raise the limit with: sysctl -w net.core.rmem_max={asked}",
                l.local
            );
            if cfg.recv_buffer_asked {
                tracing::warn!("{msg}");
            } else {
                tracing::debug!("{msg}");
            }
        }
    }
    Ok(listeners)
}

/// Binds every address of one argument. With port 0 they all get the port the first one
/// was given, so `localhost:0` is one port on both families.
fn bind_group(group: &BindGroup, opts: ListenOptions) -> Result<Vec<Listener>> {
    if let Some(unix) = &group.unix {
        return Ok(vec![net::bind_unix_listener(unix, opts.recv_buffer)?]);
    }
    const ATTEMPTS: usize = 20;
    let wants_free_port =
        group.addrs.first().is_some_and(|a| a.port() == 0) && group.addrs.len() > 1;
    let mut attempt = 0;
    'again: loop {
        attempt += 1;
        let mut bound: Vec<Listener> = Vec::new();
        for &addr in &group.addrs {
            let mut addr = addr;
            if let (true, Some(first)) = (wants_free_port, bound.first()) {
                addr.set_port(first.ip().map_or(0, |a| a.port()));
            }
            match net::bind_listener(addr, opts) {
                Ok(l) => bound.push(l),
                Err(e) if group.v6_optional && addr.is_ipv6() && net::is_no_ipv6(&e) => {
                    tracing::debug!("skipping {addr}: {e}");
                }
                Err(e)
                    if wants_free_port
                        && !bound.is_empty()
                        && e.kind() == io::ErrorKind::AddrInUse
                        && attempt < ATTEMPTS =>
                {
                    continue 'again;
                }
                Err(e) => return Err(bind_error(&group.arg, addr, e)),
            }
        }
        return Ok(bound);
    }
}

fn bind_error(arg: &str, addr: SocketAddr, e: io::Error) -> anyhow::Error {
    let hint = match e.kind() {
        io::ErrorKind::AddrInUse => {
            " (another socket has this port; pick another port, or --reuse-port on both)"
        }
        io::ErrorKind::PermissionDenied => " (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
        io::ErrorKind::AddrNotAvailable => " (no interface of this machine has that address)",
        _ => "",
    };
    let shown = if arg == addr.to_string() {
        addr.to_string()
    } else {
        format!("{addr} (from '{arg}')")
    };
    anyhow::anyhow!("cannot listen on {shown}: {e}{hint}")
}

/// Writes the ready file (first, so it exists once the stderr lines appear), then the lines.
fn announce(cfg: &Config, listeners: &[Listener]) -> Result<()> {
    let lines: String = listeners.iter().map(|l| format!("{}\n", l.local)).collect();
    if let Some(path) = &cfg.ready_file {
        write_atomically(path, lines.as_bytes()).with_context(|| {
            format!(
                "cannot write --ready-file {}",
                output::escape_message(path.as_os_str().as_encoded_bytes())
            )
        })?;
    }
    if !cfg.quiet {
        for l in listeners {
            logging::stderr_line(format!("listening on {}", l.local));
        }
    }
    Ok(())
}

fn remove_stale(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(anyhow::anyhow!(
            "cannot remove the old --ready-file {}: {e}",
            output::escape_message(path.as_os_str().as_encoded_bytes())
        )),
        _ => Ok(()),
    }
}

fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written =
        File::create(&tmp).and_then(|mut f| f.write_all(data).and_then(|()| f.sync_all()));
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

fn receive<W: Write>(
    cfg: &Config,
    listeners: &[Listener],
    signals: &Signals,
    poller: &mut Poller,
    role: &mut Option<Box<dyn Role>>,
    (out, printer): (&mut W, &mut Printer),
    stats: &mut Stats,
) -> Result<Status> {
    // --count counts datagrams printed, or with a role that finishes work (exec), the work
    // finished.
    let done = |stats: &Stats, role: &Option<Box<dyn Role>>| match cfg.count {
        None => false,
        Some(c) => {
            role.as_ref()
                .and_then(|r| r.finished())
                .unwrap_or(stats.datagrams)
                >= c
                && role.as_ref().is_none_or(|r| r.settled())
        }
    };
    let dir = matches!(cfg.role, RoleConfig::Forward(_)).then_some(Dir::Forward);
    // One receiver per socket: a drain takes a batch from each, then writes them merged in
    // arrival order.
    let mut rxs: Vec<Receiver> = listeners
        .iter()
        .map(|_| Receiver::new(net::BATCH))
        .collect();
    let mut got = vec![0usize; listeners.len()];
    let mut next = vec![0usize; listeners.len()];
    let needs_time = cfg.output.needs_time();
    let eager_flush = net::stdout_kind() != net::StdoutKind::Null;
    // With nothing else to watch, waiting is receiving (one system call less per wake-up).
    let direct = net::DirectWait::new(listeners, role.as_ref().is_some_and(|r| r.has_events()))
        .context("setting up the socket for blocking receives")?;
    let mut last_datagram = Instant::now();
    loop {
        // Drain every socket, one batch each in turn, until none has anything waiting.
        let mut busy = true;
        while busy {
            busy = false;
            // Datagrams per round of the drain: up to a whole receive's worth (32 messages,
            // each of up to 64 datagrams where the kernel coalesced them), so a relay's
            // flush sends them in one batch.
            let room = cfg.count.map_or(DRAIN as u64, |c| {
                c.saturating_sub(stats.datagrams).min(DRAIN as u64)
            }) as usize;
            // A role with no room left (all --jobs busy) means: leave it in the kernel.
            let room = role
                .as_ref()
                .and_then(|r| r.room())
                .map_or(room, |r| r.min(room));
            if room == 0 {
                break;
            }
            for (i, l) in listeners.iter().enumerate() {
                got[i] = rxs[i]
                    .recv(&l.socket, room)
                    .with_context(|| format!("receiving on {}", l.local))?;
                next[i] = 0;
                // A short batch means the queue was empty: no need to ask again before
                // polling (one system call less per wake-up).
                busy |= rxs[i].more();
            }
            if got.iter().all(|&n| n == 0) {
                break;
            }
            let read_at = Instant::now();
            // Datagrams the kernel did not stamp show when udpcat read them.
            let read_time = if needs_time {
                SystemTime::now()
            } else {
                SystemTime::UNIX_EPOCH
            };
            while let Some(i) = earliest(&rxs, &got, &next) {
                let k = next[i];
                next[i] += 1;
                let l = &listeners[i];
                let (payload, meta) = rxs[i].get(k);
                let from = meta.from.canonical();
                if let Some(d) = meta.drops {
                    stats.drops[i] = Some(u64::from(d));
                }
                if !cfg.allow.is_empty()
                    && !from
                        .ip()
                        .is_some_and(|a| cfg.allow.iter().any(|net| net.contains(&a.ip())))
                {
                    stats.refused += 1;
                    continue;
                }
                if meta.truncated {
                    tracing::warn!(
                        "datagram from {from} was larger than {} bytes and was cut",
                        net::DATAGRAM_BUFFER
                    );
                }
                let to = match (meta.to, l.ip()) {
                    (Some(ip), Some(local)) if l.wildcard => {
                        Cow::Owned(Addr::Ip(addr::canonical(SocketAddr::new(ip, local.port()))))
                    }
                    _ => Cow::Borrowed(&l.local),
                };
                printer
                    .write(
                        out,
                        &Datagram {
                            payload,
                            from: &from,
                            to: &to,
                            at: meta.at.unwrap_or(read_time),
                            dir,
                        },
                    )
                    .context("writing to stdout")?;
                stats.datagrams += 1;
                stats.bytes += payload.len() as u64;
                // Only accepted datagrams restart the --timeout clock.
                last_datagram = read_at;
                if let Some(role) = role.as_mut() {
                    let incoming = Incoming {
                        index: stats.datagrams,
                        payload,
                        from: &meta.from,
                        peer: &from,
                        local: &to,
                        socket: i,
                        reply_from: meta.reply_from,
                    };
                    role.take(&incoming, listeners)?;
                }
                // A role with work queued is not settled, so nothing is left unflushed here.
                if done(stats, role) {
                    return Ok(Status::Success);
                }
            }
            if let Some(r) = role.as_mut() {
                r.flush()?;
            }
            stats.publish();
            if let Some(status) = signals.stop_requested() {
                return Ok(status);
            }
        }
        // Nothing is waiting: everything received so far goes out before we block.
        if eager_flush {
            out.flush().context("writing to stdout")?;
        }
        let remaining = cfg
            .timeout
            .map(|t| t.saturating_sub(last_datagram.elapsed()));
        if remaining == Some(Duration::ZERO) {
            return timed_out(cfg, stats, role);
        }
        let role_wait = role
            .as_ref()
            .and_then(|r| r.deadline())
            .map(|d| d.saturating_duration_since(Instant::now()));
        let wait = match (remaining, role_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(direct) = &direct {
            direct
                .wait(&mut rxs[0], &listeners[0], remaining)
                .context("waiting for datagrams")?;
            if let Some(status) = signals.stop_requested() {
                return Ok(status);
            }
            continue;
        }
        if poller.wait(wait).context("waiting for datagrams")? == net::Wake::OutputGone {
            return Ok(Status::Success);
        }
        // Whatever woke us (a signal, or on Windows the console handler's waker).
        if let Some(status) = signals.stop_requested() {
            return Ok(status);
        }
        if let Some(r) = role.as_mut() {
            let mut emit = |d: &Datagram<'_>| printer.write(out, d);
            r.collect(listeners, poller.fired(), &mut emit)
                .context("writing to stdout")?;
            if done(stats, role) {
                return Ok(Status::Success);
            }
        }
    }
}

/// Which socket's next datagram (`next[i]` of the `got[i]` in its batch) arrived first;
/// `None` when every batch is used up. Without kernel timestamps the sockets keep their
/// order.
fn earliest(rxs: &[Receiver], got: &[usize], next: &[usize]) -> Option<usize> {
    let mut best: Option<(usize, SystemTime)> = None;
    for (i, rx) in rxs.iter().enumerate() {
        if next[i] < got[i] {
            let at = rx.get(next[i]).1.at.unwrap_or(SystemTime::UNIX_EPOCH);
            if best.is_none_or(|(_, b)| at < b) {
                best = Some((i, at));
            }
        }
    }
    best.map(|(i, _)| i)
}

fn timed_out(cfg: &Config, stats: &Stats, role: &Option<Box<dyn Role>>) -> Result<Status> {
    let after = output::duration(cfg.timeout.unwrap_or_default());
    let got = stats.datagrams;
    let message = match (cfg.count, role.as_ref().and_then(|r| r.finished())) {
        (Some(c), Some(f)) if f < c => {
            format!("timed out after {after}: {f} of {c} commands finished")
        }
        (Some(c), None) if got < c => format!("timed out after {after}: {got} of {c} datagrams"),
        (None, _) if got == 0 => format!("timed out after {after} without a datagram"),
        _ => return Ok(Status::Success),
    };
    Err(Fail::new(Status::TimedOut, message).into())
}

fn print_stats(stats: &Stats, elapsed: Duration, extra: &str) {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        stats.datagrams as f64 / secs
    } else {
        0.0
    };
    // A figure the system cannot give is `unknown`, never a made-up 0.
    let drops = match stats.drops.iter().copied().sum::<Option<u64>>() {
        Some(n) => n.to_string(),
        None => "unknown".to_string(),
    };
    logging::stderr_line(format!(
        "udpcat: received {}, {} in {:.3}s ({:.1} datagrams/s); {} refused by --allow; {} dropped by the kernel{extra}",
        output::plural(stats.datagrams, "datagram"),
        output::plural(stats.bytes, "byte"),
        secs,
        rate,
        stats.refused,
        drops
    ));
}
