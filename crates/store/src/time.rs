//! Timestamps are stored as integer Unix milliseconds on every backend: one representation,
//! identical SQL comparisons on SQLite and PostgreSQL, and no time-zone surprises. These
//! helpers are the only place that converts.

use chrono::{DateTime, TimeZone, Utc};

/// Unix milliseconds of `t`.
pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The instant `ms` Unix milliseconds; out-of-range values clamp to the representable range.
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    match Utc.timestamp_millis_opt(ms) {
        chrono::LocalResult::Single(t) => t,
        _ if ms < 0 => DateTime::<Utc>::MIN_UTC,
        _ => DateTime::<Utc>::MAX_UTC,
    }
}

/// `t` truncated to whole milliseconds, i.e. what a round trip through the store returns.
pub fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    from_ms(to_ms(t))
}

/// Optional variant of [`to_ms`].
pub fn opt_to_ms(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(to_ms)
}

/// Optional variant of [`from_ms`].
pub fn opt_from_ms(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(from_ms)
}
