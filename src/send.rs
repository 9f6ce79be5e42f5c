//! The send loop: MESSAGE words or stdin framed into records, each sent as soon as it is
//! complete; --repeat, --rate, --reply round trips, --wait for stragglers, and the refusal
//! ("port unreachable") check.

use std::cell::Cell;
use std::ffi::OsString;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow};

use crate::addr::{self, Addr, Family, UnixAddr};
use crate::cli::{Format, SendArgs};
use crate::exit::{self, Fail, Status, Stopped};
use crate::framing::{self, Encoding, Framer, RecordError, Split};
use crate::net::{self, Poller, Receiver, SendOptions, Wake};
use crate::output::{self, Datagram, Printer, plural};
use crate::progress::{self, Progress};
use crate::rtt::{self, RoundTrips};
use crate::signal::Signals;

/// Where the records come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// MESSAGE words joined by single spaces: one record.
    Message(Vec<u8>),
    /// stdin, cut as `Split` says.
    Stdin(Split),
    /// The UDP datagrams of a capture (`None`: read it from stdin).
    Replay(Replay),
}

/// `--replay` and its options.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    pub path: Option<PathBuf>,
    pub ports: Vec<u16>,
    /// How many times as fast as captured; `None` for `--speed max` and with --rate (which
    /// replaces the captured timing): the captured times are not waited for.
    pub speed: Option<f64>,
    pub loops: u64,
}

/// Everything `send` needs, validated.
#[derive(Debug)]
pub struct Config {
    pub dest: Addr,
    /// `--bind unix:PATH` for a Unix destination.
    pub unix_bind: Option<UnixAddr>,
    pub socket: SendOptions,
    pub input: Input,
    pub encoding: Encoding,
    /// Largest payload for the destination's family.
    pub max: usize,
    pub repeat: u64,
    /// --rate: datagrams per second.
    pub rate: Option<f64>,
    pub reply: bool,
    pub wait: Option<Duration>,
    pub timeout: Duration,
    pub output: output::Options,
    pub stats: bool,
    /// --progress: a live status line on a terminal's stderr.
    pub progress: bool,
}

impl Config {
    pub fn new(args: SendArgs, family: Family) -> Result<Self> {
        let (dest, bind, unix_bind, max) = match addr::parse_unix(&args.addr) {
            Some(unix) => {
                let unix = unix?;
                exit::refuse_ip_only(
                    &[
                        (args.broadcast, "--broadcast"),
                        (args.ttl.is_some(), "--ttl"),
                        (args.interface.is_some(), "--interface"),
                        (args.multicast_loop, "--multicast-loop"),
                    ],
                    family,
                    &args.addr,
                )?;
                let unix_bind = match &args.bind {
                    None => None,
                    Some(b) => match addr::parse_unix(b) {
                        Some(b) => Some(b.context("--bind")?),
                        None => {
                            return Err(exit::usage(output::escape_message(format!(
                                "--bind {b} is not a Unix socket, and '{}' is one (use --bind unix:PATH)",
                                args.addr
                            ))));
                        }
                    },
                };
                (Addr::Unix(unix), None, unix_bind, MAX_UNIX_PAYLOAD)
            }
            None => {
                if let Some(b) = args
                    .bind
                    .as_deref()
                    .filter(|b| addr::parse_unix(b).is_some())
                {
                    return Err(exit::usage(output::escape_message(format!(
                        "--bind {b} is a Unix socket, and '{}' is not",
                        args.addr
                    ))));
                }
                let (dest, bind) = ip_destination(&args, family)?;
                let max = if dest.is_ipv4() {
                    framing::MAX_PAYLOAD_V4
                } else {
                    framing::MAX_PAYLOAD_V6
                };
                if let Some(n) = args.chunk.filter(|&n| n > max) {
                    let over = if dest.is_ipv4() { "IPv4" } else { "IPv6" };
                    return Err(exit::usage(format!(
                        "--chunk {n}: more than one UDP datagram to {dest} can carry ({max} bytes over {over})"
                    )));
                }
                (Addr::Ip(dest), bind, None, max)
            }
        };
        if args.timeout.is_some() && !args.reply {
            return Err(exit::usage(
                "--timeout has no effect without --reply (it is how long --reply waits for each \
                 reply; --wait DUR waits after the last datagram)",
            ));
        }
        let output = output::Options {
            format: args.output.format,
            null: false,
            source: args.output.source,
            timestamp: args.output.timestamp,
            escape: false,
        };
        output.check().map_err(exit::usage)?;
        let no_replay = args.replay.is_none();
        exit::refuse_given(
            &[
                (no_replay && !args.replay_port.is_empty(), "--replay-port"),
                (no_replay && args.speed.is_some(), "--speed"),
                (no_replay && args.loop_count.is_some(), "--loop"),
            ],
            |flag| {
                format!("{flag} has no effect without --replay (it shapes how a capture is sent)")
            },
        )?;
        if args.speed.is_some() && args.rate.is_some() {
            return Err(exit::usage(
                "--speed has no effect with --rate (--rate replaces the captured timing)",
            ));
        }
        let stdin_replay = args.replay.as_deref() == Some(std::path::Path::new("-"));
        if stdin_replay && args.loop_count.is_some_and(|n| n > 1) {
            return Err(exit::usage(
                "--loop needs a capture file: stdin (--replay -) can be read only once",
            ));
        }
        let input = if let Some(path) = &args.replay {
            Input::Replay(Replay {
                path: (!stdin_replay).then(|| path.clone()),
                ports: args.replay_port.clone(),
                speed: Some(args.speed.unwrap_or(1.0))
                    .filter(|s| s.is_finite() && args.rate.is_none()),
                loops: args.loop_count.unwrap_or(1),
            })
        } else if args.message.is_empty() {
            Input::Stdin(match (args.null, args.whole, args.chunk) {
                (true, _, _) => Split::Null,
                (_, true, _) => Split::Whole,
                (_, _, Some(n)) => Split::Chunk(n),
                _ => Split::Lines,
            })
        } else {
            Input::Message(join_words(&args.message))
        };
        let encoding = if args.hex {
            Encoding::Hex
        } else if args.binary || args.chunk.is_some() {
            Encoding::Binary
        } else {
            Encoding::Utf8
        };
        Ok(Config {
            dest,
            unix_bind,
            socket: SendOptions {
                bind,
                broadcast: args.broadcast,
                ttl: args.ttl,
                interface: args.interface.as_deref().map(net::interface).transpose()?,
                multicast_loop: args.multicast_loop,
            },
            input,
            encoding,
            max,
            repeat: args.repeat,
            rate: args.rate,
            reply: args.reply,
            wait: args.wait,
            timeout: args.timeout.unwrap_or(DEFAULT_REPLY_TIMEOUT),
            output,
            stats: args.stats,
            progress: args.progress,
        })
    }
}

/// How long `--reply` waits for each reply unless `--timeout` says otherwise.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// With stdout a regular file, how late a reply may be before what was printed is flushed
/// (a `tail -f` of the file lags the replies by no more than this).
const FILE_FLUSH: Duration = Duration::from_millis(10);

/// The largest record udpcat hands a Unix datagram socket; the system may take less (Linux:
/// about 200 KiB by default), and says so (the record is then named in the error).
pub const MAX_UNIX_PAYLOAD: usize = 4 << 20;

/// The IP destination and, with --bind, the local address: the first destination address
/// that one of the bind addresses can reach (`-b localhost:0` to an IPv6 destination sends
/// from ::1).
fn ip_destination(args: &SendArgs, family: Family) -> Result<(SocketAddr, Option<SocketAddr>)> {
    let ep = addr::parse(&args.addr)?;
    if ep.port == 0 {
        anyhow::bail!(output::escape_message(format!(
            "cannot send to port 0 ('{}'): give the port the destination listens on \
             (0 means \"any free port\" only when binding)",
            args.addr
        )));
    }
    let candidates = addr::resolve(&ep, family)?;
    let (dest, bind) = match &args.bind {
        Some(b) => {
            let local = addr::parse_local(b).context("--bind")?;
            let locals = addr::resolve(&local, family).context("--bind")?;
            candidates
                .iter()
                .find_map(|d| {
                    let l = locals.iter().find(|l| l.is_ipv4() == d.is_ipv4())?;
                    Some((*d, Some(*l)))
                })
                .ok_or_else(|| {
                    let fam = if locals[0].is_ipv4() { "IPv4" } else { "IPv6" };
                    anyhow!(output::escape_message(format!(
                        "{} has no {fam} address to send to from --bind {b}",
                        args.addr
                    )))
                })?
        }
        None => (candidates[0], None),
    };
    tracing::info!(
        "sending to {dest} ({} resolved to {candidates:?})",
        args.addr
    );
    Ok((dest, bind))
}

fn join_words(words: &[OsString]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(w.as_encoded_bytes());
    }
    out
}

#[derive(Debug, Default)]
struct Stats {
    sent: u64,
    bytes: u64,
    replies: u64,
    missed: u64,
    /// --reply: the round trip of each datagram answered in time.
    rtt: RoundTrips,
}

/// --replay's input, counting the bytes read for --progress (the capture reader reads a
/// buffer ahead, up to 256 KiB: a fine measure of a large capture, a coarse one of a small).
struct Counted<R> {
    inner: R,
    read: Rc<Cell<u64>>,
}

impl<R: io::Read> io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

/// --replay's datagrams that are due and not sent yet: their payloads end to end, and where
/// each one is.
#[derive(Default)]
struct Due {
    payloads: Vec<u8>,
    ranges: Vec<Range<usize>>,
}

struct Session<'a> {
    cfg: &'a Config,
    signals: &'a Signals,
    socket: net::Link,
    connected: bool,
    local: Addr,
    out: BufWriter<progress::Stdout<net::Stdout>>,
    /// What the loop waits in: signals always, stdin while reading it, the socket and
    /// stdout during --wait.
    poller: Poller,
    printer: Printer,
    /// Made on the first receive: a plain send never needs its buffers.
    receiver: Option<Receiver>,
    stats: Stats,
    /// --rate's schedule.
    schedule: Option<Schedule>,
    /// What stdout is: nothing is flushed into /dev/null, and into a regular file replies
    /// go in bulk (see `await_reply`).
    stdout_kind: net::StdoutKind,
    /// The last datagram's reply just came, and udpcat has not waited for anything since:
    /// nothing late can be queued, so the next send needs no look first (see `send_record`).
    answered: bool,
    /// The socket as the event loop watches it, during --wait (reads go through it).
    watched: Option<net::Sock>,
    /// The socket's SO_RCVTIMEO as last set.
    read_timeout: Option<Duration>,
    /// --progress, when it shows.
    progress: Option<Progress>,
    /// Where the framer's buffer starts in the input, and where in it the record that
    /// `send_record` sends ends (for --progress).
    input_base: u64,
    record_end: usize,
    /// --replay: the bytes of the capture read so far, which --progress shows instead.
    replay_read: Rc<Cell<u64>>,
}

pub fn run(cfg: Config, signals: &Signals) -> Result<Status> {
    let (socket, connected, local, _cleanup) = match &cfg.dest {
        Addr::Ip(dest) => {
            let (socket, connected) = net::sender(*dest, &cfg.socket).map_err(|e| {
                let hint = if e.kind() == io::ErrorKind::PermissionDenied && !cfg.socket.broadcast {
                    " (a broadcast address needs --broadcast)"
                } else {
                    ""
                };
                match cfg.socket.bind {
                    Some(b) => anyhow!("cannot send from --bind {b} to {dest}: {e}{hint}"),
                    None => anyhow!("cannot send to {dest}: {e}{hint}"),
                }
            })?;
            let local = socket.local_addr().context("reading the local address")?;
            if cfg.output.needs_time() {
                // json's `ts` is when each reply arrived.
                net::enable_timestamps(&socket);
            }
            (net::Link::Udp(socket), connected, Addr::Ip(local), None)
        }
        Addr::Unix(dest) => {
            // Answers need a name to come back to.
            let named = cfg.reply || cfg.wait.is_some();
            let (link, local, cleanup) = net::unix_link(dest, cfg.unix_bind.as_ref(), named)
                .map_err(|e| {
                    let hint = match e.kind() {
                        io::ErrorKind::ConnectionRefused => " (nothing listens on this socket)",
                        io::ErrorKind::NotFound => " (no such socket file)",
                        _ => "",
                    };
                    if e.kind() == io::ErrorKind::ConnectionRefused {
                        // A socket file nobody listens on: the Unix "port unreachable".
                        return anyhow::Error::from(Fail::new(
                            Status::Refused,
                            format!(
                                "{dest} refused: nothing listens on this socket; 0 datagrams sent"
                            ),
                        ));
                    }
                    match &cfg.unix_bind {
                        Some(b) => anyhow!("cannot send from --bind {b} to {dest}: {e}{hint}"),
                        None => anyhow!("cannot send to {dest}: {e}{hint}"),
                    }
                })?;
            (link, true, local, cleanup)
        }
    };
    tracing::debug!("sending from {local}");
    let mut poller = Poller::new().context("starting the event loop")?;
    signals
        .register(&mut poller)
        .context("watching for signals")?;
    let mut opts = cfg.output;
    opts.escape = opts.format == Format::Text && io::stdout().is_terminal();
    opts.check_stdout(io::stdout().is_terminal())
        .map_err(|e| anyhow::anyhow!(e))?;
    let progress = if cfg.progress {
        let size = match cfg.input {
            Input::Stdin(_) => net::stdin_size(),
            // A capture's percent is of its bytes read (every --loop reads it again).
            Input::Replay(Replay {
                path: Some(ref p),
                loops,
                ..
            }) => std::fs::metadata(p)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len().saturating_mul(loops)),
            Input::Replay(Replay { path: None, .. }) => net::stdin_size(),
            Input::Message(_) => None,
        };
        Progress::start(progress::Kind::Send { size })
    } else {
        None
    };
    let stdout = progress::stdout(net::stdout().context("opening stdout")?, progress.as_ref());
    let mut s = Session {
        cfg: &cfg,
        signals,
        socket,
        connected,
        local,
        out: BufWriter::with_capacity(64 * 1024, stdout),
        poller,
        printer: Printer::new(opts),
        receiver: None,
        stats: Stats::default(),
        schedule: cfg.rate.map(Schedule::new),
        stdout_kind: net::stdout_kind(),
        answered: false,
        read_timeout: None,
        watched: None,
        progress,
        input_base: 0,
        record_end: 0,
        replay_read: Rc::default(),
    };
    // pcap's file header: replies, if any, follow it.
    s.printer.begin(&mut s.out).context("writing to stdout")?;
    let started = Instant::now();
    let result = s.run();
    let flushed = s.out.flush().context("writing to stdout");
    // The live line is erased before anything else is said.
    drop(s.progress.take());
    if cfg.stats {
        s.print_stats(started.elapsed());
    }
    match result {
        Ok(()) => {}
        Err(e) => match e.downcast_ref::<Stopped>() {
            Some(Stopped(status)) => return Ok(*status),
            None => return Err(e),
        },
    }
    flushed?;
    if s.stats.missed > 0 {
        let msg = format!(
            "{} of {} datagrams got no reply within {}",
            s.stats.missed,
            s.stats.sent,
            output::duration(cfg.timeout)
        );
        return Err(Fail::new(Status::TimedOut, msg).into());
    }
    Ok(Status::Success)
}

impl Session<'_> {
    fn run(&mut self) -> Result<()> {
        match &self.cfg.input {
            Input::Message(words) => {
                let mut record = words.clone();
                let len = framing::finish_record(&mut record, self.cfg.encoding, self.cfg.max)
                    .map_err(|kind| RecordError {
                        place: "message".into(),
                        kind,
                    })?;
                self.send_records(&record, std::slice::from_ref(&(0..len)))?;
            }
            Input::Stdin(split) => self.send_stdin(*split)?,
            Input::Replay(replay) => self.send_replay(replay)?,
        }
        if self.connected {
            // On loopback the "port unreachable" for the last datagram is already here.
            if let Some(e) = self.socket.take_error().context("checking the socket")? {
                return Err(self.send_error(e));
            }
        }
        if let Some(wait) = self.cfg.wait {
            self.collect_replies(wait)?;
        }
        Ok(())
    }

    /// --replay: the capture's UDP datagrams, at the captured times (scaled by --speed) or
    /// as --rate says, --loop times.
    fn send_replay(&mut self, replay: &Replay) -> Result<()> {
        let name = replay.path.as_ref().map_or("-".to_string(), |p| {
            output::escape_message(p.as_os_str().as_encoded_bytes())
        });
        for _ in 0..replay.loops {
            // A regular file's datagrams are all there to read: those due go out together.
            // From a pipe (a live `tcpdump -w -`), each goes out as soon as it is read; with
            // --reply, each waits for its answer anyway, so none is read ahead of its turn.
            let (file, batch): (Box<dyn io::Read>, usize) = match &replay.path {
                Some(p) => {
                    let file = std::fs::File::open(p)
                        .with_context(|| format!("cannot open --replay {name}"))?;
                    let regular = file.metadata().is_ok_and(|m| m.is_file());
                    (Box::new(file), if regular { net::BATCH } else { 1 })
                }
                None => {
                    let regular = net::stdin_size().is_some();
                    (
                        Box::new(io::stdin().lock()),
                        if regular { net::BATCH } else { 1 },
                    )
                }
            };
            let input = Counted {
                inner: file,
                read: Rc::clone(&self.replay_read),
            };
            let sent_before = |s: &Self| plural(s.stats.sent, "datagram");
            let mut reader = crate::replay::Reader::new(input)
                .map_err(|e| anyhow!("--replay {name}: {e}; {} sent", sent_before(self)))?;
            let start = Instant::now();
            let mut first: Option<SystemTime> = None;
            let mut other_port = 0u64;
            // Datagrams already due, sent together (one system call for `batch` where the
            // system has one); flushed before any wait and before any error is reported.
            let mut due = Due::default();
            loop {
                let d = match reader.next_datagram() {
                    Ok(Some(d)) => d,
                    Ok(None) => break,
                    Err(e) => {
                        self.send_due(&mut due)?;
                        return Err(anyhow!("--replay {name}: {e}; {} sent", sent_before(self)));
                    }
                };
                if !replay.ports.is_empty()
                    && !d.dst.is_some_and(|a| replay.ports.contains(&a.port()))
                {
                    other_port += 1;
                    continue;
                }
                if d.payload.len() > self.cfg.max {
                    self.send_due(&mut due)?;
                    return Err(anyhow!(
                        "--replay {name}: packet {}: {}, more than one datagram to {} can carry ({}); {} sent",
                        d.index,
                        plural(d.payload.len() as u64, "byte"),
                        self.cfg.dest,
                        self.cfg.max,
                        sent_before(self)
                    ));
                }
                if let Some(speed) = replay.speed {
                    let t0 = *first.get_or_insert(d.time);
                    let offset = d.time.duration_since(t0).unwrap_or_default();
                    let at = start + offset.div_f64(speed);
                    if at > Instant::now() {
                        self.send_due(&mut due)?;
                        self.wait_until(at)?;
                    }
                }
                let from = due.payloads.len();
                due.payloads.extend_from_slice(&d.payload);
                due.ranges.push(from..due.payloads.len());
                if due.ranges.len() >= batch || self.cfg.reply {
                    self.send_due(&mut due)?;
                }
            }
            self.send_due(&mut due)?;
            let c = reader.counts();
            tracing::info!(
                "--replay {name} ({}): {} of {} packets were UDP datagrams sent; skipped: {} not UDP, \
                 {} of other link types, {} cut short in the capture, {} malformed, {} \
                 incomplete fragments, {other_port} to other ports",
                reader.format(),
                c.datagrams - other_port,
                c.packets,
                c.not_udp,
                c.other_link,
                c.truncated,
                c.malformed,
                c.incomplete
            );
        }
        Ok(())
    }

    /// Sends --replay's datagrams that are due, and empties `due` for the next ones.
    fn send_due(&mut self, due: &mut Due) -> Result<()> {
        self.send_records(&due.payloads, &due.ranges)?;
        due.payloads.clear();
        due.ranges.clear();
        Ok(())
    }

    /// Waits until `due`: in the event loop (which a signal ends) for the whole milliseconds
    /// but the last one or two, then a precise sleep (the loop cannot wait less than a
    /// millisecond). Used by --rate's schedule and --replay's timing.
    fn wait_until(&mut self, due: Instant) -> Result<()> {
        self.answered = false;
        loop {
            self.check_signal()?;
            let left = due.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            if left >= Duration::from_millis(2) {
                let whole = u64::try_from(left.as_millis() - 1).unwrap_or(u64::MAX);
                let whole = Duration::from_millis(whole);
                self.poller.wait(Some(whole)).context("waiting")?;
            } else {
                std::thread::sleep(left);
            }
        }
    }

    fn send_stdin(&mut self, split: Split) -> Result<()> {
        let mut framer = Framer::new(split, self.cfg.encoding, self.cfg.max);
        let mut stdin = net::Input::stdin(&mut self.poller).context("opening stdin")?;
        let mut complete: Vec<Range<usize>> = Vec::with_capacity(net::SEND_BATCH);
        loop {
            // Every record complete now goes out before we read (and maybe block) again.
            loop {
                match framer.next_record() {
                    Ok(Some(range)) => {
                        complete.push(range);
                        if complete.len() == net::SEND_BATCH {
                            self.input_base = framer.input_offset(0);
                            self.send_records(framer.buf(), &complete)?;
                            complete.clear();
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.send_records(framer.buf(), &complete)?;
                        return Err(anyhow!(
                            "{e}; {} sent before it",
                            plural(self.stats.sent, "datagram")
                        ));
                    }
                }
            }
            self.input_base = framer.input_offset(0);
            self.send_records(framer.buf(), &complete)?;
            complete.clear();
            if framer.is_finished() {
                return Ok(());
            }
            self.flush_before_blocking()?;
            self.idle();
            while !stdin.ready() {
                self.answered = false;
                self.poller.wait(None).context("waiting for stdin")?;
                self.check_signal()?;
            }
            self.resume();
            if let Err(e) = framer.fill(&mut stdin) {
                let sent = plural(self.stats.sent, "datagram");
                return Err(anyhow!("reading stdin: {e}; {sent} sent"));
            }
        }
    }

    /// Sends the records `ranges` of `buf`, each `--repeat` times: in sendmmsg batches (with
    /// --rate, batches of the datagrams due), or one at a time when --reply needs each
    /// datagram on its own.
    fn send_records(&mut self, buf: &[u8], ranges: &[Range<usize>]) -> Result<()> {
        if self.cfg.reply {
            for r in ranges {
                self.record_end = r.end;
                self.send_record(&buf[r.clone()])?;
            }
            return Ok(());
        }
        let copies = usize::try_from(self.cfg.repeat).unwrap_or(usize::MAX);
        let mut datagrams = ranges
            .iter()
            .flat_map(|r| std::iter::repeat_n(&buf[r.clone()], copies))
            .peekable();
        let mut batch: Vec<&[u8]> = Vec::with_capacity(net::SEND_BATCH);
        let mut taken = 0;
        while datagrams.peek().is_some() {
            let due = self.await_due()?;
            batch.clear();
            batch.extend(datagrams.by_ref().take(due));
            taken += batch.len();
            // The record whose copies went out last ends here.
            let end = ranges
                .get(taken.div_ceil(copies).saturating_sub(1))
                .map_or(0, |r| r.end);
            self.send_batch(&batch, end)?;
            self.check_signal()?;
        }
        Ok(())
    }

    /// --progress: the totals so far, and the input sent up to `buf[end]` of the framer's
    /// buffer.
    fn input_sent(&self, end: usize) {
        if let Some(p) = &self.progress {
            p.counts(self.stats.sent, self.stats.bytes);
            p.input(if matches!(self.cfg.input, Input::Replay(_)) {
                self.replay_read.get()
            } else {
                self.input_base + end as u64
            });
        }
    }

    /// Sends `batch`, the datagrams of the framer's buffer up to `buf[ranges_end]`.
    fn send_batch(&mut self, batch: &[&[u8]], ranges_end: usize) -> Result<()> {
        let dest = self.cfg.dest.ip().filter(|_| !self.connected);
        let result = self.socket.send_batch(batch, dest);
        let sent = match &result {
            Ok(()) => batch.len(),
            Err((n, _)) => *n,
        };
        if let Some(s) = &mut self.schedule {
            s.sent(sent as u64, Instant::now());
        }
        self.stats.sent += sent as u64;
        self.stats.bytes += batch[..sent].iter().map(|p| p.len() as u64).sum::<u64>();
        if self.progress.is_some() {
            // The record whose copies went out last.
            self.input_sent(ranges_end);
        }
        result.map_err(|(n, e)| self.send_error_of(e, batch.get(n).map(|p| p.len())))
    }

    fn send_record(&mut self, payload: &[u8]) -> Result<()> {
        for _ in 0..self.cfg.repeat {
            self.check_signal()?;
            self.await_due()?;
            // Whatever is queued now answers an earlier datagram (late, or a duplicate): print
            // it, but do not take it as this datagram's reply. Right after a reply came (its
            // receive took whatever else was queued with it) and with no wait since, the
            // look is skipped: one system call less per round trip.
            let just_answered = std::mem::take(&mut self.answered);
            if self.cfg.reply && !just_answered && self.socket.has_pending() {
                while self.receive_some(net::BATCH)? > 0 {}
            }
            let sent_at = Instant::now();
            let result = if self.connected {
                self.socket.send(payload)
            } else {
                self.socket.send_to(payload, &self.cfg.dest)
            };
            if let Err(e) = result {
                return Err(self.send_error_of(e, Some(payload.len())));
            }
            self.stats.sent += 1;
            self.stats.bytes += payload.len() as u64;
            if self.progress.is_some() {
                self.input_sent(self.record_end);
            }
            if let Some(s) = &mut self.schedule {
                s.sent(1, Instant::now());
            }
            if self.cfg.reply {
                self.idle();
                self.await_reply(sent_at)?;
                self.resume();
            }
        }
        Ok(())
    }

    fn send_error(&self, e: io::Error) -> anyhow::Error {
        self.send_error_of(e, None)
    }

    /// The error of a send; `len` is the size of the datagram that failed, where known.
    fn send_error_of(&self, e: io::Error, len: Option<usize>) -> anyhow::Error {
        let sent = plural(self.stats.sent, "datagram");
        let dest = &self.cfg.dest;
        if let (true, Some(len)) = (net::is_too_large(&e), len) {
            return anyhow!(
                "datagram {} ({}) is larger than {dest} takes: {e}; {sent} sent",
                self.stats.sent + 1,
                plural(len as u64, "byte")
            );
        }
        let nobody = match dest {
            Addr::Ip(_) => "port unreachable (nothing listens there)",
            Addr::Unix(_) => "nothing listens on this socket",
        };
        match e.kind() {
            io::ErrorKind::ConnectionRefused => anyhow::Error::from(Fail::new(
                Status::Refused,
                format!("{dest} refused: {nobody}; {sent} sent"),
            )),
            io::ErrorKind::PermissionDenied if !self.cfg.socket.broadcast => {
                anyhow!(
                    "cannot send to {dest}: {e} (a broadcast address needs --broadcast); {sent} sent"
                )
            }
            _ => anyhow!("cannot send to {dest}: {e}; {sent} sent"),
        }
    }

    /// How many datagrams may go out now, at most one batch: with --rate, after waiting
    /// until at least one is due.
    fn await_due(&mut self) -> Result<usize> {
        loop {
            let now = Instant::now();
            let left = match &mut self.schedule {
                None => return Ok(net::SEND_BATCH),
                Some(s) => match s.due(now) {
                    0 => s.until_due(now),
                    n => {
                        return Ok(usize::try_from(n)
                            .unwrap_or(usize::MAX)
                            .min(net::SEND_BATCH));
                    }
                },
            };
            self.wait_until(now + left)?;
        }
    }

    /// udpcat starts waiting for something other than the schedule (input, a reply).
    fn idle(&mut self) {
        if let Some(s) = &mut self.schedule {
            s.idle(Instant::now());
        }
    }

    /// The wait `idle` announced is over.
    fn resume(&mut self) {
        if let Some(s) = &mut self.schedule {
            s.resume(Instant::now());
        }
    }

    fn await_reply(&mut self, sent_at: Instant) -> Result<()> {
        let deadline = sent_at + self.cfg.timeout;
        // Everything printed so far goes out before we block: at once for a terminal or a
        // pipe, whose reader watches each reply come; into a regular file only once a reply
        // is FILE_FLUSH late (and at the end), so a fast exchange costs no write per reply.
        let into_file = self.stdout_kind == net::StdoutKind::File;
        let mut flushed = !into_file;
        if flushed {
            self.flush_before_blocking()?;
        }
        let mut first = true;
        loop {
            let now = Instant::now();
            // The first wait is the whole --timeout (the socket keeps it, so no system call
            // per datagram); a retry waits only for what is left.
            let mut within = if first {
                self.cfg.timeout
            } else {
                deadline.saturating_duration_since(now)
            };
            if !flushed {
                within = within.min(FILE_FLUSH);
            }
            first = false;
            if now < deadline && self.receive_reply(within)? > 0 {
                self.stats.rtt.record(sent_at.elapsed());
                self.answered = true;
                return if into_file {
                    Ok(())
                } else {
                    self.flush_before_blocking()
                };
            }
            if !flushed {
                flushed = true;
                self.flush_before_blocking()?;
                if Instant::now() < deadline {
                    continue;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                // Some systems (wine) keep "port unreachable" in SO_ERROR instead of failing
                // the receive with it.
                if self.connected {
                    if let Some(e) = self.socket.take_error().context("checking the socket")? {
                        return Err(self.send_error(e));
                    }
                }
                self.stats.missed += 1;
                tracing::warn!(
                    "no reply to datagram {} within {}",
                    self.stats.sent,
                    output::duration(self.cfg.timeout)
                );
                return Ok(());
            }
            // A signal ends the wait early (EINTR); stop if it asked us to.
            self.check_signal()?;
        }
    }

    /// Blocks for one reply, at most `within`: a blocking receive with SO_RCVTIMEO is one
    /// system call where poll + receive are two, and with a receive timeout set, a signal
    /// interrupts it (EINTR) even though the handlers use SA_RESTART.
    fn receive_reply(&mut self, within: Duration) -> Result<usize> {
        // A signal that came before the wait would not interrupt it: look first.
        self.check_signal()?;
        // Set only when it changes: normally once, to --timeout, for the whole run.
        let within = within.max(Duration::from_micros(1));
        if self.read_timeout != Some(within) {
            self.socket
                .set_read_timeout(Some(within))
                .context("setting the reply timeout")?;
            self.read_timeout = Some(within);
        }
        // The reply, and whatever else is queued with it (a duplicate): printed, and never
        // taken as the next datagram's.
        self.receive(net::BATCH, true)
    }

    /// --wait: prints everything that comes back until `wait` has passed.
    fn collect_replies(&mut self, wait: Duration) -> Result<()> {
        let deadline = Instant::now() + wait;
        let before = self.stats.replies;
        // From here on the socket is only read when the loop says it is ready.
        let mut watched = self.socket.watched().context("watching the socket")?;
        self.poller
            .add(&mut watched, 0)
            .context("watching the socket")?;
        self.watched = Some(watched);
        self.poller.watch_stdout().context("watching stdout")?;
        loop {
            if self.receive_some(net::BATCH)? > 0 {
                continue;
            }
            self.flush_before_blocking()?;
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match self
                .poller
                .wait(Some(deadline - now))
                .context("waiting for replies")?
            {
                // The reader of our output went away: nothing more to print for anyone.
                Wake::OutputGone => return Ok(()),
                Wake::Signal | Wake::Ready | Wake::Timeout => self.check_signal()?,
            }
        }
        if self.stats.replies == before && self.stats.replies == 0 {
            let msg = format!("no datagram came back within {}", output::duration(wait));
            return Err(Fail::new(Status::TimedOut, msg).into());
        }
        Ok(())
    }

    /// Receives and prints what is waiting, at most `max` datagrams. A pending "port
    /// unreachable" surfaces here as a refusal.
    fn receive_some(&mut self, max: usize) -> Result<usize> {
        self.receive(max, false)
    }

    fn receive(&mut self, max: usize, block: bool) -> Result<usize> {
        let receiver = self
            .receiver
            .get_or_insert_with(|| Receiver::new(net::BATCH));
        let got = match &self.watched {
            Some(watched) => receiver.recv_with(watched, max, block),
            None => receiver.recv_with(&self.socket, max, block),
        };
        let n = match got {
            Ok(n) => n,
            Err(e) => return Err(self.send_error(e)),
        };
        let read_time = SystemTime::now();
        for k in 0..n {
            let Some(receiver) = &self.receiver else {
                break;
            };
            let (payload, meta) = receiver.get(k);
            let from = meta.from.canonical();
            let to = &self.local;
            self.printer
                .write(
                    &mut self.out,
                    &Datagram {
                        payload,
                        from: &from,
                        to,
                        at: meta.at.unwrap_or(read_time),
                        dir: None,
                    },
                )
                .context("writing to stdout")?;
        }
        self.stats.replies += n as u64;
        Ok(n)
    }

    /// Flushes replies before udpcat blocks, so a reader sees each as it arrived; not into
    /// /dev/null, where nobody can be waiting.
    fn flush_before_blocking(&mut self) -> Result<()> {
        if self.stdout_kind != net::StdoutKind::Null {
            self.out.flush().context("writing to stdout")?;
        }
        Ok(())
    }

    /// Stops quietly with 130/143 once a signal asked for it.
    fn check_signal(&self) -> Result<()> {
        match self.signals.stop_requested() {
            Some(status) => Err(Stopped(status).into()),
            None => Ok(()),
        }
    }

    fn print_stats(&self, elapsed: Duration) {
        let s = &self.stats;
        let mut line = format!(
            "udpcat: sent {}, {} in {:.3}s; {}",
            plural(s.sent, "datagram"),
            plural(s.bytes, "byte"),
            elapsed.as_secs_f64(),
            plural(s.replies, "reply"),
        );
        if self.cfg.reply {
            // Like ping: a datagram counts as lost unless its own reply came in time (a
            // duplicate or late reply is printed and counted above, but answers nothing).
            let answered = s.rtt.count();
            line += &format!(
                ", {} loss",
                rtt::loss_percent(s.sent - answered.min(s.sent), s.sent)
            );
            if let Some(t) = s.rtt.summary() {
                let ms = |ns: f64| ns / 1e6;
                line += &format!(
                    "; round trip min/avg/max/mdev {:.3}/{:.3}/{:.3}/{:.3} ms, \
                     p50/p90/p99 {:.3}/{:.3}/{:.3} ms",
                    ms(t.min),
                    ms(t.avg),
                    ms(t.max),
                    ms(t.mdev),
                    ms(t.p50),
                    ms(t.p90),
                    ms(t.p99)
                );
            }
        }
        crate::logging::stderr_line(line);
    }
}

/// How much lateness --rate catches up. Far more than a sleep oversleeps (50 µs of timer
/// slack) and more than the scheduling delays of a busy machine (a few milliseconds on two
/// shared cores), so the lateness udpcat suffers is made up and the average rate stays
/// exact; small enough that catching up cuts no gap short by more than this (a tenth of the
/// gap at 20/s), so a slow rate stays evenly spaced. Lateness beyond it (the process was
/// stopped, the machine is overloaded) is dropped from the schedule, not caught up.
const SLACK: Duration = Duration::from_millis(5);

/// --rate's absolute schedule: datagram k after the anchor is due k/N seconds after it.
///
/// Lateness of udpcat's own making (a sleep that overran, a slow system call, a scheduler
/// delay) is made up by sending every datagram that is due at once, so the average rate is
/// exact and does not drift. Time spent waiting for input or for a reply is not lateness:
/// the schedule is shifted by it (see `idle`), so a record that comes late goes at once and
/// the next keeps its full gap. Falling more than `SLACK` behind for any other reason, seen
/// before a send or after it, moves the schedule so that only `SLACK` is caught up, rather
/// than bursting.
#[derive(Debug)]
struct Schedule {
    /// Nanoseconds between datagrams, unrounded (due times are computed from it, never
    /// accumulated, so 1/3 s does not drift).
    interval: f64,
    /// When datagram 0 was due, moved on by the time that is not caught up (idle waits,
    /// lateness beyond `SLACK`); set by the first datagram.
    anchor: Option<Instant>,
    /// Datagrams sent since the anchor.
    sent: u64,
    /// Since when udpcat has been waiting for input or a reply.
    idle_since: Option<Instant>,
}

impl Schedule {
    fn new(rate: f64) -> Self {
        Schedule {
            interval: 1e9 / rate,
            anchor: None,
            sent: 0,
            idle_since: None,
        }
    }

    /// Nanoseconds from the anchor to `at`.
    fn since_anchor(anchor: Instant, at: Instant) -> f64 {
        at.saturating_duration_since(anchor).as_nanos() as f64
    }

    /// How many datagrams are due at `now` and not yet sent (0: wait `until_due(now)`).
    fn due(&mut self, now: Instant) -> u64 {
        let Some(anchor) = self.anchor else {
            self.anchor = Some(now);
            return 1;
        };
        let next = self.sent as f64 * self.interval;
        let anchor = self.forgive(anchor, Self::since_anchor(anchor, now) - next);
        let elapsed = Self::since_anchor(anchor, now);
        // The same comparison as `until_due`, so a wait it asked for always ends with one due.
        if elapsed < next {
            return 0;
        }
        // Datagrams 0..=floor(elapsed / interval) are due by now.
        let due = ((elapsed / self.interval).floor() as u64 + 1).max(self.sent + 1);
        due - self.sent
    }

    /// How long from `now` until the next datagram is due.
    fn until_due(&self, now: Instant) -> Duration {
        let Some(anchor) = self.anchor else {
            return Duration::ZERO;
        };
        let left = self.sent as f64 * self.interval - Self::since_anchor(anchor, now);
        // Rounded up, so the wait never ends a hair early (a float to int cast saturates).
        Duration::from_nanos(left.max(0.0).ceil() as u64)
    }

    /// `n` datagrams went out; the last of them left at `now`. Lateness seen only now
    /// (udpcat lost the processor between deciding and sending) is limited to `SLACK` too,
    /// so the next datagram's gap is not cut short by more.
    fn sent(&mut self, n: u64, now: Instant) {
        let Some(anchor) = self.anchor.filter(|_| n > 0) else {
            return;
        };
        self.sent += n;
        let last = (self.sent - 1) as f64 * self.interval;
        self.forgive(anchor, Self::since_anchor(anchor, now) - last);
    }

    /// Being `late` nanoseconds behind, moves the anchor so that no more than `SLACK` is
    /// left to catch up. Returns the anchor.
    fn forgive(&mut self, anchor: Instant, late: f64) -> Instant {
        let excess = late - SLACK.as_nanos() as f64;
        if excess <= 0.0 {
            return anchor;
        }
        tracing::debug!(
            "--rate: {:.3} ms behind schedule; catching up {SLACK:?} of it",
            late / 1e6
        );
        let moved = anchor + Duration::from_nanos(excess as u64);
        self.anchor = Some(moved);
        moved
    }

    /// udpcat starts waiting for input or a reply at `now`.
    fn idle(&mut self, now: Instant) {
        if self.anchor.is_some() {
            self.idle_since = Some(now);
        }
    }

    /// The wait `idle` announced ended at `now`. The part of it past the moment the next
    /// datagram was due shifts the schedule: the next datagram is due now, and lateness
    /// from before the wait (if any) is still made up.
    fn resume(&mut self, now: Instant) {
        let (Some(since), Some(anchor)) = (self.idle_since.take(), self.anchor) else {
            return;
        };
        let next = self.sent as f64 * self.interval;
        let from = Self::since_anchor(anchor, since).max(next);
        let shift = Self::since_anchor(anchor, now) - from;
        if shift > 0.0 {
            self.anchor = Some(anchor + Duration::from_nanos(shift as u64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: f64) -> Duration {
        Duration::from_nanos((n * 1e6).round() as u64)
    }

    /// A schedule at `rate` whose first datagram went out at `t0`.
    fn started(rate: f64, t0: Instant) -> Schedule {
        let mut s = Schedule::new(rate);
        assert_eq!(s.until_due(t0), Duration::ZERO);
        assert_eq!(s.due(t0), 1);
        s.sent(1, t0);
        s
    }

    #[test]
    fn first_datagram_is_due_at_once_then_one_per_interval() {
        let t0 = Instant::now();
        let mut s = started(100.0, t0);
        assert_eq!(s.due(t0 + ms(9.9)), 0);
        assert_eq!(s.until_due(t0 + ms(4.0)), ms(6.0));
        assert_eq!(s.due(t0 + ms(10.0)), 1);
        // 1.5 ms late at 1000/s (within the slack): every datagram due goes at once.
        let mut s = started(1000.0, t0);
        assert_eq!(s.due(t0 + ms(2.5)), 2);
        s.sent(2, t0 + ms(2.5));
        assert_eq!(s.until_due(t0 + ms(2.5)), ms(0.5));
        assert_eq!(s.due(t0 + ms(7.5)), 5);
    }

    #[test]
    fn a_third_of_a_second_does_not_drift() {
        let t0 = Instant::now();
        let mut s = started(3.0, t0);
        // Keeping to the schedule for 3 million datagrams (11.6 days): datagram k is due
        // at k/3 s within a nanosecond, not k times a rounded third.
        for k in 1..3_000_000u64 {
            let exact = (u128::from(k) * 1_000_000_000).div_ceil(3);
            let at = s.until_due(t0);
            assert!(
                at.as_nanos().abs_diff(exact) <= 1,
                "datagram {k} due at {at:?}"
            );
            assert_eq!(
                s.due(t0 + at - Duration::from_nanos(1)),
                0,
                "datagram {k} early"
            );
            assert_eq!(s.due(t0 + at), 1, "datagram {k}");
            s.sent(1, t0 + at);
        }
    }

    #[test]
    fn far_behind_catches_up_only_the_slack() {
        let t0 = Instant::now();
        let mut s = started(10.0, t0);
        // 30 ms late for the second: it goes now, the next 95 ms later (5 ms made up).
        assert_eq!(s.due(t0 + ms(130.0)), 1);
        s.sent(1, t0 + ms(130.0));
        assert_eq!(s.until_due(t0 + ms(130.0)), ms(95.0));
        // 100,000 per second: 4.5 ms late is 450 datagrams to catch up; 500 ms late (the
        // process was stopped) is 5 ms of them, 500, not 50,000.
        let mut s = started(100_000.0, t0);
        assert_eq!(s.due(t0 + ms(4.5)), 450);
        assert_eq!(s.due(t0 + ms(500.0)), 501);
    }

    #[test]
    fn a_datagram_that_left_late_does_not_cut_the_next_gap_short() {
        let t0 = Instant::now();
        let mut s = started(10.0, t0);
        assert_eq!(s.due(t0 + ms(100.0)), 1);
        // Due and decided on time, but out 30 ms late: the next gap is 95 ms, not 70.
        s.sent(1, t0 + ms(130.0));
        assert_eq!(s.until_due(t0 + ms(130.0)), ms(95.0));
        // 4 ms late is made up in full.
        assert_eq!(s.due(t0 + ms(226.0)), 1);
        s.sent(1, t0 + ms(229.0));
        assert_eq!(s.until_due(t0 + ms(229.0)), ms(96.0));
    }

    #[test]
    fn waiting_for_input_shifts_the_schedule() {
        let t0 = Instant::now();
        let mut s = started(10.0, t0);
        // Input came 50 ms after the next datagram was due: it goes now, the next 100 ms on.
        s.idle(t0 + ms(1.0));
        s.resume(t0 + ms(150.0));
        assert_eq!(s.due(t0 + ms(150.0)), 1);
        s.sent(1, t0 + ms(150.0));
        assert_eq!(s.due(t0 + ms(249.0)), 0);
        assert_eq!(s.until_due(t0 + ms(150.0)), ms(100.0));
        // Input that came before the next was due changes nothing.
        s.idle(t0 + ms(160.0));
        s.resume(t0 + ms(200.0));
        assert_eq!(s.until_due(t0 + ms(200.0)), ms(50.0));
        // Lateness from before the wait is still made up: 3.5 ms late when the wait began.
        let mut s = started(1000.0, t0);
        s.idle(t0 + ms(4.5));
        s.resume(t0 + ms(500.0));
        assert_eq!(s.due(t0 + ms(500.0)), 4);
    }
}
