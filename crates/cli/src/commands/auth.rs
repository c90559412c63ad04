//! `orgsync auth login|status|logout`: a person's own login (installed-app OAuth + PKCE).
//!
//! The flow itself lives in `orgsync_jobs::auth` (so tests drive it with a fake
//! browser); this module only decides how to show the URL, where the token file goes,
//! and what to print.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use orgsync_jobs::auth::{self, LoginError, LoginOptions};

use crate::cli::Global;
use crate::commands::common::{load_config, print_json};
use crate::exit::{CodedError, Exit};

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Log in with your own Google account: opens the consent page (or prints its URL),
    /// receives the answer on a loopback port, stores a refresh token (mode 0600).
    Login(LoginArgs),
    /// Who is logged in, with which scopes, and until when the access token is valid.
    /// Checks the stored login against the token endpoint; never prints secrets.
    Status(StatusArgs),
    /// Revoke the stored login at Google and delete the token file.
    Logout(TokenFileArg),
}

#[derive(Debug, Args)]
pub struct TokenFileArg {
    /// Token file (default: [auth] token_file, else ~/.config/orgsync/token.json).
    #[arg(long, env = "ORGSYNC_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The "Desktop app" OAuth client file from the Cloud console (default: [auth]
    /// client_secret_file).
    #[arg(long)]
    pub client_secret: Option<PathBuf>,
    /// Scopes to ask for, comma- or space-separated; shorthands like `gmail.send` are
    /// expanded (default: [auth] scopes, else gmail.compose, calendar.readonly, openid,
    /// userinfo.email).
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// Do not try to open a browser; print the URL (for SSH sessions: forward the
    /// printed loopback port, or open the URL on this machine).
    #[arg(long)]
    pub no_browser: bool,
    /// Suggest this account on the consent page.
    #[arg(long)]
    pub login_hint: Option<String>,
    /// Give up when no answer arrives within this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    #[command(flatten)]
    pub token: TokenFileArg,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub token: TokenFileArg,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(global: &Global, cmd: AuthCommand) -> anyhow::Result<Exit> {
    let config = load_config(global)?;
    match cmd {
        AuthCommand::Login(args) => login(&config, args).await,
        AuthCommand::Status(args) => {
            let path =
                auth::token_file(&config, args.token.token_file.as_deref()).map_err(coded)?;
            let status = auth::status(&path).await.map_err(coded)?;
            if args.json {
                print_json(&status)?;
            } else {
                println!(
                    "logged in as   {}",
                    status.account.as_deref().unwrap_or("(unknown account)")
                );
                println!("client id      {}", status.client_id);
                println!("scopes         {}", status.scopes.join(" "));
                if let Some(at) = &status.logged_in_at {
                    println!("logged in at   {at}");
                }
                if let Some(at) = &status.access_token_expires_at {
                    println!("access token   valid until {at}");
                }
                println!("token file     {}", status.token_file.display());
            }
            Ok(Exit::Ok)
        }
        AuthCommand::Logout(args) => {
            let path = auth::token_file(&config, args.token_file.as_deref()).map_err(coded)?;
            let out = match auth::logout(&path).await {
                Ok(out) => out,
                // Logging out twice is not an error: the goal (no stored login) is met.
                Err(auth::LoginError::NotLoggedIn(_)) => {
                    println!(
                        "not logged in (no token file at {}): nothing to do",
                        path.display()
                    );
                    return Ok(Exit::Ok);
                }
                Err(e) => return Err(coded(e)),
            };
            let who = out.account.as_deref().unwrap_or("the stored account");
            if out.revoked {
                println!(
                    "logged out {who}: access revoked, {} deleted",
                    path.display()
                );
            } else {
                println!(
                    "logged out {who}: the token was already invalid; {} deleted",
                    path.display()
                );
            }
            Ok(Exit::Ok)
        }
    }
}

async fn login(config: &orgsync_jobs::config::Config, args: LoginArgs) -> anyhow::Result<Exit> {
    let secret = args
        .client_secret
        .clone()
        .or_else(|| config.auth.client_secret_file.clone())
        .ok_or_else(|| {
            CodedError::new(
                Exit::Config,
                "no OAuth client: pass --client-secret FILE or set [auth] client_secret_file \
                 (a \"Desktop app\" client from Cloud console → APIs & Services → Credentials; \
                 `orgsync emulator --data-dir DIR` writes DIR/client_secret.json)",
            )
        })?;
    let client = auth::read_client_secret(&secret).map_err(coded)?;
    let path = auth::token_file(config, args.token.token_file.as_deref()).map_err(coded)?;
    let mut options = LoginOptions::new(client);
    let scopes = if args.scopes.is_empty() {
        &config.auth.scopes
    } else {
        &args.scopes
    };
    if !scopes.is_empty() {
        options.scopes = auth::expand_scopes(scopes);
    }
    options.login_hint = args.login_hint.clone();
    options.timeout = Duration::from_secs(args.timeout_secs.max(1));

    let no_browser = args.no_browser;
    let outcome = auth::login(&options, |url| {
        let opened = !no_browser && has_graphical_session() && webbrowser::open(url).is_ok();
        if opened {
            eprintln!("Opened the sign-in page in your browser. If it did not appear, open:");
        } else {
            eprintln!("Open this URL in a browser on this machine to sign in:");
        }
        eprintln!("{url}");
        eprintln!("Waiting for the sign-in to finish…");
    })
    .await
    .map_err(coded)?;

    auth::save_login(&path, &outcome.login).map_err(coded)?;
    let account = outcome.login.account.clone();
    if args.json {
        print_json(&serde_json::json!({
            "account": account,
            "scopes": outcome.login.scopes,
            "token_file": path,
            "access_token_expires_in_secs": outcome.access_token_expires_in.map(|d| d.as_secs()),
        }))?;
    } else {
        println!(
            "logged in as {}; token saved to {} (mode 0600)",
            account.as_deref().unwrap_or("(unknown account)"),
            path.display()
        );
    }
    Ok(Exit::Ok)
}

/// Whether a browser window can appear. On Linux and the BSDs only with an X11 or
/// Wayland display: without one, xdg-open may start a text browser that takes over the
/// terminal (or blocks the login), so over SSH or in a container the URL is printed instead.
fn has_graphical_session() -> bool {
    if cfg!(any(target_os = "macos", target_os = "windows")) {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
}

/// A login problem with its own message and the exit code of its kind (always 2).
fn coded(e: LoginError) -> anyhow::Error {
    CodedError::new(crate::exit::for_error(&e), e.to_string()).into()
}
