//! SIGINT and SIGTERM: the first one asks the loops to stop (they flush and print stats),
//! a second one exits at once. A self-pipe wakes any `poll` the loops are blocked in.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::exit::Status;

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

    /// The fd that becomes readable when a signal arrives.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
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
