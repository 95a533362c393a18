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
//! 3. at commit ([`TAIL_LOCKS`]), the locks of the agencies whose feeds grow, sorted, then the
//!    audit chain's lock; the feed rows (whose cursors are drawn now) and the audit records
//!    (chained after the head read now) go in with one statement, and the commit follows.
//!
//! Nobody holding a lock of a later step waits for one of an earlier step, and the locks of one
//! step are taken in one order (feeds sorted) or one at a time per key, so no two transactions
//! wait for each other in a circle except two that each touch two cases in opposite orders
//! (none of the narrow use cases touches two cases); PostgreSQL would refuse one of those.
//!
//! Feed cursors are drawn while the agency's feed lock is held, and the lock is released only
//! after the commit is visible, so an agency's entries become visible in cursor order: a reader
//! paging by cursor never skips one. The audit chain stays one chain with one writer at its
//! tail; only its last step (head read, insert, commit) is serialised.

use crate::domain::audit::{AuditEntry, ChainHead, chain};
use crate::domain::records::FeedEntry;
use crate::store::StoreError;
use crate::store::audit::record_params;
use crate::store::queries::{Param, params};

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

/// Locks the feeds of the agencies $1 (sorted inside), notifies channel $2 with payload $3 (when
/// not null), and, when $4, locks the audit chain and returns its head (migration 0013).
pub(crate) const TAIL_LOCKS: &str = "SELECT head_sequence AS sequence, head_hash AS hash \
     FROM tsunagu_lock_tail($1, $2, $3, $4)";

/// PostgreSQL's limit of parameters in one statement is 65,535; a tail larger than this many
/// goes in several statements.
const MAX_PARAMS: usize = 30_000;

const FEED_INSERT: &str = "INSERT INTO feed_events (agency_id, event_id, kind, case_id, \
     referral_id, note_id, referral_event_id, recorded_at) VALUES ";
const AUDIT_INSERT: &str = "INSERT INTO audit_records (sequence, recorded_at, agency_id, \
     staff_name, staff_role, action, municipality, case_id, referral_id, note_id, consent_id, \
     basis, outcome, hash) VALUES ";

/// One feed row's values.
fn feed_params(entry: &FeedEntry) -> Vec<Param> {
    params![
        entry.agency_id.as_str(),
        entry.event_id.as_str(),
        entry.kind.code(),
        entry.case_id.as_ref().map(|c| c.as_str()),
        entry.referral_id.as_ref().map(|r| r.as_str()),
        entry.note_id.as_ref().map(|n| n.as_str()),
        entry.referral_event_id.as_ref().map(|e| e.as_str()),
        entry.recorded_at.millis(),
    ]
}

/// Rows of values as placeholders `($n, ...)`, numbered after `before`.
fn placeholders(rows: &[Vec<Param>], before: usize) -> String {
    let mut next = before;
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .map(|_| {
                    next += 1;
                    format!("${next}")
                })
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The statements that write a transaction's tail: its feed rows in the order appended, and its
/// audit records chained after `head` in the order appended. Usually one statement (a
/// data-modifying WITH runs both inserts); several only for a very large tail.
pub(crate) fn tail_statements(
    feed: &[FeedEntry],
    audit: &[AuditEntry],
    head: ChainHead,
) -> Result<Vec<(String, Vec<Param>)>, StoreError> {
    let feed_rows: Vec<Vec<Param>> = feed.iter().map(feed_params).collect();
    let mut audit_rows = Vec::with_capacity(audit.len());
    let mut head = head;
    for entry in audit {
        let record = chain(entry.clone(), &head);
        audit_rows.push(record_params(&record)?);
        head = ChainHead::of(&record)
            .ok_or_else(|| StoreError::corrupt("audit_records", "a chained hash is malformed"))?;
    }
    let mut statements = Vec::new();
    let chunk = |rows: &[Vec<Param>]| -> usize {
        let width = rows.first().map_or(1, Vec::len).max(1);
        (MAX_PARAMS / width).max(1)
    };
    if feed_rows.len() * 8 + audit_rows.len() * 14 <= MAX_PARAMS
        && !feed_rows.is_empty()
        && !audit_rows.is_empty()
    {
        let feed_count: usize = feed_rows.iter().map(Vec::len).sum();
        let sql = format!(
            "WITH feed AS ({FEED_INSERT}{}) {AUDIT_INSERT}{}",
            placeholders(&feed_rows, 0),
            placeholders(&audit_rows, feed_count)
        );
        let params = feed_rows.into_iter().chain(audit_rows).flatten().collect();
        statements.push((sql, params));
        return Ok(statements);
    }
    for rows in feed_rows.chunks(chunk(&feed_rows)) {
        let sql = format!("{FEED_INSERT}{}", placeholders(rows, 0));
        statements.push((sql, rows.iter().flatten().cloned().collect()));
    }
    // In sequence order: each statement's records follow the previous statement's.
    for rows in audit_rows.chunks(chunk(&audit_rows)) {
        let sql = format!("{AUDIT_INSERT}{}", placeholders(rows, 0));
        statements.push((sql, rows.iter().flatten().cloned().collect()));
    }
    Ok(statements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_every_cell_after_the_ones_before() {
        let rows = vec![params![1_i64, "a"], params![2_i64, "b"]];
        assert_eq!(placeholders(&rows, 3), "($4, $5), ($6, $7)");
    }
}
