//! `coffer`: parses the command line, runs the command (or the shell, or `coffer up`) and
//! prints its JSON result. Errors of the command itself are printed by
//! `coffer_cli::error::report`; only failures to start at all reach `anyhow` here.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use coffer_cli::args::{Cli, Command};
use coffer_cli::commands::Context;
use coffer_cli::error::{CliError, report};
use coffer_cli::{password, shell, up};

fn main() -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // A usage mistake: the same JSON shape as every other error.
            let (json, status) = report(Err(CliError::Usage(shell::clean_usage(&e.to_string()))));
            println!("{json}");
            return Ok(exit(status));
        }
        // --help and --version: clap prints them (a closed pipe is not an error) and exits 0.
        Err(e) => e.exit(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let status = runtime.block_on(run(cli))?;
    Ok(exit(status))
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        None | Some(Command::Interactive) => {
            let mut ctx = Context::new(cli.config);
            let terminal = std::io::stdin().is_terminal();
            if terminal {
                eprintln!("coffer interactive shell: `help` lists the commands, `quit` leaves.");
            }
            let stdin = std::io::stdin().lock();
            Ok(shell::run(&mut ctx, stdin, std::io::stdout(), terminal).await?)
        }
        Some(Command::Up(args)) => Ok(print(report(up::run(&args).await))),
        Some(command) => {
            let credentials = password::env_credentials(|k| std::env::var(k).ok());
            let result = match credentials {
                Ok(credentials) => {
                    let mut ctx = Context::new(cli.config).with_env_login(credentials);
                    let result = ctx.run(&command).await;
                    ctx.close().await;
                    result
                }
                Err(e) => Err(e),
            };
            Ok(print(report(result)))
        }
    }
}

fn print((json, status): (serde_json::Value, i32)) -> i32 {
    println!("{json}");
    status
}

fn exit(status: i32) -> ExitCode {
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}
