//! 移管: a family moves from 横浜市青葉区 (A, coordinator kodomo) to 千代田区 (B, coordinator
//! chiyoda). The transfer loop over real mTLS — propose, acknowledge, accept with a lead agency
//! or decline — its timers escalating to both coordinators, the worklists, idempotency, audit,
//! and what never reaches the database in the clear.

use std::path::Path;
use std::time::Duration;

use tonic::{Code, Status};
use tsunagu_client::Hub;
use tsunagu_client::keys;
use tsunagu_client::seal::{load_identities, open_with};
use tsunagu_client::sealing::Sealer;
use tsunagu_hub::domain::Clock as _;
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::*;
use tsunagu_tests::{MUNICIPALITY, OTHER_MUNICIPALITY, TestHub, test_agency};

mod cli;
mod journey;

use crate::sealing::{assert_absent, database_contents};

/// 千代田区の保健所: a lead agency (主担当機関) in B.
const B_LEAD: &str = "chiyoda-hoken";
/// 中央区: a municipality with no coordinator registered.
const NO_COORDINATOR: &str = "131024";
const DAY: Duration = Duration::from_secs(24 * 3600);

/// A hub with a second agency in B, to be its lead agency.
async fn two_municipalities() -> TestHub {
    let hub = TestHub::start().await;
    let lead = test_agency(&(
        B_LEAD,
        "health_centre",
        "千代田保健所",
        OTHER_MUNICIPALITY,
        true,
        false,
    ));
    tsunagu_tests::insert_agencies(&*hub.store, vec![lead], hub.clock.now()).await;
    hub
}

/// The basis of a registered case's transfer between councils.
fn between_councils() -> pb::LegalBasis {
    basis(
        pb::LegalBasisKind::CouncilSharing,
        "要対協登録ケースの転居に伴う協議会間の引継ぎ",
    )
}

fn propose_request(case_id: &str, to: &str, basis: pb::LegalBasis) -> pb::ProposeTransferRequest {
    pb::ProposeTransferRequest {
        case_id: case_id.to_owned(),
        to_municipality: to.to_owned(),
        basis: Some(basis),
        note: None,
        staff: Some(staff()),
        idempotency_key: key(),
    }
}

async fn propose(
    client: &Hub,
    request: pb::ProposeTransferRequest,
) -> Result<pb::Transfer, Status> {
    Ok(client
        .transfers()
        .propose_transfer(request)
        .await?
        .into_inner()
        .transfer
        .unwrap())
}

async fn acknowledge(client: &Hub, transfer_id: &str) -> Result<pb::Transfer, Status> {
    Ok(client
        .transfers()
        .acknowledge_transfer(pb::AcknowledgeTransferRequest {
            transfer_id: transfer_id.to_owned(),
            staff: Some(staff()),
            idempotency_key: key(),
        })
        .await?
        .into_inner()
        .transfer
        .unwrap())
}

fn accept_request(
    transfer_id: &str,
    lead: &str,
    header: Option<pb::Sealed>,
) -> pb::AcceptTransferRequest {
    pb::AcceptTransferRequest {
        transfer_id: transfer_id.to_owned(),
        lead_agency: lead.to_owned(),
        receiving_case_id: String::new(),
        header,
        staff: Some(staff()),
        idempotency_key: key(),
    }
}

async fn accept(
    client: &Hub,
    request: pb::AcceptTransferRequest,
) -> Result<pb::AcceptTransferResponse, Status> {
    Ok(client
        .transfers()
        .accept_transfer(request)
        .await?
        .into_inner())
}

fn decline_request(transfer_id: &str, reason: &str, text: &str) -> pb::DeclineTransferRequest {
    pb::DeclineTransferRequest {
        transfer_id: transfer_id.to_owned(),
        reason_code: reason.to_owned(),
        reason_text: text.to_owned(),
        staff: Some(staff()),
        idempotency_key: key(),
    }
}

async fn decline(
    client: &Hub,
    request: pb::DeclineTransferRequest,
) -> Result<pb::Transfer, Status> {
    Ok(client
        .transfers()
        .decline_transfer(request)
        .await?
        .into_inner()
        .transfer
        .unwrap())
}

async fn get(client: &Hub, transfer_id: &str) -> Result<pb::Transfer, Status> {
    Ok(client
        .transfers()
        .get_transfer(pb::GetTransferRequest {
            transfer_id: transfer_id.to_owned(),
        })
        .await?
        .into_inner()
        .transfer
        .unwrap())
}

/// The ids of the caller's transfers in a view of the worklist.
async fn worklist(client: &Hub, view: pb::TransferView) -> Vec<String> {
    client
        .transfers()
        .list_transfers(pb::ListTransfersRequest {
            municipality: String::new(),
            case_id: String::new(),
            view: view as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .transfers
        .into_iter()
        .map(|t| t.transfer_id)
        .collect()
}

/// How many of the caller's feed events are of `kind` about `case_id`.
async fn feed_count(client: &Hub, kind: pb::FeedEventKind, case_id: &str) -> usize {
    all_events(client)
        .await
        .iter()
        .filter(|e| e.kind == kind as i32 && e.case_id == case_id)
        .count()
}

fn state(transfer: &pb::Transfer) -> pb::TransferState {
    transfer.state()
}

/// An agency with its own age identity (published with `keys::init`) and a sealer, as the CLI
/// builds them.
/// The header of the case in A (a made-up family).
const HEADER_OF_A: &str = "氏名: 転居 花子 / 転居先: 千代田区";

struct Party {
    client: Hub,
    identity_file: std::path::PathBuf,
    sealer: Sealer,
}

impl Party {
    async fn new(hub: &TestHub, dir: &Path, id: &str) -> Party {
        let client = hub.client(id).await;
        let identity_file = dir.join(format!("{id}.age"));
        keys::init(&client, &identity_file, false, &staff())
            .await
            .unwrap();
        let sealer = Sealer::new(&client);
        Party {
            client,
            identity_file,
            sealer,
        }
    }

    fn open(&self, sealed: Option<&pb::Sealed>) -> String {
        let identities = load_identities(&self.identity_file).unwrap();
        String::from_utf8(open_with(&sealed.unwrap().age, &identities).unwrap()).unwrap()
    }

    async fn seal(&mut self, text: &str, to: &[&str]) -> pb::Sealed {
        self.sealer.seal(text.as_bytes(), to, None).await.unwrap()
    }
}

#[tokio::test]
async fn a_moving_family_is_proposed_acknowledged_and_accepted_with_a_lead_agency_and_a_new_case_in_the_receiving_municipality()
 {
    let hub = two_municipalities().await;
    let dir = tempfile::tempdir().unwrap();
    let mut kodomo = Party::new(&hub, dir.path(), "kodomo").await;
    let mut chiyoda = Party::new(&hub, dir.path(), "chiyoda").await;
    let lead = Party::new(&hub, dir.path(), B_LEAD).await;
    let marker = format!("TSUNAGU-TRANSFER-{}", uuid::Uuid::new_v4().simple());

    // A registered 要支援児童 case of A, its header sealed by A's own keys (as the CLI does).
    let mut open = open_case_request(MUNICIPALITY);
    open.header = Some(kodomo.seal(HEADER_OF_A, &[]).await);
    let case = try_open_case(&kodomo.client, open).await.unwrap();
    register_case(&kodomo.client, &case.case_id, "", "").await;

    // A's coordinator proposes, with a 引継ぎ事項 sealed to B's coordinator (and itself).
    let mut request = propose_request(&case.case_id, OTHER_MUNICIPALITY, between_councils());
    request.note = Some(
        kodomo
            .seal(
                &format!("{marker} 引継ぎ事項: 転居先 千代田区"),
                &["chiyoda"],
            )
            .await,
    );
    let proposed = propose(&kodomo.client, request).await.unwrap();
    assert_eq!(state(&proposed), pb::TransferState::Proposed);
    assert_eq!(proposed.from_municipality, MUNICIPALITY);
    assert_eq!(proposed.to_municipality, OTHER_MUNICIPALITY);
    assert_eq!(proposed.proposed_by, "kodomo");
    assert_eq!(proposed.basis(), pb::LegalBasisKind::CouncilSharing);
    assert!(proposed.on_worklist);
    assert!(millis(&proposed.deliver_by) < millis(&proposed.respond_by));
    assert!(millis(&proposed.respond_by) < millis(&proposed.accept_by));
    let id = proposed.transfer_id.clone();

    // B hears of it, and it is on both coordinators' worklists.
    assert_eq!(
        feed_count(
            &chiyoda.client,
            pb::FeedEventKind::TransferReceived,
            &case.case_id
        )
        .await,
        1
    );
    assert_eq!(
        worklist(&chiyoda.client, pb::TransferView::Open).await,
        [id.as_str()]
    );
    assert_eq!(
        worklist(&kodomo.client, pb::TransferView::Open).await,
        [id.as_str()]
    );
    // B's coordinator opens the note; the lead agency, not yet part of it, cannot read it.
    let seen = get(&chiyoda.client, &id).await.unwrap();
    assert!(chiyoda.open(seen.note.as_ref()).contains("引継ぎ事項"));
    assert_refused(
        get(&lead.client, &id).await,
        Code::PermissionDenied,
        &["transfer"],
    );

    // B acknowledges receipt; A hears of it.
    let acked = acknowledge(&chiyoda.client, &id).await.unwrap();
    assert_eq!(state(&acked), pb::TransferState::Acknowledged);
    assert_eq!(acked.acknowledged_by, "chiyoda");
    assert_eq!(
        feed_count(
            &kodomo.client,
            pb::FeedEventKind::TransferUpdated,
            &case.case_id
        )
        .await,
        1
    );

    // B accepts: its 主担当機関 and a new case in B with the header B's client sealed.
    let header = chiyoda
        .seal(&format!("{marker} 氏名: 千代田花子"), &[B_LEAD])
        .await;
    let accepted = accept(&chiyoda.client, accept_request(&id, B_LEAD, Some(header)))
        .await
        .unwrap();
    let transfer = accepted.transfer.unwrap();
    let receiving = accepted.receiving_case.unwrap();
    assert_eq!(state(&transfer), pb::TransferState::Accepted);
    assert_eq!(transfer.lead_agency, B_LEAD);
    assert_eq!(transfer.receiving_case_id, receiving.case_id);
    assert!(transfer.receiving_case_opened);
    assert!(!transfer.on_worklist);
    assert_eq!(receiving.municipality, OTHER_MUNICIPALITY);
    assert_eq!(receiving.category, pb::CaseCategory::RequiresSupport as i32);
    assert_eq!(receiving.stage, case.stage);
    assert_eq!(participant_ids(&receiving), ["chiyoda", B_LEAD]);

    // The lead agency reads the transfer and opens the new case's header.
    let b_case = get_case(&lead.client, &receiving.case_id).await.unwrap();
    assert!(lead.open(b_case.header.as_ref()).contains("千代田花子"));
    assert_eq!(
        get(&lead.client, &id).await.unwrap().receiving_case_id,
        receiving.case_id
    );
    // B's coordinator takes part in A's case now, to read its thread once A re-seals it.
    let a_case = get_case(&chiyoda.client, &case.case_id).await.unwrap();
    assert!(participant_ids(&a_case).contains(&"chiyoda".to_owned()));
    // A's 要対協 registration ended as transferred to B.
    let registrations = list_registrations(&kodomo.client, MUNICIPALITY, true)
        .await
        .unwrap();
    let registration = registrations
        .iter()
        .find(|r| r.case_id == case.case_id)
        .unwrap();
    assert_eq!(registration.status(), pb::RegistrationStatus::Transferred);
    assert_eq!(registration.transferred_to, OTHER_MUNICIPALITY);

    // Off both worklists; A and the lead agency heard of it.
    assert!(
        worklist(&chiyoda.client, pb::TransferView::Open)
            .await
            .is_empty()
    );
    assert!(
        worklist(&kodomo.client, pb::TransferView::Open)
            .await
            .is_empty()
    );
    assert_eq!(
        feed_count(
            &kodomo.client,
            pb::FeedEventKind::TransferUpdated,
            &case.case_id
        )
        .await,
        2
    );
    assert_eq!(
        feed_count(
            &lead.client,
            pb::FeedEventKind::TransferUpdated,
            &case.case_id
        )
        .await,
        1
    );
    // A case is transferred once.
    assert_refused(
        propose(
            &kodomo.client,
            propose_request(&case.case_id, NO_COORDINATOR, between_councils()),
        )
        .await,
        Code::FailedPrecondition,
        &[],
    );

    // Both threads count the move as one family's journey: the same transfer, linking both ways.
    for (client, case_id) in [
        (&kodomo.client, &case.case_id),
        (&chiyoda.client, &receiving.case_id),
    ] {
        let thread = case_thread(client, case_id).await.unwrap();
        let links: Vec<&pb::TransferEntry> = thread
            .entries
            .iter()
            .filter_map(|e| match &e.entry {
                Some(pb::thread_entry::Entry::Transfer(t)) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(links.len(), 1, "{case_id}");
        assert_eq!(links[0].transfer_id, id);
        assert_eq!(links[0].state(), pb::TransferState::Accepted);
        assert_eq!(links[0].sent_case_id, case.case_id);
        assert_eq!(links[0].receiving_case_id, receiving.case_id);
    }

    // Every step is audited with A's case as its target.
    let records = kodomo
        .client
        .audit()
        .list_audit_records(pb::ListAuditRecordsRequest {
            case_id: case.case_id.clone(),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    for (agency, action) in [
        ("kodomo", "TransferService/ProposeTransfer"),
        ("chiyoda", "TransferService/GetTransfer"),
        ("chiyoda", "TransferService/AcknowledgeTransfer"),
        ("chiyoda", "TransferService/AcceptTransfer"),
    ] {
        assert!(
            records
                .iter()
                .any(|r| r.agency_id == agency && r.action == action && r.outcome == "ok"),
            "no audit record of {agency} {action}"
        );
    }

    // Neither the note nor the new header reached the database in the clear.
    let contents = database_contents(&hub).await;
    assert_absent(&contents, &marker);
    assert_absent(&contents, "千代田花子");

    // B's coordinator cannot open A's header yet; an agency of B without a basis cannot be
    // added. A re-seals the header to B's coordinator on its own machine, and B opens it.
    let sealed_before = get_case(&chiyoda.client, &case.case_id).await.unwrap();
    assert!(
        open_with(
            &sealed_before.header.as_ref().unwrap().age,
            &load_identities(&chiyoda.identity_file).unwrap()
        )
        .is_err()
    );
    let fields = tsunagu_client::reseal::fields(&kodomo.client, &case.case_id)
        .await
        .unwrap();
    let header = fields
        .iter()
        .find(|f| f.field.as_ref().unwrap().kind() == pb::SealedFieldKind::CaseHeader)
        .unwrap()
        .clone();
    assert!(
        header.could_add.iter().any(|p| p.agency_id == "chiyoda"),
        "{:?}",
        header.could_add
    );
    let identities = load_identities(&kodomo.identity_file).unwrap();
    tsunagu_client::reseal::reseal(
        &kodomo.client,
        &mut kodomo.sealer,
        &identities,
        tsunagu_client::reseal::Reseal {
            field: &header,
            add_readers: &["chiyoda".to_owned()],
            staff: staff(),
            idempotency_key: String::new(),
        },
    )
    .await
    .unwrap();
    let resealed = get_case(&chiyoda.client, &case.case_id).await.unwrap();
    assert_eq!(chiyoda.open(resealed.header.as_ref()), HEADER_OF_A);
    assert_eq!(kodomo.open(resealed.header.as_ref()), HEADER_OF_A);
    assert_absent(&database_contents(&hub).await, "転居 花子");
    hub.stop().await;
}

#[tokio::test]
async fn a_transfer_left_unanswered_escalates_to_both_coordinators_and_stays_on_both_worklists() {
    let hub = two_municipalities().await;
    let kodomo = hub.client("kodomo").await;
    let chiyoda = hub.client("chiyoda").await;
    let case = open_case(&kodomo).await;
    let proposed = propose(
        &kodomo,
        propose_request(
            &case.case_id,
            OTHER_MUNICIPALITY,
            basis(
                pb::LegalBasisKind::VitalInterest,
                "転居先での支援が途切れると母子の安全が守れない",
            ),
        ),
    )
    .await
    .unwrap();
    let id = proposed.transfer_id.clone();
    assert!(
        worklist(&kodomo, pb::TransferView::Overdue)
            .await
            .is_empty()
    );

    // Three weeks pass without an answer: every timer escalates, once each, to both sides.
    hub.clock.advance(21 * DAY);
    let escalated = eventually(
        "the three timers to escalate",
        Duration::from_secs(10),
        async || {
            let transfer = get(&kodomo, &id).await.unwrap();
            (transfer.escalated.len() == 3).then_some(transfer)
        },
    )
    .await;
    assert_eq!(
        escalated.escalated,
        [
            pb::TransferTimer::Deliver as i32,
            pb::TransferTimer::Respond as i32,
            pb::TransferTimer::Accept as i32
        ]
    );
    assert_eq!(escalated.overdue, escalated.escalated);
    assert_eq!(state(&escalated), pb::TransferState::Proposed);
    for client in [&kodomo, &chiyoda] {
        assert_eq!(
            feed_count(client, pb::FeedEventKind::TransferEscalation, &case.case_id).await,
            3
        );
        assert_eq!(
            worklist(client, pb::TransferView::Overdue).await,
            [id.as_str()]
        );
        assert_eq!(
            worklist(client, pb::TransferView::Open).await,
            [id.as_str()]
        );
    }
    // The hub's escalations are on the audit trail of A's case.
    let records = kodomo
        .audit()
        .list_audit_records(pb::ListAuditRecordsRequest {
            case_id: case.case_id.clone(),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(
        records
            .iter()
            .filter(|r| r.action == "Hub/EscalateTransfer")
            .count(),
        3
    );

    // More timer rounds raise nothing twice, and the transfer is never dropped.
    hub.clock.advance(7 * DAY);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for client in [&kodomo, &chiyoda] {
        assert_eq!(
            feed_count(client, pb::FeedEventKind::TransferEscalation, &case.case_id).await,
            3
        );
        assert_eq!(
            worklist(client, pb::TransferView::Overdue).await,
            [id.as_str()]
        );
    }
    // Acknowledging stops only the deliver-by timer: still overdue on both worklists.
    let acked = acknowledge(&chiyoda, &id).await.unwrap();
    assert_eq!(
        acked.overdue,
        [
            pb::TransferTimer::Respond as i32,
            pb::TransferTimer::Accept as i32
        ]
    );
    for client in [&kodomo, &chiyoda] {
        assert_eq!(
            worklist(client, pb::TransferView::Overdue).await,
            [id.as_str()]
        );
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_declined_transfer_returns_the_case_to_the_proposing_coordinators_worklist_until_it_is_proposed_again()
 {
    let hub = two_municipalities().await;
    let kodomo = hub.client("kodomo").await;
    let chiyoda = hub.client("chiyoda").await;
    let clock = &*hub.clock;
    let case = open_case(&kodomo).await;

    // A consent must cover B's coordinator for the purpose case_transfer.
    assert_refused(
        propose(
            &kodomo,
            propose_request(&case.case_id, OTHER_MUNICIPALITY, by_consent()),
        )
        .await,
        Code::FailedPrecondition,
        &["case_transfer", OTHER_MUNICIPALITY],
    );
    record_consent(
        &kodomo,
        &case.case_id,
        &["chiyoda"],
        &[],
        &["case_transfer"],
        &japan_date(clock, 0),
        &japan_date(clock, 365),
    )
    .await;
    let first = propose(
        &kodomo,
        propose_request(&case.case_id, OTHER_MUNICIPALITY, by_consent()),
    )
    .await
    .unwrap();
    assert_eq!(first.basis(), pb::LegalBasisKind::Consent);
    assert!(!first.consent_id.is_empty());

    // A decline needs a known reason.
    assert_invalid(
        decline(&chiyoda, decline_request(&first.transfer_id, "bogus", "")).await,
        "reason_code",
    );
    assert_invalid(
        decline(&chiyoda, decline_request(&first.transfer_id, "", "")).await,
        "reason_code",
    );
    let declined = decline(
        &chiyoda,
        decline_request(
            &first.transfer_id,
            "not_moved_in",
            "住民登録の転入が確認できない",
        ),
    )
    .await
    .unwrap();
    assert_eq!(state(&declined), pb::TransferState::Declined);
    assert_eq!(declined.decline_reason, "not_moved_in");
    assert_eq!(declined.decline_text, "住民登録の転入が確認できない");
    assert!(declined.on_worklist);

    // Back on A's worklist, off B's; A heard of it; B cannot accept it any more.
    assert_eq!(
        worklist(&kodomo, pb::TransferView::Open).await,
        [first.transfer_id.as_str()]
    );
    assert!(worklist(&chiyoda, pb::TransferView::Open).await.is_empty());
    assert_eq!(
        feed_count(&kodomo, pb::FeedEventKind::TransferUpdated, &case.case_id).await,
        1
    );
    assert_refused(
        accept(
            &chiyoda,
            accept_request(&first.transfer_id, "chiyoda", Some(sealed("氏名"))),
        )
        .await,
        Code::FailedPrecondition,
        &["declined"],
    );

    // A proposes again: the declined one leaves A's worklist, the new one is on both.
    let second = propose(
        &kodomo,
        propose_request(&case.case_id, OTHER_MUNICIPALITY, by_consent()),
    )
    .await
    .unwrap();
    assert_eq!(
        worklist(&kodomo, pb::TransferView::Open).await,
        [second.transfer_id.as_str()]
    );
    assert_eq!(
        worklist(&chiyoda, pb::TransferView::Open).await,
        [second.transfer_id.as_str()]
    );
    assert!(!get(&kodomo, &first.transfer_id).await.unwrap().on_worklist);
    // Only A withdraws; then it is on no worklist and B hears of it.
    let withdraw = |client: &Hub| {
        let mut transfers = client.transfers();
        let id = second.transfer_id.clone();
        async move {
            transfers
                .withdraw_transfer(pb::WithdrawTransferRequest {
                    transfer_id: id,
                    staff: Some(staff()),
                    idempotency_key: key(),
                })
                .await
                .map(|r| r.into_inner().transfer.unwrap())
        }
    };
    assert_refused(
        withdraw(&chiyoda).await,
        Code::PermissionDenied,
        &["withdraws"],
    );
    let withdrawn = withdraw(&kodomo).await.unwrap();
    assert_eq!(state(&withdrawn), pb::TransferState::Withdrawn);
    assert!(worklist(&kodomo, pb::TransferView::Open).await.is_empty());
    assert!(worklist(&chiyoda, pb::TransferView::Open).await.is_empty());
    assert_eq!(worklist(&kodomo, pb::TransferView::All).await.len(), 2);
    hub.stop().await;
}

#[tokio::test]
async fn transfer_writes_are_idempotent_and_refuse_the_wrong_agency_and_bad_input_naming_the_field()
{
    let hub = two_municipalities().await;
    let kodomo = hub.client("kodomo").await;
    let chiyoda = hub.client("chiyoda").await;
    let hospital = hub.client("hospital").await;
    let case = open_case(&kodomo).await;
    let vital = || basis(pb::LegalBasisKind::VitalInterest, "転居後の支援継続のため");

    // Bad input names the field; nothing is written.
    let mut bad = propose_request(&case.case_id, "12", vital());
    assert_invalid(propose(&kodomo, bad.clone()).await, "to_municipality");
    bad.to_municipality = MUNICIPALITY.to_owned();
    assert_invalid(propose(&kodomo, bad.clone()).await, "to_municipality");
    bad.to_municipality = NO_COORDINATOR.to_owned();
    assert_refused(
        propose(&kodomo, bad.clone()).await,
        Code::FailedPrecondition,
        &["to_municipality", NO_COORDINATOR, "coordinator"],
    );
    bad.to_municipality = OTHER_MUNICIPALITY.to_owned();
    bad.case_id = "not-a-case".to_owned();
    assert_invalid(propose(&kodomo, bad.clone()).await, "case_id");
    bad.case_id = case.case_id.clone();
    bad.basis = None;
    assert_invalid(propose(&kodomo, bad.clone()).await, "basis");
    bad.basis = Some(basis(pb::LegalBasisKind::VitalInterest, ""));
    assert_refused(
        propose(&kodomo, bad.clone()).await,
        Code::FailedPrecondition,
        &["justification"],
    );
    bad.basis = Some(between_councils());
    assert_refused(
        propose(&kodomo, bad).await,
        Code::FailedPrecondition,
        &["要対協"],
    );
    assert!(worklist(&kodomo, pb::TransferView::All).await.is_empty());

    // Only A's coordinator proposes, even for a case the agency opened itself.
    let hospital_case = open_case(&hospital).await;
    assert_refused(
        propose(
            &hospital,
            propose_request(&hospital_case.case_id, OTHER_MUNICIPALITY, vital()),
        )
        .await,
        Code::PermissionDenied,
        &["coordinator"],
    );

    // A retry with the same key writes nothing twice.
    let request = propose_request(&case.case_id, OTHER_MUNICIPALITY, vital());
    let first = propose(&kodomo, request.clone()).await.unwrap();
    let again = propose(&kodomo, request.clone()).await.unwrap();
    assert_eq!(first.transfer_id, again.transfer_id);
    assert_eq!(worklist(&kodomo, pb::TransferView::All).await.len(), 1);
    assert_eq!(
        feed_count(&chiyoda, pb::FeedEventKind::TransferReceived, &case.case_id).await,
        1
    );
    let mut changed = request.clone();
    changed.to_municipality = NO_COORDINATOR.to_owned();
    assert_refused(
        propose(&kodomo, changed).await,
        Code::AlreadyExists,
        &["idempotency_key"],
    );
    // One transfer in progress per case.
    assert_refused(
        propose(
            &kodomo,
            propose_request(&case.case_id, OTHER_MUNICIPALITY, vital()),
        )
        .await,
        Code::AlreadyExists,
        &["in progress"],
    );

    // Only B's coordinator acknowledges, accepts and declines.
    let id = first.transfer_id.clone();
    assert_refused(acknowledge(&kodomo, &id).await, Code::PermissionDenied, &[]);
    assert_refused(
        acknowledge(&hospital, &id).await,
        Code::PermissionDenied,
        &[],
    );
    assert_refused(
        decline(&kodomo, decline_request(&id, "other", "")).await,
        Code::PermissionDenied,
        &[],
    );

    // Acceptance: the lead agency must serve B, and a new case needs its header.
    assert_invalid(
        accept(
            &chiyoda,
            accept_request(&id, "hospital", Some(sealed("氏名"))),
        )
        .await,
        "lead_agency",
    );
    assert_invalid(
        accept(&chiyoda, accept_request(&id, B_LEAD, None)).await,
        "header",
    );
    let mut linking = accept_request(&id, B_LEAD, None);
    linking.receiving_case_id = case.case_id.clone();
    assert_invalid(accept(&chiyoda, linking).await, "receiving_case_id");
    // Nothing was opened in B by the refused acceptances.
    assert!(list_cases(&chiyoda).await.is_empty());

    // Accepting twice with the same key opens one case.
    let request = accept_request(&id, B_LEAD, Some(sealed("氏名: 千代田花子")));
    let accepted = accept(&chiyoda, request.clone()).await.unwrap();
    let replayed = accept(&chiyoda, request).await.unwrap();
    assert_eq!(
        accepted.receiving_case.as_ref().unwrap().case_id,
        replayed.receiving_case.as_ref().unwrap().case_id
    );
    let b_cases: Vec<_> = list_cases(&chiyoda)
        .await
        .into_iter()
        .filter(|c| c.municipality == OTHER_MUNICIPALITY)
        .collect();
    assert_eq!(b_cases.len(), 1);
    // Accepted is final.
    assert_refused(
        acknowledge(&chiyoda, &id).await,
        Code::FailedPrecondition,
        &["accepted"],
    );
    hub.stop().await;
}
