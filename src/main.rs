//! Parse flags, start logging, dispatch, and turn the outcome into an exit status.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use udpcat::addr::Family;
use udpcat::cli::{Cli, Command};
use udpcat::exit::{self, Status};
use udpcat::signal::Signals;
use udpcat::{listen, logging, send};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose, cli.quiet);
    let status = match run(cli) {
        Ok(status) => status,
        Err(err) => match exit::status_of(&err) {
            // The reader of stdout has what it wanted.
            None => Status::Success,
            Some(status) => {
                let _ = writeln!(io::stderr(), "udpcat: error: {err:#}");
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
