//! The 要対協: council registrations, meetings with their agendas, decisions, and the bulk reads
//! a meeting pack is built from.

use super::StoreError;
use super::db::{Connection, Row, query};
use super::queries::{case_from_row, event_from_row, note_from_row, referral_from_row};
use super::transfers::transfer_from_row;

use std::collections::HashSet;

use async_trait::async_trait;

use crate::domain::council::{Decision, Meeting, MeetingKind, Registration};
use crate::domain::records::{Case, Note, Participant, Referral, ReferralEvent};
use crate::domain::{CaseId, ConsentId, MeetingId, Municipality, Timestamp};

/// Everything stored about the cases on one meeting's agenda, read in a handful of queries
/// rather than a handful per case, so a 実務者会議 of hundreds of cases builds its pack quickly.
#[derive(Debug, Clone, Default)]
pub struct AgendaMaterial {
    pub cases: Vec<Case>,
    /// Each case's participants, by case.
    pub participants: Vec<(CaseId, Participant)>,
    pub registrations: Vec<Registration>,
    /// Oldest first.
    pub referrals: Vec<Referral>,
    /// Every referral event of the agenda's cases, oldest first.
    pub events: Vec<ReferralEvent>,
    /// Every note of the agenda's cases with its recipients, oldest first.
    pub notes: Vec<Note>,
    /// Every decision on the agenda's cases, oldest first.
    pub decisions: Vec<Decision>,
    /// The consents of the agenda's cases that have been withdrawn.
    pub withdrawn_consents: HashSet<ConsentId>,
    /// The transfers (移管) from or into the agenda's cases, oldest first.
    pub transfers: Vec<crate::domain::transfer::Transfer>,
}

/// Store operations of this area, part of every `Transaction`.
#[async_trait]
pub trait CouncilQueries: Send {
    /// The registration of a case, whatever its status.
    async fn registration(&mut self, case: &CaseId) -> Result<Option<Registration>, StoreError>;
    /// Writes a registration (a new one replaces an ended one) and keeps its case in step: the
    /// case takes the registration's category, and `council_registered` holds exactly while the
    /// registration is active.
    async fn save_registration(&mut self, registration: &Registration) -> Result<(), StoreError>;
    /// The registrations of a municipality, earliest next review first; ended ones only when
    /// `include_ended`.
    async fn registrations(
        &mut self,
        municipality: &Municipality,
        include_ended: bool,
    ) -> Result<Vec<Registration>, StoreError>;
    /// Stores a meeting with its agenda.
    async fn insert_meeting(&mut self, meeting: &Meeting) -> Result<(), StoreError>;
    async fn meeting(&mut self, id: &MeetingId) -> Result<Option<Meeting>, StoreError>;
    /// The meetings of a municipality by meeting day, then by when they were scheduled.
    async fn meetings(&mut self, municipality: &Municipality) -> Result<Vec<Meeting>, StoreError>;
    /// The day of the latest meeting of `kind` in `municipality` held before `before`.
    async fn previous_meeting_day(
        &mut self,
        municipality: &Municipality,
        kind: MeetingKind,
        before: time::Date,
    ) -> Result<Option<time::Date>, StoreError>;
    /// Stores a decision; `Conflict` when the meeting already decided on the case.
    async fn insert_decision(&mut self, decision: &Decision) -> Result<(), StoreError>;
    /// The decisions on a case recorded at or after `since`, oldest first.
    async fn case_decisions(
        &mut self,
        case: &CaseId,
        since: Option<Timestamp>,
    ) -> Result<Vec<Decision>, StoreError>;
    /// Everything stored about the cases on a meeting's agenda.
    async fn agenda_material(&mut self, meeting: &MeetingId) -> Result<AgendaMaterial, StoreError>;
}

pub(crate) const REGISTRATION_COLUMNS: &str = "case_id, municipality, category, registered_on, \
     lead_agency, key_person, review_interval_days, next_review_on, last_reviewed_on, status, \
     reason, transferred_to, ended_on, justification, registered_by, staff_name, staff_role, \
     registered_at, updated_at";

pub(crate) const MEETING_COLUMNS: &str =
    "meeting_id, municipality, kind, held_on, scheduled_by, staff_name, staff_role, scheduled_at";

pub(crate) const DECISION_COLUMNS: &str = "decision_id, meeting_id, case_id, held_on, outcome, \
     reason, transfer_to, lead_agency, plan, next_review_on, decided_by, staff_name, staff_role, \
     decided_at";

/// The cases on one meeting's agenda, as a subquery on `$1` (the meeting id).
pub(crate) const AGENDA_CASES: &str =
    "SELECT case_id FROM council_meeting_cases WHERE meeting_id = $1";

/// An optional date as its stored text.
pub(crate) fn optional_date_text(date: Option<time::Date>) -> Option<String> {
    date.map(crate::store::queries::date_text)
}

pub(crate) fn optional_date(
    table: &'static str,
    text: Option<String>,
) -> Result<Option<time::Date>, StoreError> {
    text.map(|text| crate::store::queries::parse_date(table, &text))
        .transpose()
}

fn registration_from_row(row: &Row) -> Result<crate::domain::council::Registration, StoreError> {
    use crate::domain::council::{Registration, RegistrationStatus};
    use crate::domain::*;
    use crate::store::council::optional_date;
    use crate::store::queries::{code, optional_code, parse_date};
    const T: &str = "council_registrations";
    let text =
        |column: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(column)?) };
    let interval: i64 = row.try_get("review_interval_days")?;
    let key_person: Option<Vec<u8>> = row.try_get("key_person")?;
    Ok(Registration {
        case_id: code(T, "case_id", &text("case_id")?, CaseId::parse)?,
        municipality: code(
            T,
            "municipality",
            &text("municipality")?,
            Municipality::parse,
        )?,
        category: code(T, "category", &text("category")?, CaseCategory::from_code)?,
        registered_on: parse_date(T, &text("registered_on")?)?,
        lead_agency: code(T, "lead_agency", &text("lead_agency")?, AgencyId::parse)?,
        key_person: key_person.map(Sealed),
        review_interval_days: u32::try_from(interval)
            .map_err(|_| StoreError::corrupt(T, "review_interval_days"))?,
        next_review_on: parse_date(T, &text("next_review_on")?)?,
        last_reviewed_on: optional_date(T, row.try_get("last_reviewed_on")?)?,
        status: code(T, "status", &text("status")?, RegistrationStatus::from_code)?,
        reason: row.try_get("reason")?,
        transferred_to: optional_code(
            T,
            "transferred_to",
            row.try_get("transferred_to")?,
            Municipality::parse,
        )?,
        ended_on: optional_date(T, row.try_get("ended_on")?)?,
        justification: row.try_get("justification")?,
        registered_by: code(T, "registered_by", &text("registered_by")?, AgencyId::parse)?,
        staff: Staff {
            name: row.try_get("staff_name")?,
            role: row.try_get("staff_role")?,
        },
        registered_at: Timestamp::from_millis(row.try_get("registered_at")?),
        updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
    })
}

/// A meeting row, without its agenda (read separately).
pub(crate) fn meeting_from_row(row: &Row) -> Result<crate::domain::council::Meeting, StoreError> {
    use crate::domain::council::{Meeting, MeetingKind};
    use crate::domain::*;
    use crate::store::queries::{code, parse_date};
    const T: &str = "council_meetings";
    let text =
        |column: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(column)?) };
    Ok(Meeting {
        id: code(T, "meeting_id", &text("meeting_id")?, MeetingId::parse)?,
        municipality: code(
            T,
            "municipality",
            &text("municipality")?,
            Municipality::parse,
        )?,
        kind: code(T, "kind", &text("kind")?, MeetingKind::from_code)?,
        held_on: parse_date(T, &text("held_on")?)?,
        case_ids: Vec::new(),
        scheduled_by: code(T, "scheduled_by", &text("scheduled_by")?, AgencyId::parse)?,
        staff: Staff {
            name: row.try_get("staff_name")?,
            role: row.try_get("staff_role")?,
        },
        scheduled_at: Timestamp::from_millis(row.try_get("scheduled_at")?),
    })
}

pub(crate) fn decision_from_row(row: &Row) -> Result<crate::domain::council::Decision, StoreError> {
    use crate::domain::council::{Decision, DecisionOutcome};
    use crate::domain::*;
    use crate::store::council::optional_date;
    use crate::store::queries::{code, optional_code, parse_date};
    const T: &str = "council_decisions";
    let text =
        |column: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(column)?) };
    let outcome = text("outcome")?;
    let transfer_to = optional_code(
        T,
        "transfer_to",
        row.try_get("transfer_to")?,
        Municipality::parse,
    )?;
    let plan: Option<Vec<u8>> = row.try_get("plan")?;
    Ok(Decision {
        id: code(T, "decision_id", &text("decision_id")?, DecisionId::parse)?,
        meeting_id: code(T, "meeting_id", &text("meeting_id")?, MeetingId::parse)?,
        case_id: code(T, "case_id", &text("case_id")?, CaseId::parse)?,
        held_on: parse_date(T, &text("held_on")?)?,
        outcome: DecisionOutcome::from_parts(&outcome, row.try_get("reason")?, transfer_to)
            .ok_or_else(|| StoreError::corrupt(T, format!("outcome {outcome:?}")))?,
        lead_agency: code(T, "lead_agency", &text("lead_agency")?, AgencyId::parse)?,
        plan: plan.map(Sealed),
        next_review_on: optional_date(T, row.try_get("next_review_on")?)?,
        decided_by: code(T, "decided_by", &text("decided_by")?, AgencyId::parse)?,
        staff: Staff {
            name: row.try_get("staff_name")?,
            role: row.try_get("staff_role")?,
        },
        decided_at: Timestamp::from_millis(row.try_get("decided_at")?),
    })
}

/// (meeting id, case id) rows of agendas, in agenda order within each meeting.
pub(crate) fn agenda_row_from_row(
    row: &Row,
) -> Result<(crate::domain::MeetingId, crate::domain::CaseId), StoreError> {
    use crate::store::queries::code;
    const T: &str = "council_meeting_cases";
    let meeting: String = row.try_get("meeting_id")?;
    let case: String = row.try_get("case_id")?;
    Ok((
        code(T, "meeting_id", &meeting, crate::domain::MeetingId::parse)?,
        code(T, "case_id", &case, crate::domain::CaseId::parse)?,
    ))
}

#[async_trait::async_trait]
impl<C: Connection> crate::store::council::CouncilQueries for C {
    async fn registration(
        &mut self,
        case: &crate::domain::CaseId,
    ) -> Result<Option<crate::domain::council::Registration>, StoreError> {
        use crate::store::council::REGISTRATION_COLUMNS;
        let row = query(format!(
            "SELECT {REGISTRATION_COLUMNS} FROM council_registrations WHERE case_id = $1"
        ))
        .bind(case.as_str())
        .fetch_optional(self)
        .await?;
        row.as_ref().map(registration_from_row).transpose()
    }

    async fn save_registration(
        &mut self,
        registration: &crate::domain::council::Registration,
    ) -> Result<(), StoreError> {
        use crate::store::council::optional_date_text;
        use crate::store::queries::date_text;
        let r = registration;
        query(
            "INSERT INTO council_registrations (case_id, municipality, category, \
                     registered_on, lead_agency, key_person, review_interval_days, \
                     next_review_on, last_reviewed_on, status, reason, transferred_to, ended_on, \
                     justification, registered_by, staff_name, staff_role, registered_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                     $14, $15, $16, $17, $18, $19) \
                     ON CONFLICT (case_id) DO UPDATE SET municipality = excluded.municipality, \
                     category = excluded.category, registered_on = excluded.registered_on, \
                     lead_agency = excluded.lead_agency, key_person = excluded.key_person, \
                     review_interval_days = excluded.review_interval_days, \
                     next_review_on = excluded.next_review_on, \
                     last_reviewed_on = excluded.last_reviewed_on, status = excluded.status, \
                     reason = excluded.reason, transferred_to = excluded.transferred_to, \
                     ended_on = excluded.ended_on, justification = excluded.justification, \
                     registered_by = excluded.registered_by, staff_name = excluded.staff_name, \
                     staff_role = excluded.staff_role, registered_at = excluded.registered_at, \
                     updated_at = excluded.updated_at",
        )
        .bind(r.case_id.as_str())
        .bind(r.municipality.as_str())
        .bind(r.category.code())
        .bind(date_text(r.registered_on))
        .bind(r.lead_agency.as_str())
        .bind(r.key_person.as_ref().map(|k| k.0.clone()))
        .bind(i64::from(r.review_interval_days))
        .bind(date_text(r.next_review_on))
        .bind(optional_date_text(r.last_reviewed_on))
        .bind(r.status.code())
        .bind(r.reason.clone())
        .bind(r.transferred_to.as_ref().map(|m| m.as_str().to_owned()))
        .bind(optional_date_text(r.ended_on))
        .bind(r.justification.clone())
        .bind(r.registered_by.as_str())
        .bind(&r.staff.name)
        .bind(&r.staff.role)
        .bind(r.registered_at.millis())
        .bind(r.updated_at.millis())
        .execute(self)
        .await?;
        let updated =
            query("UPDATE cases SET category = $1, council_registered = $2 WHERE case_id = $3")
                .bind(r.category.code())
                .bind(i64::from(r.is_active()))
                .bind(r.case_id.as_str())
                .execute(self)
                .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::corrupt(
                "council_registrations",
                format!("case {} has no row in cases", r.case_id),
            ));
        }
        Ok(())
    }

    async fn registrations(
        &mut self,
        municipality: &crate::domain::Municipality,
        include_ended: bool,
    ) -> Result<Vec<crate::domain::council::Registration>, StoreError> {
        use crate::store::council::REGISTRATION_COLUMNS;
        let rows = query(format!(
            "SELECT {REGISTRATION_COLUMNS} FROM council_registrations \
                     WHERE municipality = $1 AND ($2 = 1 OR status = 'active') \
                     ORDER BY next_review_on, case_id"
        ))
        .bind(municipality.as_str())
        .bind(i64::from(include_ended))
        .fetch_all(self)
        .await?;
        rows.iter().map(registration_from_row).collect()
    }

    async fn insert_meeting(
        &mut self,
        meeting: &crate::domain::council::Meeting,
    ) -> Result<(), StoreError> {
        use crate::store::queries::date_text;
        query(
            "INSERT INTO council_meetings (meeting_id, municipality, kind, held_on, \
                     scheduled_by, staff_name, staff_role, scheduled_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(meeting.id.as_str())
        .bind(meeting.municipality.as_str())
        .bind(meeting.kind.code())
        .bind(date_text(meeting.held_on))
        .bind(meeting.scheduled_by.as_str())
        .bind(&meeting.staff.name)
        .bind(&meeting.staff.role)
        .bind(meeting.scheduled_at.millis())
        .execute(self)
        .await?;
        for (position, case_id) in meeting.case_ids.iter().enumerate() {
            query(
                "INSERT INTO council_meeting_cases (meeting_id, position, case_id) \
                         VALUES ($1, $2, $3)",
            )
            .bind(meeting.id.as_str())
            .bind(i64::try_from(position).unwrap_or(i64::MAX))
            .bind(case_id.as_str())
            .execute(self)
            .await?;
        }
        Ok(())
    }

    async fn meeting(
        &mut self,
        id: &crate::domain::MeetingId,
    ) -> Result<Option<crate::domain::council::Meeting>, StoreError> {
        use crate::store::council::MEETING_COLUMNS;
        let row = query(format!(
            "SELECT {MEETING_COLUMNS} FROM council_meetings WHERE meeting_id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(self)
        .await?;
        let Some(mut meeting) = row.as_ref().map(meeting_from_row).transpose()? else {
            return Ok(None);
        };
        let rows = query(
            "SELECT meeting_id, case_id FROM council_meeting_cases WHERE meeting_id = $1 \
                     ORDER BY position",
        )
        .bind(id.as_str())
        .fetch_all(self)
        .await?;
        meeting.case_ids = rows
            .iter()
            .map(|row| agenda_row_from_row(row).map(|(_, case)| case))
            .collect::<Result<_, _>>()?;
        Ok(Some(meeting))
    }

    async fn meetings(
        &mut self,
        municipality: &crate::domain::Municipality,
    ) -> Result<Vec<crate::domain::council::Meeting>, StoreError> {
        use crate::store::council::MEETING_COLUMNS;
        let rows = query(format!(
            "SELECT {MEETING_COLUMNS} FROM council_meetings WHERE municipality = $1 \
                     ORDER BY held_on, scheduled_at, meeting_id"
        ))
        .bind(municipality.as_str())
        .fetch_all(self)
        .await?;
        let mut meetings = rows
            .iter()
            .map(meeting_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let agenda = query(
            "SELECT c.meeting_id, c.case_id FROM council_meeting_cases c \
                     JOIN council_meetings m ON m.meeting_id = c.meeting_id \
                     WHERE m.municipality = $1 ORDER BY c.meeting_id, c.position",
        )
        .bind(municipality.as_str())
        .fetch_all(self)
        .await?;
        let mut by_meeting: std::collections::HashMap<_, Vec<_>> = std::collections::HashMap::new();
        for row in &agenda {
            let (meeting, case) = agenda_row_from_row(row)?;
            by_meeting.entry(meeting).or_default().push(case);
        }
        for meeting in &mut meetings {
            meeting.case_ids = by_meeting.remove(&meeting.id).unwrap_or_default();
        }
        Ok(meetings)
    }

    async fn previous_meeting_day(
        &mut self,
        municipality: &crate::domain::Municipality,
        kind: crate::domain::council::MeetingKind,
        before: time::Date,
    ) -> Result<Option<time::Date>, StoreError> {
        use crate::store::council::optional_date;
        use crate::store::queries::date_text;
        // Dates are stored as YYYY-MM-DD, so text order is date order.
        let row = query(
            "SELECT MAX(held_on) AS held_on FROM council_meetings \
                     WHERE municipality = $1 AND kind = $2 AND held_on < $3",
        )
        .bind(municipality.as_str())
        .bind(kind.code())
        .bind(date_text(before))
        .fetch_one(self)
        .await?;
        optional_date("council_meetings", row.try_get("held_on")?)
    }

    async fn insert_decision(
        &mut self,
        decision: &crate::domain::council::Decision,
    ) -> Result<(), StoreError> {
        use crate::store::council::optional_date_text;
        use crate::store::queries::date_text;
        let d = decision;
        let result = query(
            "INSERT INTO council_decisions (decision_id, meeting_id, case_id, held_on, \
                     outcome, reason, transfer_to, lead_agency, plan, next_review_on, \
                     decided_by, staff_name, staff_role, decided_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                     ON CONFLICT (meeting_id, case_id) DO NOTHING",
        )
        .bind(d.id.as_str())
        .bind(d.meeting_id.as_str())
        .bind(d.case_id.as_str())
        .bind(date_text(d.held_on))
        .bind(d.outcome.code())
        .bind(d.outcome.reason().map(ToOwned::to_owned))
        .bind(d.outcome.transfer_to().map(|m| m.as_str().to_owned()))
        .bind(d.lead_agency.as_str())
        .bind(d.plan.as_ref().map(|p| p.0.clone()))
        .bind(optional_date_text(d.next_review_on))
        .bind(d.decided_by.as_str())
        .bind(&d.staff.name)
        .bind(&d.staff.role)
        .bind(d.decided_at.millis())
        .execute(self)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "a decision of meeting {} on case {}",
                d.meeting_id, d.case_id
            )));
        }
        Ok(())
    }

    async fn case_decisions(
        &mut self,
        case: &crate::domain::CaseId,
        since: Option<crate::domain::Timestamp>,
    ) -> Result<Vec<crate::domain::council::Decision>, StoreError> {
        use crate::store::council::DECISION_COLUMNS;
        let rows = query(format!(
            "SELECT {DECISION_COLUMNS} FROM council_decisions WHERE case_id = $1 \
                     AND decided_at >= $2 ORDER BY decided_at, decision_id"
        ))
        .bind(case.as_str())
        .bind(since.map(|s| s.millis()).unwrap_or(i64::MIN))
        .fetch_all(self)
        .await?;
        rows.iter().map(decision_from_row).collect()
    }

    async fn agenda_material(
        &mut self,
        meeting: &crate::domain::MeetingId,
    ) -> Result<crate::store::council::AgendaMaterial, StoreError> {
        use crate::store::council::{AGENDA_CASES, DECISION_COLUMNS, REGISTRATION_COLUMNS};
        use crate::store::queries::{
            CASE_COLUMNS, EVENT_COLUMNS, NOTE_COLUMNS, REFERRAL_COLUMNS, code, timestamp,
        };
        let id = meeting.as_str();
        let mut material = crate::store::council::AgendaMaterial::default();

        let rows = query(format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE case_id IN ({AGENDA_CASES})"
        ))
        .bind(id)
        .fetch_all(self)
        .await?;
        material.cases = rows.iter().map(case_from_row).collect::<Result<_, _>>()?;

        let rows = query(format!(
            "SELECT case_id, agency_id, since FROM case_participants \
                     WHERE case_id IN ({AGENDA_CASES}) ORDER BY case_id, since, agency_id"
        ))
        .bind(id)
        .fetch_all(self)
        .await?;
        for row in &rows {
            const T: &str = "case_participants";
            let case: String = row.try_get("case_id")?;
            let agency: String = row.try_get("agency_id")?;
            material.participants.push((
                code(T, "case_id", &case, crate::domain::CaseId::parse)?,
                crate::domain::records::Participant {
                    agency_id: code(T, "agency_id", &agency, crate::domain::AgencyId::parse)?,
                    since: crate::domain::Timestamp::from_millis(row.try_get("since")?),
                },
            ));
        }

        let rows = query(format!(
            "SELECT {REGISTRATION_COLUMNS} FROM council_registrations \
                     WHERE case_id IN ({AGENDA_CASES})"
        ))
        .bind(id)
        .fetch_all(self)
        .await?;
        material.registrations = rows
            .iter()
            .map(registration_from_row)
            .collect::<Result<_, _>>()?;

        let rows = query(format!(
            "SELECT {REFERRAL_COLUMNS} FROM referrals WHERE case_id IN ({AGENDA_CASES}) \
                     ORDER BY sent_at, referral_id"
        ))
        .bind(id)
        .fetch_all(self)
        .await?;
        material.referrals = rows
            .iter()
            .map(referral_from_row)
            .collect::<Result<_, _>>()?;

        let rows = query(format!(
            "SELECT {EVENT_COLUMNS} FROM referral_events \
                     WHERE case_id IN ({AGENDA_CASES}) ORDER BY recorded_at, event_id"
        ))
        .bind(id)
        .fetch_all(self)
        .await?;
        material.events = rows.iter().map(event_from_row).collect::<Result<_, _>>()?;

        let rows = query(format!(
            "SELECT {NOTE_COLUMNS} FROM notes WHERE case_id IN ({AGENDA_CASES}) \
                     ORDER BY sent_at, note_id"
        ))
        .bind(id)
        .fetch_all(self)
        .await?;
        material.notes = rows.iter().map(note_from_row).collect::<Result<_, _>>()?;
        let rows = query(format!(
            "SELECT note_id, agency_id, acknowledged_at FROM note_recipients \
                     WHERE note_id IN (SELECT note_id FROM notes WHERE case_id IN \
                     ({AGENDA_CASES})) ORDER BY note_id, agency_id"
        ))
        .bind(id)
        .fetch_all(self)
        .await?;
        let mut recipients: std::collections::HashMap<
            crate::domain::NoteId,
            Vec<crate::domain::records::NoteRecipient>,
        > = std::collections::HashMap::new();
        for row in &rows {
            const T: &str = "note_recipients";
            let note: String = row.try_get("note_id")?;
            let agency: String = row.try_get("agency_id")?;
            recipients
                .entry(code(T, "note_id", &note, crate::domain::NoteId::parse)?)
                .or_default()
                .push(crate::domain::records::NoteRecipient {
                    agency_id: code(T, "agency_id", &agency, crate::domain::AgencyId::parse)?,
                    acknowledged_at: timestamp(row.try_get("acknowledged_at")?),
                });
        }
        for note in &mut material.notes {
            note.recipients = recipients.remove(&note.id).unwrap_or_default();
        }

        let rows = query(format!(
            "SELECT {DECISION_COLUMNS} FROM council_decisions \
                     WHERE case_id IN ({AGENDA_CASES}) ORDER BY decided_at, decision_id"
        ))
        .bind(id)
        .fetch_all(self)
        .await?;
        material.decisions = rows
            .iter()
            .map(decision_from_row)
            .collect::<Result<_, _>>()?;

        let rows = query(format!(
            "SELECT consent_id FROM consents WHERE withdrawn_at IS NOT NULL \
                     AND case_id IN ({AGENDA_CASES})"
        ))
        .bind(id)
        .fetch_all(self)
        .await?;
        for row in &rows {
            let consent: String = row.try_get("consent_id")?;
            material.withdrawn_consents.insert(code(
                "consents",
                "consent_id",
                &consent,
                crate::domain::ConsentId::parse,
            )?);
        }

        let rows = query(format!(
            "SELECT {} FROM transfers WHERE case_id IN ({AGENDA_CASES}) \
                     OR receiving_case_id IN ({AGENDA_CASES}) ORDER BY proposed_at, transfer_id",
            crate::store::transfers::TRANSFER_COLUMNS
        ))
        .bind(id)
        .fetch_all(self)
        .await?;
        material.transfers = rows
            .iter()
            .map(transfer_from_row)
            .collect::<Result<_, _>>()?;
        Ok(material)
    }
}
