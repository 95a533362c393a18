//! Conversions between proto messages and domain types, at the boundary. Parsing failures name
//! the offending field.

use tsunagu_proto::v1 as pb;

use crate::domain::{Agency, AgencyStatus, Timestamp};
use crate::error::Error;

/// A prost timestamp for a domain instant.
pub fn timestamp(at: Timestamp) -> prost_types::Timestamp {
    let millis = at.millis();
    prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A domain instant from an optional prost timestamp; `field` names it in errors.
pub fn parse_timestamp(
    field: &str,
    at: Option<&prost_types::Timestamp>,
) -> Result<Option<Timestamp>, Error> {
    let Some(at) = at else { return Ok(None) };
    if !(0..1_000_000_000).contains(&at.nanos) || !(0..=253_402_300_799).contains(&at.seconds) {
        return Err(Error::invalid(field, "is not a valid timestamp"));
    }
    Ok(Some(Timestamp::from_millis(
        at.seconds * 1000 + i64::from(at.nanos / 1_000_000),
    )))
}

pub fn agency(agency: &Agency, trust_domain: &str) -> pb::Agency {
    let codes = |list: &[crate::domain::Municipality]| {
        list.iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    pb::Agency {
        agency_id: agency.id.to_string(),
        kind: agency.kind.to_string(),
        display_name: agency.display_name.clone(),
        municipalities: codes(&agency.municipalities),
        council_memberships: codes(&agency.council_memberships),
        coordinator_of: codes(&agency.coordinator_of),
        status: match agency.status {
            AgencyStatus::Active => pb::AgencyStatus::Active,
            AgencyStatus::Suspended => pb::AgencyStatus::Suspended,
        } as i32,
        spiffe_id: agency.id.spiffe_uri(trust_domain),
    }
}
