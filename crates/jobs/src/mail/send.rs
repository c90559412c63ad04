//! Sending built messages through Gmail: JSON `raw` or the upload endpoint by size,
//! drafts, and the run reports the jobs mail. Sends are never retried.

use orgsync_client::GoogleClient;
use orgsync_client::gmail::Upload;
use serde::Serialize;

use super::address::parse_mailbox;
use super::compose::{OutgoingMail, build_mime, check_limits};
use super::{MailError, SIMPLE_SEND_MAX_BYTES};

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
