//! The outgoing webhook: every outbox entry POSTed to the application as JSON.
//!
//! At least once, in order per user: entries are leased from the store (only the oldest
//! undelivered entry of a user is handed out), marked delivered on a 2xx, and otherwise
//! rescheduled with exponential backoff — for as long as the application is down, hours
//! included, since the outbox is durable. Each request carries
//! - `Idempotency-Key`: the entry's UUID, stable across retries, so the app can drop
//!   duplicates;
//! - `X-Orgsync-Timestamp`: Unix seconds of this attempt;
//! - `X-Orgsync-Signature`: `v1=` + hex HMAC-SHA256 over `"{timestamp}.{body}"` with the
//!   shared secret, so the app can reject forgeries and stale replays (check the
//!   timestamp window).

use std::sync::Arc;

use hmac::{Hmac, Mac};
use orgsync_jobs::config::SinkConfig;
use orgsync_store::OutboxEntry;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::metrics::SinkResult;
use crate::worker::reschedule_after;

pub const HEADER_TIMESTAMP: &str = "x-orgsync-timestamp";
pub const HEADER_SIGNATURE: &str = "x-orgsync-signature";
pub const HEADER_IDEMPOTENCY: &str = "idempotency-key";

/// Why `[serve.sink]` cannot be used; each message names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("serve.sink.url must be an http(s) URL, got {url:?}")]
    NotHttp { url: String },
    #[error("cannot read serve.sink.secret_file {}: {source}", path.display())]
    ReadSecret {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "serve.sink.url is set but no secret: set serve.sink.secret_file to a file holding \
         the HMAC secret shared with the application"
    )]
    NoSecret,
    #[error("serve.sink secret must be at least 16 characters")]
    ShortSecret,
}

/// The HMAC secret of `[serve.sink]`; required when a URL is set (an unsigned webhook would
/// let anyone forge user changes).
pub fn load_secret(sink: &SinkConfig) -> Result<Option<Vec<u8>>, SinkError> {
    let Some(url) = &sink.url else {
        return Ok(None);
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(SinkError::NotHttp { url: url.clone() });
    }
    let secret = match (&sink.secret, &sink.secret_file) {
        (Some(s), _) => s.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|source| SinkError::ReadSecret {
                path: path.clone(),
                source,
            })?
            .trim()
            .to_owned(),
        (None, None) => return Err(SinkError::NoSecret),
    };
    if secret.len() < 16 {
        return Err(SinkError::ShortSecret);
    }
    Ok(Some(secret.into_bytes()))
}

/// `v1=<hex>` HMAC-SHA256 of `"{timestamp}.{body}"`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The JSON body for one entry.
pub fn body_of(entry: &OutboxEntry) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "seq": entry.seq,
        "idempotency_key": entry.idempotency_key,
        "kind": entry.kind,
        "directory_id": entry.directory_id,
        "created_at": entry.created_at,
        "change": entry.payload,
    }))
    .unwrap_or_default()
}

pub async fn run(shared: Arc<Shared>, cancel: CancellationToken) {
    let Some(url) = shared.config.serve.sink.url.clone() else {
        return;
    };
    let lease = chrono::Duration::from_std(shared.tuning.sink_timeout * 3)
        .unwrap_or(chrono::Duration::seconds(30));
    while !cancel.is_cancelled() {
        let batch = match shared.store.claim_outbox(32, shared.now(), lease).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(shared.tuning.sink_poll) => {}
                _ = cancel.cancelled() => {}
            }
            continue;
        }
        // Entries of one batch belong to different users: deliver them concurrently.
        futures::future::join_all(batch.iter().map(|e| deliver(&shared, &url, e))).await;
    }
}

async fn deliver(shared: &Shared, url: &str, entry: &OutboxEntry) {
    let body = body_of(entry);
    let ts = shared.now().timestamp();
    let signature = shared
        .sink_secret
        .as_deref()
        .map(|s| sign(s, ts, &body))
        .unwrap_or_default();
    let result = shared
        .http
        .post(url)
        .header("content-type", "application/json")
        .header(HEADER_IDEMPOTENCY, entry.idempotency_key.to_string())
        .header(HEADER_TIMESTAMP, ts.to_string())
        .header(HEADER_SIGNATURE, signature)
        .body(body)
        .send()
        .await;
    let error = match result {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
        Err(e) => Some(format!("request failed: {e}")),
    };
    let now = shared.now();
    match error {
        None => {
            shared.metrics.sink_delivery(SinkResult::Ok);
            if let Err(e) = shared.store.mark_outbox_delivered(entry.seq, now).await {
                tracing::warn!(seq = entry.seq, error = %e, "delivered but not recorded; it will be sent again");
            }
        }
        Some(error) => {
            shared.metrics.sink_delivery(SinkResult::Failed);
            let delay = reschedule_after(&shared.tuning.sink_retry(), entry.attempts);
            let next = now + chrono::Duration::from_std(delay).unwrap_or_default();
            tracing::debug!(seq = entry.seq, %error, "sink delivery failed; retrying later");
            let _ = shared
                .store
                .mark_outbox_failed(entry.seq, &error, next)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_covers_timestamp_and_body() {
        let a = sign(b"0123456789abcdef", 100, b"{}");
        assert!(a.starts_with("v1=") && a.len() == 3 + 64);
        assert_ne!(a, sign(b"0123456789abcdef", 101, b"{}"));
        assert_ne!(a, sign(b"0123456789abcdef", 100, b"{ }"));
        assert_ne!(a, sign(b"0123456789abcdeF", 100, b"{}"));
    }

    #[test]
    fn a_url_without_secret_is_refused() {
        let sink = SinkConfig {
            url: Some("http://127.0.0.1:1/x".into()),
            ..Default::default()
        };
        let err = load_secret(&sink).unwrap_err();
        assert!(matches!(err, SinkError::NoSecret));
        assert!(err.to_string().contains("secret_file"));
    }
}
