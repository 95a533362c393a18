//! 要対協 (要保護児童対策地域協議会): case registrations and their review schedule, meetings and
//! their agendas, the decisions recorded back, and the meeting pack's summary. Plain rules over
//! plain data; casework gathers the inputs from the store and writes what the rules return.

use std::collections::HashSet;
use std::fmt;

use time::Date;

use super::records::Referral;
use super::referral::{ConnectionState, overdue};
use super::{
    AgencyId, CaseCategory, CaseId, DecisionId, JST, MeetingId, Municipality, Sealed, Staff,
    Timestamp,
};

/// The longest review interval accepted: every registered case comes back to the council at
/// least once a year (進行管理).
pub const MAX_REVIEW_INTERVAL_DAYS: u32 = 366;
/// The longest close or transfer reason, in characters. It travels in the clear next to the
/// case id, so it is a short statement ("支援目標達成", "転出"), never the family's story.
pub const MAX_REASON_CHARS: usize = 200;

/// Where a registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistrationStatus {
    Active,
    /// 終結: the council ended its involvement.
    Closed,
    /// 移管: the case moved to another municipality's council.
    Transferred,
}

impl RegistrationStatus {
    pub const ALL: [Self; 3] = [Self::Active, Self::Closed, Self::Transferred];

    pub fn code(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Closed => "closed",
            Self::Transferred => "transferred",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }
}

impl fmt::Display for RegistrationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A case registered with the council of its municipality (one per case; registering a case
/// again after it ended starts a new registration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub case_id: CaseId,
    pub municipality: Municipality,
    pub category: CaseCategory,
    pub registered_on: Date,
    /// 主担当機関.
    pub lead_agency: AgencyId,
    /// キーパーソン, sealed: it names a person.
    pub key_person: Option<Sealed>,
    pub review_interval_days: u32,
    pub next_review_on: Date,
    pub last_reviewed_on: Option<Date>,
    pub status: RegistrationStatus,
    /// Why it was closed (required) or transferred (optional).
    pub reason: Option<String>,
    pub transferred_to: Option<Municipality>,
    pub ended_on: Option<Date>,
    /// Why the case was registered; shown to members, so it must not name the family.
    pub justification: Option<String>,
    pub registered_by: AgencyId,
    /// The staff member behind the latest change.
    pub staff: Staff,
    pub registered_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Registration {
    pub fn is_active(&self) -> bool {
        self.status == RegistrationStatus::Active
    }

    /// The day the current review period began: the last review, or the registration.
    pub fn reviewed_or_registered_on(&self) -> Date {
        self.last_reviewed_on.unwrap_or(self.registered_on)
    }

    /// Whether its next review falls on or before `by`, so that a meeting on `by` takes it up.
    pub fn is_due(&self, by: Date) -> bool {
        self.is_active() && self.next_review_on <= by
    }

    /// The same registration terms, ignoring who changed it and when.
    fn same_terms(&self, other: &Self) -> bool {
        self.category == other.category
            && self.lead_agency == other.lead_agency
            && self.key_person == other.key_person
            && self.review_interval_days == other.review_interval_days
            && self.next_review_on == other.next_review_on
    }
}

/// The kinds of meeting a council holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeetingKind {
    /// 代表者会議: yearly, the heads of the member agencies.
    Representatives,
    /// 実務者会議: the periodic review of every registered case (進行管理).
    Practitioners,
    /// 個別ケース検討会議: the workers on one case, as needed.
    IndividualCase,
}

impl MeetingKind {
    pub const ALL: [Self; 3] = [
        Self::Representatives,
        Self::Practitioners,
        Self::IndividualCase,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Representatives => "representatives",
            Self::Practitioners => "practitioners",
            Self::IndividualCase => "individual_case",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Representatives => "代表者会議",
            Self::Practitioners => "実務者会議",
            Self::IndividualCase => "個別ケース検討会議",
        }
    }
}

/// A meeting and its agenda, fixed when it was scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meeting {
    pub id: MeetingId,
    pub municipality: Municipality,
    pub kind: MeetingKind,
    pub held_on: Date,
    /// The cases on the agenda, in the order they are taken up.
    pub case_ids: Vec<CaseId>,
    pub scheduled_by: AgencyId,
    pub staff: Staff,
    pub scheduled_at: Timestamp,
}

/// What the council decided for one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionOutcome {
    /// 継続: the case stays registered until its next review.
    Continue,
    /// 終結.
    Close { reason: String },
    /// 移管 to another municipality.
    Transfer {
        to: Municipality,
        reason: Option<String>,
    },
}

impl DecisionOutcome {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Continue => "continue",
            Self::Close { .. } => "close",
            Self::Transfer { .. } => "transfer",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Continue => None,
            Self::Close { reason } => Some(reason),
            Self::Transfer { reason, .. } => reason.as_deref(),
        }
    }

    pub fn transfer_to(&self) -> Option<&Municipality> {
        match self {
            Self::Transfer { to, .. } => Some(to),
            _ => None,
        }
    }

    /// Rebuilds an outcome from its stored columns; `None` when they do not fit together.
    pub fn from_parts(
        code: &str,
        reason: Option<String>,
        transfer_to: Option<Municipality>,
    ) -> Option<Self> {
        match (code, reason, transfer_to) {
            ("continue", None, None) => Some(Self::Continue),
            ("close", Some(reason), None) => Some(Self::Close { reason }),
            ("transfer", reason, Some(to)) => Some(Self::Transfer { to, reason }),
            _ => None,
        }
    }
}

/// A decision recorded back from a meeting for one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: DecisionId,
    pub meeting_id: MeetingId,
    pub case_id: CaseId,
    /// The day of the meeting that decided.
    pub held_on: Date,
    pub outcome: DecisionOutcome,
    pub lead_agency: AgencyId,
    /// 役割分担 and 支援計画, sealed to the council.
    pub plan: Option<Sealed>,
    /// For `Continue`: when the case comes back.
    pub next_review_on: Option<Date>,
    pub decided_by: AgencyId,
    pub staff: Staff,
    pub decided_at: Timestamp,
}

/// Why a council request breaks a rule. `Invalid` names the request field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CouncilError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("case {case_id} is not an active registration of the 要対協 of {municipality}")]
    NotRegistered {
        case_id: CaseId,
        municipality: Municipality,
    },
    #[error(
        "the registration of case {case_id} is {status}; only an active registration changes \
         (register the case again to start a new one)"
    )]
    NotActive {
        case_id: CaseId,
        status: RegistrationStatus,
    },
    #[error("case {case_id} is not on the agenda of meeting {meeting_id}")]
    NotOnAgenda {
        case_id: CaseId,
        meeting_id: MeetingId,
    },
    #[error("meeting {meeting_id} is held on {held_on}; record its decisions on or after that day")]
    NotHeldYet {
        meeting_id: MeetingId,
        held_on: Date,
    },
    #[error(
        "meeting {meeting_id} was held on {held_on}, before case {case_id} was registered on \
         {registered_on}"
    )]
    HeldBeforeRegistration {
        meeting_id: MeetingId,
        case_id: CaseId,
        held_on: Date,
        registered_on: Date,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> CouncilError {
    CouncilError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// The instant a civil day begins in Japan, to compare dates with recorded times.
pub fn start_of_day(date: Date) -> Timestamp {
    Timestamp::from_offset_date_time(date.midnight().assume_offset(JST))
}

/// Only 要保護児童, 要支援児童 and 特定妊婦 are registered: general (population approach)
/// cases are not the council's.
pub fn check_registrable(category: CaseCategory) -> Result<CaseCategory, CouncilError> {
    match category {
        CaseCategory::General => Err(invalid(
            "category",
            "a council registration is for 要保護児童 (requires_protection), 要支援児童 \
             (requires_support) or 特定妊婦 (specific_expectant_mother)",
        )),
        other => Ok(other),
    }
}

/// A review interval in days: `None` takes the configured default.
pub fn review_interval(days: Option<u32>, default: u32) -> Result<u32, CouncilError> {
    let days = days.unwrap_or(default);
    if !(1..=MAX_REVIEW_INTERVAL_DAYS).contains(&days) {
        return Err(invalid(
            "review_interval_days",
            format!("must be 1..={MAX_REVIEW_INTERVAL_DAYS} days"),
        ));
    }
    Ok(days)
}

/// The day a review falls due: `from` plus the interval.
pub fn review_due(from: Date, interval_days: u32) -> Result<Date, CouncilError> {
    from.checked_add(time::Duration::days(i64::from(interval_days)))
        .ok_or_else(|| {
            invalid(
                "review_interval_days",
                "puts the next review past year 9999",
            )
        })
}

/// A short reason in the clear: trimmed, 1..=`MAX_REASON_CHARS`, no control characters.
/// Empty means none.
pub fn reason_text(field: &'static str, text: &str) -> Result<Option<String>, CouncilError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > MAX_REASON_CHARS || text.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!(
                "must be at most {MAX_REASON_CHARS} characters without control characters; \
                 put details in the sealed plan"
            ),
        ));
    }
    Ok(Some(text.to_owned()))
}

/// What the coordinator asks to register.
#[derive(Debug, Clone)]
pub struct NewRegistration {
    pub case_id: CaseId,
    pub municipality: Municipality,
    pub category: CaseCategory,
    pub registered_on: Date,
    pub lead_agency: AgencyId,
    pub key_person: Option<Sealed>,
    /// `None`: the configured default.
    pub review_interval_days: Option<u32>,
    /// `None`: registered_on plus the interval.
    pub next_review_on: Option<Date>,
    pub justification: Option<String>,
    pub registered_by: AgencyId,
    pub staff: Staff,
}

/// A new, active registration with its first review date.
pub fn register(
    new: NewRegistration,
    default_interval: u32,
    today: Date,
    now: Timestamp,
) -> Result<Registration, CouncilError> {
    let category = check_registrable(new.category)?;
    if new.registered_on > today {
        return Err(invalid(
            "registered_on",
            format!("{} is in the future", new.registered_on),
        ));
    }
    let interval = review_interval(new.review_interval_days, default_interval)?;
    let next_review_on = match new.next_review_on {
        Some(next) => next,
        None => review_due(new.registered_on, interval)?,
    };
    if next_review_on <= new.registered_on {
        return Err(invalid(
            "next_review_on",
            format!("must be after registered_on ({})", new.registered_on),
        ));
    }
    Ok(Registration {
        case_id: new.case_id,
        municipality: new.municipality,
        category,
        registered_on: new.registered_on,
        lead_agency: new.lead_agency,
        key_person: new.key_person,
        review_interval_days: interval,
        next_review_on,
        last_reviewed_on: None,
        status: RegistrationStatus::Active,
        reason: None,
        transferred_to: None,
        ended_on: None,
        justification: new.justification,
        registered_by: new.registered_by,
        staff: new.staff,
        registered_at: now,
        updated_at: now,
    })
}

/// A change to an active registration; `None` keeps a term as it is.
#[derive(Debug, Clone)]
pub struct RegistrationChange {
    pub category: Option<CaseCategory>,
    pub lead_agency: Option<AgencyId>,
    pub key_person: Option<Sealed>,
    pub review_interval_days: Option<u32>,
    pub next_review_on: Option<Date>,
    pub staff: Staff,
}

fn require_active(registration: &Registration) -> Result<(), CouncilError> {
    if registration.is_active() {
        Ok(())
    } else {
        Err(CouncilError::NotActive {
            case_id: registration.case_id.clone(),
            status: registration.status,
        })
    }
}

/// The registration after a change, or `None` when the change changes nothing. A new interval
/// without a new date moves the next review to the last review (or registration) plus the new
/// interval, so the schedule always follows the interval the council set.
pub fn change(
    current: &Registration,
    change: RegistrationChange,
    now: Timestamp,
) -> Result<Option<Registration>, CouncilError> {
    require_active(current)?;
    let mut next = current.clone();
    if let Some(category) = change.category {
        next.category = check_registrable(category)?;
    }
    if let Some(lead) = change.lead_agency {
        next.lead_agency = lead;
    }
    if let Some(key_person) = change.key_person {
        next.key_person = Some(key_person);
    }
    let period_start = current.reviewed_or_registered_on();
    if let Some(days) = change.review_interval_days {
        next.review_interval_days = review_interval(Some(days), days)?;
        if change.next_review_on.is_none()
            && next.review_interval_days != current.review_interval_days
        {
            next.next_review_on = review_due(period_start, next.review_interval_days)?;
        }
    }
    if let Some(date) = change.next_review_on {
        if date <= period_start {
            return Err(invalid(
                "next_review_on",
                format!("must be after the last review or registration ({period_start})"),
            ));
        }
        next.next_review_on = date;
    }
    if next.same_terms(current) {
        return Ok(None);
    }
    next.staff = change.staff;
    next.updated_at = now;
    Ok(Some(next))
}

/// How a registration ends outside a meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Close {
        reason: String,
    },
    Transfer {
        to: Municipality,
        reason: Option<String>,
    },
}

/// The checked outcome of an ending: a transfer goes to another municipality.
fn ending_outcome(
    registration: &Registration,
    ending: Ending,
) -> Result<DecisionOutcome, CouncilError> {
    match ending {
        Ending::Close { reason } => Ok(DecisionOutcome::Close { reason }),
        Ending::Transfer { to, reason } => {
            if to == registration.municipality {
                return Err(invalid(
                    "transfer_to",
                    format!("{to} is the case's own municipality; name the one it moves to"),
                ));
            }
            Ok(DecisionOutcome::Transfer { to, reason })
        }
    }
}

/// Applies a close or transfer outcome to a registration, on `on`.
fn ended(registration: &mut Registration, outcome: &DecisionOutcome, on: Date) {
    match outcome {
        DecisionOutcome::Continue => {}
        DecisionOutcome::Close { reason } => {
            registration.status = RegistrationStatus::Closed;
            registration.reason = Some(reason.clone());
            registration.ended_on = Some(on);
        }
        DecisionOutcome::Transfer { to, reason } => {
            registration.status = RegistrationStatus::Transferred;
            registration.reason = reason.clone();
            registration.transferred_to = Some(to.clone());
            registration.ended_on = Some(on);
        }
    }
}

/// Ends an active registration on `on` (終結 or 移管) without a meeting.
pub fn end(
    current: &Registration,
    ending: Ending,
    on: Date,
    staff: Staff,
    now: Timestamp,
) -> Result<Registration, CouncilError> {
    require_active(current)?;
    if on < current.registered_on {
        return Err(invalid(
            "ended_on",
            format!("is before the registration ({})", current.registered_on),
        ));
    }
    let outcome = ending_outcome(current, ending)?;
    let mut next = current.clone();
    ended(&mut next, &outcome, on);
    next.staff = staff;
    next.updated_at = now;
    Ok(next)
}

/// The outcome a request asks for, before its fields are checked together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    Continue,
    Close,
    Transfer,
}

/// A decision as the coordinator records it.
#[derive(Debug, Clone)]
pub struct DecisionInput {
    pub kind: OutcomeKind,
    pub reason: Option<String>,
    pub transfer_to: Option<Municipality>,
    /// `None` keeps the current lead agency.
    pub lead_agency: Option<AgencyId>,
    pub plan: Option<Sealed>,
    /// For `Continue`; `None`: the meeting day plus the review interval.
    pub next_review_on: Option<Date>,
    pub staff: Staff,
}

/// Checks a decision on one case of a meeting and returns it with the registration it leaves:
/// reviewed on the meeting day, with its next review moved (continue) or ended (close,
/// transfer), and the lead agency the council chose.
pub fn decide(
    current: &Registration,
    meeting: &Meeting,
    input: DecisionInput,
    decided_by: AgencyId,
    today: Date,
    now: Timestamp,
) -> Result<(Decision, Registration), CouncilError> {
    if !meeting.case_ids.contains(&current.case_id) {
        return Err(CouncilError::NotOnAgenda {
            case_id: current.case_id.clone(),
            meeting_id: meeting.id.clone(),
        });
    }
    require_active(current)?;
    if meeting.held_on > today {
        return Err(CouncilError::NotHeldYet {
            meeting_id: meeting.id.clone(),
            held_on: meeting.held_on,
        });
    }
    if meeting.held_on < current.registered_on {
        return Err(CouncilError::HeldBeforeRegistration {
            meeting_id: meeting.id.clone(),
            case_id: current.case_id.clone(),
            held_on: meeting.held_on,
            registered_on: current.registered_on,
        });
    }
    let held_on = meeting.held_on;
    let (outcome, next_review_on) = match input.kind {
        OutcomeKind::Continue => {
            if input.reason.is_some() {
                return Err(invalid(
                    "close_reason",
                    "is only for a close or transfer decision",
                ));
            }
            if input.transfer_to.is_some() {
                return Err(invalid("transfer_to", "is only for a transfer decision"));
            }
            let next = match input.next_review_on {
                Some(next) => next,
                None => review_due(held_on, current.review_interval_days)?,
            };
            if next <= held_on {
                return Err(invalid(
                    "next_review_on",
                    format!("must be after the meeting day ({held_on})"),
                ));
            }
            (DecisionOutcome::Continue, Some(next))
        }
        OutcomeKind::Close | OutcomeKind::Transfer => {
            if input.next_review_on.is_some() {
                return Err(invalid(
                    "next_review_on",
                    "is only for a continue decision: an ended registration has no next review",
                ));
            }
            let ending = if input.kind == OutcomeKind::Close {
                if input.transfer_to.is_some() {
                    return Err(invalid("transfer_to", "is only for a transfer decision"));
                }
                Ending::Close {
                    reason: input.reason.ok_or_else(|| {
                        invalid("close_reason", "is required to close a case (終結)")
                    })?,
                }
            } else {
                Ending::Transfer {
                    to: input.transfer_to.ok_or_else(|| {
                        invalid(
                            "transfer_to",
                            "is required to transfer a case (移管): the municipality code it \
                             moves to",
                        )
                    })?,
                    reason: input.reason,
                }
            };
            (ending_outcome(current, ending)?, None)
        }
    };
    let lead_agency = input
        .lead_agency
        .unwrap_or_else(|| current.lead_agency.clone());
    let mut next = current.clone();
    next.lead_agency = lead_agency.clone();
    next.last_reviewed_on = Some(current.last_reviewed_on.map_or(held_on, |d| d.max(held_on)));
    if let Some(date) = next_review_on {
        next.next_review_on = date;
    }
    ended(&mut next, &outcome, held_on);
    next.staff = input.staff.clone();
    next.updated_at = now;
    let decision = Decision {
        id: DecisionId::generate(),
        meeting_id: meeting.id.clone(),
        case_id: current.case_id.clone(),
        held_on,
        outcome,
        lead_agency,
        plan: input.plan,
        next_review_on,
        decided_by,
        staff: input.staff,
        decided_at: now,
    };
    Ok((decision, next))
}

/// The active registrations due for review by `by`, earliest review first.
pub fn due_by(registrations: &[Registration], by: Date) -> Vec<&Registration> {
    let mut due: Vec<&Registration> = registrations.iter().filter(|r| r.is_due(by)).collect();
    due.sort_by(|a, b| (a.next_review_on, &a.case_id).cmp(&(b.next_review_on, &b.case_id)));
    due
}

/// A meeting's agenda: the cases given, each an active registration of the municipality (in
/// the order given, once each), or else every registration due by the meeting day. A
/// 個別ケース検討会議 is about particular cases, so it needs them named.
pub fn agenda(
    kind: MeetingKind,
    municipality: &Municipality,
    explicit: &[CaseId],
    registrations: &[Registration],
    held_on: Date,
) -> Result<Vec<CaseId>, CouncilError> {
    if explicit.is_empty() {
        if kind == MeetingKind::IndividualCase {
            return Err(invalid(
                "case_ids",
                "a 個別ケース検討会議 (individual_case) needs the case or cases it discusses",
            ));
        }
        return Ok(due_by(registrations, held_on)
            .into_iter()
            .map(|r| r.case_id.clone())
            .collect());
    }
    let mut seen = HashSet::new();
    let mut cases = Vec::with_capacity(explicit.len());
    for case_id in explicit {
        let active = registrations
            .iter()
            .any(|r| &r.case_id == case_id && r.is_active() && &r.municipality == municipality);
        if !active {
            return Err(CouncilError::NotRegistered {
                case_id: case_id.clone(),
                municipality: municipality.clone(),
            });
        }
        if seen.insert(case_id.clone()) {
            cases.push(case_id.clone());
        }
    }
    Ok(cases)
}

/// The decisions on a case from meetings other than `meeting` held on or before its day,
/// newest first: what the council had decided when this meeting took the case up.
pub fn previous_decisions<'a>(decisions: &'a [Decision], meeting: &Meeting) -> Vec<&'a Decision> {
    let mut earlier: Vec<&Decision> = decisions
        .iter()
        .filter(|d| d.meeting_id != meeting.id && d.held_on <= meeting.held_on)
        .collect();
    earlier.sort_by_key(|d| std::cmp::Reverse((d.held_on, d.decided_at)));
    earlier
}

/// Where the review period a meeting looks back over begins: the latest earlier review of this
/// registration, or its registration day. Computed from the decisions rather than from
/// `last_reviewed_on`, so a pack printed again after its own meeting still covers the same
/// period.
pub fn review_period_start(registered_on: Date, earlier_reviews: &[&Decision]) -> Date {
    earlier_reviews
        .iter()
        .map(|d| d.held_on)
        .filter(|held_on| *held_on >= registered_on)
        .max()
        .unwrap_or(registered_on)
}

/// Why a case on the agenda needs the council's decision rather than a nod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionTrigger {
    /// A referral of the case has a passed timer.
    OverdueHandoff,
    /// A referral reported during the review period that the family did not connect.
    NotConnected,
    /// The review date had come by the council's previous 実務者会議, which did not review the
    /// case: it missed a review.
    ReviewPastDue,
}

/// What the pack's rules need to know about one case on the agenda.
#[derive(Debug, Clone, Copy)]
pub struct CaseStanding<'a> {
    pub category: CaseCategory,
    pub next_review_on: Date,
    /// When the review period began (start of its day in Japan).
    pub review_period_start: Timestamp,
    pub referrals: &'a [Referral],
}

fn has_overdue_timer(referral: &Referral, now: Timestamp) -> bool {
    !overdue(&referral.state, &referral.deadlines, now).is_empty()
}

/// A not-connected outcome reported in the review period. Older ones were before the council
/// at its last review already.
fn newly_not_connected(referral: &Referral, since: Timestamp) -> bool {
    referral.state.connection == ConnectionState::NotConnected
        && referral
            .state
            .connection_updated_at
            .is_some_and(|at| at >= since)
}

/// Whether a case missed a review. Reviews fall due between meetings all the time, and a
/// meeting takes up every case due by its day, so a review date before the meeting day is the
/// normal case, not a late one. A review is late when its date had come by the council's
/// previous 実務者会議 (`previous_review_meeting`, the periodic review of every registered case)
/// and that meeting did not move it. Before the council's first 実務者会議 no review is late.
pub fn review_past_due(next_review_on: Date, previous_review_meeting: Option<Date>) -> bool {
    previous_review_meeting.is_some_and(|day| next_review_on <= day)
}

/// Why a case needs a decision, with timers judged at `now` and `previous_review_meeting` the
/// day of the council's last 実務者会議 before this meeting.
pub fn decision_triggers(
    case: &CaseStanding,
    previous_review_meeting: Option<Date>,
    now: Timestamp,
) -> Vec<DecisionTrigger> {
    let mut triggers = Vec::new();
    if case.referrals.iter().any(|r| has_overdue_timer(r, now)) {
        triggers.push(DecisionTrigger::OverdueHandoff);
    }
    if case
        .referrals
        .iter()
        .any(|r| newly_not_connected(r, case.review_period_start))
    {
        triggers.push(DecisionTrigger::NotConnected);
    }
    if review_past_due(case.next_review_on, previous_review_meeting) {
        triggers.push(DecisionTrigger::ReviewPastDue);
    }
    triggers
}

/// The first page of a pack: how many cases of each category, how many handoffs are overdue or
/// ended without the family connecting, and how many cases need a decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackSummary {
    pub cases: u32,
    pub requires_protection: u32,
    pub requires_support: u32,
    pub specific_expectant_mothers: u32,
    /// Referrals with at least one passed timer.
    pub overdue_handoffs: u32,
    /// Referrals reported not connected during their case's review period.
    pub not_connected_handoffs: u32,
    /// Cases that missed a review (see `review_past_due`).
    pub reviews_past_due: u32,
    pub cases_needing_decision: u32,
}

pub fn summarise(
    cases: &[CaseStanding],
    previous_review_meeting: Option<Date>,
    now: Timestamp,
) -> PackSummary {
    let mut summary = PackSummary::default();
    for case in cases {
        summary.cases += 1;
        match case.category {
            CaseCategory::RequiresProtection => summary.requires_protection += 1,
            CaseCategory::RequiresSupport => summary.requires_support += 1,
            CaseCategory::SpecificExpectantMother => summary.specific_expectant_mothers += 1,
            // Never registered; counted in `cases` only.
            CaseCategory::General => {}
        }
        let count = |check: &dyn Fn(&Referral) -> bool| {
            u32::try_from(case.referrals.iter().filter(|r| check(r)).count()).unwrap_or(u32::MAX)
        };
        summary.overdue_handoffs += count(&|r| has_overdue_timer(r, now));
        summary.not_connected_handoffs +=
            count(&|r| newly_not_connected(r, case.review_period_start));
        let triggers = decision_triggers(case, previous_review_meeting, now);
        if triggers.contains(&DecisionTrigger::ReviewPastDue) {
            summary.reviews_past_due += 1;
        }
        if !triggers.is_empty() {
            summary.cases_needing_decision += 1;
        }
    }
    summary
}

/// Whether `caller` sees the council's decisions on a case of `municipality`: its members and
/// coordinator do; other participants learn that the case is registered, not what the council
/// decided.
pub fn sees_decisions(caller: &super::Agency, municipality: &super::Municipality) -> bool {
    caller.is_council_member(municipality) || caller.is_coordinator_of(municipality)
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::domain::basis::LegalBasisKind;
    use crate::domain::referral::{Deadlines, ReferralState};
    use crate::domain::{Purpose, ReferralId, Urgency};

    fn aoba() -> Municipality {
        Municipality::parse("141178").unwrap()
    }

    fn agency(id: &str) -> AgencyId {
        AgencyId::parse(id).unwrap()
    }

    fn staff() -> Staff {
        Staff {
            name: "調整担当 佐藤".to_owned(),
            role: "社会福祉士".to_owned(),
        }
    }

    fn now() -> Timestamp {
        start_of_day(date!(2026 - 06 - 01)).plus(time::Duration::hours(10))
    }

    fn new_registration(registered_on: Date) -> NewRegistration {
        NewRegistration {
            case_id: CaseId::generate(),
            municipality: aoba(),
            category: CaseCategory::RequiresSupport,
            registered_on,
            lead_agency: agency("kodomo"),
            key_person: None,
            review_interval_days: None,
            next_review_on: None,
            justification: None,
            registered_by: agency("kodomo"),
            staff: staff(),
        }
    }

    fn registered(registered_on: Date) -> Registration {
        register(
            new_registration(registered_on),
            90,
            date!(2026 - 06 - 01),
            now(),
        )
        .unwrap()
    }

    fn meeting(held_on: Date, cases: &[&Registration]) -> Meeting {
        Meeting {
            id: MeetingId::generate(),
            municipality: aoba(),
            kind: MeetingKind::Practitioners,
            held_on,
            case_ids: cases.iter().map(|r| r.case_id.clone()).collect(),
            scheduled_by: agency("kodomo"),
            staff: staff(),
            scheduled_at: now(),
        }
    }

    fn input(kind: OutcomeKind) -> DecisionInput {
        DecisionInput {
            kind,
            reason: None,
            transfer_to: None,
            lead_agency: None,
            plan: None,
            next_review_on: None,
            staff: staff(),
        }
    }

    fn referral(state: ReferralState, deadline_hours_from_now: i64) -> Referral {
        let due = now().plus(time::Duration::hours(deadline_hours_from_now));
        Referral {
            id: ReferralId::generate(),
            case_id: CaseId::generate(),
            municipality: aoba(),
            from_agency: agency("kodomo"),
            to_agency: agency("nursery"),
            purpose: Purpose::parse("nursery_admission").unwrap(),
            urgency: Urgency::Routine,
            basis: LegalBasisKind::CouncilSharing,
            consent_id: None,
            justification: None,
            hide_sender: false,
            body: Sealed(vec![1]),
            staff: staff(),
            sent_at: now().plus(time::Duration::hours(-100)),
            deadlines: Deadlines {
                deliver_by: due,
                respond_by: due,
                connect_by: due,
                confirm_by: due,
            },
            deadline_terms: None,
            state,
            closed_with_reason: None,
        }
    }

    #[test]
    fn the_first_review_falls_one_interval_after_registration() {
        let registration = registered(date!(2026 - 04 - 01));
        assert_eq!(registration.review_interval_days, 90);
        assert_eq!(registration.next_review_on, date!(2026 - 06 - 30));
        assert_eq!(registration.status, RegistrationStatus::Active);
        assert_eq!(registration.last_reviewed_on, None);
    }

    #[test]
    fn an_explicit_interval_or_review_date_overrides_the_default() {
        let mut new = new_registration(date!(2026 - 04 - 01));
        new.review_interval_days = Some(30);
        let registration = register(new.clone(), 90, date!(2026 - 06 - 01), now()).unwrap();
        assert_eq!(registration.next_review_on, date!(2026 - 05 - 01));

        new.next_review_on = Some(date!(2026 - 04 - 15));
        let registration = register(new, 90, date!(2026 - 06 - 01), now()).unwrap();
        assert_eq!(registration.next_review_on, date!(2026 - 04 - 15));
        assert_eq!(registration.review_interval_days, 30);
    }

    #[test]
    fn a_general_case_is_not_registered_with_the_council() {
        let mut new = new_registration(date!(2026 - 04 - 01));
        new.category = CaseCategory::General;
        let error = register(new, 90, date!(2026 - 06 - 01), now()).unwrap_err();
        assert!(matches!(
            error,
            CouncilError::Invalid {
                field: "category",
                ..
            }
        ));
    }

    #[test]
    fn registration_dates_must_make_sense() {
        let future = register(
            new_registration(date!(2026 - 06 - 02)),
            90,
            date!(2026 - 06 - 01),
            now(),
        );
        assert!(matches!(
            future,
            Err(CouncilError::Invalid {
                field: "registered_on",
                ..
            })
        ));

        let mut backwards = new_registration(date!(2026 - 04 - 01));
        backwards.next_review_on = Some(date!(2026 - 04 - 01));
        assert!(matches!(
            register(backwards, 90, date!(2026 - 06 - 01), now()),
            Err(CouncilError::Invalid {
                field: "next_review_on",
                ..
            })
        ));

        let mut too_long = new_registration(date!(2026 - 04 - 01));
        too_long.review_interval_days = Some(MAX_REVIEW_INTERVAL_DAYS + 1);
        assert!(matches!(
            register(too_long, 90, date!(2026 - 06 - 01), now()),
            Err(CouncilError::Invalid {
                field: "review_interval_days",
                ..
            })
        ));
    }

    #[test]
    fn a_new_interval_without_a_date_reschedules_the_next_review() {
        let registration = registered(date!(2026 - 04 - 01));
        let changed = change(
            &registration,
            RegistrationChange {
                category: None,
                lead_agency: None,
                key_person: None,
                review_interval_days: Some(30),
                next_review_on: None,
                staff: staff(),
            },
            now(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(changed.review_interval_days, 30);
        assert_eq!(changed.next_review_on, date!(2026 - 05 - 01));
    }

    #[test]
    fn a_change_that_changes_nothing_is_no_change() {
        let registration = registered(date!(2026 - 04 - 01));
        let same = change(
            &registration,
            RegistrationChange {
                category: Some(registration.category),
                lead_agency: Some(registration.lead_agency.clone()),
                key_person: None,
                review_interval_days: Some(registration.review_interval_days),
                next_review_on: None,
                staff: staff(),
            },
            now(),
        )
        .unwrap();
        assert_eq!(same, None);
    }

    #[test]
    fn only_registrations_due_by_the_day_and_still_active_are_due() {
        let early = registered(date!(2026 - 01 - 10));
        let late = registered(date!(2026 - 05 - 20));
        let mut closed = registered(date!(2026 - 01 - 01));
        closed = end(
            &closed,
            Ending::Close {
                reason: "支援目標達成".to_owned(),
            },
            date!(2026 - 05 - 01),
            staff(),
            now(),
        )
        .unwrap();
        let all = vec![late.clone(), closed, early.clone()];
        let due: Vec<_> = due_by(&all, date!(2026 - 06 - 01))
            .into_iter()
            .map(|r| r.case_id.clone())
            .collect();
        assert_eq!(due, vec![early.case_id.clone()]);

        let agenda_ids = agenda(
            MeetingKind::Practitioners,
            &aoba(),
            &[],
            &all,
            date!(2026 - 08 - 18),
        )
        .unwrap();
        assert_eq!(agenda_ids, vec![early.case_id, late.case_id]);
    }

    #[test]
    fn an_explicit_agenda_takes_only_active_registrations_once_each() {
        let active = registered(date!(2026 - 04 - 01));
        let ended = end(
            &registered(date!(2026 - 04 - 01)),
            Ending::Transfer {
                to: Municipality::parse("131016").unwrap(),
                reason: None,
            },
            date!(2026 - 05 - 01),
            staff(),
            now(),
        )
        .unwrap();
        let all = vec![active.clone(), ended.clone()];
        let ids = agenda(
            MeetingKind::IndividualCase,
            &aoba(),
            &[active.case_id.clone(), active.case_id.clone()],
            &all,
            date!(2026 - 05 - 01),
        )
        .unwrap();
        assert_eq!(ids, vec![active.case_id.clone()]);

        let refused = agenda(
            MeetingKind::Practitioners,
            &aoba(),
            &[active.case_id, ended.case_id.clone()],
            &all,
            date!(2026 - 05 - 01),
        );
        assert_eq!(
            refused,
            Err(CouncilError::NotRegistered {
                case_id: ended.case_id,
                municipality: aoba()
            })
        );
    }

    #[test]
    fn an_individual_case_meeting_needs_its_cases_named() {
        let error = agenda(
            MeetingKind::IndividualCase,
            &aoba(),
            &[],
            &[],
            date!(2026 - 05 - 01),
        )
        .unwrap_err();
        assert!(matches!(
            error,
            CouncilError::Invalid {
                field: "case_ids",
                ..
            }
        ));
    }

    #[test]
    fn a_continue_decision_reviews_the_case_and_schedules_the_next_review_one_interval_on() {
        let registration = registered(date!(2026 - 01 - 10));
        let meeting = meeting(date!(2026 - 05 - 20), &[&registration]);
        let mut choice = input(OutcomeKind::Continue);
        choice.lead_agency = Some(agency("jisou"));
        let (decision, after) = decide(
            &registration,
            &meeting,
            choice,
            agency("kodomo"),
            date!(2026 - 06 - 01),
            now(),
        )
        .unwrap();
        assert_eq!(decision.outcome, DecisionOutcome::Continue);
        assert_eq!(decision.next_review_on, Some(date!(2026 - 08 - 18)));
        assert_eq!(decision.held_on, date!(2026 - 05 - 20));
        assert_eq!(after.last_reviewed_on, Some(date!(2026 - 05 - 20)));
        assert_eq!(after.next_review_on, date!(2026 - 08 - 18));
        assert_eq!(after.lead_agency, agency("jisou"));
        assert!(after.is_active());
    }

    #[test]
    fn a_close_decision_needs_a_reason_and_ends_the_registration() {
        let registration = registered(date!(2026 - 01 - 10));
        let meeting = meeting(date!(2026 - 05 - 20), &[&registration]);
        let missing = decide(
            &registration,
            &meeting,
            input(OutcomeKind::Close),
            agency("kodomo"),
            date!(2026 - 06 - 01),
            now(),
        );
        assert!(matches!(
            missing,
            Err(CouncilError::Invalid {
                field: "close_reason",
                ..
            })
        ));

        let mut choice = input(OutcomeKind::Close);
        choice.reason = Some("支援目標達成".to_owned());
        let (decision, after) = decide(
            &registration,
            &meeting,
            choice,
            agency("kodomo"),
            date!(2026 - 06 - 01),
            now(),
        )
        .unwrap();
        assert_eq!(decision.next_review_on, None);
        assert_eq!(after.status, RegistrationStatus::Closed);
        assert_eq!(after.ended_on, Some(date!(2026 - 05 - 20)));
        assert!(!after.is_due(date!(2030 - 01 - 01)));
    }

    #[test]
    fn a_transfer_goes_to_another_municipality() {
        let registration = registered(date!(2026 - 01 - 10));
        let meeting = meeting(date!(2026 - 05 - 20), &[&registration]);
        let mut own = input(OutcomeKind::Transfer);
        own.transfer_to = Some(aoba());
        let refused = decide(
            &registration,
            &meeting,
            own,
            agency("kodomo"),
            date!(2026 - 06 - 01),
            now(),
        );
        assert!(matches!(
            refused,
            Err(CouncilError::Invalid {
                field: "transfer_to",
                ..
            })
        ));

        let mut elsewhere = input(OutcomeKind::Transfer);
        elsewhere.transfer_to = Some(Municipality::parse("131016").unwrap());
        let (_, after) = decide(
            &registration,
            &meeting,
            elsewhere,
            agency("kodomo"),
            date!(2026 - 06 - 01),
            now(),
        )
        .unwrap();
        assert_eq!(after.status, RegistrationStatus::Transferred);
        assert_eq!(after.transferred_to, Municipality::parse("131016"));
    }

    #[test]
    fn decisions_are_refused_off_the_agenda_before_the_meeting_and_on_ended_registrations() {
        let registration = registered(date!(2026 - 01 - 10));
        let other = registered(date!(2026 - 01 - 10));
        let off_agenda = meeting(date!(2026 - 05 - 20), &[&other]);
        assert!(matches!(
            decide(
                &registration,
                &off_agenda,
                input(OutcomeKind::Continue),
                agency("kodomo"),
                date!(2026 - 06 - 01),
                now()
            ),
            Err(CouncilError::NotOnAgenda { .. })
        ));

        let future = meeting(date!(2026 - 06 - 02), &[&registration]);
        assert!(matches!(
            decide(
                &registration,
                &future,
                input(OutcomeKind::Continue),
                agency("kodomo"),
                date!(2026 - 06 - 01),
                now()
            ),
            Err(CouncilError::NotHeldYet { .. })
        ));

        let closed = end(
            &registration,
            Ending::Close {
                reason: "転出".to_owned(),
            },
            date!(2026 - 05 - 01),
            staff(),
            now(),
        )
        .unwrap();
        let held = meeting(date!(2026 - 05 - 20), &[&closed]);
        assert!(matches!(
            decide(
                &closed,
                &held,
                input(OutcomeKind::Continue),
                agency("kodomo"),
                date!(2026 - 06 - 01),
                now()
            ),
            Err(CouncilError::NotActive { .. })
        ));
    }

    #[test]
    fn a_continue_decision_takes_no_reason_and_a_close_no_next_review() {
        let registration = registered(date!(2026 - 01 - 10));
        let meeting = meeting(date!(2026 - 05 - 20), &[&registration]);
        let mut reasoned = input(OutcomeKind::Continue);
        reasoned.reason = Some("x".to_owned());
        assert!(matches!(
            decide(
                &registration,
                &meeting,
                reasoned,
                agency("kodomo"),
                date!(2026 - 06 - 01),
                now()
            ),
            Err(CouncilError::Invalid {
                field: "close_reason",
                ..
            })
        ));
        let mut dated = input(OutcomeKind::Close);
        dated.reason = Some("支援目標達成".to_owned());
        dated.next_review_on = Some(date!(2026 - 09 - 01));
        assert!(matches!(
            decide(
                &registration,
                &meeting,
                dated,
                agency("kodomo"),
                date!(2026 - 06 - 01),
                now()
            ),
            Err(CouncilError::Invalid {
                field: "next_review_on",
                ..
            })
        ));
        let mut backwards = input(OutcomeKind::Continue);
        backwards.next_review_on = Some(date!(2026 - 05 - 20));
        assert!(matches!(
            decide(
                &registration,
                &meeting,
                backwards,
                agency("kodomo"),
                date!(2026 - 06 - 01),
                now()
            ),
            Err(CouncilError::Invalid {
                field: "next_review_on",
                ..
            })
        ));
    }

    #[test]
    fn previous_decisions_leave_out_this_and_later_meetings_newest_first() {
        let registration = registered(date!(2026 - 01 - 10));
        let decided = |held_on: Date| {
            let meeting = meeting(held_on, &[&registration]);
            decide(
                &registration,
                &meeting,
                input(OutcomeKind::Continue),
                agency("kodomo"),
                date!(2026 - 12 - 31),
                now(),
            )
            .unwrap()
            .0
        };
        let first = decided(date!(2026 - 02 - 01));
        let second = decided(date!(2026 - 03 - 01));
        let later = decided(date!(2026 - 09 - 01));
        let this = meeting(date!(2026 - 05 - 20), &[&registration]);
        let mut own = decided(date!(2026 - 05 - 20));
        own.meeting_id = this.id.clone();
        let all = vec![first.clone(), later, own, second.clone()];
        let previous = previous_decisions(&all, &this);
        assert_eq!(previous, vec![&second, &first]);
        assert_eq!(
            review_period_start(registration.registered_on, &previous),
            date!(2026 - 03 - 01)
        );
        assert_eq!(
            review_period_start(registration.registered_on, &[]),
            registration.registered_on
        );
    }

    #[test]
    fn a_case_needs_a_decision_for_an_overdue_handoff_a_new_not_connected_outcome_or_a_late_review()
    {
        let period_start = start_of_day(date!(2026 - 03 - 01));
        let fine = referral(ReferralState::new(), 48);
        let late = referral(ReferralState::new(), -1);
        let mut not_connected_state = ReferralState::new();
        not_connected_state.connection = ConnectionState::NotConnected;
        not_connected_state.connection_updated_at = Some(start_of_day(date!(2026 - 04 - 01)));
        not_connected_state.confirmed_at = Some(start_of_day(date!(2026 - 04 - 02)));
        let not_connected = referral(not_connected_state.clone(), -1);
        let mut old_state = not_connected_state;
        old_state.connection_updated_at = Some(start_of_day(date!(2026 - 02 - 01)));
        let old_not_connected = referral(old_state, -1);

        let held_on = date!(2026 - 06 - 01);
        let triggers = |referrals: &[Referral], next_review_on: Date| {
            let standing = CaseStanding {
                category: CaseCategory::RequiresSupport,
                next_review_on,
                review_period_start: period_start,
                referrals,
            };
            decision_triggers(&standing, Some(date!(2026 - 05 - 31)), now())
        };
        assert!(triggers(&[fine.clone(), old_not_connected], held_on).is_empty());
        assert_eq!(
            triggers(&[late], held_on),
            vec![DecisionTrigger::OverdueHandoff]
        );
        assert_eq!(
            triggers(&[not_connected], held_on),
            vec![DecisionTrigger::NotConnected]
        );
        assert_eq!(
            triggers(&[fine], date!(2026 - 05 - 31)),
            vec![DecisionTrigger::ReviewPastDue]
        );
    }

    #[test]
    fn a_review_is_late_only_when_the_previous_practitioners_meeting_let_it_pass() {
        let previous = Some(date!(2026 - 03 - 01));
        // Fell due since the last 実務者会議: this meeting is where it is reviewed.
        assert!(!review_past_due(date!(2026 - 03 - 02), previous));
        // Was due by the last 実務者会議 and still not moved: missed.
        assert!(review_past_due(date!(2026 - 03 - 01), previous));
        assert!(review_past_due(date!(2026 - 01 - 15), previous));
        // Before the council's first 実務者会議 nothing can have been missed.
        assert!(!review_past_due(date!(2026 - 01 - 15), None));
    }

    #[test]
    fn the_summary_counts_categories_overdue_handoffs_and_cases_needing_a_decision() {
        let period_start = start_of_day(date!(2026 - 03 - 01));
        let held_on = date!(2026 - 06 - 01);
        let overdue_pair = vec![
            referral(ReferralState::new(), -1),
            referral(ReferralState::new(), -2),
        ];
        let calm = vec![referral(ReferralState::new(), 48)];
        let cases = [
            CaseStanding {
                category: CaseCategory::RequiresProtection,
                next_review_on: held_on,
                review_period_start: period_start,
                referrals: &overdue_pair,
            },
            CaseStanding {
                category: CaseCategory::SpecificExpectantMother,
                next_review_on: held_on,
                review_period_start: period_start,
                referrals: &calm,
            },
            CaseStanding {
                category: CaseCategory::SpecificExpectantMother,
                next_review_on: date!(2026 - 05 - 01),
                review_period_start: period_start,
                referrals: &[],
            },
        ];
        let summary = summarise(&cases, Some(date!(2026 - 05 - 01)), now());
        assert_eq!(
            summary,
            PackSummary {
                cases: 3,
                requires_protection: 1,
                requires_support: 0,
                specific_expectant_mothers: 2,
                overdue_handoffs: 2,
                not_connected_handoffs: 0,
                reviews_past_due: 1,
                cases_needing_decision: 2,
            }
        );
    }

    #[test]
    fn outcomes_round_trip_through_their_stored_parts() {
        for outcome in [
            DecisionOutcome::Continue,
            DecisionOutcome::Close {
                reason: "支援目標達成".to_owned(),
            },
            DecisionOutcome::Transfer {
                to: Municipality::parse("131016").unwrap(),
                reason: None,
            },
        ] {
            let parts = DecisionOutcome::from_parts(
                outcome.code(),
                outcome.reason().map(ToOwned::to_owned),
                outcome.transfer_to().cloned(),
            );
            assert_eq!(parts, Some(outcome));
        }
        assert_eq!(DecisionOutcome::from_parts("close", None, None), None);
    }

    #[test]
    fn reasons_are_short_plain_text() {
        assert_eq!(reason_text("close_reason", "  "), Ok(None));
        assert_eq!(
            reason_text("close_reason", " 転出 "),
            Ok(Some("転出".to_owned()))
        );
        assert!(reason_text("close_reason", "a\u{7}b").is_err());
        assert!(reason_text("close_reason", &"あ".repeat(MAX_REASON_CHARS + 1)).is_err());
    }
}
