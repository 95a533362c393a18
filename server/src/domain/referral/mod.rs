//! Referrals: the three independent layers (delivery, response, connection), the rules that move
//! them, and the four timers (deliver-by, respond-by, connect-by, confirm-by) that watch them.

use super::{AgencyId, ReferralId, Timestamp};

// The deadline policy and the timers' rules live in `deadlines`; re-exported so that callers keep
// importing them from here.
pub use super::deadlines::{
    DeadlineError, DeadlineOverrides, DeadlinePolicy, Deadlines, UrgencyDeadlines, apply_overrides,
    due_soon, overdue, pending_timers, responsible_party,
};

/// Defines a closed set of states with snake_case storage codes, `ALL`, `code` and `from_code`.
macro_rules! coded_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: [Self; [$($code),+].len()] = [$(Self::$variant),+];

            /// The code stored in the database and shown in messages.
            pub fn code(self) -> &'static str {
                match self {
                    $(Self::$variant => $code),+
                }
            }

            pub fn from_code(code: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|v| v.code() == code)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

coded_enum!(
    /// Delivery layer: has the recipient's system received the referral?
    DeliveryState {
        /// Stored by the hub, not yet acknowledged by the recipient's system.
        Sent => "sent",
        /// The recipient's system acknowledged receipt.
        Delivered => "delivered",
    }
);

coded_enum!(
    /// Response layer: what the recipient does with the request (the sender may cancel).
    ResponseState {
        Requested => "requested",
        Accepted => "accepted",
        Declined => "declined",
        InProgress => "in_progress",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

coded_enum!(
    /// Connection layer: did the family actually reach the service (つながったか)?
    ConnectionState {
        NotUpdated => "not_updated",
        ContactAttempted => "contact_attempted",
        Connected => "connected",
        NotConnected => "not_connected",
    }
);

coded_enum!(
    /// Why a family did not connect with the service.
    NotConnectedReason {
        CouldNotContact => "could_not_contact",
        DeclinedByFamily => "declined_by_family",
        NotEligible => "not_eligible",
        NoCapacity => "no_capacity",
        Moved => "moved",
        /// The family was referred on; the new referral is linked.
        ReferredElsewhere => "referred_elsewhere",
    }
);

coded_enum!(
    /// What an agency does to a referral. Each action belongs to one party and one layer.
    ReferralAction {
        AcknowledgeDelivery => "acknowledge_delivery",
        Accept => "accept",
        Decline => "decline",
        Start => "start",
        Complete => "complete",
        Fail => "fail",
        Cancel => "cancel",
        RecordContactAttempt => "record_contact_attempt",
        ReportConnected => "report_connected",
        ReportNotConnected => "report_not_connected",
        Confirm => "confirm",
        CloseWithReason => "close_with_reason",
    }
);

coded_enum!(
    /// Why the family's need is closed after a confirmed "did not connect", instead of a new
    /// referral. Coded, because it is stored in the clear; details go in a sealed note.
    CloseReason {
        /// The family needs no further support from the network.
        NoFurtherSupportNeeded => "no_further_support_needed",
        /// The family declined every support offered.
        FamilyDeclinedAllSupport => "family_declined_all_support",
        /// The family moved out of the municipality (the new municipality was informed).
        MovedOut => "moved_out",
        /// The family is supported by a service outside this network.
        SupportedOtherwise => "supported_otherwise",
    }
);

coded_enum!(
    /// The four deadlines of a referral, one per step of the handoff.
    TimerKind {
        DeliverBy => "deliver_by",
        RespondBy => "respond_by",
        ConnectBy => "connect_by",
        ConfirmBy => "confirm_by",
    }
);

impl ReferralAction {
    /// The action as an English verb phrase, for refusal messages.
    pub fn phrase(self) -> &'static str {
        match self {
            Self::AcknowledgeDelivery => "acknowledge delivery of the referral",
            Self::Accept => "accept the referral",
            Self::Decline => "decline the referral",
            Self::Start => "start work on the referral",
            Self::Complete => "complete the referral",
            Self::Fail => "mark the referral failed",
            Self::Cancel => "cancel the referral",
            Self::RecordContactAttempt => "record a contact attempt",
            Self::ReportConnected => "report the family connected",
            Self::ReportNotConnected => "report the family not connected",
            Self::Confirm => "confirm the handoff",
            Self::CloseWithReason => "close the family's need with a reason",
        }
    }

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

    /// Whether the action gives a reason in the clear (a code, a not-connected reason, a short
    /// note), so that a sealed detail of it may go along for the law's review.
    pub fn gives_reason(self) -> bool {
        matches!(
            self,
            Self::Decline
                | Self::Fail
                | Self::Cancel
                | Self::ReportNotConnected
                | Self::CloseWithReason
        )
    }

    fn required_party(self) -> &'static str {
        match self {
            Self::Cancel | Self::Confirm | Self::CloseWithReason => {
                "the sender or the municipality's coordinator"
            }
            _ => "the recipient",
        }
    }
}

/// The role the acting agency plays for this referral (computed by the caller of these rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Party {
    Sender,
    Recipient,
    /// The coordinator of the case's municipality, when it is neither sender nor recipient.
    Coordinator,
    Other,
}

impl Party {
    pub fn code(self) -> &'static str {
        match self {
            Self::Sender => "sender",
            Self::Recipient => "recipient",
            Self::Coordinator => "coordinator",
            Self::Other => "other",
        }
    }
}

/// The three layers of one referral, with the time each last moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralState {
    pub delivery: DeliveryState,
    pub delivered_at: Option<Timestamp>,
    pub response: ResponseState,
    pub responded_at: Option<Timestamp>,
    /// The reason code of a decline, failure or cancellation.
    pub response_reason: Option<String>,
    pub connection: ConnectionState,
    pub connection_updated_at: Option<Timestamp>,
    pub contact_attempts: u32,
    pub not_connected_reason: Option<NotConnectedReason>,
    /// The referral the family was passed on to (reason `referred_elsewhere`).
    pub linked_referral_id: Option<ReferralId>,
    pub confirmed_at: Option<Timestamp>,
    pub confirmed_by: Option<AgencyId>,
}

impl Default for ReferralState {
    fn default() -> Self {
        Self::new()
    }
}

impl ReferralState {
    /// A referral just sent: sent, requested, not updated.
    pub fn new() -> Self {
        Self {
            delivery: DeliveryState::Sent,
            delivered_at: None,
            response: ResponseState::Requested,
            responded_at: None,
            response_reason: None,
            connection: ConnectionState::NotUpdated,
            connection_updated_at: None,
            contact_attempts: 0,
            not_connected_reason: None,
            linked_referral_id: None,
            confirmed_at: None,
            confirmed_by: None,
        }
    }

    /// Whether nothing more is expected of anyone: confirmed, cancelled, or declined. A declined
    /// referral whose recipient reported "not connected" is open again until that report is
    /// confirmed, because the sender still has to see it. Exactly when `pending_timers` is empty.
    pub fn is_closed(&self) -> bool {
        self.confirmed_at.is_some()
            || self.response == ResponseState::Cancelled
            || (self.response == ResponseState::Declined && !self.outcome_reported())
    }

    /// The recipient has said whether the family connected.
    pub(crate) fn outcome_reported(&self) -> bool {
        matches!(
            self.connection,
            ConnectionState::Connected | ConnectionState::NotConnected
        )
    }

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

/// One action as requested, before the rules have looked at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionInput {
    pub action: ReferralAction,
    /// Required for decline, fail and cancel; recorded on the event for any action.
    pub reason_code: Option<String>,
    /// Required for, and only allowed with, report-not-connected.
    pub not_connected_reason: Option<NotConnectedReason>,
    /// Required for, and only allowed with, not-connected reason `referred_elsewhere`.
    pub linked_referral_id: Option<ReferralId>,
    /// A short clear-text note to the reason; only with close-with-reason.
    pub reason_text: Option<String>,
}

impl ActionInput {
    /// The action with no reason or link.
    pub fn new(action: ReferralAction) -> Self {
        Self {
            action,
            reason_code: None,
            not_connected_reason: None,
            linked_referral_id: None,
            reason_text: None,
        }
    }
}

/// Why an action was refused. Every message says what would have to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("only {required} may {}", .action.phrase())]
    WrongParty {
        action: ReferralAction,
        required: &'static str,
    },
    #[error(
        "cannot {} while the {layer} is {from}{}",
        .action.phrase(),
        transition_hint(*.action, layer, from)
    )]
    InvalidTransition {
        action: ReferralAction,
        layer: &'static str,
        from: &'static str,
    },
    #[error("cannot {}: {field} is required", .action.phrase())]
    MissingReason {
        action: ReferralAction,
        field: &'static str,
    },
    #[error("cannot {}: {field} {}", .action.phrase(), unexpected_field_hint(field))]
    UnexpectedField {
        action: ReferralAction,
        field: &'static str,
    },
    #[error("cannot {}: the referral is closed ({state})", .action.phrase())]
    Closed {
        action: ReferralAction,
        /// `confirmed`, `cancelled` or `declined`.
        state: &'static str,
    },
    #[error("cannot {}: {why}", .action.phrase())]
    NoNextStepDue {
        action: ReferralAction,
        /// Why this referral does not wait for a next step, or which one it already has.
        why: String,
    },
    #[error(
        "cannot {}: reason_code {code:?} is not one of {}",
        .action.phrase(),
        close_reason_codes()
    )]
    UnknownReason {
        action: ReferralAction,
        code: String,
    },
}

/// The close reasons, for messages.
pub fn close_reason_codes() -> String {
    CloseReason::ALL.map(CloseReason::code).join(", ")
}

/// The second half of an invalid-transition message: what has to happen first, or why never.
fn transition_hint(action: ReferralAction, layer: &str, from: &str) -> &'static str {
    use ReferralAction as A;
    match (action, layer, from) {
        (_, "delivery", _) => ": it was already delivered",
        (A::Accept | A::Decline, _, _) => ": the recipient has already responded",
        (A::Confirm, "connection", _) => {
            ": the recipient must first report whether the family connected"
        }
        (_, "connection", _) => ": the outcome was already reported",
        (A::ReportNotConnected, _, "requested") => ": the recipient must accept or decline first",
        (A::Complete, _, "requested") => ": the referral must be accepted and started first",
        (_, _, "requested") => ": the referral must be accepted first",
        (A::Complete, _, "accepted") => ": work must be started first",
        (A::Start, _, "in_progress") => ": work has already started",
        (A::RecordContactAttempt | A::ReportConnected, _, "failed") => {
            ": the referral failed; report the family not connected instead"
        }
        (_, _, "completed" | "failed") => ": the referral has already ended",
        _ => "",
    }
}

fn unexpected_field_hint(field: &str) -> &'static str {
    match field {
        "not_connected_reason" => "is only given when reporting the family not connected",
        "linked_referral_id" => "is only given with the not-connected reason referred_elsewhere",
        "reason_text" => "is only given when closing the family's need with a reason",
        _ => "does not apply to this action",
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

/// What followed a confirmed "did not connect": the family was referred again on the case, or
/// its need was closed with a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// A new referral was sent on the case after the confirmation.
    ReReferred,
    ClosedWithReason(ClosedWithReason),
}

/// A family's need closed with a reason after a confirmed "did not connect".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedWithReason {
    pub reason: CloseReason,
    /// A short clear-text note (at most 200 characters, never a name).
    pub text: Option<String>,
    pub at: Timestamp,
    pub by: AgencyId,
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

/// Referral states built by the transition function itself, for the tests of this module and
/// of the deadline rules.
#[cfg(test)]
pub(crate) mod test_states;

#[cfg(test)]
mod tests;
