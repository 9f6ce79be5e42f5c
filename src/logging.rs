//! Messages for people, on stderr: `udpcat: warning: ...`. `-q`/`-v` pick the level,
//! RUST_LOG overrides.

use std::fmt;

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
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(Plain);
    let _ = tracing_subscriber::registry()
        .with(output.with_filter(filter))
        .try_init();
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
