//! The real binaries: `tsunagu-hub serve` on its embedded defaults, the `tsunagu` CLI against it,
//! CRL reload on SIGHUP, and graceful shutdown on SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tsunagu_client::audit_head::HeadWatch;
use tsunagu_hub::pki::{CertificateAuthority, certificate_der_from_pem};
use tsunagu_tests::workspace_binary;

/// A child process that is killed when the test ends, however it ends.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the hub exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the hub did not listen on {port} within 30 s");
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Runs the `tsunagu` CLI in `dir` against the hub on `port`.
fn tsunagu(dir: &Path, port: u16, args: &[&str]) -> std::process::Output {
    Command::new(workspace_binary("tsunagu-client", "tsunagu"))
        .current_dir(dir)
        .env_remove("TSUNAGU_CONFIG")
        .env_remove("TSUNAGU_CERTS_DEV")
        // The client's state (pinned keys, the newest audit head it saw) belongs to this test's
        // hub, not to whatever hub the machine's user ran before.
        .env("XDG_STATE_HOME", dir.join("state"))
        .args(["--hub", &format!("https://127.0.0.1:{port}")])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_readme_serve_command_works_with_no_set_up_and_the_cli_connects() {
    let hub_binary = workspace_binary("tsunagu-hub", "tsunagu-hub");
    let dir = tempfile::tempdir().unwrap();

    // A fresh clone has certs-dev; this test makes its own rather than reading the repository's.
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
    assert!(
        dir.path().join("data/tsunagu.db").exists(),
        "the default database lives under ./data/"
    );

    let whoami = tsunagu(
        dir.path(),
        port,
        &["--as", "aoba-kodomo", "--json", "whoami"],
    );
    assert!(whoami.status.success(), "{whoami:?}");
    let me: serde_json::Value = serde_json::from_slice(&whoami.stdout).unwrap();
    assert_eq!(me["agency_id"], "aoba-kodomo", "{me}");

    let table = tsunagu(dir.path(), port, &["--as", "aoba-kodomo", "agencies"]);
    assert!(table.status.success(), "{table:?}");
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains("青葉区こども家庭センター"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains("141178")).count(),
        5,
        "{text}"
    );

    // Revoke the hospital's certificate in a new CRL, then SIGHUP: the next call is refused.
    let certs = dir.path().join("certs-dev");
    let ca = CertificateAuthority::from_pem(
        &std::fs::read_to_string(certs.join("ca.pem")).unwrap(),
        &std::fs::read_to_string(certs.join("ca.key")).unwrap(),
    )
    .unwrap();
    let hospital_pem = std::fs::read_to_string(certs.join("agencies/aoba-hospital.pem")).unwrap();
    let der = certificate_der_from_pem(&hospital_pem).unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    let serial = parsed.raw_serial().to_vec();
    let before = tsunagu(dir.path(), port, &["--as", "aoba-hospital", "whoami"]);
    assert!(before.status.success(), "{before:?}");
    std::fs::write(
        certs.join("crl.pem"),
        ca.crl(&[serial], 2, time::Duration::days(30)).unwrap(),
    )
    .unwrap();
    signal(&hub.0, "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let after = tsunagu(dir.path(), port, &["--as", "aoba-hospital", "whoami"]);
        if !after.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revoked certificate still works"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Others still get in, and the hub never restarted.
    let other = tsunagu(dir.path(), port, &["--as", "aoba-nursery", "whoami"]);
    assert!(other.status.success(), "{other:?}");
    assert!(hub.0.try_wait().unwrap().is_none());

    // SIGTERM shuts down gracefully.
    signal(&hub.0, "TERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = hub.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the hub did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "the hub exited with {status}");
}

/// Runs `tsunagu-hub` in `dir` with a clean environment but for `extra`.
fn hub_command(dir: &Path, extra: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut command = Command::new(workspace_binary("tsunagu-hub", "tsunagu-hub"));
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (name, value) in extra {
        command.env(name, value);
    }
    command.args(args).output().unwrap()
}

#[test]
fn certs_issue_refuses_zero_days_and_unregistered_agencies_agency_update_changes_what_is_given_and_the_database_is_owner_only()
 {
    let dir = tempfile::tempdir().unwrap();
    let made = hub_command(dir.path(), &[], &["certs", "dev", "--dir", "certs-dev"]);
    assert!(made.status.success(), "{made:?}");
    // The client's TSUNAGU_CONFIG is not the hub's: a client file there changes nothing.
    std::fs::write(
        dir.path().join("client.toml"),
        "this is not the hub's config",
    )
    .unwrap();
    let client_env = [("TSUNAGU_CONFIG", "client.toml")];
    let issue = |agency: &str, days: &str| {
        hub_command(
            dir.path(),
            &client_env,
            &[
                "certs",
                "issue",
                "--ca-cert",
                "certs-dev/ca.pem",
                "--ca-key",
                "certs-dev/ca.key",
                "--agency",
                agency,
                "--days",
                days,
                "--out-dir",
                "out",
            ],
        )
    };

    let zero = issue("aoba-clinic", "0");
    assert!(!zero.status.success());
    assert!(
        String::from_utf8_lossy(&zero.stderr).contains("--days"),
        "{zero:?}"
    );
    let unknown = issue("aoba-clinic", "30");
    assert!(!unknown.status.success());
    let message = String::from_utf8_lossy(&unknown.stderr);
    assert!(message.contains("not registered"), "{message}");
    assert!(message.contains("agency add aoba-clinic"), "{message}");
    assert!(!dir.path().join("out/aoba-clinic.pem").exists());

    let added = hub_command(
        dir.path(),
        &client_env,
        &[
            "agency",
            "add",
            "aoba-clinic",
            "--kind",
            "hospital",
            "--name",
            "青葉クリニック",
            "--municipality",
            "141178",
        ],
    );
    assert!(added.status.success(), "{added:?}");
    // `agency update` changes what is given and keeps the rest.
    let updated = hub_command(
        dir.path(),
        &client_env,
        &[
            "agency",
            "update",
            "aoba-clinic",
            "--name",
            "青葉こどもクリニック",
            "--council",
            "141178",
        ],
    );
    assert!(updated.status.success(), "{updated:?}");
    let listed = hub_command(dir.path(), &[], &["agency", "list", "--json"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("青葉こどもクリニック"), "{listed}");
    assert!(listed.contains("hospital"), "{listed}");
    let missing = hub_command(
        dir.path(),
        &[],
        &["agency", "update", "nobody", "--name", "x"],
    );
    assert!(!missing.status.success());

    let issued = issue("aoba-clinic", "30");
    assert!(issued.status.success(), "{issued:?}");
    assert!(dir.path().join("out/aoba-clinic.pem").exists());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("data/tsunagu.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
}

/// Starts the development hub (`serve` on its embedded defaults) in `dir` on a free port, its
/// stdout and stderr going to `hub.log` there: a file, not a terminal.
fn serve_logging_to_file(dir: &Path) -> (ChildGuard, u16) {
    let hub_binary = workspace_binary("tsunagu-hub", "tsunagu-hub");
    let made = Command::new(&hub_binary)
        .current_dir(dir)
        .args(["certs", "dev", "--dir", "certs-dev"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let log = std::fs::File::create(dir.join("hub.log")).unwrap();
    let port = free_port();
    let mut hub = ChildGuard(
        Command::new(&hub_binary)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TSUNAGU_LISTEN", format!("127.0.0.1:{port}"))
            .arg("serve")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, &mut hub.0);
    (hub, port)
}

/// Stops the hub with SIGTERM and waits for it, so that its log is complete.
fn stop(hub: &mut ChildGuard) {
    signal(&hub.0, "TERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    while hub.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the hub did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_call_writes_one_access_line_with_method_code_agency_and_duration_and_no_payload_or_colour()
{
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, port) = serve_logging_to_file(dir.path());
    let marker = format!("TSUNAGU-LOG-{}", uuid::Uuid::new_v4().simple());
    let staff_name = format!("保健師 {marker}");

    let whoami = tsunagu(dir.path(), port, &["--as", "aoba-kodomo", "whoami"]);
    assert!(whoami.status.success(), "{whoami:?}");
    let opened = tsunagu(
        dir.path(),
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
            "specific-expectant-mother",
            "--stage",
            "pregnancy",
            "--header-text",
            &format!("氏名: 青葉花子 {marker}"),
            "--staff-name",
            &staff_name,
            "--staff-role",
            "保健師",
        ],
    );
    assert!(opened.status.success(), "{opened:?}");
    let case: serde_json::Value = serde_json::from_slice(&opened.stdout).unwrap();
    let case_id = case["case_id"].as_str().unwrap().to_owned();
    // A refused call is logged with its code, and says nothing of what was asked for.
    let refused = tsunagu(
        dir.path(),
        port,
        &[
            "--as",
            "aoba-nursery",
            "show",
            "0190f3c4-0000-7000-8000-000000000003",
        ],
    );
    assert!(!refused.status.success(), "{refused:?}");
    stop(&mut hub);

    let log = std::fs::read(dir.path().join("hub.log")).unwrap();
    assert!(
        !log.contains(&0x1b),
        "the hub's log holds escape codes although its output is a file"
    );
    let log = String::from_utf8(log).unwrap();
    let access: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("tsunagu_hub::access"))
        .collect();
    assert!(!access.is_empty(), "no access lines in:\n{log}");
    for line in &access {
        for field in ["method=/", "code=", "agency=", "duration_ms="] {
            assert!(line.contains(field), "{field} is missing from {line}");
        }
    }
    let call = |method: &str, code: &str, agency: &str| {
        access.iter().any(|line| {
            line.contains(&format!("method={method} "))
                && line.contains(&format!("code={code} "))
                && line.contains(&format!("agency=\"{agency}\""))
        })
    };
    assert!(
        call("/tsunagu.v1.DirectoryService/WhoAmI", "Ok", "aoba-kodomo"),
        "{log}"
    );
    assert!(
        call("/tsunagu.v1.CaseService/OpenCase", "Ok", "aoba-kodomo"),
        "{log}"
    );
    assert!(
        call(
            "/tsunagu.v1.ReferralService/GetReferral",
            "PermissionDenied",
            "aoba-nursery"
        ),
        "{log}"
    );
    // No payload, name, staff member or case id anywhere in the log.
    for secret in [marker.as_str(), "青葉花子", case_id.as_str()] {
        assert!(
            !log.contains(secret),
            "{secret:?} is in the hub's log:\n{log}"
        );
    }
}

#[test]
fn a_development_hub_whose_data_was_wiped_is_refused_until_audit_forget_hub_forgets_its_pinned_key()
{
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, port) = serve_logging_to_file(dir.path());
    let first = tsunagu(dir.path(), port, &["--as", "aoba-kodomo", "whoami"]);
    assert!(first.status.success(), "{first:?}");
    let pin = dir
        .path()
        .join("state/tsunagu/known_keys/dev-aoba-kodomo.audit-head.toml");
    let pinned_key = || {
        HeadWatch::load(&pin)
            .unwrap()
            .remembered()
            .expect("a pinned hub")
            .signing_key
            .clone()
    };
    let old_key = pinned_key();
    stop(&mut hub);

    // ./data wiped: a new database and a new audit signing key.
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    let (mut hub, port) = serve_logging_to_file(dir.path());
    let refused = tsunagu(dir.path(), port, &["--as", "aoba-kodomo", "whoami"]);
    assert!(!refused.status.success(), "{refused:?}");
    let said = String::from_utf8(refused.stderr).unwrap();
    for words in [
        "the hub's audit signing key changed",
        "`tsunagu audit forget-hub`",
        "a development hub whose ./data was wiped",
    ] {
        assert!(said.contains(words), "{words:?} is not in: {said}");
    }

    // The remedy shows what it forgets, removes only this profile's pin, and the next command
    // pins the new key.
    let forgot = tsunagu(
        dir.path(),
        port,
        &["--as", "aoba-kodomo", "audit", "forget-hub"],
    );
    assert!(forgot.status.success(), "{forgot:?}");
    let told = String::from_utf8(forgot.stdout).unwrap();
    assert!(told.contains(&old_key), "{told}");
    assert!(told.contains("dev-aoba-kodomo.audit-head.toml"), "{told}");
    assert!(!pin.exists());
    let again = tsunagu(dir.path(), port, &["--as", "aoba-kodomo", "whoami"]);
    assert!(again.status.success(), "{again:?}");
    assert_ne!(pinned_key(), old_key);

    // A profile that pinned nothing has nothing to forget, and says so.
    let nothing = tsunagu(
        dir.path(),
        port,
        &["--as", "aoba-nursery", "--json", "audit", "forget-hub"],
    );
    assert!(nothing.status.success(), "{nothing:?}");
    let nothing: serde_json::Value = serde_json::from_slice(&nothing.stdout).unwrap();
    assert!(nothing["forgotten"].is_null(), "{nothing}");
    stop(&mut hub);
}
