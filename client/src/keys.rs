//! An agency's age keys: creating the identity file, publishing its recipient to the hub's key
//! directory over mTLS, rotating it, and reading other agencies' published keys.
//!
//! The identity file has the format `age-keygen` writes and may hold several identities: the
//! first is the current one (its recipient is published); the ones below it were kept by
//! [`rotate`] so that items sealed to them still open. It is created with mode 0600 and the
//! secret keys in it never leave this machine: only recipients (`age1...`) are sent to the hub.
//!
//! A key's fingerprint is the SHA-256 (hex) of its recipient text. The client computes it itself
//! ([`fingerprint`]) rather than trusting the one the hub sends.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret as _;
use age::x25519::{Identity, Recipient};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tsunagu_proto::v1::{
    AgencyKey, KeyStatus, ListKeysRequest, PublishKeyRequest, RetireKeyRequest, Staff,
};

use crate::error::ClientError;
use crate::hub::Hub;
use crate::seal::load_identities;

/// SHA-256 (hex) of a recipient's text: what agencies compare out of band.
pub fn fingerprint(recipient: &str) -> String {
    hex::encode(Sha256::digest(recipient.trim().as_bytes()))
}

/// A fingerprint as typed: 64 hex digits, either case, spaces and colons between groups
/// allowed. `None` when it is not one.
pub fn parse_fingerprint(text: &str) -> Option<String> {
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | ':'))
        .collect::<String>()
        .to_ascii_lowercase();
    (digits.len() == 64 && digits.bytes().all(|b| b.is_ascii_hexdigit())).then_some(digits)
}

/// A fingerprint in groups of four for reading aloud over the phone: `1a2b 3c4d …`.
pub fn grouped(fingerprint: &str) -> String {
    fingerprint
        .as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a listed key may be sealed to.
pub fn is_active(key: &AgencyKey) -> bool {
    key.status() == KeyStatus::Active
}

/// The age recipient of a listed key, checked against its fingerprint (computed here).
pub fn recipient_of(key: &AgencyKey) -> Result<Recipient, ClientError> {
    let recipient: Recipient = key.recipient.parse().map_err(|_| {
        ClientError::Seal(format!(
            "agency {} published a key that is not an age X25519 recipient",
            key.agency_id
        ))
    })?;
    if fingerprint(&recipient.to_string()) != key.fingerprint {
        return Err(ClientError::Seal(format!(
            "the hub listed a key of agency {} whose fingerprint does not match its recipient",
            key.agency_id
        )));
    }
    Ok(recipient)
}

/// The keys of `agencies` (none: the caller's own), active ones only unless `include_retired`.
pub async fn list(
    hub: &Hub,
    agencies: &[String],
    include_retired: bool,
) -> Result<Vec<AgencyKey>, ClientError> {
    Ok(hub
        .directory()
        .list_keys(ListKeysRequest {
            agency_ids: agencies.to_vec(),
            include_retired,
        })
        .await
        .map_err(|status| hub.call_error(status))?
        .into_inner()
        .keys)
}

/// Publishes a recipient for the caller's own agency (the hub takes the agency from the mTLS
/// certificate). Publishing an active key again changes nothing.
pub async fn publish(
    hub: &Hub,
    recipient: &Recipient,
    staff: &Staff,
) -> Result<AgencyKey, ClientError> {
    hub.directory()
        .publish_key(PublishKeyRequest {
            recipient: recipient.to_string(),
            staff: Some(staff.clone()),
        })
        .await
        .map_err(|status| hub.call_error(status))?
        .into_inner()
        .key
        .ok_or_else(|| ClientError::Seal("the hub answered without the key".to_owned()))
}

/// Retires one of the caller's own keys; it stays listed, marked retired.
pub async fn retire(hub: &Hub, fingerprint: &str, staff: &Staff) -> Result<AgencyKey, ClientError> {
    hub.directory()
        .retire_key(RetireKeyRequest {
            fingerprint: fingerprint.to_owned(),
            staff: Some(staff.clone()),
        })
        .await
        .map_err(|status| hub.call_error(status))?
        .into_inner()
        .key
        .ok_or_else(|| ClientError::Seal("the hub answered without the key".to_owned()))
}

/// What [`init`] did.
#[derive(Debug)]
pub struct Initialised {
    /// The identity file written.
    pub path: PathBuf,
    /// The published key.
    pub key: AgencyKey,
    /// Where the file it replaced (with `force`) was kept.
    pub replaced: Option<PathBuf>,
}

/// Creates a new identity in `path` (mode 0600) and publishes its recipient. An existing file
/// is refused unless `force`; then it is kept next to the new one as `<file>.replaced-<time>`
/// (items sealed to it open with that file only: prefer [`rotate`], which keeps it in place).
pub async fn init(
    hub: &Hub,
    path: &Path,
    force: bool,
    staff: &Staff,
) -> Result<Initialised, ClientError> {
    let replaced = if path.exists() {
        if !force {
            return Err(ClientError::IdentityFileExists {
                path: path.to_owned(),
            });
        }
        let backup = free_sibling(path, &format!("replaced-{}", file_stamp(now())));
        copy_private(path, &backup)?;
        Some(backup)
    } else {
        None
    };
    let identity = Identity::generate();
    write_private(path, &identity_block(&identity, now()))?;
    let key = publish(hub, &identity.to_public(), staff).await?;
    Ok(Initialised {
        path: path.to_owned(),
        key,
        replaced,
    })
}

/// Publishes the current (first) identity of the file, for an identity made elsewhere (for
/// example the development ones) or a publication that failed half-way.
pub async fn publish_file(hub: &Hub, path: &Path, staff: &Staff) -> Result<AgencyKey, ClientError> {
    let identities = load_identities(path)?;
    publish(hub, &identities[0].to_public(), staff).await
}

/// What [`rotate`] did.
#[derive(Debug)]
pub struct Rotated {
    /// The newly published key.
    pub key: AgencyKey,
    /// The keys of this file that were retired.
    pub retired: Vec<AgencyKey>,
    /// A copy of the file as it was before.
    pub backup: PathBuf,
}

/// Rotates this machine's key: generates a new identity, writes it at the top of the identity
/// file (the earlier identities stay below it, so older items still open, and a copy of the old
/// file is kept as `<file>.retired-<date>`), publishes the new recipient, then retires every
/// earlier identity of the file that is still active in the directory. Keys of the agency held
/// elsewhere (other systems) are left alone.
pub async fn rotate(hub: &Hub, path: &Path, staff: &Staff) -> Result<Rotated, ClientError> {
    let earlier = load_identities(path)?;
    let old_text = std::fs::read_to_string(path).map_err(|source| ClientError::ReadFile {
        what: "age identity",
        path: path.to_owned(),
        source,
    })?;
    let at = now();
    let backup = free_sibling(path, &format!("retired-{}", file_date(at)));
    copy_private(path, &backup)?;
    let identity = Identity::generate();
    let mut text = identity_block(&identity, at);
    text.push_str(&format!(
        "\n# Earlier identities, retired on {}: kept so that items sealed to them still open.\n",
        stamp(at)
    ));
    text.push_str(&old_text);
    write_private(path, &text)?;

    let key = publish(hub, &identity.to_public(), staff).await?;
    let own_active = list(hub, &[], false).await?;
    let mut retired = Vec::new();
    for old in &earlier {
        let fp = fingerprint(&old.to_public().to_string());
        if fp != key.fingerprint && own_active.iter().any(|k| k.fingerprint == fp) {
            retired.push(retire(hub, &fp, staff).await?);
        }
    }
    Ok(Rotated {
        key,
        retired,
        backup,
    })
}

fn now() -> OffsetDateTime {
    let at = OffsetDateTime::now_utc();
    at.replace_nanosecond(0).unwrap_or(at)
}

fn stamp(at: OffsetDateTime) -> String {
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

fn file_date(at: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        at.year(),
        u8::from(at.month()),
        at.day()
    )
}

fn file_stamp(at: OffsetDateTime) -> String {
    format!(
        "{}T{:02}{:02}{:02}Z",
        file_date(at),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// One identity in `age-keygen` format: created, public key, secret key.
fn identity_block(identity: &Identity, at: OffsetDateTime) -> String {
    format!(
        "# created: {}\n# public key: {}\n{}\n",
        stamp(at),
        identity.to_public(),
        identity.to_string().expose_secret()
    )
}

/// `<file>.<suffix>`, or `<file>.<suffix>-2`, `-3`, … when taken.
fn free_sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "identity.age".to_owned());
    let mut candidate = path.with_file_name(format!("{name}.{suffix}"));
    let mut n = 2;
    while candidate.exists() {
        candidate = path.with_file_name(format!("{name}.{suffix}-{n}"));
        n += 1;
    }
    candidate
}

fn copy_private(from: &Path, to: &Path) -> Result<(), ClientError> {
    let bytes = std::fs::read(from).map_err(|source| ClientError::ReadFile {
        what: "age identity",
        path: from.to_owned(),
        source,
    })?;
    write_bytes_private(to, &bytes)
}

/// Writes `text` to `path` readable by its owner only (0600), atomically: a temporary file in
/// the same directory, synced, then renamed over it. Missing directories are created (0700).
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), ClientError> {
    write_bytes_private(path, text.as_bytes())
}

fn write_bytes_private(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let failed = |source: std::io::Error| ClientError::WriteFile {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(failed)?;
    }
    let temporary = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        uuid::Uuid::new_v4().simple()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = options.open(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(error) = result.and_then(|()| std::fs::rename(&temporary, path)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(failed(error));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_the_sha256_of_the_recipient_text() {
        let recipient = Identity::generate().to_public().to_string();
        let expected = hex::encode(Sha256::digest(recipient.as_bytes()));
        assert_eq!(fingerprint(&recipient), expected);
        assert_eq!(
            parse_fingerprint(&grouped(&expected)),
            Some(expected.clone())
        );
        assert_eq!(
            parse_fingerprint(&expected.to_ascii_uppercase()),
            Some(expected)
        );
        assert_eq!(parse_fingerprint("1234"), None);
    }

    #[test]
    fn a_private_file_is_written_for_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/dir/agency.age");
        let identity = Identity::generate();
        write_private(&path, &identity_block(&identity, now())).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = load_identities(&path).unwrap();
        assert_eq!(
            loaded[0].to_public().to_string(),
            identity.to_public().to_string()
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# created: "), "{text}");
        assert!(text.contains(&format!("# public key: {}", identity.to_public())));
    }

    #[test]
    fn a_taken_backup_name_gets_a_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.age");
        let first = free_sibling(&path, "retired-2026-04-01");
        assert_eq!(first, dir.path().join("a.age.retired-2026-04-01"));
        std::fs::write(&first, "x").unwrap();
        assert_eq!(
            free_sibling(&path, "retired-2026-04-01"),
            dir.path().join("a.age.retired-2026-04-01-2")
        );
    }
}
