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
pub mod replay;
pub mod role;
pub mod send;
pub mod signal;

// The capture formats of issue 14 live where STYLE.md puts formats, in `src/output/`; they
// are reached from here until output.rs declares them (`pub mod dump; pub mod pcap;`) and
// these lines go.
#[path = "output/dump.rs"]
pub mod dump;
#[path = "output/pcap.rs"]
pub mod pcap;
