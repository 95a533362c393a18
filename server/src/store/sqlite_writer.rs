//! SQLite's one writer: a thread of its own that owns the only write connection and runs whole
//! write use cases (jobs) received over a channel.
//!
//! The thread runs the jobs waiting one after another in one transaction, each in a savepoint
//! of its own: a job that fails is rolled back alone. The batch then commits with one fsync, and
//! only then does each job get its answer, so under load many writes share one fsync and still
//! no write is acknowledged before it is on disk. A caller that stops waiting drops only its
//! answer: a job not yet begun is skipped, one begun runs to its end, and the connection is never
//! left half-way through anything.
//!
//! Why a thread and a synchronous connection, where the readers use sqlx: every statement sqlx
//! runs on SQLite is a round trip to the connection's own thread, and the one writer waits
//! through each of a job's half-dozen statements. Here a statement is a function call on the
//! thread that runs the job, and the job's future is polled on that same thread.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt as _;
use rusqlite::types::Value;
use tokio::sync::{mpsc, oneshot};

use super::db::{Connection, Dialect, Row, WrittenRow};
use super::feed::FeedSignals;
use super::queries::Param;
use super::{JobAnswer, StoreError, WriteJob};
use crate::domain::AgencyId;

/// The most jobs one transaction takes: bounds how long the first of them waits for its answer.
const MAX_BATCH: usize = 512;
/// Jobs waiting for the writer beyond this make their callers wait to send them.
const QUEUE: usize = 4096;
/// Prepared statements kept by the write connection: every statement the use cases write.
const STATEMENT_CACHE: usize = 256;

/// A write use case and where its answer goes.
pub(super) struct Job {
    pub(super) run: WriteJob,
    pub(super) answer: oneshot::Sender<Result<JobAnswer, StoreError>>,
}

/// A job that ran in the open batch, waiting for the batch to commit.
struct Ran {
    answer: oneshot::Sender<Result<JobAnswer, StoreError>>,
    outcome: Result<JobAnswer, StoreError>,
}

/// Opens the write connection to the (already migrated) database at `path`, with the settings
/// every write relies on.
fn open_connection(path: &Path) -> Result<rusqlite::Connection, rusqlite::Error> {
    let connection = rusqlite::Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // FULL: a commit is fsynced before it returns, so a response means the data survives a
    // crash the next instant. temp_store: each write is a savepoint, whose journal of pages to
    // roll back SQLite would spill to a temporary file past 64 KiB, a write system call per
    // page; in memory it is bounded by the pages one write changes. No automatic checkpoints:
    // they run on a connection of their own (the store's checkpointer), not in the commit that
    // happens to fill the log, where every writer waits for them.
    for pragma in [
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = FULL",
        "PRAGMA foreign_keys = ON",
        "PRAGMA temp_store = MEMORY",
        "PRAGMA wal_autocheckpoint = 0",
    ] {
        // Some answer with a row (the new value), which is of no interest.
        let mut statement = connection.prepare(pragma)?;
        let mut rows = statement.raw_query();
        while rows.next()?.is_some() {}
    }
    Ok(connection)
}

/// Starts the writer thread on the database at `path`; it runs until every sender of jobs is
/// gone. `checkpoint_due` asks it to copy the rest of a long log after its next commit.
pub(super) fn spawn(
    path: &Path,
    signals: Arc<FeedSignals>,
    checkpoint_due: Arc<AtomicBool>,
) -> Result<mpsc::Sender<Job>, StoreError> {
    let connection = open_connection(path)?;
    // The jobs' futures are polled here, on the thread that owns the connection; a job may still
    // await anything (a timer, another task's answer), so it gets a runtime of its own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| StoreError::Database(sqlx::Error::Io(error)))?;
    let (jobs, queue) = mpsc::channel(QUEUE);
    let writer = Writer {
        connection: Some(connection),
        signals,
        checkpoint_due,
    };
    std::thread::Builder::new()
        .name("sqlite-writer".to_owned())
        .spawn(move || runtime.block_on(writer.run(queue)))
        .map_err(|error| StoreError::Database(sqlx::Error::Io(error)))?;
    Ok(jobs)
}

/// Answers every job of a batch that did not commit with why.
fn fail(
    answers: impl Iterator<Item = oneshot::Sender<Result<JobAnswer, StoreError>>>,
    error: rusqlite::Error,
) {
    let error = Arc::new(error);
    for answer in answers {
        let _ = answer.send(Err(StoreError::Commit(Arc::clone(&error))));
    }
}

/// The writer thread's state.
struct Writer {
    /// Lent to each job's transaction while the job runs.
    connection: Option<rusqlite::Connection>,
    signals: Arc<FeedSignals>,
    checkpoint_due: Arc<AtomicBool>,
}

impl Writer {
    /// Runs jobs until every sender is gone (the store closed or dropped).
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
            self.run_batch(std::mem::take(&mut batch)).await;
        }
    }

    fn connection(&self) -> &rusqlite::Connection {
        match self.connection.as_ref() {
            Some(connection) => connection,
            None => unreachable!("the write connection is lent to one job at a time"),
        }
    }

    /// Runs `batch` in one transaction and answers every job once it committed (or failed).
    async fn run_batch(&mut self, batch: Vec<Job>) {
        // IMMEDIATE: take the write lock now, so a batch never fails half-way for want of it.
        if let Err(error) = self.connection().execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(%error, "the writer cannot begin a transaction");
            return fail(batch.into_iter().map(|job| job.answer), error);
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
                    let _ = self.connection().execute_batch("ROLLBACK");
                    let answers = ran.into_iter().map(|done| done.answer);
                    return fail(answers.chain([job.answer]), error);
                }
            }
        }
        // How many writes share this fsync.
        metrics::histogram!(crate::telemetry::names::COMMIT_BATCH).record(ran.len() as f64);
        let started = std::time::Instant::now();
        let committed = self.connection().execute_batch("COMMIT");
        metrics::histogram!(crate::telemetry::names::COMMIT_DURATION)
            .record(started.elapsed().as_secs_f64());
        match committed {
            Ok(()) => {
                if self.checkpoint_due.swap(false, Ordering::Relaxed)
                    && let Err(error) = self.connection().query_row(
                        "PRAGMA wal_checkpoint(PASSIVE)",
                        [],
                        |_| Ok(()),
                    )
                {
                    tracing::warn!(%error, "a checkpoint of the write-ahead log failed");
                }
                // Only now is there something to read: wake those whose feeds grew.
                self.signals.wake(&touched);
                for done in ran {
                    let _ = done.answer.send(done.outcome);
                }
            }
            Err(error) => {
                tracing::error!(%error, "a batch of writes failed to commit");
                // Leave the connection clean for the next batch whatever state it is in.
                let _ = self.connection().execute_batch("ROLLBACK");
                fail(ran.into_iter().map(|done| done.answer), error);
            }
        }
    }

    /// Runs one job in a savepoint: released when the job succeeds, rolled back when it fails
    /// or panics. `Err` only when the connection itself failed around it.
    async fn run_job(
        &mut self,
        run: WriteJob,
        touched: &mut Vec<AgencyId>,
    ) -> Result<Result<JobAnswer, StoreError>, rusqlite::Error> {
        self.connection().execute_batch("SAVEPOINT job")?;
        let mut tx = WriteTransaction {
            connection: self.connection.take(),
            touched: Vec::new(),
        };
        let outcome = AssertUnwindSafe(run(&mut tx)).catch_unwind().await;
        self.connection = tx.connection;
        // What a job that is rolled back answers: its own refusal, or why it failed.
        let rolled_back = match outcome {
            Ok(Ok(value)) => {
                self.connection().execute_batch("RELEASE job")?;
                touched.extend(tx.touched);
                return Ok(Ok(Ok(value)));
            }
            Ok(Err(refused)) => Ok(Err(refused)),
            Err(_) => {
                tracing::error!("a write job panicked; its writes are rolled back");
                Err(StoreError::corrupt("write job", "the use case panicked"))
            }
        };
        self.connection()
            .execute_batch("ROLLBACK TO job; RELEASE job")?;
        Ok(rolled_back)
    }
}

/// One write job's savepoint on the write connection. Its statements run right here, on the
/// writer thread.
pub(super) struct WriteTransaction {
    /// `None` only once the job is over and the connection handed back.
    connection: Option<rusqlite::Connection>,
    /// Agencies whose feeds this job appended to, woken once its batch has committed.
    touched: Vec<AgencyId>,
}

impl WriteTransaction {
    fn connection(&self) -> Result<&rusqlite::Connection, StoreError> {
        self.connection
            .as_ref()
            .ok_or_else(|| StoreError::corrupt("sqlite writer", "no connection"))
    }

    /// Prepares `sql` (from the connection's cache) with `params` bound to its `$N`s.
    fn statement(
        &self,
        sql: &str,
        params: &[Param],
    ) -> Result<rusqlite::CachedStatement<'_>, StoreError> {
        let mut statement = self.connection()?.prepare_cached(sql)?;
        for index in 1..=statement.parameter_count() {
            // `$3` is the third parameter wherever it stands, as sqlx binds it.
            let number = statement
                .parameter_name(index)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|number| number.parse::<usize>().ok())
                .unwrap_or(index);
            let param = params.get(number.wrapping_sub(1)).ok_or_else(|| {
                StoreError::corrupt("sqlite writer", format!("no value for ${number}"))
            })?;
            match param {
                Param::Int(value) => statement.raw_bind_parameter(index, value)?,
                Param::Text(value) => statement.raw_bind_parameter(index, value)?,
                Param::Blob(value) => statement.raw_bind_parameter(index, value)?,
            }
        }
        Ok(statement)
    }
}

#[async_trait]
impl Connection for WriteTransaction {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn fetch(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Row>, StoreError> {
        let mut statement = self.statement(sql, params)?;
        let columns: Arc<[String]> = statement
            .column_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut rows = statement.raw_query();
        let mut fetched = Vec::new();
        while let Some(row) = rows.next()? {
            let values = (0..columns.len())
                .map(|index| row.get::<_, Value>(index))
                .collect::<Result<_, _>>()?;
            fetched.push(Row::Written(WrittenRow::new(Arc::clone(&columns), values)));
        }
        Ok(fetched)
    }

    async fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, StoreError> {
        let mut statement = self.statement(sql, params)?;
        let mut rows = statement.raw_query();
        while rows.next()?.is_some() {}
        drop(rows);
        drop(statement);
        Ok(self.connection()?.changes())
    }

    fn touched(&mut self) -> &mut Vec<AgencyId> {
        &mut self.touched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transaction(dir: &tempfile::TempDir) -> WriteTransaction {
        WriteTransaction {
            connection: Some(open_connection(&dir.path().join("t.db")).unwrap()),
            touched: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_parameter_binds_by_its_number_wherever_it_stands_and_a_row_reads_by_name_or_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut tx = transaction(&dir);
        let params = [Param::Int(Some(7)), Param::Text(Some("x".to_owned()))];
        let rows = tx
            .fetch("SELECT $2 AS b, $1 AS a, $2 AS c, NULL AS n", &params)
            .await
            .unwrap();
        let row = &rows[0];
        assert_eq!(row.try_get::<String, _>("b").unwrap(), "x");
        assert_eq!(row.try_get::<i64, _>(1).unwrap(), 7);
        assert_eq!(row.try_get::<String, _>("c").unwrap(), "x");
        assert_eq!(row.try_get::<Option<Vec<u8>>, _>("n").unwrap(), None);
        assert!(row.try_get::<i64, _>("missing").is_err());
        assert!(
            row.try_get::<i64, _>("b").is_err(),
            "text is not an integer"
        );
        assert!(tx.fetch("SELECT $3", &params).await.is_err());
    }

    #[tokio::test]
    async fn a_statement_that_writes_counts_the_rows_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let mut tx = transaction(&dir);
        tx.execute("CREATE TABLE t (a INTEGER)", &[]).await.unwrap();
        let one = [Param::Int(Some(1))];
        let inserted = tx.execute("INSERT INTO t VALUES ($1), ($1)", &one).await;
        assert_eq!(inserted.unwrap(), 2);
        let updated = tx.execute("UPDATE t SET a = 2 WHERE a = $1", &one).await;
        assert_eq!(updated.unwrap(), 2);
    }

    #[tokio::test]
    async fn the_write_connection_commits_durably_in_wal_mode_with_foreign_keys_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut tx = transaction(&dir);
        let setting = async |tx: &mut WriteTransaction, pragma: &str| {
            let rows = tx.fetch(&format!("PRAGMA {pragma}"), &[]).await.unwrap();
            rows[0]
                .try_get::<String, _>(0)
                .or_else(|_| rows[0].try_get::<i64, _>(0).map(|value| value.to_string()))
        };
        assert_eq!(setting(&mut tx, "journal_mode").await.unwrap(), "wal");
        // 2: FULL, an fsync on every commit.
        assert_eq!(setting(&mut tx, "synchronous").await.unwrap(), "2");
        assert_eq!(setting(&mut tx, "foreign_keys").await.unwrap(), "1");
        assert_eq!(setting(&mut tx, "wal_autocheckpoint").await.unwrap(), "0");
    }
}
