//! The hub's audit signing key: an Ed25519 key of the hub's own, with which it signs its audit
//! chain's head (`GetAuditHead`), so that every client can remember the newest head it saw and
//! refuse a hub whose log was later rolled back (see `tsunagu_proto::audit_head`).
//!
//! The key is a PKCS#8 PEM file, by default next to the SQLite database (`audit-signing.key`),
//! made with mode 0600 when the hub first starts. It must not live in the database: whoever can
//! rewrite the database must not be able to sign a rewritten head. Several hub instances on one
//! PostgreSQL database must share one key file (`audit_signing_key` in the config). Ed25519 comes
//! from `ring`, the cryptography the hub's TLS already uses, so no second implementation is added.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

use crate::domain::audit::ChainHead;

/// Why the audit signing key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("cannot {action} the audit signing key file {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the audit signing key file {} is not an Ed25519 private key in PKCS#8 PEM: {reason} \
         (make one with `openssl genpkey -algorithm ed25519`, or remove the file and the hub \
         makes a new one, which every client will then report as a changed key)",
        path.display()
    )]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot generate an audit signing key")]
    Generate,
}

/// The hub's audit signing key.
pub struct AuditSigner {
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for AuditSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSigner")
            .field("public_key", &self.public_key_hex())
            .finish_non_exhaustive()
    }
}

/// A head as the hub vouches for it: the head, the earlier record it extends, and the
/// signature over both (`tsunagu_proto::audit_head::statement`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHead {
    pub head: ChainHead,
    pub since: ChainHead,
    pub signature: Vec<u8>,
}

impl AuditSigner {
    /// Reads the key at `path`, or makes one there (mode 0600) when there is none yet. Two hubs
    /// starting at once on one path end up with the same key: only one of them creates it.
    pub fn load_or_create(path: &Path) -> Result<Self, SigningKeyError> {
        match Self::load(path) {
            Err(SigningKeyError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            loaded => return loaded,
        }
        let io = |action| {
            move |source| SigningKeyError::Io {
                action,
                path: path.to_owned(),
                source,
            }
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io("create the directory of"))?;
        }
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| SigningKeyError::Generate)?;
        let pem = rcgen::KeyPair::try_from(document.as_ref())
            .map_err(|_| SigningKeyError::Generate)?
            .serialize_pem();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        match options.open(path) {
            Ok(mut file) => {
                file.write_all(pem.as_bytes()).map_err(io("write"))?;
                file.sync_all().map_err(io("sync"))?;
                tracing::info!(
                    path = %path.display(),
                    "made a new audit signing key; clients pin it on first use"
                );
            }
            // Another instance made it meanwhile: use that one.
            Err(source) if source.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(io("create")(source)),
        }
        Self::load(path)
    }

    /// Reads the key at `path`.
    pub fn load(path: &Path) -> Result<Self, SigningKeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| SigningKeyError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        let invalid = |reason: String| SigningKeyError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let pair = rcgen::KeyPair::from_pem(&text).map_err(|e| invalid(e.to_string()))?;
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pair.serialize_der())
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self { key })
    }

    /// A key that lives only in memory (tests and benchmarks).
    pub fn ephemeral() -> Result<Self, SigningKeyError> {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| SigningKeyError::Generate)?;
        let key =
            Ed25519KeyPair::from_pkcs8(document.as_ref()).map_err(|_| SigningKeyError::Generate)?;
        Ok(Self { key })
    }

    /// The public key, 32 bytes.
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// The public key as 64 lower-case hex digits, as clients pin it.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.public_key())
    }

    /// Signs "the head is `head`, and it extends `since`".
    pub fn sign(&self, head: ChainHead, since: ChainHead) -> SignedHead {
        let statement = tsunagu_proto::audit_head::statement(
            head.sequence,
            &head.hash,
            since.sequence,
            &since.hash,
        );
        SignedHead {
            head,
            since,
            signature: self.key.sign(&statement).as_ref().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use ring::signature::{ED25519, UnparsedPublicKey};

    use super::*;

    #[test]
    fn a_new_key_is_made_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/audit-signing.key");
        let made = AuditSigner::load_or_create(&path).unwrap();
        let again = AuditSigner::load_or_create(&path).unwrap();
        assert_eq!(made.public_key_hex(), again.public_key_hex());
        assert_eq!(made.public_key().len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn a_signed_head_verifies_with_the_public_key_and_not_when_changed() {
        let signer = AuditSigner::ephemeral().unwrap();
        let head = ChainHead {
            sequence: 9,
            hash: [7; 32],
        };
        let since = ChainHead {
            sequence: 4,
            hash: [3; 32],
        };
        let signed = signer.sign(head, since);
        let key = UnparsedPublicKey::new(&ED25519, signer.public_key());
        let statement = tsunagu_proto::audit_head::statement(9, &[7; 32], 4, &[3; 32]);
        assert!(key.verify(&statement, &signed.signature).is_ok());
        let other = tsunagu_proto::audit_head::statement(9, &[7; 32], 4, &[4; 32]);
        assert!(key.verify(&other, &signed.signature).is_err());
    }

    #[test]
    fn a_file_that_is_not_an_ed25519_key_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit-signing.key");
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        std::fs::write(&path, p256.serialize_pem()).unwrap();
        let error = AuditSigner::load_or_create(&path).unwrap_err();
        assert!(matches!(error, SigningKeyError::Invalid { .. }), "{error}");
        assert!(error.to_string().contains("audit-signing.key"));
    }
}
