//! The hub's domain: agencies, cases, consent and legal bases, referrals and their timers, as plain
//! types and rules. No proto or SQL types reach this module.

pub mod agency;
pub mod audit;
pub mod basis;
pub mod calendar;
pub mod consent;
pub mod council;
pub mod deadlines;
pub mod keys;
pub mod outcomes;
pub mod records;
pub mod referral;
pub mod sealing;
pub mod transfer;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::{OffsetDateTime, UtcOffset};

pub use agency::{Agency, AgencyId, AgencyKind, AgencyStatus, Municipality};

/// Japan Standard Time: consent validity days and review dates are civil dates in Japan.
pub const JST: UtcOffset = match UtcOffset::from_hms(9, 0, 0) {
    Ok(offset) => offset,
    Err(_) => panic!("UTC+9 is a valid offset"),
};

/// A point in time, in milliseconds since the Unix epoch (UTC). Stored as a 64-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// The civil date in Japan at this instant.
    pub fn date_in_japan(self) -> time::Date {
        self.to_offset_date_time().to_offset(JST).date()
    }

    pub fn to_offset_date_time(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn from_offset_date_time(at: OffsetDateTime) -> Self {
        Self((at.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn plus(self, duration: time::Duration) -> Self {
        Self(self.0.saturating_add(duration.whole_milliseconds() as i64))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.to_offset_date_time();
        match at.format(&time::format_description::well_known::Rfc3339) {
            Ok(text) => f.write_str(&text),
            Err(_) => write!(f, "{}ms", self.0),
        }
    }
}

/// Where the hub reads the time. Production uses the system clock; tests move a manual one.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_offset_date_time(OffsetDateTime::now_utc())
    }
}

/// The system clock plus an offset that tests advance, so timers pass without sleeping.
#[derive(Debug, Default)]
pub struct ManualClock {
    offset_millis: AtomicI64,
}

impl ManualClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.offset_millis
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    /// Puts the clock at `at` (past or future); it runs on from there with the system clock.
    pub fn set(&self, at: Timestamp) {
        let now = SystemClock.now();
        self.offset_millis.store(at.0 - now.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let now = SystemClock.now();
        Timestamp(now.0 + self.offset_millis.load(Ordering::SeqCst))
    }
}

/// The staff member an agency's system says is acting. Recorded, never trusted for authorisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    pub name: String,
    pub role: String,
}

/// A sealed payload (an age file). The hub stores it unchanged and never reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(pub Vec<u8>);

impl fmt::Debug for Sealed {
    // Payloads never reach logs, not even through Debug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub String);

        impl $name {
            /// A new time-ordered id.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            /// Parses a canonical UUID; `None` when malformed.
            pub fn parse(text: &str) -> Option<Self> {
                uuid::Uuid::try_parse(text)
                    .ok()
                    .map(|id| Self(id.hyphenated().to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

uuid_id!(
    /// Identifies a case.
    CaseId
);
uuid_id!(
    /// Identifies a consent record.
    ConsentId
);
uuid_id!(
    /// Identifies a referral.
    ReferralId
);
uuid_id!(
    /// Identifies a note.
    NoteId
);
uuid_id!(
    /// Identifies a referral event.
    EventId
);
uuid_id!(
    /// Identifies a 要対協 meeting.
    MeetingId
);
uuid_id!(
    /// Identifies a decision a 要対協 meeting recorded on one case.
    DecisionId
);
uuid_id!(
    /// Identifies a re-seal of a sealed field.
    ResealId
);
uuid_id!(
    /// Identifies a transfer (移管) of a case between municipalities.
    TransferId
);

/// The category of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaseCategory {
    General,
    RequiresProtection,
    RequiresSupport,
    SpecificExpectantMother,
}

impl CaseCategory {
    pub const ALL: [Self; 4] = [
        Self::General,
        Self::RequiresProtection,
        Self::RequiresSupport,
        Self::SpecificExpectantMother,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::General => "general",
            Self::RequiresProtection => "requires_protection",
            Self::RequiresSupport => "requires_support",
            Self::SpecificExpectantMother => "specific_expectant_mother",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// The life stage of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaseStage {
    Pregnancy,
    Postnatal,
    Infancy,
    SchoolAge,
}

impl CaseStage {
    pub const ALL: [Self; 4] = [
        Self::Pregnancy,
        Self::Postnatal,
        Self::Infancy,
        Self::SchoolAge,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Pregnancy => "pregnancy",
            Self::Postnatal => "postnatal",
            Self::Infancy => "infancy",
            Self::SchoolAge => "school_age",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// How urgent a referral is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Urgency {
    Routine,
    Urgent,
    Emergency,
}

impl Urgency {
    pub const ALL: [Self; 3] = [Self::Routine, Self::Urgent, Self::Emergency];

    pub fn code(self) -> &'static str {
        match self {
            Self::Routine => "routine",
            Self::Urgent => "urgent",
            Self::Emergency => "emergency",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// A purpose code such as `postnatal_care` (産後ケア): lower-case ASCII letters, digits and `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Purpose(String);

impl Purpose {
    /// The purposes the hub knows out of the box; operators may use other codes of the same shape.
    pub const KNOWN: &'static [(&'static str, &'static str)] = &[
        ("postnatal_care", "産後ケア"),
        ("home_visit_support", "養育支援訪問"),
        ("temporary_childcare", "一時保育"),
        ("nursery_admission", "保育所入所"),
        ("developmental_consultation", "発達相談"),
        ("psychiatric_care", "精神科受診"),
        ("home_visit", "家庭訪問"),
        ("parenting_support", "子育て支援"),
        ("prenatal_care", "妊婦健診・妊娠期支援"),
        ("child_protection", "児童保護"),
    ];

    /// A code is 1..=64 of `[a-z0-9_]`, starting with a letter.
    pub fn parse(code: &str) -> Option<Self> {
        let shape_ok = (1..=64).contains(&code.len())
            && code.starts_with(|c: char| c.is_ascii_lowercase())
            && code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        shape_ok.then(|| Self(code.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Japanese label of a known purpose.
    pub fn label(&self) -> Option<&'static str> {
        Self::KNOWN
            .iter()
            .find(|(code, _)| *code == self.0)
            .map(|(_, label)| *label)
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_give_the_japanese_civil_date() {
        // 2026-11-20T16:00:00Z is already 2026-11-21 in Japan.
        let at = Timestamp::from_offset_date_time(time::macros::datetime!(2026-11-20 16:00 UTC));
        assert_eq!(at.date_in_japan(), time::macros::date!(2026 - 11 - 21));
    }

    #[test]
    fn purpose_codes_have_one_shape() {
        assert!(Purpose::parse("postnatal_care").is_some());
        assert!(Purpose::parse("Postnatal").is_none());
        assert!(Purpose::parse("").is_none());
        assert!(Purpose::parse("a b").is_none());
    }

    #[test]
    fn ids_must_be_uuids() {
        assert!(CaseId::parse("not-a-uuid").is_none());
        let id = CaseId::generate();
        assert_eq!(CaseId::parse(id.as_str()), Some(id));
    }

    #[test]
    fn a_manual_clock_moves_forward_when_told() {
        let clock = ManualClock::new();
        let before = clock.now();
        clock.advance(std::time::Duration::from_secs(3600));
        assert!(clock.now().millis() - before.millis() >= 3_600_000);
    }

    #[test]
    fn sealed_payloads_never_show_in_debug_output() {
        let sealed = Sealed(b"secret family name".to_vec());
        assert_eq!(format!("{sealed:?}"), "Sealed(18 bytes)");
    }
}
