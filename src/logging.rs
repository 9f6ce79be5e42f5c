//! Messages for people, on stderr: `udpcat: warning: ...`. `-q`/`-v` pick the level,
//! RUST_LOG overrides. Every line goes out whole, in one write, and a stderr that fails
//! (closed, full) changes nothing else: stderr is for people, never part of the outcome.

use std::fmt;
use std::io::{self, Write};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Starts logging to stderr. Default: warnings and errors; `-q` errors only; each `-v` one
/// level more; RUST_LOG, when set, decides instead.
pub fn init(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => LevelFilter::ERROR,
        (false, 0) => LevelFilter::WARN,
        (false, 1) => LevelFilter::INFO,
        (false, 2) => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    // RUST_LOG's common forms ("debug", "udpcat=trace,warn"); a spec that does not parse
    // leaves -v/-q in charge.
    let filter = match std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse::<Targets>().ok())
    {
        // A spec naming only other crates must not silence udpcat's own warnings.
        Some(targets) if targets.default_level().is_none() => targets.with_default(level),
        Some(targets) => targets,
        None => Targets::new().with_default(level),
    };
    // The fmt layer renders each event into one buffer and writes it with one `write_all`,
    // ignoring the result (log_internal_errors off: its fallback would panic on a full stderr).
    let output = tracing_subscriber::fmt::layer()
        .with_writer(|| Stderr)
        .log_internal_errors(false)
        .event_format(Plain);
    let _ = tracing_subscriber::registry()
        .with(output.with_filter(filter))
        .try_init();
}

/// Writes `text` and a newline to stderr in one write, so lines from processes sharing a
/// stderr never interleave and a reader never sees half a line. A failure is ignored: a
/// closed or full stderr must change neither the data path nor the exit status.
pub fn stderr_line(text: impl AsRef<str>) {
    let text = text.as_ref();
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    crate::progress::write_stderr(line.as_bytes());
}

/// stderr for the tracing layer: each event (one whole line) in one write, erasing a
/// `--progress` line first; failures are ignored, as in [`stderr_line`].
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::progress::write_stderr(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `udpcat: <level>: <message>`, one line, no timestamps or targets.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        // Render, then escape: a message may quote an argument, a file name or peer data.
        let mut message = String::new();
        ctx.field_format()
            .format_fields(Writer::new(&mut message), event)?;
        writeln!(
            writer,
            "udpcat: {level}: {}",
            crate::output::escape_message(&message)
        )
    }
}
