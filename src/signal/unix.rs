//! Unix: signal-hook's flags, plus a self-pipe the event loop watches.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result};
use mio::Interest;
use mio::unix::SourceFd;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::exit::Status;
use crate::net::Poller;

#[derive(Debug)]
pub struct Signals {
    wake: UnixStream,
    last: Arc<AtomicUsize>,
}

impl Signals {
    pub fn install() -> Result<Self> {
        let (wake, notify) = UnixStream::pair().context("creating the signal pipe")?;
        wake.set_nonblocking(true)
            .context("creating the signal pipe")?;
        let stopping = Arc::new(AtomicBool::new(false));
        let last = Arc::new(AtomicUsize::new(0));
        for (sig, code) in [(SIGINT, 130), (SIGTERM, 143)] {
            // Registered first, so it sees the flag as the previous signal left it.
            signal_hook::flag::register_conditional_shutdown(sig, code, Arc::clone(&stopping))
                .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stopping)))
                .and_then(|_| {
                    signal_hook::flag::register_usize(sig, Arc::clone(&last), sig as usize)
                })
                .and_then(|_| signal_hook::low_level::pipe::register(sig, notify.try_clone()?))
                .context("installing signal handlers")?;
        }
        Ok(Signals { wake, last })
    }

    /// Makes a signal end `poller`'s waits (as `Wake::Signal`).
    pub fn register(&self, poller: &mut Poller) -> io::Result<()> {
        let fd = self.wake.as_raw_fd();
        poller.registry().register(
            &mut SourceFd(&fd),
            crate::net::SIGNAL_TOKEN,
            Interest::READABLE,
        )
    }

    /// The status to exit with if a stop was asked for.
    pub fn stop_requested(&self) -> Option<Status> {
        match self.last.load(Ordering::SeqCst) {
            0 => None,
            s if s == SIGTERM as usize => Some(Status::Terminated),
            _ => Some(Status::Interrupted),
        }
    }
}
