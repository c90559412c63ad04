//! [`OutboxStore`] in SQL.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::{Bind, SqlBackend, acquire, decode_all, execute, fetch_all, limit};
use crate::rows::{self, outbox_cols};
use crate::time::to_ms;
use crate::{OutboxEntry, OutboxStore, Result};

#[async_trait]
impl<B: SqlBackend> OutboxStore for B {
    async fn claim_outbox(
        &self,
        n: u32,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<OutboxEntry>> {
        let sql = format!(
            concat!(
                "UPDATE outbox SET attempts = attempts + 1, leased_until = $2 \
                 WHERE seq IN ( \
                   SELECT o.seq FROM outbox o \
                   WHERE o.delivered_at IS NULL AND o.next_attempt_at <= $1 \
                     AND (o.leased_until IS NULL OR o.leased_until <= $1) \
                     AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.directory_id = o.directory_id \
                                     AND p.seq < o.seq AND p.delivered_at IS NULL) \
                   ORDER BY o.seq LIMIT $3{claim_lock}) \
                 RETURNING ",
                outbox_cols!()
            ),
            claim_lock = B::CLAIM_LOCK
        );
        let mut conn = acquire(self).await?;
        let rows = fetch_all::<B>(
            &mut conn,
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .arg(to_ms(now))
                .arg(to_ms(now + lease))
                .arg(limit(n)),
        )
        .await?;
        let mut entries = decode_all::<B, _>(&rows, rows::outbox)?;
        entries.sort_by_key(|e| e.seq);
        Ok(entries)
    }

    async fn mark_outbox_delivered(&self, seq: i64, now: DateTime<Utc>) -> Result<bool> {
        let mut conn = acquire(self).await?;
        let query =
            sqlx::query("UPDATE outbox SET delivered_at = $2, leased_until = NULL WHERE seq = $1")
                .arg(seq)
                .arg(to_ms(now));
        Ok(execute::<B>(&mut conn, query).await? == 1)
    }

    async fn mark_outbox_failed(
        &self,
        seq: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut conn = acquire(self).await?;
        let query = sqlx::query(
            "UPDATE outbox SET last_error = $2, next_attempt_at = $3, leased_until = NULL \
             WHERE seq = $1 AND delivered_at IS NULL",
        )
        .arg(seq)
        .arg(error)
        .arg(to_ms(next_attempt_at));
        Ok(execute::<B>(&mut conn, query).await? == 1)
    }

    async fn list_pending_outbox(&self, n: u32) -> Result<Vec<OutboxEntry>> {
        let mut conn = acquire(self).await?;
        let rows = fetch_all::<B>(
            &mut conn,
            sqlx::query(concat!(
                "SELECT ",
                outbox_cols!(),
                " FROM outbox WHERE delivered_at IS NULL ORDER BY seq LIMIT $1"
            ))
            .arg(limit(n)),
        )
        .await?;
        decode_all::<B, _>(&rows, rows::outbox)
    }

    async fn list_outbox(&self, after_seq: i64, n: u32) -> Result<Vec<OutboxEntry>> {
        let mut conn = acquire(self).await?;
        let rows = fetch_all::<B>(
            &mut conn,
            sqlx::query(concat!(
                "SELECT ",
                outbox_cols!(),
                " FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2"
            ))
            .arg(after_seq)
            .arg(limit(n)),
        )
        .await?;
        decode_all::<B, _>(&rows, rows::outbox)
    }

    async fn prune_delivered_outbox(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut conn = acquire(self).await?;
        let query =
            sqlx::query("DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1")
                .arg(to_ms(before));
        execute::<B>(&mut conn, query).await
    }
}
