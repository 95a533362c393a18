//! The narrower locks of PostgreSQL write transactions (issue 18), in place of one lock for
//! every write: what each guards, the statements that take them, and the tail of a transaction
//! (its feed entries and audit records, written last in one statement under the locks of the
//! feeds and of the audit chain).
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
//!    sorted, and their feed rows (whose cursors are drawn now), then the audit chain's lock and
//!    the audit records, chained in the database after the head as it is then; the commit
//!    follows. Only this call and the commit are serialised, per agency's feed and for the chain.
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
//! paging by cursor never skips one. The audit chain stays one chain with one writer at its
//! tail; only its last step (head read, chaining and insert in one call, commit) is serialised.

use crate::domain::audit::{AuditEntry, hash_body, hash_prefix};
use crate::domain::records::FeedEntry;
use crate::store::StoreError;

/// Takes the writer lock shared ($1: its key): narrow use cases run side by side.
pub(crate) const WRITER_SHARED: &str = "SELECT pg_advisory_xact_lock_shared($1)";
/// Takes the writer lock exclusive ($1: its key): every other write runs alone.
pub(crate) const WRITER_EXCLUSIVE: &str = "SELECT pg_advisory_xact_lock($1)";

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

/// Writes a transaction's tail in one call (migration 0013): locks the feeds of the agencies it
/// grows (sorted inside), inserts the feed rows, notifies, and, when there are audit records,
/// locks the audit chain, reads its head and chains the records after it in the database, from
/// the bytes [`crate::domain::audit::hash_body`] gives for each.
const WRITE_TAIL: &str = "SELECT tsunagu_write_tail($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
     $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)";

/// Writes the tail of a transaction (see [`WRITE_TAIL`]): `feed` in the order appended, then
/// `audit` chained in the order appended; notifies `channel` with `payload` when there is one.
pub(crate) async fn write_tail(
    connection: &mut sqlx::PgConnection,
    channel: &str,
    payload: Option<String>,
    feed: &[FeedEntry],
    audit: &[AuditEntry],
) -> Result<(), StoreError> {
    let mut agencies: Vec<&str> = feed.iter().map(|f| f.agency_id.as_str()).collect();
    agencies.sort_unstable();
    agencies.dedup();
    let text = |value: Option<&str>| value.map(str::to_owned);
    sqlx::query(WRITE_TAIL)
        .bind(agencies)
        .bind(channel)
        .bind(payload)
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
