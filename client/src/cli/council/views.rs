//! What `tsunagu council` prints: the JSON shapes of `--json` and the tables otherwise.

use serde::Serialize;
use tsunagu_client::render::{Table, label, short_id};
use tsunagu_proto::v1::{Decision, Meeting, Registration};

use crate::cli::Context;
use crate::cli::common::open_sealed;
use crate::cli::views::{SealedView, StaffView, code, text, time};

/// A registration, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct RegistrationView {
    pub case_id: String,
    pub municipality: String,
    pub category: Option<&'static str>,
    pub registered_on: String,
    pub lead_agency: String,
    pub key_person: Option<SealedView>,
    pub review_interval_days: u32,
    pub next_review_on: String,
    pub last_reviewed_on: Option<String>,
    pub status: Option<&'static str>,
    pub close_reason: Option<String>,
    pub transferred_to: Option<String>,
    pub ended_on: Option<String>,
    pub justification: Option<String>,
    pub registered_by: String,
    pub updated_at: Option<String>,
}

impl RegistrationView {
    pub(super) fn of(ctx: &Context, r: &Registration) -> Self {
        RegistrationView {
            case_id: r.case_id.clone(),
            municipality: r.municipality.clone(),
            category: code(r.category()),
            registered_on: r.registered_on.clone(),
            lead_agency: r.lead_agency.clone(),
            key_person: open_sealed(ctx, r.key_person.as_ref()).view(false),
            review_interval_days: r.review_interval_days,
            next_review_on: r.next_review_on.clone(),
            last_reviewed_on: text(&r.last_reviewed_on),
            status: code(r.status()),
            close_reason: text(&r.close_reason),
            transferred_to: text(&r.transferred_to),
            ended_on: text(&r.ended_on),
            justification: text(&r.justification),
            registered_by: r.registered_by.clone(),
            updated_at: time(r.updated_at.as_ref()),
        }
    }
}

/// A meeting, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct MeetingView {
    pub meeting_id: String,
    pub municipality: String,
    pub kind: Option<&'static str>,
    pub held_on: String,
    pub case_ids: Vec<String>,
    /// How many cases are on the agenda (0 when no review was due by `held_on`).
    pub case_count: usize,
    pub scheduled_at: Option<String>,
    pub scheduled_by: String,
}

impl From<&Meeting> for MeetingView {
    fn from(m: &Meeting) -> Self {
        MeetingView {
            meeting_id: m.meeting_id.clone(),
            municipality: m.municipality.clone(),
            kind: code(m.kind()),
            held_on: m.held_on.clone(),
            case_ids: m.case_ids.clone(),
            case_count: m.case_ids.len(),
            scheduled_at: time(m.scheduled_at.as_ref()),
            scheduled_by: m.scheduled_by.clone(),
        }
    }
}

/// A decision with the registration after it, as `council decide --json` prints it.
#[derive(Debug, Serialize)]
pub struct DecisionView {
    pub decision_id: String,
    pub meeting_id: String,
    pub case_id: String,
    pub outcome: Option<&'static str>,
    pub close_reason: Option<String>,
    pub transfer_to: Option<String>,
    pub lead_agency: String,
    pub plan: Option<SealedView>,
    pub next_review_on: Option<String>,
    pub held_on: String,
    pub decided_at: Option<String>,
    pub decided_by: String,
    pub staff: Option<StaffView>,
    pub registration: Option<RegistrationView>,
}

impl DecisionView {
    pub(super) fn of(ctx: &Context, d: &Decision, registration: Option<&Registration>) -> Self {
        DecisionView {
            decision_id: d.decision_id.clone(),
            meeting_id: d.meeting_id.clone(),
            case_id: d.case_id.clone(),
            outcome: code(d.outcome()),
            close_reason: text(&d.close_reason),
            transfer_to: text(&d.transfer_to),
            lead_agency: d.lead_agency.clone(),
            plan: open_sealed(ctx, d.plan.as_ref()).view(false),
            next_review_on: text(&d.next_review_on),
            held_on: d.held_on.clone(),
            decided_at: time(d.decided_at.as_ref()),
            decided_by: d.decided_by.clone(),
            staff: StaffView::of(d.staff.as_ref()),
            registration: registration.map(|r| RegistrationView::of(ctx, r)),
        }
    }
}

/// What `council pack --json` prints about the file it wrote.
#[derive(Debug, Serialize)]
pub(super) struct PackWritten {
    pub(super) meeting_id: String,
    pub(super) kind: Option<&'static str>,
    pub(super) held_on: String,
    pub(super) format: &'static str,
    pub(super) path: String,
    pub(super) cases: usize,
    /// Sealed fields this agency's keys did not open.
    pub(super) unreadable: usize,
}

/// The registrations table.
pub fn registrations_table(ctx: &Context, registrations: &[Registration]) -> Table {
    let mut table = Table::new([
        "CASE",
        "CATEGORY",
        "REGISTERED",
        "LEAD",
        "LAST REVIEW",
        "NEXT REVIEW",
        "EVERY",
        "STATUS",
        "KEY PERSON",
    ]);
    for r in registrations {
        let mut status = label(r.status());
        if !r.close_reason.is_empty() {
            status.push_str(&format!(": {}", r.close_reason));
        }
        if !r.transferred_to.is_empty() {
            status.push_str(&format!(" → {}", r.transferred_to));
        }
        table.row([
            short_id(&r.case_id).to_owned(),
            label(r.category()),
            r.registered_on.clone(),
            r.lead_agency.clone(),
            dash(&r.last_reviewed_on),
            r.next_review_on.clone(),
            format!("{}d", r.review_interval_days),
            status,
            open_sealed(ctx, r.key_person.as_ref()).status(),
        ]);
    }
    table
}

/// The meetings table.
pub fn meetings_table(meetings: &[Meeting]) -> Table {
    let mut table = Table::new(["MEETING", "HELD ON", "KIND", "CASES", "SCHEDULED BY"]);
    for m in meetings {
        table.row([
            short_id(&m.meeting_id).to_owned(),
            m.held_on.clone(),
            label(m.kind()),
            m.case_ids.len().to_string(),
            m.scheduled_by.clone(),
        ]);
    }
    table
}

fn dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}
