//! Who reads what the 要対協 seals. A registration's キーパーソン and a decision's 役割分担 and
//! 支援計画 are the council's: they are sealed to every active key of the municipality's
//! coordinator (調整機関) and of every active member of its council, so that every member's
//! client opens them in the meeting pack. Seal them with [`Sealer`](crate::sealing::Sealer)
//! and the agencies [`readers`] returns.

use tsunagu_proto::v1::{Agency, AgencyStatus, ListAgenciesRequest};

use crate::error::ClientError;
use crate::hub::Hub;

/// The agencies a council field of `municipality` is sealed to, from the directory's agencies:
/// the active coordinators first, then the active members, each once, in id order.
pub fn council_agencies(agencies: &[Agency], municipality: &str) -> Vec<String> {
    let active = || {
        agencies
            .iter()
            .filter(|a| a.status() == AgencyStatus::Active)
    };
    let mut coordinators: Vec<String> = active()
        .filter(|a| a.coordinator_of.iter().any(|m| m == municipality))
        .map(|a| a.agency_id.clone())
        .collect();
    coordinators.sort();
    let mut members: Vec<String> = active()
        .filter(|a| a.council_memberships.iter().any(|m| m == municipality))
        .map(|a| a.agency_id.clone())
        .filter(|id| !coordinators.contains(id))
        .collect();
    members.sort();
    coordinators.extend(members);
    coordinators
}

/// The agencies a council field of `municipality` is sealed to (see [`council_agencies`]), as
/// the hub's directory lists them now. An empty list is an error: nobody could open the field.
pub async fn readers(hub: &Hub, municipality: &str) -> Result<Vec<String>, ClientError> {
    let agencies = hub
        .directory()
        .list_agencies(ListAgenciesRequest {
            municipality: String::new(),
            kind: String::new(),
        })
        .await
        .map_err(|status| hub.call_error(status))?
        .into_inner()
        .agencies;
    let readers = council_agencies(&agencies, municipality);
    if readers.is_empty() {
        return Err(ClientError::Seal(format!(
            "the directory lists no active coordinator or council member of municipality \
             {municipality}"
        )));
    }
    Ok(readers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agency(id: &str, members: &[&str], coordinates: &[&str], active: bool) -> Agency {
        let codes = |c: &[&str]| c.iter().map(|s| (*s).to_owned()).collect();
        Agency {
            agency_id: id.to_owned(),
            council_memberships: codes(members),
            coordinator_of: codes(coordinates),
            status: if active {
                AgencyStatus::Active
            } else {
                AgencyStatus::Suspended
            }
            .into(),
            ..Agency::default()
        }
    }

    #[test]
    fn the_coordinator_and_active_members_of_that_municipality_read_council_fields() {
        let agencies = [
            agency("nursery", &["141178"], &[], true),
            agency("hiroba", &[], &[], true),
            agency("kodomo", &["141178"], &["141178"], true),
            agency("jisou", &["141178"], &[], true),
            agency("suspended", &["141178"], &[], false),
            agency("chiyoda", &["131016"], &["131016"], true),
        ];
        assert_eq!(
            council_agencies(&agencies, "141178"),
            vec!["kodomo", "jisou", "nursery"]
        );
        assert_eq!(council_agencies(&agencies, "131016"), vec!["chiyoda"]);
        assert!(council_agencies(&agencies, "999999").is_empty());
    }
}
