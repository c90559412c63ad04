//! `orgsync doctor`: checks a configuration against Google (or the emulator) and prints
//! one line per check, ✔ or ✘, with the exact fix under every ✘. The checks are
//! [`orgsync_jobs::doctor`]; this module adds the two that need the binary (the
//! configuration as loaded, the state store's backend) and the output.
//!
//! It never writes: tokens and single-result reads at Google, the state store opened
//! read-only (a missing SQLite file stays missing).

use clap::{Args, ValueEnum};
use orgsync_jobs::config;
use orgsync_jobs::doctor::{self, Job, Report, Status};

use crate::cli::Global;
use crate::commands::common::print_json;
use crate::exit::Exit;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The jobs to check (repeatable, or comma-separated). Default: contacts and users,
    /// plus mail when [mail] sends reports or welcome mail.
    #[arg(long = "job", value_enum, value_delimiter = ',', value_name = "JOB")]
    pub jobs: Vec<JobArg>,
    /// Print the checks as JSON (`ok`, `checks[]` with `id`, `status`, `line`, `fix`,
    /// and the `delegation` to paste).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JobArg {
    /// Directory → Contacts: Directory (users, groups) and People.
    Contacts,
    /// Directory → the app table and `serve`: Directory, plus the public URL and channels.
    Users,
    /// Gmail send and drafts.
    Mail,
    /// The Calendar agenda.
    Calendar,
    /// The [[scim]] apps: each URL answers and accepts its token.
    Scim,
    /// Every job above.
    All,
}

fn jobs(args: &[JobArg], config: &config::Config) -> Vec<Job> {
    if args.is_empty() {
        return Job::defaults(config);
    }
    let mut jobs: Vec<Job> = args
        .iter()
        .flat_map(|a| match a {
            JobArg::Contacts => vec![Job::Contacts],
            JobArg::Users => vec![Job::Users],
            JobArg::Mail => vec![Job::Mail],
            JobArg::Calendar => vec![Job::Calendar],
            JobArg::Scim => vec![Job::Scim],
            JobArg::All => Job::ALL.to_vec(),
        })
        .collect();
    jobs.sort();
    jobs.dedup();
    jobs
}

pub async fn run(global: &Global, args: DoctorArgs) -> anyhow::Result<Exit> {
    let loaded = match config::load(global.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(e) => {
            let mut report = Report::new(Vec::new());
            report.fail(
                "config",
                e.to_string(),
                "correct the configuration (`orgsync --help` and README.md, \"Configuration\")",
            );
            return finish(&report, args.json);
        }
    };
    let config = loaded.config;
    let mut report = Report::new(jobs(&args.jobs, &config));
    let source = match &loaded.file {
        Some(file) => format!("configuration {} and the environment", file.display()),
        None => {
            "no configuration file (./orgsync.toml or --config): the environment only".to_string()
        }
    };
    report.pass("config", source);
    for warning in loaded.warnings {
        report.skip("config", format!("warning: {warning}"));
    }
    doctor::check_google(&config, &mut report).await;
    doctor::check_login(&config, &mut report).await;
    doctor::check_scim(&config, &mut report).await;
    if let Some(store) = check_state(&config.state, &mut report).await {
        doctor::check_serve(&config, store.as_ref(), &mut report).await;
        store.close().await;
    }
    finish(&report, args.json)
}

/// The state store opens read-only with its schema current; a SQLite file is private.
async fn check_state(
    state: &config::StateConfig,
    report: &mut Report,
) -> Option<std::sync::Arc<dyn orgsync_store::Store>> {
    let url = state.database_url();
    let file = crate::store::sqlite_file(&url);
    if let Some(path) = &file
        && !path.try_exists().unwrap_or(true)
    {
        report.pass(
            "state",
            format!(
                "state file {} does not exist yet: the first sync creates it (mode 0600)",
                path.display()
            ),
        );
        return None;
    }
    let store = match crate::store::open_read_only(state).await {
        Ok(store) => store,
        Err(e) => {
            report.fail(
                "state",
                format!("{e:#}"),
                "see the message: fix the path or URL in [state], or run a sync once to \
                 bring the schema up to date",
            );
            return None;
        }
    };
    match &file {
        Some(path) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(path)
                    .map(|m| m.permissions().mode() & 0o777)
                    .unwrap_or(0o600);
                if mode & 0o077 != 0 {
                    report.fail(
                        "state",
                        format!(
                            "state file {} has mode {mode:o}: it holds push-channel tokens and \
                             the outbox, and others can read it",
                            path.display()
                        ),
                        format!("chmod 600 {}", path.display()),
                    );
                    return Some(store);
                }
            }
            report.pass(
                "state",
                format!(
                    "state file {} opens, its schema is current, mode 0600",
                    path.display()
                ),
            );
        }
        None => report.pass("state", "state database opens and its schema is current"),
    }
    Some(store)
}

fn finish(report: &Report, json: bool) -> anyhow::Result<Exit> {
    if json {
        let mut value = serde_json::to_value(report)?;
        value["ok"] = report.passed().into();
        print_json(&value)?;
    } else {
        print_human(report);
    }
    Ok(if report.passed() {
        Exit::Ok
    } else {
        Exit::Config
    })
}

fn print_human(report: &Report) {
    for check in &report.checks {
        let mark = match check.status {
            Status::Pass => "✔",
            Status::Fail => "✘",
            Status::Skip => "-",
        };
        println!("{mark} {}", check.line);
        if let Some(fix) = &check.fix {
            println!("    fix: {fix}");
        }
    }
    if let Some(d) = &report.delegation {
        println!();
        println!(
            "Domain-wide delegation for these jobs: client id {}, OAuth scopes:",
            d.client_id
        );
        println!("    {}", d.scopes);
    }
    let failed = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .count();
    println!();
    if failed == 0 {
        println!("All checks passed.");
    } else {
        println!(
            "{failed} check(s) failed: fix them and run `orgsync doctor` again (README.md, \
             \"Use it with your Workspace\")."
        );
    }
}
