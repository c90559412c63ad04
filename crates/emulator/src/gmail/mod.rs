//! Gmail v1: `messages.send` (JSON `raw` and the `/upload/` endpoint, `uploadType=media`
//! and `multipart`), `drafts.create|get|list|send|delete`, `messages.list|get|modify`,
//! `messages.attachments.get`, `labels.list|get|create|patch|update|delete` (see
//! [`labels`]) and `getProfile`, over per-user mailboxes.
//!
//! Each user's mailbox keeps the exact bytes of every message (so `format=raw` is
//! byte-exact) plus the few decoded fields that searching needs; `format=full` parses
//! the bytes again on each read (see [`mime`]). Sending stores the sender's copy with
//! `SENT` and delivers a copy, `Bcc` removed, with `INBOX`+`UNREAD` to every recipient
//! who is a user of the emulated domain (found by primary address or alias), so tests
//! can read mail back from the recipient's side. Mail to anyone else leaves the
//! emulated world and is only kept in the sender's `SENT`.
//!
//! What Gmail does and the emulator copies
//! (<https://developers.google.com/workspace/gmail/api/guides/sending>; the `gmail.v1.json`
//! discovery document for paths, parameters and scopes):
//! - `userId` is `me` or the caller's own address (an alias counts); any other user is
//!   403 "Delegation denied for …", since a token only ever acts as its own subject.
//! - The sender is always the authenticated user: a missing `From` is added, a `From`
//!   the user cannot send as (not their primary address or an alias) is rewritten to
//!   their primary address, keeping the display name. `Date` and `Message-ID` are added
//!   when missing. Nothing else in the message is touched.
//! - No recipient in To/Cc/Bcc: 400 `invalidArgument` "Recipient address required";
//!   an unparsable address: 400 "Invalid To header" (or Cc/Bcc).
//! - Size: uploads carry at most 36,700,160 bytes (discovery `maxSize`, 35 MiB), else
//!   413 `uploadTooLarge`. The JSON `raw` form is for messages up to 5 MiB (the
//!   simple-upload size of the uploads guide; larger JSON sends fail at Google's front
//!   end with 413 Request Entity Too Large, per third-party reports): above that the
//!   emulator answers 413 naming the `/upload/` endpoint. A request without `raw` and
//!   not on `/upload/`: 400 "'raw' RFC822 payload message string or uploading message via /upload/* URL
//!   required" (Google's wording).
//! - Sending limits (Workspace): at most 100 recipients per message (400 here; Google's
//!   exact error is undocumented) and 2,000 messages per user per rolling 24 h (429
//!   `rateLimitExceeded` "User-rate limit exceeded" with `Retry-After`). Both settable
//!   through [`GmailState::settings`] for tests.
//! - A token with only `gmail.metadata` may not ask for `format=full|raw` nor pass `q`
//!   (403, Google's messages).
//! - `uploadType=resumable` is not implemented (400 saying so); orgsync does not use it.

mod labels;
mod mime;
mod search;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header::CONTENT_TYPE};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::{Api, ApiError};
use crate::query::Params;
use crate::state::Emulator;

/// Largest message `messages.send`/`drafts.*` accept through `/upload/` (35 MiB).
pub const MAX_MESSAGE_BYTES: usize = 36_700_160;
/// Largest message accepted in the JSON `raw` form (the simple-upload size, 5 MiB).
pub const MAX_RAW_JSON_BYTES: usize = 5 * 1024 * 1024;
/// `messages.list`/`drafts.list` page size: default and maximum.
pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 500;

const MAIL: &str = "https://mail.google.com/";
const G: &str = "https://www.googleapis.com/auth/gmail.";
const DAY_MS: i64 = 24 * 3600 * 1000;

fn scopes(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            if n.is_empty() {
                MAIL.to_string()
            } else {
                format!("{G}{n}")
            }
        })
        .collect()
}

/// Scopes per method, from the discovery document (`""` = `https://mail.google.com/`).
const SEND: &[&str] = &[
    "",
    "addons.current.action.compose",
    "compose",
    "modify",
    "send",
];
const DRAFT_WRITE: &[&str] = &["", "addons.current.action.compose", "compose", "modify"];
const DRAFT_READ: &[&str] = &["", "compose", "modify", "readonly"];
const LIST: &[&str] = &["", "metadata", "modify", "readonly"];
const GET: &[&str] = &[
    "",
    "addons.current.message.action",
    "addons.current.message.metadata",
    "addons.current.message.readonly",
    "metadata",
    "modify",
    "readonly",
];
const ATTACHMENT: &[&str] = &[
    "",
    "addons.current.message.action",
    "addons.current.message.readonly",
    "modify",
    "readonly",
];
const PROFILE: &[&str] = &["", "compose", "metadata", "modify", "readonly"];

fn require(caller: &Caller, names: &[&str]) -> Result<(), ApiError> {
    let wanted = scopes(names);
    let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
    caller.require_any_scope(&refs)
}

/// True when the token reads mail only through `gmail.metadata`.
fn metadata_only(caller: &Caller) -> bool {
    let full_read = scopes(&[
        "",
        "readonly",
        "modify",
        "addons.current.message.action",
        "addons.current.message.readonly",
        "compose",
    ]);
    !caller.scopes.iter().any(|s| full_read.contains(s))
}

/// Settable limits (tests lower them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GmailSettings {
    /// Messages a user may send per rolling 24 h.
    pub daily_send_limit: usize,
    /// Recipients (To + Cc + Bcc) per message.
    pub max_recipients: usize,
}

impl Default for GmailSettings {
    fn default() -> Self {
        GmailSettings {
            daily_send_limit: 2000,
            max_recipients: 100,
        }
    }
}

/// All mailboxes, by lower-cased primary address.
#[derive(Default, Serialize, Deserialize)]
pub struct GmailState {
    #[serde(default)]
    mailboxes: BTreeMap<String, Mailbox>,
    #[serde(default)]
    next_id: u64,
    #[serde(default)]
    pub settings: GmailSettings,
}

#[derive(Default, Serialize, Deserialize)]
struct Mailbox {
    messages: BTreeMap<String, StoredMessage>,
    /// Draft id → message id.
    drafts: BTreeMap<String, String>,
    history_id: u64,
    /// When this user's recent sends happened (rolling 24 h window).
    sends: VecDeque<i64>,
    /// The user's own labels in creation order (system labels are fixed, see [`labels`]).
    #[serde(default)]
    labels: Vec<labels::UserLabel>,
    /// The number of the last user label id handed out (`Label_<n>`); never reused.
    #[serde(default)]
    last_label: u64,
}

/// One message of one mailbox, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredMessage {
    pub id: String,
    pub thread_id: String,
    pub label_ids: Vec<String>,
    /// Unix milliseconds (emulator clock).
    pub internal_date: i64,
    pub history_id: u64,
    /// The exact RFC 2822 bytes.
    #[serde(with = "b64")]
    pub raw: Vec<u8>,
    pub summary: Summary,
}

/// Decoded header values and the snippet, kept for searching and listing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub from: String,
    pub to: String,
    pub cc: String,
    pub bcc: String,
    pub subject: String,
    pub snippet: String,
    pub message_id: String,
    pub references: Vec<String>,
    pub has_attachment: bool,
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

impl GmailState {
    /// Every message in `user`'s mailbox (newest first), for tests and the demo.
    pub fn messages(&self, user: &str) -> Vec<StoredMessage> {
        let mut v: Vec<StoredMessage> = self
            .mailboxes
            .get(&user.trim().to_ascii_lowercase())
            .map(|m| m.messages.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| (b.internal_date, &b.id).cmp(&(a.internal_date, &a.id)));
        v
    }

    fn new_id(&mut self, now_ms: i64) -> String {
        self.next_id += 1;
        format!(
            "{:016x}",
            ((now_ms.max(0) as u64) << 20).wrapping_add(self.next_id)
        )
    }

    fn mailbox(&mut self, user: &str) -> &mut Mailbox {
        self.mailboxes.entry(user.to_string()).or_default()
    }
}

fn summarize(raw: &[u8]) -> Summary {
    let Some(m) = mime::parse(raw) else {
        return Summary::default();
    };
    let headers = mime::headers(raw, &m);
    let get = |name: &str| {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut references: Vec<String> = Vec::new();
    for h in ["In-Reply-To", "References"] {
        references.extend(
            get(h)
                .split_whitespace()
                .filter(|s| s.starts_with('<'))
                .map(str::to_string),
        );
    }
    Summary {
        from: get("From"),
        to: get("To"),
        cc: get("Cc"),
        bcc: get("Bcc"),
        subject: get("Subject"),
        snippet: mime::snippet(&m),
        message_id: get("Message-ID"),
        references,
        has_attachment: m.attachment_count() > 0,
    }
}

// ---------------------------------------------------------------------------------
// Errors

fn gmail_error(status: StatusCode, reason: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(Api::Gmail, status, reason, message)
}

fn invalid(message: impl Into<String>) -> ApiError {
    gmail_error(StatusCode::BAD_REQUEST, "invalidArgument", message)
}

fn not_found() -> ApiError {
    ApiError::not_found(Api::Gmail, "Requested entity was not found.")
}

fn raw_required() -> ApiError {
    gmail_error(
        StatusCode::BAD_REQUEST,
        "badRequest",
        "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
    )
}

// ---------------------------------------------------------------------------------
// Who is calling, and which mailbox `userId` names

/// The caller's mailbox (lower-cased primary address); 403 when `user_id` is another user.
fn mailbox_of(emu: &Emulator, caller: &Caller, user_id: &str) -> Result<String, ApiError> {
    let me = caller.me()?;
    let dir = emu.directory.read();
    let primary_of = |addr: &str| {
        dir.find_subject(addr)
            .map(|s| s.primary_email.to_ascii_lowercase())
            .unwrap_or_else(|| addr.trim().to_ascii_lowercase())
    };
    let mine = primary_of(me);
    if user_id != "me" && primary_of(user_id) != mine {
        return Err(ApiError::forbidden(
            Api::Gmail,
            format!("Delegation denied for {user_id}"),
        ));
    }
    Ok(mine)
}

// ---------------------------------------------------------------------------------
// Request bodies: JSON `raw` or the upload endpoint

/// Decode `raw`: base64url as Google documents, also accepting standard base64 and
/// missing padding (Google's decoder is lenient the same way).
fn decode_raw(v: &Value, field: &str) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(v) = v.get("raw") else {
        return Ok(None);
    };
    if v.is_null() {
        return Ok(None);
    }
    let s = v.as_str().ok_or_else(|| {
        invalid(format!(
            "Invalid value at '{field}' (TYPE_BYTES), expected a base64url string"
        ))
    })?;
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    if cleaned.is_empty() {
        return Ok(None);
    }
    URL_SAFE_NO_PAD.decode(cleaned).map(Some).map_err(|e| {
        invalid(format!(
            "Invalid value at '{field}' (TYPE_BYTES), Base64 decoding failed: {e}"
        ))
    })
}

fn json_body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(Api::Gmail, format!("Invalid JSON payload received. {e}"))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            Api::Gmail,
            "Invalid JSON payload received. Expected an object.",
        ));
    }
    Ok(v)
}

fn check_json_size(raw: &[u8]) -> Result<(), ApiError> {
    if raw.len() > MAX_RAW_JSON_BYTES {
        return Err(gmail_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "uploadTooLarge",
            format!(
                "Request Entity Too Large: the message is {} bytes; the JSON 'raw' form carries at most {MAX_RAW_JSON_BYTES} bytes. Send larger messages through the /upload/gmail/v1/... endpoint (uploadType=multipart or media).",
                raw.len()
            ),
        ));
    }
    Ok(())
}

fn check_upload_size(raw: &[u8]) -> Result<(), ApiError> {
    if raw.len() > MAX_MESSAGE_BYTES {
        return Err(gmail_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "uploadTooLarge",
            format!(
                "Media larger than the maximum upload size: the message is {} bytes, at most {MAX_MESSAGE_BYTES} are allowed.",
                raw.len()
            ),
        ));
    }
    Ok(())
}

fn media_type_ok(ct: &str) -> Result<(), ApiError> {
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence.starts_with("message/") {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            Api::Gmail,
            format!("Media type '{essence}' is not supported. Valid media types: [message/*]"),
        ))
    }
}

/// `(metadata JSON, message bytes)` of an `/upload/` request.
fn upload_body(
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Value, Vec<u8>), ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (meta, raw) = match params
        .get("uploadType")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("media") => {
            if !content_type.is_empty() {
                media_type_ok(&content_type)?;
            }
            (json!({}), body.to_vec())
        }
        Some("multipart") => {
            let boundary = boundary_of(&content_type).ok_or_else(|| {
                ApiError::bad_request(
                    Api::Gmail,
                    format!("uploadType=multipart needs Content-Type multipart/related with a boundary, got '{content_type}'"),
                )
            })?;
            let parts = split_multipart(body, &boundary).ok_or_else(|| {
                ApiError::bad_request(
                    Api::Gmail,
                    "Malformed multipart/related body: no closing boundary found",
                )
            })?;
            if parts.len() != 2 {
                return Err(ApiError::bad_request(
                    Api::Gmail,
                    format!(
                        "A multipart upload must have exactly two parts (JSON metadata, then the message); got {}",
                        parts.len()
                    ),
                ));
            }
            let (h0, c0) = &parts[0];
            if !h0.to_ascii_lowercase().contains("application/json") {
                return Err(ApiError::bad_request(
                    Api::Gmail,
                    "The first part of a multipart upload must be the JSON metadata (Content-Type: application/json)",
                ));
            }
            let (h1, c1) = &parts[1];
            let ct1 = h1
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.trim()
                        .eq_ignore_ascii_case("content-type")
                        .then(|| v.trim().to_string())
                })
                .unwrap_or_default();
            if !ct1.is_empty() {
                media_type_ok(&ct1)?;
            }
            (json_body(c0)?, c1.to_vec())
        }
        Some("resumable") => {
            return Err(ApiError::bad_request(
                Api::Gmail,
                "The emulator does not implement uploadType=resumable; use uploadType=media or uploadType=multipart.",
            ));
        }
        Some(other) => {
            return Err(ApiError::bad_request(
                Api::Gmail,
                format!("Invalid uploadType '{other}': use media or multipart"),
            )
            .with_location("parameter", "uploadType"));
        }
        None => {
            return Err(ApiError::required(Api::Gmail, "uploadType")
                .with_location("parameter", "uploadType"));
        }
    };
    check_upload_size(&raw)?;
    Ok((meta, raw))
}

fn boundary_of(content_type: &str) -> Option<String> {
    let mut it = content_type.split(';');
    let essence = it.next()?.trim().to_ascii_lowercase();
    if !essence.starts_with("multipart/") {
        return None;
    }
    it.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
    .filter(|b| !b.is_empty())
}

/// Parts of a multipart body as `(header block, content)`.
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Option<Vec<(String, &'a [u8])>> {
    let delim = format!("--{boundary}").into_bytes();
    let find = |from: usize| -> Option<usize> {
        let mut i = from;
        while i + delim.len() <= body.len() {
            let at_line_start = i == 0 || body[i - 1] == b'\n';
            if at_line_start && body[i..].starts_with(&delim) {
                return Some(i);
            }
            i += 1;
        }
        None
    };
    let mut parts = Vec::new();
    let mut pos = find(0)?;
    loop {
        let after = pos + delim.len();
        if body[after..].starts_with(b"--") {
            return Some(parts);
        }
        let line_end = body[after..].iter().position(|&b| b == b'\n')? + after + 1;
        let next = find(line_end)?;
        // The content ends before the line break that precedes the next delimiter.
        let mut end = next;
        if end > line_end && body[end - 1] == b'\n' {
            end -= 1;
            if end > line_end && body[end - 1] == b'\r' {
                end -= 1;
            }
        }
        let part = &body[line_end..end.max(line_end)];
        let (head, content) = match find_subslice(part, b"\r\n\r\n") {
            Some(i) => (&part[..i], &part[i + 4..]),
            None => match find_subslice(part, b"\n\n") {
                Some(i) => (&part[..i], &part[i + 2..]),
                None if part.starts_with(b"\r\n") => (&part[..0], &part[2..]),
                None => (part, &part[part.len()..]),
            },
        };
        parts.push((String::from_utf8_lossy(head).into_owned(), content));
        pos = next;
    }
}

fn find_subslice(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

// ---------------------------------------------------------------------------------
// Sending

/// A message ready to store: the sender's bytes and where it goes.
struct Outgoing {
    raw: Vec<u8>,
    /// Primary addresses of recipients who are users of the emulated domain.
    local: BTreeSet<String>,
}

fn prepare_outgoing(emu: &Emulator, sender: &str, raw: Vec<u8>) -> Result<Outgoing, ApiError> {
    let settings = emu.gmail.read().settings.clone();
    let parsed = mime::parse(&raw).ok_or_else(|| {
        invalid("Invalid RFC 2822 message: no header section found (the message must start with headers such as To: and Subject:).")
    })?;
    let mut recipients = Vec::new();
    for h in ["To", "Cc", "Bcc"] {
        match mime::addresses(&parsed, h) {
            Ok(a) => recipients.extend(a),
            Err(_) => return Err(invalid(format!("Invalid {h} header"))),
        }
    }
    if recipients.is_empty() {
        return Err(invalid("Recipient address required"));
    }
    if recipients.len() > settings.max_recipients {
        return Err(invalid(format!(
            "Too many recipients: the message has {}, Gmail accepts at most {} per message (To, Cc and Bcc together).",
            recipients.len(),
            settings.max_recipients
        )));
    }
    let from = mime::addresses(&parsed, "From").unwrap_or_default();
    let from_name = mime::from_name(&parsed);
    drop(parsed);

    let dir = emu.directory.read();
    let primary_of = |addr: &str| {
        dir.find_subject(addr)
            .map(|s| s.primary_email.to_ascii_lowercase())
    };
    let mut raw = raw;
    let from_ok =
        from.len() == 1 && (from[0] == sender || primary_of(&from[0]).as_deref() == Some(sender));
    if !from_ok {
        raw = mime::set_header(&raw, "From", &mime::mailbox(from_name.as_deref(), sender));
    }
    if !mime::has_header(&raw, "Date") {
        raw = mime::set_header(&raw, "Date", &emu.clock.now().to_rfc2822());
    }
    if !mime::has_header(&raw, "Message-ID") {
        let id = format!("<{}@mail.gmail.com>", uuid::Uuid::new_v4().simple());
        raw = mime::set_header(&raw, "Message-ID", &id);
    }
    let local = recipients
        .iter()
        .filter_map(|r| primary_of(r))
        .collect::<BTreeSet<_>>();
    Ok(Outgoing { raw, local })
}

/// The thread a new message joins in `mb`: an existing thread it replies to.
fn thread_for(mb: &Mailbox, summary: &Summary) -> Option<String> {
    if summary.references.is_empty() {
        return None;
    }
    mb.messages
        .values()
        .find(|m| {
            !m.summary.message_id.is_empty() && summary.references.contains(&m.summary.message_id)
        })
        .map(|m| m.thread_id.clone())
}

/// Store the sender's copy (`SENT`) and deliver; returns the sender's copy.
fn deliver(
    emu: &Emulator,
    sender: &str,
    out: Outgoing,
    thread_id: Option<String>,
) -> Result<StoredMessage, ApiError> {
    let now = emu.clock.now_ms();
    let mut st = emu.gmail.write();
    let limit = st.settings.daily_send_limit;
    {
        let mb = st.mailbox(sender);
        while mb.sends.front().is_some_and(|&t| t <= now - DAY_MS) {
            mb.sends.pop_front();
        }
        if mb.sends.len() >= limit {
            let reopens = mb.sends.front().copied().unwrap_or(now) + DAY_MS;
            let at = chrono::DateTime::from_timestamp_millis(reopens)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default();
            return Err(ApiError::rate_limited(
                Api::Gmail,
                ((reopens - now).max(1000) / 1000) as u64,
                format!("User-rate limit exceeded.  Retry after {at} (Mail sending)"),
            ));
        }
        if let Some(t) = &thread_id
            && !mb.messages.values().any(|m| &m.thread_id == t)
        {
            return Err(not_found());
        }
    }
    let summary = summarize(&out.raw);
    let id = st.new_id(now);
    let mb = st.mailbox(sender);
    mb.sends.push_back(now);
    mb.history_id += 1;
    let mut labels = vec!["SENT".to_string()];
    if out.local.contains(sender) {
        labels.extend(["INBOX".to_string(), "UNREAD".to_string()]);
    }
    let thread = thread_id
        .or_else(|| thread_for(mb, &summary))
        .unwrap_or_else(|| id.clone());
    let sent = StoredMessage {
        id: id.clone(),
        thread_id: thread,
        label_ids: labels,
        internal_date: now,
        history_id: mb.history_id,
        raw: out.raw.clone(),
        summary,
    };
    mb.messages.insert(id, sent.clone());

    let delivered = mime::remove_header(&out.raw, "Bcc");
    let delivered_summary = summarize(&delivered);
    for rcpt in out.local.iter().filter(|r| r.as_str() != sender) {
        let id = st.new_id(now);
        let mb = st.mailbox(rcpt);
        mb.history_id += 1;
        let thread = thread_for(mb, &delivered_summary).unwrap_or_else(|| id.clone());
        let copy = StoredMessage {
            id: id.clone(),
            thread_id: thread,
            label_ids: vec!["INBOX".into(), "UNREAD".into()],
            internal_date: now,
            history_id: mb.history_id,
            raw: delivered.clone(),
            summary: delivered_summary.clone(),
        };
        mb.messages.insert(id, copy);
    }
    Ok(sent)
}

fn short_json(m: &StoredMessage) -> Value {
    json!({"id": m.id, "threadId": m.thread_id, "labelIds": m.label_ids})
}

fn thread_param(meta: &Value) -> Option<String> {
    meta.get("threadId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

async fn send_core(
    emu: &Emulator,
    caller: &Caller,
    user_id: &str,
    meta: Value,
    raw: Vec<u8>,
) -> Result<Json<Value>, ApiError> {
    let sender = mailbox_of(emu, caller, user_id)?;
    let out = prepare_outgoing(emu, &sender, raw)?;
    let sent = deliver(emu, &sender, out, thread_param(&meta))?;
    Ok(Json(short_json(&sent)))
}

async fn messages_send(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    require(&caller, SEND)?;
    let meta = json_body(&body)?;
    let raw = decode_raw(&meta, "raw")?.ok_or_else(raw_required)?;
    check_json_size(&raw)?;
    send_core(&emu, &caller, &user_id, meta, raw).await
}

async fn messages_send_upload(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path(user_id): Path<String>,
    params: Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    require(&caller, SEND)?;
    let (meta, raw) = upload_body(&params, &headers, &body)?;
    send_core(&emu, &caller, &user_id, meta, raw).await
}

// ---------------------------------------------------------------------------------
// Drafts

fn draft_message_meta(meta: &Value) -> Value {
    meta.get("message").cloned().unwrap_or_else(|| json!({}))
}

fn create_draft(
    emu: &Emulator,
    user: &str,
    raw: Vec<u8>,
    thread_id: Option<String>,
) -> Result<Value, ApiError> {
    if mime::parse(&raw).is_none() {
        return Err(invalid(
            "Invalid RFC 2822 message: no header section found.",
        ));
    }
    let now = emu.clock.now_ms();
    let summary = summarize(&raw);
    let mut st = emu.gmail.write();
    if let Some(t) = &thread_id
        && !st
            .mailbox(user)
            .messages
            .values()
            .any(|m| &m.thread_id == t)
    {
        return Err(not_found());
    }
    let id = st.new_id(now);
    let draft_id = format!("r{}", 1_000_000_000_000_000u64 + st.next_id);
    let mb = st.mailbox(user);
    mb.history_id += 1;
    let thread = thread_id
        .or_else(|| thread_for(mb, &summary))
        .unwrap_or_else(|| id.clone());
    let m = StoredMessage {
        id: id.clone(),
        thread_id: thread,
        label_ids: vec!["DRAFT".into()],
        internal_date: now,
        history_id: mb.history_id,
        raw,
        summary,
    };
    let out = json!({"id": draft_id, "message": short_json(&m)});
    mb.messages.insert(id.clone(), m);
    mb.drafts.insert(draft_id, id);
    Ok(out)
}

async fn drafts_create(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    require(&caller, DRAFT_WRITE)?;
    let user = mailbox_of(&emu, &caller, &user_id)?;
    let meta = json_body(&body)?;
    let msg = draft_message_meta(&meta);
    let raw = decode_raw(&msg, "draft.message.raw")?.ok_or_else(raw_required)?;
    check_json_size(&raw)?;
    create_draft(&emu, &user, raw, thread_param(&msg)).map(Json)
}

async fn drafts_create_upload(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path(user_id): Path<String>,
    params: Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    require(&caller, DRAFT_WRITE)?;
    let user = mailbox_of(&emu, &caller, &user_id)?;
    let (meta, raw) = upload_body(&params, &headers, &body)?;
    create_draft(&emu, &user, raw, thread_param(&draft_message_meta(&meta))).map(Json)
}

async fn send_draft_core(
    emu: &Emulator,
    caller: &Caller,
    user_id: &str,
    meta: Value,
    new_raw: Option<Vec<u8>>,
) -> Result<Json<Value>, ApiError> {
    let user = mailbox_of(emu, caller, user_id)?;
    let draft_id = meta
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("Invalid draft: the draft 'id' is required."))?
        .to_string();
    let (message_id, raw, thread) = {
        let mut st = emu.gmail.write();
        let mb = st.mailbox(&user);
        let mid = mb.drafts.get(&draft_id).cloned().ok_or_else(not_found)?;
        let m = mb.messages.get(&mid).ok_or_else(not_found)?;
        (mid, m.raw.clone(), m.thread_id.clone())
    };
    let raw = new_raw.unwrap_or(raw);
    // Validate and send before the draft goes: a refused send leaves the draft intact.
    let out = prepare_outgoing(emu, &user, raw)?;
    let sent = deliver(emu, &user, out, Some(thread))?;
    let mut st = emu.gmail.write();
    let mb = st.mailbox(&user);
    mb.drafts.remove(&draft_id);
    mb.messages.remove(&message_id);
    mb.history_id += 1;
    Ok(Json(short_json(&sent)))
}

async fn drafts_send(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    require(&caller, DRAFT_WRITE)?;
    let meta = json_body(&body)?;
    let raw = decode_raw(&draft_message_meta(&meta), "draft.message.raw")?;
    if let Some(r) = &raw {
        check_json_size(r)?;
    }
    send_draft_core(&emu, &caller, &user_id, meta, raw).await
}

async fn drafts_send_upload(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path(user_id): Path<String>,
    params: Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    require(&caller, DRAFT_WRITE)?;
    let (meta, raw) = upload_body(&params, &headers, &body)?;
    send_draft_core(&emu, &caller, &user_id, meta, Some(raw)).await
}

async fn drafts_list(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path(user_id): Path<String>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    require(&caller, DRAFT_READ)?;
    let user = mailbox_of(&emu, &caller, &user_id)?;
    let max = params.int_in("maxResults", DEFAULT_PAGE, 1, MAX_PAGE)? as usize;
    let offset = page_offset(&params)?;
    let q = search::Query::parse(params.get("q").unwrap_or(""));
    let st = emu.gmail.read();
    let Some(mb) = st.mailboxes.get(&user) else {
        return Ok(Json(json!({"resultSizeEstimate": 0})));
    };
    let mut drafts: Vec<(&String, &StoredMessage)> = mb
        .drafts
        .iter()
        .filter_map(|(d, mid)| mb.messages.get(mid).map(|m| (d, m)))
        .filter(|(_, m)| q.matches(&searchable(m)))
        .collect();
    drafts.sort_by(|a, b| (b.1.internal_date, &b.1.id).cmp(&(a.1.internal_date, &a.1.id)));
    let items = drafts
        .iter()
        .map(|(d, m)| json!({"id": d, "message": {"id": m.id, "threadId": m.thread_id}}));
    Ok(Json(list_page("drafts", items, offset, max)))
}

async fn drafts_get(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path((user_id, draft_id)): Path<(String, String)>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    require(&caller, DRAFT_READ)?;
    let user = mailbox_of(&emu, &caller, &user_id)?;
    let format = format_param(&params, &caller)?;
    let st = emu.gmail.read();
    let mb = st.mailboxes.get(&user).ok_or_else(not_found)?;
    let mid = mb.drafts.get(&draft_id).ok_or_else(not_found)?;
    let m = mb.messages.get(mid).ok_or_else(not_found)?;
    Ok(Json(
        json!({"id": draft_id, "message": message_json(m, format, &[])}),
    ))
}

async fn drafts_delete(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path((user_id, draft_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    require(&caller, DRAFT_WRITE)?;
    let user = mailbox_of(&emu, &caller, &user_id)?;
    let mut st = emu.gmail.write();
    let mb = st.mailbox(&user);
    let mid = mb.drafts.remove(&draft_id).ok_or_else(not_found)?;
    mb.messages.remove(&mid);
    mb.history_id += 1;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------
// Reading

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Full,
    Raw,
    Metadata,
    Minimal,
}

fn format_param(params: &Params, caller: &Caller) -> Result<Format, ApiError> {
    let f = match params.one_of("format", &["full", "raw", "metadata", "minimal"])? {
        None | Some("full") => Format::Full,
        Some("raw") => Format::Raw,
        Some("metadata") => Format::Metadata,
        _ => Format::Minimal,
    };
    if matches!(f, Format::Full | Format::Raw) && metadata_only(caller) {
        let name = if f == Format::Full { "FULL" } else { "RAW" };
        return Err(ApiError::forbidden(
            Api::Gmail,
            format!("Metadata scope doesn't allow format {name}"),
        ));
    }
    Ok(f)
}

fn message_json(m: &StoredMessage, format: Format, metadata_headers: &[String]) -> Value {
    let mut out = json!({
        "id": m.id,
        "threadId": m.thread_id,
        "labelIds": m.label_ids,
        "snippet": m.summary.snippet,
        "sizeEstimate": m.raw.len(),
        "historyId": m.history_id.to_string(),
        "internalDate": m.internal_date.to_string(),
    });
    match format {
        Format::Minimal => {}
        Format::Raw => out["raw"] = json!(URL_SAFE.encode(&m.raw)),
        Format::Full | Format::Metadata => {
            if let Some(parsed) = mime::parse(&m.raw) {
                if format == Format::Full {
                    out["payload"] = mime::payload(&m.raw, &parsed, &m.id);
                } else {
                    let headers: Vec<(String, String)> = mime::headers(&m.raw, &parsed)
                        .into_iter()
                        .filter(|(n, _)| {
                            metadata_headers.is_empty()
                                || metadata_headers.iter().any(|h| h.eq_ignore_ascii_case(n))
                        })
                        .collect();
                    let full = mime::payload(&m.raw, &parsed, &m.id);
                    out["payload"] = json!({
                        "partId": "",
                        "mimeType": full["mimeType"],
                        "filename": "",
                        "headers": mime::header_json(&headers),
                        "body": {"size": 0},
                    });
                }
            }
        }
    }
    out
}

fn searchable(m: &StoredMessage) -> search::Searchable<'_> {
    search::Searchable {
        from: &m.summary.from,
        to: &m.summary.to,
        cc: &m.summary.cc,
        bcc: &m.summary.bcc,
        subject: &m.summary.subject,
        snippet: &m.summary.snippet,
        message_id: &m.summary.message_id,
        labels: &m.label_ids,
        has_attachment: m.summary.has_attachment,
    }
}

fn encode_page(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("o{offset}"))
}

fn page_offset(params: &Params) -> Result<usize, ApiError> {
    match params.get_nonempty("pageToken") {
        None => Ok(0),
        Some(t) => URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix('o').and_then(|n| n.parse().ok()))
            .ok_or_else(|| {
                ApiError::bad_request(Api::Gmail, "Invalid pageToken")
                    .with_location("parameter", "pageToken")
            }),
    }
}

async fn messages_list(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path(user_id): Path<String>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    require(&caller, LIST)?;
    let user = mailbox_of(&emu, &caller, &user_id)?;
    let max = params.int_in("maxResults", DEFAULT_PAGE, 1, MAX_PAGE)? as usize;
    let offset = page_offset(&params)?;
    let q_text = params.get("q").unwrap_or("");
    if !q_text.trim().is_empty() && metadata_only(&caller) {
        return Err(ApiError::forbidden(
            Api::Gmail,
            "Metadata scope does not support 'q' parameter",
        ));
    }
    let q = search::Query::parse(q_text);
    let labels = params.all("labelIds");
    let include_spam_trash = params.bool("includeSpamTrash")?.unwrap_or(false)
        || q.names_spam_or_trash()
        || labels
            .iter()
            .any(|l| l.eq_ignore_ascii_case("SPAM") || l.eq_ignore_ascii_case("TRASH"));
    let st = emu.gmail.read();
    let Some(mb) = st.mailboxes.get(&user) else {
        return Ok(Json(json!({"resultSizeEstimate": 0})));
    };
    let mut hits: Vec<&StoredMessage> = mb
        .messages
        .values()
        .filter(|m| include_spam_trash || !m.label_ids.iter().any(|l| l == "SPAM" || l == "TRASH"))
        .filter(|m| {
            labels
                .iter()
                .all(|l| m.label_ids.iter().any(|x| x.eq_ignore_ascii_case(l)))
        })
        .filter(|m| q.matches(&searchable(m)))
        .collect();
    hits.sort_by(|a, b| (b.internal_date, &b.id).cmp(&(a.internal_date, &a.id)));
    let items = hits
        .iter()
        .map(|m| json!({"id": m.id, "threadId": m.thread_id}));
    Ok(Json(list_page("messages", items, offset, max)))
}

async fn messages_get(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path((user_id, id)): Path<(String, String)>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    require(&caller, GET)?;
    let user = mailbox_of(&emu, &caller, &user_id)?;
    let format = format_param(&params, &caller)?;
    let st = emu.gmail.read();
    let m = st
        .mailboxes
        .get(&user)
        .and_then(|mb| mb.messages.get(&id))
        .ok_or_else(not_found)?;
    Ok(Json(message_json(
        m,
        format,
        &params.all("metadataHeaders"),
    )))
}

async fn attachments_get(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path((user_id, message_id, attachment_id)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    require(&caller, ATTACHMENT)?;
    let user = mailbox_of(&emu, &caller, &user_id)?;
    let raw = {
        let st = emu.gmail.read();
        st.mailboxes
            .get(&user)
            .and_then(|mb| mb.messages.get(&message_id))
            .ok_or_else(not_found)?
            .raw
            .clone()
    };
    let (mid, part_id) = mime::parse_attachment_id(&attachment_id)
        .filter(|(m, _)| *m == message_id)
        .ok_or_else(|| invalid("Invalid attachment token"))?;
    let parsed = mime::parse(&raw).ok_or_else(not_found)?;
    let data = mime::part_body(&parsed, &part_id).ok_or_else(not_found)?;
    debug_assert_eq!(mid, message_id);
    Ok(Json(json!({
        "attachmentId": attachment_id,
        "size": data.len(),
        "data": URL_SAFE.encode(&data),
    })))
}

async fn get_profile(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require(&caller, PROFILE)?;
    let user = mailbox_of(&emu, &caller, &user_id)?;
    let st = emu.gmail.read();
    let (messages, threads, history) = match st.mailboxes.get(&user) {
        Some(mb) => (
            mb.messages.len(),
            mb.messages
                .values()
                .map(|m| m.thread_id.as_str())
                .collect::<BTreeSet<_>>()
                .len(),
            mb.history_id,
        ),
        None => (0, 0, 0),
    };
    Ok(Json(json!({
        "emailAddress": user,
        "messagesTotal": messages,
        "threadsTotal": threads,
        "historyId": history.to_string(),
    })))
}

pub fn routes() -> Router<Arc<Emulator>> {
    Router::new()
        .route("/gmail/v1/users/{userId}/profile", get(get_profile))
        .route("/gmail/v1/users/{userId}/messages", get(messages_list))
        .route(
            "/gmail/v1/users/{userId}/messages/send",
            post(messages_send),
        )
        .route(
            "/upload/gmail/v1/users/{userId}/messages/send",
            post(messages_send_upload),
        )
        .route("/gmail/v1/users/{userId}/messages/{id}", get(messages_get))
        .route(
            "/gmail/v1/users/{userId}/messages/{id}/modify",
            post(labels::messages_modify),
        )
        .route(
            "/gmail/v1/users/{userId}/labels",
            get(labels::labels_list).post(labels::labels_create),
        )
        .route(
            "/gmail/v1/users/{userId}/labels/{id}",
            get(labels::labels_get)
                .patch(labels::labels_patch)
                .put(labels::labels_update)
                .delete(labels::labels_delete),
        )
        .route(
            "/gmail/v1/users/{userId}/messages/{messageId}/attachments/{id}",
            get(attachments_get),
        )
        .route(
            "/gmail/v1/users/{userId}/drafts",
            get(drafts_list).post(drafts_create),
        )
        .route(
            "/upload/gmail/v1/users/{userId}/drafts",
            post(drafts_create_upload),
        )
        .route("/gmail/v1/users/{userId}/drafts/send", post(drafts_send))
        .route(
            "/upload/gmail/v1/users/{userId}/drafts/send",
            post(drafts_send_upload),
        )
        .route(
            "/gmail/v1/users/{userId}/drafts/{id}",
            get(drafts_get).delete(drafts_delete),
        )
}

/// A Gmail list response over all matching `items` (in order): `resultSizeEstimate`, the
/// page `offset..offset + max` under `key` (absent when empty, as Gmail omits it) and
/// `nextPageToken` while more remain. Only the page's items are built.
fn list_page(
    key: &str,
    items: impl ExactSizeIterator<Item = Value>,
    offset: usize,
    max: usize,
) -> Value {
    let total = items.len();
    let page: Vec<Value> = items.skip(offset).take(max).collect();
    let mut out = json!({"resultSizeEstimate": total});
    if !page.is_empty() {
        out[key] = Value::Array(page);
    }
    if offset + max < total {
        out["nextPageToken"] = json!(encode_page(offset + max));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_related_splits_into_metadata_and_message() {
        let body = b"--XX\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{\"threadId\":\"t\"}\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: hi\r\n\r\nbody\r\n--XX--\r\n";
        let parts = split_multipart(body, "XX").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].1, b"{\"threadId\":\"t\"}");
        assert_eq!(parts[1].1, b"Subject: hi\r\n\r\nbody");
        assert!(split_multipart(b"--XX\r\nno end", "XX").is_none());
        assert_eq!(
            boundary_of("multipart/related; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
    }

    #[test]
    fn raw_accepts_base64url_standard_and_unpadded() {
        let want = b"Subject: ?>?\r\n\r\n\xff".to_vec();
        for enc in [
            URL_SAFE.encode(&want),
            URL_SAFE_NO_PAD.encode(&want),
            base64::engine::general_purpose::STANDARD.encode(&want),
        ] {
            assert_eq!(
                decode_raw(&json!({"raw": enc}), "raw").unwrap(),
                Some(want.clone())
            );
        }
        assert!(decode_raw(&json!({"raw": "!!"}), "raw").is_err());
        assert_eq!(decode_raw(&json!({}), "raw").unwrap(), None);
    }
}
