//! OpenTelemetry traces, off unless `[traces] otlp_endpoint` is set: the access layer's one
//! span per call, exported over OTLP/gRPC in batches. A span names the method, the gRPC code
//! and the agency, as the access log line does; never a payload, a name or an id of a case.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

use crate::settings::TracesSettings;

/// The target of the per-call spans: the only spans exported, whatever `RUST_LOG` says.
pub const SPAN_TARGET: &str = "tsunagu_hub::access";

/// The exporter of a configured collector; `shutdown` flushes the spans still in its batch.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Builds the exporter when an endpoint is configured. Must run inside the Tokio runtime:
    /// the gRPC exporter's channel lives on it.
    pub fn start(
        settings: &TracesSettings,
    ) -> Result<Option<Self>, opentelemetry_otlp::ExporterBuildError> {
        let Some(endpoint) = &settings.otlp_endpoint else {
            return Ok(None);
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(settings.service_name.clone())
                    .build(),
            )
            .build();
        Ok(Some(Self { provider }))
    }

    /// The `tracing` layer that turns the per-call spans into OpenTelemetry spans (and nothing
    /// else: events and other spans stay in the log).
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("tsunagu-hub"))
            .with_filter(Targets::new().with_target(SPAN_TARGET, tracing::Level::TRACE))
    }

    /// Sends what is left in the batch; called when the hub stops.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(error = %error, "traces: the last spans could not be exported");
        }
    }
}
