//! The 要対協 (council) of a municipality: the coordinator (調整機関) registers cases, changes and
//! ends registrations, schedules meetings and records their decisions; council members list
//! registrations and meetings and read meeting packs built from the case threads.

use std::collections::HashMap;

use time::Date;

use super::cases::{CaseView, ThreadItem};
use super::{CaseAccess, FeedAbout, hidden_reporters, notify};
use crate::domain::council::{
    self, CaseStanding, CouncilError, Decision, DecisionInput, DecisionTrigger, Ending, Meeting,
    MeetingKind, NewRegistration, PackSummary, Registration, RegistrationChange,
};
use crate::domain::records::{Case, FeedEventKind, Referral};
use crate::domain::{
    Agency, AgencyId, AgencyStatus, CaseCategory, CaseId, MeetingId, Municipality, Sealed, Staff,
    Timestamp,
};
use crate::error::Error;
use crate::store::Transaction;

impl From<CouncilError> for Error {
    fn from(error: CouncilError) -> Self {
        match error {
            CouncilError::Invalid { field, reason } => Error::invalid(field, reason),
            other => Error::FailedPrecondition(other.to_string()),
        }
    }
}

/// Refuses anyone but the coordinator of `municipality`.
fn require_coordinator(
    caller: &Agency,
    municipality: &Municipality,
    what: &str,
) -> Result<(), Error> {
    if caller.is_coordinator_of(municipality) {
        return Ok(());
    }
    Err(Error::PermissionDenied(format!(
        "only the coordinator (調整機関) of municipality {municipality} {what}; agency {} is not \
         its coordinator",
        caller.id
    )))
}

/// Refuses anyone but the members of the council of `municipality` and its coordinator.
fn require_member(caller: &Agency, municipality: &Municipality) -> Result<(), Error> {
    if caller.is_council_member(municipality) || caller.is_coordinator_of(municipality) {
        return Ok(());
    }
    Err(Error::PermissionDenied(format!(
        "agency {} is not a member of the 要対協 of municipality {municipality}: only its members \
         see its registrations, meetings and meeting packs",
        caller.id
    )))
}

/// Loads a case the caller coordinates. A case that does not exist and one the caller may not
/// see are refused alike; a participant that is not the coordinator is told who is.
async fn coordinated_case(
    tx: &mut dyn Transaction,
    caller: &Agency,
    case_id: &CaseId,
    what: &str,
) -> Result<Case, Error> {
    let (case, _) = super::visible_case(tx, caller, case_id).await?;
    require_coordinator(caller, &case.municipality, what)?;
    Ok(case)
}

/// Checks the lead agency (主担当機関) named in `field`: a registered, active agency that sits on
/// the council of `municipality` or coordinates it.
async fn check_lead_agency(
    tx: &mut dyn Transaction,
    municipality: &Municipality,
    id: &AgencyId,
    field: &'static str,
) -> Result<(), Error> {
    let agency = tx.agency(id).await?.ok_or_else(|| {
        Error::invalid(
            field,
            format!("agency {id} is not registered with this hub"),
        )
    })?;
    if !agency.is_council_member(municipality) && !agency.is_coordinator_of(municipality) {
        return Err(Error::invalid(
            field,
            format!(
                "agency {id} is not a member of the 要対協 of municipality {municipality}: the \
                 lead agency (主担当機関) must be a council member or the coordinator; name \
                 one of them, or ask the coordinator to add {id} to the council"
            ),
        ));
    }
    if agency.status == AgencyStatus::Suspended {
        return Err(Error::FailedPrecondition(format!(
            "agency {id} is suspended and cannot lead a case now"
        )));
    }
    Ok(())
}

/// The active registration of a case, or FAILED_PRECONDITION naming why there is none.
async fn active_registration(tx: &mut dyn Transaction, case: &Case) -> Result<Registration, Error> {
    match tx.registration(&case.id).await? {
        Some(registration) if registration.is_active() => Ok(registration),
        Some(registration) => Err(CouncilError::NotActive {
            case_id: case.id.clone(),
            status: registration.status,
        }
        .into()),
        None => Err(CouncilError::NotRegistered {
            case_id: case.id.clone(),
            municipality: case.municipality.clone(),
        }
        .into()),
    }
}

/// Tells every participant of a case but the caller that its council registration changed.
async fn tell_participants(
    tx: &mut dyn Transaction,
    caller: &Agency,
    case_id: &CaseId,
    now: Timestamp,
) -> Result<(), Error> {
    let others: Vec<AgencyId> = tx
        .participants(case_id)
        .await?
        .into_iter()
        .map(|p| p.agency_id)
        .filter(|id| id != &caller.id)
        .collect();
    notify(
        tx,
        others,
        FeedEventKind::CouncilUpdated,
        FeedAbout {
            case_id: Some(case_id.clone()),
            ..FeedAbout::default()
        },
        now,
    )
    .await
}

/// Writes a registration, makes its lead agency (and the coordinator acting) participants of
/// the case, and tells the participants.
async fn save_and_tell(
    tx: &mut dyn Transaction,
    caller: &Agency,
    registration: &Registration,
    now: Timestamp,
) -> Result<(), Error> {
    tx.save_registration(registration).await?;
    tx.add_participants(
        &registration.case_id,
        &[&registration.lead_agency, &caller.id],
        now,
    )
    .await?;
    tell_participants(tx, caller, &registration.case_id, now).await
}

/// A registration the coordinator asks for.
#[derive(Debug, Clone)]
pub struct RegisterCase {
    pub case_id: CaseId,
    pub category: CaseCategory,
    /// `None`: today.
    pub registered_on: Option<Date>,
    pub lead_agency: AgencyId,
    pub key_person: Option<Sealed>,
    pub review_interval_days: Option<u32>,
    pub next_review_on: Option<Date>,
    pub justification: Option<String>,
    pub staff: Staff,
}

/// Registers a case with the council of its municipality. From then on `council_sharing` is a
/// legal basis among members for it (the case's `council_registered` follows the registration).
pub async fn register_case(
    tx: &mut dyn Transaction,
    caller: &Agency,
    request: RegisterCase,
    default_interval: u32,
    now: Timestamp,
) -> Result<Registration, Error> {
    let case = coordinated_case(
        tx,
        caller,
        &request.case_id,
        "registers cases with its 要対協",
    )
    .await?;
    if let Some(existing) = tx.registration(&case.id).await?
        && existing.is_active()
    {
        return Err(Error::AlreadyExists(format!(
            "case {} is already registered with the 要対協 of {} (since {}); change it with \
             UpdateRegistration",
            case.id, case.municipality, existing.registered_on
        )));
    }
    check_lead_agency(tx, &case.municipality, &request.lead_agency, "lead_agency").await?;
    let today = now.date_in_japan();
    let registration = council::register(
        NewRegistration {
            case_id: case.id.clone(),
            municipality: case.municipality.clone(),
            category: request.category,
            registered_on: request.registered_on.unwrap_or(today),
            lead_agency: request.lead_agency,
            key_person: request.key_person,
            review_interval_days: request.review_interval_days,
            next_review_on: request.next_review_on,
            justification: request.justification,
            registered_by: caller.id.clone(),
            staff: request.staff,
        },
        default_interval,
        today,
        now,
    )?;
    save_and_tell(tx, caller, &registration, now).await?;
    Ok(registration)
}

/// Changes an active registration. A change that changes nothing writes nothing.
pub async fn update_registration(
    tx: &mut dyn Transaction,
    caller: &Agency,
    case_id: &CaseId,
    change: RegistrationChange,
    now: Timestamp,
) -> Result<Registration, Error> {
    let case = coordinated_case(tx, caller, case_id, "changes its 要対協 registrations").await?;
    let current = active_registration(tx, &case).await?;
    if let Some(lead) = &change.lead_agency {
        check_lead_agency(tx, &case.municipality, lead, "lead_agency").await?;
    }
    match council::change(&current, change, now)? {
        Some(changed) => {
            save_and_tell(tx, caller, &changed, now).await?;
            Ok(changed)
        }
        None => Ok(current),
    }
}

/// Ends an active registration between meetings (終結 or 移管) on `ended_on` (default today).
pub async fn end_registration(
    tx: &mut dyn Transaction,
    caller: &Agency,
    case_id: &CaseId,
    ending: Ending,
    ended_on: Option<Date>,
    staff: Staff,
    now: Timestamp,
) -> Result<Registration, Error> {
    let case = coordinated_case(tx, caller, case_id, "ends its 要対協 registrations").await?;
    let current = active_registration(tx, &case).await?;
    let today = now.date_in_japan();
    let on = ended_on.unwrap_or(today);
    if on > today {
        return Err(Error::invalid("ended_on", format!("{on} is in the future")));
    }
    let ended = council::end(&current, ending, on, staff, now)?;
    save_and_tell(tx, caller, &ended, now).await?;
    Ok(ended)
}

/// The registrations of a municipality, for its council's members.
pub async fn registrations(
    tx: &mut dyn Transaction,
    caller: &Agency,
    municipality: &Municipality,
    include_ended: bool,
) -> Result<Vec<Registration>, Error> {
    require_member(caller, municipality)?;
    Ok(tx.registrations(municipality, include_ended).await?)
}

/// A meeting the coordinator schedules.
#[derive(Debug, Clone)]
pub struct ScheduleMeeting {
    pub municipality: Municipality,
    pub kind: MeetingKind,
    pub held_on: Date,
    /// Empty: every active registration due by `held_on`.
    pub case_ids: Vec<CaseId>,
    pub staff: Staff,
}

pub async fn schedule_meeting(
    tx: &mut dyn Transaction,
    caller: &Agency,
    request: ScheduleMeeting,
    now: Timestamp,
) -> Result<Meeting, Error> {
    require_coordinator(
        caller,
        &request.municipality,
        "schedules its 要対協 meetings",
    )?;
    let registrations = tx.registrations(&request.municipality, false).await?;
    let case_ids = council::agenda(
        request.kind,
        &request.municipality,
        &request.case_ids,
        &registrations,
        request.held_on,
    )?;
    let meeting = Meeting {
        id: MeetingId::generate(),
        municipality: request.municipality,
        kind: request.kind,
        held_on: request.held_on,
        case_ids,
        scheduled_by: caller.id.clone(),
        staff: request.staff,
        scheduled_at: now,
    };
    tx.insert_meeting(&meeting).await?;
    Ok(meeting)
}

/// The meetings of a municipality, for its council's members.
pub async fn meetings(
    tx: &mut dyn Transaction,
    caller: &Agency,
    municipality: &Municipality,
) -> Result<Vec<Meeting>, Error> {
    require_member(caller, municipality)?;
    Ok(tx.meetings(municipality).await?)
}

/// Loads a meeting the caller may see (a member or the coordinator of its council). A meeting
/// that does not exist and one of another council are refused alike.
async fn meeting(
    tx: &mut dyn Transaction,
    caller: &Agency,
    id: &MeetingId,
) -> Result<Meeting, Error> {
    tx.meeting(id)
        .await?
        .filter(|meeting| require_member(caller, &meeting.municipality).is_ok())
        .ok_or_else(|| Error::not_visible("meeting", &caller.id))
}

/// A decision the coordinator records for one case of a meeting.
#[derive(Debug, Clone)]
pub struct RecordDecision {
    pub meeting_id: MeetingId,
    pub case_id: CaseId,
    pub input: DecisionInput,
}

/// Records a decision and applies it to the registration: reviewed on the meeting day, next
/// review moved (continue) or the registration ended (close, transfer), lead agency as decided.
pub async fn record_decision(
    tx: &mut dyn Transaction,
    caller: &Agency,
    request: RecordDecision,
    now: Timestamp,
) -> Result<(Decision, Registration), Error> {
    let meeting = meeting(tx, caller, &request.meeting_id).await?;
    require_coordinator(
        caller,
        &meeting.municipality,
        "records its 要対協 decisions",
    )?;
    if !meeting.case_ids.contains(&request.case_id) {
        return Err(CouncilError::NotOnAgenda {
            case_id: request.case_id,
            meeting_id: meeting.id,
        }
        .into());
    }
    let case = tx
        .case(&request.case_id)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "case",
            id: request.case_id.to_string(),
        })?;
    let already = tx
        .case_decisions(&case.id, None)
        .await?
        .into_iter()
        .any(|d| d.meeting_id == meeting.id);
    if already {
        return Err(Error::AlreadyExists(format!(
            "meeting {} already recorded its decision on case {}",
            meeting.id, case.id
        )));
    }
    let current = active_registration(tx, &case).await?;
    if let Some(lead) = &request.input.lead_agency {
        check_lead_agency(tx, &case.municipality, lead, "lead_agency").await?;
    }
    let (decision, registration) = council::decide(
        &current,
        &meeting,
        request.input,
        caller.id.clone(),
        now.date_in_japan(),
        now,
    )?;
    tx.insert_decision(&decision).await?;
    save_and_tell(tx, caller, &registration, now).await?;
    Ok((decision, registration))
}

/// One case of a meeting pack, as the reader may see it.
#[derive(Debug, Clone)]
pub struct PackCase {
    /// The case with its participants; reporters of 通告 hidden from the reader.
    pub view: CaseView,
    pub registration: Registration,
    /// Every referral of the case, with whether the consent it relied on was since withdrawn.
    pub referrals: Vec<(Referral, bool)>,
    /// Referral events and notes since the review period began, oldest first.
    pub timeline: Vec<ThreadItem>,
    /// Decisions from earlier meetings, newest first.
    pub previous_decisions: Vec<Decision>,
    /// This meeting's decision, once recorded.
    pub decision: Option<Decision>,
    pub triggers: Vec<DecisionTrigger>,
    pub review_period_start: Date,
}

/// A meeting pack: the agenda's cases in order, and the summary.
#[derive(Debug, Clone)]
pub struct MeetingPack {
    pub meeting: Meeting,
    pub cases: Vec<PackCase>,
    pub summary: PackSummary,
    /// The instant overdue timers are judged at.
    pub generated_at: Timestamp,
}

/// Builds the pack of a meeting for a member of its council. Every referral and note of the
/// agenda's cases is in it, sealed as stored: the reader's client opens what was sealed to it.
pub async fn meeting_pack(
    tx: &mut dyn Transaction,
    caller: &Agency,
    meeting_id: &MeetingId,
    now: Timestamp,
) -> Result<MeetingPack, Error> {
    let meeting = meeting(tx, caller, meeting_id).await?;
    let material = tx.agenda_material(meeting_id).await?;
    let previous_review_meeting = tx
        .previous_meeting_day(
            &meeting.municipality,
            MeetingKind::Practitioners,
            meeting.held_on,
        )
        .await?;

    let mut cases: HashMap<CaseId, Case> = material
        .cases
        .into_iter()
        .map(|case| (case.id.clone(), case))
        .collect();
    let mut registrations: HashMap<CaseId, Registration> = material
        .registrations
        .into_iter()
        .map(|r| (r.case_id.clone(), r))
        .collect();
    let mut participants: HashMap<CaseId, Vec<_>> = HashMap::new();
    for (case_id, participant) in material.participants {
        participants.entry(case_id).or_default().push(participant);
    }
    let mut referrals: HashMap<CaseId, Vec<Referral>> = HashMap::new();
    for referral in material.referrals {
        referrals
            .entry(referral.case_id.clone())
            .or_default()
            .push(referral);
    }
    let mut timelines: HashMap<CaseId, Vec<ThreadItem>> = HashMap::new();
    for event in material.events {
        timelines
            .entry(event.case_id.clone())
            .or_default()
            .push(ThreadItem::ReferralEvent(event));
    }
    for note in material.notes {
        timelines
            .entry(note.case_id.clone())
            .or_default()
            .push(ThreadItem::Note(note));
    }
    // A transfer is on the timeline of the case it left and of the case it went to.
    for transfer in material.transfers {
        let mut on = vec![transfer.case_id.clone()];
        on.extend(transfer.receiving_case.clone());
        for case_id in on {
            timelines
                .entry(case_id)
                .or_default()
                .push(ThreadItem::Transfer(Box::new(transfer.clone())));
        }
    }
    let mut decisions: HashMap<CaseId, Vec<Decision>> = HashMap::new();
    for decision in material.decisions {
        decisions
            .entry(decision.case_id.clone())
            .or_default()
            .push(decision);
    }

    let mut pack_cases = Vec::with_capacity(meeting.case_ids.len());
    let mut standings_input = Vec::with_capacity(meeting.case_ids.len());
    for case_id in &meeting.case_ids {
        let missing = || Error::internal(MissingAgendaCase(case_id.clone()));
        let case = cases.remove(case_id).ok_or_else(missing)?;
        let registration = registrations.remove(case_id).ok_or_else(missing)?;
        let case_referrals = referrals.remove(case_id).unwrap_or_default();
        let case_decisions = decisions.remove(case_id).unwrap_or_default();
        let previous = council::previous_decisions(&case_decisions, &meeting);
        let period_start = council::review_period_start(registration.registered_on, &previous);
        let since = council::start_of_day(period_start);
        let mut timeline: Vec<ThreadItem> = timelines
            .remove(case_id)
            .unwrap_or_default()
            .into_iter()
            .filter(|item| item.at() >= since)
            .collect();
        timeline.sort_by_key(ThreadItem::at);
        let previous_decisions: Vec<Decision> = previous.into_iter().cloned().collect();
        let decision = case_decisions
            .iter()
            .find(|d| d.meeting_id == meeting.id)
            .cloned();
        let view = CaseView {
            hidden: hidden_reporters(&case_referrals, &caller.id),
            participants: participants.remove(case_id).unwrap_or_default(),
            access: if caller.is_coordinator_of(&case.municipality) {
                CaseAccess::Coordinator
            } else {
                CaseAccess::Participant
            },
            case,
        };
        let with_withdrawal = case_referrals
            .iter()
            .map(|r| {
                let withdrawn = r
                    .consent_id
                    .as_ref()
                    .is_some_and(|id| material.withdrawn_consents.contains(id));
                (r.clone(), withdrawn)
            })
            .collect();
        standings_input.push((
            registration.category,
            registration.next_review_on,
            since,
            case_referrals,
        ));
        pack_cases.push(PackCase {
            view,
            registration,
            referrals: with_withdrawal,
            timeline,
            previous_decisions,
            decision,
            triggers: Vec::new(),
            review_period_start: period_start,
        });
    }

    let standings: Vec<CaseStanding> = standings_input
        .iter()
        .map(
            |(category, next_review_on, since, referrals)| CaseStanding {
                category: *category,
                next_review_on: *next_review_on,
                review_period_start: *since,
                referrals,
            },
        )
        .collect();
    for (case, standing) in pack_cases.iter_mut().zip(&standings) {
        case.triggers = council::decision_triggers(standing, previous_review_meeting, now);
    }
    let summary = council::summarise(&standings, previous_review_meeting, now);
    Ok(MeetingPack {
        meeting,
        cases: pack_cases,
        summary,
        generated_at: now,
    })
}

/// A case on an agenda whose case or registration row is gone: the agenda only ever names
/// registered cases and neither is ever deleted, so this is a bug or a damaged database.
#[derive(Debug, thiserror::Error)]
#[error("case {0} is on a meeting's agenda but its case or registration is missing")]
struct MissingAgendaCase(CaseId);
