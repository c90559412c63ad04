//! A PostgreSQL schema per test: each test creates its own schema, opens its pools with
//! `search_path` pointing at it and drops it afterwards, so tests run in parallel, in one
//! process or several, and leave nothing behind.
//!
//! URL: `ORGSYNC_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`.
//! When PostgreSQL is unreachable a test FAILS if `CI=true` (the suites must run there) and
//! otherwise skips with a warning on stderr; it never skips silently.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server's URL, without a schema.
pub fn base_url() -> String {
    std::env::var("ORGSYNC_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

async fn admin_connection(url: &str) -> Result<PgConnection, String> {
    let options = PgConnectOptions::from_str(url).map_err(|e| format!("bad URL: {e}"))?;
    match tokio::time::timeout(
        Duration::from_secs(10),
        PgConnection::connect_with(&options),
    )
    .await
    {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out after 10 s".to_owned()),
    }
}

/// A fresh schema of its own; [`PgSchema::teardown`] removes it.
#[derive(Debug)]
pub struct PgSchema {
    url: String,
    name: String,
}

impl PgSchema {
    /// Create a schema with a name no other test uses (`t_<uuid>`). `None` means skip:
    /// PostgreSQL is unreachable and `CI` is not `true`; a warning naming `what` (the
    /// test suite) has gone to stderr. With `CI=true` an unreachable server panics.
    pub async fn create(what: &str) -> Option<PgSchema> {
        let url = base_url();
        let mut admin = match admin_connection(&url).await {
            Ok(conn) => conn,
            Err(err) => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!(
                        "PostgreSQL is unreachable at {url} ({err}) and CI=true: the {what} \
                         must run on PostgreSQL in CI. Start PostgreSQL or set \
                         ORGSYNC_TEST_POSTGRES_URL."
                    );
                }
                // Straight to stderr, not `eprintln!`: the test harness swallows captured
                // output of passing tests, and a skip must never be silent.
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "WARNING: skipping {what}: cannot connect to {url} ({err}). Set \
                     ORGSYNC_TEST_POSTGRES_URL or start PostgreSQL; with CI=true this fails."
                );
                return None;
            }
        };
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut admin)
            .await
            .expect("create test schema");
        admin.close().await.ok();
        Some(PgSchema { url, name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's URL (no schema in it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connection options whose `search_path` is this schema: every pool opened with them
    /// works in it.
    pub fn options(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(&self.url)
            .expect("URL parsed at create")
            .options([("search_path", self.name.as_str())])
    }

    /// Drop the schema and everything in it; a failure is a warning, not a test failure.
    pub async fn teardown(self) {
        match admin_connection(&self.url).await {
            Ok(mut conn) => {
                let sql = format!("DROP SCHEMA {} CASCADE", self.name);
                if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                {
                    eprintln!("WARNING: could not drop test schema {}: {e}", self.name);
                }
                conn.close().await.ok();
            }
            Err(e) => eprintln!("WARNING: could not drop test schema {}: {e}", self.name),
        }
    }
}
