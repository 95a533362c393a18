//! The state machine of a referral: which party may take which action in which state, how the
//! three layers move, and the family's next step after a confirmed "did not connect".

use super::{
    ActionInput, AgencyId, CloseReason, ClosedWithReason, ConnectionState, DeliveryState, NextStep,
    NotConnectedReason, Party, ReferralAction, ReferralState, ResponseState, Timestamp,
    TransitionError,
};

impl ReferralAction {
    /// Who may take this action. The sender asked for the help, so it may withdraw the request and
    /// must close the loop; everything about providing the help is the recipient's to say. The
    /// municipality's coordinator stands in for the sender, so a handoff never hangs on one agency.
    fn allowed(self, party: Party) -> bool {
        match self {
            Self::Cancel | Self::Confirm | Self::CloseWithReason => {
                matches!(party, Party::Sender | Party::Coordinator)
            }
            _ => party == Party::Recipient,
        }
    }
}

impl ReferralState {
    /// Why no action may be taken any more, if so. A declined referral still takes the one
    /// report that matters to the sender (why the family did not connect) and its confirmation.
    fn closed_by(&self, action: ReferralAction) -> Option<&'static str> {
        if self.response == ResponseState::Cancelled {
            Some("cancelled")
        } else if action == ReferralAction::CloseWithReason {
            // It comes after the handoff closed; `awaits_no_next_step` says when it does not fit.
            None
        } else if self.confirmed_at.is_some() {
            Some("confirmed")
        } else if self.response == ResponseState::Declined
            && !matches!(
                action,
                ReferralAction::ReportNotConnected | ReferralAction::Confirm
            )
        {
            Some("declined")
        } else {
            None
        }
    }
}

/// Applies an action by `party` at `at` to the state; returns the new state (the input is
/// unchanged on error). `actor` is recorded as the confirmer.
///
/// Checks run from the most fundamental to the most detailed: who may act, whether the referral
/// is still open, whether the layers allow the move, then the fields the action needs.
pub fn apply(
    state: &ReferralState,
    party: Party,
    input: &ActionInput,
    actor: &AgencyId,
    at: Timestamp,
) -> Result<ReferralState, TransitionError> {
    use ConnectionState as C;
    use ResponseState as R;

    let action = input.action;
    if !action.allowed(party) {
        return Err(TransitionError::WrongParty {
            action,
            required: action.required_party(),
        });
    }
    if let Some(closed) = state.closed_by(action) {
        return Err(TransitionError::Closed {
            action,
            state: closed,
        });
    }

    let invalid = |layer: &'static str, from: &'static str| TransitionError::InvalidTransition {
        action,
        layer,
        from,
    };
    let response_invalid = || invalid("response", state.response.code());
    let connection_invalid = || invalid("connection", state.connection.code());
    let connection_open = matches!(state.connection, C::NotUpdated | C::ContactAttempted);

    let mut next = state.clone();
    match action {
        ReferralAction::AcknowledgeDelivery => {
            if state.delivery == DeliveryState::Delivered {
                return Err(invalid("delivery", state.delivery.code()));
            }
            mark_delivered(&mut next, at);
        }
        ReferralAction::Accept | ReferralAction::Decline => {
            if state.response != R::Requested {
                return Err(response_invalid());
            }
            if action == ReferralAction::Decline {
                next.response = R::Declined;
                next.response_reason = Some(required_reason(input)?);
            } else {
                next.response = R::Accepted;
            }
            next.responded_at = Some(at);
            // An answer proves receipt even if the recipient's system never acknowledged it.
            mark_delivered(&mut next, at);
        }
        ReferralAction::Start => {
            if state.response != R::Accepted {
                return Err(response_invalid());
            }
            next.response = R::InProgress;
            next.responded_at = Some(at);
        }
        ReferralAction::Complete => {
            if state.response != R::InProgress {
                return Err(response_invalid());
            }
            next.response = R::Completed;
            next.responded_at = Some(at);
        }
        ReferralAction::Fail => {
            if !matches!(state.response, R::Accepted | R::InProgress) {
                return Err(response_invalid());
            }
            next.response = R::Failed;
            next.response_reason = Some(required_reason(input)?);
            next.responded_at = Some(at);
        }
        ReferralAction::Cancel => {
            if !matches!(state.response, R::Requested | R::Accepted | R::InProgress) {
                return Err(response_invalid());
            }
            next.response = R::Cancelled;
            next.response_reason = Some(required_reason(input)?);
            next.responded_at = Some(at);
        }
        ReferralAction::RecordContactAttempt | ReferralAction::ReportConnected => {
            // Only a service that took the family on can reach or connect with it.
            if !matches!(state.response, R::Accepted | R::InProgress | R::Completed) {
                return Err(response_invalid());
            }
            if !connection_open {
                return Err(connection_invalid());
            }
            if action == ReferralAction::RecordContactAttempt {
                next.connection = C::ContactAttempted;
                next.contact_attempts = state.contact_attempts.saturating_add(1);
            } else {
                next.connection = C::Connected;
            }
            next.connection_updated_at = Some(at);
        }
        ReferralAction::ReportNotConnected => {
            // Also after a decline or a failure: the sender needs to know why the family was not
            // reached (no capacity, not eligible, referred elsewhere) to plan the next step.
            if state.response == R::Requested {
                return Err(response_invalid());
            }
            if !connection_open {
                return Err(connection_invalid());
            }
            let reason = input
                .not_connected_reason
                .ok_or(TransitionError::MissingReason {
                    action,
                    field: "not_connected_reason",
                })?;
            match (reason, &input.linked_referral_id) {
                (NotConnectedReason::ReferredElsewhere, None) => {
                    return Err(TransitionError::MissingReason {
                        action,
                        field: "linked_referral_id",
                    });
                }
                (NotConnectedReason::ReferredElsewhere, Some(_)) | (_, None) => {}
                (_, Some(_)) => {
                    return Err(TransitionError::UnexpectedField {
                        action,
                        field: "linked_referral_id",
                    });
                }
            }
            next.connection = C::NotConnected;
            next.not_connected_reason = Some(reason);
            next.linked_referral_id = input.linked_referral_id.clone();
            next.connection_updated_at = Some(at);
        }
        ReferralAction::Confirm => {
            if !state.outcome_reported() {
                return Err(connection_invalid());
            }
            next.confirmed_at = Some(at);
            next.confirmed_by = Some(actor.clone());
        }
        ReferralAction::CloseWithReason => {
            // The layers do not move: the handoff is already closed. What is recorded is the
            // next step for the family (see `close_with_reason`).
            if let Some(why) = awaits_no_next_step(state) {
                return Err(TransitionError::NoNextStepDue {
                    action,
                    why: why.to_owned(),
                });
            }
            close_reason(input)?;
        }
    }
    if action != ReferralAction::CloseWithReason && input.reason_text.is_some() {
        return Err(TransitionError::UnexpectedField {
            action,
            field: "reason_text",
        });
    }

    if action != ReferralAction::ReportNotConnected {
        // These only mean something with a not-connected report; silently dropping them would
        // hide a client bug.
        if input.not_connected_reason.is_some() {
            return Err(TransitionError::UnexpectedField {
                action,
                field: "not_connected_reason",
            });
        }
        if input.linked_referral_id.is_some() {
            return Err(TransitionError::UnexpectedField {
                action,
                field: "linked_referral_id",
            });
        }
    }
    Ok(next)
}

/// Whether a referral's state asks for a next step for the family (a confirmed "did not
/// connect", not referred elsewhere), whether or not one was taken since.
pub fn asks_for_next_step(state: &ReferralState) -> bool {
    awaits_no_next_step(state).is_none()
}

/// Why a referral waits for no next step, if it does not: only a confirmed "did not connect"
/// that did not already pass the family on (referred_elsewhere) leaves a family without a service.
fn awaits_no_next_step(state: &ReferralState) -> Option<&'static str> {
    if state.connection != ConnectionState::NotConnected {
        Some(
            "only a confirmed \"did not connect\" asks for a next step, and this family did not get that report",
        )
    } else if state.confirmed_at.is_none() {
        Some("the not-connected report must be confirmed first (`confirm`)")
    } else if state.not_connected_reason == Some(NotConnectedReason::ReferredElsewhere) {
        Some("the family was referred elsewhere; that referral is the next step")
    } else {
        None
    }
}

/// The close reason of the input, parsed; a missing or unknown code is refused.
fn close_reason(input: &ActionInput) -> Result<CloseReason, TransitionError> {
    let code = required_reason(input)?;
    CloseReason::from_code(&code).ok_or(TransitionError::UnknownReason {
        action: input.action,
        code,
    })
}

/// Records the next step "close with reason" for a confirmed not-connected referral: who may
/// (the sender or the municipality's coordinator), when (confirmed not connected, not referred
/// elsewhere, no next step yet) and with what (a close reason code, an optional short note).
pub fn close_with_reason(
    state: &ReferralState,
    party: Party,
    next_step: Option<&NextStep>,
    input: &ActionInput,
    actor: &AgencyId,
    at: Timestamp,
) -> Result<ClosedWithReason, TransitionError> {
    let action = ReferralAction::CloseWithReason;
    let input = &ActionInput {
        action,
        ..input.clone()
    };
    // Party, state and fields, in the order `apply` checks them.
    apply(state, party, input, actor, at)?;
    if let Some(step) = next_step {
        return Err(TransitionError::NoNextStepDue {
            action,
            why: match step {
                NextStep::ReReferred => "a next step was already taken: a new referral was sent \
                                         on the case after the confirmation"
                    .to_owned(),
                NextStep::ClosedWithReason(closed) => format!(
                    "a next step was already taken: closed with reason {} by {}",
                    closed.reason, closed.by
                ),
            },
        });
    }
    Ok(ClosedWithReason {
        reason: close_reason(input)?,
        text: input
            .reason_text
            .as_deref()
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_owned),
        at,
        by: actor.clone(),
    })
}

fn mark_delivered(state: &mut ReferralState, at: Timestamp) {
    if state.delivery == DeliveryState::Sent {
        state.delivery = DeliveryState::Delivered;
        state.delivered_at = Some(at);
    }
}

/// The reason code of the action; a blank one counts as missing.
fn required_reason(input: &ActionInput) -> Result<String, TransitionError> {
    match &input.reason_code {
        Some(code) if !code.trim().is_empty() => Ok(code.clone()),
        _ => Err(TransitionError::MissingReason {
            action: input.action,
            field: "reason_code",
        }),
    }
}
