//! Prometheus metrics in the text exposition format (version 0.0.4), written by hand.
//!
//! The daemon needs a dozen counters, one histogram and a few gauges read from the store
//! at scrape time; a small map of atomics-behind-a-mutex renders that in ~100 lines and
//! adds no dependency (see docs/DEPENDENCIES.md). Labels are fixed, low-cardinality sets
//! (resource state, reject reason, result, Google method), never user data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bounds (seconds) of the notification-to-applied lag histogram.
const LAG_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; LAG_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
    lag: Mutex<Histogram>,
}

/// Counter names and their help text.
const HELP: &[(&str, &str)] = &[
    (
        "orgsync_notifications_received_total",
        "Push notifications accepted, by resource state.",
    ),
    (
        "orgsync_notifications_rejected_total",
        "Push requests answered with a 4xx, by reason.",
    ),
    (
        "orgsync_notifications_duplicate_total",
        "Accepted notifications already recorded (replays, overlapping channels).",
    ),
    (
        "orgsync_jobs_total",
        "Jobs finished by this instance, by result.",
    ),
    (
        "orgsync_reconcile_total",
        "Full reconciles run by this instance, by result.",
    ),
    (
        "orgsync_channels_total",
        "Channel operations by this instance, by operation and result.",
    ),
    (
        "orgsync_sink_deliveries_total",
        "Outgoing webhook deliveries, by result.",
    ),
    (
        "orgsync_welcome_mail_total",
        "Welcome mails of users created by push notifications, by result.",
    ),
    (
        "orgsync_http_connections_closed_total",
        "Connections the server closed early: header_timeout (headers or the next request \
         too slow), evicted (the longest-waiting idle or slow connection, for a new one at \
         serve.max_connections).",
    ),
];

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one to counter `name` with label value `label` (the label name is per counter).
    pub fn inc(&self, name: &'static str, label: &str) {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        *c.entry((name, label.to_owned())).or_default() += 1;
    }

    /// The current value (tests and the benchmark read it).
    pub fn get(&self, name: &'static str, label: &str) -> u64 {
        let c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        c.get(&(name, label.to_owned())).copied().unwrap_or(0)
    }

    pub fn observe_lag(&self, seconds: f64) {
        let mut h = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        for (i, b) in LAG_BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds.max(0.0);
    }

    fn label_name(name: &str) -> &'static str {
        match name {
            "orgsync_notifications_received_total" => "state",
            "orgsync_notifications_rejected_total" => "reason",
            "orgsync_notifications_duplicate_total" => "state",
            "orgsync_channels_total" => "op",
            "orgsync_http_connections_closed_total" => "reason",
            _ => "result",
        }
    }

    /// Render counters and the histogram, then `gauges` (name, help, [(labels, value)]).
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        for (name, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let label = Self::label_name(name);
            for ((n, l), v) in counters.iter() {
                if n == name {
                    let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {v}", escape(l));
                }
            }
        }
        drop(counters);
        let h = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        let name = "orgsync_job_lag_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from notification received to the user row applied.\n# TYPE {name} histogram"
        );
        for (i, b) in LAG_BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", h.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum {}", h.sum);
        let _ = writeln!(out, "{name}_count {}", h.count);
        drop(h);
        for g in gauges {
            let _ = writeln!(
                out,
                "# HELP {} {}\n# TYPE {} {}",
                g.name, g.help, g.name, g.kind
            );
            for (labels, v) in &g.values {
                if labels.is_empty() {
                    let _ = writeln!(out, "{} {v}", g.name);
                } else {
                    let l: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                        .collect();
                    let _ = writeln!(out, "{}{{{}}} {v}", g.name, l.join(","));
                }
            }
        }
        out
    }
}

/// A metric computed at scrape time.
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    /// `gauge` or `counter` (Google call counts come from the client's own statistics).
    pub kind: &'static str,
    pub values: Vec<(Vec<(&'static str, String)>, f64)>,
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let m = Metrics::new();
        m.inc("orgsync_notifications_rejected_total", "bad_token");
        m.inc("orgsync_notifications_rejected_total", "bad_token");
        m.observe_lag(0.03);
        let text = m.render(&[Gauge {
            name: "orgsync_jobs_queued",
            help: "Jobs waiting.",
            kind: "gauge",
            values: vec![(vec![], 3.0)],
        }]);
        assert!(text.contains("orgsync_notifications_rejected_total{reason=\"bad_token\"} 2"));
        assert!(text.contains("orgsync_job_lag_seconds_bucket{le=\"0.025\"} 0"));
        assert!(text.contains("orgsync_job_lag_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("orgsync_jobs_queued 3"));
    }
}
