//! OpenTelemetry traces: the real hub binary, configured with `[traces] otlp_endpoint`, exports
//! one span per call to an OTLP/gRPC collector that the test runs, and no span carries a case id.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio_stream::wrappers::TcpListenerStream;
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::*;
use tsunagu_tests::{MUNICIPALITY, TestPki, workspace_binary};

use crate::operator::{ChildGuard, free_port, wait_for_port};

/// A collector that keeps every export it receives.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Every span received so far, with its resource's `service.name`.
    fn spans(&self) -> Vec<(String, Span)> {
        let exports = self.0.lock().unwrap();
        let mut spans = Vec::new();
        for export in exports.iter() {
            for resource_spans in &export.resource_spans {
                let service = resource_spans
                    .resource
                    .as_ref()
                    .and_then(|resource| attribute(&resource.attributes, "service.name"))
                    .unwrap_or_default();
                for scope in &resource_spans.scope_spans {
                    for span in &scope.spans {
                        spans.push((service.clone(), span.clone()));
                    }
                }
            }
        }
        spans
    }
}

fn text_of(value: &Option<AnyValue>) -> Option<String> {
    match value.as_ref()?.value.as_ref()? {
        Value::StringValue(text) => Some(text.clone()),
        Value::IntValue(number) => Some(number.to_string()),
        Value::BoolValue(flag) => Some(flag.to_string()),
        Value::DoubleValue(number) => Some(number.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text_of(&kv.value))
}

#[tokio::test]
async fn a_hub_with_an_otlp_endpoint_exports_one_span_per_call_naming_no_case() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let port = free_port();
    let config = pki.write_hub_config(
        port,
        &format!(
            "[metrics]\nenabled = false\n\
             [traces]\notlp_endpoint = \"http://{collector_addr}\"\nservice_name = \"hub-aoba\""
        ),
    );
    let config_arg = config.to_str().unwrap();
    let hub_binary = workspace_binary("tsunagu-hub", "tsunagu-hub");
    let added = Command::new(&hub_binary)
        .env_clear()
        .args(["--config", config_arg, "agency", "add", "kodomo"])
        .args([
            "--kind",
            "health_centre",
            "--name",
            "青葉区こども家庭センター",
        ])
        .args(["--municipality", MUNICIPALITY])
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let mut hub = ChildGuard(
        Command::new(&hub_binary)
            .current_dir(dir.path())
            .env_clear()
            .args(["--config", config_arg, "serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, &mut hub.0);

    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let certificate = pki.agency_certificate("kodomo");
    let client = tsunagu_client::Hub::connect(&pki.connect_options(addr, Some(&certificate)))
        .await
        .unwrap();
    client
        .directory()
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .unwrap();
    let case = open_case(&client).await;
    // A refusal: the span carries its code too.
    let refused = get_case(&client, "0192f1a0-0000-7000-8000-000000000000").await;
    assert!(refused.is_err());

    // The batch goes out every few seconds; SIGTERM flushes what is left.
    drop(client);
    let status = Command::new("kill")
        .args(["-TERM", &hub.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let spans = loop {
        let spans = collector.spans();
        let names: Vec<&str> = spans.iter().map(|(_, span)| span.name.as_str()).collect();
        if names.iter().any(|name| name.ends_with("/GetCase")) {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "the collector got no GetCase span within 30 s: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    hub.0.wait().unwrap();

    let find = |suffix: &str| {
        spans
            .iter()
            .find(|(_, span)| span.name.ends_with(suffix))
            .unwrap_or_else(|| panic!("no span for {suffix}"))
    };
    for (method, code) in [("/WhoAmI", "0"), ("/OpenCase", "0"), ("/GetCase", "7")] {
        let (service, span) = find(method);
        assert_eq!(service, "hub-aoba");
        assert_eq!(
            attribute(&span.attributes, "rpc.grpc.status_code").as_deref(),
            Some(code),
            "{method}"
        );
        assert_eq!(
            attribute(&span.attributes, "tsunagu.agency").as_deref(),
            Some("kodomo"),
            "{method}"
        );
        assert_eq!(
            attribute(&span.attributes, "rpc.system").as_deref(),
            Some("grpc")
        );
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    }
    // Only the per-call spans are exported, and nothing in them names a case or its contents.
    for (_, span) in &spans {
        assert!(span.name.starts_with("/tsunagu.v1."), "{}", span.name);
        let everything = format!("{span:?}");
        assert!(!everything.contains(&case.case_id), "{everything}");
        assert!(!everything.contains("山田"), "{everything}");
    }
    serving.abort();
}
