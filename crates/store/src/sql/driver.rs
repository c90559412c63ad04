//! The sqlx operations the shared SQL needs, for any driver that has them.
//!
//! Generic code over [`sqlx::Database`] normally repeats a long `where` clause (the
//! connection is an executor, every bound type encodes, every read type decodes) on every
//! function, because Rust does not carry such bounds along with `D: Database`. Here each
//! bound is stated once, on a blanket impl of a small trait whose methods do the bound
//! operation; [`Driver`] joins them as supertraits, which Rust does carry. Nothing here is
//! implemented by hand: SQLite and PostgreSQL get it from the blanket impls.

use std::future::Future;
use std::pin::Pin;

use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

/// A query being built for driver `D`.
pub type Q<'q, D> = Query<'q, D, <D as Database>::Arguments>;

/// What the driver calls return: boxed, `Send`, like sqlx's own executor futures.
pub type DriverFuture<'e, T> =
    Pin<Box<dyn Future<Output = std::result::Result<T, sqlx::Error>> + Send + 'e>>;

/// A driver that can bind a `T` as a query parameter (`'t`: sqlx's encoding lifetime, which
/// a borrowed value inside an `Option` must outlive).
pub trait Param<'t, T>: Database {
    fn bind_param<'q>(query: Q<'q, Self>, value: T) -> Q<'q, Self>;
}

impl<'t, DB: Database, T> Param<'t, T> for DB
where
    T: Encode<'t, DB> + Type<DB>,
{
    fn bind_param<'q>(query: Q<'q, Self>, value: T) -> Q<'q, Self> {
        query.bind(value)
    }
}

/// A driver that can read a `T` from a named column.
pub trait ReadColumn<T>: Database {
    fn read_column(row: &Self::Row, col: &str) -> std::result::Result<T, sqlx::Error>;
}

impl<DB: Database, T> ReadColumn<T> for DB
where
    T: for<'r> Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    fn read_column(row: &Self::Row, col: &str) -> std::result::Result<T, sqlx::Error> {
        row.try_get(col)
    }
}

/// A driver whose connections run queries.
pub trait Execute: Database {
    fn execute<'e>(
        conn: &'e mut Self::Connection,
        query: Q<'e, Self>,
    ) -> DriverFuture<'e, Self::QueryResult>;
    fn fetch_all<'e>(
        conn: &'e mut Self::Connection,
        query: Q<'e, Self>,
    ) -> DriverFuture<'e, Vec<Self::Row>>;
    fn fetch_optional<'e>(
        conn: &'e mut Self::Connection,
        query: Q<'e, Self>,
    ) -> DriverFuture<'e, Option<Self::Row>>;
}

impl<DB: Database> Execute for DB
where
    DB::Arguments: IntoArguments<DB> + 'static,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    fn execute<'e>(
        conn: &'e mut Self::Connection,
        query: Q<'e, Self>,
    ) -> DriverFuture<'e, Self::QueryResult> {
        Executor::execute(conn, query)
    }

    fn fetch_all<'e>(
        conn: &'e mut Self::Connection,
        query: Q<'e, Self>,
    ) -> DriverFuture<'e, Vec<Self::Row>> {
        Executor::fetch_all(conn, query)
    }

    fn fetch_optional<'e>(
        conn: &'e mut Self::Connection,
        query: Q<'e, Self>,
    ) -> DriverFuture<'e, Option<Self::Row>> {
        Executor::fetch_optional(conn, query)
    }
}

/// Everything the shared SQL asks of a driver: run queries, bind the parameter types it
/// uses, read the column types it reads.
pub trait Driver:
    Execute
    + for<'a> Param<'a, &'a str>
    + for<'a> Param<'a, Option<&'a str>>
    + Param<'static, i64>
    + Param<'static, Option<i64>>
    + Param<'static, i32>
    + Param<'static, bool>
    + ReadColumn<String>
    + ReadColumn<Option<String>>
    + ReadColumn<bool>
    + ReadColumn<i32>
    + ReadColumn<i64>
    + ReadColumn<Option<i64>>
{
}

impl<DB> Driver for DB where
    DB: Execute
        + for<'a> Param<'a, &'a str>
        + for<'a> Param<'a, Option<&'a str>>
        + Param<'static, i64>
        + Param<'static, Option<i64>>
        + Param<'static, i32>
        + Param<'static, bool>
        + ReadColumn<String>
        + ReadColumn<Option<String>>
        + ReadColumn<bool>
        + ReadColumn<i32>
        + ReadColumn<i64>
        + ReadColumn<Option<i64>>
{
}

/// `query.arg(v)`: [`Query::bind`] for a generic driver.
pub trait Bind<D: Database>: Sized {
    fn arg<'t, T>(self, value: T) -> Self
    where
        D: Param<'t, T>;
}

impl<D: Database> Bind<D> for Q<'_, D> {
    fn arg<'t, T>(self, value: T) -> Self
    where
        D: Param<'t, T>,
    {
        D::bind_param(self, value)
    }
}
