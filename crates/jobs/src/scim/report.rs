//! What a SCIM run reports: counts per target, one line per operation (planned in a dry
//! run, applied otherwise), the human summary `orgsync scim sync` prints, and the JSON
//! `--json` prints (the same struct).

use std::collections::BTreeMap;

use orgsync_core::guard::GuardVerdict;
use orgsync_core::scim::{Conflict, GroupOp, GroupsPlan, UserOp, UsersPlan};
use orgsync_scim::Features;
use serde::Serialize;

/// Counts of a target's users.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserCounts {
    pub created: usize,
    pub adopted: usize,
    pub updated: usize,
    pub deactivated: usize,
    pub reactivated: usize,
    pub deleted: usize,
    pub unchanged: usize,
    /// Suspended or archived people never provisioned: not created.
    pub not_created_inactive: usize,
    /// Server users orgsync does not manage: left alone.
    pub unmanaged: usize,
}

/// Counts of a target's groups.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupCounts {
    pub created: usize,
    pub adopted: usize,
    pub updated: usize,
    pub members_added: usize,
    pub members_removed: usize,
    pub deleted: usize,
    pub unchanged: usize,
    pub unmanaged: usize,
    /// Members who have no SCIM user (outside the users scope, or suspended and never
    /// created).
    pub members_not_provisioned: usize,
}

/// One operation, planned (dry run) or applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeLine {
    pub action: String,
    /// `user` or `group`.
    pub kind: &'static str,
    /// `userName` or `displayName`.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What one target's run did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScimReport {
    pub target: String,
    pub url: String,
    pub dry_run: bool,
    pub directory_read: usize,
    /// Directory users the target's scope selects.
    pub selected: usize,
    pub users: UserCounts,
    pub groups: GroupCounts,
    pub conflicts: Vec<Conflict>,
    pub guard: Option<GuardVerdict>,
    pub features: Option<Features>,
    /// SCIM requests per method and resource, retries included.
    pub calls: BTreeMap<String, u64>,
    pub duration_ms: u64,
    pub changes: Vec<ChangeLine>,
    /// Operations the server refused (each named), the rest applied.
    pub failures: Vec<String>,
    /// The server stopped answering part-way; the rest waits for the next run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outage: Option<String>,
}

impl ScimReport {
    /// The run's requests and duration, as it ends (however it ends).
    pub(super) fn finish(
        &mut self,
        client: &orgsync_scim::ScimClient,
        started: std::time::Instant,
    ) {
        self.calls = client.calls();
        self.duration_ms = started.elapsed().as_millis() as u64;
    }

    pub fn total_changes(&self) -> usize {
        let u = &self.users;
        let g = &self.groups;
        u.created
            + u.adopted
            + u.updated
            + u.deactivated
            + u.reactivated
            + u.deleted
            + g.created
            + g.adopted
            + g.updated
            + g.members_added
            + g.members_removed
            + g.deleted
    }

    /// The human summary `orgsync scim sync` prints.
    pub fn render_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for c in &self.changes {
            let _ = match &c.detail {
                Some(d) => writeln!(out, "{:<16} {:<5} {} ({d})", c.action, c.kind, c.name),
                None => writeln!(out, "{:<16} {:<5} {}", c.action, c.kind, c.name),
            };
        }
        let would = if self.dry_run { " (dry run)" } else { "" };
        let u = &self.users;
        let _ = writeln!(
            out,
            "scim '{}'{would}: users {} created, {} adopted, {} updated, {} deactivated, {} \
             reactivated, {} deleted, {} unchanged",
            self.target,
            u.created,
            u.adopted,
            u.updated,
            u.deactivated,
            u.reactivated,
            u.deleted,
            u.unchanged
        );
        let g = &self.groups;
        if g != &GroupCounts::default() {
            let _ = writeln!(
                out,
                "scim '{}'{would}: groups {} created, {} adopted, {} updated, {} deleted, {} \
                 unchanged; members {} added, {} removed",
                self.target,
                g.created,
                g.adopted,
                g.updated,
                g.deleted,
                g.unchanged,
                g.members_added,
                g.members_removed
            );
        }
        if u.unmanaged > 0 || g.unmanaged > 0 {
            let _ = writeln!(
                out,
                "left alone: {} users and {} groups orgsync does not manage",
                u.unmanaged, g.unmanaged
            );
        }
        if u.not_created_inactive > 0 {
            let _ = writeln!(
                out,
                "not created: {} suspended or archived people the app never had",
                u.not_created_inactive
            );
        }
        if g.members_not_provisioned > 0 {
            let _ = writeln!(
                out,
                "not added to groups: {} memberships of people outside this target's users",
                g.members_not_provisioned
            );
        }
        for c in &self.conflicts {
            let _ = writeln!(
                out,
                "conflict: {} is taken on the server by {} (externalId {}), which another \
                 provider manages; not created",
                c.user_name,
                c.id,
                c.their_external_id.as_deref().unwrap_or("-")
            );
        }
        for f in &self.failures {
            let _ = writeln!(out, "failed: {f}");
        }
        if let Some(o) = &self.outage {
            let _ = writeln!(
                out,
                "stopped: the server stopped answering ({o}); the rest is applied next run"
            );
        }
        let _ = writeln!(
            out,
            "{} people read from the directory, {} selected; {} SCIM requests in {} ms",
            self.directory_read,
            self.selected,
            self.calls.values().sum::<u64>(),
            self.duration_ms
        );
        out
    }
}

pub(super) fn user_line(action: &str, name: &str, detail: Option<String>) -> ChangeLine {
    ChangeLine {
        action: action.to_string(),
        kind: "user",
        name: name.to_string(),
        detail,
    }
}

pub(super) fn group_line(action: &str, name: &str, detail: Option<String>) -> ChangeLine {
    ChangeLine {
        action: action.to_string(),
        kind: "group",
        name: name.to_string(),
        detail,
    }
}

pub(super) fn change_paths(changes: &[orgsync_core::scim::Change]) -> String {
    changes
        .iter()
        .map(|c| {
            let p = c.attr.path();
            p.rsplit(':').next().unwrap_or(&p).to_string()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The planned operations as report lines (a dry run prints them all).
pub(super) fn planned_user_lines(plan: &UsersPlan) -> Vec<ChangeLine> {
    plan.ops
        .iter()
        .filter_map(|op| match op {
            UserOp::Create { attrs, .. } => Some(user_line("create", &attrs.user_name, None)),
            UserOp::Adopt { id, by, .. } => {
                Some(user_line("adopt", id, Some(format!("matched by {by:?}"))))
            }
            UserOp::Update {
                user_name,
                changes,
                reason,
                attrs,
                ..
            } => {
                let action = match reason.as_deref() {
                    Some("reactivated") => "reactivate",
                    Some(_) if !attrs.active => "deactivate",
                    _ => "update",
                };
                Some(user_line(action, user_name, Some(change_paths(changes))))
            }
            UserOp::Deactivate { user_name, .. } => Some(user_line(
                "deactivate",
                user_name,
                Some("left the directory or the scope".into()),
            )),
            UserOp::Delete { user_name, .. } => Some(user_line(
                "delete",
                user_name,
                Some("left the directory or the scope".into()),
            )),
            UserOp::Forget { .. } => None,
        })
        .collect()
}

pub(super) fn count_user_plan(plan: &UsersPlan, counts: &mut UserCounts) {
    for op in &plan.ops {
        match op {
            UserOp::Create { .. } => counts.created += 1,
            UserOp::Adopt { .. } => counts.adopted += 1,
            UserOp::Update { reason, attrs, .. } => match reason.as_deref() {
                Some("reactivated") => counts.reactivated += 1,
                Some(_) if !attrs.active => counts.deactivated += 1,
                _ => counts.updated += 1,
            },
            UserOp::Deactivate { .. } => counts.deactivated += 1,
            UserOp::Delete { .. } => counts.deleted += 1,
            UserOp::Forget { .. } => {}
        }
    }
}

pub(super) fn planned_group_lines(plan: &GroupsPlan) -> Vec<ChangeLine> {
    plan.ops
        .iter()
        .filter_map(|op| match op {
            GroupOp::Create {
                display_name,
                members,
                ..
            } => Some(group_line(
                "create",
                display_name,
                Some(format!("{} members", members.len())),
            )),
            GroupOp::Adopt { id, by, .. } => {
                Some(group_line("adopt", id, Some(format!("matched by {by:?}"))))
            }
            GroupOp::Update {
                display_name,
                rename,
                ..
            } => Some(group_line(
                if *rename { "rename" } else { "update" },
                display_name,
                None,
            )),
            GroupOp::AddMembers {
                display_name,
                members,
                ..
            } => Some(group_line(
                "add members",
                display_name,
                Some(members.len().to_string()),
            )),
            GroupOp::RemoveMembers {
                display_name,
                members,
                ..
            } => Some(group_line(
                "remove members",
                display_name,
                Some(members.len().to_string()),
            )),
            GroupOp::Delete { display_name, .. } => Some(group_line(
                "delete",
                display_name,
                Some("no longer configured, or gone from the directory".into()),
            )),
            GroupOp::Forget { .. } => None,
        })
        .collect()
}

pub(super) fn count_group_plan(plan: &GroupsPlan, counts: &mut GroupCounts) {
    for op in &plan.ops {
        match op {
            GroupOp::Create { .. } => counts.created += 1,
            GroupOp::Adopt { .. } => counts.adopted += 1,
            GroupOp::Update { .. } => counts.updated += 1,
            GroupOp::AddMembers { members, .. } => counts.members_added += members.len(),
            GroupOp::RemoveMembers { members, .. } => counts.members_removed += members.len(),
            GroupOp::Delete { .. } => counts.deleted += 1,
            GroupOp::Forget { .. } => {}
        }
    }
}
