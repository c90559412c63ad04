//! [`UserStore`] in SQL: the `app_users` table, each change with its outbox entry.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    Bind, Conn, SqlBackend, acquire, column, decode_all, decode_opt, execute, fetch_all, fetch_one,
    fetch_optional, limit,
};
use crate::rows::{self, user_cols};
use crate::time::{opt_to_ms, to_ms};
use crate::users::decide;
use crate::{
    AppUser, ApplyReport, NewOutboxEntry, Result, UserChange, UserQuery, UserStore, UserWrite,
};

async fn fetch_user<B: SqlBackend>(conn: &mut Conn<B>, id: &str) -> Result<Option<AppUser>> {
    let row = fetch_optional::<B>(
        conn,
        sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM app_users WHERE directory_id = $1"
        ))
        .arg(id),
    )
    .await?;
    decode_opt::<B, _>(&row, rows::user)
}

/// The stored rows of `ids`, in one query per few hundred ids: a reconcile applies its
/// changes 500 at a time, and a query per row was a third of a first import's round trips.
async fn fetch_users<B: SqlBackend>(
    conn: &mut Conn<B>,
    ids: &[&str],
) -> Result<HashMap<String, AppUser>> {
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(FETCH_CHUNK) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {} FROM app_users WHERE directory_id IN ({})",
            user_cols!(),
            placeholders.join(", ")
        );
        // Only numbered placeholders are formatted in: every id is a bound parameter.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.arg(*id);
        }
        let rows = fetch_all::<B>(conn, query).await?;
        for user in decode_all::<B, _>(&rows, rows::user)? {
            found.insert(user.profile.directory_id.clone(), user);
        }
    }
    Ok(found)
}

/// Ids per `IN (…)` list: far below SQLite's 32,766 and PostgreSQL's 65,535 parameters.
const FETCH_CHUNK: usize = 500;

async fn write_user<B: SqlBackend>(conn: &mut Conn<B>, u: &AppUser) -> Result<()> {
    let p = &u.profile;
    let query = sqlx::query(
        "INSERT INTO app_users (directory_id, primary_email, email_lower, given_name, family_name, \
           display_name, is_admin, suspended, archived, org_unit_path, department, title, phones, \
           custom_schemas, roles, active, directory_etag, content_hash, created_at, updated_at, \
           deactivated_at, last_synced_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
           $19, $20, $21, $22) \
         ON CONFLICT (directory_id) DO UPDATE SET primary_email = excluded.primary_email, \
           email_lower = excluded.email_lower, given_name = excluded.given_name, \
           family_name = excluded.family_name, display_name = excluded.display_name, \
           is_admin = excluded.is_admin, suspended = excluded.suspended, \
           archived = excluded.archived, org_unit_path = excluded.org_unit_path, \
           department = excluded.department, title = excluded.title, phones = excluded.phones, \
           custom_schemas = excluded.custom_schemas, roles = excluded.roles, \
           active = excluded.active, directory_etag = excluded.directory_etag, \
           content_hash = excluded.content_hash, created_at = excluded.created_at, \
           updated_at = excluded.updated_at, deactivated_at = excluded.deactivated_at, \
           last_synced_at = excluded.last_synced_at",
    )
    .arg(p.directory_id.as_str())
    .arg(p.primary_email.as_str())
    .arg(p.primary_email.to_lowercase().as_str())
    .arg(p.given_name.as_str())
    .arg(p.family_name.as_str())
    .arg(p.display_name.as_str())
    .arg(p.is_admin)
    .arg(p.suspended)
    .arg(p.archived)
    .arg(p.org_unit_path.as_str())
    .arg(p.department.as_deref())
    .arg(p.title.as_deref())
    .arg(B::json(&p.phones)?)
    .arg(B::json(&p.custom_schemas)?)
    .arg(B::json(&p.roles)?)
    .arg(p.active)
    .arg(p.directory_etag.as_deref())
    .arg(u.content_hash.as_str())
    .arg(to_ms(u.created_at))
    .arg(to_ms(u.updated_at))
    .arg(opt_to_ms(u.deactivated_at))
    .arg(to_ms(u.last_synced_at));
    execute::<B>(conn, query).await?;
    Ok(())
}

async fn insert_outbox<B: SqlBackend>(conn: &mut Conn<B>, e: &NewOutboxEntry) -> Result<()> {
    let query = sqlx::query(
        "INSERT INTO outbox (idempotency_key, kind, directory_id, payload, created_at, \
           next_attempt_at) VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .arg(B::uuid(e.idempotency_key))
    .arg(e.kind.as_str())
    .arg(e.directory_id.as_str())
    .arg(B::json(&e.payload)?)
    .arg(to_ms(e.created_at));
    execute::<B>(conn, query).await?;
    Ok(())
}

#[async_trait]
impl<B: SqlBackend> UserStore for B {
    async fn get_user(&self, directory_id: &str) -> Result<Option<AppUser>> {
        let mut conn = acquire(self).await?;
        fetch_user::<B>(&mut conn, directory_id).await
    }

    async fn get_user_by_email(&self, email: &str) -> Result<Option<AppUser>> {
        let mut conn = acquire(self).await?;
        let row = fetch_optional::<B>(
            &mut conn,
            sqlx::query(concat!(
                "SELECT ",
                user_cols!(),
                " FROM app_users WHERE email_lower = $1 ORDER BY active DESC, directory_id LIMIT 1"
            ))
            .arg(email.to_lowercase().as_str()),
        )
        .await?;
        decode_opt::<B, _>(&row, rows::user)
    }

    async fn list_users(&self, query: &UserQuery) -> Result<Vec<AppUser>> {
        let mut conn = acquire(self).await?;
        let rows = fetch_all::<B>(
            &mut conn,
            sqlx::query(concat!(
                "SELECT ",
                user_cols!(),
                " FROM app_users WHERE (NOT $1 OR active) AND ($2 IS NULL OR directory_id > $2) \
                  ORDER BY directory_id LIMIT $3"
            ))
            .arg(query.active_only)
            .arg(query.after_id.as_deref())
            .arg(limit(query.limit)),
        )
        .await?;
        decode_all::<B, _>(&rows, rows::user)
    }

    async fn count_users(&self, active_only: bool) -> Result<u64> {
        let mut conn = acquire(self).await?;
        let row = fetch_one::<B>(
            &mut conn,
            sqlx::query("SELECT count(*) AS n FROM app_users WHERE (NOT $1 OR active)")
                .arg(active_only),
        )
        .await?;
        Ok(column::<B, i64>(&row, "n")? as u64)
    }

    async fn apply_user_changes(
        &self,
        changes: &[UserChange],
        now: DateTime<Utc>,
    ) -> Result<ApplyReport> {
        let mut report = ApplyReport::default();
        if changes.is_empty() {
            return Ok(report);
        }
        let mut tx = self.begin_write().await?;
        let mut ids: Vec<&str> = changes.iter().map(|c| c.directory_id()).collect();
        ids.sort_unstable();
        ids.dedup();
        B::lock_users(&mut tx, &ids).await?;
        // Read once, then kept as each change leaves it (a batch may change an id twice).
        let mut existing = fetch_users::<B>(&mut tx, &ids).await?;
        for change in changes {
            let id = change.directory_id();
            let (outcome, write, entry) = decide(existing.get(id), change, now);
            match write {
                UserWrite::Insert(u) | UserWrite::Update(u) => {
                    write_user::<B>(&mut tx, &u).await?;
                    existing.insert(id.to_owned(), u);
                }
                UserWrite::Touch {
                    directory_id,
                    directory_etag,
                    last_synced_at,
                } => {
                    let query = sqlx::query(
                        "UPDATE app_users SET directory_etag = $2, last_synced_at = $3 \
                         WHERE directory_id = $1",
                    )
                    .arg(directory_id.as_str())
                    .arg(directory_etag.as_deref())
                    .arg(to_ms(last_synced_at));
                    execute::<B>(&mut tx, query).await?;
                    if let Some(cur) = existing.get_mut(id) {
                        cur.profile.directory_etag = directory_etag;
                        cur.last_synced_at = last_synced_at;
                    }
                }
                UserWrite::Remove { directory_id } => {
                    let query = sqlx::query("DELETE FROM app_users WHERE directory_id = $1")
                        .arg(directory_id.as_str());
                    execute::<B>(&mut tx, query).await?;
                    existing.remove(id);
                }
                UserWrite::Nothing => {}
            }
            if let Some(entry) = entry {
                insert_outbox::<B>(&mut tx, &entry).await?;
            }
            report
                .outcomes
                .push((change.directory_id().to_owned(), outcome));
        }
        tx.commit().await.map_err(B::db_err)?;
        Ok(report)
    }
}
