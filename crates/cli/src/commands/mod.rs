//! One module per command; each returns the exit code it wants.

mod demo;
mod emulator;

use crate::cli::{Cli, Command};
use crate::exit::Exit;

pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Demo(args) => demo::run(&cli.global, args).await,
        Command::Emulator(args) => emulator::run(args).await,
    }
}
