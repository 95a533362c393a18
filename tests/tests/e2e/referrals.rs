//! Referrals and notes: the legal basis of every share, the three layers and their transitions,
//! idempotent retries, deadlines and the worklists that keep overdue handoffs in sight.

use std::time::Duration;

use tonic::Code;
use tsunagu_client::Hub;
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::*;
use tsunagu_tests::{MUNICIPALITY, TestHub};

use pb::ReferralAction as A;

const HOUR_MS: i64 = 3_600_000;

/// Asserts that nothing was shared with `recipient` on the case: no referral either way, nothing
/// on its feed, and it did not become a participant.
async fn assert_nothing_shared(sender: &Hub, recipient: &Hub, recipient_id: &str, case_id: &str) {
    assert!(
        list_referrals(sender, pb::ReferralDirection::Sent, case_id)
            .await
            .iter()
            .all(|r| r.to_agency != recipient_id),
        "a refused referral to {recipient_id} was stored"
    );
    assert!(
        list_referrals(recipient, pb::ReferralDirection::All, "")
            .await
            .iter()
            .all(|r| r.case_id != case_id),
        "{recipient_id} sees a referral of the case"
    );
    assert!(
        all_events(recipient)
            .await
            .iter()
            .all(|e| e.case_id != case_id),
        "{recipient_id} was told about the case"
    );
    let case = get_case(sender, case_id).await.unwrap();
    assert!(
        !participant_ids(&case).contains(&recipient_id.to_owned()),
        "{recipient_id} became a participant"
    );
    assert_refused(
        get_case(recipient, case_id).await,
        Code::PermissionDenied,
        &[],
    );
}

/// The layer states of a referral: (delivery, response, connection).
fn layers(referral: &pb::Referral) -> (i32, i32, i32) {
    (referral.delivery, referral.response, referral.connection)
}

fn event_layers(event: &pb::ReferralEvent) -> (i32, i32, i32) {
    (event.delivery, event.response, event.connection)
}

#[tokio::test]
async fn a_referral_covered_by_consent_reaches_the_recipient_with_its_default_deadlines() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let (case, consent) =
        consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    let request = referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent());
    let body = request.body.clone();
    let referral = send(&kodomo, request).await.unwrap();

    assert!(uuid::Uuid::parse_str(&referral.referral_id).is_ok());
    assert_eq!(referral.case_id, case.case_id);
    assert_eq!(referral.from_agency, "kodomo");
    assert!(referral.sender_attested);
    assert_eq!(referral.to_agency, "hospital");
    assert_eq!(referral.purpose, POSTNATAL_CARE);
    assert_eq!(referral.urgency, pb::Urgency::Routine as i32);
    assert_eq!(referral.basis, pb::LegalBasisKind::Consent as i32);
    assert_eq!(referral.consent_id, consent.consent_id);
    assert_eq!(referral.body, body, "the body is stored unchanged");
    assert_eq!(
        layers(&referral),
        (
            pb::DeliveryState::Sent as i32,
            pb::ResponseState::Requested as i32,
            pb::ConnectionState::NotUpdated as i32
        )
    );
    assert!(referral.delivered_at.is_none());
    assert!(referral.responded_at.is_none());
    assert!(referral.confirmed_at.is_none());
    assert_eq!(referral.contact_attempts, 0);
    assert!(referral.overdue.is_empty());
    assert!(!referral.consent_withdrawn);

    let sent_at = millis(&referral.sent_at);
    let deadlines = referral.deadlines.unwrap();
    assert_eq!(millis(&deadlines.deliver_by) - sent_at, 24 * HOUR_MS);
    assert_eq!(millis(&deadlines.respond_by) - sent_at, 120 * HOUR_MS);
    assert_eq!(millis(&deadlines.connect_by) - sent_at, 336 * HOUR_MS);
    assert_eq!(millis(&deadlines.confirm_by) - sent_at, 504 * HOUR_MS);

    // The recipient has it in its inbox, and the sender in its outbox.
    let inbox = list_referrals(&hospital, pb::ReferralDirection::Received, "").await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].referral_id, referral.referral_id);
    assert_eq!(inbox[0].from_agency, "kodomo");
    assert_eq!(inbox[0].body, body);
    assert!(
        list_referrals(&hospital, pb::ReferralDirection::Sent, "")
            .await
            .is_empty()
    );
    let outbox = list_referrals(&kodomo, pb::ReferralDirection::Sent, &case.case_id).await;
    assert_eq!(outbox.len(), 1);
    assert!(
        list_referrals(&kodomo, pb::ReferralDirection::Received, "")
            .await
            .is_empty()
    );

    // One SENT event, by kodomo's staff member.
    let got = get_referral(&hospital, &referral.referral_id)
        .await
        .unwrap();
    assert_eq!(got.referral.as_ref(), Some(&inbox[0]));
    assert_eq!(got.events.len(), 1, "{:?}", got.events);
    let sent = &got.events[0];
    assert_eq!(sent.kind, pb::ReferralEventKind::Sent as i32);
    assert_eq!(sent.referral_id, referral.referral_id);
    assert_eq!(sent.case_id, case.case_id);
    assert_eq!(sent.actor_agency, "kodomo");
    assert_eq!(sent.actor_staff, Some(staff()));
    assert!(sent.occurred_at.is_some() && sent.recorded_at.is_some());
    assert_eq!(event_layers(sent), layers(&referral));
    hub.stop().await;
}

#[tokio::test]
async fn deadlines_default_per_urgency_and_each_may_be_overridden() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let (case, _) = consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;

    let mut urgent = referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent());
    urgent.urgency = pb::Urgency::Urgent as i32;
    let urgent = send(&kodomo, urgent).await.unwrap();
    let sent_at = millis(&urgent.sent_at);
    let d = urgent.deadlines.unwrap();
    assert_eq!(
        [
            millis(&d.deliver_by) - sent_at,
            millis(&d.respond_by) - sent_at,
            millis(&d.connect_by) - sent_at,
            millis(&d.confirm_by) - sent_at
        ],
        [4 * HOUR_MS, 24 * HOUR_MS, 72 * HOUR_MS, 120 * HOUR_MS]
    );

    let connect_by = hours_from_now(&*hub.clock, 30);
    let mut emergency = referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent());
    emergency.urgency = pb::Urgency::Emergency as i32;
    emergency.deadlines = Some(pb::Deadlines {
        deliver_by: None,
        respond_by: None,
        connect_by: Some(connect_by),
        confirm_by: None,
    });
    let emergency = send(&kodomo, emergency).await.unwrap();
    assert_eq!(emergency.urgency, pb::Urgency::Emergency as i32);
    let sent_at = millis(&emergency.sent_at);
    let d = emergency.deadlines.unwrap();
    assert_eq!(millis(&d.deliver_by) - sent_at, HOUR_MS);
    assert_eq!(millis(&d.respond_by) - sent_at, 2 * HOUR_MS);
    assert_eq!(millis(&d.connect_by), millis(&Some(connect_by)));
    assert_eq!(millis(&d.confirm_by) - sent_at, 48 * HOUR_MS);

    // An override in the past is refused, naming the deadline.
    let mut past = referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent());
    past.deadlines = Some(pb::Deadlines {
        respond_by: Some(hours_from_now(&*hub.clock, -1)),
        ..pb::Deadlines::default()
    });
    assert_invalid(send(&kodomo, past).await, "deadlines.respond_by");
    assert_eq!(
        list_referrals(&kodomo, pb::ReferralDirection::Sent, "")
            .await
            .len(),
        2
    );
    hub.stop().await;
}

#[tokio::test]
async fn referral_without_consent_is_refused() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let case = open_case(&kodomo).await;
    assert_refused(
        send_referral(
            &kodomo,
            &case.case_id,
            "hospital",
            POSTNATAL_CARE,
            by_consent(),
        )
        .await,
        Code::FailedPrecondition,
        &["hospital", POSTNATAL_CARE],
    );
    assert_nothing_shared(&kodomo, &hospital, "hospital", &case.case_id).await;
    hub.stop().await;
}

#[tokio::test]
async fn consent_for_another_purpose_does_not_cover() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let (case, consent) =
        consented_case(&*hub.clock, &kodomo, &["hospital"], &[HOME_VISIT_SUPPORT]).await;
    assert_refused(
        send_referral(
            &kodomo,
            &case.case_id,
            "hospital",
            POSTNATAL_CARE,
            by_consent(),
        )
        .await,
        Code::FailedPrecondition,
        &[POSTNATAL_CARE],
    );
    // Naming the consent explicitly does not help.
    let named = pb::LegalBasis {
        consent_id: consent.consent_id.clone(),
        ..by_consent()
    };
    assert_refused(
        send_referral(&kodomo, &case.case_id, "hospital", POSTNATAL_CARE, named).await,
        Code::FailedPrecondition,
        &[POSTNATAL_CARE],
    );
    assert_nothing_shared(&kodomo, &hospital, "hospital", &case.case_id).await;

    // The purpose it does cover goes through.
    send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        HOME_VISIT_SUPPORT,
        by_consent(),
    )
    .await
    .unwrap();
    hub.stop().await;
}

#[tokio::test]
async fn consent_for_another_recipient_does_not_cover() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let (case, _) = consented_case(&*hub.clock, &kodomo, &["nursery"], &[POSTNATAL_CARE]).await;
    assert_refused(
        send_referral(
            &kodomo,
            &case.case_id,
            "hospital",
            POSTNATAL_CARE,
            by_consent(),
        )
        .await,
        Code::FailedPrecondition,
        &["hospital"],
    );
    assert_nothing_shared(&kodomo, &hospital, "hospital", &case.case_id).await;
    send_referral(
        &kodomo,
        &case.case_id,
        "nursery",
        POSTNATAL_CARE,
        by_consent(),
    )
    .await
    .unwrap();
    hub.stop().await;
}

#[tokio::test]
async fn consent_naming_an_agency_kind_covers_agencies_of_that_kind_only() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let nursery = hub.client("nursery").await;
    let case = open_case(&kodomo).await;
    record_consent(
        &kodomo,
        &case.case_id,
        &[],
        &["hospital"],
        &[POSTNATAL_CARE],
        &japan_date(&*hub.clock, 0),
        "",
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
    assert_eq!(referral.to_agency, "hospital");
    assert_refused(
        send_referral(
            &kodomo,
            &case.case_id,
            "nursery",
            POSTNATAL_CARE,
            by_consent(),
        )
        .await,
        Code::FailedPrecondition,
        &["nursery"],
    );
    assert_nothing_shared(&kodomo, &nursery, "nursery", &case.case_id).await;
    hub.stop().await;
}

#[tokio::test]
async fn expired_consent_does_not_cover() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let nursery = hub.client("nursery").await;
    let case = open_case(&kodomo).await;
    let today = japan_date(&*hub.clock, 0);
    // Valid today only (both ends inclusive).
    record_consent(
        &kodomo,
        &case.case_id,
        &["hospital", "nursery"],
        &[],
        &[POSTNATAL_CARE],
        &today,
        &today,
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

    hub.clock.advance(Duration::from_secs(48 * 3600));
    assert_refused(
        send_referral(
            &kodomo,
            &case.case_id,
            "nursery",
            POSTNATAL_CARE,
            by_consent(),
        )
        .await,
        Code::FailedPrecondition,
        &["nursery", "expired"],
    );
    assert_nothing_shared(&kodomo, &nursery, "nursery", &case.case_id).await;
    hub.stop().await;
}

#[tokio::test]
async fn consent_not_yet_valid_does_not_cover() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let case = open_case(&kodomo).await;
    record_consent(
        &kodomo,
        &case.case_id,
        &["hospital"],
        &[],
        &[POSTNATAL_CARE],
        &japan_date(&*hub.clock, 2),
        &japan_date(&*hub.clock, 30),
    )
    .await;
    assert_refused(
        send_referral(
            &kodomo,
            &case.case_id,
            "hospital",
            POSTNATAL_CARE,
            by_consent(),
        )
        .await,
        Code::FailedPrecondition,
        &["hospital"],
    );
    assert_nothing_shared(&kodomo, &hospital, "hospital", &case.case_id).await;
    hub.stop().await;
}

#[tokio::test]
async fn withdrawn_consent_does_not_cover() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let nursery = hub.client("nursery").await;
    let (case, consent) = consented_case(
        &*hub.clock,
        &kodomo,
        &["hospital", "nursery"],
        &[POSTNATAL_CARE],
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
    withdraw_consent(&kodomo, &consent.consent_id)
        .await
        .unwrap();

    assert_refused(
        send_referral(
            &kodomo,
            &case.case_id,
            "nursery",
            POSTNATAL_CARE,
            by_consent(),
        )
        .await,
        Code::FailedPrecondition,
        &["nursery", "withdrawn"],
    );
    let named = pb::LegalBasis {
        consent_id: consent.consent_id.clone(),
        ..by_consent()
    };
    assert_refused(
        send_referral(&kodomo, &case.case_id, "nursery", POSTNATAL_CARE, named).await,
        Code::FailedPrecondition,
        &["withdrawn"],
    );
    // Nor for the agency that already received something under it.
    assert_refused(
        send_referral(
            &kodomo,
            &case.case_id,
            "hospital",
            POSTNATAL_CARE,
            by_consent(),
        )
        .await,
        Code::FailedPrecondition,
        &["withdrawn"],
    );
    assert_nothing_shared(&kodomo, &nursery, "nursery", &case.case_id).await;
    assert_eq!(
        list_referrals(&kodomo, pb::ReferralDirection::Sent, "")
            .await
            .len(),
        1
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_consent_of_another_case_does_not_cover() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let (_, other) = consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    let case = open_case(&kodomo).await;
    let named = pb::LegalBasis {
        consent_id: other.consent_id,
        ..by_consent()
    };
    assert_refused(
        send_referral(&kodomo, &case.case_id, "hospital", POSTNATAL_CARE, named).await,
        Code::FailedPrecondition,
        &[],
    );
    assert_nothing_shared(&kodomo, &hospital, "hospital", &case.case_id).await;
    hub.stop().await;
}

#[tokio::test]
async fn council_sharing_is_refused_while_the_case_is_not_registered() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let jisou = hub.client("jisou").await;
    let case = open_case(&kodomo).await;
    let council = basis(
        pb::LegalBasisKind::CouncilSharing,
        "要対協の個別ケース検討会議で共有が決定された",
    );
    assert_refused(
        send_referral(&kodomo, &case.case_id, "jisou", CHILD_PROTECTION, council).await,
        Code::FailedPrecondition,
        &["registered"],
    );
    assert_nothing_shared(&kodomo, &jisou, "jisou", &case.case_id).await;
    hub.stop().await;
}

#[tokio::test]
async fn an_abuse_notification_goes_only_to_a_child_guidance_centre_or_the_coordinator_with_a_justification()
 {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let jisou = hub.client("jisou").await;
    let nursery = hub.client("nursery").await;
    let (case, _) = consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        POSTNATAL_CARE,
        by_consent(),
    )
    .await
    .unwrap();
    let notification = || {
        basis(
            pb::LegalBasisKind::AbuseNotification,
            "乳児に説明のつかない打撲痕",
        )
    };

    assert_refused(
        send_referral(
            &hospital,
            &case.case_id,
            "nursery",
            CHILD_PROTECTION,
            notification(),
        )
        .await,
        Code::FailedPrecondition,
        &["nursery"],
    );
    assert_refused(
        send_referral(
            &kodomo,
            &case.case_id,
            "hospital",
            CHILD_PROTECTION,
            notification(),
        )
        .await,
        Code::FailedPrecondition,
        &["hospital"],
    );
    for blank in ["", "   "] {
        assert_refused(
            send_referral(
                &hospital,
                &case.case_id,
                "jisou",
                CHILD_PROTECTION,
                basis(pb::LegalBasisKind::AbuseNotification, blank),
            )
            .await,
            Code::FailedPrecondition,
            &["justification"],
        );
    }
    assert_nothing_shared(&hospital, &jisou, "jisou", &case.case_id).await;
    assert_nothing_shared(&hospital, &nursery, "nursery", &case.case_id).await;

    let to_jisou = send_referral(
        &hospital,
        &case.case_id,
        "jisou",
        CHILD_PROTECTION,
        notification(),
    )
    .await
    .unwrap();
    assert_eq!(to_jisou.basis, pb::LegalBasisKind::AbuseNotification as i32);
    assert!(to_jisou.consent_id.is_empty());
    // The municipality's coordinator may receive one, too.
    let to_kodomo = send_referral(
        &hospital,
        &case.case_id,
        "kodomo",
        CHILD_PROTECTION,
        notification(),
    )
    .await
    .unwrap();
    assert_eq!(to_kodomo.to_agency, "kodomo");
    hub.stop().await;
}

#[tokio::test]
async fn the_reporter_of_an_abuse_notification_is_hidden_from_every_other_participant() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let jisou = hub.client("jisou").await;
    let nursery = hub.client("nursery").await;
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
    let justification = "乳児に説明のつかない打撲痕";
    let report = send_referral(
        &hospital,
        &case.case_id,
        "jisou",
        CHILD_PROTECTION,
        basis(pb::LegalBasisKind::AbuseNotification, justification),
    )
    .await
    .unwrap();
    assert_eq!(report.from_agency, "hospital", "the reporter sees itself");
    act(&jisou, &report.referral_id, A::Accept).await.unwrap();
    // nursery becomes a participant after the report.
    send_referral(
        &kodomo,
        &case.case_id,
        "nursery",
        NURSERY_ADMISSION,
        by_consent(),
    )
    .await
    .unwrap();

    // The recipient sees who reported, attested by the hub.
    let seen = get_referral(&jisou, &report.referral_id).await.unwrap();
    let referral = seen.referral.unwrap();
    assert_eq!(referral.from_agency, "hospital");
    assert!(referral.sender_attested);
    assert_eq!(seen.events[0].actor_agency, "hospital");
    let inbox = list_referrals(&jisou, pb::ReferralDirection::Received, "").await;
    assert_eq!(inbox[0].from_agency, "hospital");

    // The coordinator sees the referral, but not who made it.
    let seen = get_referral(&kodomo, &report.referral_id).await.unwrap();
    assert_eq!(seen.referral.unwrap().from_agency, "");
    assert!(seen.events.iter().all(|e| e.actor_agency != "hospital"));
    assert_eq!(seen.events[0].kind, pb::ReferralEventKind::Sent as i32);
    assert_eq!(seen.events[0].actor_agency, "");
    // Its own acceptance stays visible to the coordinator.
    assert!(
        seen.events
            .iter()
            .any(|e| e.action == A::Accept as i32 && e.actor_agency == "jisou")
    );

    // Nor anywhere else another participant might look: the case thread, the feed, worklists.
    for (name, client) in [("kodomo", &kodomo), ("nursery", &nursery)] {
        if let Ok(seen) = get_referral(client, &report.referral_id).await {
            assert_eq!(seen.referral.unwrap().from_agency, "", "{name}");
            assert!(
                seen.events.iter().all(|e| e.actor_agency != "hospital"),
                "{name}"
            );
        }
        let thread = case_thread(client, &case.case_id).await.unwrap();
        for entry in &thread.entries {
            if let Some(pb::thread_entry::Entry::ReferralEvent(event)) = &entry.entry
                && event.referral_id == report.referral_id
            {
                assert_ne!(event.actor_agency, "hospital", "{name}: {event:?}");
            }
        }
        for event in all_events(client).await {
            if event.referral_id == report.referral_id
                && let Some(inner) = &event.referral_event
            {
                assert_ne!(inner.actor_agency, "hospital", "{name}: {event:?}");
            }
        }
        for referral in list_referrals(client, pb::ReferralDirection::All, "").await {
            if referral.referral_id == report.referral_id {
                assert_eq!(referral.from_agency, "", "{name}");
            }
        }
    }
    // The coordinator reviews the share without consent, still without the reporter.
    let review: Vec<pb::FollowUpItem> = follow_ups(&kodomo, MUNICIPALITY)
        .await
        .into_iter()
        .filter(|item| item.status == pb::FollowUpStatus::BasisReview as i32)
        .collect();
    assert_eq!(review.len(), 1, "{review:?}");
    assert_eq!(review[0].justification, justification);
    let reviewed = review[0].referral.as_ref().unwrap();
    assert_eq!(reviewed.referral_id, report.referral_id);
    assert_eq!(reviewed.from_agency, "");
    hub.stop().await;
}

#[tokio::test]
async fn a_vital_interest_share_needs_a_justification_and_is_not_hidden() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let case = open_case(&kodomo).await;
    assert_refused(
        send_referral(
            &kodomo,
            &case.case_id,
            "hospital",
            "psychiatric_care",
            basis(pb::LegalBasisKind::VitalInterest, ""),
        )
        .await,
        Code::FailedPrecondition,
        &["justification"],
    );
    assert_nothing_shared(&kodomo, &hospital, "hospital", &case.case_id).await;

    let referral = send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        "psychiatric_care",
        basis(
            pb::LegalBasisKind::VitalInterest,
            "自殺念慮の訴えがあり、本人と連絡が取れない",
        ),
    )
    .await
    .unwrap();
    assert_eq!(referral.basis, pb::LegalBasisKind::VitalInterest as i32);
    let seen = get_referral(&hospital, &referral.referral_id)
        .await
        .unwrap()
        .referral
        .unwrap();
    assert_eq!(seen.from_agency, "kodomo");
    hub.stop().await;
}

/// Sets up a case whose consent covers hospital, nursery and jisou for every purpose the
/// transition tests use.
async fn busy_case(hub: &TestHub, kodomo: &Hub) -> pb::Case {
    let (case, _) = consented_case(
        &*hub.clock,
        kodomo,
        &["hospital", "nursery", "jisou"],
        &[
            POSTNATAL_CARE,
            HOME_VISIT_SUPPORT,
            NURSERY_ADMISSION,
            "psychiatric_care",
            "developmental_consultation",
        ],
    )
    .await;
    case
}

/// Takes `request` as `client`, expects `code`, and checks that neither the referral (as its
/// sender sees it, events included) nor the feeds of `observers` changed.
async fn assert_refused_and_unchanged(
    client: &Hub,
    request: pb::RecordReferralActionRequest,
    code: Code,
    reader: &Hub,
    observers: &[&Hub],
) {
    let what = format!(
        "{:?} (reason {:?}, not connected {})",
        pb::ReferralAction::try_from(request.action),
        request.reason_code,
        request.not_connected_reason
    );
    let before = get_referral(reader, &request.referral_id).await.unwrap();
    let mut feeds = Vec::new();
    for observer in observers {
        feeds.push(all_events(observer).await);
    }
    let result = act_with(client, request.clone()).await;
    let status = match result {
        Ok(response) => panic!("{what} was accepted: {response:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "{what}: {status:?}");
    let after = get_referral(reader, &request.referral_id).await.unwrap();
    assert_eq!(after, before, "{what} changed the referral");
    for (observer, feed) in observers.iter().zip(feeds) {
        assert_eq!(all_events(observer).await, feed, "{what} reached a feed");
    }
}

#[tokio::test]
async fn every_invalid_transition_is_refused_and_changes_nothing() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let nursery = hub.client("nursery").await;
    let case = busy_case(&hub, &kodomo).await;
    let referral = send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        POSTNATAL_CARE,
        by_consent(),
    )
    .await
    .unwrap();
    let id = referral.referral_id.as_str();
    let observers = [&kodomo, &hospital];
    let plain = |action| action_request(id, action);
    let reason = |action| action_with_reason(id, action, "no_capacity");
    let not_connected = |why| not_connected_request(id, why, "");

    type Probe<'a> = (&'a Hub, pb::RecordReferralActionRequest, Code);
    let run = async |probes: Vec<Probe<'_>>| {
        for (client, request, code) in probes {
            assert_refused_and_unchanged(client, request, code, &kodomo, &observers).await;
        }
    };

    // Requested.
    run(vec![
        (
            &hospital,
            plain(A::ReportConnected),
            Code::FailedPrecondition,
        ),
        (
            &hospital,
            plain(A::RecordContactAttempt),
            Code::FailedPrecondition,
        ),
        (&hospital, plain(A::Start), Code::FailedPrecondition),
        (&hospital, plain(A::Complete), Code::FailedPrecondition),
        (&hospital, reason(A::Fail), Code::FailedPrecondition),
        (
            &hospital,
            not_connected(pb::NotConnectedReason::CouldNotContact),
            Code::FailedPrecondition,
        ),
        (&kodomo, plain(A::Confirm), Code::FailedPrecondition),
        (&kodomo, plain(A::Accept), Code::PermissionDenied),
        (
            &kodomo,
            plain(A::AcknowledgeDelivery),
            Code::PermissionDenied,
        ),
        (&kodomo, reason(A::Decline), Code::PermissionDenied),
        (&hospital, reason(A::Cancel), Code::PermissionDenied),
        (&hospital, plain(A::Confirm), Code::PermissionDenied),
        (&nursery, plain(A::Accept), Code::PermissionDenied),
        (&nursery, reason(A::Cancel), Code::PermissionDenied),
        (&hospital, plain(A::Decline), Code::InvalidArgument),
        (&kodomo, plain(A::Cancel), Code::InvalidArgument),
        (&hospital, plain(A::Unspecified), Code::InvalidArgument),
        (
            &hospital,
            pb::RecordReferralActionRequest {
                action: 99,
                ..plain(A::Accept)
            },
            Code::InvalidArgument,
        ),
    ])
    .await;

    act(&hospital, id, A::Accept).await.unwrap();
    // Accepted.
    run(vec![
        (&hospital, plain(A::Accept), Code::FailedPrecondition),
        (&hospital, reason(A::Decline), Code::FailedPrecondition),
        (
            &hospital,
            plain(A::AcknowledgeDelivery),
            Code::FailedPrecondition,
        ),
        (&hospital, plain(A::Complete), Code::FailedPrecondition),
        (&kodomo, plain(A::Confirm), Code::FailedPrecondition),
        (&hospital, plain(A::Fail), Code::InvalidArgument),
        (
            &hospital,
            plain(A::ReportNotConnected),
            Code::InvalidArgument,
        ),
        (
            &hospital,
            not_connected(pb::NotConnectedReason::ReferredElsewhere),
            Code::InvalidArgument,
        ),
        (&kodomo, plain(A::Start), Code::PermissionDenied),
        (&kodomo, plain(A::ReportConnected), Code::PermissionDenied),
    ])
    .await;

    act(&hospital, id, A::ReportConnected).await.unwrap();
    // Connected, not yet confirmed.
    run(vec![
        (
            &hospital,
            plain(A::ReportConnected),
            Code::FailedPrecondition,
        ),
        (
            &hospital,
            plain(A::RecordContactAttempt),
            Code::FailedPrecondition,
        ),
        (
            &hospital,
            not_connected(pb::NotConnectedReason::Moved),
            Code::FailedPrecondition,
        ),
        (&hospital, plain(A::Confirm), Code::PermissionDenied),
    ])
    .await;

    act(&kodomo, id, A::Confirm).await.unwrap();
    // Confirmed: the handoff is closed, nothing moves any more.
    run(vec![
        (&kodomo, plain(A::Confirm), Code::FailedPrecondition),
        (&kodomo, reason(A::Cancel), Code::FailedPrecondition),
        (&hospital, plain(A::Start), Code::FailedPrecondition),
        (
            &hospital,
            plain(A::RecordContactAttempt),
            Code::FailedPrecondition,
        ),
        (&hospital, reason(A::Fail), Code::FailedPrecondition),
        (
            &hospital,
            not_connected(pb::NotConnectedReason::Moved),
            Code::FailedPrecondition,
        ),
    ])
    .await;

    // Cancelled and declined referrals take no further response.
    let cancelled = send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        HOME_VISIT_SUPPORT,
        by_consent(),
    )
    .await
    .unwrap();
    act_with(
        &kodomo,
        action_with_reason(&cancelled.referral_id, A::Cancel, "family_moved"),
    )
    .await
    .unwrap();
    let declined = send_referral(
        &kodomo,
        &case.case_id,
        "nursery",
        NURSERY_ADMISSION,
        by_consent(),
    )
    .await
    .unwrap();
    act_with(
        &nursery,
        action_with_reason(&declined.referral_id, A::Decline, "no_capacity"),
    )
    .await
    .unwrap();
    for (client, request) in [
        (&hospital, action_request(&cancelled.referral_id, A::Accept)),
        (
            &kodomo,
            action_with_reason(&cancelled.referral_id, A::Cancel, "again"),
        ),
        (&nursery, action_request(&declined.referral_id, A::Accept)),
        (&nursery, action_request(&declined.referral_id, A::Start)),
        (
            &kodomo,
            action_with_reason(&declined.referral_id, A::Cancel, "too_late"),
        ),
    ] {
        assert_refused_and_unchanged(
            client,
            request,
            Code::FailedPrecondition,
            &kodomo,
            &[&kodomo, &hospital, &nursery],
        )
        .await;
    }
    hub.stop().await;
}

/// Takes `request` as `client` a minute of hub time after the previous action, and checks the
/// event it returns: the action, the actor, both times, and the layers after it.
async fn step(
    hub: &TestHub,
    client: &Hub,
    actor: &str,
    request: pb::RecordReferralActionRequest,
) -> pb::Referral {
    hub.clock.advance(Duration::from_secs(60));
    let action = request.action;
    let response = act_with(client, request).await.unwrap();
    let referral = response.referral.unwrap();
    let event = response.event.unwrap();
    assert_eq!(event.kind, pb::ReferralEventKind::Action as i32);
    assert_eq!(event.action, action);
    assert_eq!(event.referral_id, referral.referral_id);
    assert_eq!(event.actor_agency, actor);
    assert_eq!(event.actor_staff, Some(staff()));
    assert!(event.occurred_at.is_some() && event.recorded_at.is_some());
    assert_eq!(event_layers(&event), layers(&referral));
    referral
}

/// Checks a referral's events as its sender reads them: the kinds and actions, oldest first, with
/// recorded times that never go back, and the layers after the last equal to the referral's.
async fn assert_history(reader: &Hub, referral_id: &str, actions: &[A]) {
    let got = get_referral(reader, referral_id).await.unwrap();
    let referral = got.referral.unwrap();
    let kinds: Vec<(i32, i32)> = got.events.iter().map(|e| (e.kind, e.action)).collect();
    let mut expected = vec![(pb::ReferralEventKind::Sent as i32, 0)];
    expected.extend(
        actions
            .iter()
            .map(|a| (pb::ReferralEventKind::Action as i32, *a as i32)),
    );
    assert_eq!(kinds, expected);
    for pair in got.events.windows(2) {
        assert!(millis(&pair[0].recorded_at) <= millis(&pair[1].recorded_at));
        assert!(millis(&pair[0].occurred_at) < millis(&pair[1].occurred_at));
    }
    assert_eq!(event_layers(got.events.last().unwrap()), layers(&referral));
    let mut ids: Vec<&str> = got.events.iter().map(|e| e.event_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), got.events.len(), "event ids are unique");
}

#[tokio::test]
async fn every_valid_path_reaches_its_state() {
    use pb::ConnectionState as C;
    use pb::DeliveryState as D;
    use pb::ResponseState as R;

    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let nursery = hub.client("nursery").await;
    let case = busy_case(&hub, &kodomo).await;

    // Acknowledge, accept, start, two contact attempts, complete, connected, confirmed.
    let r = send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        POSTNATAL_CARE,
        by_consent(),
    )
    .await
    .unwrap();
    let id = r.referral_id.as_str();
    let a = step(
        &hub,
        &hospital,
        "hospital",
        action_request(id, A::AcknowledgeDelivery),
    )
    .await;
    assert_eq!(
        layers(&a),
        (
            D::Delivered as i32,
            R::Requested as i32,
            C::NotUpdated as i32
        )
    );
    let delivered_at = millis(&a.delivered_at);
    assert!(delivered_at > millis(&r.sent_at));
    let a = step(&hub, &hospital, "hospital", action_request(id, A::Accept)).await;
    assert_eq!(
        layers(&a),
        (
            D::Delivered as i32,
            R::Accepted as i32,
            C::NotUpdated as i32
        )
    );
    assert_eq!(
        millis(&a.delivered_at),
        delivered_at,
        "delivery is not moved again"
    );
    let accepted_at = millis(&a.responded_at);
    assert!(accepted_at > delivered_at);
    let a = step(&hub, &hospital, "hospital", action_request(id, A::Start)).await;
    assert_eq!(a.response, R::InProgress as i32);
    assert!(millis(&a.responded_at) > accepted_at);
    let a = step(
        &hub,
        &hospital,
        "hospital",
        action_request(id, A::RecordContactAttempt),
    )
    .await;
    assert_eq!(a.connection, C::ContactAttempted as i32);
    assert_eq!(a.contact_attempts, 1);
    let first_attempt = millis(&a.connection_updated_at);
    let a = step(
        &hub,
        &hospital,
        "hospital",
        action_request(id, A::RecordContactAttempt),
    )
    .await;
    assert_eq!(a.connection, C::ContactAttempted as i32);
    assert_eq!(a.contact_attempts, 2);
    assert!(millis(&a.connection_updated_at) > first_attempt);
    let a = step(&hub, &hospital, "hospital", action_request(id, A::Complete)).await;
    assert_eq!(a.response, R::Completed as i32);
    let a = step(
        &hub,
        &hospital,
        "hospital",
        action_request(id, A::ReportConnected),
    )
    .await;
    assert_eq!(
        layers(&a),
        (
            D::Delivered as i32,
            R::Completed as i32,
            C::Connected as i32
        )
    );
    assert_eq!(a.contact_attempts, 2);
    assert!(a.confirmed_at.is_none());
    let a = step(&hub, &kodomo, "kodomo", action_request(id, A::Confirm)).await;
    assert!(millis(&a.confirmed_at) > millis(&a.connection_updated_at));
    assert_eq!(a.confirmed_by, "kodomo");
    assert_history(
        &kodomo,
        id,
        &[
            A::AcknowledgeDelivery,
            A::Accept,
            A::Start,
            A::RecordContactAttempt,
            A::RecordContactAttempt,
            A::Complete,
            A::ReportConnected,
            A::Confirm,
        ],
    )
    .await;
    // The recipient reads the same final state.
    let seen = get_referral(&hospital, id).await.unwrap().referral.unwrap();
    assert_eq!(seen, a);

    // Declined, with its reason; answering proves delivery.
    let r = send_referral(
        &kodomo,
        &case.case_id,
        "nursery",
        NURSERY_ADMISSION,
        by_consent(),
    )
    .await
    .unwrap();
    let a = step(
        &hub,
        &nursery,
        "nursery",
        action_with_reason(&r.referral_id, A::Decline, "no_capacity"),
    )
    .await;
    assert_eq!(
        layers(&a),
        (
            D::Delivered as i32,
            R::Declined as i32,
            C::NotUpdated as i32
        )
    );
    assert_eq!(a.response_reason, "no_capacity");
    assert!(a.responded_at.is_some() && a.delivered_at.is_some());
    assert_history(&kodomo, &r.referral_id, &[A::Decline]).await;

    // Cancelled by the sender, with its reason.
    let r = send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        HOME_VISIT_SUPPORT,
        by_consent(),
    )
    .await
    .unwrap();
    let a = step(
        &hub,
        &kodomo,
        "kodomo",
        action_with_reason(&r.referral_id, A::Cancel, "family_moved"),
    )
    .await;
    assert_eq!(a.response, R::Cancelled as i32);
    assert_eq!(a.response_reason, "family_moved");
    assert!(a.responded_at.is_some());
    assert_eq!(a.delivery, D::Sent as i32, "cancelling does not deliver");
    assert_history(&kodomo, &r.referral_id, &[A::Cancel]).await;

    // Accepted, then failed; the family did not connect; confirmed.
    let r = send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        "psychiatric_care",
        by_consent(),
    )
    .await
    .unwrap();
    step(
        &hub,
        &hospital,
        "hospital",
        action_request(&r.referral_id, A::Accept),
    )
    .await;
    let a = step(
        &hub,
        &hospital,
        "hospital",
        action_with_reason(&r.referral_id, A::Fail, "no_show"),
    )
    .await;
    assert_eq!(a.response, R::Failed as i32);
    assert_eq!(a.response_reason, "no_show");
    let a = step(
        &hub,
        &hospital,
        "hospital",
        not_connected_request(&r.referral_id, pb::NotConnectedReason::CouldNotContact, ""),
    )
    .await;
    assert_eq!(a.connection, C::NotConnected as i32);
    assert_eq!(
        a.not_connected_reason,
        pb::NotConnectedReason::CouldNotContact as i32
    );
    assert!(a.connection_updated_at.is_some());
    let a = step(
        &hub,
        &kodomo,
        "kodomo",
        action_request(&r.referral_id, A::Confirm),
    )
    .await;
    assert!(a.confirmed_at.is_some());
    assert_history(
        &kodomo,
        &r.referral_id,
        &[A::Accept, A::Fail, A::ReportNotConnected, A::Confirm],
    )
    .await;

    // Not connected because the family was referred elsewhere: the new referral is linked.
    let r = send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        "developmental_consultation",
        by_consent(),
    )
    .await
    .unwrap();
    step(
        &hub,
        &hospital,
        "hospital",
        action_request(&r.referral_id, A::Accept),
    )
    .await;
    let onward = send_referral(
        &hospital,
        &case.case_id,
        "nursery",
        NURSERY_ADMISSION,
        by_consent(),
    )
    .await
    .unwrap();
    assert_eq!(onward.from_agency, "hospital");
    let a = step(
        &hub,
        &hospital,
        "hospital",
        not_connected_request(
            &r.referral_id,
            pb::NotConnectedReason::ReferredElsewhere,
            &onward.referral_id,
        ),
    )
    .await;
    assert_eq!(a.connection, C::NotConnected as i32);
    assert_eq!(
        a.not_connected_reason,
        pb::NotConnectedReason::ReferredElsewhere as i32
    );
    assert_eq!(a.linked_referral_id, onward.referral_id);
    let a = step(
        &hub,
        &kodomo,
        "kodomo",
        action_request(&r.referral_id, A::Confirm),
    )
    .await;
    assert_eq!(a.confirmed_by, "kodomo");
    assert_eq!(a.linked_referral_id, onward.referral_id);

    // The onward referral connects, and the coordinator (not its sender) confirms it.
    step(
        &hub,
        &nursery,
        "nursery",
        action_request(&onward.referral_id, A::Accept),
    )
    .await;
    step(
        &hub,
        &nursery,
        "nursery",
        action_request(&onward.referral_id, A::ReportConnected),
    )
    .await;
    let a = step(
        &hub,
        &kodomo,
        "kodomo",
        action_request(&onward.referral_id, A::Confirm),
    )
    .await;
    assert_eq!(a.confirmed_by, "kodomo");
    assert!(a.confirmed_at.is_some());
    assert_history(
        &hospital,
        &onward.referral_id,
        &[A::Accept, A::ReportConnected, A::Confirm],
    )
    .await;
    hub.stop().await;
}

#[tokio::test]
async fn sending_the_same_request_twice_with_one_idempotency_key_creates_one_referral() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let (case, _) = consented_case(
        &*hub.clock,
        &kodomo,
        &["hospital"],
        &[POSTNATAL_CARE, HOME_VISIT_SUPPORT],
    )
    .await;
    let request = referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent());
    let first = send(&kodomo, request.clone()).await.unwrap();
    let second = send(&kodomo, request.clone()).await.unwrap();
    assert_eq!(first.referral_id, second.referral_id);
    assert_eq!(first, second, "the retry returns the first result");

    let mut other = request.clone();
    other.purpose = HOME_VISIT_SUPPORT.to_owned();
    assert_refused(send(&kodomo, other).await, Code::AlreadyExists, &[]);

    assert_eq!(referral_ids(&kodomo).await, vec![first.referral_id.clone()]);
    assert_eq!(
        referral_ids(&hospital).await,
        vec![first.referral_id.clone()]
    );
    let received = all_events(&hospital).await;
    assert_eq!(
        of_kind(
            &received,
            pb::FeedEventKind::ReferralReceived,
            &first.referral_id
        )
        .len(),
        1
    );
    assert_eq!(
        get_referral(&kodomo, &first.referral_id)
            .await
            .unwrap()
            .events
            .len(),
        1
    );

    // The same for actions: a retried accept returns the first answer instead of a refusal.
    let accept = action_request(&first.referral_id, A::Accept);
    let accepted = act_with(&hospital, accept.clone()).await.unwrap();
    let again = act_with(&hospital, accept.clone()).await.unwrap();
    assert_eq!(again, accepted);
    let mut other = accept.clone();
    other.action = A::AcknowledgeDelivery as i32;
    assert_refused(act_with(&hospital, other).await, Code::AlreadyExists, &[]);
    assert_refused(
        act(&hospital, &first.referral_id, A::Accept).await,
        Code::FailedPrecondition,
        &[],
    );
    let history = get_referral(&kodomo, &first.referral_id).await.unwrap();
    assert_eq!(history.events.len(), 2, "{:?}", history.events);
    let updates = all_events(&kodomo).await;
    assert_eq!(
        of_kind(
            &updates,
            pb::FeedEventKind::ReferralUpdated,
            &first.referral_id
        )
        .len(),
        1
    );
    hub.stop().await;
}

/// The ESCALATED events of a referral for one timer, as `reader` sees them.
async fn escalations(reader: &Hub, referral_id: &str, timer: pb::TimerKind) -> usize {
    get_referral(reader, referral_id)
        .await
        .unwrap()
        .events
        .iter()
        .filter(|e| e.kind == pb::ReferralEventKind::Escalated as i32 && e.timer == timer as i32)
        .count()
}

async fn escalation_feed_events(client: &Hub, referral_id: &str) -> usize {
    of_kind(
        &all_events(client).await,
        pb::FeedEventKind::Escalation,
        referral_id,
    )
    .len()
}

#[tokio::test]
async fn a_handoff_due_soon_or_overdue_is_on_the_recipients_and_the_coordinators_worklist_escalates_to_the_coordinator_after_its_grace_and_stays_until_it_moves()
 {
    use pb::FollowUpStatus as S;
    use pb::TimerKind as T;
    const WAIT: Duration = Duration::from_secs(3);
    let hours = |h: u64| Duration::from_secs(h * 3600);

    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let nursery = hub.client("nursery").await;
    let (case, _) = consented_case(
        &*hub.clock,
        &kodomo,
        &["hospital", "nursery"],
        &[POSTNATAL_CARE, NURSERY_ADMISSION],
    )
    .await;
    // kodomo only coordinates: hospital sends to nursery.
    send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        POSTNATAL_CARE,
        by_consent(),
    )
    .await
    .unwrap();
    let r = send_referral(
        &hospital,
        &case.case_id,
        "nursery",
        NURSERY_ADMISSION,
        by_consent(),
    )
    .await
    .unwrap();
    let id = r.referral_id.as_str();
    let respond_by = millis(&r.deadlines.as_ref().unwrap().respond_by);
    act(&nursery, id, A::AcknowledgeDelivery).await.unwrap();
    // The coordinator sees every open handoff of its municipality that is overdue or due soon,
    // and which of them have escalated to it.
    let for_coordinator = async || {
        follow_ups(&kodomo, MUNICIPALITY)
            .await
            .into_iter()
            .filter(|i| i.referral.as_ref().unwrap().referral_id == id)
            .map(|i| (i.status, i.timer, i.escalated))
            .collect::<Vec<_>>()
    };

    // Not due yet.
    assert_eq!(items_for(&follow_ups(&nursery, "").await, id), vec![]);
    assert!(for_coordinator().await.is_empty());

    // 100 h after sending, respond-by (120 h) is due within 48 h.
    hub.clock.advance(hours(100));
    assert_eq!(
        items_for(&follow_ups(&nursery, "").await, id),
        vec![(S::DueSoon as i32, T::RespondBy as i32)]
    );
    assert_eq!(
        for_coordinator().await,
        vec![(S::DueSoon as i32, T::RespondBy as i32, false)]
    );

    // 121 h: overdue for the recipient; the coordinator sees it, not yet escalated to it.
    hub.clock.advance(hours(21));
    let items = follow_ups(&nursery, "").await;
    assert_eq!(
        items_for(&items, id),
        vec![(S::Overdue as i32, T::RespondBy as i32)]
    );
    let item = items
        .iter()
        .find(|i| i.referral.as_ref().unwrap().referral_id == id)
        .unwrap();
    assert_eq!(item.responsible_agency, "nursery");
    assert_eq!(millis(&item.due_at), respond_by);
    assert_eq!(
        for_coordinator().await,
        vec![(S::Overdue as i32, T::RespondBy as i32, false)]
    );
    let seen = get_referral(&nursery, id).await.unwrap().referral.unwrap();
    assert_eq!(seen.overdue, vec![T::RespondBy as i32]);

    // The timer task raises one escalation, on the recipient's feed.
    eventually("an ESCALATED event for respond-by", WAIT, async || {
        (escalations(&hospital, id, T::RespondBy).await == 1).then_some(())
    })
    .await;
    eventually("an ESCALATION on nursery's feed", WAIT, async || {
        (escalation_feed_events(&nursery, id).await == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        escalations(&hospital, id, T::RespondBy).await,
        1,
        "raised once"
    );
    assert_eq!(escalation_feed_events(&nursery, id).await, 1);
    assert_eq!(escalation_feed_events(&kodomo, id).await, 0);

    // 146 h: overdue for 26 h, more than the coordinator's 24 h: escalated to the coordinator.
    hub.clock.advance(hours(25));
    assert_eq!(
        for_coordinator().await,
        vec![(S::Overdue as i32, T::RespondBy as i32, true)]
    );
    let coordinator_item = follow_ups(&kodomo, MUNICIPALITY)
        .await
        .into_iter()
        .find(|i| i.status == S::Overdue as i32 && i.referral.as_ref().unwrap().referral_id == id)
        .unwrap();
    assert_eq!(coordinator_item.responsible_agency, "nursery");
    assert_eq!(
        items_for(&follow_ups(&nursery, "").await, id),
        vec![(S::Overdue as i32, T::RespondBy as i32)]
    );
    eventually("a coordinator-tier ESCALATED event", WAIT, async || {
        (escalations(&hospital, id, T::RespondBy).await == 2).then_some(())
    })
    .await;
    eventually(
        "an ESCALATION on the coordinator's feed",
        WAIT,
        async || (escalation_feed_events(&kodomo, id).await == 1).then_some(()),
    )
    .await;

    // Nothing is dropped and nothing is raised twice however long it stays overdue.
    hub.clock.advance(hours(100));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(escalations(&hospital, id, T::RespondBy).await, 2);
    assert_eq!(escalation_feed_events(&kodomo, id).await, 1);
    assert_eq!(
        items_for(&follow_ups(&nursery, "").await, id),
        vec![(S::Overdue as i32, T::RespondBy as i32)]
    );
    assert_eq!(
        for_coordinator().await,
        vec![(S::Overdue as i32, T::RespondBy as i32, true)]
    );

    // The recipient accepts: the respond-by item leaves both worklists (connect-by, at 336 h,
    // is neither overdue nor due within 48 h at 246 h).
    act(&nursery, id, A::Accept).await.unwrap();
    assert_eq!(items_for(&follow_ups(&nursery, "").await, id), vec![]);
    assert!(for_coordinator().await.is_empty());
    let seen = get_referral(&nursery, id).await.unwrap().referral.unwrap();
    assert!(seen.overdue.is_empty(), "{seen:?}");
    // Unrelated agencies never had it.
    let hiroba = hub.client("hiroba").await;
    assert_eq!(items_for(&follow_ups(&hiroba, "").await, id), vec![]);
    hub.stop().await;
}

#[tokio::test]
async fn a_note_reaches_each_recipient_who_acknowledges_it_and_the_sender_is_told() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let nursery = hub.client("nursery").await;
    let hiroba = hub.client("hiroba").await;
    let (case, _) = consented_case(
        &*hub.clock,
        &kodomo,
        &["hospital", "nursery"],
        &[POSTNATAL_CARE],
    )
    .await;
    let request = note_request(
        &case.case_id,
        &["hospital", "nursery"],
        POSTNATAL_CARE,
        by_consent(),
    );
    let body = request.body.clone();
    let note = send_note(&kodomo, request).await.unwrap();
    assert_eq!(note.case_id, case.case_id);
    assert_eq!(note.from_agency, "kodomo");
    assert!(note.sender_attested);
    assert_eq!(note.basis, pb::LegalBasisKind::Consent as i32);
    assert_eq!(note.body, body);
    assert_eq!(note.staff, Some(staff()));
    let mut recipients: Vec<&str> = note
        .recipients
        .iter()
        .map(|r| r.agency_id.as_str())
        .collect();
    recipients.sort_unstable();
    assert_eq!(recipients, vec!["hospital", "nursery"]);
    assert!(note.recipients.iter().all(|r| r.acknowledged_at.is_none()));
    let case_now = get_case(&kodomo, &case.case_id).await.unwrap();
    assert_eq!(
        participant_ids(&case_now),
        vec!["hospital", "kodomo", "nursery"]
    );

    for recipient in [&hospital, &nursery] {
        let events = all_events(recipient).await;
        let received: Vec<_> = events
            .iter()
            .filter(|e| e.kind == pb::FeedEventKind::NoteReceived as i32)
            .collect();
        assert_eq!(received.len(), 1, "{events:?}");
        assert_eq!(received[0].note_id, note.note_id);
        assert_eq!(received[0].case_id, case.case_id);
    }

    // Only a recipient may acknowledge.
    for (name, outsider) in [("hiroba", &hiroba), ("kodomo", &kodomo)] {
        assert_refused(
            acknowledge_note(outsider, &note.note_id).await,
            Code::PermissionDenied,
            &[],
        );
        assert!(
            all_events(&kodomo)
                .await
                .iter()
                .all(|e| e.kind != pb::FeedEventKind::NoteAcknowledged as i32),
            "{name}'s refused acknowledgement reached the sender"
        );
    }

    let acknowledged = acknowledge_note(&hospital, &note.note_id).await.unwrap();
    assert_eq!(
        acknowledged.recipients.len(),
        1,
        "a recipient sees its own entry only"
    );
    assert_eq!(acknowledged.recipients[0].agency_id, "hospital");
    assert!(acknowledged.recipients[0].acknowledged_at.is_some());

    let told = all_events(&kodomo).await;
    let told: Vec<_> = told
        .iter()
        .filter(|e| e.kind == pb::FeedEventKind::NoteAcknowledged as i32)
        .collect();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].note_id, note.note_id);

    // The sender's thread shows who acknowledged and who did not.
    let thread = case_thread(&kodomo, &case.case_id).await.unwrap();
    let shown = thread
        .entries
        .iter()
        .find_map(|entry| match &entry.entry {
            Some(pb::thread_entry::Entry::Note(n)) if n.note_id == note.note_id => Some(n.clone()),
            _ => None,
        })
        .expect("the note is on the thread");
    for recipient in &shown.recipients {
        assert_eq!(
            recipient.acknowledged_at.is_some(),
            recipient.agency_id == "hospital",
            "{recipient:?}"
        );
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_note_needs_a_basis_for_every_recipient() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let nursery = hub.client("nursery").await;
    let (case, _) = consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    assert_refused(
        send_note(
            &kodomo,
            note_request(
                &case.case_id,
                &["hospital", "nursery"],
                POSTNATAL_CARE,
                by_consent(),
            ),
        )
        .await,
        Code::FailedPrecondition,
        &["nursery"],
    );
    assert_nothing_shared(&kodomo, &nursery, "nursery", &case.case_id).await;
    // Not even the covered recipient got it.
    assert_nothing_shared(&kodomo, &hospital, "hospital", &case.case_id).await;
    let thread = case_thread(&kodomo, &case.case_id).await.unwrap();
    assert!(thread.entries.is_empty(), "{:?}", thread.entries);
    hub.stop().await;
}

#[tokio::test]
async fn bodies_over_the_size_limit_are_refused_with_resource_exhausted_and_write_nothing() {
    let hub = TestHub::start_with(|s| s.limits.max_sealed_bytes = 4096).await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let too_big = || Some(sealed_of_at_least(5000));

    // A case header.
    let mut request = open_case_request(MUNICIPALITY);
    request.header = too_big();
    assert_refused(
        try_open_case(&kodomo, request).await,
        Code::ResourceExhausted,
        &["header"],
    );
    assert!(list_cases(&kodomo).await.is_empty());
    // Just under the limit is fine.
    let mut request = open_case_request(MUNICIPALITY);
    request.header = Some(sealed_bytes(&[b'x'; 3000]));
    assert!(request.header.as_ref().unwrap().age.len() < 4096);
    let case = try_open_case(&kodomo, request).await.unwrap();

    // Consent evidence.
    let today = japan_date(&*hub.clock, 0);
    let until = japan_date(&*hub.clock, 30);
    let mut request = consent_request(
        &case.case_id,
        &["hospital"],
        &[],
        &[POSTNATAL_CARE],
        &today,
        &until,
    );
    request.evidence = too_big();
    assert_refused(
        try_record_consent(&kodomo, request).await,
        Code::ResourceExhausted,
        &["evidence"],
    );
    assert!(
        list_consents(&kodomo, &case.case_id)
            .await
            .unwrap()
            .is_empty()
    );
    record_consent(
        &kodomo,
        &case.case_id,
        &["hospital"],
        &[],
        &[POSTNATAL_CARE],
        &today,
        &until,
    )
    .await;

    // A referral body.
    let mut request = referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent());
    request.body = too_big();
    assert_refused(
        send(&kodomo, request).await,
        Code::ResourceExhausted,
        &["body"],
    );
    assert_nothing_shared(&kodomo, &hospital, "hospital", &case.case_id).await;

    // A note body.
    let mut request = note_request(&case.case_id, &["hospital"], POSTNATAL_CARE, by_consent());
    request.body = too_big();
    assert_refused(
        send_note(&kodomo, request).await,
        Code::ResourceExhausted,
        &["body"],
    );
    assert_nothing_shared(&kodomo, &hospital, "hospital", &case.case_id).await;
    assert!(
        case_thread(&kodomo, &case.case_id)
            .await
            .unwrap()
            .entries
            .is_empty()
    );

    // The sealed note of an action.
    let mut request = referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent());
    request.body = Some(sealed_bytes(&[b'x'; 3000]));
    let referral = send(&kodomo, request).await.unwrap();
    let mut accept = action_request(&referral.referral_id, A::Accept);
    accept.note = too_big();
    let before = get_referral(&kodomo, &referral.referral_id).await.unwrap();
    assert_refused(
        act_with(&hospital, accept).await,
        Code::ResourceExhausted,
        &["note"],
    );
    assert_eq!(
        get_referral(&kodomo, &referral.referral_id).await.unwrap(),
        before
    );
    hub.stop().await;
}

#[tokio::test]
async fn missing_fields_unknown_enum_values_and_bad_ids_get_invalid_argument_naming_the_field() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let (case, _) = consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    let good = || referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent());
    let with = |change: &dyn Fn(&mut pb::SendReferralRequest)| {
        let mut request = good();
        change(&mut request);
        request
    };

    let refused: Vec<(&str, pb::SendReferralRequest)> = vec![
        ("case_id", with(&|r| r.case_id = String::new())),
        ("case_id", with(&|r| r.case_id = "case-1".to_owned())),
        ("to_agency", with(&|r| r.to_agency = String::new())),
        ("to_agency", with(&|r| r.to_agency = "Hospital!".to_owned())),
        ("purpose", with(&|r| r.purpose = String::new())),
        (
            "purpose",
            with(&|r| r.purpose = "Postnatal Care".to_owned()),
        ),
        ("urgency", with(&|r| r.urgency = 0)),
        ("urgency", with(&|r| r.urgency = 99)),
        ("basis", with(&|r| r.basis = None)),
        ("basis.kind", with(&|r| r.basis.as_mut().unwrap().kind = 0)),
        ("basis.kind", with(&|r| r.basis.as_mut().unwrap().kind = 99)),
        (
            "basis.consent_id",
            with(&|r| r.basis.as_mut().unwrap().consent_id = "consent-1".to_owned()),
        ),
        ("body", with(&|r| r.body = None)),
        ("body", with(&|r| r.body = Some(not_sealed()))),
        (
            "body",
            with(&|r| r.body = Some(pb::Sealed { age: Vec::new() })),
        ),
        ("staff", with(&|r| r.staff = None)),
        (
            "staff.name",
            with(&|r| r.staff.as_mut().unwrap().name = String::new()),
        ),
        (
            "staff.role",
            with(&|r| r.staff.as_mut().unwrap().role = String::new()),
        ),
        (
            "staff.name",
            with(&|r| r.staff.as_mut().unwrap().name = "名".repeat(101)),
        ),
        (
            "idempotency_key",
            with(&|r| r.idempotency_key = String::new()),
        ),
        (
            "idempotency_key",
            with(&|r| r.idempotency_key = "k".repeat(129)),
        ),
    ];
    for (field, request) in refused {
        assert_invalid(send(&kodomo, request).await, field);
    }
    assert_nothing_shared(&kodomo, &hospital, "hospital", &case.case_id).await;

    // Actions.
    let referral = send(&kodomo, good()).await.unwrap();
    let id = referral.referral_id.as_str();
    let before = get_referral(&kodomo, id).await.unwrap();
    let act_with_change = |change: &dyn Fn(&mut pb::RecordReferralActionRequest)| {
        let mut request = action_request(id, A::Accept);
        change(&mut request);
        request
    };
    let refused: Vec<(&str, pb::RecordReferralActionRequest)> = vec![
        (
            "referral_id",
            act_with_change(&|r| r.referral_id = String::new()),
        ),
        (
            "referral_id",
            act_with_change(&|r| r.referral_id = "r-1".to_owned()),
        ),
        ("action", act_with_change(&|r| r.action = 0)),
        ("action", act_with_change(&|r| r.action = 99)),
        ("staff", act_with_change(&|r| r.staff = None)),
        (
            "staff.role",
            act_with_change(&|r| r.staff.as_mut().unwrap().role = String::new()),
        ),
        (
            "idempotency_key",
            act_with_change(&|r| r.idempotency_key = String::new()),
        ),
        ("note", act_with_change(&|r| r.note = Some(not_sealed()))),
        (
            "reason_code",
            action_with_reason(id, A::Decline, "No Capacity!"),
        ),
        (
            "not_connected_reason",
            pb::RecordReferralActionRequest {
                not_connected_reason: 99,
                ..action_request(id, A::ReportNotConnected)
            },
        ),
        (
            "linked_referral_id",
            not_connected_request(id, pb::NotConnectedReason::ReferredElsewhere, "elsewhere"),
        ),
    ];
    for (field, request) in refused {
        assert_invalid(act_with(&hospital, request).await, field);
    }
    assert_eq!(get_referral(&kodomo, id).await.unwrap(), before);

    // Reads.
    assert_invalid(get_referral(&kodomo, "r-1").await, "referral_id");
    assert_invalid(
        kodomo
            .referrals()
            .list_referrals(pb::ListReferralsRequest {
                direction: 99,
                ..pb::ListReferralsRequest::default()
            })
            .await,
        "direction",
    );
    assert_invalid(
        kodomo
            .referrals()
            .list_referrals(pb::ListReferralsRequest {
                direction: pb::ReferralDirection::All as i32,
                case_id: "case-1".to_owned(),
                ..pb::ListReferralsRequest::default()
            })
            .await,
        "case_id",
    );
    assert_invalid(
        kodomo
            .referrals()
            .follow_ups(pb::FollowUpsRequest {
                municipality: "1411".to_owned(),
                due_within_hours: 0,
            })
            .await,
        "municipality",
    );

    // Notes.
    let note = |change: &dyn Fn(&mut pb::SendNoteRequest)| {
        let mut request = note_request(&case.case_id, &["hospital"], POSTNATAL_CARE, by_consent());
        change(&mut request);
        request
    };
    let refused: Vec<(&str, pb::SendNoteRequest)> = vec![
        ("case_id", note(&|r| r.case_id = "x".to_owned())),
        ("to_agencies", note(&|r| r.to_agencies.clear())),
        (
            "to_agencies",
            note(&|r| r.to_agencies = (0..21).map(|i| format!("agency{i}")).collect()),
        ),
        ("purpose", note(&|r| r.purpose = String::new())),
        ("basis.kind", note(&|r| r.basis.as_mut().unwrap().kind = 99)),
        ("body", note(&|r| r.body = Some(not_sealed()))),
        (
            "staff.name",
            note(&|r| r.staff.as_mut().unwrap().name = String::new()),
        ),
        (
            "idempotency_key",
            note(&|r| r.idempotency_key = String::new()),
        ),
    ];
    for (field, request) in refused {
        assert_invalid(send_note(&kodomo, request).await, field);
    }
    assert!(
        all_events(&hospital)
            .await
            .iter()
            .all(|e| e.kind != pb::FeedEventKind::NoteReceived as i32)
    );
    assert_invalid(acknowledge_note(&hospital, "note-1").await, "note_id");
    hub.stop().await;
}

#[tokio::test]
async fn a_confirmed_not_connected_handoff_stays_on_the_coordinators_worklist_until_a_next_step_is_recorded()
 {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let (case, r) = referred_case(&*hub.clock, &kodomo, "hospital", POSTNATAL_CARE).await;
    act(&hospital, &r.referral_id, A::Accept).await.unwrap();
    act_with(
        &hospital,
        not_connected_request(&r.referral_id, pb::NotConnectedReason::CouldNotContact, ""),
    )
    .await
    .unwrap();
    let confirmed = act(&kodomo, &r.referral_id, A::Confirm).await.unwrap();
    assert!(confirmed.confirmed_at.is_some());

    let next_step = |items: &[pb::FollowUpItem]| {
        items
            .iter()
            .filter(|item| {
                item.status() == pb::FollowUpStatus::NextStepNeeded
                    && item.referral.as_ref().unwrap().referral_id == r.referral_id
            })
            .map(|item| item.responsible_agency.clone())
            .collect::<Vec<_>>()
    };
    // The handoff is closed, but the family has not vanished: the coordinator sees it, with the
    // sender as the one to act, and keeps seeing it as time passes.
    assert_eq!(
        next_step(&follow_ups(&kodomo, MUNICIPALITY).await),
        vec!["kodomo"]
    );
    assert_eq!(next_step(&follow_ups(&kodomo, "").await), vec!["kodomo"]);
    assert!(next_step(&follow_ups(&hospital, "").await).is_empty());
    hub.clock.advance(Duration::from_secs(30 * 24 * 3600));
    assert_eq!(
        next_step(&follow_ups(&kodomo, MUNICIPALITY).await),
        vec!["kodomo"]
    );

    // A next step: the family is referred again on the case. The item leaves the worklist.
    send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        POSTNATAL_CARE,
        by_consent(),
    )
    .await
    .unwrap();
    assert!(next_step(&follow_ups(&kodomo, MUNICIPALITY).await).is_empty());
    assert!(next_step(&follow_ups(&kodomo, "").await).is_empty());
    // The re-referral was the next step: closing with a reason as well is refused.
    assert_refused(
        act_with(
            &kodomo,
            pb::RecordReferralActionRequest {
                reason_code: "moved_out".to_owned(),
                ..action_request(&r.referral_id, A::CloseWithReason)
            },
        )
        .await,
        Code::FailedPrecondition,
        &["a next step was already taken"],
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_confirmed_not_connected_handoff_closed_with_a_reason_leaves_the_worklists_and_takes_no_second_next_step()
 {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let jisou = hub.client("jisou").await;
    let (case, _) = consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    let send = || {
        send_referral(
            &kodomo,
            &case.case_id,
            "hospital",
            POSTNATAL_CARE,
            by_consent(),
        )
    };
    let first = send().await.unwrap();
    let close = |referral_id: &str, reason: &str, text: &str| pb::RecordReferralActionRequest {
        reason_code: reason.to_owned(),
        reason_text: text.to_owned(),
        ..action_request(referral_id, A::CloseWithReason)
    };
    let r = first.referral_id.clone();
    act(&hospital, &r, A::Accept).await.unwrap();
    act_with(
        &hospital,
        not_connected_request(&r, pb::NotConnectedReason::DeclinedByFamily, ""),
    )
    .await
    .unwrap();
    // Not confirmed yet: no next step is due.
    assert_refused(
        act_with(&kodomo, close(&r, "moved_out", "")).await,
        Code::FailedPrecondition,
        &[
            "close the family's need with a reason",
            "must be confirmed first",
        ],
    );
    act(&kodomo, &r, A::Confirm).await.unwrap();
    let waiting = |items: &[pb::FollowUpItem]| {
        items
            .iter()
            .any(|item| item.status() == pb::FollowUpStatus::NextStepNeeded)
    };
    assert!(waiting(&follow_ups(&kodomo, MUNICIPALITY).await));

    // Only the sender or the coordinator may close; an agency outside the referral cannot tell
    // it exists.
    assert_refused(
        act_with(&hospital, close(&r, "moved_out", "")).await,
        Code::PermissionDenied,
        &["the sender or the municipality's coordinator"],
    );
    let outsider = assert_refused(
        act_with(&jisou, close(&r, "moved_out", "")).await,
        Code::PermissionDenied,
        &[],
    );
    let missing = assert_refused(
        act_with(
            &jisou,
            close("0190f3c4-0000-7000-8000-000000000003", "moved_out", ""),
        )
        .await,
        Code::PermissionDenied,
        &[],
    );
    assert_eq!(outsider.message(), missing.message());
    // Bad reasons are refused naming the field, and nothing is written.
    assert_invalid(
        act_with(&kodomo, close(&r, "family_gone", "")).await,
        "reason_code",
    );
    assert_invalid(act_with(&kodomo, close(&r, "", "")).await, "reason_code");
    assert_invalid(
        act_with(&kodomo, close(&r, "moved_out", &"転".repeat(201))).await,
        "reason_text",
    );
    assert!(waiting(&follow_ups(&kodomo, MUNICIPALITY).await));

    // The sender closes with a reason: the item leaves both worklists, the event is on the
    // referral's timeline and in the recipient's feed.
    let request = close(&r, "moved_out", "転出先の自治体へ連絡済み");
    let closed = act_with(&kodomo, request.clone()).await.unwrap();
    let referral = closed.referral.clone().unwrap();
    let record = referral.closed_with_reason.clone().unwrap();
    assert_eq!(record.reason_code, "moved_out");
    assert_eq!(record.reason_text, "転出先の自治体へ連絡済み");
    assert_eq!(record.closed_by, "kodomo");
    assert_eq!(referral.connection(), pb::ConnectionState::NotConnected);
    let event = closed.event.clone().unwrap();
    assert_eq!(event.action(), A::CloseWithReason);
    assert_eq!(
        (event.reason_code.as_str(), event.reason_text.as_str()),
        ("moved_out", "転出先の自治体へ連絡済み")
    );
    assert!(!waiting(&follow_ups(&kodomo, MUNICIPALITY).await));
    assert!(!waiting(&follow_ups(&kodomo, "").await));
    let timeline = get_referral(&hospital, &r).await.unwrap();
    assert_eq!(
        timeline
            .referral
            .unwrap()
            .closed_with_reason
            .unwrap()
            .reason_code,
        "moved_out"
    );
    assert_eq!(timeline.events.last().unwrap().event_id, event.event_id);
    assert!(all_events(&hospital).await.iter().any(|e| {
        e.kind == pb::FeedEventKind::ReferralUpdated as i32
            && e.referral_event.as_ref().map(|e| &e.event_id) == Some(&event.event_id)
    }));

    // The same request again (same idempotency key) gets the first answer and writes nothing;
    // a second close is refused, naming the first.
    assert_eq!(act_with(&kodomo, request).await.unwrap(), closed);
    assert_eq!(
        get_referral(&kodomo, &r).await.unwrap().events.len(),
        timeline.events.len()
    );
    assert_refused(
        act_with(&kodomo, close(&r, "supported_otherwise", "")).await,
        Code::FailedPrecondition,
        &[
            "a next step was already taken",
            "closed with reason moved_out by kodomo",
        ],
    );

    // A referral already followed by a re-referral takes no close either.
    let second = send().await.unwrap().referral_id;
    // The clear-text note belongs to a close only.
    assert_invalid(
        act_with(
            &hospital,
            pb::RecordReferralActionRequest {
                reason_text: "転出".to_owned(),
                ..action_request(&second, A::Accept)
            },
        )
        .await,
        "reason_text",
    );
    act(&hospital, &second, A::Accept).await.unwrap();
    act_with(
        &hospital,
        not_connected_request(&second, pb::NotConnectedReason::CouldNotContact, ""),
    )
    .await
    .unwrap();
    act(&kodomo, &second, A::Confirm).await.unwrap();
    send().await.unwrap();
    assert_refused(
        act_with(&kodomo, close(&second, "no_further_support_needed", "")).await,
        Code::FailedPrecondition,
        &["a new referral was sent on the case after the confirmation"],
    );
    hub.stop().await;
}

#[tokio::test]
async fn clear_text_reasons_over_200_characters_are_refused_naming_the_field_and_nothing_is_written()
 {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let case = open_case(&kodomo).await;
    let long = "危".repeat(201);
    assert_invalid(
        send_referral(
            &kodomo,
            &case.case_id,
            "jisou",
            POSTNATAL_CARE,
            basis(pb::LegalBasisKind::VitalInterest, &long),
        )
        .await,
        "basis.justification",
    );
    let mut register = register_request(&case.case_id, "", "");
    register.justification = long.clone();
    assert_invalid(try_register(&kodomo, register).await, "justification");
    // At the limit it is accepted.
    send_referral(
        &kodomo,
        &case.case_id,
        "jisou",
        POSTNATAL_CARE,
        basis(pb::LegalBasisKind::VitalInterest, &"危".repeat(200)),
    )
    .await
    .unwrap();
    assert_eq!(referral_ids(&kodomo).await.len(), 1);
    hub.stop().await;
}
