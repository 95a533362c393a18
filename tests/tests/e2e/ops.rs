//! Running the hub: the metrics endpoint, certificate expiry warnings, backup and restore while
//! writes run, the audit of refusals and escalations with a case's disclosure, `check-config`,
//! and the systemd unit.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tsunagu_hub::domain::{AgencyStatus, Clock, SystemClock};
use tsunagu_hub::pki::Validity;
use tsunagu_hub::{Application, Settings};
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::*;
use tsunagu_tests::{TRUST_DOMAIN, TestHub, TestPki, workspace_binary};

use crate::operator::{ChildGuard, free_port, wait_for_port};

/// Runs `tsunagu-hub` with only the given environment (no developer's config leaks in).
fn hub_command(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    Command::new(workspace_binary("tsunagu-hub", "tsunagu-hub"))
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// One sample of a Prometheus text scrape.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format strictly enough to fail on anything malformed.
fn parse_prometheus(body: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in body.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim_start();
            assert!(
                comment.starts_with("TYPE ") || comment.starts_with("HELP "),
                "unexpected comment line {line:?}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample is `series value`");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => {
                let rest = rest.strip_suffix('}').expect("labels end with }");
                let mut labels = BTreeMap::new();
                let mut rest = rest;
                while !rest.is_empty() {
                    let (key, after) = rest.split_once("=\"").expect("label=\"value\"");
                    let mut value = String::new();
                    let mut chars = after.char_indices();
                    let mut end = None;
                    while let Some((at, c)) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some((_, escaped)) = chars.next() {
                                    value.push(escaped);
                                }
                            }
                            '"' => {
                                end = Some(at);
                                break;
                            }
                            c => value.push(c),
                        }
                    }
                    let end = end.expect("a label value ends with a quote");
                    labels.insert(key.to_owned(), value);
                    rest = after[end + 1..].trim_start_matches(',');
                }
                (name.to_owned(), labels)
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name {name:?}"
        );
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

fn total(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(hub: &TestHub) -> String {
    let port = hub
        .metrics_addr
        .expect("the test hub serves metrics")
        .port();
    let answer = tsunagu_tests::http::request(port, "GET", "/metrics", &[], None).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .headers
            .get("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        answer.headers
    );
    answer.body
}

#[tokio::test]
async fn the_metrics_endpoint_counts_calls_by_method_and_code_and_never_labels_a_case_or_referral()
{
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (case, referral) =
            referred_case(hub.clock.as_ref(), &kodomo, "hospital", "postnatal_care").await;
        get_case(&kodomo, &case.case_id).await.unwrap();
        ids.push(case.case_id);
        ids.push(referral.referral_id);
    }
    // The hospital subscribes and reads its backlog: the feed lag is observed.
    let hospital = hub.client("hospital").await;
    let mut stream = hospital
        .events()
        .subscribe(pb::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the backlog arrives")
        .unwrap()
        .expect("an event");
    drop(stream);
    // A refusal with a code (an id nobody may see is refused as one the caller may not see),
    // and a handshake from a certificate of another CA.
    let refused = get_case(&kodomo, "0193ffff-ffff-7fff-bfff-ffffffffffff").await;
    assert!(refused.is_err());
    let stranger = hub
        .pki
        .other_ca
        .issue_agency(TRUST_DOMAIN, "kodomo", Validity::days_from_now(30))
        .unwrap();
    let _ = hub.connect(Some(&stranger)).await;

    // The database gauge is set by the health watch once a second.
    let body = eventually(
        "the database gauge and a handshake failure in the scrape",
        Duration::from_secs(10),
        async || {
            let body = scrape(&hub).await;
            let samples = parse_prometheus(&body);
            let ready = total(&samples, "tsunagu_database_up", &[]) > 0.0
                && total(
                    &samples,
                    "tsunagu_tls_handshake_failures_total",
                    &[("reason", "unknown_issuer")],
                ) > 0.0;
            ready.then_some(body)
        },
    )
    .await;
    let samples = parse_prometheus(&body);
    for (method, at_least) in [
        ("CaseService/OpenCase", 5.0),
        ("ReferralService/SendReferral", 5.0),
        ("CaseService/GetCase", 5.0),
    ] {
        let count = total(
            &samples,
            "tsunagu_rpc_requests_total",
            &[("method", method), ("code", "OK")],
        );
        assert!(count >= at_least, "{method}: {count} calls counted\n{body}");
        let timed = total(
            &samples,
            "tsunagu_rpc_duration_seconds_count",
            &[("method", method), ("code", "OK")],
        );
        assert!(timed >= at_least, "{method}: {timed} calls timed");
        assert!(
            samples
                .iter()
                .any(|s| s.name == "tsunagu_rpc_duration_seconds_bucket"
                    && s.labels.get("method").map(String::as_str) == Some(method)),
            "{method} has a latency histogram"
        );
    }
    assert!(
        total(
            &samples,
            "tsunagu_rpc_requests_total",
            &[
                ("method", "CaseService/GetCase"),
                ("code", "PERMISSION_DENIED")
            ]
        ) >= 1.0,
        "refusals are counted by code"
    );
    assert!(
        total(&samples, "tsunagu_feed_lag_events_count", &[]) >= 1.0,
        "a subscription's lag is observed"
    );
    assert!(
        samples.iter().any(|s| s.name == "tsunagu_open_connections"),
        "open connections are a series"
    );
    // Both backends time their commits.
    assert!(total(&samples, "tsunagu_commit_duration_seconds_count", &[]) > 0.0);
    assert!(total(&samples, "tsunagu_commit_batch_writes_count", &[]) > 0.0);
    assert!(
        samples
            .iter()
            .any(|s| s.name == "tsunagu_certificate_expiry_days"
                && s.labels.get("certificate").map(String::as_str) == Some("hub")
                && s.value > 0.0),
        "the hub certificate's days to expiry are a series"
    );
    // No case or referral id anywhere in the scrape, let alone in a label.
    for id in &ids {
        assert!(!body.contains(id.as_str()), "{id} appears in the scrape");
    }
    for sample in &samples {
        for value in sample.labels.values() {
            assert!(value.len() <= 64, "long label value {value:?}");
        }
    }
}

#[tokio::test]
async fn a_certificate_expiring_in_ten_days_is_warned_about_listed_and_carried_by_whoami() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let port = free_port();
    let config = pki.write_hub_config(
        port,
        "certificate_check_interval = 1\n[metrics]\nenabled = false",
    );
    let config_arg = config.to_str().unwrap();
    let added = hub_command(
        dir.path(),
        &[],
        &[
            "--config",
            config_arg,
            "agency",
            "add",
            "shortlived",
            "--kind",
            "hospital",
            "--name",
            "青葉クリニック",
            "--municipality",
            "141178",
        ],
    );
    assert!(added.status.success(), "{}", text(&added));

    let log_path = dir.path().join("hub.log");
    let mut hub = ChildGuard(
        Command::new(workspace_binary("tsunagu-hub", "tsunagu-hub"))
            .current_dir(dir.path())
            .env_clear()
            .env("TSUNAGU_LOG_FORMAT", "json")
            .args(["--config", config_arg, "serve"])
            // The hub logs to standard output (journald takes it under systemd).
            .stdout(std::fs::File::create(&log_path).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, &mut hub.0);

    let certificate = pki
        .ca
        .issue_agency(TRUST_DOMAIN, "shortlived", Validity::days_from_now(10))
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = tsunagu_client::Hub::connect(&pki.connect_options(addr, Some(&certificate)))
        .await
        .unwrap();
    let me = client
        .directory()
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    let not_after = me.certificate_not_after.expect("WhoAmI carries the expiry");
    let expected = SystemClock.now().millis() / 1000 + 10 * 86_400;
    assert!(
        (not_after.seconds - expected).abs() < 120,
        "WhoAmI says {} for a certificate valid 10 days",
        not_after.seconds
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let warning = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let found = log.lines().find(|line| {
            line.contains("certificate expires within 14 days")
                && line.contains("agency shortlived")
        });
        if let Some(line) = found {
            break line.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no 14-day warning in the hub's log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(warning.contains("\"WARN\""), "{warning}");

    let listed = hub_command(
        dir.path(),
        &[],
        &[
            "--config", config_arg, "certs", "expiring", "--within", "30d", "--json",
        ],
    );
    assert!(listed.status.success(), "{}", text(&listed));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let agency = rows
        .iter()
        .find(|row| row["agency_id"] == "shortlived")
        .unwrap_or_else(|| panic!("the agency is listed: {rows:?}"));
    assert_eq!(agency["role"], "agency");
    assert_eq!(agency["fingerprint"], me.certificate_fingerprint.as_str());
    let days = agency["days_left"].as_i64().unwrap();
    assert!((9..=10).contains(&days), "{days} days left");
    // Within 5 days it is not listed; the table form says so.
    let soon = hub_command(
        dir.path(),
        &[],
        &[
            "--config", config_arg, "certs", "expiring", "--within", "5d",
        ],
    );
    assert!(soon.status.success(), "{}", text(&soon));
    assert!(!text(&soon).contains("shortlived"), "{}", text(&soon));
}

#[tokio::test]
async fn a_backup_taken_while_writes_run_restores_into_a_hub_that_serves_every_acknowledged_write()
{
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("live/hub.db").display());
    let hub = TestHub::start_with(|settings| settings.database_url = database_url.clone()).await;
    let kodomo = Arc::new(hub.client("kodomo").await);

    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (kodomo, acknowledged, stop) = (
            Arc::clone(&kodomo),
            Arc::clone(&acknowledged),
            Arc::clone(&stop),
        );
        async move {
            while !stop.load(Ordering::SeqCst) {
                let case = open_case(&kodomo).await;
                acknowledged.lock().unwrap().push(case.case_id);
            }
        }
    });
    eventually(
        "20 acknowledged writes",
        Duration::from_secs(20),
        async || (acknowledged.lock().unwrap().len() >= 20).then_some(()),
    )
    .await;

    let backup = dir.path().join("backups/hub-backup.db");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    let before_backup = acknowledged.lock().unwrap().clone();
    let backed_up = tokio::task::spawn_blocking({
        let (dir, url, backup) = (
            dir.path().to_owned(),
            database_url.clone(),
            backup.display().to_string(),
        );
        move || {
            hub_command(
                &dir,
                &[("TSUNAGU_DATABASE_URL", &url)],
                &["backup", "--to", &backup],
            )
        }
    })
    .await
    .unwrap();
    let written_during = acknowledged.lock().unwrap().len() - before_backup.len();
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(backed_up.status.success(), "{}", text(&backed_up));
    assert!(
        text(&backed_up).contains("audit chain intact"),
        "{}",
        text(&backed_up)
    );
    eprintln!(
        "backup of {} acknowledged cases taken while {written_during} more were written",
        before_backup.len()
    );

    // A backup never overwrites.
    let again = hub_command(
        dir.path(),
        &[("TSUNAGU_DATABASE_URL", &database_url)],
        &["backup", "--to", backup.to_str().unwrap()],
    );
    assert!(!again.status.success());
    assert!(text(&again).contains("exists already"), "{}", text(&again));

    // Restore refuses a data directory that is not empty...
    let restored_url = format!("sqlite://{}", dir.path().join("restored/hub.db").display());
    std::fs::create_dir_all(dir.path().join("restored")).unwrap();
    std::fs::write(dir.path().join("restored/stray.txt"), "x").unwrap();
    let refused = hub_command(
        dir.path(),
        &[("TSUNAGU_DATABASE_URL", &restored_url)],
        &["restore", "--from", backup.to_str().unwrap()],
    );
    assert!(!refused.status.success());
    assert!(text(&refused).contains("not empty"), "{}", text(&refused));
    std::fs::remove_file(dir.path().join("restored/stray.txt")).unwrap();
    // ...and restores into an empty one, checking the chain.
    let restored = hub_command(
        dir.path(),
        &[("TSUNAGU_DATABASE_URL", &restored_url)],
        &["restore", "--from", backup.to_str().unwrap()],
    );
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(
        text(&restored).contains("audit chain intact"),
        "{}",
        text(&restored)
    );

    // A hub on the restored database serves every write acknowledged before the backup began.
    let mut settings: Settings = hub.settings.clone();
    settings.database_url = restored_url.clone();
    settings.metrics.enabled = false;
    let application = Application::build_with_clock(settings, hub.clock.clone() as Arc<dyn Clock>)
        .await
        .unwrap();
    let addr = application.local_addr();
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    let certificate = hub.pki.agency_certificate("kodomo");
    let restored_client =
        tsunagu_client::Hub::connect(&hub.pki.connect_options(addr, Some(&certificate)))
            .await
            .unwrap();
    for case_id in &before_backup {
        get_case(&restored_client, case_id)
            .await
            .unwrap_or_else(|status| panic!("case {case_id} is missing after restore: {status}"));
    }
    let _ = shutdown.send(());
    server.await.unwrap().unwrap();
    let verified = hub_command(
        dir.path(),
        &[("TSUNAGU_DATABASE_URL", &restored_url)],
        &["audit", "verify"],
    );
    assert!(verified.status.success(), "{}", text(&verified));
    hub.stop().await;
}

#[tokio::test]
async fn a_suspended_agencys_call_and_an_escalation_are_audited_and_a_case_export_shows_only_that_case()
 {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let nursery = hub.client("nursery").await;
    let (case, referral) =
        referred_case(hub.clock.as_ref(), &kodomo, "hospital", "postnatal_care").await;
    get_case(&kodomo, &case.case_id).await.unwrap();
    let (other_case, other_referral) =
        referred_case(hub.clock.as_ref(), &kodomo, "hospital", "postnatal_care").await;

    hub.set_status("nursery", AgencyStatus::Suspended).await;
    let refused = nursery.directory().who_am_i(pb::WhoAmIRequest {}).await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::PermissionDenied);

    // Every timer of both referrals passes, and the coordinator's grace too.
    hub.clock.advance(Duration::from_secs(40 * 24 * 3600));
    let records = eventually(
        "the escalation's audit record",
        Duration::from_secs(10),
        async || {
            let mut tx = hub.store.read().await.unwrap();
            let records = tx.audit_range(0, 10_000).await.unwrap();
            records
                .iter()
                .any(|r| {
                    r.entry.action == "Hub/Escalate"
                        && r.entry.referral_id.as_deref() == Some(referral.referral_id.as_str())
                })
                .then_some(records)
        },
    )
    .await;
    let suspended = records
        .iter()
        .find(|r| r.entry.agency_id == "nursery")
        .expect("the suspended agency's call is audited");
    assert_eq!(suspended.entry.outcome, "PERMISSION_DENIED");
    assert!(suspended.entry.action.contains("WhoAmI"), "{suspended:?}");
    let escalation = records
        .iter()
        .find(|r| r.entry.action == "Hub/Escalate")
        .unwrap();
    assert_eq!(escalation.entry.agency_id, "tsunagu-hub");
    assert!(escalation.entry.basis.is_some(), "{escalation:?}");

    let export = hub_command(
        Path::new("."),
        &[("TSUNAGU_DATABASE_URL", &hub.database.url)],
        &[
            "audit",
            "export",
            "--case",
            &case.case_id,
            "--format",
            "json",
        ],
    );
    assert!(export.status.success(), "{}", text(&export));
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&export.stdout).unwrap();
    let actions: Vec<&str> = listed.iter().filter_map(|r| r["action"].as_str()).collect();
    for action in [
        "CaseService/OpenCase",
        "CaseService/RecordConsent",
        "ReferralService/SendReferral",
        "CaseService/GetCase",
        "Hub/Escalate",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    assert!(
        listed
            .iter()
            .any(|r| r["legal_basis"] == "consent" && r["agency_id"] == "kodomo"),
        "legal bases are listed"
    );
    let whole = String::from_utf8_lossy(&export.stdout);
    assert!(!whole.contains(&other_case.case_id));
    assert!(!whole.contains(&other_referral.referral_id));
    assert!(!whole.contains("nursery"), "nothing about other calls");

    let csv = hub_command(
        Path::new("."),
        &[("TSUNAGU_DATABASE_URL", &hub.database.url)],
        &[
            "audit",
            "export",
            "--case",
            &case.case_id,
            "--format",
            "csv",
        ],
    );
    assert!(csv.status.success(), "{}", text(&csv));
    let csv = String::from_utf8(csv.stdout).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("sequence,at,agency_id"));
    assert_eq!(lines.count(), listed.len());
    assert!(!csv.contains(&other_case.case_id));
}

#[test]
fn check_config_names_a_missing_certificate_file_and_a_malformed_listen_address() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let d = pki.dir.display();
    let good = format!(
        "listen = \"127.0.0.1:7443\"\ndatabase_url = \"sqlite://data/hub.db\"\n\
         [tls]\nclient_ca = \"{d}/ca.pem\"\ncertificate = \"{d}/hub.pem\"\n\
         private_key = \"{d}/hub.key\"\ncrls = [\"{d}/crl.pem\"]\n"
    );
    let check = |name: &str, config: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, config).unwrap();
        hub_command(
            dir.path(),
            &[],
            &["check-config", "--config", path.to_str().unwrap()],
        )
    };
    let ok = check("good.toml", &good);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("OK"), "{}", text(&ok));

    let missing = check("missing.toml", &good.replace("hub.pem", "renewed-hub.pem"));
    assert!(!missing.status.success());
    let said = text(&missing);
    assert!(
        said.contains("tls.certificate") && said.contains("renewed-hub.pem"),
        "{said}"
    );

    let malformed = check(
        "listen.toml",
        &good.replace("127.0.0.1:7443", "hub.example.jp:7443:1"),
    );
    assert!(!malformed.status.success());
    let said = text(&malformed);
    assert!(
        said.contains("listen") && said.contains("hub.example.jp:7443:1"),
        "{said}"
    );
}

/// Where `TSUNAGU_REQUIRE_SYSTEMD=1` (CI), systemd-analyze must be there; elsewhere the test is
/// skipped without it.
#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("TSUNAGU_REQUIRE_SYSTEMD").as_deref() != Ok("1"),
            "systemd-analyze is missing: apt-get install systemd"
        );
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let unit = std::fs::read_to_string(root.join("server/packaging/tsunagu-hub.service")).unwrap();
    // verify checks that ExecStart's binary exists: point it at the one just built.
    let binary = workspace_binary("tsunagu-hub", "tsunagu-hub");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("tsunagu-hub.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/tsunagu-hub", binary.to_str().unwrap()),
    )
    .unwrap();
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        verified.status.success() && verified.stderr.is_empty(),
        "{}",
        text(&verified)
    );
    for hardening in [
        "User=tsunagu",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "StateDirectory=tsunagu",
    ] {
        assert!(unit.contains(hardening), "the unit sets {hardening}");
    }
}
