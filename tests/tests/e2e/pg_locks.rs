//! PostgreSQL's narrower write locks (issue 18), on the hub's own store: writes about different
//! cases go side by side, writes about one case wait for each other, every other write waits
//! for all of them, a write's feed entries and audit records go in with its commit only, and its
//! audit records are chained by the sequencer after it, or by the first read of the chain.

use std::time::Duration;

use tsunagu_hub::casework::audit::verify_chain;
use tsunagu_hub::domain::audit::AuditEntry;
use tsunagu_hub::domain::records::{FeedEntry, FeedEventKind};
use tsunagu_hub::domain::{AgencyId, CaseId, EventId, Timestamp};
use tsunagu_hub::store::audit::AuditQueries as _;
use tsunagu_hub::store::postgres::PostgresStore;
use tsunagu_hub::store::{Locking, StoreError, Transaction as _};
use tsunagu_tests::fixtures::*;
use tsunagu_tests::{TestHub, postgres_or_skip};

/// How long a write that should not wait is given, and how long one that should is watched.
const PATIENCE: Duration = Duration::from_secs(5);
const WATCH: Duration = Duration::from_millis(400);

/// Waits until the writes the hub made in the background for the calls before (recording a
/// certificate seen, the audit records of reads) are committed: an exclusive write queued behind
/// a test's open transaction would hold up every write after it, whatever the case.
async fn settle(pg: &PostgresStore) {
    for _ in 0..3 {
        let tx = pg.begin_write(Locking::Exclusive).await.unwrap();
        tx.commit().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn two_cases(hub: &TestHub) -> (CaseId, CaseId) {
    let kodomo = hub.client("kodomo").await;
    let (a, _) = consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    let (b, _) = consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    (
        CaseId::parse(&a.case_id).unwrap(),
        CaseId::parse(&b.case_id).unwrap(),
    )
}

#[tokio::test]
async fn on_postgresql_a_write_about_another_case_goes_through_while_one_about_the_same_case_and_any_other_write_wait()
 {
    if postgres_or_skip("narrow write locks").is_none() {
        return;
    }
    let hub = TestHub::start().await;
    // The hub's own store type, to hold write transactions open side by side.
    let pg = PostgresStore::open(&hub.database.url).await.unwrap();
    let (case_a, case_b) = two_cases(&hub).await;
    let kodomo = AgencyId::parse("kodomo").unwrap();
    settle(&pg).await;

    // A write about case A, left open.
    let mut first = pg.begin_write(Locking::Narrow).await.unwrap();
    assert!(first.case_for(&case_a, &kodomo).await.unwrap().is_some());

    // A write about case B does not wait for it.
    let store = pg.clone();
    let (b, agency) = (case_b.clone(), kodomo.clone());
    tokio::time::timeout(PATIENCE, async move {
        let mut tx = store.begin_write(Locking::Narrow).await.unwrap();
        assert!(tx.case_for(&b, &agency).await.unwrap().is_some());
        tx.commit().await.unwrap();
    })
    .await
    .expect("a write about another case waited for the open one");

    // A write about case A waits, and so does a write that is not one of the narrow ones.
    let store = pg.clone();
    let (a, agency) = (case_a.clone(), kodomo.clone());
    let same_case = tokio::spawn(async move {
        let mut tx = store.begin_write(Locking::Narrow).await.unwrap();
        tx.case_for(&a, &agency).await.unwrap();
        tx.commit().await.unwrap();
    });
    tokio::time::sleep(WATCH).await;
    let store = pg.clone();
    let exclusive = tokio::spawn(async move {
        store
            .begin_write(Locking::Exclusive)
            .await
            .unwrap()
            .commit()
            .await
            .unwrap();
    });
    tokio::time::sleep(WATCH).await;
    assert!(
        !same_case.is_finished(),
        "a write about the same case did not wait"
    );
    assert!(!exclusive.is_finished(), "an exclusive write did not wait");

    first.commit().await.unwrap();
    tokio::time::timeout(PATIENCE, same_case)
        .await
        .expect("the write about the same case still waits after the commit")
        .unwrap();
    tokio::time::timeout(PATIENCE, exclusive)
        .await
        .expect("the exclusive write still waits after the commit")
        .unwrap();
    hub.stop().await;
}

#[tokio::test]
async fn on_postgresql_feed_entries_and_audit_records_of_a_write_go_in_with_its_commit_only_are_chained_in_commit_order_and_the_chain_verifies()
 {
    if postgres_or_skip("narrow write locks").is_none() {
        return;
    }
    let hub = TestHub::start().await;
    // The hub's own store type, to hold write transactions open side by side.
    let pg = PostgresStore::open(&hub.database.url).await.unwrap();
    let (case_a, case_b) = two_cases(&hub).await;
    let hospital = AgencyId::parse("hospital").unwrap();
    let entry = |case: &CaseId| FeedEntry {
        agency_id: hospital.clone(),
        event_id: EventId::generate(),
        kind: FeedEventKind::NoteReceived,
        case_id: Some(case.clone()),
        referral_id: None,
        note_id: None,
        referral_event_id: None,
        recorded_at: Timestamp::from_millis(1),
    };
    let record = |action: &str| AuditEntry {
        at: Timestamp::from_millis(1),
        agency_id: "hospital".to_owned(),
        staff_name: None,
        staff_role: None,
        action: action.to_owned(),
        municipality: None,
        case_id: None,
        referral_id: None,
        note_id: None,
        consent_id: None,
        basis: None,
        outcome: "ok".to_owned(),
    };
    let end = hub
        .store
        .read()
        .await
        .unwrap()
        .feed_end(&hospital)
        .await
        .unwrap();
    let head = hub.store.read().await.unwrap().audit_head().await.unwrap();

    // Two writes open at once, the second committed first; one more that rolls back.
    let mut first = pg.begin_write(Locking::Narrow).await.unwrap();
    first.append_feed(&entry(&case_a)).await.unwrap();
    first.append_audit(&record("first")).await.unwrap();
    let mut second = pg.begin_write(Locking::Narrow).await.unwrap();
    second.append_feed(&entry(&case_b)).await.unwrap();
    second.append_audit(&record("second")).await.unwrap();
    second.append_audit(&record("second again")).await.unwrap();
    let mut rolled_back = pg.begin_write(Locking::Narrow).await.unwrap();
    rolled_back.append_feed(&entry(&case_b)).await.unwrap();
    rolled_back.append_audit(&record("never")).await.unwrap();
    drop(rolled_back);
    // Nothing is written before the commit.
    let mut read = hub.store.read().await.unwrap();
    assert_eq!(read.feed_end(&hospital).await.unwrap(), end);
    assert_eq!(read.audit_head().await.unwrap(), head);
    drop(read);
    second.commit().await.unwrap();
    first.commit().await.unwrap();

    // The feed grew by two, in commit order; the chain by three, in commit order (the order the
    // records were queued in), whether the sequencer or this read chained them.
    let page = hub.store.feed_page(&hospital, end, 10).await.unwrap();
    let cases: Vec<_> = page
        .iter()
        .map(|(event, _)| event.entry.case_id.clone())
        .collect();
    assert_eq!(cases, vec![Some(case_b.clone()), Some(case_a.clone())]);
    let mut read = hub.store.read().await.unwrap();
    let records = read.audit_range(head.sequence, 10).await.unwrap();
    let actions: Vec<_> = records.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(actions, ["second", "second again", "first"]);
    let report = verify_chain(&mut *read, 1, None).await.unwrap();
    assert!(report.broken.is_none(), "{report:?}");
    drop(read);
    hub.stop().await;
}

/// The rows waiting in `audit_pending` (migration 0014), read beside the hub.
async fn pending(url: &str) -> i64 {
    use sqlx::Connection as _;
    let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT count(*) FROM audit_pending")
        .fetch_one(&mut connection)
        .await
        .unwrap()
}

#[tokio::test]
async fn on_postgresql_an_answered_write_leaves_its_audit_records_pending_without_the_chain_lock_and_the_next_read_of_the_chain_chains_them()
 {
    use sqlx::Connection as _;
    if postgres_or_skip("audit sequencer").is_none() {
        return;
    }
    let hub = TestHub::start().await;
    let record = |action: &str| AuditEntry {
        at: Timestamp::from_millis(1),
        agency_id: "hospital".to_owned(),
        staff_name: None,
        staff_role: None,
        action: action.to_owned(),
        municipality: None,
        case_id: None,
        referral_id: None,
        note_id: None,
        consent_id: None,
        basis: None,
        outcome: "ok".to_owned(),
    };
    let head = hub.store.read().await.unwrap().audit_head().await.unwrap();

    // Someone else holds the chain's lock (as a sequencer would, mid-round): a write with audit
    // records still commits at once, its records queued.
    let mut holder = sqlx::PgConnection::connect(&hub.database.url)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('tsunagu:audit', 0))")
        .execute(&mut holder)
        .await
        .unwrap();
    let (queued, queued_too) = (record("queued"), record("queued too"));
    tokio::time::timeout(
        PATIENCE,
        hub.store.write(Locking::Narrow, move |tx| {
            Box::pin(async move {
                tx.append_audit(&queued).await?;
                tx.append_audit(&queued_too).await?;
                Ok::<_, StoreError>(())
            })
        }),
    )
    .await
    .expect("a write waited for the audit chain's lock")
    .unwrap();
    // The sequencer cannot chain them while the lock is held elsewhere.
    tokio::time::sleep(WATCH).await;
    assert_eq!(pending(&hub.database.url).await, 2);

    // A read of the chain waits for the holder, then chains them before it reads.
    let store = hub.store.clone();
    let reader = tokio::spawn(async move {
        let mut read = store.read().await.unwrap();
        let records = read.audit_range(head.sequence, 10).await.unwrap();
        let report = verify_chain(&mut *read, 1, None).await.unwrap();
        (records, report)
    });
    tokio::time::sleep(WATCH).await;
    assert!(!reader.is_finished(), "a read of the chain did not wait");
    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    let (records, report) = tokio::time::timeout(PATIENCE, reader)
        .await
        .expect("the read still waits after the lock was let go")
        .unwrap();
    let actions: Vec<_> = records.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(actions, ["queued", "queued too"]);
    assert_eq!(records[0].sequence, head.sequence + 1);
    assert!(report.broken.is_none(), "{report:?}");
    assert_eq!(pending(&hub.database.url).await, 0);
    hub.stop().await;
}

#[tokio::test]
async fn on_postgresql_the_sequencer_chains_a_committed_write_s_audit_records_without_any_read() {
    if postgres_or_skip("audit sequencer").is_none() {
        return;
    }
    let hub = TestHub::start().await;
    let alone = AuditEntry {
        at: Timestamp::from_millis(1),
        agency_id: "hospital".to_owned(),
        staff_name: None,
        staff_role: None,
        action: "alone".to_owned(),
        municipality: None,
        case_id: None,
        referral_id: None,
        note_id: None,
        consent_id: None,
        basis: None,
        outcome: "ok".to_owned(),
    };
    hub.store
        .write(Locking::Narrow, move |tx| {
            Box::pin(async move { tx.append_audit(&alone).await })
        })
        .await
        .unwrap();
    // Woken by the commit, the sequencer empties the queue well within its tick.
    let deadline = std::time::Instant::now() + PATIENCE;
    while pending(&hub.database.url).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sequencer left a record pending"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hub.stop().await;
}
