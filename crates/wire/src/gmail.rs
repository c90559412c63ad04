//! Gmail API v1: messages and drafts, as orgsync sends and reads them.
//!
//! Paths: `gmail/v1/users/{userId}/messages/send`, `.../drafts`, `.../drafts/send`, and
//! the media-upload forms under `/upload/gmail/v1/...`
//! (<https://developers.google.com/workspace/gmail/api/guides/uploads>). int64 fields
//! (`historyId`, `internalDate`) travel as strings. Unknown fields are kept in `extra`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest message accepted by `messages.send` / `drafts.*` uploads (35 MiB).
pub const MAX_UPLOAD_BYTES: usize = 36_700_160;
/// Largest `maxResults` for `messages.list`.
pub const MESSAGES_MAX_PAGE: u32 = 500;

/// A message. `raw` is the whole RFC 2822 message, base64url-encoded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub label_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
    #[serde(
        default,
        with = "crate::int64::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub history_id: Option<i64>,
    /// Unix milliseconds.
    #[serde(
        default,
        with = "crate::int64::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub internal_date: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_estimate: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<MessagePart>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<MessagePartHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<MessagePartBody>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<MessagePart>,
}

impl MessagePart {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessagePartHeader {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePartBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment_id: Option<String>,
    /// base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Draft {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
}

/// `users.getProfile`: whose mailbox it is, and its size. `historyId` is an int64 sent
/// as a string.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads_total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_id: Option<String>,
}

/// `messages.list` response: ids and thread ids only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMessagesResponse {
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_size_estimate: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_message_with_string_int64s_and_keeps_unknown_fields() {
        let m: Message = serde_json::from_str(
            r#"{"id":"m1","threadId":"t1","labelIds":["SENT"],"historyId":"42","internalDate":"1700000000000",
                "payload":{"mimeType":"text/plain","headers":[{"name":"Subject","value":"Hi"}]},
                "classificationLabelValues":[]}"#,
        )
        .unwrap();
        assert_eq!(m.history_id, Some(42));
        assert_eq!(m.payload.as_ref().unwrap().header("subject"), Some("Hi"));
        assert!(m.extra.contains_key("classificationLabelValues"));
        let d: Draft = serde_json::from_str(r#"{"id":"d1","message":{"id":"m1"}}"#).unwrap();
        assert_eq!(d.message.unwrap().id.as_deref(), Some("m1"));
    }
}
