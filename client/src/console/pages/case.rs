//! ケース: the cases the caller takes part in, and one case's thread — header, participants,
//! consents, referrals, notes and 要対協 decisions — with forms to open a case, record consent,
//! refer and send a note. A legal-basis refusal comes back as a page in plain Japanese.

use askama::Template;
use axum::extract::{Extension, Path, State};
use axum::response::Response;
use tsunagu_proto::v1::{
    Agency, Case, CaseCategory, CaseStage, ConsentGiver, ConsentMethod, ConsentScope,
    GetCaseThreadRequest, LegalBasis, LegalBasisKind, ListCasesRequest, ListConsentsRequest,
    ListReferralsRequest, OpenCaseRequest, RecordConsentRequest, ReferralDirection,
    SendNoteRequest, SendReferralRequest, Urgency, thread_entry,
};

use super::{Context, Frame, PageError, Section, about_item, form_key, is_id, page, staff, submit};
use crate::console::form::FormData;
use crate::console::guard::SignedIn;
use crate::console::state::AppState;
use crate::console::view::{Opened, ja, jst, purpose};
use crate::render::{Coded, KNOWN_PURPOSES, short_id};

/// Every agency kind a consent may name.
const KINDS: &[(&str, &str)] = &[
    ("health_centre", "保健センター・こども家庭センター"),
    ("child_guidance_centre", "児童相談所"),
    ("hospital", "医療機関"),
    ("nursery", "保育所"),
    ("support_hub", "地域子育て支援拠点"),
];

const CATEGORIES: [CaseCategory; 4] = [
    CaseCategory::General,
    CaseCategory::RequiresProtection,
    CaseCategory::RequiresSupport,
    CaseCategory::SpecificExpectantMother,
];
const STAGES: [CaseStage; 4] = [
    CaseStage::Pregnancy,
    CaseStage::Postnatal,
    CaseStage::Infancy,
    CaseStage::SchoolAge,
];
const BASES: [LegalBasisKind; 4] = [
    LegalBasisKind::Consent,
    LegalBasisKind::CouncilSharing,
    LegalBasisKind::AbuseNotification,
    LegalBasisKind::VitalInterest,
];
const URGENCIES: [Urgency; 3] = [Urgency::Routine, Urgency::Urgent, Urgency::Emergency];

/// A coded choice of a form: its code and Japanese word.
pub type Choice = (&'static str, &'static str);

fn choices<T: Coded>(values: &[T]) -> Vec<Choice> {
    values.iter().map(|v| (v.code(), v.japanese())).collect()
}

fn parse_choice<T: Coded>(values: &[T], code: &str) -> Option<T> {
    values.iter().copied().find(|v| v.code() == code)
}

pub struct CaseRow {
    pub case_id: String,
    pub short: String,
    pub municipality: String,
    pub category: String,
    pub stage: String,
    pub opened_by: String,
    pub opened_at: String,
    pub registered: bool,
    pub header: Opened,
}

#[derive(Template)]
#[template(path = "console/cases.html")]
pub struct CasesPage {
    pub frame: Frame,
    pub cases: Vec<CaseRow>,
    pub municipalities: Vec<String>,
    pub categories: Vec<Choice>,
    pub stages: Vec<Choice>,
    pub idem: String,
}

/// `GET /cases`.
pub async fn list(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
) -> Result<Response, PageError> {
    let cx = Context::load(&state, &signed_in, "ケース", Section::Cases).await?;
    let hub = state.hub();
    let mut cases = Vec::new();
    let mut page_token = String::new();
    loop {
        let answer = hub
            .cases()
            .list_cases(ListCasesRequest {
                municipality: String::new(),
                limit: 500,
                page_token: page_token.clone(),
            })
            .await
            .map_err(|status| hub.call_error(status))?
            .into_inner();
        cases.extend(answer.cases);
        if answer.next_page_token.is_empty()
            || answer.next_page_token == page_token
            || cases.len() >= 5000
        {
            break;
        }
        page_token = answer.next_page_token;
    }
    let opener = state.opener();
    let rows = cases
        .iter()
        .map(|case| CaseRow {
            case_id: case.case_id.clone(),
            short: short_id(&case.case_id).to_owned(),
            municipality: case.municipality.clone(),
            category: ja(case.category()),
            stage: ja(case.stage()),
            opened_by: cx.names.of(&case.opened_by),
            opened_at: jst(case.opened_at.as_ref()),
            registered: case.council_registered,
            header: first_line(Opened::of(&opener, case.header.as_ref())),
        })
        .collect();
    Ok(page(&CasesPage {
        municipalities: cx.me.municipalities.clone(),
        frame: cx.frame,
        cases: rows,
        categories: choices(&CATEGORIES),
        stages: choices(&STAGES),
        idem: form_key(),
    }))
}

/// The first line of an opened header, for a list.
fn first_line(opened: Opened) -> Opened {
    match opened {
        Opened::Text(text) => {
            Opened::Text(text.lines().next().unwrap_or("").chars().take(40).collect())
        }
        other => other,
    }
}

/// `POST /cases`: opens a case.
pub async fn open(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Extension(form): Extension<FormData>,
) -> Response {
    let write = async {
        let back = "/cases";
        let municipality = form.get("municipality").to_owned();
        let category = parse_choice(&CATEGORIES, form.get("category"))
            .ok_or_else(|| PageError::invalid("ケース種別を選んでください", back))?;
        let stage = parse_choice(&STAGES, form.get("stage"))
            .ok_or_else(|| PageError::invalid("支援の段階を選んでください", back))?;
        let header = form.text("header");
        if header.trim().is_empty() {
            return Err(PageError::invalid(
                "ケースの基本情報（氏名・住所など）を入力してください。封をして、この機関にだけ読める形で送られます。",
                back,
            ));
        }
        let mut sealer = state.sealer()?;
        let header = sealer.seal(header.as_bytes(), &[], None).await?;
        let hub = state.hub();
        let case = hub
            .cases()
            .open_case(OpenCaseRequest {
                municipality,
                category: category.into(),
                stage: stage.into(),
                header: Some(header),
                staff: Some(staff(&signed_in)),
                idempotency_key: form.get("idem").to_owned(),
            })
            .await
            .map_err(|status| PageError::from(hub.call_error(status)))?
            .into_inner()
            .case
            .unwrap_or_default();
        Ok(format!("/cases/{}", case.case_id))
    };
    submit(&state, &form, write).await
}

pub struct ThreadLine {
    pub when: String,
    pub kind: &'static str,
    pub what: String,
    pub actor: String,
    pub referral_id: String,
    pub body: Opened,
}

pub struct ConsentRow {
    pub given_by: String,
    pub method: String,
    pub recipients: String,
    pub purposes: String,
    pub valid: String,
    pub withdrawn: bool,
    pub evidence: Opened,
}

pub struct ReferralLine {
    pub referral_id: String,
    pub short: String,
    pub to: String,
    pub purpose: String,
    pub response: String,
    pub connection: String,
    pub overdue: bool,
}

#[derive(Template)]
#[template(path = "console/case.html")]
pub struct CasePage {
    pub frame: Frame,
    pub case_id: String,
    pub short: String,
    pub municipality: String,
    pub category: String,
    pub stage: String,
    pub registered: bool,
    pub opened: String,
    pub header: Opened,
    pub participants: Vec<(String, String)>,
    pub consents: Vec<ConsentRow>,
    pub referrals: Vec<ReferralLine>,
    pub thread: Vec<ThreadLine>,
    pub agencies: Vec<Choice2>,
    pub participant_choices: Vec<Choice2>,
    pub purposes: &'static [Choice],
    pub kinds: &'static [Choice],
    pub bases: Vec<Choice>,
    pub urgencies: Vec<Choice>,
    pub givers: Vec<Choice>,
    pub methods: Vec<Choice>,
    pub idem_consent: String,
    pub idem_refer: String,
    pub idem_note: String,
    /// Sealed fields this agency cannot open, or can give to an agency that cannot yet.
    pub sealed: Vec<super::reseal::SealedLine>,
}

/// An agency choice: id and display name.
pub type Choice2 = (String, String);

/// `GET /cases/{id}`.
pub async fn show(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Path(case_id): Path<String>,
) -> Result<Response, PageError> {
    let mut cx = Context::load(&state, &signed_in, "ケース", Section::Cases).await?;
    cx.frame.live = true;
    if !is_id(&case_id) {
        return Err(PageError::NotFound);
    }
    let hub = state.hub();
    let thread = hub
        .cases()
        .get_case_thread(GetCaseThreadRequest {
            case_id: case_id.clone(),
            since: None,
        })
        .await
        .map_err(|status| about_item(hub.call_error(status)))?
        .into_inner();
    let case = thread.case.clone().ok_or(PageError::NotFound)?;
    let consents = hub
        .cases()
        .list_consents(ListConsentsRequest {
            case_id: case_id.clone(),
        })
        .await
        .map_err(|status| about_item(hub.call_error(status)))?
        .into_inner()
        .consents;
    let referrals = hub
        .referrals()
        .list_referrals(ListReferralsRequest {
            direction: ReferralDirection::All.into(),
            case_id: case_id.clone(),
            include_closed: true,
            limit: 500,
            page_token: String::new(),
        })
        .await
        .map_err(|status| about_item(hub.call_error(status)))?
        .into_inner()
        .referrals;
    let sealed_fields = crate::reseal::fields(hub, &case_id)
        .await
        .map_err(about_item)?;
    let sealed = super::reseal::lines(&sealed_fields, &cx.names);
    let opener = state.opener();
    let thread_lines = thread
        .entries
        .iter()
        .filter_map(|entry| match entry.entry.as_ref()? {
            thread_entry::Entry::ReferralEvent(event) => Some(ThreadLine {
                when: jst(event.occurred_at.as_ref()),
                kind: "紹介",
                what: match event.kind() {
                    tsunagu_proto::v1::ReferralEventKind::Sent => "紹介を送信".to_owned(),
                    tsunagu_proto::v1::ReferralEventKind::Escalated => {
                        format!("{}を過ぎました", ja(event.timer()))
                    }
                    _ => ja(event.action()),
                },
                actor: cx.names.of(&event.actor_agency),
                referral_id: event.referral_id.clone(),
                body: Opened::of(&opener, event.note.as_ref()),
            }),
            thread_entry::Entry::Note(note) => Some(ThreadLine {
                when: jst(note.sent_at.as_ref()),
                kind: "連絡",
                what: format!(
                    "連絡（宛先: {}）",
                    note.recipients
                        .iter()
                        .map(|r| cx.names.of(&r.agency_id))
                        .collect::<Vec<_>>()
                        .join("、")
                ),
                actor: cx.names.of(&note.from_agency),
                referral_id: String::new(),
                body: Opened::of(&opener, note.body.as_ref()),
            }),
            thread_entry::Entry::Reseal(record) => Some(ThreadLine {
                when: jst(record.resealed_at.as_ref()),
                kind: "再封緘",
                what: format!(
                    "再封緘: {}を{}も読めるようにしました",
                    crate::reseal::kind_label(record.field.as_ref().map(|f| f.kind())),
                    record
                        .added_readers
                        .iter()
                        .map(|a| cx.names.of(a))
                        .collect::<Vec<_>>()
                        .join("、")
                ),
                actor: cx.names.of(&record.resealed_by),
                referral_id: String::new(),
                body: Opened::Absent,
            }),
            thread_entry::Entry::Decision(decision) => Some(ThreadLine {
                when: jst(decision.decided_at.as_ref()),
                kind: "要対協",
                what: format!(
                    "要対協の決定: {}（{}の会議）",
                    ja(decision.outcome()),
                    decision.held_on
                ),
                actor: cx.names.of(&decision.decided_by),
                referral_id: String::new(),
                body: Opened::of(&opener, decision.plan.as_ref()),
            }),
            thread_entry::Entry::Transfer(transfer) => Some(ThreadLine {
                when: jst(transfer.at.as_ref()),
                kind: "移管",
                what: transfer_line(transfer),
                actor: String::new(),
                referral_id: String::new(),
                body: Opened::Absent,
            }),
        })
        .collect();
    let consent_rows = consents
        .iter()
        .map(|c| {
            let scope = c.scope.clone().unwrap_or_default();
            let mut recipients: Vec<String> = scope
                .recipient_agencies
                .iter()
                .map(|a| cx.names.of(a))
                .collect();
            recipients.extend(
                scope
                    .recipient_kinds
                    .iter()
                    .map(|k| kind_word(k).to_owned()),
            );
            ConsentRow {
                given_by: ja(c.given_by()),
                method: ja(c.method()),
                recipients: recipients.join("、"),
                purposes: scope
                    .purposes
                    .iter()
                    .map(|p| purpose(p))
                    .collect::<Vec<_>>()
                    .join("、"),
                valid: format!(
                    "{} ～ {}",
                    c.valid_from,
                    if c.valid_until.is_empty() {
                        "期限なし"
                    } else {
                        &c.valid_until
                    }
                ),
                withdrawn: c.withdrawn_at.is_some(),
                evidence: Opened::of(&opener, c.evidence.as_ref()),
            }
        })
        .collect();
    let referral_lines = referrals
        .iter()
        .map(|r| ReferralLine {
            referral_id: r.referral_id.clone(),
            short: short_id(&r.referral_id).to_owned(),
            to: format!(
                "{} → {}",
                cx.names.of(&r.from_agency),
                cx.names.of(&r.to_agency)
            ),
            purpose: purpose(&r.purpose),
            response: ja(r.response()),
            connection: ja(r.connection()),
            overdue: !r.overdue.is_empty(),
        })
        .collect();
    let agencies = agency_choices(&cx.agencies, &case, &cx.me);
    let participant_choices = case
        .participants
        .iter()
        .filter(|p| p.agency_id != cx.me.agency_id)
        .map(|p| (p.agency_id.clone(), cx.names.of(&p.agency_id)))
        .collect();
    let mut frame = cx.frame;
    frame.title = format!("ケース {}", short_id(&case.case_id));
    Ok(page(&CasePage {
        frame,
        short: short_id(&case.case_id).to_owned(),
        municipality: case.municipality.clone(),
        category: ja(case.category()),
        stage: ja(case.stage()),
        registered: case.council_registered,
        opened: format!(
            "{}（{}）",
            jst(case.opened_at.as_ref()),
            cx.names.of(&case.opened_by)
        ),
        header: Opened::of(&opener, case.header.as_ref()),
        participants: case
            .participants
            .iter()
            .map(|p| (cx.names.of(&p.agency_id), jst(p.since.as_ref())))
            .collect(),
        consents: consent_rows,
        referrals: referral_lines,
        thread: thread_lines,
        agencies,
        participant_choices,
        purposes: KNOWN_PURPOSES,
        kinds: KINDS,
        bases: choices(&BASES),
        urgencies: choices(&URGENCIES),
        givers: choices(&[ConsentGiver::Person, ConsentGiver::Guardian]),
        methods: choices(&[
            ConsentMethod::Written,
            ConsentMethod::Oral,
            ConsentMethod::Electronic,
        ]),
        idem_consent: form_key(),
        idem_refer: form_key(),
        idem_note: form_key(),
        sealed,
        case_id: case.case_id,
    }))
}

fn kind_word(kind: &str) -> &str {
    KINDS
        .iter()
        .find(|(code, _)| *code == kind)
        .map_or(kind, |(_, word)| word)
}

/// The active agencies serving the case's municipality, other than the caller.
fn agency_choices(agencies: &[Agency], case: &Case, me: &Agency) -> Vec<Choice2> {
    agencies
        .iter()
        .filter(|a| a.agency_id != me.agency_id)
        .filter(|a| a.municipalities.iter().any(|m| m == &case.municipality))
        .map(|a| (a.agency_id.clone(), a.display_name.clone()))
        .collect()
}

/// The case a form is about, or the same "not found" for a missing or hidden one.
async fn case_of(state: &AppState, case_id: &str) -> Result<Case, PageError> {
    if !is_id(case_id) {
        return Err(PageError::NotFound);
    }
    super::referral::read_case(state, case_id)
        .await
        .ok_or(PageError::NotFound)
}

/// The legal basis a form chose.
/// The value of a choice the form must carry, or the page's error saying to make it.
fn required(
    form: &FormData,
    name: &str,
    message: &'static str,
    back: &str,
) -> Result<String, PageError> {
    let value = form.get(name);
    if value.is_empty() {
        return Err(PageError::invalid(message, back));
    }
    Ok(value.to_owned())
}

fn basis_of(form: &FormData, back: &str) -> Result<LegalBasis, PageError> {
    let kind = parse_choice(&BASES, form.get("basis"))
        .ok_or_else(|| PageError::invalid("法的根拠を選んでください", back))?;
    let justification = form.get("justification").to_owned();
    if kind != LegalBasisKind::Consent && justification.is_empty() {
        return Err(PageError::invalid(
            "同意以外の法的根拠では、理由（justification）の記入が必要です。家族を特定する情報は書かず、詳細は本文に書いてください。",
            back,
        ));
    }
    Ok(LegalBasis {
        kind: kind.into(),
        consent_id: String::new(),
        justification: if kind == LegalBasisKind::Consent {
            String::new()
        } else {
            justification
        },
    })
}

/// `POST /cases/{id}/consents`.
pub async fn record_consent(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Extension(form): Extension<FormData>,
    Path(case_id): Path<String>,
) -> Response {
    let write = async {
        let back = format!("/cases/{case_id}");
        let case = case_of(&state, &case_id).await?;
        let given_by = parse_choice(
            &[ConsentGiver::Person, ConsentGiver::Guardian],
            form.get("given_by"),
        )
        .ok_or_else(|| PageError::invalid("同意した人（本人・保護者）を選んでください", &back))?;
        let method = parse_choice(
            &[
                ConsentMethod::Written,
                ConsentMethod::Oral,
                ConsentMethod::Electronic,
            ],
            form.get("method"),
        )
        .ok_or_else(|| PageError::invalid("同意の方法を選んでください", &back))?;
        let scope = ConsentScope {
            recipient_agencies: form.all("recipients"),
            recipient_kinds: form.all("kinds"),
            purposes: form.all("purposes"),
        };
        if scope.purposes.is_empty() {
            return Err(PageError::invalid(
                "同意の目的を一つ以上選んでください",
                &back,
            ));
        }
        if scope.recipient_agencies.is_empty() && scope.recipient_kinds.is_empty() {
            return Err(PageError::invalid(
                "共有先の機関または機関の種類を選んでください",
                &back,
            ));
        }
        let evidence = match form.text("evidence") {
            text if text.trim().is_empty() => None,
            text => Some(
                state
                    .sealer()?
                    .seal(text.as_bytes(), &[], Some(&case))
                    .await?,
            ),
        };
        let hub = state.hub();
        hub.cases()
            .record_consent(RecordConsentRequest {
                case_id: case_id.clone(),
                given_by: given_by.into(),
                method: method.into(),
                scope: Some(scope),
                valid_from: form.get("valid_from").to_owned(),
                valid_until: form.get("valid_until").to_owned(),
                evidence,
                staff: Some(staff(&signed_in)),
                idempotency_key: form.get("idem").to_owned(),
            })
            .await
            .map_err(|status| PageError::from(hub.call_error(status)))?;
        Ok(back)
    };
    submit(&state, &form, write).await
}

/// `POST /cases/{id}/referrals`.
pub async fn refer(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Extension(form): Extension<FormData>,
    Path(case_id): Path<String>,
) -> Response {
    let write = async {
        let back = format!("/cases/{case_id}");
        let case = case_of(&state, &case_id).await?;
        let to = required(&form, "to", "紹介先の機関を選んでください", &back)?;
        let purpose = required(&form, "purpose", "紹介の目的を選んでください", &back)?;
        let urgency = parse_choice(&URGENCIES, form.get("urgency"))
            .ok_or_else(|| PageError::invalid("緊急度を選んでください", &back))?;
        let basis = basis_of(&form, &back)?;
        let body = form.text("body");
        if body.trim().is_empty() {
            return Err(PageError::invalid("紹介の内容を入力してください", &back));
        }
        let body = state
            .sealer()?
            .seal(body.as_bytes(), &[to.as_str()], Some(&case))
            .await?;
        let hub = state.hub();
        let referral = hub
            .referrals()
            .send_referral(SendReferralRequest {
                case_id: case_id.clone(),
                to_agency: to,
                purpose,
                urgency: urgency.into(),
                basis: Some(basis),
                body: Some(body),
                deadlines: None,
                staff: Some(staff(&signed_in)),
                idempotency_key: form.get("idem").to_owned(),
            })
            .await
            .map_err(|status| PageError::from(hub.call_error(status)))?
            .into_inner()
            .referral
            .unwrap_or_default();
        Ok(format!("/referrals/{}", referral.referral_id))
    };
    submit(&state, &form, write).await
}

/// `POST /cases/{id}/notes`.
pub async fn note(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Extension(form): Extension<FormData>,
    Path(case_id): Path<String>,
) -> Response {
    let write = async {
        let back = format!("/cases/{case_id}");
        let case = case_of(&state, &case_id).await?;
        let to = form.all("to");
        if to.is_empty() || to.len() > 20 {
            return Err(PageError::invalid(
                "宛先の機関を1～20機関選んでください",
                &back,
            ));
        }
        let purpose = required(&form, "purpose", "連絡の目的を選んでください", &back)?;
        let basis = basis_of(&form, &back)?;
        let body = form.text("body");
        if body.trim().is_empty() {
            return Err(PageError::invalid("連絡の本文を入力してください", &back));
        }
        let readers: Vec<&str> = to.iter().map(String::as_str).collect();
        let body = state
            .sealer()?
            .seal(body.as_bytes(), &readers, Some(&case))
            .await?;
        let hub = state.hub();
        hub.referrals()
            .send_note(SendNoteRequest {
                case_id: case_id.clone(),
                to_agencies: to,
                purpose,
                basis: Some(basis),
                body: Some(body),
                staff: Some(staff(&signed_in)),
                idempotency_key: form.get("idem").to_owned(),
            })
            .await
            .map_err(|status| PageError::from(hub.call_error(status)))?;
        Ok(back)
    };
    submit(&state, &form, write).await
}

/// One line of a case thread about a transfer (移管): where the family went, and where it stands.
fn transfer_line(transfer: &tsunagu_proto::v1::TransferEntry) -> String {
    let mut line = format!(
        "移管 {} → {}: {}",
        transfer.from_municipality,
        transfer.to_municipality,
        ja(transfer.state())
    );
    if !transfer.receiving_case_id.is_empty() {
        line.push_str(&format!(
            "（転入先のケース {}）",
            short_id(&transfer.receiving_case_id)
        ));
    }
    line
}
