//! 移管 through the real binaries: the `tsunagu transfer` commands and the console's transfer
//! page against the development hub, with 千代田区's coordinator and lead agency registered by
//! the operator.

use std::path::Path;

use tsunagu_tests::{MUNICIPALITY, OTHER_MUNICIPALITY, tsunagu, workspace_binary};

use crate::console::{ConsoleProcess, encode};
use crate::sealing::serve_dev_hub;

/// Runs the real `tsunagu-hub` operator command in `dir` (the development hub's directory).
fn operator(dir: &Path, args: &[&str]) {
    let made = std::process::Command::new(workspace_binary("tsunagu-hub", "tsunagu-hub"))
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(args)
        .output()
        .unwrap();
    assert!(made.status.success(), "tsunagu-hub {args:?}: {made:?}");
}

/// Runs the real `tsunagu` CLI and returns its stdout, failing the test when it fails.
fn cli(dir: &Path, port: u16, args: &[&str]) -> String {
    let run = tsunagu(dir, port, args);
    assert!(run.status.success(), "tsunagu {args:?}: {run:?}");
    String::from_utf8(run.stdout).unwrap()
}

/// The development hub knows one municipality: the operator registers 千代田区's coordinator
/// and a lead agency, issues their certificates, and each publishes an age key.
fn chiyoda_on_dev_hub(dir: &Path, port: u16) {
    operator(
        dir,
        &[
            "agency",
            "add",
            "chiyoda-kodomo",
            "--kind",
            "health_centre",
            "--name",
            "千代田区こども家庭センター",
            "--municipality",
            OTHER_MUNICIPALITY,
            "--council",
            OTHER_MUNICIPALITY,
            "--coordinator-of",
            OTHER_MUNICIPALITY,
        ],
    );
    operator(
        dir,
        &[
            "agency",
            "add",
            "chiyoda-hoken",
            "--kind",
            "health_centre",
            "--name",
            "千代田保健所",
            "--municipality",
            OTHER_MUNICIPALITY,
        ],
    );
    for agency in ["chiyoda-kodomo", "chiyoda-hoken"] {
        operator(
            dir,
            &[
                "certs",
                "issue",
                "--ca-cert",
                "certs-dev/ca.pem",
                "--ca-key",
                "certs-dev/ca.key",
                "--agency",
                agency,
                "--out-dir",
                "certs-dev/agencies",
            ],
        );
        cli(dir, port, &["--as", agency, "keys", "init"]);
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

#[test]
fn the_cli_walks_a_transfer_from_proposal_to_a_new_case_the_receiving_lead_agency_opens() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (port, _hub) = serve_dev_hub(dir);
    chiyoda_on_dev_hub(dir, port);

    let case = json(&cli(
        dir,
        port,
        &[
            "--as",
            "aoba-kodomo",
            "--json",
            "case",
            "open",
            "--municipality",
            MUNICIPALITY,
            "--category",
            "requires-support",
            "--stage",
            "infancy",
            "--header-text",
            "氏名: 青葉花子",
        ],
    ));
    let case_id = case["case_id"].as_str().unwrap().to_owned();
    let proposed = json(&cli(
        dir,
        port,
        &[
            "--as",
            "aoba-kodomo",
            "--json",
            "transfer",
            "propose",
            &case_id,
            "--to",
            OTHER_MUNICIPALITY,
            "--basis",
            "vital-interest",
            "--justification",
            "転居後も支援を途切れさせないため",
            "--note-text",
            "引継ぎ事項: 週1回の家庭訪問を継続",
        ],
    ));
    assert_eq!(proposed["state"], "proposed");
    let id = proposed["transfer_id"].as_str().unwrap().to_owned();
    let short = &id[id.len() - 8..];

    // B's worklist, in Japanese; the note opens with B's key; receipt, then acceptance.
    let table = cli(
        dir,
        port,
        &["--as", "chiyoda-kodomo", "transfer", "list", "--open"],
    );
    assert!(
        table.contains("移管ID") && table.contains(short) && table.contains("移管依頼中"),
        "{table}"
    );
    let followups = cli(dir, port, &["--as", "chiyoda-kodomo", "followups"]);
    assert!(
        followups.contains("移管 (対応が必要)") && followups.contains(short),
        "{followups}"
    );
    let shown = cli(
        dir,
        port,
        &[
            "--as",
            "chiyoda-kodomo",
            "transfer",
            "show",
            short,
            "--reveal",
        ],
    );
    assert!(shown.contains("週1回の家庭訪問"), "{shown}");
    cli(
        dir,
        port,
        &["--as", "chiyoda-kodomo", "transfer", "ack", short],
    );
    let accepted = json(&cli(
        dir,
        port,
        &[
            "--as",
            "chiyoda-kodomo",
            "--json",
            "transfer",
            "accept",
            short,
            "--lead",
            "chiyoda-hoken",
            "--header-text",
            "氏名: 千代田花子",
        ],
    ));
    assert_eq!(accepted["state"], "accepted");
    assert_eq!(accepted["lead_agency"], "chiyoda-hoken");
    let receiving = accepted["receiving_case_id"].as_str().unwrap().to_owned();

    // The lead agency opens the new case's header; A sees the transfer done.
    let b_case = cli(
        dir,
        port,
        &[
            "--as",
            "chiyoda-hoken",
            "case",
            "show",
            &receiving,
            "--reveal",
        ],
    );
    assert!(b_case.contains("千代田花子"), "{b_case}");
    let listed = json(&cli(
        dir,
        port,
        &["--as", "aoba-kodomo", "--json", "transfer", "list"],
    ));
    assert_eq!(listed[0]["state"], "accepted");
    assert_eq!(listed[0]["receiving_case_id"], receiving.as_str());
    assert!(
        cli(
            dir,
            port,
            &["--as", "aoba-kodomo", "transfer", "list", "--open"]
        )
        .contains("移管はありません")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiving_coordinator_acknowledges_and_accepts_in_the_console_and_a_second_submission_changes_nothing()
 {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (port, _hub) = serve_dev_hub(dir);
    chiyoda_on_dev_hub(dir, port);
    let case = json(&cli(
        dir,
        port,
        &[
            "--as",
            "aoba-kodomo",
            "--json",
            "case",
            "open",
            "--municipality",
            MUNICIPALITY,
            "--category",
            "general",
            "--stage",
            "postnatal",
            "--header-text",
            "氏名: 青葉花子",
        ],
    ));
    let case_id = case["case_id"].as_str().unwrap().to_owned();
    let proposed = json(&cli(
        dir,
        port,
        &[
            "--as",
            "aoba-kodomo",
            "--json",
            "transfer",
            "propose",
            &case_id,
            "--to",
            OTHER_MUNICIPALITY,
            "--basis",
            "vital-interest",
            "--justification",
            "転居後も支援を途切れさせないため",
            "--note-text",
            "引継ぎ事項: 産後うつの見守り",
        ],
    ));
    let id = proposed["transfer_id"].as_str().unwrap().to_owned();

    let console = ConsoleProcess::start(dir, port, "chiyoda-kodomo");
    let cookie = console.session().await;
    let origin = console.url("");
    let headers = [("Cookie", cookie.as_str()), ("Origin", origin.as_str())];
    let page = console
        .request("GET", "/transfers", &[("Cookie", &cookie)], None)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("対応が必要な移管"), "{}", page.body);
    assert!(
        page.body.contains("産後うつの見守り"),
        "the note opens in B's console"
    );
    assert!(page.body.contains("受領を確認する"));

    // The coordinator's 今日の確認 points at it too.
    let today = console
        .request("GET", "/", &[("Cookie", &cookie)], None)
        .await;
    assert!(
        today.body.contains("移管 1 件が対応待ちです"),
        "{}",
        today.body
    );

    // 受領確認, submitted twice: one acknowledgement.
    let action = format!("/transfers/{id}/actions");
    let fields = console.form_fields(&cookie, "/transfers", &action).await;
    assert_eq!(fields["action"], "ack");
    let body = encode(&[
        ("csrf", &fields["csrf"]),
        ("idem", &fields["idem"]),
        ("action", "ack"),
    ]);
    for _ in 0..2 {
        let answer = console
            .request("POST", &action, &headers, Some(&body))
            .await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.headers["location"], "/transfers");
    }
    let shown = json(&cli(
        dir,
        port,
        &["--as", "aoba-kodomo", "--json", "transfer", "show", &id],
    ));
    assert_eq!(shown["state"], "acknowledged");

    // 受入 with the lead agency, the header sealed in the console.
    let idem = uuid::Uuid::new_v4().to_string();
    let body = encode(&[
        ("csrf", &fields["csrf"]),
        ("idem", &idem),
        ("action", "accept"),
        ("lead_agency", "chiyoda-hoken"),
        ("header", "氏名: 千代田花子"),
    ]);
    for _ in 0..2 {
        let answer = console
            .request("POST", &action, &headers, Some(&body))
            .await;
        assert_eq!(answer.status, 303, "{}", answer.body);
    }
    let shown = json(&cli(
        dir,
        port,
        &["--as", "aoba-kodomo", "--json", "transfer", "show", &id],
    ));
    assert_eq!(shown["state"], "accepted");
    let receiving = shown["receiving_case_id"].as_str().unwrap().to_owned();
    let b_case = cli(
        dir,
        port,
        &[
            "--as",
            "chiyoda-hoken",
            "case",
            "show",
            &receiving,
            "--reveal",
        ],
    );
    assert!(b_case.contains("千代田花子"), "{b_case}");
    let cases = json(&cli(
        dir,
        port,
        &[
            "--as",
            "chiyoda-kodomo",
            "--json",
            "case",
            "list",
            "--municipality",
            OTHER_MUNICIPALITY,
        ],
    ));
    assert_eq!(cases.as_array().unwrap().len(), 1, "{cases}");
    let page = console
        .request("GET", "/transfers", &[("Cookie", &cookie)], None)
        .await;
    assert!(
        page.body.contains("対応が必要な移管はありません"),
        "{}",
        page.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_b_accepts_a_transfer_and_opens_the_header_a_resealed_to_it() {
    use fantoccini::Locator;
    use std::time::Duration;

    let Some(browser) = tsunagu_tests::browser::Browser::start_or_skip("console 移管").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (port, _hub) = serve_dev_hub(dir);
    chiyoda_on_dev_hub(dir, port);
    let case = json(&cli(
        dir,
        port,
        &[
            "--as",
            "aoba-kodomo",
            "--json",
            "case",
            "open",
            "--municipality",
            MUNICIPALITY,
            "--category",
            "general",
            "--stage",
            "postnatal",
            "--header-text",
            "氏名: 青葉はな（MARKER-A-HEADER）",
        ],
    ));
    let case_id = case["case_id"].as_str().unwrap().to_owned();
    cli(
        dir,
        port,
        &[
            "--as",
            "aoba-kodomo",
            "transfer",
            "propose",
            &case_id,
            "--to",
            OTHER_MUNICIPALITY,
            "--basis",
            "vital-interest",
            "--justification",
            "転居後も支援を途切れさせないため",
        ],
    );

    // B's coordinator confirms receipt and accepts, clicking through its console.
    let console = ConsoleProcess::start(dir, port, "chiyoda-kodomo");
    let c = &browser.client;
    c.goto(&console.login_url).await.unwrap();
    c.goto(&console.url("/transfers")).await.unwrap();
    browser.screenshot("transfer-01-worklist").await;
    c.find(Locator::Css("button.transfer-ack"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_until(Duration::from_secs(10), "the acknowledgement", |page| {
            page.contains("受領確認済") && !page.contains("class=\"transfer-ack\"")
        })
        .await;
    let accept = c
        .find(Locator::XPath("//details[summary[text()='受け入れる']]"))
        .await
        .unwrap();
    accept
        .find(Locator::Css("summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    accept
        .find(Locator::Css("select[name=lead_agency]"))
        .await
        .unwrap()
        .select_by_value("chiyoda-hoken")
        .await
        .unwrap();
    accept
        .find(Locator::Css("textarea[name=header]"))
        .await
        .unwrap()
        .send_keys("氏名: 千代田はな")
        .await
        .unwrap();
    browser.screenshot("transfer-02-accept").await;
    accept
        .find(Locator::Css("button.transfer-accept"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_until(Duration::from_secs(10), "the acceptance", |page| {
            page.contains("対応が必要な移管はありません")
        })
        .await;

    // A re-seals its header to B's coordinator; B's console opens it on A's case page.
    let resealed = cli(
        dir,
        port,
        &[
            "--as",
            "aoba-kodomo",
            "reseal",
            &case_id,
            "--to",
            "chiyoda-kodomo",
        ],
    );
    assert!(resealed.contains("再封緘しました"), "{resealed}");
    c.goto(&console.url(&format!("/cases/{case_id}")))
        .await
        .unwrap();
    assert!(
        browser
            .text("#case-header")
            .await
            .contains("MARKER-A-HEADER")
    );
    browser.screenshot("transfer-03-a-header-opened-in-b").await;
}
