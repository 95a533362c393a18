//! The development directory: registers the certs-dev sample agencies on first start, and
//! publishes each one's age recipient, so that `tsunagu-hub serve` and `tsunagu demo` work with
//! no set-up at all and with real sealing.
//!
//! The recipients come from the `# public key: age1...` comment line of each
//! `agencies/<id>.age` file that `tsunagu-hub certs dev` writes next to the certificates. Only
//! that public line is used; the hub never parses, keeps or logs the identity itself.

use std::path::{Path, PathBuf};

use crate::dev_pki::{DEV_AGENCIES, DevAgency};
use crate::domain::keys::{AgeRecipient, AgencyKey};
use crate::domain::{Agency, AgencyId, AgencyKind, AgencyStatus, Municipality, Staff, Timestamp};
use crate::settings::Settings;
use crate::store::{Locking, Store, StoreError};

/// The domain agency for a certs-dev sample.
pub fn dev_agency(sample: &DevAgency) -> Result<Agency, StoreError> {
    let bad = |what: &str| StoreError::corrupt("dev agencies", what.to_owned());
    let codes = |list: &[&str]| {
        list.iter()
            .map(|code| Municipality::parse(code).ok_or_else(|| bad("municipality")))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Agency {
        id: AgencyId::parse(sample.agency_id).ok_or_else(|| bad("agency_id"))?,
        kind: AgencyKind::parse(sample.kind).ok_or_else(|| bad("kind"))?,
        display_name: sample.display_name.to_owned(),
        municipalities: codes(sample.municipalities)?,
        council_memberships: codes(sample.council_memberships)?,
        coordinator_of: codes(sample.coordinator_of)?,
        status: AgencyStatus::Active,
    })
}

/// Where the development agencies' age files are: `agencies/` next to the client CA (the
/// certs-dev directory, or `$TSUNAGU_TLS_DIR`).
pub fn dev_keys_dir(settings: &Settings) -> PathBuf {
    settings
        .tls
        .client_ca
        .parent()
        .unwrap_or(Path::new("."))
        .join("agencies")
}

/// Registers every sample agency when the directory is empty, so that an operator's changes (a
/// suspension, say) survive restarts. Then publishes the certs-dev age recipient of each sample
/// agency that is registered and has never had a key (a hub created before keys existed gets
/// them too); a missing or unreadable file is skipped with a warning.
pub async fn register_dev_agencies(
    store: &dyn Store,
    keys_dir: &Path,
    at: Timestamp,
) -> Result<(), StoreError> {
    let keys = keys_dir.to_owned();
    let published = store
        .write(Locking::Exclusive, move |tx| {
            Box::pin(async move {
            if tx.agencies().await?.is_empty() {
                for sample in DEV_AGENCIES {
                    tx.insert_agency(&dev_agency(sample)?, at).await?;
                }
                tracing::info!(
                    count = DEV_AGENCIES.len(),
                    "registered the development agencies"
                );
            }
            let mut published = 0_usize;
            for sample in DEV_AGENCIES {
                let agency = dev_agency(sample)?.id;
                if tx.agency(&agency).await?.is_none() || !tx.agency_keys(&agency, true).await?.is_empty() {
                    continue;
                }
                let path = keys.join(format!("{agency}.age"));
                let recipient = match public_key_line(&path) {
                    Ok(recipient) => recipient,
                    Err(reason) => {
                        tracing::warn!(
                            %agency,
                            path = %path.display(),
                            "not publishing a development age key: {reason}"
                        );
                        continue;
                    }
                };
                if tx
                    .key_by_fingerprint(&recipient.fingerprint())
                    .await?
                    .is_some()
                {
                    tracing::warn!(
                        %agency,
                        path = %path.display(),
                        "not publishing a development age key: another agency already published it"
                    );
                    continue;
                }
                let key = AgencyKey::publish(
                    agency,
                    recipient,
                    at,
                    Staff {
                        name: "tsunagu-hub".to_owned(),
                        role: "development set-up".to_owned(),
                    },
                );
                tx.insert_key(&key).await?;
                published += 1;
            }
                Ok::<_, StoreError>(published)
            })
        })
        .await?;
    if published > 0 {
        tracing::info!(
            count = published,
            dir = %keys_dir.display(),
            "published the development agencies' age keys"
        );
    }
    Ok(())
}

/// The recipient on the `# public key: age1...` line of an `age-keygen` identity file. Nothing
/// else of the file is looked at or kept.
fn public_key_line(path: &Path) -> Result<AgeRecipient, String> {
    use std::io::BufRead as _;
    let file = std::fs::File::open(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => "the file does not exist".to_owned(),
        _ => format!("cannot read it: {error}"),
    })?;
    // `age-keygen` writes the public key line before the secret key: stop reading there.
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|error| format!("cannot read it: {error}"))?;
        if let Some(recipient) = line.trim().strip_prefix("# public key:") {
            return AgeRecipient::parse(recipient)
                .map_err(|reason| format!("its public key line {reason}"));
        }
    }
    Err("it has no `# public key: age1...` line".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_key_line_of_an_age_keygen_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::pki::generate_age_identity().unwrap();
        let path = dir.path().join("aoba-kodomo.age");
        std::fs::write(&path, &key.file_text).unwrap();
        assert_eq!(public_key_line(&path).unwrap().as_str(), key.public_key);
    }

    #[test]
    fn a_file_without_a_public_key_line_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.age");
        std::fs::write(&path, "AGE-SECRET-KEY-1SECRETSECRET\n").unwrap();
        let reason = public_key_line(&path).unwrap_err();
        assert!(reason.contains("no `# public key"), "{reason}");
        assert!(!reason.contains("SECRETSECRET"), "{reason}");
        let missing = public_key_line(&dir.path().join("absent.age")).unwrap_err();
        assert!(missing.contains("does not exist"), "{missing}");
    }
}
