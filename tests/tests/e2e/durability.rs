//! Durability: whatever the real hub binary answered survives a SIGKILL the instant after.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use tsunagu_client::Hub;
use tsunagu_hub::domain::{Clock, SystemClock};
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::*;
use tsunagu_tests::{AGENCIES, TRUST_DOMAIN, TestDatabase, TestPki, test_agency, workspace_binary};

use crate::operator::{ChildGuard, free_port, wait_for_port};

/// The real hub on a free port, configured only by environment.
fn start_hub(dir: &Path, database_url: &str) -> (ChildGuard, SocketAddr) {
    let port = free_port();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("hub.log"))
        .unwrap();
    let mut child = ChildGuard(
        Command::new(workspace_binary("tsunagu-hub", "tsunagu-hub"))
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TSUNAGU_LISTEN", format!("127.0.0.1:{port}"))
            .env("TSUNAGU_DATABASE_URL", database_url)
            .env("TSUNAGU_TLS_DIR", dir.join("tls"))
            .env("TSUNAGU_TRUST_DOMAIN", TRUST_DOMAIN)
            .env("TSUNAGU_REGISTER_DEV_AGENCIES", "false")
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, &mut child.0);
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// SIGKILL, with no chance to flush or shut down.
fn kill(mut hub: ChildGuard) {
    hub.0.kill().unwrap();
    let status = hub.0.wait().unwrap();
    assert!(!status.success(), "the hub was not killed: {status}");
}

async fn register_agencies(database_url: &str) {
    let store = tsunagu_hub::store::connect(database_url).await.unwrap();
    let agencies = AGENCIES.iter().map(test_agency).collect();
    tsunagu_tests::insert_agencies(&*store, agencies, SystemClock.now()).await;
    store.close().await;
}

async fn client(pki: &TestPki, addr: SocketAddr, agency: &str) -> Hub {
    let certificate = pki.agency_certificate(agency);
    Hub::connect(&pki.connect_options(addr, Some(&certificate)))
        .await
        .unwrap()
}

#[tokio::test]
async fn referrals_actions_and_acknowledgements_the_hub_answered_survive_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tls")).unwrap();
    let pki = TestPki::generate(&dir.path().join("tls"));
    let database = TestDatabase::create(dir.path()).await;
    let database_url = database.url.clone();
    register_agencies(&database_url).await;

    // First life: a case, a consent and five referrals; killed the instant the last is answered.
    let (hub, addr) = start_hub(dir.path(), &database_url);
    let kodomo = client(&pki, addr, "kodomo").await;
    let case = open_case(&kodomo).await;
    let consent = record_consent(
        &kodomo,
        &case.case_id,
        &["hospital"],
        &[],
        &[POSTNATAL_CARE],
        &japan_date(&SystemClock, 0),
        &japan_date(&SystemClock, 30),
    )
    .await;
    let requests: Vec<pb::SendReferralRequest> = (0..5)
        .map(|_| referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent()))
        .collect();
    let mut sent = Vec::new();
    for request in &requests {
        sent.push(send(&kodomo, request.clone()).await.unwrap());
    }
    kill(hub);
    drop(kodomo);

    // Second life: everything is there.
    let (hub, addr) = start_hub(dir.path(), &database_url);
    let kodomo = client(&pki, addr, "kodomo").await;
    let hospital = client(&pki, addr, "hospital").await;
    let stored = get_case(&kodomo, &case.case_id).await.unwrap();
    assert_eq!(stored.case_id, case.case_id);
    assert_eq!(stored.header, case.header);
    let consents = list_consents(&kodomo, &case.case_id).await.unwrap();
    assert_eq!(consents.len(), 1);
    assert_eq!(consents[0].consent_id, consent.consent_id);
    for (request, referral) in requests.iter().zip(&sent) {
        let got = get_referral(&hospital, &referral.referral_id)
            .await
            .unwrap_or_else(|status| panic!("{} was lost: {status:?}", referral.referral_id));
        let stored = got.referral.unwrap();
        assert_eq!(stored.referral_id, referral.referral_id);
        assert_eq!(stored.case_id, case.case_id);
        assert_eq!(stored.to_agency, "hospital");
        assert_eq!(stored.body, request.body);
        assert_eq!(stored.consent_id, consent.consent_id);
        assert_eq!(millis(&stored.sent_at), millis(&referral.sent_at));
        assert_eq!(stored.deadlines, referral.deadlines);
        assert_eq!(got.events.len(), 1);
    }
    let mut expected: Vec<String> = sent.iter().map(|r| r.referral_id.clone()).collect();
    expected.sort();
    assert_eq!(referral_ids(&hospital).await, expected);
    let feed = all_events(&hospital).await;
    assert_eq!(
        feed.iter()
            .filter(|e| e.kind == pb::FeedEventKind::ReferralReceived as i32)
            .count(),
        5,
        "{feed:?}"
    );
    // The idempotency record survived with it: a retry of the last send is answered, not repeated.
    let retried = send(&kodomo, requests[4].clone()).await.unwrap();
    assert_eq!(retried.referral_id, sent[4].referral_id);
    assert_eq!(referral_ids(&hospital).await, expected);

    // An acknowledgement and an action, killed the instant the action is answered.
    let cursor = feed.last().unwrap().cursor;
    assert_eq!(
        hospital
            .events()
            .ack_events(pb::AckEventsRequest { cursor })
            .await
            .unwrap()
            .into_inner()
            .acknowledged_cursor,
        cursor
    );
    let accepted = act(&hospital, &sent[0].referral_id, pb::ReferralAction::Accept)
        .await
        .unwrap();
    kill(hub);
    drop((kodomo, hospital));

    // Third life.
    let (hub, addr) = start_hub(dir.path(), &database_url);
    let kodomo = client(&pki, addr, "kodomo").await;
    let hospital = client(&pki, addr, "hospital").await;
    let got = get_referral(&kodomo, &sent[0].referral_id).await.unwrap();
    let stored = got.referral.unwrap();
    assert_eq!(stored.response, pb::ResponseState::Accepted as i32);
    assert_eq!(millis(&stored.responded_at), millis(&accepted.responded_at));
    assert_eq!(got.events.len(), 2);
    let updates = all_events(&kodomo).await;
    assert_eq!(
        of_kind(
            &updates,
            pb::FeedEventKind::ReferralUpdated,
            &sent[0].referral_id
        )
        .len(),
        1
    );
    let page = hospital
        .events()
        .list_events(pb::ListEventsRequest {
            after_cursor: 0,
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.acknowledged_cursor, cursor);
    kill(hub);
}

#[tokio::test]
async fn concurrent_sends_answered_before_a_sigkill_are_all_stored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tls")).unwrap();
    let pki = TestPki::generate(&dir.path().join("tls"));
    let database = TestDatabase::create(dir.path()).await;
    let database_url = database.url.clone();
    register_agencies(&database_url).await;

    let (hub, addr) = start_hub(dir.path(), &database_url);
    let kodomo = client(&pki, addr, "kodomo").await;
    let (case, _) = consented_case(&SystemClock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    let sends =
        (0..8).map(|_| {
            let kodomo = kodomo.clone();
            let case_id = case.case_id.clone();
            async move {
                send_referral(&kodomo, &case_id, "hospital", POSTNATAL_CARE, by_consent()).await
            }
        });
    let answered: Vec<pb::Referral> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    kill(hub);

    let (hub, addr) = start_hub(dir.path(), &database_url);
    let hospital = client(&pki, addr, "hospital").await;
    let mut expected: Vec<String> = answered.iter().map(|r| r.referral_id.clone()).collect();
    expected.sort();
    expected.dedup();
    assert_eq!(expected.len(), 8);
    assert_eq!(referral_ids(&hospital).await, expected);
    kill(hub);
}
