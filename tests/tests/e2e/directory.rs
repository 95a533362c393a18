//! The directory, health and reflection, and input validation at the boundary.

use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tsunagu_proto::v1::ListAgenciesRequest;
use tsunagu_tests::fixtures::{
    assert_refused, list_cases, open_case_request, sealed_of_at_least, try_open_case,
};
use tsunagu_tests::{AGENCIES, MUNICIPALITY, OTHER_MUNICIPALITY, TestHub};

#[tokio::test]
async fn list_agencies_filters_by_municipality_and_kind() {
    let hub = TestHub::start().await;
    let client = hub.client("kodomo").await;
    let all = client
        .directory()
        .list_agencies(ListAgenciesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .agencies;
    assert_eq!(all.len(), AGENCIES.len());

    let aoba = client
        .directory()
        .list_agencies(ListAgenciesRequest {
            municipality: MUNICIPALITY.to_owned(),
            kind: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .agencies;
    assert!(
        aoba.iter()
            .all(|a| a.municipalities.contains(&MUNICIPALITY.to_owned()))
    );
    assert!(
        !aoba
            .iter()
            .any(|a| a.municipalities.contains(&OTHER_MUNICIPALITY.to_owned()))
    );

    let hospitals = client
        .directory()
        .list_agencies(ListAgenciesRequest {
            municipality: String::new(),
            kind: "hospital".to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .agencies;
    assert_eq!(hospitals.len(), 1);
    assert_eq!(hospitals[0].agency_id, "hospital");
    hub.stop().await;
}

#[tokio::test]
async fn malformed_directory_filters_name_the_field() {
    let hub = TestHub::start().await;
    let client = hub.client("kodomo").await;
    let status = client
        .directory()
        .list_agencies(ListAgenciesRequest {
            municipality: "12345x".to_owned(),
            kind: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().starts_with("municipality:"), "{status:?}");

    let status = client
        .directory()
        .list_agencies(ListAgenciesRequest {
            municipality: String::new(),
            kind: "Hospital!".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().starts_with("kind:"), "{status:?}");
    hub.stop().await;
}

#[tokio::test]
async fn health_reports_serving() {
    let hub = TestHub::start().await;
    let client = hub.client("kodomo").await;
    let mut health = HealthClient::new(client.channel());
    for service in ["", "tsunagu.v1.DirectoryService"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{service:?}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_tsunagu_services_and_health() {
    let hub = TestHub::start().await;
    let client = hub.client("kodomo").await;
    let mut reflection = ServerReflectionClient::new(client.channel());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "tsunagu.v1.DirectoryService",
        "tsunagu.v1.CaseService",
        "tsunagu.v1.ReferralService",
        "tsunagu.v1.EventService",
        "tsunagu.v1.CouncilService",
        "tsunagu.v1.AuditService",
        "tsunagu.v1.OutcomeService",
        "tsunagu.v1.TransferService",
        "tsunagu.v1.SealingService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    hub.stop().await;
}

#[tokio::test]
async fn reflection_v1alpha_is_served_as_well_as_v1() {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as Alpha;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse as AlphaResponse;

    let hub = TestHub::start().await;
    let client = hub.client("kodomo").await;
    let mut reflection = Alpha::new(client.channel());
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(AlphaRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(AlphaResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "tsunagu.v1.ReferralService"),
        "{names:?}"
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_10_mib_request_gets_resource_exhausted_naming_the_limit_and_writes_nothing() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let mut request = open_case_request(MUNICIPALITY);
    request.header = Some(sealed_of_at_least(10 * 1024 * 1024));
    let status = assert_refused(
        try_open_case(&kodomo, request).await,
        Code::ResourceExhausted,
        &["max_message_bytes", "4194304 bytes"],
    );
    assert!(status.message().starts_with("request: "), "{status:?}");
    // The connection still serves, and no case was opened.
    assert!(list_cases(&kodomo).await.is_empty());
    hub.stop().await;
}
