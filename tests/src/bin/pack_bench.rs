//! `tsunagu-pack-bench`: how long a 要対協 meeting pack of a large 実務者会議 takes to build and
//! to read. It starts a real hub in this process (fresh SQLite file, or PostgreSQL with
//! `TSUNAGU_TEST_POSTGRES_URL`), publishes age keys for the test agencies, and sets up the
//! registered cases over mTLS exactly as agencies would: each case opened with a sealed header,
//! registered with a sealed キーパーソン, N referrals with sealed bodies to council members (some
//! acknowledged, accepted or reported not connected, the rest left to go overdue), and notes.
//! Then, several times over, it times
//!
//! - `GetMeetingPack`: the RPC as the coordinator's client sees it (the hub reads the agenda's
//!   material, audits each case, and the answer crosses mTLS);
//! - opening every sealed field with the reader's identity and building the view;
//! - rendering it as Markdown and as HTML.
//!
//! Prints a table for people, then one JSON line per step for scripts.
//!
//! ```sh
//! cargo run --release -p tsunagu-tests --bin tsunagu-pack-bench
//! cargo run --release -p tsunagu-tests --bin tsunagu-pack-bench -- --cases 100 --runs 3
//! ```

use std::time::{Duration, Instant};

use age::x25519::Identity;
use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use futures::{StreamExt as _, stream};
use prost::Message as _;
use tsunagu_client::Hub;
use tsunagu_client::keys::publish;
use tsunagu_client::pack::{self, Format, Opener};
use tsunagu_client::sealing::{SealPlan, Sealer};
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::{
    CHILD_PROTECTION, NURSERY_ADMISSION, POSTNATAL_CARE, action_request, council_sharing,
    japan_date, meeting_pack, not_connected_request, note_request, open_case_request,
    referral_request, register_request, schedule_request, staff,
};
use tsunagu_tests::{MUNICIPALITY, TestHub};

/// Time building and rendering a 実務者会議 meeting pack of many registered cases.
#[derive(Debug, Parser)]
#[command(
    name = "tsunagu-pack-bench",
    after_help = "Examples:\n  cargo run --release -p tsunagu-tests --bin tsunagu-pack-bench\n  \
                  cargo run --release -p tsunagu-tests --bin tsunagu-pack-bench -- --cases 100 --runs 3 --json"
)]
struct Args {
    /// Registered cases on the agenda.
    #[arg(long, default_value_t = 500)]
    cases: usize,
    /// Referrals per case.
    #[arg(long, default_value_t = 10)]
    referrals: usize,
    /// Notes per case.
    #[arg(long, default_value_t = 2)]
    notes: usize,
    /// Timed runs of each step (after one untimed warm-up).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Cases set up at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The agency reading the pack: kodomo (the coordinator: every field is sealed to it) or a
    /// member such as nursery (opens only what was sealed to it).
    #[arg(long, default_value = "kodomo")]
    reader: String,
    /// Only the JSON lines, no table.
    #[arg(long)]
    json: bool,
}

/// The agencies of the test hub that take part, with their clients and age identities.
struct Agencies {
    kodomo: Hub,
    hospital: Hub,
    nursery: Hub,
    jisou: Hub,
    identities: Vec<(&'static str, Identity)>,
}

impl Agencies {
    fn client(&self, id: &str) -> &Hub {
        match id {
            "hospital" => &self.hospital,
            "nursery" => &self.nursery,
            "jisou" => &self.jisou,
            _ => &self.kodomo,
        }
    }

    fn identity(&self, id: &str) -> Option<&Identity> {
        self.identities
            .iter()
            .find(|(agency, _)| *agency == id)
            .map(|(_, identity)| identity)
    }
}

/// Who each kind of field is sealed to, worked out once from the key directory (as the CLI's
/// `Sealer` does per field): kodomo (the sender and the coordinator) is on every one of them.
struct Plans {
    header: SealPlan,
    council: SealPlan,
    hospital: SealPlan,
    nursery: SealPlan,
    jisou: SealPlan,
}

impl Plans {
    fn to(&self, agency: &str) -> &SealPlan {
        match agency {
            "hospital" => &self.hospital,
            "nursery" => &self.nursery,
            _ => &self.jisou,
        }
    }
}

const MEMBERS: [(&str, &str); 3] = [
    ("hospital", POSTNATAL_CARE),
    ("nursery", NURSERY_ADMISSION),
    ("jisou", CHILD_PROTECTION),
];

/// Opens, registers and fills one case; returns its id.
async fn set_up_case(
    agencies: &Agencies,
    plans: &Plans,
    args: &Args,
    registered_on: &str,
    n: usize,
) -> anyhow::Result<String> {
    let kodomo = &agencies.kodomo;
    let mut open = open_case_request(MUNICIPALITY);
    open.category = pb::CaseCategory::RequiresSupport.into();
    open.stage = pb::CaseStage::Infancy.into();
    open.header = Some(plans.header.seal(
        format!("氏名: 青葉 花子{n}（架空）／生年月日: 2025-05-01／住所: 横浜市青葉区…").as_bytes(),
    )?);
    let case = kodomo
        .cases()
        .open_case(open)
        .await?
        .into_inner()
        .case
        .context("OpenCase answered without the case")?;
    let case_id = case.case_id;

    let mut register = register_request(&case_id, registered_on, "");
    register.key_person = Some(
        plans
            .council
            .seal(format!("キーパーソン: 母方祖母（ケース{n}）、近隣在住で協力的").as_bytes())?,
    );
    kodomo.council().register_case(register).await?;

    for j in 0..args.referrals {
        let (to, purpose) = MEMBERS[j % MEMBERS.len()];
        let mut request = referral_request(&case_id, to, purpose, council_sharing());
        request.body = Some(plans.to(to).seal(
            format!(
                "紹介{j}: 産後の養育支援を依頼します。母は育児への不安が強く、夜間の授乳で疲労。\
                 訪問時の様子を共有してください。（ケース{n}）"
            )
            .as_bytes(),
        )?);
        let referral = kodomo
            .referrals()
            .send_referral(request)
            .await?
            .into_inner()
            .referral
            .context("SendReferral answered without the referral")?;
        let recipient = agencies.client(to);
        let id = referral.referral_id;
        let act = async |action: pb::ReferralAction| -> anyhow::Result<()> {
            recipient
                .referrals()
                .record_referral_action(action_request(&id, action))
                .await?;
            Ok(())
        };
        // A fifth stay untouched (they go overdue), the rest move along one, two or three layers.
        match j % 5 {
            1 => act(pb::ReferralAction::AcknowledgeDelivery).await?,
            2 => {
                act(pb::ReferralAction::AcknowledgeDelivery).await?;
                act(pb::ReferralAction::Accept).await?;
            }
            3 => {
                act(pb::ReferralAction::AcknowledgeDelivery).await?;
                act(pb::ReferralAction::Accept).await?;
                let mut request =
                    not_connected_request(&id, pb::NotConnectedReason::CouldNotContact, "");
                request.note = Some(
                    plans
                        .to(to)
                        .seal("電話3回、訪問1回。応答なし。".as_bytes())?,
                );
                recipient
                    .referrals()
                    .record_referral_action(request)
                    .await?;
            }
            _ => {}
        }
    }
    for k in 0..args.notes {
        let (to, _) = MEMBERS[(k + 1) % MEMBERS.len()];
        let mut request = note_request(&case_id, &[to], CHILD_PROTECTION, council_sharing());
        request.body = Some(
            plans
                .to(to)
                .seal(format!("家庭訪問{k}: 母の表情は明るい。次回は来月。").as_bytes())?,
        );
        kodomo.referrals().send_note(request).await?;
    }
    Ok(case_id)
}

/// Median, minimum and maximum of some durations.
struct Figures {
    median: Duration,
    min: Duration,
    max: Duration,
}

fn figures(mut samples: Vec<Duration>) -> Figures {
    samples.sort_unstable();
    Figures {
        median: samples[(samples.len() - 1) / 2],
        min: samples[0],
        max: samples[samples.len() - 1],
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The number of escalations in a pack's timelines.
fn escalations(pack: &pb::GetMeetingPackResponse) -> usize {
    pack.cases
        .iter()
        .flat_map(|c| &c.timeline)
        .filter(|e| {
            matches!(&e.entry, Some(pb::thread_entry::Entry::ReferralEvent(event))
                if event.kind() == pb::ReferralEventKind::Escalated)
        })
        .count()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.runs >= 1, "--runs must be at least 1");
    ensure!(args.cases >= 1, "--cases must be at least 1");
    // The hub's own logs stay quiet unless RUST_LOG asks; figures go to stdout.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let progress = |text: &str| {
        if !args.json {
            eprintln!("{text}");
        }
    };

    let hub = TestHub::start_with(|settings| {
        // The production tick, not the tests' 100 ms: every tick re-reads each overdue referral,
        // and thousands of them every 100 ms would keep a core busy during the measurements.
        settings.timer_interval = Duration::from_secs(30);
        settings
            .council
            .municipality_names
            .insert(MUNICIPALITY.to_owned(), "横浜市青葉区".to_owned());
    })
    .await;
    let backend = if hub.database.url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    let mut identities = Vec::new();
    for id in ["kodomo", "hospital", "nursery", "jisou"] {
        let identity = Identity::generate();
        publish(&hub.client(id).await, &identity.to_public(), &staff()).await?;
        identities.push((id, identity));
    }
    let agencies = Agencies {
        kodomo: hub.client("kodomo").await,
        hospital: hub.client("hospital").await,
        nursery: hub.client("nursery").await,
        jisou: hub.client("jisou").await,
        identities,
    };
    let Some(reader_identity) = agencies.identity(&args.reader).cloned() else {
        bail!("--reader must be one of kodomo, hospital, nursery, jisou");
    };
    let reader = agencies.client(&args.reader).clone();

    let mut sealer = Sealer::new(&agencies.kodomo);
    let council = tsunagu_client::council::readers(&agencies.kodomo, MUNICIPALITY).await?;
    let council: Vec<&str> = council.iter().map(String::as_str).collect();
    let plans = Plans {
        header: sealer.plan(&["hospital", "nursery"], None).await?,
        council: sealer.plan(&council, None).await?,
        hospital: sealer.plan(&["hospital"], None).await?,
        nursery: sealer.plan(&["nursery"], None).await?,
        jisou: sealer.plan(&["jisou"], None).await?,
    };

    progress(&format!(
        "setting up {} registered cases with {} referrals and {} notes each on {backend}…",
        args.cases, args.referrals, args.notes
    ));
    let started = Instant::now();
    let registered_on = japan_date(&*hub.clock, -100);
    let set_up: Vec<anyhow::Result<String>> = stream::iter(0..args.cases)
        .map(|n| set_up_case(&agencies, &plans, &args, &registered_on, n))
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let case_ids = set_up.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let setup_time = started.elapsed();

    // A day later the untouched referrals' delivery deadlines have passed; the hub escalates.
    hub.clock.advance(Duration::from_secs(25 * 3600));
    let meeting = agencies
        .kodomo
        .council()
        .schedule_meeting(schedule_request(
            pb::MeetingKind::Practitioners,
            &japan_date(&*hub.clock, 0),
            &[],
        ))
        .await?
        .into_inner()
        .meeting
        .context("ScheduleMeeting answered without the meeting")?;
    ensure!(
        meeting.case_ids.len() == case_ids.len(),
        "the meeting took up {} cases, not {}",
        meeting.case_ids.len(),
        case_ids.len()
    );
    let untouched = case_ids.len()
        * (0..args.referrals)
            .filter(|j| j % 5 == 0 || j % 5 == 4)
            .count();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = 0;
    loop {
        let pack = meeting_pack(&reader, &meeting.meeting_id).await?;
        let seen = escalations(&pack);
        if seen >= untouched || (seen == last && seen > 0) || Instant::now() > deadline {
            break;
        }
        last = seen;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    progress(&format!(
        "set up in {:.1} s; timing {} runs…",
        setup_time.as_secs_f64(),
        args.runs
    ));

    let identities = [reader_identity];
    let opener = Opener::new(&identities);
    let request = pb::GetMeetingPackRequest {
        meeting_id: meeting.meeting_id.clone(),
    };
    let mut fetch_times = Vec::new();
    let mut open_times = Vec::new();
    let mut markdown_times = Vec::new();
    let mut html_times = Vec::new();
    let mut total_times = Vec::new();
    let mut sizes = (0, 0, 0, 0, 0, 0);
    for run in 0..=args.runs {
        let t0 = Instant::now();
        let pack = reader
            .council()
            .get_meeting_pack(request.clone())
            .await?
            .into_inner();
        let t1 = Instant::now();
        let view = pack::build(&pack, &opener);
        let t2 = Instant::now();
        let markdown = pack::render(&view, Format::Markdown);
        let t3 = Instant::now();
        let html = pack::render(&view, Format::Html);
        let t4 = Instant::now();
        ensure!(
            view.cases.len() == args.cases,
            "the pack has {} cases",
            view.cases.len()
        );
        sizes = (
            pack.encoded_len(),
            markdown.len(),
            html.len(),
            view.unreadable,
            escalations(&pack),
            pack.cases.iter().map(|c| c.referrals.len()).sum::<usize>(),
        );
        if run == 0 {
            continue; // warm-up
        }
        fetch_times.push(t1 - t0);
        open_times.push(t2 - t1);
        markdown_times.push(t3 - t2);
        html_times.push(t4 - t3);
        total_times.push(t4 - t0);
    }
    let (pack_bytes, markdown_bytes, html_bytes, unreadable, escalated, referrals) = sizes;
    let steps = [
        ("get_meeting_pack", figures(fetch_times)),
        ("open_and_build", figures(open_times)),
        ("render_markdown", figures(markdown_times)),
        ("render_html", figures(html_times)),
        ("total", figures(total_times)),
    ];
    let target = Duration::from_secs(2);
    let total_median = steps[4].1.median;

    if !args.json {
        println!(
            "meeting pack: {} cases, {referrals} referrals, {escalated} escalations, read by {} \
             ({unreadable} sealed fields not openable by it), {backend}{}",
            args.cases,
            args.reader,
            if cfg!(debug_assertions) {
                " — DEBUG BUILD, use --release for real figures"
            } else {
                ""
            }
        );
        println!(
            "pack {:.1} MiB on the wire, Markdown {:.1} MiB, HTML {:.1} MiB; set-up {:.1} s",
            pack_bytes as f64 / 1_048_576.0,
            markdown_bytes as f64 / 1_048_576.0,
            html_bytes as f64 / 1_048_576.0,
            setup_time.as_secs_f64()
        );
        println!(
            "{:<18} {:>11} {:>11} {:>11}",
            "step", "median ms", "min ms", "max ms"
        );
        for (name, f) in &steps {
            println!(
                "{name:<18} {:>11.1} {:>11.1} {:>11.1}",
                ms(f.median),
                ms(f.min),
                ms(f.max)
            );
        }
        println!(
            "target: build + render under {} s — {}",
            target.as_secs(),
            if total_median < target {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    for (name, f) in &steps {
        println!(
            "{}",
            serde_json::json!({
                "bench": "pack",
                "step": name,
                "backend": backend,
                "cases": args.cases,
                "referrals_per_case": args.referrals,
                "notes_per_case": args.notes,
                "reader": args.reader,
                "runs": args.runs,
                "median_ms": ms(f.median),
                "min_ms": ms(f.min),
                "max_ms": ms(f.max),
                "pack_bytes": pack_bytes,
                "markdown_bytes": markdown_bytes,
                "html_bytes": html_bytes,
                "unreadable": unreadable,
                "debug_build": cfg!(debug_assertions),
            })
        );
    }
    drop(agencies);
    drop(reader);
    hub.stop().await;
    Ok(())
}
