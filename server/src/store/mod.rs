//! Persistence: one store trait with a unit-of-work transaction, implemented for SQLite (embedded,
//! the default) and, from the same SQL, for PostgreSQL.

mod queries;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{Agency, AgencyId, AgencyStatus, Timestamp};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A unique key already exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// A stored value that the hub itself wrote no longer parses.
    #[error("corrupt row in {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error("unsupported database url {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
}

impl StoreError {
    /// Whether the database could not be reached (safe to retry) rather than a bug.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(error) => matches!(
                error,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
                    | sqlx::Error::Tls(_)
            ),
            _ => false,
        }
    }

    pub(crate) fn corrupt(table: &'static str, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            table,
            reason: reason.into(),
        }
    }
}

/// The hub's database.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A write transaction. Writers are serialised; nothing is visible to others before commit,
    /// and commit returns only once the data is on disk.
    async fn begin(&self) -> Result<Box<dyn Transaction>, StoreError>;
    /// A read-only snapshot.
    async fn read(&self) -> Result<Box<dyn Transaction>, StoreError>;
    /// Checks that the database answers (for health).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Closes every connection.
    async fn close(&self);
}

/// One unit of work. Dropping it without `commit` rolls everything back.
#[async_trait]
pub trait Transaction: Send {
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;

    // Directory.
    async fn agency(&mut self, id: &AgencyId) -> Result<Option<Agency>, StoreError>;
    async fn agencies(&mut self) -> Result<Vec<Agency>, StoreError>;
    /// Fails with `Conflict` when the id is taken.
    async fn insert_agency(&mut self, agency: &Agency, at: Timestamp) -> Result<(), StoreError>;
    /// Returns false when there is no such agency.
    async fn set_agency_status(
        &mut self,
        id: &AgencyId,
        status: AgencyStatus,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
    async fn revoke_certificate(
        &mut self,
        fingerprint: &str,
        reason: &str,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    async fn is_certificate_revoked(&mut self, fingerprint: &str) -> Result<bool, StoreError>;
}

/// Opens the store a database URL names, creating and migrating it as needed.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}
