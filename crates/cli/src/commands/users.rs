//! `orgsync users sync|list|show`: the Directory → app users job.
//!
//! `sync` is the full reconcile of `orgsync_jobs::users` (the daemon runs the same one on
//! start and on a schedule); `list` and `show` read the store only, so they work without
//! Google credentials.

use clap::Subcommand;
use orgsync_jobs::context::service_account_client;
use orgsync_jobs::users::{ReconcileOptions, UsersError, UsersReport, reconcile};
use orgsync_store::{AppUser, UserQuery};

use crate::cli::Global;
use crate::commands::common::{load_config, print_json};
use crate::exit::{CodedError, Exit, for_google_error, for_kind};

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
        /// Mail the run summary to this address (repeatable; adds to [mail] report_to),
        /// from [mail] from (else [google] admin_subject). Dry runs and runs the safety
        /// guard stopped are mailed too. A failure to mail is reported on stderr and never
        /// changes the exit code.
        #[arg(long, value_name = "EMAIL")]
        report_to: Vec<String>,
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
            mut report_to,
        } => {
            report_to.extend(config.mail.report_to.iter().cloned());
            let client = service_account_client(&config)
                .map_err(|e| CodedError::new(Exit::Config, e.to_string()))?;
            let store = crate::store::open(&config.state).await?;
            let opts = ReconcileOptions {
                dry_run,
                force,
                ..ReconcileOptions::default()
            };
            let result = reconcile(&client, &config, store.as_ref(), opts, chrono::Utc::now).await;
            store.close().await;
            if !report_to.is_empty() {
                match &result {
                    Ok(report) => mail_report(&client, &config, &report_to, report, None).await,
                    Err(UsersError::Guard { reason, report, .. }) => {
                        mail_report(&client, &config, &report_to, report, Some(reason)).await
                    }
                    // No report: the error itself is printed below.
                    Err(_) => {}
                }
            }
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
                Err(UsersError::Directory(e)) => {
                    // A 403 already names admin_subject, the privileges and the delegation
                    // (the directory read explains it), and an outage is nothing to
                    // configure: only what is left to fix gets the generic pointer.
                    let code = for_google_error(&e);
                    let hint = if code == Exit::Config && !e.is(orgsync_client::ErrorKind::Auth) {
                        "; check [google] customer/domain and admin_subject"
                    } else {
                        ""
                    };
                    Err(CodedError::new(
                        code,
                        format!("reading the directory failed, nothing was written: {e}{hint}"),
                    )
                    .into())
                }
                Err(e @ UsersError::Store(_)) => Err(CodedError::new(
                    for_kind(e.kind()),
                    format!("the state store failed: {e}; earlier chunks may be applied, re-run"),
                )
                .into()),
                Err(e @ UsersError::UnknownAttribute(_)) => Err(CodedError::new(
                    for_kind(e.kind()),
                    format!("{e}; nothing was read or written"),
                )
                .into()),
            }
        }
        UsersCommand::List { all, json } => {
            let store = crate::store::open_read_only(&config.state).await?;
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
            let store = crate::store::open_read_only(&config.state).await?;
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
    print!("{}", r.render_text());
}

/// Mail the summary; a failure is logged and printed, never fatal.
async fn mail_report(
    client: &orgsync_client::GoogleClient,
    config: &orgsync_jobs::config::Config,
    to: &[String],
    report: &UsersReport,
    stopped: Option<&str>,
) {
    let Some(from) = config
        .mail
        .from
        .clone()
        .or_else(|| config.google.admin_subject.clone())
    else {
        eprintln!("warning: --report-to: no sender ([mail] from or [google] admin_subject)");
        return;
    };
    let subject = match stopped {
        Some(_) => "orgsync users sync: stopped by the safety guard, nothing written".to_string(),
        None => format!(
            "orgsync users sync{}: {} created, {} updated, {} reactivated, {} deactivated, {} deleted",
            if report.dry_run { " (dry run)" } else { "" },
            report.created,
            report.updated,
            report.reactivated,
            report.deactivated,
            report.deleted
        ),
    };
    let mut text = report.render_text();
    if let Some(reason) = stopped {
        text.push_str(&format!("\nstopped: {reason}\n"));
    }
    match orgsync_jobs::mail::send_report(client, &from, to, &subject, &text).await {
        Ok(_) => tracing::info!(to = ?to, "run report mailed"),
        Err(e) => {
            tracing::warn!(error = %e, "mailing the run report failed");
            eprintln!("warning: mailing the run report failed: {e}");
        }
    }
}
