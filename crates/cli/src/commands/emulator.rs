//! `orgsync emulator`: serve the local Google Workspace emulator until Ctrl-C.

use std::collections::BTreeMap;

use anyhow::Context;
use orgsync_emulator::EmulatorConfig;
use orgsync_emulator::faults::FaultSettings;
use orgsync_emulator::faults::quota::{self, QuotaProfile};

use crate::cli::EmulatorArgs;
use crate::exit::{CodedError, Exit};

pub async fn run(args: EmulatorArgs) -> anyhow::Result<Exit> {
    if !(0.0..=1.0).contains(&args.error_rate) {
        return Err(CodedError::new(
            Exit::Config,
            format!(
                "--error-rate must be between 0 and 1, got {}",
                args.error_rate
            ),
        )
        .into());
    }
    if !(0.0..=1.0).contains(&args.photo_share) {
        return Err(CodedError::new(
            Exit::Config,
            format!(
                "--photo-share must be between 0 and 1, got {}",
                args.photo_share
            ),
        )
        .into());
    }
    let quota_error = |e: String| CodedError::new(Exit::Config, e);
    let quota_profile = args
        .quota_profile
        .as_deref()
        .map(|p| {
            p.parse::<QuotaProfile>()
                .map_err(|e| quota_error(format!("--quota-profile: {e}")))
        })
        .transpose()?;
    let quota_limits = args
        .quota
        .iter()
        .map(|q| quota::parse_override(q).map_err(quota_error))
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    let config = EmulatorConfig {
        listen: args.listen,
        users: args.users,
        domain: args.domain,
        seed: args.seed,
        data_dir: args.data_dir,
        latency_ms: args.latency_ms,
        error_rate: args.error_rate,
        quota_per_user_per_minute: args.quota_per_user_per_minute,
        quota_profile,
        quota_limits,
        quota_minute_secs: args.quota_minute_secs,
        channel_ttl_cap_secs: args.channel_ttl_cap_secs,
        personal_contacts_per_user: args.personal_contacts,
        photo_share: args.photo_share,
        ..EmulatorConfig::default()
    };
    FaultSettings::from_config(&config)
        .validate()
        .map_err(|e| CodedError::new(Exit::Config, format!("emulator quota settings: {e}")))?;
    let data_dir = config.data_dir.clone();
    let admin = config.admin_email();
    let handle = orgsync_emulator::spawn(config)
        .await
        .context("starting the emulator")?;
    // The first line is machine-readable so scripts and tests can find the port.
    println!("orgsync emulator listening on {}", handle.base_url);
    println!("  admin subject: {admin}");
    match &data_dir {
        Some(dir) => {
            println!(
                "  service account key: {}",
                dir.join("service-account.json").display()
            );
            println!(
                "  desktop OAuth client: {}",
                dir.join("client_secret.json").display()
            );
            println!("  orgsync config: {}", dir.join("orgsync.toml").display());
            println!(
                "  log in (mail, calendar): orgsync --config {} auth login",
                dir.join("orgsync.toml").display()
            );
            println!("  state is saved in {} on exit", dir.display());
        }
        None => println!("  (no --data-dir: key files are not written and state is lost on exit)"),
    }
    println!(
        "  control API: {}/emulator/v1/stats  (PUT faults, POST reset, POST clock/advance)",
        handle.base_url
    );
    println!("Press Ctrl-C to stop.");
    wait_for_shutdown_signal().await;
    println!("stopping emulator...");
    handle.shutdown().await.context("saving emulator state")?;
    Ok(Exit::Ok)
}

async fn wait_for_shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
