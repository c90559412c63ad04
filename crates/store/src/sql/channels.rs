//! [`ChannelStore`] in SQL: channels and the notifications received on them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::jobs::enqueue_in;
use super::{
    Bind, SqlBackend, acquire, decode_all, decode_opt, execute, fetch_all, fetch_optional,
};
use crate::rows::{self, channel_cols};
use crate::time::{opt_to_ms, to_ms};
use crate::{Channel, ChannelStore, NewJob, ReceivedNotification, Result};

#[async_trait]
impl<B: SqlBackend> ChannelStore for B {
    async fn insert_channel(&self, c: &Channel) -> Result<()> {
        let mut conn = acquire(self).await?;
        let query = sqlx::query(
            "INSERT INTO channels (id, resource_id, resource_uri, event, token, address, \
               expiration, created_at, stopped_at, replaced_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .arg(c.id.as_str())
        .arg(c.resource_id.as_str())
        .arg(c.resource_uri.as_deref())
        .arg(c.event.as_str())
        .arg(c.token.expose())
        .arg(c.address.as_str())
        .arg(to_ms(c.expiration))
        .arg(to_ms(c.created_at))
        .arg(opt_to_ms(c.stopped_at))
        .arg(c.replaced_by.as_deref());
        execute::<B>(&mut conn, query).await?;
        Ok(())
    }

    async fn get_channel(&self, id: &str) -> Result<Option<Channel>> {
        let mut conn = acquire(self).await?;
        let row = fetch_optional::<B>(
            &mut conn,
            sqlx::query(concat!(
                "SELECT ",
                channel_cols!(),
                " FROM channels WHERE id = $1"
            ))
            .arg(id),
        )
        .await?;
        decode_opt::<B, _>(&row, rows::channel)
    }

    async fn list_live_channels(&self, now: DateTime<Utc>) -> Result<Vec<Channel>> {
        let mut conn = acquire(self).await?;
        let rows = fetch_all::<B>(
            &mut conn,
            sqlx::query(concat!(
                "SELECT ",
                channel_cols!(),
                " FROM channels WHERE stopped_at IS NULL AND expiration > $1 \
                  ORDER BY expiration, id"
            ))
            .arg(to_ms(now)),
        )
        .await?;
        decode_all::<B, _>(&rows, rows::channel)
    }

    async fn list_channels(&self) -> Result<Vec<Channel>> {
        let mut conn = acquire(self).await?;
        let rows = fetch_all::<B>(
            &mut conn,
            sqlx::query(concat!(
                "SELECT ",
                channel_cols!(),
                " FROM channels ORDER BY created_at, id"
            )),
        )
        .await?;
        decode_all::<B, _>(&rows, rows::channel)
    }

    async fn mark_channel_stopped(&self, id: &str, at: DateTime<Utc>) -> Result<bool> {
        let mut conn = acquire(self).await?;
        let query =
            sqlx::query("UPDATE channels SET stopped_at = coalesce(stopped_at, $2) WHERE id = $1")
                .arg(id)
                .arg(to_ms(at));
        Ok(execute::<B>(&mut conn, query).await? == 1)
    }

    async fn mark_channel_replaced(&self, id: &str, replaced_by: &str) -> Result<bool> {
        let mut conn = acquire(self).await?;
        let query = sqlx::query("UPDATE channels SET replaced_by = $2 WHERE id = $1")
            .arg(id)
            .arg(replaced_by);
        Ok(execute::<B>(&mut conn, query).await? == 1)
    }

    async fn delete_expired_channels(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut conn = acquire(self).await?;
        let query = sqlx::query("DELETE FROM channels WHERE expiration < $1").arg(to_ms(before));
        execute::<B>(&mut conn, query).await
    }

    async fn record_notification(&self, n: &ReceivedNotification, jobs: &[NewJob]) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let query = sqlx::query(
            "INSERT INTO notifications (channel_id, message_number, resource_state, user_id, \
               received_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (channel_id, message_number) DO NOTHING",
        )
        .arg(n.channel_id.as_str())
        .arg(n.message_number)
        .arg(n.resource_state.as_str())
        .arg(n.user_id.as_deref())
        .arg(to_ms(n.received_at));
        if execute::<B>(&mut tx, query).await? == 0 {
            return Ok(false);
        }
        for job in jobs {
            enqueue_in::<B>(&mut tx, job).await?;
        }
        tx.commit().await.map_err(B::db_err)?;
        Ok(true)
    }

    async fn prune_notifications(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut conn = acquire(self).await?;
        let query =
            sqlx::query("DELETE FROM notifications WHERE received_at < $1").arg(to_ms(before));
        execute::<B>(&mut conn, query).await
    }
}
