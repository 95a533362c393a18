//! The access layer, outermost around every gRPC route: one log line per call (method, code,
//! agency, duration; never a payload or an id of a case), and the transport's refusal of an
//! oversized request turned into RESOURCE_EXHAUSTED naming the limit.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use tonic::{Code, Status};
use tower::{Layer, Service};
use tracing::Instrument as _;

/// Where the identity layer leaves the caller's agency id for the access log line.
#[derive(Debug, Clone, Default)]
pub struct AccessSlot(Arc<OnceLock<String>>);

impl AccessSlot {
    /// Records the agency that made the call (the first one set wins).
    pub fn set_agency(&self, agency: &str) {
        let _ = self.0.set(agency.to_owned());
    }

    fn agency(&self) -> &str {
        self.0.get().map_or("-", String::as_str)
    }
}

/// The limits an oversized request is told about.
#[derive(Debug, Clone, Copy)]
pub struct AccessLayer {
    max_message_bytes: usize,
    max_sealed_bytes: usize,
}

impl AccessLayer {
    pub fn new(max_message_bytes: usize, max_sealed_bytes: usize) -> Self {
        Self {
            max_message_bytes,
            max_sealed_bytes,
        }
    }

    /// tonic refuses a request over `max_decoding_message_size` with OUT_OF_RANGE and a message
    /// of its own; the hub's contract is RESOURCE_EXHAUSTED naming the limit and what to do.
    fn oversized(&self, status: &Status) -> Option<Status> {
        if status.code() != Code::OutOfRange
            || !status
                .message()
                .contains("decoded message length too large")
        {
            return None;
        }
        let size = status
            .message()
            .split("found ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<usize>().ok());
        let size = size.map_or_else(|| "the request".to_owned(), |n| format!("{n} bytes"));
        Some(Status::resource_exhausted(format!(
            "request: {size} is over the hub's message limit of {} bytes (limits.max_message_bytes); \
             each sealed field may hold at most {} bytes (limits.max_sealed_bytes): send large \
             content as several notes",
            self.max_message_bytes, self.max_sealed_bytes
        )))
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessService {
            inner,
            layer: *self,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AccessService<S> {
    inner: S,
    layer: AccessLayer,
}

impl<S, B> Service<http::Request<B>> for AccessService<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = request.uri().path().to_owned();
        let slot = AccessSlot::default();
        request.extensions_mut().insert(slot.clone());
        let layer = self.layer;
        // The call's span for OpenTelemetry (`[traces]`); at TRACE so that the log's filter
        // leaves it out and no log line carries its fields.
        let span = tracing::trace_span!(
            target: "tsunagu_hub::access",
            "rpc",
            otel.name = %method,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            tsunagu.agency = tracing::field::Empty,
        );
        let future = span.in_scope(|| self.inner.call(request));
        let in_span = span.clone();
        Box::pin(
            async move {
                let mut response = future.await?;
                // A refusal before any message (trailers-only) carries its status in the headers.
                let code = Status::from_header_map(response.headers()).map(|status| {
                    if let Some(mapped) = layer.oversized(&status) {
                        response = mapped.into_http();
                        return Code::ResourceExhausted;
                    }
                    status.code()
                });
                let (parts, body) = response.into_parts();
                let body = AccessBody {
                    inner: body,
                    line: Some(Line {
                        method,
                        slot,
                        started,
                        code,
                        span,
                    }),
                };
                Ok(http::Response::from_parts(
                    parts,
                    tonic::body::Body::new(body),
                ))
            }
            .instrument(in_span),
        )
    }
}

/// What the access log line says, written once the call's stream ends (or is dropped).
struct Line {
    method: String,
    slot: AccessSlot,
    started: Instant,
    code: Option<Code>,
    /// Ends when the line is written (or dropped): the span covers the whole stream.
    span: tracing::Span,
}

impl Line {
    fn write(self) {
        let duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        // The code as the peer saw it; "unfinished" when the peer went away before the end.
        let code = self
            .code
            .map_or_else(|| "unfinished".to_owned(), |code| format!("{code:?}"));
        let agency = self.slot.agency();
        self.span.record("tsunagu.agency", agency);
        if let Some(grpc) = self.code {
            self.span.record("rpc.grpc.status_code", grpc as i32);
            // Server errors only: a refusal of bad input is the hub working as it should.
            if matches!(
                grpc,
                Code::Unknown
                    | Code::Internal
                    | Code::Unavailable
                    | Code::DataLoss
                    | Code::DeadlineExceeded
                    | Code::Unimplemented
            ) {
                self.span.record("otel.status_code", "ERROR");
            }
        }
        // Health checks come every few seconds from load balancers: kept out of the info log.
        if self.method.starts_with("/grpc.health.v1.") {
            tracing::debug!(target: "tsunagu_hub::access", method = %self.method, %code, agency, duration_ms, "call");
        } else {
            tracing::info!(target: "tsunagu_hub::access", method = %self.method, %code, agency, duration_ms, "call");
        }
    }
}

/// The response body, watched for the trailers that carry the call's final code.
struct AccessBody<B> {
    inner: B,
    line: Option<Line>,
}

impl<B> Body for AccessBody<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(status) = Status::from_header_map(trailers)
                    && let Some(line) = self.line.as_mut()
                {
                    line.code = Some(status.code());
                }
            }
            Poll::Ready(None) => {
                if let Some(line) = self.line.take() {
                    line.write();
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for AccessBody<B> {
    fn drop(&mut self) {
        if let Some(line) = self.line.take() {
            line.write();
        }
    }
}
