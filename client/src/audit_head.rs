//! Remembering the newest audit head the hub signed, so that a rollback of the hub's audit log
//! (its newest records deleted, an older copy of its database restored) is noticed by every
//! client, without anyone keeping heads by hand.
//!
//! The hub signs its audit chain's head with a key of its own (Ed25519). This profile pins that
//! key on first use, as it pins agencies' keys, and remembers the newest head it saw. Each time
//! it connects it asks the hub for the head *since* the remembered sequence number: the hub
//! replays its chain from that record to its end and signs "the head is M with hash H, and
//! record N has hash X" (`tsunagu_proto::audit_head::statement`). The client accepts the new
//! head only when
//!
//! - the signature is good and made with the pinned key,
//! - M is not below the remembered N, and
//! - X is the hash it remembered for N: the chain it saw is a prefix of the chain served now.
//!
//! Records never leave the hub for this (a client may not see other agencies' records); the
//! hub's replay of the records between N and M is the consistency proof, and the signature
//! binds it. What this catches is anything done to the database without the hub's key: records
//! cut off the end, an older copy restored and grown again. That the chain before N is intact
//! is what `tsunagu-hub audit verify` checks.
//!
//! The file is TOML next to the known-keys file (`<profile>.audit-head.toml`), mode 0600:
//!
//! ```toml
//! signing_key = "3b6a…"                 # the hub's audit signing key, pinned on first use
//! first_seen = "2026-04-01T00:00:00Z"
//! sequence = 1234                       # the newest head seen
//! hash = "9f86…"
//! seen_at = "2026-05-01T00:00:00Z"
//! ```

use std::path::{Path, PathBuf};

use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tsunagu_proto::v1::{GetAuditHeadRequest, GetAuditHeadResponse};

use crate::error::ClientError;
use crate::hub::Hub;
use crate::keys::write_private;

/// The newest signed head this profile saw, and the key that signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RememberedHead {
    /// The hub's audit signing key (hex of the Ed25519 public key), pinned on first use.
    pub signing_key: String,
    /// When this profile first saw the key (RFC 3339).
    pub first_seen: String,
    /// The newest head's sequence number.
    pub sequence: u64,
    /// The newest head's hash (hex).
    pub hash: String,
    /// When this head was seen (RFC 3339).
    pub seen_at: String,
}

/// What a check of the hub's head found, when it found nothing wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadCheck {
    /// The first head this profile saw: the hub's key is now pinned.
    FirstSeen { sequence: u64, signing_key: String },
    /// The head extends the one remembered (or is the same).
    Extends { from: u64, to: u64 },
}

/// The remembered head of one profile, and where it is kept.
#[derive(Debug, Default)]
pub struct HeadWatch {
    path: Option<PathBuf>,
    remembered: Option<RememberedHead>,
}

impl HeadWatch {
    /// Where a profile whose known keys are at `known_keys` keeps its head.
    pub fn path_for(known_keys: &Path) -> PathBuf {
        known_keys.with_extension("audit-head.toml")
    }

    /// Reads the file at `path`; a missing file means no head seen yet.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let remembered = match std::fs::read_to_string(path) {
            Ok(text) => Some(toml::from_str(&text).map_err(|e| ClientError::InvalidFile {
                what: "remembered audit head",
                path: path.to_owned(),
                reason: e.message().to_owned(),
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(ClientError::ReadFile {
                    what: "remembered audit head",
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Ok(Self {
            path: Some(path.to_owned()),
            remembered,
        })
    }

    /// Forgets the hub this profile pinned: removes the file at `path` and returns what it held
    /// (`None` when nothing was pinned). The next connection pins the key the hub signs with
    /// then, as on first use. For when the operator has explained a rollback or a new signing
    /// key, such as a development hub whose data directory was wiped.
    pub fn forget(path: &Path) -> Result<Option<RememberedHead>, ClientError> {
        let remembered = Self::load(path)?.remembered;
        match std::fs::remove_file(path) {
            Ok(()) => Ok(remembered),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ClientError::WriteFile {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// A watch that is never saved (for one-off use and tests).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The newest head seen, if any.
    pub fn remembered(&self) -> Option<&RememberedHead> {
        self.remembered.as_ref()
    }

    /// The file this watch is kept in, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Asks the hub for its signed head since the remembered one, checks it ([`Self::accept`])
    /// and remembers it. A rollback or a changed key is an error, and nothing is remembered.
    pub async fn check(&mut self, hub: &Hub) -> Result<HeadCheck, ClientError> {
        let since_sequence = self.remembered.as_ref().map_or(0, |r| r.sequence);
        let answer = hub
            .audit()
            .get_audit_head(GetAuditHeadRequest { since_sequence })
            .await
            .map_err(|status| hub.call_error(status))?
            .into_inner();
        let found = self.accept(&answer)?;
        self.save()?;
        Ok(found)
    }

    /// Checks a signed head against the pinned key and the remembered head, and remembers it.
    pub fn accept(&mut self, answer: &GetAuditHeadResponse) -> Result<HeadCheck, ClientError> {
        let signing_key = answer.signing_key.to_ascii_lowercase();
        let public = decode::<32>("signing_key", &signing_key)?;
        let signature =
            hex::decode(&answer.signature).map_err(|_| malformed("signature", "is not hex"))?;
        let hash = decode::<32>("hash", &answer.hash)?;
        let since_hash = decode::<32>("since_hash", &answer.since_hash)?;
        if let Some(remembered) = &self.remembered
            && remembered.signing_key != signing_key
        {
            return Err(ClientError::AuditKeyChanged {
                pinned: remembered.signing_key.clone(),
                served: signing_key,
                file: self.path.clone().unwrap_or_default(),
            });
        }
        let statement = tsunagu_proto::audit_head::statement(
            answer.sequence,
            &hash,
            answer.since_sequence,
            &since_hash,
        );
        UnparsedPublicKey::new(&ED25519, public)
            .verify(&statement, &signature)
            .map_err(|_| ClientError::AuditHeadUnsigned)?;
        let now = now_text();
        let found = match &self.remembered {
            None => HeadCheck::FirstSeen {
                sequence: answer.sequence,
                signing_key: signing_key.clone(),
            },
            Some(remembered) => {
                let rollback = |served: String| ClientError::AuditRollback {
                    remembered: remembered.sequence,
                    remembered_hash: remembered.hash.clone(),
                    served,
                    file: self.path.clone().unwrap_or_default(),
                };
                if answer.sequence < remembered.sequence {
                    return Err(rollback(format!(
                        "its newest record is now {}",
                        answer.sequence
                    )));
                }
                if answer.since_sequence != remembered.sequence
                    || !hex::encode(since_hash).eq_ignore_ascii_case(&remembered.hash)
                {
                    return Err(rollback(format!(
                        "its record {} is now another one ({})",
                        remembered.sequence,
                        short(&hex::encode(since_hash))
                    )));
                }
                HeadCheck::Extends {
                    from: remembered.sequence,
                    to: answer.sequence,
                }
            }
        };
        let first_seen = self
            .remembered
            .as_ref()
            .map_or_else(|| now.clone(), |r| r.first_seen.clone());
        self.remembered = Some(RememberedHead {
            signing_key,
            first_seen,
            sequence: answer.sequence,
            hash: hex::encode(hash),
            seen_at: now,
        });
        Ok(found)
    }

    /// Writes the remembered head (mode 0600); nothing for an in-memory watch.
    pub fn save(&self) -> Result<(), ClientError> {
        let (Some(path), Some(remembered)) = (&self.path, &self.remembered) else {
            return Ok(());
        };
        let text = toml::to_string(remembered).map_err(|e| ClientError::InvalidFile {
            what: "remembered audit head",
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_private(path, &text)
    }
}

fn malformed(field: &str, reason: &str) -> ClientError {
    ClientError::AuditHeadMalformed(format!("{field} {reason}"))
}

fn decode<const N: usize>(field: &str, text: &str) -> Result<[u8; N], ClientError> {
    let bytes = hex::decode(text).map_err(|_| malformed(field, "is not hex"))?;
    bytes
        .try_into()
        .map_err(|_| malformed(field, &format!("is not {N} bytes")))
}

/// The first 16 hex digits of a hash, for messages.
pub fn short(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}

fn now_text() -> String {
    let at = OffsetDateTime::now_utc();
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair as _};

    use super::*;

    struct TestSigner(Ed25519KeyPair);

    impl TestSigner {
        fn new() -> Self {
            let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
            Self(Ed25519KeyPair::from_pkcs8(document.as_ref()).unwrap())
        }

        fn head(
            &self,
            sequence: u64,
            hash: u8,
            since: u64,
            since_hash: u8,
        ) -> GetAuditHeadResponse {
            let statement = tsunagu_proto::audit_head::statement(
                sequence,
                &[hash; 32],
                since,
                &[since_hash; 32],
            );
            GetAuditHeadResponse {
                sequence,
                hash: hex::encode([hash; 32]),
                since_sequence: since,
                since_hash: hex::encode([since_hash; 32]),
                signing_key: hex::encode(self.0.public_key().as_ref()),
                signature: hex::encode(self.0.sign(&statement).as_ref()),
            }
        }
    }

    #[test]
    fn the_first_head_pins_the_key_and_an_extension_is_accepted() {
        let hub = TestSigner::new();
        let mut watch = HeadWatch::in_memory();
        assert!(matches!(
            watch.accept(&hub.head(5, 5, 0, 0)).unwrap(),
            HeadCheck::FirstSeen { sequence: 5, .. }
        ));
        assert_eq!(
            watch.accept(&hub.head(9, 9, 5, 5)).unwrap(),
            HeadCheck::Extends { from: 5, to: 9 }
        );
        assert_eq!(
            watch.accept(&hub.head(9, 9, 9, 9)).unwrap(),
            HeadCheck::Extends { from: 9, to: 9 }
        );
    }

    #[test]
    fn a_lower_head_or_another_record_at_the_remembered_place_is_a_rollback() {
        let hub = TestSigner::new();
        let mut watch = HeadWatch::in_memory();
        watch.accept(&hub.head(5, 5, 0, 0)).unwrap();
        let lower = watch.accept(&hub.head(3, 3, 0, 0)).unwrap_err();
        assert!(
            matches!(lower, ClientError::AuditRollback { .. }),
            "{lower}"
        );
        let text = lower.to_string();
        assert!(
            text.contains("rolled back") && text.contains("運用者"),
            "{text}"
        );
        let rewritten = watch.accept(&hub.head(8, 8, 5, 6)).unwrap_err();
        assert!(matches!(rewritten, ClientError::AuditRollback { .. }));
        let unvouched = watch.accept(&hub.head(8, 8, 0, 0)).unwrap_err();
        assert!(matches!(unvouched, ClientError::AuditRollback { .. }));
        assert_eq!(
            watch.remembered().unwrap().sequence,
            5,
            "nothing remembered"
        );
    }

    #[test]
    fn another_key_or_a_bad_signature_is_refused() {
        let hub = TestSigner::new();
        let mut watch = HeadWatch::in_memory();
        watch.accept(&hub.head(5, 5, 0, 0)).unwrap();
        let other = TestSigner::new();
        assert!(matches!(
            watch.accept(&other.head(6, 6, 5, 5)).unwrap_err(),
            ClientError::AuditKeyChanged { .. }
        ));
        let mut forged = hub.head(6, 6, 5, 5);
        forged.sequence = 7;
        assert!(matches!(
            watch.accept(&forged).unwrap_err(),
            ClientError::AuditHeadUnsigned
        ));
    }

    #[test]
    fn the_remembered_head_is_saved_privately_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = HeadWatch::path_for(&dir.path().join("known_keys/aoba.toml"));
        assert!(path.ends_with("known_keys/aoba.audit-head.toml"));
        let hub = TestSigner::new();
        let mut watch = HeadWatch::load(&path).unwrap();
        watch.accept(&hub.head(5, 5, 0, 0)).unwrap();
        watch.save().unwrap();
        let again = HeadWatch::load(&path).unwrap();
        assert_eq!(again.remembered(), watch.remembered());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
