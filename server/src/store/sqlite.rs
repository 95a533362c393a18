//! The embedded SQLite backend: one file in WAL mode with `synchronous=FULL`, one writer
//! connection (SQLite serialises writers anyway; one connection avoids busy upgrades) and a small
//! pool of readers.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::{Store, StoreError, Transaction};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
}

/// A transaction on SQLite.
pub struct SqliteTransaction {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
}

super::queries::transaction_queries!(SqliteTransaction, SqliteRow);
super::audit::audit_queries!(SqliteTransaction, SqliteRow);
super::council::council_queries!(SqliteTransaction, SqliteRow);
super::keys::keys_queries!(SqliteTransaction, SqliteRow);

impl SqliteTransaction {
    /// Nothing to do before a commit: every subscriber shares this process's signal.
    #[allow(clippy::unused_async)]
    async fn before_commit(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `url` (`sqlite://path`).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?;
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|error| StoreError::Database(sqlx::Error::Io(error)))?;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is fsynced before it returns, so a response means the data survives
            // a crash the next instant.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        MIGRATIONS.run(&writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { writer, readers })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn begin(&self) -> Result<Box<dyn Transaction>, StoreError> {
        let tx = self.writer.begin().await?;
        Ok(Box::new(SqliteTransaction { tx }))
    }

    async fn read(&self) -> Result<Box<dyn Transaction>, StoreError> {
        let tx = self.readers.begin().await?;
        Ok(Box::new(SqliteTransaction { tx }))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }
}
