//! The identity layer: maps the peer certificate's SPIFFE URI to a registered agency on every
//! call, and refuses the call before any handler runs when the agency is unknown, suspended or
//! its certificate revoked or expired.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::Status;
use tower::{Layer, Service};

use crate::casework::audit::{Auditor, code_name};
use crate::domain::audit::AuditEntry;
use crate::domain::{Agency, AgencyId, AgencyStatus, Clock};
use crate::store::Locking;
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
    auditor: Auditor,
    /// Certificates already recorded as seen by this process, so that a call costs no write.
    seen: Arc<Mutex<HashSet<String>>>,
}

/// A refusal, with the agency the certificate named when it named one (the refusal is then
/// audited under that agency).
struct Refusal {
    status: Status,
    agency: Option<AgencyId>,
}

impl From<Status> for Refusal {
    fn from(status: Status) -> Self {
        Self {
            status,
            agency: None,
        }
    }
}

impl IdentityLayer {
    pub fn new(
        store: Arc<dyn Store>,
        tls: Arc<TlsState>,
        trust_domain: &str,
        clock: Arc<dyn Clock>,
        auditor: Auditor,
    ) -> Self {
        Self {
            store,
            tls,
            trust_domain: Arc::from(trust_domain),
            clock,
            auditor,
            seen: Arc::default(),
        }
    }

    /// Records, once per process and certificate, that a registered agency presented it: the
    /// hub warns before the one an agency uses expires. Off the call's path.
    fn note_certificate(&self, agency: &AgencyId, certificate: &PeerCertificate) {
        let first = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(certificate.fingerprint.clone());
        if !first {
            return;
        }
        let (store, agency, at) = (Arc::clone(&self.store), agency.clone(), self.clock.now());
        let (fingerprint, not_after) = (certificate.fingerprint.clone(), certificate.not_after);
        let seen = Arc::clone(&self.seen);
        tokio::spawn(async move {
            let written = async {
                let (agency, fingerprint) = (agency.clone(), fingerprint.clone());
                store
                    .write(Locking::Exclusive, move |tx| {
                        Box::pin(async move {
                            tx.record_certificate_seen(&agency, &fingerprint, not_after, at)
                                .await
                        })
                    })
                    .await
            }
            .await;
            if let Err(error) = written {
                tracing::warn!(
                    error = %crate::error::cause_chain(&error),
                    %agency,
                    "cannot record the certificate an agency presented; trying at its next call"
                );
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&fingerprint);
            }
        });
    }

    /// Appends the audit record of a refused call by a named agency: who was turned away from
    /// which call, and why (the gRPC code). Waits until it is durable.
    async fn audit_refusal(&self, agency: &AgencyId, path: &str, status: &Status) {
        // The path is the caller's text: keep it short, it is not a registered method.
        let action: String = path.trim_start_matches('/').chars().take(128).collect();
        let entry = AuditEntry {
            at: self.clock.now(),
            agency_id: agency.to_string(),
            staff_name: None,
            staff_role: None,
            action,
            municipality: None,
            case_id: None,
            referral_id: None,
            note_id: None,
            consent_id: None,
            basis: None,
            outcome: code_name(status.code()).to_owned(),
        };
        if let Err(error) = self.auditor.record_outside(&self.store, entry).await {
            tracing::error!(
                error = %crate::error::cause_chain(&error),
                %agency,
                "cannot audit a refused call"
            );
        }
    }

    /// Decides who the caller is, or why it is refused.
    async fn authenticate(&self, peer: Option<&PeerInfo>) -> Result<Caller, Refusal> {
        let certificate = peer
            .and_then(|peer| peer.certificate.clone())
            .ok_or_else(|| {
                Status::unauthenticated(
                    "no client certificate: connect with your agency's certificate",
                )
            })?;
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
        let refuse = |status: Status| Refusal {
            status,
            agency: Some(agency_id.clone()),
        };
        if self.tls.revoked_serials().contains(&certificate.serial) {
            return Err(refuse(Status::unauthenticated(
                "this client certificate has been revoked (CRL); ask the hub operator for a new one",
            )));
        }
        let now_seconds = self.clock.now().millis() / 1000;
        if certificate.not_after < now_seconds {
            return Err(refuse(Status::unauthenticated(
                "this client certificate has expired; ask the hub operator for a new one",
            )));
        }
        let (agency, revoked) = self
            .store
            .caller_identity(&agency_id, &certificate.fingerprint)
            .await
            .map_err(|error| Refusal::from(unavailable(error)))?;
        if revoked {
            return Err(refuse(Status::unauthenticated(format!(
                "certificate {} of agency {agency_id} was revoked by the hub operator; \
                 ask for a new one",
                certificate.fingerprint
            ))));
        }
        match agency {
            None => Err(refuse(Status::unauthenticated(format!(
                "agency {agency_id} is not registered with this hub; ask the hub operator to run \
                 `tsunagu-hub agency add {agency_id} ...`"
            )))),
            Some(agency) if agency.status == AgencyStatus::Suspended => {
                Err(refuse(Status::permission_denied(format!(
                    "agency {agency_id} is suspended by the hub operator; calls are refused until \
                     `tsunagu-hub agency resume {agency_id}`"
                ))))
            }
            Some(agency) => {
                self.note_certificate(&agency.id, &certificate);
                Ok(Caller {
                    agency,
                    certificate,
                })
            }
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
                    if let Some(slot) = request.extensions().get::<crate::access::AccessSlot>() {
                        slot.set_agency(caller.agency.id.as_str());
                    }
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(Refusal { status, agency }) => {
                    tracing::info!(
                        path = request.uri().path(),
                        code = ?status.code(),
                        reason = status.message(),
                        "call refused by the identity layer"
                    );
                    // A database that is down cannot take the record either; the log has it.
                    if let Some(agency) =
                        agency.filter(|_| status.code() != tonic::Code::Unavailable)
                    {
                        layer
                            .audit_refusal(&agency, request.uri().path(), &status)
                            .await;
                    }
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
