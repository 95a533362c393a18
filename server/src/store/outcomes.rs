//! The rows outcomes are computed from: each referral's routing metadata with the times of its
//! acceptance and first contact, and its escalations, in two statements per scope. No sealed
//! column (body, notes) is selected.

use async_trait::async_trait;

use crate::domain::outcomes::OutcomeRow;
use crate::domain::{AgencyId, Municipality, Timestamp};
use crate::store::StoreError;

/// Whose referrals to read.
#[derive(Debug, Clone, Copy)]
pub enum OutcomeScope<'a> {
    /// The referrals an agency sent or received.
    Agency(&'a AgencyId),
    /// Every referral of a municipality.
    Municipality(&'a Municipality),
}

/// Store operations of this area, part of every `Transaction`.
#[async_trait]
pub trait OutcomeQueries: Send {
    /// The referrals of `scope` sent in `[from, until)`, as outcome rows (`sender_hidden` is left
    /// false: whether the viewer may see the sender is the caller's to decide), with the raw
    /// `hide_sender` flag beside each.
    async fn outcome_rows(
        &mut self,
        scope: OutcomeScope<'_>,
        from: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<(OutcomeRow, bool)>, StoreError>;
}

/// The referrals of a scope as a `WHERE` clause on `r` with `$1` the agency or municipality and
/// `$2`, `$3` the sent range.
pub(crate) fn scope_clause(scope: OutcomeScope<'_>) -> (&'static str, &str) {
    match scope {
        OutcomeScope::Agency(agency) => (
            "(r.from_agency = $1 OR r.to_agency = $1) AND r.sent_at >= $2 AND r.sent_at < $3",
            agency.as_str(),
        ),
        OutcomeScope::Municipality(municipality) => (
            "r.municipality = $1 AND r.sent_at >= $2 AND r.sent_at < $3",
            municipality.as_str(),
        ),
    }
}

/// The select list of `outcome_rows`: the routing columns, the recipient's kind, and the two step
/// times only the events hold, each one index seek per referral.
pub(crate) const OUTCOME_COLUMNS: &str = "r.referral_id, r.from_agency, r.to_agency, \
     a.kind AS to_kind, r.purpose, r.urgency, r.basis, r.hide_sender, r.sent_at, r.deliver_by, \
     r.respond_by, r.connect_by, r.confirm_by, r.delivery, r.delivered_at, r.response, \
     r.responded_at, r.response_reason, r.connection, r.connection_updated_at, \
     r.contact_attempts, r.not_connected_reason, r.linked_referral_id, r.confirmed_at, \
     r.confirmed_by, \
     (SELECT MIN(e.occurred_at) FROM referral_events e WHERE e.referral_id = r.referral_id \
      AND e.action = 'accept') AS accepted_at, \
     (SELECT MIN(e.occurred_at) FROM referral_events e WHERE e.referral_id = r.referral_id \
      AND e.action IN ('record_contact_attempt', 'report_connected')) AS first_contact_at";

/// Implements `OutcomeQueries` for a backend's transaction wrapper `$tx`, using `$row` as the
/// backend's row type.
macro_rules! outcome_queries {
    ($tx:ty, $row:ty) => {
        impl $tx {
            fn outcome_row_from_row(
                row: &$row,
            ) -> Result<($crate::domain::outcomes::OutcomeRow, bool), $crate::store::StoreError>
            {
                use sqlx::Row as _;
                use $crate::domain::basis::LegalBasisKind;
                use $crate::domain::referral::*;
                use $crate::domain::*;
                use $crate::store::queries::{code, optional_code, timestamp};
                const T: &str = "referrals";
                let text = |column: &str| -> Result<String, $crate::store::StoreError> {
                    Ok(row.try_get::<String, _>(column)?)
                };
                let attempts: i64 = row.try_get("contact_attempts")?;
                let hide_sender: i64 = row.try_get("hide_sender")?;
                let outcome = $crate::domain::outcomes::OutcomeRow {
                    id: code(T, "referral_id", &text("referral_id")?, ReferralId::parse)?,
                    from_agency: code(T, "from_agency", &text("from_agency")?, AgencyId::parse)?,
                    sender_hidden: false,
                    to_agency: code(T, "to_agency", &text("to_agency")?, AgencyId::parse)?,
                    to_kind: text("to_kind")?,
                    purpose: code(T, "purpose", &text("purpose")?, Purpose::parse)?,
                    urgency: code(T, "urgency", &text("urgency")?, Urgency::from_code)?,
                    basis: code(T, "basis", &text("basis")?, LegalBasisKind::from_code)?,
                    sent_at: Timestamp::from_millis(row.try_get("sent_at")?),
                    deadlines: Deadlines {
                        deliver_by: Timestamp::from_millis(row.try_get("deliver_by")?),
                        respond_by: Timestamp::from_millis(row.try_get("respond_by")?),
                        connect_by: Timestamp::from_millis(row.try_get("connect_by")?),
                        confirm_by: Timestamp::from_millis(row.try_get("confirm_by")?),
                    },
                    state: ReferralState {
                        delivery: code(T, "delivery", &text("delivery")?, DeliveryState::from_code)?,
                        delivered_at: timestamp(row.try_get("delivered_at")?),
                        response: code(T, "response", &text("response")?, ResponseState::from_code)?,
                        responded_at: timestamp(row.try_get("responded_at")?),
                        response_reason: row.try_get("response_reason")?,
                        connection: code(
                            T,
                            "connection",
                            &text("connection")?,
                            ConnectionState::from_code,
                        )?,
                        connection_updated_at: timestamp(row.try_get("connection_updated_at")?),
                        contact_attempts: u32::try_from(attempts)
                            .map_err(|_| $crate::store::StoreError::corrupt(T, "contact_attempts"))?,
                        not_connected_reason: optional_code(
                            T,
                            "not_connected_reason",
                            row.try_get("not_connected_reason")?,
                            NotConnectedReason::from_code,
                        )?,
                        linked_referral_id: optional_code(
                            T,
                            "linked_referral_id",
                            row.try_get("linked_referral_id")?,
                            ReferralId::parse,
                        )?,
                        confirmed_at: timestamp(row.try_get("confirmed_at")?),
                        confirmed_by: optional_code(
                            T,
                            "confirmed_by",
                            row.try_get("confirmed_by")?,
                            AgencyId::parse,
                        )?,
                    },
                    accepted_at: timestamp(row.try_get("accepted_at")?),
                    first_contact_at: timestamp(row.try_get("first_contact_at")?),
                    escalations: Vec::new(),
                };
                Ok((outcome, hide_sender != 0))
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::outcomes::OutcomeQueries for $tx {
            async fn outcome_rows(
                &mut self,
                scope: $crate::store::outcomes::OutcomeScope<'_>,
                from: $crate::domain::Timestamp,
                until: $crate::domain::Timestamp,
            ) -> Result<Vec<($crate::domain::outcomes::OutcomeRow, bool)>, $crate::store::StoreError>
            {
                use sqlx::Row as _;
                use $crate::domain::records::EscalationTier;
                use $crate::domain::referral::TimerKind;
                use $crate::store::outcomes::{OUTCOME_COLUMNS, scope_clause};
                use $crate::store::queries::code;
                let (clause, key) = scope_clause(scope);
                let rows = sqlx::query(&format!(
                    "SELECT {OUTCOME_COLUMNS} FROM referrals r \
                     JOIN agencies a ON a.agency_id = r.to_agency WHERE {clause}"
                ))
                .bind(key)
                .bind(from.millis())
                .bind(until.millis())
                .fetch_all(self.conn().await?)
                .await?;
                let mut out = rows
                    .iter()
                    .map(Self::outcome_row_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                let escalations = sqlx::query(&format!(
                    "SELECT x.referral_id, x.timer, x.tier FROM escalations x \
                     JOIN referrals r ON r.referral_id = x.referral_id WHERE {clause}"
                ))
                .bind(key)
                .bind(from.millis())
                .bind(until.millis())
                .fetch_all(self.conn().await?)
                .await?;
                if !escalations.is_empty() {
                    const T: &str = "escalations";
                    let index: std::collections::HashMap<String, usize> = out
                        .iter()
                        .enumerate()
                        .map(|(i, (row, _))| (row.id.to_string(), i))
                        .collect();
                    for row in &escalations {
                        let referral: String = row.try_get("referral_id")?;
                        let timer: String = row.try_get("timer")?;
                        let tier: String = row.try_get("tier")?;
                        if let Some(i) = index.get(&referral) {
                            out[*i].0.escalations.push((
                                code(T, "timer", &timer, TimerKind::from_code)?,
                                code(T, "tier", &tier, EscalationTier::from_code)?,
                            ));
                        }
                    }
                }
                Ok(out)
            }
        }
    };
}

pub(crate) use outcome_queries;
