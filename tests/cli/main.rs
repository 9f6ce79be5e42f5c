//! End-to-end tests of the real `udpcat` binary over loopback.
//!
//! Every case states exit status, stdout and stderr together ([`util::Run::check`]); a
//! `listen` case waits for the readiness line before sending, never for a clock.

mod bad_input;
mod docs;
mod exit_status;
mod faults;
mod formats;
mod help;
mod interop;
mod listen;
mod netns;
mod raw_proc;
mod send;
mod sharp_edges;
mod signals;
mod util;
