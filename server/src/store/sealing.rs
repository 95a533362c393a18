//! Re-sealing: the recorded readers of re-sealed fields, replacing a field's ciphertext, and the
//! re-seals of a case for its thread.

use super::StoreError;
use super::db::{Connection, Row, query};
use std::collections::BTreeSet;

use async_trait::async_trait;

use crate::domain::sealing::{ResealRecord, SealedFieldRef};
use crate::domain::{AgencyId, CaseId, Sealed, Timestamp};

/// Store operations of this area, part of every `Transaction`.
#[async_trait]
pub trait SealQueries: Send {
    /// The readers recorded for the re-sealed fields of a case (fields never re-sealed have
    /// none: their readers follow from the stored facts).
    async fn sealed_readers(
        &mut self,
        case: &CaseId,
    ) -> Result<Vec<(SealedFieldRef, AgencyId)>, StoreError>;
    /// Replaces a field's ciphertext with `sealed`, records `readers` as its whole list of
    /// readers, and remembers the re-seal. `Corrupt` when the field does not exist on the case.
    async fn record_reseal(
        &mut self,
        record: &ResealRecord,
        sealed: &Sealed,
        readers: &BTreeSet<AgencyId>,
    ) -> Result<(), StoreError>;
    /// The re-seals of a case at or after `since`, oldest first.
    async fn case_reseals(
        &mut self,
        case: &CaseId,
        since: Option<Timestamp>,
    ) -> Result<Vec<ResealRecord>, StoreError>;
}

/// The table and columns holding a field's ciphertext.
pub(crate) fn field_column(
    kind: crate::domain::sealing::SealedFieldKind,
) -> (&'static str, &'static str, &'static str) {
    use crate::domain::sealing::SealedFieldKind;
    match kind {
        SealedFieldKind::CaseHeader => ("cases", "header", "case_id"),
        SealedFieldKind::ReferralBody => ("referrals", "body", "referral_id"),
        SealedFieldKind::NoteBody => ("notes", "body", "note_id"),
    }
}

#[async_trait::async_trait]
impl<C: Connection> crate::store::sealing::SealQueries for C {
    async fn sealed_readers(
        &mut self,
        case: &crate::domain::CaseId,
    ) -> Result<
        Vec<(
            crate::domain::sealing::SealedFieldRef,
            crate::domain::AgencyId,
        )>,
        StoreError,
    > {
        use crate::domain::AgencyId;
        use crate::domain::sealing::{SealedFieldKind, SealedFieldRef};
        use crate::store::queries::code;
        const T: &str = "sealed_readers";
        let rows = query(
            "SELECT field_kind, field_id, agency_id FROM sealed_readers \
                     WHERE case_id = $1 ORDER BY field_kind, field_id, agency_id",
        )
        .bind(case.as_str())
        .fetch_all(self)
        .await?;
        rows.iter()
            .map(|row: &Row| {
                let kind: String = row.try_get("field_kind")?;
                let agency: String = row.try_get("agency_id")?;
                Ok((
                    SealedFieldRef {
                        kind: code(T, "field_kind", &kind, SealedFieldKind::from_code)?,
                        id: row.try_get("field_id")?,
                    },
                    code(T, "agency_id", &agency, AgencyId::parse)?,
                ))
            })
            .collect()
    }

    async fn record_reseal(
        &mut self,
        record: &crate::domain::sealing::ResealRecord,
        sealed: &crate::domain::Sealed,
        readers: &std::collections::BTreeSet<crate::domain::AgencyId>,
    ) -> Result<(), StoreError> {
        let (table, column, key) = crate::store::sealing::field_column(record.field.kind);
        let updated = query(format!(
            "UPDATE {table} SET {column} = $1 WHERE {key} = $2 AND case_id = $3"
        ))
        .bind(&sealed.0)
        .bind(&record.field.id)
        .bind(record.case_id.as_str())
        .execute(self)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::corrupt(
                table,
                format!(
                    "no {} {} on case {}",
                    column, record.field.id, record.case_id
                ),
            ));
        }
        query("DELETE FROM sealed_readers WHERE field_kind = $1 AND field_id = $2")
            .bind(record.field.kind.code())
            .bind(&record.field.id)
            .execute(self)
            .await?;
        for agency in readers {
            query(
                "INSERT INTO sealed_readers (case_id, field_kind, field_id, agency_id) \
                         VALUES ($1, $2, $3, $4)",
            )
            .bind(record.case_id.as_str())
            .bind(record.field.kind.code())
            .bind(&record.field.id)
            .bind(agency.as_str())
            .execute(self)
            .await?;
        }
        let added: Vec<&str> = record.added_readers.iter().map(|a| a.as_str()).collect();
        query(
            "INSERT INTO reseals (reseal_id, case_id, field_kind, field_id, resealed_by, \
                     staff_name, staff_role, added_readers, resealed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(record.id.as_str())
        .bind(record.case_id.as_str())
        .bind(record.field.kind.code())
        .bind(&record.field.id)
        .bind(record.resealed_by.as_str())
        .bind(&record.staff.name)
        .bind(&record.staff.role)
        .bind(added.join(","))
        .bind(record.resealed_at.millis())
        .execute(self)
        .await?;
        Ok(())
    }

    async fn case_reseals(
        &mut self,
        case: &crate::domain::CaseId,
        since: Option<crate::domain::Timestamp>,
    ) -> Result<Vec<crate::domain::sealing::ResealRecord>, StoreError> {
        use crate::domain::sealing::{ResealRecord, SealedFieldKind, SealedFieldRef};
        use crate::domain::{AgencyId, CaseId, ResealId, Staff, Timestamp};
        use crate::store::queries::code;
        const T: &str = "reseals";
        let rows = query(
            "SELECT reseal_id, case_id, field_kind, field_id, resealed_by, staff_name, \
                     staff_role, added_readers, resealed_at FROM reseals \
                     WHERE case_id = $1 AND resealed_at >= $2 ORDER BY resealed_at, reseal_id",
        )
        .bind(case.as_str())
        .bind(since.map(|s| s.millis()).unwrap_or(i64::MIN))
        .fetch_all(self)
        .await?;
        rows.iter()
            .map(|row: &Row| {
                let text = |column: &str| -> Result<String, StoreError> {
                    Ok(row.try_get::<String, _>(column)?)
                };
                let added = text("added_readers")?;
                Ok(ResealRecord {
                    id: code(T, "reseal_id", &text("reseal_id")?, ResealId::parse)?,
                    case_id: code(T, "case_id", &text("case_id")?, CaseId::parse)?,
                    field: SealedFieldRef {
                        kind: code(
                            T,
                            "field_kind",
                            &text("field_kind")?,
                            SealedFieldKind::from_code,
                        )?,
                        id: text("field_id")?,
                    },
                    resealed_by: code(T, "resealed_by", &text("resealed_by")?, AgencyId::parse)?,
                    staff: Staff {
                        name: text("staff_name")?,
                        role: text("staff_role")?,
                    },
                    added_readers: added
                        .split(',')
                        .filter(|id| !id.is_empty())
                        .map(|id| code(T, "added_readers", id, AgencyId::parse))
                        .collect::<Result<_, _>>()?,
                    resealed_at: Timestamp::from_millis(row.try_get("resealed_at")?),
                })
            })
            .collect()
    }
}
