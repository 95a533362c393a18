//! Who may connect: valid, foreign, expired, revoked, unregistered and suspended certificates.

use std::time::Duration;

use tsunagu_hub::domain::AgencyStatus;
use tsunagu_hub::pki::{Validity, testing};
use tsunagu_proto::v1::WhoAmIRequest;
use tsunagu_tests::{MUNICIPALITY, TRUST_DOMAIN, TestHub};

/// Calls WhoAmI with a fresh connection presenting `certificate`; any failure becomes text.
async fn who_am_i(
    hub: &TestHub,
    certificate: Option<&tsunagu_hub::pki::IssuedCertificate>,
) -> Result<tsunagu_proto::v1::WhoAmIResponse, (Option<tonic::Code>, String)> {
    let client = hub.connect(certificate).await.map_err(|e| (None, e))?;
    client
        .directory()
        .who_am_i(WhoAmIRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| (Some(status.code()), format!("{status:?}")))
}

async fn assert_hub_still_serves(hub: &TestHub) {
    let certificate = hub.pki.agency_certificate("hospital");
    let me = who_am_i(hub, Some(&certificate)).await.unwrap();
    assert_eq!(me.agency.unwrap().agency_id, "hospital");
}

#[tokio::test]
async fn who_am_i_returns_the_agency_as_registered() {
    let hub = TestHub::start().await;
    let certificate = hub.pki.agency_certificate("kodomo");
    let me = who_am_i(&hub, Some(&certificate)).await.unwrap();
    let agency = me.agency.unwrap();
    assert_eq!(agency.agency_id, "kodomo");
    assert_eq!(agency.kind, "health_centre");
    assert_eq!(agency.display_name, "青葉区こども家庭センター");
    assert_eq!(agency.municipalities, vec![MUNICIPALITY]);
    assert_eq!(agency.coordinator_of, vec![MUNICIPALITY]);
    assert_eq!(agency.council_memberships, vec![MUNICIPALITY]);
    assert_eq!(
        agency.spiffe_id,
        format!("spiffe://{TRUST_DOMAIN}/agency/kodomo")
    );
    assert_eq!(me.certificate_fingerprint, certificate.fingerprint_sha256);
    hub.stop().await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_and_the_hub_goes_on() {
    let hub = TestHub::start().await;
    let refused = who_am_i(&hub, None).await;
    assert!(refused.is_err(), "a client with no certificate got in");
    assert_hub_still_serves(&hub).await;
    hub.stop().await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_with_a_real_agency_san_is_refused() {
    let hub = TestHub::start().await;
    let forged = hub
        .pki
        .other_ca
        .issue_agency(TRUST_DOMAIN, "kodomo", Validity::days_from_now(30))
        .unwrap();
    let refused = who_am_i(&hub, Some(&forged)).await;
    assert!(refused.is_err(), "a certificate of another CA got in");
    assert_hub_still_serves(&hub).await;
    hub.stop().await;
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let hub = TestHub::start().await;
    let expired = hub
        .pki
        .ca
        .issue_agency(TRUST_DOMAIN, "kodomo", testing::expired())
        .unwrap();
    let refused = who_am_i(&hub, Some(&expired)).await;
    assert!(refused.is_err(), "an expired certificate got in");
    assert_hub_still_serves(&hub).await;
    hub.stop().await;
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_after_the_crl_changes_without_a_restart() {
    let hub = TestHub::start().await;
    let certificate = hub.pki.agency_certificate("nursery");
    who_am_i(&hub, Some(&certificate)).await.unwrap();

    // An open connection made before the revocation.
    let open = hub.connect(Some(&certificate)).await.unwrap();
    open.directory().who_am_i(WhoAmIRequest {}).await.unwrap();

    hub.pki
        .publish_crl(std::slice::from_ref(&certificate.serial));
    let mut refused = None;
    for _ in 0..50 {
        match who_am_i(&hub, Some(&certificate)).await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(error) => {
                refused = Some(error);
                break;
            }
        }
    }
    assert!(
        refused.is_some(),
        "the revoked certificate still got in after 5 s"
    );

    // The connection opened before the revocation is refused on its next call, too.
    let status = open
        .directory()
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(status.message().contains("revoked"), "{status:?}");

    assert_hub_still_serves(&hub).await;
    hub.stop().await;
}

#[tokio::test]
async fn an_unregistered_agency_is_told_it_is_not_registered() {
    let hub = TestHub::start().await;
    let stranger = hub.pki.agency_certificate("unknown-clinic");
    let (code, message) = who_am_i(&hub, Some(&stranger)).await.unwrap_err();
    assert_eq!(code, Some(tonic::Code::Unauthenticated));
    assert!(message.contains("not registered"), "{message}");
    assert!(message.contains("unknown-clinic"), "{message}");
    hub.stop().await;
}

#[tokio::test]
async fn a_certificate_without_an_agency_identity_is_refused_with_the_reason() {
    let hub = TestHub::start().await;
    let odd = testing::issue_client_with_uri(
        &hub.pki.ca,
        "spiffe://elsewhere.example/agency/kodomo",
        Validity::days_from_now(3),
    )
    .unwrap();
    let (code, message) = who_am_i(&hub, Some(&odd)).await.unwrap_err();
    assert_eq!(code, Some(tonic::Code::Unauthenticated));
    assert!(message.contains("no agency identity"), "{message}");
    hub.stop().await;
}

#[tokio::test]
async fn a_suspended_agency_is_refused_on_open_connections_and_resume_lets_it_back() {
    let hub = TestHub::start().await;
    let client = hub.client("hiroba").await;
    client.directory().who_am_i(WhoAmIRequest {}).await.unwrap();

    hub.set_status("hiroba", AgencyStatus::Suspended).await;
    let status = client
        .directory()
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(status.message().contains("suspended"), "{status:?}");

    hub.set_status("hiroba", AgencyStatus::Active).await;
    let me = client
        .directory()
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.agency.unwrap().agency_id, "hiroba");
    hub.stop().await;
}

#[tokio::test]
async fn an_agency_may_hold_two_valid_certificates_during_rotation() {
    let hub = TestHub::start().await;
    let old = hub.pki.agency_certificate("kodomo");
    let new = hub.pki.agency_certificate("kodomo");
    assert_ne!(old.fingerprint_sha256, new.fingerprint_sha256);
    for certificate in [&old, &new] {
        let me = who_am_i(&hub, Some(certificate)).await.unwrap();
        assert_eq!(me.agency.unwrap().agency_id, "kodomo");
    }
    hub.stop().await;
}
