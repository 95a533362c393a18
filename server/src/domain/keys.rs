//! Agencies' age keys: the X25519 recipients an agency publishes so that others can seal to it,
//! and the rules for publishing and retiring them. The hub only ever holds these public keys; it
//! has no age identity and never decrypts anything.

use std::fmt;

use sha2::{Digest as _, Sha256};

use super::{AgencyId, Staff, Timestamp};

/// Most keys one agency may have active at once (rotation briefly needs two; a few systems of
/// one agency may each hold their own).
pub const MAX_ACTIVE_KEYS: usize = 5;

/// Longest recipient text looked at; an X25519 recipient is 62 characters.
const MAX_RECIPIENT_CHARS: usize = 128;

/// An age X25519 recipient ("age1..."), parsed and in canonical (lower-case) form.
#[derive(Clone, PartialEq, Eq)]
pub struct AgeRecipient(String);

/// Why a recipient was refused. The messages never repeat the input: a confused caller may have
/// pasted a secret key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecipientError {
    #[error("is required")]
    Missing,
    #[error(
        "is an age secret key (AGE-SECRET-KEY-1...): never send it anywhere; publish its public \
         recipient instead, as `age-keygen -y FILE` prints it"
    )]
    SecretKey,
    #[error(
        "is not an age X25519 recipient: expected \"age1\" followed by 58 bech32 characters, as \
         `age-keygen -y FILE` prints it"
    )]
    NotX25519,
}

impl AgeRecipient {
    /// Parses a recipient with the age crate; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, RecipientError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(RecipientError::Missing);
        }
        if text
            .get(..14)
            .is_some_and(|start| start.eq_ignore_ascii_case("AGE-SECRET-KEY"))
        {
            return Err(RecipientError::SecretKey);
        }
        if text.chars().count() > MAX_RECIPIENT_CHARS {
            return Err(RecipientError::NotX25519);
        }
        let recipient: age::x25519::Recipient =
            text.parse().map_err(|_| RecipientError::NotX25519)?;
        Ok(Self(recipient.to_string()))
    }

    /// The canonical text, "age1...".
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the canonical text, in hex: what agencies compare out of band.
    pub fn fingerprint(&self) -> KeyFingerprint {
        KeyFingerprint(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeRecipient({})", self.0)
    }
}

impl fmt::Display for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The fingerprint of a key: 64 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyFingerprint(String);

impl KeyFingerprint {
    /// Parses 64 hex digits (either case; spaces and colons between groups are ignored).
    pub fn parse(text: &str) -> Option<Self> {
        let digits: String = text
            .chars()
            .filter(|c| !matches!(c, ' ' | ':'))
            .collect::<String>()
            .to_ascii_lowercase();
        (digits.len() == 64 && digits.bytes().all(|b| b.is_ascii_hexdigit()))
            .then_some(Self(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A recipient an agency published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgencyKey {
    pub agency_id: AgencyId,
    pub recipient: AgeRecipient,
    pub fingerprint: KeyFingerprint,
    pub published_at: Timestamp,
    pub published_by: Staff,
    /// Set once the agency retired it: nobody seals to it any more; it stays listed.
    pub retired_at: Option<Timestamp>,
    pub retired_by: Option<Staff>,
}

impl AgencyKey {
    /// A key `agency` publishes now.
    pub fn publish(agency_id: AgencyId, recipient: AgeRecipient, at: Timestamp, by: Staff) -> Self {
        Self {
            agency_id,
            fingerprint: recipient.fingerprint(),
            recipient,
            published_at: at,
            published_by: by,
            retired_at: None,
            retired_by: None,
        }
    }

    pub fn is_active(&self) -> bool {
        self.retired_at.is_none()
    }
}

/// What publishing a recipient comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// A new key: store it.
    New,
    /// The agency already has this key active: nothing to write (publishing is idempotent).
    AlreadyActive(Box<AgencyKey>),
}

/// Why a recipient may not be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishRefused {
    #[error(
        "this key was retired at {0}; a retired key is never published again: generate a new \
         one (`tsunagu keys rotate`)"
    )]
    Retired(Timestamp),
    #[error(
        "this key is already published by another agency: every agency needs an age identity \
         of its own (`tsunagu keys init`)"
    )]
    OtherAgency,
    #[error(
        "the agency already has {MAX_ACTIVE_KEYS} active keys, the most allowed: retire one \
         first (`tsunagu keys rotate` publishes a new key and retires the old one)"
    )]
    TooMany,
}

/// Decides a publication by `agency`, given the key stored under the same fingerprint (if any)
/// and how many keys the agency has active now.
pub fn decide_publication(
    agency: &AgencyId,
    existing: Option<AgencyKey>,
    active_keys: usize,
) -> Result<Publication, PublishRefused> {
    match existing {
        Some(key) if &key.agency_id != agency => Err(PublishRefused::OtherAgency),
        Some(key) => match key.retired_at {
            Some(at) => Err(PublishRefused::Retired(at)),
            None => Ok(Publication::AlreadyActive(Box::new(key))),
        },
        None if active_keys >= MAX_ACTIVE_KEYS => Err(PublishRefused::TooMany),
        None => Ok(Publication::New),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret as _;

    fn staff() -> Staff {
        Staff {
            name: "情報担当".to_owned(),
            role: "システム管理者".to_owned(),
        }
    }

    fn key_of(agency: &str, retired: bool) -> AgencyKey {
        let recipient =
            AgeRecipient::parse(&age::x25519::Identity::generate().to_public().to_string())
                .unwrap();
        let mut key = AgencyKey::publish(
            AgencyId::parse(agency).unwrap(),
            recipient,
            Timestamp::from_millis(1),
            staff(),
        );
        if retired {
            key.retired_at = Some(Timestamp::from_millis(2));
        }
        key
    }

    #[test]
    fn a_recipient_is_parsed_into_its_canonical_form_and_fingerprinted() {
        let text = age::x25519::Identity::generate().to_public().to_string();
        let parsed = AgeRecipient::parse(&format!("  {}\n", text.to_ascii_uppercase())).unwrap();
        assert_eq!(parsed.as_str(), text);
        let expected = hex::encode(Sha256::digest(text.as_bytes()));
        assert_eq!(parsed.fingerprint().as_str(), expected);
    }

    #[test]
    fn a_secret_key_is_refused_without_being_echoed() {
        let identity = age::x25519::Identity::generate();
        let secret = identity.to_string();
        let error = AgeRecipient::parse(secret.expose_secret()).unwrap_err();
        assert_eq!(error, RecipientError::SecretKey);
        assert!(!error.to_string().contains(&secret.expose_secret()[16..]));
    }

    #[test]
    fn anything_but_an_x25519_recipient_is_refused() {
        for text in [
            "age1notarealkey",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB/VtKM7m6QD",
            "age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t",
            "hello",
        ] {
            assert_eq!(
                AgeRecipient::parse(text).unwrap_err(),
                RecipientError::NotX25519,
                "{text}"
            );
        }
        assert_eq!(
            AgeRecipient::parse("  ").unwrap_err(),
            RecipientError::Missing
        );
    }

    #[test]
    fn fingerprints_accept_either_case_and_group_separators() {
        let fp = "AB".repeat(32);
        let grouped: Vec<String> = fp
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        assert_eq!(
            KeyFingerprint::parse(&grouped.join(" ")).unwrap().as_str(),
            "ab".repeat(32)
        );
        assert!(KeyFingerprint::parse("abc").is_none());
        assert!(KeyFingerprint::parse(&"zz".repeat(32)).is_none());
    }

    #[test]
    fn publishing_an_active_key_again_writes_nothing() {
        let key = key_of("kodomo", false);
        let agency = key.agency_id.clone();
        assert_eq!(
            decide_publication(&agency, Some(key.clone()), MAX_ACTIVE_KEYS),
            Ok(Publication::AlreadyActive(Box::new(key)))
        );
    }

    #[test]
    fn a_retired_key_or_another_agencys_key_cannot_be_published() {
        let retired = key_of("kodomo", true);
        let agency = retired.agency_id.clone();
        assert!(matches!(
            decide_publication(&agency, Some(retired), 0),
            Err(PublishRefused::Retired(_))
        ));
        let theirs = key_of("hospital", false);
        assert_eq!(
            decide_publication(&agency, Some(theirs), 0),
            Err(PublishRefused::OtherAgency)
        );
    }

    #[test]
    fn a_new_key_beyond_the_active_limit_is_refused() {
        let agency = AgencyId::parse("kodomo").unwrap();
        assert_eq!(
            decide_publication(&agency, None, MAX_ACTIVE_KEYS - 1),
            Ok(Publication::New)
        );
        assert_eq!(
            decide_publication(&agency, None, MAX_ACTIVE_KEYS),
            Err(PublishRefused::TooMany)
        );
    }
}
