//! Call accounting for run reports: calls per method, retries, errors by kind, 429s.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use serde::Serialize;

use crate::error::ErrorKind;

/// Per-method counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MethodStats {
    /// HTTP requests sent (every attempt counts).
    pub requests: u64,
    /// Logical calls (one per `send`, however many attempts it took).
    pub calls: u64,
    /// Attempts after the first.
    pub retries: u64,
    /// Calls that finally failed, by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// 429 answers seen (each one, retried or not).
    pub http_429: u64,
    /// Sum of request latencies, milliseconds.
    pub latency_ms_total: u64,
}

/// A point-in-time copy of [`CallStats`]; `Serialize` for run reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub methods: BTreeMap<&'static str, MethodStats>,
    pub total_requests: u64,
    pub total_calls: u64,
    pub total_retries: u64,
    pub total_429: u64,
    pub total_errors: u64,
}

impl StatsSnapshot {
    pub fn calls(&self, method: &str) -> u64 {
        self.methods.get(method).map_or(0, |m| m.calls)
    }
}

/// Shared counters, updated by every call.
#[derive(Debug, Default)]
pub struct CallStats {
    methods: Mutex<BTreeMap<&'static str, MethodStats>>,
}

impl CallStats {
    pub(crate) fn request(&self, method: &'static str, status: Option<u16>, latency_ms: u64) {
        let mut m = self.methods.lock();
        let s = m.entry(method).or_default();
        s.requests += 1;
        s.latency_ms_total += latency_ms;
        if status == Some(429) {
            s.http_429 += 1;
        }
    }

    pub(crate) fn finished(&self, method: &'static str, attempts: u32, error: Option<ErrorKind>) {
        let mut m = self.methods.lock();
        let s = m.entry(method).or_default();
        s.calls += 1;
        s.retries += u64::from(attempts.saturating_sub(1));
        if let Some(kind) = error {
            *s.errors.entry(kind).or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let methods = self.methods.lock().clone();
        let mut snap = StatsSnapshot::default();
        for s in methods.values() {
            snap.total_requests += s.requests;
            snap.total_calls += s.calls;
            snap.total_retries += s.retries;
            snap.total_429 += s.http_429;
            snap.total_errors += s.errors.values().sum::<u64>();
        }
        snap.methods = methods;
        snap
    }

    pub fn reset(&self) {
        self.methods.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_totals_add_up() {
        let s = CallStats::default();
        s.request("a", Some(429), 5);
        s.request("a", Some(200), 5);
        s.finished("a", 2, None);
        s.request("b", Some(404), 1);
        s.finished("b", 1, Some(ErrorKind::NotFound));
        let snap = s.snapshot();
        assert_eq!(snap.total_requests, 3);
        assert_eq!(snap.total_calls, 2);
        assert_eq!(snap.total_retries, 1);
        assert_eq!(snap.total_429, 1);
        assert_eq!(snap.total_errors, 1);
        assert_eq!(snap.calls("a"), 1);
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["methods"]["b"]["errors"]["not_found"], 1);
    }
}
