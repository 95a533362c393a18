//! Outcomes for a caller: which referrals it may count (its own, or its municipality's as the
//! coordinator), counted by the store in a few statements and summed up by the domain's plain
//! computation. A reporter's agency stays hidden from everyone but the two agencies concerned,
//! the coordinator included (see `sender_visible`): the store keys it blank for other viewers.

use super::coordinators;
use crate::domain::outcomes::{Dimension, OutcomeParts, Outcomes, outcomes_of};
use crate::domain::{Agency, JST, Municipality, Timestamp};
use crate::error::Error;
use crate::store::Transaction;
use crate::store::outcomes::{OutcomeScope, OutcomeView};

/// The longest range one call may count, so a mistyped year does not read the whole database.
pub const MAX_RANGE_DAYS: i64 = 5 * 366;

/// What to count.
#[derive(Debug, Clone)]
pub struct OutcomeQuery {
    /// First and last day (inclusive) of the sent dates, in Japan.
    pub from: time::Date,
    pub to: time::Date,
    pub group_by: Vec<Dimension>,
    /// For a coordinator: only this municipality.
    pub municipality: Option<Municipality>,
}

/// The figures and the municipalities they cover (empty: the caller's own referrals).
#[derive(Debug, Clone)]
pub struct CallerOutcomes {
    pub outcomes: Outcomes,
    pub municipalities: Vec<Municipality>,
}

/// The instant a day begins in Japan.
pub fn start_of_day_in_japan(date: time::Date) -> Timestamp {
    Timestamp::from_offset_date_time(date.midnight().assume_offset(JST))
}

/// The outcomes of the referrals the caller may count: an agency's own (sent or received); a
/// coordinator's municipality's (every municipality it coordinates unless one is named).
pub async fn caller_outcomes(
    tx: &mut dyn Transaction,
    caller: &Agency,
    query: &OutcomeQuery,
    now: Timestamp,
) -> Result<CallerOutcomes, Error> {
    if query.to < query.from {
        return Err(Error::invalid("to", "must be on or after from"));
    }
    if (query.to - query.from).whole_days() > MAX_RANGE_DAYS {
        return Err(Error::invalid(
            "to",
            "must be at most 5 years after from; ask for one year at a time",
        ));
    }
    let mut seen = Vec::new();
    for dimension in &query.group_by {
        if seen.contains(dimension) {
            return Err(Error::invalid(
                "group_by",
                "names a dimension twice; give each at most once",
            ));
        }
        seen.push(*dimension);
    }
    let municipalities: Vec<Municipality> = match &query.municipality {
        Some(municipality) if caller.is_coordinator_of(municipality) => vec![municipality.clone()],
        Some(municipality) => {
            let has_coordinator = !coordinators(tx, municipality).await?.is_empty();
            return Err(Error::PermissionDenied(if has_coordinator {
                format!(
                    "only the coordinator of municipality {municipality} sees its outcomes; \
                     leave municipality empty for your own referrals"
                )
            } else {
                format!("municipality {municipality} has no coordinator registered")
            }));
        }
        None => caller.coordinator_of.clone(),
    };
    let from = start_of_day_in_japan(query.from);
    let until = start_of_day_in_japan(query.to.next_day().unwrap_or(query.to));
    let view = OutcomeView {
        viewer: &caller.id,
        group_by: &query.group_by,
        now,
    };
    let mut parts = OutcomeParts::default();
    if municipalities.is_empty() {
        parts = tx
            .outcome_parts(OutcomeScope::Agency(&caller.id), from, until, &view)
            .await?;
    } else {
        for municipality in &municipalities {
            let more = tx
                .outcome_parts(OutcomeScope::Municipality(municipality), from, until, &view)
                .await?;
            parts.tallies.extend(more.tallies);
            parts.timings.extend(more.timings);
            parts.links.extend(more.links);
        }
    }
    Ok(CallerOutcomes {
        outcomes: outcomes_of(&parts, !query.group_by.is_empty()),
        municipalities,
    })
}
