//! Why a referral action was refused, in words for the people at the agencies: each message
//! names the action, what stands in the way, and what would have to happen first.

use super::{CloseReason, ReferralAction};

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

    /// Who may take the action, for the refusal message.
    pub(super) fn required_party(self) -> &'static str {
        match self {
            Self::Cancel | Self::Confirm | Self::CloseWithReason => {
                "the sender or the municipality's coordinator"
            }
            _ => "the recipient",
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
