//! Helpers shared by the unit tests of [`crate::pki`] and [`crate::dev_pki`]: a throwaway CA,
//! PEM and SAN inspection, and rustls' client verifier run the way the hub runs it.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use time::Duration;
use x509_parser::extensions::GeneralName;

use super::{CertificateAuthority, IssuedCertificate, certificate_der_from_pem};

pub(crate) fn test_ca() -> CertificateAuthority {
    CertificateAuthority::generate("Test CA", Duration::days(365)).unwrap()
}

pub(crate) fn der(pem: &str) -> Vec<u8> {
    certificate_der_from_pem(pem).unwrap()
}

pub(crate) fn crl_der(pem: &str) -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    assert_eq!(pem.label, "X509 CRL");
    pem.contents
}

pub(crate) fn uri_sans(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some((*uri).to_owned()),
            _ => None,
        })
        .collect()
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Runs a client certificate through rustls' webpki client verifier, as the hub does.
pub(crate) fn verify_client(
    ca: &CertificateAuthority,
    crl_pem: Option<&str>,
    client: &IssuedCertificate,
) -> Result<(), rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.cert_der().to_vec()))
        .unwrap();
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
    if let Some(crl_pem) = crl_pem {
        builder = builder.with_crls([CertificateRevocationListDer::from(crl_der(crl_pem))]);
    }
    let verifier = builder.build().unwrap();
    verifier
        .verify_client_cert(
            &CertificateDer::from(der(&client.cert_pem)),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}
