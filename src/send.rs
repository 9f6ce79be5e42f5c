//! The send loop: MESSAGE words or stdin framed into records, each sent as soon as it is
//! complete; --repeat, --rate, --reply round trips, --wait for stragglers, and the refusal
//! ("port unreachable") check.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow};

use crate::addr::{self, Family};
use crate::cli::{Format, SendArgs};
use crate::exit::{self, Fail, Status, Stopped};
use crate::framing::{self, Encoding, Framer, RecordError, Split};
use crate::net::{self, Receiver, SendOptions};
use crate::output::{self, Datagram, Printer, plural};
use crate::signal::Signals;

/// Where the records come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// MESSAGE words joined by single spaces: one record.
    Message(Vec<u8>),
    /// stdin, cut as `Split` says.
    Stdin(Split),
}

/// Everything `send` needs, validated.
#[derive(Debug)]
pub struct Config {
    pub dest: SocketAddr,
    pub socket: SendOptions,
    pub input: Input,
    pub encoding: Encoding,
    /// Largest payload for the destination's family.
    pub max: usize,
    pub repeat: u64,
    pub interval: Option<Duration>,
    pub reply: bool,
    pub wait: Option<Duration>,
    pub timeout: Duration,
    pub output: output::Options,
    pub stats: bool,
}

impl Config {
    pub fn new(args: SendArgs, family: Family) -> Result<Self> {
        let ep = addr::parse(&args.addr)?;
        if ep.port == 0 {
            anyhow::bail!(output::escape_message(format!(
                "cannot send to port 0 ('{}'): give the port the destination listens on \
                 (0 means \"any free port\" only when binding)",
                args.addr
            )));
        }
        let candidates = addr::resolve(&ep, family)?;
        // With --bind, the destination is the first of its addresses that one of the bind
        // addresses can reach: `-b localhost:0` to an IPv6 destination sends from ::1.
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
            escape: false,
        };
        output.check().map_err(exit::usage)?;
        let input = if args.message.is_empty() {
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
            interval: args.rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            reply: args.reply,
            wait: args.wait,
            timeout: args.timeout.unwrap_or(DEFAULT_REPLY_TIMEOUT),
            output,
            stats: args.stats,
        })
    }
}

/// How long `--reply` waits for each reply unless `--timeout` says otherwise.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(2);

fn join_words(words: &[OsString]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(w.as_bytes());
    }
    out
}

#[derive(Debug, Default)]
struct Stats {
    sent: u64,
    bytes: u64,
    replies: u64,
    missed: u64,
    rtt_min: Option<Duration>,
    rtt_max: Duration,
    rtt_sum: Duration,
    rtt_count: u32,
}

struct Session<'a> {
    cfg: &'a Config,
    signals: &'a Signals,
    socket: UdpSocket,
    connected: bool,
    local: SocketAddr,
    out: BufWriter<File>,
    printer: Printer,
    /// Made on the first receive: a plain send never needs its buffers.
    receiver: Option<Receiver>,
    stats: Stats,
    next_send: Option<Instant>,
    eager_flush: bool,
    /// The socket's SO_RCVTIMEO as last set.
    read_timeout: Option<Duration>,
}

pub fn run(cfg: Config, signals: &Signals) -> Result<Status> {
    let (socket, connected) = net::sender(cfg.dest, &cfg.socket).map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::PermissionDenied && !cfg.socket.broadcast {
            " (a broadcast address needs --broadcast)"
        } else {
            ""
        };
        match cfg.socket.bind {
            Some(b) => anyhow!("cannot send from --bind {b} to {}: {e}{hint}", cfg.dest),
            None => anyhow!("cannot send to {}: {e}{hint}", cfg.dest),
        }
    })?;
    let local = socket.local_addr().context("reading the local address")?;
    tracing::debug!("sending from {local}");
    if cfg.output.format == Format::Json {
        // json's `ts` is when each reply arrived.
        net::enable_timestamps(&socket);
    }
    let stdout = io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .context("opening stdout")?;
    let mut opts = cfg.output;
    opts.escape = opts.format == Format::Text && io::stdout().is_terminal();
    let mut s = Session {
        cfg: &cfg,
        signals,
        socket,
        connected,
        local,
        out: BufWriter::with_capacity(64 * 1024, File::from(stdout)),
        printer: Printer::new(opts),
        receiver: None,
        stats: Stats::default(),
        next_send: None,
        eager_flush: !net::is_dev_null(io::stdout().as_fd()),
        read_timeout: None,
    };
    let started = Instant::now();
    let result = s.run();
    let flushed = s.out.flush().context("writing to stdout");
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

    fn send_stdin(&mut self, split: Split) -> Result<()> {
        let mut framer = Framer::new(split, self.cfg.encoding, self.cfg.max);
        let mut stdin = File::from(
            io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .context("opening stdin")?,
        );
        let mut complete: Vec<Range<usize>> = Vec::with_capacity(net::BATCH);
        loop {
            // Every record complete now goes out before we read (and maybe block) again.
            loop {
                match framer.next_record() {
                    Ok(Some(range)) => {
                        complete.push(range);
                        if complete.len() == net::BATCH {
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
            self.send_records(framer.buf(), &complete)?;
            complete.clear();
            if framer.is_finished() {
                return Ok(());
            }
            self.flush_before_blocking()?;
            if net::wait(&[stdin.as_fd()], None, self.signals.fd(), None)? == net::Wake::Signal {
                self.check_signal()?;
            }
            if let Err(e) = framer.fill(&mut stdin) {
                let sent = plural(self.stats.sent, "datagram");
                return Err(anyhow!("reading stdin: {e}; {sent} sent"));
            }
        }
    }

    /// Sends the records `ranges` of `buf`, each `--repeat` times: in sendmmsg batches, or
    /// one at a time when --reply or --rate needs each datagram on its own.
    fn send_records(&mut self, buf: &[u8], ranges: &[Range<usize>]) -> Result<()> {
        if self.cfg.reply || self.cfg.interval.is_some() {
            for r in ranges {
                self.send_record(&buf[r.clone()])?;
            }
            return Ok(());
        }
        let mut batch: Vec<&[u8]> = Vec::with_capacity(net::BATCH);
        for r in ranges {
            for _ in 0..self.cfg.repeat {
                batch.push(&buf[r.clone()]);
                if batch.len() == net::BATCH {
                    self.send_batch(&batch)?;
                    batch.clear();
                    self.check_signal()?;
                }
            }
        }
        self.send_batch(&batch)
    }

    fn send_batch(&mut self, batch: &[&[u8]]) -> Result<()> {
        let dest = (!self.connected).then_some(self.cfg.dest);
        let result = net::send_batch(&self.socket, batch, dest);
        let sent = match &result {
            Ok(()) => batch.len(),
            Err((n, _)) => *n,
        };
        self.stats.sent += sent as u64;
        self.stats.bytes += batch[..sent].iter().map(|p| p.len() as u64).sum::<u64>();
        result.map_err(|(_, e)| self.send_error(e))
    }

    fn send_record(&mut self, payload: &[u8]) -> Result<()> {
        for _ in 0..self.cfg.repeat {
            self.check_signal()?;
            self.pace()?;
            if self.cfg.reply {
                // Whatever is queued now answers an earlier datagram (late, or a duplicate):
                // print it, but do not take it as this datagram's reply.
                if net::has_pending(&self.socket) {
                    while self.receive_some(net::BATCH)? > 0 {}
                }
            }
            let sent_at = Instant::now();
            let result = if self.connected {
                self.socket.send(payload)
            } else {
                self.socket.send_to(payload, self.cfg.dest)
            };
            if let Err(e) = result {
                return Err(self.send_error(e));
            }
            self.stats.sent += 1;
            self.stats.bytes += payload.len() as u64;
            if self.cfg.reply {
                self.await_reply(sent_at)?;
            }
        }
        Ok(())
    }

    fn send_error(&self, e: io::Error) -> anyhow::Error {
        let sent = plural(self.stats.sent, "datagram");
        let dest = self.cfg.dest;
        match e.kind() {
            io::ErrorKind::ConnectionRefused => anyhow::Error::from(Fail::new(
                Status::Refused,
                format!("{dest} refused: port unreachable (nothing listens there); {sent} sent"),
            )),
            io::ErrorKind::PermissionDenied if !self.cfg.socket.broadcast => {
                anyhow!(
                    "cannot send to {dest}: {e} (a broadcast address needs --broadcast); {sent} sent"
                )
            }
            _ => anyhow!("cannot send to {dest}: {e}; {sent} sent"),
        }
    }

    /// With --rate, waits until the next datagram is due (never bursting to catch up).
    fn pace(&mut self) -> Result<()> {
        let Some(interval) = self.cfg.interval else {
            return Ok(());
        };
        if let Some(due) = self.next_send {
            loop {
                let now = Instant::now();
                if now >= due {
                    break;
                }
                if net::wait(&[], None, self.signals.fd(), Some(due - now))? == net::Wake::Signal {
                    self.check_signal()?;
                }
            }
        }
        self.next_send = Some(Instant::now() + interval);
        Ok(())
    }

    fn await_reply(&mut self, sent_at: Instant) -> Result<()> {
        let deadline = sent_at + self.cfg.timeout;
        // Everything printed so far goes out before we block.
        self.flush_before_blocking()?;
        let mut first = true;
        loop {
            let now = Instant::now();
            // The first wait is the whole --timeout (the socket keeps it, so no system call
            // per datagram); a retry waits only for what is left.
            let within = if first {
                self.cfg.timeout
            } else {
                deadline.saturating_duration_since(now)
            };
            first = false;
            if now < deadline && self.receive_reply(within)? > 0 {
                let rtt = sent_at.elapsed();
                let s = &mut self.stats;
                s.rtt_min = Some(s.rtt_min.map_or(rtt, |m| m.min(rtt)));
                s.rtt_max = s.rtt_max.max(rtt);
                s.rtt_sum += rtt;
                s.rtt_count += 1;
                return self.flush_before_blocking();
            }
            let now = Instant::now();
            if now >= deadline {
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
        self.receive(1, true)
    }

    /// --wait: prints everything that comes back until `wait` has passed.
    fn collect_replies(&mut self, wait: Duration) -> Result<()> {
        let deadline = Instant::now() + wait;
        let before = self.stats.replies;
        loop {
            if self.receive_some(net::BATCH)? > 0 {
                continue;
            }
            self.flush_before_blocking()?;
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let stdout = io::stdout();
            match net::wait(
                &[self.socket.as_fd()],
                Some(stdout.as_fd()),
                self.signals.fd(),
                Some(deadline - now),
            )? {
                net::Wake::Signal => self.check_signal()?,
                // The reader of our output went away: nothing more to print for anyone.
                net::Wake::OutputGone => return Ok(()),
                net::Wake::Ready | net::Wake::Timeout => {}
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
        let batch = if self.cfg.wait.is_some() {
            net::BATCH
        } else {
            1
        };
        let receiver = self.receiver.get_or_insert_with(|| Receiver::new(batch));
        let n = match receiver.recv_with(&self.socket, max, block) {
            Ok(n) => n,
            Err(e) => return Err(self.send_error(e)),
        };
        let read_time = SystemTime::now();
        for k in 0..n {
            let Some(receiver) = &self.receiver else {
                break;
            };
            let (payload, meta) = receiver.get(k);
            let from = addr::canonical(meta.from);
            let to = addr::canonical(self.local);
            self.printer
                .write(
                    &mut self.out,
                    &Datagram {
                        payload,
                        from,
                        to,
                        at: meta.at.unwrap_or(read_time),
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
        if self.eager_flush {
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
        if let Some(min) = s.rtt_min {
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            line += &format!(
                "; round trip min/avg/max {:.3}/{:.3}/{:.3} ms",
                ms(min),
                ms(s.rtt_sum) / f64::from(s.rtt_count.max(1)),
                ms(s.rtt_max)
            );
        }
        crate::logging::stderr_line(line);
    }
}
