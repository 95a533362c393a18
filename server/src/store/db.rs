//! What the shared SQL runs on: a [`Connection`] that runs a statement with its parameters on
//! SQLite or PostgreSQL alike, a [`query`] built as with sqlx, and [`Row`]s read alike. The
//! queries of every area (`queries`, `audit`, `council`, ...) are plain functions and trait
//! impls over it, written once for both backends.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::types::Value;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Postgres, Sqlite};

use super::queries::Param;
use super::{Lookup, StoreError};
use crate::domain::AgencyId;
use crate::domain::audit::AuditEntry;
use crate::domain::records::FeedEntry;

/// Where SQLite and PostgreSQL spell the same thing differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The month of `r.sent_at` in Japan (UTC+9, no summer time), as `YYYY-MM`.
    pub(crate) fn month_of_sending(self) -> &'static str {
        match self {
            Self::Sqlite => "strftime('%Y-%m', (r.sent_at + 32400000) / 1000, 'unixepoch')",
            Self::Postgres => {
                "to_char(to_timestamp((r.sent_at + 32400000) / 1000) AT TIME ZONE 'UTC', 'YYYY-MM')"
            }
        }
    }

    /// The values `{value}` of a group joined with commas.
    pub(crate) fn comma_list(self) -> &'static str {
        match self {
            Self::Sqlite => "group_concat({value})",
            Self::Postgres => "string_agg(CAST({value} AS TEXT), ',')",
        }
    }
}

/// A row of either backend: read through sqlx, or by SQLite's writer thread.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
    Written(WrittenRow),
}

impl Row {
    /// The value of `column` (a name or an index), as [`sqlx::Row::try_get`].
    pub(crate) fn try_get<'r, T, C>(&'r self, column: C) -> Result<T, sqlx::Error>
    where
        T: sqlx::Decode<'r, Sqlite>
            + sqlx::Type<Sqlite>
            + sqlx::Decode<'r, Postgres>
            + sqlx::Type<Postgres>
            + rusqlite::types::FromSql,
        C: sqlx::ColumnIndex<SqliteRow> + sqlx::ColumnIndex<PgRow> + WrittenColumn,
    {
        match self {
            Self::Sqlite(row) => sqlx::Row::try_get(row, column),
            Self::Postgres(row) => sqlx::Row::try_get(row, column),
            Self::Written(row) => {
                let index = column.index_in(&row.columns)?;
                T::column_result((&row.values[index]).into()).map_err(|error| {
                    sqlx::Error::ColumnDecode {
                        index: index.to_string(),
                        source: error.into(),
                    }
                })
            }
        }
    }
}

/// A row that SQLite's writer thread read (`sqlite_writer`): its column names and values.
pub(crate) struct WrittenRow {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl WrittenRow {
    pub(crate) fn new(columns: Arc<[String]>, values: Vec<Value>) -> Self {
        Self { columns, values }
    }
}

/// A column of a [`WrittenRow`], by name or by index.
pub(crate) trait WrittenColumn {
    fn index_in(&self, columns: &[String]) -> Result<usize, sqlx::Error>;
}

impl WrittenColumn for usize {
    fn index_in(&self, columns: &[String]) -> Result<usize, sqlx::Error> {
        if *self < columns.len() {
            Ok(*self)
        } else {
            Err(sqlx::Error::ColumnIndexOutOfBounds {
                index: *self,
                len: columns.len(),
            })
        }
    }
}

impl WrittenColumn for &str {
    fn index_in(&self, columns: &[String]) -> Result<usize, sqlx::Error> {
        columns
            .iter()
            .position(|column| column == self)
            .ok_or_else(|| sqlx::Error::ColumnNotFound((*self).to_owned()))
    }
}

/// A transaction's connection, as the shared queries see it. Each backend's transaction
/// implements it; every area's query trait is implemented once for all of them.
#[async_trait]
pub(crate) trait Connection: Send {
    fn dialect(&self) -> Dialect;
    /// Runs one statement and returns its rows.
    async fn fetch(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Row>, StoreError>;
    /// Runs one statement and returns how many rows it changed.
    async fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, StoreError>;
    /// Takes the lock that guards what `lookup` reads, where the backend has such locks.
    async fn lock_for(&mut self, _lookup: &Lookup<'_>) -> Result<(), StoreError> {
        Ok(())
    }
    /// Makes every committed audit record part of the chain before a read of the chain, where
    /// the backend chains records after their commit (PostgreSQL's sequencer).
    async fn settle_audit(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Keeps a feed entry to write with the commit instead of now: true when it did.
    fn defer_feed(&mut self, _entry: &FeedEntry) -> bool {
        false
    }
    /// Keeps an audit record to chain with the commit instead of now: true when it did.
    fn defer_audit(&mut self, _entry: &AuditEntry) -> bool {
        false
    }
    /// The agencies whose feeds this transaction appended to, to wake once it committed.
    fn touched(&mut self) -> &mut Vec<AgencyId>;

    /// The rows of one of the reads the narrower locks guard, after taking its lock.
    async fn look_up(&mut self, lookup: Lookup<'_>) -> Result<Vec<Row>, StoreError> {
        self.lock_for(&lookup).await?;
        let (sql, params) = lookup.statement();
        self.fetch(&sql, &params).await
    }
}

/// A statement and its parameters, bound in placeholder order (`$1`, `$2`, ...).
pub(crate) struct Query<'q> {
    sql: Cow<'q, str>,
    params: Vec<Param>,
}

/// A statement to bind and run, as `sqlx::query`.
pub(crate) fn query<'q>(sql: impl Into<Cow<'q, str>>) -> Query<'q> {
    Query {
        sql: sql.into(),
        params: Vec::new(),
    }
}

/// What a statement that writes reports.
pub(crate) struct Done(u64);

impl Done {
    pub(crate) fn rows_affected(&self) -> u64 {
        self.0
    }
}

impl Query<'_> {
    pub(crate) fn bind(mut self, value: impl Into<Param>) -> Self {
        self.params.push(value.into());
        self
    }

    pub(crate) fn bind_all(mut self, params: &[Param]) -> Self {
        self.params.extend_from_slice(params);
        self
    }

    pub(crate) async fn fetch_all<C: Connection + ?Sized>(
        self,
        db: &mut C,
    ) -> Result<Vec<Row>, StoreError> {
        db.fetch(&self.sql, &self.params).await
    }

    pub(crate) async fn fetch_optional<C: Connection + ?Sized>(
        self,
        db: &mut C,
    ) -> Result<Option<Row>, StoreError> {
        Ok(db.fetch(&self.sql, &self.params).await?.into_iter().next())
    }

    pub(crate) async fn fetch_one<C: Connection + ?Sized>(
        self,
        db: &mut C,
    ) -> Result<Row, StoreError> {
        self.fetch_optional(db)
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    pub(crate) async fn execute<C: Connection + ?Sized>(
        self,
        db: &mut C,
    ) -> Result<Done, StoreError> {
        db.execute(&self.sql, &self.params).await.map(Done)
    }
}

/// Runs a statement that writes and whose outcome nobody checks, with its parameters already
/// collected (`params!`).
pub(crate) async fn write<C: Connection + ?Sized>(
    db: &mut C,
    sql: &str,
    params: Vec<Param>,
) -> Result<(), StoreError> {
    db.execute(sql, &params).await.map(|_| ())
}
