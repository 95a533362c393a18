//! The pack as Japanese Markdown (CommonMark with GitHub tables): the cover with the summary and,
//! for a 実務者会議, the 進行管理台帳; then each case under the 個別ケース検討会議 headings. Every
//! value is escaped, so a name or a note shows literally whatever it contains.

use std::fmt::Write as _;

use super::model::{ATTESTED, CaseView, NOTHING_RECORDED, PackView, TimelineEntry};
use super::opener::{Content, UNREADABLE};
use super::text::{escape_markdown as e, markdown_quote};
use super::{CONFIDENTIAL, HEADINGS, LEDGER_HEADING, SUMMARY_HEADING};

/// Renders the pack as Markdown.
pub fn render(pack: &PackView) -> String {
    let mut out = String::with_capacity(4096 + pack.cases.len() * 4096);
    cover(&mut out, pack);
    for case in &pack.cases {
        case_section(&mut out, pack, case);
    }
    out
}

/// A table row of escaped cells.
fn row(out: &mut String, cells: &[String]) {
    out.push('|');
    for cell in cells {
        out.push(' ');
        out.push_str(if cell.is_empty() { " " } else { cell });
        out.push_str(" |");
    }
    out.push('\n');
}

/// A table header with its delimiter row; `right` marks the right-aligned (numeric) columns.
fn header(out: &mut String, headers: &[&str], right: &[usize]) {
    row(
        out,
        &headers.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>(),
    );
    out.push('|');
    for i in 0..headers.len() {
        out.push_str(if right.contains(&i) {
            " ---: |"
        } else {
            " --- |"
        });
    }
    out.push('\n');
}

/// A sealed field as a block under `prefix`: the opened text quoted, or the marker.
fn content_block(out: &mut String, content: &Content, prefix: &str) {
    match content {
        Content::Opened(text) if !text.trim().is_empty() => {
            out.push_str(&markdown_quote(text, prefix))
        }
        Content::Opened(_) | Content::Absent => {
            let _ = writeln!(out, "{prefix}{NOTHING_RECORDED}");
        }
        Content::Unreadable => {
            let _ = writeln!(out, "{prefix}{UNREADABLE}");
        }
    }
}

/// A sealed field on one line: the opened text, or the marker.
fn content_inline(content: &Content) -> String {
    match content {
        Content::Opened(text) if !text.trim().is_empty() => e(text),
        Content::Opened(_) | Content::Absent => NOTHING_RECORDED.to_owned(),
        Content::Unreadable => UNREADABLE.to_owned(),
    }
}

fn cover(out: &mut String, pack: &PackView) {
    let _ = writeln!(out, "# {}\n", e(&pack.title()));
    header(out, &["項目", "内容"], &[]);
    let mut facts = vec![
        ("市区町村", e(&pack.municipality)),
        ("会議", e(crate::render::Coded::japanese(pack.kind))),
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
        facts.push(("開封した機関", e(reader)));
    }
    for (key, value) in facts {
        row(out, &[key.to_owned(), value]);
    }
    let _ = writeln!(out, "\n> {CONFIDENTIAL}\n");

    let s = &pack.summary;
    let _ = writeln!(out, "## {SUMMARY_HEADING}\n");
    header(out, &["項目", "件数"], &[1]);
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
        row(out, &[key.to_owned(), value.to_string()]);
    }
    out.push('\n');
    if !s.needing_decision.is_empty() {
        out.push_str("要判断ケース:\n\n");
        for (number, short, why) in &s.needing_decision {
            let _ = writeln!(out, "- {number}　{}：{}", e(short), e(why));
        }
        out.push('\n');
    }
    if pack.unreadable > 0 {
        let _ = writeln!(
            out,
            "この機関の鍵で開封できなかった封緘項目: {} 件（{UNREADABLE} と表示）\n",
            pack.unreadable
        );
    }
    if pack.cases.is_empty() {
        out.push_str("議題のケースはありません。\n\n");
    }

    if pack.shows_ledger() {
        let _ = writeln!(out, "## {LEDGER_HEADING}\n");
        header(
            out,
            &[
                "No.",
                "ケース",
                "種別",
                "登録日",
                "主担当機関",
                "前回見直し",
                "次回見直し",
                "未完了の紹介",
                "期限超過",
                "要判断",
            ],
            &[0, 7, 8],
        );
        for case in &pack.cases {
            row(
                out,
                &[
                    case.number.to_string(),
                    e(&case.short_id),
                    e(&case.category),
                    e(&case.registration.registered_on),
                    e(&case.registration.lead_agency),
                    e(&case.registration.last_reviewed_on),
                    e(&case.registration.next_review_on),
                    case.open_referrals.to_string(),
                    case.overdue_handoffs.to_string(),
                    needs_decision(case),
                ],
            );
        }
        out.push('\n');
    }
}

/// The 要判断 cell: "要（理由）" or "—".
fn needs_decision(case: &CaseView) -> String {
    if case.triggers.is_empty() {
        "—".to_owned()
    } else {
        format!("要（{}）", e(&case.triggers.join("、")))
    }
}

fn timeline_entry(out: &mut String, entry: &TimelineEntry) {
    let attested = if entry.attested { ATTESTED } else { "" };
    let _ = writeln!(
        out,
        "- {}　{}{attested}　{}",
        e(&entry.at),
        e(&entry.actor),
        e(&entry.what)
    );
    for (label, content) in &entry.contents {
        let _ = writeln!(out, "  - {label}:");
        content_block(out, content, "    ");
    }
}

fn case_section(out: &mut String, pack: &PackView, case: &CaseView) {
    let [situation, progress, policy, roles, lead, plan] = HEADINGS;
    let r = &case.registration;
    let _ = writeln!(
        out,
        "---\n\n## ケース {}/{}　{}（{}）\n",
        case.number,
        pack.cases.len(),
        e(&case.short_id),
        e(&case.category)
    );

    let _ = writeln!(out, "### {situation}\n");
    let _ = writeln!(out, "- ケースID: {}", e(&case.case_id));
    let _ = writeln!(
        out,
        "- 種別・段階: {}／{}",
        e(&case.category),
        e(&case.stage)
    );
    let _ = writeln!(
        out,
        "- 登録: {}（{}）、状態: {}、見直し間隔: {}日",
        e(&r.registered_on),
        e(&r.registered_by),
        e(&r.status),
        r.review_interval_days
    );
    let _ = writeln!(out, "- 登録理由: {}", e(&r.justification));
    let _ = writeln!(
        out,
        "- 前回見直し: {}　次回見直し予定: {}",
        e(&r.last_reviewed_on),
        e(&r.next_review_on)
    );
    let triggers = if case.triggers.is_empty() {
        "なし".to_owned()
    } else {
        e(&case.triggers.join("、"))
    };
    let _ = writeln!(out, "- 要判断: {triggers}");
    let _ = writeln!(out, "- 参加機関: {}", e(&case.participants.join("、")));
    out.push_str("- ケース情報（封緘）:\n");
    content_block(out, &case.header, "  ");
    out.push('\n');

    let _ = writeln!(
        out,
        "#### 紹介と引継ぎ状況（{} 件）\n",
        case.referrals.len()
    );
    if case.referrals.is_empty() {
        out.push_str("紹介はありません。\n\n");
    } else {
        header(
            out,
            &[
                "紹介",
                "紹介元 → 紹介先",
                "目的",
                "緊急度",
                "根拠",
                "受信",
                "対応",
                "つながり",
                "確認",
                "期限超過",
            ],
            &[],
        );
        for referral in &case.referrals {
            let overdue = if referral.overdue.is_empty() {
                "—".to_owned()
            } else {
                format!("**{}**", e(&referral.overdue.join("、")))
            };
            row(
                out,
                &[
                    e(&referral.short_id),
                    format!("{} → {}", e(&referral.from), e(&referral.to)),
                    e(&referral.purpose),
                    e(&referral.urgency),
                    e(&referral.basis),
                    e(&referral.delivery),
                    e(&referral.response),
                    e(&referral.connection),
                    e(&referral.confirmed),
                    overdue,
                ],
            );
        }
        out.push('\n');
    }
    out.push_str("#### エスカレーション\n\n");
    if case.escalations.is_empty() {
        out.push_str("前回見直し以降のエスカレーションはありません。\n\n");
    } else {
        for escalation in &case.escalations {
            let _ = writeln!(out, "- {}", e(escalation));
        }
        out.push('\n');
    }

    let _ = writeln!(
        out,
        "### {progress}（{} 以降）\n",
        e(&case.review_period_start)
    );
    if case.timeline.is_empty() {
        out.push_str("前回見直し以降の記録はありません。\n");
    } else {
        for entry in &case.timeline {
            timeline_entry(out, entry);
        }
        let _ = writeln!(
            out,
            "\n{ATTESTED}: 送信元の機関はハブが mTLS 証明書で確認済み（封緘された本文の中の名乗りは確認されていません）。"
        );
    }
    out.push('\n');

    let _ = writeln!(out, "### {policy}\n");
    if case.decision.is_none() && case.previous_decisions.is_empty() {
        out.push_str("これまでの決定はありません。\n");
    }
    let decisions = case.decision.iter().map(|d| ("本会議の決定", d)).chain(
        case.previous_decisions
            .iter()
            .map(|d| ("前回までの決定", d)),
    );
    for (which, d) in decisions {
        let _ = writeln!(
            out,
            "- {which}（{}）: {}　主担当機関: {}　次回見直し: {}　記録: {}",
            e(&d.held_on),
            e(&d.outcome),
            e(&d.lead_agency),
            e(&d.next_review_on),
            e(&d.recorded_by)
        );
    }
    out.push('\n');

    let _ = writeln!(out, "### {roles}\n");
    if let Some(source) = &case.plan_source {
        let _ = writeln!(out, "{} で決定:\n", e(source));
    }
    content_block(out, &case.roles, "");
    out.push('\n');

    let _ = writeln!(out, "### {lead}\n");
    let _ = writeln!(out, "- 主担当機関: {}", e(&r.lead_agency));
    let _ = writeln!(out, "- キーパーソン: {}", content_inline(&r.key_person));
    out.push('\n');

    let _ = writeln!(out, "### {plan}\n");
    let _ = writeln!(out, "- 次回見直し予定日: {}", e(&r.next_review_on));
    let _ = writeln!(out, "- 見直し間隔: {}日", r.review_interval_days);
    match &case.support_plan {
        Some(content) => {
            out.push_str("- 計画:\n");
            content_block(out, content, "  ");
        }
        None => out.push_str("- 計画: 役割分担の欄のとおり\n"),
    }
    out.push('\n');
}
