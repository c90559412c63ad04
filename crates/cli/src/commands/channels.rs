//! `orgsync channels list|renew|stop`: the Directory push channels orgsync owns.
//!
//! `renew` and `stop` act on Google and the store exactly as the daemon's leader does
//! (`orgsync_daemon::channels`); a running daemon picks the result up on its next tick.

use clap::Subcommand;
use orgsync_daemon::channels::{self, ChannelCtx, ChannelReport};
use orgsync_jobs::config::ServeConfig;
use orgsync_jobs::context::service_account_client;
use orgsync_store::Channel;

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
        crate::store::open_read_only(&config.state).await?
    } else {
        crate::store::open(&config.state).await?
    };
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
    // Stopping needs no URL; renewing opens channels that must point where Google posts.
    let webhook_url = match &cmd {
        ChannelsCommand::Renew { .. } => {
            let live = store.list_live_channels(now).await?;
            renewal_url(&config.serve, &live)?
        }
        _ => String::new(),
    };
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

/// Where renewed channels point: `[serve] public_url` when set; else where the live
/// channels already point (what `serve` registered, e.g. its loopback URL); else the
/// loopback URL `serve` derives from `[serve] listen`.
fn renewal_url(serve: &ServeConfig, live: &[Channel]) -> anyhow::Result<String> {
    if let Some(url) = &serve.public_url {
        return Ok(url.clone());
    }
    let mut addresses: Vec<&str> = live.iter().map(|c| c.address.as_str()).collect();
    addresses.sort_unstable();
    addresses.dedup();
    if let [one] = addresses.as_slice() {
        return Ok((*one).to_string());
    }
    match serve.listen.parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.ip().is_loopback() && addr.port() != 0 => {
            Ok(format!("http://{addr}{}", serve.webhook_path))
        }
        _ => Err(CodedError::new(
            Exit::Config,
            "[serve] public_url is not set and the live channels do not share one address: set \
             public_url to the https URL Google posts notifications to",
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(address: &str) -> Channel {
        let now = chrono::Utc::now();
        Channel {
            id: "c".into(),
            resource_id: "r".into(),
            resource_uri: None,
            token: orgsync_store::ChannelToken::new("t"),
            event: "add".into(),
            address: address.into(),
            expiration: now,
            created_at: now,
            stopped_at: None,
            replaced_by: None,
        }
    }

    #[test]
    fn renew_with_the_loopback_config_needs_no_public_url() {
        let serve = ServeConfig::default();
        // No channels yet: the URL serve itself registers on its loopback listener.
        assert_eq!(
            renewal_url(&serve, &[]).unwrap(),
            "http://127.0.0.1:8080/hooks/directory"
        );
        // Live channels: keep pointing where they point.
        let live = [
            channel("http://127.0.0.1:9/h"),
            channel("http://127.0.0.1:9/h"),
        ];
        assert_eq!(renewal_url(&serve, &live).unwrap(), "http://127.0.0.1:9/h");
        // A public URL, once set, wins.
        let public = ServeConfig {
            public_url: Some("https://hooks.example.com/d".into()),
            ..ServeConfig::default()
        };
        assert_eq!(
            renewal_url(&public, &live).unwrap(),
            "https://hooks.example.com/d"
        );
        // A non-loopback listener with no public URL and no channels cannot be guessed.
        let exposed = ServeConfig {
            listen: "0.0.0.0:8080".into(),
            ..ServeConfig::default()
        };
        assert!(renewal_url(&exposed, &[]).is_err());
    }
}
