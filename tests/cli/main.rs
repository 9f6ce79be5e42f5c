//! End-to-end tests of the real `udpcat` binary over loopback.
//!
//! They run on Linux (network namespaces, /proc, strace, a pseudo-terminal); the other
//! systems are type-checked by clippy and Windows is run under wine by tests/wine/smoke.sh.
//!
//! Every case states exit status, stdout and stderr together ([`util::Run::check`]); a
//! `listen` case waits for the readiness line before sending, never for a clock.

#![cfg(target_os = "linux")]

mod bad_input;
mod capture;
mod docs;
mod exec;
mod exit_status;
mod faults;
mod formats;
mod forward;
mod help;
mod interop;
mod listen;
mod netns;
mod offload;
mod ping_stats;
mod progress;
mod raw_proc;
mod round_trip;
mod send;
mod sharp_edges;
mod signals;
mod unix;
mod util;
