//! The contacts run's progress bar. The run reports each finished target through
//! [`orgsync_jobs::contacts::Progress`]; drawing belongs to the binary, and only on a
//! terminal (a bar in a log file or a pipe is noise).

use std::io::IsTerminal as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use orgsync_jobs::contacts::{Progress, UserOutcome, UserStatus};

/// A bar on stderr when `enabled` and stderr is a terminal; `None` otherwise.
pub fn contacts_bar(enabled: bool) -> Option<Arc<dyn Progress>> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    Some(Arc::new(Bar::default()))
}

/// Created when the run says how many targets it has.
#[derive(Default)]
struct Bar(OnceLock<ProgressBar>);

impl Progress for Bar {
    fn started(&self, targets: usize) {
        let bar = ProgressBar::new(targets as u64);
        let style = ProgressStyle::with_template(
            "{spinner} {bar:40} {pos}/{len} users  {elapsed_precise} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        let _ = self.0.set(bar);
    }

    fn user_done(&self, o: &UserOutcome) {
        let Some(bar) = self.0.get() else { return };
        bar.inc(1);
        if o.status == UserStatus::Failed {
            bar.println(format!(
                "failed: {}: {}",
                o.email,
                o.reason.as_deref().unwrap_or("")
            ));
        }
    }

    fn finished(&self) {
        if let Some(bar) = self.0.get() {
            bar.finish_and_clear();
        }
    }
}

/// The SCIM run's bar: one per phase of a target (`aws: users`, `aws: groups`), on stderr
/// and only on a terminal.
pub fn scim_bar(enabled: bool) -> Option<ScimBar> {
    (enabled && std::io::stderr().is_terminal()).then(ScimBar::default)
}

#[derive(Default)]
pub struct ScimBar(std::sync::Mutex<Option<ProgressBar>>);

impl orgsync_jobs::scim::ScimProgress for ScimBar {
    fn started(&self, what: &str, operations: usize) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = slot.take() {
            old.finish_and_clear();
        }
        let bar = ProgressBar::new(operations as u64);
        let style = ProgressStyle::with_template(
            "{spinner} {msg} {bar:40} {pos}/{len} operations  {elapsed_precise} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        *slot = Some(bar);
    }

    fn done(&self, n: usize) {
        if let Some(bar) = self.0.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            bar.inc(n as u64);
        }
    }

    fn finished(&self) {
        if let Some(bar) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}
