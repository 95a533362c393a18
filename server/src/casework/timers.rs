//! The timer task's work: raise an escalation event, once per timer and tier, for every deadline
//! that passed while its layer had not moved.

use super::audit::{AuditCall, AuditTarget, Auditor, entry};
use super::{FeedAbout, coordinators, followups::responsible_agency, notify};
use crate::domain::AgencyId;
use crate::domain::records::{EscalationTier, FeedEventKind, ReferralEvent, ReferralEventKind};
use crate::domain::referral::{DeadlinePolicy, overdue};
use crate::domain::{EventId, Timestamp};
use crate::error::Error;
use crate::store::Transaction;

/// The agency id audit records of the hub's own actions carry; `agency add` refuses to register
/// an agency under it.
pub const HUB_ACTOR: &str = "tsunagu-hub";

/// The audit action of an escalation.
pub const ESCALATE_ACTION: &str = "Hub/Escalate";

/// Escalates every passed timer not escalated yet, each with its audit record (in `tx`);
/// returns how many escalations were raised.
pub async fn escalate_due(
    tx: &mut dyn Transaction,
    policy: &DeadlinePolicy,
    auditor: &Auditor,
    now: Timestamp,
) -> Result<usize, Error> {
    let grace = policy.coordinator_grace();
    let mut raised = 0;
    for referral in tx.open_referrals_due(now, None).await? {
        for timer in overdue(&referral.state, &referral.deadlines, now) {
            let due_at = referral.deadlines.get(timer);
            let mut tiers = vec![EscalationTier::Responsible];
            if now > due_at.plus(grace) {
                tiers.push(EscalationTier::Coordinator);
            }
            for tier in tiers {
                if !tx.record_escalation(&referral.id, timer, tier, now).await? {
                    continue;
                }
                let event = ReferralEvent {
                    id: EventId::generate(),
                    referral_id: referral.id.clone(),
                    case_id: referral.case_id.clone(),
                    kind: ReferralEventKind::Escalated { timer, tier },
                    actor_agency: None,
                    actor_staff: None,
                    occurred_at: due_at,
                    recorded_at: now,
                    reason_code: None,
                    reason_text: None,
                    not_connected_reason: None,
                    note: None,
                    reason_detail: None,
                    delivery: referral.state.delivery,
                    response: referral.state.response,
                    connection: referral.state.connection,
                };
                tx.insert_referral_event(&event).await?;
                // The hub acted on the case: the disclosure of a case shows when and why the
                // referral was escalated, like any agency's call.
                let mut entry = entry(
                    &AuditCall {
                        agency: AgencyId::parse(HUB_ACTOR).expect("a valid agency id"),
                        staff: None,
                        action: ESCALATE_ACTION,
                    },
                    &AuditTarget::referral(&referral),
                    crate::domain::audit::OK,
                    now,
                );
                // The hub has no staff: the role says which timer passed, at which tier.
                entry.staff_role = Some(format!("{} {}", timer.code(), tier.code()));
                auditor.record_entry(tx, &entry).await?;
                let to_tell: Vec<_> = match tier {
                    EscalationTier::Responsible => vec![
                        responsible_agency(&referral, timer),
                        referral.from_agency.clone(),
                    ],
                    EscalationTier::Coordinator => coordinators(tx, &referral.municipality)
                        .await?
                        .into_iter()
                        .map(|agency| agency.id)
                        .collect(),
                };
                notify(
                    tx,
                    to_tell,
                    FeedEventKind::Escalation,
                    FeedAbout {
                        case_id: Some(referral.case_id.clone()),
                        referral_id: Some(referral.id.clone()),
                        note_id: None,
                        referral_event_id: Some(event.id.clone()),
                    },
                    now,
                )
                .await?;
                metrics::counter!(
                    crate::telemetry::names::ESCALATIONS,
                    "timer" => timer.code(),
                    "tier" => tier.code()
                )
                .increment(1);
                raised += 1;
            }
        }
    }
    // Transfers (移管) between municipalities escalate to both coordinators.
    raised += super::transfers::escalate_due(tx, auditor, now).await?;
    Ok(raised)
}
