//! One module per command; each defines its own arguments (clap derive) and returns
//! the exit code it wants.

pub mod auth;
pub mod calendar;
pub mod channels;
mod common;
pub mod contacts;
mod demo;
pub mod doctor;
mod emulator;
pub mod mail;
pub mod scim;
pub mod serve;
pub mod users;

use crate::cli::{Cli, Command};
use crate::exit::Exit;

pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    let global = &cli.global;
    match cli.command {
        Command::Demo(args) => demo::run(global, args).await,
        Command::Emulator(args) => emulator::run(args).await,
        Command::Contacts(cmd) => contacts::run(global, cmd).await,
        Command::Users(cmd) => users::run(global, cmd).await,
        Command::Scim(cmd) => scim::run(global, cmd).await,
        Command::Serve(args) => serve::run(global, args).await,
        Command::Channels(cmd) => channels::run(global, cmd).await,
        Command::Auth(cmd) => auth::run(global, cmd).await,
        Command::Mail(cmd) => mail::run(global, cmd).await,
        Command::Calendar(cmd) => calendar::run(global, cmd).await,
        Command::Doctor(args) => doctor::run(global, args).await,
    }
}
