//! Referrals: the three independent layers (delivery, response, connection), the rules that move
//! them, and the four timers (deliver-by, respond-by, connect-by, confirm-by) that watch them.
//!
//! This module holds the vocabulary (states, actions, parties, inputs); the rules that move a
//! referral and record the family's next step are in `transitions`, the refusals and the hints
//! they give people are in `hints`, and the deadline policy and timers are in
//! [`super::deadlines`]. Everything is re-exported here, so callers import from `referral`.

use super::{AgencyId, ReferralId, Timestamp};

// The deadline policy and the timers' rules live in `deadlines`; re-exported so that callers keep
// importing them from here.
pub use super::deadlines::{
    DeadlineError, DeadlineOverrides, DeadlinePolicy, Deadlines, UrgencyDeadlines, apply_overrides,
    due_soon, overdue, pending_timers, responsible_party,
};

mod hints;
mod transitions;

pub use hints::{TransitionError, close_reason_codes};
pub use transitions::{apply, asks_for_next_step, close_with_reason};

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

/// Referral states built by the transition function itself, for the tests of this module and
/// of the deadline rules.
#[cfg(test)]
pub(crate) mod test_states;

#[cfg(test)]
mod tests;
