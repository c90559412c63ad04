//! [`JobStore`] in SQL: the job queue.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::{
    Bind, Conn, SqlBackend, acquire, column, decode_all, decode_opt, execute, fetch_all, fetch_one,
    fetch_optional, limit,
};
use crate::rows::{self, job_cols};
use crate::time::to_ms;
use crate::{Enqueued, Job, JobStore, NewJob, QueueSummary, Result};

/// Enqueue `job` in the transaction `conn` (see [`JobStore::enqueue_job`]).
pub(super) async fn enqueue_in<B: SqlBackend>(
    conn: &mut Conn<B>,
    job: &NewJob,
) -> Result<Enqueued> {
    let now = to_ms(Utc::now());
    let insert = |sql: &'static str| {
        Ok::<_, crate::StoreError>(
            sqlx::query(sql)
                .arg(job.kind.as_str())
                .arg(job.directory_user_id.as_deref())
                .arg(job.user_email.as_deref())
                .arg(B::json(&job.payload)?)
                .arg(job.dedupe_key.as_deref())
                .arg(to_ms(job.run_at))
                .arg(now),
        )
    };
    if let Some(upsert) = B::ENQUEUE_UPSERT {
        let row = fetch_one::<B>(conn, insert(upsert)?).await?;
        return Ok(Enqueued {
            id: column::<B, i64>(&row, "id")?,
            coalesced: column::<B, bool>(&row, "coalesced")?,
        });
    }
    if let Some(key) = &job.dedupe_key {
        let existing = fetch_optional::<B>(
            &mut *conn,
            sqlx::query(
                "UPDATE jobs SET run_at = CASE WHEN $2 < run_at THEN $2 ELSE run_at END, \
                   payload = $3, directory_user_id = coalesce($4, directory_user_id), \
                   user_email = coalesce($5, user_email), updated_at = $6 \
                 WHERE dedupe_key = $1 AND state = 'pending' RETURNING id",
            )
            .arg(key.as_str())
            .arg(to_ms(job.run_at))
            .arg(B::json(&job.payload)?)
            .arg(job.directory_user_id.as_deref())
            .arg(job.user_email.as_deref())
            .arg(now),
        )
        .await?;
        if let Some(row) = existing {
            return Ok(Enqueued {
                id: column::<B, i64>(&row, "id")?,
                coalesced: true,
            });
        }
    }
    let row = fetch_one::<B>(
        conn,
        insert(
            "INSERT INTO jobs (kind, directory_user_id, user_email, payload, dedupe_key, run_at, \
               created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        )?,
    )
    .await?;
    Ok(Enqueued {
        id: column::<B, i64>(&row, "id")?,
        coalesced: false,
    })
}

#[async_trait]
impl<B: SqlBackend> JobStore for B {
    async fn enqueue_job(&self, job: &NewJob) -> Result<Enqueued> {
        let mut tx = self.begin_write().await?;
        let e = enqueue_in::<B>(&mut tx, job).await?;
        tx.commit().await.map_err(B::db_err)?;
        Ok(e)
    }

    async fn claim_jobs(
        &self,
        worker: &str,
        n: u32,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<Job>> {
        // One statement; the backend's claim lock keeps concurrent claimers apart.
        let sql = format!(
            concat!(
                "UPDATE jobs SET state = 'running', locked_by = $1, locked_until = $3, \
                   attempts = attempts + 1, updated_at = $2 \
                 WHERE id IN ( \
                   SELECT id FROM jobs \
                   WHERE (state = 'pending' AND run_at <= $2) \
                      OR (state = 'running' AND locked_until <= $2) \
                   ORDER BY run_at, id LIMIT $4{claim_lock}) \
                 RETURNING ",
                job_cols!()
            ),
            claim_lock = B::CLAIM_LOCK
        );
        let mut conn = acquire(self).await?;
        let rows = fetch_all::<B>(
            &mut conn,
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .arg(worker)
                .arg(to_ms(now))
                .arg(to_ms(now + lease))
                .arg(limit(n)),
        )
        .await?;
        let mut jobs = decode_all::<B, _>(&rows, rows::job)?;
        jobs.sort_by_key(|j| (j.run_at, j.id));
        Ok(jobs)
    }

    async fn complete_job(&self, id: i64, worker: &str) -> Result<bool> {
        let mut conn = acquire(self).await?;
        let query =
            sqlx::query("DELETE FROM jobs WHERE id = $1 AND state = 'running' AND locked_by = $2")
                .arg(id)
                .arg(worker);
        Ok(execute::<B>(&mut conn, query).await? == 1)
    }

    async fn fail_job(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        reschedule::<B>(self, id, worker, Some(error), retry_at, now).await
    }

    async fn release_job(&self, id: i64, worker: &str, run_at: DateTime<Utc>) -> Result<bool> {
        reschedule::<B>(self, id, worker, None, run_at, Utc::now()).await
    }

    async fn extend_job(&self, id: i64, worker: &str, until: DateTime<Utc>) -> Result<bool> {
        let mut conn = acquire(self).await?;
        let query = sqlx::query(
            "UPDATE jobs SET locked_until = $3 \
             WHERE id = $1 AND state = 'running' AND locked_by = $2",
        )
        .arg(id)
        .arg(worker)
        .arg(to_ms(until));
        Ok(execute::<B>(&mut conn, query).await? == 1)
    }

    async fn get_job(&self, id: i64) -> Result<Option<Job>> {
        let mut conn = acquire(self).await?;
        let row = fetch_optional::<B>(
            &mut conn,
            sqlx::query(concat!("SELECT ", job_cols!(), " FROM jobs WHERE id = $1")).arg(id),
        )
        .await?;
        decode_opt::<B, _>(&row, rows::job)
    }

    async fn list_failed_jobs(&self, n: u32) -> Result<Vec<Job>> {
        let mut conn = acquire(self).await?;
        let rows = fetch_all::<B>(
            &mut conn,
            sqlx::query(concat!(
                "SELECT ",
                job_cols!(),
                " FROM jobs WHERE last_error IS NOT NULL ORDER BY attempts DESC, id LIMIT $1"
            ))
            .arg(limit(n)),
        )
        .await?;
        decode_all::<B, _>(&rows, rows::job)
    }

    async fn count_jobs(&self) -> Result<u64> {
        let mut conn = acquire(self).await?;
        let row = fetch_one::<B>(&mut conn, sqlx::query("SELECT count(*) AS n FROM jobs")).await?;
        Ok(column::<B, i64>(&row, "n")? as u64)
    }

    async fn queue_summary(&self) -> Result<QueueSummary> {
        let mut conn = acquire(self).await?;
        // Sums as integers in both databases (PostgreSQL's SUM of an int is a bigint, or
        // NULL over no rows: hence COALESCE).
        let row = fetch_one::<B>(
            &mut conn,
            sqlx::query(
                "SELECT \
                   COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0) AS pending, \
                   COALESCE(SUM(CASE WHEN state = 'running' THEN 1 ELSE 0 END), 0) AS running, \
                   COALESCE(SUM(CASE WHEN last_error IS NOT NULL THEN 1 ELSE 0 END), 0) \
                     AS failing, \
                   MIN(created_at) AS oldest \
                 FROM jobs",
            ),
        )
        .await?;
        let count = |name| column::<B, i64>(&row, name).map(|n| n.max(0) as u64);
        Ok(QueueSummary {
            pending: count("pending")?,
            running: count("running")?,
            failing: count("failing")?,
            oldest_created_at: column::<B, Option<i64>>(&row, "oldest")?.map(crate::time::from_ms),
        })
    }
}

/// Put a claimed job back to pending at `run_at`: as a failure (`error` recorded, the
/// attempt counted) or as a release (no error, the claim's attempt given back). A pending
/// job with the same dedupe key, enqueued while this one ran, absorbs it instead, so the
/// one-pending-job-per-key rule holds.
async fn reschedule<B: SqlBackend>(
    store: &B,
    id: i64,
    worker: &str,
    error: Option<&str>,
    run_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let mut tx = store.begin_write().await?;
    let select = format!(
        "SELECT dedupe_key, attempts, last_error FROM jobs \
         WHERE id = $1 AND state = 'running' AND locked_by = $2{row_lock}",
        row_lock = B::ROW_LOCK
    );
    let row = fetch_optional::<B>(
        &mut tx,
        sqlx::query(sqlx::AssertSqlSafe(select)).arg(id).arg(worker),
    )
    .await?;
    let Some(row) = row else { return Ok(false) };
    let key: Option<String> = column::<B, _>(&row, "dedupe_key")?;
    let claimed_attempts: i32 = column::<B, _>(&row, "attempts")?;
    let previous_error: Option<String> = column::<B, _>(&row, "last_error")?;
    let (attempts, last_error) = match error {
        Some(e) => (claimed_attempts, Some(e.to_owned())),
        None => ((claimed_attempts - 1).max(0), previous_error),
    };
    let merged = match &key {
        Some(key) => {
            let query = sqlx::query(
                "UPDATE jobs SET run_at = CASE WHEN $2 < run_at THEN $2 ELSE run_at END, \
                   last_error = COALESCE($3, last_error), \
                   attempts = CASE WHEN $4 > attempts THEN $4 ELSE attempts END, \
                   updated_at = $5 \
                 WHERE dedupe_key = $1 AND state = 'pending'",
            )
            .arg(key.as_str())
            .arg(to_ms(run_at))
            .arg(last_error.as_deref())
            .arg(attempts)
            .arg(to_ms(now));
            execute::<B>(&mut tx, query).await? == 1
        }
        None => false,
    };
    if merged {
        execute::<B>(
            &mut tx,
            sqlx::query("DELETE FROM jobs WHERE id = $1").arg(id),
        )
        .await?;
    } else {
        let query = sqlx::query(
            "UPDATE jobs SET state = 'pending', run_at = $2, last_error = $3, attempts = $4, \
               locked_by = NULL, locked_until = NULL, updated_at = $5 WHERE id = $1",
        )
        .arg(id)
        .arg(to_ms(run_at))
        .arg(last_error.as_deref())
        .arg(attempts)
        .arg(to_ms(now));
        execute::<B>(&mut tx, query).await?;
    }
    tx.commit().await.map_err(B::db_err)?;
    Ok(true)
}
