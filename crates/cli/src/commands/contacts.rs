//! `orgsync contacts plan|sync|undo`: the Directory → Contacts job.

use std::sync::Arc;

use clap::{Args, Subcommand};
use orgsync_jobs::contacts::lease::{self, LeaseError};
use orgsync_jobs::contacts::{
    self, ContactsError, ContactsOptions, ContactsReport, LeaseOptions, Mode, UserStatus,
};
use orgsync_jobs::context;

use super::common::{load_config, print_json};
use crate::cli::Global;
use crate::exit::{CodedError, Exit};

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Print what a sync would change, per user; changes nothing.
    ///
    /// Reads the directory and each target's address book and prints the creates,
    /// updates and deletes a sync would make. Personal contacts never appear: orgsync
    /// only ever touches contacts it created (they carry its markers).
    Plan(TargetArgs),
    /// Copy the directory into each target's Google Contacts.
    ///
    /// Joiners are added, changes updated, leavers removed (or kept and relabelled with
    /// `leavers = "keep"`), personal contacts never touched. Unchanged users cost one
    /// read. A run that would delete more than `max_delete_share` of the contacts it
    /// manages stops before writing (exit 3) unless --force.
    ///
    /// Only one run writes at a time: while another `contacts sync` or `undo` holds the
    /// run lease in the state store, this one waits for it (or exits 4 with --no-wait).
    Sync(SyncArgs),
    /// Remove every contact and the label orgsync created, for the selected users.
    ///
    /// Waits for another writing contacts run like `sync` does (or exits 4 with
    /// --no-wait).
    Undo(UndoArgs),
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Only this target (repeatable): a trial run on a few address books.
    #[arg(long = "user", value_name = "EMAIL")]
    pub users: Vec<String>,
    /// At most N targets (in email order).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Users processed in parallel, at least 1 (default: [contacts] concurrency, else as
    /// many as fill the project's quota, at most [contacts] max_concurrency).
    #[arg(long, value_name = "N", value_parser = parse_concurrency)]
    pub concurrency: Option<usize>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Decide and report, write nothing (same as `contacts plan`).
    #[arg(long)]
    pub dry_run: bool,
    /// Proceed even when the safety guard would stop the run.
    #[arg(long)]
    pub force: bool,
    /// Mail the run summary to this address (repeatable; adds to [mail] report_to). A
    /// failure to mail is reported, never fails the sync.
    #[arg(long, value_name = "EMAIL")]
    pub report_to: Vec<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// If another contacts run is writing, exit at once with code 4 instead of waiting
    /// for it to finish.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct UndoArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Count what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

pub async fn run(global: &Global, cmd: ContactsCommand) -> anyhow::Result<Exit> {
    let (mode, targets, dry_run, force, mut report_to, no_wait) = match cmd {
        ContactsCommand::Plan(t) => (Mode::Plan, t, true, false, Vec::new(), false),
        ContactsCommand::Sync(s) => (
            Mode::Sync,
            s.targets,
            s.dry_run,
            s.force,
            s.report_to,
            s.wait.no_wait,
        ),
        ContactsCommand::Undo(u) => (
            Mode::Undo,
            u.targets,
            u.dry_run,
            false,
            Vec::new(),
            u.wait.no_wait,
        ),
    };
    let config = load_config(global)?;
    let client = context::service_account_client(&config)
        .map_err(|e| CodedError::new(Exit::Config, e.to_string()))?;
    let options = ContactsOptions {
        mode,
        dry_run,
        force,
        users: targets.users,
        limit: targets.limit,
        concurrency: targets.concurrency,
        progress: crate::progress::contacts_bar(!targets.json),
        lease: LeaseOptions {
            no_wait,
            on_wait: Some(Arc::new(|l: &orgsync_store::Lease| {
                eprintln!(
                    "another contacts run (holder {}, since {}) holds the lease; waiting… \
                     (--no-wait to exit instead)",
                    l.holder,
                    lease::since(l)
                );
            })),
            ..LeaseOptions::default()
        },
        ..ContactsOptions::new(mode)
    };
    // A run that writes nothing reads the store without locking, creating or migrating it
    // (it works on a read-only state file); one that writes is refused here, once, if the
    // store cannot be written.
    let store = if contacts::writes(&options) {
        crate::store::open(&config.state).await?
    } else {
        crate::store::open_read_only(&config.state).await?
    };
    let report = contacts::run(&client, store.clone(), &config, &options).await;
    // Closing checkpoints SQLite's write-ahead log into the file and removes the -wal and
    // -shm files, so a reader without write access finds a plain file.
    store.close().await;
    let report = report.map_err(contacts_error)?;
    if mode == Mode::Sync {
        report_to.extend(config.mail.report_to.iter().cloned());
    }
    if !report_to.is_empty() {
        mail_report(&client, &config, &report_to, &report).await;
    }
    if targets.json {
        print_json(&report)?;
    } else {
        if mode == Mode::Plan || dry_run {
            print_plan(&report);
        }
        print!("{}", report.render_text());
    }
    Ok(exit_code(&report))
}

/// A failed run as the user reads it: the exit code of its kind ([`crate::exit::for_kind`]:
/// 4 when another run holds the lease, 1 when it was lost mid-run or Google stayed
/// unavailable, 2 for what must be fixed), with the advice that names this command's flags.
fn contacts_error(e: ContactsError) -> anyhow::Error {
    let code = crate::exit::for_kind(e.kind());
    let advice = match &e {
        ContactsError::Lease(LeaseError::Held(_)) => Some(format!(
            "{e}; run again when it has finished, or without --no-wait to wait for it (a \
             crashed run's lease expires within a minute)"
        )),
        ContactsError::UnknownTarget { .. } => Some(format!(
            "--user {e}; `orgsync contacts plan` lists the targets"
        )),
        ContactsError::Lease(LeaseError::Lost(_)) => Some(e.to_string()),
        // The chain (what was being done: why) is printed, and its kind classified, as is.
        _ => None,
    };
    match advice {
        Some(advice) => CodedError::new(code, advice).into(),
        None => e.into(),
    }
}

/// Mail the summary; a failure is logged and printed, never fatal.
async fn mail_report(
    client: &orgsync_client::GoogleClient,
    config: &orgsync_jobs::config::Config,
    to: &[String],
    report: &ContactsReport,
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
    let t = &report.totals;
    let subject = format!(
        "orgsync contacts sync: {} created, {} updated, {} deleted, {} failed",
        t.created, t.updated, t.deleted, t.users_failed
    );
    match orgsync_jobs::mail::send_report(client, &from, to, &subject, &report.render_text()).await
    {
        Ok(_) => tracing::info!(to = ?to, "run report mailed"),
        Err(e) => {
            tracing::warn!(error = %e, "mailing the run report failed");
            eprintln!("warning: mailing the run report failed: {e}");
        }
    }
}

/// 3 when the guard stopped the run or a user; else 1 when a user failed; else 0.
pub fn exit_code(report: &ContactsReport) -> Exit {
    if report.mode == Mode::Sync && report.guard_stopped() {
        Exit::Guard
    } else if report.totals.users_failed > 0 {
        Exit::Partial
    } else {
        Exit::Ok
    }
}

fn print_plan(report: &ContactsReport) {
    const SHOWN: usize = 20;
    for u in &report.users {
        if u.status == UserStatus::Unchanged {
            continue;
        }
        println!(
            "{}: {} to create, {} to update, {} to relabel, {} to delete, {} duplicates to merge ({} personal contacts untouched)",
            u.email, u.created, u.updated, u.relabelled, u.deleted, u.duplicates_merged, u.personal
        );
        for a in u.actions.iter().take(SHOWN) {
            if a.fields.is_empty() {
                println!("  {:<15} {}", a.action, a.name);
            } else {
                println!("  {:<15} {} [{}]", a.action, a.name, a.fields.join(", "));
            }
        }
        if u.actions.len() > SHOWN {
            println!(
                "  … and {} more (--json lists all)",
                u.actions.len() - SHOWN
            );
        }
    }
}

/// `--concurrency` must be at least 1, as `[contacts] concurrency` must: 0 is refused,
/// never quietly turned into 1.
fn parse_concurrency(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (the number of users worked on at once)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod concurrency_flag_tests {
    use super::*;

    #[test]
    fn concurrency_zero_is_refused_like_the_config_file_refuses_it() {
        assert!(parse_concurrency("0").is_err());
        assert_eq!(parse_concurrency("16"), Ok(16));
        assert!(parse_concurrency("-1").is_err());
    }
}
