//! `orgsync mail send|send-draft`: mail through the Gmail API.
//!
//! As the logged-in person (`orgsync auth login`) by default, or with `--as EMAIL` as any
//! user of the domain through the config's service account (domain-wide delegation).
//! The message is built and its limits checked (`orgsync_jobs::mail`) before any call.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use orgsync_jobs::auth;
use orgsync_jobs::config::Config;
use orgsync_jobs::mail::{self, Attachment, MailError, OutgoingMail, Sent};

use crate::cli::Global;
use crate::commands::common::{load_config, print_json};
use crate::exit::{CodedError, Exit};

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Send a message (or save it as a draft with --draft).
    Send(SendArgs),
    /// Send a draft saved earlier (`mail send --draft` prints its id).
    SendDraft(SendDraftArgs),
}

#[derive(Debug, Args)]
pub struct Sender {
    /// Send as this user of the domain through the service account (domain-wide
    /// delegation) instead of as the logged-in person.
    #[arg(long = "as", value_name = "EMAIL")]
    pub as_user: Option<String>,
    /// Token file of the logged-in person (default: [auth] token_file, else
    /// ~/.config/orgsync/token.json).
    #[arg(long, env = "ORGSYNC_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Recipient(s): repeat the flag or separate with commas; `Name <a@b>` allowed.
    #[arg(long, required = true)]
    pub to: Vec<String>,
    #[arg(long)]
    pub cc: Vec<String>,
    #[arg(long)]
    pub bcc: Vec<String>,
    /// Subject (any language; encoded for mail headers).
    #[arg(long)]
    pub subject: String,
    /// Plain-text body.
    #[arg(long, group = "body_source", required_unless_present = "body_file")]
    pub body: Option<String>,
    /// Read the plain-text body from a file (`-` = standard input).
    #[arg(long, group = "body_source")]
    pub body_file: Option<PathBuf>,
    /// An HTML version of the body (sent as multipart/alternative with the text).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Attach a file (repeatable); its content type is guessed from the extension.
    #[arg(long, value_name = "FILE")]
    pub attach: Vec<PathBuf>,
    #[command(flatten)]
    pub sender: Sender,
    /// Save as a draft instead of sending.
    #[arg(long)]
    pub draft: bool,
    /// Build and check the message, print what would be sent, call nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the message id, thread id and labels as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SendDraftArgs {
    /// The draft id.
    pub id: String,
    #[command(flatten)]
    pub sender: Sender,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(global: &Global, cmd: MailCommand) -> anyhow::Result<Exit> {
    let config = load_config(global)?;
    match cmd {
        MailCommand::Send(args) => send(&config, args).await,
        MailCommand::SendDraft(args) => {
            let (client, subject, _) = sender_client(&config, &args.sender)?;
            let sent = mail::send_draft(&client, subject.as_deref(), &args.id)
                .await
                .map_err(mail_error)?;
            print_sent(&sent, args.json, "sent draft")?;
            Ok(Exit::Ok)
        }
    }
}

async fn send(config: &Config, args: SendArgs) -> anyhow::Result<Exit> {
    let text = match (&args.body, &args.body_file) {
        (Some(t), _) => t.clone(),
        (None, Some(p)) => read_text(p, "--body-file")?,
        (None, None) => return Err(usage("give the body with --body TEXT or --body-file FILE")),
    };
    let html = args
        .html
        .as_deref()
        .map(|p| read_text(p, "--html"))
        .transpose()?;
    let attachments = Attachment::from_paths(&args.attach).map_err(mail_error)?;

    // Resolve who sends before building, so From is right; a dry run needs no login.
    let (client, subject, from) = if args.dry_run {
        (
            None,
            args.sender.as_user.clone(),
            args.sender.as_user.clone(),
        )
    } else {
        let (c, s, f) = sender_client(config, &args.sender)?;
        (Some(c), s, f)
    };
    let message = OutgoingMail {
        from,
        to: args.to.clone(),
        cc: args.cc.clone(),
        bcc: args.bcc.clone(),
        subject: args.subject.clone(),
        text,
        html,
        attachments,
    };
    let raw = mail::build_mime(&message).map_err(mail_error)?;
    let path = mail::send_path(raw.len());

    let Some(client) = client else {
        let plan = serde_json::json!({
            "dry_run": true,
            "draft": args.draft,
            "recipients": message.recipient_count(),
            "bytes": raw.len(),
            "send_path": path,
            "attachments": message.attachments.iter().map(|a| serde_json::json!({
                "filename": a.filename, "content_type": a.content_type, "bytes": a.data.len()
            })).collect::<Vec<_>>(),
        });
        if args.json {
            print_json(&plan)?;
        } else {
            println!(
                "dry run: would {} a {}-byte message to {} recipient(s) via the {} endpoint; nothing sent",
                if args.draft {
                    "save as a draft"
                } else {
                    "send"
                },
                raw.len(),
                message.recipient_count(),
                match path {
                    mail::SendPath::Raw => "messages.send (JSON)",
                    mail::SendPath::Upload => "upload",
                }
            );
        }
        return Ok(Exit::Ok);
    };

    let sent = if args.draft {
        mail::create_draft(&client, subject.as_deref(), &raw).await
    } else {
        mail::send_raw_message(&client, subject.as_deref(), &raw).await
    }
    .map_err(mail_error)?;
    print_sent(
        &sent,
        args.json,
        if args.draft { "saved draft" } else { "sent" },
    )?;
    Ok(Exit::Ok)
}

/// The client, the subject to pass to Gmail calls, and the From address.
fn sender_client(
    config: &Config,
    sender: &Sender,
) -> anyhow::Result<(orgsync_client::GoogleClient, Option<String>, Option<String>)> {
    match &sender.as_user {
        Some(user) => {
            let email = mail::parse_mailbox(user).map_err(mail_error)?.email;
            let client = auth::delegated_client(config)
                .map_err(|e| CodedError::new(Exit::Config, e.to_string()))?;
            Ok((client, Some(email.clone()), Some(email)))
        }
        None => {
            let path = auth::token_file(config, sender.token_file.as_deref())
                .map_err(|e| CodedError::new(Exit::Config, e.to_string()))?;
            let login = auth::load_login(&path)
                .map_err(|e| CodedError::new(Exit::Config, e.to_string()))?;
            let client = auth::personal_client(config, &login);
            Ok((client, None, login.account.clone()))
        }
    }
}

fn read_text(path: &Path, flag: &str) -> anyhow::Result<String> {
    let limit = mail::MAX_MESSAGE_BYTES;
    let bytes = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::io::stdin(), limit as u64 + 1),
            &mut buf,
        )
        .map_err(|e| usage(&format!("{flag}: cannot read standard input ({e})")))?;
        if buf.len() > limit {
            return Err(usage(&format!(
                "{flag}: standard input is over {limit} bytes, more than a message holds"
            )));
        }
        buf
    } else {
        mail::read_file_bounded(path, limit)
            .map_err(|problem| usage(&format!("{flag} {}: {problem}", path.display())))?
    };
    String::from_utf8(bytes)
        .map_err(|_| usage(&format!("{flag} {}: not UTF-8 text", path.display())))
}

fn usage(message: &str) -> anyhow::Error {
    CodedError::new(Exit::Config, message.to_string()).into()
}

/// The exit code of the error's kind ([`crate::exit::for_kind`]); the advice that names
/// this command's flags is worded here.
fn mail_error(e: MailError) -> anyhow::Error {
    let code = crate::exit::for_kind(e.kind());
    let message = match e {
        MailError::NoRecipients => format!("{e}: give at least one --to (or --cc/--bcc)"),
        e => e.to_string(),
    };
    CodedError::new(code, message).into()
}

fn print_sent(sent: &Sent, json: bool, what: &str) -> anyhow::Result<()> {
    if json {
        return print_json(sent);
    }
    match &sent.draft_id {
        Some(d) => println!(
            "{what}: draft {d} (message {})",
            sent.message_id.as_deref().unwrap_or("?")
        ),
        None => println!(
            "{what}: message {} in thread {} [{}]",
            sent.message_id.as_deref().unwrap_or("?"),
            sent.thread_id.as_deref().unwrap_or("?"),
            sent.label_ids.join(", ")
        ),
    }
    Ok(())
}
