//! Parse flags, start logging, dispatch, and turn the outcome into an exit status.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::error::ErrorKind;

use udpcat::addr::Family;
use udpcat::cli::{Cli, Command};
use udpcat::exit::{self, Status};
use udpcat::signal::Signals;
use udpcat::{listen, logging, output, send};

/// On musl (the static release binaries), dlmalloc instead of musl's malloc: start-up is
/// mostly clap's small allocations, and musl's allocator spread them over many pages (see
/// Cargo.toml).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    logging::init(cli.verbose, cli.quiet);
    finish(run(cli))
}

/// The command line, as `Cli::try_parse` reads it, except that clap's command is leaked
/// rather than dropped: freeing its hundreds of small allocations was about a tenth of the
/// instructions of a short run (`udpcat send ADDR hi`), and the process ends soon after.
fn parse() -> Result<Cli, clap::Error> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let parsed = cmd
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut m| <Cli as clap::FromArgMatches>::from_arg_matches_mut(&mut m))
        .map_err(|e| e.format(&mut cmd));
    std::mem::forget(cmd);
    parsed
}

/// The exit status of an outcome; an error is one `udpcat: error:` line on stderr, written
/// in one write.
fn finish(outcome: Result<Status>) -> ExitCode {
    let status = match outcome {
        Ok(status) => status,
        Err(err) => match exit::status_of(&err) {
            // The reader of stdout has what it wanted.
            None => Status::Success,
            Some(status) => {
                let message = output::escape_message(format!("{err:#}"));
                logging::stderr_line(format!("udpcat: error: {message}"));
                status
            }
        },
    };
    ExitCode::from(status.code() as u8)
}

fn run(cli: Cli) -> Result<Status> {
    let family = match (cli.ipv4, cli.ipv6) {
        (true, _) => Family::V4,
        (_, true) => Family::V6,
        _ => Family::Any,
    };
    match cli.command {
        Command::Listen(args) => {
            let config = listen::Config::new(args, family, cli.quiet)?;
            tracing::debug!("{config:?}");
            listen::run(config, &Signals::install()?)
        }
        Command::Send(args) => {
            let config = send::Config::new(args, family)?;
            tracing::debug!("{config:?}");
            send::run(config, &Signals::install()?)
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            udpcat::cli::write_completions(shell, &mut script)?;
            write_stdout(&script)
        }
        Command::Man => {
            let mut page = Vec::new();
            udpcat::cli::write_man(&mut page)?;
            write_stdout(&page)
        }
    }
}

/// A generated document on stdout, flushed, so a full disk is an error that names stdout.
fn write_stdout(document: &[u8]) -> Result<Status> {
    let mut out = io::stdout().lock();
    out.write_all(document)
        .and_then(|()| out.flush())
        .context("writing to stdout")?;
    Ok(Status::Success)
}

/// clap's outcome when it does not return flags: help and version go to stdout as clap
/// prints them (exit 0); every usage error is one `udpcat: error:` line, exit 2.
fn usage_error(e: clap::Error) -> ExitCode {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        return match e.print() {
            Ok(()) => ExitCode::from(e.exit_code() as u8),
            Err(io) => finish(Err(anyhow::Error::from(io).context("writing to stdout"))),
        };
    }
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let line = udpcat::cli::usage_error_line(e, &args);
    logging::stderr_line(line.trim_end_matches('\n'));
    ExitCode::from(Status::Usage.code() as u8)
}
