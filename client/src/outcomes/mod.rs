//! Outcomes as people and spreadsheets read them: Japanese labels for the hub's figures, a table
//! for the terminal, JSON for machines, CSV that opens in Excel (UTF-8 with BOM, CRLF), and the
//! 代表者会議's annual report (see [`report`]). Suppressed counts show [`MARKER`].

pub mod report;

use serde::Serialize;
use tsunagu_proto::v1::{
    Count, GetOutcomesResponse, Milestone, NotConnectedReason, OutcomeDimension, OutcomeFigures,
    OutcomeGroup, TimerKind,
};

use crate::render::{Coded, Table, purpose_japanese};

/// What a suppressed count shows.
pub const MARKER: &str = "*";

/// The agency kinds the hub knows, with their Japanese names.
pub const AGENCY_KINDS: &[(&str, &str)] = &[
    ("health_centre", "保健センター・こども家庭センター"),
    ("child_guidance_centre", "児童相談所"),
    ("hospital", "医療機関"),
    ("nursery", "保育所"),
    ("support_hub", "地域子育て支援拠点"),
];

/// Every dimension, with its command-line code and Japanese column header.
pub const DIMENSIONS: &[(OutcomeDimension, &str, &str)] = &[
    (OutcomeDimension::Sender, "sender", "送付元"),
    (OutcomeDimension::Recipient, "recipient", "送付先"),
    (
        OutcomeDimension::RecipientKind,
        "recipient_kind",
        "送付先種別",
    ),
    (OutcomeDimension::Purpose, "purpose", "目的"),
    (OutcomeDimension::Urgency, "urgency", "緊急度"),
    (OutcomeDimension::LegalBasis, "legal_basis", "法的根拠"),
    (OutcomeDimension::Month, "month", "月"),
];

/// A dimension from its code (`recipient-kind` is accepted for `recipient_kind`).
pub fn parse_dimension(text: &str) -> Result<OutcomeDimension, String> {
    let code = text.trim().replace('-', "_");
    DIMENSIONS
        .iter()
        .find(|(_, c, _)| *c == code)
        .map(|(d, _, _)| *d)
        .ok_or_else(|| {
            format!(
                "`{text}` is not a grouping: use sender, recipient, recipient_kind, purpose, \
                 urgency, legal_basis or month"
            )
        })
}

pub fn dimension_code(d: OutcomeDimension) -> &'static str {
    DIMENSIONS
        .iter()
        .find(|(x, _, _)| *x == d)
        .map_or("unspecified", |(_, c, _)| c)
}

pub fn dimension_header(d: OutcomeDimension) -> &'static str {
    DIMENSIONS
        .iter()
        .find(|(x, _, _)| *x == d)
        .map_or("-", |(_, _, h)| h)
}

/// The Japanese name of an agency kind code, the code itself for another one.
pub fn kind_japanese(code: &str) -> String {
    AGENCY_KINDS
        .iter()
        .find(|(k, _)| *k == code)
        .map_or_else(|| code.to_owned(), |(_, ja)| (*ja).to_owned())
}

/// A group value as people read it.
pub fn value_label(d: OutcomeDimension, value: &str) -> String {
    use tsunagu_proto::v1::{LegalBasisKind, Urgency};
    match d {
        OutcomeDimension::Sender if value.is_empty() => "(非表示: 通告者)".to_owned(),
        OutcomeDimension::RecipientKind => kind_japanese(value),
        OutcomeDimension::Purpose => {
            purpose_japanese(value).map_or_else(|| value.to_owned(), str::to_owned)
        }
        OutcomeDimension::Urgency => [Urgency::Routine, Urgency::Urgent, Urgency::Emergency]
            .into_iter()
            .find(|u| u.code() == value)
            .map_or_else(|| value.to_owned(), |u| u.japanese().to_owned()),
        OutcomeDimension::LegalBasis => [
            LegalBasisKind::Consent,
            LegalBasisKind::CouncilSharing,
            LegalBasisKind::AbuseNotification,
            LegalBasisKind::VitalInterest,
        ]
        .into_iter()
        .find(|b| b.code() == value)
        .map_or_else(|| value.to_owned(), |b| b.japanese().to_owned()),
        _ => value.to_owned(),
    }
}

/// A count as text: the number, or the marker when suppressed.
pub fn count_text(count: Option<&Count>) -> String {
    match count {
        Some(c) if c.suppressed => MARKER.to_owned(),
        Some(c) => c.value.to_string(),
        None => "0".to_owned(),
    }
}

/// A count's value, `None` when suppressed.
pub fn count_value(count: Option<&Count>) -> Option<u64> {
    match count {
        Some(c) if c.suppressed => None,
        Some(c) => Some(c.value),
        None => Some(0),
    }
}

/// `part / whole` as a percentage with one decimal, "-" when either is unknown or zero.
pub fn rate_text(part: Option<&Count>, whole: Option<&Count>) -> String {
    match (count_value(part), count_value(whole)) {
        (Some(p), Some(w)) if w > 0 => format!("{:.1}%", p as f64 * 100.0 / w as f64),
        _ => "-".to_owned(),
    }
}

/// Seconds as people read a waiting time: minutes, hours or days.
pub fn duration_text(seconds: i64) -> String {
    match seconds {
        s if s < 3600 => format!("{}分", s / 60),
        s if s < 2 * 86_400 => format!("{:.1}時間", s as f64 / 3600.0),
        s => format!("{:.1}日", s as f64 / 86_400.0),
    }
}

/// The duration to one milestone.
pub fn milestone(
    f: &OutcomeFigures,
    m: Milestone,
) -> Option<&tsunagu_proto::v1::MilestoneDuration> {
    f.durations.iter().find(|d| d.milestone == m as i32)
}

/// Median and p90 to a milestone as text ("-" when none got there or suppressed).
pub fn milestone_text(f: &OutcomeFigures, m: Milestone) -> (String, String) {
    match milestone(f, m) {
        Some(d) if count_value(d.reached.as_ref()).is_some_and(|n| n > 0) => (
            duration_text(d.median_seconds),
            duration_text(d.p90_seconds),
        ),
        _ => ("-".to_owned(), "-".to_owned()),
    }
}

pub const MILESTONES: &[(Milestone, &str)] = &[
    (Milestone::Delivered, "受信確認"),
    (Milestone::Accepted, "受入"),
    (Milestone::FirstContact, "初回連絡"),
    (Milestone::Connected, "つながった"),
    (Milestone::Confirmed, "確認"),
];

pub const REASONS: &[(NotConnectedReason, &str)] = &[
    (NotConnectedReason::CouldNotContact, "連絡がとれない"),
    (NotConnectedReason::DeclinedByFamily, "家族が希望せず"),
    (NotConnectedReason::NotEligible, "対象外"),
    (NotConnectedReason::NoCapacity, "受入枠なし"),
    (NotConnectedReason::Moved, "転居"),
    (NotConnectedReason::ReferredElsewhere, "他機関へ紹介"),
];

pub const TIMERS: &[(TimerKind, &str)] = &[
    (TimerKind::DeliverBy, "受信期限"),
    (TimerKind::RespondBy, "回答期限"),
    (TimerKind::ConnectBy, "つなぎ期限"),
    (TimerKind::ConfirmBy, "確認期限"),
];

/// The count of one not-connected reason.
pub fn reason_count(f: &OutcomeFigures, reason: NotConnectedReason) -> Option<&Count> {
    f.connection
        .as_ref()?
        .not_connected_by_reason
        .iter()
        .find(|r| r.reason == reason as i32)?
        .count
        .as_ref()
}

/// Referrals overdue on one timer, over every age; `None` when any part is suppressed.
pub fn overdue_total(f: &OutcomeFigures, timer: TimerKind) -> String {
    let mut total = 0;
    for o in f.overdue.iter().filter(|o| o.timer == timer as i32) {
        match count_value(o.count.as_ref()) {
            Some(n) => total += n,
            None => return MARKER.to_owned(),
        }
    }
    total.to_string()
}

/// A column of the CSV and the report: its header and how a cell is read from the figures.
pub struct Column {
    pub header: &'static str,
    pub cell: fn(&OutcomeFigures) -> String,
}

macro_rules! count_column {
    ($header:literal, $($path:ident).+) => {
        Column {
            header: $header,
            cell: |f| count_text(count_column!(@get f, $($path).+)),
        }
    };
    (@get $f:ident, $first:ident) => { $f.$first.as_ref() };
    (@get $f:ident, $first:ident . $second:ident) => {
        $f.$first.as_ref().and_then(|x| x.$second.as_ref())
    };
}

/// Every column of the CSV export, in order.
pub fn csv_columns() -> Vec<Column> {
    vec![
        count_column!("紹介件数", referrals),
        count_column!("受信確認済", delivery.delivered),
        count_column!("未受信確認", delivery.sent),
        count_column!("依頼中", response.requested),
        count_column!("受入", response.accepted),
        count_column!("対応中", response.in_progress),
        count_column!("対応完了", response.completed),
        count_column!("辞退", response.declined),
        count_column!("不成立", response.failed),
        count_column!("取消", response.cancelled),
        count_column!("未更新", connection.not_updated),
        count_column!("連絡試行中", connection.contact_attempted),
        count_column!("つながった", connection.connected),
        count_column!("つながらなかった", connection.not_connected),
        Column {
            header: "うち連絡がとれない",
            cell: |f| count_text(reason_count(f, NotConnectedReason::CouldNotContact)),
        },
        Column {
            header: "うち家族が希望せず",
            cell: |f| count_text(reason_count(f, NotConnectedReason::DeclinedByFamily)),
        },
        Column {
            header: "うち対象外",
            cell: |f| count_text(reason_count(f, NotConnectedReason::NotEligible)),
        },
        Column {
            header: "うち受入枠なし",
            cell: |f| count_text(reason_count(f, NotConnectedReason::NoCapacity)),
        },
        Column {
            header: "うち転居",
            cell: |f| count_text(reason_count(f, NotConnectedReason::Moved)),
        },
        Column {
            header: "うち他機関へ紹介",
            cell: |f| count_text(reason_count(f, NotConnectedReason::ReferredElsewhere)),
        },
        count_column!("確認済", connection.confirmed),
        count_column!("確認待ち", connection.awaiting_confirmation),
        count_column!("家族単位の経過", journeys.journeys),
        count_column!("経過:つながった", journeys.connected),
        count_column!("経過:つながらなかった", journeys.not_connected),
        count_column!("経過:継続中", journeys.open),
        count_column!("経過:範囲外へ紹介", journeys.left_scope),
        Column {
            header: "つながるまで中央値(時間)",
            cell: |f| hours(f, Milestone::Connected, false),
        },
        Column {
            header: "つながるまで90%(時間)",
            cell: |f| hours(f, Milestone::Connected, true),
        },
        Column {
            header: "受入まで中央値(時間)",
            cell: |f| hours(f, Milestone::Accepted, false),
        },
        Column {
            header: "初回連絡まで中央値(時間)",
            cell: |f| hours(f, Milestone::FirstContact, false),
        },
        Column {
            header: "確認まで中央値(時間)",
            cell: |f| hours(f, Milestone::Confirmed, false),
        },
        Column {
            header: "期限超過:受信",
            cell: |f| overdue_total(f, TimerKind::DeliverBy),
        },
        Column {
            header: "期限超過:回答",
            cell: |f| overdue_total(f, TimerKind::RespondBy),
        },
        Column {
            header: "期限超過:つなぎ",
            cell: |f| overdue_total(f, TimerKind::ConnectBy),
        },
        Column {
            header: "期限超過:確認",
            cell: |f| overdue_total(f, TimerKind::ConfirmBy),
        },
    ]
}

/// Hours to a milestone with one decimal (median, or p90), empty when unknown.
fn hours(f: &OutcomeFigures, m: Milestone, p90: bool) -> String {
    match milestone(f, m) {
        Some(d) if count_value(d.reached.as_ref()).is_some_and(|n| n > 0) => {
            let s = if p90 { d.p90_seconds } else { d.median_seconds };
            format!("{:.1}", s as f64 / 3600.0)
        }
        Some(d) if d.reached.is_some_and(|c| c.suppressed) => MARKER.to_owned(),
        _ => String::new(),
    }
}

/// The dimensions of an answer, from its first group (none: totals only).
pub fn dimensions_of(answer: &GetOutcomesResponse) -> Vec<OutcomeDimension> {
    answer
        .groups
        .first()
        .map(|g| {
            g.key
                .iter()
                .map(|k| OutcomeDimension::try_from(k.dimension).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}

/// The rows of an answer: each group with its labels, then the totals ("合計").
pub fn rows(
    answer: &GetOutcomesResponse,
    dimensions: &[OutcomeDimension],
) -> Vec<(Vec<String>, OutcomeFigures)> {
    let mut rows: Vec<(Vec<String>, OutcomeFigures)> = answer
        .groups
        .iter()
        .map(|g: &OutcomeGroup| {
            (
                g.key
                    .iter()
                    .map(|k| {
                        value_label(
                            OutcomeDimension::try_from(k.dimension).unwrap_or_default(),
                            &k.value,
                        )
                    })
                    .collect(),
                g.figures.clone().unwrap_or_default(),
            )
        })
        .collect();
    let mut total_key = vec![String::new(); dimensions.len().max(1)];
    total_key[0] = "合計".to_owned();
    rows.push((total_key, answer.totals.clone().unwrap_or_default()));
    rows
}

/// One CSV field, quoted when it holds a separator, a quote or a line break; a leading `=`, `+`,
/// `-` or `@` is prefixed with `'` so that Excel never runs it as a formula.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) && text.parse::<f64>().is_err() {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The answer as CSV for Excel: UTF-8 with a byte-order mark (so Japanese text opens right),
/// CRLF line ends, one row per group and the totals last.
pub fn csv(answer: &GetOutcomesResponse, dimensions: &[OutcomeDimension]) -> Vec<u8> {
    let columns = csv_columns();
    let mut out = String::from("\u{feff}");
    let mut header = key_headers(dimensions);
    header.extend(columns.iter().map(|c| c.header.to_owned()));
    out.push_str(
        &header
            .iter()
            .map(|h| csv_field(h))
            .collect::<Vec<_>>()
            .join(","),
    );
    out.push_str("\r\n");
    for (key, figures) in rows(answer, dimensions) {
        let mut cells = key;
        cells.extend(columns.iter().map(|c| (c.cell)(&figures)));
        out.push_str(
            &cells
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// The headline columns, after the group's own.
pub const HEADLINE_HEADERS: [&str; 10] = [
    "紹介",
    "受入",
    "辞退",
    "つながった",
    "つながらず",
    "確認済",
    "家族単位",
    "うちつながった",
    "つながるまで(中央値)",
    "期限超過",
];

/// The headline cells of some figures, in the order of [`HEADLINE_HEADERS`].
pub fn headline_cells(f: &OutcomeFigures) -> Vec<String> {
    let journeys = f.journeys.unwrap_or_default();
    let overdue = TIMERS
        .iter()
        .map(|(t, _)| overdue_total(f, *t))
        .try_fold(0u64, |sum, cell| cell.parse::<u64>().ok().map(|n| sum + n))
        .map_or_else(|| MARKER.to_owned(), |n| n.to_string());
    let response = f.response.unwrap_or_default();
    let connection = f.connection.clone().unwrap_or_default();
    vec![
        count_text(f.referrals.as_ref()),
        count_text(response.accepted.as_ref()),
        count_text(response.declined.as_ref()),
        count_text(connection.connected.as_ref()),
        count_text(connection.not_connected.as_ref()),
        count_text(connection.confirmed.as_ref()),
        count_text(journeys.journeys.as_ref()),
        format!(
            "{} ({})",
            count_text(journeys.connected.as_ref()),
            rate_text(journeys.connected.as_ref(), journeys.journeys.as_ref())
        ),
        milestone_text(f, Milestone::Connected).0,
        overdue,
    ]
}

/// The headers of the group columns ("区分" for totals only).
pub fn key_headers(dimensions: &[OutcomeDimension]) -> Vec<String> {
    if dimensions.is_empty() {
        vec!["区分".to_owned()]
    } else {
        dimensions
            .iter()
            .map(|d| dimension_header(*d).to_owned())
            .collect()
    }
}

/// The terminal table: the headline columns per group, totals last.
pub fn table(answer: &GetOutcomesResponse, dimensions: &[OutcomeDimension]) -> Table {
    let mut headers = key_headers(dimensions);
    headers.extend(HEADLINE_HEADERS.map(str::to_owned));
    let mut table = Table::new(headers);
    for (key, f) in rows(answer, dimensions) {
        let mut cells = key;
        cells.extend(headline_cells(&f));
        table.row(cells);
    }
    table
}

/// The answer as JSON: counts are numbers, or null when suppressed.
#[derive(Debug, Serialize)]
pub struct OutcomesView {
    pub from: String,
    pub to: String,
    pub municipalities: Vec<String>,
    pub suppress_below: u32,
    pub computed_at: Option<String>,
    pub group_by: Vec<&'static str>,
    pub groups: Vec<GroupView>,
    pub totals: FiguresView,
}

#[derive(Debug, Serialize)]
pub struct GroupView {
    pub key: std::collections::BTreeMap<&'static str, String>,
    pub figures: FiguresView,
}

#[derive(Debug, Serialize)]
pub struct FiguresView {
    pub referrals: Option<u64>,
    pub delivery: std::collections::BTreeMap<&'static str, Option<u64>>,
    pub response: std::collections::BTreeMap<&'static str, Option<u64>>,
    pub connection: std::collections::BTreeMap<&'static str, Option<u64>>,
    pub not_connected_by_reason: std::collections::BTreeMap<&'static str, Option<u64>>,
    pub durations: Vec<DurationView>,
    pub overdue: Vec<OverdueView>,
    pub declines: std::collections::BTreeMap<String, Option<u64>>,
    pub failures: std::collections::BTreeMap<String, Option<u64>>,
    pub cancellations: std::collections::BTreeMap<String, Option<u64>>,
    pub escalations: Vec<EscalationView>,
    pub journeys: std::collections::BTreeMap<&'static str, Option<u64>>,
}

#[derive(Debug, Serialize)]
pub struct DurationView {
    pub milestone: &'static str,
    pub reached: Option<u64>,
    pub median_seconds: Option<i64>,
    pub p90_seconds: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct OverdueView {
    pub timer: &'static str,
    pub age: &'static str,
    pub count: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct EscalationView {
    pub timer: &'static str,
    pub tier: &'static str,
    pub count: Option<u64>,
}

fn timer_code(value: i32) -> &'static str {
    TimerKind::try_from(value).map_or("unspecified", Coded::code)
}

impl From<&OutcomeFigures> for FiguresView {
    fn from(f: &OutcomeFigures) -> Self {
        let v = |c: &Option<Count>| count_value(c.as_ref());
        let d = f.delivery.unwrap_or_default();
        let r = f.response.unwrap_or_default();
        let c = f.connection.clone().unwrap_or_default();
        let j = f.journeys.unwrap_or_default();
        let codes = |list: &[tsunagu_proto::v1::CodeCount]| {
            list.iter().map(|x| (x.code.clone(), v(&x.count))).collect()
        };
        FiguresView {
            referrals: v(&f.referrals),
            delivery: [("sent", v(&d.sent)), ("delivered", v(&d.delivered))].into(),
            response: [
                ("requested", v(&r.requested)),
                ("accepted", v(&r.accepted)),
                ("declined", v(&r.declined)),
                ("in_progress", v(&r.in_progress)),
                ("completed", v(&r.completed)),
                ("failed", v(&r.failed)),
                ("cancelled", v(&r.cancelled)),
            ]
            .into(),
            connection: [
                ("not_updated", v(&c.not_updated)),
                ("contact_attempted", v(&c.contact_attempted)),
                ("connected", v(&c.connected)),
                ("not_connected", v(&c.not_connected)),
                ("confirmed", v(&c.confirmed)),
                ("awaiting_confirmation", v(&c.awaiting_confirmation)),
            ]
            .into(),
            not_connected_by_reason: REASONS
                .iter()
                .map(|(reason, _)| (reason.code(), count_value(reason_count(f, *reason))))
                .collect(),
            durations: f
                .durations
                .iter()
                .map(|d| {
                    let shown = count_value(d.reached.as_ref()).is_some_and(|n| n > 0);
                    DurationView {
                        milestone: match Milestone::try_from(d.milestone) {
                            Ok(Milestone::Delivered) => "delivered",
                            Ok(Milestone::Accepted) => "accepted",
                            Ok(Milestone::FirstContact) => "first_contact",
                            Ok(Milestone::Connected) => "connected",
                            Ok(Milestone::Confirmed) => "confirmed",
                            _ => "unspecified",
                        },
                        reached: v(&d.reached),
                        median_seconds: shown.then_some(d.median_seconds),
                        p90_seconds: shown.then_some(d.p90_seconds),
                    }
                })
                .collect(),
            overdue: f
                .overdue
                .iter()
                .map(|o| OverdueView {
                    timer: timer_code(o.timer),
                    age: match o.age {
                        1 => "under_1_day",
                        2 => "1_to_7_days",
                        3 => "7_to_30_days",
                        4 => "30_days_or_more",
                        _ => "unspecified",
                    },
                    count: v(&o.count),
                })
                .collect(),
            declines: codes(&f.declines),
            failures: codes(&f.failures),
            cancellations: codes(&f.cancellations),
            escalations: f
                .escalations
                .iter()
                .map(|e| EscalationView {
                    timer: timer_code(e.timer),
                    tier: match e.tier {
                        1 => "responsible",
                        2 => "coordinator",
                        _ => "unspecified",
                    },
                    count: v(&e.count),
                })
                .collect(),
            journeys: [
                ("journeys", v(&j.journeys)),
                ("connected", v(&j.connected)),
                ("not_connected", v(&j.not_connected)),
                ("open", v(&j.open)),
                ("left_scope", v(&j.left_scope)),
            ]
            .into(),
        }
    }
}

impl OutcomesView {
    pub fn new(answer: &GetOutcomesResponse, dimensions: &[OutcomeDimension]) -> Self {
        OutcomesView {
            from: answer.from.clone(),
            to: answer.to.clone(),
            municipalities: answer.municipalities.clone(),
            suppress_below: answer.suppress_below,
            computed_at: answer
                .computed_at
                .as_ref()
                .and_then(crate::render::format_rfc3339),
            group_by: dimensions.iter().map(|d| dimension_code(*d)).collect(),
            groups: answer
                .groups
                .iter()
                .map(|g| GroupView {
                    key: g
                        .key
                        .iter()
                        .map(|k| {
                            (
                                dimension_code(
                                    OutcomeDimension::try_from(k.dimension).unwrap_or_default(),
                                ),
                                k.value.clone(),
                            )
                        })
                        .collect(),
                    figures: FiguresView::from(&g.figures.clone().unwrap_or_default()),
                })
                .collect(),
            totals: FiguresView::from(&answer.totals.clone().unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsunagu_proto::v1::{GroupKey, JourneyCounts};

    fn c(value: u64) -> Option<Count> {
        Some(Count {
            value,
            suppressed: false,
        })
    }

    fn answer() -> GetOutcomesResponse {
        let figures = OutcomeFigures {
            referrals: c(12),
            journeys: Some(JourneyCounts {
                journeys: c(10),
                connected: Some(Count {
                    value: 0,
                    suppressed: true,
                }),
                ..JourneyCounts::default()
            }),
            ..OutcomeFigures::default()
        };
        GetOutcomesResponse {
            groups: vec![OutcomeGroup {
                key: vec![GroupKey {
                    dimension: OutcomeDimension::Purpose as i32,
                    value: "postnatal_care".into(),
                }],
                figures: Some(figures.clone()),
            }],
            totals: Some(figures),
            ..GetOutcomesResponse::default()
        }
    }

    #[test]
    fn the_csv_starts_with_a_bom_ends_lines_with_crlf_and_marks_suppressed_cells() {
        let bytes = csv(&answer(), &[OutcomeDimension::Purpose]);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with('\u{feff}'));
        let lines: Vec<&str> = text.trim_start_matches('\u{feff}').split("\r\n").collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("目的,紹介件数,"));
        assert!(lines[1].starts_with("産後ケア,12,"));
        assert!(lines[2].starts_with("合計,12,"));
        let header: Vec<&str> = lines[0].split(',').collect();
        let at = header.iter().position(|h| *h == "経過:つながった").unwrap();
        assert_eq!(lines[1].split(',').nth(at), Some(MARKER));
        assert!(!text.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn a_csv_field_that_looks_like_a_formula_is_defused() {
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("-3"), "-3");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn groupings_parse_with_hyphens_or_underscores() {
        assert_eq!(
            parse_dimension("recipient-kind"),
            Ok(OutcomeDimension::RecipientKind)
        );
        assert_eq!(parse_dimension("month"), Ok(OutcomeDimension::Month));
        assert!(
            parse_dimension("colour")
                .unwrap_err()
                .contains("recipient_kind")
        );
    }

    #[test]
    fn durations_read_in_minutes_hours_or_days() {
        assert_eq!(duration_text(600), "10分");
        assert_eq!(duration_text(5400), "1.5時間");
        assert_eq!(duration_text(3 * 86_400), "3.0日");
    }
}
