//! The hub's check of a sealed payload (`api::convert::sealed`): any bytes, armoured or not, get
//! a verdict and never a panic; what it accepts is within the limit and has an age header that
//! the age crate parses, and what it refuses is refused with the field named.
#![no_main]

use std::io::Read as _;

use libfuzzer_sys::fuzz_target;
use tsunagu_hub::api::convert;
use tsunagu_hub::error::Error;
use tsunagu_proto::v1 as pb;

/// Small, so that the size check is also reached.
const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let sealed = pb::Sealed {
        age: data.to_vec(),
    };
    match convert::sealed("body", Some(&sealed), LIMIT) {
        Ok(kept) => {
            assert!(!data.is_empty() && data.len() <= LIMIT);
            assert_eq!(kept.0, data, "a sealed payload is stored unchanged");
            let mut binary = Vec::new();
            age::armor::ArmoredReader::new(data)
                .read_to_end(&mut binary)
                .expect("accepted, so its armour decodes");
            assert!(
                age::Decryptor::new_buffered(binary.as_slice()).is_ok(),
                "accepted, so its header parses"
            );
        }
        Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "body"),
        Err(Error::ResourceExhausted { field, size, limit }) => {
            assert_eq!(field, "body");
            assert!(size > limit);
        }
        Err(other) => panic!("unexpected refusal: {other:?}"),
    }
    // Optional sealed fields take the same path.
    let _ = convert::optional_sealed("note", Some(&sealed), LIMIT);
});
