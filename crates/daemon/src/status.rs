//! The status page (`GET /`) and its JSON twin (`GET /status.json`): what the jobs did
//! last, the push channels, the queue, the newest changes, the outbox and Google's quota,
//! on one screen that a phone can read.
//!
//! Both are made from one [`Status`], gathered once per request ([`Status::gather`]):
//! the JSON is that struct serialised, and the page is rendered from it alone
//! ([`render_html`]), so the two can never disagree. Every value the page shows sits in
//! an element whose `data-k` is the value's JSON pointer in `/status.json` (and whose
//! `data-v`, when the text is formatted for people, is the value as the JSON has it):
//! the tests check the page against the JSON and the store through those.
//!
//! Rules:
//! - Read-only. Nothing here writes to the store or calls Google.
//! - A section whose store read fails says `unavailable: <reason>` and the page still
//!   answers 200: the page is most wanted when something is wrong.
//! - No secret is ever put in: a channel's token is not part of [`ChannelView`], the sink
//!   is shown by its host alone (its path or query could carry a key), and the sink secret
//!   and OAuth tokens are not read here at all.
//! - Every value is HTML-escaped ([`esc`]): emails and error texts come from outside.
//! - Server-rendered, no JavaScript, inline CSS, no external asset; the page refreshes
//!   itself every 30 seconds.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use orgsync_client::quota::MetricUsage;
use orgsync_jobs::runs::{self, AppliedChange, JobName, RunOutcome, RunRecord, Trigger};
use orgsync_store::{Channel, Job, OutboxEntry, StoreError};
use serde::Serialize;

use crate::Shared;
use crate::metrics::LagSummary;

/// How long one store read may take before its section says it is unavailable.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);
/// Failing jobs and failing outbox entries shown.
const FAILING_SHOWN: u32 = 5;
/// Channels shown (newest first); old stopped ones stay in the store until they expire.
const CHANNELS_SHOWN: usize = 20;
/// Pending outbox entries counted (the count says "at least" beyond).
const OUTBOX_COUNTED: u32 = 1000;
/// Channels whose last notification this instance remembers.
const CHANNELS_REMEMBERED: usize = 256;
/// How often the page reloads itself, seconds.
const REFRESH_SECS: u32 = 30;

/// What this instance saw that the store does not keep: when it started, and the last
/// notification accepted per channel. Lost on restart (the page says "none seen by this
/// instance"); with several instances each knows only its own.
pub struct Observed {
    started: Instant,
    notifications: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl Default for Observed {
    fn default() -> Self {
        Self::new()
    }
}

impl Observed {
    pub fn new() -> Self {
        Observed {
            started: Instant::now(),
            notifications: Mutex::new(HashMap::new()),
        }
    }

    /// A notification (or a channel's `sync` message) on `channel_id` was accepted at `at`.
    pub fn notification(&self, channel_id: &str, at: DateTime<Utc>) {
        let mut seen = self.notifications.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.contains_key(channel_id) && seen.len() >= CHANNELS_REMEMBERED {
            // Channels are renewed every few hours: forget the one heard from longest ago.
            if let Some(oldest) = seen.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                seen.remove(&oldest);
            }
        }
        seen.insert(channel_id.to_owned(), at);
    }

    /// When this instance last accepted a notification on `channel_id`.
    pub fn last_notification(&self, channel_id: &str) -> Option<DateTime<Utc>> {
        self.notifications
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(channel_id)
            .copied()
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// A part of the page read from the store: its value, or why it could not be read.
/// Serialised as `{"ok": …}` or `{"unavailable": "…"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Section<T> {
    Ok(T),
    Unavailable(String),
}

impl<T> Section<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Section<U> {
        match self {
            Section::Ok(v) => Section::Ok(f(v)),
            Section::Unavailable(r) => Section::Unavailable(r),
        }
    }
}

/// Everything the page shows, as `/status.json` serves it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub instance: InstanceView,
    pub jobs: Jobs,
    pub channels: Section<ChannelsView>,
    pub queue: QueueView,
    /// The newest applied changes, newest first (at most [`runs::RECENT_CHANGES`]).
    pub changes: Section<Vec<AppliedChange>>,
    pub outbox: OutboxView,
    pub google: GoogleView,
}

/// The header line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceView {
    pub id: String,
    pub leader: bool,
    pub uptime_secs: u64,
    pub version: String,
    /// The store backend (`sqlite`, `postgres`).
    pub store: String,
    /// When this status was gathered (the daemon's clock).
    pub rendered_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Jobs {
    pub contacts: JobView,
    pub users: JobView,
    /// The `[[scim]]` apps' full runs (every target of one run together).
    pub scim: JobView,
}

/// One job: its last run (`null`: it never ran) and when its last complete, clean run
/// started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobView {
    pub last_run: Section<Option<RunView>>,
    pub last_complete: Section<Option<DateTime<Utc>>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunView {
    #[serde(flatten)]
    pub record: RunRecord,
    pub duration_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelsView {
    /// Channels in the store, all states.
    pub total: usize,
    /// The newest [`CHANNELS_SHOWN`], newest first.
    pub shown: Vec<ChannelView>,
}

/// A push channel without its secret token (nothing else of a channel is secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelView {
    pub id: String,
    pub event: String,
    /// `live`, `replaced` (a successor exists; it still delivers until stopped),
    /// `stopped` or `expired`.
    pub state: &'static str,
    pub created_at: DateTime<Utc>,
    pub expiration: DateTime<Utc>,
    /// The last notification this instance accepted on it (`null`: none seen here).
    pub last_notification: Option<DateTime<Utc>>,
}

impl ChannelView {
    pub fn of(channel: &Channel, now: DateTime<Utc>, last: Option<DateTime<Utc>>) -> Self {
        let state = if channel.stopped_at.is_some() {
            "stopped"
        } else if channel.expiration <= now {
            "expired"
        } else if channel.replaced_by.is_some() {
            "replaced"
        } else {
            "live"
        };
        ChannelView {
            id: channel.id.clone(),
            event: channel.event.clone(),
            state,
            created_at: channel.created_at,
            expiration: channel.expiration,
            last_notification: last,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueView {
    pub summary: Section<QueueSummaryView>,
    /// This instance's job lag over the last hour.
    pub lag: LagSummary,
    /// The failing jobs with the most attempts (at most [`FAILING_SHOWN`]).
    pub failing: Section<Vec<FailingJob>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueSummaryView {
    pub pending: u64,
    pub running: u64,
    pub failing: u64,
    pub oldest_created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailingJob {
    pub id: i64,
    pub kind: String,
    /// The user's email, else its directory id.
    pub subject: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

impl FailingJob {
    fn of(job: &Job) -> Self {
        FailingJob {
            id: job.id,
            kind: job.kind.clone(),
            subject: job
                .user_email
                .clone()
                .or_else(|| job.directory_user_id.clone()),
            attempts: job.attempts,
            next_attempt_at: job.run_at,
            last_error: job.last_error.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxView {
    pub pending: Section<OutboxPending>,
    pub sink: SinkView,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxPending {
    /// Undelivered entries, counted up to [`OUTBOX_COUNTED`].
    pub count: u64,
    /// `true` when there are at least `count` (the count stopped there).
    pub at_least: bool,
    pub oldest_created_at: Option<DateTime<Utc>>,
    /// Undelivered entries whose last delivery failed (at most [`FAILING_SHOWN`]).
    pub failing: Vec<FailingDelivery>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailingDelivery {
    pub seq: i64,
    pub kind: String,
    pub directory_id: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: String,
}

/// The outgoing webhook: whether one is set and where (the host only: a URL's path or
/// query may hold a key), and this instance's deliveries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SinkView {
    pub configured: bool,
    pub host: Option<String>,
    pub delivered: u64,
    pub failed: u64,
}

/// Google calls of this process, and what pacing to the quotas cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GoogleView {
    pub calls: u64,
    pub requests: u64,
    pub retries: u64,
    pub http_429: u64,
    pub errors: u64,
    pub methods: Vec<MethodView>,
    /// Per quota metric: units, waits and time waited for pacing, 429s, the limits.
    pub quota: Vec<MetricUsage>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodView {
    pub method: String,
    pub calls: u64,
    pub retries: u64,
    pub http_429: u64,
    pub errors: u64,
}

/// A store read, bounded in time, as a section.
async fn read<T>(f: impl Future<Output = Result<T, StoreError>>) -> Section<T> {
    match tokio::time::timeout(STORE_TIMEOUT, f).await {
        Ok(Ok(v)) => Section::Ok(v),
        Ok(Err(e)) => Section::Unavailable(e.to_string()),
        Err(_) => Section::Unavailable(format!(
            "the state store did not answer within {} s",
            STORE_TIMEOUT.as_secs()
        )),
    }
}

/// The host of a sink URL, and nothing else of it.
fn url_host(url: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
}

impl Status {
    /// Read everything the page shows. Never fails: a section the store cannot give
    /// says why.
    pub async fn gather(shared: &Shared) -> Status {
        let store = shared.store.as_ref();
        let now = shared.now();
        let job = |name| async move {
            JobView {
                last_run: read(runs::last_run(store, name)).await.map(|r| {
                    r.map(|record| RunView {
                        duration_ms: record.duration_ms(),
                        record,
                    })
                }),
                last_complete: read(runs::last_complete(store, name)).await,
            }
        };
        let jobs = Jobs {
            contacts: job(JobName::Contacts).await,
            users: job(JobName::Users).await,
            scim: job(JobName::Scim).await,
        };
        let channels = read(store.list_channels()).await.map(|mut all| {
            all.sort_by_key(|c| std::cmp::Reverse(c.created_at));
            ChannelsView {
                total: all.len(),
                shown: all
                    .iter()
                    .take(CHANNELS_SHOWN)
                    .map(|c| ChannelView::of(c, now, shared.observed.last_notification(&c.id)))
                    .collect(),
            }
        });
        let queue = QueueView {
            summary: read(store.queue_summary()).await.map(|q| QueueSummaryView {
                pending: q.pending,
                running: q.running,
                failing: q.failing,
                oldest_created_at: q.oldest_created_at,
            }),
            lag: shared.metrics.lag_summary(),
            failing: read(store.list_failed_jobs(FAILING_SHOWN))
                .await
                .map(|jobs| jobs.iter().map(FailingJob::of).collect()),
        };
        let changes = read(runs::recent_changes(store)).await;
        let pending = read(store.list_pending_outbox(OUTBOX_COUNTED))
            .await
            .map(|entries| outbox_pending(&entries, OUTBOX_COUNTED));
        let sink_url = shared.config.serve.sink.url.as_deref();
        let outbox = OutboxView {
            pending,
            sink: SinkView {
                configured: sink_url.is_some(),
                host: sink_url.and_then(url_host),
                delivered: shared.metrics.get("orgsync_sink_deliveries_total", "ok"),
                failed: shared
                    .metrics
                    .get("orgsync_sink_deliveries_total", "failed"),
            },
        };
        let stats = shared.client.stats().snapshot();
        let google = GoogleView {
            calls: stats.total_calls,
            requests: stats.total_requests,
            retries: stats.total_retries,
            http_429: stats.total_429,
            errors: stats.total_errors,
            methods: stats
                .methods
                .iter()
                .map(|(m, s)| MethodView {
                    method: (*m).to_owned(),
                    calls: s.calls,
                    retries: s.retries,
                    http_429: s.http_429,
                    errors: s.errors.values().sum(),
                })
                .collect(),
            quota: shared.client.quota_usage(),
        };
        Status {
            instance: InstanceView {
                id: shared.instance_id.clone(),
                leader: shared.is_leader.load(Ordering::Relaxed),
                uptime_secs: shared.observed.uptime().as_secs(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                store: store.backend().to_owned(),
                rendered_at: now,
            },
            jobs,
            channels,
            queue,
            changes,
            outbox,
            google,
        }
    }
}

fn outbox_pending(entries: &[OutboxEntry], limit: u32) -> OutboxPending {
    OutboxPending {
        count: entries.len() as u64,
        at_least: entries.len() as u64 >= u64::from(limit),
        oldest_created_at: entries.iter().map(|e| e.created_at).min(),
        failing: entries
            .iter()
            .filter_map(|e| {
                e.last_error.as_ref().map(|err| FailingDelivery {
                    seq: e.seq,
                    kind: e.kind.to_string(),
                    directory_id: e.directory_id.clone(),
                    attempts: e.attempts,
                    next_attempt_at: e.next_attempt_at,
                    last_error: err.clone(),
                })
            })
            .take(FAILING_SHOWN as usize)
            .collect(),
    }
}

/// `GET /`: the page.
pub async fn page(State(shared): State<Arc<Shared>>) -> Response {
    let status = Status::gather(&shared).await;
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // No script, no frame, nothing fetched: inline styles only.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ],
        render_html(&status),
    )
        .into_response()
}

/// `GET /status.json`: the same [`Status`], as JSON.
pub async fn json(State(shared): State<Arc<Shared>>) -> Response {
    let status = Status::gather(&shared).await;
    let body = serde_json::to_string_pretty(&status).unwrap_or_else(|e| {
        // Serialising plain data cannot fail; say so rather than answer half a document.
        serde_json::json!({ "error": e.to_string() }).to_string()
    });
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------

/// `s` made safe as HTML text and as a quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A time as the JSON has it (chrono's RFC 3339).
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A span of seconds for people: `45 s`, `5 min 3 s`, `5 h 12 min`, `3 d 4 h`.
pub fn span(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {sec} s")
    } else {
        format!("{sec} s")
    }
}

/// `at` relative to `now`: `5 min 3 s ago`, `in 5 h 12 min`.
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (at - now).num_seconds();
    if secs > 0 {
        format!("in {}", span(secs))
    } else {
        format!("{} ago", span(secs))
    }
}

fn duration_ms(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        span(ms / 1000)
    }
}

fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

fn trigger_text(t: Trigger) -> &'static str {
    match t {
        Trigger::Manual => "manual (command)",
        Trigger::Schedule => "schedule",
        Trigger::Start => "serve start",
        Trigger::Push => "push notifications",
    }
}

fn trigger_json(t: Trigger) -> &'static str {
    match t {
        Trigger::Manual => "manual",
        Trigger::Schedule => "schedule",
        Trigger::Start => "start",
        Trigger::Push => "push",
    }
}

fn outcome_json(o: RunOutcome) -> &'static str {
    match o {
        RunOutcome::Ok => "ok",
        RunOutcome::Partial => "partial",
        RunOutcome::Failed => "failed",
        RunOutcome::Guard => "guard",
    }
}

/// The page under construction: every value goes through one of its methods, which
/// escape it and tag it with its JSON pointer.
struct Html {
    out: String,
    now: DateTime<Utc>,
}

impl Html {
    fn raw(&mut self, s: &str) -> &mut Self {
        self.out.push_str(s);
        self
    }

    fn text(&mut self, s: &str) -> &mut Self {
        self.out.push_str(&esc(s));
        self
    }

    /// A value shown as it is in the JSON.
    fn val(&mut self, key: &str, text: &str) -> &mut Self {
        let _ = write!(
            self.out,
            r#"<span data-k="{}">{}</span>"#,
            esc(key),
            esc(text)
        );
        self
    }

    /// A value formatted for people, with the JSON's value in `data-v`.
    fn val_v(&mut self, key: &str, raw: &str, text: &str) -> &mut Self {
        let _ = write!(
            self.out,
            r#"<span data-k="{}" data-v="{}">{}</span>"#,
            esc(key),
            esc(raw),
            esc(text)
        );
        self
    }

    fn num(&mut self, key: &str, n: impl std::fmt::Display) -> &mut Self {
        self.val(key, &n.to_string())
    }

    /// A time: relative on the page, exact in its tooltip and `data-v`.
    fn time(&mut self, key: &str, t: DateTime<Utc>) -> &mut Self {
        let exact = rfc3339(t);
        let _ = write!(
            self.out,
            r#"<time data-k="{}" data-v="{}" datetime="{}" title="{}">{}</time>"#,
            esc(key),
            esc(&exact),
            esc(&exact),
            esc(&t.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
            esc(&relative(t, self.now))
        );
        self
    }

    fn unavailable(&mut self, key: &str, reason: &str) -> &mut Self {
        self.raw(r#"<p class="bad">unavailable: "#)
            .val(&format!("{key}/unavailable"), reason)
            .raw("</p>")
    }

    fn card(&mut self, id: &str, title: &str, wide: bool) -> &mut Self {
        let _ = write!(
            self.out,
            r#"<section class="card{}" id="{}"><h2>{}</h2>"#,
            if wide { " wide" } else { "" },
            esc(id),
            esc(title)
        );
        self
    }
}

const CSS: &str = "\
*{box-sizing:border-box}\
body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
background:#f3f4f6;color:#1f2328}\
header{padding:12px 16px;background:#fff;border-bottom:1px solid #d8dee4}\
h1{font-size:1.15rem;margin:0 0 4px}\
.meta{margin:0;color:#59636e;font-size:.85rem;overflow-wrap:anywhere}\
main{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:12px;padding:12px;\
max-width:1200px;margin:0 auto;align-items:start}\
.card{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:12px 14px;min-width:0}\
.wide{grid-column:1/-1}\
h2{font-size:1rem;margin:0 0 8px}\
h3{font-size:.9rem;margin:12px 0 4px}\
p{margin:4px 0}\
code{font-size:.85em;background:#eef1f4;padding:0 3px;border-radius:3px;overflow-wrap:anywhere}\
dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:2px 12px;margin:0}\
dt{color:#59636e}dd{margin:0;overflow-wrap:anywhere}td.who{font-weight:600}\
table{width:100%;border-collapse:collapse;font-size:.88rem}\
th{text-align:left;color:#59636e;font-weight:600}\
th,td{padding:4px 6px;border-top:1px solid #e5e8eb;vertical-align:top;overflow-wrap:anywhere}\
.ok{color:#1a7f37;font-weight:600}.warn{color:#9a6700;font-weight:600}\
.bad{color:#cf222e;font-weight:600}.muted{color:#59636e}\
.alert{background:#ffebe9;border:2px solid #cf222e;border-radius:6px;padding:8px 10px;\
margin:0 0 8px;color:#82071e}\
.alert strong{display:block;font-size:1rem}.alert code{white-space:nowrap}\
ul.fails{margin:0;padding-left:1.1em;font-size:.88rem}ul.fails li{overflow-wrap:anywhere}\
.alert .msg{font-weight:400;color:#1f2328;overflow-wrap:anywhere}\
.big{font-size:1.4rem;font-weight:600}\
.stats{display:flex;flex-wrap:wrap;gap:6px 18px}\
.stats div{min-width:70px}.stats .l{display:block;color:#59636e;font-size:.78rem}\
@media (max-width:700px){\
main{grid-template-columns:minmax(0,1fr);padding:8px;gap:8px}\
table.rows thead{display:none}\
table.rows tr{display:block;border-top:1px solid #d8dee4;padding:4px 0}\
table.rows td{display:flex;gap:12px;border:0;padding:1px 0}\
table.rows td::before{content:attr(data-label);color:#59636e;min-width:6.5em;flex:none;\
font-weight:400}\
table.compact thead{display:none}\
table.compact tr{display:flex;flex-wrap:wrap;gap:0 8px;border-top:1px solid #e5e8eb;padding:4px 0}\
table.compact td{border:0;padding:0}\
}";

/// The page for `status`: a function of it alone.
pub fn render_html(status: &Status) -> String {
    let mut h = Html {
        out: String::with_capacity(16 * 1024),
        now: status.instance.rendered_at,
    };
    h.raw("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">")
        .raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    let _ = write!(
        h.out,
        "<meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">"
    );
    h.raw("<title>orgsync status</title><style>")
        .raw(CSS)
        .raw("</style></head><body>");
    header(&mut h, &status.instance);
    h.raw("<main>");
    job(&mut h, "contacts", "Contacts job", &status.jobs.contacts);
    job(&mut h, "users", "Users job", &status.jobs.users);
    job(&mut h, "scim", "SCIM apps", &status.jobs.scim);
    queue(&mut h, &status.queue);
    outbox(&mut h, &status.outbox);
    channels(&mut h, &status.channels);
    changes(&mut h, &status.changes);
    google(&mut h, &status.google);
    h.raw("</main></body></html>\n");
    h.out
}

fn header(h: &mut Html, i: &InstanceView) {
    h.raw("<header><h1>orgsync serve</h1><p class=\"meta\">instance <code>")
        .val("/instance/id", &i.id)
        .raw("</code> · ");
    h.val_v(
        "/instance/leader",
        &i.leader.to_string(),
        if i.leader { "leader" } else { "not leader" },
    );
    h.raw(" · up ")
        .val_v(
            "/instance/uptime_secs",
            &i.uptime_secs.to_string(),
            &span(i.uptime_secs as i64),
        )
        .raw(" · v")
        .val("/instance/version", &i.version)
        .raw(" · store ")
        .val("/instance/store", &i.store)
        .raw("</p><p class=\"meta\">rendered ");
    let exact = i.rendered_at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    h.val_v("/instance/rendered_at", &rfc3339(i.rendered_at), &exact);
    let _ = write!(
        h.out,
        " · refreshes every {REFRESH_SECS} s · <a href=\"/status.json\">status.json</a></p></header>"
    );
}

fn job(h: &mut Html, name: &str, title: &str, v: &JobView) {
    let key = format!("/jobs/{name}");
    h.card(&format!("job-{name}"), title, false);
    match &v.last_run {
        Section::Unavailable(r) => {
            h.unavailable(&format!("{key}/last_run"), r);
        }
        Section::Ok(None) => {
            h.raw("<p class=\"muted\" data-k=\"")
                .text(&format!("{key}/last_run/ok"))
                .raw("\" data-v=\"null\">never ran</p>");
        }
        Section::Ok(Some(run)) => last_run(h, name, &format!("{key}/last_run/ok"), run),
    }
    h.raw("<p>last complete run: ");
    match &v.last_complete {
        Section::Unavailable(r) => {
            h.raw("unavailable: ")
                .val(&format!("{key}/last_complete/unavailable"), r);
        }
        Section::Ok(None) => {
            h.val_v(&format!("{key}/last_complete/ok"), "null", "none yet");
        }
        Section::Ok(Some(t)) => {
            h.time(&format!("{key}/last_complete/ok"), *t);
        }
    }
    h.raw("</p></section>");
}

fn last_run(h: &mut Html, job: &str, key: &str, run: &RunView) {
    let r = &run.record;
    let outcome = outcome_json(r.outcome);
    if r.outcome == RunOutcome::Guard {
        let _ = write!(
            h.out,
            "<div class=\"alert\" id=\"guard-{job}\"><strong>stopped by the safety guard, \
             waiting for <code>orgsync {job} sync --force</code></strong>"
        );
        if let Some(m) = &r.message {
            h.raw("<span class=\"msg\">")
                .val(&format!("{key}/message"), m)
                .raw("</span>");
        }
        h.raw("</div>");
    }
    let class = match r.outcome {
        RunOutcome::Ok => "ok",
        RunOutcome::Partial => "warn",
        RunOutcome::Failed | RunOutcome::Guard => "bad",
    };
    let outcome_text = match r.outcome {
        RunOutcome::Ok => "ok",
        RunOutcome::Partial => "partial: some failed",
        RunOutcome::Failed => "failed",
        RunOutcome::Guard => "stopped by the safety guard",
    };
    h.raw("<dl><dt>outcome</dt><dd class=\"")
        .raw(class)
        .raw("\">");
    h.val_v(&format!("{key}/outcome"), outcome, outcome_text);
    h.raw("</dd><dt>finished</dt><dd>")
        .time(&format!("{key}/finished_at"), r.finished_at)
        .raw("</dd><dt>started</dt><dd>")
        .time(&format!("{key}/started_at"), r.started_at)
        .raw("</dd><dt>took</dt><dd>")
        .val_v(
            &format!("{key}/duration_ms"),
            &run.duration_ms.to_string(),
            &duration_ms(run.duration_ms),
        )
        .raw("</dd><dt>trigger</dt><dd>")
        .val_v(
            &format!("{key}/trigger"),
            trigger_json(r.trigger),
            trigger_text(r.trigger),
        )
        .raw("</dd><dt>scope</dt><dd>")
        .val_v(
            &format!("{key}/complete"),
            &r.complete.to_string(),
            if r.complete { "complete" } else { "partial" },
        )
        .raw("</dd>");
    if r.outcome == RunOutcome::Failed
        && let Some(m) = &r.message
    {
        h.raw("<dt>error</dt><dd class=\"bad\">")
            .val(&format!("{key}/message"), m)
            .raw("</dd>");
    }
    h.raw("</dl>");
    if !r.counts.is_empty() {
        h.raw("<div class=\"stats\">");
        for (name, n) in &r.counts {
            h.raw("<div><span class=\"l\">")
                .text(&name.replace('_', " "))
                .raw("</span>")
                .num(&format!("{key}/counts/{name}"), n)
                .raw("</div>");
        }
        h.raw("</div>");
    }
    if r.failures_total > 0 {
        h.raw("<h3>failures (")
            .num(&format!("{key}/failures_total"), r.failures_total)
            .raw(")</h3><ul class=\"fails\">");
        for (i, f) in r.failures.iter().enumerate() {
            h.raw("<li>")
                .val(&format!("{key}/failures/{i}/subject"), &f.subject)
                .raw(": <span class=\"muted\">")
                .val(&format!("{key}/failures/{i}/reason"), &f.reason)
                .raw("</span></li>");
        }
        let more = r.failures_total.saturating_sub(r.failures.len());
        if more > 0 {
            let _ = write!(
                h.out,
                "<li class=\"muted\" id=\"more-{job}\">and {more} more</li>"
            );
        }
        h.raw("</ul>");
    }
}

fn channels(h: &mut Html, v: &Section<ChannelsView>) {
    h.card("channels", "Push channels", false);
    match v {
        Section::Unavailable(r) => {
            h.unavailable("/channels", r);
        }
        Section::Ok(c) if c.shown.is_empty() => {
            h.raw("<p class=\"muted\">no channels (")
                .num("/channels/ok/total", c.total)
                .raw(")</p>");
        }
        Section::Ok(c) => {
            h.raw("<p>")
                .num("/channels/ok/total", c.total)
                .raw(" in the store");
            if c.total > c.shown.len() {
                let _ = write!(h.out, ", the newest {} shown", c.shown.len());
            }
            h.raw(
                "</p><table class=\"rows\"><thead><tr><th>event</th><th>id</th><th>state</th>\
                   <th>expires</th><th>last notification</th></tr></thead><tbody>",
            );
            for (i, ch) in c.shown.iter().enumerate() {
                let key = format!("/channels/ok/shown/{i}");
                // orgsync's ids are `orgsync-<uuid>`: the uuid's start tells them apart.
                let short: String = ch
                    .id
                    .strip_prefix("orgsync-")
                    .unwrap_or(&ch.id)
                    .chars()
                    .take(8)
                    .collect();
                let class = match ch.state {
                    "live" => "ok",
                    "replaced" => "warn",
                    _ => "muted",
                };
                h.raw("<tr><td data-label=\"event\">")
                    .val(&format!("{key}/event"), &ch.event)
                    .raw("</td><td data-label=\"id\"><code title=\"")
                    .text(&ch.id)
                    .raw("\">")
                    .val_v(&format!("{key}/id"), &ch.id, &short)
                    .raw("</code></td><td data-label=\"state\" class=\"")
                    .raw(class)
                    .raw("\">")
                    .val(&format!("{key}/state"), ch.state)
                    .raw("</td><td data-label=\"expires\">")
                    .time(&format!("{key}/expiration"), ch.expiration)
                    .raw("</td><td data-label=\"last seen\">");
                match ch.last_notification {
                    Some(t) => h.time(&format!("{key}/last_notification"), t),
                    None => h.val_v(
                        &format!("{key}/last_notification"),
                        "null",
                        "none seen by this instance",
                    ),
                };
                h.raw("</td></tr>");
            }
            h.raw("</tbody></table>");
        }
    }
    h.raw("</section>");
}

fn queue(h: &mut Html, q: &QueueView) {
    h.card("queue", "Job queue", false);
    match &q.summary {
        Section::Unavailable(r) => {
            h.unavailable("/queue/summary", r);
        }
        Section::Ok(s) => {
            let k = "/queue/summary/ok";
            h.raw("<div class=\"stats\">");
            for (label, name, n) in [
                ("pending", "pending", s.pending),
                ("running", "running", s.running),
                ("failing", "failing", s.failing),
            ] {
                h.raw("<div><span class=\"l\">")
                    .raw(label)
                    .raw("</span><span class=\"big\">")
                    .num(&format!("{k}/{name}"), n)
                    .raw("</span></div>");
            }
            h.raw("</div><p>oldest job: ");
            match s.oldest_created_at {
                Some(t) => h.time(&format!("{k}/oldest_created_at"), t),
                None => h.val_v(&format!("{k}/oldest_created_at"), "null", "none queued"),
            };
            h.raw("</p>");
        }
    }
    let l = &q.lag;
    h.raw("<p>lag (notification → applied), last hour: ");
    match (l.p50_secs, l.p99_secs) {
        (Some(p50), Some(p99)) => {
            h.raw("p50 ")
                .val_v("/queue/lag/p50_secs", &p50.to_string(), &seconds(p50))
                .raw(", p99 ")
                .val_v("/queue/lag/p99_secs", &p99.to_string(), &seconds(p99))
                .raw(" over ")
                .num("/queue/lag/samples", l.samples)
                .raw(" jobs");
        }
        _ => {
            h.raw("no jobs on this instance (")
                .num("/queue/lag/samples", l.samples)
                .raw(")");
        }
    }
    h.raw("</p>");
    match &q.failing {
        Section::Unavailable(r) => {
            h.unavailable("/queue/failing", r);
        }
        Section::Ok(jobs) if jobs.is_empty() => {}
        Section::Ok(jobs) => {
            h.raw(
                "<h3>failing jobs</h3><table class=\"rows\"><thead><tr><th>job</th><th>who</th>\
                   <th>attempts</th><th>next try</th><th>last error</th></tr></thead><tbody>",
            );
            for (i, j) in jobs.iter().enumerate() {
                let k = format!("/queue/failing/ok/{i}");
                h.raw("<tr><td data-label=\"job\">")
                    .val(&format!("{k}/kind"), &j.kind)
                    .raw("</td><td data-label=\"who\">");
                if let Some(s) = &j.subject {
                    h.val(&format!("{k}/subject"), s);
                }
                h.raw("</td><td data-label=\"attempts\">")
                    .num(&format!("{k}/attempts"), j.attempts)
                    .raw("</td><td data-label=\"next try\">")
                    .time(&format!("{k}/next_attempt_at"), j.next_attempt_at)
                    .raw("</td><td data-label=\"last error\" class=\"bad\">");
                if let Some(e) = &j.last_error {
                    h.val(&format!("{k}/last_error"), e);
                }
                h.raw("</td></tr>");
            }
            h.raw("</tbody></table>");
        }
    }
    h.raw("</section>");
}

fn outbox(h: &mut Html, o: &OutboxView) {
    h.card("outbox", "Outbox and sink", false);
    let s = &o.sink;
    h.raw("<dl><dt>sink</dt><dd>");
    match &s.host {
        Some(host) => {
            h.raw("POST to ").val("/outbox/sink/host", host);
        }
        None if s.configured => {
            h.raw("configured (no host in the URL)");
        }
        None => {
            h.val_v(
                "/outbox/sink/configured",
                "false",
                "not configured: the store is the only sink",
            );
        }
    }
    h.raw("</dd>");
    if s.configured {
        h.raw("<dt>deliveries here</dt><dd>")
            .num("/outbox/sink/delivered", s.delivered)
            .raw(" delivered, <span class=\"")
            .raw(if s.failed > 0 { "bad" } else { "muted" })
            .raw("\">")
            .num("/outbox/sink/failed", s.failed)
            .raw(" failed</span></dd>");
    }
    h.raw("<dt>pending</dt><dd>");
    match &o.pending {
        Section::Unavailable(r) => {
            h.raw("unavailable: ").val("/outbox/pending/unavailable", r);
            h.raw("</dd></dl>");
        }
        Section::Ok(p) => {
            if p.at_least {
                h.raw("at least ");
            }
            h.num("/outbox/pending/ok/count", p.count)
                .raw("</dd><dt>oldest</dt><dd>");
            match p.oldest_created_at {
                Some(t) => h.time("/outbox/pending/ok/oldest_created_at", t),
                None => h.val_v("/outbox/pending/ok/oldest_created_at", "null", "none"),
            };
            h.raw("</dd></dl>");
            if !p.failing.is_empty() {
                h.raw(
                    "<h3>failing deliveries</h3><table class=\"rows\"><thead><tr><th>seq</th>\
                       <th>change</th><th>attempts</th><th>next try</th><th>last error</th>\
                       </tr></thead><tbody>",
                );
                for (i, f) in p.failing.iter().enumerate() {
                    let k = format!("/outbox/pending/ok/failing/{i}");
                    h.raw("<tr><td data-label=\"seq\">")
                        .num(&format!("{k}/seq"), f.seq)
                        .raw("</td><td data-label=\"change\">")
                        .val(&format!("{k}/kind"), &f.kind)
                        .raw(" ")
                        .val(&format!("{k}/directory_id"), &f.directory_id)
                        .raw("</td><td data-label=\"attempts\">")
                        .num(&format!("{k}/attempts"), f.attempts)
                        .raw("</td><td data-label=\"next try\">")
                        .time(&format!("{k}/next_attempt_at"), f.next_attempt_at)
                        .raw("</td><td data-label=\"last error\" class=\"bad\">")
                        .val(&format!("{k}/last_error"), &f.last_error)
                        .raw("</td></tr>");
                }
                h.raw("</tbody></table>");
            }
        }
    }
    h.raw("</section>");
}

fn changes(h: &mut Html, v: &Section<Vec<AppliedChange>>) {
    h.card("changes", "Last changes applied", true);
    match v {
        Section::Unavailable(r) => {
            h.unavailable("/changes", r);
        }
        Section::Ok(list) if list.is_empty() => {
            h.raw("<p class=\"muted\">none yet</p>");
        }
        Section::Ok(list) => {
            h.raw(
                "<table class=\"compact\"><thead><tr><th>when</th><th>job</th><th>action</th>\
                   <th>who</th><th>detail</th></tr></thead><tbody>",
            );
            for (i, c) in list.iter().enumerate() {
                let k = format!("/changes/ok/{i}");
                h.raw("<tr><td data-label=\"when\">")
                    .time(&format!("{k}/at"), c.at)
                    .raw("</td><td data-label=\"job\">")
                    .val(&format!("{k}/job"), c.job.as_str())
                    .raw("</td><td data-label=\"action\">")
                    .val(&format!("{k}/action"), &c.action)
                    .raw("</td><td class=\"who\">")
                    .val(&format!("{k}/subject"), &c.subject)
                    .raw("</td><td data-label=\"detail\">");
                if let Some(d) = &c.detail {
                    h.val(&format!("{k}/detail"), d);
                }
                h.raw("</td></tr>");
            }
            h.raw("</tbody></table>");
        }
    }
    h.raw("</section>");
}

fn google(h: &mut Html, g: &GoogleView) {
    h.card("google", "Google calls and quota", true);
    h.raw("<div class=\"stats\">");
    for (label, name, n) in [
        ("calls", "calls", g.calls),
        ("retries", "retries", g.retries),
        ("429 answers", "http_429", g.http_429),
        ("failed", "errors", g.errors),
    ] {
        h.raw("<div><span class=\"l\">")
            .raw(label)
            .raw("</span><span class=\"big\">")
            .num(&format!("/google/{name}"), n)
            .raw("</span></div>");
    }
    h.raw(
        "</div><p class=\"muted\">since this instance started; 429s are retried, \
           not failures</p>",
    );
    if !g.quota.is_empty() {
        h.raw(
            "<h3>quota: waits for pacing and 429s, per metric</h3><table class=\"rows\">\
               <thead><tr><th>metric</th><th>units</th><th>waits</th><th>waited</th>\
               <th>429s</th><th>limit per user / project per minute</th></tr></thead><tbody>",
        );
        for (i, m) in g.quota.iter().enumerate() {
            let k = format!("/google/quota/{i}");
            h.raw("<tr><td data-label=\"metric\"><code title=\"")
                .text(m.name)
                .raw("\">")
                .val(&format!("{k}/id"), m.id)
                .raw("</code></td><td data-label=\"units\">")
                .num(&format!("{k}/units"), m.units)
                .raw("</td><td data-label=\"waits\">")
                .num(&format!("{k}/waits"), m.waits)
                .raw("</td><td data-label=\"waited\">")
                .val_v(
                    &format!("{k}/waited_ms"),
                    &m.waited_ms.to_string(),
                    &duration_ms(m.waited_ms as i64),
                )
                .raw("</td><td data-label=\"429s\">")
                .num(&format!("{k}/rejected"), m.rejected)
                .raw("</td><td data-label=\"limits\">");
            let limit = |l: Option<u64>| l.map_or_else(|| "none".to_owned(), |n| n.to_string());
            h.text(&limit(m.limit_per_user))
                .raw(" / ")
                .text(&limit(m.limit_per_project))
                .raw("</td></tr>");
        }
        h.raw("</tbody></table>");
    }
    if !g.methods.is_empty() {
        h.raw(
            "<h3>per API method</h3><table class=\"rows\"><thead><tr><th>method</th>\
               <th>calls</th><th>retries</th><th>429s</th><th>failed</th></tr></thead><tbody>",
        );
        for (i, m) in g.methods.iter().enumerate() {
            let k = format!("/google/methods/{i}");
            h.raw("<tr><td data-label=\"method\"><code>")
                .val(&format!("{k}/method"), &m.method)
                .raw("</code></td><td data-label=\"calls\">")
                .num(&format!("{k}/calls"), m.calls)
                .raw("</td><td data-label=\"retries\">")
                .num(&format!("{k}/retries"), m.retries)
                .raw("</td><td data-label=\"429s\">")
                .num(&format!("{k}/http_429"), m.http_429)
                .raw("</td><td data-label=\"failed\">")
                .num(&format!("{k}/errors"), m.errors)
                .raw("</td></tr>");
        }
        h.raw("</tbody></table>");
    }
    h.raw("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use orgsync_jobs::runs::RunFailure;
    use orgsync_store::ChannelToken;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const NOW: &str = "2026-03-01T12:00:00Z";

    fn channel(token: &str) -> Channel {
        Channel {
            id: "orgsync-0f8e7d6c5b4a439281706f5e4d3c2b1a".into(),
            resource_id: "res-1".into(),
            resource_uri: None,
            event: "update".into(),
            token: ChannelToken::new(token),
            address: "https://orgsync.example.com/hooks/directory".into(),
            expiration: t("2026-03-01T17:12:30Z"),
            created_at: t("2026-03-01T11:00:00Z"),
            stopped_at: None,
            replaced_by: None,
        }
    }

    fn run(job: JobName, outcome: RunOutcome) -> RunView {
        let mut record = RunRecord {
            job,
            trigger: Trigger::Schedule,
            started_at: t("2026-03-01T02:15:00Z"),
            finished_at: t("2026-03-01T02:17:03.250Z"),
            outcome,
            counts: [("created".to_owned(), 17), ("deleted".to_owned(), 4242)]
                .into_iter()
                .collect(),
            failures: Vec::new(),
            failures_total: 0,
            message: None,
            complete: true,
        };
        if outcome == RunOutcome::Guard {
            record.message = Some("safety guard: 31% of sources are gone".into());
            record = record.with_failures((0..23).map(|i| RunFailure {
                subject: format!("person{i}@example.com"),
                reason: "quota".into(),
            }));
        }
        RunView {
            duration_ms: record.duration_ms(),
            record,
        }
    }

    fn status() -> Status {
        let now = t(NOW);
        let seen = Some(t("2026-03-01T11:58:00Z"));
        Status {
            instance: InstanceView {
                id: "orgsync-abc".into(),
                leader: true,
                uptime_secs: 7261,
                version: "9.9.9".into(),
                store: "sqlite".into(),
                rendered_at: now,
            },
            jobs: Jobs {
                contacts: JobView {
                    last_run: Section::Ok(Some(run(JobName::Contacts, RunOutcome::Guard))),
                    last_complete: Section::Ok(Some(t("2026-02-28T02:15:00Z"))),
                },
                users: JobView {
                    last_run: Section::Ok(Some(run(JobName::Users, RunOutcome::Ok))),
                    last_complete: Section::Unavailable("database is locked".into()),
                },
                scim: JobView {
                    last_run: Section::Ok(Some(run(JobName::Scim, RunOutcome::Partial))),
                    last_complete: Section::Ok(None),
                },
            },
            channels: Section::Ok(ChannelsView {
                total: 1,
                shown: vec![ChannelView::of(&channel("tok-SECRET-1234"), now, seen)],
            }),
            queue: QueueView {
                summary: Section::Ok(QueueSummaryView {
                    pending: 3,
                    running: 1,
                    failing: 2,
                    oldest_created_at: Some(t("2026-03-01T11:00:00Z")),
                }),
                lag: LagSummary {
                    window_secs: 3600,
                    samples: 12,
                    p50_secs: Some(0.25),
                    p99_secs: Some(4.5),
                },
                failing: Section::Ok(vec![FailingJob {
                    id: 7,
                    kind: "user.refresh".into(),
                    subject: Some("ann@example.com".into()),
                    attempts: 5,
                    next_attempt_at: t("2026-03-01T12:05:00Z"),
                    last_error: Some("reading the directory failed: 503".into()),
                }]),
            },
            changes: Section::Ok(vec![AppliedChange {
                at: t("2026-03-01T11:59:00Z"),
                job: JobName::Users,
                action: "created".into(),
                subject: "new@example.com".into(),
                detail: Some("add notification".into()),
            }]),
            outbox: OutboxView {
                pending: Section::Ok(OutboxPending {
                    count: 1000,
                    at_least: true,
                    oldest_created_at: Some(t("2026-03-01T10:00:00Z")),
                    failing: vec![FailingDelivery {
                        seq: 41,
                        kind: "created".into(),
                        directory_id: "1001".into(),
                        attempts: 9,
                        next_attempt_at: t("2026-03-01T12:01:00Z"),
                        last_error: "HTTP 500".into(),
                    }],
                }),
                sink: SinkView {
                    configured: true,
                    host: url_host("https://app.example.com/orgsync?key=sink-SECRET"),
                    delivered: 88,
                    failed: 3,
                },
            },
            google: GoogleView {
                calls: 120,
                requests: 131,
                retries: 11,
                http_429: 6,
                errors: 1,
                methods: vec![MethodView {
                    method: "directory.users.get".into(),
                    calls: 120,
                    retries: 11,
                    http_429: 6,
                    errors: 1,
                }],
                quota: vec![MetricUsage {
                    id: "directory.query",
                    name: "Queries per minute per user",
                    units: 131,
                    waits: 4,
                    waited_ms: 2500,
                    rejected: 6,
                    limit_per_user: Some(2400),
                    limit_per_project: None,
                    adapted: Vec::new(),
                }],
            },
        }
    }

    /// Every `data-k` element of a page: (key, `data-v` or else the text), unescaped.
    fn values(html: &str) -> Vec<(String, String)> {
        fn unescape(s: &str) -> String {
            s.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&amp;", "&")
        }
        fn attr(tag: &str, name: &str) -> Option<String> {
            let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
            let end = start + tag[start..].find('"')?;
            Some(unescape(&tag[start..end]))
        }
        let mut out = Vec::new();
        let mut rest = html;
        while let Some(i) = rest.find(" data-k=\"") {
            let open = rest[..i].rfind('<').unwrap();
            let close = i + rest[i..].find('>').unwrap();
            let tag = &rest[open..=close];
            let text_end = close + 1 + rest[close + 1..].find('<').unwrap();
            let text = unescape(&rest[close + 1..text_end]);
            let key = attr(tag, "data-k").unwrap();
            out.push((key, attr(tag, "data-v").unwrap_or(text)));
            rest = &rest[close..];
        }
        out
    }

    /// A JSON value as the page writes it.
    fn as_shown(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    #[test]
    fn the_page_and_the_json_carry_the_same_values() {
        let s = status();
        let html = render_html(&s);
        let json = serde_json::to_value(&s).unwrap();
        let shown = values(&html);
        assert!(shown.len() > 60, "only {} values on the page", shown.len());
        for (key, v) in &shown {
            let Some(j) = json.pointer(key) else {
                panic!("the page shows {key} = {v:?}, which /status.json does not have");
            };
            match (
                j.as_str().map(DateTime::parse_from_rfc3339),
                v.parse::<f64>(),
            ) {
                (Some(Ok(jt)), _) => {
                    assert_eq!(DateTime::parse_from_rfc3339(v).ok(), Some(jt), "{key}")
                }
                (_, Ok(n)) if j.is_number() => assert_eq!(j.as_f64(), Some(n), "{key}"),
                _ => assert_eq!(&as_shown(j), v, "{key}"),
            }
        }
        // The numbers people look for are all there.
        for key in [
            "/jobs/contacts/last_run/ok/counts/deleted",
            "/jobs/contacts/last_run/ok/failures_total",
            "/jobs/users/last_run/ok/counts/created",
            "/queue/summary/ok/pending",
            "/queue/lag/p99_secs",
            "/outbox/pending/ok/count",
            "/outbox/sink/failed",
            "/google/http_429",
            "/google/quota/0/waited_ms",
            "/channels/ok/shown/0/expiration",
            "/changes/ok/0/subject",
        ] {
            assert!(shown.iter().any(|(k, _)| k == key), "{key} not on the page");
        }
    }

    #[test]
    fn a_guard_stop_is_shown_with_the_command_that_releases_it() {
        let html = render_html(&status());
        assert!(html.contains(
            "stopped by the safety guard, waiting for <code>orgsync contacts sync --force</code>"
        ));
        assert!(html.contains("safety guard: 31% of sources are gone"));
        // 20 of 23 failures are kept in the record.
        assert!(html.contains("and 3 more"), "{html}");
        assert!(!html.contains("orgsync users sync --force"));
    }

    #[test]
    fn relative_times_read_as_people_say_them() {
        let now = t(NOW);
        assert_eq!(relative(t("2026-03-01T17:12:30Z"), now), "in 5 h 12 min");
        assert_eq!(relative(t("2026-03-01T11:55:00Z"), now), "5 min 0 s ago");
        assert_eq!(relative(t("2026-02-27T10:00:00Z"), now), "2 d 2 h ago");
        assert_eq!(relative(now, now), "0 s ago");
        assert_eq!(duration_ms(123_250), "2 min 3 s");
        assert_eq!(duration_ms(850), "850 ms");
    }

    #[test]
    fn hostile_emails_and_error_texts_are_escaped() {
        let mut s = status();
        let evil = "<script>alert('x')</script>\"&@example.com";
        s.changes = Section::Ok(vec![AppliedChange {
            at: t(NOW),
            job: JobName::Users,
            action: "created\"><img src=x onerror=alert(1)>".into(),
            subject: evil.into(),
            detail: Some("</td></tr></table><h1>pwned</h1>".into()),
        }]);
        s.queue.failing = Section::Ok(vec![FailingJob {
            id: 1,
            kind: "user.refresh".into(),
            subject: Some(evil.into()),
            attempts: 1,
            next_attempt_at: t(NOW),
            last_error: Some("<b>boom</b> & 'quotes'".into()),
        }]);
        s.jobs.users.last_complete = Section::Unavailable("<i>locked</i>".into());
        let html = render_html(&s);
        for bad in [
            "<script",
            "<img",
            "<h1>pwned",
            "<b>boom",
            "<i>locked",
            "onerror=alert(1)>",
        ] {
            assert!(!html.contains(bad), "{bad} reached the page unescaped");
        }
        assert!(
            html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;@example.com")
        );
        assert!(html.contains("&lt;b&gt;boom&lt;/b&gt; &amp; &#39;quotes&#39;"));
        // And they read back as written.
        let shown = values(&html);
        assert!(
            shown
                .iter()
                .any(|(k, v)| k == "/changes/ok/0/subject" && v == evil)
        );
    }

    #[test]
    fn no_secret_reaches_the_page_or_the_json() {
        let token = "tok-SECRET-1234";
        let s = status();
        let html = render_html(&s);
        let json = serde_json::to_string(&s).unwrap();
        for out in [&html, &json] {
            assert!(!out.contains(token), "the channel token leaked");
            assert!(!out.contains("sink-SECRET"), "the sink URL's query leaked");
        }
        // The channel itself is there, by id and event.
        assert!(json.contains("orgsync-0f8e7d6c5b4a439281706f5e4d3c2b1a"));
        assert!(
            html.contains(">0f8e7d6c</span>"),
            "the short id is not shown"
        );
        assert!(html.contains("app.example.com"));
    }

    #[test]
    fn a_store_that_cannot_answer_leaves_its_section_unavailable() {
        let html = render_html(&status());
        assert!(html.contains("unavailable: <span data-k=\"/jobs/users/last_complete/unavailable\">database is locked</span>"));
        let json = serde_json::to_value(status()).unwrap();
        assert_eq!(
            json["jobs"]["users"]["last_complete"]["unavailable"],
            "database is locked"
        );
    }

    #[test]
    fn channel_states() {
        let now = t(NOW);
        let mut c = channel("x");
        assert_eq!(ChannelView::of(&c, now, None).state, "live");
        c.replaced_by = Some("next".into());
        assert_eq!(ChannelView::of(&c, now, None).state, "replaced");
        assert_eq!(ChannelView::of(&c, c.expiration, None).state, "expired");
        c.stopped_at = Some(now);
        assert_eq!(ChannelView::of(&c, now, None).state, "stopped");
    }

    #[test]
    fn the_last_notification_is_kept_per_channel_and_bounded() {
        let o = Observed::new();
        let now = t(NOW);
        o.notification("a", now);
        o.notification("a", now + chrono::Duration::seconds(5));
        assert_eq!(
            o.last_notification("a"),
            Some(now + chrono::Duration::seconds(5))
        );
        assert_eq!(o.last_notification("b"), None);
        for i in 0..CHANNELS_REMEMBERED + 3 {
            o.notification(
                &format!("c{i}"),
                now + chrono::Duration::seconds(10 + i as i64),
            );
        }
        let kept = o.notifications.lock().unwrap().len();
        assert_eq!(kept, CHANNELS_REMEMBERED);
        // The one heard from longest ago went first.
        assert_eq!(o.last_notification("a"), None);
        assert!(
            o.last_notification(&format!("c{}", CHANNELS_REMEMBERED + 2))
                .is_some()
        );
    }
}
