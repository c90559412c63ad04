//! Sending a plan to the app: each user operation with its recoveries (409 → adopt the
//! resource that holds the `userName`, 404 → create it again, 412 → re-read and re-apply),
//! group operations in order per group, and the links written to the store in batches as
//! operations finish. An answer that shows the app is down (after the client's retries)
//! stops the remaining operations of the run; any other refusal is reported and the rest
//! goes on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use orgsync_core::scim::{
    GROUP_SCHEMA, GroupOp, GroupsPlan, ObservedGroup, ObservedUser, ScimUser, UserOp, UsersPlan,
};
use orgsync_scim::{Resource, ScimClient};
use orgsync_store::Store;
use serde_json::{Value, json};

use super::ScimError;
use super::report::{ChangeLine, ScimReport, UserCounts, change_paths, group_line, user_line};

/// Links are written to the store after this many finished operations.
const LINK_BATCH: usize = 200;

/// What one operation changed, folded into the run's state.
#[derive(Default)]
pub(super) struct Done {
    link: Option<(String, String)>,
    unlink: Option<String>,
    /// The resource as the server now holds it (for the second pass).
    observed: Option<ObservedUser>,
    removed_id: Option<String>,
    /// Members added or removed (group operations).
    members: usize,
    line: Option<ChangeLine>,
    count: Option<&'static str>,
    failure: Option<String>,
    outage: Option<String>,
}

impl Done {
    /// An operation's error: an app that stays down (after the client's retries) stops
    /// the operations not yet started (`down`); any other refusal is reported and the
    /// rest goes on.
    fn settle(&mut self, result: Result<(), orgsync_scim::Error>, down: &AtomicBool) {
        if let Err(e) = result {
            if e.is_outage() {
                down.store(true, Ordering::Relaxed);
                self.outage = Some(e.to_string());
            } else {
                self.failure = Some(e.to_string());
            }
        }
    }
}

fn patch_for(client: &ScimClient, changes: &[orgsync_core::scim::Change]) -> Vec<Value> {
    changes
        .iter()
        .map(|c| {
            let path = c.attr.path();
            match &c.value {
                Some(v) => client.op("replace", Some(&path), Some(v.clone())),
                None => client.op("remove", Some(&path), None),
            }
        })
        .collect()
}

pub(super) fn observed_from(
    resource: &Value,
    fallback_id: &str,
    fallback: &ScimUser,
) -> ObservedUser {
    match resource.get("id").and_then(Value::as_str) {
        Some(id) => ObservedUser {
            id: id.to_string(),
            attrs: ScimUser::from_resource(resource),
            version: resource
                .pointer("/meta/version")
                .and_then(Value::as_str)
                .map(str::to_string),
        },
        None => ObservedUser {
            id: fallback_id.to_string(),
            attrs: fallback.clone(),
            version: None,
        },
    }
}

/// Write `attrs` over the resource `id`: PATCH of `changes`, or PUT without PATCH.
async fn write_user(
    client: &ScimClient,
    id: &str,
    attrs: &ScimUser,
    changes: &[orgsync_core::scim::Change],
    version: Option<&str>,
) -> Result<ObservedUser, orgsync_scim::Error> {
    let answer = if client.features.patch {
        client
            .patch(Resource::Users, id, patch_for(client, changes), version)
            .await?
    } else {
        let mut body = attrs.to_resource();
        body["id"] = json!(id);
        client.put(Resource::Users, id, &body, version).await?
    };
    Ok(match answer {
        Some(resource) => observed_from(&resource, id, attrs),
        None => ObservedUser {
            id: id.to_string(),
            attrs: attrs.clone(),
            version: None,
        },
    })
}

/// Update with the recoveries: 412 → re-read and write the difference once more; 404 →
/// the app deleted it: create it again.
async fn update_user(
    client: &ScimClient,
    id: &str,
    attrs: &ScimUser,
    changes: &[orgsync_core::scim::Change],
    version: Option<&str>,
) -> Result<(ObservedUser, bool), orgsync_scim::Error> {
    match write_user(client, id, attrs, changes, version).await {
        Ok(o) => Ok((o, false)),
        Err(e) if e.status() == Some(412) => {
            let fresh = client.get(Resource::Users, id).await?;
            let current = ScimUser::from_resource(&fresh);
            let changes = orgsync_core::scim::diff(attrs, &current, &[], true);
            let version = fresh.pointer("/meta/version").and_then(Value::as_str);
            Ok((
                write_user(client, id, attrs, &changes, version).await?,
                false,
            ))
        }
        Err(e) if e.status() == Some(404) => {
            let created = create_user(client, attrs).await?;
            Ok((created, true))
        }
        Err(e) => Err(e),
    }
}

/// Create, or on 409 find the resource that holds the `userName` and adopt it when no
/// other provider owns it.
async fn create_user(
    client: &ScimClient,
    attrs: &ScimUser,
) -> Result<ObservedUser, orgsync_scim::Error> {
    match client.create(Resource::Users, &attrs.to_resource()).await {
        Ok(resource) => Ok(observed_from(&resource, "", attrs)),
        Err(e) if e.status() == Some(409) => {
            let found = client
                .find(Resource::Users, "userName", &attrs.user_name)
                .await?;
            let existing = found.iter().map(|r| observed_from(r, "", attrs)).find(|o| {
                o.attrs.user_name.eq_ignore_ascii_case(&attrs.user_name)
                    && o.attrs
                        .external_id
                        .as_deref()
                        .is_none_or(|x| Some(x) == attrs.external_id.as_deref())
                    && !o.id.is_empty()
            });
            let Some(existing) = existing else {
                return Err(e);
            };
            let changes = orgsync_core::scim::diff(attrs, &existing.attrs, &[], false);
            if changes.is_empty() {
                return Ok(existing);
            }
            write_user(
                client,
                &existing.id,
                attrs,
                &changes,
                existing.version.as_deref(),
            )
            .await
        }
        Err(e) => Err(e),
    }
}

async fn apply_user_op(client: &ScimClient, op: UserOp, down: &AtomicBool) -> Done {
    let mut done = Done::default();
    if down.load(Ordering::Relaxed) && !matches!(op, UserOp::Forget { .. } | UserOp::Adopt { .. }) {
        return done;
    }
    let result: Result<(), orgsync_scim::Error> = async {
        match op {
            UserOp::Forget { directory_id, .. } => done.unlink = Some(directory_id),
            UserOp::Adopt {
                directory_id,
                id,
                by,
            } => {
                done.link = Some((directory_id, id.clone()));
                done.line = Some(user_line("adopt", &id, Some(format!("matched by {by:?}"))));
                done.count = Some("adopted");
            }
            UserOp::Create {
                directory_id,
                attrs,
            } => {
                let created = create_user(client, &attrs).await?;
                done.link = Some((directory_id, created.id.clone()));
                done.observed = Some(created);
                done.line = Some(user_line("create", &attrs.user_name, None));
                done.count = Some("created");
            }
            UserOp::Update {
                directory_id,
                id,
                user_name,
                changes,
                reason,
                attrs,
                version,
            } => {
                let (now, recreated) =
                    update_user(client, &id, &attrs, &changes, version.as_deref()).await?;
                let (action, count) = match reason.as_deref() {
                    _ if recreated => ("create", "created"),
                    Some("reactivated") => ("reactivate", "reactivated"),
                    Some(_) if !attrs.active => ("deactivate", "deactivated"),
                    _ => ("update", "updated"),
                };
                let detail = if recreated {
                    "the app had deleted it".to_string()
                } else {
                    change_paths(&changes)
                };
                if recreated {
                    done.removed_id = Some(id);
                }
                done.link = Some((directory_id, now.id.clone()));
                done.observed = Some(now);
                done.line = Some(user_line(action, &user_name, Some(detail)));
                done.count = Some(count);
            }
            UserOp::Deactivate {
                id,
                user_name,
                attrs,
                version,
                ..
            } => {
                let change = [orgsync_core::scim::Change {
                    attr: orgsync_core::scim::Attr::Active,
                    value: Some(json!(false)),
                }];
                match write_user(client, &id, &attrs, &change, version.as_deref()).await {
                    Ok(now) => done.observed = Some(now),
                    // Gone already: nothing left to deactivate.
                    Err(e) if e.status() == Some(404) => done.removed_id = Some(id.clone()),
                    Err(e) => return Err(e),
                }
                done.line = Some(user_line(
                    "deactivate",
                    &user_name,
                    Some("left the directory or the scope".into()),
                ));
                done.count = Some("deactivated");
            }
            UserOp::Delete {
                directory_id,
                id,
                user_name,
            } => {
                client.delete(Resource::Users, &id).await?;
                done.unlink = Some(directory_id);
                done.removed_id = Some(id);
                done.line = Some(user_line(
                    "delete",
                    &user_name,
                    Some("left the directory or the scope".into()),
                ));
                done.count = Some("deleted");
            }
        }
        Ok(())
    }
    .await;
    done.settle(result, down);
    done
}

pub(super) struct LinkWriter<'a> {
    /// Told of every finished operation (the CLI's progress bar).
    progress: &'a dyn super::ScimProgress,
    store: &'a dyn Store,
    scope: String,
    set: Vec<(String, String)>,
    removed: Vec<String>,
    now: fn() -> DateTime<Utc>,
}

impl<'a> LinkWriter<'a> {
    pub(super) fn new(
        store: &'a dyn Store,
        scope: String,
        now: fn() -> DateTime<Utc>,
        progress: &'a dyn super::ScimProgress,
    ) -> Self {
        LinkWriter {
            progress,
            store,
            scope,
            set: Vec::new(),
            removed: Vec::new(),
            now,
        }
    }

    fn link(&mut self, dir: String, id: String) {
        self.removed.retain(|d| *d != dir);
        self.set.push((dir, id));
    }

    fn unlink(&mut self, dir: String) {
        self.set.retain(|(d, _)| *d != dir);
        self.removed.push(dir);
    }

    async fn flush_if_full(&mut self) -> Result<(), ScimError> {
        if self.set.len() + self.removed.len() >= LINK_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ScimError> {
        self.store
            .update_sync_states(&self.scope, &self.set, &self.removed, (self.now)())
            .await?;
        self.set.clear();
        self.removed.clear();
        Ok(())
    }
}

fn bump_user(counts: &mut UserCounts, what: &str) {
    match what {
        "created" => counts.created += 1,
        "adopted" => counts.adopted += 1,
        "updated" => counts.updated += 1,
        "deactivated" => counts.deactivated += 1,
        "reactivated" => counts.reactivated += 1,
        "deleted" => counts.deleted += 1,
        _ => {}
    }
}

/// Apply a users plan; `observed` and `links` are updated to what the server now holds.
pub(super) async fn apply_users(
    client: &ScimClient,
    plan: UsersPlan,
    concurrency: usize,
    observed: &mut BTreeMap<String, ObservedUser>,
    links: &mut BTreeMap<String, String>,
    writer: &mut LinkWriter<'_>,
    report: &mut ScimReport,
) -> Result<(), ScimError> {
    let down = AtomicBool::new(false);
    let mut results = futures::stream::iter(plan.ops)
        .map(|op| apply_user_op(client, op, &down))
        .buffer_unordered(concurrency);
    while let Some(done) = results.next().await {
        writer.progress.done(1);
        if let Some(id) = done.removed_id {
            observed.remove(&id);
        }
        if let Some(o) = done.observed {
            observed.insert(o.id.clone(), o);
        }
        if let Some((dir, id)) = done.link {
            links.insert(dir.clone(), id.clone());
            writer.link(dir, id);
        }
        if let Some(dir) = done.unlink {
            links.remove(&dir);
            writer.unlink(dir);
        }
        if let Some(line) = done.line {
            report.changes.push(line);
        }
        if let Some(c) = done.count {
            bump_user(&mut report.users, c);
        }
        if let Some(f) = done.failure {
            report.failures.push(f);
        }
        if let Some(o) = done.outage {
            report.outage.get_or_insert(o);
        }
        writer.flush_if_full().await?;
    }
    drop(results);
    writer.flush().await
}

fn group_body(display_name: &str, directory_id: &str, members: &[String]) -> Value {
    json!({
        "schemas": [GROUP_SCHEMA],
        "displayName": display_name,
        "externalId": directory_id,
        "members": members.iter().map(|m| json!({ "value": m })).collect::<Vec<_>>(),
    })
}

/// All of one group's operations, in order.
async fn apply_group_ops(
    client: &ScimClient,
    ops: Vec<GroupOp>,
    desired: &HashMap<String, (String, Vec<String>)>,
    down: &AtomicBool,
) -> Vec<Done> {
    let mut out = Vec::new();
    for op in ops {
        if down.load(Ordering::Relaxed) {
            break;
        }
        let mut done = Done::default();
        let result: Result<(), orgsync_scim::Error> = async {
            match op {
                GroupOp::Forget { directory_id, .. } => done.unlink = Some(directory_id),
                GroupOp::Adopt {
                    directory_id,
                    id,
                    by,
                } => {
                    done.link = Some((directory_id, id.clone()));
                    done.line = Some(group_line("adopt", &id, Some(format!("matched by {by:?}"))));
                    done.count = Some("adopted");
                }
                GroupOp::Create {
                    directory_id,
                    display_name,
                    members,
                } => {
                    // Members beyond one PATCH's worth follow in PATCHes; a server
                    // without PATCH gets them all in the POST.
                    let chunk = if client.features.patch {
                        client.quirks.members_per_patch.max(1)
                    } else {
                        usize::MAX
                    };
                    let first = &members[..members.len().min(chunk)];
                    let id = match client
                        .create(
                            Resource::Groups,
                            &group_body(&display_name, &directory_id, first),
                        )
                        .await
                    {
                        Ok(r) => r
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        Err(e) if e.status() == Some(409) => {
                            // Created by an earlier, cut run (or by hand): adopt it and set
                            // its members to the directory's.
                            let found = client
                                .find(Resource::Groups, "displayName", &display_name)
                                .await?;
                            // Only a group no other provider owns: one with another
                            // `externalId` stays theirs, and the 409 is reported.
                            let Some(g) = found
                                .iter()
                                .filter_map(ObservedGroup::from_resource)
                                .find(|g| {
                                    g.external_id.as_deref().is_none_or(|x| x == directory_id)
                                })
                            else {
                                return Err(e);
                            };
                            let want: BTreeSet<String> = members.iter().cloned().collect();
                            let add: Vec<String> = want.difference(&g.members).cloned().collect();
                            let remove: Vec<String> =
                                g.members.difference(&want).cloned().collect();
                            if client.features.patch {
                                group_members(client, &g.id, &add, &remove).await?;
                            } else {
                                put_group(client, &g.id, &directory_id, desired).await?;
                            }
                            done.link = Some((directory_id.clone(), g.id.clone()));
                            done.line = Some(group_line(
                                "adopt",
                                &display_name,
                                Some("it existed (409)".into()),
                            ));
                            done.count = Some("adopted");
                            return Ok(());
                        }
                        Err(e) => return Err(e),
                    };
                    if members.len() > first.len() {
                        group_members(client, &id, &members[first.len()..], &[]).await?;
                    }
                    done.link = Some((directory_id, id));
                    done.line = Some(group_line(
                        "create",
                        &display_name,
                        Some(format!("{} members", members.len())),
                    ));
                    done.count = Some("created");
                }
                GroupOp::Update {
                    directory_id,
                    id,
                    display_name,
                    set_external_id,
                    rename,
                } => {
                    if client.features.patch {
                        let mut ops = Vec::new();
                        if rename {
                            ops.push(client.op(
                                "replace",
                                Some("displayName"),
                                Some(json!(display_name)),
                            ));
                        }
                        if let Some(x) = &set_external_id {
                            ops.push(client.op("replace", Some("externalId"), Some(json!(x))));
                        }
                        client.patch(Resource::Groups, &id, ops, None).await?;
                    } else {
                        put_group(client, &id, &directory_id, desired).await?;
                    }
                    done.line = Some(group_line(
                        if rename { "rename" } else { "update" },
                        &display_name,
                        None,
                    ));
                    done.count = Some("updated");
                }
                GroupOp::AddMembers {
                    id,
                    display_name,
                    members,
                    directory_id,
                } => {
                    if client.features.patch {
                        group_members(client, &id, &members, &[]).await?;
                    } else {
                        put_group(client, &id, &directory_id, desired).await?;
                    }
                    done.line = Some(group_line(
                        "add members",
                        &display_name,
                        Some(members.len().to_string()),
                    ));
                    done.count = Some("members_added");
                    done.members = members.len();
                }
                GroupOp::RemoveMembers {
                    id,
                    display_name,
                    members,
                    directory_id,
                } => {
                    if client.features.patch {
                        group_members(client, &id, &[], &members).await?;
                    } else {
                        put_group(client, &id, &directory_id, desired).await?;
                    }
                    done.line = Some(group_line(
                        "remove members",
                        &display_name,
                        Some(members.len().to_string()),
                    ));
                    done.count = Some("members_removed");
                    done.members = members.len();
                }
                GroupOp::Delete {
                    directory_id,
                    id,
                    display_name,
                } => {
                    client.delete(Resource::Groups, &id).await?;
                    done.unlink = Some(directory_id);
                    done.line = Some(group_line(
                        "delete",
                        &display_name,
                        Some("no longer configured, or gone from the directory".into()),
                    ));
                    done.count = Some("deleted");
                }
            }
            Ok(())
        }
        .await;
        done.settle(result, down);
        out.push(done);
    }
    out
}

async fn group_members(
    client: &ScimClient,
    id: &str,
    add: &[String],
    remove: &[String],
) -> Result<(), orgsync_scim::Error> {
    for ops in client
        .add_members_ops(add)
        .into_iter()
        .chain(client.remove_members_ops(remove))
    {
        client.patch(Resource::Groups, id, ops, None).await?;
    }
    Ok(())
}

/// A server without PATCH: the whole group.
async fn put_group(
    client: &ScimClient,
    id: &str,
    directory_id: &str,
    desired: &HashMap<String, (String, Vec<String>)>,
) -> Result<(), orgsync_scim::Error> {
    let Some((name, members)) = desired.get(directory_id) else {
        return Ok(());
    };
    let mut body = group_body(name, directory_id, members);
    body["id"] = json!(id);
    client.put(Resource::Groups, id, &body, None).await?;
    Ok(())
}

/// Apply a groups plan: each group's operations in order, groups side by side;
/// `group_links` and the store follow.
pub(super) async fn apply_groups(
    client: &ScimClient,
    gplan: GroupsPlan,
    desired: &HashMap<String, (String, Vec<String>)>,
    concurrency: usize,
    group_links: &mut BTreeMap<String, String>,
    writer: &mut LinkWriter<'_>,
    report: &mut ScimReport,
) -> Result<(), ScimError> {
    let mut by_group: BTreeMap<String, Vec<GroupOp>> = BTreeMap::new();
    for op in gplan.ops {
        by_group
            .entry(op.directory_id().to_string())
            .or_default()
            .push(op);
    }
    let down = AtomicBool::new(false);
    let desired_ref = desired;
    let down_ref = &down;
    let client_ref = client;
    let mut results = futures::stream::iter(by_group.into_values())
        .map(|ops| apply_group_ops(client_ref, ops, desired_ref, down_ref))
        .buffer_unordered(concurrency);
    while let Some(dones) = results.next().await {
        writer.progress.done(dones.len());
        for done in dones {
            if let Some((dir_id, id)) = done.link {
                group_links.insert(dir_id.clone(), id.clone());
                writer.link(dir_id, id);
            }
            if let Some(dir_id) = done.unlink {
                group_links.remove(&dir_id);
                writer.unlink(dir_id);
            }
            if let Some(line) = done.line {
                report.changes.push(line);
            }
            let n = done.members;
            match done.count {
                Some("created") => report.groups.created += 1,
                Some("adopted") => report.groups.adopted += 1,
                Some("updated") => report.groups.updated += 1,
                Some("deleted") => report.groups.deleted += 1,
                Some("members_added") => report.groups.members_added += n,
                Some("members_removed") => report.groups.members_removed += n,
                _ => {}
            }
            if let Some(f) = done.failure {
                report.failures.push(f);
            }
            if let Some(o) = done.outage {
                report.outage.get_or_insert(o);
            }
        }
        writer.flush_if_full().await?;
    }
    drop(results);
    writer.flush().await?;
    Ok(())
}
