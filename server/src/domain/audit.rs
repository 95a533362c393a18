//! The audit log's hash chain: how a record is encoded and hashed, and how a run of stored records
//! is checked. Plain functions over plain values; the store keeps the records, casework writes them.
//!
//! Each record's hash is SHA-256 over a domain-separated, length-prefixed encoding:
//!
//! ```text
//! len(TAG) TAG  sequence  recorded_at  agency_id  staff_name  staff_role  action  municipality
//! case_id  referral_id  note_id  consent_id  basis  outcome  previous_hash
//! ```
//!
//! where every field is a big-endian `u64` length followed by its bytes (integers as 8 big-endian
//! bytes), an absent optional field is the length `u64::MAX` with no bytes (so that absent and
//! empty differ), and `previous_hash` is the hash of the record before (32 zero bytes for the
//! first). Fields are the text the store keeps, so checking a record never depends on parsing it:
//! an edit that leaves a value unparseable is reported like any other edit.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::Timestamp;

/// Separates audit hashes from every other SHA-256 use; bump the version to change the encoding.
pub const DOMAIN_TAG: &[u8] = b"tsunagu.audit.v1";

/// The outcome of a call that succeeded; refusals carry their gRPC code name instead.
pub const OK: &str = "ok";

/// The length written for an absent optional field (no field can be this long).
const ABSENT: u64 = u64::MAX;

/// What one audit record says, before it is chained: who did what to which case data, under
/// which basis, with which outcome. Values are stored and hashed as text codes and ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: Timestamp,
    /// The calling agency.
    pub agency_id: String,
    /// The staff member the agency's system named, when the request carried one.
    pub staff_name: Option<String>,
    pub staff_role: Option<String>,
    /// The call, for example "ReferralService/SendReferral".
    pub action: String,
    pub municipality: Option<String>,
    pub case_id: Option<String>,
    pub referral_id: Option<String>,
    pub note_id: Option<String>,
    pub consent_id: Option<String>,
    /// The legal basis code of the share the call was about.
    pub basis: Option<String>,
    /// [`OK`], or the gRPC code name of the refusal, for example "PERMISSION_DENIED".
    pub outcome: String,
}

/// A chained record as stored: its place in the chain, what it says, and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub sequence: u64,
    pub entry: AuditEntry,
    /// SHA-256 over the record and the previous hash. Kept as the stored bytes: a stored value of
    /// the wrong length is simply a hash that does not match.
    pub hash: Vec<u8>,
}

/// The newest record of a chain: its sequence number and hash. The empty chain's head is
/// sequence 0 with 32 zero bytes, which the first record follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub sequence: u64,
    pub hash: [u8; 32],
}

impl ChainHead {
    /// The head of the empty chain.
    pub const GENESIS: ChainHead = ChainHead {
        sequence: 0,
        hash: [0; 32],
    };

    /// The head a stored record makes, or `None` when its stored hash is not 32 bytes long.
    pub fn of(record: &AuditRecord) -> Option<ChainHead> {
        Some(ChainHead {
            sequence: record.sequence,
            hash: record.hash.as_slice().try_into().ok()?,
        })
    }

    /// The hash as 64 lower-case hex digits.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }

    /// Parses `SEQUENCE:HEX` (as `tsunagu-hub audit head` prints it).
    pub fn parse(text: &str) -> Option<ChainHead> {
        let (sequence, hash) = text.trim().split_once(':')?;
        let hash = hex::decode(hash).ok()?;
        Some(ChainHead {
            sequence: sequence.parse().ok()?,
            hash: hash.as_slice().try_into().ok()?,
        })
    }
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn optional(out: &mut Vec<u8>, text: Option<&String>) {
    match text {
        Some(text) => field(out, text.as_bytes()),
        None => out.extend_from_slice(&ABSENT.to_be_bytes()),
    }
}

/// What the hash of a record covers, in order, is: [`hash_prefix`], the sequence number as a
/// field (its length 8, then its 8 bytes big-endian), [`hash_body`] of the entry, and the
/// previous hash as a field (its length 32, then its 32 bytes). A store that chains records in
/// the database (PostgreSQL, see migration 0013) computes exactly that from these two parts.
pub fn hash_prefix() -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + DOMAIN_TAG.len());
    field(&mut out, DOMAIN_TAG);
    out
}

/// The fields of `entry` as the record's hash covers them (see [`hash_prefix`]).
pub fn hash_body(entry: &AuditEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    field(&mut out, &entry.at.millis().to_be_bytes());
    field(&mut out, entry.agency_id.as_bytes());
    optional(&mut out, entry.staff_name.as_ref());
    optional(&mut out, entry.staff_role.as_ref());
    field(&mut out, entry.action.as_bytes());
    optional(&mut out, entry.municipality.as_ref());
    optional(&mut out, entry.case_id.as_ref());
    optional(&mut out, entry.referral_id.as_ref());
    optional(&mut out, entry.note_id.as_ref());
    optional(&mut out, entry.consent_id.as_ref());
    optional(&mut out, entry.basis.as_ref());
    field(&mut out, entry.outcome.as_bytes());
    out
}

/// The chain hash of the record at `sequence` saying `entry`, following `previous`.
pub fn record_hash(sequence: u64, entry: &AuditEntry, previous: &[u8; 32]) -> [u8; 32] {
    let mut covered = hash_prefix();
    field(&mut covered, &sequence.to_be_bytes());
    covered.extend_from_slice(&hash_body(entry));
    field(&mut covered, previous);
    Sha256::digest(&covered).into()
}

/// Chains `entry` after `head`: the next sequence number and its hash.
pub fn chain(entry: AuditEntry, head: &ChainHead) -> AuditRecord {
    let sequence = head.sequence + 1;
    let hash = record_hash(sequence, &entry, &head.hash);
    AuditRecord {
        sequence,
        entry,
        hash: hash.to_vec(),
    }
}

/// Where and how a chain is broken. Every variant names the first record that is not as it was
/// written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The chain jumps over `sequence`: that record (and any up to `found`) was deleted.
    #[error(
        "record {sequence} is missing: the chain goes from {before} to {found}, so a record was \
         deleted",
        before = .sequence - 1
    )]
    Missing { sequence: u64, found: u64 },
    /// The record's content or hash does not match: it was edited, replaced, inserted or moved.
    #[error(
        "record {sequence} does not match its hash: it was edited, replaced, inserted or moved \
         (or a record before it was rewritten to match)"
    )]
    Altered { sequence: u64 },
    /// A record came out of sequence order.
    #[error("record {sequence} is out of order: expected record {expected}")]
    OutOfOrder { sequence: u64, expected: u64 },
    /// The chain ends before a head that was published earlier: records were cut off the end.
    #[error(
        "record {sequence} is missing: the chain ends at {end}, but its head was once {published}, \
         so records were deleted from the end",
        end = .sequence - 1
    )]
    Truncated { sequence: u64, published: u64 },
    /// The record a published head names has another hash now: history was rewritten.
    #[error(
        "record {sequence} is not the record published as the head earlier: the history up to it \
         was rewritten"
    )]
    Rewritten { sequence: u64 },
}

impl ChainBreak {
    /// The sequence number of the first broken record.
    pub fn sequence(&self) -> u64 {
        match self {
            Self::Missing { sequence, .. }
            | Self::Altered { sequence }
            | Self::OutOfOrder { sequence, .. }
            | Self::Truncated { sequence, .. }
            | Self::Rewritten { sequence } => *sequence,
        }
    }
}

/// Checks stored records one at a time, in sequence order, from an anchor (the genesis head, or
/// the record before where checking starts).
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    head: ChainHead,
    checked: u64,
    /// A head published earlier, to compare with when its record passes by.
    published: Option<ChainHead>,
}

impl ChainVerifier {
    /// Checks records after `anchor`: the next record must be `anchor.sequence + 1` and follow
    /// `anchor.hash`.
    pub fn new(anchor: ChainHead) -> Self {
        Self {
            head: anchor,
            checked: 0,
            published: None,
        }
    }

    /// Also checks that the chain still holds `published` (a head someone kept a copy of).
    pub fn expecting(mut self, published: ChainHead) -> Self {
        self.published = Some(published);
        self
    }

    /// Checks the next record. After an error the verifier stays where it was.
    pub fn check(&mut self, record: &AuditRecord) -> Result<(), ChainBreak> {
        let expected = self.head.sequence + 1;
        if record.sequence > expected {
            return Err(ChainBreak::Missing {
                sequence: expected,
                found: record.sequence,
            });
        }
        if record.sequence < expected {
            return Err(ChainBreak::OutOfOrder {
                sequence: record.sequence,
                expected,
            });
        }
        let computed = record_hash(record.sequence, &record.entry, &self.head.hash);
        // A stored hash of another length compares unequal (in constant time for equal lengths).
        if !bool::from(computed.as_slice().ct_eq(record.hash.as_slice())) {
            return Err(ChainBreak::Altered {
                sequence: record.sequence,
            });
        }
        if let Some(published) = &self.published
            && published.sequence == record.sequence
            && !bool::from(published.hash.ct_eq(&computed))
        {
            return Err(ChainBreak::Rewritten {
                sequence: record.sequence,
            });
        }
        self.head = ChainHead {
            sequence: record.sequence,
            hash: computed,
        };
        self.checked += 1;
        Ok(())
    }

    /// Called after the last record: a published head beyond the end means records were cut off.
    pub fn finish(&self) -> Result<ChainHead, ChainBreak> {
        if let Some(published) = &self.published
            && published.sequence > self.head.sequence
        {
            return Err(ChainBreak::Truncated {
                sequence: self.head.sequence + 1,
                published: published.sequence,
            });
        }
        Ok(self.head)
    }

    /// The last record checked (the anchor before any).
    pub fn head(&self) -> ChainHead {
        self.head
    }

    /// How many records passed.
    pub fn checked(&self) -> u64 {
        self.checked
    }
}

/// Checks a whole run of records after `anchor`.
pub fn verify<'a>(
    anchor: ChainHead,
    records: impl IntoIterator<Item = &'a AuditRecord>,
) -> Result<ChainHead, ChainBreak> {
    let mut verifier = ChainVerifier::new(anchor);
    for record in records {
        verifier.check(record)?;
    }
    verifier.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: i64) -> AuditEntry {
        AuditEntry {
            at: Timestamp::from_millis(1_780_000_000_000 + n),
            agency_id: "kodomo".to_owned(),
            staff_name: Some("保健師 山田".to_owned()),
            staff_role: Some("保健師".to_owned()),
            action: "ReferralService/SendReferral".to_owned(),
            municipality: Some("141178".to_owned()),
            case_id: Some("0190a8f4-0000-7000-8000-000000000001".to_owned()),
            referral_id: Some(format!("0190a8f4-0000-7000-8000-{n:012}")),
            note_id: None,
            consent_id: None,
            basis: Some("consent".to_owned()),
            outcome: OK.to_owned(),
        }
    }

    fn chain_of(n: i64) -> Vec<AuditRecord> {
        let mut head = ChainHead::GENESIS;
        (1..=n)
            .map(|i| {
                let record = chain(entry(i), &head);
                head = ChainHead::of(&record).unwrap();
                record
            })
            .collect()
    }

    /// A change to one field of an entry, by name.
    type Edit = (&'static str, fn(&mut AuditEntry));

    /// Every way to change one field of an entry.
    fn edits() -> Vec<Edit> {
        vec![
            ("at", |e| e.at = Timestamp::from_millis(e.at.millis() + 1)),
            ("agency_id", |e| e.agency_id.push('x')),
            ("staff_name", |e| e.staff_name = None),
            ("staff_role", |e| e.staff_role = Some("医師".to_owned())),
            ("action", |e| e.action = "CaseService/GetCase".to_owned()),
            ("municipality", |e| e.municipality = None),
            ("case_id", |e| e.case_id = None),
            ("referral_id", |e| e.referral_id = Some(String::new())),
            ("note_id", |e| e.note_id = Some("n".to_owned())),
            ("consent_id", |e| e.consent_id = Some("c".to_owned())),
            ("basis", |e| e.basis = Some("vital_interest".to_owned())),
            ("outcome", |e| e.outcome = "PERMISSION_DENIED".to_owned()),
        ]
    }

    #[test]
    fn the_first_record_follows_32_zero_bytes() {
        let record = chain(entry(1), &ChainHead::GENESIS);
        assert_eq!(record.sequence, 1);
        assert_eq!(
            record.hash,
            record_hash(1, &entry(1), &[0; 32]).to_vec(),
            "the first record's hash covers 32 zero bytes as the previous hash"
        );
    }

    #[test]
    fn an_intact_chain_verifies_up_to_its_head() {
        let records = chain_of(5);
        let head = verify(ChainHead::GENESIS, &records).unwrap();
        assert_eq!(head, ChainHead::of(&records[4]).unwrap());
    }

    #[test]
    fn an_empty_chain_verifies_to_the_genesis_head() {
        assert_eq!(verify(ChainHead::GENESIS, &[]), Ok(ChainHead::GENESIS));
    }

    #[test]
    fn editing_any_field_of_any_record_is_detected_at_that_record() {
        for (name, edit) in edits() {
            for index in 0..4 {
                let mut records = chain_of(4);
                edit(&mut records[index].entry);
                let broken = verify(ChainHead::GENESIS, &records).unwrap_err();
                assert_eq!(
                    broken,
                    ChainBreak::Altered {
                        sequence: index as u64 + 1
                    },
                    "editing {name} of record {}",
                    index + 1
                );
            }
        }
    }

    #[test]
    fn editing_one_byte_of_a_stored_hash_is_detected_at_that_record() {
        let mut records = chain_of(3);
        records[1].hash[7] ^= 0x01;
        assert_eq!(
            verify(ChainHead::GENESIS, &records),
            Err(ChainBreak::Altered { sequence: 2 })
        );
        records[1].hash.truncate(31);
        assert_eq!(
            verify(ChainHead::GENESIS, &records),
            Err(ChainBreak::Altered { sequence: 2 })
        );
    }

    #[test]
    fn deleting_a_record_is_detected_with_its_sequence_number() {
        let mut records = chain_of(5);
        records.remove(2);
        let broken = verify(ChainHead::GENESIS, &records).unwrap_err();
        assert_eq!(
            broken,
            ChainBreak::Missing {
                sequence: 3,
                found: 4
            }
        );
        assert!(broken.to_string().starts_with("record 3 is missing"));
    }

    #[test]
    fn deleting_a_record_and_renumbering_the_rest_is_detected() {
        let mut records = chain_of(5);
        records.remove(2);
        for record in &mut records[2..] {
            record.sequence -= 1;
        }
        assert_eq!(
            verify(ChainHead::GENESIS, &records),
            Err(ChainBreak::Altered { sequence: 3 })
        );
    }

    #[test]
    fn swapping_two_records_is_detected() {
        // Rows keep their sequence numbers (the key); everything else changes place.
        let mut records = chain_of(5);
        let (second, fourth) = (records[1].clone(), records[3].clone());
        records[1].entry = fourth.entry;
        records[1].hash = fourth.hash;
        records[3].entry = second.entry;
        records[3].hash = second.hash;
        assert_eq!(
            verify(ChainHead::GENESIS, &records),
            Err(ChainBreak::Altered { sequence: 2 })
        );
    }

    #[test]
    fn records_read_out_of_order_are_detected() {
        let mut records = chain_of(4);
        records.swap(1, 2);
        assert_eq!(
            verify(ChainHead::GENESIS, &records),
            Err(ChainBreak::Missing {
                sequence: 2,
                found: 3
            })
        );
        let mut records = chain_of(4);
        let duplicate = records[1].clone();
        records.insert(2, duplicate);
        assert_eq!(
            verify(ChainHead::GENESIS, &records),
            Err(ChainBreak::OutOfOrder {
                sequence: 2,
                expected: 3
            })
        );
    }

    #[test]
    fn inserting_a_record_is_detected() {
        let mut records = chain_of(4);
        // A forged record slipped in as number 3, the later ones renumbered after it.
        let forged = chain(entry(99), &ChainHead::of(&records[1]).unwrap());
        records.insert(2, forged);
        for record in &mut records[3..] {
            record.sequence += 1;
        }
        assert_eq!(
            verify(ChainHead::GENESIS, &records),
            Err(ChainBreak::Altered { sequence: 4 })
        );
        // Appended at the end without the chain's hash.
        let mut records = chain_of(3);
        let mut forged = chain(entry(99), &ChainHead::GENESIS);
        forged.sequence = 4;
        records.push(forged);
        assert_eq!(
            verify(ChainHead::GENESIS, &records),
            Err(ChainBreak::Altered { sequence: 4 })
        );
    }

    #[test]
    fn the_hash_is_the_sha256_of_the_bytes_the_database_chains_with() {
        // What migration 0013's tsunagu_write_tail computes on PostgreSQL.
        let previous = [7; 32];
        let mut covered = hash_prefix();
        covered.extend_from_slice(&8_u64.to_be_bytes());
        covered.extend_from_slice(&42_i64.to_be_bytes());
        covered.extend_from_slice(&hash_body(&entry(3)));
        covered.extend_from_slice(&32_u64.to_be_bytes());
        covered.extend_from_slice(&previous);
        let digest: [u8; 32] = Sha256::digest(&covered).into();
        assert_eq!(record_hash(42, &entry(3), &previous), digest);
        let mut tag = (DOMAIN_TAG.len() as u64).to_be_bytes().to_vec();
        tag.extend_from_slice(DOMAIN_TAG);
        assert_eq!(hash_prefix(), tag);
    }

    #[test]
    fn an_absent_field_and_an_empty_field_hash_differently() {
        let mut empty = entry(1);
        empty.note_id = Some(String::new());
        assert_ne!(
            record_hash(1, &entry(1), &[0; 32]),
            record_hash(1, &empty, &[0; 32])
        );
    }

    #[test]
    fn moving_bytes_from_one_field_to_the_next_changes_the_hash() {
        let mut moved = entry(1);
        moved.staff_name = Some("保健師".to_owned());
        moved.staff_role = Some(" 山田保健師".to_owned());
        assert_ne!(
            record_hash(1, &entry(1), &[0; 32]),
            record_hash(1, &moved, &[0; 32])
        );
    }

    #[test]
    fn the_sequence_number_and_the_previous_hash_are_part_of_the_hash() {
        assert_ne!(
            record_hash(1, &entry(1), &[0; 32]),
            record_hash(2, &entry(1), &[0; 32])
        );
        assert_ne!(
            record_hash(1, &entry(1), &[0; 32]),
            record_hash(1, &entry(1), &[1; 32])
        );
    }

    #[test]
    fn checking_can_start_after_any_record() {
        let records = chain_of(6);
        let anchor = ChainHead::of(&records[2]).unwrap();
        assert_eq!(
            verify(anchor, &records[3..]),
            Ok(ChainHead::of(&records[5]).unwrap())
        );
        // Starting at the wrong place is not mistaken for a valid chain.
        assert_eq!(
            verify(anchor, &records[4..]),
            Err(ChainBreak::Missing {
                sequence: 4,
                found: 5
            })
        );
    }

    #[test]
    fn a_chain_cut_short_of_a_published_head_is_detected() {
        let records = chain_of(5);
        let published = ChainHead::of(&records[4]).unwrap();
        let mut verifier = ChainVerifier::new(ChainHead::GENESIS).expecting(published);
        for record in &records[..3] {
            verifier.check(record).unwrap();
        }
        assert_eq!(
            verifier.finish(),
            Err(ChainBreak::Truncated {
                sequence: 4,
                published: 5
            })
        );
    }

    #[test]
    fn a_rewritten_history_is_detected_against_a_published_head() {
        let records = chain_of(4);
        let published = ChainHead::of(&records[2]).unwrap();
        // Someone rewrote record 2 and recomputed every hash after it.
        let mut head = ChainHead::of(&records[0]).unwrap();
        let mut rewritten = vec![records[0].clone()];
        for (index, original) in records[1..].iter().enumerate() {
            let mut entry = original.entry.clone();
            if index == 0 {
                entry.outcome = "PERMISSION_DENIED".to_owned();
            }
            let record = chain(entry, &head);
            head = ChainHead::of(&record).unwrap();
            rewritten.push(record);
        }
        assert!(verify(ChainHead::GENESIS, &rewritten).is_ok());
        let mut verifier = ChainVerifier::new(ChainHead::GENESIS).expecting(published);
        let broken = rewritten
            .iter()
            .find_map(|record| verifier.check(record).err());
        assert_eq!(broken, Some(ChainBreak::Rewritten { sequence: 3 }));
    }

    #[test]
    fn heads_read_back_from_their_text_form() {
        let head = ChainHead::of(&chain_of(1)[0]).unwrap();
        let text = format!("{}:{}", head.sequence, head.hash_hex());
        assert_eq!(ChainHead::parse(&text), Some(head));
        assert_eq!(ChainHead::parse("1:abcd"), None);
        assert_eq!(ChainHead::parse("x"), None);
    }
}
