//! Metrics for the operator: a Prometheus text endpoint on a listener of its own, and the tower
//! layer that counts and times every RPC. Labels are low-cardinality on purpose: method names,
//! gRPC code names, timer and tier codes, certificate roles and agency ids (a directory of tens),
//! never a case, referral or note id, a payload or a name.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http_body::{Body as HttpBody, Frame};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tower::{Layer, Service};

use crate::casework::audit::code_name;

/// Series names, in one place so that the README and the tests can name them.
pub mod names {
    pub const RPC_REQUESTS: &str = "tsunagu_rpc_requests_total";
    pub const RPC_DURATION: &str = "tsunagu_rpc_duration_seconds";
    pub const COMMIT_DURATION: &str = "tsunagu_commit_duration_seconds";
    pub const COMMIT_BATCH: &str = "tsunagu_commit_batch_writes";
    pub const OPEN_CONNECTIONS: &str = "tsunagu_open_connections";
    pub const OPEN_SUBSCRIPTIONS: &str = "tsunagu_open_subscriptions";
    /// Events a subscription had waiting each time it woke: 1 when it keeps up, more when it
    /// falls behind (a page of backlog counts up to the page size).
    pub const FEED_LAG: &str = "tsunagu_feed_lag_events";
    pub const ESCALATIONS: &str = "tsunagu_escalations_total";
    pub const HANDSHAKE_FAILURES: &str = "tsunagu_tls_handshake_failures_total";
    pub const CERTIFICATE_EXPIRY_DAYS: &str = "tsunagu_certificate_expiry_days";
    pub const DATABASE_UP: &str = "tsunagu_database_up";
}

/// Histogram buckets in seconds: from a cached read (~1 ms) to a stalled disk (10 s).
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder, installed on first use. One per process because the `metrics`
/// facade has one global recorder; several hubs in one process (tests) share it.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full(names::COMMIT_BATCH.to_owned()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                )
            })
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full(names::FEED_LAG.to_owned()),
                    &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0],
                )
            })
            .expect("the bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics stays empty");
        }
        handle
    })
}

/// Serves `GET /metrics` on `listener` until aborted, and keeps the histograms' windows moving.
pub fn serve(listener: TcpListener) -> tokio::task::JoinHandle<()> {
    let handle = handle();
    tokio::spawn(async move {
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
            }),
        );
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the metrics endpoint stopped");
        }
        upkeep.abort();
    })
}

/// Binds the metrics listener. A metrics port that is taken must not keep the hub from serving
/// agencies: the error is logged and the hub runs without the endpoint (the scraper sees the
/// target down and alerts).
pub async fn bind(listen: SocketAddr) -> Option<TcpListener> {
    match TcpListener::bind(listen).await {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::error!(
                %listen,
                %error,
                "cannot listen for metrics; serving without /metrics (set [metrics] listen)"
            );
            None
        }
    }
}

/// The method label of a request path: "ReferralService/SendReferral". Unknown methods are
/// counted as "unknown" once the service answered UNIMPLEMENTED, so that a caller inventing
/// paths cannot create series.
fn method_label(path: &str) -> String {
    let path = path.trim_start_matches('/');
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    let service = service.rsplit('.').next().unwrap_or(service);
    let ok =
        |s: &str| !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric());
    if ok(service) && ok(method) {
        format!("{service}/{method}")
    } else {
        "unknown".to_owned()
    }
}

/// Counts and times every RPC by method and gRPC status code. Outermost, so that calls the
/// identity layer refuses are counted too.
#[derive(Debug, Clone, Default)]
pub struct MetricsLayer;

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for MetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method_label(request.uri().path());
        let started = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            // A trailers-only response (every refusal) carries its status in the headers.
            let header_code = grpc_status(response.headers());
            let (parts, body) = response.into_parts();
            let call = CallRecord {
                method,
                started,
                done: false,
            };
            let body = match header_code {
                Some(code) => {
                    call.finish(code);
                    body
                }
                None => tonic::body::Body::new(MeteredBody { inner: body, call }),
            };
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map(tonic::Code::from)
}

/// One call, recorded once: when its status arrives, or as CANCELLED when the body is dropped
/// before (the caller went away).
struct CallRecord {
    method: String,
    started: Instant,
    done: bool,
}

impl CallRecord {
    fn finish(mut self, code: tonic::Code) {
        self.record(code);
    }

    fn record(&mut self, code: tonic::Code) {
        if self.done {
            return;
        }
        self.done = true;
        let method = if code == tonic::Code::Unimplemented {
            "unknown".to_owned()
        } else {
            std::mem::take(&mut self.method)
        };
        let code = code_name(code);
        metrics::counter!(names::RPC_REQUESTS, "method" => method.clone(), "code" => code)
            .increment(1);
        metrics::histogram!(names::RPC_DURATION, "method" => method, "code" => code)
            .record(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        self.record(tonic::Code::Cancelled);
    }
}

/// The response body, watched for the trailers that carry the call's status.
struct MeteredBody {
    inner: tonic::body::Body,
    call: CallRecord,
}

impl HttpBody for MeteredBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                    this.call.record(code);
                }
            }
            Poll::Ready(Some(Err(status))) => this.call.record(status.code()),
            Poll::Ready(None) => this.call.record(tonic::Code::Ok),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Counts a gauge up while alive and down when dropped: open connections, open subscriptions.
#[derive(Debug)]
pub struct GaugeGuard(&'static str);

impl GaugeGuard {
    pub fn new(name: &'static str) -> Self {
        metrics::gauge!(name).increment(1.0);
        Self(name)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        metrics::gauge!(self.0).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_name_the_service_and_method_and_nothing_a_caller_invents() {
        assert_eq!(
            method_label("/tsunagu.v1.ReferralService/SendReferral"),
            "ReferralService/SendReferral"
        );
        assert_eq!(method_label("/x/../../etc"), "unknown");
        assert_eq!(method_label("/tsunagu.v1.CaseService/case-0193"), "unknown");
    }
}
