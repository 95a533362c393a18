//! The README's walk-throughs, run as printed against the development hub: a newcomer who
//! copies them on any day gets what the README says.

use std::path::Path;
use std::process::Command;

use tsunagu_tests::fixtures::print_tools_or_skip;
use tsunagu_tests::workspace_binary;

use crate::sealing::serve_dev_hub;

/// The shell code of the first ```sh block after the line `after` in the README.
fn readme_block(after: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("the README is readable");
    let from = readme
        .find(after)
        .unwrap_or_else(|| panic!("the README has {after:?}"));
    let rest = &readme[from..];
    let start = rest.find("```sh\n").expect("a sh block follows") + "```sh\n".len();
    let end = rest[start..].find("```").expect("the block ends") + start;
    rest[start..end].to_owned()
}

/// Runs `blocks` (README shell code) after the README's own `tsunagu` alias, in `dir`, as a
/// newcomer would against the development hub on `port`: no config of the machine's user, a
/// client state directory of its own. `env` adds variables. Returns stdout; fails the test with
/// both outputs when the script fails.
fn run_as_printed(dir: &Path, port: u16, env: &[(&str, &std::ffi::OsStr)], blocks: &str) -> String {
    let script = format!(
        "set -euo pipefail\n\
         tsunagu() {{ \"$TSUNAGU_BIN\" --hub \"https://127.0.0.1:$HUB_PORT\" \"$@\"; }}\n\
         {blocks}\n"
    );
    let run = Command::new("bash")
        .current_dir(dir)
        .env_remove("TSUNAGU_CONFIG")
        .env_remove("TSUNAGU_CERTS_DEV")
        .env_remove("TSUNAGU_KNOWN_KEYS")
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("TSUNAGU_BIN", workspace_binary("tsunagu-client", "tsunagu"))
        .env("HUB_PORT", port.to_string())
        .envs(env.iter().copied())
        .args(["-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    stdout
}

#[test]
fn the_readme_council_walk_through_run_as_printed_gives_a_pack_with_the_case_and_a_recorded_decision()
 {
    let Some(print) = print_tools_or_skip("the README 要対協 walk-through") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (port, _hub) = serve_dev_hub(dir.path());
    let step_by_step = readme_block("Or step by step");
    let council = readme_block("## 要対協 meeting packs");
    // `tsunagu` as the README's alias means it, on this hub; chromium as root needs
    // --no-sandbox (the README says so) and, here, a profile of its own.
    let stdout = run_as_printed(
        dir.path(),
        port,
        &[("CHROMIUM_BIN", print.chromium.as_os_str())],
        &format!(
            "chromium() {{ \"$CHROMIUM_BIN\" --no-sandbox --disable-gpu --no-first-run \
             --user-data-dir=\"$PWD/chromium-profile\" \"$@\"; }}\n\
             {step_by_step}\n{council}\n\
             printf '%s\\n' \"$CASE\" > case-id\n\
             printf '%s\\n' \"$MEETING\" > meeting-id"
        ),
    );

    let case = std::fs::read_to_string(dir.path().join("case-id")).unwrap();
    let case = case.trim();
    let meeting = std::fs::read_to_string(dir.path().join("meeting-id")).unwrap();
    assert!(
        !meeting.trim().is_empty() && meeting.trim() != "null",
        "{stdout}"
    );
    // The nursery's pack holds the case, with the キーパーソン its keys open.
    let pack = std::fs::read_to_string(dir.path().join("pack.md")).unwrap();
    assert!(pack.contains(case), "{pack}");
    assert!(pack.contains("母方祖母（近隣在住）"), "{pack}");
    // The printed pack: a cover and the case's page.
    let pdf = dir.path().join("pack.pdf");
    assert_eq!(print.pages(&pdf), 2, "{stdout}");
    // The decision is recorded: the next review moved 90 days past the meeting day, which the
    // last command printed.
    let next_review = stdout.lines().last().unwrap_or_default().trim();
    let today = time::OffsetDateTime::now_utc().to_offset(time::macros::offset!(+9));
    let expected = (today.date() + time::Duration::days(90)).to_string();
    // A run across Japan's midnight may see the next day.
    let tomorrow = (today.date() + time::Duration::days(91)).to_string();
    assert!(
        next_review == expected || next_review == tomorrow,
        "next review {next_review:?}, expected {expected}\n{stdout}"
    );
}

#[test]
fn the_readme_outcomes_commands_run_as_printed_after_the_quick_start() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _hub) = serve_dev_hub(dir.path());
    let step_by_step = readme_block("Or step by step");
    let outcomes = readme_block("## 成果 (outcomes)");
    let stdout = run_as_printed(
        dir.path(),
        port,
        &[],
        &format!("{step_by_step}\n{outcomes}"),
    );
    // The quick start's referral connected and was confirmed: the table counts it.
    assert!(stdout.contains("aoba-hospital"), "{stdout}");
    let csv = std::fs::read(dir.path().join("outcomes.csv")).unwrap();
    assert!(csv.starts_with(b"\xef\xbb\xbf"));
    let html = std::fs::read_to_string(dir.path().join("outcomes.html")).unwrap();
    assert!(html.contains("成果報告"));
    let md = std::fs::read_to_string(dir.path().join("outcomes.md")).unwrap();
    assert!(md.contains("## 月別"));
}

#[test]
fn the_readme_close_with_reason_commands_run_as_printed_after_the_quick_start() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _hub) = serve_dev_hub(dir.path());
    let step_by_step = readme_block("Or step by step");
    let close = readme_block("When the family did not connect");
    let stdout = run_as_printed(
        dir.path(),
        port,
        &[],
        &format!(
            "{step_by_step}\n{close}\n\
             tsunagu --as aoba-kodomo --json followups > followups.json"
        ),
    );
    // Before the close the worklist asked for a next step; after it, the referral shows the
    // close and its sealed detail opens for the sender.
    assert!(stdout.contains("次の支援が必要"), "{stdout}");
    assert!(stdout.contains("family_declined_all_support"), "{stdout}");
    assert!(
        stdout.contains("本人と電話で確認。産後ケアは不要とのこと"),
        "{stdout}"
    );
    let followups = std::fs::read_to_string(dir.path().join("followups.json")).unwrap();
    assert!(!followups.contains("next_step_needed"), "{followups}");
}

#[test]
fn the_readme_reseal_commands_run_as_printed_open_the_header_for_the_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _hub) = serve_dev_hub(dir.path());
    let reseal = readme_block("## 再封緘 (re-sealing)");
    let stdout = run_as_printed(dir.path(), port, &[], &reseal);
    // Before the re-seal the coordinator's view says it cannot open the header; after it, the
    // last command prints the header's content.
    let (before, after) = stdout
        .split_once("再封緘しました")
        .unwrap_or_else(|| panic!("the re-seal reported nothing:\n{stdout}"));
    assert!(!before.contains("氏名: 青葉 花子（架空）"), "{stdout}");
    assert!(after.contains("氏名: 青葉 花子（架空）"), "{stdout}");
}

#[test]
fn the_readme_transfer_walk_through_runs_as_printed_after_the_quick_start() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _hub) = serve_dev_hub(dir.path());
    let step_by_step = readme_block("Or step by step");
    let transfer = readme_block("The development hub knows one municipality. With it running");
    let hub_bin = workspace_binary("tsunagu-hub", "tsunagu-hub");
    let stdout = run_as_printed(
        dir.path(),
        port,
        &[("HUB_BIN", hub_bin.as_os_str())],
        &format!(
            "tsunagu-hub() {{ \"$HUB_BIN\" \"$@\"; }}\n{step_by_step}\n{transfer}\n\
             printf '%s\\n' \"$CASE\" > case-id"
        ),
    );
    let case = std::fs::read_to_string(dir.path().join("case-id")).unwrap();
    // B's coordinator opened A's header after the re-seal; the transfer list shows it accepted.
    let (_, after) = stdout
        .split_once("再封緘しました")
        .unwrap_or_else(|| panic!("no re-seal:\n{stdout}"));
    assert!(after.contains("氏名・住所…"), "{stdout}");
    assert!(stdout.contains("\"accepted\""), "{stdout}");
    assert!(stdout.contains(case.trim()), "{stdout}");
}
