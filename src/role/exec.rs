//! `--exec CMD`: each datagram runs CMD through the system shell with the payload on its
//! stdin; what CMD prints, when it exits 0, is the reply. A thread per command feeds its
//! stdin, collects its stdout and waits for it, then wakes the event loop; the loop sends
//! replies, stops commands past `--exec-timeout`, and reads no more datagrams while
//! `--jobs` commands run (the kernel queues them; nothing is dropped by udpcat).

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{Emit, Incoming, Role};
use crate::addr::Addr;
use crate::net::{self, Listener};
use crate::output;
use crate::process;

/// What `--exec` needs, validated.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    pub command: String,
    pub timeout: Duration,
    pub jobs: usize,
}

/// The default of `--jobs`.
pub const DEFAULT_JOBS: usize = 16;
/// The default of `--exec-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A command that has not been collected yet.
#[derive(Debug)]
struct Job {
    pid: u32,
    deadline: Instant,
    timed_out: bool,
    socket: usize,
    from: Addr,
    peer: Addr,
    reply_from: Option<std::net::IpAddr>,
    /// The largest reply the sender's family can take.
    max: usize,
}

/// How a command ended, from its thread.
#[derive(Debug)]
struct Finished {
    index: u64,
    status: std::io::Result<ExitStatus>,
    /// stdout, up to one byte more than a reply may hold.
    out: Vec<u8>,
    /// How much it printed in all.
    printed: u64,
}

/// A datagram waiting for a free job (several sockets can hand over more than `room` said).
#[derive(Debug)]
struct Waiting {
    index: u64,
    payload: Vec<u8>,
    from: Addr,
    peer: Addr,
    local: Addr,
    socket: usize,
    reply_from: Option<std::net::IpAddr>,
}

pub struct Exec {
    cfg: ExecConfig,
    waker: Arc<mio::Waker>,
    running: HashMap<u64, Job>,
    waiting: VecDeque<Waiting>,
    done_tx: Sender<Finished>,
    done_rx: Receiver<Finished>,
    finished: u64,
    failed: u64,
    timed_out: u64,
    /// Commands for nameless Unix senders: nothing to send their output to.
    nameless: u64,
}

impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exec")
            .field("cfg", &self.cfg)
            .field("running", &self.running.len())
            .finish_non_exhaustive()
    }
}

impl Exec {
    pub fn new(cfg: ExecConfig, poller: &mut net::Poller) -> Result<Self> {
        let (done_tx, done_rx) = mpsc::channel();
        Ok(Exec {
            cfg,
            waker: poller.waker()?,
            running: HashMap::new(),
            waiting: VecDeque::new(),
            done_tx,
            done_rx,
            finished: 0,
            failed: 0,
            timed_out: 0,
            nameless: 0,
        })
    }

    fn spawn(&mut self, d: &Incoming<'_>) -> std::io::Result<u32> {
        let mut cmd = process::shell(&self.cfg.command);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("UDPCAT_PEER", d.peer.to_string())
            .env("UDPCAT_LOCAL", d.local.to_string())
            .env("UDPCAT_INDEX", d.index.to_string());
        // For Unix sockets the _ADDR variables hold the path and there is no _PORT.
        for (name, a) in [("PEER", d.peer), ("LOCAL", d.local)] {
            match a {
                Addr::Ip(ip) => {
                    cmd.env(format!("UDPCAT_{name}_ADDR"), ip.ip().to_string())
                        .env(format!("UDPCAT_{name}_PORT"), ip.port().to_string());
                }
                Addr::Unix(u) => {
                    let text = u.to_string();
                    cmd.env(
                        format!("UDPCAT_{name}_ADDR"),
                        text.strip_prefix("unix:").unwrap_or(&text),
                    );
                }
            }
        }
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let payload = d.payload.to_vec();
        let keep = max_reply(d.from) + 1;
        let (index, tx, waker) = (d.index, self.done_tx.clone(), Arc::clone(&self.waker));
        thread::Builder::new()
            .name(format!("exec {index}"))
            .spawn(move || {
                // The payload goes in from a thread of its own, so a command that prints
                // before it reads (or never reads) cannot deadlock against us.
                let feeder = stdin.map(|mut input| {
                    thread::spawn(move || {
                        // A command that exits without reading gives EPIPE: that is its choice.
                        let _ = input.write_all(&payload);
                    })
                });
                let mut out = Vec::new();
                let mut printed = 0u64;
                if let Some(mut stdout) = stdout {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match stdout.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                printed += n as u64;
                                let room = keep.saturating_sub(out.len()).min(n);
                                out.extend_from_slice(&buf[..room]);
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(_) => break,
                        }
                    }
                }
                let status = child.wait();
                if let Some(feeder) = feeder {
                    let _ = feeder.join();
                }
                let _ = tx.send(Finished {
                    index,
                    status,
                    out,
                    printed,
                });
                let _ = waker.wake();
            })?;
        Ok(pid)
    }

    /// Sends the reply of a finished command, or says why there is none.
    fn finish(&mut self, f: Finished, sockets: &[Listener]) {
        let Some(job) = self.running.remove(&f.index) else {
            return;
        };
        self.finished += 1;
        let i = f.index;
        let why = match &f.status {
            _ if job.timed_out => {
                self.timed_out += 1;
                format!(
                    "still running after {} (--exec-timeout), stopped",
                    output::duration(self.cfg.timeout)
                )
            }
            Err(e) => {
                self.failed += 1;
                format!("could not be waited for: {e}")
            }
            Ok(status) if !status.success() => {
                self.failed += 1;
                match (status.code(), process::signal_of(status)) {
                    (_, Some(sig)) => format!("was killed by signal {sig}"),
                    (Some(code), _) => format!("exited with status {code}"),
                    _ => format!("ended with {status}"),
                }
            }
            Ok(_) if f.printed == 0 => "printed nothing".to_string(),
            Ok(_) if f.printed > job.max as u64 => {
                self.failed += 1;
                format!(
                    "printed {}, more than one datagram to {} can carry ({})",
                    output::plural(f.printed, "byte"),
                    job.peer,
                    job.max
                )
            }
            Ok(_) => {
                if !job.from.answerable() {
                    self.nameless += 1;
                    if self.nameless == 1 {
                        tracing::warn!(
                            "datagram {i} came from a Unix socket with no name (unix:): the \
                             command ran, but its output cannot be sent back; --stats counts \
                             such datagrams"
                        );
                    }
                    return;
                }
                let l = &sockets[job.socket];
                let local = job.reply_from.filter(|_| l.wildcard);
                if let Err(e) = net::answer(&l.socket, &f.out, &job.from, local) {
                    tracing::warn!("datagram {i}: cannot send the reply to {}: {e}", job.peer);
                }
                return;
            }
        };
        tracing::warn!(
            "datagram {i} from {}: the command {why}; no reply",
            job.peer
        );
    }

    /// Runs the command for `d` now, or counts it failed if it cannot start.
    fn start(&mut self, d: &Incoming<'_>) {
        match self.spawn(d) {
            Ok(pid) => {
                self.running.insert(
                    d.index,
                    Job {
                        pid,
                        deadline: Instant::now() + self.cfg.timeout,
                        timed_out: false,
                        socket: d.socket,
                        from: d.from.clone(),
                        peer: d.peer.clone(),
                        reply_from: d.reply_from,
                        max: max_reply(d.from),
                    },
                );
            }
            Err(e) => {
                self.finished += 1;
                self.failed += 1;
                tracing::warn!(
                    "datagram {} from {}: cannot run the command: {e}; no reply",
                    d.index,
                    d.peer
                );
            }
        }
    }

    /// Takes what finished, without waiting.
    fn drain(&mut self, sockets: &[Listener]) {
        while let Ok(f) = self.done_rx.try_recv() {
            self.finish(f, sockets);
        }
    }
}

/// The largest reply kept for `to`: its family's limit; for a Unix socket 4 MiB (the system
/// refuses what it cannot take, and that is said).
fn max_reply(to: &Addr) -> usize {
    let v4 = match to {
        Addr::Ip(SocketAddr::V4(_)) => true,
        Addr::Ip(SocketAddr::V6(v6)) => v6.ip().to_ipv4_mapped().is_some(),
        Addr::Unix(_) => return 4 << 20,
    };
    if v4 {
        crate::framing::MAX_PAYLOAD_V4
    } else {
        crate::framing::MAX_PAYLOAD_V6
    }
}

impl Role for Exec {
    fn room(&self) -> Option<usize> {
        Some(
            self.cfg
                .jobs
                .saturating_sub(self.running.len() + self.waiting.len()),
        )
    }

    fn take(&mut self, d: &Incoming<'_>, _sockets: &[Listener]) -> Result<()> {
        if self.running.len() >= self.cfg.jobs {
            self.waiting.push_back(Waiting {
                index: d.index,
                payload: d.payload.to_vec(),
                from: d.from.clone(),
                peer: d.peer.clone(),
                local: d.local.clone(),
                socket: d.socket,
                reply_from: d.reply_from,
            });
            return Ok(());
        }
        self.start(d);
        Ok(())
    }

    fn collect(
        &mut self,
        sockets: &[Listener],
        _fired: &[usize],
        _emit: &mut Emit<'_>,
    ) -> Result<()> {
        self.drain(sockets);
        let now = Instant::now();
        for job in self.running.values_mut() {
            if !job.timed_out && job.deadline <= now {
                job.timed_out = true;
                process::stop(job.pid, true);
            }
        }
        while self.running.len() < self.cfg.jobs {
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            self.start(&Incoming {
                index: w.index,
                payload: &w.payload,
                from: &w.from,
                peer: &w.peer,
                local: &w.local,
                socket: w.socket,
                reply_from: w.reply_from,
            });
        }
        Ok(())
    }

    fn deadline(&self) -> Option<Instant> {
        self.running
            .values()
            .filter(|j| !j.timed_out)
            .map(|j| j.deadline)
            .min()
    }

    fn finished(&self) -> Option<u64> {
        Some(self.finished)
    }

    /// SIGTERM to every command (and what it started); what is still there a second later
    /// gets SIGKILL. Each thread reaps its own child, so none is left a zombie.
    fn stop(&mut self) {
        if self.running.is_empty() {
            return;
        }
        for job in self.running.values() {
            process::stop(job.pid, false);
        }
        let until = Instant::now() + Duration::from_secs(1);
        while !self.running.is_empty() {
            let left = until.saturating_duration_since(Instant::now());
            match self.done_rx.recv_timeout(left) {
                Ok(f) => {
                    self.running.remove(&f.index);
                }
                Err(_) => break,
            }
        }
        for job in self.running.values() {
            process::stop(job.pid, true);
        }
        while !self.running.is_empty() {
            match self.done_rx.recv_timeout(Duration::from_secs(1)) {
                Ok(f) => {
                    self.running.remove(&f.index);
                }
                Err(_) => break,
            }
        }
    }

    fn stats(&self) -> String {
        let nameless = if self.nameless > 0 {
            format!(", {} for nameless senders unanswered", self.nameless)
        } else {
            String::new()
        };
        format!(
            "; {} run, {} failed, {} timed out{nameless}",
            output::plural(self.finished, "command"),
            self.failed,
            self.timed_out
        )
    }
}
