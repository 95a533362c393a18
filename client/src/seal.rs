//! Sealing and opening payloads with age (X25519): case headers, referral bodies, notes, evidence.
//!
//! The hub stores only what [`seal`] produces and refuses anything that is not a well-formed age
//! file, so every sealed field a client sends must go through here. Plaintexts and secret keys
//! never appear in errors or debug output.

use std::io::{Read as _, Write};
use std::path::Path;

use age::x25519::{Identity, Recipient};

use crate::error::ClientError;

/// The prefix of an age X25519 secret key line.
const SECRET_KEY_PREFIX: &str = "AGE-SECRET-KEY-1";

/// Seals `plaintext` to every recipient, as an age file in the binary format.
///
/// Duplicate recipients are sealed to once. At least one recipient is required.
pub fn seal(plaintext: &[u8], recipients: &[Recipient]) -> Result<Vec<u8>, ClientError> {
    let mut unique: Vec<&Recipient> = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        if !unique.contains(&recipient) {
            unique.push(recipient);
        }
    }
    if unique.is_empty() {
        return Err(ClientError::Seal(
            "no age recipients: nobody would be able to open it".to_owned(),
        ));
    }
    let encryptor =
        age::Encryptor::with_recipients(unique.iter().map(|r| *r as &dyn age::Recipient))
            .map_err(|e| ClientError::Seal(e.to_string()))?;
    let mut sealed = Vec::with_capacity(plaintext.len() + 256);
    let mut writer = encryptor
        .wrap_output(&mut sealed)
        .map_err(|e| ClientError::Seal(e.to_string()))?;
    writer
        .write_all(plaintext)
        .map_err(|e| ClientError::Seal(e.to_string()))?;
    writer
        .finish()
        .map_err(|e| ClientError::Seal(e.to_string()))?;
    Ok(sealed)
}

/// Opens an age file (binary or ASCII-armoured) with one identity.
///
/// [`ClientError::NotARecipient`] when the file was not sealed to this identity;
/// [`ClientError::Open`] when it is not a well-formed age file or was tampered with.
pub fn open(ciphertext: &[u8], identity: &Identity) -> Result<Vec<u8>, ClientError> {
    open_with(ciphertext, std::slice::from_ref(identity))
}

/// Opens an age file with whichever of `identities` it was sealed to (an identity file may hold
/// the current identity and the ones kept after rotations).
///
/// [`ClientError::NotARecipient`] when it was sealed to none of them;
/// [`ClientError::Open`] when it is not a well-formed age file or was tampered with.
pub fn open_with(ciphertext: &[u8], identities: &[Identity]) -> Result<Vec<u8>, ClientError> {
    let map = |e: age::DecryptError| match e {
        age::DecryptError::NoMatchingKeys => ClientError::NotARecipient,
        other => ClientError::Open(other.to_string()),
    };
    if identities.is_empty() {
        return Err(ClientError::NotARecipient);
    }
    let decryptor =
        age::Decryptor::new_buffered(age::armor::ArmoredReader::new(ciphertext)).map_err(map)?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(map)?;
    let mut plaintext = Vec::new();
    reader
        .read_to_end(&mut plaintext)
        .map_err(|e| ClientError::Open(e.to_string()))?;
    Ok(plaintext)
}

/// Reads an age identity file in the format `age-keygen` writes: comment lines starting with
/// `#` are ignored, the first `AGE-SECRET-KEY-1...` line is the identity (the current one, when
/// the file holds several).
pub fn load_identity(path: impl AsRef<Path>) -> Result<Identity, ClientError> {
    let mut identities = load_identities(path)?;
    Ok(identities.swap_remove(0))
}

/// Reads every identity of an age identity file, the current one first: after a rotation the
/// file holds the new identity and, below it, the earlier ones that still open older items.
pub fn load_identities(path: impl AsRef<Path>) -> Result<Vec<Identity>, ClientError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ClientError::MissingFile {
                what: "age identity",
                path: path.to_owned(),
                hint: "create one with `tsunagu keys init` (it also publishes its recipient), \
                       and name it as `age_identity` in the profile; or use --as <agency-id> for \
                       the development keys"
                    .to_owned(),
            }
        } else {
            ClientError::ReadFile {
                what: "age identity",
                path: path.to_owned(),
                source,
            }
        }
    })?;
    parse_identities(&text).map_err(|reason| ClientError::InvalidFile {
        what: "age identity",
        path: path.to_owned(),
        reason,
    })
}

/// Parses the text of an age identity file (see [`load_identity`]). The error says what is
/// wrong without repeating any of the text.
pub fn parse_identity(text: &str) -> Result<Identity, String> {
    let mut identities = parse_identities(text)?;
    Ok(identities.swap_remove(0))
}

/// Parses every `AGE-SECRET-KEY-1...` line of an identity file, in order; at least one is
/// required. The error says which line is wrong without repeating any of it.
pub fn parse_identities(text: &str) -> Result<Vec<Identity>, String> {
    let mut identities = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !line.starts_with(SECRET_KEY_PREFIX) {
            return Err(format!(
                "line {} is neither a comment nor an {SECRET_KEY_PREFIX}... line",
                number + 1
            ));
        }
        let identity = line.parse::<Identity>().map_err(|reason| {
            format!(
                "its {SECRET_KEY_PREFIX}... line {} is not a valid key ({reason})",
                number + 1
            )
        })?;
        identities.push(identity);
    }
    if identities.is_empty() {
        return Err(format!("it holds no {SECRET_KEY_PREFIX}... line"));
    }
    Ok(identities)
}

/// The public recipient (`age1...`) that opens with this identity.
pub fn recipient_of(identity: &Identity) -> Recipient {
    identity.to_public()
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn keygen_file(identity: &Identity) -> String {
        format!(
            "# created: 2026-01-01T00:00:00Z\n# public key: {}\n{}\n",
            identity.to_public(),
            identity.to_string().expose_secret()
        )
    }

    #[test]
    fn a_sealed_payload_opens_with_each_recipient_identity() {
        let sender = Identity::generate();
        let receiver = Identity::generate();
        let sealed = seal(
            "産後ケアの依頼".as_bytes(),
            &[sender.to_public(), receiver.to_public()],
        )
        .unwrap();
        assert!(sealed.starts_with(b"age-encryption.org/v1\n"));
        assert_eq!(open(&sealed, &sender).unwrap(), "産後ケアの依頼".as_bytes());
        assert_eq!(
            open(&sealed, &receiver).unwrap(),
            "産後ケアの依頼".as_bytes()
        );
    }

    #[test]
    fn the_plaintext_does_not_appear_in_the_sealed_bytes() {
        let identity = Identity::generate();
        let sealed = seal(b"Aoba Hanako", &[identity.to_public()]).unwrap();
        assert!(!sealed.windows(11).any(|w| w == b"Aoba Hanako"));
    }

    #[test]
    fn an_identity_that_was_not_sealed_to_is_told_so() {
        let sealed = seal(b"x", &[Identity::generate().to_public()]).unwrap();
        assert!(matches!(
            open(&sealed, &Identity::generate()),
            Err(ClientError::NotARecipient)
        ));
    }

    #[test]
    fn an_ascii_armoured_age_file_opens_too() {
        let identity = Identity::generate();
        let armoured = age::encrypt_and_armor(&identity.to_public(), b"armoured").unwrap();
        assert!(armoured.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert_eq!(open(armoured.as_bytes(), &identity).unwrap(), b"armoured");
    }

    #[test]
    fn bytes_that_are_not_an_age_file_do_not_open() {
        let identity = Identity::generate();
        assert!(matches!(
            open(b"plain text", &identity),
            Err(ClientError::Open(_))
        ));
    }

    #[test]
    fn sealing_to_nobody_is_refused() {
        assert!(matches!(seal(b"x", &[]), Err(ClientError::Seal(_))));
    }

    #[test]
    fn a_recipient_given_twice_gets_one_stanza() {
        let identity = Identity::generate();
        let sealed = seal(b"x", &[identity.to_public(), identity.to_public()]).unwrap();
        let stanzas = sealed.windows(9).filter(|w| w == b"-> X25519").count();
        assert_eq!(stanzas, 1);
    }

    #[test]
    fn an_age_keygen_file_is_read_skipping_its_comments() {
        let identity = Identity::generate();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agency.age");
        std::fs::write(&path, keygen_file(&identity)).unwrap();
        let loaded = load_identity(&path).unwrap();
        assert_eq!(
            recipient_of(&loaded).to_string(),
            identity.to_public().to_string()
        );
    }

    #[test]
    fn a_file_without_a_secret_key_is_named_and_not_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agency.age");
        std::fs::write(&path, "# public key: age1abc\nAGE-SECRET-KEY-1NOTAKEY\n").unwrap();
        let text = load_identity(&path).err().unwrap().to_string();
        assert!(text.contains("age identity file"), "{text}");
        assert!(!text.contains("NOTAKEY"), "{text}");
        let text = parse_identity("# only comments\n").err().unwrap();
        assert!(text.contains("no AGE-SECRET-KEY-1"), "{text}");
    }

    #[test]
    fn a_missing_identity_file_says_how_to_make_one() {
        let err = load_identity("/nonexistent/agency.age").err().unwrap();
        assert!(matches!(err, ClientError::MissingFile { .. }));
        assert!(err.to_string().contains("tsunagu keys init"));
    }

    #[test]
    fn a_file_with_several_identities_opens_what_was_sealed_to_any_of_them() {
        let current = Identity::generate();
        let earlier = Identity::generate();
        let text = format!(
            "{}\n# kept after rotation\n{}",
            keygen_file(&current),
            keygen_file(&earlier)
        );
        let identities = parse_identities(&text).unwrap();
        assert_eq!(identities.len(), 2);
        assert_eq!(
            parse_identity(&text).unwrap().to_public().to_string(),
            current.to_public().to_string()
        );
        let old_item = seal(b"sealed before the rotation", &[earlier.to_public()]).unwrap();
        assert_eq!(
            open_with(&old_item, &identities).unwrap(),
            b"sealed before the rotation"
        );
        let other = seal(b"x", &[Identity::generate().to_public()]).unwrap();
        assert!(matches!(
            open_with(&other, &identities),
            Err(ClientError::NotARecipient)
        ));
    }

    #[test]
    fn a_stray_line_in_an_identity_file_is_named_by_number_only() {
        let text = format!(
            "# c\n{}\nsomething else\n",
            keygen_file(&Identity::generate())
        );
        let reason = parse_identities(&text).err().unwrap();
        assert!(reason.contains("line 6"), "{reason}");
        assert!(!reason.contains("something"), "{reason}");
    }
}
