//! The event feed: what lands on whose feed, paging by cursor, acknowledgement, and the live
//! subscription with resumption from the acknowledged cursor.

use std::collections::HashSet;
use std::time::Duration;

use tonic::Code;
use tonic::codec::Streaming;
use tsunagu_client::Hub;
use tsunagu_proto::v1 as pb;
use tsunagu_tests::TestHub;
use tsunagu_tests::fixtures::*;

use pb::ReferralAction as A;

/// The actions of the REFERRAL_UPDATED events about `referral_id` on a feed that `actor` took.
fn updates_by(events: &[pb::FeedEvent], referral_id: &str, actor: &str) -> Vec<i32> {
    of_kind(events, pb::FeedEventKind::ReferralUpdated, referral_id)
        .into_iter()
        .map(|e| e.referral_event.as_ref().expect("the referral event"))
        .filter(|e| e.actor_agency == actor)
        .map(|e| e.action)
        .collect()
}

async fn ack(client: &Hub, cursor: u64) -> Result<u64, tonic::Status> {
    Ok(client
        .events()
        .ack_events(pb::AckEventsRequest { cursor })
        .await?
        .into_inner()
        .acknowledged_cursor)
}

async fn page(
    client: &Hub,
    after_cursor: u64,
    limit: u32,
) -> Result<pb::ListEventsResponse, tonic::Status> {
    Ok(client
        .events()
        .list_events(pb::ListEventsRequest {
            after_cursor,
            limit,
        })
        .await?
        .into_inner())
}

async fn subscribe(client: &Hub, request: pb::SubscribeRequest) -> Streaming<pb::FeedEvent> {
    client
        .events()
        .subscribe(request)
        .await
        .unwrap()
        .into_inner()
}

/// The next event on a subscription not seen before (the feed is at-least-once), within 5 s.
async fn next_new(
    stream: &mut Streaming<pb::FeedEvent>,
    seen: &mut HashSet<String>,
) -> pb::FeedEvent {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("an event within 5 s")
            .expect("the stream stays healthy")
            .expect("the stream stays open");
        if seen.insert(event.event_id.clone()) {
            return event;
        }
    }
}

#[tokio::test]
async fn the_recipient_is_told_of_a_new_referral_and_each_side_of_the_others_actions() {
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
    let r = send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        POSTNATAL_CARE,
        by_consent(),
    )
    .await
    .unwrap();

    let events = all_events(&hospital).await;
    let received = of_kind(&events, pb::FeedEventKind::ReferralReceived, &r.referral_id);
    assert_eq!(received.len(), 1, "{events:?}");
    let received = received[0];
    assert_eq!(received.case_id, case.case_id);
    assert!(!received.event_id.is_empty());
    assert!(received.cursor > 0);
    assert!(received.recorded_at.is_some());
    let sent = received.referral_event.as_ref().unwrap();
    assert_eq!(sent.kind, pb::ReferralEventKind::Sent as i32);
    assert_eq!(sent.actor_agency, "kodomo");

    let recipient_actions = [
        A::AcknowledgeDelivery,
        A::Accept,
        A::Start,
        A::RecordContactAttempt,
        A::Complete,
        A::ReportConnected,
    ];
    for action in recipient_actions {
        act(&hospital, &r.referral_id, action).await.unwrap();
    }
    let events = all_events(&kodomo).await;
    assert_eq!(
        updates_by(&events, &r.referral_id, "hospital"),
        recipient_actions.map(|a| a as i32).to_vec(),
        "the sender hears of every action of the recipient, in order"
    );
    assert_well_ordered(&events);

    act(&kodomo, &r.referral_id, A::Confirm).await.unwrap();
    let events = all_events(&hospital).await;
    assert_eq!(
        updates_by(&events, &r.referral_id, "kodomo"),
        vec![A::Confirm as i32]
    );

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
    let events = all_events(&hospital).await;
    assert_eq!(
        of_kind(
            &events,
            pb::FeedEventKind::ReferralReceived,
            &cancelled.referral_id
        )
        .len(),
        1
    );
    let cancel = updates_by(&events, &cancelled.referral_id, "kodomo");
    assert_eq!(cancel, vec![A::Cancel as i32]);
    assert_well_ordered(&events);
    hub.stop().await;
}

#[tokio::test]
async fn one_agencys_feed_never_shows_another_agencys_events() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let nursery = hub.client("nursery").await;
    let jisou = hub.client("jisou").await;
    let hiroba = hub.client("hiroba").await;
    let chiyoda = hub.client("chiyoda").await;

    let (first, _) = consented_case(
        &*hub.clock,
        &kodomo,
        &["hospital", "nursery"],
        &[POSTNATAL_CARE, NURSERY_ADMISSION],
    )
    .await;
    let to_hospital = send_referral(
        &kodomo,
        &first.case_id,
        "hospital",
        POSTNATAL_CARE,
        by_consent(),
    )
    .await
    .unwrap();
    let to_nursery = send_referral(
        &kodomo,
        &first.case_id,
        "nursery",
        NURSERY_ADMISSION,
        by_consent(),
    )
    .await
    .unwrap();
    act(&hospital, &to_hospital.referral_id, A::Accept)
        .await
        .unwrap();
    act(&nursery, &to_nursery.referral_id, A::Accept)
        .await
        .unwrap();
    act(&nursery, &to_nursery.referral_id, A::ReportConnected)
        .await
        .unwrap();

    let (second, to_hiroba) =
        referred_case(&*hub.clock, &jisou, "hiroba", "parenting_support").await;
    act(&hiroba, &to_hiroba.referral_id, A::Accept)
        .await
        .unwrap();
    act_with(
        &jisou,
        action_with_reason(&to_hiroba.referral_id, A::Cancel, "family_moved"),
    )
    .await
    .unwrap();

    let expect: [(&str, &Hub, Vec<&str>); 6] = [
        (
            "kodomo",
            &kodomo,
            vec![&to_hospital.referral_id, &to_nursery.referral_id],
        ),
        ("hospital", &hospital, vec![&to_hospital.referral_id]),
        ("nursery", &nursery, vec![&to_nursery.referral_id]),
        ("jisou", &jisou, vec![&to_hiroba.referral_id]),
        ("hiroba", &hiroba, vec![&to_hiroba.referral_id]),
        ("chiyoda", &chiyoda, vec![]),
    ];
    for (name, client, allowed) in expect {
        let events = all_events(client).await;
        assert_well_ordered(&events);
        for event in &events {
            assert!(
                allowed.contains(&event.referral_id.as_str()),
                "{name} sees an event of a referral it is not party to: {event:?}"
            );
            if let Some(inner) = &event.referral_event {
                assert_eq!(inner.referral_id, event.referral_id);
            }
        }
        // Each party heard of each of its referrals.
        for referral_id in &allowed {
            assert!(
                events.iter().any(|e| e.referral_id == *referral_id),
                "{name} heard nothing of {referral_id}"
            );
        }
        let cases: HashSet<&str> = events.iter().map(|e| e.case_id.as_str()).collect();
        let expected_case = if name == "jisou" || name == "hiroba" {
            &second.case_id
        } else {
            &first.case_id
        };
        assert!(
            cases.iter().all(|c| c == expected_case),
            "{name} sees events of another case: {cases:?}"
        );
    }
    assert!(all_events(&chiyoda).await.is_empty());
    hub.stop().await;
}

#[tokio::test]
async fn list_events_pages_by_cursor_and_refuses_a_limit_over_a_thousand() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let (case, _) = consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    for _ in 0..5 {
        send_referral(
            &kodomo,
            &case.case_id,
            "hospital",
            POSTNATAL_CARE,
            by_consent(),
        )
        .await
        .unwrap();
    }
    let full = all_events(&hospital).await;
    assert_eq!(full.len(), 5, "{full:?}");
    assert_well_ordered(&full);
    assert!(
        full.iter()
            .all(|e| e.kind == pb::FeedEventKind::ReferralReceived as i32)
    );

    // limit 0 means 100.
    let everything = page(&hospital, 0, 0).await.unwrap();
    assert_eq!(everything.events, full);
    assert_eq!(everything.last_cursor, full[4].cursor);

    // Pages of two.
    let mut paged = Vec::new();
    let mut cursor = 0;
    loop {
        let response = page(&hospital, cursor, 2).await.unwrap();
        assert!(response.events.len() <= 2);
        if response.events.is_empty() {
            assert_eq!(
                response.last_cursor, cursor,
                "an empty page keeps the cursor"
            );
            break;
        }
        assert_eq!(response.last_cursor, response.events.last().unwrap().cursor);
        cursor = response.last_cursor;
        paged.extend(response.events);
    }
    assert_eq!(paged, full);

    // Strictly after the cursor.
    let rest = page(&hospital, full[1].cursor, 0).await.unwrap();
    assert_eq!(rest.events, full[2..].to_vec());

    page(&hospital, 0, 1000).await.unwrap();
    assert_invalid(page(&hospital, 0, 1001).await, "limit");
    hub.stop().await;
}

#[tokio::test]
async fn entries_committed_after_a_page_was_served_appear_in_the_next_pages() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let (case, _) = consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    let send = || async {
        send_referral(
            &kodomo,
            &case.case_id,
            "hospital",
            POSTNATAL_CARE,
            by_consent(),
        )
        .await
        .unwrap();
    };
    for _ in 0..3 {
        send().await;
    }
    // Read once from the database (and kept), then again: the same page.
    let first = page(&hospital, 0, 0).await.unwrap();
    assert_eq!(first.events.len(), 3, "{first:?}");
    assert_eq!(page(&hospital, 0, 0).await.unwrap(), first);
    assert_eq!(
        page(&hospital, 0, 2).await.unwrap().events,
        first.events[..2]
    );

    for _ in 0..2 {
        send().await;
    }
    let after = page(&hospital, first.last_cursor, 0).await.unwrap();
    assert_eq!(after.events.len(), 2, "{after:?}");
    let everything = page(&hospital, 0, 0).await.unwrap();
    assert_eq!(everything.events[..3], first.events[..]);
    assert_eq!(everything.events[3..], after.events[..]);
    assert_well_ordered(&everything.events);
    hub.stop().await;
}

#[tokio::test]
async fn acknowledging_a_cursor_is_recorded_may_not_pass_the_end_and_never_goes_back() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let (case, _) = consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    for _ in 0..4 {
        send_referral(
            &kodomo,
            &case.case_id,
            "hospital",
            POSTNATAL_CARE,
            by_consent(),
        )
        .await
        .unwrap();
    }
    let full = all_events(&hospital).await;
    assert_eq!(full.len(), 4);
    assert_eq!(page(&hospital, 0, 0).await.unwrap().acknowledged_cursor, 0);

    assert_eq!(
        ack(&hospital, full[2].cursor).await.unwrap(),
        full[2].cursor
    );
    assert_eq!(
        page(&hospital, 0, 0).await.unwrap().acknowledged_cursor,
        full[2].cursor
    );

    // Going back is a no-op that reports where it stands.
    assert_eq!(
        ack(&hospital, full[0].cursor).await.unwrap(),
        full[2].cursor
    );
    assert_eq!(
        page(&hospital, 0, 0).await.unwrap().acknowledged_cursor,
        full[2].cursor
    );

    // Past the end is refused and changes nothing.
    assert_invalid(ack(&hospital, full[3].cursor + 1000).await, "cursor");
    assert_eq!(
        page(&hospital, 0, 0).await.unwrap().acknowledged_cursor,
        full[2].cursor
    );

    assert_eq!(
        ack(&hospital, full[3].cursor).await.unwrap(),
        full[3].cursor
    );
    // Acknowledgements are per agency.
    assert_eq!(page(&kodomo, 0, 0).await.unwrap().acknowledged_cursor, 0);
    hub.stop().await;
}

#[tokio::test]
async fn subscribe_delivers_events_written_while_connected_and_after_a_disconnect_resuming_from_the_acknowledged_cursor_delivers_everything_missed()
 {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let (_, r) = referred_case(&*hub.clock, &kodomo, "hospital", POSTNATAL_CARE).await;
    let id = r.referral_id.as_str();
    act(&hospital, id, A::AcknowledgeDelivery).await.unwrap();

    // The backlog first, in order.
    let backlog = all_events(&kodomo).await;
    assert!(!backlog.is_empty());
    let mut seen = HashSet::new();
    let mut stream = subscribe(
        &kodomo,
        pb::SubscribeRequest {
            after_cursor: 0,
            from_acknowledged: false,
        },
    )
    .await;
    for expected in &backlog {
        assert_eq!(&next_new(&mut stream, &mut seen).await, expected);
    }

    // Then live events as they are written.
    act(&hospital, id, A::Accept).await.unwrap();
    let live = next_new(&mut stream, &mut seen).await;
    assert_eq!(live.kind, pb::FeedEventKind::ReferralUpdated as i32);
    assert_eq!(live.referral_id, id);
    assert_eq!(
        live.referral_event.as_ref().unwrap().action,
        A::Accept as i32
    );
    assert!(live.cursor > backlog.last().unwrap().cursor);
    act(&hospital, id, A::Start).await.unwrap();
    let processed = next_new(&mut stream, &mut seen).await;
    assert_eq!(
        processed.referral_event.as_ref().unwrap().action,
        A::Start as i32
    );
    assert!(processed.cursor > live.cursor);
    assert_eq!(
        ack(&kodomo, processed.cursor).await.unwrap(),
        processed.cursor
    );

    // Disconnect; more happens meanwhile.
    drop(stream);
    for action in [
        A::RecordContactAttempt,
        A::RecordContactAttempt,
        A::ReportConnected,
    ] {
        act(&hospital, id, action).await.unwrap();
    }
    let missed = events_after(&kodomo, processed.cursor).await;
    assert!(missed.len() >= 3, "{missed:?}");

    // Resuming from the acknowledged cursor delivers exactly what was missed, then live again.
    let mut resumed = subscribe(
        &kodomo,
        pb::SubscribeRequest {
            after_cursor: 0,
            from_acknowledged: true,
        },
    )
    .await;
    let mut seen_again = HashSet::new();
    for expected in &missed {
        let got = next_new(&mut resumed, &mut seen_again).await;
        assert!(got.cursor > processed.cursor);
        assert_eq!(&got, expected, "a gap or a reordering after resuming");
    }
    let missed_actions: Vec<i32> = missed
        .iter()
        .filter_map(|e| e.referral_event.as_ref())
        .filter(|e| e.actor_agency == "hospital")
        .map(|e| e.action)
        .collect();
    assert_eq!(
        missed_actions,
        vec![
            A::RecordContactAttempt as i32,
            A::RecordContactAttempt as i32,
            A::ReportConnected as i32
        ]
    );
    act(&hospital, id, A::Complete).await.unwrap();
    let after = next_new(&mut resumed, &mut seen_again).await;
    assert_eq!(
        after.referral_event.as_ref().unwrap().action,
        A::Complete as i32
    );
    assert!(after.cursor > missed.last().unwrap().cursor);

    // Over both connections, the whole feed arrived once with no gap.
    let whole = all_events(&kodomo).await;
    assert_well_ordered(&whole);
    let delivered: HashSet<String> = seen.union(&seen_again).cloned().collect();
    let written: HashSet<String> = whole.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(delivered, written);
    drop(resumed);

    // A plain cursor resumes strictly after it.
    let mut from_cursor = subscribe(
        &kodomo,
        pb::SubscribeRequest {
            after_cursor: whole[whole.len() - 2].cursor,
            from_acknowledged: false,
        },
    )
    .await;
    let mut fresh = HashSet::new();
    assert_eq!(
        &next_new(&mut from_cursor, &mut fresh).await,
        whole.last().unwrap()
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_subscription_shows_nothing_of_other_agencies_feeds() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let hiroba = hub.client("hiroba").await;
    let mut quiet = subscribe(
        &hiroba,
        pb::SubscribeRequest {
            after_cursor: 0,
            from_acknowledged: false,
        },
    )
    .await;
    let (_, r) = referred_case(&*hub.clock, &kodomo, "hospital", POSTNATAL_CARE).await;
    act(&hospital, &r.referral_id, A::Accept).await.unwrap();
    // hiroba's stream stays silent while others' feeds fill.
    let nothing = tokio::time::timeout(Duration::from_millis(500), quiet.message()).await;
    assert!(nothing.is_err(), "hiroba received {nothing:?}");
    assert!(all_events(&hiroba).await.is_empty());
    let status = ack(&hiroba, 1).await;
    assert_eq!(status.unwrap_err().code(), Code::InvalidArgument);
    hub.stop().await;
}

#[tokio::test]
async fn shutting_down_ends_open_subscriptions_so_the_hub_stops_promptly() {
    let hub = TestHub::start().await;
    let hospital = hub.client("hospital").await;
    let mut stream = hospital
        .events()
        .subscribe(pb::SubscribeRequest {
            after_cursor: 0,
            from_acknowledged: false,
        })
        .await
        .unwrap()
        .into_inner();
    let started = std::time::Instant::now();
    hub.stop().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the hub took {:?} to stop with a subscription open",
        started.elapsed()
    );
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
        .await
        .expect("the subscription did not end");
    match ended {
        Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}"),
        Ok(None) => {}
        Ok(Some(event)) => panic!("unexpected event {event:?}"),
    }
}
