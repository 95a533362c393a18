//! The records the hub keeps about a case: the case itself, referrals with their events, notes,
//! and the per-agency feed entries. Plain data; the rules live in `referral`, `consent`, `basis`.

use super::basis::LegalBasisKind;
use super::deadlines::DeadlineTerms;
use super::referral::{
    ClosedWithReason, ConnectionState, Deadlines, DeliveryState, NotConnectedReason,
    ReferralAction, ReferralState, ResponseState, TimerKind,
};
use super::{
    AgencyId, CaseCategory, CaseId, CaseStage, ConsentId, EventId, Municipality, NoteId, Purpose,
    ReferralId, Sealed, Staff, Timestamp, Urgency,
};

/// One family, child or pregnant person in one municipality. The hub keeps no names: they live
/// in the sealed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub id: CaseId,
    pub municipality: Municipality,
    pub category: CaseCategory,
    pub stage: CaseStage,
    pub opened_by: AgencyId,
    pub opened_at: Timestamp,
    pub header: Sealed,
    pub council_registered: bool,
}

/// An agency taking part in a case since a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub agency_id: AgencyId,
    pub since: Timestamp,
}

/// A referral from one agency to another about a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referral {
    pub id: ReferralId,
    pub case_id: CaseId,
    pub municipality: Municipality,
    pub from_agency: AgencyId,
    pub to_agency: AgencyId,
    pub purpose: Purpose,
    pub urgency: Urgency,
    pub basis: LegalBasisKind,
    pub consent_id: Option<ConsentId>,
    pub justification: Option<String>,
    /// A 通告: the sender is shown only to the recipient.
    pub hide_sender: bool,
    pub body: Sealed,
    pub staff: Staff,
    pub sent_at: Timestamp,
    pub deadlines: Deadlines,
    /// How each deadline was counted; `None` for referrals sent before this was recorded.
    pub deadline_terms: Option<DeadlineTerms>,
    pub state: ReferralState,
    /// The next step "close with reason" after a confirmed "did not connect", once recorded.
    pub closed_with_reason: Option<ClosedWithReason>,
}

/// What a referral event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferralEventKind {
    Sent,
    Action(ReferralAction),
    Escalated {
        timer: TimerKind,
        tier: EscalationTier,
    },
}

/// Who an escalation was raised to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EscalationTier {
    /// The agency that has to act.
    Responsible,
    /// The municipality's coordinator, once the grace period has passed too.
    Coordinator,
}

impl EscalationTier {
    pub fn code(self) -> &'static str {
        match self {
            Self::Responsible => "responsible",
            Self::Coordinator => "coordinator",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "responsible" => Some(Self::Responsible),
            "coordinator" => Some(Self::Coordinator),
            _ => None,
        }
    }
}

/// An append-only change to a referral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralEvent {
    pub id: EventId,
    pub referral_id: ReferralId,
    pub case_id: CaseId,
    pub kind: ReferralEventKind,
    /// `None` for escalations, which the hub raises itself.
    pub actor_agency: Option<AgencyId>,
    pub actor_staff: Option<Staff>,
    pub occurred_at: Timestamp,
    pub recorded_at: Timestamp,
    pub reason_code: Option<String>,
    /// The clear-text note of a close with reason.
    pub reason_text: Option<String>,
    pub not_connected_reason: Option<NotConnectedReason>,
    pub note: Option<Sealed>,
    /// A sealed detail of the reason given in the clear, for the law's review: sealed to the
    /// referral's parties and the municipality's coordinator.
    pub reason_detail: Option<Sealed>,
    /// The layers after the event.
    pub delivery: DeliveryState,
    pub response: ResponseState,
    pub connection: ConnectionState,
}

/// A message on a case thread to one or more agencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub id: NoteId,
    pub case_id: CaseId,
    pub from_agency: AgencyId,
    pub staff: Staff,
    pub purpose: Purpose,
    pub basis: LegalBasisKind,
    pub consent_id: Option<ConsentId>,
    pub justification: Option<String>,
    pub hide_sender: bool,
    pub body: Sealed,
    pub sent_at: Timestamp,
    pub recipients: Vec<NoteRecipient>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteRecipient {
    pub agency_id: AgencyId,
    pub acknowledged_at: Option<Timestamp>,
}

/// What a feed entry tells its agency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedEventKind {
    ReferralReceived,
    ReferralUpdated,
    Escalation,
    NoteReceived,
    NoteAcknowledged,
    ConsentWithdrawn,
    CouncilUpdated,
    /// A transfer (移管) to the agency's municipality was proposed.
    TransferReceived,
    /// A transfer the agency's municipality is party to moved.
    TransferUpdated,
    /// A timer of such a transfer passed.
    TransferEscalation,
}

impl FeedEventKind {
    pub const ALL: [Self; 10] = [
        Self::ReferralReceived,
        Self::ReferralUpdated,
        Self::Escalation,
        Self::NoteReceived,
        Self::NoteAcknowledged,
        Self::ConsentWithdrawn,
        Self::CouncilUpdated,
        Self::TransferReceived,
        Self::TransferUpdated,
        Self::TransferEscalation,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::ReferralReceived => "referral_received",
            Self::ReferralUpdated => "referral_updated",
            Self::Escalation => "escalation",
            Self::NoteReceived => "note_received",
            Self::NoteAcknowledged => "note_acknowledged",
            Self::ConsentWithdrawn => "consent_withdrawn",
            Self::CouncilUpdated => "council_updated",
            Self::TransferReceived => "transfer_received",
            Self::TransferUpdated => "transfer_updated",
            Self::TransferEscalation => "transfer_escalation",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }
}

/// One entry of one agency's feed, before the store gives it its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    pub agency_id: AgencyId,
    pub event_id: EventId,
    pub kind: FeedEventKind,
    pub case_id: Option<CaseId>,
    pub referral_id: Option<ReferralId>,
    pub note_id: Option<NoteId>,
    pub referral_event_id: Option<EventId>,
    pub recorded_at: Timestamp,
}

/// A stored feed entry with its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    pub cursor: u64,
    pub entry: FeedEntry,
}
