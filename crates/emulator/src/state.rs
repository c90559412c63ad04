//! The emulator's state: one lock per API so that Directory reads never wait on a
//! People write. Each API module owns the type behind its lock.

use parking_lot::RwLock;

use crate::auth::TokenRegistry;
use crate::clock::Clock;
use crate::config::EmulatorConfig;

pub struct Emulator {
    pub config: EmulatorConfig,
    pub clock: Clock,
    /// `http://127.0.0.1:PORT`, set once the listener is bound (no trailing slash).
    pub base_url: RwLock<String>,
    pub tokens: RwLock<TokenRegistry>,
    pub oauth: RwLock<crate::oauth::OAuthState>,
    pub directory: RwLock<crate::directory::DirectoryState>,
    pub people: crate::people::PeopleState,
    pub gmail: RwLock<crate::gmail::GmailState>,
    pub calendar: RwLock<crate::calendar::CalendarState>,
    pub faults: crate::faults::Faults,
}

impl Emulator {
    /// An emulator with an empty org (no users, no keys). See [`Emulator::bootstrap`].
    pub fn empty(config: EmulatorConfig) -> Self {
        Emulator {
            faults: crate::faults::Faults::new(&config),
            config,
            clock: Clock::default(),
            base_url: RwLock::new(String::new()),
            tokens: RwLock::new(TokenRegistry::default()),
            oauth: RwLock::new(Default::default()),
            directory: RwLock::new(Default::default()),
            people: Default::default(),
            gmail: RwLock::new(Default::default()),
            calendar: RwLock::new(Default::default()),
        }
    }

    pub fn base_url(&self) -> String {
        self.base_url.read().clone()
    }
}
