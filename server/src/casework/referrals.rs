//! Referrals: sending one under a checked legal basis, moving its three layers, and reading them.

use super::{FeedAbout, may_see_referral, notify, visible_case};
use crate::domain::basis::{ClaimedBasis, ShareContext, decide};
use crate::domain::deadlines::DeadlineTerms;
use crate::domain::records::{FeedEventKind, Referral, ReferralEvent, ReferralEventKind};
use crate::domain::referral::{
    ActionInput, DeadlineOverrides, DeadlinePolicy, NextStep, Party, ReferralAction, ReferralState,
    TransitionError, apply, apply_overrides, asks_for_next_step, close_with_reason,
};
use crate::domain::{
    Agency, AgencyId, AgencyStatus, CaseId, EventId, Purpose, ReferralId, Sealed, Staff, Timestamp,
    Urgency,
};
use crate::error::Error;
use crate::store::{ReferralQuery, Transaction};

/// How far in the future a client clock may put `occurred_at` (clock skew between systems).
const ALLOWED_CLOCK_SKEW_MILLIS: i64 = 5 * 60 * 1000;

/// A referral to send.
#[derive(Debug, Clone)]
pub struct SendReferral {
    pub case_id: CaseId,
    pub to_agency: AgencyId,
    pub purpose: Purpose,
    pub urgency: Urgency,
    pub basis: ClaimedBasis,
    pub body: Sealed,
    pub overrides: DeadlineOverrides,
    pub staff: Staff,
}

/// Looks up the agency a share goes to; a share to oneself, to an unknown or to a suspended
/// agency is refused before any basis is considered.
pub async fn share_recipient(
    tx: &mut dyn Transaction,
    caller: &Agency,
    recipient: &AgencyId,
    field: &str,
) -> Result<Agency, Error> {
    if recipient == &caller.id {
        return Err(Error::invalid(field, "is your own agency"));
    }
    let agency = tx.agency(recipient).await?.ok_or_else(|| {
        Error::invalid(
            field,
            format!("agency {recipient} is not registered with this hub"),
        )
    })?;
    if agency.status == AgencyStatus::Suspended {
        return Err(Error::FailedPrecondition(format!(
            "agency {recipient} is suspended and cannot receive anything now"
        )));
    }
    Ok(agency)
}

pub async fn send_referral(
    tx: &mut dyn Transaction,
    caller: &Agency,
    request: SendReferral,
    policy: &DeadlinePolicy,
    now: Timestamp,
) -> Result<(Referral, ReferralEvent), Error> {
    let (case, _) = visible_case(tx, caller, &request.case_id).await?;
    let recipient = share_recipient(tx, caller, &request.to_agency, "to_agency").await?;
    let consents = tx.consents(&case.id).await?;
    let decision = decide(
        &request.basis,
        &ShareContext {
            sender: caller,
            recipient: &recipient,
            case_municipality: &case.municipality,
            case_council_registered: case.council_registered,
            purpose: &request.purpose,
            consents: &consents,
            now,
        },
    )
    .map_err(|refusal| Error::FailedPrecondition(refusal.to_string()))?;
    // Business days are those of the case's municipality: its offices (and the coordinator who
    // picks up what is overdue) keep its closure days.
    let deadlines = apply_overrides(
        policy.deadlines_in(request.urgency, now, Some(&case.municipality)),
        &request.overrides,
        now,
    )
    .map_err(|error| Error::invalid(error.field, error.reason))?;
    let deadline_terms = DeadlineTerms::of(policy.for_urgency(request.urgency), &request.overrides);

    let state = ReferralState::new();
    let referral = Referral {
        id: ReferralId::generate(),
        case_id: case.id.clone(),
        municipality: case.municipality.clone(),
        from_agency: caller.id.clone(),
        to_agency: recipient.id.clone(),
        purpose: request.purpose,
        urgency: request.urgency,
        basis: decision.kind,
        consent_id: decision.consent_id,
        justification: request
            .basis
            .justification
            .filter(|_| decision.needs_review),
        hide_sender: decision.hide_sender,
        body: request.body,
        staff: request.staff.clone(),
        sent_at: now,
        deadlines,
        deadline_terms: Some(deadline_terms),
        state: state.clone(),
        closed_with_reason: None,
    };
    tx.insert_referral(&referral).await?;
    tx.add_participants(&case.id, &[&caller.id, &recipient.id], now)
        .await?;
    let event = ReferralEvent {
        id: EventId::generate(),
        referral_id: referral.id.clone(),
        case_id: case.id.clone(),
        kind: ReferralEventKind::Sent,
        actor_agency: Some(caller.id.clone()),
        actor_staff: Some(request.staff),
        occurred_at: now,
        recorded_at: now,
        reason_code: None,
        reason_text: None,
        not_connected_reason: None,
        note: None,
        reason_detail: None,
        delivery: state.delivery,
        response: state.response,
        connection: state.connection,
    };
    tx.insert_referral_event(&event).await?;
    notify(
        tx,
        [recipient.id],
        FeedEventKind::ReferralReceived,
        FeedAbout {
            case_id: Some(case.id),
            referral_id: Some(referral.id.clone()),
            note_id: None,
            referral_event_id: Some(event.id.clone()),
        },
        now,
    )
    .await?;
    Ok((referral, event))
}

/// One action on a referral.
#[derive(Debug, Clone)]
pub struct RecordAction {
    pub referral_id: ReferralId,
    pub input: ActionInput,
    pub note: Option<Sealed>,
    /// A sealed detail of the reason given in the clear.
    pub reason_detail: Option<Sealed>,
    pub staff: Staff,
    pub occurred_at: Option<Timestamp>,
}

/// The role the caller plays for a referral.
pub fn party(caller: &Agency, referral: &Referral) -> Party {
    if caller.id == referral.from_agency {
        Party::Sender
    } else if caller.id == referral.to_agency {
        Party::Recipient
    } else if caller.is_coordinator_of(&referral.municipality) {
        Party::Coordinator
    } else {
        Party::Other
    }
}

fn transition_error(error: TransitionError) -> Error {
    match &error {
        TransitionError::WrongParty { .. } => Error::PermissionDenied(error.to_string()),
        TransitionError::InvalidTransition { .. }
        | TransitionError::Closed { .. }
        | TransitionError::NoNextStepDue { .. } => Error::FailedPrecondition(error.to_string()),
        TransitionError::UnknownReason { .. } => Error::invalid("reason_code", error.to_string()),
        TransitionError::MissingReason { field, .. }
        | TransitionError::UnexpectedField { field, .. } => {
            Error::invalid(*field, error.to_string())
        }
    }
}

/// Loads a referral the caller may see.
pub async fn visible_referral(
    tx: &mut dyn Transaction,
    caller: &Agency,
    id: &ReferralId,
) -> Result<Referral, Error> {
    // A referral that does not exist and one the caller may not see are refused alike.
    let referral = tx
        .referral(id)
        .await?
        .filter(|referral| may_see_referral(caller, referral))
        .ok_or_else(|| Error::not_visible("referral", &caller.id))?;
    Ok(referral)
}

/// A referral the caller may see, with its events in order.
pub async fn referral_with_events(
    tx: &mut dyn Transaction,
    caller: &Agency,
    id: &ReferralId,
) -> Result<(Referral, Vec<ReferralEvent>), Error> {
    let referral = visible_referral(tx, caller, id).await?;
    let events = tx.referral_events(id).await?;
    Ok((referral, events))
}

pub async fn record_action(
    tx: &mut dyn Transaction,
    caller: &Agency,
    request: RecordAction,
    now: Timestamp,
) -> Result<(Referral, ReferralEvent), Error> {
    let mut referral = visible_referral(tx, caller, &request.referral_id).await?;
    if request.reason_detail.is_some() && !request.input.action.gives_reason() {
        return Err(Error::invalid(
            "reason_detail",
            "is only given with decline, fail, cancel, report_not_connected and \
             close_with_reason: it details the reason they give in the clear",
        ));
    }
    let occurred_at = request.occurred_at.unwrap_or(now);
    if occurred_at.millis() > now.millis() + ALLOWED_CLOCK_SKEW_MILLIS {
        return Err(Error::invalid("occurred_at", "is in the future"));
    }
    if let Some(linked) = &request.input.linked_referral_id {
        if linked == &referral.id {
            return Err(Error::invalid(
                "linked_referral_id",
                "must name the new referral, not this one",
            ));
        }
        let other = tx.referral(linked).await?;
        if other.is_none_or(|other| other.case_id != referral.case_id) {
            return Err(Error::invalid(
                "linked_referral_id",
                format!("no referral {linked} on the same case"),
            ));
        }
    }
    let party = party(caller, &referral);
    let state = apply(
        &referral.state,
        party,
        &request.input,
        &caller.id,
        occurred_at,
    )
    .map_err(transition_error)?;
    if request.input.action == ReferralAction::CloseWithReason {
        let step = next_step(tx, &referral).await?;
        let closed = close_with_reason(
            &referral.state,
            party,
            step.as_ref(),
            &request.input,
            &caller.id,
            occurred_at,
        )
        .map_err(transition_error)?;
        tx.record_closed_with_reason(&referral.id, &closed).await?;
        referral.closed_with_reason = Some(closed);
    } else {
        tx.update_referral_state(&referral.id, &state).await?;
    }
    let event = ReferralEvent {
        id: EventId::generate(),
        referral_id: referral.id.clone(),
        case_id: referral.case_id.clone(),
        kind: ReferralEventKind::Action(request.input.action),
        actor_agency: Some(caller.id.clone()),
        actor_staff: Some(request.staff),
        occurred_at,
        recorded_at: now,
        reason_code: request.input.reason_code.clone(),
        reason_text: referral
            .closed_with_reason
            .as_ref()
            .filter(|_| request.input.action == ReferralAction::CloseWithReason)
            .and_then(|closed| closed.text.clone()),
        not_connected_reason: request.input.not_connected_reason,
        note: request.note,
        reason_detail: request.reason_detail,
        delivery: state.delivery,
        response: state.response,
        connection: state.connection,
    };
    tx.insert_referral_event(&event).await?;
    // Everyone else on the referral hears of it: the other party, and the sender when the
    // coordinator acted in its place.
    let to_tell: Vec<_> = [referral.from_agency.clone(), referral.to_agency.clone()]
        .into_iter()
        .filter(|agency| agency != &caller.id)
        .collect();
    notify(
        tx,
        to_tell,
        FeedEventKind::ReferralUpdated,
        FeedAbout {
            case_id: Some(referral.case_id.clone()),
            referral_id: Some(referral.id.clone()),
            note_id: None,
            referral_event_id: Some(event.id.clone()),
        },
        now,
    )
    .await?;
    referral.state = state;
    Ok((referral, event))
}

/// The next step already taken after a referral's confirmed "did not connect", if any: its
/// close with reason, or a referral sent on the case after the confirmation.
pub async fn next_step(
    tx: &mut dyn Transaction,
    referral: &Referral,
) -> Result<Option<NextStep>, Error> {
    if let Some(closed) = &referral.closed_with_reason {
        return Ok(Some(NextStep::ClosedWithReason(closed.clone())));
    }
    let Some(confirmed_at) = referral.state.confirmed_at else {
        return Ok(None);
    };
    let re_referred = tx
        .case_referrals(&referral.case_id)
        .await?
        .iter()
        .any(|other| other.sent_at > confirmed_at);
    Ok(re_referred.then_some(NextStep::ReReferred))
}

/// Whether a referral's family waits for a next step: a confirmed "did not connect" (not
/// referred elsewhere) with neither a close with reason nor a referral on the case since.
pub async fn awaits_next_step(
    tx: &mut dyn Transaction,
    referral: &Referral,
) -> Result<bool, Error> {
    Ok(asks_for_next_step(&referral.state) && next_step(tx, referral).await?.is_none())
}

/// Whether the consent a referral relied on has since been withdrawn.
pub async fn consent_withdrawn(
    tx: &mut dyn Transaction,
    referral: &Referral,
) -> Result<bool, Error> {
    match &referral.consent_id {
        Some(id) => Ok(tx
            .consent(id)
            .await?
            .is_some_and(|consent| consent.withdrawn_at.is_some())),
        None => Ok(false),
    }
}

pub async fn list_referrals(
    tx: &mut dyn Transaction,
    query: &ReferralQuery<'_>,
) -> Result<Vec<Referral>, Error> {
    Ok(tx.agency_referrals(query).await?)
}
