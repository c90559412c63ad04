//! `orgsync channels list|renew|stop`: the Directory push channels orgsync owns.
//!
//! `renew` and `stop` act on Google and the store exactly as the daemon's leader does
//! (`orgsync_daemon::channels`); a running daemon picks the result up on its next tick.

use clap::Subcommand;
use orgsync_daemon::channels::{self, ChannelCtx, ChannelReport};
use orgsync_store::Channel;
use orgsync_sync::context::{open_store, open_store_read_only, service_account_client};

use crate::cli::Global;
use crate::commands::common::{load_config, print_json};
use crate::exit::{CodedError, Exit};

#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// List the channels in the store (live ones unless --all).
    List {
        /// Include stopped and expired channels.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Open a replacement for every current channel now, then stop the old ones.
    Renew {
        #[arg(long)]
        json: bool,
    },
    /// Stop channels at Google (by id, or every live one with --all).
    Stop {
        ids: Vec<String>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(global: &Global, cmd: ChannelsCommand) -> anyhow::Result<Exit> {
    let config = load_config(global)?;
    // `list` only reads: it works on a read-only state file.
    let store = if matches!(cmd, ChannelsCommand::List { .. }) {
        open_store_read_only(&config.state).await
    } else {
        open_store(&config.state).await
    }
    .map_err(|e| CodedError::new(Exit::Config, format!("{e:#}")))?;
    let now = chrono::Utc::now();
    if let ChannelsCommand::List { all, json } = cmd {
        let list: Vec<Channel> = if all {
            store.list_channels().await?
        } else {
            store.list_live_channels(now).await?
        };
        store.close().await;
        if json {
            print_json(&list)?;
        } else {
            for c in &list {
                let state = if c.stopped_at.is_some() {
                    "stopped"
                } else if c.expiration <= now {
                    "expired"
                } else if c.replaced_by.is_some() {
                    "replaced"
                } else {
                    "live"
                };
                println!(
                    "{:<42} {:<10} {:<8} expires {}  {}",
                    c.id, c.event, state, c.expiration, c.address
                );
            }
            println!("{} channels", list.len());
        }
        return Ok(Exit::Ok);
    }
    let client = service_account_client(&config)
        .map_err(|e| CodedError::new(Exit::Config, e.to_string()))?;
    let webhook_url = config.serve.public_url.clone().ok_or_else(|| {
        CodedError::new(
            Exit::Config,
            "[serve] public_url is not set: channels must point at the URL Google posts to",
        )
    })?;
    let ctx = ChannelCtx {
        client: &client,
        store: store.as_ref(),
        google: &config.google,
        serve: &config.serve,
        webhook_url: &webhook_url,
        pending: None,
        cache: None,
    };
    let (report, json) = match cmd {
        ChannelsCommand::Renew { json } => (channels::ensure(&ctx, now, true).await, json),
        ChannelsCommand::Stop { ids, all, json } => {
            if all {
                (channels::stop_all(&ctx, now).await, json)
            } else if ids.is_empty() {
                return Err(CodedError::new(
                    Exit::Config,
                    "name the channel ids to stop (see `orgsync channels list`), or pass --all",
                )
                .into());
            } else {
                let mut report = ChannelReport::default();
                for id in ids {
                    match store.get_channel(&id).await? {
                        None => report
                            .errors
                            .push(format!("{id}: no such channel in the store")),
                        Some(c) => match channels::stop(&ctx, &c, now).await {
                            Ok(()) => report.stopped.push(id),
                            Err(e) => report.errors.push(format!("{id}: {e}")),
                        },
                    }
                }
                (report, json)
            }
        }
        ChannelsCommand::List { .. } => unreachable!("handled above"),
    };
    store.close().await;
    if json {
        print_json(&report)?;
    } else {
        for id in &report.created {
            println!("opened  {id}");
        }
        for id in &report.stopped {
            println!("stopped {id}");
        }
        for e in &report.errors {
            eprintln!("error: {e}");
        }
    }
    Ok(if report.errors.is_empty() {
        Exit::Ok
    } else {
        Exit::Partial
    })
}
