//! 紹介: one referral — its three layers and the confirmation, deadlines and escalations, the
//! timeline, the sealed body and notes opened where this machine's keys can, and the actions
//! the caller may take right now, no others.

use askama::Template;
use axum::extract::{Extension, Path, State};
use axum::response::Response;
use tsunagu_proto::v1::{
    Case, GetCaseRequest, GetReferralRequest, NotConnectedReason, RecordReferralActionRequest,
    Referral, ReferralAction, ReferralEvent, ReferralEventKind, TimerKind,
};

use super::{Context, Frame, PageError, Section, about_item, form_key, is_id, page, staff, submit};
use crate::console::actions::{self, CLOSE_REASONS, Party, REASONS};
use crate::console::form::FormData;
use crate::console::guard::SignedIn;
use crate::console::state::AppState;
use crate::console::view::{Opened, due_phrase, ja, jst, purpose};
use crate::render::{Coded, short_id};

pub struct Layer {
    pub name: &'static str,
    pub state: String,
    pub at: String,
    pub detail: String,
    pub done: bool,
}

pub struct Deadline {
    pub name: String,
    pub at: String,
    /// Which calendar it counts in (「2営業日」「48時間」), empty when not recorded.
    pub counted: String,
    pub due: String,
    pub overdue: bool,
}

pub struct Entry {
    pub when: String,
    pub what: String,
    pub actor: String,
    pub staff: String,
    pub reason: String,
    /// The sealed detail of the reason, opened where this machine's keys can.
    pub detail: Opened,
    pub note: Opened,
    pub escalated: bool,
}

pub struct ActionForm {
    pub code: &'static str,
    pub label: &'static str,
    pub needs_reason: bool,
    pub not_connected: bool,
    /// Close with reason: a close reason, a short clear-text note.
    pub close: bool,
    pub danger: bool,
    pub idem: String,
}

#[derive(Template)]
#[template(path = "console/referral.html")]
pub struct ReferralPage {
    pub frame: Frame,
    pub referral_id: String,
    pub short: String,
    pub case_id: String,
    pub purpose: String,
    pub urgency: String,
    pub basis: String,
    pub from: String,
    pub to: String,
    pub sent_at: String,
    pub attested: bool,
    pub consent_withdrawn: bool,
    pub body: Opened,
    pub layers: Vec<Layer>,
    pub deadlines: Vec<Deadline>,
    pub timeline: Vec<Entry>,
    pub actions: Vec<ActionForm>,
    pub party: &'static str,
    pub reasons: &'static [(&'static str, &'static str)],
    pub close_reasons: &'static [(&'static str, &'static str)],
    pub not_connected_reasons: Vec<(&'static str, &'static str)>,
}

/// `GET /referrals/{id}`.
pub async fn show(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Path(referral_id): Path<String>,
) -> Result<Response, PageError> {
    let mut cx = Context::load(&state, &signed_in, "紹介", Section::Inbox).await?;
    cx.frame.live = true;
    if !is_id(&referral_id) {
        return Err(PageError::NotFound);
    }
    let (referral, events) = read(&state, &referral_id).await?;
    let case = read_case(&state, &referral.case_id).await;
    if referral.from_agency == cx.me.agency_id {
        cx.frame.section = Section::Sent;
    }
    Ok(page(&build(cx, &referral, &events, case.as_ref())))
}

/// The referral and its events, or the same "not found" whether it is missing or hidden.
pub async fn read(
    state: &AppState,
    referral_id: &str,
) -> Result<(Referral, Vec<ReferralEvent>), PageError> {
    let hub = state.hub();
    let answer = hub
        .referrals()
        .get_referral(GetReferralRequest {
            referral_id: referral_id.to_owned(),
        })
        .await
        .map_err(|status| about_item(hub.call_error(status)))?
        .into_inner();
    let referral = answer.referral.ok_or(PageError::NotFound)?;
    Ok((referral, answer.events))
}

/// The case of a referral, when the caller may read it.
pub async fn read_case(state: &AppState, case_id: &str) -> Option<Case> {
    state
        .hub()
        .cases()
        .get_case(GetCaseRequest {
            case_id: case_id.to_owned(),
        })
        .await
        .ok()
        .and_then(|answer| answer.into_inner().case)
}

fn party_word(party: Party) -> &'static str {
    match party {
        Party::Sender => "紹介元",
        Party::Recipient => "紹介先",
        Party::Coordinator => "調整機関",
        Party::Other => "閲覧のみ",
    }
}

/// The page for one referral as the caller sees it.
pub fn build(
    cx: Context,
    referral: &Referral,
    events: &[ReferralEvent],
    case: Option<&Case>,
) -> ReferralPage {
    let opener = cx.state.opener();
    let party = actions::party(referral, &cx.me, case.map(|c| c.municipality.as_str()));
    let layers = vec![
        Layer {
            name: "受信",
            state: ja(referral.delivery()),
            at: jst(referral.delivered_at.as_ref()),
            detail: String::new(),
            done: referral.delivered_at.is_some(),
        },
        Layer {
            name: "応答",
            state: ja(referral.response()),
            at: jst(referral.responded_at.as_ref()),
            detail: referral.response_reason.clone(),
            done: referral.responded_at.is_some(),
        },
        Layer {
            name: "つながり",
            state: ja(referral.connection()),
            at: jst(referral.connection_updated_at.as_ref()),
            detail: connection_detail(referral),
            done: referral.connection_updated_at.is_some(),
        },
        Layer {
            name: "確認",
            state: if referral.confirmed_at.is_some() {
                "確認済".to_owned()
            } else {
                "未確認".to_owned()
            },
            at: jst(referral.confirmed_at.as_ref()),
            detail: confirmation_detail(referral, &cx.names.of(&referral.confirmed_by)),
            done: referral.confirmed_at.is_some(),
        },
    ];
    let deadlines = referral
        .deadlines
        .as_ref()
        .map(|d| {
            [
                (TimerKind::DeliverBy, d.deliver_by.as_ref()),
                (TimerKind::RespondBy, d.respond_by.as_ref()),
                (TimerKind::ConnectBy, d.connect_by.as_ref()),
                (TimerKind::ConfirmBy, d.confirm_by.as_ref()),
            ]
            .into_iter()
            .filter_map(|(timer, at)| {
                let at = at?;
                let overdue = referral.overdue().any(|t| t == timer);
                Some(Deadline {
                    name: ja(timer),
                    at: jst(Some(at)),
                    counted: crate::render::deadline_term_short(
                        crate::render::deadline_term(referral.deadline_terms.as_ref(), timer)
                            .as_ref(),
                    )
                    .unwrap_or_default(),
                    due: if overdue {
                        due_phrase(at, cx.now)
                    } else {
                        String::new()
                    },
                    overdue,
                })
            })
            .collect()
        })
        .unwrap_or_default();
    let timeline = events
        .iter()
        .map(|event| Entry {
            when: jst(event.occurred_at.as_ref()),
            what: event_words(event),
            actor: if event.kind() == ReferralEventKind::Escalated {
                "ハブ（期限の監視）".to_owned()
            } else {
                cx.names.of(&event.actor_agency)
            },
            staff: event
                .actor_staff
                .as_ref()
                .map(|s| format!("{} {}", s.role, s.name).trim().to_owned())
                .unwrap_or_default(),
            reason: reason_words(event),
            detail: Opened::of(&opener, event.reason_detail.as_ref()),
            note: Opened::of(&opener, event.note.as_ref()),
            escalated: event.kind() == ReferralEventKind::Escalated,
        })
        .collect();
    let actions = actions::allowed(referral, party)
        .into_iter()
        .map(|action| ActionForm {
            code: action.code(),
            label: actions::button(action),
            needs_reason: actions::needs_reason(action),
            not_connected: action == ReferralAction::ReportNotConnected,
            close: action == ReferralAction::CloseWithReason,
            danger: matches!(
                action,
                ReferralAction::Decline | ReferralAction::Fail | ReferralAction::Cancel
            ),
            idem: form_key(),
        })
        .collect();
    let mut frame = cx.frame;
    frame.title = format!("紹介 {}", short_id(&referral.referral_id));
    ReferralPage {
        frame,
        referral_id: referral.referral_id.clone(),
        short: short_id(&referral.referral_id).to_owned(),
        case_id: referral.case_id.clone(),
        purpose: purpose(&referral.purpose),
        urgency: ja(referral.urgency()),
        basis: ja(referral.basis()),
        from: cx.names.of(&referral.from_agency),
        to: cx.names.of(&referral.to_agency),
        sent_at: jst(referral.sent_at.as_ref()),
        attested: referral.sender_attested,
        consent_withdrawn: referral.consent_withdrawn,
        body: Opened::of(&opener, referral.body.as_ref()),
        layers,
        deadlines,
        timeline,
        actions,
        party: party_word(party),
        reasons: REASONS,
        close_reasons: CLOSE_REASONS,
        not_connected_reasons: NOT_CONNECTED
            .iter()
            .map(|reason| (reason.code(), reason.japanese()))
            .collect(),
    }
}

const NOT_CONNECTED: [NotConnectedReason; 6] = [
    NotConnectedReason::CouldNotContact,
    NotConnectedReason::DeclinedByFamily,
    NotConnectedReason::NotEligible,
    NotConnectedReason::NoCapacity,
    NotConnectedReason::Moved,
    NotConnectedReason::ReferredElsewhere,
];

/// Who confirmed, and the next step recorded since: a close with reason, or that one is due.
fn confirmation_detail(referral: &Referral, confirmed_by: &str) -> String {
    let mut words = Vec::new();
    if !referral.confirmed_by.is_empty() {
        words.push(confirmed_by.to_owned());
    }
    if let Some(closed) = &referral.closed_with_reason {
        let reason = close_reason_words(&closed.reason_code);
        words.push(if closed.reason_text.is_empty() {
            format!("理由を記録して終結: {reason}")
        } else {
            format!("理由を記録して終結: {reason}（{}）", closed.reason_text)
        });
    } else if referral.next_step_needed {
        words.push("次の支援が必要（再紹介か、理由を記録して終結）".to_owned());
    }
    words.join("・")
}

fn close_reason_words(code: &str) -> String {
    match CLOSE_REASONS.iter().find(|(c, _)| *c == code) {
        Some((_, words)) => (*words).to_owned(),
        None => code.to_owned(),
    }
}

fn connection_detail(referral: &Referral) -> String {
    let mut words = Vec::new();
    if referral.contact_attempts > 0 {
        words.push(format!("連絡試行 {} 回", referral.contact_attempts));
    }
    if referral.not_connected_reason() != NotConnectedReason::Unspecified {
        words.push(ja(referral.not_connected_reason()));
    }
    if !referral.linked_referral_id.is_empty() {
        words.push(format!(
            "紹介先の紹介 {}",
            short_id(&referral.linked_referral_id)
        ));
    }
    words.join("・")
}

fn event_words(event: &ReferralEvent) -> String {
    match event.kind() {
        ReferralEventKind::Sent => "紹介を送信".to_owned(),
        ReferralEventKind::Escalated => {
            format!("{}を過ぎました（エスカレーション）", ja(event.timer()))
        }
        ReferralEventKind::Action => ja(event.action()),
        ReferralEventKind::Unspecified => "―".to_owned(),
    }
}

/// Whether an action gives a reason in the clear, so that its sealed detail may go along.
fn action_gives_reason(action: ReferralAction) -> bool {
    actions::needs_reason(action)
        || matches!(
            action,
            ReferralAction::ReportNotConnected | ReferralAction::CloseWithReason
        )
}

fn reason_words(event: &ReferralEvent) -> String {
    if event.not_connected_reason() != NotConnectedReason::Unspecified {
        return ja(event.not_connected_reason());
    }
    if event.action() == ReferralAction::CloseWithReason {
        let reason = close_reason_words(&event.reason_code);
        return if event.reason_text.is_empty() {
            reason
        } else {
            format!("{reason}（{}）", event.reason_text)
        };
    }
    match REASONS.iter().find(|(code, _)| *code == event.reason_code) {
        Some((_, words)) => (*words).to_owned(),
        None => event.reason_code.clone(),
    }
}

/// `POST /referrals/{id}/actions`: one action, from a form the page rendered.
pub async fn act(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Extension(form): Extension<FormData>,
    Path(referral_id): Path<String>,
) -> Response {
    let write = record(&state, &signed_in, &form, &referral_id);
    submit(&state, &form, write).await
}

async fn record(
    state: &AppState,
    signed_in: &SignedIn,
    form: &FormData,
    referral_id: &str,
) -> Result<String, PageError> {
    let back = format!("/referrals/{referral_id}");
    if !is_id(referral_id) {
        return Err(PageError::NotFound);
    }
    let Some(action) = actions::parse(form.get("action")) else {
        return Err(PageError::invalid(
            "操作（action）が正しくありません",
            &back,
        ));
    };
    let mut reason_code = form.get("reason").to_owned();
    if actions::needs_reason(action) && reason_code.is_empty() {
        return Err(PageError::invalid("理由を選んでください（reason）", &back));
    }
    let mut reason_text = String::new();
    if action == ReferralAction::CloseWithReason {
        reason_code = form.get("close_reason").to_owned();
        if !CLOSE_REASONS.iter().any(|(code, _)| *code == reason_code) {
            return Err(PageError::invalid(
                "終結の理由を選んでください（close_reason）",
                &back,
            ));
        }
        reason_text = form.text("reason_text").trim().to_owned();
    } else if !actions::needs_reason(action) {
        reason_code.clear();
    }
    let mut not_connected_reason = NotConnectedReason::Unspecified;
    let mut linked_referral_id = String::new();
    if action == ReferralAction::ReportNotConnected {
        not_connected_reason = NOT_CONNECTED
            .into_iter()
            .find(|reason| reason.code() == form.get("not_connected_reason"))
            .ok_or_else(|| PageError::invalid("つながらなかった理由を選んでください", &back))?;
        linked_referral_id = form.get("linked_referral_id").to_owned();
        if not_connected_reason == NotConnectedReason::ReferredElsewhere {
            if !is_id(&linked_referral_id) {
                return Err(PageError::invalid(
                    "他機関へ紹介したときは、新しい紹介のID（linked_referral_id）を入力してください",
                    &back,
                ));
            }
        } else {
            linked_referral_id.clear();
        }
    }
    let (referral, _) = read(state, referral_id).await?;
    let detail_text = if action_gives_reason(action) {
        form.text("reason_detail").trim().to_owned()
    } else {
        String::new()
    };
    let reason_detail = if detail_text.is_empty() {
        None
    } else {
        // Sealed to both parties, this agency and the municipality's coordinators, who review
        // reasons whether or not the case is registered with the 要対協.
        let case = read_case(state, &referral.case_id)
            .await
            .ok_or_else(|| PageError::invalid("ケースを読めないため詳細を封できません", &back))?;
        let mut sealer = state.sealer()?;
        let coordinators = sealer.coordinators(&case.municipality).await?;
        let mut readers: Vec<&str> = [referral.from_agency.as_str(), referral.to_agency.as_str()]
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        readers.extend(coordinators.iter().map(String::as_str));
        Some(
            sealer
                .seal(detail_text.as_bytes(), &readers, Some(&case))
                .await?,
        )
    };
    let note_text = form.text("note");
    let note = if note_text.trim().is_empty() {
        None
    } else {
        let case = read_case(state, &referral.case_id).await;
        let parties: Vec<&str> = [referral.from_agency.as_str(), referral.to_agency.as_str()]
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        let mut sealer = state.sealer()?;
        Some(
            sealer
                .seal(note_text.as_bytes(), &parties, case.as_ref())
                .await?,
        )
    };
    let hub = state.hub();
    hub.referrals()
        .record_referral_action(RecordReferralActionRequest {
            referral_id: referral_id.to_owned(),
            action: action.into(),
            reason_code,
            reason_text,
            not_connected_reason: not_connected_reason.into(),
            linked_referral_id,
            note,
            reason_detail,
            staff: Some(staff(signed_in)),
            occurred_at: None,
            idempotency_key: form.get("idem").to_owned(),
        })
        .await
        .map_err(|status| PageError::from(hub.call_error(status)))?;
    Ok(back)
}
