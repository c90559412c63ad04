//! One retry policy for every loop in orgsync that tries again, and the reasons for its
//! numbers, here rather than beside each loop.
//!
//! A [`RetryPolicy`] bounds the attempts and the time, and draws the delay; *what* is
//! retried stays with the loop, because only the loop knows the answer's class. Its uses:
//!
//! | loop | policy | retried | not retried |
//! |---|---|---|---|
//! | every Google API call ([`crate::transport`]) | [`RetryPolicy::default`]: 6 attempts within 300 s; [`delay`](RetryPolicy::delay) | [`ErrorKind::Retryable`](crate::ErrorKind::Retryable): 429, 5xx, rate-limit 403s, connection failures; a non-idempotent call only when Google refused it unexecuted (429, rate-limit 403) or the request was never sent | every other 4xx, and a write whose outcome is unknown (a timeout or 5xx after it was sent: [`ErrorKind::OutcomeUnknown`](crate::ErrorKind::OutcomeUnknown)). A 401 is not a retry: the token is refreshed once |
//! | the OAuth token endpoint ([`crate::credentials`]) | [`RetryPolicy::token_endpoint`]: 3 attempts, 200 ms then 400 ms; [`backoff`](RetryPolicy::backoff) | connection failures, 5xx, 429, 408, and the `internal_failure`, `server_error`, `temporarily_unavailable` error codes | every other refusal (`invalid_grant`, `unauthorized_client`, ...): a person must fix it |
//! | the daemon's job queue and outgoing webhook (`orgsync-daemon`) | [`RetryPolicy::forever`]: jobs 2 s doubling to 1 h, deliveries 1 s doubling to 5 min; [`reschedule_delay`](RetryPolicy::reschedule_delay) | every failure: a job re-reads the user and applies the current state, and the application drops repeated deliveries by their `Idempotency-Key` | nothing is dropped |
//! | the welcome mail's `welcome:<id>` lease (`orgsync-jobs` `users::welcome`) | 5 attempts, 20 ms doubling to 320 ms; [`backoff`](RetryPolicy::backoff) | the lease held by another run | a store error: the run reports it |
//! | a contacts target whose contact changed under the run (`orgsync-jobs` `contacts::target`) | 3 attempts, no delay | a stale etag (412 `FAILED_PRECONDITION`): the book is re-read and re-planned | everything else: the target's outcome reports it |
//!
//! Why these numbers:
//! - **Exponential, capped.** Google asks clients to back off exponentially on rate
//!   limits and 5xx, up to "typically 32 or 64 seconds"
//!   (<https://developers.google.com/workspace/admin/directory/v1/limits>), so Google
//!   calls start at 1 s and cap at 32 s.
//! - **Full jitter for Google calls** (a random delay in `[0, min(cap, base·2ⁿ⁻¹)]`):
//!   many workers share one quota, and full jitter spreads their retries best
//!   (<https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/>). It is
//!   never shorter than Google's `Retry-After`, capped at 60 s so that a misbehaving
//!   header cannot park a worker.
//! - **A time budget** (300 s) ends a call that Google keeps refusing, so a command
//!   reports the outage instead of hanging; the next run or the job queue tries again.
//! - **The token endpoint** is on every call's path, so it is retried briefly and without
//!   jitter (one caller per subject fetches, the rest wait for its answer); a longer
//!   outage is reported, and a token that is still valid keeps being used meanwhile.
//! - **Durable queues never give up** and keep the full exponential delay as a floor
//!   (a failing application or Directory is not hammered), adding at most a tenth more so
//!   that entries that failed together do not come back together. Their caps are the
//!   longest a fixed problem may wait to be noticed: an hour for a job (the scheduled
//!   reconcile also repairs), five minutes for a delivery to the application.
//! - **The welcome lease** is held for the milliseconds it takes another run to claim
//!   and record one message, so a few short tries settle it; longer means that run died,
//!   and the lease's expiry (a minute) frees it for the next run.
//! - **A stale etag** means a person edited the contact during the run, not that Google
//!   is loaded: re-reading at once is right, and three tries bound a contact edited
//!   continuously.

use std::time::Duration;

use rand::Rng;

/// Bounds on retrying, and the delay before each next attempt. The fields are the knobs
/// tests turn (short delays); the constructors are the policies the module doc explains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first (`u32::MAX`: never give up).
    pub max_attempts: u32,
    /// The delay after the first attempt; doubles each attempt.
    pub base: Duration,
    /// Ceiling of the exponential delay (Google: "typically 32 or 64 seconds").
    pub max_backoff: Duration,
    /// A longer `Retry-After` is capped to this.
    pub max_retry_after: Duration,
    /// Give up rather than sleep past this much time since the first attempt.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// Google API calls.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base: Duration::from_secs(1),
            max_backoff: Duration::from_secs(32),
            max_retry_after: Duration::from_secs(60),
            max_elapsed: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        }
    }

    /// The OAuth token endpoint: three attempts, 200 ms then 400 ms apart.
    pub const fn token_endpoint() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(200),
            max_backoff: Duration::from_millis(400),
            max_retry_after: Duration::ZERO,
            max_elapsed: Duration::MAX,
        }
    }

    /// A durable queue: never give up; `base` doubling up to `max_backoff`.
    pub const fn forever(base: Duration, max_backoff: Duration) -> Self {
        RetryPolicy {
            max_attempts: u32::MAX,
            base,
            max_backoff,
            max_retry_after: Duration::ZERO,
            max_elapsed: Duration::MAX,
        }
    }

    /// Whether attempt `attempt` (counting from 1) may be followed by another.
    pub fn allows_another(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// Whether sleeping `delay` after `elapsed` since the first attempt stays within
    /// [`Self::max_elapsed`].
    pub fn within_budget(&self, elapsed: Duration, delay: Duration) -> bool {
        elapsed.saturating_add(delay) <= self.max_elapsed
    }

    /// The exponential delay after attempt `attempt` (counting from 1; 0 counts as 1),
    /// without randomness: `min(max_backoff, base·2^(attempt-1))`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_backoff)
    }

    /// The sleep after attempt `attempt` of a call: full jitter under [`Self::backoff`],
    /// never shorter than `retry_after` (capped at [`Self::max_retry_after`]).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self.backoff(attempt);
        let jittered = if exp.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(rand::rng().random_range(0.0..=exp.as_secs_f64()))
        };
        match retry_after {
            Some(ra) => jittered.max(ra.min(self.max_retry_after)),
            None => jittered,
        }
    }

    /// How long a durable queue waits after attempt `attempt` failed: [`Self::backoff`]
    /// plus up to a tenth more.
    pub fn reschedule_delay(&self, attempt: u32) -> Duration {
        let d = self.backoff(attempt);
        let jitter = rand::rng().random_range(0..=d.as_millis() as u64 / 10);
        d + Duration::from_millis(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_honours_retry_after() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            max_retry_after: Duration::from_secs(2),
            ..Default::default()
        };
        for attempt in 1..10 {
            assert!(p.delay(attempt, None) <= Duration::from_millis(400));
        }
        assert!(p.delay(1, Some(Duration::from_secs(1))) >= Duration::from_secs(1));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(100))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn backoff_doubles_from_base_and_saturates() {
        let p = RetryPolicy::forever(Duration::from_secs(2), Duration::from_secs(3600));
        assert_eq!(p.backoff(0), Duration::from_secs(2));
        assert_eq!(p.backoff(1), Duration::from_secs(2));
        assert_eq!(p.backoff(3), Duration::from_secs(8));
        assert_eq!(p.backoff(40), Duration::from_secs(3600));
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(3600));
        assert!(p.allows_another(u32::MAX - 1));
        assert!(p.within_budget(Duration::from_secs(1 << 40), Duration::from_secs(3600)));
    }

    /// The token endpoint's delays before this type existed: 200 ms · attempt, 3 tries.
    #[test]
    fn token_endpoint_waits_200_then_400_ms_and_stops_at_three() {
        let p = RetryPolicy::token_endpoint();
        assert_eq!(p.backoff(1), Duration::from_millis(200));
        assert_eq!(p.backoff(2), Duration::from_millis(400));
        assert!(p.allows_another(2));
        assert!(!p.allows_another(3));
    }

    #[test]
    fn a_reschedule_is_never_sooner_than_the_backoff() {
        let p = RetryPolicy::forever(Duration::from_secs(1), Duration::from_secs(300));
        for attempt in 1..12 {
            let d = p.reschedule_delay(attempt);
            assert!(d >= p.backoff(attempt));
            assert!(d <= p.backoff(attempt) + p.backoff(attempt) / 10);
        }
    }

    #[test]
    fn none_never_retries() {
        assert!(!RetryPolicy::none().allows_another(1));
    }
}
