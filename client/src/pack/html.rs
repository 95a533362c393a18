//! The pack as one self-contained, print-ready HTML page: inline CSS only (no scripts, fonts,
//! images or links; a Content-Security-Policy forbids loading anything), A4 with 15 mm margins,
//! Japanese system fonts. The cover (summary and, for a 実務者会議, the 進行管理台帳) comes first;
//! every case starts on a new page and a case kept to its essentials fits on one. Every value
//! is escaped.

use std::fmt::Write as _;

use super::model::{ATTESTED, CaseView, NOTHING_RECORDED, PackView, TimelineEntry};
use super::opener::{Content, UNREADABLE};
use super::text::escape_html as e;
use super::{CONFIDENTIAL, HEADINGS, LEDGER_HEADING, SUMMARY_HEADING};
use crate::render::Coded;

/// The page's style sheet. Each section but the last breaks the page after it, so every case
/// starts on a page of its own; table headers repeat on every page a table runs over.
pub const STYLE: &str = r#"
@page { size: A4; margin: 15mm; @bottom-right { content: counter(page) " / " counter(pages); font-size: 7.5pt; color: #555; } }
html { font-family: "Noto Sans CJK JP", "Noto Sans JP", "IPAexGothic", "IPAGothic", "Hiragino Kaku Gothic ProN", "Hiragino Sans", "Yu Gothic", "Meiryo", sans-serif; font-size: 8.5pt; line-height: 1.4; color: #000; background: #fff; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0; }
section { break-inside: auto; }
section.page-break { break-after: page; page-break-after: always; }
h1 { font-size: 14pt; margin: 0 0 3mm; }
h2 { font-size: 11.5pt; margin: 0 0 2mm; padding: 0.5mm 2mm; background: #e8eef5; border-left: 2mm solid #2b4c7e; }
h3 { font-size: 9.5pt; margin: 2.5mm 0 1mm; border-bottom: 0.3mm solid #2b4c7e; break-after: avoid; page-break-after: avoid; }
h4 { font-size: 8.5pt; margin: 1.5mm 0 0.5mm; break-after: avoid; page-break-after: avoid; }
p { margin: 0.5mm 0; }
table { border-collapse: collapse; width: 100%; margin: 0.5mm 0 1mm; }
thead { display: table-header-group; }
tr { break-inside: avoid; page-break-inside: avoid; }
th, td { border: 0.25mm solid #888; padding: 0.3mm 1mm; vertical-align: top; text-align: left; overflow-wrap: anywhere; }
th { background: #f0f0f0; font-weight: bold; white-space: nowrap; }
td.num, th.num { text-align: right; }
td.id { white-space: nowrap; }
table.facts th { width: 22%; }
table.referrals { font-size: 7.5pt; }
table.ledger { font-size: 7.5pt; }
ul { margin: 0.5mm 0; padding-left: 5mm; }
li { margin: 0.2mm 0; }
.confidential { border: 0.3mm solid #a00; color: #a00; padding: 1mm 2mm; margin: 2mm 0; font-size: 8pt; }
.case-head { font-size: 7.5pt; color: #a00; text-align: right; margin-bottom: 1mm; }
.sealed { white-space: pre-wrap; margin: 0.3mm 0 0.8mm 3mm; padding-left: 2mm; border-left: 0.6mm solid #999; }
.unreadable { color: #555; font-style: normal; }
.none { color: #555; }
.attested { color: #245; font-size: 7pt; }
.overdue { color: #a00; font-weight: bold; }
.legend { color: #555; font-size: 7pt; }
.label { font-weight: bold; }
"#;

/// Renders the pack as one HTML document.
pub fn render(pack: &PackView) -> String {
    let mut out = String::with_capacity(8192 + pack.cases.len() * 8192);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"ja\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{}（{}）</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        e(&pack.title()),
        e(&pack.held_on)
    );
    cover(&mut out, pack);
    for (i, case) in pack.cases.iter().enumerate() {
        case_section(&mut out, pack, case, i + 1 == pack.cases.len());
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// A sealed field as a block: the opened text (line breaks kept), or the marker.
fn content_block(content: &Content) -> String {
    match content {
        Content::Opened(text) if !text.trim().is_empty() => {
            format!("<div class=\"sealed\">{}</div>", e(text))
        }
        Content::Opened(_) | Content::Absent => {
            format!("<p class=\"none\">{NOTHING_RECORDED}</p>")
        }
        Content::Unreadable => format!("<p class=\"unreadable\">{UNREADABLE}</p>"),
    }
}

/// A sealed field inline.
fn content_inline(content: &Content) -> String {
    match content {
        Content::Opened(text) if !text.trim().is_empty() => e(text),
        Content::Opened(_) | Content::Absent => {
            format!("<span class=\"none\">{NOTHING_RECORDED}</span>")
        }
        Content::Unreadable => format!("<span class=\"unreadable\">{UNREADABLE}</span>"),
    }
}

/// A two-column table of facts (keys are this module's own words; values already escaped).
fn facts(out: &mut String, rows: &[(&str, String)]) {
    out.push_str("<table class=\"facts\">\n");
    for (key, value) in rows {
        let _ = writeln!(out, "<tr><th>{key}</th><td>{value}</td></tr>");
    }
    out.push_str("</table>\n");
}

fn cover(out: &mut String, pack: &PackView) {
    let class = if pack.cases.is_empty() {
        "cover"
    } else {
        "cover page-break"
    };
    let _ = writeln!(out, "<section class=\"{class}\">");
    let _ = writeln!(out, "<h1>{}</h1>", e(&pack.title()));
    let mut rows = vec![
        ("市区町村", e(&pack.municipality)),
        ("会議", e(pack.kind.japanese())),
        ("開催日", e(&pack.held_on)),
        ("会議ID", e(&pack.meeting_id)),
        ("招集", e(&pack.scheduled_by)),
        (
            "資料作成",
            format!(
                "{}（日本時間。期限超過はこの時点で判定）",
                e(&pack.generated_at)
            ),
        ),
    ];
    if let Some(reader) = &pack.reader {
        rows.push(("開封した機関", e(reader)));
    }
    facts(out, &rows);
    let _ = writeln!(out, "<p class=\"confidential\">{CONFIDENTIAL}</p>");

    let s = &pack.summary;
    let _ = writeln!(out, "<h2>{SUMMARY_HEADING}</h2>");
    out.push_str("<table class=\"summary\">\n<thead><tr><th>項目</th><th class=\"num\">件数</th></tr></thead>\n<tbody>\n");
    for (key, value) in [
        ("対象ケース", s.cases),
        ("うち要保護児童", s.requires_protection),
        ("うち要支援児童", s.requires_support),
        ("うち特定妊婦", s.specific_expectant_mothers),
        ("期限超過の引継ぎ", s.overdue_handoffs),
        ("つながらなかった引継ぎ", s.not_connected_handoffs),
        ("見直し漏れ", s.reviews_past_due),
        ("要判断ケース", s.cases_needing_decision),
    ] {
        let _ = writeln!(out, "<tr><td>{key}</td><td class=\"num\">{value}</td></tr>");
    }
    out.push_str("</tbody>\n</table>\n");
    if !s.needing_decision.is_empty() {
        out.push_str("<h4>要判断ケース</h4>\n<ul>\n");
        for (number, short, why) in &s.needing_decision {
            let _ = writeln!(out, "<li>{number}　{}：{}</li>", e(short), e(why));
        }
        out.push_str("</ul>\n");
    }
    if pack.unreadable > 0 {
        let _ = writeln!(
            out,
            "<p>この機関の鍵で開封できなかった封緘項目: {} 件（<span class=\"unreadable\">{UNREADABLE}</span> と表示）</p>",
            pack.unreadable
        );
    }
    if pack.cases.is_empty() {
        out.push_str("<p>議題のケースはありません。</p>\n");
    }

    if pack.shows_ledger() {
        let _ = writeln!(out, "<h2>{LEDGER_HEADING}</h2>");
        out.push_str(
            "<table class=\"ledger\">\n<thead><tr><th class=\"num\">No.</th><th>ケース</th>\
             <th>種別</th><th>登録日</th><th>主担当機関</th><th>前回見直し</th><th>次回見直し</th>\
             <th class=\"num\">未完了の紹介</th><th class=\"num\">期限超過</th><th>要判断</th></tr></thead>\n<tbody>\n",
        );
        for case in &pack.cases {
            let overdue = if case.overdue_handoffs > 0 {
                format!("<span class=\"overdue\">{}</span>", case.overdue_handoffs)
            } else {
                "0".to_owned()
            };
            let needs = if case.triggers.is_empty() {
                "—".to_owned()
            } else {
                format!(
                    "<span class=\"overdue\">要</span>（{}）",
                    e(&case.triggers.join("、"))
                )
            };
            let _ = writeln!(
                out,
                "<tr><td class=\"num\">{}</td><td class=\"id\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td class=\"num\">{}</td><td class=\"num\">{overdue}</td><td>{needs}</td></tr>",
                case.number,
                e(&case.short_id),
                e(&case.category),
                e(&case.registration.registered_on),
                e(&case.registration.lead_agency),
                e(&case.registration.last_reviewed_on),
                e(&case.registration.next_review_on),
                case.open_referrals,
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }
    out.push_str("</section>\n");
}

fn timeline_entry(out: &mut String, entry: &TimelineEntry) {
    let attested = if entry.attested {
        format!("<span class=\"attested\">{ATTESTED}</span>")
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "<li>{}　<span class=\"label\">{}</span>{attested}　{}",
        e(&entry.at),
        e(&entry.actor),
        e(&entry.what)
    );
    for (label, content) in &entry.contents {
        let _ = write!(
            out,
            "<br><span class=\"label\">{label}:</span>{}",
            content_block(content)
        );
    }
    out.push_str("</li>\n");
}

fn case_section(out: &mut String, pack: &PackView, case: &CaseView, last: bool) {
    let [situation, progress, policy, roles, lead, plan] = HEADINGS;
    let r = &case.registration;
    let class = if last { "case" } else { "case page-break" };
    let _ = writeln!(
        out,
        "<section class=\"{class}\" id=\"case-{}\">",
        case.number
    );
    let _ = writeln!(
        out,
        "<p class=\"case-head\">取扱注意　{}　{}　{}</p>",
        e(pack.kind.japanese()),
        e(&pack.held_on),
        e(&pack.municipality)
    );
    let _ = writeln!(
        out,
        "<h2>ケース {}/{}　{}（{}）</h2>",
        case.number,
        pack.cases.len(),
        e(&case.short_id),
        e(&case.category)
    );

    let _ = writeln!(out, "<h3>{situation}</h3>");
    let triggers = if case.triggers.is_empty() {
        "なし".to_owned()
    } else {
        format!(
            "<span class=\"overdue\">{}</span>",
            e(&case.triggers.join("、"))
        )
    };
    facts(
        out,
        &[
            ("ケースID", e(&case.case_id)),
            (
                "種別・段階",
                format!("{}／{}", e(&case.category), e(&case.stage)),
            ),
            (
                "登録",
                format!(
                    "{}（{}）　状態: {}　見直し間隔: {}日",
                    e(&r.registered_on),
                    e(&r.registered_by),
                    e(&r.status),
                    r.review_interval_days
                ),
            ),
            ("登録理由", e(&r.justification)),
            (
                "見直し",
                format!(
                    "前回: {}　次回予定: {}",
                    e(&r.last_reviewed_on),
                    e(&r.next_review_on)
                ),
            ),
            ("要判断", triggers),
            ("参加機関", e(&case.participants.join("、"))),
            ("ケース情報（封緘）", content_block(&case.header)),
        ],
    );
    let _ = writeln!(
        out,
        "<h4>紹介と引継ぎ状況（{} 件）</h4>",
        case.referrals.len()
    );
    if case.referrals.is_empty() {
        out.push_str("<p class=\"none\">紹介はありません。</p>\n");
    } else {
        out.push_str(
            "<table class=\"referrals\">\n<thead><tr><th>紹介</th><th>紹介元 → 紹介先</th><th>目的</th>\
             <th>緊急度</th><th>根拠</th><th>受信</th><th>対応</th><th>つながり</th><th>確認</th>\
             <th>期限超過</th></tr></thead>\n<tbody>\n",
        );
        for referral in &case.referrals {
            let overdue = if referral.overdue.is_empty() {
                "—".to_owned()
            } else {
                format!(
                    "<span class=\"overdue\">{}</span>",
                    e(&referral.overdue.join("、"))
                )
            };
            let _ = writeln!(
                out,
                "<tr><td class=\"id\">{}</td><td>{} → {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{overdue}</td></tr>",
                e(&referral.short_id),
                e(&referral.from),
                e(&referral.to),
                e(&referral.purpose),
                e(&referral.urgency),
                e(&referral.basis),
                e(&referral.delivery),
                e(&referral.response),
                e(&referral.connection),
                e(&referral.confirmed),
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }
    out.push_str("<h4>エスカレーション</h4>\n");
    if case.escalations.is_empty() {
        out.push_str("<p class=\"none\">前回見直し以降のエスカレーションはありません。</p>\n");
    } else {
        out.push_str("<ul>\n");
        for escalation in &case.escalations {
            let _ = writeln!(out, "<li class=\"overdue\">{}</li>", e(escalation));
        }
        out.push_str("</ul>\n");
    }

    let _ = writeln!(
        out,
        "<h3>{progress}（{} 以降）</h3>",
        e(&case.review_period_start)
    );
    if case.timeline.is_empty() {
        out.push_str("<p class=\"none\">前回見直し以降の記録はありません。</p>\n");
    } else {
        out.push_str("<ul class=\"timeline\">\n");
        for entry in &case.timeline {
            timeline_entry(out, entry);
        }
        out.push_str("</ul>\n");
        let _ = writeln!(
            out,
            "<p class=\"legend\">{ATTESTED}: 送信元の機関はハブが mTLS 証明書で確認済み（封緘された本文の中の名乗りは確認されていません）。</p>"
        );
    }

    let _ = writeln!(out, "<h3>{policy}</h3>");
    if case.decision.is_none() && case.previous_decisions.is_empty() {
        out.push_str("<p class=\"none\">これまでの決定はありません。</p>\n");
    } else {
        out.push_str("<ul>\n");
        let decisions = case.decision.iter().map(|d| ("本会議の決定", d)).chain(
            case.previous_decisions
                .iter()
                .map(|d| ("前回までの決定", d)),
        );
        for (which, d) in decisions {
            let _ = writeln!(
                out,
                "<li><span class=\"label\">{which}（{}）</span>: {}　主担当機関: {}　次回見直し: {}　記録: {}</li>",
                e(&d.held_on),
                e(&d.outcome),
                e(&d.lead_agency),
                e(&d.next_review_on),
                e(&d.recorded_by)
            );
        }
        out.push_str("</ul>\n");
    }

    let _ = writeln!(out, "<h3>{roles}</h3>");
    if let Some(source) = &case.plan_source {
        let _ = writeln!(out, "<p>{} で決定:</p>", e(source));
    }
    out.push_str(&content_block(&case.roles));
    out.push('\n');

    let _ = writeln!(out, "<h3>{lead}</h3>");
    facts(
        out,
        &[
            ("主担当機関", e(&r.lead_agency)),
            ("キーパーソン", content_inline(&r.key_person)),
        ],
    );

    let _ = writeln!(out, "<h3>{plan}</h3>");
    let plan_cell = match &case.support_plan {
        Some(content) => content_block(content),
        None => "役割分担の欄のとおり".to_owned(),
    };
    facts(
        out,
        &[
            ("次回見直し予定日", e(&r.next_review_on)),
            ("見直し間隔", format!("{}日", r.review_interval_days)),
            ("計画", plan_cell),
        ],
    );
    out.push_str("</section>\n");
}
