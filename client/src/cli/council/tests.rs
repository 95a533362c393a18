//! The council command line: arguments parsed into the contract, defaults, and the tables.

use std::path::Path;

use clap::Parser;
use tsunagu_proto::v1::Meeting;

use super::actions::{one_municipality, pack_format};
use super::views::meetings_table;
use super::*;
use crate::cli::{Cli, Command};

fn parse(args: &[&str]) -> Result<CouncilCommand, clap::Error> {
    let mut full = vec!["tsunagu", "council"];
    full.extend(args);
    Cli::try_parse_from(full).map(|cli| match cli.command {
        Command::Council(CouncilArgs { command }) => command,
        _ => panic!("not a council command"),
    })
}

#[test]
fn council_register_turns_its_words_into_the_contract() {
    let CouncilCommand::Register(args) = parse(&[
        "register",
        "3f8a51c0",
        "--category",
        "specific-expectant-mother",
        "--lead",
        "aoba-kodomo",
        "--key-person-text",
        "祖母",
        "--review-interval-days",
        "30",
        "--justification",
        "理由",
    ])
    .unwrap() else {
        panic!("not register");
    };
    assert_eq!(
        CaseCategory::from(args.category),
        CaseCategory::SpecificExpectantMother
    );
    assert_eq!(args.review_interval_days, Some(30));
    assert_eq!(args.key_person_text.as_deref(), Some("祖母"));
}

#[test]
fn a_council_registration_cannot_be_general_and_needs_a_justification() {
    let base = ["register", "x", "--lead", "aoba-kodomo"];
    let mut general = base.to_vec();
    general.extend(["--category", "general", "--justification", "j"]);
    assert!(parse(&general).is_err());
    let mut without = base.to_vec();
    without.extend(["--category", "requires-support"]);
    assert!(parse(&without).is_err());
    let mut too_long = base.to_vec();
    too_long.extend([
        "--category",
        "requires-support",
        "--justification",
        "j",
        "--review-interval-days",
        "400",
    ]);
    assert!(parse(&too_long).is_err());
}

#[test]
fn a_meeting_kind_and_its_cases_are_parsed_in_order() {
    let CouncilCommand::Schedule(args) = parse(&[
        "schedule",
        "--municipality",
        "141178",
        "--kind",
        "individual-case",
        "--held-on",
        "2026-04-10",
        "--case",
        "aaaa1111",
        "--case",
        "bbbb2222",
    ])
    .unwrap() else {
        panic!("not schedule");
    };
    assert_eq!(MeetingKind::from(args.kind), MeetingKind::IndividualCase);
    assert_eq!(args.cases, vec!["aaaa1111", "bbbb2222"]);
    assert!(
        parse(&[
            "schedule",
            "--kind",
            "practitioners",
            "--held-on",
            "2026-02-30"
        ])
        .is_err()
    );
}

#[test]
fn the_pack_format_comes_from_the_flag_then_the_extension() {
    assert_eq!(
        pack_format(Some(FormatArg::Html), Path::new("x.md")),
        Format::Html
    );
    assert_eq!(pack_format(None, Path::new("pack.html")), Format::Html);
    assert_eq!(pack_format(None, Path::new("-")), Format::Markdown);
    let CouncilCommand::Pack(args) = parse(&[
        "pack",
        "--meeting",
        "7d0e12ab",
        "--format",
        "markdown",
        "-o",
        "-",
    ])
    .unwrap() else {
        panic!("not pack");
    };
    assert_eq!(args.format, Some(FormatArg::Md));
    assert!(
        parse(&["pack", "--meeting", "7d0e12ab"]).is_err(),
        "-o is required"
    );
}

#[test]
fn a_plan_comes_from_a_file_or_text_not_both() {
    let base = [
        "decide",
        "--meeting",
        "m",
        "--case",
        "c",
        "--outcome",
        "continue",
    ];
    let mut both = base.to_vec();
    both.extend(["--plan-text", "t", "--plan-file", "f"]);
    assert!(parse(&both).is_err());
    let mut text = base.to_vec();
    text.extend(["--plan-text", "役割分担: …", "--lead", "aoba-nursery"]);
    let CouncilCommand::Decide(args) = parse(&text).unwrap() else {
        panic!("not decide");
    };
    assert_eq!(
        DecisionOutcome::from(args.outcome),
        DecisionOutcome::Continue
    );
    assert_eq!(args.lead.as_deref(), Some("aoba-nursery"));
}

#[test]
fn the_default_municipality_is_the_only_council_or_a_question() {
    let one = vec!["141178".to_owned()];
    assert_eq!(
        one_municipality(None, &one, "aoba-kodomo", "a member").unwrap(),
        "141178"
    );
    let err = one_municipality(None, &[], "aoba-hiroba", "a member").unwrap_err();
    assert!(err.to_string().contains("--municipality"), "{err}");
    let two = vec!["131016".to_owned(), "141178".to_owned()];
    let err = one_municipality(None, &two, "x", "a member").unwrap_err();
    assert!(err.to_string().contains("131016, 141178"), "{err}");
    assert_eq!(
        one_municipality(Some("131016".into()), &one, "x", "a member").unwrap(),
        "131016"
    );
}

#[test]
fn the_meetings_table_shows_short_ids_and_kinds() {
    let meeting = Meeting {
        meeting_id: "0190f3a2-7b1c-7def-8000-00009c41e7d2".into(),
        municipality: "141178".into(),
        kind: MeetingKind::Practitioners.into(),
        held_on: "2026-04-08".into(),
        case_ids: vec!["a".into(), "b".into()],
        scheduled_at: None,
        scheduled_by: "aoba-kodomo".into(),
    };
    let text = meetings_table(&[meeting]).to_string();
    assert!(
        text.contains("9c41e7d2  2026-04-08  practitioners (実務者会議)  2"),
        "{text}"
    );
}
