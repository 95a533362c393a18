//! The narrower locks of PostgreSQL write transactions (issue 18), in place of one lock for
//! every write: what each guards, the statements that take them, the tail of a transaction (its
//! feed entries under the feeds' locks, its audit records queued, written last in one
//! statement), and the sequencer that chains the queued audit records afterwards.
//!
//! Every write transaction first takes the writer lock: shared for the use cases checked to be
//! guarded by the locks below ([`super::Store::begin_narrow`]: open a case, record consent, send
//! a referral, act on one, send a note, acknowledge the feed, append audit records), exclusive
//! for every other write, which so waits for all of them as before. Then, in this order:
//!
//! 1. the idempotency key's lock, before the key is looked up: a second request with the same
//!    key waits for the first to commit, then finds its response and replays it;
//! 2. the lock of each case the transaction reads (the case, its consents, a referral or a
//!    consent of it: the case id is read with the lock taken, the row itself after), before the
//!    read: read-then-write on a case and its referrals happens one transaction at a time;
//! 3. at commit ([`write_tail`], one round trip), the locks of the agencies whose feeds grow,
//!    sorted, and their feed rows (whose cursors are drawn now), and the audit records, queued
//!    in `audit_pending` without any lock; the commit follows. Only this call and the commit are
//!    serialised, per agency's feed.
//!
//! Nobody holding a lock of a later step waits for one of an earlier step, and the locks of one
//! step are taken in one order (feeds sorted) or one at a time per key, so no two transactions
//! wait for each other in a circle except two that each touch two cases in opposite orders.
//! No narrow use case writes about two cases; the one that reads a second (an action naming a
//! linked referral on another case, which it then refuses as invalid) could meet its mirror
//! image at the same instant, and PostgreSQL would then end one of the two with a deadlock
//! error instead of INVALID_ARGUMENT: nothing is written either way.
//!
//! Feed cursors are drawn while the agency's feed lock is held, and the lock is released only
//! after the commit is visible, so an agency's entries become visible in cursor order: a reader
//! paging by cursor never skips one.
//!
//! The audit chain stays one chain, but no write waits for its tail any more: until migration
//! 0014 every write with audit records took the chain's lock and held it through its commit and
//! WAL flush, so no two commits could share a flush. Now the [`Sequencer`] of each instance
//! chains the queued records in batches, in a short transaction of its own under the chain's
//! lock (`tsunagu_chain_pending`): woken after each commit that queued records, and every
//! [`SEQUENCER_TICK`] for those of other instances. The chain's order is the sequencer's (the
//! order the records were queued in, as far as their commits are visible); a record is durable
//! once its write has committed, answered or not. Every read of the chain first chains what is
//! pending ([`Sequencer::settle`]), so a reader never sees a chain without a record whose write
//! was answered before the read began.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;

use crate::domain::audit::{AuditEntry, hash_body, hash_prefix};
use crate::domain::records::FeedEntry;
use crate::store::StoreError;

/// Takes the writer lock shared: narrow use cases run side by side.
pub(crate) const WRITER_SHARED: &str = "pg_advisory_xact_lock_shared";
/// Takes the writer lock exclusive: every other write runs alone.
pub(crate) const WRITER_EXCLUSIVE: &str = "pg_advisory_xact_lock";

/// Locks a case by its id ($1).
pub(crate) const LOCK_CASE: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('tsunagu:case:' || $1, 0))";
/// Locks the case of a referral ($1) and returns its id; no row when there is no such referral.
pub(crate) const LOCK_CASE_OF_REFERRAL: &str = "SELECT case_id, \
     pg_advisory_xact_lock(hashtextextended('tsunagu:case:' || case_id, 0))::text AS locked \
     FROM referrals WHERE referral_id = $1";
/// Locks the case of a consent ($1) and returns its id; no row when there is no such consent.
pub(crate) const LOCK_CASE_OF_CONSENT: &str = "SELECT case_id, \
     pg_advisory_xact_lock(hashtextextended('tsunagu:case:' || case_id, 0))::text AS locked \
     FROM consents WHERE consent_id = $1";
/// Locks an idempotency key: agency $1, operation $2, key $3.
pub(crate) const LOCK_KEY: &str = "SELECT pg_advisory_xact_lock(hashtextextended(\
     'tsunagu:key:' || $1 || ':' || $2 || ':' || $3, 0))";

/// Writes a transaction's tail in one call (migrations 0013, 0014): locks the feeds of the
/// agencies it grows (sorted inside), inserts the feed rows, and queues the audit records, each
/// with the bytes [`crate::domain::audit::hash_body`] gives for it, for the [`Sequencer`] to
/// chain. (Its `hash_prefix` argument is 0013's, unused since 0014; it notifies a channel only
/// when given one, which the hub no longer does: see `pg_notify`.)
const WRITE_TAIL: &str = "SELECT tsunagu_write_tail($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
     $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)";

/// Writes the tail of a transaction (see [`WRITE_TAIL`]): `feed` in the order appended, then
/// `audit` queued in the order appended.
pub(crate) async fn write_tail(
    connection: &mut sqlx::PgConnection,
    feed: &[FeedEntry],
    audit: &[AuditEntry],
) -> Result<(), StoreError> {
    let mut agencies: Vec<&str> = feed.iter().map(|f| f.agency_id.as_str()).collect();
    agencies.sort_unstable();
    agencies.dedup();
    let text = |value: Option<&str>| value.map(str::to_owned);
    sqlx::query(WRITE_TAIL)
        .bind(agencies)
        // No channel, no payload: the function notifies nobody (see `pg_notify`).
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(
            feed.iter()
                .map(|f| f.agency_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(feed.iter().map(|f| f.event_id.as_str()).collect::<Vec<_>>())
        .bind(feed.iter().map(|f| f.kind.code()).collect::<Vec<_>>())
        .bind(
            feed.iter()
                .map(|f| text(f.case_id.as_ref().map(|c| c.as_str())))
                .collect::<Vec<_>>(),
        )
        .bind(
            feed.iter()
                .map(|f| text(f.referral_id.as_ref().map(|r| r.as_str())))
                .collect::<Vec<_>>(),
        )
        .bind(
            feed.iter()
                .map(|f| text(f.note_id.as_ref().map(|n| n.as_str())))
                .collect::<Vec<_>>(),
        )
        .bind(
            feed.iter()
                .map(|f| text(f.referral_event_id.as_ref().map(|e| e.as_str())))
                .collect::<Vec<_>>(),
        )
        .bind(
            feed.iter()
                .map(|f| f.recorded_at.millis())
                .collect::<Vec<_>>(),
        )
        .bind(hash_prefix())
        .bind(audit.iter().map(|a| a.at.millis()).collect::<Vec<_>>())
        .bind(
            audit
                .iter()
                .map(|a| a.agency_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            audit
                .iter()
                .map(|a| a.staff_name.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            audit
                .iter()
                .map(|a| a.staff_role.clone())
                .collect::<Vec<_>>(),
        )
        .bind(audit.iter().map(|a| a.action.clone()).collect::<Vec<_>>())
        .bind(
            audit
                .iter()
                .map(|a| a.municipality.clone())
                .collect::<Vec<_>>(),
        )
        .bind(audit.iter().map(|a| a.case_id.clone()).collect::<Vec<_>>())
        .bind(
            audit
                .iter()
                .map(|a| a.referral_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(audit.iter().map(|a| a.note_id.clone()).collect::<Vec<_>>())
        .bind(
            audit
                .iter()
                .map(|a| a.consent_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(audit.iter().map(|a| a.basis.clone()).collect::<Vec<_>>())
        .bind(audit.iter().map(|a| a.outcome.clone()).collect::<Vec<_>>())
        .bind(audit.iter().map(hash_body).collect::<Vec<_>>())
        .execute(connection)
        .await?;
    Ok(())
}

/// Chains pending audit records (migration 0014): $1 the hash prefix, $2 at most how many,
/// $3 whether to wait for the chain's lock. Returns how many were chained, -1 when it did not
/// wait and another transaction held the lock.
const CHAIN_PENDING: &str = "SELECT tsunagu_chain_pending($1, $2, $3)";

/// How many pending records one transaction of the sequencer chains at most: enough for every
/// commit of a busy instance between two rounds, few enough that the chain's lock is short.
const CHAIN_BATCH: i32 = 2000;

/// How often the sequencer looks for records queued by other instances (its own wake it).
pub(crate) const SEQUENCER_TICK: Duration = Duration::from_millis(200);

/// Chains the audit records that writes queued, in transactions of its own (see the module's
/// documentation). One per store; several instances' sequencers take turns on the chain's lock.
#[derive(Debug)]
pub(crate) struct Sequencer {
    pool: PgPool,
    prefix: Vec<u8>,
    /// Set by commits that queued records; a wake while a round runs brings one more round.
    wake: Notify,
}

impl Sequencer {
    pub(crate) fn new(pool: PgPool) -> Arc<Self> {
        Arc::new(Self {
            pool,
            prefix: hash_prefix(),
            wake: Notify::new(),
        })
    }

    /// Asks for a round soon: a commit queued audit records.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// One transaction of chaining; see [`CHAIN_PENDING`].
    async fn chain(&self, wait: bool) -> Result<i32, StoreError> {
        let chained: i32 = sqlx::query_scalar(CHAIN_PENDING)
            .bind(self.prefix.as_slice())
            .bind(CHAIN_BATCH)
            .bind(wait)
            .fetch_one(&self.pool)
            .await?;
        Ok(chained)
    }

    /// Chains every record committed before this call, waiting for a sequencer that holds the
    /// chain's lock: called before reading the chain. Costs one short statement (no lock) when
    /// nothing is pending.
    pub(crate) async fn settle(&self) -> Result<(), StoreError> {
        while self.chain(true).await? >= CHAIN_BATCH {}
        Ok(())
    }

    /// Runs rounds until the pool is closed: after each wake (batching every commit since the
    /// last round) and every [`SEQUENCER_TICK`]. A round skips when another instance is
    /// chaining; what that one did not see is taken on the next round.
    pub(crate) fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let sequencer = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let _ = tokio::time::timeout(SEQUENCER_TICK, sequencer.wake.notified()).await;
                if sequencer.pool.is_closed() {
                    return;
                }
                loop {
                    match sequencer.chain(false).await {
                        Ok(chained) if chained >= CHAIN_BATCH => {}
                        Ok(_) => break,
                        Err(error) => {
                            // The records stay pending, durable: the next round or reader
                            // chains them.
                            tracing::warn!(%error, "cannot chain pending audit records now");
                            break;
                        }
                    }
                }
            }
        })
    }
}
