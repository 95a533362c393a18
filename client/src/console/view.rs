//! Words and numbers as the console shows them: Japan time, how long something is overdue,
//! agency names, and what a sealed field opened to.

use std::collections::HashMap;

use prost_types::Timestamp;
use time::OffsetDateTime;
use tsunagu_proto::v1::{Agency, Sealed, TimerKind};

use crate::pack::{Content, Opener, UNREADABLE};
use crate::render::{Coded, format_japan_time, purpose_japanese, timestamp_to_datetime};

/// A time as Japan time to the minute; "―" when not set.
pub fn jst(ts: Option<&Timestamp>) -> String {
    ts.map_or_else(|| "―".to_owned(), format_japan_time)
}

/// A length of time in days, hours and minutes, the largest two units only: "2日3時間".
pub fn span(seconds: i64) -> String {
    let seconds = seconds.unsigned_abs();
    let (days, hours, minutes) = (
        seconds / 86_400,
        (seconds % 86_400) / 3_600,
        (seconds % 3_600) / 60,
    );
    match (days, hours, minutes) {
        (0, 0, m) => format!("{}分", m.max(1)),
        (0, h, 0) => format!("{h}時間"),
        (0, h, m) => format!("{h}時間{m}分"),
        (d, 0, _) => format!("{d}日"),
        (d, h, _) => format!("{d}日{h}時間"),
    }
}

/// Seconds from `now` until `ts` (negative once passed).
pub fn seconds_until(ts: &Timestamp, now: OffsetDateTime) -> i64 {
    timestamp_to_datetime(ts).map_or(0, |at| (at - now).whole_seconds())
}

/// "2日3時間超過" or "あと5時間".
pub fn due_phrase(ts: &Timestamp, now: OffsetDateTime) -> String {
    let left = seconds_until(ts, now);
    if left < 0 {
        format!("{}超過", span(left))
    } else {
        format!("あと{}", span(left))
    }
}

/// The layer a timer watches, as the worklist groups it.
pub fn layer_of(timer: TimerKind) -> &'static str {
    match timer {
        TimerKind::DeliverBy => "未受信",
        TimerKind::RespondBy => "未応答",
        TimerKind::ConnectBy => "未接続",
        TimerKind::ConfirmBy => "未確認",
        TimerKind::Unspecified => "その他",
    }
}

/// The Japanese word of a coded value; "―" for an unspecified one.
pub fn ja<T: Coded>(value: T) -> String {
    match value.code() {
        "unspecified" => "―".to_owned(),
        _ => value.japanese().to_owned(),
    }
}

/// A purpose's Japanese name, or its code when the console does not know it.
pub fn purpose(code: &str) -> String {
    match (code, purpose_japanese(code)) {
        ("", _) => "―".to_owned(),
        (_, Some(japanese)) => japanese.to_owned(),
        (code, None) => code.to_owned(),
    }
}

/// Agency ids to display names, from the directory.
#[derive(Clone, Debug, Default)]
pub struct Names {
    names: HashMap<String, String>,
}

impl Names {
    pub fn new(agencies: &[Agency]) -> Self {
        Names {
            names: agencies
                .iter()
                .map(|a| (a.agency_id.clone(), a.display_name.clone()))
                .collect(),
        }
    }

    /// The display name of an agency, its id when unknown, "（非表示）" when hidden (the
    /// reporter of a 通告).
    pub fn of(&self, agency: &str) -> String {
        if agency.is_empty() {
            return "（非表示）".to_owned();
        }
        self.names
            .get(agency)
            .cloned()
            .unwrap_or_else(|| agency.to_owned())
    }
}

/// What one sealed field shows on a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    Absent,
    Text(String),
    Unreadable,
}

impl Opened {
    /// Opens a field with this machine's identities; the text lives only in this request.
    pub fn of(opener: &Opener<'_>, sealed: Option<&Sealed>) -> Self {
        match opener.open(sealed) {
            Content::Absent => Opened::Absent,
            Content::Opened(text) => Opened::Text(text),
            Content::Unreadable => Opened::Unreadable,
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Opened::Absent)
    }

    pub fn is_unreadable(&self) -> bool {
        matches!(self, Opened::Unreadable)
    }

    /// The opened text, or the placeholder.
    pub fn text(&self) -> &str {
        match self {
            Opened::Absent => "",
            Opened::Text(text) => text,
            Opened::Unreadable => UNREADABLE,
        }
    }
}

/// Today in Japan, `YYYY-MM-DD`.
pub fn today_in_japan(now: OffsetDateTime) -> String {
    let date = now.to_offset(crate::render::JAPAN).date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_the_largest_two_units() {
        assert_eq!(span(30), "1分");
        assert_eq!(span(5 * 60), "5分");
        assert_eq!(span(3 * 3600), "3時間");
        assert_eq!(span(3 * 3600 + 120), "3時間2分");
        assert_eq!(span(2 * 86_400 + 3 * 3600 + 59), "2日3時間");
        assert_eq!(span(-86_400), "1日");
    }

    #[test]
    fn a_passed_deadline_reads_as_overdue() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let passed = Timestamp {
            seconds: 1_000_000 - 7_200,
            nanos: 0,
        };
        let coming = Timestamp {
            seconds: 1_000_000 + 86_400,
            nanos: 0,
        };
        assert_eq!(due_phrase(&passed, now), "2時間超過");
        assert_eq!(due_phrase(&coming, now), "あと1日");
    }

    #[test]
    fn hidden_and_unknown_agencies_have_names_too() {
        let names = Names::new(&[Agency {
            agency_id: "aoba-kodomo".into(),
            display_name: "青葉区こども家庭センター".into(),
            ..Agency::default()
        }]);
        assert_eq!(names.of("aoba-kodomo"), "青葉区こども家庭センター");
        assert_eq!(names.of("other"), "other");
        assert_eq!(names.of(""), "（非表示）");
    }
}
