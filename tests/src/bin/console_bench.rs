//! `tsunagu-console-bench`: how long the console takes to render its two heaviest pages — 今日の
//! 確認 with many open items, and one referral with many events whose notes it opens — with a
//! real hub in this process (fresh SQLite file, or PostgreSQL with `TSUNAGU_TEST_POSTGRES_URL`)
//! and the console on a loopback port, both on this machine. The time is the whole request as
//! a browser would make it: the console asks the hub (WhoAmI, the directory, the worklist or
//! the referral) over mTLS, opens sealed notes and renders the page.
//!
//! ```sh
//! cargo run --release -p tsunagu-tests --bin tsunagu-console-bench
//! cargo run --release -p tsunagu-tests --bin tsunagu-console-bench -- --items 500 --events 50 --runs 30
//! ```

use std::time::{Duration, Instant};

use age::x25519::Identity;
use anyhow::ensure;
use clap::Parser;
use futures::{StreamExt as _, stream};
use tsunagu_client::console::{Console, ConsoleSettings};
use tsunagu_client::keys::publish;
use tsunagu_client::sealing::Sealer;
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::{
    POSTNATAL_CARE, action_request, by_consent, consented_case, referral_request, staff,
};
use tsunagu_tests::{TestHub, http};

/// Time the console's worklist and referral pages.
#[derive(Debug, Parser)]
#[command(name = "tsunagu-console-bench")]
struct Args {
    /// Open items on the recipient's worklist (referrals past their respond-by).
    #[arg(long, default_value_t = 500)]
    items: usize,
    /// Events of the one referral timed (sent, accepted, then contact attempts with notes).
    #[arg(long, default_value_t = 50)]
    events: usize,
    /// Timed requests of each page (after two untimed warm-ups).
    #[arg(long, default_value_t = 30)]
    runs: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.events >= 2,
        "--events counts the send and the acceptance: at least 2"
    );
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let hospital_identity = Identity::generate();
    for (client, identity) in [
        (&kodomo, Identity::generate()),
        (&hospital, hospital_identity.clone()),
    ] {
        publish(client, &identity.to_public(), &staff()).await?;
    }
    let (case, _) = consented_case(
        hub.clock.as_ref(),
        &kodomo,
        &["hospital"],
        &[POSTNATAL_CARE],
    )
    .await;

    // The worklist: referrals to the hospital, left unanswered past respond-by.
    let started = Instant::now();
    let sent: Vec<anyhow::Result<String>> = stream::iter(0..args.items)
        .map(|_| {
            let kodomo = kodomo.clone();
            let case_id = case.case_id.clone();
            async move {
                let referral = kodomo
                    .referrals()
                    .send_referral(referral_request(
                        &case_id,
                        "hospital",
                        POSTNATAL_CARE,
                        by_consent(),
                    ))
                    .await?
                    .into_inner()
                    .referral
                    .unwrap_or_default();
                Ok(referral.referral_id)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for referral in &sent {
        ensure!(referral.is_ok(), "sending failed: {referral:?}");
    }
    // The referral page: one referral with `events` events, each later note sealed for real.
    let long = kodomo
        .referrals()
        .send_referral(referral_request(
            &case.case_id,
            "hospital",
            POSTNATAL_CARE,
            by_consent(),
        ))
        .await?
        .into_inner()
        .referral
        .unwrap_or_default()
        .referral_id;
    hospital
        .referrals()
        .record_referral_action(action_request(&long, pb::ReferralAction::Accept))
        .await?;
    let mut sealer = Sealer::new(&hospital);
    for n in 2..args.events {
        let mut attempt = action_request(&long, pb::ReferralAction::RecordContactAttempt);
        attempt.note = Some(
            sealer
                .seal(
                    format!("{n}回目の電話。不在のため留守番電話に伝言。").as_bytes(),
                    &["kodomo"],
                    Some(&case),
                )
                .await?,
        );
        hospital.referrals().record_referral_action(attempt).await?;
    }
    // Past respond-by (routine: days), not yet past connect-by of the long one.
    hub.clock.advance(Duration::from_secs(8 * 86_400));
    eprintln!("set up in {:.1} s", started.elapsed().as_secs_f64());

    let certificate = hub.pki.agency_certificate("hospital");
    let console = Console::build(ConsoleSettings {
        listen: "127.0.0.1:0".parse()?,
        allow_remote: false,
        tls: None,
        connect: hub.pki.connect_options(hub.addr, Some(&certificate)),
        identities: vec![hospital_identity],
        known_keys: None,
        staff: staff(),
        host_names: Vec::new(),
    })
    .await?;
    let port = console.local_addr().port();
    let login = console.login_url().to_owned();
    tokio::spawn(console.run_until_stopped(std::future::pending()));
    let login_path = &login[login.find("/login").unwrap_or(0)..];
    let cookie = http::log_in(port, login_path).await;

    let worklist = time_page(port, &cookie, "/", args.runs, |body| {
        body.matches("class=\"followup\"").count() >= args.items
    })
    .await?;
    let referral = time_page(
        port,
        &cookie,
        &format!("/referrals/{long}"),
        args.runs,
        |body| body.matches("<li").count() >= args.events && body.contains("回目の電話"),
    )
    .await?;

    println!(
        "console page render, {} runs each (hub and console on this machine)",
        args.runs
    );
    println!("| page | median ms | p90 ms | max ms | target |");
    println!("| --- | ---: | ---: | ---: | --- |");
    for (name, times) in [
        (format!("今日の確認, {} open items", args.items), &worklist),
        (
            format!("紹介, {} events with sealed notes", args.events),
            &referral,
        ),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | < 200 ms |",
            percentile(times, 0.5),
            percentile(times, 0.9),
            percentile(times, 1.0)
        );
    }
    for (name, times) in [("worklist", &worklist), ("referral", &referral)] {
        println!(
            "{{\"page\":\"{name}\",\"median_ms\":{:.2},\"p90_ms\":{:.2},\"max_ms\":{:.2}}}",
            percentile(times, 0.5),
            percentile(times, 0.9),
            percentile(times, 1.0)
        );
    }
    Ok(())
}

/// Requests `path` two times untimed, then `runs` times; each answer must be a page for which
/// `complete` holds.
async fn time_page(
    port: u16,
    cookie: &str,
    path: &str,
    runs: usize,
    complete: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::with_capacity(runs);
    for run in 0..runs + 2 {
        let started = Instant::now();
        let answer = http::request(port, "GET", path, &[("Cookie", cookie)], None).await;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        ensure!(
            answer.status == 200,
            "{path}: {} {}",
            answer.status,
            answer.body
        );
        ensure!(
            complete(&answer.body),
            "{path} did not show everything it should"
        );
        if run >= 2 {
            times.push(elapsed);
        }
    }
    Ok(times)
}

fn percentile(times: &[f64], p: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}
