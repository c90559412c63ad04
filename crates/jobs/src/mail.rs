//! Mail through the Gmail API: the CLI's `mail send`, the jobs' run reports and welcome
//! mail all go through here.
//!
//! Why this shape:
//! - **MIME from a library.** [`build_mime`] uses mail-builder: RFC 2047 encoded UTF-8
//!   headers, RFC 2231 file names, base64/quoted-printable chosen per part,
//!   `multipart/alternative` when there is HTML, `multipart/mixed` around attachments.
//!   Hand-built MIME is where "Subject: =?utf-8?…" bugs come from.
//! - **Limits before any call** ([`check_limits`]): Gmail accepts at most 35 MiB per
//!   message (discovery `maxSize`) and Workspace 100 recipients per message; going over
//!   either should fail here with a message saying so, not after an upload. Messages over
//!   5 MB go to the media-upload endpoint (the JSON `raw` form inflates them by a third).
//! - **Sends are not retried** (the client never repeats a send whose outcome is
//!   unknown): a duplicate mail cannot be taken back.
//! - **Templates fail loudly.** [`render_template`] refuses a placeholder it has no value
//!   for, naming it, instead of mailing a new hire "Hello {given_nmae}".

use std::collections::BTreeMap;
use std::path::Path;

use orgsync_client::GoogleClient;
use orgsync_client::gmail::Upload;
use orgsync_wire::directory::User;
use orgsync_wire::gmail::MAX_UPLOAD_BYTES;
use serde::Serialize;

/// Largest message Gmail accepts through `messages.send` / `drafts.*` (35 MiB).
pub const MAX_MESSAGE_BYTES: usize = MAX_UPLOAD_BYTES;
/// Above this the message goes through the upload endpoint instead of JSON `raw`.
pub const SIMPLE_SEND_MAX_BYTES: usize = 5 * 1024 * 1024;
/// Workspace: at most 100 recipients (To + Cc + Bcc) per message sent through the API.
pub const MAX_RECIPIENTS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("{0}")]
    Invalid(String),
    /// No To, Cc or Bcc address.
    #[error("no recipients")]
    NoRecipients,
    #[error("attachment {path}: {problem}")]
    Attachment { path: String, problem: String },
    #[error(
        "the message is {size} bytes; Gmail accepts at most {MAX_MESSAGE_BYTES} bytes (35 MiB) \
         including attachments after encoding. Nothing was sent: share large files as links \
         (e.g. Google Drive) instead"
    )]
    TooLarge { size: usize },
    #[error(
        "{count} recipients (To + Cc + Bcc); Google Workspace accepts at most {MAX_RECIPIENTS} \
         per message. Nothing was sent: split the list or mail a group address"
    )]
    TooManyRecipients { count: usize },
    #[error("template: {0}")]
    Template(String),
    #[error("cannot build the message: {0}")]
    Build(std::io::Error),
    #[error(transparent)]
    Api(#[from] orgsync_client::Error),
}

impl MailError {
    pub fn kind(&self) -> crate::error::FailureKind {
        match self {
            MailError::Api(e) => crate::error::FailureKind::Google(e.kind()),
            _ => crate::error::FailureKind::Config,
        }
    }
}

/// A file to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

impl Attachment {
    /// Read `path`; the content type is guessed from the extension
    /// (`application/octet-stream` when unknown). Only a regular file whose size fits in a
    /// message is read, and never more than that: a device (`/dev/zero`), a pipe or a
    /// 3 GB file is refused from its metadata before a byte is read.
    pub fn from_path(path: &Path) -> Result<Attachment, MailError> {
        let shown = || path.display().to_string();
        let data = read_file_bounded(path, MAX_MESSAGE_BYTES).map_err(|problem| {
            MailError::Attachment {
                path: shown(),
                problem,
            }
        })?;
        let filename = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| MailError::Attachment {
                path: shown(),
                problem: "it has no file name".into(),
            })?;
        let content_type = mime_guess::from_path(path)
            .first_or_octet_stream()
            .essence_str()
            .to_string();
        Ok(Attachment {
            filename,
            content_type,
            data,
        })
    }

    /// Read every attachment, after checking from the files' metadata alone that together
    /// they fit in one message (base64 grows them by a third), so nothing large is read
    /// only to be refused.
    pub fn from_paths(paths: &[impl AsRef<Path>]) -> Result<Vec<Attachment>, MailError> {
        let mut encoded = 0usize;
        for path in paths {
            let path = path.as_ref();
            let len = regular_file_len(path).map_err(|problem| MailError::Attachment {
                path: path.display().to_string(),
                problem,
            })?;
            encoded = encoded.saturating_add(base64_len(len));
        }
        if encoded > MAX_MESSAGE_BYTES {
            return Err(MailError::TooLarge { size: encoded });
        }
        paths
            .iter()
            .map(|p| Attachment::from_path(p.as_ref()))
            .collect()
    }
}

/// Size of `n` bytes once base64-encoded in 76-character lines (CRLF).
fn base64_len(n: u64) -> usize {
    let chars = n.div_ceil(3).saturating_mul(4);
    let lines = chars.div_ceil(76);
    usize::try_from(chars.saturating_add(lines.saturating_mul(2))).unwrap_or(usize::MAX)
}

/// The size of a regular file, or why it cannot be attached or read as a body.
fn regular_file_len(path: &Path) -> Result<u64, String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => format!("cannot read it ({e})"),
    })?;
    if !meta.is_file() {
        return Err(if meta.is_dir() {
            "it is a directory".into()
        } else {
            "it is not a regular file (a device, pipe or socket cannot be attached)".into()
        });
    }
    Ok(meta.len())
}

/// Read a regular file of at most `limit` bytes, checking its metadata first and never
/// reading past `limit` (the file may grow meanwhile). The error says why, for a message
/// that names the file.
pub fn read_file_bounded(path: &Path, limit: usize) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let too_big = |len: u64| {
        format!(
            "it is {len} bytes; a message holds at most {limit} bytes (35 MiB). Share large \
             files as links instead"
        )
    };
    let len = regular_file_len(path)?;
    if len > limit as u64 {
        return Err(too_big(len));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it ({e})"))?;
    let mut data = Vec::with_capacity(len as usize);
    file.take(limit as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot read it ({e})"))?;
    if data.len() > limit {
        return Err(too_big(data.len() as u64));
    }
    Ok(data)
}

/// A message to build. Addresses are `user@domain` or `Display Name <user@domain>`.
#[derive(Debug, Clone, Default)]
pub struct OutgoingMail {
    pub from: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
}

impl OutgoingMail {
    /// Recipients as Gmail counts them: `--to "a@x,b@x"` is two.
    pub fn recipient_count(&self) -> usize {
        [&self.to, &self.cc, &self.bcc]
            .iter()
            .flat_map(|list| list.iter())
            .map(|item| split_addresses(item).len())
            .sum()
    }
}

/// A parsed mailbox: optional display name and the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub email: String,
}

/// Parse `user@domain` or `Name <user@domain>`, rejecting what Gmail would bounce
/// (no `@`, spaces, several addresses in one argument).
pub fn parse_mailbox(input: &str) -> Result<Mailbox, MailError> {
    let s = input.trim();
    let bad = |why: &str| MailError::Invalid(format!("invalid address {input:?}: {why}"));
    let (name, email) = match (s.rfind('<'), s.ends_with('>')) {
        (Some(open), true) => {
            let name = s[..open].trim().trim_matches('"').trim();
            (
                (!name.is_empty()).then(|| name.to_string()),
                &s[open + 1..s.len() - 1],
            )
        }
        _ => (None, s),
    };
    let email = email.trim();
    if email.contains([',', ';']) {
        return Err(bad(
            "one address per argument (repeat the flag, or separate with commas)",
        ));
    }
    if email
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\\"".contains(c))
    {
        return Err(bad(
            "it contains spaces or characters not allowed in an address",
        ));
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err(bad("expected user@domain"));
    };
    if local.is_empty()
        || domain.is_empty()
        || local.contains('@')
        || !domain.contains('.') && domain != "localhost"
    {
        return Err(bad("expected user@domain"));
    }
    // RFC 5321 §4.1.2 dot-string: no empty atom (leading, trailing or doubled dot).
    if local.split('.').any(str::is_empty) {
        return Err(bad("the part before @ has an empty part between dots"));
    }
    if let Some(why) = domain_problem(domain) {
        return Err(bad(&why));
    }
    Ok(Mailbox {
        name,
        email: email.to_string(),
    })
}

/// Why `domain` is no host name a mail can go to, if it is not (RFC 1035 §2.3.1 as relaxed
/// by RFC 1123 §2.1: labels of 1-63 letters, digits and hyphens, not starting or ending
/// with a hyphen; at most 253 characters). Internationalised names must be given in
/// their A-label (`xn--`) form, as Gmail's API expects.
fn domain_problem(domain: &str) -> Option<String> {
    if domain.len() > 253 {
        return Some("the domain is longer than 253 characters".into());
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Some("the domain has an empty label (two dots, or a dot at an end)".into());
        }
        if label.len() > 63 {
            return Some(format!(
                "the domain label {label:?} is longer than 63 characters"
            ));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Some(format!(
                "the domain label {label:?} may hold only letters, digits and hyphens"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!(
                "the domain label {label:?} starts or ends with a hyphen"
            ));
        }
    }
    None
}

/// Split `a@x, b@y` lists as given on the command line and parse each address.
pub fn parse_address_list<S: AsRef<str>>(items: &[S]) -> Result<Vec<Mailbox>, MailError> {
    let mut out = Vec::new();
    for item in items {
        for part in split_addresses(item.as_ref()) {
            out.push(parse_mailbox(&part)?);
        }
    }
    Ok(out)
}

/// Split on commas that are outside quotes and angle brackets.
fn split_addresses(s: &str) -> Vec<String> {
    let (mut parts, mut cur, mut quoted, mut angle) = (Vec::new(), String::new(), false, false);
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' | ';' if !quoted && !angle => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn to_address(list: &[Mailbox]) -> mail_builder::headers::address::Address<'static> {
    let items: Vec<mail_builder::headers::address::Address<'static>> = list
        .iter()
        .map(|m| {
            mail_builder::headers::address::Address::new_address(m.name.clone(), m.email.clone())
        })
        .collect();
    mail_builder::headers::address::Address::new_list(items)
}

/// Validate the addresses and build the RFC 5322 message. `Bcc` stays in the message:
/// Gmail reads the recipients from it and removes it before delivery.
pub fn build_mime(mail: &OutgoingMail) -> Result<Vec<u8>, MailError> {
    let to = parse_address_list(&mail.to)?;
    let cc = parse_address_list(&mail.cc)?;
    let bcc = parse_address_list(&mail.bcc)?;
    if to.is_empty() && cc.is_empty() && bcc.is_empty() {
        return Err(MailError::NoRecipients);
    }
    let count = to.len() + cc.len() + bcc.len();
    if count > MAX_RECIPIENTS {
        return Err(MailError::TooManyRecipients { count });
    }
    if mail.subject.contains(['\r', '\n']) {
        return Err(MailError::Invalid("the subject must be one line".into()));
    }
    let mut builder = mail_builder::MessageBuilder::new();
    if let Some(from) = &mail.from {
        let m = parse_mailbox(from)?;
        builder = builder.from(to_address(std::slice::from_ref(&m)));
    }
    if !to.is_empty() {
        builder = builder.to(to_address(&to));
    }
    if !cc.is_empty() {
        builder = builder.cc(to_address(&cc));
    }
    if !bcc.is_empty() {
        builder = builder.bcc(to_address(&bcc));
    }
    builder = builder
        .subject(mail.subject.clone())
        .text_body(mail.text.clone());
    if let Some(html) = &mail.html {
        builder = builder.html_body(html.clone());
    }
    for a in &mail.attachments {
        builder = builder.attachment(a.content_type.clone(), a.filename.clone(), a.data.clone());
    }
    let raw = builder.write_to_vec().map_err(MailError::Build)?;
    check_limits(count, raw.len())?;
    Ok(raw)
}

/// The limits Gmail and Workspace enforce, checked before any call.
pub fn check_limits(recipients: usize, size: usize) -> Result<(), MailError> {
    if recipients > MAX_RECIPIENTS {
        return Err(MailError::TooManyRecipients { count: recipients });
    }
    if size > MAX_MESSAGE_BYTES {
        return Err(MailError::TooLarge { size });
    }
    Ok(())
}

/// How a message of `size` bytes is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SendPath {
    /// JSON body with base64url `raw`.
    Raw,
    /// `/upload/...?uploadType=multipart` (over [`SIMPLE_SEND_MAX_BYTES`]).
    Upload,
}

pub fn send_path(size: usize) -> SendPath {
    if size > SIMPLE_SEND_MAX_BYTES {
        SendPath::Upload
    } else {
        SendPath::Raw
    }
}

/// What Gmail answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sent {
    /// Set when the message was saved as a draft.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draft_id: Option<String>,
    pub message_id: Option<String>,
    pub thread_id: Option<String>,
    pub label_ids: Vec<String>,
}

fn sent_from(m: orgsync_wire::gmail::Message, draft_id: Option<String>) -> Sent {
    Sent {
        draft_id,
        message_id: m.id,
        thread_id: m.thread_id,
        label_ids: m.label_ids,
    }
}

/// Send `raw` as `subject` (None: the token's own user), choosing the JSON or upload
/// form by size. Limits are checked again here, so a library caller gets them too.
pub async fn send_raw_message(
    client: &GoogleClient,
    subject: Option<&str>,
    raw: &[u8],
) -> Result<Sent, MailError> {
    check_limits(0, raw.len())?;
    let gmail = client.gmail(subject);
    let m = match send_path(raw.len()) {
        SendPath::Raw => gmail.send_raw(raw, None).await?,
        SendPath::Upload => gmail.send_upload(raw, Upload::Multipart, None).await?,
    };
    Ok(sent_from(m, None))
}

/// Save `raw` as a draft of `subject`'s mailbox.
pub async fn create_draft(
    client: &GoogleClient,
    subject: Option<&str>,
    raw: &[u8],
) -> Result<Sent, MailError> {
    check_limits(0, raw.len())?;
    let gmail = client.gmail(subject);
    let d = match send_path(raw.len()) {
        SendPath::Raw => gmail.drafts_create(raw).await?,
        SendPath::Upload => gmail.drafts_create_upload(raw, Upload::Multipart).await?,
    };
    let m = d.message.unwrap_or_default();
    Ok(sent_from(m, d.id))
}

/// Send an existing draft.
pub async fn send_draft(
    client: &GoogleClient,
    subject: Option<&str>,
    draft_id: &str,
) -> Result<Sent, MailError> {
    if draft_id.trim().is_empty() {
        return Err(MailError::Invalid("empty draft id".into()));
    }
    let m = client.gmail(subject).drafts_send(draft_id).await?;
    Ok(sent_from(m, None))
}

/// Mail a plain-text run report from `from` (impersonated through domain-wide
/// delegation) to `to`. The jobs call this after a run; its failure is reported by the
/// caller, never turned into a failed sync.
pub async fn send_report(
    client: &GoogleClient,
    from: &str,
    to: &[String],
    subject: &str,
    text: &str,
) -> Result<Sent, MailError> {
    let raw = build_mime(&OutgoingMail {
        from: Some(from.to_string()),
        to: to.to_vec(),
        subject: subject.to_string(),
        text: text.to_string(),
        ..Default::default()
    })?;
    send_raw_message(client, Some(&parse_mailbox(from)?.email), &raw).await
}

// ---------------------------------------------------------------------------------------
// Templates

/// Replace `{name}` placeholders with `fields[name]`; `{{` and `}}` are literal braces.
/// Every placeholder without a value is an error naming all of them (and the known
/// names), so a typo never reaches a mailbox.
pub fn render_template(
    template: &str,
    fields: &BTreeMap<String, String>,
) -> Result<String, MailError> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut unknown: Vec<String> = Vec::new();
    let mut chars = template.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|p| p.1) == Some('{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek().map(|p| p.1) == Some('}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let rest = &template[i + 1..];
                let Some(end) = rest.find('}') else {
                    return Err(MailError::Template(format!(
                        "unclosed '{{' at byte {i}; write '{{{{' for a literal brace"
                    )));
                };
                let name = rest[..end].trim();
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(MailError::Template(format!(
                        "invalid placeholder {{{}}} at byte {i}; names are letters, digits and _ \
                         (write '{{{{' for a literal brace)",
                        &rest[..end]
                    )));
                }
                match fields.get(name) {
                    Some(v) => out.push_str(v),
                    None => {
                        if !unknown.iter().any(|u| u == name) {
                            unknown.push(name.to_string());
                        }
                    }
                }
                // Skip the placeholder's characters.
                for _ in 0..rest[..=end].chars().count() {
                    chars.next();
                }
            }
            '}' => {
                return Err(MailError::Template(format!(
                    "unmatched '}}' at byte {i}; write '}}}}' for a literal brace"
                )));
            }
            c => out.push(c),
        }
    }
    if !unknown.is_empty() {
        let known: Vec<&str> = fields.keys().map(String::as_str).collect();
        return Err(MailError::Template(format!(
            "unknown placeholder(s) {}; known: {}",
            unknown
                .iter()
                .map(|u| format!("{{{u}}}"))
                .collect::<Vec<_>>()
                .join(", "),
            known.join(", ")
        )));
    }
    Ok(out)
}

/// The fields a welcome template can use, from a directory user. Missing values are
/// empty strings (a placeholder that exists never fails).
pub fn welcome_fields(user: &User) -> BTreeMap<String, String> {
    let name = user.name.clone().unwrap_or_default();
    let org = user
        .organizations
        .as_ref()
        .and_then(|o| {
            o.iter()
                .find(|o| o.primary == Some(true))
                .or_else(|| o.first())
        })
        .cloned();
    let mut f = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        f.insert(k.to_string(), v.unwrap_or_default());
    };
    put("given_name", name.given_name.clone());
    put("family_name", name.family_name.clone());
    put(
        "full_name",
        name.full_name.clone().or_else(|| {
            let s = format!(
                "{} {}",
                name.given_name.as_deref().unwrap_or(""),
                name.family_name.as_deref().unwrap_or("")
            );
            Some(s.trim().to_string())
        }),
    );
    put("email", user.primary_email.clone());
    put("org_unit", user.org_unit_path.clone());
    put("title", org.as_ref().and_then(|o| o.title.clone()));
    put(
        "department",
        org.as_ref().and_then(|o| o.department.clone()),
    );
    put("company", org.as_ref().and_then(|o| o.name.clone()));
    f
}

/// The placeholders a welcome template may use (see [`welcome_fields`]).
pub const WELCOME_FIELDS: &[&str] = &[
    "given_name",
    "family_name",
    "full_name",
    "email",
    "org_unit",
    "title",
    "department",
    "company",
];

/// A loaded welcome template: subject and body, checked against [`WELCOME_FIELDS`]
/// when loaded, so a typo stops the job at start-up rather than at the first new hire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WelcomeTemplate {
    pub subject: String,
    pub body: String,
}

impl WelcomeTemplate {
    /// From `[mail.welcome]`: None when disabled. The subject defaults to
    /// "Welcome, {given_name}!".
    pub fn from_config(
        config: &crate::config::WelcomeConfig,
    ) -> Result<Option<WelcomeTemplate>, MailError> {
        if !config.enabled {
            return Ok(None);
        }
        let path = config.template_file.as_ref().ok_or_else(|| {
            MailError::Template(
                "[mail.welcome] enabled = true needs template_file (the body, with \
                 {given_name}, {email}, … placeholders)"
                    .into(),
            )
        })?;
        let body = std::fs::read_to_string(path)
            .map_err(|e| MailError::Template(format!("cannot read {} ({e})", path.display())))?;
        let subject = config
            .subject
            .clone()
            .unwrap_or_else(|| "Welcome, {given_name}!".into());
        let probe: BTreeMap<String, String> = WELCOME_FIELDS
            .iter()
            .map(|f| (f.to_string(), String::new()))
            .collect();
        render_template(&subject, &probe)
            .map_err(|e| MailError::Template(format!("[mail.welcome] subject: {e}")))?;
        render_template(&body, &probe)
            .map_err(|e| MailError::Template(format!("{}: {e}", path.display())))?;
        Ok(Some(WelcomeTemplate { subject, body }))
    }

    /// The message for `user`, sent from `from`.
    pub fn render(&self, from: &str, user: &User) -> Result<OutgoingMail, MailError> {
        welcome_mail(from, user, &self.subject, &self.body)
    }
}

/// A welcome message for `user` from `from`, rendered from `template` (subject and body
/// may both use placeholders).
pub fn welcome_mail(
    from: &str,
    user: &User,
    subject_template: &str,
    body_template: &str,
) -> Result<OutgoingMail, MailError> {
    let fields = welcome_fields(user);
    let to = user
        .primary_email
        .clone()
        .ok_or_else(|| MailError::Invalid("the new user has no primary email".into()))?;
    Ok(OutgoingMail {
        from: Some(from.to_string()),
        to: vec![to],
        subject: render_template(subject_template, &fields)?,
        text: render_template(body_template, &fields)?,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{MessageParser, MimeHeaders as _};

    #[test]
    fn a_device_is_refused_before_a_byte_is_read() {
        for path in ["/dev/zero", "/dev/urandom"] {
            let e = Attachment::from_path(Path::new(path))
                .unwrap_err()
                .to_string();
            assert!(e.contains("not a regular file"), "{path}: {e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let e = Attachment::from_path(dir.path()).unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
    }

    #[test]
    fn a_huge_attachment_is_refused_from_its_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        // Sparse: 3 GB of metadata, no data on disk. Reading it would take 3 GB of memory.
        std::fs::File::create(&path)
            .unwrap()
            .set_len(3 * 1024 * 1024 * 1024)
            .unwrap();
        let e = Attachment::from_paths(&[&path]).unwrap_err();
        assert!(matches!(e, MailError::TooLarge { .. }), "{e}");
        let e = Attachment::from_path(&path).unwrap_err().to_string();
        assert!(e.contains("3221225472 bytes"), "{e}");
        // Several attachments that fit one by one but not together.
        let a = dir.path().join("a.bin");
        std::fs::File::create(&a)
            .unwrap()
            .set_len(20 * 1024 * 1024)
            .unwrap();
        let e = Attachment::from_paths(&[&a, &a]).unwrap_err();
        assert!(matches!(e, MailError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn comma_separated_recipients_are_counted_one_by_one() {
        let m = OutgoingMail {
            to: vec!["a@example.com,b@example.com, c@example.com".into()],
            cc: vec!["\"Doe, Jane\" <jane@example.com>".into()],
            ..OutgoingMail::default()
        };
        assert_eq!(m.recipient_count(), 4);
    }

    #[test]
    fn malformed_domains_and_dot_strings_are_refused() {
        for bad in [
            "a@-example..com",
            "a@example..com",
            "a@-example.com",
            "a@example-.com",
            "a@.example.com",
            "a@example.com.",
            "a@exa_mple.com",
            ".a@example.com",
            "a..b@example.com",
            "a.@example.com",
        ] {
            assert!(parse_mailbox(bad).is_err(), "{bad} was accepted");
        }
        for good in [
            "a@example.com",
            "a.b+tag@sub.ex-ample.com",
            "x@xn--bcher-kva.example",
        ] {
            assert!(parse_mailbox(good).is_ok(), "{good} was refused");
        }
    }

    fn sample() -> OutgoingMail {
        OutgoingMail {
            from: Some("Ada Lovelace <ada@example.com>".into()),
            to: vec!["Ελένη Παπαδοπούλου <eleni@example.com>, bob@example.com".into()],
            cc: vec!["carol@example.com".into()],
            bcc: vec!["dave@example.com".into()],
            subject: "Καλημέρα — résumé ✓ 日本語".into(),
            text: "Γεια σου,\nline two\n".into(),
            html: None,
            attachments: vec![
                Attachment {
                    filename: "report.pdf".into(),
                    content_type: "application/pdf".into(),
                    data: (0..=255u8).cycle().take(10_000).collect(),
                },
                Attachment {
                    filename: "σημειώσεις.txt".into(),
                    content_type: "text/plain".into(),
                    data: "plain\nlines\n".as_bytes().to_vec(),
                },
            ],
        }
    }

    #[test]
    fn mime_round_trips_through_a_parser() {
        let raw = build_mime(&sample()).unwrap();
        assert!(raw.is_ascii(), "headers and bodies must be 7-bit encoded");
        let msg = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(msg.subject(), Some("Καλημέρα — résumé ✓ 日本語"));
        let to: Vec<_> = msg
            .to()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a.name().map(str::to_string),
                    a.address().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            to,
            [
                (
                    Some("Ελένη Παπαδοπούλου".into()),
                    "eleni@example.com".into()
                ),
                (None, "bob@example.com".into())
            ]
        );
        assert_eq!(
            msg.cc().unwrap().first().unwrap().address(),
            Some("carol@example.com")
        );
        assert_eq!(
            msg.bcc().unwrap().first().unwrap().address(),
            Some("dave@example.com")
        );
        assert_eq!(
            msg.from().unwrap().first().unwrap().name(),
            Some("Ada Lovelace")
        );
        assert_eq!(
            msg.body_text(0).unwrap().replace("\r\n", "\n"),
            "Γεια σου,\nline two\n"
        );
        assert_eq!(msg.attachment_count(), 2);
        let a0 = msg.attachment(0).unwrap();
        assert_eq!(a0.attachment_name(), Some("report.pdf"));
        assert_eq!(a0.content_type().unwrap().ctype(), "application");
        assert_eq!(a0.contents(), sample().attachments[0].data.as_slice());
        let a1 = msg.attachment(1).unwrap();
        assert_eq!(a1.attachment_name(), Some("σημειώσεις.txt"));
        assert_eq!(a1.contents(), b"plain\nlines\n");
    }

    #[test]
    fn html_makes_multipart_alternative() {
        let mut m = sample();
        m.attachments.clear();
        m.html = Some("<p>Γεια</p>".into());
        let raw = build_mime(&m).unwrap();
        let msg = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(
            msg.content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or(""))),
            Some("multipart/alternative".into())
        );
        assert_eq!(msg.body_html(0).as_deref(), Some("<p>Γεια</p>"));
        assert!(msg.body_text(0).unwrap().contains("line two"));
    }

    #[test]
    fn attachment_type_is_guessed() {
        let dir = tempfile::tempdir().unwrap();
        for (name, ty) in [
            ("a.pdf", "application/pdf"),
            ("b.png", "image/png"),
            ("c.csv", "text/csv"),
            ("d.unknownext", "application/octet-stream"),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, b"x").unwrap();
            assert_eq!(
                Attachment::from_path(&p).unwrap().content_type,
                ty,
                "{name}"
            );
        }
        let e = Attachment::from_path(&dir.path().join("missing.bin")).unwrap_err();
        assert!(e.to_string().contains("missing.bin"), "{e}");
    }

    #[test]
    fn limits_are_checked_up_front() {
        let mut m = sample();
        m.bcc = (0..99).map(|i| format!("u{i}@example.com")).collect();
        let e = build_mime(&m).unwrap_err();
        assert!(
            matches!(e, MailError::TooManyRecipients { count: 102 }),
            "{e}"
        );
        assert!(e.to_string().contains("at most 100"));

        let mut big = sample();
        big.attachments = vec![Attachment {
            filename: "big.bin".into(),
            content_type: "application/octet-stream".into(),
            data: vec![7u8; 27 * 1024 * 1024], // ~36.5 MB after base64
        }];
        let e = build_mime(&big).unwrap_err();
        assert!(matches!(e, MailError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("35 MiB"), "{e}");

        assert_eq!(send_path(SIMPLE_SEND_MAX_BYTES), SendPath::Raw);
        assert_eq!(send_path(SIMPLE_SEND_MAX_BYTES + 1), SendPath::Upload);
    }

    #[test]
    fn bad_addresses_are_named() {
        for bad in [
            "nobody",
            "a b@example.com",
            "@example.com",
            "x@",
            "a@@b.com",
        ] {
            let e = parse_mailbox(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
        let mut m = sample();
        m.to = vec![];
        m.cc = vec![];
        m.bcc = vec![];
        assert!(
            build_mime(&m)
                .unwrap_err()
                .to_string()
                .contains("no recipients")
        );
        assert_eq!(
            parse_mailbox("\"Doe, Jane\" <jane@example.com>").unwrap(),
            Mailbox {
                name: Some("Doe, Jane".into()),
                email: "jane@example.com".into()
            }
        );
        assert_eq!(
            parse_address_list(&["\"Doe, Jane\" <jane@example.com>, x@example.com"])
                .unwrap()
                .len(),
            2
        );
    }

    fn fields() -> BTreeMap<String, String> {
        [("given_name", "Ada"), ("email", "ada@example.com")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn template_renders_and_escapes() {
        assert_eq!(
            render_template("Hello {given_name} <{email}> {{literal}} é", &fields()).unwrap(),
            "Hello Ada <ada@example.com> {literal} é"
        );
    }

    #[test]
    fn unknown_placeholders_are_named() {
        let e = render_template("Hi {given_nmae}, {team} {team}", &fields())
            .unwrap_err()
            .to_string();
        assert!(e.contains("{given_nmae}") && e.contains("{team}"), "{e}");
        assert!(e.contains("given_name"), "lists the known names: {e}");
        assert!(render_template("oops {", &fields()).is_err());
        assert!(render_template("oops }", &fields()).is_err());
        assert!(render_template("{not a name}", &fields()).is_err());
    }

    #[test]
    fn welcome_template_is_checked_when_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("welcome.txt");
        let mut cfg = crate::config::WelcomeConfig::default();
        assert_eq!(WelcomeTemplate::from_config(&cfg).unwrap(), None);
        cfg.enabled = true;
        let e = WelcomeTemplate::from_config(&cfg).unwrap_err().to_string();
        assert!(e.contains("template_file"), "{e}");
        cfg.template_file = Some(file.clone());
        std::fs::write(&file, "Hi {given_name}, welcome to {departmnet}").unwrap();
        let e = WelcomeTemplate::from_config(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("{departmnet}") && e.contains("welcome.txt"),
            "{e}"
        );
        std::fs::write(&file, "Hi {given_name} ({email})").unwrap();
        let t = WelcomeTemplate::from_config(&cfg).unwrap().unwrap();
        assert_eq!(t.subject, "Welcome, {given_name}!");
        let user: User = serde_json::from_value(serde_json::json!({
            "primaryEmail": "n@example.com", "name": {"givenName": "N"}
        }))
        .unwrap();
        let m = t.render("it@example.com", &user).unwrap();
        assert_eq!(
            (m.subject.as_str(), m.text.as_str()),
            ("Welcome, N!", "Hi N (n@example.com)")
        );
        for f in WELCOME_FIELDS {
            assert!(welcome_fields(&user).contains_key(*f), "{f}");
        }
    }

    #[test]
    fn welcome_mail_uses_directory_fields() {
        let user: User = serde_json::from_value(serde_json::json!({
            "primaryEmail": "new@example.com",
            "name": {"givenName": "Νίκος", "familyName": "Ito"},
            "orgUnitPath": "/Sales",
            "organizations": [{"title": "Rep", "department": "Sales", "primary": true}]
        }))
        .unwrap();
        let m = welcome_mail(
            "it@example.com",
            &user,
            "Welcome, {given_name}",
            "{full_name} ({email}) joins {org_unit} as {title}.",
        )
        .unwrap();
        assert_eq!(m.to, ["new@example.com"]);
        assert_eq!(m.subject, "Welcome, Νίκος");
        assert_eq!(m.text, "Νίκος Ito (new@example.com) joins /Sales as Rep.");
        let raw = build_mime(&m).unwrap();
        let parsed = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(parsed.subject(), Some("Welcome, Νίκος"));
    }
}
