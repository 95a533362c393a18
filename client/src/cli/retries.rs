//! Sealed fields kept for a retry. Sealing encrypts afresh every time, so running a write again
//! with the same `--idempotency-key` would send different bytes, and the hub would refuse it as a
//! different request under a used key instead of answering as it first did. A write sent with an
//! explicit key therefore keeps what it sealed, next to the profile's known-keys file, and a
//! retry with the same key, recipients and content sends those bytes again.
//!
//! Only ciphertext is kept. Whether kept bytes hold the same content is checked by opening them
//! with the caller's own identity (every field is sealed to the sender's agency too); no hash of
//! the content is written anywhere.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use age::x25519::{Identity, Recipient};
use sha2::{Digest as _, Sha256};

use tsunagu_client::seal::open_with;

/// Kept fields older than this are removed when the next one is kept.
const KEPT_FOR: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The sealed fields of one idempotency key.
#[derive(Debug)]
pub struct SealedRetries {
    dir: PathBuf,
    key: String,
}

impl SealedRetries {
    /// The fields kept for `key` in `dir`.
    pub fn new(dir: PathBuf, key: &str) -> Self {
        Self {
            dir,
            key: key.to_owned(),
        }
    }

    /// The directory kept fields go in for a profile whose known keys are at `known_keys`.
    pub fn dir_for(known_keys: &Path) -> PathBuf {
        known_keys.with_extension("sealed")
    }

    /// Names the key and the recipients, never the content.
    fn slot(&self, recipients: &[Recipient]) -> String {
        let mut names: Vec<String> = recipients.iter().map(ToString::to_string).collect();
        names.sort();
        names.dedup();
        let mut digest = Sha256::new();
        digest.update(self.key.as_bytes());
        for name in &names {
            digest.update([0]);
            digest.update(name.as_bytes());
        }
        digest
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    fn kept(&self, slot: &str) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let prefix = format!("{slot}-");
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with(&prefix) && name.ends_with(".age"))
            })
            .collect();
        paths.sort();
        paths
    }

    /// The bytes sealed earlier under this key for these recipients, when they hold
    /// `plaintext`.
    pub fn recall(
        &self,
        recipients: &[Recipient],
        plaintext: &[u8],
        identities: &[Identity],
    ) -> Option<Vec<u8>> {
        if identities.is_empty() {
            return None;
        }
        self.kept(&self.slot(recipients))
            .into_iter()
            .filter_map(|path| std::fs::read(path).ok())
            .find(|sealed| {
                open_with(sealed, identities).is_ok_and(|opened| opened.as_slice() == plaintext)
            })
    }

    /// Keeps `sealed`, just sealed under this key for these recipients, and removes fields
    /// kept for longer than 30 days.
    pub fn keep(&self, recipients: &[Recipient], sealed: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        self.remove_old();
        let slot = self.slot(recipients);
        let mut n = self.kept(&slot).len();
        let path = loop {
            let path = self.dir.join(format!("{slot}-{n}.age"));
            if !path.exists() {
                break path;
            }
            n += 1;
        };
        // Written whole, then renamed: a retry never reads half a file.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, sealed)?;
        std::fs::rename(&partial, &path)
    }

    fn remove_old(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.filter_map(Result::ok) {
            let old = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age > KEPT_FOR);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsunagu_client::seal::seal;

    #[test]
    fn a_field_sealed_under_a_key_is_recalled_for_the_same_content_and_recipients_only() {
        let dir = tempfile::tempdir().unwrap();
        let me = Identity::generate();
        let mine = std::slice::from_ref(&me);
        let other = Identity::generate();
        let recipients = vec![me.to_public(), other.to_public()];
        let retries = SealedRetries::new(dir.path().join("sealed"), "retry-1");
        assert_eq!(retries.recall(&recipients, b"body", mine), None);

        let sealed = seal(b"body", &recipients).unwrap();
        retries.keep(&recipients, &sealed).unwrap();
        assert_eq!(
            retries.recall(&recipients, b"body", mine),
            Some(sealed.clone())
        );
        // In another order, the same recipients.
        let reversed: Vec<_> = recipients.iter().rev().cloned().collect();
        assert_eq!(
            retries.recall(&reversed, b"body", mine),
            Some(sealed.clone())
        );
        // Other content, other recipients, another key, or no identity to check with: none.
        assert_eq!(retries.recall(&recipients, b"other", mine), None);
        assert_eq!(retries.recall(&[me.to_public()], b"body", mine), None);
        let another = SealedRetries::new(dir.path().join("sealed"), "retry-2");
        assert_eq!(another.recall(&recipients, b"body", mine), None);
        assert_eq!(retries.recall(&recipients, b"body", &[]), None);

        // Two fields under one key: each is recalled for its own content.
        let second = seal(b"second", &recipients).unwrap();
        retries.keep(&recipients, &second).unwrap();
        assert_eq!(retries.recall(&recipients, b"second", mine), Some(second));
        assert_eq!(retries.recall(&recipients, b"body", mine), Some(sealed));
    }

    #[test]
    fn nothing_of_the_content_is_written_in_the_clear() {
        let dir = tempfile::tempdir().unwrap();
        let me = Identity::generate();
        let retries = SealedRetries::new(dir.path().to_owned(), "k");
        let sealed = seal(b"secret-family-name", &[me.to_public()]).unwrap();
        retries.keep(&[me.to_public()], &sealed).unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            assert!(!bytes.windows(6).any(|w| w == b"secret"), "{path:?}");
            assert!(!path.to_string_lossy().contains("secret"));
        }
    }
}
