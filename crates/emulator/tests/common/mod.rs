//! The People test harness shared by `people.rs` and `people_responses.rs`: an emulator
//! with no mutation hold (the tests mutate one after another) and tokens minted
//! directly in its token table.

use std::time::Duration;

use orgsync_emulator::auth::IssuedToken;
use orgsync_emulator::{EmulatorConfig, EmulatorHandle, spawn};

pub struct Env {
    pub h: EmulatorHandle,
    pub c: reqwest::Client,
}

pub async fn env() -> Env {
    let h = spawn(EmulatorConfig::for_tests(0)).await.expect("spawn");
    h.emulator.people.set_mutation_hold(Duration::ZERO);
    Env {
        h,
        c: reqwest::Client::new(),
    }
}

impl Env {
    /// An access token for `user` with one scope, valid for an hour.
    pub fn token_with(&self, user: &str, scope: &str) -> String {
        let emu = &self.h.emulator;
        let now = emu.clock.now_ms();
        emu.tokens.write().issue(
            IssuedToken {
                subject: Some(user.into()),
                client_id: "test".into(),
                scopes: vec![scope.into()],
                expires_at_ms: now + 3_600_000,
            },
            now,
        )
    }
}
