//! `/metrics` of `orgsync serve`, through `prometheus-client` (the Prometheus project's
//! Rust client, <https://docs.rs/prometheus-client>) in the Prometheus text format 0.0.4.
//!
//! Why typed: each family is a field registered once, and a call site names a label
//! *value* of an enum (`metrics.job_finished(JobResult::Applied)`), never a metric name or
//! a free string, so a misspelt metric or label does not compile instead of being counted
//! and never exported. Labels are fixed, low-cardinality sets (resource state, reject
//! reason, result, operation), never user data; the per-scrape `event` and `method`
//! labels come from our channel event types and the client's fixed method table.
//!
//! Two kinds of values: event counters and the lag histogram, updated where things
//! happen; and values read at scrape time (queue depths from the store, channel expiry,
//! leadership, the client's call counts), handed to [`Metrics::render`] as a [`Scrape`]
//! and encoded from a registry built for that scrape, so a value the store could not give
//! is left out rather than reported stale.

use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// The `Content-Type` Prometheus scrapes: text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the notification-to-applied lag histogram.
const LAG_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0];
/// How far back the status page's exact lag percentiles look.
pub const LAG_WINDOW: Duration = Duration::from_secs(3600);
/// The most lag samples kept for them (the oldest go first): at most 160 KB, and a
/// burst of notifications cannot grow it.
pub const LAG_SAMPLES_MAX: usize = 10_000;

// Family names as registered. Counters are exported with `_total` appended by the
// encoder; help texts get a final period from the registry.
const RECEIVED: &str = "orgsync_notifications_received";
const REJECTED: &str = "orgsync_notifications_rejected";
const DUPLICATE: &str = "orgsync_notifications_duplicate";
const JOBS: &str = "orgsync_jobs";
const RECONCILE: &str = "orgsync_reconcile";
const CHANNELS: &str = "orgsync_channels";
const SINK: &str = "orgsync_sink_deliveries";
const WELCOME: &str = "orgsync_welcome_mail";
const CLOSED: &str = "orgsync_http_connections_closed";
const LAG: &str = "orgsync_job_lag_seconds";

/// A label value type: its values and their exported spelling.
trait LabelValue: Copy + 'static {
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
}

/// An enum of label values, spelt as exported (which is not always a Rust identifier:
/// `makeAdmin`, `bad_token`).
macro_rules! label_value {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every value, in export order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The label value as exported.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl LabelValue for $name {
            const ALL: &'static [Self] = $name::ALL;
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    };
}

label_value! {
    /// `X-Goog-Resource-State` of a push: `sync` or one of the watched events.
    ResourceState {
        Sync => "sync",
        Add => "add",
        Update => "update",
        Delete => "delete",
        Undelete => "undelete",
        MakeAdmin => "makeAdmin",
    }
}

impl ResourceState {
    /// The state named by a push header; `None` for a state orgsync does not watch.
    pub fn parse(header: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.as_str() == header)
    }
}

label_value! {
    /// Why a push request was answered with a 4xx.
    RejectReason {
        MissingChannelId => "missing_channel_id",
        BadChannelId => "bad_channel_id",
        MissingResourceState => "missing_resource_state",
        UnknownResourceState => "unknown_resource_state",
        BadMessageNumber => "bad_message_number",
        UnknownChannel => "unknown_channel",
        BadToken => "bad_token",
        ChannelNotReady => "channel_not_ready",
        ResourceMismatch => "resource_mismatch",
        ChannelClosed => "channel_closed",
        BadBody => "bad_body",
        BodyTooLarge => "body_too_large",
        BodyTimeout => "body_timeout",
        BodyUnreadable => "body_unreadable",
    }
}

label_value! {
    /// How a job ended.
    JobResult {
        Applied => "applied",
        Unchanged => "unchanged",
        Stale => "stale",
        Failed => "failed",
    }
}

label_value! {
    /// How a full reconcile ended.
    ReconcileResult {
        Ok => "ok",
        Guard => "guard",
        Error => "error",
    }
}

label_value! {
    /// A channel operation of the leader.
    ChannelOp {
        Created => "created",
        Stopped => "stopped",
        Error => "error",
    }
}

label_value! {
    /// How one outgoing webhook delivery ended.
    SinkResult {
        Ok => "ok",
        Failed => "failed",
    }
}

label_value! {
    /// What became of the welcome mail of a user a job created.
    WelcomeResult {
        Sent => "sent",
        Failed => "failed",
        Waiting => "waiting",
    }
}

label_value! {
    /// Why the server closed a connection early.
    CloseReason {
        HeaderTimeout => "header_timeout",
        Evicted => "evicted",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: ResourceState,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    reason: RejectReason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    result: JobResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    result: ReconcileResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    op: ChannelOp,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    result: SinkResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WelcomeLabels {
    result: WelcomeResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloseLabels {
    reason: CloseReason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

/// The daemon's event metrics, registered once.
pub struct Metrics {
    registry: Registry,
    received: Family<StateLabels, Counter>,
    rejected: Family<RejectLabels, Counter>,
    duplicate: Family<StateLabels, Counter>,
    jobs: Family<JobLabels, Counter>,
    reconciles: Family<ReconcileLabels, Counter>,
    channels: Family<ChannelLabels, Counter>,
    sink: Family<SinkLabels, Counter>,
    welcome: Family<WelcomeLabels, Counter>,
    closed: Family<CloseLabels, Counter>,
    lag: Histogram,
    /// The lags of the last [`LAG_WINDOW`] (at most [`LAG_SAMPLES_MAX`]), oldest first:
    /// the histogram's buckets are too coarse for the status page's p50 and p99.
    lag_recent: Mutex<VecDeque<(Instant, f64)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            received: Family::default(),
            rejected: Family::default(),
            duplicate: Family::default(),
            jobs: Family::default(),
            reconciles: Family::default(),
            channels: Family::default(),
            sink: Family::default(),
            welcome: Family::default(),
            closed: Family::default(),
            lag: Histogram::new(LAG_BUCKETS),
            lag_recent: Mutex::new(VecDeque::new()),
        };
        let mut r = std::mem::take(&mut m.registry);
        r.register(
            RECEIVED,
            "Push notifications accepted, by resource state",
            m.received.clone(),
        );
        r.register(
            REJECTED,
            "Push requests answered with a 4xx, by reason",
            m.rejected.clone(),
        );
        r.register(
            DUPLICATE,
            "Accepted notifications already recorded (replays, overlapping channels)",
            m.duplicate.clone(),
        );
        r.register(
            JOBS,
            "Jobs finished by this instance, by result",
            m.jobs.clone(),
        );
        r.register(
            RECONCILE,
            "Full reconciles run by this instance, by result",
            m.reconciles.clone(),
        );
        r.register(
            CHANNELS,
            "Channel operations by this instance, by operation and result",
            m.channels.clone(),
        );
        r.register(
            SINK,
            "Outgoing webhook deliveries, by result",
            m.sink.clone(),
        );
        r.register(
            WELCOME,
            "Welcome mails of users created by push notifications, by result",
            m.welcome.clone(),
        );
        r.register(
            CLOSED,
            "Connections the server closed early: header_timeout (headers or the next \
             request too slow), evicted (the longest-waiting idle or slow connection, for a \
             new one at serve.max_connections)",
            m.closed.clone(),
        );
        r.register(
            LAG,
            "Time from notification received to the user row applied",
            m.lag.clone(),
        );
        m.registry = r;
        m
    }

    pub fn notification_received(&self, state: ResourceState) {
        self.received.get_or_create(&StateLabels { state }).inc();
    }

    pub fn notification_rejected(&self, reason: RejectReason) {
        self.rejected.get_or_create(&RejectLabels { reason }).inc();
    }

    pub fn notification_duplicate(&self, state: ResourceState) {
        self.duplicate.get_or_create(&StateLabels { state }).inc();
    }

    pub fn job_finished(&self, result: JobResult) {
        self.jobs.get_or_create(&JobLabels { result }).inc();
    }

    pub fn reconcile_finished(&self, result: ReconcileResult) {
        self.reconciles
            .get_or_create(&ReconcileLabels { result })
            .inc();
    }

    pub fn channel_op(&self, op: ChannelOp) {
        self.channels.get_or_create(&ChannelLabels { op }).inc();
    }

    pub fn sink_delivery(&self, result: SinkResult) {
        self.sink.get_or_create(&SinkLabels { result }).inc();
    }

    pub fn welcome_mail(&self, result: WelcomeResult) {
        self.welcome.get_or_create(&WelcomeLabels { result }).inc();
    }

    pub fn connection_closed(&self, reason: CloseReason) {
        self.closed.get_or_create(&CloseLabels { reason }).inc();
    }

    /// A job's lag from notification to applied row; a negative lag (clock skew between
    /// instances) counts as 0.
    pub fn observe_lag(&self, seconds: f64) {
        self.observe_lag_at(Instant::now(), seconds);
    }

    fn observe_lag_at(&self, now: Instant, seconds: f64) {
        let seconds = seconds.max(0.0);
        self.lag.observe(seconds);
        let mut recent = self.lag_recent.lock().unwrap_or_else(|e| e.into_inner());
        prune_lags(&mut recent, now);
        if recent.len() >= LAG_SAMPLES_MAX {
            recent.pop_front();
        }
        recent.push_back((now, seconds));
    }

    /// Exact p50 and p99 of the job lags of the last [`LAG_WINDOW`] on this instance.
    pub fn lag_summary(&self) -> LagSummary {
        self.lag_summary_at(Instant::now())
    }

    fn lag_summary_at(&self, now: Instant) -> LagSummary {
        let mut lags: Vec<f64> = {
            let mut recent = self.lag_recent.lock().unwrap_or_else(|e| e.into_inner());
            prune_lags(&mut recent, now);
            recent.iter().map(|(_, s)| *s).collect()
        };
        lags.sort_by(f64::total_cmp);
        LagSummary {
            window_secs: LAG_WINDOW.as_secs(),
            samples: lags.len(),
            p50_secs: percentile(&lags, 0.50),
            p99_secs: percentile(&lags, 0.99),
        }
    }

    /// A counter's value by its exported name (with `_total`) and label value, as tests
    /// and the benchmark read it.
    ///
    /// # Panics
    /// On a name this daemon does not export, or a label value that counter never has:
    /// a misspelt name in a test then fails instead of reading 0.
    pub fn get(&self, name: &str, label: &str) -> u64 {
        fn read<L, V>(family: &Family<L, Counter>, label: &str, make: impl Fn(V) -> L) -> u64
        where
            L: Clone + std::hash::Hash + Eq,
            V: LabelValue,
        {
            let Some(value) = V::ALL.iter().copied().find(|v| v.as_str() == label) else {
                panic!("no label value {label:?}: orgsync serve never counts it");
            };
            family.get(&make(value)).map_or(0, |c| c.get())
        }
        match name.strip_suffix("_total").unwrap_or("") {
            RECEIVED => read(&self.received, label, |state: ResourceState| StateLabels {
                state,
            }),
            REJECTED => read(&self.rejected, label, |reason: RejectReason| RejectLabels {
                reason,
            }),
            DUPLICATE => read(&self.duplicate, label, |state: ResourceState| StateLabels {
                state,
            }),
            JOBS => read(&self.jobs, label, |result: JobResult| JobLabels { result }),
            RECONCILE => read(&self.reconciles, label, |result: ReconcileResult| {
                ReconcileLabels { result }
            }),
            CHANNELS => read(&self.channels, label, |op: ChannelOp| ChannelLabels { op }),
            SINK => read(&self.sink, label, |result: SinkResult| SinkLabels {
                result,
            }),
            WELCOME => read(&self.welcome, label, |result: WelcomeResult| {
                WelcomeLabels { result }
            }),
            CLOSED => read(&self.closed, label, |reason: CloseReason| CloseLabels {
                reason,
            }),
            _ => panic!("no counter named {name:?}: orgsync serve does not export it"),
        }
    }

    /// The exposition: the event metrics, then `scrape`'s values.
    pub fn render(&self, scrape: &Scrape) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail, and neither can our label encoders.
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry)
            .and_then(|()| prometheus_text::encode(&mut out, &scrape.registry()))
        {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

/// Drop the samples older than [`LAG_WINDOW`].
fn prune_lags(recent: &mut VecDeque<(Instant, f64)>, now: Instant) {
    while let Some(&(at, _)) = recent.front() {
        if now.saturating_duration_since(at) > LAG_WINDOW {
            recent.pop_front();
        } else {
            break;
        }
    }
}

/// The nearest-rank percentile `p` (0 to 1) of sorted values: the smallest sample that
/// at least `p` of the samples do not exceed.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The job lag (notification received → applied) over the last hour, for the status page.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LagSummary {
    pub window_secs: u64,
    /// Samples in the window (at most [`LAG_SAMPLES_MAX`]).
    pub samples: usize,
    /// `None` without samples.
    pub p50_secs: Option<f64>,
    pub p99_secs: Option<f64>,
}

/// Values read when Prometheus scrapes. `None`: the store could not say this time, and the
/// metric is left out of this scrape rather than reported as 0.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Jobs not yet completed (pending or running), all instances.
    pub jobs_queued: Option<i64>,
    /// Queued jobs whose last attempt failed.
    pub jobs_failing: Option<i64>,
    /// Outbox entries not yet delivered (capped where they are counted).
    pub outbox_pending: Option<i64>,
    /// Seconds until the current channel of each event type expires.
    pub channel_expiry: Option<Vec<(String, f64)>>,
    pub connections_open: i64,
    pub leader: bool,
    /// The client's call counts by method.
    pub google: Vec<GoogleCalls>,
}

/// One Google method's totals since the process started.
#[derive(Debug, Clone)]
pub struct GoogleCalls {
    pub method: String,
    /// Calls, retries counted once.
    pub calls: u64,
    /// Calls that failed after retries.
    pub errors: u64,
}

impl Scrape {
    fn registry(&self) -> Registry {
        let mut r = Registry::default();
        let gauge = |r: &mut Registry, name: &str, help: &str, v: i64| {
            let g: Gauge = Gauge::default();
            g.set(v);
            r.register(name, help, g);
        };
        if let Some(n) = self.jobs_queued {
            gauge(
                &mut r,
                "orgsync_jobs_queued",
                "Jobs not yet completed (pending or running), all instances",
                n,
            );
        }
        if let Some(n) = self.jobs_failing {
            gauge(
                &mut r,
                "orgsync_jobs_failing",
                "Queued jobs whose last attempt failed (they are retried with backoff)",
                n,
            );
        }
        if let Some(n) = self.outbox_pending {
            gauge(
                &mut r,
                "orgsync_outbox_pending",
                "Outbox entries not yet delivered to the sink (capped at 10000)",
                n,
            );
        }
        if let Some(channels) = &self.channel_expiry {
            let expiry = Family::<EventLabels, Gauge<f64, AtomicU64>>::default();
            for (event, secs) in channels {
                expiry
                    .get_or_create(&EventLabels {
                        event: event.clone(),
                    })
                    .set(*secs);
            }
            r.register(
                "orgsync_channel_expiry_seconds",
                "Seconds until the current channel of each event type expires",
                expiry,
            );
        }
        gauge(
            &mut r,
            "orgsync_http_connections_open",
            "Connections the HTTP server holds open (at most serve.max_connections)",
            self.connections_open,
        );
        gauge(
            &mut r,
            "orgsync_leader",
            "1 if this instance holds the leader lease (channels, reconcile schedule)",
            i64::from(self.leader),
        );
        let calls = Family::<MethodLabels, Counter>::default();
        let errors = Family::<MethodLabels, Counter>::default();
        for g in &self.google {
            let labels = MethodLabels {
                method: g.method.clone(),
            };
            calls.get_or_create(&labels).inc_by(g.calls);
            errors.get_or_create(&labels).inc_by(g.errors);
        }
        r.register(
            "orgsync_google_calls",
            "Google API calls by method (retries counted once)",
            calls,
        );
        r.register(
            "orgsync_google_errors",
            "Google API calls that failed after retries, by method",
            errors,
        );
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let m = Metrics::new();
        m.notification_rejected(RejectReason::BadToken);
        m.notification_rejected(RejectReason::BadToken);
        m.observe_lag(0.03);
        let text = m.render(&Scrape {
            jobs_queued: Some(3),
            ..Scrape::default()
        });
        assert!(text.contains("orgsync_notifications_rejected_total{reason=\"bad_token\"} 2"));
        assert!(text.contains("orgsync_job_lag_seconds_bucket{le=\"0.025\"} 0"));
        assert!(text.contains("orgsync_job_lag_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("orgsync_jobs_queued 3"));
    }

    /// The names, labels and types dashboards and the README know.
    #[test]
    fn every_exported_name_keeps_its_name_label_and_type() {
        let m = Metrics::new();
        m.notification_received(ResourceState::MakeAdmin);
        m.notification_duplicate(ResourceState::Update);
        m.notification_rejected(RejectReason::BodyTooLarge);
        m.job_finished(JobResult::Stale);
        m.reconcile_finished(ReconcileResult::Guard);
        m.channel_op(ChannelOp::Created);
        m.sink_delivery(SinkResult::Ok);
        m.welcome_mail(WelcomeResult::Waiting);
        m.connection_closed(CloseReason::HeaderTimeout);
        m.observe_lag(-1.0);
        let text = m.render(&Scrape {
            jobs_queued: Some(1),
            jobs_failing: Some(0),
            outbox_pending: Some(7),
            channel_expiry: Some(vec![("update".into(), 3599.5)]),
            connections_open: 2,
            leader: true,
            google: vec![GoogleCalls {
                method: "directory.users.get".into(),
                calls: 5,
                errors: 1,
            }],
        });
        for line in [
            "# TYPE orgsync_notifications_received_total counter",
            "orgsync_notifications_received_total{state=\"makeAdmin\"} 1",
            "orgsync_notifications_duplicate_total{state=\"update\"} 1",
            "# HELP orgsync_notifications_rejected_total Push requests answered with a 4xx, by reason.",
            "orgsync_notifications_rejected_total{reason=\"body_too_large\"} 1",
            "orgsync_jobs_total{result=\"stale\"} 1",
            "orgsync_reconcile_total{result=\"guard\"} 1",
            "orgsync_channels_total{op=\"created\"} 1",
            "orgsync_sink_deliveries_total{result=\"ok\"} 1",
            "orgsync_welcome_mail_total{result=\"waiting\"} 1",
            "orgsync_http_connections_closed_total{reason=\"header_timeout\"} 1",
            "# TYPE orgsync_job_lag_seconds histogram",
            "orgsync_job_lag_seconds_bucket{le=\"0.01\"} 1",
            "orgsync_job_lag_seconds_bucket{le=\"+Inf\"} 1",
            "orgsync_job_lag_seconds_sum 0",
            "orgsync_job_lag_seconds_count 1",
            "# TYPE orgsync_jobs_queued gauge",
            "orgsync_jobs_queued 1",
            "orgsync_jobs_failing 0",
            "orgsync_outbox_pending 7",
            "orgsync_channel_expiry_seconds{event=\"update\"} 3599.5",
            "orgsync_http_connections_open 2",
            "orgsync_leader 1",
            "# TYPE orgsync_google_calls_total counter",
            "orgsync_google_calls_total{method=\"directory.users.get\"} 5",
            "orgsync_google_errors_total{method=\"directory.users.get\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(line)),
                "missing {line:?} in\n{text}"
            );
        }
        assert_eq!(m.get("orgsync_jobs_total", "stale"), 1);
        assert_eq!(m.get("orgsync_jobs_total", "applied"), 0);
        assert_eq!(m.get(crate::server::CLOSED_TOTAL, "header_timeout"), 1);
    }

    #[test]
    fn a_value_the_store_could_not_give_is_left_out() {
        let text = Metrics::new().render(&Scrape::default());
        assert!(!text.contains("orgsync_jobs_queued"));
        assert!(!text.contains("orgsync_channel_expiry_seconds"));
        assert!(text.contains("orgsync_leader 0"));
    }

    #[test]
    fn every_watched_event_is_a_resource_state() {
        for event in orgsync_wire::directory::WATCH_EVENTS {
            assert_eq!(ResourceState::parse(event).map(|s| s.as_str()), Some(event));
        }
        assert_eq!(ResourceState::parse("sync"), Some(ResourceState::Sync));
        assert_eq!(
            ResourceState::ALL.len(),
            orgsync_wire::directory::WATCH_EVENTS.len() + 1
        );
        assert_eq!(ResourceState::parse("exists"), None);
    }

    #[test]
    fn lag_percentiles_are_exact_over_the_last_hour_only() {
        let m = Metrics::new();
        let t0 = Instant::now();
        assert_eq!(m.lag_summary_at(t0).samples, 0);
        assert_eq!(m.lag_summary_at(t0).p50_secs, None);
        // An old sample, then 1..=100 seconds half an hour later.
        m.observe_lag_at(t0, 1000.0);
        let t1 = t0 + Duration::from_secs(1800);
        for s in (1..=100).rev() {
            m.observe_lag_at(t1, f64::from(s));
        }
        let at_t1 = m.lag_summary_at(t1);
        assert_eq!(at_t1.samples, 101);
        assert_eq!(at_t1.p99_secs, Some(100.0));
        // An hour after the first sample it is gone; the others stay.
        let s = m.lag_summary_at(t0 + LAG_WINDOW + Duration::from_secs(1));
        assert_eq!(s.samples, 100);
        assert_eq!(s.p50_secs, Some(50.0));
        assert_eq!(s.p99_secs, Some(99.0));
        assert_eq!(m.lag_summary_at(t1 + LAG_WINDOW * 2).samples, 0);
    }

    #[test]
    fn the_lag_ring_keeps_the_newest_samples_up_to_its_bound() {
        let m = Metrics::new();
        let t = Instant::now();
        for i in 0..LAG_SAMPLES_MAX + 5 {
            m.observe_lag_at(t, i as f64);
        }
        let s = m.lag_summary_at(t);
        assert_eq!(s.samples, LAG_SAMPLES_MAX);
        // The five oldest (0..5) were dropped: the oldest sample left is 5.
        let recent = m.lag_recent.lock().unwrap();
        assert_eq!(recent.front().map(|(_, v)| *v), Some(5.0));
    }

    #[test]
    #[should_panic(expected = "no counter named")]
    fn reading_a_misspelt_counter_fails() {
        Metrics::new().get("orgsync_job_total", "applied");
    }
}
