//! The annual outcomes report for the 代表者会議: the same figures by month and by agency kind, as
//! Markdown and as one self-contained print-ready A4 HTML page (inline CSS only, a
//! Content-Security-Policy that loads nothing, every value escaped), in four pages: summary, by
//! month, by agency kind, reasons and waiting times. Small counts are suppressed and the page
//! says so.

use std::fmt::Write as _;

use tsunagu_proto::v1::{
    CodeCount, GetOutcomesResponse, OutcomeDimension, OutcomeFigures, TimerKind,
};

use super::{
    HEADLINE_HEADERS, MARKER, MILESTONES, REASONS, TIMERS, count_text, count_value, duration_text,
    headline_cells, milestone, rate_text, reason_count, rows,
};
use crate::pack::text::escape_html as e;

/// The default threshold below which the report hides a count.
pub const DEFAULT_SUPPRESS_BELOW: u32 = 5;

/// What the report is made of: the year's figures grouped by month and by recipient kind.
#[derive(Debug, Clone)]
pub struct ReportInput {
    /// For example "2026年（1月〜12月）".
    pub period: String,
    pub from: String,
    pub to: String,
    /// Who made it, for example the agency id.
    pub prepared_by: String,
    /// When, in Japan time.
    pub prepared_at: String,
    pub by_month: GetOutcomesResponse,
    pub by_kind: GetOutcomesResponse,
}

impl ReportInput {
    pub fn title(&self) -> String {
        format!("つなぐ 成果報告 {}", self.period)
    }

    fn municipalities(&self) -> String {
        if self.by_month.municipalities.is_empty() {
            format!("{} が送付・受理した紹介", self.prepared_by)
        } else {
            self.by_month.municipalities.join("、")
        }
    }

    fn totals(&self) -> OutcomeFigures {
        self.by_month.totals.clone().unwrap_or_default()
    }

    /// The sentence about suppression every page carries.
    pub fn suppression_note(&self) -> String {
        match self.by_month.suppress_below {
            0 => "秘匿処理なし（内部資料として扱ってください）。".to_owned(),
            n => format!(
                "個人の特定を防ぐため、1〜{}件のセルは「{MARKER}」で秘匿しています（{n}件未満を秘匿）。",
                n - 1
            ),
        }
    }
}

const PRIVACY: &str = "本報告は紹介の経路情報（状態・日時・機関・目的）のみから集計しています。\
     封緘された本文・記録は読んでおらず、家族を特定する情報は含みません。";

/// The page's style sheet: A4, 15 mm margins, a page break after every section but the last.
const STYLE: &str = r#"
@page { size: A4; margin: 15mm; }
html { font-family: "Noto Sans CJK JP", "Noto Sans JP", "IPAexGothic", "IPAGothic", "Hiragino Kaku Gothic ProN", "Hiragino Sans", "Yu Gothic", "Meiryo", sans-serif; font-size: 9pt; line-height: 1.45; color: #000; background: #fff; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0; }
section.page-break { break-after: page; page-break-after: always; }
h1 { font-size: 15pt; margin: 0 0 3mm; }
h2 { font-size: 12pt; margin: 0 0 2mm; padding: 0.5mm 2mm; background: #e8eef5; border-left: 2mm solid #2b4c7e; }
h3 { font-size: 10pt; margin: 3mm 0 1mm; border-bottom: 0.3mm solid #2b4c7e; }
p { margin: 0.8mm 0; }
table { border-collapse: collapse; width: 100%; margin: 0.5mm 0 2mm; }
thead { display: table-header-group; }
tr { break-inside: avoid; page-break-inside: avoid; }
th, td { border: 0.25mm solid #888; padding: 0.4mm 1.2mm; text-align: left; vertical-align: top; }
th { background: #f0f0f0; white-space: nowrap; }
td.num { text-align: right; white-space: nowrap; }
tr.total td { font-weight: bold; background: #f7f7f7; }
.note { border: 0.3mm solid #2b4c7e; padding: 1mm 2mm; margin: 2mm 0; font-size: 8.5pt; }
.legend { color: #444; font-size: 7.5pt; }
"#;

/// The report as one HTML document.
pub fn html(input: &ReportInput) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"ja\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        e(&input.title())
    );
    let totals = input.totals();

    // Page 1: summary.
    out.push_str("<section class=\"page-break\">\n");
    let _ = writeln!(out, "<h1>{}</h1>", e(&input.title()));
    out.push_str("<table>\n");
    for (key, value) in [
        ("対象", input.municipalities()),
        ("期間（送付日）", format!("{} 〜 {}", input.from, input.to)),
        (
            "作成",
            format!("{}（{}）", input.prepared_by, input.prepared_at),
        ),
    ] {
        let _ = writeln!(out, "<tr><th>{key}</th><td>{}</td></tr>", e(&value));
    }
    out.push_str("</table>\n");
    let _ = writeln!(
        out,
        "<p class=\"note\">{}<br>{}</p>",
        e(&input.suppression_note()),
        e(PRIVACY)
    );
    out.push_str(
        "<h2>概要</h2>\n<table>\n<thead><tr><th>指標</th><th>値</th></tr></thead>\n<tbody>\n",
    );
    for (name, value) in headline(&totals) {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td></tr>",
            e(name),
            e(&value)
        );
    }
    out.push_str("</tbody>\n</table>\n");
    out.push_str(
        "<p class=\"legend\">家族単位: 「他機関へ紹介」でつながった一連の紹介を一つの家族の経過として数え、\
         最後の紹介でつながった場合を「つながった」とします。</p>\n</section>\n",
    );

    // Pages 2 and 3: by month, by agency kind.
    for (heading, answer, dimension) in [
        ("月別", &input.by_month, OutcomeDimension::Month),
        (
            "送付先の機関種別",
            &input.by_kind,
            OutcomeDimension::RecipientKind,
        ),
    ] {
        out.push_str("<section class=\"page-break\">\n");
        let _ = writeln!(out, "<h2>{heading}</h2>");
        let _ = writeln!(
            out,
            "<p class=\"legend\">{}</p>",
            e(&input.suppression_note())
        );
        grouped_table(&mut out, answer, dimension);
        out.push_str("</section>\n");
    }

    // Page 4: reasons and waiting times.
    out.push_str("<section>\n<h2>理由と所要時間</h2>\n");
    let _ = writeln!(
        out,
        "<p class=\"legend\">{}</p>",
        e(&input.suppression_note())
    );
    out.push_str("<h3>送付からの所要時間（到達した紹介について）</h3>\n<table>\n<thead><tr><th>段階</th><th>件数</th><th>中央値</th><th>90%</th></tr></thead>\n<tbody>\n");
    for (m, name) in MILESTONES {
        let (reached, median, p90) = duration_cells(&totals, *m);
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            e(name),
            e(&reached),
            e(&median),
            e(&p90)
        );
    }
    out.push_str("</tbody>\n</table>\n");
    out.push_str("<h3>つながらなかった理由</h3>\n");
    count_table(
        &mut out,
        "理由",
        REASONS
            .iter()
            .map(|(r, name)| ((*name).to_owned(), count_text(reason_count(&totals, *r))))
            .collect(),
    );
    for (heading, list) in [
        ("辞退の理由", &totals.declines),
        ("不成立の理由", &totals.failures),
        ("取消の理由", &totals.cancellations),
    ] {
        let _ = writeln!(out, "<h3>{heading}</h3>");
        count_table(&mut out, "理由コード", code_rows(list));
    }
    out.push_str("<h3>期限超過（未対応のまま期限を過ぎた紹介）</h3>\n");
    count_table(&mut out, "期限", overdue_rows(&totals));
    out.push_str("</section>\n</body>\n</html>\n");
    out
}

/// The headline figures of the summary.
fn headline(f: &OutcomeFigures) -> Vec<(&'static str, String)> {
    let r = f.response.unwrap_or_default();
    let c = f.connection.clone().unwrap_or_default();
    let j = f.journeys.unwrap_or_default();
    let (median, p90) = super::milestone_text(f, tsunagu_proto::v1::Milestone::Connected);
    vec![
        ("紹介件数", count_text(f.referrals.as_ref())),
        (
            "受入",
            format!(
                "{}（{}）",
                count_text(r.accepted.as_ref()),
                rate_text(r.accepted.as_ref(), f.referrals.as_ref())
            ),
        ),
        ("辞退", count_text(r.declined.as_ref())),
        (
            "つながった（紹介単位）",
            format!(
                "{}（{}）",
                count_text(c.connected.as_ref()),
                rate_text(c.connected.as_ref(), f.referrals.as_ref())
            ),
        ),
        (
            "つながらなかった（紹介単位）",
            count_text(c.not_connected.as_ref()),
        ),
        ("家族単位の経過", count_text(j.journeys.as_ref())),
        (
            "うちつながった",
            format!(
                "{}（{}）",
                count_text(j.connected.as_ref()),
                rate_text(j.connected.as_ref(), j.journeys.as_ref())
            ),
        ),
        ("確認済", count_text(c.confirmed.as_ref())),
        ("つながるまで 中央値 / 90%", format!("{median} / {p90}")),
    ]
}

fn duration_cells(f: &OutcomeFigures, m: tsunagu_proto::v1::Milestone) -> (String, String, String) {
    match milestone(f, m) {
        Some(d) => {
            let reached = count_text(d.reached.as_ref());
            if count_value(d.reached.as_ref()).is_some_and(|n| n > 0) {
                (
                    reached,
                    duration_text(d.median_seconds),
                    duration_text(d.p90_seconds),
                )
            } else {
                (reached, "-".to_owned(), "-".to_owned())
            }
        }
        None => ("0".to_owned(), "-".to_owned(), "-".to_owned()),
    }
}

fn code_rows(list: &[CodeCount]) -> Vec<(String, String)> {
    list.iter()
        .map(|c| (c.code.clone(), count_text(c.count.as_ref())))
        .collect()
}

fn overdue_rows(f: &OutcomeFigures) -> Vec<(String, String)> {
    TIMERS
        .iter()
        .map(|(t, name): &(TimerKind, &str)| ((*name).to_owned(), super::overdue_total(f, *t)))
        .collect()
}

/// A two-column table of counts ("なし" when empty).
fn count_table(out: &mut String, what: &str, rows: Vec<(String, String)>) {
    if rows.is_empty() {
        out.push_str("<p>なし</p>\n");
        return;
    }
    let _ = writeln!(
        out,
        "<table>\n<thead><tr><th>{}</th><th>件数</th></tr></thead>\n<tbody>",
        e(what)
    );
    for (name, value) in rows {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td></tr>",
            e(&name),
            e(&value)
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn grouped_table(out: &mut String, answer: &GetOutcomesResponse, dimension: OutcomeDimension) {
    let dimensions = [dimension];
    out.push_str("<table>\n<thead><tr>");
    let _ = write!(out, "<th>{}</th>", e(super::dimension_header(dimension)));
    for h in HEADLINE_HEADERS {
        let _ = write!(out, "<th>{}</th>", e(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    let all = rows(answer, &dimensions);
    let last = all.len().saturating_sub(1);
    for (i, (key, f)) in all.into_iter().enumerate() {
        let class = if i == last { " class=\"total\"" } else { "" };
        let _ = write!(out, "<tr{class}><td>{}</td>", e(&key.join(" ")));
        for cell in headline_cells(&f) {
            let _ = write!(out, "<td class=\"num\">{}</td>", e(&cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// The report as Markdown, with the same sections.
pub fn markdown(input: &ReportInput) -> String {
    let cell = |text: &str| text.replace('|', "\\|").replace(['\n', '\r'], " ");
    let mut out = String::new();
    let totals = input.totals();
    let _ = writeln!(out, "# {}\n", cell(&input.title()));
    let _ = writeln!(out, "- 対象: {}", cell(&input.municipalities()));
    let _ = writeln!(out, "- 期間（送付日）: {} 〜 {}", input.from, input.to);
    let _ = writeln!(
        out,
        "- 作成: {}（{}）\n",
        cell(&input.prepared_by),
        input.prepared_at
    );
    let _ = writeln!(out, "> {}\n> {}\n", input.suppression_note(), PRIVACY);
    out.push_str("## 概要\n\n| 指標 | 値 |\n| --- | ---: |\n");
    for (name, value) in headline(&totals) {
        let _ = writeln!(out, "| {name} | {} |", cell(&value));
    }
    for (heading, answer, dimension) in [
        ("月別", &input.by_month, OutcomeDimension::Month),
        (
            "送付先の機関種別",
            &input.by_kind,
            OutcomeDimension::RecipientKind,
        ),
    ] {
        let _ = writeln!(out, "\n## {heading}\n");
        let _ = write!(out, "| {} |", super::dimension_header(dimension));
        for h in HEADLINE_HEADERS {
            let _ = write!(out, " {h} |");
        }
        out.push_str("\n| --- |");
        for _ in HEADLINE_HEADERS {
            out.push_str(" ---: |");
        }
        out.push('\n');
        for (key, f) in rows(answer, &[dimension]) {
            let _ = write!(out, "| {} |", cell(&key.join(" ")));
            for c in headline_cells(&f) {
                let _ = write!(out, " {} |", cell(&c));
            }
            out.push('\n');
        }
    }
    out.push_str(
        "\n## 理由と所要時間\n\n| 段階 | 件数 | 中央値 | 90% |\n| --- | ---: | ---: | ---: |\n",
    );
    for (m, name) in MILESTONES {
        let (reached, median, p90) = duration_cells(&totals, *m);
        let _ = writeln!(out, "| {name} | {reached} | {median} | {p90} |");
    }
    out.push_str("\n| つながらなかった理由 | 件数 |\n| --- | ---: |\n");
    for (r, name) in REASONS {
        let _ = writeln!(
            out,
            "| {name} | {} |",
            count_text(reason_count(&totals, *r))
        );
    }
    for (heading, list) in [
        ("辞退の理由", &totals.declines),
        ("不成立の理由", &totals.failures),
        ("取消の理由", &totals.cancellations),
    ] {
        let _ = writeln!(out, "\n| {heading} | 件数 |\n| --- | ---: |");
        for (code, n) in code_rows(list) {
            let _ = writeln!(out, "| {} | {n} |", cell(&code));
        }
    }
    out.push_str("\n| 期限超過 | 件数 |\n| --- | ---: |\n");
    for (name, n) in overdue_rows(&totals) {
        let _ = writeln!(out, "| {name} | {n} |");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsunagu_proto::v1::{Count, GroupKey, OutcomeGroup};

    fn input() -> ReportInput {
        let f = OutcomeFigures {
            referrals: Some(Count {
                value: 7,
                suppressed: false,
            }),
            declines: vec![CodeCount {
                code: "<script>".into(),
                count: Some(Count {
                    value: 0,
                    suppressed: true,
                }),
            }],
            ..OutcomeFigures::default()
        };
        let answer = |d: OutcomeDimension, v: &str| GetOutcomesResponse {
            groups: vec![OutcomeGroup {
                key: vec![GroupKey {
                    dimension: d as i32,
                    value: v.into(),
                }],
                figures: Some(f.clone()),
            }],
            totals: Some(f.clone()),
            suppress_below: 5,
            municipalities: vec!["141178".into()],
            ..GetOutcomesResponse::default()
        };
        ReportInput {
            period: "2026年（1月〜12月）".into(),
            from: "2026-01-01".into(),
            to: "2026-12-31".into(),
            prepared_by: "aoba-kodomo".into(),
            prepared_at: "2026-12-06 09:00".into(),
            by_month: answer(OutcomeDimension::Month, "2026-04"),
            by_kind: answer(OutcomeDimension::RecipientKind, "hospital"),
        }
    }

    #[test]
    fn the_html_report_is_escaped_says_it_suppresses_and_loads_nothing() {
        let page = html(&input());
        assert!(page.contains("default-src 'none'"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("1〜4件のセルは「*」で秘匿"));
        assert!(page.contains("医療機関"));
        assert_eq!(page.matches("class=\"page-break\"").count(), 3);
    }

    #[test]
    fn the_markdown_report_has_the_same_sections() {
        let text = markdown(&input());
        for heading in [
            "## 概要",
            "## 月別",
            "## 送付先の機関種別",
            "## 理由と所要時間",
        ] {
            assert!(text.contains(heading), "{heading}");
        }
        assert!(text.contains("| 2026-04 | 7 |"), "{text}");
    }
}
