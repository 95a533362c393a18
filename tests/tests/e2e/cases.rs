//! Cases and consent: who may open a case, who takes part in it, who may see it, and consent
//! records from recording to withdrawal.

use tonic::Code;
use tsunagu_client::Hub;
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::*;
use tsunagu_tests::{MUNICIPALITY, OTHER_MUNICIPALITY, TestHub};

#[tokio::test]
async fn an_agency_opens_a_case_in_its_municipality_and_is_its_first_participant() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let request = open_case_request(MUNICIPALITY);
    let header = request.header.clone().unwrap();
    let case = try_open_case(&kodomo, request).await.unwrap();

    assert!(uuid::Uuid::parse_str(&case.case_id).is_ok(), "{case:?}");
    assert_eq!(case.municipality, MUNICIPALITY);
    assert_eq!(
        case.category,
        pb::CaseCategory::SpecificExpectantMother as i32
    );
    assert_eq!(case.stage, pb::CaseStage::Pregnancy as i32);
    assert_eq!(case.opened_by, "kodomo");
    assert!(case.opened_at.is_some());
    assert!(!case.council_registered);
    assert_eq!(participant_ids(&case), vec!["kodomo"]);
    assert_eq!(case.participants[0].kind, "health_centre");
    assert_eq!(
        case.participants[0].display_name,
        "青葉区こども家庭センター"
    );
    assert!(case.participants[0].since.is_some());
    assert_eq!(
        case.header.as_ref(),
        Some(&header),
        "the header is stored unchanged"
    );

    let fetched = get_case(&kodomo, &case.case_id).await.unwrap();
    assert_eq!(fetched, case);
    let listed = list_cases(&kodomo).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].case_id, case.case_id);

    // Nobody else takes part yet.
    let jisou = hub.client("jisou").await;
    assert!(list_cases(&jisou).await.is_empty());
    hub.stop().await;
}

#[tokio::test]
async fn an_ascii_armoured_header_is_accepted_as_well_as_a_binary_one() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let mut request = open_case_request(MUNICIPALITY);
    request.header = Some(sealed_armored("氏名: 山田花子"));
    let header = request.header.clone();
    let case = try_open_case(&kodomo, request).await.unwrap();
    assert_eq!(case.header, header);
    hub.stop().await;
}

#[tokio::test]
async fn opening_a_case_in_a_municipality_the_caller_does_not_serve_is_permission_denied() {
    let hub = TestHub::start().await;
    let chiyoda = hub.client("chiyoda").await;
    assert_refused(
        try_open_case(&chiyoda, open_case_request(MUNICIPALITY)).await,
        Code::PermissionDenied,
        &[MUNICIPALITY],
    );
    let kodomo = hub.client("kodomo").await;
    assert_refused(
        try_open_case(&kodomo, open_case_request(OTHER_MUNICIPALITY)).await,
        Code::PermissionDenied,
        &[OTHER_MUNICIPALITY],
    );
    // Nothing was written: the coordinators of both municipalities see no case.
    assert!(list_cases(&chiyoda).await.is_empty());
    assert!(list_cases(&kodomo).await.is_empty());

    // Its own municipality works.
    let case = try_open_case(&chiyoda, open_case_request(OTHER_MUNICIPALITY))
        .await
        .unwrap();
    assert_eq!(case.municipality, OTHER_MUNICIPALITY);
    hub.stop().await;
}

#[tokio::test]
async fn opening_a_case_twice_with_one_idempotency_key_returns_the_same_case() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let request = open_case_request(MUNICIPALITY);
    let first = try_open_case(&kodomo, request.clone()).await.unwrap();
    let second = try_open_case(&kodomo, request.clone()).await.unwrap();
    assert_eq!(first.case_id, second.case_id);
    assert_eq!(list_cases(&kodomo).await.len(), 1);

    // The same key for another request is refused.
    let mut other = request;
    other.stage = pb::CaseStage::Postnatal as i32;
    assert_refused(
        try_open_case(&kodomo, other).await,
        Code::AlreadyExists,
        &[],
    );
    assert_eq!(list_cases(&kodomo).await.len(), 1);
    hub.stop().await;
}

#[tokio::test]
async fn a_non_participant_gets_permission_denied_for_the_case_its_referrals_and_its_notes() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let (case, _) = consented_case(
        &*hub.clock,
        &kodomo,
        &["hospital", "nursery"],
        &[POSTNATAL_CARE],
    )
    .await;
    let referral = send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        POSTNATAL_CARE,
        by_consent(),
    )
    .await
    .unwrap();
    let note = send_note(
        &kodomo,
        note_request(&case.case_id, &["hospital"], POSTNATAL_CARE, by_consent()),
    )
    .await
    .unwrap();

    // nursery is covered by the consent but nothing was shared with it; hiroba is in the same
    // municipality; chiyoda coordinates another municipality.
    for outsider in ["nursery", "hiroba", "chiyoda"] {
        let client = hub.client(outsider).await;
        let before = all_events(&client).await;

        assert_refused(
            get_case(&client, &case.case_id).await,
            Code::PermissionDenied,
            &[],
        );
        assert_refused(
            list_consents(&client, &case.case_id).await,
            Code::PermissionDenied,
            &[],
        );
        assert_refused(
            case_thread(&client, &case.case_id).await,
            Code::PermissionDenied,
            &[],
        );
        assert_refused(
            get_referral(&client, &referral.referral_id).await,
            Code::PermissionDenied,
            &[],
        );
        assert_refused(
            send_referral(
                &client,
                &case.case_id,
                "hospital",
                POSTNATAL_CARE,
                by_consent(),
            )
            .await,
            Code::PermissionDenied,
            &[],
        );
        assert_refused(
            send_note(
                &client,
                note_request(&case.case_id, &["hospital"], POSTNATAL_CARE, by_consent()),
            )
            .await,
            Code::PermissionDenied,
            &[],
        );
        assert_refused(
            acknowledge_note(&client, &note.note_id).await,
            Code::PermissionDenied,
            &[],
        );
        assert_refused(
            act(&client, &referral.referral_id, pb::ReferralAction::Accept).await,
            Code::PermissionDenied,
            &[],
        );
        assert_refused(
            act_with(
                &client,
                action_with_reason(
                    &referral.referral_id,
                    pb::ReferralAction::Cancel,
                    "not_mine",
                ),
            )
            .await,
            Code::PermissionDenied,
            &[],
        );

        // It sees nothing of the case anywhere, and nothing was written.
        assert!(list_cases(&client).await.is_empty(), "{outsider}");
        assert!(referral_ids(&client).await.is_empty(), "{outsider}");
        assert_eq!(all_events(&client).await, before, "{outsider}");
    }
    let after = get_case(&kodomo, &case.case_id).await.unwrap();
    assert_eq!(participant_ids(&after), vec!["hospital", "kodomo"]);
    assert_eq!(
        referral_ids(&kodomo).await,
        vec![referral.referral_id.clone()]
    );
    let hospital = hub.client("hospital").await;
    assert_eq!(referral_ids(&hospital).await, vec![referral.referral_id]);

    // An id that does not exist is refused just like one the caller may not see.
    let nursery = hub.client("nursery").await;
    let missing = uuid::Uuid::new_v4().to_string();
    assert_refused(
        get_case(&nursery, &missing).await,
        Code::PermissionDenied,
        &[],
    );
    assert_refused(
        get_case(&kodomo, &missing).await,
        Code::PermissionDenied,
        &[],
    );
    assert_refused(
        get_referral(&kodomo, &missing).await,
        Code::PermissionDenied,
        &[],
    );
    hub.stop().await;
}

/// The ids an outsider probes with: real ones, or random ones of the same shapes.
struct Probe {
    case: String,
    consent: String,
    referral: String,
    note: String,
    meeting: String,
}

impl Probe {
    fn random() -> Self {
        let id = || uuid::Uuid::new_v4().to_string();
        Self {
            case: id(),
            consent: id(),
            referral: id(),
            note: id(),
            meeting: id(),
        }
    }
}

/// What `client` is answered on every RPC that takes a case, consent, referral, note or
/// meeting id: the RPC, then the code and message (or "ok" and what it listed).
async fn answers(client: &Hub, ids: &Probe, today: &str) -> Vec<(&'static str, String)> {
    fn answer<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> String {
        match result {
            Ok(value) => format!("ok {value:?}"),
            Err(status) => format!("{:?}: {}", status.code(), status.message()),
        }
    }
    let consent = consent_request(&ids.case, &["hospital"], &[], &[POSTNATAL_CARE], today, "");
    let mut out = vec![
        ("GetCase", answer(get_case(client, &ids.case).await)),
        (
            "ListConsents",
            answer(list_consents(client, &ids.case).await),
        ),
        (
            "GetCaseThread",
            answer(case_thread(client, &ids.case).await.map(|_| ())),
        ),
        (
            "RecordConsent",
            answer(try_record_consent(client, consent).await),
        ),
        (
            "WithdrawConsent",
            answer(withdraw_consent(client, &ids.consent).await),
        ),
        (
            "SendReferral",
            answer(
                send_referral(client, &ids.case, "hospital", POSTNATAL_CARE, by_consent()).await,
            ),
        ),
        (
            "GetReferral",
            answer(get_referral(client, &ids.referral).await),
        ),
        (
            "RecordReferralAction",
            answer(act(client, &ids.referral, pb::ReferralAction::Accept).await),
        ),
        (
            "SendNote",
            answer(
                send_note(
                    client,
                    note_request(&ids.case, &["hospital"], POSTNATAL_CARE, by_consent()),
                )
                .await,
            ),
        ),
        (
            "AcknowledgeNote",
            answer(acknowledge_note(client, &ids.note).await),
        ),
        (
            "RegisterCase",
            answer(try_register(client, register_request(&ids.case, "", "")).await),
        ),
        (
            "UpdateRegistration",
            answer(
                client
                    .council()
                    .update_registration(pb::UpdateRegistrationRequest {
                        case_id: ids.case.clone(),
                        review_interval_days: 30,
                        staff: Some(staff()),
                        ..Default::default()
                    })
                    .await,
            ),
        ),
        (
            "EndRegistration",
            answer(
                end_registration(
                    client,
                    end_request(&ids.case, pb::DecisionOutcome::Close, "improved", ""),
                )
                .await,
            ),
        ),
        (
            "GetMeetingPack",
            answer(meeting_pack(client, &ids.meeting).await),
        ),
        (
            "RecordDecision",
            answer(
                try_decide(
                    client,
                    decision_request(&ids.meeting, &ids.case, pb::DecisionOutcome::Continue),
                )
                .await,
            ),
        ),
    ];
    let listed = client
        .referrals()
        .list_referrals(pb::ListReferralsRequest {
            case_id: ids.case.clone(),
            direction: pb::ReferralDirection::All as i32,
            include_closed: true,
            ..Default::default()
        })
        .await
        .map(|response| response.into_inner().referrals);
    out.push(("ListReferrals", answer(listed)));
    out
}

#[tokio::test]
async fn a_non_participant_gets_the_same_answer_for_a_real_id_and_a_random_one_on_every_rpc() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let (case, consent) =
        consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    let referral = send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        POSTNATAL_CARE,
        by_consent(),
    )
    .await
    .unwrap();
    let note = send_note(
        &kodomo,
        note_request(&case.case_id, &["hospital"], POSTNATAL_CARE, by_consent()),
    )
    .await
    .unwrap();
    let clock = &*hub.clock;
    register_case(&kodomo, &case.case_id, &japan_date(clock, -100), "").await;
    let meeting = schedule_meeting(
        &kodomo,
        pb::MeetingKind::Practitioners,
        &japan_date(clock, 0),
        &[],
    )
    .await;
    let real = Probe {
        case: case.case_id.clone(),
        consent: consent.consent_id.clone(),
        referral: referral.referral_id.clone(),
        note: note.note_id.clone(),
        meeting: meeting.meeting_id.clone(),
    };

    // hiroba serves the same municipality but takes no part and sits on no council; chiyoda
    // coordinates another municipality.
    for outsider in ["hiroba", "chiyoda"] {
        let client = hub.client(outsider).await;
        let today = japan_date(clock, 0);
        let on_real = answers(&client, &real, &today).await;
        let on_random = answers(&client, &Probe::random(), &today).await;
        assert_eq!(on_real, on_random, "{outsider}");
        for (rpc, answer) in &on_real {
            assert!(
                answer.starts_with("PermissionDenied") || answer == "ok []",
                "{outsider} {rpc}: {answer}"
            );
        }
    }
    // Nothing was written: the case is as it was.
    let after = get_case(&kodomo, &case.case_id).await.unwrap();
    assert_eq!(participant_ids(&after), vec!["hospital", "kodomo"]);
    hub.stop().await;
}

#[tokio::test]
async fn the_coordinator_sees_every_case_of_its_municipality_and_no_other() {
    let hub = TestHub::start().await;
    let jisou = hub.client("jisou").await;
    let case = open_case(&jisou).await;
    assert_eq!(participant_ids(&case), vec!["jisou"]);

    let kodomo = hub.client("kodomo").await;
    let seen = get_case(&kodomo, &case.case_id).await.unwrap();
    assert_eq!(seen.case_id, case.case_id);
    assert!(
        list_cases(&kodomo)
            .await
            .iter()
            .any(|c| c.case_id == case.case_id)
    );
    list_consents(&kodomo, &case.case_id).await.unwrap();
    case_thread(&kodomo, &case.case_id).await.unwrap();

    // The coordinator of another municipality is not.
    let chiyoda = hub.client("chiyoda").await;
    assert_refused(
        get_case(&chiyoda, &case.case_id).await,
        Code::PermissionDenied,
        &[],
    );
    assert!(list_cases(&chiyoda).await.is_empty());
    let hospital = hub.client("hospital").await;
    assert_refused(
        get_case(&hospital, &case.case_id).await,
        Code::PermissionDenied,
        &[],
    );
    hub.stop().await;
}

#[tokio::test]
async fn every_agency_a_referral_or_note_went_to_becomes_a_participant() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let (case, _) = consented_case(
        &*hub.clock,
        &kodomo,
        &["hospital", "nursery"],
        &[POSTNATAL_CARE, NURSERY_ADMISSION],
    )
    .await;
    send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        POSTNATAL_CARE,
        by_consent(),
    )
    .await
    .unwrap();
    send_note(
        &kodomo,
        note_request(&case.case_id, &["nursery"], NURSERY_ADMISSION, by_consent()),
    )
    .await
    .unwrap();

    let case = get_case(&kodomo, &case.case_id).await.unwrap();
    assert_eq!(
        participant_ids(&case),
        vec!["hospital", "kodomo", "nursery"]
    );
    for agency in ["hospital", "nursery"] {
        let client = hub.client(agency).await;
        let seen = get_case(&client, &case.case_id).await.unwrap();
        assert_eq!(participant_ids(&seen), participant_ids(&case), "{agency}");
        assert!(
            list_cases(&client)
                .await
                .iter()
                .any(|c| c.case_id == case.case_id),
            "{agency}"
        );
        list_consents(&client, &case.case_id).await.unwrap();
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_consent_is_listed_as_recorded_and_withdrawal_marks_it_and_what_was_shared() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let case = open_case(&kodomo).await;
    let from = japan_date(&*hub.clock, 0);
    let until = japan_date(&*hub.clock, 180);
    let request = consent_request(
        &case.case_id,
        &["hospital"],
        &["nursery"],
        &[POSTNATAL_CARE],
        &from,
        &until,
    );
    let evidence = request.evidence.clone();
    let consent = try_record_consent(&kodomo, request).await.unwrap();
    assert!(uuid::Uuid::parse_str(&consent.consent_id).is_ok());
    assert_eq!(consent.case_id, case.case_id);
    assert_eq!(consent.given_by, pb::ConsentGiver::Guardian as i32);
    assert_eq!(consent.method, pb::ConsentMethod::Written as i32);
    assert_eq!(consent.recorded_by_agency, "kodomo");
    assert_eq!(consent.recorded_by_staff, Some(staff()));
    let scope = consent.scope.clone().unwrap();
    assert_eq!(scope.recipient_agencies, vec!["hospital"]);
    assert_eq!(scope.recipient_kinds, vec!["nursery"]);
    assert_eq!(scope.purposes, vec![POSTNATAL_CARE]);
    assert_eq!(consent.valid_from, from);
    assert_eq!(consent.valid_until, until);
    assert!(consent.recorded_at.is_some());
    assert!(consent.withdrawn_at.is_none());
    assert_eq!(consent.evidence, evidence);
    assert_eq!(
        list_consents(&kodomo, &case.case_id).await.unwrap(),
        vec![consent.clone()]
    );

    let referral = send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        POSTNATAL_CARE,
        by_consent(),
    )
    .await
    .unwrap();
    assert_eq!(referral.consent_id, consent.consent_id);
    assert!(!referral.consent_withdrawn);

    let withdrawn = withdraw_consent(&kodomo, &consent.consent_id)
        .await
        .unwrap();
    assert!(withdrawn.withdrawn_at.is_some());
    let listed = list_consents(&kodomo, &case.case_id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].withdrawn_at, withdrawn.withdrawn_at);

    // What was shared stays, marked, for both sides.
    let hospital = hub.client("hospital").await;
    for client in [&kodomo, &hospital] {
        let seen = get_referral(client, &referral.referral_id)
            .await
            .unwrap()
            .referral
            .unwrap();
        assert!(seen.consent_withdrawn, "{seen:?}");
        assert_eq!(seen.consent_id, consent.consent_id);
    }
    hub.stop().await;
}

#[tokio::test]
async fn the_case_thread_shows_referral_events_and_notes_oldest_first() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let (case, referral) = referred_case(&*hub.clock, &kodomo, "hospital", POSTNATAL_CARE).await;
    hub.clock.advance(std::time::Duration::from_secs(60));
    act(&hospital, &referral.referral_id, pb::ReferralAction::Accept)
        .await
        .unwrap();
    hub.clock.advance(std::time::Duration::from_secs(60));
    let note = send_note(
        &kodomo,
        note_request(&case.case_id, &["hospital"], POSTNATAL_CARE, by_consent()),
    )
    .await
    .unwrap();

    for client in [&kodomo, &hospital] {
        let thread = case_thread(client, &case.case_id).await.unwrap();
        assert_eq!(thread.case.as_ref().unwrap().case_id, case.case_id);
        let entries: Vec<String> = thread
            .entries
            .iter()
            .map(|entry| match entry.entry.as_ref().unwrap() {
                pb::thread_entry::Entry::ReferralEvent(event) => {
                    assert_eq!(event.referral_id, referral.referral_id);
                    format!("referral:{}:{}", event.kind, event.action)
                }
                pb::thread_entry::Entry::Note(n) => {
                    assert_eq!(n.note_id, note.note_id);
                    "note".to_owned()
                }
                pb::thread_entry::Entry::Decision(d) => format!("decision:{}", d.decision_id),
                pb::thread_entry::Entry::Reseal(r) => format!("reseal:{}", r.reseal_id),
                pb::thread_entry::Entry::Transfer(t) => format!("transfer:{}", t.transfer_id),
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                format!("referral:{}:0", pb::ReferralEventKind::Sent as i32),
                format!(
                    "referral:{}:{}",
                    pb::ReferralEventKind::Action as i32,
                    pb::ReferralAction::Accept as i32
                ),
                "note".to_owned(),
            ]
        );
    }
    hub.stop().await;
}

#[tokio::test]
async fn missing_fields_unknown_enum_values_and_bad_ids_get_invalid_argument_naming_the_field() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;

    // OpenCase.
    let cases: Vec<(&str, pb::OpenCaseRequest)> = vec![
        ("municipality", {
            let mut r = open_case_request(MUNICIPALITY);
            r.municipality = "14117".to_owned();
            r
        }),
        ("category", {
            let mut r = open_case_request(MUNICIPALITY);
            r.category = 0;
            r
        }),
        ("category", {
            let mut r = open_case_request(MUNICIPALITY);
            r.category = 99;
            r
        }),
        ("stage", {
            let mut r = open_case_request(MUNICIPALITY);
            r.stage = 99;
            r
        }),
        ("header", {
            let mut r = open_case_request(MUNICIPALITY);
            r.header = Some(not_sealed());
            r
        }),
        ("staff", {
            let mut r = open_case_request(MUNICIPALITY);
            r.staff = None;
            r
        }),
        ("staff.name", {
            let mut r = open_case_request(MUNICIPALITY);
            r.staff.as_mut().unwrap().name = String::new();
            r
        }),
        ("staff.role", {
            let mut r = open_case_request(MUNICIPALITY);
            r.staff.as_mut().unwrap().role = String::new();
            r
        }),
        ("idempotency_key", {
            let mut r = open_case_request(MUNICIPALITY);
            r.idempotency_key = String::new();
            r
        }),
        ("idempotency_key", {
            let mut r = open_case_request(MUNICIPALITY);
            r.idempotency_key = "k".repeat(129);
            r
        }),
    ];
    for (field, request) in cases {
        assert_invalid(try_open_case(&kodomo, request).await, field);
    }
    assert!(
        list_cases(&kodomo).await.is_empty(),
        "a refused case was stored"
    );

    // RecordConsent.
    let case = open_case(&kodomo).await;
    let today = japan_date(&*hub.clock, 0);
    let later = japan_date(&*hub.clock, 30);
    let good = || {
        consent_request(
            &case.case_id,
            &["hospital"],
            &[],
            &[POSTNATAL_CARE],
            &today,
            &later,
        )
    };
    let consents: Vec<(&str, pb::RecordConsentRequest)> = vec![
        ("case_id", {
            let mut r = good();
            r.case_id = "not-a-uuid".to_owned();
            r
        }),
        ("case_id", {
            let mut r = good();
            r.case_id = String::new();
            r
        }),
        ("given_by", {
            let mut r = good();
            r.given_by = 0;
            r
        }),
        ("given_by", {
            let mut r = good();
            r.given_by = 99;
            r
        }),
        ("method", {
            let mut r = good();
            r.method = 99;
            r
        }),
        ("scope.purposes", {
            let mut r = good();
            r.scope.as_mut().unwrap().purposes.clear();
            r
        }),
        ("valid_from", {
            let mut r = good();
            r.valid_from = "2026-13-01".to_owned();
            r
        }),
        ("valid_until", {
            let mut r = good();
            r.valid_until = japan_date(&*hub.clock, -1);
            r
        }),
        ("evidence", {
            let mut r = good();
            r.evidence = Some(not_sealed());
            r
        }),
        ("staff.name", {
            let mut r = good();
            r.staff.as_mut().unwrap().name = String::new();
            r
        }),
        ("idempotency_key", {
            let mut r = good();
            r.idempotency_key = String::new();
            r
        }),
    ];
    for (field, request) in consents {
        assert_invalid(try_record_consent(&kodomo, request).await, field);
    }
    assert!(
        list_consents(&kodomo, &case.case_id)
            .await
            .unwrap()
            .is_empty()
    );

    // Reads and withdrawal take well-formed ids.
    assert_invalid(get_case(&kodomo, "case-1").await, "case_id");
    assert_invalid(list_consents(&kodomo, "").await, "case_id");
    assert_invalid(case_thread(&kodomo, "123").await, "case_id");
    assert_invalid(withdraw_consent(&kodomo, "nope").await, "consent_id");
    hub.stop().await;
}
