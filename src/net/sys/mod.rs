//! The per-system halves of `net`, chosen here and nowhere else: `unix.rs` for what every
//! Unix shares (interfaces, stdin/stdout, pktinfo replies), then `linux.rs` (recvmmsg,
//! sendmmsg, SO_RXQ_OVFL, /proc drop counts) or `bsd.rs` (macOS and FreeBSD: a recvmsg or
//! sendmsg per datagram), and `windows.rs` (std and socket2 sockets, a stdin thread).
//! Each exports the same names; the compiler checks that every target has them all.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(all(unix, not(target_os = "linux")))]
mod bsd;
#[cfg(all(unix, not(target_os = "linux")))]
pub use bsd::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

/// What systems without coalesced receive (UDP_GRO) share: no scratch space between
/// receives, and nothing to turn on.
#[cfg(not(target_os = "linux"))]
mod plain {
    /// No coalesced receive here: nothing kept between calls.
    #[derive(Debug)]
    pub struct RecvScratch;

    impl RecvScratch {
        pub fn new() -> Self {
            RecvScratch
        }
    }

    /// No UDP_GRO here.
    pub fn enable_gro(_socket: &socket2::Socket) -> bool {
        false
    }
}
#[cfg(not(target_os = "linux"))]
pub use plain::*;
