//! The exit-status contract: one enum, one mapping from errors to statuses.

use std::fmt;
use std::io;

/// Every way udpcat can end, with the status the shell sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Done: count reached, input sent, replies received, or stdout closed by its reader.
    Success,
    /// Cannot bind, resolve or send; bad input data; I/O error.
    Failure,
    /// Unknown flag or bad value (clap's own).
    Usage,
    /// `--timeout` or `--wait` ended before the awaited datagrams or replies arrived.
    TimedOut,
    /// The destination answered "port unreachable".
    Refused,
    /// Stopped by SIGINT.
    Interrupted,
    /// Stopped by SIGTERM.
    Terminated,
}

impl Status {
    pub fn code(self) -> i32 {
        match self {
            Status::Success => 0,
            Status::Failure => 1,
            Status::Usage => 2,
            Status::TimedOut => 3,
            Status::Refused => 4,
            Status::Interrupted => 130,
            Status::Terminated => 143,
        }
    }
}

/// The table shown in `--help`, the man page and the README. Every line fits in 80 columns,
/// so clap (which wraps at the terminal's width, 100 into a pipe) never breaks one; a
/// meaning that needs more goes on continuation lines indented to the text column (7).
pub const TABLE: &str = exit_table!();

/// [`TABLE`] as a literal, so `--help`'s text can be put together at compile time.
macro_rules! exit_table {
    () => {
        "\
Exit status:
  0    done: count reached, input sent, replies received, or stdout closed by
       its reader
  1    failure: cannot bind, resolve or send; bad input data (oversize, not
       UTF-8, bad hex); I/O error
  2    usage: unknown flag, bad value (clap's own)
  3    timed out: --timeout or --wait ended before the awaited datagrams or
       replies arrived (listen: before --count, or before any datagram without
       --count)
  4    refused: the destination answered \"port unreachable\" (nothing listens
       there)
  130  stopped by SIGINT
  143  stopped by SIGTERM"
    };
}
pub(crate) use exit_table;

/// The entries of [`TABLE`] as (status, meaning), each meaning's continuation lines joined
/// to it with a space.
pub fn entries() -> Vec<(&'static str, String)> {
    let mut entries: Vec<(&str, String)> = Vec::new();
    for line in TABLE.lines().skip(1) {
        let text = line.trim();
        // Continuations are indented deeper than the status column.
        match entries.last_mut() {
            Some((_, meaning)) if line.starts_with("   ") => {
                meaning.push(' ');
                meaning.push_str(text);
            }
            _ => {
                let (code, meaning) = text.split_once(' ').unwrap_or((text, ""));
                entries.push((code, meaning.trim().to_string()));
            }
        }
    }
    entries
}

/// An error that carries its own exit status (timeouts and refusals are errors with a
/// message, but not status 1).
#[derive(Debug)]
pub struct Fail {
    pub status: Status,
    pub message: String,
}

impl Fail {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Fail {
            status,
            message: message.into(),
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fail {}

/// A usage error found after parsing (a combination of flags clap cannot express): exit 2
/// with `message`, which names the flags involved.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Fail::new(Status::Usage, message).into()
}

/// The first of `flags` that was given (`(given, name)`), as a usage error saying `why(name)`
/// it cannot be: options that do nothing, or that the address does not allow.
pub fn refuse_given(flags: &[(bool, &str)], why: impl Fn(&str) -> String) -> anyhow::Result<()> {
    match flags.iter().find(|(given, _)| *given) {
        Some((_, flag)) => Err(usage(crate::output::escape_message(why(flag)))),
        None => Ok(()),
    }
}

/// The first of the IP-only `flags` given (`-4`/`-6` from `family` included), as a usage
/// error saying that `unix_arg` is a Unix socket.
pub fn refuse_ip_only(
    flags: &[(bool, &str)],
    family: crate::addr::Family,
    unix_arg: &str,
) -> anyhow::Result<()> {
    use crate::addr::Family;
    let families = [(family == Family::V4, "-4"), (family == Family::V6, "-6")];
    refuse_given(&[flags, &families].concat(), |flag| {
        format!("{flag} is for IP sockets, and '{unix_arg}' is a Unix socket")
    })
}

/// A stop asked for by SIGINT or SIGTERM, carried up through `?` to the loop's caller,
/// which turns it into its status (130, 143) after flushing; it is not an error to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped(pub Status);

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stopped by a signal (exit {})", self.0.code())
    }
}

impl std::error::Error for Stopped {}

/// What an error means for the exit status: `None` when the error is a broken pipe on stdout,
/// which is a reader that has what it wanted (exit 0, no message).
pub fn status_of(err: &anyhow::Error) -> Option<Status> {
    for cause in err.chain() {
        if let Some(fail) = cause.downcast_ref::<Fail>() {
            return Some(fail.status);
        }
        if let Some(Stopped(status)) = cause.downcast_ref::<Stopped>() {
            return Some(*status);
        }
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::BrokenPipe => return None,
                io::ErrorKind::ConnectionRefused => return Some(Status::Refused),
                _ => {}
            }
        }
    }
    Some(Status::Failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::{Context, anyhow};

    #[test]
    fn codes_match_the_contract() {
        let all = [
            (Status::Success, 0),
            (Status::Failure, 1),
            (Status::Usage, 2),
            (Status::TimedOut, 3),
            (Status::Refused, 4),
            (Status::Interrupted, 130),
            (Status::Terminated, 143),
        ];
        for (status, code) in all {
            assert_eq!(status.code(), code);
            assert!(
                TABLE.contains(&format!("  {code} ")),
                "{code} missing from TABLE"
            );
        }
    }

    #[test]
    fn table_lines_fit_and_continue_at_the_text_column() {
        for line in TABLE.lines() {
            assert!(line.len() <= 80, "longer than 80 columns: {line:?}");
            assert!(
                line == "Exit status:"
                    || line.starts_with("       ") && !line[7..].starts_with(' ')
                    || line.starts_with("  ")
                        && line[2..].starts_with(|c: char| c.is_ascii_digit()),
                "neither an entry nor a continuation at the text column: {line:?}"
            );
        }
        let entries = entries();
        assert_eq!(entries.len(), 7);
        assert_eq!(
            entries[3],
            (
                "3",
                "timed out: --timeout or --wait ended before the awaited datagrams or replies \
                 arrived (listen: before --count, or before any datagram without --count)"
                    .to_string()
            )
        );
    }

    #[test]
    fn broken_pipe_anywhere_in_the_chain_is_quiet_success() {
        let err = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("writing to stdout");
        assert_eq!(status_of(&err), None);
    }

    #[test]
    fn refusal_and_fail_map_to_their_status() {
        let refused = anyhow::Error::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(status_of(&refused), Some(Status::Refused));
        let timed_out: anyhow::Result<()> =
            Err(Fail::new(Status::TimedOut, "timed out")).context("waiting");
        assert_eq!(status_of(&timed_out.unwrap_err()), Some(Status::TimedOut));
        assert_eq!(status_of(&anyhow!("cannot bind")), Some(Status::Failure));
        let stopped = anyhow::Error::from(Stopped(Status::Terminated)).context("waiting");
        assert_eq!(status_of(&stopped), Some(Status::Terminated));
    }
}
