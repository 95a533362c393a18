//! Meeting packs as members read them: built through the real hub over mTLS from fields sealed
//! with the client library to the keys the agencies published, opened with one reader's
//! identity (what it cannot open shows as a placeholder), rendered as Markdown and HTML, and the
//! HTML printed by headless Chromium with every case on a page of its own. The last test drives
//! the `tsunagu council` commands against a running `tsunagu-hub`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use age::x25519::Identity;
use tsunagu_client::Hub;
use tsunagu_client::pack::{self, Format, HEADINGS, Opener, UNREADABLE};
use tsunagu_client::render::short_id;
use tsunagu_client::sealing::Sealer;
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::*;
use tsunagu_tests::{MUNICIPALITY, TestHub, tsunagu, workspace_binary};

use crate::operator::{ChildGuard, free_port, wait_for_port};

const HOUR: Duration = Duration::from_secs(3600);

/// A キーパーソン with markup in it: the pack must show it, not run it.
const HOSTILE_KEY_PERSON: &str = "母方祖母 <script>alert('kp')</script> \"協力的\"";

/// One agency with its mTLS client, its published age identity and a sealer, as the CLI has.
struct Party {
    client: Hub,
    identity: Identity,
    sealer: Sealer,
}

impl Party {
    async fn new(hub: &TestHub, id: &str) -> Party {
        let client = hub.client(id).await;
        let identity = publish_identity(&client).await;
        let sealer = Sealer::new(&client);
        Party {
            client,
            identity,
            sealer,
        }
    }

    /// Seals `text` for `to` (and the sender, and the coordinator of a registered case).
    async fn seal(&mut self, text: &str, to: &[&str], case: Option<&pb::Case>) -> pb::Sealed {
        self.sealer.seal(text.as_bytes(), to, case).await.unwrap()
    }

    /// Seals `text` for the whole council of 141178, as `tsunagu council` seals キーパーソン and
    /// plans.
    async fn seal_for_council(&mut self, text: &str, case: &pb::Case) -> pb::Sealed {
        let council = tsunagu_client::council::readers(&self.client, MUNICIPALITY)
            .await
            .unwrap();
        let council: Vec<&str> = council.iter().map(String::as_str).collect();
        self.seal(text, &council, Some(case)).await
    }

    /// The pack of a meeting, opened with this agency's identity.
    async fn pack(&self, meeting_id: &str) -> pack::PackView {
        let response = meeting_pack(&self.client, meeting_id).await.unwrap();
        let identities = [self.identity.clone()];
        pack::build(&response, &Opener::new(&identities))
    }
}

/// The coordinator and the three other council members, each with a published key.
struct Council {
    kodomo: Party,
    hospital: Party,
    nursery: Party,
    jisou: Party,
}

impl Council {
    async fn new(hub: &TestHub) -> Council {
        Council {
            kodomo: Party::new(hub, "kodomo").await,
            hospital: Party::new(hub, "hospital").await,
            nursery: Party::new(hub, "nursery").await,
            jisou: Party::new(hub, "jisou").await,
        }
    }

    /// kodomo opens a case, its header sealed for `readers`.
    async fn open_case(&mut self, header: &str, readers: &[&str]) -> pb::Case {
        let mut request = open_case_request(MUNICIPALITY);
        request.category = pb::CaseCategory::RequiresSupport.into();
        request.header = Some(self.kodomo.seal(header, readers, None).await);
        try_open_case(&self.kodomo.client, request).await.unwrap()
    }

    /// kodomo registers a case with a キーパーソン sealed to the council; returns the case as it
    /// now is (registered).
    async fn register(
        &mut self,
        case: &pb::Case,
        key_person: &str,
        registered_on: &str,
        next_review_on: &str,
    ) -> pb::Case {
        let mut request = register_request(&case.case_id, registered_on, next_review_on);
        request.key_person = Some(self.kodomo.seal_for_council(key_person, case).await);
        try_register(&self.kodomo.client, request).await.unwrap();
        get_case(&self.kodomo.client, &case.case_id).await.unwrap()
    }

    /// kodomo refers a registered case to a member under council sharing, the body sealed to it.
    async fn refer(
        &mut self,
        case: &pb::Case,
        to: &str,
        purpose: &str,
        body: &str,
    ) -> pb::Referral {
        let mut request = referral_request(&case.case_id, to, purpose, council_sharing());
        request.body = Some(self.kodomo.seal(body, &[to], Some(case)).await);
        send(&self.kodomo.client, request).await.unwrap()
    }

    /// kodomo sends a note on a registered case to one member, sealed to it.
    async fn note(&mut self, case: &pb::Case, to: &str, body: &str) -> pb::Note {
        let mut request = note_request(&case.case_id, &[to], CHILD_PROTECTION, council_sharing());
        request.body = Some(self.kodomo.seal(body, &[to], Some(case)).await);
        send_note(&self.kodomo.client, request).await.unwrap()
    }

    /// kodomo records a decision with a plan sealed to the council.
    async fn decide(
        &mut self,
        meeting_id: &str,
        case: &pb::Case,
        outcome: pb::DecisionOutcome,
        plan: &str,
    ) -> pb::RecordDecisionResponse {
        let mut request = decision_request(meeting_id, &case.case_id, outcome);
        request.plan = Some(self.kodomo.seal_for_council(plan, case).await);
        if outcome == pb::DecisionOutcome::Close {
            request.close_reason = "支援目標達成".to_owned();
        }
        try_decide(&self.kodomo.client, request).await.unwrap()
    }
}

/// The Markdown of each case, in agenda order.
fn case_sections(markdown: &str) -> Vec<&str> {
    markdown.split("\n## ケース ").skip(1).collect()
}

/// The data rows of the 進行管理台帳 table.
fn ledger_rows(markdown: &str) -> Vec<&str> {
    let ledger = markdown
        .split("## 進行管理台帳\n\n")
        .nth(1)
        .expect("a 進行管理台帳");
    ledger
        .lines()
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .collect()
}

#[track_caller]
fn assert_headings_in_order(section: &str) {
    let mut from = 0;
    for heading in HEADINGS {
        let at = section[from..]
            .find(&format!("### {heading}"))
            .unwrap_or_else(|| panic!("### {heading} missing or out of order in:\n{section}"));
        from += at + "### ".len() + heading.len();
    }
}

#[tokio::test]
async fn a_members_rendered_practitioners_pack_holds_the_cases_due_their_handoffs_and_the_notes_it_may_open()
 {
    let hub = TestHub::start_with(|settings| {
        settings
            .council
            .municipality_names
            .insert(MUNICIPALITY.to_owned(), "横浜市青葉区".to_owned());
    })
    .await;
    let mut council = Council::new(&hub).await;
    let clock = &*hub.clock;
    let held_on = japan_date(clock, 7);

    // A is overdue for review, C falls due before the meeting, B on its day; D in three months.
    let a = council
        .open_case("氏名: 青葉 一郎（架空）", &["nursery"])
        .await;
    let b = council.open_case("氏名: 青葉 二郎（架空）", &[]).await;
    let c = council.open_case("氏名: 青葉 三郎（架空）", &[]).await;
    let d = council.open_case("氏名: 青葉 四郎（架空）", &[]).await;
    let a = council
        .register(&a, HOSTILE_KEY_PERSON, &japan_date(clock, -100), "")
        .await;
    let b = council.register(&b, "叔母", "", &held_on).await;
    let c = council.register(&c, "父", "", &japan_date(clock, 5)).await;
    council.register(&d, "祖父", "", "").await;

    // A: the nursery never picks its referral up; one note only the 児童相談所 may read, one
    // for the nursery.
    council
        .refer(&a, "nursery", NURSERY_ADMISSION, "保育所入所の依頼（A）")
        .await;
    council
        .note(&a, "jisou", "児相だけが読めるメモ: 通告歴あり")
        .await;
    council
        .note(&a, "nursery", "保育園への連絡: 登園時の様子を見てください")
        .await;
    // B: the hospital took the family on.
    let taken = council
        .refer(&b, "hospital", POSTNATAL_CARE, "産後ケアの依頼（B）")
        .await;
    let hospital = council.hospital.client.clone();
    act(
        &hospital,
        &taken.referral_id,
        pb::ReferralAction::AcknowledgeDelivery,
    )
    .await
    .unwrap();
    act(&hospital, &taken.referral_id, pb::ReferralAction::Accept)
        .await
        .unwrap();
    // C: the hospital could not reach the family; its note is sealed to kodomo (and itself).
    let lost = council
        .refer(&c, "hospital", POSTNATAL_CARE, "産後ケアの依頼（C）")
        .await;
    act(&hospital, &lost.referral_id, pb::ReferralAction::Accept)
        .await
        .unwrap();
    let mut report = not_connected_request(
        &lost.referral_id,
        pb::NotConnectedReason::CouldNotContact,
        "",
    );
    report.note = Some(
        council
            .hospital
            .seal("電話3回、応答なし（病院のメモ）", &["kodomo"], Some(&c))
            .await,
    );
    act_with(&hospital, report).await.unwrap();

    let meeting = schedule_meeting(
        &council.kodomo.client,
        pb::MeetingKind::Practitioners,
        &held_on,
        &[],
    )
    .await;
    assert_eq!(
        meeting.case_ids,
        vec![a.case_id.clone(), c.case_id.clone(), b.case_id.clone()]
    );

    // A day later the nursery's delivery deadline has passed and the hub has escalated it.
    hub.clock.advance(25 * HOUR);
    let nursery_view = eventually(
        "the escalation in A's pack",
        Duration::from_secs(10),
        async || {
            let view = council.nursery.pack(&meeting.meeting_id).await;
            (!view.cases[0].escalations.is_empty()).then_some(view)
        },
    )
    .await;

    let markdown = pack::render(&nursery_view, Format::Markdown);
    assert!(markdown.starts_with("# 要保護児童対策地域協議会 実務者会議 資料\n"));
    assert!(markdown.contains("| 市区町村 | 横浜市青葉区（141178） |"));
    assert!(markdown.contains(&format!("| 開催日 | {held_on} |")));
    for (line, count) in [
        ("対象ケース", 3),
        ("うち要支援児童", 3),
        ("期限超過の引継ぎ", 1),
        ("つながらなかった引継ぎ", 1),
        ("要判断ケース", 2),
    ] {
        assert!(
            markdown.contains(&format!("| {line} | {count} |")),
            "{line} {count}:\n{markdown}"
        );
    }

    // Exactly the cases due, in agenda order, in the 進行管理台帳 and as sections.
    let rows = ledger_rows(&markdown);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (row, case) in rows.iter().zip([&a, &c, &b]) {
        assert!(
            row.contains(&format!(" {} ", short_id(&case.case_id))),
            "{row}"
        );
    }
    assert!(rows[0].contains("要（引継ぎの期限超過）"), "{}", rows[0]);
    assert!(
        rows[1].contains("要（つながらなかった紹介）"),
        "{}",
        rows[1]
    );
    assert!(rows[2].ends_with("| 1 | 0 | — |"), "{}", rows[2]);
    assert!(!markdown.contains(&d.case_id) && !markdown.contains(short_id(&d.case_id)));
    let sections = case_sections(&markdown);
    assert_eq!(sections.len(), 3);
    for section in &sections {
        assert_headings_in_order(section);
    }

    // A: the overdue handoff and its escalation; the notes the nursery may open and the one
    // it may not; the header and the キーパーソン it may open, shown literally.
    let (sa, sc, sb) = (sections[0], sections[1], sections[2]);
    assert!(sa.starts_with(&format!("1/3　{}（要支援児童）", short_id(&a.case_id))));
    assert!(sa.contains("**受信期限（"), "{sa}");
    assert!(sa.contains("期限超過：受信期限"), "{sa}");
    assert!(
        sa.contains("> 保育園への連絡: 登園時の様子を見てください"),
        "{sa}"
    );
    assert!(sa.contains("> 保育所入所の依頼（A）"), "{sa}");
    assert!(!markdown.contains("児相だけが読めるメモ"));
    assert_eq!(
        sa.matches(UNREADABLE).count(),
        1,
        "the 児童相談所's note: {sa}"
    );
    assert!(sa.contains(&format!(
        "青葉区こども家庭センター（保健師 山田）{}",
        pack::ATTESTED
    )));
    assert!(sa.contains("> 氏名: 青葉 一郎（架空）"), "{sa}");
    assert!(
        sa.contains("- キーパーソン: 母方祖母 \\<script\\>alert('kp')\\</script\\> \"協力的\""),
        "{sa}"
    );
    // C: not connected, with the hospital's note sealed to kodomo only; its header too.
    assert!(sc.contains("| つながらなかった：連絡がとれない |"), "{sc}");
    assert!(sc.contains("つながらなかった報告"), "{sc}");
    assert!(!sc.contains("病院のメモ"));
    assert_eq!(
        sc.matches(UNREADABLE).count(),
        3,
        "the header, the referral's body and the hospital's note: {sc}"
    );
    // B: delivered and accepted; nothing to decide.
    assert!(sb.contains("| 受信確認済 | 受入 |"), "{sb}");
    assert!(sb.contains("- 要判断: なし"), "{sb}");

    // The HTML page: the same content, escaped, a page break after all but the last case.
    let html = pack::render(&nursery_view, Format::Html);
    assert_eq!(
        html.matches("<section class=\"case page-break\"").count(),
        2
    );
    assert_eq!(html.matches("<section class=\"case\"").count(), 1);
    assert_eq!(
        html.matches("<section class=\"cover page-break\"").count(),
        1
    );
    assert!(
        !html.contains("<script"),
        "markup from a sealed field reached the HTML"
    );
    assert!(
        html.contains(
            "母方祖母 &lt;script&gt;alert(&#39;kp&#39;)&lt;/script&gt; &quot;協力的&quot;"
        )
    );
    assert!(html.contains("<h2>進行管理台帳</h2>"));
    assert!(html.contains(UNREADABLE));

    // Another member opens what was sealed to it, and not what the nursery could.
    let jisou_markdown = pack::render(
        &council.jisou.pack(&meeting.meeting_id).await,
        Format::Markdown,
    );
    assert!(jisou_markdown.contains("> 児相だけが読めるメモ: 通告歴あり"));
    assert!(!jisou_markdown.contains("保育園への連絡"));
    assert!(
        !jisou_markdown.contains("青葉 一郎"),
        "A's header was sealed to the nursery"
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_decision_with_a_sealed_plan_shows_in_the_next_rendered_pack_and_a_closed_case_drops_off()
{
    let hub = TestHub::start().await;
    let mut council = Council::new(&hub).await;
    let clock = &*hub.clock;
    let long_ago = japan_date(clock, -100);
    let a = council.open_case("氏名: 青葉 一郎（架空）", &[]).await;
    let b = council.open_case("氏名: 青葉 二郎（架空）", &[]).await;
    let c = council.open_case("氏名: 青葉 三郎（架空）", &[]).await;
    let a = council.register(&a, "叔母", &long_ago, "").await;
    let b = council.register(&b, "祖母", &long_ago, "").await;
    let c = council.register(&c, "父", &long_ago, "").await;

    let today = japan_date(clock, 0);
    let meeting = schedule_meeting(
        &council.kodomo.client,
        pb::MeetingKind::Practitioners,
        &today,
        &[],
    )
    .await;
    assert_eq!(meeting.case_ids.len(), 3);
    let continued = council
        .decide(
            &meeting.meeting_id,
            &a,
            pb::DecisionOutcome::Continue,
            "役割分担: 保育園が登園を見守り、保健師が月1回家庭訪問\n支援計画: 3か月後に再評価",
        )
        .await;
    assert_eq!(
        continued.registration.unwrap().next_review_on,
        japan_date(clock, 90)
    );
    council
        .decide(
            &meeting.meeting_id,
            &b,
            pb::DecisionOutcome::Close,
            "終結後は地域子育て支援拠点で見守り",
        )
        .await;

    // This meeting's pack shows its decisions and the plan, opened by a member.
    let view = council.nursery.pack(&meeting.meeting_id).await;
    let markdown = pack::render(&view, Format::Markdown);
    let sections = case_sections(&markdown);
    let section_a = sections.iter().find(|s| s.contains(&a.case_id)).unwrap();
    assert!(
        section_a.contains(&format!("- 本会議の決定（{today}）: 継続")),
        "{section_a}"
    );
    assert!(
        section_a.contains("### 役割分担\n\n")
            && section_a.contains("> 保育園が登園を見守り、保健師が月1回家庭訪問"),
        "{section_a}"
    );
    assert!(section_a.contains("> 3か月後に再評価"), "{section_a}");
    assert!(section_a.contains(&format!("- 次回見直し予定日: {}", japan_date(clock, 90))));

    // The next 実務者会議 on A's new review day takes up A (and C, still due) but not B, which
    // was closed; A's pack carries the decision among the earlier ones, with its plan.
    let next = schedule_meeting(
        &council.kodomo.client,
        pb::MeetingKind::Practitioners,
        &japan_date(clock, 90),
        &[],
    )
    .await;
    assert_eq!(next.case_ids, vec![c.case_id.clone(), a.case_id.clone()]);
    let view = council.hospital.pack(&next.meeting_id).await;
    let markdown = pack::render(&view, Format::Markdown);
    assert!(!markdown.contains(&b.case_id) && !markdown.contains(short_id(&b.case_id)));
    let rows = ledger_rows(&markdown);
    assert_eq!(rows.len(), 2);
    assert!(
        rows[1].contains(&format!("| {today} | {} |", japan_date(clock, 90))),
        "{}",
        rows[1]
    );
    let section_a = case_sections(&markdown)[1];
    assert!(
        section_a.contains(&format!("- 前回までの決定（{today}）: 継続")),
        "{section_a}"
    );
    assert!(
        section_a.contains(&format!("{today} の会議 で決定")),
        "{section_a}"
    );
    assert!(section_a.contains("> 保育園が登園を見守り、保健師が月1回家庭訪問"));
    hub.stop().await;
}

#[tokio::test]
async fn a_printed_individual_case_pack_starts_every_case_on_a_page_of_its_own() {
    let Some(tools) = print_tools_or_skip(
        "a_printed_individual_case_pack_starts_every_case_on_a_page_of_its_own",
    ) else {
        return;
    };
    let hub = TestHub::start_with(|settings| {
        settings
            .council
            .municipality_names
            .insert(MUNICIPALITY.to_owned(), "横浜市青葉区".to_owned());
    })
    .await;
    let mut council = Council::new(&hub).await;
    let clock = &*hub.clock;
    let mut cases = Vec::new();
    for (n, key_person) in ["母方祖母", HOSTILE_KEY_PERSON, "父"]
        .into_iter()
        .enumerate()
    {
        let case = council
            .open_case(&format!("氏名: 青葉 {n}郎（架空）"), &["nursery"])
            .await;
        let case = council
            .register(&case, key_person, &japan_date(clock, -30), "")
            .await;
        let referral = council
            .refer(&case, "nursery", NURSERY_ADMISSION, "保育所入所の依頼")
            .await;
        act(
            &council.nursery.client,
            &referral.referral_id,
            pb::ReferralAction::AcknowledgeDelivery,
        )
        .await
        .unwrap();
        council
            .note(&case, "nursery", "家庭訪問: 母の表情は明るい。次回は来月。")
            .await;
        council.note(&case, "jisou", "児童相談所あての連絡").await;
        cases.push(case);
    }
    let ids: Vec<&str> = cases.iter().map(|c| c.case_id.as_str()).collect();
    let meeting = schedule_meeting(
        &council.kodomo.client,
        pb::MeetingKind::IndividualCase,
        &japan_date(clock, 0),
        &ids,
    )
    .await;
    council
        .decide(
            &meeting.meeting_id,
            &cases[0],
            pb::DecisionOutcome::Continue,
            "役割分担: 保育園が登園を見守る\n支援計画: 月1回の家庭訪問",
        )
        .await;

    let view = council.nursery.pack(&meeting.meeting_id).await;
    let dir = tempfile::tempdir().unwrap();
    let html_path = dir.path().join("pack.html");
    let pdf_path = dir.path().join("pack.pdf");
    std::fs::write(&html_path, pack::render(&view, Format::Html)).unwrap();
    tools.print_to_pdf(&html_path, &pdf_path).await;

    // The cover, then each case on exactly one page of its own, in agenda order.
    assert_eq!(tools.pages(&pdf_path), 1 + cases.len());
    let cover = tools.page_text(&pdf_path, 1);
    assert!(cover.contains("個別ケース検討会議"), "{cover}");
    assert!(cover.contains("概要"), "{cover}");
    assert!(!cover.contains("進行管理台帳"), "{cover}");
    assert!(!cover.contains("状況・危険度"), "{cover}");
    for (i, case) in cases.iter().enumerate() {
        let page = tools.page_text(&pdf_path, i + 2);
        assert!(
            page.contains(&format!("ケース {}/{}", i + 1, cases.len())),
            "page {}: {page}",
            i + 2
        );
        assert!(
            page.contains(short_id(&case.case_id)),
            "page {}: {page}",
            i + 2
        );
        for heading in HEADINGS {
            assert!(
                page.contains(heading),
                "{heading} not on page {}: {page}",
                i + 2
            );
        }
        for other in cases.iter().filter(|c| c.case_id != case.case_id) {
            assert!(
                !page.contains(short_id(&other.case_id)),
                "page {}: {page}",
                i + 2
            );
        }
        assert!(
            page.contains(UNREADABLE),
            "the 児童相談所's note, page {}",
            i + 2
        );
    }
    // The hostile キーパーソン prints as text.
    let second = tools.page_text(&pdf_path, 3);
    assert!(second.contains("<script>alert('kp')</script>"), "{second}");
    let first = tools.page_text(&pdf_path, 2);
    assert!(first.contains("保育園が登園を見守る"), "{first}");
    hub.stop().await;
}

/// Runs the CLI, asserts it succeeded and returns its stdout.
#[track_caller]
fn ok(dir: &Path, port: u16, args: &[&str]) -> String {
    let output = tsunagu(dir, port, args);
    assert!(output.status.success(), "tsunagu {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// A field of a JSON document printed by the CLI.
fn json_field(stdout: &str, field: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(stdout).unwrap();
    value[field].as_str().unwrap_or_default().to_owned()
}

#[test]
fn the_council_commands_register_schedule_write_the_pack_and_record_decisions_against_a_running_hub()
 {
    let hub_binary = workspace_binary("tsunagu-hub", "tsunagu-hub");
    let dir = tempfile::tempdir().unwrap();
    let made = Command::new(&hub_binary)
        .current_dir(dir.path())
        .args(["certs", "dev", "--dir", "certs-dev"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let port = free_port();
    let mut hub = ChildGuard(
        Command::new(&hub_binary)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TSUNAGU_LISTEN", format!("127.0.0.1:{port}"))
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, &mut hub.0);
    let dir = dir.path();
    let today = time::OffsetDateTime::now_utc()
        .to_offset(tsunagu_client::render::JAPAN)
        .date();
    let day = |days: i64| {
        let date = today + time::Duration::days(days);
        format!(
            "{:04}-{:02}-{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        )
    };

    let case = json_field(
        &ok(
            dir,
            port,
            &[
                "--as",
                "aoba-kodomo",
                "--json",
                "case",
                "open",
                "--municipality",
                "141178",
                "--category",
                "requires-support",
                "--stage",
                "infancy",
                "--header-text",
                "氏名: 青葉 花子（架空）",
                "--reader",
                "aoba-nursery",
            ],
        ),
        "case_id",
    );
    let registered = ok(
        dir,
        port,
        &[
            "--as",
            "aoba-kodomo",
            "council",
            "register",
            short_id(&case),
            "--category",
            "requires-support",
            "--lead",
            "aoba-kodomo",
            "--key-person-text",
            "母方祖母（近隣在住）",
            "--registered-on",
            &day(-100),
            "--justification",
            "養育支援が必要",
        ],
    );
    assert!(
        registered.contains("key person sealed to the council"),
        "{registered}"
    );
    ok(
        dir,
        port,
        &[
            "--as",
            "aoba-kodomo",
            "note",
            short_id(&case),
            "--to",
            "aoba-nursery",
            "--purpose",
            "child_protection",
            "--basis",
            "council-sharing",
            "--justification",
            "要対協登録ケース",
            "--text",
            "保育園への連絡: 登園の様子を",
        ],
    );
    let registrations = ok(
        dir,
        port,
        &["--as", "aoba-nursery", "council", "registrations"],
    );
    assert!(registrations.contains(short_id(&case)), "{registrations}");
    assert!(registrations.contains("readable"), "{registrations}");

    let meeting = json_field(
        &ok(
            dir,
            port,
            &[
                "--as",
                "aoba-kodomo",
                "--json",
                "council",
                "schedule",
                "--kind",
                "practitioners",
                "--held-on",
                &day(0),
            ],
        ),
        "meeting_id",
    );
    let meetings = ok(dir, port, &["--as", "aoba-hospital", "council", "meetings"]);
    assert!(meetings.contains(short_id(&meeting)), "{meetings}");
    assert!(
        meetings.contains("practitioners (実務者会議)"),
        "{meetings}"
    );

    // A member writes the pack by the meeting's short id, readable by its owner only.
    let written = ok(
        dir,
        port,
        &[
            "--as",
            "aoba-nursery",
            "council",
            "pack",
            "--meeting",
            short_id(&meeting),
            "-o",
            "pack.md",
        ],
    );
    assert!(written.contains("wrote pack.md"), "{written}");
    let markdown = std::fs::read_to_string(dir.join("pack.md")).unwrap();
    assert!(markdown.contains("## 進行管理台帳"));
    assert!(
        markdown.contains("> 保育園への連絡: 登園の様子を"),
        "{markdown}"
    );
    assert!(
        markdown.contains("- キーパーソン: 母方祖母（近隣在住）"),
        "{markdown}"
    );
    assert!(markdown.contains("> 氏名: 青葉 花子（架空）"), "{markdown}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("pack.md"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let decided = ok(
        dir,
        port,
        &[
            "--as",
            "aoba-kodomo",
            "council",
            "decide",
            "--meeting",
            short_id(&meeting),
            "--case",
            short_id(&case),
            "--outcome",
            "continue",
            "--lead",
            "aoba-nursery",
            "--plan-text",
            "役割分担: 保育園が登園を見守る\n支援計画: 3か月後に再評価",
        ],
    );
    assert!(
        decided.contains(&format!("next review {}", day(90))),
        "{decided}"
    );
    assert!(decided.contains("plan sealed to the council"), "{decided}");

    // The HTML pack on stdout now carries the decision and its plan, opened by another member.
    let html = ok(
        dir,
        port,
        &[
            "--as",
            "north-jisou",
            "council",
            "pack",
            "--meeting",
            &meeting,
            "--format",
            "html",
            "-o",
            "-",
        ],
    );
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("本会議の決定"), "{html}");
    assert!(html.contains("保育園が登園を見守る"), "{html}");
    assert!(html.contains("あおば保育園"), "{html}");
    assert!(html.contains(UNREADABLE), "the nursery's note: {html}");

    // The 子育て支援拠点 is not on the council: no pack for it.
    let refused = tsunagu(
        dir,
        port,
        &[
            "--as",
            "aoba-hiroba",
            "council",
            "pack",
            "--meeting",
            &meeting,
            "-o",
            "refused.md",
        ],
    );
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("permission denied"), "{message}");
    assert!(message.contains("要対協"), "{message}");
    assert!(!dir.join("refused.md").exists());
}
