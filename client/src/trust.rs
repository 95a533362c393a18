//! Which agencies' keys this profile has seen and verified: trust on first use, pinning
//! fingerprints given out of band, and noticing when an agency's key set changes.
//!
//! The directory is served by the hub, and the hub operator must not be able to read a family's
//! case; so a client does not simply believe whatever keys the hub lists. The known-keys file
//! records, per agency, the fingerprints of its active keys when this profile first (and last)
//! saw them, and the ones the user verified out of band (`tsunagu keys verify`). A change in an
//! agency's key set is reported; a verified key that is no longer active stops sealing to that
//! agency until the user verifies its new key or explicitly accepts the change.
//!
//! The file is TOML, written with mode 0600:
//!
//! ```toml
//! [agencies.aoba-hospital]
//! first_seen = "2026-04-01T00:00:00Z"
//! changed = "2026-05-01T00:00:00Z"   # when the key set last changed, if ever
//! seen = ["1a2b…"]                   # the active fingerprints when last seen
//! verified = ["1a2b…"]               # pinned with `tsunagu keys verify`
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ClientError;
use crate::keys::write_private;

/// What this profile knows about one agency's keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownAgency {
    /// When this profile first saw the agency's keys (RFC 3339).
    pub first_seen: String,
    /// When the agency's key set last changed, if it ever did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<String>,
    /// The fingerprints of its active keys when last seen, sorted.
    #[serde(default)]
    pub seen: Vec<String>,
    /// Fingerprints verified out of band, sorted.
    #[serde(default)]
    pub verified: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KnownKeysFile {
    #[serde(default)]
    agencies: BTreeMap<String, KnownAgency>,
}

/// How far a key is trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Its fingerprint was verified out of band.
    Verified,
    /// Seen before (trust on first use), not verified.
    Seen,
    /// Never seen by this profile.
    New,
}

impl Trust {
    pub fn label(self) -> &'static str {
        match self {
            Trust::Verified => "verified",
            Trust::Seen => "seen",
            Trust::New => "new",
        }
    }
}

/// Something about an agency's keys the user should hear of (on stderr, in the CLI).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyNotice {
    /// The first time this profile seals to the agency: its keys are now remembered.
    FirstSeen {
        agency: String,
        fingerprints: Vec<String>,
    },
    /// The agency's active keys differ from when they were last seen.
    Changed {
        agency: String,
        added: Vec<String>,
        removed: Vec<String>,
        since: String,
    },
    /// A verified key is gone and the user accepted it (`--accept-key-change`): its pin was
    /// dropped.
    ChangeAccepted {
        agency: String,
        dropped: Vec<String>,
    },
}

impl fmt::Display for KeyNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyNotice::FirstSeen {
                agency,
                fingerprints,
            } => write!(
                f,
                "first use of {agency}'s age key {}, remembered for this profile; compare it \
                 with {agency} out of band, then `tsunagu keys verify {agency} <FINGERPRINT>`",
                fingerprints.join(", ")
            ),
            KeyNotice::Changed {
                agency,
                added,
                removed,
                since,
            } => {
                write!(f, "the age keys of agency {agency} changed since {since}:")?;
                if !added.is_empty() {
                    write!(f, " new {}", added.join(", "))?;
                }
                if !removed.is_empty() {
                    if !added.is_empty() {
                        f.write_str(";")?;
                    }
                    write!(f, " no longer active {}", removed.join(", "))?;
                }
                write!(
                    f,
                    ". If {agency} did not tell you of a new key, check with it out of band \
                     (`tsunagu keys list {agency}`, `tsunagu keys verify`)"
                )
            }
            KeyNotice::ChangeAccepted { agency, dropped } => write!(
                f,
                "sealing to agency {agency} although the key you verified ({}) is no longer \
                 active (--accept-key-change); that pin was dropped. Verify its new key with \
                 `tsunagu keys verify {agency} <FINGERPRINT>`",
                dropped.join(", ")
            ),
        }
    }
}

/// The known-keys file of one profile.
#[derive(Debug)]
pub struct KnownKeys {
    path: Option<PathBuf>,
    file: KnownKeysFile,
    dirty: bool,
}

impl KnownKeys {
    /// Reads the file at `path`; a missing file is an empty one (created on first save).
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let file = match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| ClientError::InvalidFile {
                what: "known keys",
                path: path.to_owned(),
                reason: e.to_string().trim_end().to_owned(),
            })?,
            Err(source) if source.kind() == std::io::ErrorKind::NotFound => {
                KnownKeysFile::default()
            }
            Err(source) => {
                return Err(ClientError::ReadFile {
                    what: "known keys",
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Ok(Self {
            path: Some(path.to_owned()),
            file,
            dirty: false,
        })
    }

    /// An empty set that is never saved (for one-off use and tests).
    pub fn in_memory() -> Self {
        Self {
            path: None,
            file: KnownKeysFile::default(),
            dirty: false,
        }
    }

    /// The file this set is saved to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// What is known of one agency.
    pub fn agency(&self, agency: &str) -> Option<&KnownAgency> {
        self.file.agencies.get(agency)
    }

    /// How far a key of an agency is trusted.
    pub fn trust(&self, agency: &str, fingerprint: &str) -> Trust {
        match self.agency(agency) {
            Some(known) if known.verified.iter().any(|f| f == fingerprint) => Trust::Verified,
            Some(known) if known.seen.iter().any(|f| f == fingerprint) => Trust::Seen,
            _ => Trust::New,
        }
    }

    /// Checks an agency's active fingerprints before sealing to them, remembers them, and says
    /// what the user should hear of. Refuses with [`ClientError::KeyChanged`] when a verified
    /// key is no longer active, unless `accept_change` (then the stale pin is dropped).
    pub fn observe(
        &mut self,
        agency: &str,
        active: &[String],
        accept_change: bool,
    ) -> Result<Vec<KeyNotice>, ClientError> {
        let mut active: Vec<String> = active.to_vec();
        active.sort();
        active.dedup();
        let now = now_text();
        let Some(known) = self.file.agencies.get_mut(agency) else {
            self.file.agencies.insert(
                agency.to_owned(),
                KnownAgency {
                    first_seen: now,
                    changed: None,
                    seen: active.clone(),
                    verified: Vec::new(),
                },
            );
            self.dirty = true;
            return Ok(vec![KeyNotice::FirstSeen {
                agency: agency.to_owned(),
                fingerprints: active,
            }]);
        };
        let mut notices = Vec::new();
        let gone: Vec<String> = known
            .verified
            .iter()
            .filter(|f| !active.contains(f))
            .cloned()
            .collect();
        if !gone.is_empty() {
            if !accept_change {
                return Err(ClientError::KeyChanged {
                    agency: agency.to_owned(),
                    verified: gone,
                    active,
                });
            }
            known.verified.retain(|f| !gone.contains(f));
            self.dirty = true;
            notices.push(KeyNotice::ChangeAccepted {
                agency: agency.to_owned(),
                dropped: gone,
            });
        }
        if known.seen != active {
            let added = active
                .iter()
                .filter(|f| !known.seen.contains(f))
                .cloned()
                .collect();
            let removed = known
                .seen
                .iter()
                .filter(|f| !active.contains(f))
                .cloned()
                .collect();
            let since = known
                .changed
                .clone()
                .unwrap_or_else(|| known.first_seen.clone());
            notices.push(KeyNotice::Changed {
                agency: agency.to_owned(),
                added,
                removed,
                since,
            });
            known.seen = active;
            known.changed = Some(now);
            self.dirty = true;
        }
        Ok(notices)
    }

    /// Pins a fingerprint given out of band. It must be among the agency's `active`
    /// fingerprints (as listed by the hub, checked by the caller against the recipients);
    /// verified fingerprints that are no longer active are dropped.
    pub fn verify(
        &mut self,
        agency: &str,
        fingerprint: &str,
        active: &[String],
    ) -> Result<(), ClientError> {
        if !active.iter().any(|f| f == fingerprint) {
            return Err(ClientError::UnknownFingerprint {
                agency: agency.to_owned(),
                fingerprint: fingerprint.to_owned(),
                active: active.to_vec(),
            });
        }
        let mut active: Vec<String> = active.to_vec();
        active.sort();
        active.dedup();
        let now = now_text();
        let known = self
            .file
            .agencies
            .entry(agency.to_owned())
            .or_insert_with(|| KnownAgency {
                first_seen: now.clone(),
                changed: None,
                seen: active.clone(),
                verified: Vec::new(),
            });
        known.verified.retain(|f| active.contains(f));
        if !known.verified.iter().any(|f| f == fingerprint) {
            known.verified.push(fingerprint.to_owned());
            known.verified.sort();
        }
        if known.seen != active {
            known.seen = active;
            known.changed = Some(now);
        }
        self.dirty = true;
        Ok(())
    }

    /// Writes the file (mode 0600) when something changed since it was read.
    pub fn save(&mut self) -> Result<(), ClientError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let body = toml::to_string(&self.file).map_err(|e| ClientError::InvalidFile {
            what: "known keys",
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let text = format!(
            "# The age keys of other agencies as this profile saw them, and the fingerprints\n\
             # verified out of band. Written by `tsunagu`; see `tsunagu keys --help`.\n\n{body}"
        );
        write_private(path, &text)?;
        self.dirty = false;
        Ok(())
    }
}

fn now_text() -> String {
    let at = OffsetDateTime::now_utc();
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fps(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).repeat(64)).collect()
    }

    #[test]
    fn an_agency_seen_for_the_first_time_is_remembered() {
        let mut known = KnownKeys::in_memory();
        let notices = known.observe("hospital", &fps(&["a"]), false).unwrap();
        assert!(matches!(notices.as_slice(), [KeyNotice::FirstSeen { .. }]));
        assert!(
            known
                .observe("hospital", &fps(&["a"]), false)
                .unwrap()
                .is_empty()
        );
        assert_eq!(known.trust("hospital", &"a".repeat(64)), Trust::Seen);
        assert_eq!(known.trust("hospital", &"b".repeat(64)), Trust::New);
    }

    #[test]
    fn a_changed_key_set_is_reported_once() {
        let mut known = KnownKeys::in_memory();
        known.observe("hospital", &fps(&["a"]), false).unwrap();
        let notices = known.observe("hospital", &fps(&["b"]), false).unwrap();
        let [KeyNotice::Changed { added, removed, .. }] = notices.as_slice() else {
            panic!("{notices:?}");
        };
        assert_eq!(added, &fps(&["b"]));
        assert_eq!(removed, &fps(&["a"]));
        assert!(notices[0].to_string().contains("changed since"));
        assert!(
            known
                .observe("hospital", &fps(&["b"]), false)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_verified_key_that_is_gone_stops_sealing_unless_the_change_is_accepted() {
        let mut known = KnownKeys::in_memory();
        known
            .verify("hospital", &"a".repeat(64), &fps(&["a", "c"]))
            .unwrap();
        assert_eq!(known.trust("hospital", &"a".repeat(64)), Trust::Verified);
        let refused = known.observe("hospital", &fps(&["b"]), false).unwrap_err();
        assert!(matches!(refused, ClientError::KeyChanged { .. }));
        assert!(
            refused.to_string().contains("--accept-key-change"),
            "{refused}"
        );
        let notices = known.observe("hospital", &fps(&["b"]), true).unwrap();
        assert!(matches!(notices[0], KeyNotice::ChangeAccepted { .. }));
        assert!(
            known
                .observe("hospital", &fps(&["b"]), false)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn only_an_active_fingerprint_can_be_verified() {
        let mut known = KnownKeys::in_memory();
        let error = known
            .verify("hospital", &"z".repeat(64), &fps(&["a"]))
            .unwrap_err();
        assert!(matches!(error, ClientError::UnknownFingerprint { .. }));
        assert!(known.agency("hospital").is_none());
    }

    #[test]
    fn the_file_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_keys/aoba.toml");
        let mut known = KnownKeys::load(&path).unwrap();
        known
            .verify("hospital", &"a".repeat(64), &fps(&["a"]))
            .unwrap();
        known.save().unwrap();
        let again = KnownKeys::load(&path).unwrap();
        assert_eq!(again.trust("hospital", &"a".repeat(64)), Trust::Verified);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
