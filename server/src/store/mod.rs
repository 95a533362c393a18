//! Persistence: one store trait with a unit-of-work transaction, implemented for SQLite (embedded,
//! the default) and, from the same SQL, for PostgreSQL.

pub mod audit;
pub mod council;
pub(crate) mod db;
pub mod feed;
pub mod keys;
pub mod outcomes;
mod pg_hosts;
mod pg_locks;
mod pg_notify;
pub mod postgres;
pub(crate) mod queries;
pub mod sealing;
pub mod sqlite;
mod sqlite_writer;
pub mod transfers;

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::domain::consent::Consent;
use crate::domain::records::{
    Case, EscalationTier, FeedEntry, FeedEvent, Note, Participant, Referral, ReferralEvent,
};
use crate::domain::referral::{ClosedWithReason, ReferralState, TimerKind};
use crate::domain::{
    Agency, AgencyId, AgencyStatus, CaseId, ConsentId, Municipality, NoteId, ReferralId, Timestamp,
};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// A statement on SQLite's write connection failed (see `sqlite_writer`).
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// The batch this write belonged to failed to commit; nothing of it was stored.
    #[error("the write could not be committed")]
    Commit(#[source] Arc<rusqlite::Error>),
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
    /// A PostgreSQL URL the hub cannot use (the reason says why; never the password).
    #[error("database url {0}")]
    BadUrl(String),
    /// The failure of a batch of writes made together (the records of several reads), shared
    /// by every member of the batch.
    #[error("a batch of writes failed")]
    Batch(#[source] Arc<StoreError>),
}

impl StoreError {
    /// Whether the database could not be reached (safe to retry) rather than a bug.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(error)) => {
                // SQLSTATE class 08 (connection exception), 57P (operator intervention: the
                // server is shutting down or restarting), 53300 (too many connections); SQLite's
                // BUSY (5) and LOCKED (6) when another process holds the file too long.
                let code = error.code().unwrap_or_default();
                // 25006: a write reached a standby, the moment before the hub moves to the
                // promoted one.
                code.starts_with("08")
                    || code.starts_with("57P")
                    || code == "25006"
                    || code == "53300"
                    || code == "5"
                    || code == "6"
            }
            Self::Sqlite(error) => sqlite_unavailable(error),
            Self::Commit(error) => sqlite_unavailable(error),
            Self::Batch(error) => error.is_unavailable(),
            Self::Database(error) => matches!(
                error,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::Protocol(_)
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

/// Whether SQLite failed for want of the file (another process holds it too long, the disk
/// failed or is full) rather than because of the statement.
fn sqlite_unavailable(error: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    matches!(
        error.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
        )
    )
}

/// Which writes a write job waits for on a backend with several writers (PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locking {
    /// Only writes about the same cases, idempotency keys and feeds: for use cases checked to
    /// read-then-write nothing else (see `pg_locks`).
    Narrow,
    /// Every other write: the safe default for a use case nobody checked.
    Exclusive,
}

/// A write job's value or its error, type-erased to cross the writer's channel;
/// [`write`](trait.Store.html#method.write) gives them their types back.
pub type JobAnswer = Result<Box<dyn Any + Send>, Box<dyn Any + Send>>;

/// A write use case as the store runs it: given the transaction, a future of its answer. `Err`
/// rolls the job back.
pub type WriteJob =
    Box<dyn for<'t> FnOnce(&'t mut dyn Transaction) -> BoxFuture<'t, JobAnswer> + Send>;

impl dyn Store {
    /// Runs `job` as one write (see [`Store::run_write`]) and answers its value once durable.
    /// The job owns what it uses (`move`), because the store may run it on its writer thread.
    pub async fn write<T, E, F>(&self, locking: Locking, job: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: for<'t> FnOnce(&'t mut dyn Transaction) -> BoxFuture<'t, Result<T, E>> + Send + 'static,
    {
        let erased: WriteJob = Box::new(move |tx| {
            Box::pin(async move {
                match job(tx).await {
                    Ok(value) => Ok(Box::new(value) as Box<dyn Any + Send>),
                    Err(error) => Err(Box::new(error) as Box<dyn Any + Send>),
                }
            })
        });
        let mistyped = || {
            E::from(StoreError::corrupt(
                "write job",
                "an answer of another type",
            ))
        };
        match self.run_write(locking, erased).await? {
            Ok(value) => value
                .downcast::<T>()
                .map(|value| *value)
                .map_err(|_| mistyped()),
            Err(error) => Err(error
                .downcast::<E>()
                .map_or_else(|_| mistyped(), |error| *error)),
        }
    }
}

/// Entries of an agency's feed, each with the referral event it is about.
pub type FeedPage = Vec<(FeedEvent, Option<ReferralEvent>)>;

/// The hub's database.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Runs a write use case whole, in one transaction of its own, and answers once it is
    /// durable (or rolled back: the job's error). SQLite's one writer thread runs jobs one after
    /// another, each in a savepoint, and commits them in batches (one fsync per batch).
    /// PostgreSQL runs each in a plain transaction of its own, under the locks `locking` says.
    /// A caller that stops waiting drops only its answer: a job that began runs to its end.
    async fn run_write(&self, locking: Locking, job: WriteJob) -> Result<JobAnswer, StoreError>;
    /// A read-only snapshot.
    async fn read(&self) -> Result<Box<dyn Transaction>, StoreError>;
    /// What the identity layer needs on every call: the registered agency, and whether the
    /// presented certificate was revoked at the hub.
    async fn caller_identity(
        &self,
        agency: &AgencyId,
        fingerprint: &str,
    ) -> Result<(Option<Agency>, bool), StoreError> {
        let mut tx = self.read().await?;
        let revoked = tx.is_certificate_revoked(fingerprint).await?;
        let agency = tx.agency(agency).await?;
        Ok((agency, revoked))
    }
    /// A page of `agency`'s feed after `after`, as one statement outside any transaction:
    /// committed feed entries never change, so a page needs no snapshot of its own.
    async fn feed_page(
        &self,
        agency: &AgencyId,
        after: u64,
        limit: u32,
    ) -> Result<FeedPage, StoreError>;
    /// The last cursor `agency` acknowledged, as one statement outside any transaction.
    async fn feed_acknowledged(&self, agency: &AgencyId) -> Result<u64, StoreError>;
    /// Checks that the database answers (for health).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Closes every connection.
    async fn close(&self);
    /// Wake-ups for live feeds, fired after each commit that appended feed entries (also for
    /// commits made through other hub instances sharing the database).
    fn feed_signals(&self) -> Arc<feed::FeedSignals>;
    /// For a database shared by several hub instances: a task that turns other instances'
    /// commits into wake-ups here.
    fn spawn_change_listener(&self) -> Option<tokio::task::JoinHandle<()>> {
        None
    }
}

/// One unit of work: a write job's transaction, or a read snapshot. Each area's operations
/// live in a trait of their own (`audit`, `council`, `keys`) that every transaction implements.
#[async_trait]
pub trait Transaction:
    Send
    + audit::AuditQueries
    + council::CouncilQueries
    + keys::KeyQueries
    + outcomes::OutcomeQueries
    + sealing::SealQueries
    + transfers::TransferQueries
{
    // Directory.
    async fn agency(&mut self, id: &AgencyId) -> Result<Option<Agency>, StoreError>;
    async fn agencies(&mut self) -> Result<Vec<Agency>, StoreError>;
    /// Fails with `Conflict` when the id is taken.
    async fn insert_agency(&mut self, agency: &Agency, at: Timestamp) -> Result<(), StoreError>;
    /// Returns false when there is no such agency.
    /// Replaces an agency's kind, name, municipalities, council memberships and coordinator
    /// roles (not its status); false when no such agency is registered.
    async fn update_agency(&mut self, agency: &Agency, at: Timestamp) -> Result<bool, StoreError>;
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
    /// Notes that `agency` presented the certificate `fingerprint` (valid until `not_after`,
    /// seconds) at `at`.
    async fn record_certificate_seen(
        &mut self,
        agency: &AgencyId,
        fingerprint: &str,
        not_after: i64,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// The certificate each agency presented last, one per agency, ordered by agency id.
    async fn last_seen_certificates(
        &mut self,
    ) -> Result<Vec<crate::domain::agency::SeenCertificate>, StoreError>;

    // Cases.
    async fn insert_case(&mut self, case: &Case) -> Result<(), StoreError>;
    async fn case(&mut self, id: &CaseId) -> Result<Option<Case>, StoreError>;
    async fn participants(&mut self, case: &CaseId) -> Result<Vec<Participant>, StoreError>;
    /// A case with whether `agency` takes part in it, in one statement (every call about a case
    /// starts with both).
    async fn case_for(
        &mut self,
        id: &CaseId,
        agency: &AgencyId,
    ) -> Result<Option<(Case, bool)>, StoreError>;
    /// Adds agencies to a case in one statement; those already taking part are left as they are.
    async fn add_participants(
        &mut self,
        case: &CaseId,
        agencies: &[&AgencyId],
        since: Timestamp,
    ) -> Result<(), StoreError>;
    /// Cases `agency` takes part in, plus every case of the municipalities in `coordinated`,
    /// ordered by id (time-ordered), after `after`.
    async fn visible_cases(
        &mut self,
        agency: &AgencyId,
        coordinated: &[Municipality],
        municipality: Option<&Municipality>,
        after: Option<&CaseId>,
        limit: u32,
    ) -> Result<Vec<Case>, StoreError>;

    // Consents.
    async fn insert_consent(&mut self, consent: &Consent) -> Result<(), StoreError>;
    async fn consent(&mut self, id: &ConsentId) -> Result<Option<Consent>, StoreError>;
    async fn consents(&mut self, case: &CaseId) -> Result<Vec<Consent>, StoreError>;
    async fn withdraw_consent(&mut self, id: &ConsentId, at: Timestamp) -> Result<(), StoreError>;

    // Referrals.
    async fn insert_referral(&mut self, referral: &Referral) -> Result<(), StoreError>;
    async fn referral(&mut self, id: &ReferralId) -> Result<Option<Referral>, StoreError>;
    async fn update_referral_state(
        &mut self,
        id: &ReferralId,
        state: &ReferralState,
    ) -> Result<(), StoreError>;
    /// Records the next step "close with reason" of a confirmed not-connected referral.
    async fn record_closed_with_reason(
        &mut self,
        id: &ReferralId,
        closed: &ClosedWithReason,
    ) -> Result<(), StoreError>;
    async fn case_referrals(&mut self, case: &CaseId) -> Result<Vec<Referral>, StoreError>;
    /// Referrals `agency` sent and/or received, newest first, before `before`.
    async fn agency_referrals(
        &mut self,
        query: &ReferralQuery<'_>,
    ) -> Result<Vec<Referral>, StoreError>;
    /// Open referrals (not closed) with a deadline at or before `due_by`, optionally only of one
    /// municipality; for worklists and the timer task.
    async fn open_referrals_due(
        &mut self,
        due_by: Timestamp,
        municipality: Option<&Municipality>,
    ) -> Result<Vec<Referral>, StoreError>;
    /// Open referrals shared without consent, for the coordinator's review list.
    async fn open_referrals_without_consent(
        &mut self,
        municipality: &Municipality,
    ) -> Result<Vec<Referral>, StoreError>;
    /// Referrals whose "did not connect" was confirmed (other than `referred_elsewhere`, which
    /// names its next referral), not closed with a reason, and after whose confirmation no
    /// referral was sent on the case: the family still needs a next step. Narrowed to a municipality and/or a sender.
    async fn not_connected_without_next_step(
        &mut self,
        municipality: Option<&Municipality>,
        from_agency: Option<&AgencyId>,
    ) -> Result<Vec<Referral>, StoreError>;
    async fn insert_referral_event(&mut self, event: &ReferralEvent) -> Result<(), StoreError>;
    async fn referral_events(
        &mut self,
        referral: &ReferralId,
    ) -> Result<Vec<ReferralEvent>, StoreError>;
    async fn case_referral_events(
        &mut self,
        case: &CaseId,
        since: Option<Timestamp>,
    ) -> Result<Vec<ReferralEvent>, StoreError>;
    /// Records that a timer escalated to a tier; false when it already had.
    async fn record_escalation(
        &mut self,
        referral: &ReferralId,
        timer: TimerKind,
        tier: EscalationTier,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    // Notes.
    async fn insert_note(&mut self, note: &Note) -> Result<(), StoreError>;
    async fn note(&mut self, id: &NoteId) -> Result<Option<Note>, StoreError>;
    async fn case_notes(
        &mut self,
        case: &CaseId,
        since: Option<Timestamp>,
    ) -> Result<Vec<Note>, StoreError>;
    async fn acknowledge_note(
        &mut self,
        note: &NoteId,
        agency: &AgencyId,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    // The event feed.
    /// Appends an entry to its agency's feed (its cursor is assigned in commit order).
    async fn append_feed(&mut self, entry: &FeedEntry) -> Result<(), StoreError>;
    /// The cursor of the agency's newest entry (0 when none).
    async fn feed_end(&mut self, agency: &AgencyId) -> Result<u64, StoreError>;
    async fn feed_acknowledged(&mut self, agency: &AgencyId) -> Result<u64, StoreError>;
    async fn acknowledge_feed(
        &mut self,
        agency: &AgencyId,
        cursor: u64,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    // Idempotency.
    /// The digest of the request a key was first used with, and the response sent then.
    async fn idempotent_response(
        &mut self,
        agency: &AgencyId,
        operation: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError>;
    async fn record_idempotent_response(
        &mut self,
        agency: &AgencyId,
        operation: &str,
        key: &str,
        digest: &[u8],
        response: &[u8],
        at: Timestamp,
    ) -> Result<(), StoreError>;
}

/// One of the reads whose rows PostgreSQL's narrower locks guard: before making it, a write takes
/// the lock of the case it is about (see `pg_locks`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lookup<'a> {
    /// [`Transaction::case_for`].
    CaseFor(&'a CaseId, &'a AgencyId),
    /// [`Transaction::agency`].
    Agency(&'a AgencyId),
    /// [`Transaction::consent`].
    Consent(&'a ConsentId),
    /// [`Transaction::consents`].
    Consents(&'a CaseId),
    /// [`Transaction::referral`].
    Referral(&'a ReferralId),
    /// [`audit::AuditQueries::audit_head`]. Fetched ahead in a write transaction, it also lets
    /// that transaction's audit records go in with its commit, unchecked: nothing else can move
    /// the head before the commit.
    AuditHead,
    /// [`Transaction::idempotent_response`].
    IdempotentResponse {
        agency: &'a AgencyId,
        operation: &'a str,
        key: &'a str,
    },
}

/// Which of an agency's referrals to list.
#[derive(Debug, Clone)]
pub struct ReferralQuery<'a> {
    pub agency: &'a AgencyId,
    pub sent: bool,
    pub received: bool,
    pub case: Option<&'a CaseId>,
    pub include_closed: bool,
    /// Only referrals older than this one (paging, newest first).
    pub before: Option<&'a ReferralId>,
    pub limit: u32,
}

/// Opens the store a database URL names, creating and migrating it as needed.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(postgres::PostgresStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}
