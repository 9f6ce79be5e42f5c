//! What listen does with a datagram besides printing it: answer it (`--echo`, `--exec`) or,
//! later, relay it. At most one role per listener; each lives in its own file behind
//! [`Role`], so the listen loop, the output and the sockets know nothing of any of them.

pub mod echo;
pub mod exec;
pub mod forward;

use std::net::IpAddr;
use std::time::Instant;

use anyhow::Result;

use crate::addr::Addr;
use crate::net::Listener;
use crate::output::Datagram;

/// Where a role's own records go (forward's replies): listen's printer, in arrival order
/// with everything else.
pub type Emit<'e> = dyn FnMut(&Datagram<'_>) -> std::io::Result<()> + 'e;

/// A datagram that passed `--allow` and was printed, as a role sees it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// 1 for the first datagram listen accepted.
    pub index: u64,
    pub payload: &'a [u8],
    /// The sender, as the socket gave it (what to answer to).
    pub from: &'a Addr,
    /// The sender as udpcat shows it (IPv4-mapped shown as IPv4).
    pub peer: &'a Addr,
    /// The local address it arrived on, as udpcat shows it.
    pub local: &'a Addr,
    /// Which of listen's sockets it came in on.
    pub socket: usize,
    /// The source address to answer from (the arrival address), where the system says it.
    pub reply_from: Option<IpAddr>,
}

/// One answering or relaying role.
pub trait Role {
    /// How many more datagrams the role can take now (`None`: any number). With 0, listen
    /// stops reading; the kernel queues what arrives.
    fn room(&self) -> Option<usize> {
        None
    }

    /// Handles a datagram (listen has printed it).
    fn take(&mut self, d: &Incoming<'_>, sockets: &[Listener]) -> Result<()>;

    /// Ends a drain: sends what `take` queued (forward batches its sends). listen calls it
    /// after every batch of datagrams, before it waits or ends.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    /// Finishes what completed since the last call (exec: commands that ended, their
    /// replies sent; forward: what came back on the role's sockets that `fired`, relayed and
    /// printed through `emit`) and stops what ran past its deadline.
    fn collect(
        &mut self,
        _sockets: &[Listener],
        _fired: &[usize],
        _emit: &mut Emit<'_>,
    ) -> Result<()> {
        Ok(())
    }

    /// With `--count` reached: whether nothing is left to wait for (forward: the replies of
    /// what was relayed, within a grace period).
    fn settled(&self) -> bool {
        true
    }

    /// When the loop must wake for the role next (exec: the earliest --exec-timeout).
    fn deadline(&self) -> Option<Instant> {
        None
    }

    /// For `--count`: how many datagrams the role has finished with, when the count is of
    /// finished work rather than of datagrams printed (exec: commands that ended).
    fn finished(&self) -> Option<u64> {
        None
    }

    /// Stops whatever still runs (a signal, a timeout, the end of output).
    fn stop(&mut self) {}

    /// Whether the role has events of its own for the loop to wait for (commands ending,
    /// replies on its sockets); without, listen may wait by receiving (see
    /// [`crate::net::DirectWait`]).
    fn has_events(&self) -> bool {
        true
    }

    /// The role's part of the `--stats` line, starting with `; `.
    fn stats(&self) -> String {
        String::new()
    }
}
