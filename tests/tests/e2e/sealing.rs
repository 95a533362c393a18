//! End-to-end sealing: the key directory (PublishKey, RetireKey, ListKeys), fields sealed with
//! the client library exactly as the CLI seals them, and what the hub can and cannot see. Every
//! agency here makes its own age identity with `keys::init`; nothing reads certs-dev (except the
//! demo test, which makes a certs-dev of its own in a temporary directory).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use age::x25519::Identity;
use sqlx::Connection as _;
use tonic::Code;
use tsunagu_client::keys;
use tsunagu_client::seal::{load_identities, open_with};
use tsunagu_client::sealing::{Sealer, seal_for};
use tsunagu_client::trust::{KeyNotice, KnownKeys};
use tsunagu_client::{ClientError, Hub};
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::*;
use tsunagu_tests::{MUNICIPALITY, TestHub, tsunagu, workspace_binary};

use crate::operator::{ChildGuard, free_port, wait_for_port};

use pb::ReferralAction as A;

/// One agency of a test: its mTLS client, its age identity file (made with `keys::init`, which
/// publishes the recipient) and a sealer checking keys against its own known-keys file, as the
/// CLI builds them.
struct Party {
    id: &'static str,
    client: Hub,
    identity_file: PathBuf,
    sealer: Sealer,
}

impl Party {
    async fn new(hub: &TestHub, dir: &Path, id: &'static str) -> Party {
        let client = hub.client(id).await;
        let identity_file = dir.join(format!("{id}.age"));
        let made = keys::init(&client, &identity_file, false, &staff())
            .await
            .unwrap();
        assert_eq!(made.key.agency_id, id);
        let known = KnownKeys::load(&dir.join(format!("known_keys/{id}.toml"))).unwrap();
        let sealer = Sealer::new(&client).with_known_keys(known, false);
        Party {
            id,
            client,
            identity_file,
            sealer,
        }
    }

    /// Every identity of the agency's identity file (the current one first).
    fn identities(&self) -> Vec<Identity> {
        load_identities(&self.identity_file).unwrap()
    }

    /// Opens a sealed field with the agency's identity file.
    fn open(&self, sealed: Option<&pb::Sealed>) -> Result<String, ClientError> {
        let sealed = sealed.expect("a sealed field");
        open_with(&sealed.age, &self.identities())
            .map(|plaintext| String::from_utf8(plaintext).unwrap())
    }

    /// Seals `text` as the CLI does: for `to`, this agency and, for a 要対協 case, the coordinator.
    async fn seal(&mut self, text: &str, to: &[&str], case: Option<&pb::Case>) -> pb::Sealed {
        self.sealer.seal(text.as_bytes(), to, case).await.unwrap()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything the hub's database holds: the SQLite file with its WAL and shared-memory files as
/// raw bytes, or, on PostgreSQL, every row of every table read back as text (bytea columns show
/// as hex there, so both forms are searched by `assert_absent`).
pub(crate) async fn database_contents(hub: &TestHub) -> Vec<u8> {
    if let Some(path) = hub.database.url.strip_prefix("sqlite://") {
        let mut bytes = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            if let Ok(file) = std::fs::read(format!("{path}{suffix}")) {
                bytes.extend(file);
            }
        }
        assert!(!bytes.is_empty(), "no database file at {path}");
        return bytes;
    }
    let mut connection = sqlx::PgConnection::connect(&hub.database.url)
        .await
        .unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    assert!(tables.iter().any(|t| t == "referrals"), "{tables:?}");
    let mut bytes = Vec::new();
    for table in &tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM \"{table}\" t"))
            .fetch_all(&mut connection)
            .await
            .unwrap();
        for row in rows {
            bytes.extend(row.into_bytes());
            bytes.push(b'\n');
        }
    }
    bytes
}

/// Asserts the database holds `marker` neither as text nor as hex (a bytea column).
#[track_caller]
pub(crate) fn assert_absent(contents: &[u8], marker: &str) {
    assert!(
        !contents.is_empty() && !contains(contents, marker.as_bytes()),
        "the plaintext {marker:?} is in the database"
    );
    assert!(
        !contains(contents, hex(marker.as_bytes()).as_bytes()),
        "the plaintext {marker:?} is in the database as hex"
    );
}

/// Runs one SQL statement on the hub's database (either backend).
async fn execute(hub: &TestHub, sql: &str, bind: &str) {
    if hub.database.url.starts_with("sqlite:") {
        let mut connection = sqlx::SqliteConnection::connect(&hub.database.url)
            .await
            .unwrap();
        sqlx::query(sql)
            .bind(bind)
            .execute(&mut connection)
            .await
            .unwrap();
    } else {
        let mut connection = sqlx::PgConnection::connect(&hub.database.url)
            .await
            .unwrap();
        sqlx::query(sql)
            .bind(bind)
            .execute(&mut connection)
            .await
            .unwrap();
    }
}

/// Marks a case registered with the 要対協 directly in the database, as the council's
/// registration does (the key directory does not depend on how a case came to be registered).
async fn mark_council_registered(hub: &TestHub, case_id: &str) {
    execute(
        hub,
        "UPDATE cases SET council_registered = 1 WHERE case_id = $1",
        case_id,
    )
    .await;
}

async fn fetch_referral(client: &Hub, referral_id: &str) -> pb::Referral {
    get_referral(client, referral_id)
        .await
        .unwrap()
        .referral
        .unwrap()
}

#[tokio::test]
async fn no_plaintext_of_a_whole_referral_loop_reaches_the_database() {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut kodomo = Party::new(&hub, dir.path(), "kodomo").await;
    let mut hospital = Party::new(&hub, dir.path(), "hospital").await;
    let mut hiroba = Party::new(&hub, dir.path(), "hiroba").await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let marker = format!("TSUNAGU-PLAINTEXT-{run}");
    // A value the hub stores in the clear on purpose: finding it proves the search works.
    let visible = format!("VISIBLE-{run}");
    let text = |what: &str| format!("{marker} {what}: 氏名 青葉花子、産後うつの傾向あり");
    let staff = pb::Staff {
        name: visible.clone(),
        role: "保健師".to_owned(),
    };

    // The case, its header sealed for the agencies it will be shared with.
    let mut open = open_case_request(MUNICIPALITY);
    open.header = Some(
        kodomo
            .seal(&text("header"), &["hospital", "hiroba"], None)
            .await,
    );
    open.staff = Some(staff.clone());
    let case = try_open_case(&kodomo.client, open).await.unwrap();

    // Consent, with its evidence.
    let mut consent = consent_request(
        &case.case_id,
        &["hospital", "hiroba", "kodomo"],
        &[],
        &[POSTNATAL_CARE, HOME_VISIT_SUPPORT],
        &japan_date(hub.clock.as_ref(), 0),
        &japan_date(hub.clock.as_ref(), 365),
    );
    consent.evidence = Some(kodomo.seal(&text("evidence"), &[], Some(&case)).await);
    try_record_consent(&kodomo.client, consent).await.unwrap();

    // Two referrals.
    let mut sent = Vec::new();
    for (to, purpose) in [("hospital", POSTNATAL_CARE), ("hiroba", HOME_VISIT_SUPPORT)] {
        let mut request = referral_request(&case.case_id, to, purpose, by_consent());
        request.body = Some(
            kodomo
                .seal(&text(&format!("body to {to}")), &[to], Some(&case))
                .await,
        );
        sent.push(send(&kodomo.client, request).await.unwrap());
    }
    let (to_hospital, to_hiroba) = (&sent[0], &sent[1]);

    // The recipients act, with sealed notes on their actions.
    for (party, referral) in [(&mut hospital, to_hospital), (&mut hiroba, to_hiroba)] {
        let parties = ["kodomo", party.id];
        for action in [A::AcknowledgeDelivery, A::Accept, A::RecordContactAttempt] {
            let mut request = action_request(&referral.referral_id, action);
            request.note = Some(
                party
                    .seal(&text(&format!("{action:?} note")), &parties, Some(&case))
                    .await,
            );
            act_with(&party.client, request).await.unwrap();
        }
    }
    let mut connected = action_request(&to_hospital.referral_id, A::ReportConnected);
    connected.note = Some(
        hospital
            .seal(&text("connected note"), &["kodomo"], Some(&case))
            .await,
    );
    act_with(&hospital.client, connected).await.unwrap();
    let mut not_connected = not_connected_request(
        &to_hiroba.referral_id,
        pb::NotConnectedReason::CouldNotContact,
        "",
    );
    not_connected.note = Some(
        hiroba
            .seal(&text("not connected note"), &["kodomo"], Some(&case))
            .await,
    );
    act_with(&hiroba.client, not_connected).await.unwrap();
    let mut confirm = action_request(&to_hospital.referral_id, A::Confirm);
    confirm.note = Some(
        kodomo
            .seal(&text("confirm note"), &["hospital"], Some(&case))
            .await,
    );
    act_with(&kodomo.client, confirm).await.unwrap();

    // Notes on the case thread, each way, and an acknowledgement.
    let mut note = note_request(
        &case.case_id,
        &["hospital", "hiroba"],
        POSTNATAL_CARE,
        by_consent(),
    );
    note.body = Some(
        kodomo
            .seal(&text("thread note"), &["hospital", "hiroba"], Some(&case))
            .await,
    );
    let thread_note = send_note(&kodomo.client, note).await.unwrap();
    acknowledge_note(&hospital.client, &thread_note.note_id)
        .await
        .unwrap();
    let mut reply = note_request(&case.case_id, &["kodomo"], POSTNATAL_CARE, by_consent());
    reply.body = Some(
        hospital
            .seal(&text("reply note"), &["kodomo"], Some(&case))
            .await,
    );
    send_note(&hospital.client, reply).await.unwrap();

    // Everything opens for whom it was sealed to.
    let received = fetch_referral(&hospital.client, &to_hospital.referral_id).await;
    assert_eq!(
        hospital.open(received.body.as_ref()).unwrap(),
        text("body to hospital")
    );
    let thread = case_thread(&hiroba.client, &case.case_id).await.unwrap();
    let header = thread.case.as_ref().unwrap().header.as_ref();
    assert_eq!(hiroba.open(header).unwrap(), text("header"));

    let contents = database_contents(&hub).await;
    assert!(
        contains(&contents, visible.as_bytes()),
        "the search does not see what the hub stores in the clear"
    );
    assert_absent(&contents, &marker);
    assert_absent(&contents, "青葉花子");
    hub.stop().await;
}

#[tokio::test]
async fn the_recipient_and_the_sender_open_a_body_and_a_third_agency_cannot() {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut hospital = Party::new(&hub, dir.path(), "hospital").await;
    let nursery = Party::new(&hub, dir.path(), "nursery").await;
    // The coordinator of the municipality, who sees every referral there but is no recipient.
    let kodomo = Party::new(&hub, dir.path(), "kodomo").await;
    let jisou = Party::new(&hub, dir.path(), "jisou").await;

    let (case, _) = consented_case(
        hub.clock.as_ref(),
        &hospital.client,
        &["nursery"],
        &[NURSERY_ADMISSION],
    )
    .await;
    let mut request = referral_request(&case.case_id, "nursery", NURSERY_ADMISSION, by_consent());
    request.body = Some(
        hospital
            .seal(
                "保育所入所の相談をお願いします。",
                &["nursery"],
                Some(&case),
            )
            .await,
    );
    let sent = send(&hospital.client, request).await.unwrap();

    // The recipient opens what it received; the sender opens what it sent.
    let received = fetch_referral(&nursery.client, &sent.referral_id).await;
    assert!(received.sender_attested);
    assert_eq!(received.from_agency, "hospital");
    assert_eq!(
        nursery.open(received.body.as_ref()).unwrap(),
        "保育所入所の相談をお願いします。"
    );
    let mine = list_referrals(&hospital.client, pb::ReferralDirection::Sent, "").await;
    assert_eq!(
        hospital.open(mine[0].body.as_ref()).unwrap(),
        "保育所入所の相談をお願いします。"
    );

    // The coordinator reads the same ciphertext through the hub but cannot open it; an agency
    // that got hold of the sender's response cannot either.
    let seen_by_coordinator = fetch_referral(&kodomo.client, &sent.referral_id).await;
    assert_eq!(seen_by_coordinator.body, sent.body);
    assert!(matches!(
        kodomo.open(seen_by_coordinator.body.as_ref()),
        Err(ClientError::NotARecipient)
    ));
    assert!(matches!(
        jisou.open(sent.body.as_ref()),
        Err(ClientError::NotARecipient)
    ));

    // Once the case is registered with the 要対協, what is sealed about it opens for the
    // coordinator too (and still not for an agency it was not sealed to).
    mark_council_registered(&hub, &case.case_id).await;
    let registered = get_case(&hospital.client, &case.case_id).await.unwrap();
    assert!(registered.council_registered);
    let mut note = note_request(&case.case_id, &["nursery"], NURSERY_ADMISSION, by_consent());
    note.body = Some(
        hospital
            .seal("入所面談は来週です。", &["nursery"], Some(&registered))
            .await,
    );
    let note = send_note(&hospital.client, note).await.unwrap();
    let thread = case_thread(&kodomo.client, &case.case_id).await.unwrap();
    let from_thread = thread
        .entries
        .iter()
        .find_map(|entry| match &entry.entry {
            Some(pb::thread_entry::Entry::Note(n)) if n.note_id == note.note_id => Some(n.clone()),
            _ => None,
        })
        .expect("the note is on the coordinator's view of the thread");
    assert_eq!(
        kodomo.open(from_thread.body.as_ref()).unwrap(),
        "入所面談は来週です。"
    );
    assert_eq!(
        nursery.open(note.body.as_ref()).unwrap(),
        "入所面談は来週です。"
    );
    assert!(matches!(
        jisou.open(note.body.as_ref()),
        Err(ClientError::NotARecipient)
    ));
    hub.stop().await;
}

#[tokio::test]
async fn a_sealed_reason_detail_opens_for_the_coordinator_and_the_parties_and_never_reaches_the_database_as_plaintext()
 {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut hospital = Party::new(&hub, dir.path(), "hospital").await;
    let mut nursery = Party::new(&hub, dir.path(), "nursery").await;
    // The coordinator of the municipality: neither sender nor recipient.
    let kodomo = Party::new(&hub, dir.path(), "kodomo").await;
    let jisou = Party::new(&hub, dir.path(), "jisou").await;
    let marker = format!("TSUNAGU-DETAIL-{}", uuid::Uuid::new_v4().simple());
    let detail = format!("{marker} 定員超過のため。母 青葉花子 は4月以降なら受入可");

    let (case, _) = consented_case(
        hub.clock.as_ref(),
        &hospital.client,
        &["nursery"],
        &[NURSERY_ADMISSION],
    )
    .await;
    // Not registered with the 要対協: the coordinator still reviews reasons.
    assert!(!case.council_registered);
    let mut request = referral_request(&case.case_id, "nursery", NURSERY_ADMISSION, by_consent());
    request.body = Some(
        hospital
            .seal("保育所入所の相談", &["nursery"], Some(&case))
            .await,
    );
    let sent = send(&hospital.client, request).await.unwrap();

    // The recipient declines: a code in the clear, the detail sealed to both parties and the
    // coordinator.
    let plan = nursery
        .sealer
        .reason_detail_plan(&["hospital", "nursery"], &case)
        .await
        .unwrap();
    assert_eq!(plan.agencies, ["hospital", "nursery", "kodomo"]);
    let mut decline = action_with_reason(&sent.referral_id, A::Decline, "no_capacity");
    decline.reason_detail = Some(plan.seal(detail.as_bytes()).unwrap());
    let answered = act_with(&nursery.client, decline).await.unwrap();
    assert!(answered.event.unwrap().reason_detail.is_some());

    // The coordinator and the sender open it from the referral's timeline; an agency it was not
    // sealed to cannot, whatever it got hold of.
    let timeline = get_referral(&kodomo.client, &sent.referral_id)
        .await
        .unwrap();
    let declined = timeline
        .events
        .iter()
        .find(|e| e.action() == A::Decline)
        .expect("the decline on the coordinator's timeline");
    assert_eq!(declined.reason_code, "no_capacity");
    assert_eq!(
        kodomo.open(declined.reason_detail.as_ref()).unwrap(),
        detail
    );
    let senders = get_referral(&hospital.client, &sent.referral_id)
        .await
        .unwrap();
    let senders_view = senders
        .events
        .iter()
        .find(|e| e.action() == A::Decline)
        .unwrap();
    assert_eq!(
        hospital.open(senders_view.reason_detail.as_ref()).unwrap(),
        detail
    );
    assert!(matches!(
        jisou.open(declined.reason_detail.as_ref()),
        Err(ClientError::NotARecipient)
    ));

    // Only an action that gives a reason takes a detail, and only sealed.
    let mut confirm = action_request(&sent.referral_id, A::Confirm);
    confirm.reason_detail = Some(hospital.seal("確認", &["nursery"], Some(&case)).await);
    assert_invalid(act_with(&hospital.client, confirm).await, "reason_detail");
    let mut not_connected =
        not_connected_request(&sent.referral_id, pb::NotConnectedReason::NoCapacity, "");
    not_connected.reason_detail = Some(pb::Sealed {
        age: format!("{marker} 平文").into_bytes(),
    });
    assert_invalid(
        act_with(&nursery.client, not_connected).await,
        "reason_detail",
    );

    let contents = database_contents(&hub).await;
    assert!(contents.windows(11).any(|w| w == b"no_capacity"));
    assert_absent(&contents, &marker);
    assert_absent(&contents, "青葉花子");
    hub.stop().await;
}

#[tokio::test]
async fn after_rotation_new_items_are_sealed_to_the_new_key_and_old_items_still_open() {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut kodomo = Party::new(&hub, dir.path(), "kodomo").await;
    let hospital = Party::new(&hub, dir.path(), "hospital").await;
    let old_identity = hospital.identities().remove(0);
    let (case, _) = consented_case(
        hub.clock.as_ref(),
        &kodomo.client,
        &["hospital"],
        &[POSTNATAL_CARE],
    )
    .await;
    let mut before = referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent());
    before.body = Some(kodomo.seal("before", &["hospital"], Some(&case)).await);
    let before = send(&kodomo.client, before).await.unwrap();

    let rotated = keys::rotate(&hospital.client, &hospital.identity_file, &staff())
        .await
        .unwrap();
    let old_fingerprint = keys::fingerprint(&old_identity.to_public().to_string());
    assert_eq!(rotated.retired.len(), 1);
    assert_eq!(rotated.retired[0].fingerprint, old_fingerprint);
    assert!(rotated.backup.exists(), "the old identity file is kept");
    let identities = hospital.identities();
    assert_eq!(
        identities.len(),
        2,
        "the file holds the new and the old identity"
    );
    let new_identity = identities[0].clone();
    assert_eq!(
        keys::fingerprint(&new_identity.to_public().to_string()),
        rotated.key.fingerprint
    );

    // The directory lists the old key as retired, with when.
    let listed = keys::list(&kodomo.client, &["hospital".to_owned()], true)
        .await
        .unwrap();
    let old = listed
        .iter()
        .find(|k| k.fingerprint == old_fingerprint)
        .unwrap();
    assert_eq!(old.status(), pb::KeyStatus::Retired);
    assert!(old.retired_at.is_some());
    let active = keys::list(&kodomo.client, &["hospital".to_owned()], false)
        .await
        .unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].fingerprint, rotated.key.fingerprint);

    // A new item is sealed to the new key only (the sender hears that the keys changed).
    let plan = kodomo
        .sealer
        .plan(&["hospital"], Some(&case))
        .await
        .unwrap();
    let hospital_keys: Vec<&str> = plan
        .keys
        .iter()
        .filter(|k| k.agency_id == "hospital")
        .map(|k| k.fingerprint.as_str())
        .collect();
    assert_eq!(hospital_keys, [rotated.key.fingerprint.as_str()]);
    assert!(kodomo.sealer.take_notices().iter().any(|n| matches!(
        n,
        KeyNotice::Changed { agency, .. } if agency == "hospital"
    )));
    let mut after = referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent());
    after.body = Some(plan.seal(b"after").unwrap());
    let after = send(&kodomo.client, after).await.unwrap();
    let after_body = &after.body.as_ref().unwrap().age;
    assert_eq!(
        open_with(after_body, std::slice::from_ref(&new_identity)).unwrap(),
        b"after"
    );
    assert!(matches!(
        open_with(after_body, std::slice::from_ref(&old_identity)),
        Err(ClientError::NotARecipient)
    ));

    // The old item opens with the old identity, which the rotated file still holds.
    let old_body = fetch_referral(&hospital.client, &before.referral_id)
        .await
        .body;
    assert!(matches!(
        open_with(&old_body.as_ref().unwrap().age, &[new_identity]),
        Err(ClientError::NotARecipient)
    ));
    assert_eq!(hospital.open(old_body.as_ref()).unwrap(), "before");
    hub.stop().await;
}

/// A valid age file of `len` plaintext bytes, sealed to a fresh key.
fn age_file(len: usize) -> Vec<u8> {
    sealed_bytes(&vec![b'x'; len]).age
}

/// Where an age file's binary header ends (after the "--- <mac>\n" line).
fn header_end(file: &[u8]) -> usize {
    let mac = file.windows(4).position(|w| w == b"\n---").unwrap() + 1;
    mac + file[mac..].iter().position(|&b| b == b'\n').unwrap() + 1
}

#[tokio::test]
async fn plaintext_truncated_or_oversized_sealed_fields_are_refused_and_nothing_is_stored() {
    let limit = 200 * 1024;
    let hub = TestHub::start_with(|s| s.limits.max_sealed_bytes = limit).await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let (case, referral) =
        referred_case(hub.clock.as_ref(), &kodomo, "hospital", POSTNATAL_CARE).await;

    // Two chunks: 64 KiB and 100 bytes of plaintext, each with its 16-byte tag.
    let two_chunks = age_file(64 * 1024 + 100);
    let payload_start = header_end(&two_chunks);
    let bad: Vec<(&str, Vec<u8>, Code)> = vec![
        (
            "plaintext",
            "氏名: 青葉花子 (plaintext)".as_bytes().to_vec(),
            Code::InvalidArgument,
        ),
        (
            "cut inside the header",
            two_chunks[..payload_start / 2].to_vec(),
            Code::InvalidArgument,
        ),
        (
            "cut after the header",
            two_chunks[..payload_start + 10].to_vec(),
            Code::InvalidArgument,
        ),
        (
            "cut in the last chunk, leaving less than its tag",
            two_chunks[..payload_start + 16 + (64 * 1024 + 16) + 8].to_vec(),
            Code::InvalidArgument,
        ),
        (
            "over the size limit",
            age_file(limit),
            Code::ResourceExhausted,
        ),
    ];
    assert!(two_chunks.len() < limit);

    let cases_before = list_cases(&kodomo).await.len();
    let thread_before = case_thread(&kodomo, &case.case_id)
        .await
        .unwrap()
        .entries
        .len();
    let consents_before = list_consents(&kodomo, &case.case_id).await.unwrap().len();
    let referrals_before = referral_ids(&kodomo).await;
    let events_before = get_referral(&kodomo, &referral.referral_id)
        .await
        .unwrap()
        .events
        .len();

    for (what, bytes, code) in bad {
        let sealed = || Some(pb::Sealed { age: bytes.clone() });
        let expect = |result: Result<(), tonic::Status>, field: &str| {
            let status = result.unwrap_err();
            assert_eq!(status.code(), code, "{what}, {field}: {status:?}");
            assert!(
                status.message().starts_with(&format!("{field}:")),
                "{what}: the message does not name {field}: {status:?}"
            );
            assert!(
                !status.message().contains("青葉花子"),
                "{what}: the refusal repeats the payload: {status:?}"
            );
        };

        let key = key();
        let mut open = open_case_request(MUNICIPALITY);
        open.header = sealed();
        open.idempotency_key = key.clone();
        expect(try_open_case(&kodomo, open).await.map(drop), "header");
        // The idempotency key was not used up: nothing of the refused call was kept.
        let mut retry = open_case_request(MUNICIPALITY);
        retry.idempotency_key = key;
        let retried = try_open_case(&kodomo, retry).await.unwrap();

        let mut record = consent_request(
            &case.case_id,
            &["hospital"],
            &[],
            &[POSTNATAL_CARE],
            &japan_date(hub.clock.as_ref(), 0),
            "",
        );
        record.evidence = sealed();
        expect(
            try_record_consent(&kodomo, record).await.map(drop),
            "evidence",
        );

        let mut refer = referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent());
        refer.body = sealed();
        expect(send(&kodomo, refer).await.map(drop), "body");

        let mut note = note_request(&case.case_id, &["hospital"], POSTNATAL_CARE, by_consent());
        note.body = sealed();
        expect(send_note(&kodomo, note).await.map(drop), "body");

        let mut action = action_request(&referral.referral_id, A::AcknowledgeDelivery);
        action.note = sealed();
        expect(act_with(&hospital, action).await.map(drop), "note");

        // Only the retried case is new.
        let cases: Vec<String> = list_cases(&kodomo)
            .await
            .into_iter()
            .map(|c| c.case_id)
            .collect();
        assert!(cases.contains(&retried.case_id));
    }
    assert_eq!(list_cases(&kodomo).await.len(), cases_before + 5);
    assert_eq!(
        case_thread(&kodomo, &case.case_id)
            .await
            .unwrap()
            .entries
            .len(),
        thread_before,
        "a refused note or action reached the thread"
    );
    assert_eq!(
        list_consents(&kodomo, &case.case_id).await.unwrap().len(),
        consents_before
    );
    assert_eq!(referral_ids(&kodomo).await, referrals_before);
    let after = get_referral(&hospital, &referral.referral_id)
        .await
        .unwrap();
    assert_eq!(after.events.len(), events_before);
    assert_eq!(
        after.referral.unwrap().delivery(),
        pb::DeliveryState::Sent,
        "a refused action moved the referral"
    );

    // Well-formed files are accepted whatever their length, a full last chunk included.
    for plaintext in [0, 1, 64 * 1024, 64 * 1024 + 100, 2 * 64 * 1024] {
        let mut note = note_request(&case.case_id, &["hospital"], POSTNATAL_CARE, by_consent());
        note.body = Some(pb::Sealed {
            age: age_file(plaintext),
        });
        send_note(&kodomo, note).await.unwrap();
    }
    let mut note = note_request(&case.case_id, &["hospital"], POSTNATAL_CARE, by_consent());
    note.body = Some(sealed_armored("armoured"));
    send_note(&kodomo, note).await.unwrap();
    hub.stop().await;
}

#[tokio::test]
async fn an_agency_publishes_lists_and_retires_its_own_keys() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let first = Identity::generate().to_public();
    let second = Identity::generate().to_public();

    assert!(keys::list(&kodomo, &[], true).await.unwrap().is_empty());
    let published = keys::publish(&kodomo, &first, &staff()).await.unwrap();
    assert_eq!(published.agency_id, "kodomo");
    assert_eq!(published.recipient, first.to_string());
    assert_eq!(published.fingerprint, keys::fingerprint(&first.to_string()));
    assert_eq!(published.status(), pb::KeyStatus::Active);
    assert!(published.published_at.is_some() && published.retired_at.is_none());

    // Publishing the same recipient again changes nothing.
    hub.clock.advance(std::time::Duration::from_secs(60));
    let again = keys::publish(&kodomo, &first, &staff()).await.unwrap();
    assert_eq!(again, published);
    keys::publish(&kodomo, &second, &staff()).await.unwrap();

    // Empty means the caller's own; any agency may read any agency's keys.
    let own = keys::list(&kodomo, &[], false).await.unwrap();
    assert_eq!(own.len(), 2);
    let seen_by_hospital = keys::list(&hospital, &["kodomo".to_owned()], false)
        .await
        .unwrap();
    assert_eq!(seen_by_hospital, own);

    let retired = keys::retire(&kodomo, &published.fingerprint, &staff())
        .await
        .unwrap();
    assert_eq!(retired.status(), pb::KeyStatus::Retired);
    assert!(retired.retired_at.is_some());
    assert_eq!(
        keys::retire(&kodomo, &published.fingerprint, &staff())
            .await
            .unwrap(),
        retired,
        "retiring twice changes nothing"
    );
    let active = keys::list(&hospital, &["kodomo".to_owned()], false)
        .await
        .unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].recipient, second.to_string());
    let all = keys::list(&hospital, &["kodomo".to_owned()], true)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], retired, "retired keys stay listed, oldest first");

    // A retired key is never published again.
    let refused = keys::publish(&kodomo, &first, &staff()).await.unwrap_err();
    assert_eq!(refused.code(), Some(Code::FailedPrecondition), "{refused}");
    assert!(refused.to_string().contains("recipient: "), "{refused}");

    // Unknown agencies are named.
    let missing = keys::list(&kodomo, &["nobody".to_owned()], false)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some(Code::NotFound), "{missing}");
    hub.stop().await;
}

#[tokio::test]
async fn a_key_is_only_ever_published_or_retired_for_the_callers_own_agency() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let recipient = Identity::generate().to_public();

    // PublishKey names no agency: the key goes to the agency of the certificate.
    let key = keys::publish(&hospital, &recipient, &staff())
        .await
        .unwrap();
    assert_eq!(key.agency_id, "hospital");
    assert!(keys::list(&kodomo, &[], true).await.unwrap().is_empty());

    // The same recipient cannot be claimed by another agency, nor retired by it.
    let claimed = keys::publish(&kodomo, &recipient, &staff())
        .await
        .unwrap_err();
    assert_eq!(claimed.code(), Some(Code::AlreadyExists), "{claimed}");
    let retired = keys::retire(&kodomo, &key.fingerprint, &staff())
        .await
        .unwrap_err();
    assert_eq!(retired.code(), Some(Code::NotFound), "{retired}");
    let still = keys::list(&kodomo, &["hospital".to_owned()], false)
        .await
        .unwrap();
    assert_eq!(still, [key]);
    hub.stop().await;
}

#[tokio::test]
async fn a_malformed_recipient_fingerprint_or_agency_is_refused_naming_the_field() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let identity = Identity::generate();
    let secret = {
        use age::secrecy::ExposeSecret as _;
        identity.to_string().expose_secret().to_owned()
    };
    let publish = |recipient: String, staff: Option<pb::Staff>| {
        let kodomo = kodomo.clone();
        async move {
            kodomo
                .directory()
                .publish_key(pb::PublishKeyRequest { recipient, staff })
                .await
        }
    };
    for recipient in [
        String::new(),
        "age1notakey".to_owned(),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB/VtKM7m6QD"
            .to_owned(),
        format!("{} trailing", identity.to_public()),
        secret.clone(),
    ] {
        let status = assert_invalid(publish(recipient, Some(staff())).await, "recipient");
        assert!(
            !status.message().contains(&secret[16..]),
            "the refusal repeats a secret key: {status:?}"
        );
    }
    assert_invalid(
        publish(identity.to_public().to_string(), None).await,
        "staff",
    );
    assert!(keys::list(&kodomo, &[], true).await.unwrap().is_empty());

    let retire = kodomo
        .directory()
        .retire_key(pb::RetireKeyRequest {
            fingerprint: "abc".to_owned(),
            staff: Some(staff()),
        })
        .await;
    assert_invalid(retire, "fingerprint");
    let list = kodomo
        .directory()
        .list_keys(pb::ListKeysRequest {
            agency_ids: vec!["hospital".to_owned(), "Not An Id".to_owned()],
            include_retired: false,
        })
        .await;
    assert_invalid(list, "agency_ids[1]");
    hub.stop().await;
}

#[tokio::test]
async fn an_agency_holds_at_most_five_active_keys() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let mut published = Vec::new();
    for _ in 0..5 {
        let recipient = Identity::generate().to_public();
        published.push(keys::publish(&kodomo, &recipient, &staff()).await.unwrap());
    }
    let sixth = Identity::generate().to_public();
    let refused = keys::publish(&kodomo, &sixth, &staff()).await.unwrap_err();
    assert_eq!(refused.code(), Some(Code::ResourceExhausted), "{refused}");
    assert!(refused.to_string().contains("recipient: "), "{refused}");
    assert_eq!(keys::list(&kodomo, &[], true).await.unwrap().len(), 5);

    keys::retire(&kodomo, &published[0].fingerprint, &staff())
        .await
        .unwrap();
    keys::publish(&kodomo, &sixth, &staff()).await.unwrap();
    assert_eq!(keys::list(&kodomo, &[], false).await.unwrap().len(), 5);
    hub.stop().await;
}

#[tokio::test]
async fn sealing_for_an_agency_without_a_key_says_who_must_publish_one() {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kodomo = Party::new(&hub, dir.path(), "kodomo").await;
    let error = seal_for(&kodomo.client, b"x", &["hiroba"], None)
        .await
        .unwrap_err();
    assert!(matches!(&error, ClientError::NoAgeKey { agency } if agency == "hiroba"));
    assert_eq!(
        error.to_string(),
        "agency hiroba has published no age key; ask it to run `tsunagu keys init`"
    );
    // Nor may the sender seal without a key of its own.
    let hiroba = hub.client("hiroba").await;
    let error = seal_for(&hiroba, b"x", &["kodomo"], None)
        .await
        .unwrap_err();
    assert!(matches!(&error, ClientError::NoAgeKey { agency } if agency == "hiroba"));
    hub.stop().await;
}

#[tokio::test]
async fn a_verified_key_that_is_retired_stops_sealing_until_the_change_is_accepted() {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kodomo = Party::new(&hub, dir.path(), "kodomo").await;
    let hospital = Party::new(&hub, dir.path(), "hospital").await;
    let known_path = dir.path().join("kodomo-known.toml");

    // The hospital reads its fingerprint out over the phone; kodomo pins it.
    let listed = keys::list(&kodomo.client, &["hospital".to_owned()], false)
        .await
        .unwrap();
    let fingerprints: Vec<String> = listed.iter().map(|k| k.fingerprint.clone()).collect();
    let mut known = KnownKeys::load(&known_path).unwrap();
    known
        .verify("hospital", &fingerprints[0], &fingerprints)
        .unwrap();
    known.save().unwrap();
    let mut sealer =
        Sealer::new(&kodomo.client).with_known_keys(KnownKeys::load(&known_path).unwrap(), false);
    sealer.seal(b"x", &["hospital"], None).await.unwrap();

    keys::rotate(&hospital.client, &hospital.identity_file, &staff())
        .await
        .unwrap();
    let mut sealer =
        Sealer::new(&kodomo.client).with_known_keys(KnownKeys::load(&known_path).unwrap(), false);
    let refused = sealer.seal(b"x", &["hospital"], None).await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::KeyChanged { agency, .. } if agency == "hospital"),
        "{refused}"
    );
    assert!(refused.to_string().contains("tsunagu keys verify hospital"));

    let mut accepting =
        Sealer::new(&kodomo.client).with_known_keys(KnownKeys::load(&known_path).unwrap(), true);
    let sealed = accepting.seal(b"x", &["hospital"], None).await.unwrap();
    assert_eq!(hospital.open(Some(&sealed)).unwrap(), "x");
    assert!(accepting.take_notices().iter().any(|n| matches!(
        n,
        KeyNotice::ChangeAccepted { agency, .. } if agency == "hospital"
    )));
    hub.stop().await;
}

/// The real `tsunagu-hub serve` in `dir`, on its embedded defaults with a fresh development PKI,
/// as the README's newcomer runs it; stopped when the guard is dropped.
pub(crate) fn serve_dev_hub(dir: &Path) -> (u16, ChildGuard) {
    let hub_binary = workspace_binary("tsunagu-hub", "tsunagu-hub");
    let made = Command::new(&hub_binary)
        .current_dir(dir)
        .args(["certs", "dev", "--dir", "certs-dev"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let port = free_port();
    let mut hub = ChildGuard(
        Command::new(&hub_binary)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TSUNAGU_LISTEN", format!("127.0.0.1:{port}"))
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, &mut hub.0);
    (port, hub)
}

#[test]
fn the_demo_seals_with_the_dev_keys_the_hub_published_and_leaves_no_plaintext_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _hub) = serve_dev_hub(dir.path());

    let keys = tsunagu(
        dir.path(),
        port,
        &["--as", "aoba-kodomo", "--json", "keys", "list", "--all"],
    );
    assert!(keys.status.success(), "{keys:?}");
    let keys: serde_json::Value = serde_json::from_slice(&keys.stdout).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 5, "{keys}");

    let demo = tsunagu(dir.path(), port, &["demo"]);
    assert!(demo.status.success(), "{demo:?}");
    let narration = String::from_utf8(demo.stdout).unwrap();
    assert!(
        narration.contains("body readable"),
        "the recipients could not open their bodies: {narration}"
    );

    let mut contents = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(format!("data/tsunagu.db{suffix}"))) {
            contents.extend(bytes);
        }
    }
    assert!(contains(&contents, "青葉 さくら (デモ)".as_bytes()));
    for plaintext in [
        "青葉 花子",
        "同意書（書面）",
        "産後ケア（宿泊型）",
        "ひろばの利用と子育て相談",
        "産後ケアの利用日を調整",
        "留守電あり",
    ] {
        assert!(
            !contains(&contents, plaintext.as_bytes()),
            "{plaintext:?} is in the database"
        );
    }
}

#[test]
fn running_a_sealing_command_again_with_its_idempotency_key_gets_the_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _hub) = serve_dev_hub(dir.path());
    let open = |key: &str, header: &str| {
        tsunagu(
            dir.path(),
            port,
            &[
                "--as",
                "aoba-kodomo",
                "--json",
                "case",
                "open",
                "--municipality",
                "141178",
                "--category",
                "general",
                "--stage",
                "postnatal",
                "--header-text",
                header,
                "--idempotency-key",
                key,
            ],
        )
    };
    let case_id = |output: &std::process::Output| {
        assert!(output.status.success(), "{output:?}");
        let view: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        view["case_id"].as_str().unwrap().to_owned()
    };

    // The header is sealed afresh on every run; a retry sends the bytes the first run sealed,
    // so the hub answers it with the first case.
    let first = case_id(&open("retry-1", "氏名: 架空 一郎"));
    let again = case_id(&open("retry-1", "氏名: 架空 一郎"));
    assert_eq!(again, first);

    // Other content under the same key is still another request, and refused.
    let changed = open("retry-1", "氏名: 架空 二郎");
    assert!(!changed.status.success(), "{changed:?}");
    let message = String::from_utf8_lossy(&changed.stderr);
    assert!(message.contains("already used"), "{message}");

    // A new key is a new case; nothing of the header is kept in the clear.
    let other = case_id(&open("retry-2", "氏名: 架空 一郎"));
    assert_ne!(other, first);
    for entry in walk(&dir.path().join("state")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(!contains(&bytes, "架空".as_bytes()), "{entry:?}");
    }
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
