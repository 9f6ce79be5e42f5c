//! udpcat: send, watch and script UDP datagrams. The binary is `src/main.rs`; the modules
//! are a library so tests, benches and fuzz targets can reach the pure parts.
//!
//! Data flows one way: flags (`cli`) -> a validated config (`listen::Config`,
//! `send::Config`) -> sockets (`net`) -> records (`framing`, `output`) -> a writer.

#![deny(unsafe_code)]

pub mod addr;
pub mod cli;
pub mod exit;
pub mod framing;
pub mod listen;
pub mod logging;
pub mod net;
pub mod output;
pub mod process;
pub mod progress;
pub mod replay;
pub mod role;
pub mod rtt;
pub mod send;
pub mod signal;
