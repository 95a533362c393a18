//! The web console (`tsunagu console`) against the real development hub: a coordinator's day
//! and a recipient's answer clicked through in headless Chromium, and the console's guard,
//! forms and privacy checked over plain HTTP as an attacker's page or a curious agency would.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::Locator;
use tsunagu_tests::browser::Browser;
use tsunagu_tests::http::{self, Answer};
use tsunagu_tests::{tsunagu, workspace_binary};

use super::operator::ChildGuard;
use super::sealing::serve_dev_hub;

const UNREADABLE: &str = "この機関では開封できません";

/// A `tsunagu console` process for one development agency, and the URL it printed.
pub(crate) struct ConsoleProcess {
    port: u16,
    pub(crate) login_url: String,
    _child: ChildGuard,
}

impl ConsoleProcess {
    pub(crate) fn start(dir: &Path, hub_port: u16, agency: &str) -> ConsoleProcess {
        let mut child = Command::new(workspace_binary("tsunagu-client", "tsunagu"))
            .current_dir(dir)
            .env_remove("TSUNAGU_CONFIG")
            .env_remove("TSUNAGU_CERTS_DEV")
            .env_remove("TSUNAGU_KNOWN_KEYS")
            .env("XDG_STATE_HOME", dir.join("state"))
            .args(["--hub", &format!("https://127.0.0.1:{hub_port}")])
            .args(["--as", agency, "console", "--listen", "127.0.0.1:0"])
            .args(["--staff-name", "青葉 花子", "--staff-role", "保健師"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let login_url = line.trim().to_owned();
        assert!(
            login_url.starts_with("http://127.0.0.1:") && login_url.contains("/login?token="),
            "the console printed {login_url:?}"
        );
        let port = login_url["http://127.0.0.1:".len()..]
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        ConsoleProcess {
            port,
            login_url,
            _child: ChildGuard(child),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Signs in over plain HTTP: the session cookie.
    pub(crate) async fn session(&self) -> String {
        http::log_in(self.port, &self.login_url[self.url("").len()..]).await
    }

    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        form: Option<&str>,
    ) -> Answer {
        http::request(self.port, method, path, headers, form).await
    }

    /// A page read with the session, and the hidden fields of the form posting to `action`.
    pub(crate) async fn form_fields(
        &self,
        cookie: &str,
        page: &str,
        action: &str,
    ) -> HashMap<String, String> {
        let answer = self.request("GET", page, &[("Cookie", cookie)], None).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let start = answer
            .body
            .find(&format!("action=\"{action}\""))
            .unwrap_or_else(|| panic!("no form posting to {action} on {page}"));
        let form = &answer.body[start..];
        let form = &form[..form.find("</form>").unwrap()];
        let mut fields = HashMap::new();
        for input in form.split("<input type=\"hidden\" ").skip(1) {
            let name = between(input, "name=\"", "\"");
            let value = between(input, "value=\"", "\"");
            fields.insert(name.to_owned(), value.to_owned());
        }
        fields
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).unwrap() + start.len();
    let to = text[from..].find(end).unwrap();
    &text[from..from + to]
}

/// Form fields as an urlencoded body.
pub(crate) fn encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{name}={}", percent(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs the CLI with `--json` and returns its answer.
pub(crate) fn cli_json(dir: &Path, port: u16, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let output = tsunagu(dir, port, &all);
    assert!(output.status.success(), "{args:?}: {output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

pub(crate) fn cli(dir: &Path, port: u16, args: &[&str]) {
    let output = tsunagu(dir, port, args);
    assert!(output.status.success(), "{args:?}: {output:?}");
}

/// A 特定妊婦 case opened by the health centre, with the family's consent to refer to the
/// hospital for 産後ケア: the case id.
pub(crate) fn consented_case(dir: &Path, port: u16, header: &str) -> String {
    let case = cli_json(
        dir,
        port,
        &[
            "--as",
            "aoba-kodomo",
            "case",
            "open",
            "--municipality",
            "141178",
            "--category",
            "specific-expectant-mother",
            "--stage",
            "pregnancy",
            "--header-text",
            header,
        ],
    );
    let case_id = case["case_id"].as_str().unwrap().to_owned();
    cli(
        dir,
        port,
        &[
            "--as",
            "aoba-kodomo",
            "consent",
            "record",
            &case_id,
            "--given-by",
            "person",
            "--method",
            "written",
            "--recipient",
            "aoba-hospital",
            "--purpose",
            "postnatal_care",
        ],
    );
    case_id
}

/// A referral from the health centre to the hospital, with every deadline `seconds` from now.
pub(crate) fn refer(
    dir: &Path,
    port: u16,
    case_id: &str,
    body: &str,
    seconds: Option<i64>,
) -> String {
    let mut args = vec![
        "--as",
        "aoba-kodomo",
        "refer",
        case_id,
        "--to",
        "aoba-hospital",
        "--purpose",
        "postnatal_care",
        "--body-text",
        body,
    ];
    let due;
    if let Some(seconds) = seconds {
        due = (time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        for flag in [
            "--deliver-by",
            "--respond-by",
            "--connect-by",
            "--confirm-by",
        ] {
            args.extend([flag, due.as_str()]);
        }
    }
    cli_json(dir, port, &args)["referral_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_confirms_an_overdue_handoff_and_a_recipient_answers_live() {
    let Some(coordinator) = Browser::start_or_skip("console coordinator's day").await else {
        return;
    };
    let Some(recipient) = Browser::start_or_skip("console recipient").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (port, _hub) = serve_dev_hub(dir.path());
    let case_id = consented_case(dir.path(), port, "氏名: 青葉 はな（MARKER-HEADER）");
    let overdue = refer(
        dir.path(),
        port,
        &case_id,
        "産後ケアの依頼です（MARKER-BODY）",
        Some(3),
    );
    cli(
        dir.path(),
        port,
        &["--as", "aoba-hospital", "ack", &overdue, "accept"],
    );
    cli(
        dir.path(),
        port,
        &["--as", "aoba-hospital", "ack", &overdue, "connected"],
    );
    tokio::time::sleep(Duration::from_secs(4)).await;

    // The coordinator opens the console with its token URL and sees the overdue confirmation.
    let kodomo = ConsoleProcess::start(dir.path(), port, "aoba-kodomo");
    let c = &coordinator.client;
    c.goto(&kodomo.login_url).await.unwrap();
    let row = format!("tr.followup[data-referral=\"{overdue}\"]");
    let text = coordinator.text(&row).await;
    assert!(text.contains("超過"), "{text}");
    assert!(text.contains("産後ケア"), "{text}");
    let section = coordinator.text("#layer-未確認").await;
    assert!(
        section.contains(&tsunagu_client::render::short_id(&overdue).to_owned()),
        "{section}"
    );
    let before: usize = coordinator.text("#worklist-total").await.parse().unwrap();
    coordinator.screenshot("01-worklist").await;
    let preview = coordinator.print_preview("01-worklist-print").await;
    assert!(std::fs::metadata(preview).unwrap().len() > 1000);

    // It opens the referral, reads the body opened on its own machine, and confirms.
    c.find(Locator::Css(&format!(
        "{row} a[href=\"/referrals/{overdue}\"]"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    assert!(coordinator.text("#body").await.contains("MARKER-BODY"));
    assert_eq!(coordinator.text("#party").await, "紹介元");
    coordinator.screenshot("02-referral").await;
    c.find(Locator::Css("button[data-action=\"confirm\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    coordinator
        .wait_until(Duration::from_secs(10), "the confirmation", |s| {
            s.contains("<div class=\"name\">確認</div><div class=\"state ok\">確認済</div>")
        })
        .await;
    assert!(
        c.find(Locator::Css("button[data-action]")).await.is_err(),
        "nothing more to do"
    );

    // The worklist has shrunk.
    c.goto(&kodomo.url("/")).await.unwrap();
    let after: usize = coordinator.text("#worklist-total").await.parse().unwrap();
    assert_eq!(after, before - 1);
    assert!(c.find(Locator::Css(&row)).await.is_err());

    // A new referral: the coordinator watches its page while the hospital answers in its own
    // console; the page follows without a reload.
    let live = refer(
        dir.path(),
        port,
        &case_id,
        "一時保育の相談（MARKER-LIVE）",
        None,
    );
    c.goto(&kodomo.url(&format!("/referrals/{live}")))
        .await
        .unwrap();
    assert!(
        coordinator
            .text("[data-layer=\"応答\"]")
            .await
            .contains("依頼中")
    );
    c.execute("window.notReloaded = true;", vec![])
        .await
        .unwrap();

    let hospital = ConsoleProcess::start(dir.path(), port, "aoba-hospital");
    let h = &recipient.client;
    h.goto(&hospital.login_url).await.unwrap();
    h.goto(&hospital.url("/inbox")).await.unwrap();
    recipient.screenshot("03-inbox").await;
    h.find(Locator::Css(&format!("a[href=\"/referrals/{live}\"]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(recipient.text("#body").await.contains("MARKER-LIVE"));
    assert_eq!(recipient.text("#party").await, "紹介先");
    for action in ["acknowledge_delivery", "accept"] {
        h.wait()
            .for_element(Locator::Css(&format!("button[data-action=\"{action}\"]")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        recipient
            .wait_until(Duration::from_secs(10), action, |s| {
                !s.contains(&format!("data-action=\"{action}\""))
            })
            .await;
    }
    recipient.screenshot("04-referral-recipient").await;

    coordinator
        .wait_until(Duration::from_secs(15), "the live update", |s| {
            s.contains("data-refreshed") && s.contains(">受入<")
        })
        .await;
    let still = c
        .execute("return window.notReloaded === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        still,
        serde_json::Value::Bool(true),
        "the page was not reloaded"
    );
    assert!(
        coordinator
            .text("[data-layer=\"受信\"]")
            .await
            .contains("受信確認済")
    );

    // The other pages, to look at.
    c.goto(&kodomo.url(&format!("/cases/{case_id}")))
        .await
        .unwrap();
    assert!(
        coordinator
            .text("#case-header")
            .await
            .contains("MARKER-HEADER")
    );
    coordinator.screenshot("05-case").await;
    c.goto(&kodomo.url("/sent")).await.unwrap();
    coordinator.screenshot("06-sent").await;
    c.goto(&kodomo.url("/council")).await.unwrap();
    coordinator.screenshot("07-council").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_session_csrf_token_or_the_consoles_own_host_and_origin_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _hub) = serve_dev_hub(dir.path());
    let case_id = consented_case(dir.path(), port, "氏名: 青葉 はな");
    let console = ConsoleProcess::start(dir.path(), port, "aoba-kodomo");
    let cookie = console.session().await;
    let login_path = &console.login_url[console.url("").len()..];
    assert_eq!(
        console.request("GET", login_path, &[], None).await.status,
        401,
        "the login token works once"
    );

    let page = format!("/cases/{case_id}");
    let action = format!("/cases/{case_id}/referrals");
    let fields = console.form_fields(&cookie, &page, &action).await;
    let origin = console.url("");
    let form = |csrf: &str| {
        encode(&[
            ("csrf", csrf),
            ("idem", fields["idem"].as_str()),
            ("to", "aoba-hospital"),
            ("purpose", "postnatal_care"),
            ("urgency", "routine"),
            ("basis", "consent"),
            ("body", "MARKER-REFUSED"),
        ])
    };
    let good = form(&fields["csrf"]);
    let refused = [
        (
            "no CSRF token",
            vec![("Cookie", cookie.as_str()), ("Origin", origin.as_str())],
            form(""),
        ),
        (
            "a wrong CSRF token",
            vec![("Cookie", cookie.as_str()), ("Origin", origin.as_str())],
            form("0123456789abcdef"),
        ),
        (
            "a foreign Origin",
            vec![
                ("Cookie", cookie.as_str()),
                ("Origin", "http://evil.example"),
            ],
            good.clone(),
        ),
        ("no Origin", vec![("Cookie", cookie.as_str())], good.clone()),
        (
            "a foreign Host",
            vec![
                ("Cookie", cookie.as_str()),
                ("Origin", origin.as_str()),
                ("Host", "evil.example"),
            ],
            good.clone(),
        ),
        (
            "no session cookie",
            vec![("Origin", origin.as_str())],
            good.clone(),
        ),
    ];
    for (what, headers, body) in refused {
        let answer = console
            .request("POST", &action, &headers, Some(&body))
            .await;
        assert!(
            [401, 403, 421].contains(&answer.status),
            "{what}: {} {}",
            answer.status,
            answer.body
        );
    }
    // A page read with a foreign Host (DNS rebinding) or without the cookie shows nothing.
    for headers in [
        vec![("Cookie", cookie.as_str()), ("Host", "evil.example:80")],
        vec![],
    ] {
        let answer = console.request("GET", &page, &headers, None).await;
        assert!([401, 421].contains(&answer.status), "{}", answer.status);
        assert!(!answer.body.contains(&case_id));
    }
    let none = cli_json(
        dir.path(),
        port,
        &["--as", "aoba-kodomo", "inbox", "--sent"],
    );
    assert_eq!(
        none.as_array().unwrap().len(),
        0,
        "nothing reached the hub: {none}"
    );

    // Every answer carries the strict policy and is never cached.
    let answer = console
        .request("GET", "/", &[("Cookie", &cookie)], None)
        .await;
    assert_eq!(answer.status, 200);
    let csp = &answer.headers["content-security-policy"];
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(answer.headers["cache-control"], "no-store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_submitted_twice_sends_one_referral_one_note_and_one_action() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _hub) = serve_dev_hub(dir.path());
    let case_id = consented_case(dir.path(), port, "氏名: 青葉 はな");
    let console = ConsoleProcess::start(dir.path(), port, "aoba-kodomo");
    let cookie = console.session().await;
    let origin = console.url("");
    let headers = [("Cookie", cookie.as_str()), ("Origin", origin.as_str())];
    let page = format!("/cases/{case_id}");

    let action = format!("/cases/{case_id}/referrals");
    let fields = console.form_fields(&cookie, &page, &action).await;
    let body = encode(&[
        ("csrf", &fields["csrf"]),
        ("idem", &fields["idem"]),
        ("to", "aoba-hospital"),
        ("purpose", "postnatal_care"),
        ("urgency", "urgent"),
        ("basis", "consent"),
        ("body", "産後ケアの依頼"),
    ]);
    let (first, second) = tokio::join!(
        console.request("POST", &action, &headers, Some(&body)),
        console.request("POST", &action, &headers, Some(&body))
    );
    assert_eq!(first.status, 303, "{}", first.body);
    assert_eq!(second.status, 303, "{}", second.body);
    assert_eq!(first.headers["location"], second.headers["location"]);
    let referral_path = first.headers["location"].clone();
    let sent = cli_json(
        dir.path(),
        port,
        &["--as", "aoba-kodomo", "inbox", "--sent"],
    );
    assert_eq!(sent.as_array().unwrap().len(), 1, "{sent}");

    let action = format!("/cases/{case_id}/notes");
    let fields = console.form_fields(&cookie, &page, &action).await;
    let body = encode(&[
        ("csrf", &fields["csrf"]),
        ("idem", &fields["idem"]),
        ("to", "aoba-hospital"),
        ("purpose", "postnatal_care"),
        ("basis", "consent"),
        ("body", "連絡です"),
    ]);
    for _ in 0..2 {
        let answer = console
            .request("POST", &action, &headers, Some(&body))
            .await;
        assert_eq!(answer.status, 303, "{}", answer.body);
    }
    let thread = cli_json(
        dir.path(),
        port,
        &["--as", "aoba-kodomo", "case", "show", &case_id],
    );
    let notes = thread.to_string().matches("\"note_id\"").count();
    assert_eq!(notes, 1, "{thread}");

    let hospital = ConsoleProcess::start(dir.path(), port, "aoba-hospital");
    let cookie = hospital.session().await;
    let origin = hospital.url("");
    let headers = [("Cookie", cookie.as_str()), ("Origin", origin.as_str())];
    let action = format!("{referral_path}/actions");
    let fields = hospital.form_fields(&cookie, &referral_path, &action).await;
    assert_eq!(fields["action"], "acknowledge_delivery");
    let body = encode(&[
        ("csrf", &fields["csrf"]),
        ("idem", &fields["idem"]),
        ("action", "acknowledge_delivery"),
    ]);
    for _ in 0..2 {
        let answer = hospital
            .request("POST", &action, &headers, Some(&body))
            .await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.headers["location"], referral_path);
    }
    let referral_id = referral_path.trim_start_matches("/referrals/");
    let shown = cli_json(
        dir.path(),
        port,
        &["--as", "aoba-kodomo", "show", referral_id],
    );
    let acknowledgements = shown.to_string().matches("acknowledge_delivery").count();
    assert_eq!(acknowledgements, 1, "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_outside_a_case_sees_none_of_it_and_an_unreadable_field_shows_the_placeholder() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _hub) = serve_dev_hub(dir.path());
    let case_id = consented_case(dir.path(), port, "氏名: 青葉 はな（MARKER-HEADER）");
    let referral_id = refer(dir.path(), port, &case_id, "本文（MARKER-BODY）", None);

    let hiroba = ConsoleProcess::start(dir.path(), port, "aoba-hiroba");
    let cookie = hiroba.session().await;
    let get = |path: String| {
        let cookie = cookie.clone();
        let hiroba = &hiroba;
        async move {
            hiroba
                .request("GET", &path, &[("Cookie", &cookie)], None)
                .await
        }
    };
    let random = uuid::Uuid::new_v4();
    for (real, missing) in [
        (
            format!("/referrals/{referral_id}"),
            format!("/referrals/{random}"),
        ),
        (format!("/cases/{case_id}"), format!("/cases/{random}")),
        (
            format!("/referrals/{referral_id}"),
            "/referrals/not-an-id".to_owned(),
        ),
    ] {
        let (real, missing) = (get(real).await, get(missing).await);
        assert_eq!(real.status, 404);
        assert_eq!((real.status, &real.body), (missing.status, &missing.body));
        assert!(!real.body.contains("MARKER"));
    }
    for path in [
        "/",
        "/inbox",
        "/sent",
        "/cases",
        "/inbox?stage=all",
        "/council",
    ] {
        let answer = get(path.to_owned()).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert!(!answer.body.contains(&case_id), "{path} shows the case");
        assert!(
            !answer.body.contains(&referral_id),
            "{path} shows the referral"
        );
    }

    // The hospital takes part through the referral, but the header was sealed before it did:
    // the page shows the placeholder where the header would be, and the body it can open.
    let hospital = ConsoleProcess::start(dir.path(), port, "aoba-hospital");
    let cookie = hospital.session().await;
    let case = hospital
        .request(
            "GET",
            &format!("/cases/{case_id}"),
            &[("Cookie", &cookie)],
            None,
        )
        .await;
    assert_eq!(case.status, 200, "{}", case.body);
    assert!(case.body.contains(UNREADABLE), "{}", case.body);
    assert!(!case.body.contains("MARKER-HEADER"));
    let referral = hospital
        .request(
            "GET",
            &format!("/referrals/{referral_id}"),
            &[("Cookie", &cookie)],
            None,
        )
        .await;
    assert_eq!(referral.status, 200);
    assert!(referral.body.contains("MARKER-BODY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_hub_and_a_suspended_agency_each_get_a_page_that_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (port, hub) = serve_dev_hub(dir.path());
    let console = ConsoleProcess::start(dir.path(), port, "aoba-hiroba");
    let cookie = console.session().await;

    let suspended = Command::new(workspace_binary("tsunagu-hub", "tsunagu-hub"))
        .current_dir(dir.path())
        .args(["agency", "suspend", "aoba-hiroba"])
        .output()
        .unwrap();
    assert!(suspended.status.success(), "{suspended:?}");
    let answer = console
        .request("GET", "/", &[("Cookie", &cookie)], None)
        .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(
        answer.body.contains("証明書がハブに受け付けられません"),
        "{}",
        answer.body
    );
    assert!(answer.body.contains("運用担当者に連絡"), "{}", answer.body);

    drop(hub);
    let answer = console
        .request("GET", "/inbox", &[("Cookie", &cookie)], None)
        .await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(
        answer.body.contains("ハブに接続できません"),
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains("二重には記録されません"),
        "{}",
        answer.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_not_connected_referral_offers_its_sender_the_close_form_and_the_close_takes_it_off_the_page()
 {
    let dir = tempfile::tempdir().unwrap();
    let (port, _hub) = serve_dev_hub(dir.path());
    let case_id = consented_case(dir.path(), port, "氏名: 青葉 はな");
    let referral_id = refer(dir.path(), port, &case_id, "産後ケアの依頼", None);
    cli(
        dir.path(),
        port,
        &["--as", "aoba-hospital", "ack", &referral_id, "accept"],
    );
    cli(
        dir.path(),
        port,
        &[
            "--as",
            "aoba-hospital",
            "ack",
            &referral_id,
            "not-connected",
            "--not-connected-reason",
            "declined-by-family",
        ],
    );
    cli(
        dir.path(),
        port,
        &["--as", "aoba-kodomo", "confirm", &referral_id],
    );
    let path = format!("/referrals/{referral_id}");
    let action = format!("{path}/actions");

    // The recipient is offered nothing; the sender the close, with its reasons.
    let hospital = ConsoleProcess::start(dir.path(), port, "aoba-hospital");
    let cookie = hospital.session().await;
    let page = hospital
        .request("GET", &path, &[("Cookie", cookie.as_str())], None)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("close_with_reason"), "{}", page.body);

    let console = ConsoleProcess::start(dir.path(), port, "aoba-kodomo");
    let cookie = console.session().await;
    let origin = console.url("");
    let headers = [("Cookie", cookie.as_str()), ("Origin", origin.as_str())];
    let page = console
        .request("GET", &path, &[("Cookie", cookie.as_str())], None)
        .await;
    assert!(page.body.contains("次の支援が必要"), "{}", page.body);
    assert!(
        page.body.contains("family_declined_all_support"),
        "{}",
        page.body
    );
    let fields = console.form_fields(&cookie, &path, &action).await;
    assert_eq!(fields["action"], "close_with_reason");
    let body = encode(&[
        ("csrf", &fields["csrf"]),
        ("idem", &fields["idem"]),
        ("action", "close_with_reason"),
        ("close_reason", "family_declined_all_support"),
        ("reason_text", "支援の案内は継続"),
        ("reason_detail", "本人と電話で確認。産後ケアは不要"),
        ("note", ""),
    ]);
    let answer = console
        .request("POST", &action, &headers, Some(&body))
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);

    let page = console
        .request("GET", &path, &[("Cookie", cookie.as_str())], None)
        .await;
    assert!(page.body.contains("理由を記録して終結"), "{}", page.body);
    assert!(
        page.body.contains("本人と電話で確認。産後ケアは不要"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("value=\"close_with_reason\""),
        "{}",
        page.body
    );
    let shown = cli_json(
        dir.path(),
        port,
        &["--as", "aoba-hospital", "show", &referral_id, "--reveal"],
    );
    assert_eq!(
        shown["referral"]["closed_with_reason"]["reason_code"], "family_declined_all_support",
        "{shown}"
    );
    assert!(
        shown
            .to_string()
            .contains("本人と電話で確認。産後ケアは不要"),
        "{shown}"
    );
}
