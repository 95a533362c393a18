//! The write scenarios side by side (issue 18): durable sends, delivery acknowledgements and
//! ListEvents pages on SQLite, on PostgreSQL through one hub instance, and on PostgreSQL through
//! several instances sharing the database, in one run, each on a fresh database. Cases are
//! spread over several municipalities and referrals over several recipients, as several
//! municipalities sharing one hub would send them.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tsunagu_client::Hub;
use tsunagu_hub::domain::{Clock as _, Municipality, SystemClock};
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::{sealed_bytes, staff};
use tsunagu_tests::{AGENCIES, TestDatabase, TestPki, test_agency};

use super::{
    Args, HubProcess, Outcome, bench_agency, closed_loop, connect, full_page, prepare_case,
    print_table, referral_request, start_hub,
};

/// The municipalities the bench's cases are spread over (real codes: 青葉区, 千代田区, 中央区,
/// 港区).
const MUNICIPALITIES: &[&str] = &["141178", "131016", "131024", "131032"];
/// Cases opened in each municipality.
const CASES_PER_MUNICIPALITY: usize = 4;
/// Support hubs the referrals go to, each serving every municipality.
const RECIPIENTS: usize = 8;

/// One configuration: a database and how many hub instances share it.
struct Setup {
    name: String,
    database: Option<String>,
    instances: usize,
}

/// Registers the test agencies, with the sender serving every bench municipality, and the
/// recipients (support hubs serving all of them).
async fn register(database_url: &str) -> anyhow::Result<()> {
    let store = tsunagu_hub::store::connect(database_url).await?;
    let now = SystemClock.now();
    let mut agencies = Vec::new();
    let everywhere: Vec<Municipality> = MUNICIPALITIES
        .iter()
        .map(|code| Municipality::parse(code).context("municipality"))
        .collect::<anyhow::Result<_>>()?;
    for row in AGENCIES {
        let mut agency = test_agency(row);
        if agency.id.as_str() == "kodomo" {
            agency.municipalities.clone_from(&everywhere);
        }
        agencies.push(agency);
    }
    for index in 0..RECIPIENTS {
        let mut agency = test_agency(&AGENCIES[4]);
        agency.id = tsunagu_hub::domain::AgencyId::parse(&bench_agency(index))
            .context("bench agency id")?;
        agency.display_name = format!("ベンチ拠点 {index}");
        agency.municipalities.clone_from(&everywhere);
        agencies.push(agency);
    }
    tsunagu_tests::insert_agencies(&*store, agencies, now).await;
    store.close().await;
    Ok(())
}

/// Hub CPU time of every instance together.
fn cpu(hubs: &[HubProcess]) -> Option<Duration> {
    hubs.iter().map(HubProcess::cpu).sum()
}

/// Runs `outcome` and puts the CPU time of every instance on it.
async fn measured(
    hubs: &[HubProcess],
    outcome: impl std::future::Future<Output = Outcome>,
) -> Outcome {
    let before = cpu(hubs);
    let mut outcome = outcome.await;
    outcome.hub_cpu = before.zip(cpu(hubs)).map(|(a, b)| b.saturating_sub(a));
    outcome
}

/// Sends, acknowledgements and ListEvents on one setup.
async fn run_setup(
    args: &Args,
    pki: &TestPki,
    dir: &Path,
    setup: &Setup,
) -> anyhow::Result<Vec<Outcome>> {
    let setup_dir = dir.join(format!("setup-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&setup_dir)?;
    let mut database = TestDatabase::create_on(setup.database.as_deref(), &setup_dir).await;
    register(&database.url).await?;
    let mut hubs = Vec::new();
    for instance in 0..setup.instances {
        let hub_dir = setup_dir.join(format!("hub-{instance}"));
        std::fs::create_dir_all(&hub_dir)?;
        hubs.push(start_hub(&hub_dir, pki, &database.url).await?);
    }
    // Every connection goes to the next instance in turn.
    let mut senders = Vec::new();
    for c in 0..args.connections {
        senders.push(connect(pki, hubs[c % hubs.len()].addr, "kodomo").await?);
    }
    let mut cases = Vec::new();
    for municipality in MUNICIPALITIES {
        for _ in 0..CASES_PER_MUNICIPALITY {
            cases.push(prepare_case(&senders[0], municipality).await?);
        }
    }
    let cases = Arc::new(cases);
    let body = sealed_bytes(&[b'x'; 1024]);
    let mut outcomes = Vec::new();

    eprintln!("{}: measuring durable sends…", setup.name);
    let send_cases = Arc::clone(&cases);
    outcomes.push(
        measured(
            &hubs,
            closed_loop(
                &format!("{}: SendReferral 1 KiB", setup.name),
                &senders,
                args.in_flight,
                args.seconds,
                None,
                move |client, n| {
                    // Each worker goes round the cases from its own starting point.
                    let (worker, count) = (n / 1_000_000, n % 1_000_000);
                    let case = &send_cases[(worker + count) % send_cases.len()];
                    let to = bench_agency((worker + count) % RECIPIENTS);
                    let request = referral_request(case, &to, &body);
                    async move { Some(client.referrals().send_referral(request).await.is_ok()) }
                },
            ),
        )
        .await,
    );

    eprintln!("{}: measuring delivery acknowledgements…", setup.name);
    // Each recipient acknowledges what it received, over connections spread like the senders'.
    let mut recipients = Vec::new();
    let mut queues = Vec::new();
    for index in 0..RECIPIENTS {
        let client = connect(pki, hubs[index % hubs.len()].addr, &bench_agency(index)).await?;
        queues.push(received(&client).await?);
        recipients.push(client);
    }
    let queues = Arc::new(queues);
    let taken: Arc<Vec<AtomicUsize>> =
        Arc::new((0..RECIPIENTS).map(|_| AtomicUsize::new(0)).collect());
    let per_recipient = (args.connections * args.in_flight / RECIPIENTS).max(1);
    outcomes.push(
        measured(
            &hubs,
            closed_loop(
                &format!("{}: RecordReferralAction (acknowledge)", setup.name),
                &recipients,
                per_recipient,
                args.seconds,
                None,
                move |client, n| {
                    let recipient = (n / 1_000_000) / per_recipient;
                    let index = taken[recipient].fetch_add(1, Ordering::Relaxed);
                    let id = queues[recipient].get(index).cloned();
                    async move {
                        let acknowledged = client
                            .referrals()
                            .record_referral_action(pb::RecordReferralActionRequest {
                                referral_id: id?,
                                action: pb::ReferralAction::AcknowledgeDelivery as i32,
                                staff: Some(staff()),
                                idempotency_key: uuid::Uuid::new_v4().to_string(),
                                ..pb::RecordReferralActionRequest::default()
                            })
                            .await
                            .is_ok();
                        Some(acknowledged)
                    }
                },
            ),
        )
        .await,
    );

    eprintln!("{}: measuring ListEvents pages of 100…", setup.name);
    let reader = bench_agency(0);
    let mut readers = Vec::new();
    for c in 0..args.connections {
        readers.push(connect(pki, hubs[c % hubs.len()].addr, &reader).await?);
    }
    let first = readers[0]
        .events()
        .list_events(pb::ListEventsRequest {
            after_cursor: 0,
            limit: 1,
        })
        .await?
        .into_inner();
    let first_cursor = first.events.first().map_or(0, |e| e.cursor);
    let last_cursor = newest_cursor(&readers[0], first_cursor).await?;
    // Cursors are global: pages start anywhere among the reader's entries but its last 100 or
    // so, counted in cursors (the others' entries lie between), so nearly all are full.
    let window = last_cursor
        .saturating_sub(first_cursor)
        .saturating_sub(100 * RECIPIENTS as u64 * 2)
        .max(1);
    outcomes.push(
        measured(
            &hubs,
            closed_loop(
                &format!("{}: ListEvents, pages of 100", setup.name),
                &readers,
                args.in_flight,
                args.seconds,
                None,
                move |client, n| async move {
                    let after = first_cursor + (n as u64 * 7919 % window);
                    // A page cut short near the end still counts: it was served.
                    let _ = full_page(&client, after, true).await;
                    Some(true)
                },
            ),
        )
        .await,
    );
    drop(hubs);
    database.drop_database().await;
    Ok(outcomes)
}

/// The referrals `client` received, oldest first.
async fn received(client: &Hub) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .referrals()
            .list_referrals(pb::ListReferralsRequest {
                direction: pb::ReferralDirection::Received as i32,
                case_id: String::new(),
                include_closed: false,
                limit: 500,
                page_token: page_token.clone(),
            })
            .await?
            .into_inner();
        ids.extend(page.referrals.into_iter().map(|r| r.referral_id));
        if page.next_page_token.is_empty() || ids.len() > 200_000 {
            break;
        }
        page_token = page.next_page_token;
    }
    ids.reverse();
    Ok(ids)
}

/// The newest cursor of the reader's feed, paging from `after`.
async fn newest_cursor(client: &Hub, mut after: u64) -> anyhow::Result<u64> {
    loop {
        let page = client
            .events()
            .list_events(pb::ListEventsRequest {
                after_cursor: after,
                limit: 1000,
            })
            .await?
            .into_inner();
        match page.events.last() {
            Some(last) => after = last.cursor,
            None => return Ok(after),
        }
    }
}

/// Runs the comparison and prints it: a table, then one JSON line per scenario.
pub(crate) async fn run(args: &Args, pki: &TestPki, dir: &Path) -> anyhow::Result<()> {
    let postgres = args
        .database
        .clone()
        .context("--database is needed to compare")?;
    let mut setups = vec![
        Setup {
            name: "SQLite".to_owned(),
            database: None,
            instances: 1,
        },
        Setup {
            name: "PostgreSQL ×1".to_owned(),
            database: Some(postgres.clone()),
            instances: 1,
        },
    ];
    if args.instances > 1 {
        setups.push(Setup {
            name: format!("PostgreSQL ×{}", args.instances),
            database: Some(postgres),
            instances: args.instances,
        });
    }
    let mut outcomes = Vec::new();
    for setup in &setups {
        outcomes.extend(run_setup(args, pki, dir, setup).await?);
    }
    if !args.json {
        print_table(&mut outcomes);
        println!();
        let rate = |name: &str, scenario: &str| {
            outcomes
                .iter()
                .find(|o| o.scenario == format!("{name}: {scenario}"))
                .map_or(0.0, Outcome::per_second)
        };
        for scenario in [
            "SendReferral 1 KiB",
            "RecordReferralAction (acknowledge)",
            "ListEvents, pages of 100",
        ] {
            let sqlite = rate("SQLite", scenario);
            let one = rate("PostgreSQL ×1", scenario);
            let several = rate(&format!("PostgreSQL ×{}", args.instances), scenario);
            println!(
                "{scenario:<40} PostgreSQL/SQLite = {:>5.1}%   ×{}/×1 = {:>4.2}x",
                100.0 * one / sqlite.max(1e-9),
                args.instances,
                several / one.max(1e-9)
            );
        }
        println!();
    }
    for o in &mut outcomes {
        println!("{}", o.json());
    }
    Ok(())
}
