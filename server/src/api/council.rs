//! CouncilService: 要対協 registrations, meetings, meeting packs and decisions.

use std::collections::{BTreeMap, HashMap};

use tonic::{Request, Response, Status};
use tsunagu_proto::v1 as pb;
use tsunagu_proto::v1::council_service_server::CouncilService;

use super::views::{case_out, decision_out, optional_date_out, thread_entry};
use super::{Hub, convert};
use crate::casework::audit::AuditTarget;
use crate::casework::council::{
    self, MeetingPack, PackCase, RecordDecision, RegisterCase, ScheduleMeeting,
};
use crate::casework::directory;
use crate::domain::basis::MAX_JUSTIFICATION_CHARS;
use crate::domain::council::{
    DecisionInput, DecisionTrigger, Ending, Meeting, MeetingKind, OutcomeKind, Registration,
    RegistrationChange, RegistrationStatus, check_registrable, reason_text,
};
use crate::domain::{Agency, AgencyId, CaseCategory, CaseId, MeetingId};
use crate::error::Error;
use crate::identity::caller;
use crate::store::Locking;

/// Most cases one meeting's agenda may name explicitly.
const MAX_AGENDA_CASES: usize = 2000;

// ---- Parsing requests. Every failure names its field. ----
// Public for the fuzz targets (fuzz/), which run these on decoded requests without a hub.

/// A council category: one of the three the council registers.
pub fn council_category(field: &'static str, value: i32) -> Result<CaseCategory, Error> {
    let category = convert::category(field, value)?;
    check_registrable(category).map_err(|error| match error {
        crate::domain::council::CouncilError::Invalid { reason, .. } => {
            Error::invalid(field, reason)
        }
        other => Error::from(other),
    })
}

/// A number of days; 0 means none given.
pub fn optional_days(value: u32) -> Option<u32> {
    (value != 0).then_some(value)
}

/// A justification: plain text (line breaks allowed) of at most `MAX_JUSTIFICATION_CHARS`.
pub fn justification(text: &str) -> Result<Option<String>, Error> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let control = text.chars().any(|c| c.is_control() && c != '\n');
    if text.chars().count() > MAX_JUSTIFICATION_CHARS || control {
        return Err(Error::invalid(
            "justification",
            format!(
                "must be at most {MAX_JUSTIFICATION_CHARS} characters of plain text; it is shown \
                 to the council's members, so it must not name the family"
            ),
        ));
    }
    Ok(Some(text.to_owned()))
}

/// A close reason: a short code-like text, or none.
pub fn reason(text: &str) -> Result<Option<String>, Error> {
    Ok(reason_text("close_reason", text)?)
}

/// The kind of a meeting; unspecified is missing.
pub fn meeting_kind(value: i32) -> Result<MeetingKind, Error> {
    Ok(
        match convert::required_enum::<pb::MeetingKind>("kind", value)? {
            pb::MeetingKind::Representatives => MeetingKind::Representatives,
            pb::MeetingKind::Practitioners => MeetingKind::Practitioners,
            pb::MeetingKind::IndividualCase => MeetingKind::IndividualCase,
            pb::MeetingKind::Unspecified => return Err(Error::missing("kind")),
        },
    )
}

/// The kind of a decision's outcome; unspecified is missing.
pub fn outcome_kind(value: i32) -> Result<OutcomeKind, Error> {
    Ok(
        match convert::required_enum::<pb::DecisionOutcome>("outcome", value)? {
            pb::DecisionOutcome::Continue => OutcomeKind::Continue,
            pb::DecisionOutcome::Close => OutcomeKind::Close,
            pb::DecisionOutcome::Transfer => OutcomeKind::Transfer,
            pb::DecisionOutcome::Unspecified => return Err(Error::missing("outcome")),
        },
    )
}

/// How an EndRegistration request ends the registration.
pub fn ending(body: &pb::EndRegistrationRequest) -> Result<Ending, Error> {
    let reason = reason(&body.close_reason)?;
    match outcome_kind(body.outcome)? {
        OutcomeKind::Continue => Err(Error::invalid(
            "outcome",
            "CONTINUE does not end a registration: use CLOSE (終結) or TRANSFER (移管)",
        )),
        OutcomeKind::Close => {
            if !body.transfer_to.is_empty() {
                return Err(Error::invalid("transfer_to", "is only for TRANSFER"));
            }
            Ok(Ending::Close {
                reason: reason.ok_or_else(|| {
                    Error::invalid("close_reason", "is required to close a case (終結)")
                })?,
            })
        }
        OutcomeKind::Transfer => Ok(Ending::Transfer {
            to: convert::municipality("transfer_to", &body.transfer_to)?,
            reason,
        }),
    }
}

/// The cases a meeting's agenda names explicitly.
pub fn case_ids(ids: &[String]) -> Result<Vec<CaseId>, Error> {
    if ids.len() > MAX_AGENDA_CASES {
        return Err(Error::invalid(
            "case_ids",
            format!("may name at most {MAX_AGENDA_CASES} cases"),
        ));
    }
    ids.iter()
        .map(|id| convert::required_id("case_ids", id, CaseId::parse))
        .collect()
}

// ---- Rendering responses. ----

fn status_out(status: RegistrationStatus) -> pb::RegistrationStatus {
    match status {
        RegistrationStatus::Active => pb::RegistrationStatus::Active,
        RegistrationStatus::Closed => pb::RegistrationStatus::Closed,
        RegistrationStatus::Transferred => pb::RegistrationStatus::Transferred,
    }
}

fn kind_out(kind: MeetingKind) -> pb::MeetingKind {
    match kind {
        MeetingKind::Representatives => pb::MeetingKind::Representatives,
        MeetingKind::Practitioners => pb::MeetingKind::Practitioners,
        MeetingKind::IndividualCase => pb::MeetingKind::IndividualCase,
    }
}

fn trigger_out(trigger: DecisionTrigger) -> pb::DecisionTrigger {
    match trigger {
        DecisionTrigger::OverdueHandoff => pb::DecisionTrigger::OverdueHandoff,
        DecisionTrigger::NotConnected => pb::DecisionTrigger::NotConnected,
        DecisionTrigger::ReviewPastDue => pb::DecisionTrigger::ReviewPastDue,
    }
}

pub fn registration_out(registration: &Registration) -> pb::Registration {
    let r = registration;
    pb::Registration {
        case_id: r.case_id.to_string(),
        municipality: r.municipality.to_string(),
        category: convert::category_out(r.category) as i32,
        registered_on: convert::date_text(r.registered_on),
        lead_agency: r.lead_agency.to_string(),
        key_person: r.key_person.as_ref().map(convert::sealed_out),
        review_interval_days: r.review_interval_days,
        next_review_on: convert::date_text(r.next_review_on),
        last_reviewed_on: optional_date_out(r.last_reviewed_on),
        status: status_out(r.status) as i32,
        close_reason: r.reason.clone().unwrap_or_default(),
        transferred_to: r
            .transferred_to
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        ended_on: optional_date_out(r.ended_on),
        justification: r.justification.clone().unwrap_or_default(),
        registered_by: r.registered_by.to_string(),
        updated_at: Some(convert::timestamp(r.updated_at)),
    }
}

pub fn meeting_out(meeting: &Meeting) -> pb::Meeting {
    pb::Meeting {
        meeting_id: meeting.id.to_string(),
        municipality: meeting.municipality.to_string(),
        kind: kind_out(meeting.kind) as i32,
        held_on: convert::date_text(meeting.held_on),
        case_ids: meeting.case_ids.iter().map(ToString::to_string).collect(),
        scheduled_at: Some(convert::timestamp(meeting.scheduled_at)),
        scheduled_by: meeting.scheduled_by.to_string(),
    }
}

/// One case of a pack for `viewer`: referrals and their events rendered exactly as the referral
/// and thread calls render them, so a hidden reporter stays hidden here too.
fn pack_case_out(
    case: &PackCase,
    viewer: &AgencyId,
    pack: &MeetingPack,
    agencies: &HashMap<AgencyId, Agency>,
) -> pb::PackCase {
    let referrals: HashMap<_, _> = case
        .referrals
        .iter()
        .map(|(referral, _)| (&referral.id, referral))
        .collect();
    let timeline = case
        .timeline
        .iter()
        .filter_map(|item| thread_entry(item, &referrals, viewer))
        .collect();
    pb::PackCase {
        case: Some(case_out(&case.view, agencies)),
        registration: Some(registration_out(&case.registration)),
        referrals: case
            .referrals
            .iter()
            .map(|(referral, withdrawn)| {
                convert::referral(referral, viewer, pack.generated_at, *withdrawn)
            })
            .collect(),
        timeline,
        previous_decisions: case.previous_decisions.iter().map(decision_out).collect(),
        decision: case.decision.as_ref().map(decision_out),
        decision_triggers: case
            .triggers
            .iter()
            .map(|t| trigger_out(*t) as i32)
            .collect(),
        review_period_start: convert::date_text(case.review_period_start),
    }
}

/// Every agency id a rendered pack shows. Taken from the rendered messages, after redaction, so
/// that a hidden reporter's name never reaches the reader through the name table.
fn mentioned_agencies(meeting: &pb::Meeting, cases: &[pb::PackCase]) -> Vec<String> {
    let mut ids = vec![meeting.scheduled_by.clone()];
    let decision_ids = |ids: &mut Vec<String>, d: &pb::Decision| {
        ids.push(d.lead_agency.clone());
        ids.push(d.decided_by.clone());
    };
    for case in cases {
        if let Some(c) = &case.case {
            ids.push(c.opened_by.clone());
            ids.extend(c.participants.iter().map(|p| p.agency_id.clone()));
        }
        if let Some(r) = &case.registration {
            ids.push(r.lead_agency.clone());
            ids.push(r.registered_by.clone());
        }
        for r in &case.referrals {
            ids.extend([
                r.from_agency.clone(),
                r.to_agency.clone(),
                r.confirmed_by.clone(),
            ]);
        }
        for entry in &case.timeline {
            match &entry.entry {
                Some(pb::thread_entry::Entry::ReferralEvent(e)) => ids.push(e.actor_agency.clone()),
                Some(pb::thread_entry::Entry::Note(n)) => {
                    ids.push(n.from_agency.clone());
                    ids.extend(n.recipients.iter().map(|r| r.agency_id.clone()));
                }
                Some(pb::thread_entry::Entry::Decision(d)) => decision_ids(&mut ids, d),
                Some(pb::thread_entry::Entry::Reseal(r)) => {
                    ids.push(r.resealed_by.clone());
                    ids.extend(r.added_readers.iter().cloned());
                }
                Some(pb::thread_entry::Entry::Transfer(t)) => ids.push(t.lead_agency.clone()),
                None => {}
            }
        }
        for d in case.previous_decisions.iter().chain(&case.decision) {
            decision_ids(&mut ids, d);
        }
    }
    ids.retain(|id| !id.is_empty());
    ids
}

fn pack_out(
    pack: &MeetingPack,
    viewer: &AgencyId,
    agencies: &HashMap<AgencyId, Agency>,
    municipality_name: String,
) -> pb::GetMeetingPackResponse {
    let meeting = meeting_out(&pack.meeting);
    let cases: Vec<pb::PackCase> = pack
        .cases
        .iter()
        .map(|case| pack_case_out(case, viewer, pack, agencies))
        .collect();
    let names: BTreeMap<String, String> = mentioned_agencies(&meeting, &cases)
        .into_iter()
        .filter_map(|id| {
            let agency = AgencyId::parse(&id).and_then(|id| agencies.get(&id))?;
            Some((id, agency.display_name.clone()))
        })
        .collect();
    let s = &pack.summary;
    pb::GetMeetingPackResponse {
        meeting: Some(meeting),
        municipality_name,
        cases,
        summary: Some(pb::PackSummary {
            cases: s.cases,
            requires_protection: s.requires_protection,
            requires_support: s.requires_support,
            specific_expectant_mothers: s.specific_expectant_mothers,
            overdue_handoffs: s.overdue_handoffs,
            cases_needing_decision: s.cases_needing_decision,
            not_connected_handoffs: s.not_connected_handoffs,
            reviews_past_due: s.reviews_past_due,
        }),
        generated_at: Some(convert::timestamp(pack.generated_at)),
        agency_names: names.into_iter().collect(),
    }
}

/// The audit target of a registration change: its case and municipality.
fn registration_target(registration: &Registration) -> AuditTarget {
    AuditTarget {
        municipality: Some(registration.municipality.clone()),
        case_id: Some(registration.case_id.clone()),
        ..AuditTarget::default()
    }
}

#[tonic::async_trait]
impl CouncilService for Hub {
    async fn register_case(
        &self,
        request: Request<pb::RegisterCaseRequest>,
    ) -> Result<Response<pb::RegisterCaseResponse>, Status> {
        const OPERATION: &str = "RegisterCase";
        let agency = caller(&request)?.agency.clone();
        let body = request.into_inner();
        let audit = self
            .audit(&agency, "CouncilService/RegisterCase")
            .case(&body.case_id)
            .staff(body.staff.as_ref());
        let result = async {
            let register = RegisterCase {
                case_id: convert::required_id("case_id", &body.case_id, CaseId::parse)?,
                category: council_category("category", body.category)?,
                registered_on: convert::optional_date("registered_on", &body.registered_on)?,
                lead_agency: convert::agency_id("lead_agency", &body.lead_agency)?,
                key_person: convert::optional_sealed(
                    "key_person",
                    body.key_person.as_ref(),
                    self.max_sealed(),
                )?,
                review_interval_days: optional_days(body.review_interval_days),
                next_review_on: convert::optional_date("next_review_on", &body.next_review_on)?,
                justification: justification(&body.justification)?,
                staff: convert::staff(body.staff.as_ref())?,
            };
            let key = convert::idempotency_key(&body.idempotency_key)?;
            let (agency, settings) = (agency.clone(), std::sync::Arc::clone(&self.settings));
            self.write(OPERATION, key, &body, &audit, move |tx, now| {
                Box::pin(async move {
                    let registration = council::register_case(
                        tx,
                        &agency,
                        register,
                        settings.council.review_interval_days,
                        now,
                    )
                    .await?;
                    let response = pb::RegisterCaseResponse {
                        registration: Some(registration_out(&registration)),
                    };
                    Ok((response, registration_target(&registration)))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }

    async fn update_registration(
        &self,
        request: Request<pb::UpdateRegistrationRequest>,
    ) -> Result<Response<pb::UpdateRegistrationResponse>, Status> {
        let agency = caller(&request)?.agency.clone();
        let body = request.into_inner();
        let audit = self
            .audit(&agency, "CouncilService/UpdateRegistration")
            .case(&body.case_id)
            .staff(body.staff.as_ref());
        let result = async {
            let case_id = convert::required_id("case_id", &body.case_id, CaseId::parse)?;
            let change = RegistrationChange {
                category: match body.category {
                    0 => None,
                    value => Some(council_category("category", value)?),
                },
                lead_agency: match body.lead_agency.as_str() {
                    "" => None,
                    id => Some(convert::agency_id("lead_agency", id)?),
                },
                key_person: convert::optional_sealed(
                    "key_person",
                    body.key_person.as_ref(),
                    self.max_sealed(),
                )?,
                review_interval_days: optional_days(body.review_interval_days),
                next_review_on: convert::optional_date("next_review_on", &body.next_review_on)?,
                staff: convert::staff(body.staff.as_ref())?,
            };
            let now = self.clock.now();
            let agency = agency.clone();
            self.write_audited(&audit, now, move |tx| {
                Box::pin(async move {
                    let registration =
                        council::update_registration(tx, &agency, &case_id, change, now).await?;
                    let target = registration_target(&registration);
                    let response = pb::UpdateRegistrationResponse {
                        registration: Some(registration_out(&registration)),
                    };
                    Ok((response, target))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }

    async fn end_registration(
        &self,
        request: Request<pb::EndRegistrationRequest>,
    ) -> Result<Response<pb::EndRegistrationResponse>, Status> {
        const OPERATION: &str = "EndRegistration";
        let agency = caller(&request)?.agency.clone();
        let body = request.into_inner();
        let audit = self
            .audit(&agency, "CouncilService/EndRegistration")
            .case(&body.case_id)
            .staff(body.staff.as_ref());
        let result = async {
            let case_id = convert::required_id("case_id", &body.case_id, CaseId::parse)?;
            let ending = ending(&body)?;
            let ended_on = convert::optional_date("ended_on", &body.ended_on)?;
            let staff = convert::staff(body.staff.as_ref())?;
            let key = convert::idempotency_key(&body.idempotency_key)?;
            let agency = agency.clone();
            self.write(OPERATION, key, &body, &audit, move |tx, now| {
                Box::pin(async move {
                    let registration = council::end_registration(
                        tx, &agency, &case_id, ending, ended_on, staff, now,
                    )
                    .await?;
                    let response = pb::EndRegistrationResponse {
                        registration: Some(registration_out(&registration)),
                    };
                    Ok((response, registration_target(&registration)))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }

    async fn list_registrations(
        &self,
        request: Request<pb::ListRegistrationsRequest>,
    ) -> Result<Response<pb::ListRegistrationsResponse>, Status> {
        let agency = caller(&request)?.agency.clone();
        let query = request.get_ref();
        let audit = self
            .audit(&agency, "CouncilService/ListRegistrations")
            .municipality(&query.municipality);
        let result = async {
            let municipality = convert::municipality("municipality", &query.municipality)?;
            let mut tx = self.store.read().await?;
            let registrations =
                council::registrations(&mut *tx, &agency, &municipality, query.include_closed)
                    .await?;
            drop(tx);
            audit.read(self, audit.named()).await?;
            Ok(pb::ListRegistrationsResponse {
                registrations: registrations.iter().map(registration_out).collect(),
            })
        }
        .await;
        audit.finish(self, result).await
    }

    async fn schedule_meeting(
        &self,
        request: Request<pb::ScheduleMeetingRequest>,
    ) -> Result<Response<pb::ScheduleMeetingResponse>, Status> {
        const OPERATION: &str = "ScheduleMeeting";
        let agency = caller(&request)?.agency.clone();
        let body = request.into_inner();
        let audit = self
            .audit(&agency, "CouncilService/ScheduleMeeting")
            .municipality(&body.municipality)
            .staff(body.staff.as_ref());
        let result = async {
            let schedule = ScheduleMeeting {
                municipality: convert::municipality("municipality", &body.municipality)?,
                kind: meeting_kind(body.kind)?,
                held_on: convert::date("held_on", &body.held_on)?,
                case_ids: case_ids(&body.case_ids)?,
                staff: convert::staff(body.staff.as_ref())?,
            };
            let key = convert::idempotency_key(&body.idempotency_key)?;
            let (agency, named) = (agency.clone(), audit.named().clone());
            self.write(OPERATION, key, &body, &audit, move |tx, now| {
                Box::pin(async move {
                    let meeting = council::schedule_meeting(tx, &agency, schedule, now).await?;
                    let response = pb::ScheduleMeetingResponse {
                        meeting: Some(meeting_out(&meeting)),
                    };
                    Ok((response, named))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }

    async fn list_meetings(
        &self,
        request: Request<pb::ListMeetingsRequest>,
    ) -> Result<Response<pb::ListMeetingsResponse>, Status> {
        let agency = caller(&request)?.agency.clone();
        let query = request.get_ref();
        let audit = self
            .audit(&agency, "CouncilService/ListMeetings")
            .municipality(&query.municipality);
        let result = async {
            let municipality = convert::municipality("municipality", &query.municipality)?;
            let mut tx = self.store.read().await?;
            let meetings = council::meetings(&mut *tx, &agency, &municipality).await?;
            drop(tx);
            audit.read(self, audit.named()).await?;
            Ok(pb::ListMeetingsResponse {
                meetings: meetings.iter().map(meeting_out).collect(),
            })
        }
        .await;
        audit.finish(self, result).await
    }

    async fn get_meeting_pack(
        &self,
        request: Request<pb::GetMeetingPackRequest>,
    ) -> Result<Response<pb::GetMeetingPackResponse>, Status> {
        let agency = caller(&request)?.agency.clone();
        let meeting_id = &request.get_ref().meeting_id;
        let audit = self.audit(&agency, "CouncilService/GetMeetingPack");
        let result = async {
            let meeting_id = convert::required_id("meeting_id", meeting_id, MeetingId::parse)?;
            let now = self.clock.now();
            let mut tx = self.store.read().await?;
            let pack = council::meeting_pack(&mut *tx, &agency, &meeting_id, now).await?;
            let agencies = directory(&mut *tx).await?;
            drop(tx);
            // A pack opens the whole thread of every case on the agenda, so each case gets a
            // record of its own (one transaction for all of them), as reading its thread would.
            let municipality = Some(pack.meeting.municipality.clone());
            let mut targets: Vec<AuditTarget> = pack
                .cases
                .iter()
                .map(|case| AuditTarget {
                    municipality: municipality.clone(),
                    case_id: Some(case.view.case.id.clone()),
                    ..AuditTarget::default()
                })
                .collect();
            if targets.is_empty() {
                targets.push(AuditTarget {
                    municipality,
                    ..AuditTarget::default()
                });
            }
            let written = audit.clone();
            self.store
                .write(Locking::Narrow, move |tx| {
                    Box::pin(async move {
                        for target in &targets {
                            written.write(tx, target, now).await?;
                        }
                        Ok::<_, Error>(())
                    })
                })
                .await?;
            let name = self
                .settings
                .council
                .municipality_names
                .get(pack.meeting.municipality.as_str())
                .cloned()
                .unwrap_or_default();
            Ok(pack_out(&pack, &agency.id, &agencies, name))
        }
        .await;
        audit.finish(self, result).await
    }

    async fn record_decision(
        &self,
        request: Request<pb::RecordDecisionRequest>,
    ) -> Result<Response<pb::RecordDecisionResponse>, Status> {
        const OPERATION: &str = "RecordDecision";
        let agency = caller(&request)?.agency.clone();
        let body = request.into_inner();
        let audit = self
            .audit(&agency, "CouncilService/RecordDecision")
            .case(&body.case_id)
            .staff(body.staff.as_ref());
        let result = async {
            let record = RecordDecision {
                meeting_id: convert::required_id("meeting_id", &body.meeting_id, MeetingId::parse)?,
                case_id: convert::required_id("case_id", &body.case_id, CaseId::parse)?,
                input: DecisionInput {
                    kind: outcome_kind(body.outcome)?,
                    reason: reason(&body.close_reason)?,
                    transfer_to: convert::optional_municipality("transfer_to", &body.transfer_to)?,
                    lead_agency: match body.lead_agency.as_str() {
                        "" => None,
                        id => Some(convert::agency_id("lead_agency", id)?),
                    },
                    plan: convert::optional_sealed("plan", body.plan.as_ref(), self.max_sealed())?,
                    next_review_on: convert::optional_date("next_review_on", &body.next_review_on)?,
                    staff: convert::staff(body.staff.as_ref())?,
                },
            };
            let key = convert::idempotency_key(&body.idempotency_key)?;
            let agency = agency.clone();
            self.write(OPERATION, key, &body, &audit, move |tx, now| {
                Box::pin(async move {
                    let (decision, registration) =
                        council::record_decision(tx, &agency, record, now).await?;
                    let response = pb::RecordDecisionResponse {
                        decision: Some(decision_out(&decision)),
                        registration: Some(registration_out(&registration)),
                    };
                    Ok((response, registration_target(&registration)))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }
}
