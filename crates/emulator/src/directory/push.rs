//! `users.watch`, `channels.stop` and push delivery
//! (<https://developers.google.com/workspace/admin/directory/v1/guides/push>).
//!
//! A watch stores a channel in [`DirectoryState`] (so channels survive a restart with
//! `--data-dir`) and sends the `sync` message. Each user change through the API calls
//! [`notify`], which numbers a message per live channel watching that event and hands
//! it to a background task: POST to the channel address, retried with exponential
//! backoff on 500/502/503/504 and connection errors, given up on any other status.
//! Before every attempt the channel is re-checked, so `channels.stop` and expiry (on
//! the emulator clock) end delivery even mid-retry.
//!
//! Choices where Google is uncertain: a watch without `event` follows every event; the
//! channel lifetime is `min(expiration, now + params.ttl (default 2 h), now +
//! config.channel_ttl_cap_secs)`; `http://` receivers are allowed on loopback only.
//! Retries are paced in hundreds of milliseconds (Google's pace is undocumented) so
//! tests exercise them quickly.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use orgsync_wire::directory::{Channel, KIND_CHANNEL, KIND_USER, WATCH_EVENTS, push_headers};
use orgsync_wire::scopes;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{authorize, check_customer, etag};
use crate::auth::Caller;
use crate::error::json::GJson;
use crate::error::{Api, ApiError};
use crate::query::Params;
use crate::state::Emulator;

/// Delivery attempts per message (the first try included).
pub const MAX_ATTEMPTS: u32 = 5;
/// First retry delay; doubled each retry, plus up to 50 ms of jitter.
pub const BASE_BACKOFF_MS: u64 = 200;
/// `params.ttl` when none is given (discovery: 2 hours).
pub const DEFAULT_TTL_SECS: u64 = 2 * 3600;

const WATCH_SCOPES: &[&str] = &[
    scopes::DIRECTORY_USER,
    scopes::DIRECTORY_USER_READONLY,
    scopes::CLOUD_PLATFORM,
];
const STOP_SCOPES: &[&str] = &[
    scopes::DIRECTORY_USER,
    scopes::DIRECTORY_USER_READONLY,
    "https://www.googleapis.com/auth/admin.directory.user.alias",
    "https://www.googleapis.com/auth/admin.directory.user.alias.readonly",
    scopes::CLOUD_PLATFORM,
];

/// Delivery counters of one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStats {
    /// HTTP attempts, retries included.
    pub attempts: u64,
    /// Messages acknowledged with 200/201/202/204.
    pub successes: u64,
    /// Messages given up on (non-retryable status or retries exhausted).
    pub failures: u64,
    /// Last HTTP status received, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
}

/// A stored channel. `Debug` never shows the token (see [`Channel`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelRec {
    pub channel: Channel,
    /// The watched event; `None` = every event.
    pub event: Option<String>,
    /// The OAuth client that created it (only that client may stop it).
    pub client_id: String,
    pub stopped: bool,
    #[serde(default)]
    pub stats: DeliveryStats,
}

impl ChannelRec {
    fn live(&self, now_ms: i64) -> bool {
        !self.stopped && self.channel.expiration.is_none_or(|e| e > now_ms)
    }
}

/// What the control API can show about a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStats {
    pub id: String,
    pub resource_id: String,
    pub event: Option<String>,
    pub address: String,
    pub expiration_ms: Option<i64>,
    pub stopped: bool,
    pub expired: bool,
    #[serde(flatten)]
    pub stats: DeliveryStats,
}

/// Delivery statistics of every channel ever opened (stopped and expired included).
pub fn push_stats(emu: &Emulator) -> Vec<ChannelStats> {
    let now = emu.clock.now_ms();
    let state = emu.directory.read();
    state
        .channels
        .values()
        .map(|c| ChannelStats {
            id: c.channel.id.clone(),
            resource_id: c.channel.resource_id.clone().unwrap_or_default(),
            event: c.event.clone(),
            address: c.channel.address.clone().unwrap_or_default(),
            expiration_ms: c.channel.expiration,
            stopped: c.stopped,
            expired: c.channel.expiration.is_some_and(|e| e <= now),
            stats: c.stats.clone(),
        })
        .collect()
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(Api::Directory, message)
}

fn check_address(address: &str) -> Result<(), ApiError> {
    let url = url::Url::parse(address)
        .map_err(|_| invalid(format!("Invalid webhook address: {address}")))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" => match url.host() {
            Some(url::Host::Domain("localhost")) => Ok(()),
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => Ok(()),
            _ => Err(invalid(format!(
                "WebHook callback must be HTTPS: {address}"
            ))),
        },
        _ => Err(invalid(format!("Invalid webhook address: {address}"))),
    }
}

/// `POST admin/directory/v1/users/watch`
pub async fn watch(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    params: Params,
    GJson(body): GJson<Channel>,
) -> Result<Json<Channel>, ApiError> {
    authorize(&emu, &caller, WATCH_SCOPES, true)?;
    let event = params.one_of("event", &WATCH_EVENTS)?.map(str::to_string);
    if body.id.is_empty() {
        return Err(ApiError::required(Api::Directory, "channel.id"));
    }
    if body.id.chars().count() > 64 {
        return Err(invalid("Channel id must be at most 64 characters."));
    }
    match body.channel_type.as_deref() {
        Some(t) if t.eq_ignore_ascii_case("web_hook") || t.eq_ignore_ascii_case("webhook") => {}
        Some(t) => return Err(invalid(format!("Invalid channel type: {t}"))),
        None => return Err(ApiError::required(Api::Directory, "channel.type")),
    }
    let address = body
        .address
        .clone()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::required(Api::Directory, "channel.address"))?;
    check_address(&address)?;
    if body
        .token
        .as_deref()
        .is_some_and(|t| t.chars().count() > 256)
    {
        return Err(invalid("Channel token must be at most 256 characters."));
    }
    let ttl_secs = match body.params.as_ref().and_then(|p| p.get("ttl")) {
        Some(t) => t
            .trim()
            .parse::<u64>()
            .map_err(|_| invalid(format!("Invalid ttl: {t}")))?,
        None => DEFAULT_TTL_SECS,
    };
    let now = emu.clock.now_ms();
    let cap = now + (emu.config.channel_ttl_cap_secs as i64).saturating_mul(1000);
    let mut expiration = now
        .saturating_add((ttl_secs as i64).saturating_mul(1000))
        .min(cap);
    if let Some(req) = body.expiration.filter(|e| *e > 0) {
        expiration = expiration.min(req);
    }
    if expiration <= now {
        return Err(invalid("Channel expiration is in the past."));
    }
    let response = {
        let mut state = emu.directory.write();
        check_customer(&state, &params)?;
        if state.channels.get(&body.id).is_some_and(|c| c.live(now)) {
            return Err(ApiError::new(
                Api::Directory,
                StatusCode::BAD_REQUEST,
                "channelIdNotUnique",
                "Channel id not unique",
            ));
        }
        let mut raw = [0u8; 20];
        rand::rng().fill(&mut raw);
        let resource_id = URL_SAFE_NO_PAD.encode(raw);
        let mut uri = String::from("https://admin.googleapis.com/admin/directory/v1/users?");
        match (
            params.get_nonempty("customer"),
            params.get_nonempty("domain"),
        ) {
            (Some(c), _) => uri.push_str(&format!("customer={c}")),
            (_, Some(d)) => uri.push_str(&format!("domain={d}")),
            _ => {}
        }
        if let Some(e) = &event {
            uri.push_str(&format!("&event={e}"));
        }
        uri.push_str("&alt=json");
        let channel = Channel {
            kind: Some(KIND_CHANNEL.into()),
            id: body.id.clone(),
            channel_type: body.channel_type.clone(),
            address: Some(address),
            token: body.token.clone(),
            expiration: Some(expiration),
            params: body.params.clone(),
            payload: body.payload,
            resource_id: Some(resource_id),
            resource_uri: Some(uri),
        };
        state.channels.insert(
            body.id.clone(),
            ChannelRec {
                channel: channel.clone(),
                event,
                client_id: caller.client_id.clone(),
                stopped: false,
                stats: DeliveryStats::default(),
            },
        );
        let sync = Delivery::new(&channel, "sync", 1, None);
        tokio::spawn(deliver(emu.clone(), sync));
        Channel {
            kind: Some(KIND_CHANNEL.into()),
            id: channel.id,
            resource_id: channel.resource_id,
            resource_uri: channel.resource_uri,
            token: channel.token,
            expiration: channel.expiration,
            ..Default::default()
        }
    };
    Ok(Json(response))
}

/// `POST admin/directory_v1/channels/stop` (and the `directory/v1` spelling).
pub async fn stop(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    GJson(body): GJson<Channel>,
) -> Result<StatusCode, ApiError> {
    caller.require_any_scope(STOP_SCOPES)?;
    let not_found = || {
        ApiError::not_found(
            Api::Directory,
            format!(
                "Channel '{}' not found for project '{}'",
                body.id, caller.client_id
            ),
        )
    };
    let mut state = emu.directory.write();
    let rec = state.channels.get_mut(&body.id).ok_or_else(not_found)?;
    let resource_matches = rec.channel.resource_id.as_deref() == body.resource_id.as_deref();
    if rec.stopped || !resource_matches || rec.client_id != caller.client_id {
        return Err(not_found());
    }
    rec.stopped = true;
    Ok(StatusCode::NO_CONTENT)
}

/// One message to one channel.
struct Delivery {
    channel_id: String,
    address: String,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
}

fn rfc1123(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

impl Delivery {
    fn new(channel: &Channel, state: &str, number: u64, body: Option<String>) -> Self {
        let mut headers = vec![
            (push_headers::CHANNEL_ID, channel.id.clone()),
            (push_headers::MESSAGE_NUMBER, number.to_string()),
            (
                push_headers::RESOURCE_ID,
                channel.resource_id.clone().unwrap_or_default(),
            ),
            (push_headers::RESOURCE_STATE, state.to_string()),
            (
                push_headers::RESOURCE_URI,
                channel.resource_uri.clone().unwrap_or_default(),
            ),
        ];
        if let Some(e) = channel.expiration {
            headers.push((push_headers::CHANNEL_EXPIRATION, rfc1123(e)));
        }
        if let Some(t) = &channel.token {
            headers.push((push_headers::CHANNEL_TOKEN, t.clone()));
        }
        Delivery {
            channel_id: channel.id.clone(),
            address: channel.address.clone().unwrap_or_default(),
            headers,
            body,
        }
    }
}

/// Announce a change of user `user_id` (live or just deleted) to every live channel
/// watching `event`. Returns immediately; delivery runs in the background.
pub fn notify(emu: &Arc<Emulator>, event: &str, user_id: &str) {
    let now = emu.clock.now_ms();
    let mut deliveries = Vec::new();
    {
        let mut state = emu.directory.write();
        let email = state
            .users
            .get(user_id)
            .or_else(|| state.deleted.get(user_id))
            .map(|u| u.email().to_string());
        let Some(email) = email else {
            return;
        };
        let targets: Vec<Channel> = state
            .channels
            .values()
            .filter(|c| c.live(now) && c.event.as_deref().is_none_or(|e| e == event))
            .map(|c| c.channel.clone())
            .collect();
        for channel in targets {
            // Increasing but not consecutive, and always above the sync message's 1.
            let step = rand::rng().random_range(1..=5);
            state.message_counter = state.message_counter.max(1) + step;
            let number = state.message_counter;
            let body = serde_json::json!({
                "kind": KIND_USER,
                "id": user_id,
                "etag": etag(&state.customer_id, &format!("notification:{user_id}:{number}")),
                "primaryEmail": email,
            });
            deliveries.push(Delivery::new(
                &channel,
                event,
                number,
                Some(body.to_string()),
            ));
        }
    }
    for d in deliveries {
        tokio::spawn(deliver(emu.clone(), d));
    }
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default()
    })
}

enum Outcome {
    Success,
    Retry,
    Fail,
}

fn record(emu: &Emulator, channel_id: &str, f: impl FnOnce(&mut DeliveryStats)) {
    if let Some(c) = emu.directory.write().channels.get_mut(channel_id) {
        f(&mut c.stats);
    }
}

async fn deliver(emu: Arc<Emulator>, d: Delivery) {
    let mut delay = BASE_BACKOFF_MS;
    for attempt in 1..=MAX_ATTEMPTS {
        let live = emu
            .directory
            .read()
            .channels
            .get(&d.channel_id)
            .is_some_and(|c| c.live(emu.clock.now_ms()));
        if !live {
            return;
        }
        record(&emu, &d.channel_id, |s| s.attempts += 1);
        let mut req = client().post(&d.address);
        for (name, value) in &d.headers {
            req = req.header(*name, value);
        }
        req = match &d.body {
            Some(b) => req
                .header("content-type", "application/json; charset=UTF-8")
                .body(b.clone()),
            None => req.header("content-length", "0"),
        };
        let outcome = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                record(&emu, &d.channel_id, |s| s.last_status = Some(status));
                match status {
                    200 | 201 | 202 | 204 | 102 => Outcome::Success,
                    500 | 502 | 503 | 504 => Outcome::Retry,
                    _ => Outcome::Fail,
                }
            }
            Err(e) => {
                tracing::debug!(channel = %d.channel_id, error = %e, "push delivery failed");
                Outcome::Retry
            }
        };
        match outcome {
            Outcome::Success => {
                record(&emu, &d.channel_id, |s| s.successes += 1);
                return;
            }
            Outcome::Fail => break,
            Outcome::Retry if attempt == MAX_ATTEMPTS => break,
            Outcome::Retry => {
                let jitter = rand::rng().random_range(0..50);
                tokio::time::sleep(Duration::from_millis(delay + jitter)).await;
                delay *= 2;
            }
        }
    }
    record(&emu, &d.channel_id, |s| s.failures += 1);
}
