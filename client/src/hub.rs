//! Connecting to a Tsunagu hub over mutual TLS and handing out its typed service clients.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tsunagu_proto::v1::audit_service_client::AuditServiceClient;
use tsunagu_proto::v1::case_service_client::CaseServiceClient;
use tsunagu_proto::v1::council_service_client::CouncilServiceClient;
use tsunagu_proto::v1::directory_service_client::DirectoryServiceClient;
use tsunagu_proto::v1::event_service_client::EventServiceClient;
use tsunagu_proto::v1::outcome_service_client::OutcomeServiceClient;
use tsunagu_proto::v1::referral_service_client::ReferralServiceClient;
use tsunagu_proto::v1::sealing_service_client::SealingServiceClient;
use tsunagu_proto::v1::transfer_service_client::TransferServiceClient;

use crate::error::{ClientError, error_chain};

/// The hub a development setup listens on.
pub const DEFAULT_HUB: &str = "https://127.0.0.1:7443";
/// The TLS name the development hub certificate carries.
pub const DEFAULT_SERVER_NAME: &str = "localhost";
/// How long to wait for a connection and for each call's answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest CouncilService answer accepted (a meeting pack).
pub const MAX_PACK_BYTES: usize = 256 * 1024 * 1024;

/// Where the hub is and which credentials to present to it.
#[derive(Clone)]
pub struct ConnectOptions {
    /// The hub's address, for example "https://127.0.0.1:7443".
    pub endpoint: String,
    /// PEM of the hub's CA, the only trust anchor.
    pub ca_pem: Vec<u8>,
    /// PEM of the agency's client certificate (chain).
    pub cert_pem: Option<Vec<u8>>,
    /// PEM of the agency's private key.
    pub key_pem: Option<Vec<u8>>,
    /// The name the hub's certificate must carry, "localhost" by default.
    pub server_name: String,
    /// Connection timeout and per-call timeout.
    pub timeout: Duration,
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("endpoint", &self.endpoint)
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("cert_pem", &self.cert_pem.as_ref().map(Vec::len))
            .field("key_pem", &self.key_pem.as_ref().map(|_| "<redacted>"))
            .field("server_name", &self.server_name)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ConnectOptions {
    /// Options with the hub's CA only (no client certificate), the default server name and timeout.
    pub fn new(endpoint: impl Into<String>, ca_pem: Vec<u8>) -> Self {
        ConnectOptions {
            endpoint: endpoint.into(),
            ca_pem,
            cert_pem: None,
            key_pem: None,
            server_name: DEFAULT_SERVER_NAME.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Reads the CA and, when given, the agency certificate and key from PEM files.
    pub fn from_files(
        endpoint: impl Into<String>,
        ca_path: impl AsRef<Path>,
        cert_path: Option<&Path>,
        key_path: Option<&Path>,
    ) -> Result<Self, ClientError> {
        const HINT: &str = "check the path";
        let ca_pem = read_pem("CA certificate", ca_path.as_ref(), HINT)?;
        let cert_pem = cert_path
            .map(|path| read_pem("certificate", path, HINT))
            .transpose()?;
        let key_pem = key_path
            .map(|path| read_pem("private key", path, HINT))
            .transpose()?;
        let mut options = ConnectOptions::new(endpoint, ca_pem);
        options.cert_pem = cert_pem;
        options.key_pem = key_pem;
        Ok(options)
    }

    fn tls_config(&self) -> Result<ClientTlsConfig, ClientError> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .domain_name(self.server_name.clone())
            .timeout(self.timeout);
        match (&self.cert_pem, &self.key_pem) {
            (Some(cert), Some(key)) => tls = tls.identity(Identity::from_pem(cert, key)),
            (None, None) => {}
            (Some(_), None) => {
                return Err(ClientError::InvalidCredentials(
                    "a client certificate was given without its private key".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(ClientError::InvalidCredentials(
                    "a private key was given without its client certificate".into(),
                ));
            }
        }
        Ok(tls)
    }
}

/// An open connection to a hub. Cheap to clone; every accessor shares the one channel.
#[derive(Clone, Debug)]
pub struct Hub {
    channel: Channel,
    endpoint: String,
}

impl Hub {
    /// Connects to the hub over TLS, presenting the agency certificate when one is given.
    pub async fn connect(opts: &ConnectOptions) -> Result<Hub, ClientError> {
        let (endpoint, endpoint_text) = Self::endpoint_for(opts)?;
        let channel = endpoint.connect().await.map_err(|e| ClientError::Connect {
            endpoint: endpoint_text.clone(),
            detail: error_chain(&e),
        })?;
        Ok(Hub {
            channel,
            endpoint: endpoint_text,
        })
    }

    /// Prepares a connection that is made on the first call, and made again after it breaks:
    /// for a long-running process (the console) that must start, and stay up, while the hub is
    /// down. Each call then fails with [`ClientError::Connect`] until the hub answers.
    pub fn connect_lazy(opts: &ConnectOptions) -> Result<Hub, ClientError> {
        let (endpoint, endpoint_text) = Self::endpoint_for(opts)?;
        Ok(Hub {
            channel: endpoint.connect_lazy(),
            endpoint: endpoint_text,
        })
    }

    /// The endpoint with its TLS settings and timeouts, and its normalised address.
    fn endpoint_for(opts: &ConnectOptions) -> Result<(Endpoint, String), ClientError> {
        let endpoint_text = normalise_endpoint(&opts.endpoint)?;
        if !opts
            .ca_pem
            .windows(CERT_MARKER.len())
            .any(|w| w == CERT_MARKER)
        {
            return Err(ClientError::InvalidCredentials(
                "the CA PEM holds no certificate".into(),
            ));
        }
        let endpoint = Endpoint::from_shared(endpoint_text.clone())
            .map_err(|e| ClientError::InvalidEndpoint {
                endpoint: opts.endpoint.clone(),
                reason: error_chain(&e),
            })?
            .connect_timeout(opts.timeout)
            .timeout(opts.timeout)
            .tls_config(opts.tls_config()?)
            .map_err(|e| ClientError::Tls {
                endpoint: endpoint_text.clone(),
                detail: error_chain(&e),
            })?;
        Ok((endpoint, endpoint_text))
    }

    /// The address this hub was reached at.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Turns a failed call into a [`ClientError`]. A status made on this side of the wire (the
    /// hub could not be reached, the TLS session broke) becomes [`ClientError::Connect`] naming
    /// this hub; a status the hub sent stays [`ClientError::Rpc`].
    pub fn call_error(&self, status: tonic::Status) -> ClientError {
        let transport = matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
        );
        match std::error::Error::source(&status) {
            Some(cause) if transport => {
                let cause = error_chain(cause);
                let message = status.message().trim();
                let detail = if message.is_empty() || cause.contains(message) {
                    cause
                } else {
                    format!("{message}: {cause}")
                };
                ClientError::Connect {
                    endpoint: self.endpoint.clone(),
                    detail,
                }
            }
            _ => ClientError::Rpc(status),
        }
    }

    /// The underlying channel, for clients this library does not wrap (health, reflection).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The agency directory: who am I, agencies, age keys.
    pub fn directory(&self) -> DirectoryServiceClient<Channel> {
        DirectoryServiceClient::new(self.channel())
    }

    /// Cases, consent records and case threads.
    pub fn cases(&self) -> CaseServiceClient<Channel> {
        CaseServiceClient::new(self.channel())
    }

    /// Referrals, notes and follow-ups.
    pub fn referrals(&self) -> ReferralServiceClient<Channel> {
        ReferralServiceClient::new(self.channel())
    }

    /// The agency's event feed.
    pub fn events(&self) -> EventServiceClient<Channel> {
        EventServiceClient::new(self.channel())
    }

    /// 要対協: registrations, meetings, meeting packs and decisions.
    pub fn council(&self) -> CouncilServiceClient<Channel> {
        // A 実務者会議 pack carries every referral, event and note of hundreds of cases: 500
        // cases with ten referrals each already pass tonic's default 4 MiB answer limit.
        CouncilServiceClient::new(self.channel()).max_decoding_message_size(MAX_PACK_BYTES)
    }

    /// The audit log.
    pub fn audit(&self) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.channel())
    }

    /// 移管: transfers of cases between municipalities.
    pub fn transfers(&self) -> TransferServiceClient<Channel> {
        TransferServiceClient::new(self.channel())
    }

    /// Outcomes: counts and durations of the caller's referrals.
    pub fn outcomes(&self) -> OutcomeServiceClient<Channel> {
        OutcomeServiceClient::new(self.channel())
    }

    /// Re-sealing: who can open each sealed field of a case, and giving a field new readers.
    pub fn sealing(&self) -> SealingServiceClient<Channel> {
        SealingServiceClient::new(self.channel())
    }
}

const CERT_MARKER: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// Adds `https://` to a bare `host:port` and refuses any scheme other than https.
pub fn normalise_endpoint(endpoint: &str) -> Result<String, ClientError> {
    let trimmed = endpoint.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(ClientError::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            reason: "it is empty".into(),
        });
    }
    match trimmed.split_once("://") {
        None => Ok(format!("https://{trimmed}")),
        Some(("https", rest)) if !rest.is_empty() => Ok(trimmed.to_owned()),
        Some((scheme, _)) if scheme != "https" => Err(ClientError::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            reason: format!("the hub only speaks mutual TLS: use https:// instead of {scheme}://"),
        }),
        Some(_) => Err(ClientError::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            reason: "it names no host".into(),
        }),
    }
}

/// Reads a PEM file, saying what it is for when it is missing or holds no PEM block.
pub(crate) fn read_pem(
    what: &'static str,
    path: &Path,
    hint: &str,
) -> Result<Vec<u8>, ClientError> {
    let bytes = std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ClientError::MissingFile {
                what,
                path: path.to_owned(),
                hint: hint.to_owned(),
            }
        } else {
            ClientError::ReadFile {
                what,
                path: path.to_owned(),
                source,
            }
        }
    })?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(ClientError::InvalidFile {
            what,
            path: path.to_owned(),
            reason: "it holds no PEM block (-----BEGIN ...)".into(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_host_and_port_becomes_https() {
        assert_eq!(
            normalise_endpoint("127.0.0.1:7443").unwrap(),
            "https://127.0.0.1:7443"
        );
    }

    #[test]
    fn plain_http_is_refused() {
        let err = normalise_endpoint("http://127.0.0.1:7443").unwrap_err();
        assert!(err.to_string().contains("use https://"));
    }

    #[test]
    fn debug_output_never_shows_the_private_key() {
        let mut options = ConnectOptions::new(DEFAULT_HUB, b"ca".to_vec());
        options.key_pem = Some(b"-----BEGIN PRIVATE KEY-----secret".to_vec());
        let shown = format!("{options:?}");
        assert!(!shown.contains("secret"));
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let mut options = ConnectOptions::new(DEFAULT_HUB, b"ca".to_vec());
        options.cert_pem = Some(b"cert".to_vec());
        assert!(matches!(
            options.tls_config(),
            Err(ClientError::InvalidCredentials(_))
        ));
    }

    #[test]
    fn a_missing_pem_file_is_named() {
        let err = read_pem("certificate", Path::new("/nonexistent/x.pem"), "do this").unwrap_err();
        assert_eq!(
            err.to_string(),
            "certificate file /nonexistent/x.pem not found: do this"
        );
    }
}
