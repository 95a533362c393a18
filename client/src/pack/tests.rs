//! Rendering a hand-made pack: structure, placeholders, escaping and determinism.

use std::collections::HashMap;

use age::x25519::Identity;
use prost_types::Timestamp;
use tsunagu_proto::v1 as pb;
use tsunagu_proto::v1::thread_entry::Entry;

use super::*;
use crate::seal::seal;

const HOSTILE: &str = "<script>alert(\"x\")</script>' onload='y";

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

fn sealed_to(text: &str, to: &Identity) -> Option<pb::Sealed> {
    Some(pb::Sealed {
        age: seal(text.as_bytes(), &[to.to_public()]).unwrap(),
    })
}

/// A pack of `kind` with two cases: the reader opens the first case's key person and note, not
/// the second's; an agency name carries markup.
fn pack(kind: pb::MeetingKind, reader: &Identity) -> pb::GetMeetingPackResponse {
    let other = Identity::generate();
    // 2026-04-01 09:30 JST.
    let t0 = 1_775_003_400;
    let referral = pb::Referral {
        referral_id: "0190f3a2-0000-7000-8000-0000aaaa0001".into(),
        case_id: "0190f3a2-0000-7000-8000-00000000c001".into(),
        from_agency: "kodomo".into(),
        to_agency: "nursery".into(),
        purpose: "nursery_admission".into(),
        urgency: pb::Urgency::Routine.into(),
        basis: pb::LegalBasisKind::CouncilSharing.into(),
        body: sealed_to("保育所入所の依頼", reader),
        sent_at: at(t0),
        deadlines: Some(pb::Deadlines {
            deliver_by: at(t0 + 86_400),
            ..pb::Deadlines::default()
        }),
        delivery: pb::DeliveryState::Sent.into(),
        response: pb::ResponseState::Requested.into(),
        connection: pb::ConnectionState::NotUpdated.into(),
        overdue: vec![pb::TimerKind::DeliverBy.into()],
        sender_attested: true,
        ..pb::Referral::default()
    };
    let sent = pb::ReferralEvent {
        event_id: "e1".into(),
        referral_id: referral.referral_id.clone(),
        case_id: referral.case_id.clone(),
        kind: pb::ReferralEventKind::Sent.into(),
        actor_agency: "kodomo".into(),
        occurred_at: at(t0),
        ..pb::ReferralEvent::default()
    };
    let escalated = pb::ReferralEvent {
        event_id: "e2".into(),
        kind: pb::ReferralEventKind::Escalated.into(),
        timer: pb::TimerKind::DeliverBy.into(),
        occurred_at: at(t0 + 90_000),
        ..sent.clone()
    };
    let note = |text: &str, to: &Identity| pb::Note {
        note_id: "n1".into(),
        from_agency: "kodomo".into(),
        basis: pb::LegalBasisKind::CouncilSharing.into(),
        body: sealed_to(text, to),
        sent_at: at(t0 + 3600),
        recipients: vec![pb::NoteRecipient {
            agency_id: "jisou".into(),
            acknowledged_at: None,
        }],
        sender_attested: true,
        ..pb::Note::default()
    };
    let case = |n: u8, key_person: Option<pb::Sealed>, timeline: Vec<Entry>| pb::PackCase {
        case: Some(pb::Case {
            case_id: format!("0190f3a2-0000-7000-8000-00000000c00{n}"),
            municipality: "141178".into(),
            category: pb::CaseCategory::RequiresSupport.into(),
            stage: pb::CaseStage::Infancy.into(),
            header: sealed_to("氏名: 青葉 花子", reader),
            council_registered: true,
            participants: vec![pb::Participant {
                agency_id: "kodomo".into(),
                display_name: "青葉区こども家庭センター".into(),
                ..pb::Participant::default()
            }],
            ..pb::Case::default()
        }),
        registration: Some(pb::Registration {
            case_id: format!("0190f3a2-0000-7000-8000-00000000c00{n}"),
            municipality: "141178".into(),
            category: pb::CaseCategory::RequiresSupport.into(),
            registered_on: "2026-01-05".into(),
            lead_agency: "kodomo".into(),
            key_person,
            review_interval_days: 90,
            next_review_on: "2026-04-05".into(),
            status: pb::RegistrationStatus::Active.into(),
            justification: "養育支援が必要".into(),
            registered_by: "kodomo".into(),
            ..pb::Registration::default()
        }),
        referrals: if n == 1 {
            vec![referral.clone()]
        } else {
            vec![]
        },
        timeline: timeline
            .into_iter()
            .map(|entry| pb::ThreadEntry { entry: Some(entry) })
            .collect(),
        previous_decisions: vec![],
        decision: None,
        decision_triggers: if n == 1 {
            vec![pb::DecisionTrigger::OverdueHandoff.into()]
        } else {
            vec![]
        },
        review_period_start: "2026-01-05".into(),
    };
    pb::GetMeetingPackResponse {
        meeting: Some(pb::Meeting {
            meeting_id: "0190f3a2-0000-7000-8000-0000000000m1".into(),
            municipality: "141178".into(),
            kind: kind.into(),
            held_on: "2026-04-08".into(),
            case_ids: vec![],
            scheduled_at: at(t0),
            scheduled_by: "kodomo".into(),
        }),
        municipality_name: "横浜市青葉区".into(),
        cases: vec![
            case(
                1,
                sealed_to("キーパーソン: 祖母", reader),
                vec![
                    Entry::ReferralEvent(sent),
                    Entry::Note(note("家庭訪問: 母は落ち着いている", reader)),
                    Entry::ReferralEvent(escalated),
                ],
            ),
            case(
                2,
                sealed_to("キーパーソン: 叔母", &other),
                vec![Entry::Note(note("児相のみ開封可", &other))],
            ),
        ],
        summary: Some(pb::PackSummary {
            cases: 2,
            requires_support: 2,
            overdue_handoffs: 1,
            cases_needing_decision: 1,
            ..pb::PackSummary::default()
        }),
        generated_at: at(t0 + 100_000),
        agency_names: HashMap::from([
            ("kodomo".to_owned(), "青葉区こども家庭センター".to_owned()),
            ("nursery".to_owned(), HOSTILE.to_owned()),
            ("jisou".to_owned(), "北部児童相談所".to_owned()),
        ]),
    }
}

fn render_both(kind: pb::MeetingKind) -> (String, String) {
    let reader = Identity::generate();
    let response = pack(kind, &reader);
    let identities = [reader];
    let view = build(&response, &Opener::new(&identities));
    (render(&view, Format::Markdown), render(&view, Format::Html))
}

#[test]
fn every_case_has_the_six_headings_in_agenda_order() {
    let (markdown, html) = render_both(pb::MeetingKind::IndividualCase);
    for case in markdown.split("\n## ケース ").skip(1) {
        let positions: Vec<usize> = HEADINGS
            .iter()
            .map(|h| {
                case.find(&format!("### {h}"))
                    .unwrap_or_else(|| panic!("{h} missing"))
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }
    assert_eq!(markdown.matches("\n## ケース ").count(), 2);
    for heading in HEADINGS {
        assert_eq!(
            html.matches(&format!("<h3>{heading}")).count(),
            2,
            "{heading}"
        );
    }
}

#[test]
fn what_the_reader_opens_is_shown_and_the_rest_is_marked_not_failed() {
    let (markdown, html) = render_both(pb::MeetingKind::Practitioners);
    for output in [&markdown, &html] {
        assert!(output.contains("キーパーソン: 祖母"), "opened key person");
        assert!(
            output.contains("家庭訪問: 母は落ち着いている"),
            "opened note"
        );
        assert!(
            output.contains("保育所入所の依頼"),
            "opened body of a referral sent in the period"
        );
        assert!(output.contains("氏名: 青葉 花子"), "opened header");
        assert!(!output.contains("叔母") && !output.contains("児相のみ開封可"));
        assert_eq!(
            output.matches(UNREADABLE).count(),
            3,
            "key person, note, count line"
        );
    }
    assert!(markdown.contains("開封できなかった封緘項目: 2 件"));
}

#[test]
fn a_reader_without_keys_gets_placeholders_everywhere() {
    let response = pack(pb::MeetingKind::Practitioners, &Identity::generate());
    let view = build(&response, &Opener::nobody());
    // Two headers, two key persons, two notes and one referral body.
    assert_eq!(view.unreadable, 7);
    let markdown = render(&view, Format::Markdown);
    assert!(!markdown.contains("祖母"));
}

#[test]
fn only_a_practitioners_meeting_has_the_progress_ledger() {
    let (markdown, html) = render_both(pb::MeetingKind::Practitioners);
    assert!(markdown.contains("## 進行管理台帳"));
    assert!(html.contains("<h2>進行管理台帳</h2>"));
    let ledger = markdown.split("## 進行管理台帳").nth(1).unwrap();
    let ledger = ledger.split("\n\n").nth(1).unwrap();
    // Header, delimiter and one row per case.
    assert_eq!(ledger.lines().count(), 4, "{ledger}");
    assert!(ledger.contains("| 1 | 0000c001 | 要支援児童 | 2026-01-05 | 青葉区こども家庭センター"));
    assert!(ledger.contains("要（引継ぎの期限超過）"));
    let (markdown, html) = render_both(pb::MeetingKind::IndividualCase);
    assert!(!markdown.contains("進行管理台帳") && !html.contains("進行管理台帳"));
}

#[test]
fn overdue_timers_show_with_their_deadline_and_escalations_are_listed() {
    let (markdown, _) = render_both(pb::MeetingKind::IndividualCase);
    assert!(
        markdown.contains("**受信期限（2026-04-02 09:30）**"),
        "{markdown}"
    );
    let escalations = markdown.split("#### エスカレーション").nth(1).unwrap();
    assert!(escalations.contains("期限超過：受信期限"), "{escalations}");
    assert!(markdown.contains(&format!("青葉区こども家庭センター{ATTESTED}")));
}

#[test]
fn markup_in_names_is_escaped_in_both_outputs() {
    let (markdown, html) = render_both(pb::MeetingKind::Practitioners);
    assert!(!html.contains("<script"), "raw script tag in the HTML");
    assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onload=&#39;y"));
    // In Markdown a backslash makes the next character literal: no `<` may be without one.
    let bare = markdown
        .char_indices()
        .filter(|(i, c)| *c == '<' && !markdown[..*i].ends_with('\\'))
        .count();
    assert_eq!(bare, 0, "an unescaped < in the Markdown");
    assert!(markdown.contains("\\<script\\>alert(\"x\")\\</script\\>"));
}

#[test]
fn the_html_page_loads_nothing_and_breaks_the_page_after_every_section_but_the_last() {
    let (_, html) = render_both(pb::MeetingKind::Practitioners);
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"ja\">"));
    assert!(html.contains("@page { size: A4; margin: 15mm;"));
    assert!(html.contains("\"Noto Sans CJK JP\", \"Noto Sans JP\", \"IPAexGothic\""));
    assert!(html.contains("default-src 'none'"));
    for external in [
        "<script", "<link", "<img", "@import", "url(", "src=", "href=",
    ] {
        assert!(!html.contains(external), "{external}");
    }
    // The cover and the first case break after themselves; the last case does not.
    assert_eq!(html.matches("class=\"cover page-break\"").count(), 1);
    assert_eq!(html.matches("class=\"case page-break\"").count(), 1);
    assert_eq!(html.matches("class=\"case\"").count(), 1);
    assert!(html.contains("break-after: page; page-break-after: always;"));
}

#[test]
fn the_same_pack_renders_to_the_same_bytes() {
    let reader = Identity::generate();
    let response = pack(pb::MeetingKind::Practitioners, &reader);
    let identities = [reader];
    let opener = Opener::new(&identities);
    for format in [Format::Markdown, Format::Html] {
        assert_eq!(
            render_pack(&response, &opener, format),
            render_pack(&response, &opener, format)
        );
    }
}

#[test]
fn the_plan_of_the_latest_decision_fills_roles_and_support_plan() {
    let reader = Identity::generate();
    let mut response = pack(pb::MeetingKind::IndividualCase, &reader);
    let decision = |held_on: &str, plan: &str| pb::Decision {
        outcome: pb::DecisionOutcome::Continue.into(),
        held_on: held_on.into(),
        lead_agency: "kodomo".into(),
        decided_by: "kodomo".into(),
        next_review_on: "2026-07-01".into(),
        plan: sealed_to(plan, &reader),
        staff: Some(pb::Staff {
            name: "保健師 山田".into(),
            role: "保健師".into(),
        }),
        ..pb::Decision::default()
    };
    response.cases[0].previous_decisions = vec![decision("2026-01-10", "古い計画")];
    response.cases[0].decision = Some(decision(
        "2026-04-08",
        "役割分担: 保育園が登園を見守る\n支援計画: 月1回の家庭訪問",
    ));
    let identities = [reader];
    let view = build(&response, &Opener::new(&identities));
    let case = &view.cases[0];
    assert_eq!(case.roles, Content::Opened("保育園が登園を見守る".into()));
    assert_eq!(
        case.support_plan,
        Some(Content::Opened("月1回の家庭訪問".into()))
    );
    assert_eq!(
        case.plan_source.as_deref(),
        Some("2026-04-08 の会議（本会議）")
    );
    let markdown = render(&view, Format::Markdown);
    assert!(markdown.contains("- 本会議の決定（2026-04-08）: 継続"));
    assert!(markdown.contains("- 前回までの決定（2026-01-10）: 継続"));
    assert!(markdown.contains("記録: 青葉区こども家庭センター（保健師 山田）"));
    // The second case has no decision at all.
    assert!(view.cases[1].plan_source.is_none());
}

#[test]
fn an_empty_agenda_renders_a_cover_only() {
    let mut response = pack(pb::MeetingKind::Representatives, &Identity::generate());
    response.cases.clear();
    let view = build(&response, &Opener::nobody());
    let html = render(&view, Format::Html);
    assert!(html.contains("議題のケースはありません"));
    assert!(!html.contains("page-break\""));
    assert!(render(&view, Format::Markdown).contains("# 要保護児童対策地域協議会 代表者会議 資料"));
}

#[test]
fn format_names_and_extensions_are_understood() {
    assert_eq!("md".parse::<Format>().unwrap(), Format::Markdown);
    assert_eq!("HTML".parse::<Format>().unwrap(), Format::Html);
    assert!(
        "pdf"
            .parse::<Format>()
            .unwrap_err()
            .to_string()
            .contains("md")
    );
    assert_eq!(Format::from_path(Path::new("pack.htm")), Some(Format::Html));
    assert_eq!(Format::from_path(Path::new("pack")), None);
}
