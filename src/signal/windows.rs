//! Windows: a console control handler. Ctrl-C stops with 130, Ctrl-Break with 143 (as
//! SIGINT and SIGTERM do on Unix); a second one exits at once.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{Result, anyhow};
use windows_sys::Win32::Foundation::{FALSE, TRUE};
use windows_sys::Win32::System::Console::{CTRL_BREAK_EVENT, CTRL_C_EVENT, SetConsoleCtrlHandler};
use windows_sys::core::BOOL;

use crate::exit::Status;
use crate::net::Poller;

/// The exit status the first Ctrl-C / Ctrl-Break asked for (0: none yet).
static LAST: AtomicI32 = AtomicI32::new(0);
static STOPPING: AtomicBool = AtomicBool::new(false);
/// The event loop's waker, so a Ctrl-C ends its wait.
static WAKER: OnceLock<Arc<mio::Waker>> = OnceLock::new();

#[derive(Debug)]
pub struct Signals;

/// Runs on a thread of its own that Windows starts for each event.
extern "system" fn on_console_event(event: u32) -> BOOL {
    let code = match event {
        CTRL_C_EVENT => 130,
        CTRL_BREAK_EVENT => 143,
        _ => return FALSE,
    };
    if STOPPING.swap(true, Ordering::SeqCst) {
        // The second one: the loop did not stop in time (a full stdout, say).
        std::process::exit(code);
    }
    LAST.store(code, Ordering::SeqCst);
    if let Some(w) = WAKER.get() {
        let _ = w.wake();
    }
    TRUE
}

impl Signals {
    /// The one unsafe fence of this file: the system call that installs the handler.
    #[allow(unsafe_code)]
    pub fn install() -> Result<Self> {
        // SAFETY: `on_console_event` is a plain `extern "system"` function that lives for
        // the whole program and touches only atomics and the waker (which is thread-safe).
        let ok = unsafe { SetConsoleCtrlHandler(Some(on_console_event), TRUE) };
        if ok == 0 {
            return Err(anyhow!(
                "installing the Ctrl-C handler: {}",
                io::Error::last_os_error()
            ));
        }
        Ok(Signals)
    }

    /// Makes Ctrl-C end `poller`'s waits (as `Wake::Ready`: the loop then asks
    /// `stop_requested`).
    pub fn register(&self, poller: &mut Poller) -> io::Result<()> {
        let _ = WAKER.set(poller.waker()?);
        Ok(())
    }

    /// The status to exit with if a stop was asked for.
    pub fn stop_requested(&self) -> Option<Status> {
        match LAST.load(Ordering::SeqCst) {
            0 => None,
            143 => Some(Status::Terminated),
            _ => Some(Status::Interrupted),
        }
    }
}
