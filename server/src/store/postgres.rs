//! The PostgreSQL backend, for several stateless hub instances sharing one database. Write
//! transactions of different cases run side by side under narrower locks (see [`pg_locks`]):
//! feed cursors still become visible in order per agency (no subscriber ever skips one), each
//! idempotency key and each escalation is written once, and the audit chain keeps a single
//! writer at its tail: a sequencer that chains the records writes queue, after their commits.
//! Commits notify the other instances (LISTEN/NOTIFY) so that their subscribers look at the
//! feed at once.
//!
//! [`pg_locks`]: super::pg_locks

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::db::{Connection, Dialect, Row};
use super::feed::FeedSignals;
use super::pg_hosts::{self, Hosts};
use super::pg_locks;
use super::pg_notify::{self, Notifier};
use super::queries::{
    FEED_ACKNOWLEDGED, FEED_PAGE, Param, acknowledged_from_row, bind_params, feed_from_row,
};
use super::{JobAnswer, Locking, Lookup, Store, StoreError, Transaction, WriteJob};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock key every write transaction holds ("tsunagu" in ASCII, as a number):
/// shared by the use cases the narrower locks guard, exclusive for every other write.
const WRITER_LOCK: i64 = 0x0074_7375_6e61_6775;
pub use super::pg_notify::FEED_CHANNEL;

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The hosts of the URL; the pool connects to the one that accepts writes.
    hosts: Arc<Hosts>,
    /// Whether a search for the host that accepts writes is under way.
    searching: Arc<AtomicBool>,
    signals: Arc<FeedSignals>,
    /// Chains the audit records that this instance's writes queue (and other instances').
    sequencer: Arc<pg_locks::Sequencer>,
    /// Tells the other instances whose feeds this instance's commits grew.
    notifier: Arc<Notifier>,
}

/// A transaction on PostgreSQL.
pub struct PostgresTransaction {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    writes: bool,
    /// Agencies whose feeds this transaction appended to, woken once it has committed.
    touched: Vec<crate::domain::AgencyId>,
    signals: Arc<FeedSignals>,
    /// Feed entries to write at commit, under their agencies' feed locks.
    feed: Vec<crate::domain::records::FeedEntry>,
    /// Audit records to queue at commit, for the sequencer to chain.
    audit: Vec<crate::domain::audit::AuditEntry>,
    /// Whether the tail queued audit records: the sequencer is woken after the commit.
    queued_audit: bool,
    sequencer: Arc<pg_locks::Sequencer>,
    notifier: Arc<Notifier>,
    /// No statement has run yet: a read transaction has not taken its snapshot.
    fresh: bool,
    /// The chain's pending records were chained for this transaction's reads of the chain.
    settled: bool,
    /// Cases whose lock this transaction holds.
    locked_cases: std::collections::HashSet<String>,
}

#[async_trait]
impl Connection for PostgresTransaction {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn fetch(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Row>, StoreError> {
        self.fresh = false;
        let rows = bind_params(sqlx::query(sql), params)
            .fetch_all(&mut *self.tx)
            .await?;
        Ok(rows.into_iter().map(Row::Postgres).collect())
    }

    async fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, StoreError> {
        self.fresh = false;
        let done = bind_params(sqlx::query(sql), params)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected())
    }

    async fn lock_for(&mut self, lookup: &Lookup<'_>) -> Result<(), StoreError> {
        PostgresTransaction::lock_for(self, lookup).await
    }

    async fn settle_audit(&mut self) -> Result<(), StoreError> {
        PostgresTransaction::settle_audit(self).await
    }

    fn defer_feed(&mut self, entry: &crate::domain::records::FeedEntry) -> bool {
        PostgresTransaction::defer_feed(self, entry)
    }

    fn defer_audit(&mut self, entry: &crate::domain::audit::AuditEntry) -> bool {
        PostgresTransaction::defer_audit(self, entry)
    }

    fn touched(&mut self) -> &mut Vec<crate::domain::AgencyId> {
        &mut self.touched
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://...`, one host or several: `postgres://u@h1,h2/db`) and
    /// migrates the schema. With several hosts, the pool uses the one that accepts writes.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let hosts = Arc::new(Hosts::parse(url)?);
        let options = if hosts.several() {
            hosts.find_primary().await.ok_or_else(|| {
                StoreError::Database(sqlx::Error::Io(std::io::Error::other(
                    "none of the database URL's hosts accepts writes",
                )))
            })?
        } else {
            hosts.current()
        };
        let mut pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(0)
            // A database that does not answer turns into UNAVAILABLE quickly, well within a
            // caller's deadline, instead of a hung call.
            .acquire_timeout(Duration::from_secs(3));
        if hosts.several() {
            // A new connection must reach a primary: a host that was the primary may come back
            // as a standby, and one that was a standby may not be promoted yet.
            pool = pool.after_connect(|connection, _| {
                Box::pin(async move {
                    if pg_hosts::is_writable(connection).await? {
                        Ok(())
                    } else {
                        Err(sqlx::Error::Io(std::io::Error::other(
                            "this PostgreSQL host is read-only (a standby)",
                        )))
                    }
                })
            });
        }
        let pool = pool.connect_with(options).await?;
        MIGRATIONS.run(&pool).await?;
        let sequencer = pg_locks::Sequencer::new(pool.clone());
        // Ends by itself once the pool is closed.
        drop(sequencer.spawn());
        let notifier = Notifier::new(pool.clone());
        drop(notifier.spawn());
        Ok(Self {
            pool,
            hosts,
            searching: Arc::default(),
            signals: Arc::default(),
            sequencer,
            notifier,
        })
    }

    /// A write transaction holding the writer lock, shared (`Narrow`) or exclusive. Commit it
    /// with [`PostgresTransaction::commit`]; dropped, it rolls back. (The hub writes through
    /// [`Store::run_write`]; tests that hold two transactions open at once use this.)
    pub async fn begin_write(&self, locking: Locking) -> Result<PostgresTransaction, StoreError> {
        let lock = match locking {
            Locking::Narrow => pg_locks::WRITER_SHARED,
            Locking::Exclusive => pg_locks::WRITER_EXCLUSIVE,
        };
        // One round trip: the transaction begins with the writer lock.
        let tx = self
            .pool
            .begin_with(format!("BEGIN; SELECT {lock}({WRITER_LOCK})"))
            .await?;
        Ok(PostgresTransaction::new(
            tx,
            true,
            &self.signals,
            &self.sequencer,
            &self.notifier,
        ))
    }

    /// Looks for the host that accepts writes in a task of its own (a ping may be cancelled
    /// mid-way, the search must not be) and moves the pool there; one search at a time.
    fn move_to_primary(&self) {
        if self.searching.swap(true, Ordering::AcqRel) {
            return;
        }
        let hosts = Arc::clone(&self.hosts);
        let pool = self.pool.clone();
        let searching = Arc::clone(&self.searching);
        tokio::spawn(async move {
            if let Some(options) = hosts.find_primary().await {
                // New connections go there; those to the old host fail their check before use.
                pool.set_connect_options(options);
            }
            searching.store(false, Ordering::Release);
        });
    }

    /// Listens for commits of every instance (this one's too, harmlessly) and wakes the
    /// subscriptions of the agencies each names, reconnecting after any failure (to the host
    /// in use then).
    pub fn spawn_listener(&self) -> tokio::task::JoinHandle<()> {
        let hosts = Arc::clone(&self.hosts);
        let signals = Arc::clone(&self.signals);
        tokio::spawn(async move {
            loop {
                if let Err(error) = pg_notify::listen(&hosts.current(), &signals).await {
                    tracing::warn!(%error, "feed listener lost its connection; reconnecting");
                }
                // Whatever was missed while disconnected is read by everyone once now.
                signals.wake_everyone();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }
}

#[async_trait]
impl Store for PostgresStore {
    /// One plain transaction per job, run in a task of its own: a caller that stops waiting
    /// drops only its answer, and the job commits or rolls back whole. (Dropping a transaction
    /// in the middle of a statement, or of its `BEGIN`, can hand the pool a connection still
    /// inside a transaction.)
    async fn run_write(&self, locking: Locking, job: WriteJob) -> Result<JobAnswer, StoreError> {
        let store = self.clone();
        let task = tokio::spawn(async move {
            let mut tx = store.begin_write(locking).await?;
            match job(&mut tx).await {
                Ok(value) => {
                    tx.commit().await?;
                    Ok(Ok(value))
                }
                Err(refused) => Ok(Err(refused)),
            }
        });
        task.await.map_err(|_| {
            tracing::error!("a write job panicked; its transaction is rolled back");
            StoreError::corrupt("write job", "the use case panicked")
        })?
    }

    /// One statement on a pooled connection, without a transaction around it.
    async fn feed_page(
        &self,
        agency: &crate::domain::AgencyId,
        after: u64,
        limit: u32,
    ) -> Result<super::FeedPage, StoreError> {
        let rows = sqlx::query(FEED_PAGE)
            .bind(agency.as_str())
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|row| feed_from_row(&Row::Postgres(row)))
            .collect()
    }

    async fn feed_acknowledged(&self, agency: &crate::domain::AgencyId) -> Result<u64, StoreError> {
        let row = sqlx::query(FEED_ACKNOWLEDGED)
            .bind(agency.as_str())
            .fetch_optional(&self.pool)
            .await?;
        acknowledged_from_row(row.map(Row::Postgres).as_ref())
    }

    async fn read(&self) -> Result<Box<dyn Transaction>, StoreError> {
        // Begun in a task of its own, so that a caller cancelled mid-way never leaves a
        // connection inside a half-begun transaction.
        let pool = self.pool.clone();
        let tx = tokio::spawn(async move {
            // One consistent snapshot for the whole read; one round trip.
            let tx = pool
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await?;
            Ok::<_, StoreError>(tx)
        })
        .await
        .map_err(|_| StoreError::corrupt("postgres reader", "beginning a read panicked"))??;
        Ok(Box::new(PostgresTransaction::new(
            tx,
            false,
            &self.signals,
            &self.sequencer,
            &self.notifier,
        )))
    }

    /// With several hosts, a ping that fails or finds the host read-only starts the search for
    /// the host that accepts writes now (a promoted standby); the health watch pings every
    /// second, so the pool moves within a tick or two of the promotion.
    async fn ping(&self) -> Result<(), StoreError> {
        if !self.hosts.several() {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            return Ok(());
        }
        // Shorter than the pool's acquire timeout: the health watch gives a ping 3 s in all.
        let checked = tokio::time::timeout(Duration::from_secs(1), async {
            let mut connection = self.pool.acquire().await?;
            pg_hosts::is_writable(&mut connection).await
        })
        .await;
        match checked {
            Ok(Ok(true)) => Ok(()),
            failed => {
                self.move_to_primary();
                Err(match failed {
                    Ok(Err(error)) => error.into(),
                    _ => StoreError::Database(sqlx::Error::Io(std::io::Error::other(
                        "the PostgreSQL host in use is down or read-only",
                    ))),
                })
            }
        }
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn feed_signals(&self) -> Arc<FeedSignals> {
        Arc::clone(&self.signals)
    }

    fn spawn_change_listener(&self) -> Option<tokio::task::JoinHandle<()>> {
        Some(self.spawn_listener())
    }
}

impl PostgresTransaction {
    fn new(
        tx: sqlx::Transaction<'static, sqlx::Postgres>,
        writes: bool,
        signals: &Arc<FeedSignals>,
        sequencer: &Arc<pg_locks::Sequencer>,
        notifier: &Arc<Notifier>,
    ) -> Self {
        Self {
            tx,
            writes,
            touched: Vec::new(),
            signals: Arc::clone(signals),
            feed: Vec::new(),
            audit: Vec::new(),
            queued_audit: false,
            sequencer: Arc::clone(sequencer),
            notifier: Arc::clone(notifier),
            fresh: true,
            settled: false,
            locked_cases: std::collections::HashSet::new(),
        }
    }

    /// Called before every read of the audit chain: chains what is pending first (once per
    /// transaction), so that the read sees every record whose write committed before it. A read
    /// transaction must do so before its first statement, which takes its snapshot; one that
    /// reads other rows first sees the chain as its snapshot has it, without the records still
    /// pending then (no reader of the chain does: they read it first).
    async fn settle_audit(&mut self) -> Result<(), StoreError> {
        if !self.settled && (self.writes || self.fresh) {
            self.sequencer.settle().await?;
        }
        self.settled = true;
        Ok(())
    }

    /// In a write transaction, the feed entry waits for the commit (see `before_commit`).
    fn defer_feed(&mut self, entry: &crate::domain::records::FeedEntry) -> bool {
        if self.writes {
            self.feed.push(entry.clone());
        }
        self.writes
    }

    /// In a write transaction, the audit record is queued at commit, for the sequencer to chain
    /// (see `before_commit`).
    fn defer_audit(&mut self, entry: &crate::domain::audit::AuditEntry) -> bool {
        if self.writes {
            self.audit.push(entry.clone());
        }
        self.writes
    }

    /// Takes the lock of a case unless this transaction holds it already.
    async fn lock_case(&mut self, case: &str) -> Result<(), StoreError> {
        if self.locked_cases.contains(case) {
            return Ok(());
        }
        sqlx::query(pg_locks::LOCK_CASE)
            .bind(case)
            .execute(&mut *self.tx)
            .await?;
        self.locked_cases.insert(case.to_owned());
        Ok(())
    }

    /// Takes the lock of the case of a referral or consent (`sql` reads its case id and locks
    /// it in one statement); nothing when there is no such row.
    async fn lock_case_of(&mut self, sql: &str, id: &str) -> Result<(), StoreError> {
        use sqlx::Row as _;
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        if let Some(row) = row {
            let case: String = row.try_get("case_id")?;
            self.locked_cases.insert(case);
        }
        Ok(())
    }

    /// In a write transaction, the lock that guards what `lookup` reads, taken before the read
    /// (in its own statement, so that the read sees what the previous holder committed).
    async fn lock_for(&mut self, lookup: &Lookup<'_>) -> Result<(), StoreError> {
        if !self.writes {
            return Ok(());
        }
        match *lookup {
            Lookup::CaseFor(case, _) | Lookup::Consents(case) => {
                self.lock_case(case.as_str()).await
            }
            Lookup::Referral(id) => {
                self.lock_case_of(pg_locks::LOCK_CASE_OF_REFERRAL, id.as_str())
                    .await
            }
            Lookup::Consent(id) => {
                self.lock_case_of(pg_locks::LOCK_CASE_OF_CONSENT, id.as_str())
                    .await
            }
            Lookup::IdempotentResponse {
                agency,
                operation,
                key,
            } => {
                sqlx::query(pg_locks::LOCK_KEY)
                    .bind(agency.as_str())
                    .bind(operation)
                    .bind(key)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }
            // The directory changes only in exclusive writes; audit records need no head here.
            Lookup::Agency(_) | Lookup::AuditHead => Ok(()),
        }
    }

    /// Writes the tail (see `before_commit`), commits, and wakes this instance's subscribers
    /// whose feeds grew.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.before_commit().await?;
        let touched = std::mem::take(&mut self.touched);
        let (signals, notifier) = (Arc::clone(&self.signals), Arc::clone(&self.notifier));
        self.commit_connection().await?;
        signals.wake(&touched);
        notifier.tell(&touched);
        Ok(())
    }

    async fn commit_connection(self) -> Result<(), StoreError> {
        // One write per commit on PostgreSQL (no group commit here): the batch is always 1, and
        // the duration is the round trip plus the primary's (and a synchronous standby's) flush.
        metrics::histogram!(crate::telemetry::names::COMMIT_BATCH).record(1.0);
        let started = std::time::Instant::now();
        let committed = self.tx.commit().await;
        metrics::histogram!(crate::telemetry::names::COMMIT_DURATION)
            .record(started.elapsed().as_secs_f64());
        committed?;
        if self.queued_audit {
            self.sequencer.wake();
        }
        Ok(())
    }

    /// Called by `commit` before committing: writes the tail (feed entries under the locks of
    /// the feeds it grows, audit records queued for the sequencer). Other instances hear of the
    /// new entries from the [`Notifier`], after the commit.
    async fn before_commit(&mut self) -> Result<(), StoreError> {
        if !self.writes || (self.feed.is_empty() && self.audit.is_empty()) {
            return Ok(());
        }
        let feed = std::mem::take(&mut self.feed);
        let audit = std::mem::take(&mut self.audit);
        self.queued_audit = !audit.is_empty();
        pg_locks::write_tail(&mut self.tx, &feed, &audit).await?;
        Ok(())
    }
}
