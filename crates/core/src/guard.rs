//! The mass-deletion guard, shared by both jobs.
//!
//! The worst failure of directory-sync tools is a transient or empty read treated as
//! "nobody exists" (<https://github.com/awslabs/ssosync/issues/194>: a failed read removed
//! every user and group; Microsoft Entra quarantines provisioning on `TooManyDeletes` for
//! the same reason). So a run that would delete/deprovision more than a share of what it
//! manages (default 20%), or anything at all while the directory read selected nobody,
//! stops before writing and says why and what to check. `--force` overrides.
//!
//! What counts: contact deletions of leavers (not duplicates: a duplicate's person keeps
//! one contact, and relabels delete nothing), and app users deprovisioned because they
//! are gone from the directory or the scope (not suspensions: those are facts the
//! directory stated, not absences a bad read could fake).

use serde::{Deserialize, Serialize};

use crate::contacts::{DesiredDirectory, UserPlan};
use crate::users::UsersPlan;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SafetyGuard {
    /// Largest share (0.0–1.0) of managed items one run may delete.
    pub max_delete_share: f64,
    /// Proceed even when the guard would stop (`--force`).
    pub force: bool,
}

impl Default for SafetyGuard {
    fn default() -> Self {
        SafetyGuard {
            max_delete_share: 0.20,
            force: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "camelCase")]
pub enum GuardVerdict {
    Proceed,
    /// The guard would have stopped, but `force` was set.
    Forced {
        reason: String,
    },
    /// Do not write anything.
    Stop {
        reason: String,
        what_to_check: String,
    },
}

impl GuardVerdict {
    pub fn may_proceed(&self) -> bool {
        !matches!(self, GuardVerdict::Stop { .. })
    }
}

const CONTACTS_HINT: &str = "check the [contacts] scope rules (org units, groups, query, \
     include/exclude) and that the directory read succeeded and returned everyone (admin \
     subject, customer, read-only scope)";

impl SafetyGuard {
    /// Check every target's contact plan of one run together.
    pub fn check_contacts(&self, plans: &[UserPlan], directory: &DesiredDirectory) -> GuardVerdict {
        let managed: usize = plans
            .iter()
            .filter(|p| p.skipped.is_none())
            .map(|p| p.managed_observed)
            .sum();
        let deletions: usize = plans.iter().map(|p| p.deletes.len()).sum();
        self.check(
            "managed contacts",
            managed,
            deletions,
            directory.is_empty(),
            directory.read_count,
            CONTACTS_HINT,
        )
    }

    /// The same check from counts, per user with that user's plan.
    pub fn check_contact_counts(
        &self,
        managed: usize,
        deletions: usize,
        directory_empty: bool,
        read_count: usize,
    ) -> GuardVerdict {
        self.check(
            "managed contacts",
            managed,
            deletions,
            directory_empty,
            read_count,
            CONTACTS_HINT,
        )
    }

    /// The run-level prediction, before any address book is read (it costs no API call):
    /// of the previous run's `sources` colleagues, `gone` are gone. Each source is a
    /// contact in up to `books` address books, so the message gives both counts: "81 of
    /// 97 colleagues" alone hides that about 7,800 contacts are at stake.
    pub fn check_source_counts(
        &self,
        sources: usize,
        gone: usize,
        books: usize,
        directory_empty: bool,
        read_count: usize,
    ) -> GuardVerdict {
        let what = format!(
            "colleagues orgsync copies, about {} contacts in {books} address books",
            gone.saturating_mul(books)
        );
        self.check(
            &what,
            sources,
            gone,
            directory_empty,
            read_count,
            CONTACTS_HINT,
        )
    }

    /// Address books whose owners left the targets: orgsync empties them of its contacts.
    /// Of the `books` it filled last time, `leaving` would be emptied.
    pub fn check_former_targets(
        &self,
        books: usize,
        leaving: usize,
        directory_empty: bool,
        read_count: usize,
    ) -> GuardVerdict {
        self.check(
            "address books orgsync fills (their owners left [contacts.targets]; orgsync's \
             contacts in them would be removed)",
            books,
            leaving,
            directory_empty,
            read_count,
            "check the [contacts.targets] scope rules (org units, groups, query, \
             include/exclude) and that the directory read returned everyone",
        )
    }

    /// Check a users reconcile plan.
    pub fn check_users(&self, plan: &UsersPlan) -> GuardVerdict {
        self.check(
            "active app users",
            plan.observed_active,
            plan.deprovisions,
            plan.directory_read == 0,
            plan.directory_read,
            "check the [users] scope rules (org units, groups, query, include/exclude) and that \
             the directory read succeeded and returned everyone (admin subject, customer, \
             read-only scope)",
        )
    }

    /// Check a SCIM target's users plan: managed users deactivated or deleted because
    /// they left the directory or the scope, of the users orgsync manages there.
    pub fn check_scim_users(
        &self,
        target: &str,
        plan: &crate::scim::UsersPlan,
        directory_selected: usize,
        directory_read: usize,
    ) -> GuardVerdict {
        self.check(
            &format!("users orgsync manages in SCIM target '{target}'"),
            plan.managed,
            plan.deprovisions(),
            directory_selected == 0,
            directory_read,
            "check the scope of this [[scim]] target (its `users` rules or [users.scope]) and \
             that the directory read succeeded and returned everyone",
        )
    }

    /// Check a SCIM target's groups plan: managed groups deleted because they left the
    /// configuration or the directory.
    pub fn check_scim_groups(
        &self,
        target: &str,
        plan: &crate::scim::GroupsPlan,
        desired: usize,
    ) -> GuardVerdict {
        self.check(
            &format!("groups orgsync manages in SCIM target '{target}'"),
            plan.managed,
            plan.deletions(),
            desired == 0,
            desired,
            "check the `groups` of this [[scim]] target and that the directory's groups \
             were read",
        )
    }

    fn check(
        &self,
        what: &str,
        managed: usize,
        deletions: usize,
        directory_empty: bool,
        read_count: usize,
        check_hint: &str,
    ) -> GuardVerdict {
        let reason = if deletions > 0 && directory_empty {
            Some(format!(
                "the directory read returned {read_count} users and selected none, yet this run \
                 would remove {deletions} of {managed} {what}"
            ))
        } else if deletions > 0 && (deletions as f64) > self.max_delete_share * managed as f64 {
            Some(format!(
                "this run would remove {deletions} of {managed} {what} ({:.1}%), more than the \
                 configured limit of {:.1}%",
                100.0 * deletions as f64 / managed.max(1) as f64,
                100.0 * self.max_delete_share
            ))
        } else {
            None
        };
        match (reason, self.force) {
            (None, _) => GuardVerdict::Proceed,
            (Some(reason), true) => GuardVerdict::Forced { reason },
            (Some(reason), false) => GuardVerdict::Stop {
                reason: format!("safety guard: {reason}; nothing was written"),
                what_to_check: format!(
                    "{check_hint}; re-run with --force if these removals are intended"
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_level_guard_names_colleagues_and_the_contacts_at_stake() {
        let guard = SafetyGuard::default();
        let GuardVerdict::Stop { reason, .. } = guard.check_source_counts(97, 81, 97, false, 97)
        else {
            panic!("81 of 97 gone must stop the run");
        };
        assert!(reason.contains("81 of 97 colleagues"), "{reason}");
        assert!(
            reason.contains("about 7857 contacts in 97 address books"),
            "{reason}"
        );
        assert_eq!(
            guard.check_source_counts(97, 10, 97, false, 97),
            GuardVerdict::Proceed
        );
    }
}
