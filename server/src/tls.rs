//! The hub's TLS front door: its own rustls `ServerConfig` (client certificates required,
//! verified against the agency CA and its CRLs), reloaded without a restart, and an acceptor that
//! runs handshakes concurrently with a timeout and drops the ones that fail.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

use crate::settings::TlsSettings;

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} holds no usable {what}")]
    Pem { path: PathBuf, what: &'static str },
    #[error("the client CA in {path} is not a usable trust anchor")]
    TrustAnchor {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot build the client certificate verifier (check the CA and CRL files)")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    #[error("the hub certificate and key do not make a TLS configuration")]
    ServerConfig(#[source] rustls::Error),
    #[error("CRL {path} cannot be parsed")]
    Crl { path: PathBuf, reason: String },
}

/// Serial numbers revoked by the current CRLs, so that calls on connections opened before a
/// revocation are refused too.
#[derive(Debug, Default)]
pub struct RevokedSerials(std::collections::HashSet<Vec<u8>>);

impl RevokedSerials {
    pub fn contains(&self, serial: &[u8]) -> bool {
        self.0.contains(serial)
    }
}

/// What the hub knows of a connection's peer, attached to every request on it.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote_addr: SocketAddr,
    /// `None` when the peer presented no certificate (the verifier requires one, so only in
    /// theory).
    pub certificate: Option<Arc<PeerCertificate>>,
}

/// The parts of the peer's leaf certificate that identity decisions need.
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint: String,
    /// Big-endian serial number.
    pub serial: Vec<u8>,
    /// Every URI subject alternative name.
    pub uris: Vec<String>,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
}

impl PeerCertificate {
    pub fn parse(der: &[u8]) -> Option<Self> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut uris = Vec::new();
        if let Ok(Some(san)) = certificate.subject_alternative_name() {
            for name in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::URI(uri) = name {
                    uris.push((*uri).to_owned());
                }
            }
        }
        Some(Self {
            fingerprint: crate::pki::certificate_fingerprint(der),
            serial: certificate.raw_serial().to_vec(),
            uris,
            not_after: certificate.validity().not_after.timestamp(),
        })
    }
}

/// The TLS configuration in force, swapped atomically when the files change.
pub struct TlsState {
    settings: TlsSettings,
    config: ArcSwap<rustls::ServerConfig>,
    revoked: ArcSwap<RevokedSerials>,
    seen: std::sync::Mutex<Vec<Option<u64>>>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TlsState {
    /// Loads every file once; fails when any is missing or bad.
    pub fn load(settings: &TlsSettings) -> Result<Arc<Self>, TlsError> {
        let (config, revoked) = build_config(settings)?;
        Ok(Arc::new(Self {
            settings: settings.clone(),
            config: ArcSwap::from_pointee(config),
            revoked: ArcSwap::from_pointee(revoked),
            seen: std::sync::Mutex::new(file_times(settings)),
        }))
    }

    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.config.load_full()
    }

    pub fn revoked_serials(&self) -> Arc<RevokedSerials> {
        self.revoked.load_full()
    }

    /// Re-reads the files. On failure the configuration in force stays and the error is returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        let times = file_times(&self.settings);
        let (config, revoked) = build_config(&self.settings)?;
        self.config.store(Arc::new(config));
        self.revoked.store(Arc::new(revoked));
        if let Ok(mut seen) = self.seen.lock() {
            *seen = times;
        }
        tracing::info!("TLS configuration and CRLs reloaded");
        Ok(())
    }

    /// Reloads when any file changed since the last load.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let times = file_times(&self.settings);
        let changed = self.seen.lock().map(|seen| *seen != times).unwrap_or(true);
        if changed {
            self.reload()?;
        }
        Ok(changed)
    }

    /// Watches for SIGHUP and for changed files until the process ends.
    pub fn spawn_reloader(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let state = Arc::clone(self);
        tokio::spawn(async move {
            let mut hangup = hangup_signal();
            let mut tick = tokio::time::interval(state.settings.reload_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let forced = tokio::select! {
                    _ = tick.tick() => false,
                    _ = next_hangup(&mut hangup) => true,
                };
                let result = if forced {
                    state.reload().map(|_| true)
                } else {
                    state.reload_if_changed()
                };
                if let Err(error) = result {
                    tracing::error!(
                        error = %crate::error::cause_chain(&error),
                        "TLS reload failed; the previous configuration stays in force"
                    );
                }
            }
        })
    }
}

#[cfg(unix)]
fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(unix)]
async fn next_hangup(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Option<()> {
    None
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Option<()>) {
    std::future::pending().await
}

fn watched_files(settings: &TlsSettings) -> Vec<&Path> {
    let mut files = vec![
        settings.client_ca.as_path(),
        settings.certificate.as_path(),
        settings.private_key.as_path(),
    ];
    files.extend(settings.crls.iter().map(PathBuf::as_path));
    files
}

/// A digest of each file's contents: modification times can be too coarse to see two writes in
/// the same second, and the files are small.
fn file_times(settings: &TlsSettings) -> Vec<Option<u64>> {
    use std::hash::{Hash as _, Hasher as _};
    watched_files(settings)
        .into_iter()
        .map(|path| {
            std::fs::read(path).ok().map(|bytes| {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut hasher);
                hasher.finish()
            })
        })
        .collect()
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn build_config(
    settings: &TlsSettings,
) -> Result<(rustls::ServerConfig, RevokedSerials), TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    let ca_pem = read(&settings.client_ca)?;
    let mut roots = RootCertStore::empty();
    let mut anchors = 0;
    for cert in CertificateDer::pem_slice_iter(&ca_pem) {
        let cert = cert.map_err(|_| TlsError::Pem {
            path: settings.client_ca.clone(),
            what: "CA certificate",
        })?;
        roots.add(cert).map_err(|source| TlsError::TrustAnchor {
            path: settings.client_ca.clone(),
            source,
        })?;
        anchors += 1;
    }
    if anchors == 0 {
        return Err(TlsError::Pem {
            path: settings.client_ca.clone(),
            what: "CA certificate",
        });
    }

    let mut crls = Vec::new();
    let mut revoked = RevokedSerials::default();
    for path in &settings.crls {
        let pem = read(path)?;
        for crl in CertificateRevocationListDer::pem_slice_iter(&pem) {
            let crl = crl.map_err(|_| TlsError::Pem {
                path: path.clone(),
                what: "CRL",
            })?;
            let (_, parsed) =
                x509_parser::parse_x509_crl(crl.as_ref()).map_err(|error| TlsError::Crl {
                    path: path.clone(),
                    reason: error.to_string(),
                })?;
            for entry in parsed.iter_revoked_certificates() {
                revoked.0.insert(entry.raw_serial().to_vec());
            }
            crls.push(crl);
        }
    }

    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(crls)
        // Agency certificates are issued directly by the agency CA: only leaves get revoked.
        .only_check_end_entity_revocation()
        .build()
        .map_err(TlsError::Verifier)?;

    let chain_pem = read(&settings.certificate)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::Pem {
            path: settings.certificate.clone(),
            what: "certificate",
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: settings.certificate.clone(),
            what: "certificate",
        });
    }
    let key_pem = read(&settings.private_key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::Pem {
        path: settings.private_key.clone(),
        what: "private key",
    })?;

    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::ServerConfig)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(TlsError::ServerConfig)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((config, revoked))
}

/// A TLS connection from an agency, with what its handshake proved.
pub struct AgencyConnection {
    stream: TlsStream<TcpStream>,
    peer: PeerInfo,
    /// Counts the connection in `tsunagu_open_connections` while it is open.
    _open: crate::telemetry::GaugeGuard,
}

impl Connected for AgencyConnection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.peer.clone()
    }
}

impl AsyncRead for AgencyConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for AgencyConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Accepts TCP connections and completes TLS handshakes concurrently, each under `timeout`.
/// Only finished handshakes reach the returned stream; a failed or slow one is logged and
/// dropped, so one bad client never stalls or stops the server.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<TlsState>,
    timeout: Duration,
) -> tokio_stream::wrappers::ReceiverStream<Result<AgencyConnection, io::Error>> {
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, remote_addr) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually EMFILE or a reset before accept: back off a little and go on.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if sender.is_closed() {
                break;
            }
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(tls.current());
            let sender = sender.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let certificate = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .and_then(|leaf| PeerCertificate::parse(leaf.as_ref()))
                            .map(Arc::new);
                        let peer = PeerInfo {
                            remote_addr,
                            certificate,
                        };
                        let _ = sender
                            .send(Ok(AgencyConnection {
                                stream,
                                peer,
                                _open: crate::telemetry::GaugeGuard::new(
                                    crate::telemetry::names::OPEN_CONNECTIONS,
                                ),
                            }))
                            .await;
                    }
                    Ok(Err(error)) => {
                        let reason = handshake_failure_reason(&error);
                        metrics::counter!(
                            crate::telemetry::names::HANDSHAKE_FAILURES,
                            "reason" => reason
                        )
                        .increment(1);
                        tracing::info!(%remote_addr, %error, reason, "TLS handshake refused");
                    }
                    Err(_) => {
                        metrics::counter!(
                            crate::telemetry::names::HANDSHAKE_FAILURES,
                            "reason" => "timeout"
                        )
                        .increment(1);
                        tracing::info!(%remote_addr, ?timeout, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// Why a handshake failed, as one of a few fixed codes (a metrics label).
pub fn handshake_failure_reason(error: &io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    let Some(error) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
    else {
        return "io";
    };
    match error {
        Error::NoCertificatesPresented => "no_certificate",
        Error::InvalidCertificate(CertificateError::Expired) => "certificate_expired",
        Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => "certificate_expired",
        Error::InvalidCertificate(CertificateError::Revoked) => "certificate_revoked",
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => "unknown_issuer",
        Error::InvalidCertificate(_) => "bad_certificate",
        Error::NoApplicationProtocol => "no_alpn",
        Error::PeerIncompatible(_) | Error::InappropriateHandshakeMessage { .. } => "incompatible",
        _ => "protocol",
    }
}
