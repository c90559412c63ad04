//! The work of one push notification: re-read one user and apply it, deprovisioning
//! per policy when the directory no longer has the user or the scope no longer selects it.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use orgsync_client::directory::UsersListParams;
use orgsync_client::{ErrorKind, GoogleClient};
use orgsync_core::scope::{GroupMembership, ScopeRules};
use orgsync_core::users::{DeprovisionPolicy, app_user_desired};
use orgsync_store::{ChangeOutcome, Store, UserChange};
use orgsync_wire::directory::User;
use serde::Serialize;

use crate::config::{Config, GoogleConfig};

use super::{
    LAST_RECONCILE_KEY, STATE_SCOPE, UsersError, WelcomeOutcome, WelcomeReport, Welcomer,
    plan_options, profile_from_desired,
};

/// What refreshing one user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RefreshOutcome {
    pub outcome: ChangeOutcome,
    /// The directory no longer has the user (users.get answered 404).
    pub gone: bool,
    /// The user exists but is outside `[users] scope`.
    pub out_of_scope: bool,
    /// The welcome mail step, when `[mail.welcome]` is enabled and the user was created
    /// (or activated while still owed one).
    pub welcome: Option<WelcomeOutcome>,
}

/// Re-read one user (`users.get`, full projection) and apply it: the work of one push
/// notification. A 404 (deleted) or a user outside the scope is deprovisioned per policy;
/// any other error is returned for the caller to retry later.
pub async fn refresh_user(
    client: &GoogleClient,
    config: &Config,
    store: &dyn Store,
    user_key: &str,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<RefreshOutcome, UsersError> {
    let observed_at = now();
    let opts = plan_options(&config.users);
    let directory = client.directory();
    let user = match directory.users_get(user_key, Some("full"), None).await {
        Ok(u) => Some(u),
        Err(e) if e.is(ErrorKind::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let rules = &config.users.scope;
    let (desired, out_of_scope) = match &user {
        None => (None, false),
        Some(u) => {
            let groups = membership_for(client, &config.google, rules, u).await?;
            let in_query = in_scope_query(client, &config.google, rules, u).await?;
            let selected = in_query && rules.selects_structurally(u, &groups);
            match selected
                .then(|| app_user_desired(u, &opts.mapping))
                .flatten()
            {
                Some(d) => (Some(d), false),
                None => (None, true),
            }
        }
    };
    let change = match desired {
        Some(d) => UserChange::Upsert {
            profile: profile_from_desired(&d),
            observed_at,
        },
        None => {
            // The notification body's id is the key; a 404 means deleted (the push guide:
            // https://developers.google.com/workspace/admin/directory/v1/guides/push).
            let id = user
                .as_ref()
                .and_then(|u| u.id.clone())
                .unwrap_or_else(|| user_key.to_owned());
            let reason = if out_of_scope {
                "out of scope"
            } else {
                "deleted from the directory"
            };
            match opts.policy {
                DeprovisionPolicy::Keep => {
                    return Ok(RefreshOutcome {
                        outcome: ChangeOutcome::Unchanged,
                        gone: user.is_none(),
                        out_of_scope,
                        welcome: None,
                    });
                }
                DeprovisionPolicy::Deactivate => UserChange::Deactivate {
                    directory_id: id,
                    reason: reason.into(),
                    observed_at,
                },
                DeprovisionPolicy::Delete => UserChange::Delete {
                    directory_id: id,
                    reason: reason.into(),
                    observed_at,
                },
            }
        }
    };
    // Welcome mail for a user this notification provisions: owed before the create is
    // written (a crash in between still sends it later), sent after it, at most once.
    let welcomer = Welcomer::new(client, config, store);
    let mut new_user = None;
    if let (Some(w), UserChange::Upsert { profile, .. }) = (&welcomer, &change)
        && store.get_user(&profile.directory_id).await?.is_none()
        && store
            .get_sync_state(STATE_SCOPE, LAST_RECONCILE_KEY)
            .await?
            .is_some()
    {
        if let Err(e) = w
            .mark_pending(&profile.directory_id, &profile.primary_email, now())
            .await
        {
            tracing::warn!(error = %e, "cannot record an owed welcome mail");
        }
        new_user = Some((profile.directory_id.clone(), profile.primary_email.clone()));
    }
    let applied = store.apply_user_changes(&[change], now()).await?;
    let outcome = applied
        .outcomes
        .first()
        .map(|(_, o)| *o)
        .unwrap_or(ChangeOutcome::Unchanged);
    let mut welcome = None;
    if let Some(w) = &welcomer
        && matches!(outcome, ChangeOutcome::Created | ChangeOutcome::Reactivated)
        && let Some(id) = user.as_ref().and_then(|u| u.id.as_deref())
    {
        if let Some((new_id, email)) = &new_user
            && outcome == ChangeOutcome::Created
        {
            // A concurrent reconcile may have dropped the record before the row existed.
            if let Err(e) = w.mark_pending(new_id, email, now()).await {
                tracing::warn!(error = %e, "cannot record an owed welcome mail");
            }
        }
        let mut report = WelcomeReport::default();
        let o = w.deliver(id, user.as_ref(), now(), &mut report).await;
        welcome = (o != WelcomeOutcome::None).then_some(o);
    }
    Ok(RefreshOutcome {
        outcome,
        gone: user.is_none(),
        out_of_scope,
        welcome,
    })
}

/// Membership of the scope's groups for one user (nothing to read without group rules).
pub(crate) async fn membership_for(
    client: &GoogleClient,
    _google: &GoogleConfig,
    rules: &ScopeRules,
    user: &User,
) -> Result<GroupMembership, orgsync_client::Error> {
    let mut groups = GroupMembership::new();
    let Some(id) = user.id.as_deref() else {
        return Ok(groups);
    };
    let directory = client.directory();
    for group in &rules.groups {
        groups.add_group(group);
        let mut members = std::pin::pin!(directory.members_list(group, true, None));
        while let Some(m) = members.try_next().await? {
            if m.id.as_deref() == Some(id) {
                groups.add(group, id);
                break;
            }
        }
    }
    Ok(groups)
}

/// Whether the scope's Directory `query` (if any) returns this user.
pub(crate) async fn in_scope_query(
    client: &GoogleClient,
    google: &GoogleConfig,
    rules: &ScopeRules,
    user: &User,
) -> Result<bool, orgsync_client::Error> {
    let Some(query) = &rules.query else {
        return Ok(true);
    };
    let included = user
        .primary_email
        .iter()
        .any(|e| rules.include.iter().any(|i| i.eq_ignore_ascii_case(e)));
    if included {
        return Ok(true);
    }
    let Some(email) = user.primary_email.as_deref() else {
        return Ok(false);
    };
    let params = UsersListParams {
        customer: google.customer.clone(),
        domain: if google.customer.is_none() {
            google.domain.clone()
        } else {
            None
        },
        query: Some(format!("({query}) email:{email}")),
        projection: Some("basic".into()),
        ..UsersListParams::default()
    };
    let found: Vec<User> = client.directory().users_list(params).try_collect().await?;
    Ok(found.iter().any(|u| u.id == user.id))
}
