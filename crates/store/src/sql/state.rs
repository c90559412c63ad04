//! [`SyncStateStore`] in SQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    Bind, SqlBackend, acquire, column, decode_all, decode_opt, execute, fetch_all, fetch_optional,
};
use crate::rows::{self, contacts_state_cols};
use crate::time::to_ms;
use crate::{ContactsUserState, Result, SyncStateStore};

#[async_trait]
impl<B: SqlBackend> SyncStateStore for B {
    async fn get_sync_state(&self, scope: &str, key: &str) -> Result<Option<String>> {
        let mut conn = acquire(self).await?;
        let row = fetch_optional::<B>(
            &mut conn,
            sqlx::query("SELECT value FROM sync_state WHERE scope = $1 AND key = $2")
                .arg(scope)
                .arg(key),
        )
        .await?;
        row.map(|r| column::<B, String>(&r, "value")).transpose()
    }

    async fn set_sync_state(
        &self,
        scope: &str,
        key: &str,
        value: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut conn = acquire(self).await?;
        let query = sqlx::query(
            "INSERT INTO sync_state (scope, key, value, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value, \
               updated_at = excluded.updated_at",
        )
        .arg(scope)
        .arg(key)
        .arg(value)
        .arg(to_ms(now));
        execute::<B>(&mut conn, query).await?;
        Ok(())
    }

    async fn delete_sync_state(&self, scope: &str, key: &str) -> Result<bool> {
        let mut conn = acquire(self).await?;
        let query = sqlx::query("DELETE FROM sync_state WHERE scope = $1 AND key = $2")
            .arg(scope)
            .arg(key);
        Ok(execute::<B>(&mut conn, query).await? == 1)
    }

    async fn list_sync_state(&self, scope: &str) -> Result<Vec<(String, String)>> {
        let mut conn = acquire(self).await?;
        let rows = fetch_all::<B>(
            &mut conn,
            sqlx::query("SELECT key, value FROM sync_state WHERE scope = $1 ORDER BY key")
                .arg(scope),
        )
        .await?;
        decode_all::<B, _>(&rows, rows::key_value)
    }

    async fn update_sync_states(
        &self,
        scope: &str,
        entries: &[(String, String)],
        removed: &[String],
        now: DateTime<Utc>,
    ) -> Result<()> {
        if entries.is_empty() && removed.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for (key, value) in entries {
            let query = sqlx::query(
                "INSERT INTO sync_state (scope, key, value, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value, \
                   updated_at = excluded.updated_at",
            )
            .arg(scope)
            .arg(key.as_str())
            .arg(value.as_str())
            .arg(to_ms(now));
            execute::<B>(&mut tx, query).await?;
        }
        for key in removed {
            let query = sqlx::query("DELETE FROM sync_state WHERE scope = $1 AND key = $2")
                .arg(scope)
                .arg(key.as_str());
            execute::<B>(&mut tx, query).await?;
        }
        tx.commit().await.map_err(B::db_err)?;
        Ok(())
    }

    async fn get_contacts_state(&self, target_id: &str) -> Result<Option<ContactsUserState>> {
        let mut conn = acquire(self).await?;
        let row = fetch_optional::<B>(
            &mut conn,
            sqlx::query(concat!(
                "SELECT ",
                contacts_state_cols!(),
                " FROM contacts_user_state WHERE target_id = $1"
            ))
            .arg(target_id),
        )
        .await?;
        decode_opt::<B, _>(&row, rows::contacts_state)
    }

    async fn put_contacts_state(&self, s: &ContactsUserState) -> Result<()> {
        let mut conn = acquire(self).await?;
        let query = sqlx::query(
            "INSERT INTO contacts_user_state (target_id, target_email, sync_token, view_hash, \
               managed_group, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (target_id) DO UPDATE SET target_email = excluded.target_email, \
               sync_token = excluded.sync_token, view_hash = excluded.view_hash, \
               managed_group = excluded.managed_group, updated_at = excluded.updated_at",
        )
        .arg(s.target_id.as_str())
        .arg(s.target_email.as_str())
        .arg(s.sync_token.as_deref())
        .arg(s.view_hash.as_deref())
        .arg(s.managed_group.as_deref())
        .arg(to_ms(s.updated_at));
        execute::<B>(&mut conn, query).await?;
        Ok(())
    }

    async fn delete_contacts_state(&self, target_id: &str) -> Result<bool> {
        let mut conn = acquire(self).await?;
        let query =
            sqlx::query("DELETE FROM contacts_user_state WHERE target_id = $1").arg(target_id);
        Ok(execute::<B>(&mut conn, query).await? == 1)
    }

    async fn list_contacts_state(&self) -> Result<Vec<ContactsUserState>> {
        let mut conn = acquire(self).await?;
        let rows = fetch_all::<B>(
            &mut conn,
            sqlx::query(concat!(
                "SELECT ",
                contacts_state_cols!(),
                " FROM contacts_user_state ORDER BY target_id"
            )),
        )
        .await?;
        decode_all::<B, _>(&rows, rows::contacts_state)
    }
}
