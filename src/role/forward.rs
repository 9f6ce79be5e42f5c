//! `--forward DEST` (repeatable): a relay and tee. Each peer gets one socket per DEST (an
//! ephemeral port, connected to DEST), so DEST sees one steady address per peer and what it
//! sends back on that socket goes to that peer alone, from the address the peer's datagram
//! arrived on. Sends are non-blocking: a DEST that is slow, refuses or is unreachable costs
//! only its own copies, counted. Peers close after `--forward-idle` without a datagram either
//! way; one more than `--max-peers` closes the least recently active.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use super::{Emit, Incoming, Role};
use crate::addr::Addr;
use crate::net::{self, Listener, ROLE_TOKENS, Receiver, Sock};
use crate::output::{self, Datagram, Dir};
use anyhow::Result;
use mio::{Interest, Registry, Token};

/// What `--forward` needs, validated.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    pub dests: Vec<Addr>,
    pub idle: Duration,
    pub max_peers: usize,
    /// Ask for arrival times on the upstream sockets (json's `ts`).
    pub timestamps: bool,
}

/// The default of `--forward-idle`.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(60);
/// The default of `--max-peers`.
pub const DEFAULT_MAX_PEERS: usize = 1024;
/// After `--count` datagrams were relayed, how long replies are still awaited.
pub const GRACE: Duration = Duration::from_millis(500);

/// A peer: which of listen's sockets it wrote to, and from where.
type PeerKey = (usize, Addr);

#[derive(Debug)]
struct Peer {
    /// One socket per DEST, in `dests` order, with its token.
    upstream: Vec<(Sock, usize)>,
    /// The files of its Unix upstream sockets (where the system has no autobind): removed
    /// with the peer.
    _files: Vec<net::Cleanup>,
    last_active: Instant,
    /// The address to answer from (where the peer's datagrams arrive).
    reply_from: Option<IpAddr>,
    shown: Addr,
    /// "Port unreachable" already said for this DEST.
    refused_said: Vec<bool>,
}

/// Per DEST figures.
#[derive(Debug, Default, Clone)]
struct DestStats {
    forwarded: u64,
    replies: u64,
    errors: u64,
}

pub struct Forward {
    cfg: ForwardConfig,
    registry: Registry,
    peers: HashMap<PeerKey, Peer>,
    /// token -> (peer, DEST index)
    tokens: HashMap<usize, (PeerKey, usize)>,
    next_token: usize,
    rx: Receiver,
    dests: Vec<DestStats>,
    peers_seen: u64,
    expired: u64,
    evicted: u64,
    next_sweep: Option<Instant>,
    /// When the last datagram was relayed (for the grace period after --count).
    last_forward: Option<Instant>,
    /// Datagrams taken in this drain and not sent yet: their peer, where their payload is in
    /// `arena`, and their index.
    queued: Vec<(PeerKey, std::ops::Range<usize>, u64)>,
    arena: Vec<u8>,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("cfg", &self.cfg)
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Forward {
    pub fn new(cfg: ForwardConfig, poller: &net::Poller) -> Result<Self> {
        let n = cfg.dests.len();
        // One socket per peer and DEST, and room for the rest.
        crate::process::raise_open_files((cfg.max_peers * n) as u64 + 256);
        Ok(Forward {
            cfg,
            registry: poller.role_registry()?,
            peers: HashMap::new(),
            tokens: HashMap::new(),
            next_token: ROLE_TOKENS,
            rx: Receiver::new(net::BATCH),
            dests: vec![DestStats::default(); n],
            peers_seen: 0,
            expired: 0,
            evicted: 0,
            next_sweep: None,
            last_forward: None,
            queued: Vec::with_capacity(net::BATCH),
            arena: Vec::new(),
        })
    }

    /// A non-blocking socket on an ephemeral port, connected to `dest`, watched by the loop.
    fn upstream(&mut self, dest: &Addr) -> io::Result<(Sock, usize, Option<net::Cleanup>)> {
        let (mut socket, file) = Sock::connected(dest, self.cfg.timestamps)?;
        let token = self.next_token;
        self.next_token += 1;
        match &mut socket {
            Sock::Udp(s) => self
                .registry
                .register(s, Token(token), Interest::READABLE)?,
            #[cfg(unix)]
            Sock::Unix(s) => self
                .registry
                .register(s, Token(token), Interest::READABLE)?,
        }
        Ok((socket, token, file))
    }

    fn deregister(&self, socket: &mut Sock) {
        let _ = match socket {
            Sock::Udp(s) => self.registry.deregister(s),
            #[cfg(unix)]
            Sock::Unix(s) => self.registry.deregister(s),
        };
    }

    fn close(&mut self, key: &PeerKey) {
        if let Some(mut peer) = self.peers.remove(key) {
            for (socket, token) in &mut peer.upstream {
                self.deregister(socket);
                self.tokens.remove(token);
            }
        }
    }

    /// The peer's sockets, opened (and a peer evicted to make room) if it is new.
    fn peer(&mut self, d: &Incoming<'_>) -> io::Result<&mut Peer> {
        let key = (d.socket, d.from.clone());
        if !self.peers.contains_key(&key) {
            if self.peers.len() >= self.cfg.max_peers {
                let oldest = self
                    .peers
                    .iter()
                    .min_by_key(|(_, p)| p.last_active)
                    .map(|(k, p)| (k.clone(), p.shown.clone()));
                if let Some((old, shown)) = oldest {
                    self.close(&old);
                    self.evicted += 1;
                    tracing::info!(
                        "{shown}: relay closed to make room for {} (--max-peers {})",
                        d.peer,
                        self.cfg.max_peers
                    );
                }
            }
            let mut upstream = Vec::with_capacity(self.cfg.dests.len());
            let mut files = Vec::new();
            for (i, dest) in self.cfg.dests.clone().iter().enumerate() {
                let (socket, token, file) = match self.upstream(dest) {
                    Ok(u) => u,
                    Err(e) => {
                        for (mut s, t) in upstream {
                            self.deregister(&mut s);
                            self.tokens.remove(&t);
                        }
                        return Err(e);
                    }
                };
                self.tokens.insert(token, (key.clone(), i));
                upstream.push((socket, token));
                files.extend(file);
            }
            self.peers_seen += 1;
            tracing::info!("{}: new peer, relaying to {:?}", d.peer, self.cfg.dests);
            self.peers.insert(
                key.clone(),
                Peer {
                    upstream,
                    _files: files,
                    last_active: Instant::now(),
                    reply_from: d.reply_from,
                    shown: d.peer.clone(),
                    refused_said: vec![false; self.cfg.dests.len()],
                },
            );
        }
        // The key was just made sure of.
        self.peers
            .get_mut(&key)
            .ok_or_else(|| io::Error::other("peer vanished"))
    }

    /// Relays everything waiting on the upstream socket `token` to its peer, printing each.
    fn relay_back(
        &mut self,
        token: usize,
        sockets: &[Listener],
        emit: &mut Emit<'_>,
    ) -> Result<()> {
        let Some((key, d)) = self.tokens.get(&token).cloned() else {
            return Ok(());
        };
        let dest = self.cfg.dests[d].clone();
        loop {
            let Some(peer) = self.peers.get_mut(&key) else {
                return Ok(());
            };
            let upstream = &peer.upstream[d].0;
            let n = match self.rx.recv(upstream, net::BATCH) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    self.dests[d].errors += 1;
                    if !peer.refused_said[d] {
                        peer.refused_said[d] = true;
                        tracing::warn!(
                            "{dest} refused what {} sent: port unreachable (nothing listens \
                             there); relaying goes on",
                            peer.shown
                        );
                    }
                    continue;
                }
                Err(e) => {
                    self.dests[d].errors += 1;
                    tracing::warn!("receiving from {dest} for {}: {e}", peer.shown);
                    return Ok(());
                }
            };
            if n == 0 {
                return Ok(());
            }
            let local = upstream.local();
            let l = &sockets[key.0];
            let answer_from = peer.reply_from.filter(|_| l.wildcard);
            peer.last_active = Instant::now();
            let read_time = SystemTime::now();
            for k in 0..n {
                let (payload, meta) = self.rx.get(k);
                // Relayed first, printed second: a slow reader of stdout delays the record,
                // not the peer's answer.
                if let Err(e) = net::answer(&l.socket, payload, &key.1, answer_from) {
                    tracing::warn!("cannot relay {dest}'s reply to {}: {e}", peer.shown);
                }
                self.dests[d].replies += 1;
                emit(&Datagram {
                    payload,
                    from: &meta.from.canonical(),
                    to: &local,
                    at: meta.at.unwrap_or(read_time),
                    dir: Some(Dir::Reply),
                })?;
            }
            if !self.rx.more() {
                return Ok(());
            }
        }
    }

    fn sweep(&mut self, now: Instant) {
        let idle = self.cfg.idle;
        let expired: Vec<(PeerKey, Addr)> = self
            .peers
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_active) >= idle)
            .map(|(k, p)| (k.clone(), p.shown.clone()))
            .collect();
        for (key, shown) in expired {
            self.close(&key);
            self.expired += 1;
            tracing::info!(
                "{shown}: relay closed after {} without a datagram (--forward-idle)",
                output::duration(idle)
            );
        }
        self.next_sweep = (!self.peers.is_empty()).then(|| now + self.sweep_every());
    }

    /// Idle peers are looked for this often: a tenth of --forward-idle, at most every second.
    fn sweep_every(&self) -> Duration {
        (self.cfg.idle / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

impl Role for Forward {
    fn take(&mut self, d: &Incoming<'_>, _sockets: &[Listener]) -> Result<()> {
        let now = Instant::now();
        let key = (d.socket, d.from.clone());
        // The common case, a peer seen before: one lookup.
        match self.peers.get_mut(&key) {
            Some(peer) => peer.last_active = now,
            None => {
                if let Err(e) = self.peer(d) {
                    for s in &mut self.dests {
                        s.errors += 1;
                    }
                    tracing::warn!("cannot open a relay for {}: {e}", d.peer);
                    return Ok(());
                }
            }
        }
        // Queued, and sent with the rest of this drain in one batch per upstream socket
        // (sendmmsg on Linux): `flush`, which listen calls after every drain.
        let start = self.arena.len();
        self.arena.extend_from_slice(d.payload);
        self.queued.push((key, start..self.arena.len(), d.index));
        self.last_forward = Some(now);
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now + self.sweep_every());
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let queued = std::mem::take(&mut self.queued);
        // One list of payloads for the whole drain; each peer's run is a slice of it.
        let all: Vec<&[u8]> = queued
            .iter()
            .map(|(_, r, _)| &self.arena[r.clone()])
            .collect();
        let mut from = 0;
        while from < queued.len() {
            // A run of datagrams from one peer goes out together.
            let key = &queued[from].0;
            let to = queued[from..]
                .iter()
                .position(|(k, _, _)| k != key)
                .map_or(queued.len(), |n| from + n);
            let payloads = &all[from..to];
            if let Some(peer) = self.peers.get_mut(key) {
                for (i, (socket, _)) in peer.upstream.iter().enumerate() {
                    let mut done = 0;
                    while done < payloads.len() {
                        let stats = &mut self.dests[i];
                        match socket.send_batch(&payloads[done..]) {
                            Ok(()) => {
                                stats.forwarded += (payloads.len() - done) as u64;
                                break;
                            }
                            Err((n, e)) => {
                                stats.forwarded += n as u64;
                                stats.errors += 1;
                                let index = queued[from + done + n].2;
                                done += n + 1;
                                let dest = &self.cfg.dests[i];
                                if e.kind() == io::ErrorKind::ConnectionRefused {
                                    // An earlier datagram's "port unreachable", reported on
                                    // this send.
                                    if !peer.refused_said[i] {
                                        peer.refused_said[i] = true;
                                        tracing::warn!(
                                            "{dest} refused what {} sent: port unreachable \
                                             (nothing listens there); relaying goes on",
                                            peer.shown
                                        );
                                    }
                                } else {
                                    tracing::warn!("cannot relay datagram {index} to {dest}: {e}");
                                }
                            }
                        }
                    }
                }
            }
            from = to;
        }
        self.arena.clear();
        self.queued = queued;
        self.queued.clear();
        Ok(())
    }

    fn collect(
        &mut self,
        sockets: &[Listener],
        fired: &[usize],
        emit: &mut Emit<'_>,
    ) -> Result<()> {
        for &token in fired {
            self.relay_back(token, sockets, emit)?;
        }
        let now = Instant::now();
        if self.next_sweep.is_some_and(|t| t <= now) {
            self.sweep(now);
        }
        Ok(())
    }

    fn deadline(&self) -> Option<Instant> {
        let grace = self.last_forward.map(|t| t + GRACE);
        match (self.next_sweep, grace.filter(|_| !self.settled())) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Every DEST answered as many datagrams as it was sent, or the grace period is over.
    fn settled(&self) -> bool {
        if !self.queued.is_empty() {
            return false;
        }
        self.dests.iter().all(|d| d.replies >= d.forwarded)
            || self.last_forward.is_none_or(|t| t.elapsed() >= GRACE)
    }

    fn stop(&mut self) {
        let _ = self.flush();
        let keys: Vec<PeerKey> = self.peers.keys().cloned().collect();
        for k in keys {
            self.close(&k);
        }
    }

    fn stats(&self) -> String {
        let forwarded: u64 = self.dests.iter().map(|d| d.forwarded).sum();
        let replies: u64 = self.dests.iter().map(|d| d.replies).sum();
        let errors: Vec<String> = self
            .cfg
            .dests
            .iter()
            .zip(&self.dests)
            .map(|(a, d)| format!("{a} {}", d.errors))
            .collect();
        format!(
            "; {} forwarded, {} relayed back; {} ({} expired, {} evicted); send errors: {}",
            forwarded,
            output::plural(replies, "reply"),
            output::plural(self.peers_seen, "peer"),
            self.expired,
            self.evicted,
            errors.join(", ")
        )
    }
}
