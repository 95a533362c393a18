//! The development PKI: the five sample agencies of 横浜市青葉区 and the certificate, key, CRL
//! and age identity files that `tsunagu-hub certs dev` writes for them, so that `tsunagu-hub
//! serve` and `tsunagu demo` work with no set-up at all. The hub's first start registers the
//! same agencies (see [`crate::dev`]).
//!
//! These are development fixtures; only [`DEV_TRUST_DOMAIN`] reaches further, as the default of
//! the `trust_domain` setting. The CA and issuing code they drive is [`crate::pki`].

use std::fs;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use time::Duration;

use crate::pki::{CertificateAuthority, PkiError, Validity, generate_age_identity};

/// One development agency (for certs-dev and the hub's first-start registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevAgency {
    /// Agency id, also the last segment of its SPIFFE id.
    pub agency_id: &'static str,
    /// Agency kind (`health_centre`, `child_guidance_centre`, ...).
    pub kind: &'static str,
    /// Display name (Japanese).
    pub display_name: &'static str,
    /// Municipality codes served.
    pub municipalities: &'static [&'static str],
    /// Municipality codes whose 要保護児童対策地域協議会 (要対協) the agency belongs to.
    pub council_memberships: &'static [&'static str],
    /// Municipality codes for which the agency is the coordinator.
    pub coordinator_of: &'static [&'static str],
}

/// The development trust domain.
pub const DEV_TRUST_DOMAIN: &str = "tsunagu.dev";

/// The development municipality: code and name.
pub const DEV_MUNICIPALITY: (&str, &str) = ("141178", "横浜市青葉区");

/// The development municipality code alone, for the tables below.
const AOBA: &[&str] = &[DEV_MUNICIPALITY.0];

/// The five sample agencies of 横浜市青葉区 (municipality code "141178"). All serve it; all but
/// the support hub sit on its 要対協; the こども家庭センター coordinates it.
pub const DEV_AGENCIES: &[DevAgency] = &[
    DevAgency {
        agency_id: "aoba-kodomo",
        kind: "health_centre",
        display_name: "青葉区こども家庭センター",
        municipalities: AOBA,
        council_memberships: AOBA,
        coordinator_of: AOBA,
    },
    DevAgency {
        agency_id: "north-jisou",
        kind: "child_guidance_centre",
        display_name: "横浜市北部児童相談所",
        municipalities: AOBA,
        council_memberships: AOBA,
        coordinator_of: &[],
    },
    DevAgency {
        agency_id: "aoba-hospital",
        kind: "hospital",
        display_name: "青葉総合病院 産婦人科",
        municipalities: AOBA,
        council_memberships: AOBA,
        coordinator_of: &[],
    },
    DevAgency {
        agency_id: "aoba-nursery",
        kind: "nursery",
        display_name: "あおば保育園",
        municipalities: AOBA,
        council_memberships: AOBA,
        coordinator_of: &[],
    },
    DevAgency {
        agency_id: "aoba-hiroba",
        kind: "support_hub",
        display_name: "青葉区地域子育て支援拠点 ひろば",
        municipalities: AOBA,
        // Deliberately not a council member, so council_sharing to it can be shown to fail.
        council_memberships: &[],
        coordinator_of: &[],
    },
];

/// Writes a complete development PKI into `dir` (creating it): ca.pem, ca.key, hub.pem, hub.key
/// (SANs localhost, 127.0.0.1, ::1; valid 10 years), crl.pem (an empty CRL signed by the CA,
/// nextUpdate 10 years), and for each [`DEV_AGENCIES`] entry agencies/<id>.pem,
/// agencies/<id>.key (valid 10 years) and agencies/<id>.age (a fresh age X25519 identity in
/// `age-keygen` format). Existing files are overwritten. Private key files get mode 0600 on unix.
/// Returns the paths written, in order.
pub fn write_dev_pki(dir: &Path) -> Result<Vec<PathBuf>, PkiError> {
    const TEN_YEARS_DAYS: i64 = 3650;
    let ten_years = Duration::days(TEN_YEARS_DAYS);
    let agencies_dir = dir.join("agencies");
    fs::create_dir_all(&agencies_dir).map_err(|source| PkiError::Io {
        action: "create directory",
        path: agencies_dir.clone(),
        source,
    })?;

    let mut written = Vec::new();
    let ca = CertificateAuthority::generate("Tsunagu Development CA", ten_years)?;
    written.push(write_file(
        &dir.join("ca.pem"),
        ca.cert_pem(),
        Secrecy::Public,
    )?);
    written.push(write_file(
        &dir.join("ca.key"),
        ca.key_pem(),
        Secrecy::Private,
    )?);

    let hub = ca.issue_server(
        &["localhost"],
        &[
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ],
        Validity::days_from_now(TEN_YEARS_DAYS),
    )?;
    written.push(write_file(
        &dir.join("hub.pem"),
        &hub.cert_pem,
        Secrecy::Public,
    )?);
    written.push(write_file(
        &dir.join("hub.key"),
        &hub.key_pem,
        Secrecy::Private,
    )?);

    let crl = ca.crl(&[], 1, ten_years)?;
    written.push(write_file(&dir.join("crl.pem"), &crl, Secrecy::Public)?);

    for agency in DEV_AGENCIES {
        let id = agency.agency_id;
        let cert = ca.issue_agency(
            DEV_TRUST_DOMAIN,
            id,
            Validity::days_from_now(TEN_YEARS_DAYS),
        )?;
        let age_key = generate_age_identity()?;
        written.push(write_file(
            &agencies_dir.join(format!("{id}.pem")),
            &cert.cert_pem,
            Secrecy::Public,
        )?);
        written.push(write_file(
            &agencies_dir.join(format!("{id}.key")),
            &cert.key_pem,
            Secrecy::Private,
        )?);
        written.push(write_file(
            &agencies_dir.join(format!("{id}.age")),
            &age_key.file_text,
            Secrecy::Private,
        )?);
    }
    Ok(written)
}

/// Whether a file holds a secret and must be readable by its owner only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secrecy {
    Public,
    Private,
}

/// Writes `contents` to `path`, returning the path. Private files are created with mode 0600
/// (rather than chmod-ed afterwards) so the key is never briefly readable by others; a
/// pre-existing file is tightened before the new secret goes in.
fn write_file(path: &Path, contents: &str, secrecy: Secrecy) -> Result<PathBuf, PkiError> {
    let io_error = |action| {
        move |source| PkiError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secrecy == Secrecy::Private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_error("create"))?;
    #[cfg(unix)]
    if secrecy == Secrecy::Private {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_error("restrict permissions of"))?;
    }
    #[cfg(not(unix))]
    let _ = secrecy;
    file.write_all(contents.as_bytes())
        .map_err(io_error("write"))?;
    file.sync_all().map_err(io_error("sync"))?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use crate::pki::test_support::{der, uri_sans, verify_client};
    use crate::pki::{IssuedCertificate, agency_spiffe_id, validate_agency_id};

    use super::*;

    #[test]
    fn dev_agencies_are_the_five_aoba_agencies() {
        let ids: Vec<&str> = DEV_AGENCIES.iter().map(|a| a.agency_id).collect();
        assert_eq!(
            ids,
            [
                "aoba-kodomo",
                "north-jisou",
                "aoba-hospital",
                "aoba-nursery",
                "aoba-hiroba"
            ]
        );
        for agency in DEV_AGENCIES {
            assert_eq!(agency.municipalities, ["141178"]);
            validate_agency_id(agency.agency_id).unwrap();
        }
        let hiroba = DEV_AGENCIES
            .iter()
            .find(|a| a.kind == "support_hub")
            .unwrap();
        assert!(hiroba.council_memberships.is_empty());
        let coordinators: Vec<&str> = DEV_AGENCIES
            .iter()
            .filter(|a| a.coordinator_of == ["141178"])
            .map(|a| a.agency_id)
            .collect();
        assert_eq!(coordinators, ["aoba-kodomo"]);
        assert_eq!(DEV_MUNICIPALITY, ("141178", "横浜市青葉区"));
    }

    #[test]
    fn write_dev_pki_writes_a_working_pki_with_private_keys_locked_down() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("certs");
        let written = write_dev_pki(&root).unwrap();
        assert_eq!(written.len(), 5 + 3 * DEV_AGENCIES.len());
        for path in &written {
            assert!(path.is_file(), "{}", path.display());
        }

        let read = |rel: &str| fs::read_to_string(root.join(rel)).unwrap();
        let ca = CertificateAuthority::from_pem(&read("ca.pem"), &read("ca.key")).unwrap();
        let crl = read("crl.pem");
        for agency in DEV_AGENCIES {
            let id = agency.agency_id;
            let cert_pem = read(&format!("agencies/{id}.pem"));
            let cert = IssuedCertificate {
                serial: Vec::new(),
                fingerprint_sha256: String::new(),
                key_pem: read(&format!("agencies/{id}.key")),
                cert_pem,
            };
            verify_client(&ca, Some(&crl), &cert).unwrap();
            assert_eq!(
                uri_sans(&der(&cert.cert_pem)),
                [agency_spiffe_id(DEV_TRUST_DOMAIN, id)]
            );
            assert!(read(&format!("agencies/{id}.age")).contains("AGE-SECRET-KEY-1"));
        }
        assert!(read("hub.key").contains("PRIVATE KEY"));

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for path in &written {
                let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
                let is_secret = matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("key" | "age")
                );
                if is_secret {
                    assert_eq!(mode, 0o600, "{}", path.display());
                }
            }
        }

        // Running it again regenerates everything in place.
        let again = write_dev_pki(&root).unwrap();
        assert_eq!(again, written);
        assert_ne!(read("ca.pem"), ca.cert_pem());
    }
}
