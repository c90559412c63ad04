//! `orgsync serve`: the push-notification daemon (`orgsync_daemon`), until Ctrl-C or
//! SIGTERM, then a graceful shutdown that finishes the jobs in flight.

use std::sync::Arc;

use clap::Args;
use orgsync_daemon::{SystemClock, Tuning};
use orgsync_jobs::context::service_account_client;

use crate::cli::Global;
use crate::commands::common::load_config;
use crate::exit::{CodedError, Exit};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address (overrides `[serve] listen`).
    #[arg(long)]
    pub listen: Option<String>,
    /// Do not run the full reconciles (users, and contacts when `[serve] contacts` is on)
    /// when this instance becomes the leader; the schedule still runs them.
    #[arg(long)]
    pub no_initial_reconcile: bool,
}

pub async fn run(global: &Global, args: ServeArgs) -> anyhow::Result<Exit> {
    let mut config = load_config(global)?;
    if let Some(l) = args.listen {
        config.serve.listen = l;
    }
    let client = service_account_client(&config)
        .map_err(|e| CodedError::new(Exit::Config, e.to_string()))?;
    let store = crate::store::open(&config.state).await?;
    let listener = tokio::net::TcpListener::bind(&config.serve.listen)
        .await
        .map_err(|e| {
            CodedError::new(
                Exit::Config,
                format!(
                    "cannot listen on {} ({e}); set [serve] listen or --listen",
                    config.serve.listen
                ),
            )
        })?;
    let tuning = Tuning {
        reconcile_on_start: !args.no_initial_reconcile,
        ..Tuning::default()
    };
    let handle = orgsync_daemon::start(
        config,
        client,
        store.clone(),
        Arc::new(SystemClock),
        tuning,
        listener,
    )
    .await
    .map_err(|e| CodedError::new(Exit::Config, e.to_string()))?;
    eprintln!(
        "orgsync serve: listening on {} (webhook {}); Ctrl-C to stop",
        handle.addr, handle.shared.webhook_url
    );
    shutdown_signal().await;
    eprintln!("orgsync serve: shutting down, finishing jobs in flight");
    handle.shutdown().await;
    store.close().await;
    Ok(Exit::Ok)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
