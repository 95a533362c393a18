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
pub(crate) mod test_states {
    use super::*;

    pub(crate) const HOUR: i64 = 3_600_000;

    pub(crate) fn at(hours: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + hours * HOUR)
    }

    pub(crate) fn me() -> AgencyId {
        AgencyId::parse("aoba-hoken").unwrap()
    }

    pub(crate) fn act(
        state: &ReferralState,
        party: Party,
        action: ReferralAction,
    ) -> ReferralState {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_states::*;

    fn try_act(
        state: &ReferralState,
        party: Party,
        action: ReferralAction,
    ) -> Result<ReferralState, TransitionError> {
        apply(state, party, &ActionInput::new(action), &me(), at(1))
    }

    fn confirmed_not_connected(reason: NotConnectedReason) -> ReferralState {
        let input = ActionInput {
            linked_referral_id: (reason == NotConnectedReason::ReferredElsewhere)
                .then(ReferralId::generate),
            ..not_connected(reason)
        };
        let reported = apply(&accepted(), Party::Recipient, &input, &me(), at(1)).unwrap();
        act(&reported, Party::Sender, ReferralAction::Confirm)
    }

    fn close_input(reason: &str, text: Option<&str>) -> ActionInput {
        ActionInput {
            reason_text: text.map(str::to_owned),
            ..with_reason(ReferralAction::CloseWithReason, reason)
        }
    }

    #[test]
    fn a_confirmed_not_connected_referral_is_closed_with_a_reason_by_the_sender_or_coordinator() {
        let state = confirmed_not_connected(NotConnectedReason::CouldNotContact);
        for party in [Party::Sender, Party::Coordinator] {
            let closed = close_with_reason(
                &state,
                party,
                None,
                &close_input("moved_out", Some(" 転出先の自治体へ連絡済み ")),
                &me(),
                at(5),
            )
            .unwrap();
            assert_eq!(closed.reason, CloseReason::MovedOut);
            assert_eq!(closed.text.as_deref(), Some("転出先の自治体へ連絡済み"));
            assert_eq!((closed.at, &closed.by), (at(5), &me()));
        }
        // The layers do not move.
        let input = close_input("no_further_support_needed", None);
        assert_eq!(
            apply(&state, Party::Sender, &input, &me(), at(5)).unwrap(),
            state
        );
    }

    #[test]
    fn only_the_sender_or_coordinator_may_close_with_a_reason() {
        let state = confirmed_not_connected(NotConnectedReason::CouldNotContact);
        for party in [Party::Recipient, Party::Other] {
            let err = close_with_reason(
                &state,
                party,
                None,
                &close_input("moved_out", None),
                &me(),
                at(5),
            )
            .unwrap_err();
            assert!(matches!(err, TransitionError::WrongParty { .. }), "{err}");
        }
    }

    #[test]
    fn closing_with_a_reason_is_refused_unless_a_confirmed_not_connected_handoff_waits_for_a_next_step()
     {
        let unconfirmed = apply(
            &accepted(),
            Party::Recipient,
            &not_connected(NotConnectedReason::CouldNotContact),
            &me(),
            at(1),
        )
        .unwrap();
        let cases = [
            (accepted(), "did not connect"),
            (confirmed(), "did not connect"),
            (unconfirmed, "confirmed first"),
            (
                confirmed_not_connected(NotConnectedReason::ReferredElsewhere),
                "referred elsewhere",
            ),
        ];
        for (state, why) in cases {
            assert_no_next_step_due(&state, Party::Sender, None, why);
        }
    }

    /// Closing `state` with a reason is refused as no next step being due, saying `why`.
    fn assert_no_next_step_due(
        state: &ReferralState,
        party: Party,
        step: Option<&NextStep>,
        why: &str,
    ) {
        let err = close_with_reason(
            state,
            party,
            step,
            &close_input("supported_otherwise", None),
            &me(),
            at(6),
        )
        .unwrap_err();
        assert!(
            matches!(err, TransitionError::NoNextStepDue { .. }),
            "{err}"
        );
        assert!(err.to_string().contains(why), "{err}");
    }

    #[test]
    fn a_second_next_step_is_refused_naming_the_first() {
        let state = confirmed_not_connected(NotConnectedReason::DeclinedByFamily);
        let first = close_with_reason(
            &state,
            Party::Sender,
            None,
            &close_input("moved_out", None),
            &me(),
            at(5),
        )
        .unwrap();
        let steps = [
            (
                NextStep::ClosedWithReason(first),
                "closed with reason moved_out by aoba-hoken",
            ),
            (NextStep::ReReferred, "a new referral was sent"),
        ];
        for (step, why) in steps {
            assert_no_next_step_due(&state, Party::Coordinator, Some(&step), why);
        }
    }

    #[test]
    fn a_close_reason_must_be_one_of_the_codes_and_its_text_goes_with_nothing_else() {
        let state = confirmed_not_connected(NotConnectedReason::CouldNotContact);
        let err = close_with_reason(
            &state,
            Party::Sender,
            None,
            &close_input("family_gone", None),
            &me(),
            at(5),
        )
        .unwrap_err();
        assert!(
            matches!(err, TransitionError::UnknownReason { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("no_further_support_needed, family_declined_all_support, moved_out, supported_otherwise"), "{err}");
        let err = close_with_reason(
            &state,
            Party::Sender,
            None,
            &ActionInput::new(ReferralAction::CloseWithReason),
            &me(),
            at(5),
        )
        .unwrap_err();
        assert_eq!(
            err,
            TransitionError::MissingReason {
                action: ReferralAction::CloseWithReason,
                field: "reason_code"
            }
        );
        let err = apply(
            &ReferralState::new(),
            Party::Sender,
            &ActionInput {
                reason_text: Some("転出".to_owned()),
                ..with_reason(ReferralAction::Cancel, "family_moved")
            },
            &me(),
            at(1),
        )
        .unwrap_err();
        assert_eq!(
            err,
            TransitionError::UnexpectedField {
                action: ReferralAction::Cancel,
                field: "reason_text"
            }
        );
    }

    #[test]
    fn only_the_actions_that_give_a_reason_take_its_sealed_detail() {
        let giving: Vec<_> = ReferralAction::ALL
            .into_iter()
            .filter(|a| a.gives_reason())
            .map(ReferralAction::code)
            .collect();
        assert_eq!(
            giving,
            [
                "decline",
                "fail",
                "cancel",
                "report_not_connected",
                "close_with_reason"
            ]
        );
    }

    #[test]
    fn codes_round_trip_for_every_state_action_and_timer() {
        for v in DeliveryState::ALL {
            assert_eq!(DeliveryState::from_code(v.code()), Some(v));
        }
        for v in ResponseState::ALL {
            assert_eq!(ResponseState::from_code(v.code()), Some(v));
        }
        for v in ConnectionState::ALL {
            assert_eq!(ConnectionState::from_code(v.code()), Some(v));
        }
        for v in NotConnectedReason::ALL {
            assert_eq!(NotConnectedReason::from_code(v.code()), Some(v));
        }
        for v in ReferralAction::ALL {
            assert_eq!(ReferralAction::from_code(v.code()), Some(v));
        }
        for v in TimerKind::ALL {
            assert_eq!(TimerKind::from_code(v.code()), Some(v));
        }
        assert_eq!(ResponseState::InProgress.code(), "in_progress");
        assert_eq!(
            NotConnectedReason::ReferredElsewhere.code(),
            "referred_elsewhere"
        );
        assert_eq!(ResponseState::from_code("InProgress"), None);
        assert_eq!(ReferralAction::ALL.len(), 12);
        for v in CloseReason::ALL {
            assert_eq!(CloseReason::from_code(v.code()), Some(v));
        }
    }

    #[test]
    fn a_new_referral_is_sent_requested_and_not_updated() {
        let state = ReferralState::new();
        assert_eq!(state.delivery, DeliveryState::Sent);
        assert_eq!(state.response, ResponseState::Requested);
        assert_eq!(state.connection, ConnectionState::NotUpdated);
        assert_eq!(state.contact_attempts, 0);
        assert!(!state.is_closed());
        assert_eq!(state, ReferralState::default());
    }

    #[test]
    fn acknowledging_delivery_marks_it_delivered_at_that_time() {
        let state = apply(
            &ReferralState::new(),
            Party::Recipient,
            &ActionInput::new(ReferralAction::AcknowledgeDelivery),
            &me(),
            at(2),
        )
        .unwrap();
        assert_eq!(state.delivery, DeliveryState::Delivered);
        assert_eq!(state.delivered_at, Some(at(2)));
        assert_eq!(state.response, ResponseState::Requested);
        assert_eq!(state.responded_at, None);
    }

    #[test]
    fn acknowledging_delivery_twice_is_refused() {
        let delivered = act(
            &ReferralState::new(),
            Party::Recipient,
            ReferralAction::AcknowledgeDelivery,
        );
        let err = try_act(
            &delivered,
            Party::Recipient,
            ReferralAction::AcknowledgeDelivery,
        )
        .unwrap_err();
        assert_eq!(
            err,
            TransitionError::InvalidTransition {
                action: ReferralAction::AcknowledgeDelivery,
                layer: "delivery",
                from: "delivered",
            }
        );
        assert!(err.to_string().contains("already delivered"), "{err}");
    }

    #[test]
    fn accepting_also_marks_an_unacknowledged_referral_delivered() {
        let state = apply(
            &ReferralState::new(),
            Party::Recipient,
            &ActionInput::new(ReferralAction::Accept),
            &me(),
            at(3),
        )
        .unwrap();
        assert_eq!(state.response, ResponseState::Accepted);
        assert_eq!(state.responded_at, Some(at(3)));
        assert_eq!(state.delivery, DeliveryState::Delivered);
        assert_eq!(state.delivered_at, Some(at(3)));
    }

    #[test]
    fn accepting_keeps_an_earlier_delivery_time() {
        let delivered = apply(
            &ReferralState::new(),
            Party::Recipient,
            &ActionInput::new(ReferralAction::AcknowledgeDelivery),
            &me(),
            at(1),
        )
        .unwrap();
        let state = apply(
            &delivered,
            Party::Recipient,
            &ActionInput::new(ReferralAction::Accept),
            &me(),
            at(5),
        )
        .unwrap();
        assert_eq!(state.delivered_at, Some(at(1)));
        assert_eq!(state.responded_at, Some(at(5)));
    }

    #[test]
    fn declining_with_a_reason_records_it_and_implies_delivery() {
        let state = declined();
        assert_eq!(state.response, ResponseState::Declined);
        assert_eq!(state.response_reason.as_deref(), Some("no_capacity"));
        assert_eq!(state.responded_at, Some(at(1)));
        assert_eq!(state.delivery, DeliveryState::Delivered);
        assert_eq!(state.delivered_at, Some(at(1)));
        assert!(state.is_closed());
    }

    #[test]
    fn declining_without_a_reason_is_refused() {
        let err = try_act(
            &ReferralState::new(),
            Party::Recipient,
            ReferralAction::Decline,
        )
        .unwrap_err();
        assert_eq!(
            err,
            TransitionError::MissingReason {
                action: ReferralAction::Decline,
                field: "reason_code",
            }
        );
        assert_eq!(
            err.to_string(),
            "cannot decline the referral: reason_code is required"
        );
    }

    #[test]
    fn a_blank_reason_counts_as_missing() {
        let err = apply(
            &ReferralState::new(),
            Party::Recipient,
            &with_reason(ReferralAction::Decline, "  "),
            &me(),
            at(1),
        )
        .unwrap_err();
        assert!(matches!(err, TransitionError::MissingReason { .. }));
    }

    #[test]
    fn accepting_twice_or_after_declining_is_refused() {
        let err = try_act(&accepted(), Party::Recipient, ReferralAction::Accept).unwrap_err();
        assert!(err.to_string().contains("already responded"), "{err}");
        let err = try_act(&accepted(), Party::Recipient, ReferralAction::Decline).unwrap_err();
        assert!(matches!(err, TransitionError::InvalidTransition { .. }));
        let err = try_act(&declined(), Party::Recipient, ReferralAction::Accept).unwrap_err();
        assert_eq!(
            err,
            TransitionError::Closed {
                action: ReferralAction::Accept,
                state: "declined",
            }
        );
    }

    #[test]
    fn starting_and_completing_move_the_response_with_timestamps() {
        let started = apply(
            &accepted(),
            Party::Recipient,
            &ActionInput::new(ReferralAction::Start),
            &me(),
            at(4),
        )
        .unwrap();
        assert_eq!(started.response, ResponseState::InProgress);
        assert_eq!(started.responded_at, Some(at(4)));
        let done = apply(
            &started,
            Party::Recipient,
            &ActionInput::new(ReferralAction::Complete),
            &me(),
            at(9),
        )
        .unwrap();
        assert_eq!(done.response, ResponseState::Completed);
        assert_eq!(done.responded_at, Some(at(9)));
        assert!(!done.is_closed(), "the connection is still to be reported");
    }

    #[test]
    fn starting_before_accepting_is_refused() {
        let err = try_act(
            &ReferralState::new(),
            Party::Recipient,
            ReferralAction::Start,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot start work on the referral while the response is requested: the referral must \
             be accepted first"
        );
        let err = try_act(&in_progress(), Party::Recipient, ReferralAction::Start).unwrap_err();
        assert!(err.to_string().contains("already started"), "{err}");
    }

    #[test]
    fn completing_before_starting_is_refused() {
        let err = try_act(&accepted(), Party::Recipient, ReferralAction::Complete).unwrap_err();
        assert_eq!(
            err,
            TransitionError::InvalidTransition {
                action: ReferralAction::Complete,
                layer: "response",
                from: "accepted",
            }
        );
        assert!(err.to_string().contains("started first"), "{err}");
        let err = try_act(&completed(), Party::Recipient, ReferralAction::Complete).unwrap_err();
        assert!(err.to_string().contains("already ended"), "{err}");
    }

    #[test]
    fn failing_from_accepted_or_in_progress_records_the_reason() {
        for from in [accepted(), in_progress()] {
            let state = apply(
                &from,
                Party::Recipient,
                &with_reason(ReferralAction::Fail, "family_unreachable"),
                &me(),
                at(7),
            )
            .unwrap();
            assert_eq!(state.response, ResponseState::Failed);
            assert_eq!(state.response_reason.as_deref(), Some("family_unreachable"));
            assert_eq!(state.responded_at, Some(at(7)));
        }
    }

    #[test]
    fn failing_without_a_reason_or_before_accepting_is_refused() {
        let err = try_act(&accepted(), Party::Recipient, ReferralAction::Fail).unwrap_err();
        assert!(matches!(
            err,
            TransitionError::MissingReason {
                field: "reason_code",
                ..
            }
        ));
        let err = apply(
            &ReferralState::new(),
            Party::Recipient,
            &with_reason(ReferralAction::Fail, "x"),
            &me(),
            at(1),
        )
        .unwrap_err();
        assert!(matches!(err, TransitionError::InvalidTransition { .. }));
        let err = apply(
            &completed(),
            Party::Recipient,
            &with_reason(ReferralAction::Fail, "x"),
            &me(),
            at(1),
        )
        .unwrap_err();
        assert!(err.to_string().contains("already ended"), "{err}");
    }

    #[test]
    fn the_sender_or_coordinator_may_cancel_an_open_request_with_a_reason() {
        for party in [Party::Sender, Party::Coordinator] {
            for from in [ReferralState::new(), accepted(), in_progress()] {
                let state = apply(
                    &from,
                    party,
                    &with_reason(ReferralAction::Cancel, "family_moved"),
                    &me(),
                    at(6),
                )
                .unwrap();
                assert_eq!(state.response, ResponseState::Cancelled);
                assert_eq!(state.response_reason.as_deref(), Some("family_moved"));
                assert_eq!(state.responded_at, Some(at(6)));
                assert!(state.is_closed());
            }
        }
    }

    #[test]
    fn cancelling_without_a_reason_by_the_recipient_or_after_completion_is_refused() {
        let err = try_act(&accepted(), Party::Sender, ReferralAction::Cancel).unwrap_err();
        assert!(matches!(err, TransitionError::MissingReason { .. }));
        let err = apply(
            &accepted(),
            Party::Recipient,
            &with_reason(ReferralAction::Cancel, "x"),
            &me(),
            at(1),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "only the sender or the municipality's coordinator may cancel the referral"
        );
        let err = apply(
            &completed(),
            Party::Sender,
            &with_reason(ReferralAction::Cancel, "x"),
            &me(),
            at(1),
        )
        .unwrap_err();
        assert!(matches!(err, TransitionError::InvalidTransition { .. }));
    }

    #[test]
    fn accept_by_the_sender_is_refused() {
        let err =
            try_act(&ReferralState::new(), Party::Sender, ReferralAction::Accept).unwrap_err();
        assert_eq!(
            err,
            TransitionError::WrongParty {
                action: ReferralAction::Accept,
                required: "the recipient",
            }
        );
        assert_eq!(
            err.to_string(),
            "only the recipient may accept the referral"
        );
    }

    #[test]
    fn the_coordinator_cannot_act_for_the_recipient() {
        for action in [
            ReferralAction::AcknowledgeDelivery,
            ReferralAction::Accept,
            ReferralAction::Start,
            ReferralAction::ReportConnected,
        ] {
            let err = try_act(&ReferralState::new(), Party::Coordinator, action).unwrap_err();
            assert!(
                matches!(err, TransitionError::WrongParty { .. }),
                "{action}"
            );
        }
    }

    #[test]
    fn another_agency_may_take_no_action_at_all() {
        for action in ReferralAction::ALL {
            let err = try_act(&connected(), Party::Other, action).unwrap_err();
            assert!(
                matches!(err, TransitionError::WrongParty { .. }),
                "{action}"
            );
        }
    }

    #[test]
    fn contact_attempts_are_repeatable_and_counted() {
        let once = apply(
            &accepted(),
            Party::Recipient,
            &ActionInput::new(ReferralAction::RecordContactAttempt),
            &me(),
            at(10),
        )
        .unwrap();
        let twice = apply(
            &once,
            Party::Recipient,
            &ActionInput::new(ReferralAction::RecordContactAttempt),
            &me(),
            at(20),
        )
        .unwrap();
        assert_eq!(once.connection, ConnectionState::ContactAttempted);
        assert_eq!(once.contact_attempts, 1);
        assert_eq!(twice.contact_attempts, 2);
        assert_eq!(twice.connection_updated_at, Some(at(20)));
    }

    #[test]
    fn contact_attempts_are_allowed_in_progress_and_after_completion() {
        for from in [in_progress(), completed()] {
            let state = act(
                &from,
                Party::Recipient,
                ReferralAction::RecordContactAttempt,
            );
            assert_eq!(state.contact_attempts, 1);
        }
    }

    #[test]
    fn a_contact_attempt_before_accepting_or_after_failing_is_refused() {
        let err = try_act(
            &ReferralState::new(),
            Party::Recipient,
            ReferralAction::RecordContactAttempt,
        )
        .unwrap_err();
        assert!(err.to_string().contains("accepted first"), "{err}");
        let failed = apply(
            &accepted(),
            Party::Recipient,
            &with_reason(ReferralAction::Fail, "x"),
            &me(),
            at(1),
        )
        .unwrap();
        let err = try_act(
            &failed,
            Party::Recipient,
            ReferralAction::RecordContactAttempt,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not connected instead"), "{err}");
    }

    #[test]
    fn reporting_connected_after_contact_attempts_keeps_the_count() {
        let tried = act(
            &accepted(),
            Party::Recipient,
            ReferralAction::RecordContactAttempt,
        );
        let state = apply(
            &tried,
            Party::Recipient,
            &ActionInput::new(ReferralAction::ReportConnected),
            &me(),
            at(30),
        )
        .unwrap();
        assert_eq!(state.connection, ConnectionState::Connected);
        assert_eq!(state.connection_updated_at, Some(at(30)));
        assert_eq!(state.contact_attempts, 1);
    }

    #[test]
    fn connected_before_accepted_is_refused() {
        let err = try_act(
            &ReferralState::new(),
            Party::Recipient,
            ReferralAction::ReportConnected,
        )
        .unwrap_err();
        assert_eq!(
            err,
            TransitionError::InvalidTransition {
                action: ReferralAction::ReportConnected,
                layer: "response",
                from: "requested",
            }
        );
        assert_eq!(
            err.to_string(),
            "cannot report the family connected while the response is requested: the referral \
             must be accepted first"
        );
    }

    #[test]
    fn reporting_the_outcome_twice_is_refused() {
        let err = try_act(
            &connected(),
            Party::Recipient,
            ReferralAction::ReportConnected,
        )
        .unwrap_err();
        assert_eq!(
            err,
            TransitionError::InvalidTransition {
                action: ReferralAction::ReportConnected,
                layer: "connection",
                from: "connected",
            }
        );
        let err = apply(
            &connected(),
            Party::Recipient,
            &not_connected(NotConnectedReason::Moved),
            &me(),
            at(1),
        )
        .unwrap_err();
        assert!(err.to_string().contains("already reported"), "{err}");
    }

    #[test]
    fn reporting_not_connected_records_the_reason() {
        let state = apply(
            &accepted(),
            Party::Recipient,
            &not_connected(NotConnectedReason::DeclinedByFamily),
            &me(),
            at(40),
        )
        .unwrap();
        assert_eq!(state.connection, ConnectionState::NotConnected);
        assert_eq!(
            state.not_connected_reason,
            Some(NotConnectedReason::DeclinedByFamily)
        );
        assert_eq!(state.connection_updated_at, Some(at(40)));
        assert_eq!(state.linked_referral_id, None);
    }

    #[test]
    fn reporting_not_connected_is_allowed_after_a_decline_or_a_failure() {
        let failed = apply(
            &in_progress(),
            Party::Recipient,
            &with_reason(ReferralAction::Fail, "x"),
            &me(),
            at(1),
        )
        .unwrap();
        for from in [declined(), failed] {
            let state = apply(
                &from,
                Party::Recipient,
                &not_connected(NotConnectedReason::NoCapacity),
                &me(),
                at(2),
            )
            .unwrap();
            assert_eq!(state.connection, ConnectionState::NotConnected);
            assert!(!state.is_closed(), "the report awaits confirmation");
        }
    }

    #[test]
    fn reporting_not_connected_before_any_response_is_refused() {
        let err = apply(
            &ReferralState::new(),
            Party::Recipient,
            &not_connected(NotConnectedReason::Moved),
            &me(),
            at(1),
        )
        .unwrap_err();
        assert!(err.to_string().contains("accept or decline first"), "{err}");
    }

    #[test]
    fn reporting_not_connected_without_a_reason_is_refused() {
        let err = try_act(
            &accepted(),
            Party::Recipient,
            ReferralAction::ReportNotConnected,
        )
        .unwrap_err();
        assert_eq!(
            err,
            TransitionError::MissingReason {
                action: ReferralAction::ReportNotConnected,
                field: "not_connected_reason",
            }
        );
    }

    #[test]
    fn referred_elsewhere_needs_the_new_referral_and_records_it() {
        let err = apply(
            &accepted(),
            Party::Recipient,
            &not_connected(NotConnectedReason::ReferredElsewhere),
            &me(),
            at(1),
        )
        .unwrap_err();
        assert_eq!(
            err,
            TransitionError::MissingReason {
                action: ReferralAction::ReportNotConnected,
                field: "linked_referral_id",
            }
        );
        let link = ReferralId::generate();
        let state = apply(
            &accepted(),
            Party::Recipient,
            &ActionInput {
                linked_referral_id: Some(link.clone()),
                ..not_connected(NotConnectedReason::ReferredElsewhere)
            },
            &me(),
            at(1),
        )
        .unwrap();
        assert_eq!(state.linked_referral_id, Some(link));
    }

    #[test]
    fn a_linked_referral_with_another_not_connected_reason_is_refused() {
        let err = apply(
            &accepted(),
            Party::Recipient,
            &ActionInput {
                linked_referral_id: Some(ReferralId::generate()),
                ..not_connected(NotConnectedReason::Moved)
            },
            &me(),
            at(1),
        )
        .unwrap_err();
        assert_eq!(
            err,
            TransitionError::UnexpectedField {
                action: ReferralAction::ReportNotConnected,
                field: "linked_referral_id",
            }
        );
        assert!(err.to_string().contains("referred_elsewhere"), "{err}");
    }

    #[test]
    fn a_not_connected_reason_on_another_action_is_refused() {
        let err = apply(
            &accepted(),
            Party::Recipient,
            &ActionInput {
                not_connected_reason: Some(NotConnectedReason::Moved),
                ..ActionInput::new(ReferralAction::ReportConnected)
            },
            &me(),
            at(1),
        )
        .unwrap_err();
        assert_eq!(
            err,
            TransitionError::UnexpectedField {
                action: ReferralAction::ReportConnected,
                field: "not_connected_reason",
            }
        );
    }

    #[test]
    fn the_sender_or_coordinator_confirms_a_reported_outcome() {
        let not_connected_state = apply(
            &accepted(),
            Party::Recipient,
            &not_connected(NotConnectedReason::CouldNotContact),
            &me(),
            at(1),
        )
        .unwrap();
        for party in [Party::Sender, Party::Coordinator] {
            for from in [connected(), not_connected_state.clone()] {
                let confirmer = AgencyId::parse("aoba-kodomo").unwrap();
                let state = apply(
                    &from,
                    party,
                    &ActionInput::new(ReferralAction::Confirm),
                    &confirmer,
                    at(50),
                )
                .unwrap();
                assert_eq!(state.confirmed_at, Some(at(50)));
                assert_eq!(state.confirmed_by, Some(confirmer));
                assert!(state.is_closed());
            }
        }
    }

    #[test]
    fn confirm_by_the_recipient_is_refused() {
        let err = try_act(&connected(), Party::Recipient, ReferralAction::Confirm).unwrap_err();
        assert_eq!(
            err,
            TransitionError::WrongParty {
                action: ReferralAction::Confirm,
                required: "the sender or the municipality's coordinator",
            }
        );
    }

    #[test]
    fn confirming_before_the_outcome_is_reported_is_refused() {
        let tried = act(
            &accepted(),
            Party::Recipient,
            ReferralAction::RecordContactAttempt,
        );
        let err = try_act(&tried, Party::Sender, ReferralAction::Confirm).unwrap_err();
        assert_eq!(
            err,
            TransitionError::InvalidTransition {
                action: ReferralAction::Confirm,
                layer: "connection",
                from: "contact_attempted",
            }
        );
        assert!(err.to_string().contains("must first report"), "{err}");
        let err = try_act(&declined(), Party::Sender, ReferralAction::Confirm).unwrap_err();
        assert!(matches!(err, TransitionError::InvalidTransition { .. }));
    }

    #[test]
    fn a_declined_referral_with_a_not_connected_report_can_be_confirmed() {
        let reported = apply(
            &declined(),
            Party::Recipient,
            &not_connected(NotConnectedReason::NotEligible),
            &me(),
            at(2),
        )
        .unwrap();
        let state = act(&reported, Party::Sender, ReferralAction::Confirm);
        assert!(state.is_closed());
    }

    #[test]
    fn act_after_confirm_is_refused_for_every_action() {
        let closed = confirmed();
        // Closing with a reason comes after a confirmation; its refusals are tested with it.
        for action in ReferralAction::ALL
            .into_iter()
            .filter(|a| *a != ReferralAction::CloseWithReason)
        {
            let party = if matches!(action, ReferralAction::Cancel | ReferralAction::Confirm) {
                Party::Sender
            } else {
                Party::Recipient
            };
            let input = ActionInput {
                reason_code: Some("x".to_owned()),
                ..ActionInput::new(action)
            };
            let err = apply(&closed, party, &input, &me(), at(60)).unwrap_err();
            assert_eq!(
                err,
                TransitionError::Closed {
                    action,
                    state: "confirmed",
                },
            );
        }
        assert_eq!(
            try_act(&closed, Party::Sender, ReferralAction::Confirm)
                .unwrap_err()
                .to_string(),
            "cannot confirm the handoff: the referral is closed (confirmed)"
        );
    }

    #[test]
    fn act_after_cancel_is_refused_for_every_action() {
        let closed = cancelled();
        for action in ReferralAction::ALL {
            let party = if matches!(
                action,
                ReferralAction::Cancel | ReferralAction::Confirm | ReferralAction::CloseWithReason
            ) {
                Party::Sender
            } else {
                Party::Recipient
            };
            let err = try_act(&closed, party, action).unwrap_err();
            assert!(
                matches!(
                    err,
                    TransitionError::Closed {
                        state: "cancelled",
                        ..
                    }
                ),
                "{action}: {err}"
            );
        }
    }

    #[test]
    fn a_refused_action_leaves_the_state_unchanged() {
        let before = accepted();
        let copy = before.clone();
        let _ = try_act(&before, Party::Sender, ReferralAction::Start);
        let _ = try_act(&before, Party::Recipient, ReferralAction::Complete);
        assert_eq!(before, copy);
    }
}
