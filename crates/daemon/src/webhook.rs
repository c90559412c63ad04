//! The push receiver plus `/healthz`, `/readyz`, `/metrics` and the status page (`/`,
//! `/status.json`, in [`crate::status`]).
//!
//! A naive receiver trusts any POST with a `primaryEmail` and calls Google inline; here a
//! request is accepted only if its channel id is one orgsync opened, its resource id
//! matches, and its `X-Goog-Channel-Token` equals that channel's random token (compared
//! in constant time with `subtle`). The receiver never calls Google: it records
//! the notification once per (channel id, message number) and enqueues a refresh job in
//! the same transaction, then answers 200. Every kind of bad input is a 4xx, because
//! Google retries 5xx with backoff; only a store outage answers 503 (then a retry is
//! exactly what we want).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use orgsync_store::{Channel, NewJob, ReceivedNotification};
use orgsync_wire::directory::{UserNotification, push_headers};
use subtle::ConstantTimeEq;

use crate::Shared;
use crate::metrics::{GoogleCalls, RejectReason, ResourceState, Scrape};

/// Job kind the workers run for a notification.
pub const JOB_REFRESH_USER: &str = "user.refresh";

pub fn router(shared: Arc<Shared>) -> Router {
    let path = shared.config.serve.webhook_path.clone();
    let limit = shared.tuning.max_body_bytes;
    Router::new()
        .route(&path, post(receive))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/", get(crate::status::page))
        .route("/status.json", get(crate::status::json))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

fn reject(shared: &Shared, status: StatusCode, reason: RejectReason) -> Response {
    shared.metrics.notification_rejected(reason);
    let reason = reason.as_str();
    tracing::debug!(reason, status = status.as_u16(), "push request rejected");
    (status, format!("rejected: {reason}\n")).into_response()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

enum Known {
    /// Stored channel.
    Stored(Channel),
    /// Being created by this instance: only its `sync` is expected.
    Pending(String),
}

async fn lookup(shared: &Shared, id: &str) -> Result<Option<Known>, orgsync_store::StoreError> {
    if let Some(c) = shared
        .channel_cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
    {
        return Ok(Some(Known::Stored(c.clone())));
    }
    if let Some(t) = shared
        .pending_channels
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
    {
        return Ok(Some(Known::Pending(t.clone())));
    }
    let found = shared.store.get_channel(id).await?;
    if let Some(c) = &found {
        shared
            .channel_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(c.id.clone(), c.clone());
    }
    Ok(found.map(Known::Stored))
}

fn token_matches(expected: &str, got: &str) -> bool {
    // Lengths are not secret (every token orgsync makes has the same length).
    expected.len() == got.len() && bool::from(expected.as_bytes().ct_eq(got.as_bytes()))
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(channel_id) = header_str(&headers, push_headers::CHANNEL_ID).map(str::to_owned) else {
        return reject(
            &shared,
            StatusCode::BAD_REQUEST,
            RejectReason::MissingChannelId,
        );
    };
    if channel_id.is_empty() || channel_id.len() > 64 {
        return reject(&shared, StatusCode::BAD_REQUEST, RejectReason::BadChannelId);
    }
    let Some(state) = header_str(&headers, push_headers::RESOURCE_STATE).map(str::to_owned) else {
        return reject(
            &shared,
            StatusCode::BAD_REQUEST,
            RejectReason::MissingResourceState,
        );
    };
    let Some(resource_state) = ResourceState::parse(&state) else {
        return reject(
            &shared,
            StatusCode::BAD_REQUEST,
            RejectReason::UnknownResourceState,
        );
    };
    let is_sync = resource_state == ResourceState::Sync;
    let Some(number) = header_str(&headers, push_headers::MESSAGE_NUMBER)
        .and_then(|n| n.trim().parse::<i64>().ok())
        .filter(|n| *n > 0)
    else {
        return reject(
            &shared,
            StatusCode::BAD_REQUEST,
            RejectReason::BadMessageNumber,
        );
    };
    let token = header_str(&headers, push_headers::CHANNEL_TOKEN).unwrap_or("");

    let mut known = match lookup(&shared, &channel_id).await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "store unavailable while checking a push request");
            return (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response();
        }
    };
    // A `sync` can overtake the `users.watch` response (Google sends it as soon as the
    // channel exists: https://developers.google.com/workspace/admin/directory/v1/guides/push),
    // and another instance (or `orgsync channels renew`) may be the one creating the
    // channel: give the store a moment, with a bounded number of waiters so spoofed syncs
    // cannot pile up.
    if known.is_none()
        && is_sync
        && let Ok(_permit) = shared.sync_waiters.try_acquire()
    {
        let deadline = tokio::time::Instant::now() + shared.tuning.sync_grace;
        while known.is_none() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            known = lookup(&shared, &channel_id).await.ok().flatten();
        }
    }
    let now = shared.now();
    let channel = match known {
        None => return reject(&shared, StatusCode::NOT_FOUND, RejectReason::UnknownChannel),
        Some(Known::Pending(expected)) => {
            if !token_matches(&expected, token) {
                return reject(&shared, StatusCode::UNAUTHORIZED, RejectReason::BadToken);
            }
            if !is_sync {
                return reject(&shared, StatusCode::CONFLICT, RejectReason::ChannelNotReady);
            }
            shared.metrics.notification_received(ResourceState::Sync);
            shared.observed.notification(&channel_id, now);
            return StatusCode::OK.into_response();
        }
        Some(Known::Stored(c)) => c,
    };
    if !token_matches(channel.token.expose(), token) {
        return reject(&shared, StatusCode::UNAUTHORIZED, RejectReason::BadToken);
    }
    if header_str(&headers, push_headers::RESOURCE_ID) != Some(channel.resource_id.as_str()) {
        return reject(
            &shared,
            StatusCode::FORBIDDEN,
            RejectReason::ResourceMismatch,
        );
    }
    if channel.stopped_at.is_some() || channel.expiration <= now {
        return reject(&shared, StatusCode::GONE, RejectReason::ChannelClosed);
    }
    if is_sync {
        shared.metrics.notification_received(ResourceState::Sync);
        shared.observed.notification(&channel_id, now);
        return StatusCode::OK.into_response();
    }
    let Ok(note) = serde_json::from_slice::<UserNotification>(&body) else {
        return reject(&shared, StatusCode::BAD_REQUEST, RejectReason::BadBody);
    };
    let user_id = note.id.trim().to_owned();
    if user_id.is_empty() || user_id.len() > 128 {
        return reject(&shared, StatusCode::BAD_REQUEST, RejectReason::BadBody);
    }
    let received = ReceivedNotification {
        channel_id: channel_id.clone(),
        message_number: number,
        resource_state: state.clone(),
        user_id: Some(user_id.clone()),
        received_at: now,
    };
    let job = NewJob {
        kind: JOB_REFRESH_USER.into(),
        directory_user_id: Some(user_id.clone()),
        user_email: note.primary_email.clone(),
        payload: serde_json::json!({
            "event": state,
            "channel": channel_id,
            "message": number,
            "received_at": now,
        }),
        dedupe_key: Some(format!("user:{user_id}")),
        run_at: now,
    };
    let mut jobs = vec![job];
    jobs.extend(crate::contacts::job_for_notification(
        &shared, &user_id, now,
    ));
    jobs.extend(crate::scim::jobs_for_notification(&shared, &user_id, now));
    match shared.store.record_notification(&received, &jobs).await {
        Ok(true) => {
            shared.metrics.notification_received(resource_state);
            shared.observed.notification(&channel_id, now);
            shared.wake.notify_one();
            StatusCode::OK.into_response()
        }
        Ok(false) => {
            shared.metrics.notification_duplicate(resource_state);
            shared.observed.notification(&channel_id, now);
            StatusCode::OK.into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot record a notification; asking Google to retry");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    match shared.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {e}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let now = shared.now();
    let store = &shared.store;
    let channel_expiry = store.list_live_channels(now).await.ok().map(|live| {
        let mut by_event: std::collections::BTreeMap<String, f64> = Default::default();
        for c in live.iter().filter(|c| c.replaced_by.is_none()) {
            let secs = (c.expiration - now).num_milliseconds() as f64 / 1000.0;
            let e = by_event.entry(c.event.clone()).or_insert(secs);
            *e = e.max(secs);
        }
        by_event.into_iter().collect()
    });
    let stats = shared.client.stats().snapshot();
    let scrape = Scrape {
        jobs_queued: store.count_jobs().await.ok().map(|n| n as i64),
        jobs_failing: store
            .list_failed_jobs(1000)
            .await
            .ok()
            .map(|f| f.len() as i64),
        outbox_pending: store
            .list_pending_outbox(10_000)
            .await
            .ok()
            .map(|p| p.len() as i64),
        channel_expiry,
        connections_open: shared.connections.open() as i64,
        leader: shared.is_leader.load(Ordering::Relaxed),
        google: stats
            .methods
            .iter()
            .map(|(m, s)| GoogleCalls {
                method: m.to_string(),
                calls: s.calls,
                errors: s.errors.values().sum(),
            })
            .collect(),
    };
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        shared.metrics.render(&scrape),
    )
        .into_response()
}
