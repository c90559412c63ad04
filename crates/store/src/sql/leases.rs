//! [`LeaseStore`] in SQL: a compare-and-set upsert, atomic on both databases.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::{Bind, SqlBackend, acquire, decode_opt, execute, fetch_optional};
use crate::rows;
use crate::time::to_ms;
use crate::{Lease, LeaseStore, Result};

#[async_trait]
impl<B: SqlBackend> LeaseStore for B {
    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool> {
        let mut conn = acquire(self).await?;
        let row = fetch_optional::<B>(
            &mut conn,
            sqlx::query(
                "INSERT INTO leases (name, holder, acquired_at, expires_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET \
                   acquired_at = CASE WHEN leases.holder = excluded.holder \
                                      AND leases.expires_at > $3 \
                                 THEN leases.acquired_at ELSE excluded.acquired_at END, \
                   holder = excluded.holder, expires_at = excluded.expires_at \
                 WHERE leases.holder = excluded.holder OR leases.expires_at <= $3 \
                 RETURNING holder",
            )
            .arg(name)
            .arg(holder)
            .arg(to_ms(now))
            .arg(to_ms(now + ttl)),
        )
        .await?;
        Ok(row.is_some())
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool> {
        let mut conn = acquire(self).await?;
        let query = sqlx::query(
            "UPDATE leases SET expires_at = $4 WHERE name = $1 AND holder = $2 AND expires_at > $3",
        )
        .arg(name)
        .arg(holder)
        .arg(to_ms(now))
        .arg(to_ms(now + ttl));
        Ok(execute::<B>(&mut conn, query).await? == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<bool> {
        let mut conn = acquire(self).await?;
        let query = sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .arg(name)
            .arg(holder);
        Ok(execute::<B>(&mut conn, query).await? == 1)
    }

    async fn get_lease(&self, name: &str) -> Result<Option<Lease>> {
        let mut conn = acquire(self).await?;
        let row = fetch_optional::<B>(
            &mut conn,
            sqlx::query("SELECT name, holder, acquired_at, expires_at FROM leases WHERE name = $1")
                .arg(name),
        )
        .await?;
        decode_opt::<B, _>(&row, rows::lease)
    }
}
