//! The tamper-evident audit log: appending records to the hash chain and reading them back.

use super::StoreError;
use super::db::{self, Connection, Row, query};
use async_trait::async_trait;

use crate::domain::audit::{AuditEntry, AuditRecord, ChainHead};
use crate::domain::{AgencyId, CaseId, Municipality, Timestamp};
use crate::store::queries::{Param, params};

/// Which audit records one agency may list: those of its own calls, of calls about cases,
/// referrals and notes it takes part in, and, for a coordinator, about its municipalities.
#[derive(Debug, Clone)]
pub struct AuditFilter<'a> {
    pub reader: &'a AgencyId,
    /// The municipalities the reader coordinates.
    pub coordinated: &'a [Municipality],
    pub case: Option<&'a CaseId>,
    pub municipality: Option<&'a Municipality>,
    /// From this instant (inclusive).
    pub from: Option<Timestamp>,
    /// Until this instant (exclusive).
    pub until: Option<Timestamp>,
    /// Only records after this sequence number (paging).
    pub after_sequence: u64,
    pub limit: u32,
}

/// Store operations of this area, part of every `Transaction`.
#[async_trait]
pub trait AuditQueries: Send {
    /// The newest record's sequence number and hash; the genesis head when the log is empty.
    async fn audit_head(&mut self) -> Result<ChainHead, StoreError>;
    /// Chains `entry` after the current head and appends it. Only in a write transaction, which
    /// keeps the head from moving underneath (one writer at a time). Returns the record as
    /// chained; `None` where the backend chains the transaction's records only after it commits
    /// (PostgreSQL's sequencer).
    async fn append_audit(&mut self, entry: &AuditEntry)
    -> Result<Option<AuditRecord>, StoreError>;
    /// One record by its sequence number.
    async fn audit_record(&mut self, sequence: u64) -> Result<Option<AuditRecord>, StoreError>;
    /// Records after `after`, in sequence order, at most `limit` (for verification).
    async fn audit_range(&mut self, after: u64, limit: u32)
    -> Result<Vec<AuditRecord>, StoreError>;
    /// The records `filter.reader` may see, in sequence order.
    async fn audit_records(
        &mut self,
        filter: &AuditFilter<'_>,
    ) -> Result<Vec<AuditRecord>, StoreError>;
}

pub(crate) const AUDIT_COLUMNS: &str = "sequence, recorded_at, agency_id, staff_name, \
     staff_role, action, municipality, case_id, referral_id, note_id, consent_id, basis, outcome, \
     hash";

/// Appends a record ($1..$14) only if the head is the one it was chained after: sequence $15
/// (0 for the empty log) with hash $16. One statement, so a right guess costs one round trip.
pub(crate) const APPEND: &str = "INSERT INTO audit_records (sequence, recorded_at, \
     agency_id, staff_name, staff_role, action, municipality, case_id, referral_id, note_id, \
     consent_id, basis, outcome, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// A sequence number as the database's 64-bit signed integer.
pub(crate) fn sequence_column(sequence: u64) -> Result<i64, StoreError> {
    i64::try_from(sequence).map_err(|_| StoreError::corrupt("audit_records", "sequence"))
}

/// The parameters $1..$14 of [`APPEND`]: the record itself.
pub(crate) fn record_params(record: &AuditRecord) -> Result<Vec<Param>, StoreError> {
    let e = &record.entry;
    Ok(params![
        sequence_column(record.sequence)?,
        e.at.millis(),
        e.agency_id.as_str(),
        e.staff_name.as_deref(),
        e.staff_role.as_deref(),
        e.action.as_str(),
        e.municipality.as_deref(),
        e.case_id.as_deref(),
        e.referral_id.as_deref(),
        e.note_id.as_deref(),
        e.consent_id.as_deref(),
        e.basis.as_deref(),
        e.outcome.as_str(),
        record.hash.as_slice(),
    ])
}

fn audit_record_from_row(row: &Row) -> Result<crate::domain::audit::AuditRecord, StoreError> {
    let sequence: i64 = row.try_get("sequence")?;
    Ok(crate::domain::audit::AuditRecord {
        sequence: u64::try_from(sequence)
            .map_err(|_| StoreError::corrupt("audit_records", format!("sequence {sequence}")))?,
        entry: crate::domain::audit::AuditEntry {
            at: crate::domain::Timestamp::from_millis(row.try_get("recorded_at")?),
            agency_id: row.try_get("agency_id")?,
            staff_name: row.try_get("staff_name")?,
            staff_role: row.try_get("staff_role")?,
            action: row.try_get("action")?,
            municipality: row.try_get("municipality")?,
            case_id: row.try_get("case_id")?,
            referral_id: row.try_get("referral_id")?,
            note_id: row.try_get("note_id")?,
            consent_id: row.try_get("consent_id")?,
            basis: row.try_get("basis")?,
            outcome: row.try_get("outcome")?,
        },
        hash: row.try_get("hash")?,
    })
}

/// The chain head from the rows of `Lookup::AuditHead` (none: the empty log).
pub(crate) fn audit_head_from_rows(
    rows: &[Row],
) -> Result<crate::domain::audit::ChainHead, StoreError> {
    let Some(row) = rows.first() else {
        return Ok(crate::domain::audit::ChainHead::GENESIS);
    };
    let sequence: i64 = row.try_get("sequence")?;
    let hash: Vec<u8> = row.try_get("hash")?;
    let corrupt = || {
        StoreError::corrupt(
            "audit_records",
            format!("the head (record {sequence}) is malformed"),
        )
    };
    Ok(crate::domain::audit::ChainHead {
        sequence: u64::try_from(sequence).map_err(|_| corrupt())?,
        hash: hash.as_slice().try_into().map_err(|_| corrupt())?,
    })
}

#[async_trait::async_trait]
impl<C: Connection> crate::store::audit::AuditQueries for C {
    async fn audit_head(&mut self) -> Result<crate::domain::audit::ChainHead, StoreError> {
        self.settle_audit().await?;
        let rows = self.look_up(crate::store::Lookup::AuditHead).await?;
        audit_head_from_rows(&rows)
    }

    async fn append_audit(
        &mut self,
        entry: &crate::domain::audit::AuditEntry,
    ) -> Result<Option<crate::domain::audit::AuditRecord>, StoreError> {
        use crate::store::audit::{APPEND, record_params};
        if self.defer_audit(entry) {
            // Chained and written with the commit, after the head as it is then.
            return Ok(None);
        }
        // One writer: the head read here stays the head until this transaction commits.
        let head = crate::store::audit::AuditQueries::audit_head(self).await?;
        let record = crate::domain::audit::chain(entry.clone(), &head);
        db::write(self, APPEND, record_params(&record)?).await?;
        Ok(Some(record))
    }

    async fn audit_record(
        &mut self,
        sequence: u64,
    ) -> Result<Option<crate::domain::audit::AuditRecord>, StoreError> {
        self.settle_audit().await?;
        use crate::store::audit::AUDIT_COLUMNS;
        let row = query(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_records WHERE sequence = $1"
        ))
        .bind(crate::store::audit::sequence_column(sequence)?)
        .fetch_optional(self)
        .await?;
        row.as_ref().map(audit_record_from_row).transpose()
    }

    async fn audit_range(
        &mut self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<crate::domain::audit::AuditRecord>, StoreError> {
        self.settle_audit().await?;
        use crate::store::audit::AUDIT_COLUMNS;
        let rows = query(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_records WHERE sequence > $1 \
                     ORDER BY sequence LIMIT $2"
        ))
        .bind(crate::store::audit::sequence_column(after)?)
        .bind(i64::from(limit))
        .fetch_all(self)
        .await?;
        rows.iter().map(audit_record_from_row).collect()
    }

    async fn audit_records(
        &mut self,
        filter: &crate::store::audit::AuditFilter<'_>,
    ) -> Result<Vec<crate::domain::audit::AuditRecord>, StoreError> {
        self.settle_audit().await?;
        use crate::store::audit::AUDIT_COLUMNS;
        use crate::store::queries::join_codes;
        // Coordinated municipalities travel as one comma-joined parameter ($7), matched
        // with the delimiter-safe containment test of `visible_cases`.
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_records a WHERE a.sequence > $1 \
                     AND a.recorded_at >= $2 AND a.recorded_at < $3 \
                     AND ($4 = '' OR a.case_id = $4) \
                     AND ($5 = '' OR a.municipality = $5 \
                          OR a.case_id IN (SELECT case_id FROM cases WHERE municipality = $5)) \
                     AND (a.agency_id = $6 \
                          OR a.case_id IN \
                             (SELECT case_id FROM case_participants WHERE agency_id = $6) \
                          OR a.referral_id IN (SELECT referral_id FROM referrals \
                             WHERE from_agency = $6 OR to_agency = $6) \
                          OR a.note_id IN (SELECT note_id FROM notes WHERE from_agency = $6) \
                          OR a.note_id IN \
                             (SELECT note_id FROM note_recipients WHERE agency_id = $6) \
                          OR (',' || $7 || ',') LIKE ('%,' || a.municipality || ',%') \
                          OR a.case_id IN (SELECT case_id FROM cases \
                             WHERE (',' || $7 || ',') LIKE ('%,' || municipality || ',%')) \
                          OR a.referral_id IN (SELECT referral_id FROM referrals \
                             WHERE (',' || $7 || ',') LIKE ('%,' || municipality || ',%')) \
                          OR a.note_id IN (SELECT n.note_id FROM notes n \
                             JOIN cases c ON c.case_id = n.case_id \
                             WHERE (',' || $7 || ',') LIKE ('%,' || c.municipality || ',%'))) \
                     ORDER BY a.sequence LIMIT $8"
        );
        let rows = query(&sql)
            .bind(crate::store::audit::sequence_column(filter.after_sequence)?)
            .bind(filter.from.map_or(i64::MIN, |at| at.millis()))
            .bind(filter.until.map_or(i64::MAX, |at| at.millis()))
            .bind(filter.case.map_or("", |id| id.as_str()))
            .bind(filter.municipality.map_or("", |m| m.as_str()))
            .bind(filter.reader.as_str())
            .bind(join_codes(filter.coordinated))
            .bind(i64::from(filter.limit))
            .fetch_all(self)
            .await?;
        rows.iter().map(audit_record_from_row).collect()
    }
}
