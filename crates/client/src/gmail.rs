//! Gmail v1: sending (JSON `raw` and the media-upload endpoint), drafts, reading
//! (<https://developers.google.com/workspace/gmail/api/guides/sending>). Sends are never
//! repeated after an unknown outcome: a duplicate mail cannot be taken back.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures::Stream;
use orgsync_wire::gmail::{
    Draft, ListMessagesResponse, MAX_UPLOAD_BYTES, MESSAGES_MAX_PAGE, Message, Profile,
};
use reqwest::Method;

use crate::error::Error;
use crate::paging::{items, pages};
use crate::transport::{Call, GoogleClient, Lane, encode_segment};

/// How to upload a message to the `/upload/...` endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// `uploadType=media`: the raw `message/rfc822` bytes.
    Media,
    /// `uploadType=multipart`: JSON metadata, then the message.
    Multipart,
}

/// `messages.list` parameters.
#[derive(Debug, Clone, Default)]
pub struct MessagesListParams {
    pub q: Option<String>,
    pub label_ids: Vec<String>,
    pub include_spam_trash: bool,
    pub max_results: Option<u32>,
}

/// A Gmail handle for one user (`userId` = `me` = the token's user).
#[derive(Debug, Clone)]
pub struct Gmail {
    client: GoogleClient,
    subject: Option<String>,
    user_id: String,
}

impl GoogleClient {
    /// Gmail calls as `subject` (None for a person's own login).
    pub fn gmail(&self, subject: Option<&str>) -> Gmail {
        Gmail {
            client: self.clone(),
            subject: subject.map(str::to_string),
            user_id: "me".into(),
        }
    }
}

impl Gmail {
    fn call(&self, id: &'static str, http: Method, rest: &str) -> Call {
        Call::new(
            id,
            Lane::Gmail,
            http,
            format!("gmail/v1/users/{}/{rest}", encode_segment(&self.user_id)),
        )
        .subject(self.subject.as_deref())
    }

    fn upload_call(
        &self,
        id: &'static str,
        rest: &str,
        raw: &[u8],
        upload: Upload,
        metadata: serde_json::Value,
    ) -> Result<Call, Error> {
        if raw.len() > MAX_UPLOAD_BYTES {
            return Err(Error::InvalidArgument(format!(
                "{id}: message is {} bytes, Gmail accepts at most {MAX_UPLOAD_BYTES}",
                raw.len()
            )));
        }
        let path = format!(
            "upload/gmail/v1/users/{}/{rest}",
            encode_segment(&self.user_id)
        );
        let call = Call::new(id, Lane::Gmail, Method::POST, path).subject(self.subject.as_deref());
        Ok(match upload {
            Upload::Media => call
                .query("uploadType", "media")
                .raw_body(Bytes::copy_from_slice(raw), "message/rfc822"),
            Upload::Multipart => {
                let (body, content_type) = multipart_related(&metadata, raw);
                call.query("uploadType", "multipart")
                    .raw_body(body, content_type)
            }
        })
    }

    /// `users.getProfile`: the mailbox's address and size. A read that any Gmail scope
    /// orgsync uses (even `gmail.compose`) allows, so it proves access without sending.
    pub async fn get_profile(&self) -> Result<Profile, Error> {
        let call = self.call("gmail.users.getProfile", Method::GET, "profile");
        self.client.send_json(call).await
    }

    /// `users.messages.send` with the message base64url-encoded in `raw`.
    pub async fn send_raw(&self, rfc822: &[u8], thread_id: Option<&str>) -> Result<Message, Error> {
        let body = Message {
            raw: Some(URL_SAFE_NO_PAD.encode(rfc822)),
            thread_id: thread_id.map(str::to_string),
            ..Default::default()
        };
        let call = self
            .call("gmail.users.messages.send", Method::POST, "messages/send")
            .json(&body)?;
        self.client.send_json(call).await
    }

    /// `users.messages.send` through the upload endpoint (large messages).
    pub async fn send_upload(
        &self,
        rfc822: &[u8],
        upload: Upload,
        thread_id: Option<&str>,
    ) -> Result<Message, Error> {
        let meta = match thread_id {
            Some(t) => serde_json::json!({ "threadId": t }),
            None => serde_json::json!({}),
        };
        let call = self.upload_call(
            "gmail.users.messages.send",
            "messages/send",
            rfc822,
            upload,
            meta,
        )?;
        self.client.send_json(call).await
    }

    /// `users.drafts.create`.
    pub async fn drafts_create(&self, rfc822: &[u8]) -> Result<Draft, Error> {
        let body = Draft {
            id: None,
            message: Some(Message {
                raw: Some(URL_SAFE_NO_PAD.encode(rfc822)),
                ..Default::default()
            }),
        };
        let call = self
            .call("gmail.users.drafts.create", Method::POST, "drafts")
            .json(&body)?;
        self.client.send_json(call).await
    }

    /// `users.drafts.create` through the upload endpoint (drafts over 5 MB).
    pub async fn drafts_create_upload(
        &self,
        rfc822: &[u8],
        upload: Upload,
    ) -> Result<Draft, Error> {
        let call = self.upload_call(
            "gmail.users.drafts.create",
            "drafts",
            rfc822,
            upload,
            serde_json::json!({}),
        )?;
        self.client.send_json(call).await
    }

    /// `users.drafts.get`; `format` as for `messages.get`. A 404 means the draft is gone
    /// (sent, or deleted): a caller that keeps a draft id as proof of "not sent yet" checks
    /// here before sending it again.
    pub async fn drafts_get(&self, draft_id: &str, format: Option<&str>) -> Result<Draft, Error> {
        let call = self
            .call(
                "gmail.users.drafts.get",
                Method::GET,
                &format!("drafts/{}", encode_segment(draft_id)),
            )
            .query_opt("format", format);
        self.client.send_json(call).await
    }

    /// `users.drafts.send` of an existing draft.
    pub async fn drafts_send(&self, draft_id: &str) -> Result<Message, Error> {
        let body = Draft {
            id: Some(draft_id.to_string()),
            message: None,
        };
        let call = self
            .call("gmail.users.drafts.send", Method::POST, "drafts/send")
            .json(&body)?;
        self.client.send_json(call).await
    }

    /// `users.messages.list` pages (ids and thread ids only).
    pub fn messages_pages(
        &self,
        params: MessagesListParams,
    ) -> impl Stream<Item = Result<ListMessagesResponse, Error>> + Send + 'static {
        let this = self.clone();
        let max = params
            .max_results
            .unwrap_or(MESSAGES_MAX_PAGE)
            .clamp(1, MESSAGES_MAX_PAGE);
        pages(self.client.clone(), move |token| {
            let mut call = this
                .call("gmail.users.messages.list", Method::GET, "messages")
                .query("maxResults", max.to_string())
                .query_opt("q", params.q.clone())
                .query_opt("pageToken", token);
            for l in &params.label_ids {
                call = call.query("labelIds", l.clone());
            }
            if params.include_spam_trash {
                call = call.query("includeSpamTrash", "true");
            }
            call
        })
    }

    pub fn messages_list(
        &self,
        params: MessagesListParams,
    ) -> impl Stream<Item = Result<Message, Error>> + Send + 'static {
        items(self.messages_pages(params))
    }

    /// `users.messages.get`; `format` is `full`, `metadata`, `minimal` or `raw`.
    pub async fn messages_get(&self, id: &str, format: Option<&str>) -> Result<Message, Error> {
        let call = self
            .call(
                "gmail.users.messages.get",
                Method::GET,
                &format!("messages/{}", encode_segment(id)),
            )
            .query_opt("format", format);
        self.client.send_json(call).await
    }
}

/// A `multipart/related` body: JSON metadata, then the `message/rfc822` media.
fn multipart_related(metadata: &serde_json::Value, raw: &[u8]) -> (Bytes, String) {
    // A boundary that cannot occur in the message: random, checked.
    let mut boundary;
    loop {
        boundary = format!("orgsync_{:032x}", rand::random::<u128>());
        if !raw
            .windows(boundary.len())
            .any(|w| w == boundary.as_bytes())
        {
            break;
        }
    }
    let mut body = Vec::with_capacity(raw.len() + 256);
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(metadata.to_string().as_bytes());
    body.extend_from_slice(
        format!("\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(raw);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (
        body.into(),
        format!("multipart/related; boundary={boundary}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_related_has_two_parts_in_order() {
        let (body, ct) = multipart_related(
            &serde_json::json!({"threadId":"t"}),
            b"Subject: hi\r\n\r\nbody",
        );
        let boundary = ct.strip_prefix("multipart/related; boundary=").unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        let parts: Vec<&str> = text.split(&format!("--{boundary}")).collect();
        assert_eq!(parts.len(), 4, "preamble, two parts, epilogue: {text}");
        assert!(parts[1].contains("application/json") && parts[1].contains(r#""threadId":"t""#));
        assert!(parts[2].contains("message/rfc822") && parts[2].ends_with("body\r\n"));
        assert!(parts[3].starts_with("--"));
    }
}
