//! The JSON shapes of directory records for `--json` output, stable for scripts.

use serde::Serialize;
use tsunagu_client::render::agency_status_label;
use tsunagu_proto::v1::Agency;

/// One agency, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct AgencyView {
    pub agency_id: String,
    pub kind: String,
    pub display_name: String,
    pub municipalities: Vec<String>,
    pub council_memberships: Vec<String>,
    pub coordinator_of: Vec<String>,
    /// "active", "suspended" or "unspecified".
    pub status: &'static str,
    pub spiffe_id: String,
}

impl From<&Agency> for AgencyView {
    fn from(agency: &Agency) -> Self {
        AgencyView {
            agency_id: agency.agency_id.clone(),
            kind: agency.kind.clone(),
            display_name: agency.display_name.clone(),
            municipalities: agency.municipalities.clone(),
            council_memberships: agency.council_memberships.clone(),
            coordinator_of: agency.coordinator_of.clone(),
            status: agency_status_label(agency.status()),
            spiffe_id: agency.spiffe_id.clone(),
        }
    }
}

/// The roles an agency holds, for a table cell: "coordinator (141178, 141011)" or "-".
pub fn roles_label(agency: &Agency) -> String {
    if agency.coordinator_of.is_empty() {
        "-".to_owned()
    } else {
        format!("coordinator ({})", agency.coordinator_of.join(", "))
    }
}
