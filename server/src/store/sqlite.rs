//! The embedded SQLite backend: one file in WAL mode with `synchronous=FULL`, a small pool of
//! readers, and one writer connection with group commit.
//!
//! Group commit: every write transaction is a savepoint inside a shared batch transaction on the
//! writer connection. Committing a write releases its savepoint and then waits until the batch
//! itself has committed; a committer task commits the batch (one fsync) as soon as any member is
//! waiting. While one batch is being synced, the next one fills, so under load many writes share
//! one fsync, and still no write is acknowledged before it is on disk.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Executor as _, Sqlite};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, oneshot, watch};

use super::feed::FeedSignals;
use super::queries::{Param, StatementBatch, bind_params};
use super::{Lookup, Store, StoreError, Transaction};
use crate::domain::audit::ChainHead;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The outcome of one batch, shared by its members: `None` until it has committed or failed.
type BatchOutcome = watch::Sender<Option<Result<(), Arc<sqlx::Error>>>>;

/// The writer connection and the batch open on it.
struct WriterState {
    /// Detached from its pool: it lives as long as the store, and closing the pool must not
    /// wait for it.
    connection: SqliteConnection,
    /// The open batch transaction, if any.
    batch: Option<Arc<BatchOutcome>>,
    /// A member was dropped without committing: its savepoint must be rolled back before the
    /// connection is used again.
    rollback_pending: bool,
    /// The next member's savepoint is already open: a member releases its own and opens the
    /// next one in the same call, which spares every write one round trip to the connection's
    /// thread (the writer's time is mostly such round trips).
    savepoint_open: bool,
}

/// A read a writer announced before it got the connection.
struct QueuedRead {
    sql: String,
    params: Vec<Param>,
}

/// A write transaction waiting for the connection.
struct Waiter {
    /// What it reads first. The writer handing the connection on makes these reads in the same
    /// call to the connection's thread as its own commit, which spares the next writer a round
    /// trip while it holds the connection; every other writer waits through that round trip.
    reads: Vec<QueuedRead>,
    handed: oneshot::Sender<Handoff>,
}

/// The connection handed to the next writer, with the rows of its reads when they were made.
/// Dropped unreceived (its writer stopped waiting just after it was sent), the hold in it hands
/// the connection on again.
struct Handoff {
    hold: WriterHold,
    fetched: Option<Vec<Vec<SqliteRow>>>,
}

/// Whether somebody holds the writer connection, and who waits for it, first come first served.
#[derive(Default)]
struct WriterQueue {
    held: bool,
    waiting: VecDeque<Waiter>,
}

/// The writer connection and the line of those waiting for it. The connection is passed from
/// hand to hand: only a holder hands it on, and only when nobody waits is it let go.
struct WriterLine {
    state: Arc<Mutex<WriterState>>,
    queue: std::sync::Mutex<WriterQueue>,
    /// Wakes the committer: a member is waiting for its batch, or a member rolled back.
    wake: Arc<Notify>,
    /// The write-ahead log has grown long: the committer checkpoints what the background
    /// checkpointer left (see `spawn_checkpointer`), so that the next write can restart it.
    checkpoint_due: std::sync::atomic::AtomicBool,
}

impl WriterLine {
    fn queue(&self) -> std::sync::MutexGuard<'_, WriterQueue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for the connection. `reads` may have been made by the writer before; their rows
    /// come with it then.
    async fn acquire(
        self: &Arc<Self>,
        reads: Vec<QueuedRead>,
    ) -> Result<(WriterHold, Option<Vec<Vec<SqliteRow>>>), StoreError> {
        let receiver = {
            let mut queue = self.queue();
            if queue.held {
                let (handed, receiver) = oneshot::channel();
                queue.waiting.push_back(Waiter { reads, handed });
                receiver
            } else {
                // Let go only after its guard was dropped (see `hand_on`), so it is free.
                let guard = Arc::clone(&self.state).try_lock_owned().map_err(|_| {
                    StoreError::corrupt("sqlite writer", "the connection is held by nobody in line")
                })?;
                queue.held = true;
                return Ok((self.hold(guard), None));
            }
        };
        // Dropped while waiting, the receiver makes the hand-off fail and the connection goes
        // to the next in line.
        let handoff = receiver
            .await
            .map_err(|_| StoreError::corrupt("sqlite writer", "the writer line was dropped"))?;
        Ok((handoff.hold, handoff.fetched))
    }

    fn hold(self: &Arc<Self>, guard: OwnedMutexGuard<WriterState>) -> WriterHold {
        WriterHold {
            guard: Some(guard),
            line: Arc::clone(self),
        }
    }

    /// The reads of the first writer in line, taken for the holder to make with its commit;
    /// `None` when nobody waits.
    fn reads_of_next(&self) -> Option<Vec<QueuedRead>> {
        self.queue()
            .waiting
            .front_mut()
            .map(|waiter| std::mem::take(&mut waiter.reads))
    }

    /// The first writer in line, taken out of it by the holder, who hands it the connection
    /// together with the reads it made for it.
    fn next_in_line(&self) -> Option<Waiter> {
        self.queue().waiting.pop_front()
    }

    /// Hands the connection to `next` (with its rows, if made), else to the first in line, else
    /// lets it go.
    fn hand_on(
        self: &Arc<Self>,
        mut guard: OwnedMutexGuard<WriterState>,
        mut next: Option<(Waiter, Option<Vec<Vec<SqliteRow>>>)>,
    ) {
        loop {
            let (waiter, fetched) = match next.take() {
                Some(next) => next,
                None => {
                    let mut queue = self.queue();
                    match queue.waiting.pop_front() {
                        Some(waiter) => (waiter, None),
                        None => {
                            drop(guard);
                            queue.held = false;
                            return;
                        }
                    }
                }
            };
            let handoff = Handoff {
                hold: self.hold(guard),
                fetched,
            };
            match waiter.handed.send(handoff) {
                Ok(()) => return,
                // It stopped waiting: the next one, then.
                Err(mut back) => match back.hold.guard.take() {
                    Some(taken) => guard = taken,
                    None => return,
                },
            }
        }
    }
}

/// The writer connection, held: dropping it hands the connection on.
struct WriterHold {
    guard: Option<OwnedMutexGuard<WriterState>>,
    line: Arc<WriterLine>,
}

impl WriterHold {
    fn state(&mut self) -> &mut WriterState {
        // Only `release` and `drop` take the guard, and both consume the hold.
        self.guard
            .as_deref_mut()
            .unwrap_or_else(|| unreachable!("a writer hold is used after it was released"))
    }

    fn connection(&self) -> &SqliteConnection {
        match &self.guard {
            Some(guard) => &guard.connection,
            None => unreachable!("a writer hold is used after it was released"),
        }
    }

    /// Hands the connection to `next`, with the rows of its reads if they were made.
    fn release(mut self, next: Option<(Waiter, Option<Vec<Vec<SqliteRow>>>)>) {
        if let Some(guard) = self.guard.take() {
            self.line.hand_on(guard, next);
        }
    }
}

impl Drop for WriterHold {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            self.line.hand_on(guard, None);
        }
    }
}

/// Group commit on the single writer connection.
struct Writer {
    line: Arc<WriterLine>,
    committer: tokio::task::JoinHandle<()>,
    checkpointer: tokio::task::JoinHandle<()>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.committer.abort();
        self.checkpointer.abort();
    }
}

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Writer>,
    signals: Arc<FeedSignals>,
    readers: SqlitePool,
    writer_pool: SqlitePool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// One write: a savepoint in the current batch, holding the writer connection until it commits
/// or is dropped.
pub struct BatchMember {
    hold: Option<WriterHold>,
    wake: Arc<Notify>,
}

impl BatchMember {
    fn state(&mut self) -> &mut WriterState {
        // The hold is only taken by `commit`, which consumes the member.
        match self.hold.as_mut() {
            Some(hold) => hold.state(),
            None => unreachable!("a batch member is used after it committed"),
        }
    }

    /// Runs the writes still waiting and releases the savepoint, with the reads of the next
    /// writer in line, all in one call to the connection's thread; hands the connection on;
    /// and waits until the batch is on disk.
    async fn commit(mut self, mut waiting: StatementBatch) -> Result<(), StoreError> {
        waiting.push("RELEASE write", Vec::new());
        waiting.push("SAVEPOINT write", Vec::new());
        let own = waiting.statements;
        let hold = self
            .hold
            .as_mut()
            .unwrap_or_else(|| unreachable!("a batch member commits twice"));
        // The first in line stays first: only the holder takes anyone out of the line. Should
        // this call be abandoned, that writer gets the connection without its reads and makes
        // them itself.
        let next_reads = hold.line.reads_of_next();
        let reads_for_next = next_reads.is_some();
        for read in next_reads.unwrap_or_default() {
            waiting.push(&read.sql, read.params);
        }
        let state = hold.state();
        let (mut results, failure) = run_batch(&mut state.connection, &waiting).await;
        if let Some(error) = failure
            && results.len() < own
        {
            // This write failed: dropped, it rolls its savepoint back before the next one runs.
            drop(self);
            return Err(error.into());
        }
        // This write is in the batch. The next writer's reads, if they failed, it makes again.
        state.savepoint_open = true;
        let fetched = (results.len() == waiting.statements).then(|| results.split_off(own));
        let outcome = state.batch.as_ref().map(|batch| batch.subscribe());
        let hold = self
            .hold
            .take()
            .unwrap_or_else(|| unreachable!("a batch member commits twice"));
        // Hand the connection on before waiting: the next writers join this batch or the next.
        let next = if reads_for_next {
            hold.line.next_in_line().map(|waiter| (waiter, fetched))
        } else {
            None
        };
        hold.release(next);
        self.wake.notify_one();
        let mut outcome =
            outcome.ok_or_else(|| StoreError::corrupt("sqlite writer", "no open batch"))?;
        let result = outcome
            .wait_for(Option::is_some)
            .await
            .map_err(|_| StoreError::corrupt("sqlite writer", "the committer stopped"))?
            .clone();
        match result {
            Some(Err(error)) => Err(StoreError::Commit(error)),
            _ => Ok(()),
        }
    }
}

impl Drop for BatchMember {
    fn drop(&mut self) {
        if let Some(mut hold) = self.hold.take() {
            // Dropped without commit: roll its savepoint back before anyone writes again.
            hold.state().rollback_pending = true;
            drop(hold);
            self.wake.notify_one();
        }
    }
}

/// The connection a transaction runs on: a read snapshot or a batch member.
pub enum SqliteTx {
    Read(sqlx::Transaction<'static, Sqlite>),
    Write(BatchMember),
}

impl Deref for SqliteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match self {
            Self::Read(tx) => tx,
            Self::Write(member) => match &member.hold {
                Some(hold) => hold.connection(),
                None => unreachable!("a batch member is used after it committed"),
            },
        }
    }
}

impl DerefMut for SqliteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            Self::Read(tx) => tx,
            Self::Write(member) => &mut member.state().connection,
        }
    }
}

impl SqliteTx {
    async fn commit(self, waiting: StatementBatch) -> Result<(), StoreError> {
        match self {
            Self::Read(tx) => Ok(tx.commit().await?),
            Self::Write(member) => member.commit(waiting).await,
        }
    }
}

/// A transaction on SQLite.
///
/// Writes whose outcome nobody waits for (inserting a referral, its event, feed entries, an
/// idempotency record) are not sent to the connection one by one: each statement is a round
/// trip to the connection's own thread, and the single writer is held for all of them. They wait
/// in `waiting` and go together with the next statement that needs the connection (a read sees
/// them, since they run first), with the audit record, or with the commit. Such a write fails
/// only on a broken database or a bug, and its error then surfaces at that later statement; the
/// transaction is rolled back as for any error.
///
/// Reads a use case announces ([`Transaction::prefetch`]) are likewise made together, and kept
/// in `fetched` until asked for; any other statement on the connection discards them first.
pub struct SqliteTransaction {
    tx: SqliteTx,
    waiting: StatementBatch,
    fetched: Vec<(String, Vec<SqliteRow>)>,
    /// The audit chain's head, when it was fetched ahead in this write transaction: this
    /// transaction's records then go in with its commit (see `append_audit`).
    audit_head: Option<ChainHead>,
    /// Agencies whose feeds this transaction appended to, woken once it has committed.
    touched: Vec<crate::domain::AgencyId>,
    signals: Arc<FeedSignals>,
}

/// Makes the writer connection ready for a new savepoint: rolls back an abandoned one and opens
/// a batch if none is open.
async fn prepare_writer(state: &mut WriterState) -> Result<(), sqlx::Error> {
    roll_back_abandoned(state).await;
    if state.batch.is_none() {
        // IMMEDIATE: take the write lock now, so a batch never fails half-way for want of it.
        state
            .connection
            .execute("BEGIN IMMEDIATE; SAVEPOINT write")
            .await?;
        state.batch = Some(Arc::new(watch::Sender::new(None)));
        state.savepoint_open = true;
    } else if !state.savepoint_open {
        state.connection.execute("SAVEPOINT write").await?;
        state.savepoint_open = true;
    }
    Ok(())
}

/// Rolls back the savepoint of a member dropped without committing. When there is none (the
/// member was cancelled just after releasing it), its writes simply stay in the batch: its caller
/// never got an answer and a retry with the same idempotency key replays it.
async fn roll_back_abandoned(state: &mut WriterState) {
    if state.rollback_pending {
        state.rollback_pending = false;
        state.savepoint_open = false;
        if let Err(error) = state
            .connection
            .execute("ROLLBACK TO write; RELEASE write")
            .await
        {
            tracing::debug!(%error, "no savepoint to roll back");
        }
    }
}

/// Runs `batch` in one call to the connection's thread. Each statement yields its rows, then
/// its result (writes yield no rows), so the answer is one list of rows per statement that
/// finished, with the error that stopped the rest, if any.
async fn run_batch(
    connection: &mut SqliteConnection,
    batch: &StatementBatch,
) -> (Vec<Vec<SqliteRow>>, Option<sqlx::Error>) {
    use futures::TryStreamExt as _;
    // Several statements in one query: see `write_checked`.
    #[allow(deprecated)]
    let mut steps = bind_params(sqlx::query(&batch.sql), &batch.params).fetch_many(connection);
    let (mut results, mut rows) = (Vec::new(), Vec::new());
    loop {
        match steps.try_next().await {
            Ok(Some(sqlx::Either::Left(_))) => results.push(std::mem::take(&mut rows)),
            Ok(Some(sqlx::Either::Right(row))) => rows.push(row),
            Ok(None) => return (results, None),
            Err(error) => return (results, Some(error)),
        }
    }
}

/// Commits the open batch whenever woken. Runs until the store is dropped.
fn spawn_committer(line: Arc<WriterLine>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            line.wake.notified().await;
            let mut hold = match line.acquire(Vec::new()).await {
                Ok((hold, _)) => hold,
                Err(error) => {
                    tracing::error!(%error, "the committer cannot get the writer connection");
                    continue;
                }
            };
            let state = hold.state();
            let Some(batch) = state.batch.take() else {
                continue;
            };
            roll_back_abandoned(state).await;
            // Commits the open savepoint too, empty: the next batch opens its own.
            state.savepoint_open = false;
            let commit = if line
                .checkpoint_due
                .swap(false, std::sync::atomic::Ordering::Relaxed)
            {
                // Stops before the checkpoint if the commit fails.
                "COMMIT; PRAGMA wal_checkpoint(PASSIVE)"
            } else {
                "COMMIT"
            };
            // Members waiting on the batch: how many writes share this fsync.
            metrics::histogram!(crate::telemetry::names::COMMIT_BATCH)
                .record(batch.receiver_count() as f64);
            let started = std::time::Instant::now();
            let result = state.connection.execute(commit).await.map(|_| ());
            metrics::histogram!(crate::telemetry::names::COMMIT_DURATION)
                .record(started.elapsed().as_secs_f64());
            if let Err(error) = &result {
                tracing::error!(%error, "a batch of writes failed to commit");
                // Leave the connection clean for the next batch whatever state it is in.
                let _ = state.connection.execute("ROLLBACK").await;
            }
            batch.send_replace(Some(result.map_err(Arc::new)));
        }
    })
}

/// How often the write-ahead log is copied back into the database file in the background.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(50);
/// A log this long (in pages; SQLite's own default) is checkpointed by the writer too, so that
/// the next write starts it afresh instead of growing it.
const CHECKPOINT_RESTART_PAGES: i64 = 1000;

/// Copies the write-ahead log into the database file every `CHECKPOINT_INTERVAL`, on a
/// connection of its own, so that the writers do not wait for most of that copying. PASSIVE
/// never waits for readers or the writer. The log restarts only when a write begins with all of
/// it copied, which the writer never finds while this runs beside it; so once the log is long,
/// the committer copies the little left after its next commit (`checkpoint_due`). Runs until
/// the store is dropped.
fn spawn_checkpointer(pool: SqlitePool, line: Arc<WriterLine>) -> tokio::task::JoinHandle<()> {
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
                        line.checkpoint_due
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                Err(error) => tracing::warn!(%error, "a checkpoint of the write-ahead log failed"),
            }
        }
    })
}

super::queries::store_feed_reads!(SqlitePool);
super::queries::transaction_queries!(SqliteTransaction, SqliteRow);
super::audit::audit_queries!(SqliteTransaction, SqliteRow);
super::council::council_queries!(SqliteTransaction, SqliteRow);
super::sealing::seal_queries!(SqliteTransaction, SqliteRow);
super::keys::keys_queries!(SqliteTransaction, SqliteRow);
super::transfers::transfer_queries!(SqliteTransaction, SqliteRow);
super::outcomes::outcome_queries!(
    SqliteTransaction,
    SqliteRow,
    // The month of sending in Japan (UTC+9, no summer time).
    "strftime('%Y-%m', (r.sent_at + 32400000) / 1000, 'unixepoch')",
    // The values of a group joined with commas.
    "group_concat({value})",
);

impl SqliteTransaction {
    /// Nothing to do before a commit: every subscriber shares this process's signal.
    #[allow(clippy::unused_async)]
    async fn before_commit(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Commits, with the writes still waiting.
    async fn commit_connection(mut self: Box<Self>) -> Result<(), StoreError> {
        let waiting = std::mem::take(&mut self.waiting);
        self.tx.commit(waiting).await
    }

    /// The connection, for a statement whose outcome is needed now: the writes waiting go first.
    async fn conn(&mut self) -> Result<&mut SqliteConnection, StoreError> {
        self.fetched.clear();
        if !self.waiting.is_empty() {
            let waiting = std::mem::take(&mut self.waiting);
            bind_params(sqlx::query(&waiting.sql), &waiting.params)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(&mut self.tx)
    }

    /// A write whose outcome is not needed now: it waits for the next statement (see above).
    #[allow(clippy::unused_async)]
    async fn write_later(&mut self, sql: &str, params: Vec<Param>) -> Result<(), StoreError> {
        self.fetched.clear();
        self.waiting.push(sql, params);
        Ok(())
    }

    /// Makes `lookups` in one call to the connection's thread and keeps their rows.
    async fn fetch_ahead(&mut self, lookups: &[Lookup<'_>]) -> Result<(), StoreError> {
        if lookups.is_empty() {
            return Ok(());
        }
        let answers = self.read_after_waiting(lookups).await?;
        self.keep_fetched(lookups, answers)
    }

    /// Keeps the rows of `lookups`, made in this transaction, until they are asked for.
    fn keep_fetched(
        &mut self,
        lookups: &[Lookup<'_>],
        answers: Vec<Vec<SqliteRow>>,
    ) -> Result<(), StoreError> {
        if answers.len() != lookups.len() {
            return Err(StoreError::corrupt(
                "sqlite reader",
                format!("{} reads answered {} times", lookups.len(), answers.len()),
            ));
        }
        for (lookup, rows) in lookups.iter().zip(answers) {
            match lookup {
                Lookup::AuditHead if matches!(self.tx, SqliteTx::Write(_)) => {
                    self.audit_head = Some(audit_head_from_rows(&rows)?);
                }
                _ => self.fetched.push((lookup.key(), rows)),
            }
        }
        Ok(())
    }

    /// Makes `lookups` after the writes waiting, all in one call to the connection's thread,
    /// and returns each lookup's rows. Discards what was fetched ahead.
    async fn read_after_waiting(
        &mut self,
        lookups: &[Lookup<'_>],
    ) -> Result<Vec<Vec<SqliteRow>>, StoreError> {
        self.fetched.clear();
        let mut batch = std::mem::take(&mut self.waiting);
        for lookup in lookups {
            let (sql, params) = lookup.statement();
            batch.push(&sql, params);
        }
        let (mut results, failure) = run_batch(&mut self.tx, &batch).await;
        if let Some(error) = failure {
            return Err(error.into());
        }
        let Some(first) = results.len().checked_sub(lookups.len()) else {
            return Err(StoreError::corrupt(
                "sqlite reader",
                format!("{} reads answered {} times", lookups.len(), results.len()),
            ));
        };
        Ok(results.split_off(first))
    }

    /// Never deferred here: SQLite has one writer, and its writes already go in together with
    /// the commit (see `write_later`).
    #[allow(clippy::unused_self)]
    fn defer_feed(&mut self, _entry: &crate::domain::records::FeedEntry) -> bool {
        false
    }

    /// Never deferred here: the record is chained at once after the head (see `append_audit`).
    #[allow(clippy::unused_self)]
    fn defer_audit(&mut self, _entry: &crate::domain::audit::AuditEntry) -> bool {
        false
    }

    /// The audit chain's head as this write transaction leaves it, when it was fetched ahead.
    fn audit_head_read(&self) -> Option<ChainHead> {
        self.audit_head
    }

    fn set_audit_head_read(&mut self, head: Option<ChainHead>) {
        self.audit_head = head;
    }

    /// The rows of one read: fetched ahead, or read now.
    async fn look_up(&mut self, lookup: Lookup<'_>) -> Result<Vec<SqliteRow>, StoreError> {
        let key = lookup.key();
        if let Some(at) = self.fetched.iter().position(|(fetched, _)| *fetched == key) {
            return Ok(self.fetched.swap_remove(at).1);
        }
        let mut rows = self.read_after_waiting(&[lookup]).await?;
        Ok(rows.pop().unwrap_or_default())
    }

    /// A write that must be checked now, sent with the writes waiting before it; returns how
    /// many rows it changed.
    async fn write_checked(&mut self, sql: &str, params: Vec<Param>) -> Result<u64, StoreError> {
        use futures::TryStreamExt as _;
        self.fetched.clear();
        let mut batch = std::mem::take(&mut self.waiting);
        batch.push(sql, params);
        // sqlx marks running several statements in one query as deprecated, because only its
        // SQLite driver can; that driver is exactly where it is used, and the version is pinned.
        #[allow(deprecated)]
        let results: Vec<sqlx::sqlite::SqliteQueryResult> =
            bind_params(sqlx::query(&batch.sql), &batch.params)
                .execute_many(&mut *self.tx)
                .await
                .try_collect()
                .await?;
        Ok(results
            .last()
            .map_or(0, sqlx::sqlite::SqliteQueryResult::rows_affected))
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
        let state = Arc::new(Mutex::new(WriterState {
            connection: writer_pool.acquire().await?.detach(),
            batch: None,
            rollback_pending: false,
            savepoint_open: false,
        }));
        let line = Arc::new(WriterLine {
            state,
            queue: std::sync::Mutex::default(),
            wake: Arc::new(Notify::new()),
            checkpoint_due: std::sync::atomic::AtomicBool::new(false),
        });
        let committer = spawn_committer(Arc::clone(&line));
        let checkpointer = spawn_checkpointer(writer_pool.clone(), Arc::clone(&line));
        Ok(Self {
            writer: Arc::new(Writer {
                line,
                committer,
                checkpointer,
            }),
            signals: Arc::default(),
            readers,
            writer_pool,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn begin(&self) -> Result<Box<dyn Transaction>, StoreError> {
        self.begin_with(&[]).await
    }

    /// The reads are handed to the writer before in line, who makes them with its commit.
    async fn begin_with(&self, lookups: &[Lookup<'_>]) -> Result<Box<dyn Transaction>, StoreError> {
        let reads = lookups
            .iter()
            .map(|lookup| {
                let (sql, params) = lookup.statement();
                QueuedRead { sql, params }
            })
            .collect();
        let (mut hold, mut fetched) = self.writer.line.acquire(reads).await?;
        let state = hold.state();
        // Reads made for this writer ran in the savepoint its predecessor opened for it.
        let ready = state.batch.is_some() && state.savepoint_open && !state.rollback_pending;
        if !ready {
            fetched = None;
            prepare_writer(state).await?;
        }
        // The member owns the open savepoint from here: committed, it opens the next one;
        // dropped, it is rolled back.
        state.savepoint_open = false;
        let mut tx = SqliteTransaction {
            tx: SqliteTx::Write(BatchMember {
                hold: Some(hold),
                wake: Arc::clone(&self.writer.line.wake),
            }),
            waiting: StatementBatch::default(),
            fetched: Vec::new(),
            audit_head: None,
            touched: Vec::new(),
            signals: Arc::clone(&self.signals),
        };
        match fetched {
            Some(answers) => tx.keep_fetched(lookups, answers)?,
            None => tx.fetch_ahead(lookups).await?,
        }
        Ok(Box::new(tx))
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
            Some(_) => Some(agency_from_row(&row)?),
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
        read_feed_page(&self.readers, agency, after, limit).await
    }

    async fn feed_acknowledged(&self, agency: &crate::domain::AgencyId) -> Result<u64, StoreError> {
        read_feed_acknowledged(&self.readers, agency).await
    }

    async fn read(&self) -> Result<Box<dyn Transaction>, StoreError> {
        let tx = self.readers.begin().await?;
        Ok(Box::new(SqliteTransaction {
            tx: SqliteTx::Read(tx),
            waiting: StatementBatch::default(),
            fetched: Vec::new(),
            audit_head: None,
            touched: Vec::new(),
            signals: Arc::clone(&self.signals),
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
        // Let a batch still open commit (or roll back) before the connections go.
        if let Ok((mut hold, _)) = self.writer.line.acquire(Vec::new()).await {
            let state = hold.state();
            if let Some(batch) = state.batch.take() {
                state.savepoint_open = false;
                let result = state.connection.execute("COMMIT").await.map(|_| ());
                batch.send_replace(Some(result.map_err(Arc::new)));
            }
        }
        self.readers.close().await;
        self.writer_pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_committed_write_is_visible_to_readers() {
        let (_dir, store) = store().await;
        let mut tx = store.begin().await.unwrap();
        tx.insert_agency(&agency("ab"), Timestamp(0)).await.unwrap();
        tx.commit().await.unwrap();
        let mut read = store.read().await.unwrap();
        assert!(
            read.agency(&AgencyId::parse("ab").unwrap())
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_dropped_write_leaves_nothing_and_the_next_write_commits() {
        let (_dir, store) = store().await;
        let mut tx = store.begin().await.unwrap();
        tx.insert_agency(&agency("dropped"), Timestamp(0))
            .await
            .unwrap();
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        tx.insert_agency(&agency("kept"), Timestamp(0))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), tx.commit())
            .await
            .expect("commit hung")
            .unwrap();
        let mut read = store.read().await.unwrap();
        assert!(
            read.agency(&AgencyId::parse("dropped").unwrap())
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            read.agency(&AgencyId::parse("kept").unwrap())
                .await
                .unwrap()
                .is_some()
        );
    }

    fn id(text: &str) -> AgencyId {
        AgencyId::parse(text).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_write_ahead_log_stays_short_under_continuous_writes_and_reads() {
        let (dir, store) = store().await;
        let reading = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let reader = tokio::spawn({
            let (store, reading) = (store.clone(), Arc::clone(&reading));
            async move {
                while reading.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut tx = store.read().await.unwrap();
                    tx.agency(&id("nobody")).await.unwrap();
                    drop(tx);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
        // About 64 MB of pages in all: a log that never restarted would hold all of it.
        let response = vec![7_u8; 8000];
        let writers = (0..4).map(|writer| {
            let (store, response) = (store.clone(), response.clone());
            tokio::spawn(async move {
                for n in 0..2000 {
                    let mut tx = store.begin().await.unwrap();
                    let key = format!("{writer}-{n}");
                    tx.record_idempotent_response(
                        &id("ab"),
                        "Op",
                        &key,
                        b"d",
                        &response,
                        Timestamp(0),
                    )
                    .await
                    .unwrap();
                    tx.commit().await.unwrap();
                }
            })
        });
        for writer in futures::future::join_all(writers).await {
            writer.unwrap();
        }
        reading.store(false, std::sync::atomic::Ordering::Relaxed);
        reader.await.unwrap();
        let log = std::fs::metadata(dir.path().join("t.db-wal"))
            .unwrap()
            .len();
        assert!(log < 24 << 20, "the log grew to {log} bytes");
    }

    /// Waits until `count` writers stand in line for the connection.
    async fn until_in_line(store: &SqliteStore, count: usize) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while store.writer.line.queue().waiting.len() < count {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the writer never joined the line");
    }

    #[tokio::test]
    async fn reads_made_for_the_next_writer_see_the_write_before_it() {
        let (_dir, store) = store().await;
        let mut first = store.begin().await.unwrap();
        let next = tokio::spawn({
            let store = store.clone();
            async move {
                let agency = id("handed");
                let mut tx = store.begin_with(&[Lookup::Agency(&agency)]).await.unwrap();
                tx.agency(&agency).await.unwrap()
            }
        });
        until_in_line(&store, 1).await;
        first
            .insert_agency(&agency("handed"), Timestamp(0))
            .await
            .unwrap();
        first.commit().await.unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("the next writer never got the connection")
            .unwrap();
        assert_eq!(seen.map(|a| a.id), Some(id("handed")));
    }

    #[tokio::test]
    async fn reads_for_the_next_writer_do_not_see_a_write_that_was_dropped() {
        let (_dir, store) = store().await;
        let mut first = store.begin().await.unwrap();
        let next = tokio::spawn({
            let store = store.clone();
            async move {
                let agency = id("dropped");
                let mut tx = store.begin_with(&[Lookup::Agency(&agency)]).await.unwrap();
                tx.agency(&agency).await.unwrap()
            }
        });
        until_in_line(&store, 1).await;
        first
            .insert_agency(&agency("dropped"), Timestamp(0))
            .await
            .unwrap();
        drop(first);
        let seen = tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("the next writer never got the connection")
            .unwrap();
        assert!(seen.is_none(), "{seen:?}");
    }

    #[tokio::test]
    async fn a_writer_that_stops_waiting_just_after_the_connection_was_handed_to_it_passes_it_on() {
        let (_dir, store) = store().await;
        let line = Arc::clone(&store.writer.line);
        let (first, _) = line.acquire(Vec::new()).await.unwrap();
        let next = tokio::spawn({
            let line = Arc::clone(&line);
            async move { line.acquire(Vec::new()).await.map(drop) }
        });
        until_in_line(&store, 1).await;
        // Handed over, and the receiver gone before it ever ran again: on this single-threaded
        // runtime the aborted task is not polled in between.
        drop(first);
        next.abort();
        let _ = next.await;
        tokio::time::timeout(Duration::from_secs(5), line.acquire(Vec::new()))
            .await
            .expect("the connection was lost with the hand-off")
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_abandoned_half_way_leaves_the_next_writer_its_turn() {
        let (_dir, store) = store().await;
        for round in 0..100 {
            let mut first = store.begin().await.unwrap();
            first
                .insert_agency(&agency(&format!("abandoned-{round}")), Timestamp(0))
                .await
                .unwrap();
            let next = tokio::spawn({
                let store = store.clone();
                async move {
                    let agency = id("next");
                    let mut tx = store.begin_with(&[Lookup::Agency(&agency)]).await?;
                    tx.agency(&agency).await?;
                    tx.commit().await
                }
            });
            until_in_line(&store, 1).await;
            let committing = tokio::spawn(first.commit());
            // Abandoned at a different point of its call each round.
            for _ in 0..round % 25 {
                tokio::task::yield_now().await;
            }
            committing.abort();
            let _ = committing.await;
            tokio::time::timeout(Duration::from_secs(5), next)
                .await
                .expect("the next writer never got its turn")
                .unwrap()
                .unwrap();
        }
    }

    #[tokio::test]
    async fn a_writer_that_stops_waiting_does_not_hold_up_the_line() {
        let (_dir, store) = store().await;
        let first = store.begin().await.unwrap();
        let gone = tokio::spawn({
            let store = store.clone();
            async move {
                let agency = id("gone");
                store.begin_with(&[Lookup::Agency(&agency)]).await.map(drop)
            }
        });
        until_in_line(&store, 1).await;
        gone.abort();
        let _ = gone.await;
        first.commit().await.unwrap();
        let mut tx = tokio::time::timeout(Duration::from_secs(5), store.begin())
            .await
            .expect("the line is stuck")
            .unwrap();
        tx.insert_agency(&agency("after"), Timestamp(0))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_read_after_a_waiting_write_sees_it() {
        let (_dir, store) = store().await;
        let mut tx = store.begin().await.unwrap();
        tx.record_idempotent_response(&id("ab"), "Op", "k1", b"d", b"r", Timestamp(0))
            .await
            .unwrap();
        let stored = tx.idempotent_response(&id("ab"), "Op", "k1").await.unwrap();
        assert_eq!(stored, Some((b"d".to_vec(), b"r".to_vec())));
        tx.commit().await.unwrap();
        let mut read = store.read().await.unwrap();
        let stored = read
            .idempotent_response(&id("ab"), "Op", "k1")
            .await
            .unwrap();
        assert_eq!(stored, Some((b"d".to_vec(), b"r".to_vec())));
    }

    #[tokio::test]
    async fn prefetched_reads_answer_as_reads_made_one_by_one_do() {
        let (_dir, store) = store().await;
        let mut tx = store.begin().await.unwrap();
        tx.insert_agency(&agency("ab"), Timestamp(0)).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let (known, unknown) = (id("ab"), id("zz"));
        tx.prefetch(&[
            Lookup::Agency(&known),
            Lookup::Agency(&unknown),
            Lookup::IdempotentResponse {
                agency: &known,
                operation: "Op",
                key: "k",
            },
        ])
        .await
        .unwrap();
        assert!(tx.agency(&unknown).await.unwrap().is_none());
        assert_eq!(tx.agency(&known).await.unwrap().unwrap().id, known);
        assert_eq!(
            tx.idempotent_response(&known, "Op", "k").await.unwrap(),
            None
        );
        // Asked again, it is read again.
        assert_eq!(tx.agency(&known).await.unwrap().unwrap().id, known);
    }

    #[tokio::test]
    async fn a_prefetched_read_is_made_again_after_this_transaction_writes() {
        let (_dir, store) = store().await;
        let mut tx = store.begin().await.unwrap();
        let new = id("new");
        tx.prefetch(&[Lookup::Agency(&new)]).await.unwrap();
        tx.insert_agency(&agency("new"), Timestamp(0))
            .await
            .unwrap();
        assert!(tx.agency(&new).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_failing_waiting_write_fails_the_commit_and_leaves_nothing_of_its_transaction() {
        let (_dir, store) = store().await;
        let mut tx = store.begin().await.unwrap();
        tx.insert_agency(&agency("ab"), Timestamp(0)).await.unwrap();
        tx.record_idempotent_response(&id("ab"), "Op", "k", b"d", b"r", Timestamp(0))
            .await
            .unwrap();
        // The same key twice: the second insert breaks the primary key, but only at commit.
        tx.record_idempotent_response(&id("ab"), "Op", "k", b"d", b"r", Timestamp(0))
            .await
            .unwrap();
        assert!(tx.commit().await.is_err());
        let mut tx = store.begin().await.unwrap();
        tx.insert_agency(&agency("cd"), Timestamp(0)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), tx.commit())
            .await
            .expect("commit hung")
            .unwrap();
        let mut read = store.read().await.unwrap();
        assert!(read.agency(&id("ab")).await.unwrap().is_none());
        assert!(read.agency(&id("cd")).await.unwrap().is_some());
        assert_eq!(
            read.idempotent_response(&id("ab"), "Op", "k")
                .await
                .unwrap(),
            None
        );
    }

    fn audit_entry(action: &str) -> crate::domain::audit::AuditEntry {
        crate::domain::audit::AuditEntry {
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
    async fn records_chained_after_a_head_fetched_ahead_go_in_with_the_commit_and_verify() {
        let (_dir, store) = store().await;
        // One record the checked way, then two in a transaction that fetched the head ahead.
        let mut tx = store.begin().await.unwrap();
        tx.append_audit(&audit_entry("first"), None).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.prefetch(&[Lookup::AuditHead]).await.unwrap();
        let second = tx
            .append_audit(&audit_entry("second"), None)
            .await
            .unwrap()
            .unwrap();
        let third = tx
            .append_audit(&audit_entry("third"), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((second.sequence, third.sequence), (2, 3));
        tx.commit().await.unwrap();
        let mut read = store.read().await.unwrap();
        let records = read.audit_range(0, 10).await.unwrap();
        assert_eq!(records.len(), 3);
        let head = crate::domain::audit::verify(ChainHead::GENESIS, &records).unwrap();
        assert_eq!(head, ChainHead::of(&third).unwrap());
    }

    #[tokio::test]
    async fn many_concurrent_writes_all_commit() {
        let (_dir, store) = store().await;
        let store = Arc::new(store);
        let writes = (0..50).map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                tx.insert_agency(&agency(&format!("a{n}")), Timestamp(0))
                    .await
                    .unwrap();
                if n % 7 == 0 {
                    drop(tx);
                } else {
                    tx.commit().await.unwrap();
                }
            })
        });
        tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(writes))
            .await
            .expect("writes hung");
        let mut read = store.read().await.unwrap();
        assert_eq!(read.agencies().await.unwrap().len(), 50 - 8);
    }
}
