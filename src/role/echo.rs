//! `--echo`: each datagram goes back to its sender, unchanged, from the address it arrived on.

use anyhow::Result;

use super::{Incoming, Role};
use crate::net::{self, Listener};

#[derive(Debug, Default)]
pub struct Echo {
    /// Datagrams from Unix sockets without a name: nothing can be sent back to them.
    nameless: u64,
}

impl Role for Echo {
    fn take(&mut self, d: &Incoming<'_>, sockets: &[Listener]) -> Result<()> {
        if !d.from.answerable() {
            self.nameless += 1;
            if self.nameless == 1 {
                tracing::warn!(
                    "datagram {} came from a Unix socket with no name (unix:): it cannot be \
                     echoed; --stats counts such datagrams",
                    d.index
                );
            }
            return Ok(());
        }
        let l = &sockets[d.socket];
        let local = d.reply_from.filter(|_| l.wildcard);
        if let Err(e) = net::answer(&l.socket, d.payload, d.from, local) {
            tracing::warn!("cannot echo to {}: {e}", d.peer);
        }
        Ok(())
    }

    fn has_events(&self) -> bool {
        false
    }

    fn stats(&self) -> String {
        if self.nameless == 0 {
            return String::new();
        }
        format!(
            "; {} from nameless senders not echoed",
            crate::output::plural(self.nameless, "datagram")
        )
    }
}
