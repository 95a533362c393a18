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
mod tests;
