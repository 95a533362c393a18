//! A family that moved is one journey in the outcomes: a referral reported not connected because
//! the family `moved`, on a case whose 移管 was accepted, links on to the first referral made for
//! the family in its new municipality, as a `referred_elsewhere` referral links to the next one.

use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::*;
use tsunagu_tests::{MUNICIPALITY, OTHER_MUNICIPALITY};

use super::{
    B_LEAD, accept, accept_request, acknowledge, between_councils, propose, propose_request,
    two_municipalities,
};
use crate::outcomes::{get_outcomes, outcomes_request};

/// How the coordinator's journeys of the last days ended: (not connected, left its view).
async fn journey_ends(
    client: &tsunagu_client::Hub,
    clock: &dyn tsunagu_hub::domain::Clock,
) -> (u64, u64) {
    let request = outcomes_request(&japan_date(clock, -1), &japan_date(clock, 1), &[]);
    let journeys = get_outcomes(client, request)
        .await
        .unwrap()
        .totals
        .unwrap()
        .journeys
        .unwrap();
    (
        journeys.not_connected.unwrap().value,
        journeys.left_scope.unwrap().value,
    )
}

#[tokio::test]
async fn a_family_that_moved_and_was_transferred_is_one_journey_that_continues_in_its_new_municipality()
 {
    let hub = two_municipalities().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let chiyoda = hub.client("chiyoda").await;

    // In A: a referral to the hospital; the family moved before it connected.
    let (case, referral) = referred_case(&*hub.clock, &kodomo, "hospital", POSTNATAL_CARE).await;
    act(&hospital, &referral.referral_id, pb::ReferralAction::Accept)
        .await
        .unwrap();
    act_with(
        &hospital,
        not_connected_request(&referral.referral_id, pb::NotConnectedReason::Moved, ""),
    )
    .await
    .unwrap();
    assert_eq!(journey_ends(&kodomo, &*hub.clock).await, (1, 0));

    // A transfers the case to B, which takes it on with a new case.
    register_case(&kodomo, &case.case_id, "", "").await;
    let proposed = propose(
        &kodomo,
        propose_request(&case.case_id, OTHER_MUNICIPALITY, between_councils()),
    )
    .await
    .unwrap();
    acknowledge(&chiyoda, &proposed.transfer_id).await.unwrap();
    let accepted = accept(
        &chiyoda,
        accept_request(&proposed.transfer_id, B_LEAD, Some(sealed("氏名: …"))),
    )
    .await
    .unwrap();
    let receiving = accepted.receiving_case.unwrap();
    // Accepted, but no referral in B yet: the journey still ends where A left it.
    assert_eq!(journey_ends(&kodomo, &*hub.clock).await, (1, 0));

    // B refers the family on: A's journey continues there, out of A's view, counted once.
    let mut request = referral_request(
        &receiving.case_id,
        B_LEAD,
        POSTNATAL_CARE,
        basis(
            pb::LegalBasisKind::VitalInterest,
            "転入直後の産後ケアの確保",
        ),
    );
    request.idempotency_key = key();
    send(&chiyoda, request).await.unwrap();
    assert_eq!(journey_ends(&kodomo, &*hub.clock).await, (0, 1));
    assert_eq!(receiving.municipality, OTHER_MUNICIPALITY);
    assert_eq!(case.municipality, MUNICIPALITY);
    hub.stop().await;
}

#[tokio::test]
async fn a_transfer_under_way_is_on_the_meeting_packs_timeline_of_the_case() {
    use tsunagu_client::pack::{self, Format, Opener};

    let hub = two_municipalities().await;
    let kodomo = hub.client("kodomo").await;
    let case = open_case(&kodomo).await;
    register_case(&kodomo, &case.case_id, &japan_date(&*hub.clock, -1), "").await;
    propose(
        &kodomo,
        propose_request(&case.case_id, OTHER_MUNICIPALITY, between_councils()),
    )
    .await
    .unwrap();
    let meeting = schedule_meeting(
        &kodomo,
        pb::MeetingKind::Practitioners,
        &japan_date(&*hub.clock, 0),
        &[&case.case_id],
    )
    .await;
    let response = kodomo
        .council()
        .get_meeting_pack(pb::GetMeetingPackRequest {
            meeting_id: meeting.meeting_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let view = pack::build(&response, &Opener::new(&[]));
    let markdown = pack::render(&view, Format::Markdown);
    assert!(
        markdown.contains(&format!(
            "移管（{MUNICIPALITY} → {OTHER_MUNICIPALITY}）: 移管依頼中"
        )),
        "{markdown}"
    );
    hub.stop().await;
}
