//! The identity layer: maps the peer certificate's SPIFFE URI to a registered agency on every
//! call, and refuses the call before any handler runs when the agency is unknown, suspended or
//! its certificate revoked or expired.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::Status;
use tower::{Layer, Service};

use crate::domain::{Agency, AgencyId, AgencyStatus, Clock};
use crate::store::Store;
use crate::tls::{PeerCertificate, PeerInfo, TlsState};

/// The authenticated caller, put into the request extensions for the handlers.
#[derive(Debug, Clone)]
pub struct Caller {
    pub agency: Agency,
    pub certificate: Arc<PeerCertificate>,
}

/// Paths that any certificate the CA verified may call without being a registered agency:
/// health checks and reflection expose no case data.
fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
}

/// Everything the layer needs to decide.
#[derive(Clone)]
pub struct IdentityLayer {
    store: Arc<dyn Store>,
    tls: Arc<TlsState>,
    trust_domain: Arc<str>,
    clock: Arc<dyn Clock>,
}

impl IdentityLayer {
    pub fn new(
        store: Arc<dyn Store>,
        tls: Arc<TlsState>,
        trust_domain: &str,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            tls,
            trust_domain: Arc::from(trust_domain),
            clock,
        }
    }

    /// Decides who the caller is, or why it is refused.
    async fn authenticate(&self, peer: Option<&PeerInfo>) -> Result<Caller, Status> {
        let certificate = peer
            .and_then(|peer| peer.certificate.clone())
            .ok_or_else(|| {
                Status::unauthenticated(
                    "no client certificate: connect with your agency's certificate",
                )
            })?;
        if self.tls.revoked_serials().contains(&certificate.serial) {
            return Err(Status::unauthenticated(
                "this client certificate has been revoked (CRL); ask the hub operator for a new one",
            ));
        }
        let now_seconds = self.clock.now().millis() / 1000;
        if certificate.not_after < now_seconds {
            return Err(Status::unauthenticated(
                "this client certificate has expired; ask the hub operator for a new one",
            ));
        }
        let agency_id = certificate
            .uris
            .iter()
            .find_map(|uri| AgencyId::from_spiffe_uri(uri, &self.trust_domain))
            .ok_or_else(|| {
                Status::unauthenticated(format!(
                    "the client certificate carries no agency identity \
                     (a URI SAN spiffe://{}/agency/<agency-id>)",
                    self.trust_domain
                ))
            })?;
        let (agency, revoked) = self
            .store
            .caller_identity(&agency_id, &certificate.fingerprint)
            .await
            .map_err(unavailable)?;
        if revoked {
            return Err(Status::unauthenticated(format!(
                "certificate {} of agency {agency_id} was revoked by the hub operator; \
                 ask for a new one",
                certificate.fingerprint
            )));
        }
        match agency {
            None => Err(Status::unauthenticated(format!(
                "agency {agency_id} is not registered with this hub; ask the hub operator to run \
                 `tsunagu-hub agency add {agency_id} ...`"
            ))),
            Some(agency) if agency.status == AgencyStatus::Suspended => {
                Err(Status::permission_denied(format!(
                    "agency {agency_id} is suspended by the hub operator; calls are refused until \
                     `tsunagu-hub agency resume {agency_id}`"
                )))
            }
            Some(agency) => Ok(Caller {
                agency,
                certificate,
            }),
        }
    }
}

fn unavailable(error: crate::store::StoreError) -> Status {
    Status::from(crate::error::Error::from(error))
}

impl<S> Layer<S> for IdentityLayer {
    type Service = IdentityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IdentityService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service the layer wraps around the gRPC routes.
#[derive(Clone)]
pub struct IdentityService<S> {
    inner: S,
    layer: IdentityLayer,
}

impl<S, B> Service<http::Request<B>> for IdentityService<S>
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

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The ready clone serves this call; a fresh clone waits for the next poll_ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let peer = request.extensions().get::<PeerInfo>().cloned();
            if is_public(request.uri().path()) {
                return inner.call(request).await;
            }
            match layer.authenticate(peer.as_ref()).await {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(status) => {
                    tracing::info!(
                        path = request.uri().path(),
                        code = ?status.code(),
                        reason = status.message(),
                        "call refused by the identity layer"
                    );
                    Ok(status.into_http())
                }
            }
        })
    }
}

/// The caller a handler is serving. The identity layer always sets it; its absence is a bug.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<&Caller, Status> {
    request.extensions().get::<Caller>().ok_or_else(|| {
        tracing::error!("request reached a handler without an authenticated caller");
        Status::internal("internal error")
    })
}
