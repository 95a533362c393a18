//! 移管: the transfer of a case between municipalities when a family moves. The rules: who acts
//! at which step, the states a transfer moves through, its timers, and the legal basis of the
//! share with the receiving municipality. Plain data and functions; the use cases live in
//! `casework::transfers`.

pub use super::TransferId;
use super::basis::{
    BasisRefusal, ClaimedBasis, LegalBasisKind, MAX_JUSTIFICATION_CHARS, ShareContext, decide,
};
use super::calendar::BusinessCalendar;
use super::consent::Consent;
use super::{Agency, AgencyId, CaseId, ConsentId, Municipality, Purpose, Sealed, Staff, Timestamp};

/// The purpose a consent must name to cover a transfer (移管).
pub const TRANSFER_PURPOSE: &str = "case_transfer";

/// Business days (of the receiving municipality) from the proposal to each timer.
pub const DELIVER_WITHIN_BUSINESS_DAYS: u32 = 1;
pub const RESPOND_WITHIN_BUSINESS_DAYS: u32 = 5;
pub const ACCEPT_WITHIN_BUSINESS_DAYS: u32 = 10;

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferState {
    /// 移管依頼中: A proposed it; B has not confirmed receipt.
    Proposed,
    /// 受理確認済: B confirmed receipt and is deciding.
    Acknowledged,
    /// 移管完了: B took the family on.
    Accepted,
    /// 辞退: B declined; A has to act.
    Declined,
    /// 取下げ: A withdrew it.
    Withdrawn,
}

impl TransferState {
    pub const ALL: [Self; 5] = [
        Self::Proposed,
        Self::Acknowledged,
        Self::Accepted,
        Self::Declined,
        Self::Withdrawn,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Acknowledged => "acknowledged",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Withdrawn => "withdrawn",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Whether B still has to act (the transfer is in progress).
    pub fn in_progress(self) -> bool {
        matches!(self, Self::Proposed | Self::Acknowledged)
    }
}

/// The timers of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransferTimer {
    /// B acknowledges receipt.
    Deliver,
    /// B accepts or declines.
    Respond,
    /// B has taken the family on.
    Accept,
}

impl TransferTimer {
    pub const ALL: [Self; 3] = [Self::Deliver, Self::Respond, Self::Accept];

    pub fn code(self) -> &'static str {
        match self {
            Self::Deliver => "deliver",
            Self::Respond => "respond",
            Self::Accept => "accept",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }
}

/// Why B declined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeclineReason {
    /// 転入が確認できない
    NotMovedIn,
    /// 別の自治体へ転居した
    MovedElsewhere,
    /// 情報が不足している
    InsufficientInformation,
    /// 既に支援中 (another case already covers the family)
    AlreadySupported,
    /// その他
    Other,
}

impl DeclineReason {
    pub const ALL: [Self; 5] = [
        Self::NotMovedIn,
        Self::MovedElsewhere,
        Self::InsufficientInformation,
        Self::AlreadySupported,
        Self::Other,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::NotMovedIn => "not_moved_in",
            Self::MovedElsewhere => "moved_elsewhere",
            Self::InsufficientInformation => "insufficient_information",
            Self::AlreadySupported => "already_supported",
            Self::Other => "other",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    pub fn codes() -> String {
        Self::ALL.map(Self::code).join(", ")
    }
}

/// The deadlines of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferDeadlines {
    pub deliver_by: Timestamp,
    pub respond_by: Timestamp,
    pub accept_by: Timestamp,
}

impl TransferDeadlines {
    /// The deadlines of a transfer proposed at `at`, in business days of the receiving
    /// municipality's calendar (its coordinator has to act).
    pub fn from_proposal(at: Timestamp, calendar: &BusinessCalendar<'_>) -> Self {
        Self {
            deliver_by: calendar.business_days_after(at, DELIVER_WITHIN_BUSINESS_DAYS),
            respond_by: calendar.business_days_after(at, RESPOND_WITHIN_BUSINESS_DAYS),
            accept_by: calendar.business_days_after(at, ACCEPT_WITHIN_BUSINESS_DAYS),
        }
    }

    pub fn get(&self, timer: TransferTimer) -> Timestamp {
        match timer {
            TransferTimer::Deliver => self.deliver_by,
            TransferTimer::Respond => self.respond_by,
            TransferTimer::Accept => self.accept_by,
        }
    }
}

/// One transfer of a case from municipality A to municipality B.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: TransferId,
    /// The case in A.
    pub case_id: CaseId,
    pub from_municipality: Municipality,
    pub to_municipality: Municipality,
    /// A's coordinator agency.
    pub proposed_by: AgencyId,
    pub proposed_staff: Staff,
    pub basis: LegalBasisKind,
    pub consent_id: Option<ConsentId>,
    pub justification: Option<String>,
    /// 引継ぎ事項, sealed by A's client.
    pub note: Option<Sealed>,
    pub state: TransferState,
    pub proposed_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub acknowledged_by: Option<AgencyId>,
    /// When B accepted or declined, who, and which staff member.
    pub responded_at: Option<Timestamp>,
    pub responded_by: Option<AgencyId>,
    pub responded_staff: Option<Staff>,
    /// B's 主担当機関, once accepted.
    pub lead_agency: Option<AgencyId>,
    /// The case in B, once accepted.
    pub receiving_case: Option<CaseId>,
    /// Whether the hub opened the receiving case (rather than B linking one).
    pub receiving_case_opened: bool,
    pub decline_reason: Option<DeclineReason>,
    pub decline_text: Option<String>,
    pub withdrawn_at: Option<Timestamp>,
    pub deadlines: TransferDeadlines,
    pub updated_at: Timestamp,
}

impl Transfer {
    /// The timers passed at `now` whose step has not happened.
    pub fn overdue(&self, now: Timestamp) -> Vec<TransferTimer> {
        let pending = |timer: TransferTimer| match timer {
            TransferTimer::Deliver => self.state == TransferState::Proposed,
            TransferTimer::Respond | TransferTimer::Accept => self.state.in_progress(),
        };
        TransferTimer::ALL
            .into_iter()
            .filter(|t| pending(*t) && self.deadlines.get(*t) <= now)
            .collect()
    }
}

/// Whether a transfer still needs someone: B while it is in progress; A once B declined, until
/// A proposes the case again (a later transfer of the same case) or withdraws it.
pub fn on_worklist(transfer: &Transfer, later_transfer_of_case: bool) -> bool {
    match transfer.state {
        TransferState::Proposed | TransferState::Acknowledged => true,
        TransferState::Declined => !later_transfer_of_case,
        TransferState::Accepted | TransferState::Withdrawn => false,
    }
}

/// Why a step on a transfer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("transfer {id} is {state}; {step} needs it to be {needs}")]
    WrongState {
        id: TransferId,
        state: &'static str,
        step: &'static str,
        needs: &'static str,
    },
}

fn require(
    transfer: &Transfer,
    allowed: &[TransferState],
    step: &'static str,
    needs: &'static str,
) -> Result<(), TransferError> {
    if allowed.contains(&transfer.state) {
        return Ok(());
    }
    Err(TransferError::WrongState {
        id: transfer.id.clone(),
        state: transfer.state.code(),
        step,
        needs,
    })
}

/// B confirms receipt.
pub fn acknowledge(
    transfer: &Transfer,
    by: &AgencyId,
    now: Timestamp,
) -> Result<Transfer, TransferError> {
    require(
        transfer,
        &[TransferState::Proposed],
        "acknowledging",
        "proposed",
    )?;
    let mut next = transfer.clone();
    next.state = TransferState::Acknowledged;
    next.acknowledged_at = Some(now);
    next.acknowledged_by = Some(by.clone());
    next.updated_at = now;
    Ok(next)
}

/// B takes the family on. Accepting a proposal B never acknowledged acknowledges it too.
pub fn accept(
    transfer: &Transfer,
    by: &AgencyId,
    staff: Staff,
    lead_agency: AgencyId,
    receiving_case: CaseId,
    opened: bool,
    now: Timestamp,
) -> Result<Transfer, TransferError> {
    let mut next = responded(transfer, by, staff, "accepting", now)?;
    next.state = TransferState::Accepted;
    next.lead_agency = Some(lead_agency);
    next.receiving_case = Some(receiving_case);
    next.receiving_case_opened = opened;
    Ok(next)
}

/// B declines with a reason.
pub fn decline(
    transfer: &Transfer,
    by: &AgencyId,
    staff: Staff,
    reason: DeclineReason,
    text: Option<String>,
    now: Timestamp,
) -> Result<Transfer, TransferError> {
    let mut next = responded(transfer, by, staff, "declining", now)?;
    next.state = TransferState::Declined;
    next.decline_reason = Some(reason);
    next.decline_text = text;
    Ok(next)
}

fn responded(
    transfer: &Transfer,
    by: &AgencyId,
    staff: Staff,
    step: &'static str,
    now: Timestamp,
) -> Result<Transfer, TransferError> {
    require(
        transfer,
        &[TransferState::Proposed, TransferState::Acknowledged],
        step,
        "proposed or acknowledged",
    )?;
    let mut next = transfer.clone();
    if next.acknowledged_at.is_none() {
        next.acknowledged_at = Some(now);
        next.acknowledged_by = Some(by.clone());
    }
    next.responded_at = Some(now);
    next.responded_by = Some(by.clone());
    next.responded_staff = Some(staff);
    next.updated_at = now;
    Ok(next)
}

/// A withdraws a transfer in progress, or one B declined (the family stays with A).
pub fn withdraw(transfer: &Transfer, now: Timestamp) -> Result<Transfer, TransferError> {
    require(
        transfer,
        &[
            TransferState::Proposed,
            TransferState::Acknowledged,
            TransferState::Declined,
        ],
        "withdrawing",
        "proposed, acknowledged or declined",
    )?;
    let mut next = transfer.clone();
    next.state = TransferState::Withdrawn;
    next.withdrawn_at = Some(now);
    next.updated_at = now;
    Ok(next)
}

/// The basis a transfer is stored with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferBasis {
    pub kind: LegalBasisKind,
    pub consent_id: Option<ConsentId>,
    pub justification: Option<String>,
}

/// Why the basis of a transfer does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferBasisRefusal {
    #[error(
        "basis abuse_notification is for a 通告, not a transfer; use council_sharing, consent or \
         vital_interest"
    )]
    AbuseNotification,
    #[error(
        "basis council_sharing needs the case to be registered with the 要対協 of {municipality} \
         (sharing between councils when a registered family moves)"
    )]
    CaseNotRegistered { municipality: Municipality },
    #[error(
        "basis consent needs a consent on the case covering a coordinator of {to} for purpose \
         {TRANSFER_PURPOSE}: {refusal}"
    )]
    NoConsent {
        to: Municipality,
        refusal: BasisRefusal,
    },
    #[error("{0}")]
    Refused(BasisRefusal),
}

/// What the basis of a transfer is decided on, gathered by the caller from the store.
#[derive(Debug, Clone, Copy)]
pub struct TransferShare<'a> {
    /// A's coordinator.
    pub sender: &'a Agency,
    /// The coordinators of B.
    pub receiving_coordinators: &'a [Agency],
    pub case_municipality: &'a Municipality,
    pub case_council_registered: bool,
    pub to: &'a Municipality,
    /// The case's consent records.
    pub consents: &'a [Consent],
    pub now: Timestamp,
}

/// Decides whether the claimed basis covers sharing the case with the coordinators of the
/// receiving municipality. `council_sharing` holds for a case registered with A's 要対協: a
/// registered family that moves is handed from council to council (the receiving coordinator
/// sits on its own council). `consent` needs a consent covering one of B's coordinators
/// (agency or kind) for [`TRANSFER_PURPOSE`]; `vital_interest` a justification.
pub fn decide_basis(
    claimed: &ClaimedBasis,
    share: &TransferShare<'_>,
) -> Result<TransferBasis, TransferBasisRefusal> {
    let TransferShare {
        sender,
        receiving_coordinators,
        case_municipality,
        case_council_registered,
        to,
        consents,
        now,
    } = *share;
    let purpose = Purpose::parse(TRANSFER_PURPOSE).expect("a valid purpose code");
    match claimed.kind {
        LegalBasisKind::AbuseNotification => Err(TransferBasisRefusal::AbuseNotification),
        LegalBasisKind::CouncilSharing => {
            if claimed.consent_id.is_some() {
                return Err(TransferBasisRefusal::Refused(
                    BasisRefusal::ConsentIdNotExpected { kind: claimed.kind },
                ));
            }
            if !case_council_registered {
                return Err(TransferBasisRefusal::CaseNotRegistered {
                    municipality: case_municipality.clone(),
                });
            }
            let text = claimed.justification.as_deref().map(str::trim);
            let text = text
                .filter(|t| !t.is_empty())
                .ok_or(TransferBasisRefusal::Refused(
                    BasisRefusal::JustificationMissing { kind: claimed.kind },
                ))?;
            let chars = text.chars().count();
            if chars > MAX_JUSTIFICATION_CHARS {
                return Err(TransferBasisRefusal::Refused(
                    BasisRefusal::JustificationTooLong {
                        kind: claimed.kind,
                        chars,
                    },
                ));
            }
            Ok(TransferBasis {
                kind: claimed.kind,
                consent_id: None,
                justification: Some(text.to_owned()),
            })
        }
        LegalBasisKind::Consent | LegalBasisKind::VitalInterest => {
            let mut last = None;
            for recipient in receiving_coordinators {
                let decided = decide(
                    claimed,
                    &ShareContext {
                        sender,
                        recipient,
                        case_municipality,
                        case_council_registered,
                        purpose: &purpose,
                        consents,
                        now,
                    },
                );
                match decided {
                    Ok(decision) => {
                        return Ok(TransferBasis {
                            kind: decision.kind,
                            consent_id: decision.consent_id,
                            justification: claimed.justification.clone(),
                        });
                    }
                    Err(refusal) => last = Some(refusal),
                }
            }
            let refusal = last.unwrap_or(BasisRefusal::JustificationMissing { kind: claimed.kind });
            Err(if claimed.kind == LegalBasisKind::Consent {
                TransferBasisRefusal::NoConsent {
                    to: to.clone(),
                    refusal,
                }
            } else {
                TransferBasisRefusal::Refused(refusal)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::HolidayList;

    fn staff() -> Staff {
        Staff {
            name: "佐藤".into(),
            role: "保健師".into(),
        }
    }

    fn agency(id: &str) -> AgencyId {
        AgencyId::parse(id).unwrap()
    }

    fn proposed() -> Transfer {
        // Monday 2026-12-07 10:00 JST.
        let now = Timestamp::from_offset_date_time(time::macros::datetime!(2026-12-07 01:00 UTC));
        let calendar = BusinessCalendar::new(HolidayList::official());
        Transfer {
            id: TransferId::generate(),
            case_id: CaseId::generate(),
            from_municipality: Municipality::parse("141178").unwrap(),
            to_municipality: Municipality::parse("131016").unwrap(),
            proposed_by: agency("kodomo"),
            proposed_staff: staff(),
            basis: LegalBasisKind::VitalInterest,
            consent_id: None,
            justification: Some("転居".into()),
            note: None,
            state: TransferState::Proposed,
            proposed_at: now,
            acknowledged_at: None,
            acknowledged_by: None,
            responded_at: None,
            responded_by: None,
            responded_staff: None,
            lead_agency: None,
            receiving_case: None,
            receiving_case_opened: false,
            decline_reason: None,
            decline_text: None,
            withdrawn_at: None,
            deadlines: TransferDeadlines::from_proposal(now, &calendar),
            updated_at: now,
        }
    }

    #[test]
    fn the_timers_count_business_days_of_the_receiving_calendar() {
        let transfer = proposed();
        let day = |t: Timestamp| t.date_in_japan();
        assert_eq!(
            day(transfer.deadlines.deliver_by),
            time::macros::date!(2026 - 12 - 08)
        );
        assert_eq!(
            day(transfer.deadlines.respond_by),
            time::macros::date!(2026 - 12 - 14)
        );
        assert_eq!(
            day(transfer.deadlines.accept_by),
            time::macros::date!(2026 - 12 - 21)
        );
    }

    #[test]
    fn a_transfer_moves_from_proposed_through_acknowledged_to_accepted() {
        let transfer = proposed();
        let now = transfer.proposed_at.plus(time::Duration::hours(1));
        let acked = acknowledge(&transfer, &agency("chiyoda"), now).unwrap();
        assert_eq!(acked.state, TransferState::Acknowledged);
        assert!(acknowledge(&acked, &agency("chiyoda"), now).is_err());
        let accepted = accept(
            &acked,
            &agency("chiyoda"),
            staff(),
            agency("chiyoda"),
            CaseId::generate(),
            true,
            now,
        )
        .unwrap();
        assert_eq!(accepted.state, TransferState::Accepted);
        assert!(!on_worklist(&accepted, false));
        assert!(withdraw(&accepted, now).is_err());
    }

    #[test]
    fn accepting_without_an_acknowledgement_acknowledges_too() {
        let transfer = proposed();
        let now = transfer.proposed_at;
        let accepted = accept(
            &transfer,
            &agency("chiyoda"),
            staff(),
            agency("chiyoda"),
            CaseId::generate(),
            false,
            now,
        )
        .unwrap();
        assert_eq!(accepted.acknowledged_by, Some(agency("chiyoda")));
    }

    #[test]
    fn a_declined_transfer_stays_on_the_worklist_until_a_proposes_again_or_withdraws() {
        let transfer = proposed();
        let now = transfer.proposed_at;
        let declined = decline(
            &transfer,
            &agency("chiyoda"),
            staff(),
            DeclineReason::NotMovedIn,
            None,
            now,
        )
        .unwrap();
        assert!(on_worklist(&declined, false));
        assert!(!on_worklist(&declined, true));
        let withdrawn = withdraw(&declined, now).unwrap();
        assert!(!on_worklist(&withdrawn, false));
    }

    fn basis(kind: LegalBasisKind, justification: &str) -> ClaimedBasis {
        ClaimedBasis {
            kind,
            consent_id: None,
            justification: (!justification.is_empty()).then(|| justification.to_owned()),
        }
    }

    /// Decides `claimed` for a transfer from 141178 to 131016, whose coordinator is chiyoda.
    fn decide_for(
        claimed: &ClaimedBasis,
        registered: bool,
        consents: &[Consent],
    ) -> Result<TransferBasis, TransferBasisRefusal> {
        use crate::domain::consent::tests::{agency, june};
        let from = Municipality::parse("141178").unwrap();
        let to = Municipality::parse("131016").unwrap();
        let mut sender = agency("kodomo", "health_centre");
        sender.coordinator_of = vec![from.clone()];
        let mut receiver = agency("chiyoda", "health_centre");
        receiver.municipalities = vec![to.clone()];
        receiver.coordinator_of = vec![to.clone()];
        decide_basis(
            claimed,
            &TransferShare {
                sender: &sender,
                receiving_coordinators: &[receiver],
                case_municipality: &from,
                case_council_registered: registered,
                to: &to,
                consents,
                now: june(),
            },
        )
    }

    #[test]
    fn council_sharing_carries_a_registered_case_from_council_to_council() {
        let claimed = basis(LegalBasisKind::CouncilSharing, "要対協登録ケースの転居");
        let decided = decide_for(&claimed, true, &[]).unwrap();
        assert_eq!(decided.kind, LegalBasisKind::CouncilSharing);
        assert!(matches!(
            decide_for(&claimed, false, &[]),
            Err(TransferBasisRefusal::CaseNotRegistered { .. })
        ));
        assert!(decide_for(&basis(LegalBasisKind::CouncilSharing, ""), true, &[]).is_err());
    }

    #[test]
    fn a_consent_must_cover_the_receiving_coordinator_for_case_transfer() {
        use crate::domain::consent::tests::{consent, purpose};
        let claimed = basis(LegalBasisKind::Consent, "");
        // Covers the hospital for postnatal care: not this transfer.
        let other = consent();
        let refused = decide_for(&claimed, false, std::slice::from_ref(&other)).unwrap_err();
        assert!(refused.to_string().contains(TRANSFER_PURPOSE), "{refused}");
        let mut covering = consent();
        covering.scope.recipient_agencies = vec![AgencyId::parse("chiyoda").unwrap()];
        covering.scope.purposes = vec![purpose(TRANSFER_PURPOSE)];
        let decided = decide_for(&claimed, false, &[other, covering.clone()]).unwrap();
        assert_eq!(decided.consent_id, Some(covering.id));
    }

    #[test]
    fn a_transfer_is_never_a_notification_and_vital_interest_needs_a_justification() {
        assert_eq!(
            decide_for(&basis(LegalBasisKind::AbuseNotification, "通告"), true, &[]),
            Err(TransferBasisRefusal::AbuseNotification)
        );
        assert!(decide_for(&basis(LegalBasisKind::VitalInterest, ""), false, &[]).is_err());
        assert!(
            decide_for(
                &basis(LegalBasisKind::VitalInterest, "生命の危険"),
                false,
                &[]
            )
            .is_ok()
        );
    }

    #[test]
    fn overdue_timers_are_those_whose_step_has_not_happened() {
        let transfer = proposed();
        let late = transfer.deadlines.accept_by.plus(time::Duration::hours(1));
        assert_eq!(
            transfer.overdue(late),
            vec![
                TransferTimer::Deliver,
                TransferTimer::Respond,
                TransferTimer::Accept
            ]
        );
        let acked = acknowledge(&transfer, &agency("chiyoda"), transfer.proposed_at).unwrap();
        assert_eq!(
            acked.overdue(late),
            vec![TransferTimer::Respond, TransferTimer::Accept]
        );
        assert!(acked.overdue(transfer.proposed_at).is_empty());
    }
}
