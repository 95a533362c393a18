//! Builders for the end-to-end tests of cases, consent, referrals, notes and the event feed:
//! real age files, staff, idempotency keys, and the calls that set a scenario up over mTLS.

use std::fmt::Debug;
use std::io::Write;
use std::time::{Duration, Instant};

use tonic::{Code, Status};
use tsunagu_client::Hub;
use tsunagu_hub::domain::Clock;
use tsunagu_proto::v1 as pb;

use crate::MUNICIPALITY;

/// 産後ケア
pub const POSTNATAL_CARE: &str = "postnatal_care";
/// 養育支援訪問
pub const HOME_VISIT_SUPPORT: &str = "home_visit_support";
/// 保育所入所
pub const NURSERY_ADMISSION: &str = "nursery_admission";
/// 児童保護
pub const CHILD_PROTECTION: &str = "child_protection";

/// An age file (binary format) of `text`, encrypted to a freshly generated X25519 identity.
pub fn sealed(text: &str) -> pb::Sealed {
    sealed_bytes(text.as_bytes())
}

/// An age file (binary format) of `plaintext`.
pub fn sealed_bytes(plaintext: &[u8]) -> pb::Sealed {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public();
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .unwrap();
    let mut out = Vec::new();
    let mut writer = encryptor.wrap_output(&mut out).unwrap();
    writer.write_all(plaintext).unwrap();
    writer.finish().unwrap();
    pb::Sealed { age: out }
}

/// An ASCII-armoured age file of `text`.
pub fn sealed_armored(text: &str) -> pb::Sealed {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public();
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .unwrap();
    let mut out = Vec::new();
    let armor =
        age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor).unwrap();
    let mut writer = encryptor.wrap_output(armor).unwrap();
    writer.write_all(text.as_bytes()).unwrap();
    writer.finish().and_then(|armor| armor.finish()).unwrap();
    pb::Sealed { age: out }
}

/// An age file at least `len` bytes long (its plaintext is `len` bytes).
pub fn sealed_of_at_least(len: usize) -> pb::Sealed {
    let sealed = sealed_bytes(&vec![b'x'; len]);
    assert!(sealed.age.len() >= len);
    sealed
}

/// Bytes that are not an age file at all.
pub fn not_sealed() -> pb::Sealed {
    pb::Sealed {
        age: "母子の氏名: 山田花子 (plaintext)".as_bytes().to_vec(),
    }
}

/// The staff member every test acts as.
pub fn staff() -> pb::Staff {
    pb::Staff {
        name: "保健師 山田".to_owned(),
        role: "保健師".to_owned(),
    }
}

/// A fresh idempotency key.
pub fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The civil date in Japan `days` days from the hub clock's today, as YYYY-MM-DD.
pub fn japan_date(clock: &dyn Clock, days: i64) -> String {
    let date = clock.now().date_in_japan() + time::Duration::days(days);
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The hub clock's now plus `hours`, as a protobuf timestamp (whole milliseconds).
pub fn hours_from_now(clock: &dyn Clock, hours: i64) -> prost_types::Timestamp {
    let at = clock.now().millis() + hours * 3_600_000;
    prost_types::Timestamp {
        seconds: at.div_euclid(1000),
        nanos: (at.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Milliseconds since the epoch of a timestamp that must be set.
pub fn millis(at: &Option<prost_types::Timestamp>) -> i64 {
    let at = at.as_ref().expect("timestamp is set");
    at.seconds * 1000 + i64::from(at.nanos) / 1_000_000
}

/// Asserts that `result` failed with `code` and that its message contains every needle.
#[track_caller]
pub fn assert_refused<T: Debug>(result: Result<T, Status>, code: Code, needles: &[&str]) -> Status {
    let status = match result {
        Ok(value) => panic!("expected {code:?}, the call succeeded with {value:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "{status:?}");
    for needle in needles {
        assert!(
            status.message().contains(needle),
            "{needle:?} missing from {status:?}"
        );
    }
    status
}

/// Asserts an INVALID_ARGUMENT whose message starts with `field` followed by a colon (or by a
/// dot and a subfield: `staff` is named by "staff.name: ..." too).
#[track_caller]
pub fn assert_invalid<T: Debug>(result: Result<T, Status>, field: &str) -> Status {
    let status = assert_refused(result, Code::InvalidArgument, &[]);
    let rest = status.message().strip_prefix(field);
    assert!(
        rest.is_some_and(|rest| rest.starts_with(':') || rest.starts_with('.')),
        "the message does not start with {field:?}: {status:?}"
    );
    status
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `within`.
pub async fn eventually<T>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// Cases and consent.

/// The request kodomo (or anyone) sends to open a 特定妊婦 case in the pregnancy stage.
pub fn open_case_request(municipality: &str) -> pb::OpenCaseRequest {
    pb::OpenCaseRequest {
        municipality: municipality.to_owned(),
        category: pb::CaseCategory::SpecificExpectantMother as i32,
        stage: pb::CaseStage::Pregnancy as i32,
        header: Some(sealed("氏名: 山田花子 / 出産予定日: 2026-09-01")),
        staff: Some(staff()),
        idempotency_key: key(),
    }
}

pub async fn try_open_case(client: &Hub, request: pb::OpenCaseRequest) -> Result<pb::Case, Status> {
    let response = client.cases().open_case(request).await?.into_inner();
    Ok(response.case.expect("OpenCaseResponse.case"))
}

/// The caller opens a 特定妊婦 / pregnancy case in 141178.
pub async fn open_case(client: &Hub) -> pb::Case {
    try_open_case(client, open_case_request(MUNICIPALITY))
        .await
        .unwrap()
}

pub async fn get_case(client: &Hub, case_id: &str) -> Result<pb::Case, Status> {
    let response = client
        .cases()
        .get_case(pb::GetCaseRequest {
            case_id: case_id.to_owned(),
        })
        .await?
        .into_inner();
    Ok(response.case.expect("GetCaseResponse.case"))
}

/// Every case the caller may see (all pages).
pub async fn list_cases(client: &Hub) -> Vec<pb::Case> {
    let mut cases = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .cases()
            .list_cases(pb::ListCasesRequest {
                municipality: String::new(),
                limit: 0,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        cases.extend(page.cases);
        if page.next_page_token.is_empty() {
            return cases;
        }
        page_token = page.next_page_token;
    }
}

/// The agency ids of a case's participants, sorted.
pub fn participant_ids(case: &pb::Case) -> Vec<String> {
    let mut ids: Vec<String> = case
        .participants
        .iter()
        .map(|p| p.agency_id.clone())
        .collect();
    ids.sort();
    ids
}

/// A written guardian consent.
pub fn consent_request(
    case_id: &str,
    recipients: &[&str],
    kinds: &[&str],
    purposes: &[&str],
    valid_from: &str,
    valid_until: &str,
) -> pb::RecordConsentRequest {
    let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    pb::RecordConsentRequest {
        case_id: case_id.to_owned(),
        given_by: pb::ConsentGiver::Guardian as i32,
        method: pb::ConsentMethod::Written as i32,
        scope: Some(pb::ConsentScope {
            recipient_agencies: owned(recipients),
            recipient_kinds: owned(kinds),
            purposes: owned(purposes),
        }),
        valid_from: valid_from.to_owned(),
        valid_until: valid_until.to_owned(),
        evidence: Some(sealed("同意書 (署名済み) のスキャン")),
        staff: Some(staff()),
        idempotency_key: key(),
    }
}

pub async fn try_record_consent(
    client: &Hub,
    request: pb::RecordConsentRequest,
) -> Result<pb::Consent, Status> {
    let response = client.cases().record_consent(request).await?.into_inner();
    Ok(response.consent.expect("RecordConsentResponse.consent"))
}

/// Records a written guardian consent; panics when the hub refuses it.
pub async fn record_consent(
    client: &Hub,
    case_id: &str,
    recipients: &[&str],
    kinds: &[&str],
    purposes: &[&str],
    valid_from: &str,
    valid_until: &str,
) -> pb::Consent {
    try_record_consent(
        client,
        consent_request(
            case_id,
            recipients,
            kinds,
            purposes,
            valid_from,
            valid_until,
        ),
    )
    .await
    .unwrap()
}

pub async fn withdraw_consent(client: &Hub, consent_id: &str) -> Result<pb::Consent, Status> {
    let response = client
        .cases()
        .withdraw_consent(pb::WithdrawConsentRequest {
            consent_id: consent_id.to_owned(),
            staff: Some(staff()),
            withdrawn_at: None,
        })
        .await?
        .into_inner();
    Ok(response.consent.expect("WithdrawConsentResponse.consent"))
}

pub async fn list_consents(client: &Hub, case_id: &str) -> Result<Vec<pb::Consent>, Status> {
    Ok(client
        .cases()
        .list_consents(pb::ListConsentsRequest {
            case_id: case_id.to_owned(),
        })
        .await?
        .into_inner()
        .consents)
}

pub async fn case_thread(client: &Hub, case_id: &str) -> Result<pb::GetCaseThreadResponse, Status> {
    Ok(client
        .cases()
        .get_case_thread(pb::GetCaseThreadRequest {
            case_id: case_id.to_owned(),
            since: None,
        })
        .await?
        .into_inner())
}

/// `client` opens a case in 141178 and records a consent, valid from today for a year, covering
/// `recipients` for `purposes`.
pub async fn consented_case(
    clock: &dyn Clock,
    client: &Hub,
    recipients: &[&str],
    purposes: &[&str],
) -> (pb::Case, pb::Consent) {
    let case = open_case(client).await;
    let consent = record_consent(
        client,
        &case.case_id,
        recipients,
        &[],
        purposes,
        &japan_date(clock, 0),
        &japan_date(clock, 365),
    )
    .await;
    (case, consent)
}

/// `client` opens a consented case (as `consented_case`) and refers it to `to` for `purpose`
/// under that consent: the start of most referral stories.
pub async fn referred_case(
    clock: &dyn Clock,
    client: &Hub,
    to: &str,
    purpose: &str,
) -> (pb::Case, pb::Referral) {
    let (case, _) = consented_case(clock, client, &[to], &[purpose]).await;
    let referral = send_referral(client, &case.case_id, to, purpose, by_consent())
        .await
        .unwrap();
    (case, referral)
}

// Referrals.

/// A consent basis with no consent id: the hub finds a covering record.
pub fn by_consent() -> pb::LegalBasis {
    pb::LegalBasis {
        kind: pb::LegalBasisKind::Consent as i32,
        consent_id: String::new(),
        justification: String::new(),
    }
}

/// A basis other than consent, with its justification.
pub fn basis(kind: pb::LegalBasisKind, justification: &str) -> pb::LegalBasis {
    pb::LegalBasis {
        kind: kind as i32,
        consent_id: String::new(),
        justification: justification.to_owned(),
    }
}

/// A routine referral with a sealed body and default deadlines.
pub fn referral_request(
    case_id: &str,
    to: &str,
    purpose: &str,
    basis: pb::LegalBasis,
) -> pb::SendReferralRequest {
    pb::SendReferralRequest {
        case_id: case_id.to_owned(),
        to_agency: to.to_owned(),
        purpose: purpose.to_owned(),
        urgency: pb::Urgency::Routine as i32,
        basis: Some(basis),
        body: Some(sealed(
            "産後ケア事業の利用を依頼します。母は産後うつの傾向あり。",
        )),
        deadlines: None,
        staff: Some(staff()),
        idempotency_key: key(),
    }
}

pub async fn send(client: &Hub, request: pb::SendReferralRequest) -> Result<pb::Referral, Status> {
    let response = client
        .referrals()
        .send_referral(request)
        .await?
        .into_inner();
    Ok(response.referral.expect("SendReferralResponse.referral"))
}

/// Sends a routine referral.
pub async fn send_referral(
    client: &Hub,
    case_id: &str,
    to: &str,
    purpose: &str,
    basis: pb::LegalBasis,
) -> Result<pb::Referral, Status> {
    send(client, referral_request(case_id, to, purpose, basis)).await
}

pub async fn get_referral(
    client: &Hub,
    referral_id: &str,
) -> Result<pb::GetReferralResponse, Status> {
    Ok(client
        .referrals()
        .get_referral(pb::GetReferralRequest {
            referral_id: referral_id.to_owned(),
        })
        .await?
        .into_inner())
}

/// Every referral the caller sent and/or received, closed ones included (all pages).
pub async fn list_referrals(
    client: &Hub,
    direction: pb::ReferralDirection,
    case_id: &str,
) -> Vec<pb::Referral> {
    let mut referrals = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .referrals()
            .list_referrals(pb::ListReferralsRequest {
                direction: direction as i32,
                case_id: case_id.to_owned(),
                include_closed: true,
                limit: 0,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        referrals.extend(page.referrals);
        if page.next_page_token.is_empty() {
            return referrals;
        }
        page_token = page.next_page_token;
    }
}

/// The ids of every referral the caller sent or received.
pub async fn referral_ids(client: &Hub) -> Vec<String> {
    let mut ids: Vec<String> = list_referrals(client, pb::ReferralDirection::All, "")
        .await
        .into_iter()
        .map(|r| r.referral_id)
        .collect();
    ids.sort();
    ids
}

/// An action with no reason, note or link.
pub fn action_request(
    referral_id: &str,
    action: pb::ReferralAction,
) -> pb::RecordReferralActionRequest {
    pb::RecordReferralActionRequest {
        referral_id: referral_id.to_owned(),
        action: action as i32,
        reason_code: String::new(),
        not_connected_reason: 0,
        linked_referral_id: String::new(),
        note: None,
        staff: Some(staff()),
        occurred_at: None,
        idempotency_key: key(),
        ..pb::RecordReferralActionRequest::default()
    }
}

/// An action with a reason code (decline, fail, cancel).
pub fn action_with_reason(
    referral_id: &str,
    action: pb::ReferralAction,
    reason_code: &str,
) -> pb::RecordReferralActionRequest {
    pb::RecordReferralActionRequest {
        reason_code: reason_code.to_owned(),
        ..action_request(referral_id, action)
    }
}

/// A not-connected report.
pub fn not_connected_request(
    referral_id: &str,
    reason: pb::NotConnectedReason,
    linked_referral_id: &str,
) -> pb::RecordReferralActionRequest {
    pb::RecordReferralActionRequest {
        not_connected_reason: reason as i32,
        linked_referral_id: linked_referral_id.to_owned(),
        ..action_request(referral_id, pb::ReferralAction::ReportNotConnected)
    }
}

pub async fn act_with(
    client: &Hub,
    request: pb::RecordReferralActionRequest,
) -> Result<pb::RecordReferralActionResponse, Status> {
    Ok(client
        .referrals()
        .record_referral_action(request)
        .await?
        .into_inner())
}

/// Takes an action that needs no reason; returns the referral after it.
pub async fn act(
    client: &Hub,
    referral_id: &str,
    action: pb::ReferralAction,
) -> Result<pb::Referral, Status> {
    let response = act_with(client, action_request(referral_id, action)).await?;
    Ok(response
        .referral
        .expect("RecordReferralActionResponse.referral"))
}

/// The caller's worklist. `municipality` empty: the caller's own items.
pub async fn follow_ups(client: &Hub, municipality: &str) -> Vec<pb::FollowUpItem> {
    client
        .referrals()
        .follow_ups(pb::FollowUpsRequest {
            municipality: municipality.to_owned(),
            due_within_hours: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .items
}

/// The (status, timer) pairs of the worklist items about one referral, sorted.
pub fn items_for(items: &[pb::FollowUpItem], referral_id: &str) -> Vec<(i32, i32)> {
    let mut found: Vec<(i32, i32)> = items
        .iter()
        .filter(|item| {
            item.referral
                .as_ref()
                .is_some_and(|r| r.referral_id == referral_id)
        })
        .map(|item| (item.status, item.timer))
        .collect();
    found.sort();
    found
}

// Notes.

pub fn note_request(
    case_id: &str,
    to: &[&str],
    purpose: &str,
    basis: pb::LegalBasis,
) -> pb::SendNoteRequest {
    pb::SendNoteRequest {
        case_id: case_id.to_owned(),
        to_agencies: to.iter().map(|s| (*s).to_owned()).collect(),
        purpose: purpose.to_owned(),
        basis: Some(basis),
        body: Some(sealed("本日の家庭訪問: 母の表情は明るい。")),
        staff: Some(staff()),
        idempotency_key: key(),
    }
}

pub async fn send_note(client: &Hub, request: pb::SendNoteRequest) -> Result<pb::Note, Status> {
    let response = client.referrals().send_note(request).await?.into_inner();
    Ok(response.note.expect("SendNoteResponse.note"))
}

pub async fn acknowledge_note(client: &Hub, note_id: &str) -> Result<pb::Note, Status> {
    let response = client
        .referrals()
        .acknowledge_note(pb::AcknowledgeNoteRequest {
            note_id: note_id.to_owned(),
            staff: Some(staff()),
            idempotency_key: key(),
        })
        .await?
        .into_inner();
    Ok(response.note.expect("AcknowledgeNoteResponse.note"))
}

// The event feed.

/// The caller's feed after `after`, every page.
pub async fn events_after(client: &Hub, after: u64) -> Vec<pb::FeedEvent> {
    let mut events = Vec::new();
    let mut cursor = after;
    loop {
        let page = client
            .events()
            .list_events(pb::ListEventsRequest {
                after_cursor: cursor,
                limit: 0,
            })
            .await
            .unwrap()
            .into_inner();
        if page.events.is_empty() {
            return events;
        }
        cursor = page.last_cursor;
        events.extend(page.events);
    }
}

/// The caller's whole feed.
pub async fn all_events(client: &Hub) -> Vec<pb::FeedEvent> {
    events_after(client, 0).await
}

/// The caller's feed events of one kind about one referral.
pub fn of_kind<'a>(
    events: &'a [pb::FeedEvent],
    kind: pb::FeedEventKind,
    referral_id: &str,
) -> Vec<&'a pb::FeedEvent> {
    events
        .iter()
        .filter(|e| e.kind == kind as i32 && e.referral_id == referral_id)
        .collect()
}

/// Asserts the feed's cursors strictly increase and its event ids are unique.
#[track_caller]
pub fn assert_well_ordered(events: &[pb::FeedEvent]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].cursor < pair[1].cursor,
            "cursors do not increase: {} then {}",
            pair[0].cursor,
            pair[1].cursor
        );
    }
    let mut ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "duplicate event ids in the feed");
    assert!(events.iter().all(|e| !e.event_id.is_empty()));
}

// 要対協 (the council).

/// The basis of a share among council members of a registered case, with its justification.
pub fn council_sharing() -> pb::LegalBasis {
    basis(
        pb::LegalBasisKind::CouncilSharing,
        "要対協登録ケース: 実務者会議での進行管理のため",
    )
}

/// kodomo's (the coordinator's) request to register a case as 要支援児童 with kodomo leading.
/// Empty dates take the hub's defaults (today; registered_on plus the interval).
pub fn register_request(
    case_id: &str,
    registered_on: &str,
    next_review_on: &str,
) -> pb::RegisterCaseRequest {
    pb::RegisterCaseRequest {
        case_id: case_id.to_owned(),
        category: pb::CaseCategory::RequiresSupport as i32,
        registered_on: registered_on.to_owned(),
        lead_agency: "kodomo".to_owned(),
        key_person: Some(sealed("キーパーソン: 担当保健師 山田")),
        review_interval_days: 0,
        next_review_on: next_review_on.to_owned(),
        justification: "養育支援が必要 (産後うつの傾向)".to_owned(),
        staff: Some(staff()),
        idempotency_key: key(),
    }
}

pub async fn try_register(
    client: &Hub,
    request: pb::RegisterCaseRequest,
) -> Result<pb::Registration, Status> {
    let response = client.council().register_case(request).await?.into_inner();
    Ok(response
        .registration
        .expect("RegisterCaseResponse.registration"))
}

/// Registers a case; panics when the hub refuses.
pub async fn register_case(
    client: &Hub,
    case_id: &str,
    registered_on: &str,
    next_review_on: &str,
) -> pb::Registration {
    try_register(
        client,
        register_request(case_id, registered_on, next_review_on),
    )
    .await
    .unwrap()
}

pub async fn list_registrations(
    client: &Hub,
    municipality: &str,
    include_closed: bool,
) -> Result<Vec<pb::Registration>, Status> {
    Ok(client
        .council()
        .list_registrations(pb::ListRegistrationsRequest {
            municipality: municipality.to_owned(),
            include_closed,
        })
        .await?
        .into_inner()
        .registrations)
}

/// A request to end a registration (close with a reason, or transfer).
pub fn end_request(
    case_id: &str,
    outcome: pb::DecisionOutcome,
    close_reason: &str,
    transfer_to: &str,
) -> pb::EndRegistrationRequest {
    pb::EndRegistrationRequest {
        case_id: case_id.to_owned(),
        outcome: outcome as i32,
        close_reason: close_reason.to_owned(),
        transfer_to: transfer_to.to_owned(),
        ended_on: String::new(),
        staff: Some(staff()),
        idempotency_key: key(),
    }
}

pub async fn end_registration(
    client: &Hub,
    request: pb::EndRegistrationRequest,
) -> Result<pb::Registration, Status> {
    let response = client
        .council()
        .end_registration(request)
        .await?
        .into_inner();
    Ok(response
        .registration
        .expect("EndRegistrationResponse.registration"))
}

/// A meeting of the 141178 council on `held_on`; no cases: every registration due by then.
pub fn schedule_request(
    kind: pb::MeetingKind,
    held_on: &str,
    case_ids: &[&str],
) -> pb::ScheduleMeetingRequest {
    pb::ScheduleMeetingRequest {
        municipality: MUNICIPALITY.to_owned(),
        kind: kind as i32,
        held_on: held_on.to_owned(),
        case_ids: case_ids.iter().map(|id| (*id).to_owned()).collect(),
        staff: Some(staff()),
        idempotency_key: key(),
    }
}

pub async fn try_schedule(
    client: &Hub,
    request: pb::ScheduleMeetingRequest,
) -> Result<pb::Meeting, Status> {
    let response = client
        .council()
        .schedule_meeting(request)
        .await?
        .into_inner();
    Ok(response.meeting.expect("ScheduleMeetingResponse.meeting"))
}

/// Schedules a meeting of the 141178 council; panics when the hub refuses.
pub async fn schedule_meeting(
    client: &Hub,
    kind: pb::MeetingKind,
    held_on: &str,
    case_ids: &[&str],
) -> pb::Meeting {
    try_schedule(client, schedule_request(kind, held_on, case_ids))
        .await
        .unwrap()
}

pub async fn list_meetings(client: &Hub, municipality: &str) -> Result<Vec<pb::Meeting>, Status> {
    Ok(client
        .council()
        .list_meetings(pb::ListMeetingsRequest {
            municipality: municipality.to_owned(),
        })
        .await?
        .into_inner()
        .meetings)
}

pub async fn meeting_pack(
    client: &Hub,
    meeting_id: &str,
) -> Result<pb::GetMeetingPackResponse, Status> {
    Ok(client
        .council()
        .get_meeting_pack(pb::GetMeetingPackRequest {
            meeting_id: meeting_id.to_owned(),
        })
        .await?
        .into_inner())
}

/// The pack's entry for one case; panics when the case is not on the agenda.
pub fn pack_case<'a>(pack: &'a pb::GetMeetingPackResponse, case_id: &str) -> &'a pb::PackCase {
    pack.cases
        .iter()
        .find(|c| c.case.as_ref().is_some_and(|c| c.case_id == case_id))
        .unwrap_or_else(|| panic!("case {case_id} is not in the pack"))
}

/// A decision with no reason, transfer, lead change, plan or date: the hub's defaults.
pub fn decision_request(
    meeting_id: &str,
    case_id: &str,
    outcome: pb::DecisionOutcome,
) -> pb::RecordDecisionRequest {
    pb::RecordDecisionRequest {
        meeting_id: meeting_id.to_owned(),
        case_id: case_id.to_owned(),
        outcome: outcome as i32,
        close_reason: String::new(),
        transfer_to: String::new(),
        lead_agency: String::new(),
        plan: Some(sealed(
            "役割分担: 保育園が登園状況を見守り、保健師が月1回家庭訪問",
        )),
        next_review_on: String::new(),
        staff: Some(staff()),
        idempotency_key: key(),
    }
}

pub async fn try_decide(
    client: &Hub,
    request: pb::RecordDecisionRequest,
) -> Result<pb::RecordDecisionResponse, Status> {
    Ok(client
        .council()
        .record_decision(request)
        .await?
        .into_inner())
}

/// The council decisions in a case thread, oldest first.
pub fn thread_decisions(thread: &pb::GetCaseThreadResponse) -> Vec<&pb::Decision> {
    thread
        .entries
        .iter()
        .filter_map(|entry| match &entry.entry {
            Some(pb::thread_entry::Entry::Decision(decision)) => Some(decision),
            _ => None,
        })
        .collect()
}

// Meeting packs: age keys, and printing with headless Chromium.

/// Generates an age identity for the client's agency and publishes its recipient with
/// PublishKey, as `tsunagu keys init` does (without writing the identity file).
pub async fn publish_identity(client: &Hub) -> age::x25519::Identity {
    let identity = age::x25519::Identity::generate();
    let key = tsunagu_client::keys::publish(client, &identity.to_public(), &staff())
        .await
        .unwrap();
    assert_eq!(key.recipient, identity.to_public().to_string());
    identity
}

/// Where a program is on PATH.
pub fn on_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The programs that print an HTML page and read the PDF back: Debian's `chromium`, and
/// `pdfinfo` and `pdftotext` from poppler-utils (`.ci/run` installs them).
pub struct PrintTools {
    pub chromium: std::path::PathBuf,
    pub pdfinfo: std::path::PathBuf,
    pub pdftotext: std::path::PathBuf,
}

/// The print tools, or `None` to skip (with a message) when one is missing — except in CI
/// (`CI=true`, or `TSUNAGU_REQUIRE_CHROMIUM=1`), where a missing tool fails the test.
pub fn print_tools_or_skip(test: &str) -> Option<PrintTools> {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find_map(on_path);
    let tools = (chromium, on_path("pdfinfo"), on_path("pdftotext"));
    if let (Some(chromium), Some(pdfinfo), Some(pdftotext)) = tools {
        return Some(PrintTools {
            chromium,
            pdfinfo,
            pdftotext,
        });
    }
    let required = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("TSUNAGU_REQUIRE_CHROMIUM").as_deref() == Ok("1");
    assert!(
        !required,
        "{test} needs chromium, pdfinfo and pdftotext: apt-get install -y chromium poppler-utils \
         fonts-noto-cjk"
    );
    eprintln!(
        "{test}: skipped, chromium, pdfinfo or pdftotext is not installed (apt-get install -y \
         chromium poppler-utils fonts-noto-cjk)"
    );
    None
}

impl PrintTools {
    /// Prints `html` to `pdf` with headless Chromium (no network, a fresh profile, no header or
    /// footer of its own), within two minutes.
    pub async fn print_to_pdf(&self, html: &std::path::Path, pdf: &std::path::Path) {
        let profile = tempfile::tempdir().unwrap();
        let html = std::fs::canonicalize(html).unwrap();
        let mut child = tokio::process::Command::new(&self.chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-pdf-header-footer",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--print-to-pdf={}", pdf.display()))
            .arg(format!("file://{}", html.display()))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let output = tokio::spawn(async move {
            let mut text = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
            text
        });
        let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
            .await
            .expect("chromium printed within two minutes")
            .unwrap();
        let output = output.await.unwrap_or_default();
        assert!(status.success(), "chromium failed with {status}: {output}");
        assert!(
            std::fs::metadata(pdf).is_ok_and(|m| m.len() > 0),
            "chromium wrote no PDF: {output}"
        );
    }

    /// The number of pages of a PDF, from `pdfinfo`.
    pub fn pages(&self, pdf: &std::path::Path) -> usize {
        let output = std::process::Command::new(&self.pdfinfo)
            .arg(pdf)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|line| line.strip_prefix("Pages:"))
            .and_then(|pages| pages.trim().parse().ok())
            .expect("pdfinfo names the page count")
    }

    /// The text of one page (from 1), from `pdftotext`.
    pub fn page_text(&self, pdf: &std::path::Path, page: usize) -> String {
        let page = page.to_string();
        let output = std::process::Command::new(&self.pdftotext)
            .args(["-f", &page, "-l", &page, "-enc", "UTF-8"])
            .arg(pdf)
            .arg("-")
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    }
}
