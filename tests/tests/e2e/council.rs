//! The 要対協: registering cases with the council, the review schedule, meetings and their packs
//! built from the case threads, decisions recorded back, and who may do which.

use std::time::Duration;

use tonic::Code;
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::*;
use tsunagu_tests::{MUNICIPALITY, OTHER_MUNICIPALITY, TestHub};

const HOUR: Duration = Duration::from_secs(3600);

/// The ids of a pack's cases, in agenda order.
fn pack_case_ids(pack: &pb::GetMeetingPackResponse) -> Vec<String> {
    pack.cases
        .iter()
        .map(|c| {
            c.case
                .as_ref()
                .map(|c| c.case_id.clone())
                .unwrap_or_default()
        })
        .collect()
}

fn notes(case: &pb::PackCase) -> Vec<&pb::Note> {
    case.timeline
        .iter()
        .filter_map(|entry| match &entry.entry {
            Some(pb::thread_entry::Entry::Note(note)) => Some(note),
            _ => None,
        })
        .collect()
}

fn referral_events(case: &pb::PackCase) -> Vec<&pb::ReferralEvent> {
    case.timeline
        .iter()
        .filter_map(|entry| match &entry.entry {
            Some(pb::thread_entry::Entry::ReferralEvent(event)) => Some(event),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_practitioners_meeting_pack_holds_exactly_the_cases_due_with_their_referrals_overdue_handoffs_and_notes()
 {
    let hub = TestHub::start_with(|settings| {
        settings
            .council
            .municipality_names
            .insert(MUNICIPALITY.to_owned(), "横浜市青葉区".to_owned());
    })
    .await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let nursery = hub.client("nursery").await;
    let clock = &*hub.clock;
    let long_ago = japan_date(clock, -100);
    let review_passed = japan_date(clock, -10);
    let held_on = japan_date(clock, 7);
    let open = async || {
        consented_case(clock, &kodomo, &["hospital"], &[POSTNATAL_CARE])
            .await
            .0
            .case_id
    };
    let (a, b, c, d) = (open().await, open().await, open().await, open().await);

    // A's review passed ten days ago, C falls due before the meeting, B on its day; D only in
    // three months.
    let registered = register_case(&kodomo, &a, &long_ago, "").await;
    assert_eq!(registered.next_review_on, review_passed);
    register_case(&kodomo, &b, "", &held_on).await;
    register_case(&kodomo, &c, "", &japan_date(clock, 5)).await;
    let not_due = register_case(&kodomo, &d, "", "").await;
    assert_eq!(not_due.review_interval_days, 90);
    assert_eq!(not_due.next_review_on, japan_date(clock, 90));

    // A: a referral to the nursery nobody picks up, and a note to the 児童相談所.
    let stalled = send_referral(&kodomo, &a, "nursery", NURSERY_ADMISSION, council_sharing())
        .await
        .unwrap();
    let note_request = note_request(&a, &["jisou"], CHILD_PROTECTION, council_sharing());
    let note_body = note_request.body.clone();
    let note = send_note(&kodomo, note_request).await.unwrap();
    // B: the hospital took the family on.
    let taken = send_referral(&kodomo, &b, "hospital", POSTNATAL_CARE, by_consent())
        .await
        .unwrap();
    act(
        &hospital,
        &taken.referral_id,
        pb::ReferralAction::AcknowledgeDelivery,
    )
    .await
    .unwrap();
    act(&hospital, &taken.referral_id, pb::ReferralAction::Accept)
        .await
        .unwrap();
    // C: the hospital could not reach the family.
    let lost = send_referral(&kodomo, &c, "hospital", POSTNATAL_CARE, by_consent())
        .await
        .unwrap();
    act(&hospital, &lost.referral_id, pb::ReferralAction::Accept)
        .await
        .unwrap();
    act_with(
        &hospital,
        not_connected_request(
            &lost.referral_id,
            pb::NotConnectedReason::CouldNotContact,
            "",
        ),
    )
    .await
    .unwrap();

    // The last 実務者会議, three days ago, had A on its agenda and recorded no decision on it:
    // A missed its review. C and B fell due since, which is what the next meeting is for.
    let missed = schedule_meeting(
        &kodomo,
        pb::MeetingKind::Practitioners,
        &japan_date(clock, -3),
        &[],
    )
    .await;
    assert_eq!(missed.case_ids, vec![a.clone()]);
    let meeting = schedule_meeting(&kodomo, pb::MeetingKind::Practitioners, &held_on, &[]).await;
    assert_eq!(meeting.kind, pb::MeetingKind::Practitioners as i32);
    assert_eq!(meeting.held_on, held_on);
    assert_eq!(meeting.case_ids, vec![a.clone(), c.clone(), b.clone()]);
    assert_eq!(meeting.scheduled_by, "kodomo");

    // A day later the nursery's delivery deadline has passed and the hub has escalated it.
    hub.clock.advance(25 * HOUR);
    let pack = eventually(
        "the escalation in A's timeline",
        Duration::from_secs(10),
        async || {
            let pack = meeting_pack(&nursery, &meeting.meeting_id).await.unwrap();
            let escalated = referral_events(pack_case(&pack, &a))
                .iter()
                .any(|e| e.kind == pb::ReferralEventKind::Escalated as i32);
            escalated.then_some(pack)
        },
    )
    .await;

    assert_eq!(pack.meeting.as_ref(), Some(&meeting));
    assert_eq!(pack.municipality_name, "横浜市青葉区");
    assert_eq!(pack_case_ids(&pack), vec![a.clone(), c.clone(), b.clone()]);
    assert!(!pack_case_ids(&pack).contains(&d), "D is not due");

    let case_a = pack_case(&pack, &a);
    let registration = case_a.registration.as_ref().unwrap();
    assert_eq!(registration.registered_on, long_ago);
    assert_eq!(registration.next_review_on, review_passed);
    assert_eq!(registration.lead_agency, "kodomo");
    assert_eq!(registration.status, pb::RegistrationStatus::Active as i32);
    assert!(registration.key_person.is_some());
    assert_eq!(case_a.review_period_start, long_ago);
    assert!(case_a.previous_decisions.is_empty() && case_a.decision.is_none());
    let participants = participant_ids(case_a.case.as_ref().unwrap());
    assert_eq!(participants, vec!["jisou", "kodomo", "nursery"]);
    assert!(case_a.case.as_ref().unwrap().council_registered);
    assert_eq!(case_a.referrals.len(), 1);
    let referral = &case_a.referrals[0];
    assert_eq!(referral.referral_id, stalled.referral_id);
    assert_eq!(referral.delivery, pb::DeliveryState::Sent as i32);
    assert_eq!(referral.response, pb::ResponseState::Requested as i32);
    assert_eq!(referral.connection, pb::ConnectionState::NotUpdated as i32);
    assert_eq!(referral.overdue, vec![pb::TimerKind::DeliverBy as i32]);
    let a_notes = notes(case_a);
    assert_eq!(a_notes.len(), 1);
    assert_eq!(a_notes[0].note_id, note.note_id);
    assert_eq!(a_notes[0].from_agency, "kodomo");
    assert_eq!(a_notes[0].body, note_body, "notes travel sealed as sent");
    assert!(
        referral_events(case_a)
            .iter()
            .any(|e| e.kind == pb::ReferralEventKind::Sent as i32
                && e.referral_id == stalled.referral_id)
    );
    assert_eq!(
        case_a.decision_triggers,
        vec![
            pb::DecisionTrigger::OverdueHandoff as i32,
            pb::DecisionTrigger::ReviewPastDue as i32
        ]
    );

    let case_b = pack_case(&pack, &b);
    let referral = &case_b.referrals[0];
    assert_eq!(referral.delivery, pb::DeliveryState::Delivered as i32);
    assert_eq!(referral.response, pb::ResponseState::Accepted as i32);
    assert!(referral.overdue.is_empty());
    assert!(case_b.decision_triggers.is_empty());

    let case_c = pack_case(&pack, &c);
    let referral = &case_c.referrals[0];
    assert_eq!(
        referral.connection,
        pb::ConnectionState::NotConnected as i32
    );
    assert_eq!(
        referral.not_connected_reason,
        pb::NotConnectedReason::CouldNotContact as i32
    );
    assert_eq!(
        case_c.decision_triggers,
        vec![pb::DecisionTrigger::NotConnected as i32]
    );

    let summary = pack.summary.unwrap();
    assert_eq!(
        summary,
        pb::PackSummary {
            cases: 3,
            requires_protection: 0,
            requires_support: 3,
            specific_expectant_mothers: 0,
            overdue_handoffs: 1,
            cases_needing_decision: 2,
            not_connected_handoffs: 1,
            reviews_past_due: 1,
        }
    );
    assert_eq!(
        pack.agency_names.get("kodomo").map(String::as_str),
        Some("青葉区こども家庭センター")
    );
    for agency in ["hospital", "jisou", "nursery"] {
        assert!(pack.agency_names.contains_key(agency), "{agency}");
    }
    assert!(pack.generated_at.is_some());

    // The coordinator reads the same agenda.
    let coordinators = meeting_pack(&kodomo, &meeting.meeting_id).await.unwrap();
    assert_eq!(pack_case_ids(&coordinators), pack_case_ids(&pack));
    hub.stop().await;
}

#[tokio::test]
async fn a_pack_keeps_the_reporter_of_an_abuse_notification_hidden_from_other_members() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let clock = &*hub.clock;
    let (case, _) = consented_case(clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        POSTNATAL_CARE,
        by_consent(),
    )
    .await
    .unwrap();
    let report = send_referral(
        &hospital,
        &case.case_id,
        "jisou",
        CHILD_PROTECTION,
        basis(
            pb::LegalBasisKind::AbuseNotification,
            "受診時に不自然なあざを確認",
        ),
    )
    .await
    .unwrap();
    register_case(&kodomo, &case.case_id, &japan_date(clock, -100), "").await;
    let meeting = schedule_meeting(
        &kodomo,
        pb::MeetingKind::IndividualCase,
        &japan_date(clock, 0),
        &[&case.case_id],
    )
    .await;

    let reporter_seen_by = async |agency: &str| {
        let client = hub.client(agency).await;
        let pack = meeting_pack(&client, &meeting.meeting_id).await.unwrap();
        let entry = pack_case(&pack, &case.case_id);
        let referral = entry
            .referrals
            .iter()
            .find(|r| r.referral_id == report.referral_id)
            .unwrap()
            .from_agency
            .clone();
        let sent = referral_events(entry)
            .iter()
            .find(|e| e.referral_id == report.referral_id)
            .map(|e| e.actor_agency.clone())
            .unwrap();
        (referral, sent)
    };
    assert_eq!(
        reporter_seen_by("nursery").await,
        (String::new(), String::new())
    );
    assert_eq!(
        reporter_seen_by("jisou").await,
        ("hospital".to_owned(), "hospital".to_owned())
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_decision_moves_the_next_review_and_shows_in_the_case_thread_and_the_next_pack() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let nursery = hub.client("nursery").await;
    let hiroba = hub.client("hiroba").await;
    let clock = &*hub.clock;
    let long_ago = japan_date(clock, -100);
    let (case, _) = consented_case(
        clock,
        &kodomo,
        &["hospital", "hiroba"],
        &[POSTNATAL_CARE, "parenting_support"],
    )
    .await;
    let case_id = case.case_id.clone();
    register_case(&kodomo, &case_id, &long_ago, "").await;
    let before_review = send_referral(&kodomo, &case_id, "hospital", POSTNATAL_CARE, by_consent())
        .await
        .unwrap();
    send_referral(
        &kodomo,
        &case_id,
        "hiroba",
        "parenting_support",
        by_consent(),
    )
    .await
    .unwrap();

    // Two days later the 実務者会議 meets and decides: continue, with the nursery leading.
    hub.clock.advance(48 * HOUR);
    let today = japan_date(clock, 0);
    let meeting = schedule_meeting(&kodomo, pb::MeetingKind::Practitioners, &today, &[]).await;
    assert_eq!(meeting.case_ids, vec![case_id.clone()]);
    let nursery_feed = all_events(&nursery).await.len();
    let mut request =
        decision_request(&meeting.meeting_id, &case_id, pb::DecisionOutcome::Continue);
    request.lead_agency = "nursery".to_owned();
    let plan = request.plan.clone();
    let recorded = try_decide(&kodomo, request.clone()).await.unwrap();
    let decision = recorded.decision.clone().unwrap();
    assert_eq!(decision.outcome, pb::DecisionOutcome::Continue as i32);
    assert_eq!(decision.held_on, today);
    assert_eq!(decision.next_review_on, japan_date(clock, 90));
    assert_eq!(decision.lead_agency, "nursery");
    assert_eq!(decision.decided_by, "kodomo");
    assert_eq!(decision.plan, plan);
    let registration = recorded.registration.unwrap();
    assert_eq!(registration.last_reviewed_on, today);
    assert_eq!(registration.next_review_on, japan_date(clock, 90));
    assert_eq!(registration.lead_agency, "nursery");

    // A retry returns the first answer; another decision on the same case and meeting is refused.
    let retried = try_decide(&kodomo, request.clone()).await.unwrap();
    assert_eq!(retried.decision.unwrap().decision_id, decision.decision_id);
    request.idempotency_key = key();
    assert_refused(
        try_decide(&kodomo, request).await,
        Code::AlreadyExists,
        &[&case_id],
    );

    // The case thread shows the decision to council members; the nursery now takes part.
    let thread = case_thread(&kodomo, &case_id).await.unwrap();
    assert_eq!(thread_decisions(&thread), vec![&decision]);
    let thread = case_thread(&nursery, &case_id).await.unwrap();
    assert_eq!(thread_decisions(&thread), vec![&decision]);
    assert!(participant_ids(thread.case.as_ref().unwrap()).contains(&"nursery".to_owned()));
    // The 子育て支援拠点 takes part in the case but is not on the council: it sees no decision.
    let thread = case_thread(&hiroba, &case_id).await.unwrap();
    assert!(thread_decisions(&thread).is_empty());
    assert!(!thread.entries.is_empty());
    // The nursery hears of it in its feed.
    let events = all_events(&nursery).await;
    assert!(
        events[nursery_feed..]
            .iter()
            .any(|e| e.kind == pb::FeedEventKind::CouncilUpdated as i32 && e.case_id == case_id),
        "{events:?}"
    );

    // The next review moved: a meeting the day before does not take the case up, one on the
    // day does, with the decision among the previous ones and the timeline since the review.
    let early = schedule_meeting(
        &kodomo,
        pb::MeetingKind::Practitioners,
        &japan_date(clock, 89),
        &[],
    )
    .await;
    assert!(early.case_ids.is_empty());
    let note = send_note(
        &kodomo,
        note_request(&case_id, &["jisou"], CHILD_PROTECTION, council_sharing()),
    )
    .await
    .unwrap();
    let next = schedule_meeting(
        &kodomo,
        pb::MeetingKind::Practitioners,
        &japan_date(clock, 90),
        &[],
    )
    .await;
    assert_eq!(next.case_ids, vec![case_id.clone()]);
    let pack = meeting_pack(&nursery, &next.meeting_id).await.unwrap();
    let entry = pack_case(&pack, &case_id);
    assert_eq!(entry.previous_decisions, vec![decision.clone()]);
    assert_eq!(entry.decision, None);
    assert_eq!(entry.review_period_start, today);
    assert_eq!(entry.registration.as_ref().unwrap().last_reviewed_on, today);
    assert_eq!(entry.registration.as_ref().unwrap().lead_agency, "nursery");
    assert!(notes(entry).iter().any(|n| n.note_id == note.note_id));
    assert!(
        !referral_events(entry)
            .iter()
            .any(|e| e.referral_id == before_review.referral_id
                && e.kind == pb::ReferralEventKind::Sent as i32),
        "the timeline starts at the last review"
    );
    assert_eq!(
        pack.agency_names.get("nursery").map(String::as_str),
        Some("あおば保育園")
    );

    // The first meeting's pack now carries its own decision.
    let pack = meeting_pack(&kodomo, &meeting.meeting_id).await.unwrap();
    let entry = pack_case(&pack, &case_id);
    assert_eq!(entry.decision.as_ref(), Some(&decision));
    assert!(entry.previous_decisions.is_empty());
    assert_eq!(entry.review_period_start, long_ago);
    hub.stop().await;
}

#[tokio::test]
async fn a_closed_or_transferred_case_drops_off_the_agenda_and_out_of_council_sharing() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let clock = &*hub.clock;
    let long_ago = japan_date(clock, -100);
    let today = japan_date(clock, 0);
    let (a, b, c) = (
        open_case(&kodomo).await.case_id,
        open_case(&kodomo).await.case_id,
        open_case(&kodomo).await.case_id,
    );
    for case_id in [&a, &b, &c] {
        register_case(&kodomo, case_id, &long_ago, "").await;
    }
    let meeting = schedule_meeting(&kodomo, pb::MeetingKind::Practitioners, &today, &[]).await;
    let mut agenda = meeting.case_ids.clone();
    agenda.sort();
    let mut expected = vec![a.clone(), b.clone(), c.clone()];
    expected.sort();
    assert_eq!(agenda, expected);

    // 終結 needs a reason.
    let mut close = decision_request(&meeting.meeting_id, &a, pb::DecisionOutcome::Close);
    assert_invalid(try_decide(&kodomo, close.clone()).await, "close_reason");
    close.close_reason = "支援目標達成".to_owned();
    close.idempotency_key = key();
    let closed = try_decide(&kodomo, close).await.unwrap();
    let registration = closed.registration.unwrap();
    assert_eq!(registration.status, pb::RegistrationStatus::Closed as i32);
    assert_eq!(registration.close_reason, "支援目標達成");
    assert_eq!(registration.ended_on, today);
    assert_eq!(closed.decision.unwrap().next_review_on, "");

    let mut keep = decision_request(&meeting.meeting_id, &b, pb::DecisionOutcome::Continue);
    keep.next_review_on = japan_date(clock, 30);
    try_decide(&kodomo, keep).await.unwrap();

    // 移管 between meetings.
    let moved = end_registration(
        &kodomo,
        end_request(
            &c,
            pb::DecisionOutcome::Transfer,
            "転出",
            OTHER_MUNICIPALITY,
        ),
    )
    .await
    .unwrap();
    assert_eq!(moved.status, pb::RegistrationStatus::Transferred as i32);
    assert_eq!(moved.transferred_to, OTHER_MUNICIPALITY);
    // An ended registration takes no decision any more.
    assert_refused(
        try_decide(
            &kodomo,
            decision_request(&meeting.meeting_id, &c, pb::DecisionOutcome::Continue),
        )
        .await,
        Code::FailedPrecondition,
        &["transferred"],
    );

    assert!(!get_case(&kodomo, &a).await.unwrap().council_registered);
    assert!(get_case(&kodomo, &b).await.unwrap().council_registered);
    assert!(!get_case(&kodomo, &c).await.unwrap().council_registered);

    let later = schedule_meeting(
        &kodomo,
        pb::MeetingKind::Practitioners,
        &japan_date(clock, 100),
        &[],
    )
    .await;
    assert_eq!(later.case_ids, vec![b.clone()]);
    assert_refused(
        try_schedule(
            &kodomo,
            schedule_request(
                pb::MeetingKind::IndividualCase,
                &japan_date(clock, 100),
                &[&a],
            ),
        )
        .await,
        Code::FailedPrecondition,
        &[&a],
    );

    let active = list_registrations(&kodomo, MUNICIPALITY, false)
        .await
        .unwrap();
    assert_eq!(
        active.iter().map(|r| &r.case_id).collect::<Vec<_>>(),
        vec![&b]
    );
    let all = list_registrations(&kodomo, MUNICIPALITY, true)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);

    // A closed case may be registered again later; it is back on the schedule.
    let again = register_case(&kodomo, &a, "", "").await;
    assert_eq!(again.status, pb::RegistrationStatus::Active as i32);
    assert_eq!(again.ended_on, "");
    assert!(get_case(&kodomo, &a).await.unwrap().council_registered);
    hub.stop().await;
}

#[tokio::test]
async fn only_members_read_packs_and_only_the_coordinator_registers_schedules_and_decides() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let nursery = hub.client("nursery").await;
    let hiroba = hub.client("hiroba").await;
    let chiyoda = hub.client("chiyoda").await;
    let clock = &*hub.clock;
    let today = japan_date(clock, 0);
    let registered = open_case(&kodomo).await.case_id;
    let unregistered = open_case(&kodomo).await.case_id;
    register_case(&kodomo, &registered, &japan_date(clock, -100), "").await;
    let meeting = schedule_meeting(&kodomo, pb::MeetingKind::Practitioners, &today, &[]).await;

    // Members read the pack; a non-member and another municipality's council do not.
    for member in ["nursery", "jisou", "hospital"] {
        let client = hub.client(member).await;
        let pack = meeting_pack(&client, &meeting.meeting_id).await.unwrap();
        assert_eq!(pack_case_ids(&pack), vec![registered.clone()]);
    }
    for (outsider, client) in [("hiroba", &hiroba), ("chiyoda", &chiyoda)] {
        assert_refused(
            meeting_pack(client, &meeting.meeting_id).await,
            Code::PermissionDenied,
            &[outsider],
        );
        assert_refused(
            list_registrations(client, MUNICIPALITY, true).await,
            Code::PermissionDenied,
            &[outsider],
        );
        assert_refused(
            list_meetings(client, MUNICIPALITY).await,
            Code::PermissionDenied,
            &[outsider],
        );
    }
    assert_eq!(
        list_registrations(&nursery, MUNICIPALITY, false)
            .await
            .unwrap()
            .len(),
        1
    );

    // A member that is not the coordinator changes nothing; nor does another coordinator.
    for client in [&nursery, &chiyoda] {
        assert_refused(
            try_register(client, register_request(&unregistered, "", "")).await,
            Code::PermissionDenied,
            &["coordinator"],
        );
        assert_refused(
            try_schedule(
                client,
                schedule_request(pb::MeetingKind::Practitioners, &today, &[]),
            )
            .await,
            Code::PermissionDenied,
            &["coordinator"],
        );
        assert_refused(
            try_decide(
                client,
                decision_request(
                    &meeting.meeting_id,
                    &registered,
                    pb::DecisionOutcome::Continue,
                ),
            )
            .await,
            Code::PermissionDenied,
            &["coordinator"],
        );
        assert_refused(
            client
                .council()
                .update_registration(pb::UpdateRegistrationRequest {
                    case_id: registered.clone(),
                    review_interval_days: 30,
                    staff: Some(staff()),
                    ..Default::default()
                })
                .await,
            Code::PermissionDenied,
            &["coordinator"],
        );
        assert_refused(
            end_registration(
                client,
                end_request(&registered, pb::DecisionOutcome::Close, "支援終了", ""),
            )
            .await,
            Code::PermissionDenied,
            &["coordinator"],
        );
    }

    // Nothing was written by any refusal.
    let registrations = list_registrations(&kodomo, MUNICIPALITY, true)
        .await
        .unwrap();
    assert_eq!(registrations.len(), 1);
    assert_eq!(registrations[0].review_interval_days, 90);
    assert_eq!(
        registrations[0].status,
        pb::RegistrationStatus::Active as i32
    );
    assert_eq!(
        list_meetings(&kodomo, MUNICIPALITY).await.unwrap(),
        vec![meeting.clone()]
    );
    assert!(
        !get_case(&kodomo, &unregistered)
            .await
            .unwrap()
            .council_registered
    );
    let pack = meeting_pack(&kodomo, &meeting.meeting_id).await.unwrap();
    assert_eq!(pack.cases[0].decision, None);
    hub.stop().await;
}

#[tokio::test]
async fn council_sharing_is_a_basis_among_members_exactly_while_the_case_is_registered() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let nursery = hub.client("nursery").await;
    let case_id = open_case(&kodomo).await.case_id;

    assert_refused(
        send_referral(
            &kodomo,
            &case_id,
            "nursery",
            NURSERY_ADMISSION,
            council_sharing(),
        )
        .await,
        Code::FailedPrecondition,
        &["council_sharing", "要対協"],
    );
    assert!(referral_ids(&nursery).await.is_empty());

    register_case(&kodomo, &case_id, "", "").await;
    let referral = send_referral(
        &kodomo,
        &case_id,
        "nursery",
        NURSERY_ADMISSION,
        council_sharing(),
    )
    .await
    .unwrap();
    assert_eq!(referral.basis, pb::LegalBasisKind::CouncilSharing as i32);
    // Among members only: the 子育て支援拠点 is not on the council.
    assert_refused(
        send_referral(
            &kodomo,
            &case_id,
            "hiroba",
            "parenting_support",
            council_sharing(),
        )
        .await,
        Code::FailedPrecondition,
        &["hiroba"],
    );
    // A member that now takes part shares with another member on the same basis.
    send_note(
        &nursery,
        note_request(&case_id, &["jisou"], CHILD_PROTECTION, council_sharing()),
    )
    .await
    .unwrap();

    // Once the registration ends, the basis is gone again.
    end_registration(
        &kodomo,
        end_request(&case_id, pb::DecisionOutcome::Close, "支援目標達成", ""),
    )
    .await
    .unwrap();
    assert_refused(
        send_referral(
            &kodomo,
            &case_id,
            "jisou",
            CHILD_PROTECTION,
            council_sharing(),
        )
        .await,
        Code::FailedPrecondition,
        &["要対協"],
    );
    hub.stop().await;
}

#[tokio::test]
async fn registrations_change_with_the_coordinator_and_retries_register_once() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let jisou = hub.client("jisou").await;
    let clock = &*hub.clock;
    let case_id = open_case(&kodomo).await.case_id;
    let request = register_request(&case_id, &japan_date(clock, -10), "");
    let first = try_register(&kodomo, request.clone()).await.unwrap();
    assert_eq!(first.next_review_on, japan_date(clock, 80));
    assert_eq!(first.registered_by, "kodomo");
    assert_eq!(first.justification, "養育支援が必要 (産後うつの傾向)");
    assert_eq!(try_register(&kodomo, request.clone()).await.unwrap(), first);
    let mut again = request;
    again.idempotency_key = key();
    assert_refused(
        try_register(&kodomo, again).await,
        Code::AlreadyExists,
        &[&case_id],
    );
    // The case took the registration's category.
    let case = get_case(&kodomo, &case_id).await.unwrap();
    assert_eq!(case.category, pb::CaseCategory::RequiresSupport as i32);
    assert!(case.council_registered);

    let update = async |change: pb::UpdateRegistrationRequest| {
        kodomo
            .council()
            .update_registration(pb::UpdateRegistrationRequest {
                case_id: case_id.clone(),
                staff: Some(staff()),
                ..change
            })
            .await
            .map(|r| r.into_inner().registration.unwrap())
    };
    // A shorter interval brings the next review forward from the registration day.
    let changed = update(pb::UpdateRegistrationRequest {
        review_interval_days: 30,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(changed.review_interval_days, 30);
    assert_eq!(changed.next_review_on, japan_date(clock, 20));
    let changed = update(pb::UpdateRegistrationRequest {
        category: pb::CaseCategory::RequiresProtection as i32,
        lead_agency: "jisou".to_owned(),
        next_review_on: japan_date(clock, 5),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(changed.lead_agency, "jisou");
    assert_eq!(changed.next_review_on, japan_date(clock, 5));
    assert_eq!(
        changed.category,
        pb::CaseCategory::RequiresProtection as i32
    );
    let case = get_case(&jisou, &case_id).await.unwrap();
    assert_eq!(case.category, pb::CaseCategory::RequiresProtection as i32);
    assert!(participant_ids(&case).contains(&"jisou".to_owned()));
    // Nothing to change: the registration stays as it is.
    let same = update(pb::UpdateRegistrationRequest::default())
        .await
        .unwrap();
    assert_eq!(same, changed);

    assert_invalid(
        update(pb::UpdateRegistrationRequest {
            lead_agency: "hiroba".to_owned(),
            ..Default::default()
        })
        .await,
        "lead_agency",
    );
    assert_invalid(
        update(pb::UpdateRegistrationRequest {
            category: pb::CaseCategory::General as i32,
            ..Default::default()
        })
        .await,
        "category",
    );
    assert_invalid(
        update(pb::UpdateRegistrationRequest {
            next_review_on: japan_date(clock, -20),
            ..Default::default()
        })
        .await,
        "next_review_on",
    );
    let registrations = list_registrations(&jisou, MUNICIPALITY, false)
        .await
        .unwrap();
    assert_eq!(registrations, vec![changed]);
    hub.stop().await;
}

#[tokio::test]
async fn bad_council_requests_name_the_field_and_write_nothing() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let clock = &*hub.clock;
    let case_id = open_case(&kodomo).await.case_id;
    let good = || register_request(&case_id, "", "");
    let register_cases: Vec<(&str, pb::RegisterCaseRequest)> = vec![
        (
            "case_id",
            pb::RegisterCaseRequest {
                case_id: String::new(),
                ..good()
            },
        ),
        (
            "case_id",
            pb::RegisterCaseRequest {
                case_id: "case-1".to_owned(),
                ..good()
            },
        ),
        (
            "category",
            pb::RegisterCaseRequest {
                category: 0,
                ..good()
            },
        ),
        (
            "category",
            pb::RegisterCaseRequest {
                category: pb::CaseCategory::General as i32,
                ..good()
            },
        ),
        (
            "lead_agency",
            pb::RegisterCaseRequest {
                lead_agency: String::new(),
                ..good()
            },
        ),
        (
            "lead_agency",
            pb::RegisterCaseRequest {
                lead_agency: "hiroba".to_owned(),
                ..good()
            },
        ),
        (
            "lead_agency",
            pb::RegisterCaseRequest {
                lead_agency: "nowhere".to_owned(),
                ..good()
            },
        ),
        (
            "registered_on",
            pb::RegisterCaseRequest {
                registered_on: "2026-13-01".to_owned(),
                ..good()
            },
        ),
        (
            "registered_on",
            pb::RegisterCaseRequest {
                registered_on: japan_date(clock, 1),
                ..good()
            },
        ),
        (
            "review_interval_days",
            pb::RegisterCaseRequest {
                review_interval_days: 400,
                ..good()
            },
        ),
        (
            "next_review_on",
            pb::RegisterCaseRequest {
                next_review_on: japan_date(clock, 0),
                ..good()
            },
        ),
        (
            "key_person",
            pb::RegisterCaseRequest {
                key_person: Some(not_sealed()),
                ..good()
            },
        ),
        (
            "staff",
            pb::RegisterCaseRequest {
                staff: None,
                ..good()
            },
        ),
        (
            "idempotency_key",
            pb::RegisterCaseRequest {
                idempotency_key: String::new(),
                ..good()
            },
        ),
    ];
    for (field, request) in register_cases {
        assert_invalid(try_register(&kodomo, request).await, field);
    }
    assert!(
        list_registrations(&kodomo, MUNICIPALITY, true)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !get_case(&kodomo, &case_id)
            .await
            .unwrap()
            .council_registered
    );

    register_case(&kodomo, &case_id, &japan_date(clock, -100), "").await;
    let today = japan_date(clock, 0);
    let schedule = || schedule_request(pb::MeetingKind::Practitioners, &today, &[]);
    let schedule_cases: Vec<(&str, pb::ScheduleMeetingRequest)> = vec![
        (
            "municipality",
            pb::ScheduleMeetingRequest {
                municipality: "141179".to_owned(),
                ..schedule()
            },
        ),
        (
            "kind",
            pb::ScheduleMeetingRequest {
                kind: 0,
                ..schedule()
            },
        ),
        (
            "held_on",
            pb::ScheduleMeetingRequest {
                held_on: String::new(),
                ..schedule()
            },
        ),
        (
            "case_ids",
            pb::ScheduleMeetingRequest {
                case_ids: vec!["not-a-case".to_owned()],
                ..schedule()
            },
        ),
        (
            "case_ids",
            pb::ScheduleMeetingRequest {
                kind: pb::MeetingKind::IndividualCase as i32,
                ..schedule()
            },
        ),
    ];
    for (field, request) in schedule_cases {
        assert_invalid(try_schedule(&kodomo, request).await, field);
    }
    assert!(
        list_meetings(&kodomo, MUNICIPALITY)
            .await
            .unwrap()
            .is_empty()
    );

    let meeting = schedule_meeting(&kodomo, pb::MeetingKind::Practitioners, &today, &[]).await;
    let decide = |outcome| decision_request(&meeting.meeting_id, &case_id, outcome);
    let continue_ = || decide(pb::DecisionOutcome::Continue);
    let decision_cases: Vec<(&str, pb::RecordDecisionRequest)> = vec![
        (
            "meeting_id",
            pb::RecordDecisionRequest {
                meeting_id: "m1".to_owned(),
                ..continue_()
            },
        ),
        (
            "outcome",
            pb::RecordDecisionRequest {
                outcome: 0,
                ..continue_()
            },
        ),
        ("close_reason", decide(pb::DecisionOutcome::Close)),
        ("transfer_to", decide(pb::DecisionOutcome::Transfer)),
        (
            "transfer_to",
            pb::RecordDecisionRequest {
                transfer_to: "13101".to_owned(),
                ..decide(pb::DecisionOutcome::Transfer)
            },
        ),
        (
            "transfer_to",
            pb::RecordDecisionRequest {
                transfer_to: MUNICIPALITY.to_owned(),
                ..decide(pb::DecisionOutcome::Transfer)
            },
        ),
        (
            "close_reason",
            pb::RecordDecisionRequest {
                close_reason: "継続なのに理由".to_owned(),
                ..continue_()
            },
        ),
        (
            "next_review_on",
            pb::RecordDecisionRequest {
                next_review_on: today.clone(),
                ..continue_()
            },
        ),
        (
            "lead_agency",
            pb::RecordDecisionRequest {
                lead_agency: "hiroba".to_owned(),
                ..continue_()
            },
        ),
        (
            "plan",
            pb::RecordDecisionRequest {
                plan: Some(not_sealed()),
                ..continue_()
            },
        ),
    ];
    for (field, request) in decision_cases {
        assert_invalid(try_decide(&kodomo, request).await, field);
    }
    let end_cases = [
        (
            "outcome",
            end_request(&case_id, pb::DecisionOutcome::Continue, "", ""),
        ),
        (
            "close_reason",
            end_request(&case_id, pb::DecisionOutcome::Close, "", ""),
        ),
        (
            "transfer_to",
            end_request(&case_id, pb::DecisionOutcome::Transfer, "", ""),
        ),
    ];
    for (field, request) in end_cases {
        assert_invalid(end_registration(&kodomo, request).await, field);
    }

    // Nothing was decided or ended: the registration is as it was and the pack has no decision.
    let registrations = list_registrations(&kodomo, MUNICIPALITY, true)
        .await
        .unwrap();
    assert_eq!(registrations.len(), 1);
    assert_eq!(
        registrations[0].status,
        pb::RegistrationStatus::Active as i32
    );
    assert_eq!(registrations[0].last_reviewed_on, "");
    let pack = meeting_pack(&kodomo, &meeting.meeting_id).await.unwrap();
    assert_eq!(pack.cases[0].decision, None);
    assert!(thread_decisions(&case_thread(&kodomo, &case_id).await.unwrap()).is_empty());
    hub.stop().await;
}
