//! SIGINT and SIGTERM (Ctrl-C and Ctrl-Break on Windows): the first one asks the loops to
//! stop (they flush and print stats), a second one exits at once. Each half wakes the
//! event loop ([`crate::net::Poller`]) so a wait ends as soon as a stop is asked for.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::Signals;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::Signals;
