//! `orgsync users sync|list|show`: the Directory → app users job.
//!
//! `sync` is the full reconcile of `orgsync_sync::users` (the daemon runs the same one on
//! start and on a schedule); `list` and `show` read the store only, so they work without
//! Google credentials.

use clap::Subcommand;
use orgsync_store::{AppUser, UserQuery};
use orgsync_sync::context::{open_store, service_account_client};
use orgsync_sync::users::{ReconcileOptions, UsersError, UsersReport, reconcile};

use crate::cli::Global;
use crate::commands::common::{load_config, print_json};
use crate::exit::{CodedError, Exit};

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Full reconcile of the app user table with the directory.
    Sync {
        /// Plan and print; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Proceed even when the safety guard would stop (mass deprovisioning).
        #[arg(long)]
        force: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the app users in the store (active ones unless --all).
    List {
        /// Include deactivated users.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show one app user by primary email.
    Show {
        email: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(global: &Global, cmd: UsersCommand) -> anyhow::Result<Exit> {
    let config = load_config(global)?;
    match cmd {
        UsersCommand::Sync {
            dry_run,
            force,
            json,
        } => {
            let client = service_account_client(&config)
                .map_err(|e| CodedError::new(Exit::Config, e.to_string()))?;
            let store = open_store(&config.state)
                .await
                .map_err(|e| CodedError::new(Exit::Config, format!("{e:#}")))?;
            let opts = ReconcileOptions { dry_run, force };
            let result = reconcile(&client, &config, store.as_ref(), opts, chrono::Utc::now).await;
            store.close().await;
            match result {
                Ok(report) => {
                    if json {
                        print_json(&report)?;
                    } else {
                        print_report(&report);
                    }
                    Ok(Exit::Ok)
                }
                Err(UsersError::Guard {
                    reason,
                    what_to_check,
                    report,
                }) => {
                    if json {
                        print_json(&report)?;
                    } else {
                        print_report(&report);
                    }
                    eprintln!("error: {reason}\n  what to check: {what_to_check}");
                    Ok(Exit::Guard)
                }
                Err(UsersError::Directory(e)) => Err(CodedError::new(
                    if e.is(orgsync_client::ErrorKind::Auth) {
                        Exit::Config
                    } else {
                        Exit::Partial
                    },
                    format!(
                        "reading the directory failed, nothing was written: {e}; check [google] \
                         admin_subject, customer/domain and the service account's delegation"
                    ),
                )
                .into()),
                Err(UsersError::Store(e)) => Err(CodedError::new(
                    Exit::Partial,
                    format!("the state store failed: {e}; earlier chunks may be applied, re-run"),
                )
                .into()),
            }
        }
        UsersCommand::List { all, json } => {
            let store = open_store(&config.state)
                .await
                .map_err(|e| CodedError::new(Exit::Config, format!("{e:#}")))?;
            let mut users: Vec<AppUser> = Vec::new();
            let mut after = None;
            loop {
                let page = store
                    .list_users(&UserQuery {
                        active_only: !all,
                        after_id: after.clone(),
                        limit: 1000,
                    })
                    .await?;
                let done = page.len() < 1000;
                after = page.last().map(|u| u.profile.directory_id.clone());
                users.extend(page);
                if done {
                    break;
                }
            }
            store.close().await;
            users.sort_by(|a, b| a.primary_email().cmp(b.primary_email()));
            if json {
                print_json(&users)?;
            } else {
                for u in &users {
                    println!(
                        "{:<40} {:<8} {:<24} {}",
                        u.primary_email(),
                        if u.active() { "active" } else { "inactive" },
                        u.profile.display_name,
                        u.profile.roles.join(",")
                    );
                }
                println!("{} users", users.len());
            }
            Ok(Exit::Ok)
        }
        UsersCommand::Show { email, json } => {
            let store = open_store(&config.state)
                .await
                .map_err(|e| CodedError::new(Exit::Config, format!("{e:#}")))?;
            let user = store.get_user_by_email(email.trim()).await?;
            store.close().await;
            let Some(user) = user else {
                return Err(CodedError::new(
                    Exit::Config,
                    format!(
                        "no app user with primary email {email:?} in the store; run `orgsync \
                         users sync` first, or `orgsync users list --all` to see who is there"
                    ),
                )
                .into());
            };
            if json {
                print_json(&user)?;
            } else {
                let p = &user.profile;
                println!("{} ({})", p.primary_email, p.directory_id);
                println!("  name:       {}", p.display_name);
                println!("  active:     {}", p.active);
                println!("  admin:      {}", p.is_admin);
                println!("  suspended:  {}  archived: {}", p.suspended, p.archived);
                println!("  org unit:   {}", p.org_unit_path);
                if let Some(d) = &p.department {
                    println!("  department: {d}");
                }
                if let Some(t) = &p.title {
                    println!("  title:      {t}");
                }
                println!("  roles:      {}", p.roles.join(", "));
                println!("  updated:    {}", user.updated_at);
                println!("  synced:     {}", user.last_synced_at);
            }
            Ok(Exit::Ok)
        }
    }
}

fn print_report(r: &UsersReport) {
    let verb = if r.dry_run { "would be" } else { "" };
    for c in &r.changes {
        match &c.reason {
            Some(reason) => println!("{:<10} {} ({reason})", c.action, c.email),
            None => println!("{:<10} {}", c.action, c.email),
        }
    }
    println!(
        "users{}: {} created, {} updated, {} reactivated, {} deactivated, {} deleted {verb}; \
         {} unchanged; {} read from the directory in {} ms ({} API calls)",
        if r.dry_run { " (dry run)" } else { "" },
        r.created,
        r.updated,
        r.reactivated,
        r.deactivated,
        r.deleted,
        r.unchanged,
        r.directory_read,
        r.duration_ms,
        r.calls.values().sum::<u64>()
    );
}
