//! Agencies: who connects to the hub, what kind of service they are, where they serve and the
//! roles they hold (council membership, coordinator).

use std::fmt;

/// An agency id: the last segment of `spiffe://<trust-domain>/agency/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgencyId(String);

impl AgencyId {
    /// 2..=63 of `[a-z0-9-]`, starting with a letter or digit and not ending with `-`.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let shape_ok = (2..=63).contains(&bytes.len())
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1] != b'-'
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        shape_ok.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads the agency id out of a SPIFFE URI of this trust domain.
    pub fn from_spiffe_uri(uri: &str, trust_domain: &str) -> Option<Self> {
        let rest = uri.strip_prefix("spiffe://")?;
        let rest = rest.strip_prefix(trust_domain)?;
        let id = rest.strip_prefix("/agency/")?;
        Self::parse(id)
    }

    pub fn spiffe_uri(&self, trust_domain: &str) -> String {
        format!("spiffe://{trust_domain}/agency/{}", self.0)
    }
}

impl fmt::Display for AgencyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kind of an agency: `health_centre`, `child_guidance_centre`, `hospital`, `nursery`,
/// `support_hub`, or another code the operator registers (1..=40 of `[a-z_]`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgencyKind(String);

impl AgencyKind {
    pub const HEALTH_CENTRE: &'static str = "health_centre";
    pub const CHILD_GUIDANCE_CENTRE: &'static str = "child_guidance_centre";
    pub const HOSPITAL: &'static str = "hospital";
    pub const NURSERY: &'static str = "nursery";
    pub const SUPPORT_HUB: &'static str = "support_hub";

    pub fn parse(text: &str) -> Option<Self> {
        let shape_ok = (1..=40).contains(&text.len())
            && text.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        shape_ok.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_child_guidance_centre(&self) -> bool {
        self.0 == Self::CHILD_GUIDANCE_CENTRE
    }
}

impl fmt::Display for AgencyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A municipality code (全国地方公共団体コード): six digits, the last one a check digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Municipality(String);

impl Municipality {
    /// Six ASCII digits whose check digit is right, so a typo is caught at the boundary.
    pub fn parse(text: &str) -> Option<Self> {
        let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
        if text.len() != 6 || digits.len() != 6 {
            return None;
        }
        let weighted: u32 = digits[..5]
            .iter()
            .zip([6, 5, 4, 3, 2])
            .map(|(d, w)| d * w)
            .sum();
        let check = (11 - weighted % 11) % 10;
        (check == digits[5]).then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Municipality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether an agency may use the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgencyStatus {
    Active,
    Suspended,
}

impl AgencyStatus {
    pub fn code(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            _ => None,
        }
    }
}

/// A registered agency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agency {
    pub id: AgencyId,
    pub kind: AgencyKind,
    /// Display name in Japanese.
    pub display_name: String,
    pub municipalities: Vec<Municipality>,
    pub council_memberships: Vec<Municipality>,
    pub coordinator_of: Vec<Municipality>,
    pub status: AgencyStatus,
}

impl Agency {
    pub fn serves(&self, municipality: &Municipality) -> bool {
        self.municipalities.contains(municipality) || self.coordinator_of.contains(municipality)
    }

    pub fn is_council_member(&self, municipality: &Municipality) -> bool {
        self.council_memberships.contains(municipality)
    }

    pub fn is_coordinator_of(&self, municipality: &Municipality) -> bool {
        self.coordinator_of.contains(municipality)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agency_ids_come_out_of_spiffe_uris_of_the_trust_domain_only() {
        let id =
            AgencyId::from_spiffe_uri("spiffe://tsunagu.dev/agency/aoba-kodomo", "tsunagu.dev");
        assert_eq!(id.unwrap().as_str(), "aoba-kodomo");
        assert!(
            AgencyId::from_spiffe_uri("spiffe://evil.example/agency/aoba-kodomo", "tsunagu.dev")
                .is_none()
        );
        assert!(
            AgencyId::from_spiffe_uri("spiffe://tsunagu.dev.evil/agency/x1", "tsunagu.dev")
                .is_none()
        );
        assert!(
            AgencyId::from_spiffe_uri("spiffe://tsunagu.dev/agency/A_B", "tsunagu.dev").is_none()
        );
    }

    #[test]
    fn municipality_codes_carry_a_check_digit() {
        assert!(Municipality::parse("141178").is_some(), "横浜市青葉区");
        assert!(Municipality::parse("131016").is_some(), "千代田区");
        assert!(Municipality::parse("141179").is_none());
        assert!(Municipality::parse("14117").is_none());
        assert!(Municipality::parse("14117a").is_none());
    }

    #[test]
    fn agency_ids_have_one_shape() {
        assert!(AgencyId::parse("aoba-kodomo").is_some());
        assert!(AgencyId::parse("a").is_none());
        assert!(AgencyId::parse("-ab").is_none());
        assert!(AgencyId::parse("ab-").is_none());
        assert!(AgencyId::parse("Ab").is_none());
    }
}

/// A client certificate an agency presented to the hub: which one, until when it is valid, and
/// when the hub last saw it (to tell which one the agency uses now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenCertificate {
    pub agency_id: AgencyId,
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint: String,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
    pub last_seen_at: super::Timestamp,
}
