//! The embedded SQLite backend: one file in WAL mode with `synchronous=FULL`, a small pool of
//! readers, and one writer task that owns the only write connection.
//!
//! The writer task receives whole write use cases (jobs) over a channel and runs the jobs
//! waiting one after another in one transaction, each in a savepoint of its own: a job that
//! fails is rolled back alone. The batch then commits with one fsync, and only then does each
//! job get its answer, so under load many writes share one fsync and still no write is
//! acknowledged before it is on disk. A caller that stops waiting drops only its answer: a job
//! not yet begun is skipped, one begun runs to its end, and the connection is never left
//! half-way through anything.

use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt as _;
use sqlx::Executor as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use tokio::sync::{mpsc, oneshot};

use super::db::{Connection, Dialect, Row};
use super::feed::FeedSignals;
use super::queries::{
    AGENCY_COLUMNS, FEED_ACKNOWLEDGED, FEED_PAGE, Param, acknowledged_from_row, agency_from_row,
    bind_params, feed_from_row,
};
use super::sqlite_batch::{self, StatementBatch};
use super::{JobAnswer, Locking, Store, StoreError, Transaction, WriteJob};
use crate::domain::AgencyId;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The most jobs one transaction takes: bounds how long the first of them waits for its answer.
const MAX_BATCH: usize = 512;
/// Jobs waiting for the writer beyond this make their callers wait to send them.
const QUEUE: usize = 4096;

/// A write use case and where its answer goes.
struct Job {
    run: WriteJob,
    answer: oneshot::Sender<Result<JobAnswer, StoreError>>,
}

/// A job that ran in the open batch, waiting for the batch to commit.
struct Ran {
    answer: oneshot::Sender<Result<JobAnswer, StoreError>>,
    outcome: Result<JobAnswer, StoreError>,
}

/// The writer task's state: the write connection, and whether a job's savepoint is open on it.
struct Writer {
    /// Detached from its pool: it lives as long as the store, and closing the pool must not
    /// wait for it. Lent to each job's transaction while the job runs.
    connection: Option<SqliteConnection>,
    signals: Arc<FeedSignals>,
    checkpoint_due: Arc<AtomicBool>,
    /// A savepoint for the next job is open: each job's release opens the next one in the same
    /// call, which spares every job a round trip to the connection's thread.
    savepoint_open: bool,
}

impl Writer {
    /// Runs jobs until every sender is gone (the store closed or dropped).
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
            self.run_batch(std::mem::take(&mut batch)).await;
        }
    }

    fn connection(&mut self) -> &mut SqliteConnection {
        match self.connection.as_mut() {
            Some(connection) => connection,
            None => unreachable!("the write connection is lent to one job at a time"),
        }
    }

    /// Runs `batch` in one transaction and answers every job once it committed (or failed).
    async fn run_batch(&mut self, batch: Vec<Job>) {
        // IMMEDIATE: take the write lock now, so a batch never fails half-way for want of it.
        self.savepoint_open = false;
        if let Err(error) = self.connection().execute("BEGIN IMMEDIATE").await {
            tracing::error!(%error, "the writer cannot begin a transaction");
            let error = Arc::new(error);
            for job in batch {
                let _ = job.answer.send(Err(StoreError::Commit(Arc::clone(&error))));
            }
            return;
        }
        let mut ran = Vec::with_capacity(batch.len());
        let mut touched = Vec::new();
        for job in batch {
            if job.answer.is_closed() {
                // Nobody waits for it and it has not begun: it was never acknowledged.
                continue;
            }
            match self.run_job(job.run, &mut touched).await {
                Ok(outcome) => ran.push(Ran {
                    answer: job.answer,
                    outcome,
                }),
                Err(error) => {
                    // The connection failed around the job: nothing of the batch is kept.
                    tracing::error!(%error, "a batch of writes failed");
                    let _ = self.connection().execute("ROLLBACK").await;
                    let error = Arc::new(error);
                    let _ = job.answer.send(Err(StoreError::Commit(Arc::clone(&error))));
                    for done in ran {
                        let _ = done
                            .answer
                            .send(Err(StoreError::Commit(Arc::clone(&error))));
                    }
                    return;
                }
            }
        }
        let commit = if self.checkpoint_due.swap(false, Ordering::Relaxed) {
            // Stops before the checkpoint if the commit fails.
            "COMMIT; PRAGMA wal_checkpoint(PASSIVE)"
        } else {
            "COMMIT"
        };
        // How many writes share this fsync.
        metrics::histogram!(crate::telemetry::names::COMMIT_BATCH).record(ran.len() as f64);
        let started = std::time::Instant::now();
        // Commits the next job's savepoint too, empty.
        self.savepoint_open = false;
        let committed = self.connection().execute(commit).await;
        metrics::histogram!(crate::telemetry::names::COMMIT_DURATION)
            .record(started.elapsed().as_secs_f64());
        match committed {
            Ok(_) => {
                // Only now is there something to read: wake those whose feeds grew.
                self.signals.wake(&touched);
                for done in ran {
                    let _ = done.answer.send(done.outcome);
                }
            }
            Err(error) => {
                tracing::error!(%error, "a batch of writes failed to commit");
                // Leave the connection clean for the next batch whatever state it is in.
                let _ = self.connection().execute("ROLLBACK").await;
                let error = Arc::new(error);
                for done in ran {
                    let _ = done
                        .answer
                        .send(Err(StoreError::Commit(Arc::clone(&error))));
                }
            }
        }
    }

    /// Runs one job in a savepoint: released when the job succeeds, rolled back when it fails
    /// or panics (or its waiting writes fail at its end). `Err` only when the connection itself
    /// failed around it. The release goes in one call with the job's waiting writes and opens
    /// the next job's savepoint.
    async fn run_job(
        &mut self,
        run: WriteJob,
        touched: &mut Vec<AgencyId>,
    ) -> Result<Result<JobAnswer, StoreError>, sqlx::Error> {
        if !self.savepoint_open {
            self.connection().execute("SAVEPOINT job").await?;
        }
        self.savepoint_open = false;
        let connection = self.connection.take();
        let mut tx = SqliteTransaction {
            tx: SqliteTx::Write(connection),
            touched: Vec::new(),
            pending: StatementBatch::default(),
        };
        let outcome = AssertUnwindSafe(run(&mut tx)).catch_unwind().await;
        let SqliteTx::Write(connection) = tx.tx else {
            unreachable!("a job's transaction is a write")
        };
        self.connection = connection;
        // What a job that is rolled back answers: its own refusal, or why it failed.
        let rolled_back = match outcome {
            Ok(Ok(value)) => {
                let mut finish = tx.pending;
                let own = finish.statements + 1;
                finish.push("RELEASE job", Vec::new());
                finish.push("SAVEPOINT job", Vec::new());
                let ran = sqlite_batch::run(self.connection(), &finish).await;
                match ran.failure {
                    None => {
                        self.savepoint_open = true;
                        touched.extend(tx.touched);
                        return Ok(Ok(Ok(value)));
                    }
                    // Released, but the next savepoint did not open: the connection failed.
                    Some(error) if ran.rows.len() >= own => return Err(error),
                    // One of the job's waiting writes failed: the job is rolled back.
                    Some(error) => Err(StoreError::Database(error)),
                }
            }
            Ok(Err(refused)) => Ok(Err(refused)),
            Err(_) => {
                tracing::error!("a write job panicked; its writes are rolled back");
                Err(StoreError::corrupt("write job", "the use case panicked"))
            }
        };
        self.connection()
            .execute("ROLLBACK TO job; RELEASE job; SAVEPOINT job")
            .await?;
        self.savepoint_open = true;
        Ok(rolled_back)
    }
}

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    _tasks: Arc<Tasks>,
    signals: Arc<FeedSignals>,
    readers: SqlitePool,
    writer_pool: SqlitePool,
}

/// The store's background task, stopped with the last handle on the store. (The writer task
/// stops by itself once the last handle, and with it the last sender of jobs, is gone.)
struct Tasks {
    checkpointer: tokio::task::JoinHandle<()>,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.checkpointer.abort();
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// The connection a transaction runs on: a read snapshot, or the write connection lent to a job
/// (`None` only for the instant it is handed back).
pub enum SqliteTx {
    Read(sqlx::Transaction<'static, sqlx::Sqlite>),
    Write(Option<SqliteConnection>),
}

/// A transaction on SQLite: a read snapshot, or one write job's savepoint.
pub struct SqliteTransaction {
    tx: SqliteTx,
    /// Agencies whose feeds this job appended to, woken once its batch has committed.
    touched: Vec<crate::domain::AgencyId>,
    /// The job's writes whose outcome nobody checks, waiting to go with the next statement.
    pending: StatementBatch,
}

/// How often the write-ahead log is copied back into the database file in the background.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(50);
/// A log this long (in pages; SQLite's own default) is checkpointed by the writer too, so that
/// the next write starts it afresh instead of growing it.
const CHECKPOINT_RESTART_PAGES: i64 = 1000;

/// Copies the write-ahead log into the database file every `CHECKPOINT_INTERVAL`, on a
/// connection of its own, so that the writer does not wait for most of that copying. PASSIVE
/// never waits for readers or the writer. The log restarts only when a write begins with all of
/// it copied, which the writer never finds while this runs beside it; so once the log is long,
/// the writer copies the little left after its next commit (`checkpoint_due`). Runs until the
/// store is dropped.
fn spawn_checkpointer(pool: SqlitePool, due: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    use sqlx::Row as _;
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(CHECKPOINT_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await
            {
                Ok(row) => {
                    let log: i64 = row.try_get(1).unwrap_or(0);
                    if log >= CHECKPOINT_RESTART_PAGES {
                        due.store(true, Ordering::Relaxed);
                    }
                }
                Err(error) => tracing::warn!(%error, "a checkpoint of the write-ahead log failed"),
            }
        }
    })
}

impl SqliteTransaction {
    /// Runs `sql` after the writes waiting, in one call to the connection's thread.
    async fn after_pending(
        &mut self,
        sql: &str,
        params: &[Param],
    ) -> Result<sqlite_batch::BatchOutcome, StoreError> {
        let mut batch = std::mem::take(&mut self.pending);
        batch.push(sql, params.to_vec());
        let ran = sqlite_batch::run(self.connection()?, &batch).await;
        match ran.failure {
            Some(error) => Err(error.into()),
            None if ran.rows.len() == batch.statements => Ok(ran),
            None => Err(StoreError::corrupt(
                "sqlite writer",
                format!(
                    "{} statements answered {} times",
                    batch.statements,
                    ran.rows.len()
                ),
            )),
        }
    }

    /// The connection, for a statement.
    fn connection(&mut self) -> Result<&mut SqliteConnection, StoreError> {
        match &mut self.tx {
            SqliteTx::Read(tx) => Ok(tx),
            SqliteTx::Write(Some(connection)) => Ok(connection),
            SqliteTx::Write(None) => Err(StoreError::corrupt("sqlite writer", "no connection")),
        }
    }
}

#[async_trait]
impl Connection for SqliteTransaction {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn fetch(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Row>, StoreError> {
        if self.pending.is_empty() {
            let rows = bind_params(sqlx::query(sql), params)
                .fetch_all(self.connection()?)
                .await?;
            return Ok(rows.into_iter().map(Row::Sqlite).collect());
        }
        let mut ran = self.after_pending(sql, params).await?;
        Ok(ran
            .rows
            .pop()
            .unwrap_or_default()
            .into_iter()
            .map(Row::Sqlite)
            .collect())
    }

    async fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, StoreError> {
        if self.pending.is_empty() {
            let done = bind_params(sqlx::query(sql), params)
                .execute(self.connection()?)
                .await?;
            return Ok(done.rows_affected());
        }
        Ok(self.after_pending(sql, params).await?.last_changed)
    }

    async fn defer(&mut self, sql: &str, params: Vec<Param>) -> Result<(), StoreError> {
        self.pending.push(sql, params);
        Ok(())
    }

    fn touched(&mut self) -> &mut Vec<AgencyId> {
        &mut self.touched
    }
}

/// Creates the database file readable and writable by its owner only (0600), or narrows an
/// existing one and its WAL files to that: the file holds every case's routing metadata and
/// the audit log. SQLite gives the -wal and -shm files it creates the database file's mode.
fn owner_only(path: &std::path::Path) -> std::io::Result<()> {
    if path.as_os_str().is_empty() || path == std::path::Path::new(":memory:") {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = std::path::PathBuf::from(name);
            if file.exists() {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(())
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
        owner_only(options.get_filename())
            .map_err(|error| StoreError::Database(sqlx::Error::Io(error)))?;
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is fsynced before it returns, so a response means the data survives
            // a crash the next instant.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // A feed page or a pack query returns hundreds of rows; with sqlx's default buffer
            // of 50 the connection's thread stalls and is woken again several times per query.
            .row_buffer_size(1024)
            // Each write is a savepoint, whose journal of pages to roll back to SQLite spills to
            // a temporary file past 64 KiB: a write system call per page, on every write. Kept
            // in memory, it is bounded by the pages one write changes.
            .pragma("temp_store", "memory")
            // Checkpoints run on a connection of their own (see `spawn_checkpointer`), not in
            // the commit that happens to fill the log, where every writer waits for them.
            .pragma("wal_autocheckpoint", "0");
        let writer_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        MIGRATIONS.run(&writer_pool).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            // A connection to a local file does not go stale, and sqlx's test is a ping: one
            // more round trip to the connection's thread on every read, identity lookups too.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(
                options
                    .clone()
                    .read_only(true)
                    // Reports (outcomes, packs) group a year of referrals: with SQLite's 2 MiB
                    // default the sort spills into several runs it then merges; 64 MiB per
                    // reader (only pages actually used are held) sorts a municipality's year in
                    // memory, and the sorter may use a second thread. Reading through a memory
                    // map saves copying each page scanned (the outcomes bench: 550 -> 370 ms).
                    .pragma("cache_size", "-65536")
                    .pragma("threads", "2")
                    .pragma("mmap_size", "268435456"),
            )
            .await?;
        let signals = Arc::<FeedSignals>::default();
        let checkpoint_due = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            connection: Some(writer_pool.acquire().await?.detach()),
            signals: Arc::clone(&signals),
            checkpoint_due: Arc::clone(&checkpoint_due),
            savepoint_open: false,
        };
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(writer.run(queue));
        let checkpointer = spawn_checkpointer(writer_pool.clone(), checkpoint_due);
        Ok(Self {
            jobs,
            _tasks: Arc::new(Tasks { checkpointer }),
            signals,
            readers,
            writer_pool,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    /// Hands the job to the writer task and waits for its batch to commit.
    async fn run_write(&self, _locking: Locking, job: WriteJob) -> Result<JobAnswer, StoreError> {
        let stopped = || StoreError::Database(sqlx::Error::PoolClosed);
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send(Job { run: job, answer })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// One statement, no transaction: this runs on every call, before any handler.
    async fn caller_identity(
        &self,
        agency: &crate::domain::AgencyId,
        fingerprint: &str,
    ) -> Result<(Option<crate::domain::Agency>, bool), StoreError> {
        use sqlx::Row as _;
        let row = sqlx::query(&format!(
            "SELECT {AGENCY_COLUMNS}, EXISTS (SELECT 1 FROM revoked_certificates \
             WHERE fingerprint = $2) AS revoked FROM agencies WHERE agency_id = $1 \
             UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, EXISTS (SELECT 1 FROM \
             revoked_certificates WHERE fingerprint = $2) LIMIT 1"
        ))
        .bind(agency.as_str())
        .bind(fingerprint)
        .fetch_one(&self.readers)
        .await?;
        let revoked: bool = row.try_get("revoked")?;
        let registered: Option<String> = row.try_get("agency_id")?;
        let agency = match registered {
            Some(_) => Some(agency_from_row(&Row::Sqlite(row))?),
            None => None,
        };
        Ok((agency, revoked))
    }

    /// One call to a reader's thread: no `BEGIN`, no `ROLLBACK`.
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
            .fetch_all(&self.readers)
            .await?;
        rows.into_iter()
            .map(|row| feed_from_row(&Row::Sqlite(row)))
            .collect()
    }

    async fn feed_acknowledged(&self, agency: &crate::domain::AgencyId) -> Result<u64, StoreError> {
        let row = sqlx::query(FEED_ACKNOWLEDGED)
            .bind(agency.as_str())
            .fetch_optional(&self.readers)
            .await?;
        acknowledged_from_row(row.map(Row::Sqlite).as_ref())
    }

    async fn read(&self) -> Result<Box<dyn Transaction>, StoreError> {
        let tx = self.readers.begin().await?;
        Ok(Box::new(SqliteTransaction {
            tx: SqliteTx::Read(tx),
            touched: Vec::new(),
            pending: StatementBatch::default(),
        }))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    fn feed_signals(&self) -> Arc<FeedSignals> {
        Arc::clone(&self.signals)
    }

    async fn close(&self) {
        // A job behind every job already sent: answered once they are all committed.
        let flushed: WriteJob = Box::new(|_| Box::pin(async { Ok(Box::new(()) as _) }));
        if let Err(error) = self.run_write(Locking::Exclusive, flushed).await {
            tracing::warn!(%error, "the last writes could not be committed at close");
        }
        self.readers.close().await;
        self.writer_pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::{AuditEntry, ChainHead};
    use crate::domain::{Agency, AgencyId, AgencyKind, AgencyStatus, Timestamp};

    fn agency(id: &str) -> Agency {
        Agency {
            id: AgencyId::parse(id).unwrap(),
            kind: AgencyKind::parse("hospital").unwrap(),
            display_name: "病院".to_owned(),
            municipalities: vec![],
            council_memberships: vec![],
            coordinator_of: vec![],
            status: AgencyStatus::Active,
        }
    }

    fn id(text: &str) -> AgencyId {
        AgencyId::parse(text).unwrap()
    }

    async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        (dir, Arc::new(store))
    }

    /// Inserts the agency `name`, then fails when `fail`.
    async fn insert(store: &Arc<dyn Store>, name: &str, fail: bool) -> Result<(), StoreError> {
        let agency = agency(name);
        store
            .write(Locking::Exclusive, move |tx| {
                Box::pin(async move {
                    tx.insert_agency(&agency, Timestamp(0)).await?;
                    if fail {
                        return Err(StoreError::Conflict("on purpose".to_owned()));
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn registered(store: &Arc<dyn Store>, name: &str) -> bool {
        let mut read = store.read().await.unwrap();
        read.agency(&id(name)).await.unwrap().is_some()
    }

    #[tokio::test]
    async fn a_committed_write_is_visible_to_readers() {
        let (_dir, store) = store().await;
        insert(&store, "ab", false).await.unwrap();
        assert!(registered(&store, "ab").await);
    }

    #[tokio::test]
    async fn a_failed_job_leaves_nothing_and_the_jobs_beside_it_in_its_batch_commit() {
        let (_dir, store) = store().await;
        // Sent together, so that the writer takes them in one batch.
        let (kept, failed, after) = tokio::join!(
            insert(&store, "kept", false),
            insert(&store, "failed", true),
            insert(&store, "after", false),
        );
        kept.unwrap();
        assert!(matches!(failed, Err(StoreError::Conflict(_))));
        after.unwrap();
        assert!(registered(&store, "kept").await);
        assert!(!registered(&store, "failed").await);
        assert!(registered(&store, "after").await);
    }

    #[tokio::test]
    async fn a_job_that_panics_is_rolled_back_and_the_writer_goes_on() {
        let (_dir, store) = store().await;
        let panicked = store
            .write(Locking::Exclusive, |tx| {
                Box::pin(async move {
                    tx.insert_agency(&agency("panicked"), Timestamp(0)).await?;
                    if tx.agencies().await?.len() == 1 {
                        panic!("a bug in a use case");
                    }
                    Ok::<_, StoreError>(())
                })
            })
            .await;
        assert!(matches!(panicked, Err(StoreError::Corrupt { .. })));
        insert(&store, "next", false).await.unwrap();
        assert!(!registered(&store, "panicked").await);
        assert!(registered(&store, "next").await);
    }

    #[tokio::test]
    async fn a_store_error_inside_a_job_rolls_back_only_that_job() {
        let (_dir, store) = store().await;
        insert(&store, "ab", false).await.unwrap();
        // The second insert of the same agency is refused by the database.
        let twice = agency("cd");
        let refused = store
            .write(Locking::Exclusive, move |tx| {
                Box::pin(async move {
                    tx.insert_agency(&twice, Timestamp(0)).await?;
                    tx.insert_agency(&twice, Timestamp(0)).await
                })
            })
            .await;
        assert!(refused.is_err());
        assert!(!registered(&store, "cd").await);
        insert(&store, "ef", false).await.unwrap();
        assert!(registered(&store, "ab").await && registered(&store, "ef").await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_stops_waiting_leaves_its_write_whole_or_absent_and_the_writer_free() {
        let (_dir, store) = store().await;
        let mut cancelled = Vec::new();
        for n in 0..200_u32 {
            let store = Arc::clone(&store);
            let name = format!("c{n}");
            let write = tokio::spawn(async move {
                let (a, b) = (agency(&format!("{name}a")), agency(&format!("{name}b")));
                store
                    .write(Locking::Exclusive, move |tx| {
                        Box::pin(async move {
                            tx.insert_agency(&a, Timestamp(0)).await?;
                            tokio::task::yield_now().await;
                            tx.insert_agency(&b, Timestamp(0)).await
                        })
                    })
                    .await
            });
            if n % 3 == 0 {
                tokio::task::yield_now().await;
                write.abort();
            }
            cancelled.push((n, write));
        }
        let mut acknowledged = Vec::new();
        for (n, write) in cancelled {
            if let Ok(result) = write.await {
                result.unwrap();
                acknowledged.push(n);
            }
        }
        insert(&store, "last", false).await.unwrap();
        let mut read = store.read().await.unwrap();
        let names: std::collections::HashSet<String> = read
            .agencies()
            .await
            .unwrap()
            .into_iter()
            .map(|agency| agency.id.to_string())
            .collect();
        for n in 0..200_u32 {
            let (a, b) = (format!("c{n}a"), format!("c{n}b"));
            // Both halves of a write or neither: never one without the other.
            assert_eq!(
                names.contains(&a),
                names.contains(&b),
                "write {n} is half there"
            );
        }
        for n in acknowledged {
            assert!(
                names.contains(&format!("c{n}a")),
                "acknowledged write {n} is missing"
            );
        }
        assert!(names.contains("last"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_write_ahead_log_stays_short_under_continuous_writes_and_reads() {
        let (dir, store) = store().await;
        let reading = Arc::new(AtomicBool::new(true));
        let reader = tokio::spawn({
            let (store, reading) = (Arc::clone(&store), Arc::clone(&reading));
            async move {
                while reading.load(Ordering::Relaxed) {
                    let mut tx = store.read().await.unwrap();
                    tx.agency(&id("nobody")).await.unwrap();
                    drop(tx);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
        // About 64 MB of pages in all: a log that never restarted would hold all of it.
        let response = Arc::new(vec![7_u8; 8000]);
        let writers = (0..4).map(|writer| {
            let (store, response) = (Arc::clone(&store), Arc::clone(&response));
            tokio::spawn(async move {
                for n in 0..2000 {
                    let (key, response) = (format!("{writer}-{n}"), Arc::clone(&response));
                    store
                        .write(Locking::Exclusive, move |tx| {
                            Box::pin(async move {
                                tx.record_idempotent_response(
                                    &id("ab"),
                                    "Op",
                                    &key,
                                    b"d",
                                    &response,
                                    Timestamp(0),
                                )
                                .await
                            })
                        })
                        .await
                        .unwrap();
                }
            })
        });
        for writer in futures::future::join_all(writers).await {
            writer.unwrap();
        }
        reading.store(false, Ordering::Relaxed);
        reader.await.unwrap();
        let log = std::fs::metadata(dir.path().join("t.db-wal"))
            .unwrap()
            .len();
        assert!(log < 24 << 20, "the log grew to {log} bytes");
    }

    fn audit_entry(action: &str) -> AuditEntry {
        AuditEntry {
            at: Timestamp(1),
            agency_id: "ab".to_owned(),
            staff_name: None,
            staff_role: None,
            action: action.to_owned(),
            municipality: None,
            case_id: None,
            referral_id: None,
            note_id: None,
            consent_id: None,
            basis: None,
            outcome: "ok".to_owned(),
        }
    }

    #[tokio::test]
    async fn records_chained_by_jobs_of_one_batch_verify_and_a_rolled_back_one_leaves_no_gap() {
        let (_dir, store) = store().await;
        let append = |action: &'static str, fail: bool| {
            let store = Arc::clone(&store);
            async move {
                store
                    .write(Locking::Narrow, move |tx| {
                        Box::pin(async move {
                            tx.append_audit(&audit_entry(action), None).await?;
                            if fail {
                                return Err(StoreError::Conflict("on purpose".to_owned()));
                            }
                            Ok(())
                        })
                    })
                    .await
            }
        };
        let (first, rolled_back, third) = tokio::join!(
            append("first", false),
            append("rolled back", true),
            append("third", false),
        );
        first.unwrap();
        assert!(rolled_back.is_err());
        third.unwrap();
        let mut read = store.read().await.unwrap();
        let records = read.audit_range(0, 10).await.unwrap();
        let actions: Vec<_> = records.iter().map(|r| r.entry.action.as_str()).collect();
        assert_eq!(actions, ["first", "third"]);
        let head = crate::domain::audit::verify(ChainHead::GENESIS, &records).unwrap();
        assert_eq!(head.sequence, 2);
    }

    #[tokio::test]
    async fn closing_commits_every_write_it_answered() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
        let writes: Vec<_> = (0..20)
            .map(|n| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { insert(&store, &format!("w{n}"), false).await })
            })
            .collect();
        tokio::task::yield_now().await;
        store.close().await;
        let mut answered = Vec::new();
        for (n, write) in writes.into_iter().enumerate() {
            if write.await.unwrap().is_ok() {
                answered.push(n);
            }
        }
        drop(store);
        let reopened: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
        for n in answered {
            assert!(
                registered(&reopened, &format!("w{n}")).await,
                "w{n} was answered, not kept"
            );
        }
    }
}
