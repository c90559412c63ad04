//! The `users.watch` channels orgsync owns: one per event type, each with a fresh id and a
//! random 256-bit token, every one persisted before anything depends on it.
//!
//! Google cannot renew a channel and its lifetime cap is uncertain (2 days documented, 6 h
//! observed: see "Facts about Google we rely on" in docs/ARCHITECTURE.md), so the returned
//! `expiration` is the only truth. A
//! replacement is opened at the earlier of `renew_ahead` before expiry and 80% of the
//! lifetime; both overlap (duplicates are harmless: jobs re-read the user), then the old
//! one is stopped with `channels.stop`. Because the replacement link and the stop are
//! recorded in the store, a crash anywhere in between is repaired by the next pass: a
//! replaced channel not yet stopped is stopped, and a missing event type is reopened, so a
//! restart neither leaks nor duplicates channels. Keeping this state elsewhere and renewing
//! by hand is how channels leak; here [`ensure`] runs on the leader every tick.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use orgsync_client::{ErrorKind, GoogleClient};
use orgsync_jobs::config::{GoogleConfig, ServeConfig};
use orgsync_jobs::directory::users_list_base;
use orgsync_store::{Channel, ChannelToken, Store};
use orgsync_wire::directory::WATCH_EVENTS;
use rand::Rng;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("Google: {0}")]
    Google(#[from] orgsync_client::Error),
    #[error("store: {0}")]
    Store(#[from] orgsync_store::StoreError),
}

/// Everything channel operations need; the daemon and `orgsync channels` build one.
pub struct ChannelCtx<'a> {
    pub client: &'a GoogleClient,
    pub store: &'a dyn Store,
    pub google: &'a GoogleConfig,
    pub serve: &'a ServeConfig,
    pub webhook_url: &'a str,
    /// The daemon's map of channels being created (their `sync` may arrive first).
    pub pending: Option<&'a Mutex<HashMap<String, String>>>,
    /// The daemon's channel cache, kept in step with stops.
    pub cache: Option<&'a Mutex<HashMap<String, Channel>>>,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChannelReport {
    pub created: Vec<String>,
    pub stopped: Vec<String>,
    pub errors: Vec<String>,
}

/// When a channel should be replaced: `renew_ahead` before expiry, or at 80% of its
/// lifetime if that is earlier (short lifetimes).
pub fn renew_at(c: &Channel, renew_ahead: Duration) -> DateTime<Utc> {
    let lifetime = c.expiration - c.created_at;
    let at_80 = c.created_at + lifetime * 4 / 5;
    (c.expiration - renew_ahead).min(at_80)
}

/// Open a channel for `event` and persist it.
pub async fn create(
    ctx: &ChannelCtx<'_>,
    event: &str,
    now: DateTime<Utc>,
) -> Result<Channel, ChannelError> {
    let id = format!("orgsync-{}", uuid::Uuid::new_v4().simple());
    let mut raw = [0u8; 32];
    rand::rng().fill(&mut raw);
    let token = hex::encode(raw);
    if let Some(p) = ctx.pending {
        p.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), token.clone());
    }
    let request = orgsync_wire::directory::Channel {
        id: id.clone(),
        channel_type: Some("web_hook".into()),
        address: Some(ctx.webhook_url.to_owned()),
        token: Some(token.clone()),
        params: Some(
            [("ttl".to_owned(), ctx.serve.channel_ttl_secs.to_string())]
                .into_iter()
                .collect(),
        ),
        ..Default::default()
    };
    let result = ctx
        .client
        .directory()
        .users_watch(&users_list_base(ctx.google), event, &request)
        .await;
    let done = |ctx: &ChannelCtx<'_>| {
        if let Some(p) = ctx.pending {
            p.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        }
    };
    let answer = match result {
        Ok(a) => a,
        Err(e) => {
            done(ctx);
            return Err(e.into());
        }
    };
    let expiration = answer
        .expiration
        .map(orgsync_store::time::from_ms)
        .unwrap_or(now + Duration::seconds(ctx.serve.channel_ttl_secs as i64));
    let channel = Channel {
        id: id.clone(),
        resource_id: answer.resource_id.unwrap_or_default(),
        resource_uri: answer.resource_uri,
        event: event.to_owned(),
        token: ChannelToken::new(token),
        address: ctx.webhook_url.to_owned(),
        expiration,
        created_at: now,
        stopped_at: None,
        replaced_by: None,
    };
    let stored = ctx.store.insert_channel(&channel).await;
    if let Some(c) = ctx.cache {
        c.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), channel.clone());
    }
    done(ctx);
    stored?;
    tracing::info!(channel = %id, event, expires = %expiration, "channel opened");
    Ok(channel)
}

/// Stop a channel at Google and record it. A channel Google no longer knows (expired,
/// already stopped) counts as stopped.
pub async fn stop(
    ctx: &ChannelCtx<'_>,
    channel: &Channel,
    now: DateTime<Utc>,
) -> Result<(), ChannelError> {
    let body = orgsync_wire::directory::Channel {
        id: channel.id.clone(),
        resource_id: Some(channel.resource_id.clone()),
        ..Default::default()
    };
    match ctx.client.directory().channels_stop(&body).await {
        Ok(()) => {}
        Err(e) if e.is(ErrorKind::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    ctx.store.mark_channel_stopped(&channel.id, now).await?;
    if let Some(c) = ctx.cache {
        c.lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&channel.id);
    }
    tracing::info!(channel = %channel.id, event = %channel.event, "channel stopped");
    Ok(())
}

/// Replace `old` with a fresh channel for the same event, then stop `old`.
async fn replace(
    ctx: &ChannelCtx<'_>,
    old: &Channel,
    now: DateTime<Utc>,
    report: &mut ChannelReport,
) -> Result<(), ChannelError> {
    let new = create(ctx, &old.event, now).await?;
    report.created.push(new.id.clone());
    ctx.store.mark_channel_replaced(&old.id, &new.id).await?;
    stop(ctx, old, now).await?;
    report.stopped.push(old.id.clone());
    Ok(())
}

/// One maintenance pass: every event type has exactly one current channel on
/// `webhook_url`, renewed ahead of expiry; leftovers are stopped.
pub async fn ensure(ctx: &ChannelCtx<'_>, now: DateTime<Utc>, force_renew: bool) -> ChannelReport {
    let mut report = ChannelReport::default();
    let live = match ctx.store.list_live_channels(now).await {
        Ok(l) => l,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    let renew_ahead = Duration::seconds(ctx.serve.renew_ahead_secs as i64);
    for event in WATCH_EVENTS {
        let mut current: Vec<&Channel> = live
            .iter()
            .filter(|c| c.event == event && c.replaced_by.is_none() && c.address == ctx.webhook_url)
            .collect();
        current.sort_by_key(|c| std::cmp::Reverse(c.expiration));
        // Keep the newest; extra ones (a crash between create and replace) are stopped.
        for extra in current.iter().skip(1) {
            match stop(ctx, extra, now).await {
                Ok(()) => report.stopped.push(extra.id.clone()),
                Err(e) => report.errors.push(format!("stop {}: {e}", extra.id)),
            }
        }
        let result = match current.first() {
            None => create(ctx, event, now).await.map(|c| {
                report.created.push(c.id);
            }),
            Some(c) if force_renew || now >= renew_at(c, renew_ahead) => {
                replace(ctx, c, now, &mut report).await
            }
            Some(_) => Ok(()),
        };
        if let Err(e) = result {
            report.errors.push(format!("{event}: {e}"));
        }
    }
    // Replaced but not stopped (crash mid-renewal), or opened for another address
    // (public_url changed): stop them.
    for c in &live {
        let leftover = c.replaced_by.is_some() || c.address != ctx.webhook_url;
        if leftover && !report.stopped.contains(&c.id) {
            match stop(ctx, c, now).await {
                Ok(()) => report.stopped.push(c.id.clone()),
                Err(e) => report.errors.push(format!("stop {}: {e}", c.id)),
            }
        }
    }
    report
}

/// Stop every live channel (`orgsync channels stop --all`).
pub async fn stop_all(ctx: &ChannelCtx<'_>, now: DateTime<Utc>) -> ChannelReport {
    let mut report = ChannelReport::default();
    match ctx.store.list_live_channels(now).await {
        Ok(live) => {
            for c in &live {
                match stop(ctx, c, now).await {
                    Ok(()) => report.stopped.push(c.id.clone()),
                    Err(e) => report.errors.push(format!("stop {}: {e}", c.id)),
                }
            }
        }
        Err(e) => report.errors.push(e.to_string()),
    }
    report
}
