//! Emulator settings: the `orgsync emulator` flags, also usable from tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::faults::quota::QuotaProfile;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EmulatorConfig {
    /// Where to listen. Tests use `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Users in the generated demo org (0 = just the admin).
    pub users: usize,
    pub domain: String,
    /// Seed of the deterministic org generator.
    pub seed: u64,
    /// Where to write the key files and `orgsync.toml` and to persist state.
    pub data_dir: Option<PathBuf>,
    /// Each API call's response time, in milliseconds: the handler runs when the request
    /// arrives and the answer leaves no sooner than this (see `faults::middleware`).
    pub latency_ms: u64,
    /// Probability (0..=1) that an API call fails with an injected error.
    pub error_rate: f64,
    /// Per-subject, per-API requests allowed per minute (None = unlimited).
    pub quota_per_user_per_minute: Option<u32>,
    /// Google's quota model (`--quota-profile google`); see `faults::quota`.
    #[serde(default)]
    pub quota_profile: Option<QuotaProfile>,
    /// `METRIC.SCOPE` → limit, over the profile's numbers (`--quota people.write.user=10`).
    #[serde(default)]
    pub quota_limits: BTreeMap<String, u64>,
    /// The length of a quota minute, seconds (`--quota-minute-secs`, default 60).
    #[serde(default = "default_quota_minute_secs")]
    pub quota_minute_secs: u64,
    /// Cap on a push channel's lifetime, seconds (Google: 2 days documented, 6 h observed).
    pub channel_ttl_cap_secs: u64,
    /// Access token lifetime, seconds.
    pub access_token_ttl_secs: i64,
    /// The user the authorization endpoint consents as (installed-app flow).
    pub consent_user: Option<String>,
    /// Personal (non-orgsync) contacts generated per user, for demos.
    pub personal_contacts_per_user: usize,
    /// Share (0..=1) of generated users that get a small deterministic photo
    /// (`users.photos`, `thumbnailPhotoEtag`). 0 (the default) keeps the generated org
    /// exactly as it was before photos existed.
    #[serde(default)]
    pub photo_share: f64,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: "127.0.0.1:8085".parse().expect("static address"),
            users: 50,
            domain: "example.com".into(),
            seed: 1,
            data_dir: None,
            latency_ms: 0,
            error_rate: 0.0,
            quota_per_user_per_minute: None,
            quota_profile: None,
            quota_limits: BTreeMap::new(),
            quota_minute_secs: default_quota_minute_secs(),
            channel_ttl_cap_secs: 6 * 3600,
            access_token_ttl_secs: 3600,
            consent_user: None,
            personal_contacts_per_user: 0,
            photo_share: 0.0,
        }
    }
}

fn default_quota_minute_secs() -> u64 {
    60
}

impl EmulatorConfig {
    /// A config for tests: an ephemeral port on loopback, no data dir.
    pub fn for_tests(users: usize) -> Self {
        EmulatorConfig {
            listen: "127.0.0.1:0".parse().expect("static address"),
            users,
            ..Default::default()
        }
    }

    /// The generated admin every org has: `admin@{domain}`.
    pub fn admin_email(&self) -> String {
        format!("admin@{}", self.domain)
    }
}
