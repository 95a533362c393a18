//! The JSON shapes of records for `--json` output, stable for scripts: codes in snake_case,
//! times in RFC 3339 (UTC), empty fields as null, sealed payloads as their size and whether this
//! agency can open them (their content only when the user asked for it).

use prost_types::Timestamp;
use serde::Serialize;
use tsunagu_client::render::{
    Coded, agency_status_label, deadline_term_label, format_rfc3339, purpose_japanese,
};
use tsunagu_proto::v1::{
    Agency, Case, Consent, DeadlineTerm, DeadlineTerms, DeadlineUnit, Deadlines, FeedEvent,
    FollowUpItem, Note, Participant, Referral, ReferralEvent, Sealed, Staff,
};

/// One agency, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct AgencyView {
    pub agency_id: String,
    pub kind: String,
    pub display_name: String,
    pub municipalities: Vec<String>,
    pub council_memberships: Vec<String>,
    pub coordinator_of: Vec<String>,
    /// "active", "suspended" or "unspecified".
    pub status: &'static str,
    pub spiffe_id: String,
}

impl From<&Agency> for AgencyView {
    fn from(agency: &Agency) -> Self {
        AgencyView {
            agency_id: agency.agency_id.clone(),
            kind: agency.kind.clone(),
            display_name: agency.display_name.clone(),
            municipalities: agency.municipalities.clone(),
            council_memberships: agency.council_memberships.clone(),
            coordinator_of: agency.coordinator_of.clone(),
            status: agency_status_label(agency.status()),
            spiffe_id: agency.spiffe_id.clone(),
        }
    }
}

/// The roles an agency holds, for a table cell: "coordinator (141178, 141011)" or "-".
pub fn roles_label(agency: &Agency) -> String {
    if agency.coordinator_of.is_empty() {
        "-".to_owned()
    } else {
        format!("coordinator ({})", agency.coordinator_of.join(", "))
    }
}

/// A time for JSON: RFC 3339 in UTC, or null.
pub fn time(ts: Option<&Timestamp>) -> Option<String> {
    ts.and_then(format_rfc3339)
}

/// A code for JSON, or null for the unspecified value.
pub fn code<T: Coded>(value: T) -> Option<&'static str> {
    match value.code() {
        "unspecified" => None,
        code => Some(code),
    }
}

/// A string for JSON, or null when empty.
pub fn text(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

/// A sealed payload: never its ciphertext; its plaintext only when the user asked for it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SealedView {
    /// Size in bytes (of the opened content when readable, else of the age file).
    pub bytes: usize,
    /// Whether this agency's age identity opens it; absent when it was not tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readable: Option<bool>,
    /// The opened content (UTF-8, lossy), only with --reveal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl SealedView {
    /// A sealed field that was not opened.
    pub fn unopened(sealed: Option<&Sealed>) -> Option<SealedView> {
        sealed.filter(|s| !s.age.is_empty()).map(|s| SealedView {
            bytes: s.age.len(),
            readable: None,
            text: None,
        })
    }
}

#[derive(Debug, Serialize)]
pub struct StaffView {
    pub name: String,
    pub role: String,
}

impl StaffView {
    pub fn of(staff: Option<&Staff>) -> Option<StaffView> {
        staff.map(|s| StaffView {
            name: s.name.clone(),
            role: s.role.clone(),
        })
    }
}

#[derive(Debug, Serialize)]
pub struct ParticipantView {
    pub agency_id: String,
    pub display_name: String,
    pub kind: String,
    pub since: Option<String>,
}

impl From<&Participant> for ParticipantView {
    fn from(p: &Participant) -> Self {
        ParticipantView {
            agency_id: p.agency_id.clone(),
            display_name: p.display_name.clone(),
            kind: p.kind.clone(),
            since: time(p.since.as_ref()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CaseView {
    pub case_id: String,
    pub municipality: String,
    pub category: Option<&'static str>,
    pub stage: Option<&'static str>,
    pub opened_by: String,
    pub opened_at: Option<String>,
    pub council_registered: bool,
    pub participants: Vec<ParticipantView>,
    pub header: Option<SealedView>,
}

impl From<&Case> for CaseView {
    fn from(c: &Case) -> Self {
        CaseView {
            case_id: c.case_id.clone(),
            municipality: c.municipality.clone(),
            category: code(c.category()),
            stage: code(c.stage()),
            opened_by: c.opened_by.clone(),
            opened_at: time(c.opened_at.as_ref()),
            council_registered: c.council_registered,
            participants: c.participants.iter().map(ParticipantView::from).collect(),
            header: SealedView::unopened(c.header.as_ref()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ConsentView {
    pub consent_id: String,
    pub case_id: String,
    pub given_by: Option<&'static str>,
    pub method: Option<&'static str>,
    pub recorded_by_agency: String,
    pub recorded_by_staff: Option<StaffView>,
    pub recipient_agencies: Vec<String>,
    pub recipient_kinds: Vec<String>,
    pub purposes: Vec<String>,
    pub valid_from: String,
    pub valid_until: Option<String>,
    pub recorded_at: Option<String>,
    pub withdrawn_at: Option<String>,
    pub evidence: Option<SealedView>,
}

impl From<&Consent> for ConsentView {
    fn from(c: &Consent) -> Self {
        let scope = c.scope.clone().unwrap_or_default();
        ConsentView {
            consent_id: c.consent_id.clone(),
            case_id: c.case_id.clone(),
            given_by: code(c.given_by()),
            method: code(c.method()),
            recorded_by_agency: c.recorded_by_agency.clone(),
            recorded_by_staff: StaffView::of(c.recorded_by_staff.as_ref()),
            recipient_agencies: scope.recipient_agencies,
            recipient_kinds: scope.recipient_kinds,
            purposes: scope.purposes,
            valid_from: c.valid_from.clone(),
            valid_until: text(&c.valid_until),
            recorded_at: time(c.recorded_at.as_ref()),
            withdrawn_at: time(c.withdrawn_at.as_ref()),
            evidence: SealedView::unopened(c.evidence.as_ref()),
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct DeadlinesView {
    pub deliver_by: Option<String>,
    pub respond_by: Option<String>,
    pub connect_by: Option<String>,
    pub confirm_by: Option<String>,
}

impl From<&Deadlines> for DeadlinesView {
    fn from(d: &Deadlines) -> Self {
        DeadlinesView {
            deliver_by: time(d.deliver_by.as_ref()),
            respond_by: time(d.respond_by.as_ref()),
            connect_by: time(d.connect_by.as_ref()),
            confirm_by: time(d.confirm_by.as_ref()),
        }
    }
}

/// How one deadline was counted: `unit` is `hours`, `business_days` or `set_by_sender`.
#[derive(Debug, Serialize)]
pub struct DeadlineTermView {
    pub unit: Option<&'static str>,
    pub amount: u32,
    /// 「2営業日」「48時間」「送信者指定」.
    pub label: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DeadlineTermsView {
    pub deliver_by: Option<DeadlineTermView>,
    pub respond_by: Option<DeadlineTermView>,
    pub connect_by: Option<DeadlineTermView>,
    pub confirm_by: Option<DeadlineTermView>,
}

impl From<&DeadlineTerms> for DeadlineTermsView {
    fn from(t: &DeadlineTerms) -> Self {
        let view = |term: Option<&DeadlineTerm>| {
            term.map(|term| DeadlineTermView {
                unit: match term.unit() {
                    DeadlineUnit::Hours => Some("hours"),
                    DeadlineUnit::BusinessDays => Some("business_days"),
                    DeadlineUnit::SetBySender => Some("set_by_sender"),
                    DeadlineUnit::Unspecified => None,
                },
                amount: term.amount,
                label: deadline_term_label(Some(term)),
            })
        };
        DeadlineTermsView {
            deliver_by: view(t.deliver_by.as_ref()),
            respond_by: view(t.respond_by.as_ref()),
            connect_by: view(t.connect_by.as_ref()),
            confirm_by: view(t.confirm_by.as_ref()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ReferralView {
    pub referral_id: String,
    pub case_id: String,
    /// Null when the hub hides the sender from this agency (the reporter of a 通告).
    pub from_agency: Option<String>,
    pub to_agency: String,
    pub purpose: String,
    /// The Japanese name of a known purpose.
    pub purpose_label: Option<&'static str>,
    pub urgency: Option<&'static str>,
    pub basis: Option<&'static str>,
    pub consent_id: Option<String>,
    pub consent_withdrawn: bool,
    pub sender_attested: bool,
    pub sent_at: Option<String>,
    pub deadlines: DeadlinesView,
    /// How each deadline was counted (null when the hub did not record it).
    pub deadline_terms: Option<DeadlineTermsView>,
    pub delivery: Option<&'static str>,
    pub delivered_at: Option<String>,
    pub response: Option<&'static str>,
    pub responded_at: Option<String>,
    pub response_reason: Option<String>,
    pub connection: Option<&'static str>,
    pub connection_updated_at: Option<String>,
    pub contact_attempts: u32,
    pub not_connected_reason: Option<&'static str>,
    pub linked_referral_id: Option<String>,
    pub confirmed_at: Option<String>,
    pub confirmed_by: Option<String>,
    /// Timers that passed while their layer had not moved.
    pub overdue: Vec<&'static str>,
    pub body: Option<SealedView>,
    /// A confirmed "did not connect" still waiting for its next step.
    pub next_step_needed: bool,
    pub closed_with_reason: Option<ClosedWithReasonView>,
}

/// The next step "close with reason" of a confirmed not-connected referral.
#[derive(Debug, Serialize)]
pub struct ClosedWithReasonView {
    pub reason_code: String,
    pub reason_text: Option<String>,
    pub closed_at: Option<String>,
    pub closed_by: Option<String>,
}

impl From<&Referral> for ReferralView {
    fn from(r: &Referral) -> Self {
        ReferralView {
            referral_id: r.referral_id.clone(),
            case_id: r.case_id.clone(),
            from_agency: text(&r.from_agency),
            to_agency: r.to_agency.clone(),
            purpose: r.purpose.clone(),
            purpose_label: purpose_japanese(&r.purpose),
            urgency: code(r.urgency()),
            basis: code(r.basis()),
            consent_id: text(&r.consent_id),
            consent_withdrawn: r.consent_withdrawn,
            sender_attested: r.sender_attested,
            sent_at: time(r.sent_at.as_ref()),
            deadlines: r
                .deadlines
                .as_ref()
                .map(DeadlinesView::from)
                .unwrap_or_default(),
            deadline_terms: r.deadline_terms.as_ref().map(DeadlineTermsView::from),
            delivery: code(r.delivery()),
            delivered_at: time(r.delivered_at.as_ref()),
            response: code(r.response()),
            responded_at: time(r.responded_at.as_ref()),
            response_reason: text(&r.response_reason),
            connection: code(r.connection()),
            connection_updated_at: time(r.connection_updated_at.as_ref()),
            contact_attempts: r.contact_attempts,
            not_connected_reason: code(r.not_connected_reason()),
            linked_referral_id: text(&r.linked_referral_id),
            confirmed_at: time(r.confirmed_at.as_ref()),
            confirmed_by: text(&r.confirmed_by),
            overdue: r.overdue().filter_map(code).collect(),
            body: SealedView::unopened(r.body.as_ref()),
            next_step_needed: r.next_step_needed,
            closed_with_reason: r.closed_with_reason.as_ref().map(|c| ClosedWithReasonView {
                reason_code: c.reason_code.clone(),
                reason_text: text(&c.reason_text),
                closed_at: time(c.closed_at.as_ref()),
                closed_by: text(&c.closed_by),
            }),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ReferralEventView {
    pub event_id: String,
    pub referral_id: String,
    pub case_id: String,
    pub kind: Option<&'static str>,
    pub action: Option<&'static str>,
    pub timer: Option<&'static str>,
    /// Null for escalations and when hidden from this agency.
    pub actor_agency: Option<String>,
    pub actor_staff: Option<StaffView>,
    pub occurred_at: Option<String>,
    pub recorded_at: Option<String>,
    pub reason_code: Option<String>,
    /// The clear-text note of a close with reason.
    pub reason_text: Option<String>,
    pub not_connected_reason: Option<&'static str>,
    /// The layers after the event.
    pub delivery: Option<&'static str>,
    pub response: Option<&'static str>,
    pub connection: Option<&'static str>,
    pub note: Option<SealedView>,
    /// The sealed detail of the reason (decline, fail, cancel, not connected, close).
    pub reason_detail: Option<SealedView>,
}

impl From<&ReferralEvent> for ReferralEventView {
    fn from(e: &ReferralEvent) -> Self {
        ReferralEventView {
            event_id: e.event_id.clone(),
            referral_id: e.referral_id.clone(),
            case_id: e.case_id.clone(),
            kind: code(e.kind()),
            action: code(e.action()),
            timer: code(e.timer()),
            actor_agency: text(&e.actor_agency),
            actor_staff: StaffView::of(e.actor_staff.as_ref()),
            occurred_at: time(e.occurred_at.as_ref()),
            recorded_at: time(e.recorded_at.as_ref()),
            reason_code: text(&e.reason_code),
            reason_text: text(&e.reason_text),
            not_connected_reason: code(e.not_connected_reason()),
            delivery: code(e.delivery()),
            response: code(e.response()),
            connection: code(e.connection()),
            note: SealedView::unopened(e.note.as_ref()),
            reason_detail: SealedView::unopened(e.reason_detail.as_ref()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct NoteRecipientView {
    pub agency_id: String,
    pub acknowledged_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct NoteView {
    pub note_id: String,
    pub case_id: String,
    pub from_agency: Option<String>,
    pub staff: Option<StaffView>,
    pub basis: Option<&'static str>,
    pub sent_at: Option<String>,
    pub sender_attested: bool,
    pub recipients: Vec<NoteRecipientView>,
    pub body: Option<SealedView>,
}

impl From<&Note> for NoteView {
    fn from(n: &Note) -> Self {
        NoteView {
            note_id: n.note_id.clone(),
            case_id: n.case_id.clone(),
            from_agency: text(&n.from_agency),
            staff: StaffView::of(n.staff.as_ref()),
            basis: code(n.basis()),
            sent_at: time(n.sent_at.as_ref()),
            sender_attested: n.sender_attested,
            recipients: n
                .recipients
                .iter()
                .map(|r| NoteRecipientView {
                    agency_id: r.agency_id.clone(),
                    acknowledged_at: time(r.acknowledged_at.as_ref()),
                })
                .collect(),
            body: SealedView::unopened(n.body.as_ref()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FollowUpView {
    pub status: Option<&'static str>,
    pub timer: Option<&'static str>,
    pub due_at: Option<String>,
    pub responsible_agency: Option<String>,
    pub justification: Option<String>,
    pub referral: Option<ReferralView>,
}

impl From<&FollowUpItem> for FollowUpView {
    fn from(item: &FollowUpItem) -> Self {
        FollowUpView {
            status: code(item.status()),
            timer: code(item.timer()),
            due_at: time(item.due_at.as_ref()),
            responsible_agency: text(&item.responsible_agency),
            justification: text(&item.justification),
            referral: item.referral.as_ref().map(ReferralView::from),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FeedEventView {
    pub cursor: u64,
    pub event_id: String,
    pub kind: Option<&'static str>,
    pub case_id: Option<String>,
    pub referral_id: Option<String>,
    pub note_id: Option<String>,
    pub recorded_at: Option<String>,
    pub referral_event: Option<ReferralEventView>,
}

impl From<&FeedEvent> for FeedEventView {
    fn from(e: &FeedEvent) -> Self {
        FeedEventView {
            cursor: e.cursor,
            event_id: e.event_id.clone(),
            kind: code(e.kind()),
            case_id: text(&e.case_id),
            referral_id: text(&e.referral_id),
            note_id: text(&e.note_id),
            recorded_at: time(e.recorded_at.as_ref()),
            referral_event: e.referral_event.as_ref().map(ReferralEventView::from),
        }
    }
}
