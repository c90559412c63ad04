//! The message itself: attachments read within the size limit, the RFC 5322 bytes built
//! with mail-builder, the recipient and size limits checked before any call.

use std::path::Path;

use super::address::{Mailbox, parse_address_list, parse_mailbox, split_addresses};
use super::{MAX_MESSAGE_BYTES, MAX_RECIPIENTS, MailError};

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
