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
async fn after_a_send_commits_the_other_instances_are_told_whose_feed_grew() {
    if postgres_or_skip("feed notifications").is_none() {
        return;
    }
    let hub = TestHub::start().await;
    // Listens as another instance does.
    let mut listener = sqlx::postgres::PgListener::connect(&hub.database.url)
        .await
        .unwrap();
    listener
        .listen(tsunagu_hub::store::postgres::FEED_CHANNEL)
        .await
        .unwrap();
    let kodomo = hub.client("kodomo").await;
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
    // Notifications of the writes before (the case, the consent) may come first; nothing but a
    // notification sent after the send's commit names the hospital, whose feed only it grew.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let notification = tokio::time::timeout_at(deadline, listener.recv())
            .await
            .expect("the hospital's feed was not named within 2 s")
            .unwrap();
        if notification.payload().split(',').any(|a| a == "hospital") {
            break;
        }
    }
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

/// Reads `client`'s feed after `cursor` until `done` is set and one more read finds nothing new,
/// as a client polling by cursor does: what it collects is what a client would ever see.
async fn poll_feed(
    client: tsunagu_client::Hub,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<pb::FeedEvent> {
    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let finished = done.load(std::sync::atomic::Ordering::SeqCst);
        let page = events_after(&client, cursor).await;
        if let Some(last) = page.last() {
            cursor = last.cursor;
        }
        let empty = page.is_empty();
        seen.extend(page);
        if finished && empty {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_land_every_write_keep_each_feed_in_commit_order_and_one_key_makes_one_referral()
 {
    if postgres_or_skip("two instances on one database").is_none() {
        return;
    }
    let hub = TestHub::start().await;
    let instance_b = hub.another_instance().await;
    let kodomo_on_a = hub.client("kodomo").await;
    let jisou_on_b = hub.client_of(&instance_b, "jisou").await;
    let chiyoda_on_b = hub.client_of(&instance_b, "chiyoda").await;
    let hospital_on_a = hub.client("hospital").await;

    // The hospital polls its feed by cursor through instance A while referrals to it are
    // written through both instances, and cases of another municipality through B.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = tokio::spawn(poll_feed(hospital_on_a.clone(), done.clone()));
    const EACH: usize = 8;
    let refer = |client: tsunagu_client::Hub| {
        let clock = hub.clock.clone();
        tokio::spawn(async move {
            let mut sent = Vec::new();
            for _ in 0..EACH {
                let (_, referral) =
                    referred_case(&*clock, &client, "hospital", POSTNATAL_CARE).await;
                sent.push(referral.referral_id);
            }
            sent
        })
    };
    let through_a = refer(kodomo_on_a.clone());
    let through_b = refer(jisou_on_b.clone());
    let elsewhere = tokio::spawn({
        let chiyoda = chiyoda_on_b.clone();
        async move {
            let mut opened = Vec::new();
            for _ in 0..EACH {
                let case = try_open_case(&chiyoda, open_case_request("131016"))
                    .await
                    .unwrap();
                opened.push(case.case_id);
            }
            opened
        }
    });
    let mut sent = through_a.await.unwrap();
    sent.extend(through_b.await.unwrap());
    let opened = elsewhere.await.unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let polled = poller.await.unwrap();

    // Every write landed; the poller, reading by cursor during the writes, missed none and saw
    // each once, in increasing cursor order: the feed is in commit order for its agency.
    assert_eq!(opened.len(), EACH);
    for case_id in &opened {
        assert_eq!(
            get_case(&chiyoda_on_b, case_id).await.unwrap().municipality,
            "131016"
        );
    }
    assert_well_ordered(&polled);
    let mut received: Vec<String> = polled
        .iter()
        .filter(|e| e.kind == pb::FeedEventKind::ReferralReceived as i32)
        .map(|e| e.referral_id.clone())
        .collect();
    received.sort();
    sent.sort();
    assert_eq!(received, sent, "the polled feed holds each referral once");
    assert_eq!(polled, all_events(&hospital_on_a).await);

    // One idempotency key sent through both instances at once: one referral.
    let kodomo_on_b = hub.client_of(&instance_b, "kodomo").await;
    let (case, _) =
        consented_case(&*hub.clock, &kodomo_on_a, &["hospital"], &[POSTNATAL_CARE]).await;
    let request = referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent());
    let (first, second) = tokio::join!(
        send(&kodomo_on_a, request.clone()),
        send(&kodomo_on_b, request)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.referral_id, second.referral_id);
    let on_case = list_referrals(&kodomo_on_a, pb::ReferralDirection::Sent, &case.case_id).await;
    assert_eq!(on_case.len(), 1);

    // The audit chain both instances appended to verifies.
    let mut tx = hub.store.read().await.unwrap();
    let report = tsunagu_hub::casework::audit::verify_chain(&mut *tx, 1, None)
        .await
        .unwrap();
    drop(tx);
    assert!(report.broken.is_none(), "{report:?}");
    assert!(report.checked > 4 * EACH as u64, "{report:?}");
    drop(instance_b);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_concurrent_writes_through_two_instances_every_queued_audit_record_is_chained_exactly_once_and_the_chain_verifies()
 {
    use sqlx::Connection as _;
    if postgres_or_skip("audit sequencer across instances").is_none() {
        return;
    }
    let hub = TestHub::start().await;
    let instance_b = hub.another_instance().await;
    let kodomo_on_a = hub.client("kodomo").await;
    let jisou_on_b = hub.client_of(&instance_b, "jisou").await;
    let chiyoda_on_b = hub.client_of(&instance_b, "chiyoda").await;

    // Referrals through both instances and cases of another municipality through B, several
    // at a time on each: both instances' sequencers chain while the others queue.
    const TASKS: usize = 3;
    const EACH: usize = 4;
    let mut referrals = Vec::new();
    for client in [&kodomo_on_a, &jisou_on_b] {
        for _ in 0..TASKS {
            let (client, clock) = (client.clone(), hub.clock.clone());
            referrals.push(tokio::spawn(async move {
                let mut sent = Vec::new();
                for _ in 0..EACH {
                    let (_, referral) =
                        referred_case(&*clock, &client, "hospital", POSTNATAL_CARE).await;
                    sent.push(referral.referral_id);
                }
                sent
            }));
        }
    }
    let mut openings = Vec::new();
    for _ in 0..TASKS {
        let chiyoda = chiyoda_on_b.clone();
        openings.push(tokio::spawn(async move {
            let mut opened = Vec::new();
            for _ in 0..EACH {
                let case = try_open_case(&chiyoda, open_case_request("131016"))
                    .await
                    .unwrap();
                opened.push(case.case_id);
            }
            opened
        }));
    }
    let mut sent = Vec::new();
    for task in referrals {
        sent.extend(task.await.unwrap());
    }
    let mut opened = Vec::new();
    for task in openings {
        opened.extend(task.await.unwrap());
    }

    // A read of the chain through the store first chains whatever is still pending; the chain
    // then verifies from its first record to its last, without a gap.
    let mut tx = hub.store.read().await.unwrap();
    let report = tsunagu_hub::casework::audit::verify_chain(&mut *tx, 1, None)
        .await
        .unwrap();
    drop(tx);
    assert!(report.broken.is_none(), "{report:?}");

    // Nothing is left pending, the chain holds every record once: one record of each send and
    // of each opening, and as many records as sequence numbers.
    let mut database = sqlx::PgConnection::connect(&hub.database.url)
        .await
        .unwrap();
    let count = |sql: &'static str, id: String| sqlx::query_scalar::<_, i64>(sql).bind(id);
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_pending")
        .fetch_one(&mut database)
        .await
        .unwrap();
    assert_eq!(pending, 0, "records left pending");
    let (records, last) = sqlx::query_as::<_, (i64, i64)>(
        "SELECT count(*), COALESCE(max(sequence), 0) FROM audit_records",
    )
    .fetch_one(&mut database)
    .await
    .unwrap();
    assert_eq!(records, last);
    assert_eq!(u64::try_from(last).unwrap(), report.checked);
    assert_eq!(sent.len(), 2 * TASKS * EACH);
    for referral in sent {
        let sends = count(
            "SELECT count(*) FROM audit_records \
             WHERE action = 'ReferralService/SendReferral' AND referral_id = $1",
            referral,
        )
        .fetch_one(&mut database)
        .await
        .unwrap();
        assert_eq!(sends, 1);
    }
    assert_eq!(opened.len(), TASKS * EACH);
    for case in opened {
        let openings = count(
            "SELECT count(*) FROM audit_records \
             WHERE action = 'CaseService/OpenCase' AND case_id = $1",
            case,
        )
        .fetch_one(&mut database)
        .await
        .unwrap();
        assert_eq!(openings, 1);
    }
    drop(instance_b);
    hub.stop().await;
}
