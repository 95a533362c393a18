//! The parts outcomes are computed from, in two statements per scope: the database counts
//! alike referrals (`GROUP BY` the group and the state columns) and lists the seconds each took
//! to each step for the percentiles (one row per tally, not per referral); then it returns the
//! few referrals on `referred_elsewhere` chains.
//! The step times and escalations are kept on the referral row (migration 0008), so no event or
//! escalation is read. No sealed column (body, notes) is selected.

use super::StoreError;
use super::db::{Connection, Row, query};
use super::queries::referral_state_from_row;

use async_trait::async_trait;

use crate::domain::outcomes::{Dimension, OutcomeParts};
use crate::domain::{AgencyId, Municipality, Timestamp};
use crate::store::queries::Param;

/// Whose referrals to read.
#[derive(Debug, Clone, Copy)]
pub enum OutcomeScope<'a> {
    /// The referrals an agency sent or received.
    Agency(&'a AgencyId),
    /// Every referral of a municipality.
    Municipality(&'a Municipality),
}

/// How the parts are keyed and measured.
#[derive(Debug, Clone, Copy)]
pub struct OutcomeView<'a> {
    /// Who asks: a reporter's agency is hidden from anyone but the two agencies concerned.
    pub viewer: &'a AgencyId,
    /// The dimensions of each part's key, in order.
    pub group_by: &'a [Dimension],
    /// The instant deadlines are measured against.
    pub now: Timestamp,
}

/// Store operations of this area, part of every `Transaction`.
#[async_trait]
pub trait OutcomeQueries: Send {
    /// The parts of the referrals of `scope` sent in `[from, until)`, keyed as `view` says.
    async fn outcome_parts(
        &mut self,
        scope: OutcomeScope<'_>,
        from: Timestamp,
        until: Timestamp,
        view: &OutcomeView<'_>,
    ) -> Result<OutcomeParts, StoreError>;
}

/// A statement's text and parameters, numbered as they are bound.
#[derive(Default)]
pub(crate) struct Statement {
    pub(crate) sql: String,
    pub(crate) params: Vec<Param>,
}

impl Statement {
    /// The placeholder of a new parameter.
    fn bind(&mut self, value: impl Into<Param>) -> String {
        self.params.push(value.into());
        format!("${}", self.params.len())
    }

    /// The key columns and the scope's `WHERE` clause on `r`, shared by the three statements.
    fn start(
        scope: OutcomeScope<'_>,
        from: Timestamp,
        until: Timestamp,
        view: &OutcomeView<'_>,
        month: &str,
    ) -> (Self, String, String) {
        let mut s = Self::default();
        let keys: Vec<String> = view
            .group_by
            .iter()
            .map(|dimension| match dimension {
                Dimension::Sender => {
                    let viewer = s.bind(view.viewer.as_str());
                    format!(
                        "CASE WHEN r.hide_sender <> 0 AND r.from_agency <> {viewer} \
                         AND r.to_agency <> {viewer} THEN '' ELSE r.from_agency END"
                    )
                }
                Dimension::Recipient => "r.to_agency".to_owned(),
                Dimension::RecipientKind => "COALESCE((SELECT a.kind FROM agencies a \
                     WHERE a.agency_id = r.to_agency), '')"
                    .to_owned(),
                Dimension::Purpose => "r.purpose".to_owned(),
                Dimension::Urgency => "r.urgency".to_owned(),
                Dimension::LegalBasis => "r.basis".to_owned(),
                Dimension::Month => month.to_owned(),
            })
            .collect();
        let (from, until) = (s.bind(from.millis()), s.bind(until.millis()));
        let scope = match scope {
            OutcomeScope::Agency(agency) => {
                let agency = s.bind(agency.as_str());
                format!("(r.from_agency = {agency} OR r.to_agency = {agency})")
            }
            OutcomeScope::Municipality(municipality) => {
                format!("r.municipality = {}", s.bind(municipality.as_str()))
            }
        };
        let keys = keys.iter().map(|k| format!("{k}, ")).collect::<String>();
        (
            s,
            keys,
            format!("{scope} AND r.sent_at >= {from} AND r.sent_at < {until}"),
        )
    }
}

/// How many referrals alike in their group and state columns, with how many have each deadline
/// behind them by how long ([`crate::domain::outcomes::OverdueAge`]'s buckets), and the seconds
/// each took from sending to each milestone it reached (`Milestone::ALL`'s order) as one
/// comma-separated list per milestone, so a year of referrals comes back in one row per tally,
/// not one per referral. `month` is the dialect's expression of `r.sent_at`'s month in Japan
/// (`YYYY-MM`), `list` its aggregate joining `{value}` with commas.
pub(crate) fn tallies_statement(
    scope: OutcomeScope<'_>,
    from: Timestamp,
    until: Timestamp,
    view: &OutcomeView<'_>,
    month: &str,
    list: &str,
) -> Statement {
    const DAY: i64 = 86_400_000;
    let (mut s, keys, clause) = Statement::start(scope, from, until, view, month);
    let now = s.bind(view.now.millis());
    let mut past = String::new();
    for deadline in ["deliver_by", "respond_by", "connect_by", "confirm_by"] {
        let age = format!("({now} - r.{deadline})");
        for (low, high) in [(0, DAY), (DAY, 7 * DAY), (7 * DAY, 30 * DAY)] {
            let low = if low == 0 {
                format!("r.{deadline} < {now}")
            } else {
                format!("{age} >= {low}")
            };
            past.push_str(&format!(
                ", SUM(CASE WHEN {low} AND {age} < {high} THEN 1 ELSE 0 END)"
            ));
        }
        past.push_str(&format!(
            ", SUM(CASE WHEN {age} >= {} THEN 1 ELSE 0 END)",
            30 * DAY
        ));
    }
    let lists: String = [
        "r.delivered_at",
        "r.accepted_at",
        "r.first_contact_at",
        "CASE WHEN r.connection = 'connected' THEN r.connection_updated_at END",
        "r.confirmed_at",
    ]
    .map(|at| {
        // As the domain measures it: never below zero, whole seconds.
        let seconds =
            format!("CASE WHEN ({at}) < r.sent_at THEN 0 ELSE (({at}) - r.sent_at) / 1000 END");
        format!(", {}", list.replace("{value}", &seconds))
    })
    .concat();
    let grouped = (1..=view.group_by.len() + 7)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    s.sql = format!(
        "SELECT {keys}r.delivery, r.response, r.connection, r.not_connected_reason, \
         CAST(CASE WHEN r.confirmed_at IS NULL THEN 0 ELSE 1 END AS BIGINT), \
         CASE WHEN r.response IN ('declined', 'failed', 'cancelled') \
         THEN COALESCE(r.response_reason, '') END, r.escalated, COUNT(*){past}{lists} \
         FROM referrals r WHERE {clause} GROUP BY {grouped}"
    );
    s
}

/// The referral a family that moved was referred to next in the municipality that took its case
/// on (移管): for a referral reported not connected because the family `moved`, on a case whose
/// transfer was accepted, the first referral on the receiving case. As a column of `r`.
const MOVED_ON: &str = "(CASE WHEN r.connection = 'not_connected' \
     AND r.not_connected_reason = 'moved' THEN (SELECT n.referral_id FROM transfers t \
     JOIN referrals n ON n.case_id = t.receiving_case_id WHERE t.case_id = r.case_id \
     AND t.state = 'accepted' ORDER BY n.sent_at, n.referral_id LIMIT 1) END)";

/// The referrals on `referred_elsewhere` chains: those linking on, and those linked to (from
/// anywhere, so a chain crossing two of a coordinator's municipalities stays whole). A family
/// that moved and whose case was transferred (移管) links on the same way, to the first referral
/// made for it in its new municipality: one family's journey, counted once.
pub(crate) fn links_statement(
    scope: OutcomeScope<'_>,
    from: Timestamp,
    until: Timestamp,
    view: &OutcomeView<'_>,
    month: &str,
) -> Statement {
    let (mut s, keys, clause) = Statement::start(scope, from, until, view, month);
    let moved_on = MOVED_ON;
    let moved_on_e = MOVED_ON.replace("r.", "e.");
    s.sql = format!(
        "SELECT {keys}r.referral_id, r.delivery, r.delivered_at, r.response, r.responded_at, \
         r.response_reason, r.connection, r.connection_updated_at, r.contact_attempts, \
         CASE WHEN {moved_on} IS NOT NULL THEN 'referred_elsewhere' \
         ELSE r.not_connected_reason END AS not_connected_reason, \
         COALESCE(r.linked_referral_id, {moved_on}) AS linked_referral_id, r.confirmed_at, \
         r.confirmed_by \
         FROM referrals r WHERE {clause} AND ((r.not_connected_reason = 'referred_elsewhere' \
         AND r.connection = 'not_connected' AND r.linked_referral_id IS NOT NULL) \
         OR {moved_on} IS NOT NULL \
         OR r.referral_id IN (SELECT e.linked_referral_id FROM referrals e \
         WHERE e.not_connected_reason = 'referred_elsewhere' AND e.connection = 'not_connected' \
         AND e.linked_referral_id IS NOT NULL) \
         OR r.referral_id IN (SELECT {moved_on_e} FROM referrals e))"
    );
    s
}

#[async_trait::async_trait]
impl<C: Connection> crate::store::outcomes::OutcomeQueries for C {
    async fn outcome_parts(
        &mut self,
        scope: crate::store::outcomes::OutcomeScope<'_>,
        from: crate::domain::Timestamp,
        until: crate::domain::Timestamp,
        view: &crate::store::outcomes::OutcomeView<'_>,
    ) -> Result<crate::domain::outcomes::OutcomeParts, StoreError> {
        use crate::domain::ReferralId;
        use crate::domain::outcomes::{LinkRow, OutcomeParts, Tally, Timing};
        use crate::domain::referral::*;
        use crate::store::outcomes::{links_statement, tallies_statement};
        use crate::store::queries::{code, optional_code};
        const T: &str = "referrals";
        let k = view.group_by.len();
        let key = |row: &Row| -> Result<Vec<String>, StoreError> {
            (0..k).map(|i| Ok(row.try_get::<String, _>(i)?)).collect()
        };
        let count = |row: &Row, i: usize| -> Result<u64, StoreError> {
            u64::try_from(row.try_get::<i64, _>(i)?).map_err(|_| StoreError::corrupt(T, "count"))
        };
        let mut parts = OutcomeParts::default();

        let s = tallies_statement(
            scope,
            from,
            until,
            view,
            self.dialect().month_of_sending(),
            self.dialect().comma_list(),
        );
        let rows = query(&s.sql).bind_all(&s.params).fetch_all(self).await?;
        for row in &rows {
            let text =
                |i: usize| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(i)?) };
            let mut past_deadline = [[0; 4]; 4];
            for (i, slot) in past_deadline.iter_mut().flatten().enumerate() {
                *slot = count(row, k + 8 + i)?;
            }
            let mut seconds: [Vec<i64>; 5] = Default::default();
            for (i, slot) in seconds.iter_mut().enumerate() {
                let list: Option<String> = row.try_get(k + 24 + i)?;
                for value in list.as_deref().unwrap_or_default().split(',') {
                    if !value.is_empty() {
                        slot.push(
                            value
                                .trim()
                                .parse()
                                .map_err(|_| StoreError::corrupt(T, "step time"))?,
                        );
                    }
                }
            }
            if seconds.iter().any(|s| !s.is_empty()) {
                parts.timings.push(Timing {
                    key: key(row)?,
                    seconds,
                });
            }
            parts.tallies.push(Tally {
                key: key(row)?,
                delivery: code(T, "delivery", &text(k)?, DeliveryState::from_code)?,
                response: code(T, "response", &text(k + 1)?, ResponseState::from_code)?,
                connection: code(T, "connection", &text(k + 2)?, ConnectionState::from_code)?,
                not_connected_reason: optional_code(
                    T,
                    "not_connected_reason",
                    row.try_get(k + 3)?,
                    NotConnectedReason::from_code,
                )?,
                confirmed: row.try_get::<i64, _>(k + 4)? != 0,
                reason: row.try_get(k + 5)?,
                escalated: u8::try_from(row.try_get::<i64, _>(k + 6)?)
                    .map_err(|_| StoreError::corrupt(T, "escalated"))?,
                count: count(row, k + 7)?,
                past_deadline,
            });
        }

        let s = links_statement(scope, from, until, view, self.dialect().month_of_sending());
        let rows = query(&s.sql).bind_all(&s.params).fetch_all(self).await?;
        for row in &rows {
            parts.links.push(LinkRow {
                id: code(
                    T,
                    "referral_id",
                    &row.try_get::<String, _>("referral_id")?,
                    ReferralId::parse,
                )?,
                key: key(row)?,
                state: referral_state_from_row(row)?,
            });
        }
        Ok(parts)
    }
}
