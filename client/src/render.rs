//! Output for people: aligned text tables and key/value lists that count Japanese characters as
//! two columns, timestamps shown in Japan time, and the words for the contract's codes (states,
//! purposes, categories) as `code (日本語)`.

use std::fmt;

use prost_types::Timestamp;
use time::format_description::well_known::Rfc3339;
use time::macros::{format_description, offset};
use time::{OffsetDateTime, UtcOffset};
use tsunagu_proto::v1::{
    AgencyStatus, CaseCategory, CaseStage, ConnectionState, ConsentGiver, ConsentMethod,
    DeliveryState, FeedEventKind, FollowUpStatus, LegalBasisKind, NotConnectedReason,
    ReferralAction, ReferralEventKind, ResponseState, TimerKind, TransferState, TransferTimer,
    Urgency,
};

/// Japan Standard Time, UTC+9 (no daylight saving).
pub const JAPAN: UtcOffset = offset!(+9);

/// Columns between two table cells.
const GAP: &str = "  ";

/// How many terminal columns a character takes: 2 for East Asian wide and full-width characters,
/// 0 for combining marks and invisible format characters, 1 otherwise.
pub fn char_width(c: char) -> usize {
    let cp = u32::from(c);
    if c.is_control() {
        return 0;
    }
    let zero = matches!(
        cp,
        0x0300..=0x036F
            | 0x1AB0..=0x1AFF
            | 0x1DC0..=0x1DFF
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x206F
            | 0x20D0..=0x20FF
            | 0x3099..=0x309A
            | 0xFE00..=0xFE0F
            | 0xFE20..=0xFE2F
            | 0xFEFF
            | 0xE0100..=0xE01EF
    );
    if zero {
        return 0;
    }
    let wide = matches!(
        cp,
        0x1100..=0x115F
            | 0x231A..=0x231B
            | 0x2329..=0x232A
            | 0x2E80..=0x303E
            | 0x3041..=0x33FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xA000..=0xA4CF
            | 0xA960..=0xA97F
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE10..=0xFE19
            | 0xFE30..=0xFE6F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6
            | 0x1F300..=0x1F64F
            | 0x1F900..=0x1F9FF
            | 0x20000..=0x2FFFD
            | 0x30000..=0x3FFFD
    );
    if wide { 2 } else { 1 }
}

/// How many terminal columns a string takes (see [`char_width`]).
pub fn display_width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

/// Makes text from the hub safe to put in one table cell: control characters (newlines, tabs,
/// terminal escapes) become spaces and bidirectional overrides are dropped.
pub fn sanitise_cell(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(u32::from(*c), 0x202A..=0x202E | 0x2066..=0x2069))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn pad_to(out: &mut String, text: &str, width: usize) {
    out.push_str(text);
    for _ in display_width(text)..width {
        out.push(' ');
    }
}

/// A plain aligned text table: a header row, then one line per row, columns separated by two
/// spaces, no trailing spaces.
#[derive(Clone, Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<I, S>(headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Table {
            headers: headers
                .into_iter()
                .map(|h| sanitise_cell(&h.into()))
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row. Missing cells are left blank; extra cells get a column without a header.
    pub fn row<I, S>(&mut self, cells: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(
            cells
                .into_iter()
                .map(|c| sanitise_cell(&c.into()))
                .collect(),
        );
        self
    }

    /// How many rows (not counting the header).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The width in columns of each column: the widest of its header and cells.
    pub fn column_widths(&self) -> Vec<usize> {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        (0..columns)
            .map(|i| {
                self.rows
                    .iter()
                    .chain([&self.headers])
                    .filter_map(|cells| cells.get(i))
                    .map(|cell| display_width(cell))
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    fn render_line(out: &mut String, cells: &[String], widths: &[usize]) {
        let mut line = String::new();
        for (i, width) in widths.iter().enumerate() {
            if i > 0 {
                line.push_str(GAP);
            }
            pad_to(&mut line, cells.get(i).map_or("", String::as_str), *width);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths = self.column_widths();
        let mut out = String::new();
        Table::render_line(&mut out, &self.headers, &widths);
        for row in &self.rows {
            Table::render_line(&mut out, row, &widths);
        }
        f.write_str(&out)
    }
}

/// A `key: value` list with the values aligned, for showing one record to people.
#[derive(Clone, Debug, Default)]
pub struct KeyValues {
    entries: Vec<(String, String)>,
}

impl KeyValues {
    pub fn new() -> Self {
        KeyValues::default()
    }

    /// Adds one `key: value` line.
    pub fn entry(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.entries
            .push((sanitise_cell(&key.into()), sanitise_cell(&value.into())));
        self
    }
}

impl fmt::Display for KeyValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .entries
            .iter()
            .map(|(key, _)| display_width(key) + 1)
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (key, value) in &self.entries {
            let mut line = String::new();
            pad_to(&mut line, &format!("{key}:"), width);
            line.push(' ');
            line.push_str(value);
            out.push_str(line.trim_end());
            out.push('\n');
        }
        f.write_str(&out)
    }
}

/// The instant a protobuf timestamp names, or `None` when it is out of range.
pub fn timestamp_to_datetime(ts: &Timestamp) -> Option<OffsetDateTime> {
    let seconds = OffsetDateTime::from_unix_timestamp(ts.seconds).ok()?;
    seconds.checked_add(time::Duration::nanoseconds(i64::from(ts.nanos)))
}

/// A timestamp as Japan time to the minute, `YYYY-MM-DD HH:MM`; "(invalid time)" when out of range.
pub fn format_japan_time(ts: &Timestamp) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]");
    timestamp_to_datetime(ts)
        .and_then(|t| t.to_offset(JAPAN).format(&format).ok())
        .unwrap_or_else(|| "(invalid time)".to_owned())
}

/// Like [`format_japan_time`], with "-" for a timestamp that is not set.
pub fn format_optional_japan_time(ts: Option<&Timestamp>) -> String {
    ts.map_or_else(|| "-".to_owned(), format_japan_time)
}

/// The deadline of `timer` and how it was counted, from a referral.
pub fn deadline_term(
    terms: Option<&tsunagu_proto::v1::DeadlineTerms>,
    timer: TimerKind,
) -> Option<tsunagu_proto::v1::DeadlineTerm> {
    let terms = terms?;
    match timer {
        TimerKind::DeliverBy => terms.deliver_by,
        TimerKind::RespondBy => terms.respond_by,
        TimerKind::ConnectBy => terms.connect_by,
        TimerKind::ConfirmBy => terms.confirm_by,
        TimerKind::Unspecified => None,
    }
}

/// Which calendar a deadline counts in, in Japanese alone: 「2営業日」, 「48時間」 or
/// 「送信者指定」; `None` when the hub did not record it.
pub fn deadline_term_short(term: Option<&tsunagu_proto::v1::DeadlineTerm>) -> Option<String> {
    use tsunagu_proto::v1::DeadlineUnit;
    let term = term?;
    match term.unit() {
        DeadlineUnit::Hours => Some(format!("{}時間", term.amount)),
        DeadlineUnit::BusinessDays => Some(format!("{}営業日", term.amount)),
        DeadlineUnit::SetBySender => Some("送信者指定".to_owned()),
        DeadlineUnit::Unspecified => None,
    }
}

/// Which calendar a deadline counts in, for the CLI: 「2営業日 (business days, due 17:00)」,
/// 「48時間 (hours, calendar time)」 or 「送信者指定 (set by the sender)」.
pub fn deadline_term_label(term: Option<&tsunagu_proto::v1::DeadlineTerm>) -> Option<String> {
    use tsunagu_proto::v1::DeadlineUnit;
    let term = term?;
    match term.unit() {
        DeadlineUnit::Hours => Some(format!("{}時間 (hours, calendar time)", term.amount)),
        DeadlineUnit::BusinessDays => {
            Some(format!("{}営業日 (business days, due 17:00)", term.amount))
        }
        DeadlineUnit::SetBySender => Some("送信者指定 (set by the sender)".to_owned()),
        DeadlineUnit::Unspecified => None,
    }
}

/// A timestamp in RFC 3339 (UTC), for machine output; `None` when out of range.
pub fn format_rfc3339(ts: &Timestamp) -> Option<String> {
    timestamp_to_datetime(ts).and_then(|t| t.format(&Rfc3339).ok())
}

/// The word for an agency status: "active", "suspended" or "unspecified".
pub fn agency_status_label(status: AgencyStatus) -> &'static str {
    match status {
        AgencyStatus::Active => "active",
        AgencyStatus::Suspended => "suspended",
        AgencyStatus::Unspecified => "unspecified",
    }
}

/// The items joined with ", ", or "-" when there are none.
pub fn join_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

/// A value of the contract with a stable snake_case code (as in JSON output and on the command
/// line) and a short Japanese word for people.
pub trait Coded: Copy {
    /// The snake_case code, for example "accepted"; "unspecified" for the zero value.
    fn code(self) -> &'static str;
    /// The Japanese word, for example "受入"; "未設定" for the zero value.
    fn japanese(self) -> &'static str;
}

/// `code (日本語)`, for example "accepted (受入)"; "-" for an unspecified value.
pub fn label<T: Coded>(value: T) -> String {
    match value.code() {
        "unspecified" => "-".to_owned(),
        code => format!("{code} ({})", value.japanese()),
    }
}

macro_rules! coded {
    ($ty:ident { $($variant:ident => $code:literal, $ja:literal;)+ }) => {
        impl Coded for $ty {
            fn code(self) -> &'static str {
                match self {
                    $ty::Unspecified => "unspecified",
                    $($ty::$variant => $code,)+
                }
            }
            fn japanese(self) -> &'static str {
                match self {
                    $ty::Unspecified => "未設定",
                    $($ty::$variant => $ja,)+
                }
            }
        }
    };
}

coded!(DeliveryState {
    Sent => "sent", "送信済";
    Delivered => "delivered", "受信確認済";
});

coded!(ResponseState {
    Requested => "requested", "依頼中";
    Accepted => "accepted", "受入";
    Declined => "declined", "辞退";
    InProgress => "in_progress", "対応中";
    Completed => "completed", "対応完了";
    Failed => "failed", "不成立";
    Cancelled => "cancelled", "取消";
});

coded!(ConnectionState {
    NotUpdated => "not_updated", "未更新";
    ContactAttempted => "contact_attempted", "連絡試行中";
    Connected => "connected", "つながった";
    NotConnected => "not_connected", "つながらなかった";
});

coded!(NotConnectedReason {
    CouldNotContact => "could_not_contact", "連絡がとれない";
    DeclinedByFamily => "declined_by_family", "家族が希望せず";
    NotEligible => "not_eligible", "対象外";
    NoCapacity => "no_capacity", "受入枠なし";
    Moved => "moved", "転居";
    ReferredElsewhere => "referred_elsewhere", "他機関へ紹介";
});

coded!(TimerKind {
    DeliverBy => "deliver_by", "受信期限";
    RespondBy => "respond_by", "回答期限";
    ConnectBy => "connect_by", "つなぎ期限";
    ConfirmBy => "confirm_by", "確認期限";
});

coded!(Urgency {
    Routine => "routine", "通常";
    Urgent => "urgent", "至急";
    Emergency => "emergency", "緊急";
});

coded!(LegalBasisKind {
    Consent => "consent", "同意";
    CouncilSharing => "council_sharing", "要対協での共有";
    AbuseNotification => "abuse_notification", "虐待通告";
    VitalInterest => "vital_interest", "生命・身体の保護";
});

coded!(CaseCategory {
    General => "general", "一般";
    RequiresProtection => "requires_protection", "要保護児童";
    RequiresSupport => "requires_support", "要支援児童";
    SpecificExpectantMother => "specific_expectant_mother", "特定妊婦";
});

coded!(CaseStage {
    Pregnancy => "pregnancy", "妊娠期";
    Postnatal => "postnatal", "出産直後";
    Infancy => "infancy", "乳幼児期";
    SchoolAge => "school_age", "学齢期";
});

coded!(ConsentGiver {
    Person => "person", "本人";
    Guardian => "guardian", "保護者";
});

coded!(ConsentMethod {
    Written => "written", "書面";
    Oral => "oral", "口頭";
    Electronic => "electronic", "電子";
});

coded!(FollowUpStatus {
    Overdue => "overdue", "期限超過";
    DueSoon => "due_soon", "期限間近";
    BasisReview => "basis_review", "根拠確認";
    NextStepNeeded => "next_step_needed", "次の支援が必要";
});

coded!(FeedEventKind {
    ReferralReceived => "referral_received", "紹介受信";
    ReferralUpdated => "referral_updated", "紹介更新";
    Escalation => "escalation", "期限超過";
    NoteReceived => "note_received", "連絡受信";
    NoteAcknowledged => "note_acknowledged", "連絡既読";
    ConsentWithdrawn => "consent_withdrawn", "同意撤回";
    CouncilUpdated => "council_updated", "要対協更新";
    TransferReceived => "transfer_received", "移管依頼受信";
    TransferUpdated => "transfer_updated", "移管更新";
    TransferEscalation => "transfer_escalation", "移管期限超過";
});

coded!(TransferState {
    Proposed => "proposed", "移管依頼中";
    Acknowledged => "acknowledged", "受領確認済";
    Accepted => "accepted", "移管完了";
    Declined => "declined", "辞退";
    Withdrawn => "withdrawn", "取下げ";
});

coded!(TransferTimer {
    Deliver => "deliver", "受領確認期限";
    Respond => "respond", "回答期限";
    Accept => "accept", "受入期限";
});

coded!(ReferralEventKind {
    Sent => "sent", "紹介送信";
    Action => "action", "対応記録";
    Escalated => "escalated", "期限超過";
});

coded!(ReferralAction {
    AcknowledgeDelivery => "acknowledge_delivery", "受信確認";
    Accept => "accept", "受入";
    Decline => "decline", "辞退";
    Start => "start", "対応開始";
    Complete => "complete", "対応完了";
    Fail => "fail", "不成立";
    Cancel => "cancel", "取消";
    RecordContactAttempt => "record_contact_attempt", "連絡試行";
    ReportConnected => "report_connected", "つながった報告";
    ReportNotConnected => "report_not_connected", "つながらなかった報告";
    Confirm => "confirm", "確認";
    CloseWithReason => "close_with_reason", "理由を記録して終結";
});

/// The purposes the hub knows out of the box, with their Japanese names. Operators may register
/// other codes of the same shape (lower-case letters, digits and '_').
pub const KNOWN_PURPOSES: &[(&str, &str)] = &[
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

/// The Japanese name of a known purpose code, for example "産後ケア" for "postnatal_care".
pub fn purpose_japanese(code: &str) -> Option<&'static str> {
    KNOWN_PURPOSES
        .iter()
        .find(|(known, _)| *known == code)
        .map(|(_, japanese)| *japanese)
}

/// `code (日本語)` for a known purpose, the bare code for another one, "-" for none.
pub fn purpose_label(code: &str) -> String {
    match (code, purpose_japanese(code)) {
        ("", _) => "-".to_owned(),
        (code, Some(japanese)) => format!("{code} ({japanese})"),
        (code, None) => code.to_owned(),
    }
}

/// The last 8 characters of an id, for table cells; "-" for none. The hub's ids are UUIDv7,
/// whose first characters are a timestamp shared by everything made in the same minute, while
/// the last ones are random; the CLI accepts this short form wherever it takes an id.
pub fn short_id(id: &str) -> &str {
    if id.is_empty() {
        return "-";
    }
    let count = id.chars().count();
    if count <= 8 {
        return id;
    }
    id.char_indices()
        .nth(count - 8)
        .map_or(id, |(start, _)| &id[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_characters_take_two_columns() {
        assert_eq!(display_width("青葉区こども家庭センター"), 24);
        assert_eq!(display_width("ＡＢ"), 4);
        assert_eq!(display_width("　"), 2);
    }

    #[test]
    fn ascii_and_half_width_katakana_take_one_column() {
        assert_eq!(display_width("aoba-kodomo"), 11);
        assert_eq!(display_width("ｱｵﾊﾞ"), 4);
    }

    #[test]
    fn combining_marks_take_no_columns() {
        // か + combining dakuten renders as one wide が.
        assert_eq!(display_width("か\u{3099}"), 2);
        assert_eq!(display_width("e\u{301}"), 1);
    }

    #[test]
    fn table_columns_line_up_with_japanese_names() {
        let mut table = Table::new(["ID", "NAME", "STATUS"]);
        table.row(["aoba-kodomo", "青葉区こども家庭センター", "active"]);
        table.row(["midori-hp", "緑病院", "suspended"]);
        let text = table.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "ID           NAME                      STATUS");
        assert_eq!(lines[1], "aoba-kodomo  青葉区こども家庭センター  active");
        assert_eq!(lines[2], "midori-hp    緑病院                    suspended");
    }

    #[test]
    fn table_lines_have_no_trailing_spaces() {
        let mut table = Table::new(["A", "B"]);
        table.row(["長い名前の機関", ""]);
        assert!(table.to_string().lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn short_rows_are_padded_and_long_rows_widen_the_table() {
        let mut table = Table::new(["A", "B"]);
        table.row(["1"]);
        table.row(["1", "2", "3"]);
        assert_eq!(table.column_widths(), vec![1, 1, 1]);
    }

    #[test]
    fn control_characters_cannot_break_a_row() {
        let mut table = Table::new(["NAME"]);
        table.row(["line\nbreak\u{1b}[31m"]);
        assert_eq!(table.to_string().lines().count(), 2);
        assert!(!table.to_string().contains('\u{1b}'));
    }

    #[test]
    fn key_values_align_after_the_widest_key() {
        let mut list = KeyValues::new();
        list.entry("agency", "aoba-kodomo").entry("名前", "青葉区");
        assert_eq!(list.to_string(), "agency: aoba-kodomo\n名前:   青葉区\n");
    }

    #[test]
    fn timestamps_are_shown_in_japan_time() {
        // 2025-04-01T00:30:00Z is 09:30 in Japan.
        let ts = Timestamp {
            seconds: 1_743_467_400,
            nanos: 0,
        };
        assert_eq!(format_japan_time(&ts), "2025-04-01 09:30");
    }

    #[test]
    fn japan_time_crosses_midnight_into_the_next_day() {
        // 2024-12-31T15:59:59.9Z is 2025-01-01 00:59 in Japan.
        let ts = Timestamp {
            seconds: 1_735_660_799,
            nanos: 900_000_000,
        };
        assert_eq!(format_japan_time(&ts), "2025-01-01 00:59");
    }

    #[test]
    fn a_missing_timestamp_shows_a_dash() {
        assert_eq!(format_optional_japan_time(None), "-");
    }

    #[test]
    fn an_out_of_range_timestamp_is_marked_invalid() {
        let ts = Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(format_japan_time(&ts), "(invalid time)");
        assert_eq!(format_rfc3339(&ts), None);
    }

    #[test]
    fn machine_output_uses_rfc3339_in_utc() {
        let ts = Timestamp {
            seconds: 1_743_467_400,
            nanos: 0,
        };
        assert_eq!(format_rfc3339(&ts).as_deref(), Some("2025-04-01T00:30:00Z"));
    }
    #[test]
    fn referral_states_read_as_code_and_japanese() {
        assert_eq!(label(ResponseState::Accepted), "accepted (受入)");
        assert_eq!(label(DeliveryState::Delivered), "delivered (受信確認済)");
        assert_eq!(
            label(ConnectionState::NotConnected),
            "not_connected (つながらなかった)"
        );
        assert_eq!(label(TimerKind::ConfirmBy), "confirm_by (確認期限)");
        assert_eq!(label(ConsentGiver::Person), "person (本人)");
    }

    #[test]
    fn an_unspecified_value_shows_a_dash() {
        assert_eq!(label(ResponseState::Unspecified), "-");
        assert_eq!(ResponseState::Unspecified.code(), "unspecified");
    }

    #[test]
    fn known_purposes_have_japanese_names_and_others_stay_codes() {
        assert_eq!(purpose_japanese("postnatal_care"), Some("産後ケア"));
        assert_eq!(
            purpose_japanese("prenatal_care"),
            Some("妊婦健診・妊娠期支援")
        );
        assert_eq!(
            purpose_label("home_visit_support"),
            "home_visit_support (養育支援訪問)"
        );
        assert_eq!(purpose_label("dental_check"), "dental_check");
        assert_eq!(purpose_label(""), "-");
        assert_eq!(KNOWN_PURPOSES.len(), 10);
    }

    #[test]
    fn short_ids_keep_the_random_end_of_a_uuid() {
        assert_eq!(short_id("0190f3a2-7b1c-7def-8000-00009c41e7d2"), "9c41e7d2");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(short_id(""), "-");
    }
}
