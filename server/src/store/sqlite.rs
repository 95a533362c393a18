//! The embedded SQLite backend: one file in WAL mode with `synchronous=FULL`, a small pool of
//! readers (sqlx), and one writer thread that owns the only write connection
//! (`sqlite_writer`).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::{mpsc, oneshot};

use super::db::{Connection, Dialect, Row};
use super::feed::FeedSignals;
use super::queries::{
    AGENCY_COLUMNS, FEED_ACKNOWLEDGED, FEED_PAGE, Param, acknowledged_from_row, agency_from_row,
    bind_params, feed_from_row,
};
use super::sqlite_writer::{self, Job};
use super::{JobAnswer, Locking, Store, StoreError, Transaction, WriteJob};
use crate::domain::AgencyId;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    _tasks: Arc<Tasks>,
    signals: Arc<FeedSignals>,
    readers: SqlitePool,
    writer_pool: SqlitePool,
}

/// The store's background task, stopped with the last handle on the store. (The writer thread
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

/// A read snapshot on SQLite.
pub struct SqliteTransaction {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    /// Never appended to: a read writes no feed.
    touched: Vec<crate::domain::AgencyId>,
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

#[async_trait]
impl Connection for SqliteTransaction {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn fetch(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Row>, StoreError> {
        let rows = bind_params(sqlx::query(sql), params)
            .fetch_all(&mut *self.tx)
            .await?;
        Ok(rows.into_iter().map(Row::Sqlite).collect())
    }

    async fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, StoreError> {
        let done = bind_params(sqlx::query(sql), params)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected())
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
        let jobs = sqlite_writer::spawn(
            options.get_filename(),
            Arc::clone(&signals),
            Arc::clone(&checkpoint_due),
        )?;
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
    /// Hands the job to the writer thread and waits for its batch to commit.
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
            tx,
            touched: Vec::new(),
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
                            tx.append_audit(&audit_entry(action)).await?;
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
