//! Deadlines in business days (営業日): a hub configured with business days skips weekends,
//! national holidays and the year-end closure when it sets a referral's deadlines, keeps an
//! emergency in hours, tells people which calendar each deadline counts in, and escalates only
//! once the business-day deadline has really passed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use time::macros::datetime;
use tsunagu_hub::Settings;
use tsunagu_hub::domain::{JST, Timestamp};
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::*;
use tsunagu_tests::{TestHub, tsunagu, workspace_binary};

use crate::operator::{ChildGuard, free_port, wait_for_port};

/// A `[deadlines]` section as an operator writes it: routine and urgent referrals answered in
/// business days, the other steps in hours as before, emergencies left at their hourly defaults.
const BUSINESS_DAY_CONFIG: &str = "\
[deadlines.routine]
deliver_within_hours = 24
respond_within_business_days = 2
connect_within_business_days = 10
confirm_within_business_days = 15

[deadlines.urgent]
deliver_within_hours = 4
respond_within_business_days = 3
connect_within_hours = 72
confirm_within_hours = 120
";

/// The hub's settings with `BUSINESS_DAY_CONFIG` loaded from a real config file.
fn business_day_deadlines(dir: &Path) -> tsunagu_hub::domain::deadlines::DeadlinePolicy {
    let path = dir.join("hub.toml");
    std::fs::write(&path, BUSINESS_DAY_CONFIG).unwrap();
    Settings::load(Some(&path)).unwrap().deadlines
}

fn jst(at: time::PrimitiveDateTime) -> Timestamp {
    Timestamp::from_offset_date_time(at.assume_offset(JST))
}

fn unit(term: Option<pb::DeadlineTerm>) -> (pb::DeadlineUnit, u32) {
    let term = term.expect("the deadline's term");
    (term.unit(), term.amount)
}

/// Sends a referral of `urgency` from kodomo to the hospital about a fresh consented case, at
/// the hub clock's now.
async fn send_at(hub: &TestHub, urgency: pb::Urgency) -> pb::Referral {
    let kodomo = hub.client("kodomo").await;
    let (case, _) = consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    let mut request = referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent());
    request.urgency = urgency as i32;
    send(&kodomo, request).await.unwrap()
}

fn respond_by(referral: &pb::Referral) -> i64 {
    millis(&referral.deadlines.unwrap().respond_by)
}

#[tokio::test]
async fn a_referral_sent_on_december_28th_with_two_business_days_to_respond_is_due_on_january_5th()
{
    let config = tempfile::tempdir().unwrap();
    let deadlines = business_day_deadlines(config.path());
    let hub = TestHub::start_with(|s| s.deadlines = deadlines).await;
    hub.clock.set(jst(datetime!(2026-12-28 10:00)));

    let referral = send_at(&hub, pb::Urgency::Routine).await;
    assert_eq!(
        respond_by(&referral),
        jst(datetime!(2027-01-05 17:00)).millis()
    );
    // Deliver-by stays in hours: 24 hours after sending, closure or not.
    assert_eq!(
        millis(&referral.deadlines.unwrap().deliver_by),
        millis(&referral.sent_at) + 24 * 3_600_000
    );
    let terms = referral.deadline_terms.unwrap();
    assert_eq!(unit(terms.deliver_by), (pb::DeadlineUnit::Hours, 24));
    assert_eq!(unit(terms.respond_by), (pb::DeadlineUnit::BusinessDays, 2));
    assert_eq!(unit(terms.connect_by), (pb::DeadlineUnit::BusinessDays, 10));

    // The recipient acknowledges delivery; over New Year nothing escalates for the response.
    let hospital = hub.client("hospital").await;
    act(
        &hospital,
        &referral.referral_id,
        pb::ReferralAction::AcknowledgeDelivery,
    )
    .await
    .unwrap();
    hub.clock.set(jst(datetime!(2027-01-05 16:59)));
    let read = get_referral(&hospital, &referral.referral_id)
        .await
        .unwrap();
    let read = read.referral.unwrap();
    assert!(read.overdue.is_empty(), "{:?}", read.overdue);
    assert_eq!(respond_by(&read), respond_by(&referral));
    assert_eq!(read.deadline_terms, Some(terms), "stored with the referral");

    // One minute past 17:00 on January 5th the respond-by timer has passed and escalates.
    hub.clock.set(jst(datetime!(2027-01-05 17:01)));
    let kodomo = hub.client("kodomo").await;
    eventually(
        "the respond-by escalation",
        Duration::from_secs(10),
        async || {
            let events = get_referral(&kodomo, &referral.referral_id)
                .await
                .unwrap()
                .events;
            events
                .iter()
                .any(|e| {
                    e.kind() == pb::ReferralEventKind::Escalated
                        && e.timer() == pb::TimerKind::RespondBy
                })
                .then_some(())
        },
    )
    .await;
    let read = get_referral(&kodomo, &referral.referral_id).await.unwrap();
    let overdue: Vec<_> = read.referral.unwrap().overdue().collect();
    assert_eq!(overdue, vec![pb::TimerKind::RespondBy]);
    hub.stop().await;
}

#[tokio::test]
async fn a_referral_sent_on_april_28th_with_three_business_days_is_due_on_may_7th_and_an_emergency_counts_hours()
 {
    let config = tempfile::tempdir().unwrap();
    let deadlines = business_day_deadlines(config.path());
    let hub = TestHub::start_with(|s| s.deadlines = deadlines).await;

    // 昭和の日 (4/29), the weekend and 5/3–5/5 are skipped: 4/30, 5/6, 5/7.
    hub.clock.set(jst(datetime!(2027-04-28 15:00)));
    let urgent = send_at(&hub, pb::Urgency::Urgent).await;
    assert_eq!(
        respond_by(&urgent),
        jst(datetime!(2027-05-07 17:00)).millis()
    );
    let terms = urgent.deadline_terms.unwrap();
    assert_eq!(unit(terms.respond_by), (pb::DeadlineUnit::BusinessDays, 3));
    assert_eq!(unit(terms.connect_by), (pb::DeadlineUnit::Hours, 72));
    // Connect-by in hours (72 h = 5/1 15:00) would fall before respond-by; it is raised to it.
    assert_eq!(
        millis(&urgent.deadlines.unwrap().connect_by),
        jst(datetime!(2027-05-07 17:00)).millis()
    );

    // An emergency sent the same afternoon and one sent on New Year's Eve count calendar hours.
    let emergency = send_at(&hub, pb::Urgency::Emergency).await;
    let sent = millis(&emergency.sent_at);
    assert_eq!(respond_by(&emergency), sent + 2 * 3_600_000);
    hub.clock.set(jst(datetime!(2026-12-31 22:00)));
    let emergency = send_at(&hub, pb::Urgency::Emergency).await;
    let sent = millis(&emergency.sent_at);
    assert_eq!(respond_by(&emergency), sent + 2 * 3_600_000);
    assert_eq!(
        millis(&emergency.deadlines.unwrap().connect_by),
        sent + 24 * 3_600_000
    );
    let terms = emergency.deadline_terms.unwrap();
    assert_eq!(unit(terms.respond_by), (pb::DeadlineUnit::Hours, 2));
    hub.stop().await;
}

#[tokio::test]
async fn a_deadline_the_sender_sets_is_marked_as_the_senders() {
    let config = tempfile::tempdir().unwrap();
    let deadlines = business_day_deadlines(config.path());
    let hub = TestHub::start_with(|s| s.deadlines = deadlines).await;
    let kodomo = hub.client("kodomo").await;
    let (case, _) = consented_case(&*hub.clock, &kodomo, &["hospital"], &[POSTNATAL_CARE]).await;
    let mut request = referral_request(&case.case_id, "hospital", POSTNATAL_CARE, by_consent());
    request.deadlines = Some(pb::Deadlines {
        respond_by: Some(hours_from_now(&*hub.clock, 30)),
        ..pb::Deadlines::default()
    });
    let referral = send(&kodomo, request).await.unwrap();
    let terms = referral.deadline_terms.unwrap();
    assert_eq!(unit(terms.respond_by), (pb::DeadlineUnit::SetBySender, 0));
    assert_eq!(unit(terms.deliver_by), (pb::DeadlineUnit::Hours, 24));
    hub.stop().await;
}

/// The real `tsunagu-hub serve` in `dir` with a development PKI and `config` as its
/// `TSUNAGU_HUB_CONFIG`.
fn serve_configured_dev_hub(dir: &Path, config: &str) -> (u16, ChildGuard) {
    let hub_binary = workspace_binary("tsunagu-hub", "tsunagu-hub");
    let made = Command::new(&hub_binary)
        .current_dir(dir)
        .args(["certs", "dev", "--dir", "certs-dev"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    std::fs::write(dir.join("hub.toml"), config).unwrap();
    let port = free_port();
    let mut hub = ChildGuard(
        Command::new(&hub_binary)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TSUNAGU_LISTEN", format!("127.0.0.1:{port}"))
            .env("TSUNAGU_HUB_CONFIG", dir.join("hub.toml"))
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, &mut hub.0);
    (port, hub)
}

#[test]
fn the_cli_shows_which_calendar_each_deadline_counts_in() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _hub) = serve_configured_dev_hub(dir.path(), BUSINESS_DAY_CONFIG);
    let demo = tsunagu(dir.path(), port, &["demo"]);
    assert!(demo.status.success(), "{demo:?}");

    let listed = tsunagu(
        dir.path(),
        port,
        &[
            "--as",
            "aoba-kodomo",
            "--json",
            "inbox",
            "--sent",
            "--include-closed",
        ],
    );
    assert!(listed.status.success(), "{listed:?}");
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    // The demo's urgent referral takes the configured deadlines; its routine one sets its own.
    let find = |urgency: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["urgency"] == urgency)
            .unwrap_or_else(|| panic!("a {urgency} referral in {listed}"))
            .clone()
    };
    let urgent = find("urgent");
    assert_eq!(
        urgent["deadline_terms"]["respond_by"]["unit"],
        "business_days"
    );
    assert_eq!(urgent["deadline_terms"]["respond_by"]["amount"], 3);
    assert_eq!(
        urgent["deadline_terms"]["deliver_by"]["label"],
        "4時間 (hours, calendar time)"
    );
    assert_eq!(
        find("routine")["deadline_terms"]["respond_by"]["unit"],
        "set_by_sender"
    );

    let id = urgent["referral_id"].as_str().unwrap();
    let shown = tsunagu(dir.path(), port, &["--as", "aoba-kodomo", "show", id]);
    assert!(shown.status.success(), "{shown:?}");
    let text = String::from_utf8(shown.stdout).unwrap();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("a {name} line in:\n{text}"))
            .to_owned()
    };
    assert!(
        line("respond_by (回答期限)").contains("17:00 JST  [3営業日 (business days, due 17:00)]"),
        "{text}"
    );
    assert!(
        line("deliver_by (受信期限)").contains("[4時間 (hours, calendar time)]"),
        "{text}"
    );
}
