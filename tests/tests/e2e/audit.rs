//! The audit log: every call on case data leaves a record in a hash chain, refusals with their
//! code; `tsunagu-hub audit verify` names the first record someone edited, deleted, swapped or
//! rewrote directly in the database; agencies list what concerns them, and the reporter of an
//! abuse notification stays hidden from all but the agency it went to.

use std::process::{Command, Stdio};
use std::time::Duration;
use tsunagu_hub::store::Locking;

use sqlx::Connection as _;
use tonic::Code;
use tsunagu_client::ClientError;
use tsunagu_client::Hub;
use tsunagu_client::audit_head::{HeadCheck, HeadWatch};
use tsunagu_hub::casework::audit::{ChainReport, verify_chain};
use tsunagu_hub::domain::Clock as _;
use tsunagu_hub::domain::audit::{AuditRecord, ChainBreak, ChainHead, chain};
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::*;
use tsunagu_tests::{MUNICIPALITY, OTHER_MUNICIPALITY, TestHub, tsunagu, workspace_binary};

use crate::operator::{ChildGuard, free_port, wait_for_port};

use pb::ReferralAction as A;

/// What the loop below made.
struct Loop {
    case_id: String,
    referral_id: String,
}

/// The whole referral loop over mTLS, reads included: kodomo opens a case, records the
/// family's consent and refers to the hospital, which acknowledges, accepts, starts and reports
/// that the family connected; kodomo confirms. A note goes back and forth, the hospital reads
/// and acknowledges its feed, and both read the case.
async fn referral_loop(hub: &TestHub) -> Loop {
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let (case, referral) = referred_case(&*hub.clock, &kodomo, "hospital", POSTNATAL_CARE).await;
    let id = referral.referral_id.clone();
    list_referrals(&hospital, pb::ReferralDirection::Received, "").await;
    get_referral(&hospital, &id).await.unwrap();
    for action in [
        A::AcknowledgeDelivery,
        A::Accept,
        A::Start,
        A::ReportConnected,
    ] {
        act(&hospital, &id, action).await.unwrap();
    }
    act(&kodomo, &id, A::Confirm).await.unwrap();
    let note = send_note(
        &kodomo,
        note_request(&case.case_id, &["hospital"], POSTNATAL_CARE, by_consent()),
    )
    .await
    .unwrap();
    acknowledge_note(&hospital, &note.note_id).await.unwrap();
    let events = all_events(&hospital).await;
    hospital
        .events()
        .ack_events(pb::AckEventsRequest {
            cursor: events.last().unwrap().cursor,
        })
        .await
        .unwrap();
    get_case(&hospital, &case.case_id).await.unwrap();
    case_thread(&kodomo, &case.case_id).await.unwrap();
    list_consents(&kodomo, &case.case_id).await.unwrap();
    follow_ups(&kodomo, "").await;
    list_cases(&kodomo).await;
    Loop {
        case_id: case.case_id,
        referral_id: id,
    }
}

/// Every audit record `client` may list under `request` that existed when it asked (all pages,
/// two records at a time so that paging is exercised too). Each page is itself audited, so the
/// listing stops at the head it started from rather than chase its own records.
async fn audit_of(client: &Hub, request: pb::ListAuditRecordsRequest) -> Vec<pb::AuditRecord> {
    let end = client
        .audit()
        .get_audit_head(pb::GetAuditHeadRequest::default())
        .await
        .unwrap()
        .into_inner()
        .sequence;
    let mut records: Vec<pb::AuditRecord> = Vec::new();
    let mut after = request.after_sequence;
    while after < end {
        let page = client
            .audit()
            .list_audit_records(pb::ListAuditRecordsRequest {
                after_sequence: after,
                limit: 2,
                ..request.clone()
            })
            .await
            .unwrap()
            .into_inner()
            .records;
        let Some(last) = page.last() else { break };
        after = last.sequence;
        records.extend(page.into_iter().filter(|r| r.sequence <= end));
    }
    records
}

/// Every audit record `client` may list about one case.
async fn audit_of_case(client: &Hub, case_id: &str) -> Vec<pb::AuditRecord> {
    audit_of(
        client,
        pb::ListAuditRecordsRequest {
            case_id: case_id.to_owned(),
            ..Default::default()
        },
    )
    .await
}

/// The calls a listing holds, as (agency, action, outcome), leaving out the audit listings
/// themselves (each listing about a case is a record about the case too).
fn summary(records: &[pb::AuditRecord]) -> Vec<(String, String, String)> {
    records
        .iter()
        .filter(|r| !r.action.starts_with("AuditService/"))
        .map(|r| (r.agency_id.clone(), r.action.clone(), r.outcome.clone()))
        .collect()
}

/// A protobuf timestamp `millis` milliseconds after the epoch.
fn at_millis(millis: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Every stored record, as the store keeps them.
async fn stored(hub: &TestHub) -> Vec<AuditRecord> {
    let mut tx = hub.store.read().await.unwrap();
    tx.audit_range(0, 100_000).await.unwrap()
}

async fn head(hub: &TestHub) -> ChainHead {
    hub.store.read().await.unwrap().audit_head().await.unwrap()
}

/// Checks the whole chain through the library, as `audit verify` does.
async fn verify(hub: &TestHub) -> ChainReport {
    let mut tx = hub.store.read().await.unwrap();
    verify_chain(&mut *tx, 1, None).await.unwrap()
}

/// What the real `tsunagu-hub audit verify --json <extra>` says about `database_url`: whether
/// it exited successfully, and its report.
async fn verify_with_binary(database_url: &str, extra: &[&str]) -> (bool, serde_json::Value) {
    let output = hub_binary(database_url, ["audit", "verify", "--json"], extra).await;
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {output:?}"));
    (output.status.success(), report)
}

/// Runs the real `tsunagu-hub` on `database_url` (off the runtime's threads: the hub under test
/// keeps serving meanwhile).
async fn hub_binary<const N: usize>(
    database_url: &str,
    args: [&str; N],
    extra: &[&str],
) -> std::process::Output {
    let url = database_url.to_owned();
    let args: Vec<String> = args
        .iter()
        .chain(extra)
        .map(|arg| (*arg).to_owned())
        .collect();
    tokio::task::spawn_blocking(move || {
        Command::new(workspace_binary("tsunagu-hub", "tsunagu-hub"))
            .env_remove("TSUNAGU_CONFIG")
            .env("TSUNAGU_DATABASE_URL", url)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// Asserts the binary found the chain broken at `sequence` and said so.
#[track_caller]
fn assert_broken_at((ok, report): &(bool, serde_json::Value), sequence: u64) {
    assert!(
        !ok,
        "verify exited successfully on a broken chain: {report}"
    );
    assert_eq!(report["intact"], false, "{report}");
    assert_eq!(report["broken"]["sequence"], sequence, "{report}");
    let reason = report["broken"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!("record {sequence} ")),
        "the reason names record {sequence}: {reason}"
    );
}

/// The hub's database opened directly, as someone holding its credentials could.
enum Database {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

/// Runs one statement built by `$query` (a `sqlx::query(..).bind(..)` expression) on either
/// backend; the rows it changed.
macro_rules! execute {
    ($db:expr, $query:expr) => {
        match $db {
            Database::Sqlite(connection) => $query
                .execute(&mut *connection)
                .await
                .map(|done| done.rows_affected()),
            Database::Postgres(connection) => $query
                .execute(&mut *connection)
                .await
                .map(|done| done.rows_affected()),
        }
    };
}

impl Database {
    async fn open(url: &str) -> Database {
        if url.starts_with("sqlite:") {
            use std::str::FromStr as _;
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .unwrap()
                .busy_timeout(Duration::from_secs(10));
            Database::Sqlite(
                sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .unwrap(),
            )
        } else {
            Database::Postgres(sqlx::PgConnection::connect(url).await.unwrap())
        }
    }

    /// Opens the database, checks that the table refuses edits, and drops the triggers that do:
    /// what an intruder with the database's credentials would do first.
    async fn of_intruder(url: &str) -> Database {
        let mut db = Database::open(url).await;
        let refused = execute!(
            &mut db,
            sqlx::query("UPDATE audit_records SET outcome = 'ok' WHERE sequence = 1")
        );
        assert!(
            refused
                .unwrap_err()
                .to_string()
                .contains("audit records are append-only"),
            "the audit table accepted an edit"
        );
        let refused = execute!(
            &mut db,
            sqlx::query("DELETE FROM audit_records WHERE sequence = 1")
        );
        assert!(refused.is_err(), "the audit table accepted a delete");
        let drops: &[&str] = match &db {
            Database::Sqlite(_) => &[
                "DROP TRIGGER audit_records_no_update",
                "DROP TRIGGER audit_records_no_delete",
            ],
            Database::Postgres(_) => &[
                "DROP TRIGGER audit_records_no_update_or_delete ON audit_records",
                "DROP TRIGGER audit_records_no_truncate ON audit_records",
            ],
        };
        for statement in drops {
            execute!(&mut db, sqlx::query(statement)).unwrap();
        }
        db
    }

    async fn set_text(&mut self, sequence: u64, column: &str, value: Option<String>) {
        let sql = format!("UPDATE audit_records SET {column} = $1 WHERE sequence = $2");
        let changed = execute!(
            self,
            sqlx::query(&sql).bind(value.clone()).bind(sequence as i64)
        )
        .unwrap();
        assert_eq!(changed, 1);
    }

    async fn set_at(&mut self, sequence: u64, millis: i64) {
        let changed = execute!(
            self,
            sqlx::query("UPDATE audit_records SET recorded_at = $1 WHERE sequence = $2")
                .bind(millis)
                .bind(sequence as i64)
        )
        .unwrap();
        assert_eq!(changed, 1);
    }

    async fn set_hash(&mut self, sequence: u64, hash: &[u8]) {
        let changed = execute!(
            self,
            sqlx::query("UPDATE audit_records SET hash = $1 WHERE sequence = $2")
                .bind(hash.to_vec())
                .bind(sequence as i64)
        )
        .unwrap();
        assert_eq!(changed, 1);
    }

    /// Puts everything of `record` but its sequence number into the row at `sequence`.
    async fn overwrite(&mut self, sequence: u64, record: &AuditRecord) {
        let e = &record.entry;
        for (column, value) in [
            ("agency_id", Some(e.agency_id.clone())),
            ("staff_name", e.staff_name.clone()),
            ("staff_role", e.staff_role.clone()),
            ("action", Some(e.action.clone())),
            ("municipality", e.municipality.clone()),
            ("case_id", e.case_id.clone()),
            ("referral_id", e.referral_id.clone()),
            ("note_id", e.note_id.clone()),
            ("consent_id", e.consent_id.clone()),
            ("basis", e.basis.clone()),
            ("outcome", Some(e.outcome.clone())),
        ] {
            self.set_text(sequence, column, value).await;
        }
        self.set_at(sequence, e.at.millis()).await;
        self.set_hash(sequence, &record.hash).await;
    }

    async fn delete(&mut self, sequence: u64) {
        let changed = execute!(
            self,
            sqlx::query("DELETE FROM audit_records WHERE sequence = $1").bind(sequence as i64)
        )
        .unwrap();
        assert_eq!(changed, 1);
    }
}

/// `text` with one byte changed (its last, an ASCII character in every id and code).
fn one_byte_off(text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let last = bytes.last_mut().expect("a non-empty value");
    assert!(last.is_ascii_alphanumeric() || *last == b'_', "{text}");
    *last = if *last == b'x' { b'y' } else { b'x' };
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn after_a_full_referral_loop_the_audit_chain_verifies() {
    let hub = TestHub::start().await;
    let before = head(&hub).await;
    assert_eq!(
        before,
        ChainHead::GENESIS,
        "the test hub starts with no records"
    );
    let done = referral_loop(&hub).await;

    let records = stored(&hub).await;
    assert!(records.len() >= 20, "{} records", records.len());
    assert!(
        records.iter().all(|r| r.entry.outcome == "ok"),
        "nothing in the loop was refused"
    );
    let actions: Vec<&str> = records.iter().map(|r| r.entry.action.as_str()).collect();
    for action in [
        "CaseService/OpenCase",
        "CaseService/RecordConsent",
        "ReferralService/SendReferral",
        "ReferralService/ListReferrals",
        "ReferralService/GetReferral",
        "ReferralService/RecordReferralAction",
        "ReferralService/SendNote",
        "ReferralService/AcknowledgeNote",
        "EventService/ListEvents",
        "EventService/AckEvents",
        "CaseService/GetCase",
        "CaseService/GetCaseThread",
        "CaseService/ListConsents",
        "ReferralService/FollowUps",
        "CaseService/ListCases",
    ] {
        assert!(actions.contains(&action), "no record of {action}");
    }
    // The send is recorded with who, which case and referral, and under which basis.
    let send = records
        .iter()
        .find(|r| r.entry.action == "ReferralService/SendReferral")
        .unwrap();
    assert_eq!(send.entry.agency_id, "kodomo");
    assert_eq!(send.entry.staff_name.as_deref(), Some("保健師 山田"));
    assert_eq!(send.entry.case_id.as_deref(), Some(done.case_id.as_str()));
    assert_eq!(
        send.entry.referral_id.as_deref(),
        Some(done.referral_id.as_str())
    );
    assert_eq!(send.entry.basis.as_deref(), Some("consent"));
    assert_eq!(send.entry.municipality.as_deref(), Some(MUNICIPALITY));

    // The library and the real binary agree that the chain is intact, up to the head the hub
    // publishes.
    let report = verify(&hub).await;
    assert_eq!(report.broken, None);
    assert_eq!(report.checked, records.len() as u64);
    let (ok, json) = verify_with_binary(&hub.database.url, &[]).await;
    assert!(ok, "{json}");
    assert_eq!(json["intact"], true);
    assert_eq!(json["checked"], records.len() as u64);

    let kodomo = hub.client("kodomo").await;
    let published = kodomo
        .audit()
        .get_audit_head(pb::GetAuditHeadRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.sequence, records.len() as u64);
    assert_eq!(published.hash, report.head.hash_hex());
    assert_eq!(json["head"]["hash"], published.hash);
    let printed = hub_binary(&hub.database.url, ["audit", "head"], &[]).await;
    assert!(printed.status.success(), "{printed:?}");
    assert_eq!(
        String::from_utf8(printed.stdout).unwrap().trim(),
        format!("{}:{}", published.sequence, published.hash)
    );
    // Checking from a later record works too.
    let (ok, json) = verify_with_binary(&hub.database.url, &["--from", "5"]).await;
    assert!(ok, "{json}");
    assert_eq!(json["checked"], records.len() as u64 - 4);
    hub.stop().await;
}

#[tokio::test]
async fn editing_one_byte_of_any_record_is_detected_with_its_sequence_number() {
    let hub = TestHub::start().await;
    referral_loop(&hub).await;
    let records = stored(&hub).await;
    let mut db = Database::of_intruder(&hub.database.url).await;

    for record in &records {
        let sequence = record.sequence;
        let e = &record.entry;
        // A different field each time, among those every kind of record has or this one has.
        let candidates: Vec<(&str, Option<&String>)> = vec![
            ("agency_id", Some(&e.agency_id)),
            ("action", Some(&e.action)),
            ("outcome", Some(&e.outcome)),
            ("case_id", e.case_id.as_ref()),
            ("referral_id", e.referral_id.as_ref()),
            ("note_id", e.note_id.as_ref()),
            ("consent_id", e.consent_id.as_ref()),
            ("basis", e.basis.as_ref()),
            ("municipality", e.municipality.as_ref()),
        ];
        let present: Vec<_> = candidates
            .into_iter()
            .filter_map(|(column, value)| value.map(|value| (column, value)))
            .collect();
        let what = match sequence % 3 {
            0 => "recorded_at",
            1 => "hash",
            _ => present[(sequence as usize / 3) % present.len()].0,
        };
        for edited in [true, false] {
            match what {
                "recorded_at" => {
                    let millis = e.at.millis() + i64::from(edited);
                    db.set_at(sequence, millis).await;
                }
                "hash" => {
                    let mut hash = record.hash.clone();
                    hash[31] ^= u8::from(edited);
                    db.set_hash(sequence, &hash).await;
                }
                column => {
                    let (_, value) = present.iter().find(|(c, _)| *c == column).unwrap();
                    let value = if edited {
                        one_byte_off(value)
                    } else {
                        (*value).clone()
                    };
                    db.set_text(sequence, column, Some(value)).await;
                }
            }
            let report = verify(&hub).await;
            if edited {
                assert_eq!(
                    report.broken,
                    Some(ChainBreak::Altered { sequence }),
                    "editing {what} of record {sequence}"
                );
                assert_eq!(report.checked, sequence - 1);
            } else {
                assert_eq!(report.broken, None, "restored {what} of record {sequence}");
            }
        }
    }

    // And through the real binary, on a record in the middle.
    let middle = &records[records.len() / 2];
    db.set_text(
        middle.sequence,
        "agency_id",
        Some(one_byte_off(&middle.entry.agency_id)),
    )
    .await;
    let verdict = verify_with_binary(&hub.database.url, &[]).await;
    assert_broken_at(&verdict, middle.sequence);
    assert!(
        verdict.1["broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("does not match its hash"),
        "{}",
        verdict.1
    );
    hub.stop().await;
}

#[tokio::test]
async fn deleting_a_record_is_detected_with_its_sequence_number() {
    let hub = TestHub::start().await;
    referral_loop(&hub).await;
    let records = stored(&hub).await;
    let victim = records[records.len() / 3].sequence;
    let mut db = Database::of_intruder(&hub.database.url).await;
    db.delete(victim).await;

    let verdict = verify_with_binary(&hub.database.url, &[]).await;
    assert_broken_at(&verdict, victim);
    assert!(
        verdict.1["broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("missing"),
        "{}",
        verdict.1
    );
    assert_eq!(verdict.1["checked"], victim - 1);
    // The first record is not special.
    db.delete(1).await;
    assert_broken_at(&verify_with_binary(&hub.database.url, &[]).await, 1);
    hub.stop().await;
}

#[tokio::test]
async fn swapping_two_records_is_detected_with_the_sequence_number_of_the_first() {
    let hub = TestHub::start().await;
    referral_loop(&hub).await;
    let records = stored(&hub).await;
    let (first, second) = (&records[4], &records[9]);
    let mut db = Database::of_intruder(&hub.database.url).await;
    // Rows keep their sequence numbers (the key); everything else, hashes included, trades
    // places.
    db.overwrite(first.sequence, second).await;
    db.overwrite(second.sequence, first).await;

    assert_broken_at(
        &verify_with_binary(&hub.database.url, &[]).await,
        first.sequence,
    );
    // Neighbours swapped are caught the same way.
    db.overwrite(first.sequence, first).await;
    db.overwrite(second.sequence, second).await;
    assert!(verify_with_binary(&hub.database.url, &[]).await.0);
    let (a, b) = (&records[12], &records[13]);
    db.overwrite(a.sequence, b).await;
    db.overwrite(b.sequence, a).await;
    assert_broken_at(
        &verify_with_binary(&hub.database.url, &[]).await,
        a.sequence,
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_history_rewritten_or_cut_short_after_its_head_was_published_is_caught_by_the_head() {
    let hub = TestHub::start().await;
    referral_loop(&hub).await;
    // An agency kept the head the hub published.
    let kodomo = hub.client("kodomo").await;
    let published = kodomo
        .audit()
        .get_audit_head(pb::GetAuditHeadRequest::default())
        .await
        .unwrap()
        .into_inner();
    let kept = format!("{}:{}", published.sequence, published.hash);
    let records = stored(&hub).await;

    // Someone makes record 6 say the call was refused, and recomputes every hash after it so
    // that the chain is consistent again.
    let mut db = Database::of_intruder(&hub.database.url).await;
    db.set_text(6, "outcome", Some("PERMISSION_DENIED".to_owned()))
        .await;
    let mut previous = ChainHead::of(&records[4]).unwrap();
    for original in &records[5..] {
        let mut entry = original.entry.clone();
        if original.sequence == 6 {
            entry.outcome = "PERMISSION_DENIED".to_owned();
        }
        let rewritten = chain(entry, &previous);
        assert_eq!(rewritten.sequence, original.sequence);
        db.set_hash(rewritten.sequence, &rewritten.hash).await;
        previous = ChainHead::of(&rewritten).unwrap();
    }
    let (ok, json) = verify_with_binary(&hub.database.url, &[]).await;
    assert!(ok, "a consistent rewrite passes on its own: {json}");
    // The head kept from before exposes it.
    let verdict = verify_with_binary(&hub.database.url, &["--expect-head", &kept]).await;
    assert_broken_at(&verdict, published.sequence);
    assert!(
        verdict.1["broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("rewritten"),
        "{}",
        verdict.1
    );

    // Put the original history back, then cut its last two records off.
    db.set_text(6, "outcome", Some(records[5].entry.outcome.clone()))
        .await;
    for original in &records[5..] {
        db.set_hash(original.sequence, &original.hash).await;
    }
    assert!(
        verify_with_binary(&hub.database.url, &["--expect-head", &kept])
            .await
            .0
    );
    let last = published.sequence;
    db.delete(last).await;
    db.delete(last - 1).await;
    assert!(verify_with_binary(&hub.database.url, &[]).await.0);
    let verdict = verify_with_binary(&hub.database.url, &["--expect-head", &kept]).await;
    assert_broken_at(&verdict, last - 1);
    hub.stop().await;
}

#[tokio::test]
async fn a_refused_access_attempt_appears_in_the_audit_with_its_code() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let chiyoda = hub.client("chiyoda").await;
    let hospital = hub.client("hospital").await;
    let case = open_case(&kodomo).await;

    // An agency of another municipality tries to read the case.
    assert_refused(
        get_case(&chiyoda, &case.case_id).await,
        Code::PermissionDenied,
        &[],
    );
    // The hospital, not (yet) taking part, tries to refer without any basis.
    let refused = send_referral(
        &hospital,
        &case.case_id,
        "nursery",
        NURSERY_ADMISSION,
        by_consent(),
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");
    let refused_code = refused.unwrap_err().code();
    // kodomo refers without consent: FAILED_PRECONDITION, and nothing of it is stored.
    let refused = send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        POSTNATAL_CARE,
        by_consent(),
    )
    .await;
    assert_refused(refused, Code::FailedPrecondition, &[]);
    // A malformed request is refused too, and recorded with what it named that parsed.
    assert_invalid(
        send(
            &kodomo,
            pb::SendReferralRequest {
                purpose: "Not A Purpose".to_owned(),
                ..referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent())
            },
        )
        .await,
        "purpose",
    );

    let seen = audit_of_case(&kodomo, &case.case_id).await;
    let denied = seen
        .iter()
        .find(|r| r.agency_id == "chiyoda")
        .expect("kodomo sees chiyoda's refused attempt on its case");
    assert_eq!(denied.action, "CaseService/GetCase");
    assert_eq!(denied.outcome, "PERMISSION_DENIED");
    assert_eq!(denied.case_id, case.case_id);
    let hospital_attempt = seen
        .iter()
        .find(|r| r.agency_id == "hospital")
        .expect("the hospital's refused referral is on the case's audit");
    assert_eq!(
        hospital_attempt.outcome,
        tsunagu_hub::casework::audit::code_name(refused_code)
    );
    let outcomes: Vec<&str> = seen
        .iter()
        .filter(|r| r.agency_id == "kodomo" && r.action == "ReferralService/SendReferral")
        .map(|r| r.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["FAILED_PRECONDITION", "INVALID_ARGUMENT"]);
    // A refusal carries what the request named, never what the refused write would have made.
    for record in seen.iter().filter(|r| r.outcome != "ok") {
        assert_eq!(record.referral_id, "", "{record:?}");
        assert_eq!(record.note_id, "", "{record:?}");
    }
    let no_basis = seen
        .iter()
        .find(|r| r.outcome == "FAILED_PRECONDITION")
        .unwrap();
    assert_eq!(no_basis.basis, pb::LegalBasisKind::Consent as i32);
    assert_eq!(no_basis.staff.as_ref().unwrap().name, "保健師 山田");
    assert!(referral_ids(&kodomo).await.is_empty());

    // The one refused also sees its own attempt.
    let own = audit_of(&chiyoda, pb::ListAuditRecordsRequest::default()).await;
    assert!(
        own.iter()
            .any(|r| r.action == "CaseService/GetCase" && r.outcome == "PERMISSION_DENIED"),
        "{own:?}"
    );
    // A refused case opening names the municipality it tried, and no case.
    assert_refused(
        try_open_case(&chiyoda, open_case_request(MUNICIPALITY)).await,
        Code::PermissionDenied,
        &[],
    );
    let records = stored(&hub).await;
    let opening = records.last().unwrap();
    assert_eq!(opening.entry.action, "CaseService/OpenCase");
    assert_eq!(opening.entry.outcome, "PERMISSION_DENIED");
    assert_eq!(opening.entry.case_id, None);
    assert_eq!(opening.entry.municipality.as_deref(), Some(MUNICIPALITY));
    // The municipality's coordinator sees that attempt.
    let coordinator_view = audit_of(
        &kodomo,
        pb::ListAuditRecordsRequest {
            municipality: MUNICIPALITY.to_owned(),
            ..Default::default()
        },
    )
    .await;
    assert!(
        coordinator_view
            .iter()
            .any(|r| r.sequence == opening.sequence && r.agency_id == "chiyoda"),
        "{coordinator_view:?}"
    );
    assert_eq!(verify(&hub).await.broken, None);
    hub.stop().await;
}

#[tokio::test]
async fn each_call_on_case_data_leaves_exactly_one_record_and_other_calls_none() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let (case, _) = consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    let at = head(&hub).await.sequence;

    get_case(&kodomo, &case.case_id).await.unwrap();
    assert_eq!(head(&hub).await.sequence, at + 1);

    // Calls without case data leave nothing, and reading the head does not move it.
    kodomo
        .directory()
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .unwrap();
    kodomo
        .directory()
        .list_agencies(pb::ListAgenciesRequest::default())
        .await
        .unwrap();
    for _ in 0..2 {
        let published = kodomo
            .audit()
            .get_audit_head(pb::GetAuditHeadRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(published.sequence, at + 1);
    }
    assert_eq!(head(&hub).await.sequence, at + 1);

    // A write and its retry under the same key: one referral, two records (two calls).
    let request = referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent());
    let first = send(&kodomo, request.clone()).await.unwrap();
    let again = send(&kodomo, request).await.unwrap();
    assert_eq!(first.referral_id, again.referral_id);
    assert_eq!(referral_ids(&kodomo).await.len(), 1);
    let records = stored(&hub).await;
    let sends: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| r.entry.action == "ReferralService/SendReferral")
        .collect();
    assert_eq!(sends.len(), 2);
    assert_eq!(
        sends[0].entry.referral_id.as_deref(),
        Some(first.referral_id.as_str())
    );
    assert!(sends.iter().all(|r| r.entry.outcome == "ok"));

    // A subscription is one read of the feed, however many events it streams.
    let hospital = hub.client("hospital").await;
    let before = head(&hub).await.sequence;
    let mut stream = hospital
        .events()
        .subscribe(pb::SubscribeRequest {
            after_cursor: 0,
            from_acknowledged: false,
        })
        .await
        .unwrap()
        .into_inner();
    let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(event.referral_id, first.referral_id);
    drop(stream);
    let after = stored(&hub).await;
    assert_eq!(after.len() as u64, before + 1);
    assert_eq!(after.last().unwrap().entry.action, "EventService/Subscribe");
    assert_eq!(after.last().unwrap().entry.agency_id, "hospital");

    // Listing the audit is itself audited.
    audit_of_case(&kodomo, &case.case_id).await;
    assert_eq!(
        stored(&hub).await.last().unwrap().entry.action,
        "AuditService/ListAuditRecords"
    );
    assert_eq!(verify(&hub).await.broken, None);
    hub.stop().await;
}

#[tokio::test]
async fn agencies_list_their_own_records_and_their_cases_and_coordinators_their_municipality() {
    let hub = TestHub::start().await;
    let hospital = hub.client("hospital").await;
    let nursery = hub.client("nursery").await;
    let kodomo = hub.client("kodomo").await;
    let hiroba = hub.client("hiroba").await;
    let chiyoda = hub.client("chiyoda").await;
    // The hospital's case, shared with the nursery; kodomo takes no part but coordinates 141178.
    let (case, referral) =
        referred_case(&*hub.clock, &hospital, "nursery", NURSERY_ADMISSION).await;
    let cut = hub.clock.now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    act(&nursery, &referral.referral_id, A::AcknowledgeDelivery)
        .await
        .unwrap();
    list_cases(&hiroba).await;
    let chiyoda_case = try_open_case(&chiyoda, open_case_request(OTHER_MUNICIPALITY))
        .await
        .unwrap();

    let expected = vec![
        (
            "hospital".to_owned(),
            "CaseService/OpenCase".to_owned(),
            "ok".to_owned(),
        ),
        (
            "hospital".to_owned(),
            "CaseService/RecordConsent".to_owned(),
            "ok".to_owned(),
        ),
        (
            "hospital".to_owned(),
            "ReferralService/SendReferral".to_owned(),
            "ok".to_owned(),
        ),
        (
            "nursery".to_owned(),
            "ReferralService/RecordReferralAction".to_owned(),
            "ok".to_owned(),
        ),
    ];
    // Participants, and the coordinator of the municipality, see the case's records.
    assert_eq!(
        summary(&audit_of_case(&nursery, &case.case_id).await),
        expected
    );
    assert_eq!(
        summary(&audit_of_case(&hospital, &case.case_id).await),
        expected
    );
    assert_eq!(
        summary(&audit_of_case(&kodomo, &case.case_id).await),
        expected
    );
    // Others see nothing of it.
    assert!(audit_of_case(&hiroba, &case.case_id).await.is_empty());
    assert!(audit_of_case(&chiyoda, &case.case_id).await.is_empty());
    // Without a filter: hiroba sees only its own calls (and its own audit listings), chiyoda its
    // own and its own municipality's, the coordinator its municipality's.
    let hiroba_all = audit_of(&hiroba, Default::default()).await;
    assert!(
        hiroba_all.iter().all(|r| r.agency_id == "hiroba"),
        "{hiroba_all:?}"
    );
    assert!(
        hiroba_all
            .iter()
            .any(|r| r.action == "CaseService/ListCases")
    );
    let chiyoda_all = audit_of(&chiyoda, Default::default()).await;
    assert!(
        chiyoda_all.iter().all(|r| r.agency_id == "chiyoda"),
        "{chiyoda_all:?}"
    );
    assert!(
        chiyoda_all
            .iter()
            .any(|r| r.case_id == chiyoda_case.case_id)
    );
    let kodomo_all = audit_of(&kodomo, Default::default()).await;
    assert!(kodomo_all.iter().all(|r| r.case_id != chiyoda_case.case_id));
    // hiroba's own listing of cases is its business; its look at the case's audit trail is the
    // case's too.
    assert!(
        kodomo_all
            .iter()
            .all(|r| r.agency_id != "hiroba" || r.case_id == case.case_id),
        "{kodomo_all:?}"
    );
    assert!(kodomo_all.iter().any(|r| r.agency_id == "hiroba"
        && r.action == "AuditService/ListAuditRecords"
        && r.case_id == case.case_id));
    let sequences: Vec<u64> = kodomo_all.iter().map(|r| r.sequence).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");

    // Filters by time range and municipality.
    let until_cut = audit_of(
        &kodomo,
        pb::ListAuditRecordsRequest {
            case_id: case.case_id.clone(),
            until: Some(at_millis(cut.millis() + 1)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(summary(&until_cut), expected[..3]);
    let from_cut = audit_of(
        &kodomo,
        pb::ListAuditRecordsRequest {
            case_id: case.case_id.clone(),
            from: Some(at_millis(cut.millis() + 1)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(summary(&from_cut), expected[3..]);
    let elsewhere = audit_of(
        &kodomo,
        pb::ListAuditRecordsRequest {
            municipality: OTHER_MUNICIPALITY.to_owned(),
            ..Default::default()
        },
    )
    .await;
    assert!(elsewhere.is_empty(), "{elsewhere:?}");
    // Malformed filters are refused, and the refusal recorded.
    let refused = kodomo
        .audit()
        .list_audit_records(pb::ListAuditRecordsRequest {
            case_id: "not-a-case".to_owned(),
            ..Default::default()
        })
        .await;
    assert_invalid(refused, "case_id");
    assert_eq!(
        stored(&hub).await.last().unwrap().entry.outcome,
        "INVALID_ARGUMENT"
    );
    hub.stop().await;
}

#[tokio::test]
async fn the_reporter_of_an_abuse_notification_is_hidden_in_audit_listings_but_from_its_recipient()
{
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
    let report = send_referral(
        &hospital,
        &case.case_id,
        "jisou",
        CHILD_PROTECTION,
        basis(
            pb::LegalBasisKind::AbuseNotification,
            "乳児に説明のつかない打撲痕",
        ),
    )
    .await
    .unwrap();
    act(&jisou, &report.referral_id, A::Accept).await.unwrap();
    send_referral(
        &kodomo,
        &case.case_id,
        "nursery",
        NURSERY_ADMISSION,
        by_consent(),
    )
    .await
    .unwrap();
    // The reporter reads its own report again: another record about the report.
    get_referral(&hospital, &report.referral_id).await.unwrap();

    let is_report = |r: &&pb::AuditRecord| r.referral_id == report.referral_id;
    // The agency the notification went to sees who reported, and so does the reporter.
    for (name, client) in [("jisou", &jisou), ("hospital", &hospital)] {
        let seen = audit_of_case(client, &case.case_id).await;
        let send = seen
            .iter()
            .filter(is_report)
            .find(|r| r.action == "ReferralService/SendReferral")
            .unwrap_or_else(|| panic!("{name} sees the report's record"));
        assert_eq!(send.agency_id, "hospital", "{name}");
        assert!(!send.agency_hidden, "{name}");
        assert_eq!(send.staff.as_ref().unwrap().name, "保健師 山田", "{name}");
        assert_eq!(send.hash.len(), 64, "{name}");
        assert_eq!(send.basis, pb::LegalBasisKind::AbuseNotification as i32);
    }
    // Every other participant, and the coordinator, sees the calls but never the reporter.
    for (name, client) in [("kodomo", &kodomo), ("nursery", &nursery)] {
        let seen = audit_of_case(client, &case.case_id).await;
        let about_report: Vec<&pb::AuditRecord> = seen.iter().filter(is_report).collect();
        if name == "kodomo" {
            // The coordinator sees the records about the report (as it sees the report)...
            assert!(
                about_report
                    .iter()
                    .any(|r| r.action == "ReferralService/SendReferral"),
                "{seen:?}"
            );
            // ... the recipient's acceptance with its agency ...
            assert!(
                about_report
                    .iter()
                    .any(|r| r.agency_id == "jisou" && r.outcome == "ok"),
                "{about_report:?}"
            );
        }
        for record in &seen {
            assert_ne!(record.agency_id, "hospital", "{name}: {record:?}");
            if record.agency_hidden {
                assert_eq!(record.agency_id, "", "{name}");
                assert_eq!(record.staff, None, "{name}");
                assert_eq!(
                    record.hash, "",
                    "{name}: the hash would give the reporter away"
                );
            }
        }
        // ... with the reporter's own records hidden rather than dropped.
        let hidden = seen.iter().filter(|r| r.agency_hidden).count();
        assert!(hidden >= 2, "{name}: {hidden} hidden records");
    }
    hub.stop().await;
}

#[test]
fn after_the_demo_loop_the_served_hubs_audit_verifies_and_an_edit_is_named() {
    let hub_binary = workspace_binary("tsunagu-hub", "tsunagu-hub");
    let dir = tempfile::tempdir().unwrap();
    let made = Command::new(&hub_binary)
        .current_dir(dir.path())
        .args(["certs", "dev", "--dir", "certs-dev"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let port = free_port();
    let mut served = ChildGuard(
        Command::new(&hub_binary)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TSUNAGU_LISTEN", format!("127.0.0.1:{port}"))
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, &mut served.0);

    let demo = tsunagu(dir.path(), port, &["demo"]);
    assert!(demo.status.success(), "{demo:?}");

    // The coordinator's view of the loop, through the CLI, as JSON and as a table.
    let listed = tsunagu(
        dir.path(),
        port,
        &["--as", "aoba-kodomo", "--json", "audit", "--limit", "1000"],
    );
    assert!(listed.status.success(), "{listed:?}");
    let records: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let records = records.as_array().unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "ReferralService/SendReferral" && r["outcome"] == "ok"),
        "{records:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["agency_id"] == "aoba-hospital" && r["basis"] == "consent"),
        "{records:?}"
    );
    let table = tsunagu(dir.path(), port, &["--as", "aoba-kodomo", "audit"]);
    assert!(table.status.success(), "{table:?}");
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.starts_with("SEQ"), "{text}");
    assert!(text.contains("SendReferral"), "{text}");
    let head = tsunagu(dir.path(), port, &["--as", "aoba-kodomo", "audit", "head"]);
    assert!(head.status.success(), "{head:?}");
    let kept = String::from_utf8(head.stdout).unwrap().trim().to_owned();
    drop(served);

    let verify = |extra: &[&str]| {
        Command::new(&hub_binary)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .args(["audit", "verify"])
            .args(extra)
            .output()
            .unwrap()
    };
    let intact = verify(&["--expect-head", &kept]);
    assert!(intact.status.success(), "{intact:?}");
    let said = String::from_utf8(intact.stdout).unwrap();
    assert!(said.starts_with("audit chain intact"), "{said}");

    // One byte of one record changed in the served database file.
    let database = dir.path().join("data/tsunagu.db");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = format!("sqlite://{}", database.display());
        let mut db = Database::of_intruder(&url).await;
        let sql = "UPDATE audit_records SET outcome = 'oK' WHERE sequence = 7";
        assert_eq!(execute!(&mut db, sqlx::query(sql)).unwrap(), 1);
    });
    let broken = verify(&[]);
    assert!(!broken.status.success(), "{broken:?}");
    let said = String::from_utf8(broken.stdout).unwrap();
    assert!(
        said.starts_with("audit chain BROKEN at record 7:"),
        "{said}"
    );
    let complaint = String::from_utf8(broken.stderr).unwrap();
    assert!(complaint.contains("broken at record 7"), "{complaint}");
}

#[tokio::test]
async fn records_written_by_another_writer_never_fork_the_chain() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let case = open_case(&kodomo).await;
    // Another writer (another hub instance on the same database) appends behind this hub's
    // back, so the head this hub expects is stale.
    {
        let mut entry = stored(&hub).await[0].entry.clone();
        entry.action = "CaseService/GetCase".to_owned();
        hub.store
            .write(Locking::Exclusive, move |tx| {
                Box::pin(async move { tx.append_audit(&entry).await })
            })
            .await
            .unwrap();
    }
    get_case(&kodomo, &case.case_id).await.unwrap();
    get_case(&kodomo, &case.case_id).await.unwrap();
    let records = stored(&hub).await;
    let sequences: Vec<u64> = records.iter().map(|r| r.sequence).collect();
    assert_eq!(sequences, [1, 2, 3, 4]);
    assert_eq!(verify(&hub).await.broken, None);

    // Two real instances taking turns on a shared PostgreSQL database.
    if tsunagu_tests::postgres_url().is_some() {
        let other = hub.another_instance().await;
        let kodomo_there = hub.client_of(&other, "kodomo").await;
        for turn in 0..6 {
            let client = if turn % 2 == 0 {
                &kodomo
            } else {
                &kodomo_there
            };
            get_case(client, &case.case_id).await.unwrap();
        }
        let report = verify(&hub).await;
        assert_eq!(report.broken, None);
        assert_eq!(report.checked, 10);
    }
    hub.stop().await;
}

/// One agency's remembered head, kept in `dir` as the CLI keeps it.
fn watch_in(dir: &std::path::Path) -> HeadWatch {
    HeadWatch::load(&HeadWatch::path_for(&dir.join("known_keys/kodomo.toml"))).unwrap()
}

#[tokio::test]
async fn a_client_that_saw_head_n_refuses_a_hub_whose_newest_records_were_deleted_even_after_it_grew_again()
 {
    let hub = TestHub::start().await;
    referral_loop(&hub).await;
    let state = tempfile::tempdir().unwrap();
    let kodomo = hub.client("kodomo").await;

    // The first head pins the hub's key; later heads extend it as the log grows.
    let mut watch = watch_in(state.path());
    let first = watch.check(&kodomo).await.unwrap();
    let HeadCheck::FirstSeen {
        sequence: first, ..
    } = first
    else {
        panic!("{first:?}")
    };
    audit_of(&kodomo, pb::ListAuditRecordsRequest::default()).await;
    let mut watch = watch_in(state.path());
    let seen = match watch.check(&kodomo).await.unwrap() {
        HeadCheck::Extends { from, to } => {
            assert_eq!(from, first);
            assert!(to > from, "{from} -> {to}");
            to
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(seen, head(&hub).await.sequence);

    // Someone with the database's credentials cuts the two newest records off, and the hub is
    // started again on the same database and key.
    let mut db = Database::of_intruder(&hub.database.url).await;
    db.delete(seen).await;
    db.delete(seen - 1).await;
    assert!(
        verify(&hub).await.broken.is_none(),
        "the cut is invisible to verify"
    );
    let restarted = hub.another_instance().await;
    let kodomo = hub.client_of(&restarted, "kodomo").await;
    let refused = watch_in(state.path()).check(&kodomo).await.unwrap_err();
    assert!(
        matches!(refused, ClientError::AuditRollback { remembered, .. } if remembered == seen),
        "{refused}"
    );
    let said = refused.to_string();
    assert!(
        said.contains("rolled back") && said.contains("contact the hub operator"),
        "{said}"
    );
    assert!(said.contains("ハブの運用者に連絡してください"), "{said}");
    assert!(
        said.contains(&format!("its newest record is now {}", seen - 2)),
        "{said}"
    );

    // The log grows past where it was: record `seen` exists again, but it is another record.
    for _ in 0..3 {
        audit_of(&kodomo, pb::ListAuditRecordsRequest::default()).await;
    }
    assert!(head(&hub).await.sequence > seen);
    let refused = watch_in(state.path()).check(&kodomo).await.unwrap_err();
    let said = refused.to_string();
    assert!(
        matches!(refused, ClientError::AuditRollback { .. })
            && said.contains(&format!("its record {seen} is now another one")),
        "{said}"
    );
    // Refusing remembered nothing: the profile still holds the head it saw.
    assert_eq!(watch_in(state.path()).remembered().unwrap().sequence, seen);
    // A profile that never saw the old head has nothing to compare with.
    assert!(matches!(
        HeadWatch::in_memory().check(&kodomo).await.unwrap(),
        HeadCheck::FirstSeen { .. }
    ));
    drop(restarted);
    hub.stop().await;
}

#[tokio::test]
async fn a_hub_signing_with_another_key_is_refused_by_a_client_that_pinned_the_first() {
    let hub = TestHub::start().await;
    let state = tempfile::tempdir().unwrap();
    let kodomo = hub.client("kodomo").await;
    watch_in(state.path()).check(&kodomo).await.unwrap();
    let pinned = watch_in(state.path())
        .remembered()
        .unwrap()
        .signing_key
        .clone();
    let served = kodomo
        .audit()
        .get_audit_head(pb::GetAuditHeadRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        served.signing_key, pinned,
        "the key is published with the head"
    );

    // The same database served with another key (the key file replaced).
    let mut settings = hub.settings.clone();
    let other_key = state.path().join("other.key");
    settings.audit_signing_key = Some(other_key);
    settings.listen = "127.0.0.1:0".parse().unwrap();
    let other = tsunagu_hub::Application::build(settings).await.unwrap();
    let addr = other.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(other.run_until(async {
        let _ = stopped.await;
    }));
    let certificate = hub.pki.agency_certificate("kodomo");
    let kodomo = Hub::connect(&hub.pki.connect_options(addr, Some(&certificate)))
        .await
        .unwrap();
    let refused = watch_in(state.path()).check(&kodomo).await.unwrap_err();
    assert!(
        matches!(refused, ClientError::AuditKeyChanged { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("運用者"), "{refused}");
    let _ = stop.send(());
    let _ = served.await;
    hub.stop().await;
}

#[test]
fn the_cli_refuses_a_hub_restarted_on_an_older_copy_of_its_database() {
    let hub_binary = workspace_binary("tsunagu-hub", "tsunagu-hub");
    let dir = tempfile::tempdir().unwrap();
    let made = Command::new(&hub_binary)
        .current_dir(dir.path())
        .args(["certs", "dev", "--dir", "certs-dev"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let port = free_port();
    let serve = || {
        let mut served = ChildGuard(
            Command::new(&hub_binary)
                .current_dir(dir.path())
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("TSUNAGU_LISTEN", format!("127.0.0.1:{port}"))
                .arg("serve")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for_port(port, &mut served.0);
        served
    };
    let data = dir.path().join("data");
    let files = ["tsunagu.db", "tsunagu.db-wal", "tsunagu.db-shm"];
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        for file in files {
            let _ = std::fs::remove_file(to.join(file));
            if from.join(file).exists() {
                std::fs::copy(from.join(file), to.join(file)).unwrap();
            }
        }
    };
    let cli = |agency: &str, args: &[&str]| {
        let mut all = vec!["--as", agency];
        all.extend_from_slice(args);
        tsunagu(dir.path(), port, &all)
    };

    let served = serve();
    let demo = tsunagu(dir.path(), port, &["demo"]);
    assert!(demo.status.success(), "{demo:?}");
    drop(served);
    // The operator's backup, taken while the hub was down.
    let backup = dir.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    copy(&data, &backup);

    // Work goes on; aoba-kodomo's CLI sees (and remembers) the newer head.
    let served = serve();
    let listed = cli("aoba-kodomo", &["audit"]);
    assert!(listed.status.success(), "{listed:?}");
    let head = cli("aoba-kodomo", &["audit", "head"]);
    assert!(head.status.success(), "{head:?}");
    let seen: u64 = String::from_utf8(head.stdout.clone())
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let said = String::from_utf8(head.stderr).unwrap();
    assert!(said.contains("signed by the hub's audit key"), "{said}");
    drop(served);

    // The published key is the operator's.
    let operator = Command::new(&hub_binary)
        .current_dir(dir.path())
        .env_clear()
        .args(["audit", "head", "--json"])
        .output()
        .unwrap();
    assert!(operator.status.success(), "{operator:?}");
    let operator: serde_json::Value = serde_json::from_slice(&operator.stdout).unwrap();
    let key = operator["signing_key"].as_str().unwrap().to_owned();
    let remembered = std::fs::read_to_string(
        dir.path()
            .join("state/tsunagu/known_keys/dev-aoba-kodomo.audit-head.toml"),
    )
    .unwrap();
    assert!(remembered.contains(&key), "{remembered}");

    // The older copy is put back and the hub restarted on it.
    copy(&backup, &data);
    let served = serve();
    let refused = cli("aoba-kodomo", &["audit", "head"]);
    assert!(!refused.status.success(), "{refused:?}");
    let said = String::from_utf8(refused.stderr).unwrap();
    assert!(
        said.contains("rolled back")
            && said.contains(&format!("record {seen}"))
            && said.contains("contact the hub operator")
            && said.contains("ハブの運用者に連絡してください"),
        "{said}"
    );
    // Every command is refused, not only `audit head`.
    let inbox = cli("aoba-kodomo", &["inbox"]);
    assert!(!inbox.status.success(), "{inbox:?}");
    assert!(
        String::from_utf8(inbox.stderr)
            .unwrap()
            .contains("rolled back")
    );
    // Another agency that never saw the newer head is not refused by this check.
    let other = cli("aoba-hospital", &["audit", "head"]);
    assert!(other.status.success(), "{other:?}");
    drop(served);
}
