//! The bytes the hub signs about its audit chain's head (`GetAuditHeadResponse`), shared by the
//! hub that signs them and the clients that check them, so that both encode them the same way.

/// Separates these signatures from any other use of the hub's audit signing key.
pub const STATEMENT_TAG: &[u8] = b"tsunagu.audit-head.v1";

/// The signed statement: "the newest record is `sequence` with `hash`, and record
/// `since_sequence` has `since_hash` and the chain from it to the newest record is intact".
/// Every part has a fixed width, so no two statements encode alike.
pub fn statement(
    sequence: u64,
    hash: &[u8; 32],
    since_sequence: u64,
    since_hash: &[u8; 32],
) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(STATEMENT_TAG.len() + 2 * (8 + 32));
    bytes.extend_from_slice(STATEMENT_TAG);
    bytes.extend_from_slice(&sequence.to_be_bytes());
    bytes.extend_from_slice(hash);
    bytes.extend_from_slice(&since_sequence.to_be_bytes());
    bytes.extend_from_slice(since_hash);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_of_the_statement_changes_its_bytes() {
        let base = statement(5, &[1; 32], 3, &[2; 32]);
        assert_eq!(base.len(), STATEMENT_TAG.len() + 80);
        assert_ne!(base, statement(6, &[1; 32], 3, &[2; 32]));
        assert_ne!(base, statement(5, &[9; 32], 3, &[2; 32]));
        assert_ne!(base, statement(5, &[1; 32], 4, &[2; 32]));
        assert_ne!(base, statement(5, &[1; 32], 3, &[9; 32]));
    }
}
