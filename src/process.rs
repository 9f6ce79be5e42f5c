//! Child processes for `listen --exec`: the system shell, stopping a command with everything
//! it started, and how it ended. The per-system halves are the two `imp` modules below.

use std::process::{Command, ExitStatus};

/// `sh -c CMD` on Unix, in a process group of its own (so a timeout or a signal reaches
/// everything CMD started); `cmd /C CMD` on Windows, CMD passed as written.
pub fn shell(cmd: &str) -> Command {
    imp::shell(cmd)
}

/// Stops the command whose process (and group) is `pid`: politely (SIGTERM) or not
/// (SIGKILL). On Windows both end the whole tree at once.
pub fn stop(pid: u32, hard: bool) {
    imp::stop(pid, hard)
}

/// The signal that ended the process, where the system has signals.
pub fn signal_of(status: &ExitStatus) -> Option<i32> {
    imp::signal_of(status)
}

/// Lets this process hold `want` open files where the system's hard limit allows (the soft
/// limit is often 1024, less than a relay with --max-peers 1024 needs).
pub fn raise_open_files(want: u64) {
    imp::raise_open_files(want)
}

#[cfg(unix)]
mod imp {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, ExitStatus};

    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;

    pub fn shell(cmd: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(cmd).process_group(0);
        c
    }

    pub fn stop(pid: u32, hard: bool) {
        let signal = if hard {
            Signal::SIGKILL
        } else {
            Signal::SIGTERM
        };
        if let Ok(pid) = i32::try_from(pid) {
            // The group may be gone already: nothing to stop then.
            let _ = killpg(Pid::from_raw(pid), signal);
        }
    }

    pub fn signal_of(status: &ExitStatus) -> Option<i32> {
        status.signal()
    }

    pub fn raise_open_files(want: u64) {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        // rlim_t is unsigned on Linux and macOS, signed on FreeBSD.
        let want = nix::libc::rlim_t::try_from(want).unwrap_or(nix::libc::rlim_t::MAX);
        if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            if soft < want {
                let _ = setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard);
            }
        }
    }
}

#[cfg(windows)]
mod imp {
    use std::os::windows::process::CommandExt;
    use std::process::{Command, ExitStatus, Stdio};

    pub fn shell(cmd: &str) -> Command {
        let mut c = Command::new("cmd");
        // cmd.exe parses its own command line: pass CMD untouched, as `sh -c` gets it.
        c.arg("/C").raw_arg(cmd);
        c
    }

    /// `taskkill /T` ends the process and every process it started.
    pub fn stop(pid: u32, _hard: bool) {
        let _ = Command::new("taskkill")
            .args(["/F", "/T", "/PID", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    pub fn signal_of(_status: &ExitStatus) -> Option<i32> {
        None
    }

    /// Windows has no per-process limit of this kind worth raising.
    pub fn raise_open_files(_want: u64) {}
}
