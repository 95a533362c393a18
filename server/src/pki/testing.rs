//! Certificate material that only tests want: validity periods that are already over or not yet
//! begun, and client certificates with arbitrary URI identities. The hub and its commands never
//! call these; they are public (rather than `#[cfg(test)]`) because the end-to-end tests crate
//! mints such certificates against a real hub.

use rcgen::{ExtendedKeyUsagePurpose, SanType};
use time::{Duration, OffsetDateTime};

use super::{CertificateAuthority, IssuedCertificate, PkiError, Validity, ia5};

/// A period that ended a day ago (it began 30 days ago), for testing expiry handling.
pub fn expired() -> Validity {
    let now = OffsetDateTime::now_utc();
    Validity {
        not_before: now - Duration::days(30),
        not_after: now - Duration::days(1),
    }
}

/// A period that begins tomorrow (and lasts 30 days), for testing not-yet-valid handling.
pub fn not_yet_valid() -> Validity {
    let now = OffsetDateTime::now_utc();
    Validity {
        not_before: now + Duration::days(1),
        not_after: now + Duration::days(31),
    }
}

/// A client certificate with an arbitrary URI SAN (tests use it for odd identities).
/// The URI only has to be ASCII (an IA5String); it is not checked in any other way.
pub fn issue_client_with_uri(
    ca: &CertificateAuthority,
    uri: &str,
    validity: Validity,
) -> Result<IssuedCertificate, PkiError> {
    ca.issue_leaf(
        uri,
        vec![SanType::URI(ia5(uri)?)],
        ExtendedKeyUsagePurpose::ClientAuth,
        validity,
    )
}
