//! Worklists: what each agency has to chase. Computed from the referrals' states and deadlines
//! at the moment of asking, so an item stays until its state moves and nothing is ever dropped.

use super::coordinators;
use crate::domain::records::Referral;
use crate::domain::referral::{
    DeadlinePolicy, Party, TimerKind, due_soon, overdue, responsible_party,
};
use crate::domain::{Agency, AgencyId, Municipality, Timestamp};
use crate::error::Error;
use crate::store::Transaction;

/// Why an item is on a worklist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUpStatus {
    Overdue,
    DueSoon,
    /// A share without consent, for the coordinator's review.
    BasisReview,
    /// A confirmed "did not connect" awaiting its next step (a re-referral on the case).
    NextStepNeeded,
}

#[derive(Debug, Clone)]
pub struct FollowUp {
    pub status: FollowUpStatus,
    pub referral: Referral,
    pub timer: Option<TimerKind>,
    pub due_at: Option<Timestamp>,
    pub responsible: Option<AgencyId>,
    /// Overdue past the coordinator's grace period: escalated to the coordinator.
    pub escalated: bool,
}

/// The agency that has to act for a timer.
pub fn responsible_agency(referral: &Referral, timer: TimerKind) -> AgencyId {
    match responsible_party(timer) {
        Party::Sender => referral.from_agency.clone(),
        _ => referral.to_agency.clone(),
    }
}

/// The caller's worklist: its own overdue and due-soon items, and for a coordinator every
/// overdue and due-soon handoff of the municipalities it coordinates, whoever has to act (those
/// past the coordinator's grace period marked escalated), plus the shares made without consent.
pub async fn follow_ups(
    tx: &mut dyn Transaction,
    caller: &Agency,
    municipality: Option<&Municipality>,
    window: time::Duration,
    policy: &DeadlinePolicy,
    now: Timestamp,
) -> Result<Vec<FollowUp>, Error> {
    let coordinated: Vec<Municipality> = match municipality {
        Some(municipality) if caller.is_coordinator_of(municipality) => vec![municipality.clone()],
        Some(municipality) => {
            // Make sure the municipality has a coordinator at all, to say the right thing.
            let has_coordinator = !coordinators(tx, municipality).await?.is_empty();
            return Err(Error::PermissionDenied(if has_coordinator {
                format!(
                    "only the coordinator of municipality {municipality} sees its worklist; \
                     leave municipality empty for your own"
                )
            } else {
                format!("municipality {municipality} has no coordinator registered")
            }));
        }
        None => caller.coordinator_of.clone(),
    };
    let grace = policy.coordinator_grace();
    let mut items = Vec::new();
    for referral in tx.open_referrals_due(now.plus(window), None).await? {
        let mine = referral.from_agency == caller.id || referral.to_agency == caller.id;
        let coordinating = coordinated.contains(&referral.municipality);
        if !mine && !coordinating {
            continue;
        }
        let passed = overdue(&referral.state, &referral.deadlines, now);
        for timer in &passed {
            let responsible = responsible_agency(&referral, *timer);
            let due_at = referral.deadlines.get(*timer);
            if responsible == caller.id || coordinating {
                items.push(FollowUp {
                    status: FollowUpStatus::Overdue,
                    referral: referral.clone(),
                    timer: Some(*timer),
                    due_at: Some(due_at),
                    responsible: Some(responsible),
                    escalated: now > due_at.plus(grace),
                });
            }
        }
        for (timer, due_at) in due_soon(&referral.state, &referral.deadlines, now, window) {
            let responsible = responsible_agency(&referral, timer);
            if responsible == caller.id || coordinating {
                items.push(FollowUp {
                    status: FollowUpStatus::DueSoon,
                    referral: referral.clone(),
                    timer: Some(timer),
                    due_at: Some(due_at),
                    responsible: Some(responsible),
                    escalated: false,
                });
            }
        }
    }
    for municipality in &coordinated {
        for referral in tx.open_referrals_without_consent(municipality).await? {
            items.push(FollowUp {
                status: FollowUpStatus::BasisReview,
                referral,
                timer: None,
                due_at: None,
                responsible: None,
                escalated: false,
            });
        }
    }
    // Confirming "did not connect" closes the handoff, not the family's need: until a new
    // referral goes out on the case, the sender and the coordinator keep seeing it.
    let mut pending = Vec::new();
    for municipality in &coordinated {
        pending.extend(
            tx.not_connected_without_next_step(Some(municipality), None)
                .await?,
        );
    }
    for referral in tx
        .not_connected_without_next_step(None, Some(&caller.id))
        .await?
    {
        if !pending.iter().any(|r: &Referral| r.id == referral.id) {
            pending.push(referral);
        }
    }
    for referral in pending {
        items.push(FollowUp {
            status: FollowUpStatus::NextStepNeeded,
            responsible: Some(referral.from_agency.clone()),
            due_at: referral.state.confirmed_at,
            referral,
            timer: None,
            escalated: false,
        });
    }
    items.sort_by_key(|item| {
        (
            match item.status {
                FollowUpStatus::Overdue => 0,
                FollowUpStatus::DueSoon => 1,
                FollowUpStatus::NextStepNeeded => 2,
                FollowUpStatus::BasisReview => 3,
            },
            item.due_at,
        )
    });
    Ok(items)
}
