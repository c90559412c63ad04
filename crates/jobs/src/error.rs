//! What kind of failure a job's error is. Each job has its own error type (the facts of
//! what failed); [`FailureKind`] is the one question every caller asks of all of them —
//! fix something, or run again later? — so the binary keeps one table from kind to exit
//! code and the same failure exits the same way from every command.

use std::error::Error as StdError;

/// The kinds of failure a job reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A Google call failed; the client's class says whether it is temporary.
    Google(orgsync_client::ErrorKind),
    /// The state store failed during a run (unreachable, or a statement refused).
    Store,
    /// Configuration, credentials or input that someone must fix.
    Config,
    /// The safety guard stopped the run before it wrote anything.
    Guard,
    /// Another writing run holds the run lease and the caller chose not to wait.
    Busy,
    /// The run lost its lease mid-run and stopped part-way.
    Interrupted,
    /// An application's server (a SCIM target) failed: `temporary` when it was
    /// unreachable or kept answering 429/5xx, else it refused (a token, a request).
    Application { temporary: bool },
}

/// The kind of the first error in `err`'s chain (itself, then its sources) that this
/// crate, the client or the store defines; `None` when there is none.
pub fn kind_of(err: &(dyn StdError + 'static)) -> Option<FailureKind> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(kind) = own_kind(e) {
            return Some(kind);
        }
        next = e.source();
    }
    None
}

fn own_kind(e: &(dyn StdError + 'static)) -> Option<FailureKind> {
    use crate::{auth, config, contacts, mail, users};
    if let Some(e) = e.downcast_ref::<contacts::ContactsError>() {
        return Some(e.kind());
    }
    if let Some(e) = e.downcast_ref::<contacts::lease::LeaseError>() {
        return Some(e.kind());
    }
    if let Some(e) = e.downcast_ref::<users::UsersError>() {
        return Some(e.kind());
    }
    if let Some(e) = e.downcast_ref::<crate::scim::ScimError>() {
        return Some(e.kind());
    }
    if let Some(e) = e.downcast_ref::<mail::MailError>() {
        return Some(e.kind());
    }
    if e.downcast_ref::<auth::LoginError>().is_some() {
        // Every login failure is something the person logging in acts on (a file, a
        // refusal, a browser that never came back).
        return Some(FailureKind::Config);
    }
    if e.downcast_ref::<crate::attributes::UnknownAttribute>()
        .is_some()
    {
        return Some(FailureKind::Config);
    }
    if e.downcast_ref::<config::ConfigError>().is_some() {
        return Some(FailureKind::Config);
    }
    if let Some(e) = e.downcast_ref::<orgsync_client::Error>() {
        return Some(FailureKind::Google(e.kind()));
    }
    if e.downcast_ref::<orgsync_store::StoreError>().is_some() {
        return Some(FailureKind::Store);
    }
    None
}

/// `err` and its sources joined by `": "`, as `anyhow` prints an error with `{:#}`: the
/// form a per-user failure is reported in.
pub fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] crate::config::ConfigError);

    #[test]
    fn the_kind_is_found_through_the_sources_and_the_chain_reads_like_anyhow() {
        let inner = crate::config::ConfigError::Invalid("x".into());
        let outer = Outer(inner);
        assert_eq!(kind_of(&outer), Some(FailureKind::Config));
        assert_eq!(chain_text(&outer), "outer: invalid configuration: x");
        let io = std::io::Error::other("plain");
        assert_eq!(kind_of(&io), None);
    }
}
