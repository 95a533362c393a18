//! Certificate expiry: the certificates the hub knows (its own, the agency CA, and the one each
//! agency presented last), how many days each has left, and the warnings logged 30, 14, 7 and 1
//! days ahead, because an expired certificate locks an agency out without any other sign.

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;

use crate::domain::Timestamp;
use crate::settings::TlsSettings;
use crate::store::{Store, StoreError};

/// Days before expiry at which the hub warns, largest first.
pub const WARNING_DAYS: [i64; 4] = [30, 14, 7, 1];

const DAY_SECONDS: i64 = 24 * 60 * 60;

/// One certificate the hub knows, and until when it is valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KnownCertificate {
    /// "hub", "ca" or "agency".
    pub role: &'static str,
    /// The agency, for an agency's certificate.
    pub agency_id: Option<String>,
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint: String,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
}

impl KnownCertificate {
    /// Whole days left at `now` (negative once expired): 10 days and 5 hours is 10.
    pub fn days_left(&self, now: Timestamp) -> i64 {
        (self.not_after - now.millis() / 1000).div_euclid(DAY_SECONDS)
    }

    /// What people call it in a log line or a table.
    pub fn subject(&self) -> String {
        match (&self.agency_id, self.role) {
            (Some(agency), _) => format!("agency {agency}"),
            (None, "ca") => "agency CA".to_owned(),
            (None, role) => format!("{role} certificate"),
        }
    }
}

/// The warning window `days_left` falls in: the smallest of [`WARNING_DAYS`] it does not exceed
/// (10 days left is the 14-day window); `None` when more than 30 days are left.
pub fn warning_window(days_left: i64) -> Option<i64> {
    WARNING_DAYS
        .iter()
        .rev()
        .copied()
        .find(|window| days_left <= *window)
}

/// Why a certificate file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CertificateFileError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: String },
    #[error("{path} holds a certificate that does not parse")]
    Malformed { path: String },
}

/// The first certificate of a PEM file: its fingerprint and expiry.
pub fn pem_file_certificate(path: &Path) -> Result<(String, i64), CertificateFileError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    use sha2::Digest as _;
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| CertificateFileError::Read {
        path: shown.clone(),
        source,
    })?;
    let der = CertificateDer::pem_slice_iter(&pem)
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| CertificateFileError::NoCertificate {
            path: shown.clone(),
        })?;
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|_| CertificateFileError::Malformed { path: shown })?;
    Ok((
        hex::encode(sha2::Sha256::digest(der.as_ref())),
        parsed.validity().not_after.timestamp(),
    ))
}

/// Every certificate the hub knows: its own and the CA's from their files (skipped with a
/// warning when unreadable; `check-config` names the problem), and each agency's last-seen one.
pub async fn known_certificates(
    tls: &TlsSettings,
    store: &dyn Store,
) -> Result<Vec<KnownCertificate>, StoreError> {
    let mut known = Vec::new();
    for (role, path) in [("hub", &tls.certificate), ("ca", &tls.client_ca)] {
        match pem_file_certificate(path) {
            Ok((fingerprint, not_after)) => known.push(KnownCertificate {
                role,
                agency_id: None,
                fingerprint,
                not_after,
            }),
            Err(error) => tracing::warn!(%error, role, "cannot read a certificate's expiry"),
        }
    }
    let seen = store.read().await?.last_seen_certificates().await?;
    known.extend(seen.into_iter().map(|seen| KnownCertificate {
        role: "agency",
        agency_id: Some(seen.agency_id.to_string()),
        fingerprint: seen.fingerprint,
        not_after: seen.not_after,
    }));
    Ok(known)
}

/// Checks every `certificate_check_interval`: sets the expiry gauges and logs a warning once per
/// certificate and window.
pub fn spawn_expiry_watch(hub: crate::api::Hub) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut warned: HashSet<(String, i64)> = HashSet::new();
        let mut tick = tokio::time::interval(hub.settings.certificate_check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let known = match known_certificates(&hub.settings.tls, hub.store.as_ref()).await {
                Ok(known) => known,
                Err(error) => {
                    tracing::warn!(
                        error = %crate::error::cause_chain(&error),
                        "cannot list the agencies' certificates; checking again later"
                    );
                    continue;
                }
            };
            let now = hub.clock.now();
            for certificate in known {
                let days_left = certificate.days_left(now);
                metrics::gauge!(
                    crate::telemetry::names::CERTIFICATE_EXPIRY_DAYS,
                    "certificate" => certificate.role,
                    "agency" => certificate.agency_id.clone().unwrap_or_default()
                )
                .set(days_left as f64);
                let Some(window) = warning_window(days_left) else {
                    continue;
                };
                if !warned.insert((certificate.fingerprint.clone(), window)) {
                    continue;
                }
                let not_after = Timestamp::from_millis(certificate.not_after * 1000);
                tracing::warn!(
                    certificate = %certificate.subject(),
                    fingerprint = %certificate.fingerprint,
                    days_left,
                    window,
                    not_after = %not_after,
                    "certificate expires within {window} days: issue a new one now and install \
                     it before then (README: Renewing a certificate)"
                );
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_come_thirty_fourteen_seven_and_one_day_ahead() {
        assert_eq!(warning_window(31), None);
        assert_eq!(warning_window(30), Some(30));
        assert_eq!(warning_window(15), Some(30));
        assert_eq!(warning_window(10), Some(14));
        assert_eq!(warning_window(7), Some(7));
        assert_eq!(warning_window(1), Some(1));
        assert_eq!(warning_window(-3), Some(1));
    }

    #[test]
    fn days_left_counts_whole_days() {
        let certificate = KnownCertificate {
            role: "agency",
            agency_id: Some("kodomo".to_owned()),
            fingerprint: String::new(),
            not_after: 10 * DAY_SECONDS + 5 * 3600,
        };
        assert_eq!(certificate.days_left(Timestamp::from_millis(0)), 10);
        assert_eq!(
            certificate.days_left(Timestamp::from_millis(11 * DAY_SECONDS * 1000)),
            -1
        );
    }
}
