//! `orgsync demo`: the contacts job end to end against an in-process emulator.
//! (Interim: starts the emulator with a demo org and explains how to use it; the
//! contacts sync replaces this body.)

use orgsync_emulator::EmulatorConfig;

use crate::cli::{DemoArgs, Global};
use crate::exit::Exit;

pub async fn run(_global: &Global, args: DemoArgs) -> anyhow::Result<Exit> {
    let config = EmulatorConfig {
        listen: "127.0.0.1:0".parse()?,
        users: args.users,
        seed: args.seed,
        personal_contacts_per_user: 3,
        ..EmulatorConfig::default()
    };
    let handle = orgsync_emulator::spawn(config).await?;
    println!(
        "Demo emulator with {} users at {}",
        args.users, handle.base_url
    );
    handle.shutdown().await?;
    Ok(Exit::Ok)
}
