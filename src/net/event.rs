//! The event loop each command waits in: one mio `Poll` (epoll, kqueue, or Windows' AFD)
//! watching the sockets, the signal source, stdin where it can be watched, and stdout for
//! its reader going away. mio's readiness is edge-triggered: a socket is drained until a
//! short batch before the loop waits again, and stdin's readiness is asked of the system
//! afresh ([`super::Input::ready`]), so no edge is ever lost.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Interest, Poll, Registry, Token, Waker};

use super::sys;

/// The signal source (the self-pipe on Unix, the console handler's waker on Windows).
pub(crate) const SIGNAL: Token = Token(usize::MAX - 1);
/// stdout, watched for its reader going away.
pub(crate) const STDOUT: Token = Token(usize::MAX - 2);
/// The loop's one waker (mio allows one per loop), for threads: command runners, the stdin
/// reader and the console handler on Windows.
pub(crate) const WAKE: Token = Token(usize::MAX - 4);
/// stdin (a pipe, socket or terminal on Unix; on Windows a thread reads it and wakes the
/// loop through the waker).
#[cfg(unix)]
pub(crate) const INPUT: Token = Token(usize::MAX - 3);

/// Tokens from here up belong to a role's own sockets (forward's upstream sockets); below
/// are listen's sockets, by index.
pub const ROLE_TOKENS: usize = 1 << 20;

/// What ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A socket (or stdin) has something to read, or an error to report, or a thread woke
    /// the loop: the caller looks at everything it waits for (signals included).
    Ready,
    Timeout,
    /// A signal arrived: the caller asks the signal state what to do.
    Signal,
    /// The reader of our stdout went away.
    OutputGone,
}

/// One readiness loop; sockets are registered with their index as the token.
pub struct Poller {
    poll: Poll,
    events: Events,
    waker: Option<Arc<Waker>>,
    /// Role tokens that fired in the last wait.
    fired: Vec<usize>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller").finish_non_exhaustive()
    }
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        Ok(Poller {
            poll: Poll::new()?,
            events: Events::with_capacity(64),
            waker: None,
            fired: Vec::new(),
        })
    }

    pub(crate) fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// A handle to register and deregister a role's sockets (tokens from [`ROLE_TOKENS`]).
    pub fn role_registry(&self) -> io::Result<Registry> {
        self.poll.registry().try_clone()
    }

    /// The role tokens that were ready in the last wait.
    pub fn fired(&self) -> &[usize] {
        &self.fired
    }

    /// The waker other threads use to end a wait (as `Wake::Ready`).
    pub fn waker(&mut self) -> io::Result<Arc<Waker>> {
        if let Some(w) = &self.waker {
            return Ok(Arc::clone(w));
        }
        let w = Arc::new(Waker::new(self.poll.registry(), WAKE)?);
        self.waker = Some(Arc::clone(&w));
        Ok(w)
    }

    /// Watches `socket` for datagrams; `index` comes back as nothing more than `Wake::Ready`.
    pub fn add_socket(&self, socket: &mut mio::net::UdpSocket, index: usize) -> io::Result<()> {
        self.registry()
            .register(socket, Token(index), Interest::READABLE)
    }

    /// Watches one of listen's sockets, of either kind.
    pub fn add(&self, socket: &mut super::Sock, index: usize) -> io::Result<()> {
        match socket {
            super::Sock::Udp(s) => self.add_socket(s, index),
            #[cfg(unix)]
            super::Sock::Unix(s) => self
                .registry()
                .register(s, Token(index), Interest::READABLE),
        }
    }

    /// Watches stdout for its reader going away, where the system can tell (a pipe or a
    /// socket on Unix); elsewhere that shows at the next write.
    pub fn watch_stdout(&self) -> io::Result<()> {
        sys::watch_stdout(self.registry(), STDOUT)
    }

    /// Blocks until something registered is ready, a signal arrives, stdout's reader goes
    /// away, or `timeout` passes.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<Wake> {
        // Round up so a wait never ends a hair early and spins (mio waits in milliseconds
        // on some systems).
        let timeout = timeout.map(|d| d.saturating_add(Duration::from_micros(999)));
        self.fired.clear();
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Wake::Signal),
            Err(e) => return Err(e),
        }
        if self.events.is_empty() {
            return Ok(Wake::Timeout);
        }
        let mut wake = Wake::Ready;
        for event in &self.events {
            match event.token() {
                SIGNAL => wake = Wake::Signal,
                STDOUT if event.is_error() || event.is_write_closed() => {
                    wake = Wake::OutputGone;
                }
                Token(t) if (ROLE_TOKENS..WAKE.0).contains(&t) => self.fired.push(t),
                _ => {}
            }
        }
        Ok(wake)
    }
}
