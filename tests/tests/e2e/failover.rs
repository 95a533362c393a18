//! Losing the PostgreSQL primary: a hub given both hosts of a primary and its synchronous
//! standby keeps every acknowledged write through a SIGKILL of the primary and the standby's
//! promotion, answers UNAVAILABLE meanwhile, and serves again without a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tsunagu_hub::casework::audit::AuditMode;
use tsunagu_tests::fixtures::*;
use tsunagu_tests::pg_pair::{self, StandbyPair};
use tsunagu_tests::{MUNICIPALITY, TestHub};

/// How many clients write at once.
const WRITERS: usize = 4;

/// Whether to run: in the PostgreSQL pass of the suite, on a machine that can make a pair.
/// Skipped (with a line saying why) elsewhere, except where `TSUNAGU_REQUIRE_FAILOVER=1` (CI's
/// PostgreSQL pass), where that fails the test.
fn pair_or_skip() -> bool {
    let reason = if tsunagu_tests::postgres_url().is_none() {
        Some("it runs in the PostgreSQL pass (TSUNAGU_TEST_POSTGRES_URL)".to_owned())
    } else {
        pg_pair::unavailable_because()
    };
    let Some(reason) = reason else {
        return true;
    };
    assert!(
        std::env::var("TSUNAGU_REQUIRE_FAILOVER").as_deref() != Ok("1"),
        "the failover test cannot run here: {reason}"
    );
    eprintln!("failover test: skipped, {reason}");
    false
}

#[tokio::test]
async fn killing_the_primary_loses_no_acknowledged_write_and_the_hub_serves_from_the_promoted_standby()
 {
    if !pair_or_skip() {
        return;
    }
    let pair = StandbyPair::start().await;
    let (primary, standby) = (pair.primary_port, pair.standby_port);
    let hub = TestHub::start_on(
        Some(&pair.primary_url()),
        |settings| {
            // Both hosts, as an operator writes them: the hub finds the one that takes writes.
            settings.database_url = settings.database_url.replace(
                &format!("127.0.0.1:{primary}/"),
                &format!("127.0.0.1:{primary},127.0.0.1:{standby}/"),
            ) + "?target_session_attrs=read-write";
        },
        AuditMode::On,
    )
    .await;
    assert!(hub.settings.database_url.contains(','));
    let kodomo = hub.client("kodomo").await;
    let mut health = HealthClient::new(kodomo.channel());

    // Writers open cases without pause. A write that fails is sent again with the same
    // idempotency key until it is answered, as a careful client does; each answer is kept.
    let stop = Arc::new(AtomicBool::new(false));
    let unexpected = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let kodomo = kodomo.clone();
        let stop = Arc::clone(&stop);
        let unexpected = Arc::clone(&unexpected);
        let unavailable = Arc::clone(&unavailable);
        writers.push(tokio::spawn(async move {
            let mut answered: HashMap<String, String> = HashMap::new();
            while !stop.load(Ordering::Relaxed) {
                let request = open_case_request(MUNICIPALITY);
                let key = request.idempotency_key.clone();
                loop {
                    let result = tokio::time::timeout(
                        Duration::from_secs(15),
                        try_open_case(&kodomo, request.clone()),
                    )
                    .await;
                    match result {
                        Ok(Ok(case)) => {
                            answered.insert(key, case.case_id);
                            break;
                        }
                        Ok(Err(status)) if status.code() == Code::Unavailable => {
                            unavailable.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Err(status)) => unexpected.lock().unwrap().push(format!(
                            "{:?}: {}",
                            status.code(),
                            status.message()
                        )),
                        Err(_) => unexpected
                            .lock()
                            .unwrap()
                            .push("a call did not answer within 15 s".to_owned()),
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            answered
        }));
    }
    let acknowledged = || async {
        // How many writes were answered so far, as the database sees them.
        let mut connection = sqlx::PgConnection::connect(&hub.database.url).await.ok()?;
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM cases")
            .fetch_one(&mut connection)
            .await
            .ok()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged().await.unwrap_or(0) < 20 {
        assert!(Instant::now() < deadline, "the writers wrote nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    pair.kill_primary();
    // The hub notices: health turns NOT_SERVING while no host accepts writes.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = health
            .check(HealthCheckRequest::default())
            .await
            .unwrap()
            .into_inner();
        if reply.status() == ServingStatus::NotServing {
            break;
        }
        assert!(Instant::now() < deadline, "health never turned NOT_SERVING");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pair.promote_standby().await;

    // Without a restart, the hub finds the promoted standby and serves again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = health
            .check(HealthCheckRequest::default())
            .await
            .unwrap()
            .into_inner();
        if reply.status() == ServingStatus::Serving {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "health never turned SERVING after the promotion"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut new_primary = sqlx::PgConnection::connect(&hub.database.url.replace(
        &format!("127.0.0.1:{primary}/"),
        &format!("127.0.0.1:{standby}/"),
    ))
    .await
    .unwrap();
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM cases")
        .fetch_one(&mut new_primary)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now: i64 = sqlx::query_scalar("SELECT count(*) FROM cases")
            .fetch_one(&mut new_primary)
            .await
            .unwrap();
        if now >= before + 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the writers did not go on after the promotion"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut answered = HashMap::new();
    for writer in writers {
        answered.extend(writer.await.unwrap());
    }

    // Every answered write is on the new primary exactly once, and nothing else is.
    let stored: Vec<String> = sqlx::query_scalar("SELECT case_id FROM cases")
        .fetch_all(&mut new_primary)
        .await
        .unwrap();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &stored {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    for (key, case_id) in &answered {
        assert_eq!(
            counts.get(case_id.as_str()).copied(),
            Some(1),
            "the case answered for key {key} is not stored exactly once"
        );
    }
    assert_eq!(
        stored.len(),
        answered.len(),
        "stored cases that no answer acknowledged, or duplicates"
    );
    let unexpected = unexpected.lock().unwrap().clone();
    assert!(
        unexpected.is_empty(),
        "calls failed with other than UNAVAILABLE: {unexpected:?}"
    );
    eprintln!(
        "failover: {} writes answered, {} UNAVAILABLE answers during the failover",
        answered.len(),
        unavailable.load(Ordering::Relaxed)
    );
    hub.stop().await;
}
