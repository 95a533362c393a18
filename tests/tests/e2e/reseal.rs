//! End-to-end re-sealing over real mTLS: a case header sealed before the case was registered
//! with the 要対協 becomes readable by the coordinator once a participant re-seals it on its own
//! machine, and by nobody else; who may and may not re-seal, and to whom; idempotent retries,
//! the audit and the case thread; and no plaintext at rest.

use tonic::Code;
use tsunagu_client::ClientError;
use tsunagu_client::reseal::{self, Reseal};
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::*;
use tsunagu_tests::{MUNICIPALITY, TestHub};

use crate::sealing::{Party, assert_absent, database_contents};

const HEADER: &str = "氏名: 再封 花子 / 生年月日: 2026-03-03 / 住所: 青葉区みどり町1-2-3";

/// A case the hospital opened with a header sealed as the CLI seals it (to the hospital only),
/// registered afterwards with the 要対協 by the coordinator (kodomo).
async fn registered_after_sealing(hub: &TestHub, hospital: &mut Party) -> pb::Case {
    let mut request = open_case_request(MUNICIPALITY);
    request.header = Some(hospital.seal(HEADER, &[], None).await);
    let case = try_open_case(&hospital.client, request).await.unwrap();
    let kodomo = hub.client("kodomo").await;
    register_case(&kodomo, &case.case_id, "", "").await;
    case
}

fn header_field(fields: &[pb::SealedFieldReaders]) -> &pb::SealedFieldReaders {
    fields
        .iter()
        .find(|f| f.field.as_ref().unwrap().kind() == pb::SealedFieldKind::CaseHeader)
        .expect("the header is listed")
}

fn reseal_request(
    case_id: &str,
    add: &[&str],
    current: &[&str],
    sealed: pb::Sealed,
) -> pb::ResealRequest {
    pb::ResealRequest {
        field: Some(pb::SealedFieldRef {
            kind: pb::SealedFieldKind::CaseHeader as i32,
            id: case_id.to_owned(),
        }),
        add_readers: add.iter().map(|a| (*a).to_owned()).collect(),
        current_readers: current.iter().map(|a| (*a).to_owned()).collect(),
        sealed: Some(sealed),
        staff: Some(staff()),
        idempotency_key: key(),
    }
}

#[tokio::test]
async fn a_header_sealed_before_registration_opens_for_the_coordinator_after_a_participant_reseals_it()
 {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut hospital = Party::new(&hub, dir.path(), "hospital").await;
    let kodomo = Party::new(&hub, dir.path(), "kodomo").await;
    let jisou = Party::new(&hub, dir.path(), "jisou").await;
    let case = registered_after_sealing(&hub, &mut hospital).await;

    // Registered, but the header was sealed before: the coordinator sees the placeholder only.
    let seen = get_case(&kodomo.client, &case.case_id).await.unwrap();
    assert!(seen.council_registered);
    assert!(matches!(
        kodomo.open(seen.header.as_ref()),
        Err(ClientError::NotARecipient)
    ));
    let listed = reseal::fields(&kodomo.client, &case.case_id).await.unwrap();
    let header = header_field(&listed);
    assert!(!header.caller_can_open && !header.caller_may_reseal);
    assert!(
        header.sealed.is_none(),
        "no ciphertext for who cannot re-seal"
    );
    assert_eq!(header.readers, ["hospital"]);

    // The hospital, which can open it, sees the coordinator among who could be added.
    let listed = reseal::fields(&hospital.client, &case.case_id)
        .await
        .unwrap();
    let header = header_field(&listed).clone();
    assert!(header.caller_can_open && header.caller_may_reseal);
    // kodomo, the coordinator, became a participant as the registration's lead agency.
    assert!(
        header.could_add.iter().any(|p| p.agency_id == "kodomo"),
        "{:?}",
        header.could_add
    );
    let identities = hospital.identities();
    let response = reseal::reseal(
        &hospital.client,
        &mut hospital.sealer,
        &identities,
        Reseal {
            field: &header,
            add_readers: &["kodomo".to_owned()],
            staff: staff(),
            idempotency_key: String::new(),
        },
    )
    .await
    .unwrap();
    let after = response.field.unwrap();
    assert_eq!(after.readers, ["hospital", "kodomo"]);

    // Now the coordinator opens it, the hospital still does, and a council member that is not a
    // reader (jisou) does not.
    let seen = get_case(&kodomo.client, &case.case_id).await.unwrap();
    assert_eq!(kodomo.open(seen.header.as_ref()).unwrap(), HEADER);
    let own = get_case(&hospital.client, &case.case_id).await.unwrap();
    assert_eq!(hospital.open(own.header.as_ref()).unwrap(), HEADER);
    assert!(matches!(
        jisou.open(seen.header.as_ref()),
        Err(ClientError::NotARecipient)
    ));

    // The thread shows the re-seal; the audit has it; the plaintext is nowhere in the database.
    let thread = case_thread(&kodomo.client, &case.case_id).await.unwrap();
    let reseals: Vec<&pb::ResealRecord> = thread
        .entries
        .iter()
        .filter_map(|e| match &e.entry {
            Some(pb::thread_entry::Entry::Reseal(record)) => Some(record),
            _ => None,
        })
        .collect();
    assert_eq!(reseals.len(), 1);
    assert_eq!(reseals[0].resealed_by, "hospital");
    assert_eq!(reseals[0].added_readers, ["kodomo"]);
    let audit = hospital
        .client
        .audit()
        .list_audit_records(pb::ListAuditRecordsRequest {
            case_id: case.case_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert!(
        audit
            .iter()
            .any(|r| r.action == "SealingService/Reseal" && r.outcome == "ok"),
        "{audit:?}"
    );
    let contents = database_contents(&hub).await;
    assert_absent(&contents, "再封 花子");
    assert_absent(&contents, "みどり町1-2-3");
    hub.stop().await;
}

#[tokio::test]
async fn a_reader_without_a_basis_or_a_caller_that_cannot_open_the_field_is_refused_and_nothing_changes()
 {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut hospital = Party::new(&hub, dir.path(), "hospital").await;
    let kodomo = Party::new(&hub, dir.path(), "kodomo").await;
    let _hiroba = Party::new(&hub, dir.path(), "hiroba").await;
    let case = registered_after_sealing(&hub, &mut hospital).await;
    let before = get_case(&hospital.client, &case.case_id).await.unwrap();

    // ひろば takes no part in the case and is no council member: no basis to read the header.
    let resealed = hospital.seal(HEADER, &["hiroba"], None).await;
    let refused = hospital
        .client
        .sealing()
        .reseal(reseal_request(
            &case.case_id,
            &["hiroba"],
            &["hospital"],
            resealed,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("hiroba"),
        "{}",
        refused.message()
    );
    assert!(
        refused.message().contains("legal basis"),
        "{}",
        refused.message()
    );

    // The coordinator cannot open the header, so it cannot re-seal it, even to itself.
    let made_up = sealed(HEADER);
    let refused = kodomo
        .client
        .sealing()
        .reseal(reseal_request(
            &case.case_id,
            &["kodomo"],
            &["hospital"],
            made_up,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("cannot open"),
        "{}",
        refused.message()
    );

    // Readers that changed since they were read, an unknown agency, a missing field kind.
    let resealed = hospital.seal(HEADER, &["kodomo"], None).await;
    let refused = hospital
        .client
        .sealing()
        .reseal(reseal_request(&case.case_id, &["kodomo"], &[], resealed))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("changed"),
        "{}",
        refused.message()
    );
    let mut unknown = reseal_request(&case.case_id, &["nobody"], &["hospital"], sealed("x"));
    let refused = hospital
        .client
        .sealing()
        .reseal(unknown.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().starts_with("add_readers"),
        "{}",
        refused.message()
    );
    unknown.add_readers = vec!["kodomo".into()];
    unknown.field.as_mut().unwrap().kind = 0;
    let refused = hospital.client.sealing().reseal(unknown).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().starts_with("field.kind"),
        "{}",
        refused.message()
    );
    let not_age = reseal_request(&case.case_id, &["kodomo"], &["hospital"], not_sealed());
    let refused = hospital.client.sealing().reseal(not_age).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

    // An agency that takes no part in the case does not learn it exists.
    let nursery = hub.client("nursery").await;
    let refused = reseal::fields(&nursery, &case.case_id).await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::Rpc(status) if status.code() == Code::PermissionDenied)
            || refused.to_string().contains("may see"),
        "{refused:?}"
    );

    // Nothing changed: the same ciphertext, the same readers, no re-seal on the thread.
    let after = get_case(&hospital.client, &case.case_id).await.unwrap();
    assert_eq!(after.header, before.header);
    let listed = reseal::fields(&hospital.client, &case.case_id)
        .await
        .unwrap();
    assert_eq!(header_field(&listed).readers, ["hospital"]);
    let thread = case_thread(&hospital.client, &case.case_id).await.unwrap();
    assert!(
        !thread
            .entries
            .iter()
            .any(|e| matches!(e.entry, Some(pb::thread_entry::Entry::Reseal(_))))
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_retried_reseal_returns_the_first_answer_and_writes_once() {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut hospital = Party::new(&hub, dir.path(), "hospital").await;
    let kodomo = Party::new(&hub, dir.path(), "kodomo").await;
    let case = registered_after_sealing(&hub, &mut hospital).await;

    let resealed = hospital.seal(HEADER, &["kodomo"], None).await;
    let request = reseal_request(&case.case_id, &["kodomo"], &["hospital"], resealed);
    let first = hospital
        .client
        .sealing()
        .reseal(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = hospital
        .client
        .sealing()
        .reseal(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    let thread = case_thread(&kodomo.client, &case.case_id).await.unwrap();
    let reseals = thread
        .entries
        .iter()
        .filter(|e| matches!(e.entry, Some(pb::thread_entry::Entry::Reseal(_))))
        .count();
    assert_eq!(reseals, 1);
    let seen = get_case(&kodomo.client, &case.case_id).await.unwrap();
    assert_eq!(kodomo.open(seen.header.as_ref()).unwrap(), HEADER);
    hub.stop().await;
}

#[tokio::test]
async fn a_referral_body_is_resealed_by_its_recipient_to_the_coordinator_of_a_case_registered_later()
 {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut hospital = Party::new(&hub, dir.path(), "hospital").await;
    let nursery = Party::new(&hub, dir.path(), "nursery").await;
    let kodomo = Party::new(&hub, dir.path(), "kodomo").await;
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
            .seal("入所の相談: 母の就労は4月から", &["nursery"], Some(&case))
            .await,
    );
    let sent = send(&hospital.client, request).await.unwrap();
    // Registered afterwards, with the coordinator as lead agency.
    register_case(&kodomo.client, &case.case_id, "", "").await;

    // The nursery (recipient) re-seals the body to the coordinator.
    let listed = reseal::fields(&nursery.client, &case.case_id)
        .await
        .unwrap();
    let body = listed
        .iter()
        .find(|f| f.field.as_ref().unwrap().id == sent.referral_id)
        .expect("the referral body is listed")
        .clone();
    assert_eq!(body.readers, ["hospital", "nursery"]);
    let identities = nursery.identities();
    let mut sealer = tsunagu_client::sealing::Sealer::new(&nursery.client);
    reseal::reseal(
        &nursery.client,
        &mut sealer,
        &identities,
        Reseal {
            field: &body,
            add_readers: &["kodomo".to_owned()],
            staff: staff(),
            idempotency_key: String::new(),
        },
    )
    .await
    .unwrap();
    let referral = get_referral(&kodomo.client, &sent.referral_id)
        .await
        .unwrap()
        .referral
        .unwrap();
    assert_eq!(
        kodomo.open(referral.body.as_ref()).unwrap(),
        "入所の相談: 母の就労は4月から"
    );
    assert_eq!(
        hospital.open(referral.body.as_ref()).unwrap(),
        "入所の相談: 母の就労は4月から"
    );
    hub.stop().await;
}

/// The console's case page over plain HTTP with a session, as the agency's browser reads it.
async fn case_page(
    console: &crate::console::ConsoleProcess,
    cookie: &str,
    case_id: &str,
) -> String {
    let page = console
        .request(
            "GET",
            &format!("/cases/{case_id}"),
            &[("Cookie", cookie)],
            None,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_console_the_opener_gives_the_header_to_a_participant_that_saw_the_placeholder() {
    use crate::console::{ConsoleProcess, consented_case, refer};
    use fantoccini::Locator;
    use std::time::Duration;

    let Some(browser) = tsunagu_tests::browser::Browser::start_or_skip("console re-seal").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (port, _hub) = crate::sealing::serve_dev_hub(dir.path());
    let case_id = consented_case(dir.path(), port, "氏名: 青葉 はな（MARKER-HEADER）");
    refer(dir.path(), port, &case_id, "本文（MARKER-BODY）", None);

    // The hospital joined through the referral after the header was sealed: a placeholder, and
    // the page says who can open it.
    let hospital = ConsoleProcess::start(dir.path(), port, "aoba-hospital");
    let cookie = hospital.session().await;
    let before = case_page(&hospital, &cookie, &case_id).await;
    assert!(before.contains("この機関では開封できません"), "{before}");
    assert!(before.contains("id=\"sealed-fields\""), "{before}");
    assert!(before.contains("この機関では開けません"), "{before}");
    assert!(!before.contains("MARKER-HEADER"));
    assert!(
        !before.contains("class=\"reseal\""),
        "the hospital cannot re-seal"
    );

    // The health centre, which opened the case, clicks the button for the hospital.
    let kodomo = ConsoleProcess::start(dir.path(), port, "aoba-kodomo");
    let c = &browser.client;
    c.goto(&kodomo.login_url).await.unwrap();
    c.goto(&kodomo.url(&format!("/cases/{case_id}")))
        .await
        .unwrap();
    let section = browser.text("#sealed-fields").await;
    assert!(section.contains("にも読めるようにする"), "{section}");
    browser.screenshot("reseal-01-before").await;
    c.find(Locator::Css("#sealed-fields button.reseal"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_until(
            Duration::from_secs(10),
            "the re-seal on the thread",
            |page| page.contains("再封緘: ケースの基本情報を"),
        )
        .await;
    browser.screenshot("reseal-02-after").await;
    assert!(
        c.find(Locator::Css("#sealed-fields button.reseal"))
            .await
            .is_err(),
        "nothing left to give"
    );

    // The hospital's page now shows the header, opened on the hospital's machine.
    let after = case_page(&hospital, &cookie, &case_id).await;
    assert!(after.contains("MARKER-HEADER"), "{after}");
}
