//! Command-line interface: the raw arguments as clap parses them. Every flag can also
//! come from an environment variable (`ORGSYNC_*`), and `--help` on each command says
//! what it does and why.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands;

#[derive(Debug, Parser)]
#[command(
    name = "orgsync",
    version,
    about = "Keep address books and app user tables in step with a Google Workspace directory",
    long_about = "orgsync copies the Google Workspace directory into every member's Google Contacts \
(so phones show caller ID), keeps an application's user table in step with the directory \
(full reconcile plus real-time push notifications), and sends mail and reads calendars through \
the Gmail and Calendar APIs.\n\nIt ships a local Workspace emulator: `orgsync demo` runs the \
whole contacts job against it, and `orgsync emulator` serves it for development.",
    after_help = "Exit codes: 0 done, 1 some targets failed, 2 configuration or auth error, \
3 stopped by the safety guard (re-run with --force if intended), 4 another contacts run is in \
progress (--no-wait)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Configuration file (TOML). Default: ./orgsync.toml if it exists.
    #[arg(long, short = 'c', global = true, env = "ORGSYNC_CONFIG")]
    pub config: Option<PathBuf>,
    /// More log output (-v, -vv). Logs go to stderr; ORGSYNC_LOG=filter overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Logs as JSON lines (for log shippers).
    #[arg(long, global = true, env = "ORGSYNC_LOG_JSON")]
    pub log_json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the contacts job end to end against an in-process emulator and show what it did.
    Demo(DemoArgs),
    /// Serve the local Google Workspace emulator (OAuth, Directory, People, Gmail, Calendar).
    Emulator(EmulatorArgs),
    /// Copy the directory into each member's Google Contacts (plan, sync, undo).
    #[command(subcommand)]
    Contacts(commands::contacts::ContactsCommand),
    /// Keep the app user table in step with the directory (sync, list, show).
    #[command(subcommand)]
    Users(commands::users::UsersCommand),
    /// Provision users and groups into SCIM 2.0 applications ([[scim]]: sync, plan).
    #[command(subcommand)]
    Scim(commands::scim::ScimCommand),
    /// Run the push-notification daemon: webhook, workers, channel renewal, sinks.
    Serve(commands::serve::ServeArgs),
    /// The Directory push channels orgsync owns (list, renew, stop).
    #[command(subcommand)]
    Channels(commands::channels::ChannelsCommand),
    /// Log in with your own Google account (installed-app OAuth with PKCE).
    #[command(subcommand)]
    Auth(commands::auth::AuthCommand),
    /// Send mail and drafts through the Gmail API.
    #[command(subcommand)]
    Mail(commands::mail::MailCommand),
    /// Read calendars through the Calendar API.
    #[command(subcommand)]
    Calendar(commands::calendar::CalendarCommand),
    /// Check the setup against Google: key, delegated scopes, APIs, admin, state, serve.
    #[command(
        long_about = "Check that this configuration can do each job's work, one line \
per check (✔ or ✘), and for every ✘ the exact fix: the key file; the endpoint; each scope \
the jobs need, requested on its own so every missing delegation is named (and the full \
list to paste into the Admin console); that admin_subject is an active admin who can list \
users and read groups; one harmless read per API, telling \"API not enabled in the Cloud \
project\" apart from \"no permission\"; the state store; and for serve, the public URL's \
health check and the push channels.\n\nIt never writes to Google or to the state store. \
Exit 0 when every check passes, 2 otherwise."
    )]
    Doctor(commands::doctor::DoctorArgs),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// People in the generated demo org.
    #[arg(long, default_value_t = 300)]
    pub users: usize,
    /// Seed of the generated org.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Print the final report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on (loopback only is recommended: the emulator has no real security).
    #[arg(
        long,
        default_value = "127.0.0.1:8085",
        env = "ORGSYNC_EMULATOR_LISTEN"
    )]
    pub listen: SocketAddr,
    /// Users in the generated org (the admin is always admin@DOMAIN).
    #[arg(long, default_value_t = 50)]
    pub users: usize,
    /// The org's primary domain.
    #[arg(long, default_value = "example.com")]
    pub domain: String,
    /// Seed of the deterministic org generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write key files and orgsync.toml here, and keep the org across restarts.
    #[arg(long, env = "ORGSYNC_EMULATOR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Each API call's response time, milliseconds: the answer leaves no sooner than this
    /// after the request arrived (the emulator's own work happens within it).
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Probability (0 to 1) that an API call fails with an injected 500/503 or reset.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Requests per minute allowed per user and API before 429 (default: unlimited).
    #[arg(long)]
    pub quota_per_user_per_minute: Option<u32>,
    /// Google's quota model: `google` charges each method its cost per quota metric and
    /// enforces per-user and per-project limits per minute and per day.
    #[arg(long, value_name = "PROFILE")]
    pub quota_profile: Option<String>,
    /// Set one quota limit, over the profile's: METRIC.SCOPE=VALUE, e.g.
    /// `people.write.user=10` (repeatable; scope `user` or `project`).
    #[arg(long = "quota", value_name = "METRIC.SCOPE=VALUE")]
    pub quota: Vec<String>,
    /// The length of a quota minute in seconds: 1 runs quota time 60 times faster.
    #[arg(long, default_value_t = 60)]
    pub quota_minute_secs: u64,
    /// Personal (non-orgsync) contacts generated per user.
    #[arg(long, default_value_t = 0)]
    pub personal_contacts: usize,
    /// Share (0 to 1) of generated users with a Directory photo, to try
    /// `[contacts] include_photos`.
    #[arg(long, default_value_t = 0.0)]
    pub photo_share: f64,
    /// Cap on push channel lifetime, seconds (Google: 2 days documented, 6 hours observed).
    #[arg(long, default_value_t = 21600)]
    pub channel_ttl_cap_secs: u64,
}
