//! `orgsync scim sync|plan`: directory users and groups into every `[[scim]]` app.
//!
//! `plan` is `sync --dry-run`: it lists the server (reads only) and prints every
//! operation a sync would send. Each target's result is its own: one app that is down
//! does not stop the others, and the exit code is the worst of them.

use clap::Subcommand;
use orgsync_jobs::context::service_account_client;
use orgsync_jobs::scim::{NoProgress, ScimError, ScimOptions, ScimProgress, ScimReport, sync_with};
use serde::Serialize;

use crate::cli::Global;
use crate::commands::common::{load_config, print_json};
use crate::exit::{CodedError, Exit, for_google_error, for_kind};

#[derive(Debug, Subcommand)]
pub enum ScimCommand {
    /// Provision: create, adopt, update and deprovision users; then groups and members.
    #[command(
        long_about = "Provision the directory into every [[scim]] application: \
users first (created, adopted by externalId or userName, updated in place, deactivated or \
deleted when they leave), then groups and their members by difference. Resources orgsync \
did not create or adopt are never changed. A run that would deprovision more than \
max_deprovision_share of the users orgsync manages stops before writing (exit 3) unless \
--force."
    )]
    Sync {
        /// Only this target (its `name`).
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// Plan and print every operation; send nothing but reads.
        #[arg(long)]
        dry_run: bool,
        /// Proceed even when the safety guard would stop.
        #[arg(long)]
        force: bool,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print every operation a sync would send (sync --dry-run).
    Plan {
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TargetResult {
    target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<ScimReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    exit: u8,
}

pub async fn run(global: &Global, cmd: ScimCommand) -> anyhow::Result<Exit> {
    let (target, dry_run, force, json) = match cmd {
        ScimCommand::Sync {
            target,
            dry_run,
            force,
            json,
        } => (target, dry_run, force, json),
        ScimCommand::Plan { target, json } => (target, true, false, json),
    };
    let config = load_config(global)?;
    let client = service_account_client(&config)
        .map_err(|e| CodedError::new(Exit::Config, e.to_string()))?;
    let store = crate::store::open(&config.state).await?;
    let opts = ScimOptions {
        dry_run,
        force,
        ..ScimOptions::default()
    };
    // A bar on a terminal, never with --json (scripts read stdout; the bar is on stderr,
    // but a script's terminal is not a person's).
    let bar = crate::progress::scim_bar(!json && !dry_run);
    let progress: &dyn ScimProgress = match &bar {
        Some(b) => b,
        None => &NoProgress,
    };
    let results = sync_with(
        &client,
        &config,
        store.as_ref(),
        target.as_deref(),
        opts,
        progress,
    )
    .await;
    store.close().await;
    let results = match results {
        Ok(r) => r,
        Err(ScimError::Directory(e)) => {
            return Err(CodedError::new(
                for_google_error(&e),
                format!("reading the directory failed, nothing was written: {e}"),
            )
            .into());
        }
        Err(e) => return Err(CodedError::new(for_kind(e.kind()), e.to_string()).into()),
    };
    let mut worst = Exit::Ok;
    let mut out = Vec::new();
    for (name, result) in results {
        let (report, error, code) = match result {
            Ok(report) => {
                let code = if report.outage.is_some() || !report.failures.is_empty() {
                    Exit::Partial
                } else {
                    Exit::Ok
                };
                (Some(report), None, code)
            }
            Err(ScimError::Guard {
                reason,
                what_to_check,
                report,
            }) => (
                Some(*report),
                Some(format!("{reason}\n  what to check: {what_to_check}")),
                Exit::Guard,
            ),
            Err(e) => {
                let code = for_kind(e.kind());
                let hint = match &e {
                    ScimError::Server(s) if s.is_auth() => {
                        "; the app refused the bearer token: check token_file/token_env"
                    }
                    _ => "",
                };
                (None, Some(format!("scim '{name}': {e}{hint}")), code)
            }
        };
        worst = worse(worst, code);
        if !json {
            if let Some(r) = &report {
                print!("{}", r.render_text());
            }
            if let Some(e) = &error {
                eprintln!("error: {e}");
            }
        }
        out.push(TargetResult {
            target: name,
            report,
            error,
            exit: code as u8,
        });
    }
    if json {
        print_json(&out)?;
    }
    Ok(worst)
}

/// The exit code of several targets: a refusal to fix (2) or a guard stop (3) outranks
/// a temporary failure (1).
fn worse(a: Exit, b: Exit) -> Exit {
    let rank = |e: Exit| match e {
        Exit::Ok => 0,
        Exit::Partial => 1,
        Exit::InProgress => 2,
        Exit::Guard => 3,
        Exit::Config => 4,
    };
    if rank(b) > rank(a) { b } else { a }
}
