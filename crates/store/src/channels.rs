//! Push channels (`users.watch`) and the notifications received on them. All channel state
//! is persisted so a restart neither leaks nor duplicates channels; the token is a secret
//! and never appears in `Debug` or serialized output.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The secret token Google echoes in `X-Goog-Channel-Token`. `Debug` and `Display` redact it;
/// read it with [`ChannelToken::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelToken(String);

impl ChannelToken {
    pub fn new(token: impl Into<String>) -> Self {
        ChannelToken(token.into())
    }
    /// The token itself: only for sending it to Google and for constant-time comparison.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ChannelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChannelToken(<redacted>)")
    }
}

/// A `users.watch` channel we opened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Channel {
    /// Our id for the channel (`X-Goog-Channel-ID`).
    pub id: String,
    /// Google's id of the watched resource, needed for `channels.stop`.
    pub resource_id: String,
    /// The watched resource URI, if Google returned one.
    pub resource_uri: Option<String>,
    /// `add`, `update`, `delete`, `undelete` or `makeAdmin`.
    pub event: String,
    #[serde(skip_serializing)]
    pub token: ChannelToken,
    /// The webhook address Google posts to.
    pub address: String,
    /// When Google stops the channel (from the returned `expiration`).
    pub expiration: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// When we stopped it (`channels.stop` or given up).
    pub stopped_at: Option<DateTime<Utc>>,
    /// The id of the channel that replaced this one.
    pub replaced_by: Option<String>,
}

/// A notification as received by the webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedNotification {
    pub channel_id: String,
    /// `X-Goog-Message-Number`; unique per channel.
    pub message_number: i64,
    /// `X-Goog-Resource-State` (`sync`, `add`, `update`, ...).
    pub resource_state: String,
    /// The directory user id from the body, if any.
    pub user_id: Option<String>,
    pub received_at: DateTime<Utc>,
}
