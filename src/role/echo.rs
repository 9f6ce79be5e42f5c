//! `--echo`: each datagram goes back to its sender, unchanged, from the address it arrived on.

use anyhow::Result;

use super::{Incoming, Role};
use crate::net::{self, Listener};

#[derive(Debug, Default)]
pub struct Echo;

impl Role for Echo {
    fn take(&mut self, d: &Incoming<'_>, sockets: &[Listener]) -> Result<()> {
        let l = &sockets[d.socket];
        let local = d.reply_from.filter(|_| l.wildcard);
        if let Err(e) = net::send_from(&l.socket, d.payload, d.from, local) {
            tracing::warn!("cannot echo to {}: {e}", d.peer);
        }
        Ok(())
    }
}
