//! The hub's certificate authority tooling: a CA that issues the hub's TLS certificate and the
//! agencies' SPIFFE client certificates, signs CRLs, and generates age identities.
//!
//! Everything here produces PEM text so that the same code serves the `tsunagu-hub certs`
//! commands (which write files) and the end-to-end tests (which keep the PKI in memory and
//! deliberately mint bad certificates: expired, revoked, from another CA, odd identities; the
//! constructors only tests want live in [`testing`]). The development PKI that `certs dev`
//! writes, with its sample agencies, is [`crate::dev_pki`].
//!
//! The certificates are shaped for rustls' webpki verifiers, which are strict:
//! the CA carries keyCertSign + cRLSign + digitalSignature and a SubjectKeyIdentifier, every leaf
//! and every CRL carries an AuthorityKeyIdentifier equal to that identifier, and no certificate
//! names a CRL distribution point (webpki only treats a CRL without an issuing distribution point
//! as authoritative for certificates that have none).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use age::secrecy::ExposeSecret as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber, string::Ia5String,
};
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;

pub mod testing;

#[cfg(test)]
pub(crate) mod test_support;

/// The organisation written into every subject, so that certificates found lying around can be
/// traced back to this system.
const ORGANISATION: &str = "Tsunagu";

/// Common name of the hub's server certificate.
const HUB_COMMON_NAME: &str = "tsunagu-hub";

/// Certificates are backdated by this much so that a peer whose clock runs slightly behind does
/// not reject a certificate that was issued a moment ago.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::hours(1);

/// Length of the random serial numbers. 16 bytes (with the top bit cleared) gives ~127 bits of
/// entropy, well above the 64 bits the CA/Browser Forum requires, and stays under the 20-byte
/// limit of RFC 5280.
const SERIAL_LEN: usize = 16;

/// RFC 5280 §4.1.2.2: serial numbers are at most 20 octets.
const MAX_SERIAL_LEN: usize = 20;

/// Everything that can go wrong while generating, loading or writing PKI material.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused to build or sign something.
    #[error("certificate generation failed: {0}")]
    Generation(#[from] rcgen::Error),
    /// The CA private key PEM could not be read.
    #[error("could not read the CA private key: {0}")]
    PrivateKey(#[source] rcgen::Error),
    /// A certificate PEM block could not be found or decoded.
    #[error("could not read the certificate PEM: {0}")]
    CertificatePem(String),
    /// The DER inside a certificate PEM is not a valid X.509 certificate.
    #[error("could not parse the certificate: {0}")]
    CertificateParse(String),
    /// The certificate given as a CA lacks basicConstraints CA:TRUE.
    #[error("the certificate is not a CA certificate (basicConstraints CA:TRUE is missing)")]
    NotACertificateAuthority,
    /// The private key given with a CA certificate is not the key of that certificate.
    #[error("the private key does not belong to the CA certificate")]
    KeyMismatch,
    /// A name, URI or identity cannot be put into a certificate.
    #[error("invalid identity: {0}")]
    InvalidIdentity(String),
    /// A validity period or CRL schedule that ends before it starts.
    #[error("invalid validity: {0}")]
    InvalidValidity(String),
    /// A serial number that cannot appear in a CRL.
    #[error("invalid serial number: {0}")]
    InvalidSerial(String),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A timestamp could not be formatted (for the age identity file header).
    #[error("could not format a timestamp: {0}")]
    TimeFormat(#[from] time::error::Format),
    /// Reading or writing a file failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being attempted, e.g. "create directory".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// Valid from an hour ago (clock-skew allowance) until `days` days from now.
    pub fn days_from_now(days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - CLOCK_SKEW_ALLOWANCE,
            not_after: now + Duration::days(days),
        }
    }

    /// Rejects periods that end before they begin: rcgen would happily sign them, and the
    /// resulting certificate would fail in a confusing way much later.
    fn check(&self) -> Result<(), PkiError> {
        if self.not_after <= self.not_before {
            return Err(PkiError::InvalidValidity(format!(
                "not_after ({}) is not after not_before ({})",
                self.not_after, self.not_before
            )));
        }
        Ok(())
    }
}

/// A freshly issued leaf certificate and its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate's private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The serial number exactly as encoded in the certificate (big-endian, positive, no padding),
    /// i.e. what appears in a CRL entry and what x509-parser's `raw_serial()` returns.
    pub serial: Vec<u8>,
    /// SHA-256 of the DER certificate, lower-case hex (see [`certificate_fingerprint`]).
    pub fingerprint_sha256: String,
}

impl fmt::Debug for IssuedCertificate {
    // Hand-written so that logging an issued certificate never prints its private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("serial", &hex::encode(&self.serial))
            .field("fingerprint_sha256", &self.fingerprint_sha256)
            .field("key_pem", &"[elided]")
            .finish_non_exhaustive()
    }
}

/// The hub's certificate authority: its certificate, its key, and an rcgen issuer built from them.
pub struct CertificateAuthority {
    cert_pem: String,
    key_pem: String,
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    /// The CA's SubjectKeyIdentifier, pinned so that every CRL's AuthorityKeyIdentifier matches
    /// it exactly, including for a loaded CA whose identifier was not derived the way rcgen
    /// would derive it.
    key_id: KeyIdMethod,
}

impl fmt::Debug for CertificateAuthority {
    // Hand-written so that the CA key never ends up in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("fingerprint_sha256", &self.fingerprint_sha256())
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// A new self-signed CA (ECDSA P-256), valid from an hour ago until `valid_for` from now.
    pub fn generate(common_name: &str, valid_for: Duration) -> Result<Self, PkiError> {
        if !valid_for.is_positive() {
            return Err(PkiError::InvalidValidity(format!(
                "a CA must be valid for a positive duration, got {valid_for}"
            )));
        }
        let now = OffsetDateTime::now_utc();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;

        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name);
        params.not_before = now - CLOCK_SKEW_ALLOWANCE;
        params.not_after = now + valid_for;
        params.serial_number = Some(random_serial()?);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // keyCertSign to issue certificates, cRLSign because webpki refuses a CRL whose issuer
        // lacks it, digitalSignature for OCSP-style signing should it ever be needed.
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        // Explicit rather than relying on the default, so the SubjectKeyIdentifier, the leaves'
        // AuthorityKeyIdentifier and the CRLs' AuthorityKeyIdentifier are derived the same way.
        params.key_identifier_method = KeyIdMethod::Sha256;

        let cert = params.self_signed(&key)?;
        let cert_der = cert.der().to_vec();
        let key_id = KeyIdMethod::PreSpecified(params.key_identifier(&key));
        let key_pem = key.serialize_pem();
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem,
            cert_der,
            issuer: Issuer::new(params, key),
            key_id,
        })
    }

    /// Loads a CA from its PEM certificate and PEM private key (for `certs issue`).
    ///
    /// Checks that the certificate is a CA and that the key is its key, so that a mix-up of
    /// files is reported here rather than as certificates nobody can verify.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let cert_der = certificate_der_from_pem(cert_pem)?;
        let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| PkiError::CertificateParse(e.to_string()))?;

        let is_ca = x509
            .basic_constraints()
            .map_err(|e| PkiError::CertificateParse(e.to_string()))?
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(PkiError::NotACertificateAuthority);
        }

        let key = KeyPair::from_pem(key_pem).map_err(PkiError::PrivateKey)?;
        if key.public_key_raw() != x509.public_key().subject_public_key.data.as_ref() {
            return Err(PkiError::KeyMismatch);
        }

        let key_id = match subject_key_identifier(&x509) {
            Some(id) => KeyIdMethod::PreSpecified(id),
            // A CA without a SubjectKeyIdentifier (not one we made): derive one the standard way.
            None => KeyIdMethod::Sha256,
        };
        let issuer = Issuer::from_ca_cert_der(&cert_der.clone().into(), key)?;

        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            cert_der,
            issuer,
            key_id,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// SHA-256 of the CA certificate, lower-case hex.
    pub fn fingerprint_sha256(&self) -> String {
        certificate_fingerprint(&self.cert_der)
    }

    /// The hub's TLS server certificate: SANs = dns names + ip addresses, serverAuth EKU.
    pub fn issue_server(
        &self,
        dns_names: &[&str],
        ip_addresses: &[IpAddr],
        validity: Validity,
    ) -> Result<IssuedCertificate, PkiError> {
        if dns_names.is_empty() && ip_addresses.is_empty() {
            // Clients match the server name against SANs only; without any the certificate
            // could never be accepted.
            return Err(PkiError::InvalidIdentity(
                "a server certificate needs at least one DNS name or IP address".to_owned(),
            ));
        }
        let mut sans = Vec::with_capacity(dns_names.len() + ip_addresses.len());
        for name in dns_names {
            sans.push(SanType::DnsName(ia5(name)?));
        }
        sans.extend(ip_addresses.iter().copied().map(SanType::IpAddress));
        self.issue_leaf(
            HUB_COMMON_NAME,
            sans,
            ExtendedKeyUsagePurpose::ServerAuth,
            validity,
        )
    }

    /// An agency client certificate: URI SAN `spiffe://<trust_domain>/agency/<agency_id>`,
    /// clientAuth EKU, CN = agency_id, fresh random serial (positive, 16 bytes).
    ///
    /// The trust domain and agency id must be valid SPIFFE components; use
    /// [`testing::issue_client_with_uri`] to mint deliberately odd identities.
    pub fn issue_agency(
        &self,
        trust_domain: &str,
        agency_id: &str,
        validity: Validity,
    ) -> Result<IssuedCertificate, PkiError> {
        validate_trust_domain(trust_domain)?;
        validate_agency_id(agency_id)?;
        let uri = agency_spiffe_id(trust_domain, agency_id);
        self.issue_leaf(
            agency_id,
            vec![SanType::URI(ia5(&uri)?)],
            ExtendedKeyUsagePurpose::ClientAuth,
            validity,
        )
    }

    /// A CRL (PEM) signed by this CA revoking the given serials. `crl_number` increases with
    /// each new CRL. thisUpdate = now - 1 minute, nextUpdate = now + next_update_in.
    ///
    /// No issuing distribution point is written: webpki treats such a CRL as authoritative for
    /// every certificate of this CA (none of which names a distribution point).
    pub fn crl(
        &self,
        revoked_serials: &[Vec<u8>],
        crl_number: u64,
        next_update_in: Duration,
    ) -> Result<String, PkiError> {
        if !next_update_in.is_positive() {
            return Err(PkiError::InvalidValidity(format!(
                "a CRL's next update must be in the future, got {next_update_in}"
            )));
        }
        let now = OffsetDateTime::now_utc();
        // A minute back so that a verifier whose clock is slightly behind does not see a CRL
        // from the future.
        let this_update = now - Duration::minutes(1);

        let revoked_certs = revoked_serials
            .iter()
            .map(|serial| {
                if serial.is_empty() || serial.len() > MAX_SERIAL_LEN {
                    return Err(PkiError::InvalidSerial(format!(
                        "{} bytes; a serial number has 1 to {MAX_SERIAL_LEN}",
                        serial.len()
                    )));
                }
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: this_update,
                    reason_code: None,
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let params = CertificateRevocationListParams {
            this_update,
            next_update: now + next_update_in,
            crl_number: SerialNumber::from_slice(&minimal_be_bytes(crl_number)),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: self.key_id.clone(),
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }

    /// Issues a leaf certificate with a fresh ECDSA P-256 key. Shared by every `issue_*` method
    /// so that all leaves have the same shape: CA:FALSE, digitalSignature, one EKU, an
    /// AuthorityKeyIdentifier pointing at this CA, a random serial.
    fn issue_leaf(
        &self,
        common_name: &str,
        subject_alt_names: Vec<SanType>,
        eku: ExtendedKeyUsagePurpose,
        validity: Validity,
    ) -> Result<IssuedCertificate, PkiError> {
        validity.check()?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let serial = random_serial()?;

        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name);
        params.subject_alt_names = subject_alt_names;
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.serial_number = Some(serial.clone());
        // Explicit CA:FALSE so that a leaf can never be mistaken for an intermediate.
        params.is_ca = IsCa::ExplicitNoCa;
        // digitalSignature is all an ECDSA TLS key needs (no key encipherment with ECDHE).
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![eku];
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;

        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial: serial.to_bytes(),
            fingerprint_sha256: certificate_fingerprint(cert.der()),
        })
    }
}

/// SHA-256 of a DER certificate, lower-case hex (shared by the hub's identity layer).
pub fn certificate_fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The SPIFFE URI for an agency.
pub fn agency_spiffe_id(trust_domain: &str, agency_id: &str) -> String {
    format!("spiffe://{trust_domain}/agency/{agency_id}")
}

/// The DER of the first certificate in a PEM text.
pub fn certificate_der_from_pem(pem: &str) -> Result<Vec<u8>, PkiError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| PkiError::CertificatePem(e.to_string()))?;
    if pem.label != "CERTIFICATE" {
        return Err(PkiError::CertificatePem(format!(
            "expected a CERTIFICATE block, found {}",
            pem.label
        )));
    }
    Ok(pem.contents)
}

/// A freshly generated age X25519 identity.
#[derive(Clone)]
pub struct AgeKeyFile {
    /// The recipient (`age1...`), to which sealed data for this identity is encrypted.
    pub public_key: String,
    /// The identity file text as `age-keygen` writes it:
    /// `# created: ...\n# public key: age1...\nAGE-SECRET-KEY-1...\n`.
    pub file_text: String,
}

impl fmt::Debug for AgeKeyFile {
    // Hand-written so that the secret key never ends up in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgeKeyFile")
            .field("public_key", &self.public_key)
            .field("file_text", &"[elided]")
            .finish()
    }
}

/// Generates an age X25519 identity in `age-keygen` file format, so that the files written by
/// `certs dev` can be used with the stock `age` command-line tools as well.
pub fn generate_age_identity() -> Result<AgeKeyFile, PkiError> {
    let identity = age::x25519::Identity::generate();
    let public_key = identity.to_public().to_string();
    let created = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)?;
    let secret = identity.to_string();
    let file_text = format!(
        "# created: {created}\n# public key: {public_key}\n{}\n",
        secret.expose_secret()
    );
    Ok(AgeKeyFile {
        public_key,
        file_text,
    })
}

/// A subject with the given common name and the project's organisation.
fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANISATION);
    dn.push(DnType::CommonName, common_name);
    dn
}

/// A random positive serial number of exactly [`SERIAL_LEN`] bytes. The top bit is cleared so
/// the DER INTEGER needs no leading zero byte (and so the bytes stored here are exactly the
/// bytes in the certificate and in CRL entries); the first byte is kept non-zero so the
/// encoding is never shortened either.
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; SERIAL_LEN];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| PkiError::Random)?;
    bytes[0] = (bytes[0] & 0x7f).max(1);
    Ok(SerialNumber::from_slice(&bytes))
}

/// Big-endian bytes of `n` without leading zeros (at least one byte), as DER INTEGER wants.
fn minimal_be_bytes(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let first = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len() - 1);
    bytes[first..].to_vec()
}

/// Converts to an IA5String (ASCII), the only string type X.509 allows in DNS and URI SANs.
fn ia5(s: &str) -> Result<Ia5String, PkiError> {
    Ia5String::try_from(s).map_err(|_| {
        PkiError::InvalidIdentity(format!("{s:?} is not ASCII and cannot go in a SAN"))
    })
}

/// The SubjectKeyIdentifier of a certificate, if it has one.
fn subject_key_identifier(x509: &X509Certificate<'_>) -> Option<Vec<u8>> {
    x509.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
}

/// SPIFFE trust domain: lower-case letters, digits, '.', '-', '_' (SPIFFE-ID spec §2.1).
fn validate_trust_domain(trust_domain: &str) -> Result<(), PkiError> {
    let ok = !trust_domain.is_empty()
        && trust_domain.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(PkiError::InvalidIdentity(format!(
            "{trust_domain:?} is not a SPIFFE trust domain (lower-case letters, digits, '.', '-', '_')"
        )))
    }
}

/// Agency id as a SPIFFE path segment: letters, digits, '.', '-', '_', and not "." or ".."
/// (SPIFFE-ID spec §2.2), so the id survives the round trip through the URI unchanged.
pub(crate) fn validate_agency_id(agency_id: &str) -> Result<(), PkiError> {
    let ok = !agency_id.is_empty()
        && agency_id != "."
        && agency_id != ".."
        && agency_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(PkiError::InvalidIdentity(format!(
            "{agency_id:?} is not a valid agency id (letters, digits, '.', '-', '_')"
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::RootCertStore;
    use rustls::client::danger::ServerCertVerifier as _;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

    use super::test_support::*;
    use super::*;

    #[test]
    fn agency_certificate_carries_the_spiffe_uri() {
        let ca = test_ca();
        let issued = ca
            .issue_agency("tsunagu.test", "aoba-kodomo", Validity::days_from_now(30))
            .unwrap();
        let cert_der = der(&issued.cert_pem);
        assert_eq!(
            uri_sans(&cert_der),
            ["spiffe://tsunagu.test/agency/aoba-kodomo"]
        );

        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
        let cn = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "aoba-kodomo");
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth);
        assert!(!eku.server_auth);
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature());
        assert!(!cert.is_ca());
    }

    #[test]
    fn agency_serial_is_sixteen_positive_bytes_matching_the_certificate() {
        let ca = test_ca();
        let issued = ca
            .issue_agency("tsunagu.test", "aoba-nursery", Validity::days_from_now(30))
            .unwrap();
        assert_eq!(issued.serial.len(), 16);
        assert!(issued.serial[0] & 0x80 == 0 && issued.serial[0] != 0);
        let cert_der = der(&issued.cert_pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
        assert_eq!(cert.raw_serial(), issued.serial.as_slice());
        assert_eq!(
            issued.fingerprint_sha256,
            certificate_fingerprint(&cert_der)
        );
    }

    #[test]
    fn every_certificate_gets_a_fresh_serial() {
        let ca = test_ca();
        let a = ca
            .issue_agency("tsunagu.test", "a", Validity::days_from_now(1))
            .unwrap();
        let b = ca
            .issue_agency("tsunagu.test", "a", Validity::days_from_now(1))
            .unwrap();
        assert_ne!(a.serial, b.serial);
        assert_ne!(a.fingerprint_sha256, b.fingerprint_sha256);
        assert_ne!(a.key_pem, b.key_pem);
    }

    #[test]
    fn fingerprint_is_lower_hex_sha256() {
        assert_eq!(
            certificate_fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn crl_lists_the_revoked_serial() {
        let ca = test_ca();
        let revoked = ca
            .issue_agency("tsunagu.test", "north-jisou", Validity::days_from_now(30))
            .unwrap();
        let crl_pem = ca
            .crl(std::slice::from_ref(&revoked.serial), 7, Duration::days(7))
            .unwrap();
        let crl_bytes = crl_der(&crl_pem);
        let (_, crl) = x509_parser::parse_x509_crl(&crl_bytes).unwrap();

        let serials: Vec<&[u8]> = crl
            .iter_revoked_certificates()
            .map(|entry| entry.raw_serial())
            .collect();
        assert_eq!(serials, [revoked.serial.as_slice()]);
        assert_eq!(crl.crl_number().unwrap().to_string(), "7");

        let now = OffsetDateTime::now_utc();
        let this_update = crl.last_update().to_datetime();
        let next_update = crl.next_update().unwrap().to_datetime();
        assert!(this_update < now && this_update > now - Duration::minutes(5));
        assert!(next_update > now + Duration::days(6));

        // The CRL names the CA as issuer and as authority key, so verifiers can match them.
        let (_, ca_cert) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
        assert_eq!(crl.issuer(), ca_cert.subject());
        let aki = crl
            .extensions()
            .iter()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.clone(),
                _ => None,
            })
            .unwrap();
        assert_eq!(Some(aki.0.to_vec()), subject_key_identifier(&ca_cert));
    }

    #[test]
    fn rustls_accepts_a_valid_agency_and_rejects_a_revoked_one() {
        let ca = test_ca();
        let good = ca
            .issue_agency("tsunagu.test", "aoba-kodomo", Validity::days_from_now(30))
            .unwrap();
        let bad = ca
            .issue_agency("tsunagu.test", "aoba-hiroba", Validity::days_from_now(30))
            .unwrap();
        let crl = ca
            .crl(std::slice::from_ref(&bad.serial), 2, Duration::days(1))
            .unwrap();

        verify_client(&ca, Some(&crl), &good).unwrap();
        let err = verify_client(&ca, Some(&crl), &bad).unwrap_err();
        assert_eq!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
        );
    }

    #[test]
    fn rustls_accepts_an_empty_crl() {
        let ca = test_ca();
        let good = ca
            .issue_agency("tsunagu.test", "aoba-kodomo", Validity::days_from_now(30))
            .unwrap();
        let crl = ca.crl(&[], 1, Duration::days(3650)).unwrap();
        verify_client(&ca, Some(&crl), &good).unwrap();
    }

    #[test]
    fn rustls_rejects_expired_and_foreign_certificates() {
        let ca = test_ca();
        let expired = ca
            .issue_agency("tsunagu.test", "aoba-kodomo", testing::expired())
            .unwrap();
        let err = verify_client(&ca, None, &expired).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext { .. })
                    | rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
            ),
            "{err:?}"
        );

        let other_ca = CertificateAuthority::generate("Other CA", Duration::days(30)).unwrap();
        let foreign = other_ca
            .issue_agency("tsunagu.test", "aoba-kodomo", Validity::days_from_now(30))
            .unwrap();
        let err = verify_client(&ca, None, &foreign).unwrap_err();
        assert_eq!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        );
    }

    #[test]
    fn server_certificate_is_accepted_for_its_names() {
        let ca = test_ca();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let issued = ca
            .issue_server(&["localhost"], &[ip], Validity::days_from_now(30))
            .unwrap();
        let cert_der = der(&issued.cert_pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);

        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca.cert_der().to_vec()))
            .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        let ee = CertificateDer::from(cert_der);
        for name in ["localhost", "127.0.0.1"] {
            verifier
                .verify_server_cert(
                    &ee,
                    &[],
                    &ServerName::try_from(name).unwrap(),
                    &[],
                    UnixTime::now(),
                )
                .unwrap();
        }
        assert!(
            verifier
                .verify_server_cert(
                    &ee,
                    &[],
                    &ServerName::try_from("example.com").unwrap(),
                    &[],
                    UnixTime::now(),
                )
                .is_err()
        );
    }

    #[test]
    fn server_certificate_needs_a_name() {
        let ca = test_ca();
        assert!(matches!(
            ca.issue_server(&[], &[], Validity::days_from_now(1)),
            Err(PkiError::InvalidIdentity(_))
        ));
    }

    #[test]
    fn ca_round_trips_through_pem() {
        let ca = test_ca();
        let loaded = CertificateAuthority::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        assert_eq!(loaded.cert_der(), ca.cert_der());
        assert_eq!(loaded.key_pem(), ca.key_pem());

        // Certificates and CRLs from the reloaded CA verify against the original.
        let issued = loaded
            .issue_agency("tsunagu.test", "aoba-hospital", Validity::days_from_now(30))
            .unwrap();
        let crl = loaded.crl(&[], 3, Duration::days(1)).unwrap();
        verify_client(&ca, Some(&crl), &issued).unwrap();
    }

    #[test]
    fn ca_certificate_is_an_unconstrained_signing_ca() {
        let ca = test_ca();
        let (_, cert) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
        let bc = cert.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, None);
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign() && ku.digital_signature());
        assert!(subject_key_identifier(&cert).is_some());
    }

    #[test]
    fn from_pem_rejects_a_key_that_is_not_the_cas() {
        let ca = test_ca();
        let other = test_ca();
        assert!(matches!(
            CertificateAuthority::from_pem(ca.cert_pem(), other.key_pem()),
            Err(PkiError::KeyMismatch)
        ));
    }

    #[test]
    fn from_pem_rejects_a_leaf_certificate() {
        let ca = test_ca();
        let leaf = ca
            .issue_agency("tsunagu.test", "x", Validity::days_from_now(1))
            .unwrap();
        assert!(matches!(
            CertificateAuthority::from_pem(&leaf.cert_pem, &leaf.key_pem),
            Err(PkiError::NotACertificateAuthority)
        ));
    }

    #[test]
    fn from_pem_rejects_garbage() {
        assert!(matches!(
            CertificateAuthority::from_pem("not a pem", "nor this"),
            Err(PkiError::CertificatePem(_))
        ));
    }

    #[test]
    fn issue_agency_rejects_ids_that_are_not_spiffe_segments() {
        let ca = test_ca();
        for (domain, id) in [
            ("tsunagu.test", ""),
            ("tsunagu.test", "a/b"),
            ("tsunagu.test", ".."),
            ("tsunagu.test", "青葉"),
            ("Tsunagu.Test", "ok"),
            ("", "ok"),
        ] {
            assert!(
                matches!(
                    ca.issue_agency(domain, id, Validity::days_from_now(1)),
                    Err(PkiError::InvalidIdentity(_))
                ),
                "{domain:?} {id:?}"
            );
        }
    }

    #[test]
    fn client_with_uri_carries_any_ascii_uri() {
        let ca = test_ca();
        let issued = testing::issue_client_with_uri(
            &ca,
            "spiffe://evil.example/agency/aoba-kodomo",
            Validity::days_from_now(1),
        )
        .unwrap();
        assert_eq!(
            uri_sans(&der(&issued.cert_pem)),
            ["spiffe://evil.example/agency/aoba-kodomo"]
        );
    }

    #[test]
    fn expired_validity_ends_in_the_past() {
        let validity = testing::expired();
        let now = OffsetDateTime::now_utc();
        assert!(validity.not_after < now);
        assert!(validity.not_before < validity.not_after);

        let ca = test_ca();
        let issued = ca
            .issue_agency("tsunagu.test", "aoba-kodomo", validity)
            .unwrap();
        let cert_der = der(&issued.cert_pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
        assert!(cert.validity().not_after.to_datetime() < now);
    }

    #[test]
    fn days_from_now_starts_an_hour_back() {
        let validity = Validity::days_from_now(10);
        let now = OffsetDateTime::now_utc();
        assert!(validity.not_before <= now - Duration::minutes(59));
        assert!(validity.not_after > now + Duration::days(9));
    }

    #[test]
    fn inverted_validity_is_refused() {
        let ca = test_ca();
        let now = OffsetDateTime::now_utc();
        let inverted = Validity {
            not_before: now,
            not_after: now - Duration::days(1),
        };
        assert!(matches!(
            ca.issue_agency("tsunagu.test", "x", inverted),
            Err(PkiError::InvalidValidity(_))
        ));
        assert!(matches!(
            ca.crl(&[], 1, Duration::ZERO),
            Err(PkiError::InvalidValidity(_))
        ));
        assert!(matches!(
            ca.crl(&[Vec::new()], 1, Duration::days(1)),
            Err(PkiError::InvalidSerial(_))
        ));
    }

    #[test]
    fn minimal_be_bytes_drops_leading_zeros() {
        assert_eq!(minimal_be_bytes(0), [0]);
        assert_eq!(minimal_be_bytes(1), [1]);
        assert_eq!(minimal_be_bytes(0x0102), [1, 2]);
        assert_eq!(minimal_be_bytes(u64::MAX), [0xff; 8]);
    }

    #[test]
    fn age_identity_file_looks_like_age_keygen_output() {
        let key = generate_age_identity().unwrap();
        let lines: Vec<&str> = key.file_text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("# created: "));
        assert_eq!(lines[1], format!("# public key: {}", key.public_key));
        assert!(key.public_key.starts_with("age1"));
        assert!(lines[2].starts_with("AGE-SECRET-KEY-1"));
        assert!(key.file_text.ends_with('\n'));
        let identity: age::x25519::Identity = lines[2].parse().unwrap();
        assert_eq!(identity.to_public().to_string(), key.public_key);
        assert!(!format!("{key:?}").contains("AGE-SECRET-KEY"));
    }
}
