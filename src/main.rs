//! Parse flags, start logging, dispatch, and turn the outcome into an exit status.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use clap::error::ErrorKind;

use udpcat::addr::Family;
use udpcat::cli::{Cli, Command};
use udpcat::exit::{self, Status};
use udpcat::signal::Signals;
use udpcat::{listen, logging, output, send};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    logging::init(cli.verbose, cli.quiet);
    let status = match run(cli) {
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
            udpcat::cli::write_completions(shell, &mut io::stdout())?;
            Ok(Status::Success)
        }
        Command::Man => {
            udpcat::cli::write_man(&mut io::stdout())?;
            Ok(Status::Success)
        }
    }
}

/// clap's errors as udpcat's: one `udpcat: error:` line (the value quoted in it escaped),
/// then clap's usage line, exit 2. Help and version go to stdout as clap prints them.
fn usage_error(e: clap::Error) -> ExitCode {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    {
        let _ = e.print();
        return ExitCode::from(e.exit_code() as u8);
    }
    let rendered = e.render().to_string();
    // The message runs up to the first blank line; tips and usage follow it.
    let (message, rest) = rendered.split_once("\n\n").unwrap_or((&rendered, ""));
    let message = message.trim_start_matches("error: ");
    let mut err = io::stderr().lock();
    let _ = writeln!(
        err,
        "udpcat: error: {}",
        output::escape_message(message.trim_end())
    );
    for line in rest
        .lines()
        .filter(|l| l.starts_with("Usage:") || l.starts_with("For more"))
    {
        let _ = writeln!(err, "{line}");
    }
    ExitCode::from(Status::Usage.code() as u8)
}
