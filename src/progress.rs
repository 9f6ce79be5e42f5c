//! `--progress`: one live status line on stderr while `listen` or `send` runs, only when
//! stderr is a terminal, erased at exit.
//!
//! The loops never draw: they store their running totals in a few atomics (a plain store
//! per batch of datagrams), and a thread of its own reads them and redraws the line at most
//! ten times a second. Everything else that writes to the terminal goes through here too,
//! so nothing mixes with the line: a message line (`logging`) and, when stdout is the same
//! terminal, a record first erase it, and the thread draws it again below them.
//!
//! The line is redrawn with a carriage return and erased with spaces, never with escape
//! sequences, so it works on any terminal and on the Windows console; it is cut to the
//! terminal's width, so it never wraps (a wrapped line could not be rewritten in place).

use std::collections::VecDeque;
use std::io::{self, IoSlice, IsTerminal, StderrLock, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::output::plural;

/// How often the line is redrawn: at most ten times a second.
pub const INTERVAL: Duration = Duration::from_millis(100);
/// The rate shown is over about this much of the recent past, so it falls to 0 soon after
/// the datagrams stop.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// A figure the system cannot give.
const UNKNOWN: u64 = u64::MAX;

/// Columns of the status line now on the terminal; 0 when none is. Read and changed only
/// with stderr locked, so a message line and the status line never mix.
static SHOWN: AtomicUsize = AtomicUsize::new(0);
/// False after a record on the same terminal that did not end its line (raw, `-0`): the
/// status line is not drawn then, since it would overwrite that record.
static AT_LINE_START: AtomicBool = AtomicBool::new(true);

/// Which command's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Datagrams, bytes, rate, kernel drops.
    Listen,
    /// Datagrams, bytes, rate; with the input's size (a regular file), percent and time left.
    Send { size: Option<u64> },
}

/// What the loop has done so far; stored by the loop, read by the drawing thread.
#[derive(Debug)]
struct Counters {
    datagrams: AtomicU64,
    bytes: AtomicU64,
    /// Datagrams the kernel dropped, or `UNKNOWN`.
    drops: AtomicU64,
    /// Bytes of the input consumed (send).
    input: AtomicU64,
}

/// A running status line; dropping it stops the thread and erases the line.
#[derive(Debug)]
pub struct Progress {
    counters: Arc<Counters>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts the status line, or `None` when stderr is not a terminal (then nothing is
    /// drawn and nothing costs anything).
    pub fn start(kind: Kind) -> Option<Progress> {
        if !io::stderr().is_terminal() {
            return None;
        }
        let counters = Arc::new(Counters {
            datagrams: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            drops: AtomicU64::new(UNKNOWN),
            input: AtomicU64::new(0),
        });
        let (stop, stopped) = mpsc::channel();
        let shared = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || redraw(kind, &shared, &stopped))
            // A system that cannot start a thread gets no status line, and nothing else changes.
            .map_err(|e| tracing::debug!("--progress: cannot start its thread: {e}"))
            .ok()?;
        Some(Progress {
            counters,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The totals so far: datagrams and payload bytes received or sent.
    pub fn counts(&self, datagrams: u64, bytes: u64) {
        self.counters.datagrams.store(datagrams, Relaxed);
        self.counters.bytes.store(bytes, Relaxed);
    }

    /// Datagrams the kernel dropped so far; `None` where the system cannot tell.
    pub fn drops(&self, drops: Option<u64>) {
        self.counters.drops.store(drops.unwrap_or(UNKNOWN), Relaxed);
    }

    /// How many bytes of the input have been consumed (sent).
    pub fn input(&self, consumed: u64) {
        self.counters.input.store(consumed, Relaxed);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // Closing the channel wakes the thread, which erases the line and ends.
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The drawing thread: every `INTERVAL` until stopped, then the line is erased.
fn redraw(kind: Kind, c: &Counters, stopped: &mpsc::Receiver<()>) {
    let started = Instant::now();
    // (when, datagrams, bytes), the oldest at most about RATE_WINDOW old.
    let mut window: VecDeque<(Instant, u64, u64)> = VecDeque::with_capacity(16);
    window.push_back((started, 0, 0));
    let mut last = String::new();
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        let now = Instant::now();
        let datagrams = c.datagrams.load(Relaxed);
        let bytes = c.bytes.load(Relaxed);
        while window.len() > 1 && now.duration_since(window[1].0) >= RATE_WINDOW {
            window.pop_front();
        }
        let (then, d0, b0) = window[0];
        let secs = now.duration_since(then).as_secs_f64();
        let per_sec = |n: u64, n0: u64| {
            if secs > 0.0 {
                n.saturating_sub(n0) as f64 / secs
            } else {
                0.0
            }
        };
        let rate = (per_sec(datagrams, d0), per_sec(bytes, b0));
        window.push_back((now, datagrams, bytes));
        let text = match kind {
            Kind::Listen => {
                let drops = c.drops.load(Relaxed);
                listen_line(datagrams, bytes, rate, (drops != UNKNOWN).then_some(drops))
            }
            Kind::Send { size } => {
                let done = size.map(|size| (c.input.load(Relaxed), size));
                send_line(datagrams, bytes, rate, done, now.duration_since(started))
            }
        };
        draw(&text, &mut last);
    }
    erase(&mut io::stderr().lock());
}

/// `received 1200 datagrams, 1.2 MiB (400/s, 390.6 KiB/s), 0 dropped by the kernel`
pub fn listen_line(datagrams: u64, bytes: u64, rate: (f64, f64), drops: Option<u64>) -> String {
    let drops = drops.map_or_else(|| "unknown".to_string(), |n| n.to_string());
    format!(
        "received {}, {} ({}), {drops} dropped by the kernel",
        plural(datagrams, "datagram"),
        size(bytes),
        rates(rate)
    )
}

/// `sent 1200 datagrams, 1.2 MiB (400/s, 390.6 KiB/s)`, then with the input's size known
/// (`done` is bytes consumed and the size), `, 42%, 1m05s left`.
pub fn send_line(
    datagrams: u64,
    bytes: u64,
    rate: (f64, f64),
    done: Option<(u64, u64)>,
    elapsed: Duration,
) -> String {
    let mut line = format!(
        "sent {}, {} ({})",
        plural(datagrams, "datagram"),
        size(bytes),
        rates(rate)
    );
    if let Some((consumed, total)) = done {
        let consumed = consumed.min(total);
        let percent = if total == 0 {
            100
        } else {
            u128::from(consumed) * 100 / u128::from(total)
        };
        line += &format!(", {percent}%");
        // Time left at the average pace so far (steadier than the last second's).
        if consumed > 0 && consumed < total {
            let left = elapsed.as_secs_f64() * (total - consumed) as f64 / consumed as f64;
            line += &format!(", {} left", time_left(left));
        }
    }
    line
}

fn rates((datagrams, bytes): (f64, f64)) -> String {
    let d = if datagrams >= 100.0 || datagrams == 0.0 {
        format!("{datagrams:.0}")
    } else {
        format!("{datagrams:.1}")
    };
    format!("{d}/s, {}/s", size_f(bytes))
}

/// Bytes as people read them: `512 B`, `1.5 KiB`, `118.3 MiB`, `2.0 GiB`.
pub fn size(bytes: u64) -> String {
    size_f(bytes as f64)
}

fn size_f(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024.0 {
        return format!("{bytes:.0} B");
    }
    let mut value = bytes / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Whole seconds, then minutes and seconds, then hours and minutes: `7s`, `3m05s`, `1h02m`.
pub fn time_left(secs: f64) -> String {
    // A float to int cast saturates: an endless wait shows as a very long one.
    let s = secs.max(0.0).ceil() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Draws `text` in place of the line now shown, cut to the terminal's width; not again
/// when `last` drew the same and it is still shown (an idle listener writes nothing).
fn draw(text: &str, last: &mut String) {
    // One column short: a line that fills the last column wraps on some terminals.
    let width = terminal_size::terminal_size_of(io::stderr()).map(|(w, _)| usize::from(w.0));
    let text: String = match width {
        Some(w) if w > 1 => text.chars().take(w - 1).collect(),
        _ => text.to_string(),
    };
    let cols = text.chars().count();
    let mut err = io::stderr().lock();
    let shown = SHOWN.load(Relaxed);
    if !AT_LINE_START.load(Relaxed) || (shown > 0 && *last == text) {
        return;
    }
    let mut line = String::with_capacity(1 + cols.max(shown));
    line.push('\r');
    line.push_str(&text);
    // Spaces over what is left of a longer line before.
    line.extend(std::iter::repeat_n(' ', shown.saturating_sub(cols)));
    // One write, so a concurrent writer never sees half a line; a failure changes nothing.
    let _ = err.write_all(line.as_bytes());
    SHOWN.store(cols, Relaxed);
    *last = text;
}

/// Erases the status line, if one is shown; the cursor is left at the start of that
/// (now empty) line.
fn erase(err: &mut StderrLock<'_>) {
    let _ = err.write_all(&erasure(SHOWN.swap(0, Relaxed)));
}

/// What erases a status line `shown` columns wide: nothing when none is shown.
fn erasure(shown: usize) -> Vec<u8> {
    if shown == 0 {
        return Vec::new();
    }
    let mut bytes = Vec::with_capacity(shown + 2);
    bytes.push(b'\r');
    bytes.resize(shown + 1, b' ');
    bytes.push(b'\r');
    bytes
}

/// Writes `text` (whole lines) to stderr in one write, erasing the status line first in
/// that same write when one is shown. A failure is ignored: a closed or full stderr
/// changes nothing else. `logging` writes every line through this.
pub fn write_stderr(text: &[u8]) {
    let mut err = io::stderr().lock();
    let mut bytes = erasure(SHOWN.swap(0, Relaxed));
    bytes.extend_from_slice(text);
    let _ = err.write_all(&bytes);
}

/// stdout for a loop that may show a status line. When stdout is the same terminal, each
/// write first erases the line (the thread draws it again below the records), so records
/// and the line never mix; otherwise it is the writer itself.
pub struct Stdout<W> {
    inner: W,
    terminal: bool,
}

/// Wraps the loop's stdout `inner`; shared with the status line only when `progress` runs
/// and stdout is a terminal.
pub fn stdout<W: Write>(inner: W, progress: Option<&Progress>) -> Stdout<W> {
    Stdout {
        inner,
        terminal: progress.is_some() && io::stdout().is_terminal(),
    }
}

impl<W: Write> Write for Stdout<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.terminal {
            return self.inner.write(buf);
        }
        let mut err = io::stderr().lock();
        erase(&mut err);
        let n = self.inner.write(buf)?;
        if let Some(&last) = buf[..n.min(buf.len())].last() {
            AT_LINE_START.store(last == b'\n', Relaxed);
        }
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if !self.terminal {
            return self.inner.write_vectored(bufs);
        }
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(b) => self.write(b),
            None => Ok(0),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_lines() {
        assert_eq!(
            listen_line(1200, 1_258_291, (400.0, 400_000.0), Some(0)),
            "received 1200 datagrams, 1.2 MiB (400/s, 390.6 KiB/s), 0 dropped by the kernel"
        );
        assert_eq!(
            listen_line(1, 5, (0.5, 2.5), None),
            "received 1 datagram, 5 B (0.5/s, 2 B/s), unknown dropped by the kernel"
        );
    }

    #[test]
    fn send_lines() {
        let rate = (10.0, 1000.0);
        assert_eq!(
            send_line(3, 30, rate, None, Duration::from_secs(1)),
            "sent 3 datagrams, 30 B (10.0/s, 1000 B/s)"
        );
        // A quarter of the input in 20 s: a minute to go.
        assert_eq!(
            send_line(3, 30, rate, Some((250, 1000)), Duration::from_secs(20)),
            "sent 3 datagrams, 30 B (10.0/s, 1000 B/s), 25%, 1m00s left"
        );
        // Nothing consumed yet: no guess at the time left.
        assert_eq!(
            send_line(0, 0, (0.0, 0.0), Some((0, 1000)), Duration::from_secs(1)),
            "sent 0 datagrams, 0 B (0/s, 0 B/s), 0%"
        );
        assert_eq!(
            send_line(1, 0, (0.0, 0.0), Some((0, 0)), Duration::from_secs(1)),
            "sent 1 datagram, 0 B (0/s, 0 B/s), 100%"
        );
    }

    #[test]
    fn sizes_and_times() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 << 30), "5.0 GiB");
        assert_eq!(size(u64::MAX), "16384.0 PiB");
        assert_eq!(time_left(0.2), "1s");
        assert_eq!(time_left(59.0), "59s");
        assert_eq!(time_left(185.0), "3m05s");
        assert_eq!(time_left(3720.0), "1h02m");
        assert_eq!(
            time_left(f64::INFINITY),
            format!("{}h{:02}m", u64::MAX / 3600, u64::MAX % 3600 / 60)
        );
    }

    #[test]
    fn erasing_covers_the_line() {
        assert_eq!(erasure(0), b"");
        assert_eq!(erasure(3), b"\r   \r");
    }
}
