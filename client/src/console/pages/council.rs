//! 要対協: the registrations and meetings of the councils the caller sits on, a meeting's pack
//! in the page (the existing print-ready A4 HTML, opened with this machine's keys) with a print
//! button, and for the coordinator the forms to schedule a meeting and record decisions.

use askama::Template;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use tsunagu_proto::v1::{
    DecisionOutcome, GetMeetingPackRequest, ListMeetingsRequest, ListRegistrationsRequest, Meeting,
    MeetingKind, RecordDecisionRequest, ScheduleMeetingRequest,
};

use super::{Context, Frame, PageError, Section, about_item, form_key, is_id, page, staff, submit};
use crate::console::form::FormData;
use crate::console::guard::SignedIn;
use crate::console::state::AppState;
use crate::console::view::ja;
use crate::pack::{Format, render_pack};
use crate::render::{Coded, short_id};

/// What the pack's own document may load inside the console: its inline style, nothing else.
const PACK_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'";

pub struct RegistrationRow {
    pub case_id: String,
    pub short: String,
    pub status: String,
    pub registered_on: String,
    pub lead: String,
    pub next_review_on: String,
    pub last_reviewed_on: String,
}

pub struct MeetingRow {
    pub meeting_id: String,
    pub kind: String,
    pub held_on: String,
    pub cases: usize,
}

pub struct Council {
    pub municipality: String,
    pub coordinator: bool,
    pub registrations: Vec<RegistrationRow>,
    pub meetings: Vec<MeetingRow>,
    pub idem: String,
}

#[derive(Template)]
#[template(path = "console/council.html")]
pub struct CouncilPage {
    pub frame: Frame,
    pub councils: Vec<Council>,
}

/// `GET /council`.
pub async fn show(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
) -> Result<Response, PageError> {
    let cx = Context::load(&state, &signed_in, "要対協", Section::Council).await?;
    let hub = state.hub();
    let mut municipalities = cx.me.council_memberships.clone();
    for m in &cx.me.coordinator_of {
        if !municipalities.contains(m) {
            municipalities.push(m.clone());
        }
    }
    let mut councils = Vec::new();
    for municipality in municipalities {
        let registrations = hub
            .council()
            .list_registrations(ListRegistrationsRequest {
                municipality: municipality.clone(),
                include_closed: true,
            })
            .await
            .map_err(|status| hub.call_error(status))?
            .into_inner()
            .registrations;
        let meetings = meetings_of(&state, &municipality).await?;
        councils.push(Council {
            coordinator: cx.coordinates(&municipality),
            registrations: registrations
                .iter()
                .map(|r| RegistrationRow {
                    case_id: r.case_id.clone(),
                    short: short_id(&r.case_id).to_owned(),
                    status: ja(r.status()),
                    registered_on: r.registered_on.clone(),
                    lead: cx.names.of(&r.lead_agency),
                    next_review_on: r.next_review_on.clone(),
                    last_reviewed_on: if r.last_reviewed_on.is_empty() {
                        "―".to_owned()
                    } else {
                        r.last_reviewed_on.clone()
                    },
                })
                .collect(),
            meetings: meetings
                .iter()
                .rev()
                .map(|m| MeetingRow {
                    meeting_id: m.meeting_id.clone(),
                    kind: ja(m.kind()),
                    held_on: m.held_on.clone(),
                    cases: m.case_ids.len(),
                })
                .collect(),
            idem: form_key(),
            municipality,
        });
    }
    Ok(page(&CouncilPage {
        frame: cx.frame,
        councils,
    }))
}

async fn meetings_of(state: &AppState, municipality: &str) -> Result<Vec<Meeting>, PageError> {
    let hub = state.hub();
    Ok(hub
        .council()
        .list_meetings(ListMeetingsRequest {
            municipality: municipality.to_owned(),
        })
        .await
        .map_err(|status| hub.call_error(status))?
        .into_inner()
        .meetings)
}

/// The meeting with this id among the caller's councils, or "not found".
async fn find_meeting(cx: &Context, meeting_id: &str) -> Result<Meeting, PageError> {
    if !is_id(meeting_id) {
        return Err(PageError::NotFound);
    }
    for municipality in cx
        .me
        .council_memberships
        .iter()
        .chain(&cx.me.coordinator_of)
    {
        if let Some(meeting) = meetings_of(&cx.state, municipality)
            .await?
            .into_iter()
            .find(|m| m.meeting_id == meeting_id)
        {
            return Ok(meeting);
        }
    }
    Err(PageError::NotFound)
}

pub struct AgendaItem {
    pub case_id: String,
    pub short: String,
    pub idem: String,
}

#[derive(Template)]
#[template(path = "console/meeting.html")]
pub struct MeetingPage {
    pub frame: Frame,
    pub meeting_id: String,
    pub kind: String,
    pub held_on: String,
    pub coordinator: bool,
    pub agenda: Vec<AgendaItem>,
    pub members: Vec<(String, String)>,
    pub outcomes: Vec<(&'static str, &'static str)>,
}

/// `GET /council/meetings/{id}`: the pack in the page, and the decision forms.
pub async fn meeting(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Path(meeting_id): Path<String>,
) -> Result<Response, PageError> {
    let cx = Context::load(&state, &signed_in, "会議", Section::Council).await?;
    let meeting = find_meeting(&cx, &meeting_id).await?;
    let coordinator = cx.coordinates(&meeting.municipality);
    let members = cx
        .agencies
        .iter()
        .filter(|a| {
            a.council_memberships.contains(&meeting.municipality)
                || a.coordinator_of.contains(&meeting.municipality)
        })
        .map(|a| (a.agency_id.clone(), a.display_name.clone()))
        .collect();
    let mut frame = cx.frame;
    frame.title = format!("{} {}", ja(meeting.kind()), meeting.held_on);
    Ok(page(&MeetingPage {
        frame,
        kind: ja(meeting.kind()),
        held_on: meeting.held_on.clone(),
        coordinator,
        agenda: meeting
            .case_ids
            .iter()
            .map(|case_id| AgendaItem {
                case_id: case_id.clone(),
                short: short_id(case_id).to_owned(),
                idem: form_key(),
            })
            .collect(),
        members,
        outcomes: [
            DecisionOutcome::Continue,
            DecisionOutcome::Close,
            DecisionOutcome::Transfer,
        ]
        .into_iter()
        .map(|o| (o.code(), o.japanese()))
        .collect(),
        meeting_id: meeting.meeting_id,
    }))
}

/// `GET /council/meetings/{id}/pack`: the meeting pack as its own A4 document, opened here.
pub async fn pack(
    State(state): State<AppState>,
    Extension(_signed_in): Extension<SignedIn>,
    Path(meeting_id): Path<String>,
) -> Result<Response, PageError> {
    if !is_id(&meeting_id) {
        return Err(PageError::NotFound);
    }
    let hub = state.hub();
    let answer = hub
        .council()
        .get_meeting_pack(GetMeetingPackRequest {
            meeting_id: meeting_id.clone(),
        })
        .await
        .map_err(|status| about_item(hub.call_error(status)))?
        .into_inner();
    let html = render_pack(&answer, &state.opener(), Format::Html);
    let mut response = Html(html).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PACK_CSP),
    );
    Ok(response)
}

/// `POST /council/meetings`: schedules a meeting (the coordinator).
pub async fn schedule(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Extension(form): Extension<FormData>,
) -> Response {
    let write = async {
        let back = "/council";
        let kind = [
            MeetingKind::Practitioners,
            MeetingKind::IndividualCase,
            MeetingKind::Representatives,
        ]
        .into_iter()
        .find(|k| k.code() == form.get("kind"))
        .ok_or_else(|| PageError::invalid("会議の種類を選んでください", back))?;
        let held_on = form.get("held_on").to_owned();
        if held_on.len() != 10 {
            return Err(PageError::invalid("開催日を入力してください", back));
        }
        let hub = state.hub();
        let meeting = hub
            .council()
            .schedule_meeting(ScheduleMeetingRequest {
                municipality: form.get("municipality").to_owned(),
                kind: kind.into(),
                held_on,
                case_ids: form.list("case_ids"),
                staff: Some(staff(&signed_in)),
                idempotency_key: form.get("idem").to_owned(),
            })
            .await
            .map_err(|status| PageError::from(hub.call_error(status)))?
            .into_inner()
            .meeting
            .unwrap_or_default();
        Ok(format!("/council/meetings/{}", meeting.meeting_id))
    };
    submit(&state, &form, write).await
}

/// `POST /council/meetings/{id}/decisions`: one case's decision (the coordinator).
pub async fn decide(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Extension(form): Extension<FormData>,
    Path(meeting_id): Path<String>,
) -> Response {
    let write = async {
        let back = format!("/council/meetings/{meeting_id}");
        let case_id = form.get("case_id").to_owned();
        if !is_id(&meeting_id) || !is_id(&case_id) {
            return Err(PageError::NotFound);
        }
        let outcome = [
            DecisionOutcome::Continue,
            DecisionOutcome::Close,
            DecisionOutcome::Transfer,
        ]
        .into_iter()
        .find(|o| o.code() == form.get("outcome"))
        .ok_or_else(|| PageError::invalid("決定（継続・終結・移管）を選んでください", &back))?;
        let case = super::referral::read_case(&state, &case_id)
            .await
            .ok_or(PageError::NotFound)?;
        let plan = match form.text("plan") {
            text if text.trim().is_empty() => None,
            text => {
                let council = crate::council::readers(state.hub(), &case.municipality).await?;
                let council: Vec<&str> = council.iter().map(String::as_str).collect();
                Some(
                    state
                        .sealer()?
                        .seal(text.as_bytes(), &council, Some(&case))
                        .await?,
                )
            }
        };
        let hub = state.hub();
        hub.council()
            .record_decision(RecordDecisionRequest {
                meeting_id: meeting_id.clone(),
                case_id,
                outcome: outcome.into(),
                close_reason: form.get("close_reason").to_owned(),
                transfer_to: form.get("transfer_to").to_owned(),
                lead_agency: form.get("lead_agency").to_owned(),
                plan,
                next_review_on: form.get("next_review_on").to_owned(),
                staff: Some(staff(&signed_in)),
                idempotency_key: form.get("idem").to_owned(),
            })
            .await
            .map_err(|status| PageError::from(hub.call_error(status)))?;
        Ok(back)
    };
    submit(&state, &form, write).await
}
