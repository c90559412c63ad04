//! orgsync-core: the pure planners behind both sync jobs.
//!
//! Everything here is a function from data to data: no I/O, no async, no clock reads.
//! The executor (CLI / daemon) reads the Directory and the target (a member's contacts,
//! the app user store), hands the snapshots to a planner, checks the plans with the
//! [`guard::SafetyGuard`], and only then writes. Keeping the decisions pure is what lets
//! the property tests in `tests/it/planner_props.rs` prove the two promises that matter
//! most to admins (the commonest complaints about similar tools are deleted personal
//! contacts and duplicates): an unmanaged contact is never touched, and
//! applying a plan then re-planning yields an empty plan (no duplicates, no churn).
//!
//! - [`scope`]: which directory users are selected (sources, targets, app users).
//! - [`contacts`]: Directory → each member's Google Contacts (the contacts job).
//! - [`users`]: Directory → an application's user table (the users job).
//! - [`scim`]: Directory → any SCIM 2.0 application's Users and Groups.
//! - [`guard`]: the mass-deletion guard shared by every job.

pub mod contacts;
pub mod guard;
pub mod hash;
pub mod scim;
pub mod scope;
pub mod users;

pub use guard::{GuardVerdict, SafetyGuard};
pub use scope::{DirectorySnapshot, GroupMembership, ScopeRules};
