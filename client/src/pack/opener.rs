//! Opening a pack's sealed fields with the reader's age identities. A field sealed to other
//! agencies only, or damaged, becomes [`Content::Unreadable`], shown as [`UNREADABLE`]: a pack is
//! for reading together at a meeting, so no single field may stop it from being rendered.

use std::collections::HashMap;
use std::fmt;

use age::x25519::Identity;
use tsunagu_proto::v1::Sealed;

use crate::seal::open_with;

/// What a field that this agency's identities do not open shows.
pub const UNREADABLE: &str = "〔この機関では開封できません〕";

/// What one sealed field of a pack shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// The field is not set.
    Absent,
    /// Opened: the plaintext as UTF-8 (invalid sequences replaced).
    Opened(String),
    /// Sealed to other agencies only, or not a well-formed age file.
    Unreadable,
}

impl Content {
    /// The opened text, if any.
    pub fn text(&self) -> Option<&str> {
        match self {
            Content::Opened(text) => Some(text),
            _ => None,
        }
    }
}

/// Opens sealed fields with the reader's identities (the current one and those kept after
/// rotations). With none, every field is unreadable.
#[derive(Clone, Copy)]
pub struct Opener<'a> {
    identities: &'a [Identity],
}

impl fmt::Debug for Opener<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("identities", &self.identities.len())
            .finish()
    }
}

/// Below this many fields, opening them on one thread is quicker than starting others.
const PARALLEL_FROM: usize = 64;

impl<'a> Opener<'a> {
    /// An opener with these identities.
    pub fn new(identities: &'a [Identity]) -> Self {
        Opener { identities }
    }

    /// An opener that opens nothing: every sealed field shows as [`UNREADABLE`].
    pub fn nobody() -> Opener<'static> {
        Opener { identities: &[] }
    }

    /// Opens one field.
    pub fn open(&self, sealed: Option<&Sealed>) -> Content {
        let Some(sealed) = sealed.filter(|s| !s.age.is_empty()) else {
            return Content::Absent;
        };
        match open_with(&sealed.age, self.identities) {
            Ok(plaintext) => Content::Opened(match String::from_utf8(plaintext) {
                Ok(text) => text,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }),
            Err(_) => Content::Unreadable,
        }
    }

    /// Opens many fields, spread over the machine's cores (each opening is an X25519 agreement
    /// per recipient stanza, so a 実務者会議 of hundreds of cases is worth it). The answer is
    /// keyed by each field's address, which stays valid while `fields` borrow the pack.
    pub(crate) fn open_many(&self, fields: &[&Sealed]) -> HashMap<usize, Content> {
        let key = |sealed: &Sealed| sealed as *const Sealed as usize;
        let threads = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
            .min(fields.len().div_ceil(PARALLEL_FROM).max(1));
        if threads <= 1 {
            return fields
                .iter()
                .map(|s| (key(s), self.open(Some(s))))
                .collect();
        }
        let chunk = fields.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let workers: Vec<_> = fields
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|s| (key(s), self.open(Some(s))))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut opened = HashMap::with_capacity(fields.len());
            for (worker, part) in workers.into_iter().zip(fields.chunks(chunk)) {
                match worker.join() {
                    Ok(results) => opened.extend(results),
                    // A worker cannot panic short of a bug in age; open its share here instead.
                    Err(_) => opened.extend(part.iter().map(|s| (key(s), self.open(Some(s))))),
                }
            }
            opened
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::seal;

    #[test]
    fn a_field_sealed_to_the_reader_opens_and_one_sealed_to_others_is_unreadable() {
        let reader = Identity::generate();
        let other = Identity::generate();
        let mine = Sealed {
            age: seal("キーパーソン: 祖母".as_bytes(), &[reader.to_public()]).unwrap(),
        };
        let theirs = Sealed {
            age: seal(b"x", &[other.to_public()]).unwrap(),
        };
        let identities = [reader];
        let opener = Opener::new(&identities);
        assert_eq!(
            opener.open(Some(&mine)),
            Content::Opened("キーパーソン: 祖母".to_owned())
        );
        assert_eq!(opener.open(Some(&theirs)), Content::Unreadable);
        assert_eq!(opener.open(None), Content::Absent);
        assert_eq!(opener.open(Some(&Sealed { age: vec![] })), Content::Absent);
    }

    #[test]
    fn damaged_bytes_and_a_reader_without_keys_give_unreadable_not_an_error() {
        let garbage = Sealed {
            age: b"not an age file".to_vec(),
        };
        let identities = [Identity::generate()];
        assert_eq!(
            Opener::new(&identities).open(Some(&garbage)),
            Content::Unreadable
        );
        let sealed = Sealed {
            age: seal(b"x", &[identities[0].to_public()]).unwrap(),
        };
        assert_eq!(Opener::nobody().open(Some(&sealed)), Content::Unreadable);
    }

    #[test]
    fn many_fields_open_in_parallel_to_the_same_answers() {
        let reader = Identity::generate();
        let other = Identity::generate();
        let fields: Vec<Sealed> = (0..200)
            .map(|i| {
                let to = if i % 3 == 0 { &other } else { &reader };
                Sealed {
                    age: seal(format!("メモ {i}").as_bytes(), &[to.to_public()]).unwrap(),
                }
            })
            .collect();
        let identities = [reader];
        let opener = Opener::new(&identities);
        let refs: Vec<&Sealed> = fields.iter().collect();
        let opened = opener.open_many(&refs);
        assert_eq!(opened.len(), 200);
        for (i, field) in fields.iter().enumerate() {
            let expected = if i % 3 == 0 {
                Content::Unreadable
            } else {
                Content::Opened(format!("メモ {i}"))
            };
            assert_eq!(opened[&(field as *const Sealed as usize)], expected);
        }
    }
}
