//! Reading mail back from a mailbox, as a test checks what orgsync sent.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::TryStreamExt;
use orgsync_client::GoogleClient;
use orgsync_client::gmail::MessagesListParams;

/// Ids of every message with `label` in `user`'s mailbox; `reader` needs a Gmail read
/// scope (delegated).
pub async fn message_ids(reader: &GoogleClient, user: &str, label: &str) -> Vec<String> {
    reader
        .gmail(Some(user))
        .messages_list(MessagesListParams {
            label_ids: vec![label.into()],
            ..Default::default()
        })
        .try_collect::<Vec<_>>()
        .await
        .expect("messages.list")
        .into_iter()
        .filter_map(|m| m.id)
        .collect()
}

/// The exact stored bytes of message `id` in `user`'s mailbox (`format=raw`).
pub async fn raw_message(reader: &GoogleClient, user: &str, id: &str) -> Vec<u8> {
    let m = reader
        .gmail(Some(user))
        .messages_get(id, Some("raw"))
        .await
        .expect("messages.get");
    let raw = m.raw.expect("format=raw has raw");
    URL_SAFE_NO_PAD
        .decode(raw.trim_end_matches('='))
        .expect("base64url")
}
