//! Several hub instances on one PostgreSQL database, and a database connection that drops:
//! live feeds across instances, timers that escalate once, UNAVAILABLE and recovery.

use std::time::{Duration, Instant};

use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::*;
use tsunagu_tests::proxy::CuttableProxy;
use tsunagu_tests::{TestHub, postgres_or_skip};

#[tokio::test]
async fn a_subscriber_on_one_instance_receives_within_a_second_a_referral_sent_through_another() {
    if postgres_or_skip("scale-out feed").is_none() {
        return;
    }
    let hub = TestHub::start().await;
    let instance_b = hub.another_instance().await;
    let kodomo_on_b = hub.client_of(&instance_b, "kodomo").await;
    let hospital_on_a = hub.client("hospital").await;

    let mut feed = hospital_on_a
        .events()
        .subscribe(pb::SubscribeRequest {
            after_cursor: 0,
            from_acknowledged: false,
        })
        .await
        .unwrap()
        .into_inner();
    let (case, _) =
        consented_case(&*hub.clock, &kodomo_on_b, &["hospital"], &[POSTNATAL_CARE]).await;
    // Give the subscription a moment to reach its live wait, so the event must come through
    // the other instance's notification, not the initial backlog read.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent_at = Instant::now();
    let referral = send_referral(
        &kodomo_on_b,
        &case.case_id,
        "hospital",
        POSTNATAL_CARE,
        by_consent(),
    )
    .await
    .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(1), feed.message())
        .await
        .expect("no event within a second")
        .unwrap()
        .unwrap();
    let latency = sent_at.elapsed();
    assert_eq!(event.kind, pb::FeedEventKind::ReferralReceived as i32);
    assert_eq!(event.referral_id, referral.referral_id);
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    drop(instance_b);
    hub.stop().await;
}

#[tokio::test]
async fn with_two_instances_an_overdue_timer_escalates_exactly_once() {
    if postgres_or_skip("scale-out timers").is_none() {
        return;
    }
    let hub = TestHub::start().await;
    let instance_b = hub.another_instance().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let (_, referral) = referred_case(&*hub.clock, &kodomo, "hospital", POSTNATAL_CARE).await;
    // Past deliver-by and respond-by (routine: 24 h and 120 h), not past the coordinator's grace.
    hub.clock.advance(Duration::from_secs(121 * 3600));

    let escalations = |events: Vec<pb::FeedEvent>| {
        events
            .into_iter()
            .filter(|e| {
                e.kind == pb::FeedEventKind::Escalation as i32
                    && e.referral_id == referral.referral_id
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while escalations(all_events(&hospital).await) < 2 {
        assert!(Instant::now() < deadline, "the timers did not escalate");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both instances run their timer task every 100 ms; give them many more rounds.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        escalations(all_events(&hospital).await),
        2,
        "deliver-by and respond-by, once each"
    );
    // Deliver-by passed 97 hours ago, beyond the coordinator's 24-hour grace: it reached the
    // coordinator once, too.
    assert_eq!(
        escalations(all_events(&kodomo).await),
        3,
        "the sender's two, the coordinator's one"
    );
    let thread = get_referral(&hospital, &referral.referral_id)
        .await
        .unwrap();
    let escalated = thread
        .events
        .iter()
        .filter(|e| e.kind == pb::ReferralEventKind::Escalated as i32)
        .count();
    assert_eq!(
        escalated, 3,
        "two for the hospital, one for the coordinator"
    );
    drop(instance_b);
    hub.stop().await;
}

/// The PostgreSQL URL with its host and port replaced by the proxy's.
fn through(url: &str, proxy: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let credentials = authority
        .rsplit_once('@')
        .map(|(c, _)| format!("{c}@"))
        .unwrap_or_default();
    format!("{scheme}://{credentials}{proxy}/{path}")
}

fn target_of(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    let host_port = authority.rsplit('@').next().unwrap();
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port.parse().unwrap()
}

#[tokio::test]
async fn a_cut_database_gives_unavailable_and_the_hub_recovers_without_losing_an_answered_send() {
    let Some(server) = postgres_or_skip("database cut") else {
        return;
    };
    let proxy = CuttableProxy::start(target_of(&server)).await;
    let hub = TestHub::start_with(|settings| {
        settings.database_url = through(&settings.database_url, proxy.addr);
    })
    .await;
    let kodomo = hub.client("kodomo").await;
    let (case, _) = consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    let mut health = HealthClient::new(kodomo.channel());

    let mut answered = Vec::new();
    for _ in 0..3 {
        answered.push(
            send_referral(
                &kodomo,
                &case.case_id,
                "hospital",
                POSTNATAL_CARE,
                by_consent(),
            )
            .await
            .unwrap()
            .referral_id,
        );
    }

    proxy.cut();
    let mut unavailable = None;
    for _ in 0..5 {
        let result = tokio::time::timeout(
            Duration::from_secs(8),
            send_referral(
                &kodomo,
                &case.case_id,
                "hospital",
                POSTNATAL_CARE,
                by_consent(),
            ),
        )
        .await
        .expect("the call must answer within its deadline");
        match result {
            Ok(referral) => answered.push(referral.referral_id),
            Err(status) => {
                unavailable = Some(status);
                break;
            }
        }
    }
    let status = unavailable.expect("sends went on succeeding with the database cut");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("retrying"), "{status:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        if reply.status() == ServingStatus::NotServing {
            break;
        }
        assert!(Instant::now() < deadline, "health never turned NOT_SERVING");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    let recovered = loop {
        match send_referral(
            &kodomo,
            &case.case_id,
            "hospital",
            POSTNATAL_CARE,
            by_consent(),
        )
        .await
        {
            Ok(referral) => break referral,
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(
                    Instant::now() < deadline,
                    "the hub did not recover: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    answered.push(recovered.referral_id);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        if reply.status() == ServingStatus::Serving {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "health never turned SERVING again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every send that got a response is in the database.
    let stored = referral_ids(&kodomo).await;
    for id in &answered {
        assert!(stored.contains(id), "answered referral {id} is missing");
    }
    hub.stop().await;
}
