//! Referral states built by the transition function itself, for the tests of the transitions
//! and of the deadline rules.

use super::*;

pub(crate) const HOUR: i64 = 3_600_000;

pub(crate) fn at(hours: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + hours * HOUR)
}

pub(crate) fn me() -> AgencyId {
    AgencyId::parse("aoba-hoken").unwrap()
}

pub(crate) fn act(state: &ReferralState, party: Party, action: ReferralAction) -> ReferralState {
    apply(state, party, &ActionInput::new(action), &me(), at(1)).unwrap()
}

pub(crate) fn with_reason(action: ReferralAction, reason: &str) -> ActionInput {
    ActionInput {
        reason_code: Some(reason.to_owned()),
        ..ActionInput::new(action)
    }
}

pub(crate) fn not_connected(reason: NotConnectedReason) -> ActionInput {
    ActionInput {
        not_connected_reason: Some(reason),
        ..ActionInput::new(ReferralAction::ReportNotConnected)
    }
}

pub(crate) fn accepted() -> ReferralState {
    act(
        &ReferralState::new(),
        Party::Recipient,
        ReferralAction::Accept,
    )
}

pub(crate) fn in_progress() -> ReferralState {
    act(&accepted(), Party::Recipient, ReferralAction::Start)
}

pub(crate) fn completed() -> ReferralState {
    act(&in_progress(), Party::Recipient, ReferralAction::Complete)
}

pub(crate) fn connected() -> ReferralState {
    act(
        &accepted(),
        Party::Recipient,
        ReferralAction::ReportConnected,
    )
}

pub(crate) fn declined() -> ReferralState {
    apply(
        &ReferralState::new(),
        Party::Recipient,
        &with_reason(ReferralAction::Decline, "no_capacity"),
        &me(),
        at(1),
    )
    .unwrap()
}

pub(crate) fn cancelled() -> ReferralState {
    apply(
        &ReferralState::new(),
        Party::Sender,
        &with_reason(ReferralAction::Cancel, "family_moved"),
        &me(),
        at(1),
    )
    .unwrap()
}

pub(crate) fn confirmed() -> ReferralState {
    act(&connected(), Party::Sender, ReferralAction::Confirm)
}
