//! 移管: transfers of cases between municipalities, and the escalations of their timers.

use super::StoreError;
use super::db::{Connection, Row, query};
use async_trait::async_trait;

use crate::domain::transfer::{Transfer, TransferId, TransferTimer};
use crate::domain::{CaseId, Municipality, Timestamp};

/// Store operations of this area, part of every `Transaction`.
#[async_trait]
pub trait TransferQueries: Send {
    /// Stores a new transfer; `Conflict` when its case already has one in progress.
    async fn insert_transfer(&mut self, transfer: &Transfer) -> Result<(), StoreError>;
    /// Writes what moves on a transfer: its state and everything each step records.
    async fn update_transfer(&mut self, transfer: &Transfer) -> Result<(), StoreError>;
    async fn transfer(&mut self, id: &TransferId) -> Result<Option<Transfer>, StoreError>;
    /// Every transfer of a case (the case as sent from A), oldest first.
    async fn case_transfers(&mut self, case: &CaseId) -> Result<Vec<Transfer>, StoreError>;
    /// The transfers whose receiving case (in B) is `case`, oldest first.
    async fn received_transfers(&mut self, case: &CaseId) -> Result<Vec<Transfer>, StoreError>;
    /// The transfers from or to `municipality`, newest first.
    async fn municipality_transfers(
        &mut self,
        municipality: &Municipality,
    ) -> Result<Vec<Transfer>, StoreError>;
    /// Transfers in progress (proposed or acknowledged) with a deadline at or before `due_by`.
    async fn transfers_due(&mut self, due_by: Timestamp) -> Result<Vec<Transfer>, StoreError>;
    /// Records that a timer of a transfer escalated; false when it already had.
    async fn record_transfer_escalation(
        &mut self,
        transfer: &TransferId,
        timer: TransferTimer,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// The timers of a transfer that escalated, in timer order.
    async fn transfer_escalations(
        &mut self,
        transfer: &TransferId,
    ) -> Result<Vec<TransferTimer>, StoreError>;
}

pub(crate) const TRANSFER_COLUMNS: &str = "transfer_id, case_id, from_municipality, \
     to_municipality, proposed_by, staff_name, staff_role, basis, consent_id, justification, \
     note, state, proposed_at, acknowledged_at, acknowledged_by, responded_at, responded_by, \
     responded_staff_name, responded_staff_role, lead_agency, receiving_case_id, \
     receiving_case_opened, decline_reason, decline_text, withdrawn_at, deliver_by, respond_by, \
     accept_by, updated_at";

pub(crate) fn transfer_from_row(
    row: &Row,
) -> Result<crate::domain::transfer::Transfer, StoreError> {
    use crate::domain::basis::LegalBasisKind;
    use crate::domain::transfer::{
        DeclineReason, Transfer, TransferDeadlines, TransferId, TransferState,
    };
    use crate::domain::*;
    use crate::store::queries::{code, optional_code, timestamp};
    const T: &str = "transfers";
    let text =
        |column: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(column)?) };
    let at = |column: &str| -> Result<Timestamp, StoreError> {
        Ok(Timestamp::from_millis(row.try_get::<i64, _>(column)?))
    };
    let note: Option<Vec<u8>> = row.try_get("note")?;
    let responded_name: Option<String> = row.try_get("responded_staff_name")?;
    let responded_role: Option<String> = row.try_get("responded_staff_role")?;
    let opened: i64 = row.try_get("receiving_case_opened")?;
    Ok(Transfer {
        id: code(T, "transfer_id", &text("transfer_id")?, TransferId::parse)?,
        case_id: code(T, "case_id", &text("case_id")?, CaseId::parse)?,
        from_municipality: code(
            T,
            "from_municipality",
            &text("from_municipality")?,
            Municipality::parse,
        )?,
        to_municipality: code(
            T,
            "to_municipality",
            &text("to_municipality")?,
            Municipality::parse,
        )?,
        proposed_by: code(T, "proposed_by", &text("proposed_by")?, AgencyId::parse)?,
        proposed_staff: Staff {
            name: row.try_get("staff_name")?,
            role: row.try_get("staff_role")?,
        },
        basis: code(T, "basis", &text("basis")?, LegalBasisKind::from_code)?,
        consent_id: optional_code(
            T,
            "consent_id",
            row.try_get("consent_id")?,
            ConsentId::parse,
        )?,
        justification: row.try_get("justification")?,
        note: note.map(Sealed),
        state: code(T, "state", &text("state")?, TransferState::from_code)?,
        proposed_at: at("proposed_at")?,
        acknowledged_at: timestamp(row.try_get("acknowledged_at")?),
        acknowledged_by: optional_code(
            T,
            "acknowledged_by",
            row.try_get("acknowledged_by")?,
            AgencyId::parse,
        )?,
        responded_at: timestamp(row.try_get("responded_at")?),
        responded_by: optional_code(
            T,
            "responded_by",
            row.try_get("responded_by")?,
            AgencyId::parse,
        )?,
        responded_staff: match (responded_name, responded_role) {
            (Some(name), Some(role)) => Some(Staff { name, role }),
            _ => None,
        },
        lead_agency: optional_code(
            T,
            "lead_agency",
            row.try_get("lead_agency")?,
            AgencyId::parse,
        )?,
        receiving_case: optional_code(
            T,
            "receiving_case_id",
            row.try_get("receiving_case_id")?,
            CaseId::parse,
        )?,
        receiving_case_opened: opened != 0,
        decline_reason: optional_code(
            T,
            "decline_reason",
            row.try_get("decline_reason")?,
            DeclineReason::from_code,
        )?,
        decline_text: row.try_get("decline_text")?,
        withdrawn_at: timestamp(row.try_get("withdrawn_at")?),
        deadlines: TransferDeadlines {
            deliver_by: at("deliver_by")?,
            respond_by: at("respond_by")?,
            accept_by: at("accept_by")?,
        },
        updated_at: at("updated_at")?,
    })
}

#[async_trait::async_trait]
impl<C: Connection> crate::store::transfers::TransferQueries for C {
    async fn insert_transfer(
        &mut self,
        transfer: &crate::domain::transfer::Transfer,
    ) -> Result<(), StoreError> {
        let result = query(
            "INSERT INTO transfers (transfer_id, case_id, from_municipality, \
                     to_municipality, proposed_by, staff_name, staff_role, basis, consent_id, \
                     justification, note, state, proposed_at, deliver_by, respond_by, accept_by, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                     $14, $15, $16, $17) ON CONFLICT DO NOTHING",
        )
        .bind(transfer.id.as_str())
        .bind(transfer.case_id.as_str())
        .bind(transfer.from_municipality.as_str())
        .bind(transfer.to_municipality.as_str())
        .bind(transfer.proposed_by.as_str())
        .bind(&transfer.proposed_staff.name)
        .bind(&transfer.proposed_staff.role)
        .bind(transfer.basis.code())
        .bind(transfer.consent_id.as_ref().map(|c| c.as_str().to_owned()))
        .bind(transfer.justification.clone())
        .bind(transfer.note.as_ref().map(|n| n.0.clone()))
        .bind(transfer.state.code())
        .bind(transfer.proposed_at.millis())
        .bind(transfer.deadlines.deliver_by.millis())
        .bind(transfer.deadlines.respond_by.millis())
        .bind(transfer.deadlines.accept_by.millis())
        .bind(transfer.updated_at.millis())
        .execute(self)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "a transfer in progress of case {}",
                transfer.case_id
            )));
        }
        Ok(())
    }

    async fn update_transfer(
        &mut self,
        transfer: &crate::domain::transfer::Transfer,
    ) -> Result<(), StoreError> {
        use crate::store::queries::millis;
        let staff = transfer.responded_staff.as_ref();
        query(
            "UPDATE transfers SET state = $1, acknowledged_at = $2, acknowledged_by = $3, \
                     responded_at = $4, responded_by = $5, responded_staff_name = $6, \
                     responded_staff_role = $7, lead_agency = $8, receiving_case_id = $9, \
                     receiving_case_opened = $10, decline_reason = $11, decline_text = $12, \
                     withdrawn_at = $13, updated_at = $14 WHERE transfer_id = $15",
        )
        .bind(transfer.state.code())
        .bind(millis(transfer.acknowledged_at))
        .bind(
            transfer
                .acknowledged_by
                .as_ref()
                .map(|a| a.as_str().to_owned()),
        )
        .bind(millis(transfer.responded_at))
        .bind(
            transfer
                .responded_by
                .as_ref()
                .map(|a| a.as_str().to_owned()),
        )
        .bind(staff.map(|s| s.name.clone()))
        .bind(staff.map(|s| s.role.clone()))
        .bind(transfer.lead_agency.as_ref().map(|a| a.as_str().to_owned()))
        .bind(
            transfer
                .receiving_case
                .as_ref()
                .map(|c| c.as_str().to_owned()),
        )
        .bind(i64::from(transfer.receiving_case_opened))
        .bind(transfer.decline_reason.map(|r| r.code()))
        .bind(transfer.decline_text.clone())
        .bind(millis(transfer.withdrawn_at))
        .bind(transfer.updated_at.millis())
        .bind(transfer.id.as_str())
        .execute(self)
        .await?;
        Ok(())
    }

    async fn transfer(
        &mut self,
        id: &crate::domain::TransferId,
    ) -> Result<Option<crate::domain::transfer::Transfer>, StoreError> {
        use crate::store::transfers::TRANSFER_COLUMNS;
        let row = query(format!(
            "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE transfer_id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(self)
        .await?;
        row.as_ref().map(transfer_from_row).transpose()
    }

    async fn case_transfers(
        &mut self,
        case: &crate::domain::CaseId,
    ) -> Result<Vec<crate::domain::transfer::Transfer>, StoreError> {
        use crate::store::transfers::TRANSFER_COLUMNS;
        let rows = query(format!(
            "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE case_id = $1 \
                     ORDER BY proposed_at, transfer_id"
        ))
        .bind(case.as_str())
        .fetch_all(self)
        .await?;
        rows.iter().map(transfer_from_row).collect()
    }

    async fn received_transfers(
        &mut self,
        case: &crate::domain::CaseId,
    ) -> Result<Vec<crate::domain::transfer::Transfer>, StoreError> {
        use crate::store::transfers::TRANSFER_COLUMNS;
        let rows = query(format!(
            "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE receiving_case_id = $1 \
                     ORDER BY proposed_at, transfer_id"
        ))
        .bind(case.as_str())
        .fetch_all(self)
        .await?;
        rows.iter().map(transfer_from_row).collect()
    }

    async fn municipality_transfers(
        &mut self,
        municipality: &crate::domain::Municipality,
    ) -> Result<Vec<crate::domain::transfer::Transfer>, StoreError> {
        use crate::store::transfers::TRANSFER_COLUMNS;
        let rows = query(format!(
            "SELECT {TRANSFER_COLUMNS} FROM transfers \
                     WHERE from_municipality = $1 OR to_municipality = $1 \
                     ORDER BY proposed_at DESC, transfer_id DESC"
        ))
        .bind(municipality.as_str())
        .fetch_all(self)
        .await?;
        rows.iter().map(transfer_from_row).collect()
    }

    async fn transfers_due(
        &mut self,
        due_by: crate::domain::Timestamp,
    ) -> Result<Vec<crate::domain::transfer::Transfer>, StoreError> {
        use crate::store::transfers::TRANSFER_COLUMNS;
        // The deliver-by deadline is the earliest: a transfer in progress with none of
        // its deadlines passed has not passed that one either.
        let rows = query(format!(
            "SELECT {TRANSFER_COLUMNS} FROM transfers \
                     WHERE state IN ('proposed', 'acknowledged') AND deliver_by <= $1 \
                     ORDER BY proposed_at, transfer_id"
        ))
        .bind(due_by.millis())
        .fetch_all(self)
        .await?;
        rows.iter().map(transfer_from_row).collect()
    }

    async fn record_transfer_escalation(
        &mut self,
        transfer: &crate::domain::TransferId,
        timer: crate::domain::transfer::TransferTimer,
        at: crate::domain::Timestamp,
    ) -> Result<bool, StoreError> {
        let result = query(
            "INSERT INTO transfer_escalations (transfer_id, timer, raised_at) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(transfer.as_str())
        .bind(timer.code())
        .bind(at.millis())
        .execute(self)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn transfer_escalations(
        &mut self,
        transfer: &crate::domain::TransferId,
    ) -> Result<Vec<crate::domain::transfer::TransferTimer>, StoreError> {
        use crate::domain::transfer::TransferTimer;
        let codes = query("SELECT timer FROM transfer_escalations WHERE transfer_id = $1")
            .bind(transfer.as_str())
            .fetch_all(self)
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<Vec<_>, _>>()?;
        let mut timers = codes
            .iter()
            .map(|code| {
                crate::store::queries::code(
                    "transfer_escalations",
                    "timer",
                    code,
                    TransferTimer::from_code,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        timers.sort();
        Ok(timers)
    }
}
