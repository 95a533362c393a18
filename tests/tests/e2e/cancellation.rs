//! Writes whose callers give up at random points while many others run: every write the hub
//! acknowledged is stored exactly once, a retry under the same idempotency key finishes or
//! replays what was cut off, nothing is left half-done, and the audit chain verifies.

use std::collections::HashMap;
use std::time::Duration;

use tsunagu_hub::casework::audit::verify_chain;
use tsunagu_proto::v1 as pb;
use tsunagu_tests::TestHub;
use tsunagu_tests::fixtures::*;

/// Sends in all, and how many run at once.
const SENDS: usize = 240;
const CONCURRENT: usize = 12;

/// A small deterministic generator: the same deadlines on every run (xorshift64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_cancelled_at_random_points_under_load_leave_each_acknowledged_write_once_and_a_chain_that_verifies()
 {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let (case, _) = consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    let requests: Vec<pb::SendReferralRequest> = (0..SENDS)
        .map(|_| referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent()))
        .collect();

    // How long a send takes here under this load (SQLite answers in milliseconds, PostgreSQL
    // in tens of them): the first sends run to their end, and time the rest's deadlines.
    let mut acknowledged: HashMap<String, String> = HashMap::new();
    let started = std::time::Instant::now();
    let warm_up = requests[..CONCURRENT].iter().map(|request| {
        let (client, request) = (kodomo.clone(), request.clone());
        tokio::spawn(async move { send(&client, request).await.unwrap() })
    });
    for (request, sent) in requests
        .iter()
        .zip(futures::future::join_all(warm_up).await)
    {
        acknowledged.insert(request.idempotency_key.clone(), sent.unwrap().referral_id);
    }
    let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);

    // Each other send is given a random deadline, from none at all to twice what a send took,
    // so that callers give up before the job is queued, while it runs, while its commit syncs,
    // and after the answer is on its way.
    let mut rng = Rng(0x7375_6e61_6775_0001);
    let deadlines: Vec<Duration> = (0..SENDS)
        .map(|_| Duration::from_micros(rng.below(2 * took.max(1_000))))
        .collect();
    let mut acknowledged: HashMap<String, String> = HashMap::new();
    let mut cut_off = Vec::new();
    for chunk in requests
        .chunks(CONCURRENT)
        .zip(deadlines.chunks(CONCURRENT))
    {
        let sends = chunk.0.iter().zip(chunk.1).map(|(request, deadline)| {
            let (client, request, deadline) = (kodomo.clone(), request.clone(), *deadline);
            tokio::spawn(async move {
                let key = request.idempotency_key.clone();
                (
                    key,
                    tokio::time::timeout(deadline, send(&client, request)).await,
                )
            })
        });
        for sent in futures::future::join_all(sends).await {
            match sent.unwrap() {
                (key, Ok(Ok(referral))) => {
                    acknowledged.insert(key, referral.referral_id);
                }
                (key, Ok(Err(status))) => panic!("send {key} was refused: {status:?}"),
                (key, Err(_elapsed)) => cut_off.push(key),
            }
        }
    }
    assert!(
        acknowledged.len() > CONCURRENT && !cut_off.is_empty(),
        "the deadlines must both cut sends off and let some through: {} acknowledged, {} cut off",
        acknowledged.len(),
        cut_off.len()
    );

    // Every send again under its own key, without a deadline: an acknowledged one answers the
    // same referral; one that was cut off either replays what committed or makes it now.
    let mut stored_by_key = HashMap::new();
    for request in &requests {
        let referral = send(&kodomo, request.clone()).await.unwrap();
        if let Some(first) = acknowledged.get(&request.idempotency_key) {
            assert_eq!(
                &referral.referral_id, first,
                "a retry answered another referral"
            );
        }
        stored_by_key.insert(request.idempotency_key.clone(), referral.referral_id);
    }

    // One referral per key, no more: nothing a cancelled call left behind doubles a send.
    let listed = list_referrals(&kodomo, pb::ReferralDirection::Sent, &case.case_id).await;
    assert_eq!(listed.len(), SENDS, "referrals on the case");
    let mut ids: Vec<_> = listed.iter().map(|r| r.referral_id.clone()).collect();
    ids.sort();
    let mut expected: Vec<_> = stored_by_key.into_values().collect();
    expected.sort();
    assert_eq!(ids, expected);

    let mut tx = hub.store.read().await.unwrap();
    let report = verify_chain(&mut *tx, 1, None).await.unwrap();
    assert!(report.broken.is_none(), "the audit chain broke: {report:?}");
    assert!(
        report.checked > SENDS as u64,
        "records checked: {}",
        report.checked
    );
    drop(tx);
    hub.stop().await;
}
