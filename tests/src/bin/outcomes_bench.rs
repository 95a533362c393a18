//! `tsunagu-outcomes-bench`: how long `GetOutcomes` takes for a municipality with a year of
//! referrals. It starts a real hub in this process (a fresh SQLite file, or a fresh database on
//! the PostgreSQL server `--database` names), loads the referrals straight through the store for
//! speed (cases, referrals with a realistic mix of states reached by the domain's own rules, their
//! events and escalations), then times the coordinator's `GetOutcomes` over mTLS, grouped by
//! recipient and purpose, several times.
//!
//! ```sh
//! cargo run --release -p tsunagu-tests --bin tsunagu-outcomes-bench
//! cargo run --release -p tsunagu-tests --bin tsunagu-outcomes-bench -- \
//!     --database postgres://postgres@127.0.0.1:5432/test
//! ```

use std::time::{Duration, Instant};

use anyhow::ensure;
use clap::Parser;
use tsunagu_hub::casework::audit::AuditMode;
use tsunagu_hub::domain::basis::LegalBasisKind;
use tsunagu_hub::domain::records::{
    Case, EscalationTier, Referral, ReferralEvent, ReferralEventKind,
};
use tsunagu_hub::domain::referral::{
    ActionInput, DeadlinePolicy, NotConnectedReason, Party, ReferralAction, ReferralState, apply,
    overdue,
};
use tsunagu_hub::domain::{
    AgencyId, CaseCategory, CaseId, CaseStage, Clock as _, EventId, Municipality, Purpose,
    ReferralId, Sealed, Staff, Timestamp, Urgency,
};
use tsunagu_hub::store::Locking;
use tsunagu_proto::v1 as pb;
use tsunagu_tests::{MUNICIPALITY, TestHub};

/// Time the outcomes of a municipality with many referrals.
#[derive(Debug, Parser)]
#[command(
    name = "tsunagu-outcomes-bench",
    after_help = "Examples:\n  cargo run --release -p tsunagu-tests --bin tsunagu-outcomes-bench\n  \
                  cargo run --release -p tsunagu-tests --bin tsunagu-outcomes-bench -- --database postgres://postgres@127.0.0.1:5432/test"
)]
struct Args {
    /// Referrals loaded, spread over the past year.
    #[arg(long, default_value_t = 100_000)]
    referrals: usize,
    /// Timed runs (after one untimed warm-up).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// A PostgreSQL server (a fresh database is made on it); default a fresh SQLite file.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Referrals per write transaction while loading.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
}

/// A small seeded PRNG (xorshift64*), so every run loads the same history.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn hours(&mut self, max: u64) -> time::Duration {
        time::Duration::minutes(1 + self.below(max * 60) as i64)
    }
}

const RECIPIENTS: [&str; 5] = ["hospital", "nursery", "hiroba", "jisou", "kodomo"];
const PURPOSES: [&str; 6] = [
    "postnatal_care",
    "home_visit_support",
    "temporary_childcare",
    "nursery_admission",
    "developmental_consultation",
    "psychiatric_care",
];

/// The actions one referral goes through, chosen for a realistic mix: most are accepted and most
/// of those connect; some are declined, cancelled, failed, reported not connected, or still wait.
fn script(rng: &mut Rng) -> Vec<ReferralAction> {
    use ReferralAction as A;
    let roll = rng.below(100);
    let mut actions = Vec::new();
    if roll < 4 {
        return actions; // Not yet acknowledged.
    }
    actions.push(A::AcknowledgeDelivery);
    match roll {
        4..=8 => return actions, // Waiting for an answer.
        9..=16 => {
            actions.push(A::Decline);
            return actions;
        }
        17..=19 => {
            actions.push(A::Cancel);
            return actions;
        }
        _ => actions.push(A::Accept),
    }
    match rng.below(100) {
        0..=9 => {}
        10..=17 => actions.push(A::Start),
        18..=27 => actions.extend([A::Start, A::RecordContactAttempt]),
        28..=72 => {
            actions.extend([A::Start, A::RecordContactAttempt, A::ReportConnected]);
            if rng.below(2) == 0 {
                actions.push(A::Confirm);
            }
        }
        73..=89 => {
            actions.extend([A::RecordContactAttempt, A::ReportNotConnected]);
            if rng.below(3) == 0 {
                actions.push(A::Confirm);
            }
        }
        _ => actions.extend([A::Start, A::Fail]),
    }
    actions
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.runs >= 1, "--runs must be at least 1");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Plain text when the log goes to a file: colour codes only on a terminal.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();

    let hub = TestHub::start_on(
        args.database.as_deref(),
        |settings| {
            // The timer task would escalate thousands of overdue referrals while we measure.
            settings.timer_interval = Duration::from_secs(3600);
        },
        AuditMode::On,
    )
    .await;
    let backend = if hub.database.url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    let municipality = Municipality::parse(MUNICIPALITY).unwrap();
    let kodomo = AgencyId::parse("kodomo").unwrap();
    let staff = Staff {
        name: "青葉 花子".to_owned(),
        role: "保健師".to_owned(),
    };
    let now = hub.clock.now();
    let year_ms = 365 * 86_400_000_i64;
    let mut rng = Rng(0x0c0e_5eed_2026_0001);

    eprintln!(
        "loading {} referrals over a year into {backend}…",
        args.referrals
    );
    let started = Instant::now();
    let mut loaded = 0;
    let mut events = 0;
    while loaded < args.referrals {
        let batch = args.batch.min(args.referrals - loaded);
        let (municipality, kodomo, staff) = (municipality.clone(), kodomo.clone(), staff.clone());
        let (returned, added) = hub
            .store
            .write(Locking::Exclusive, move |tx| {
                Box::pin(async move {
                    let policy = DeadlinePolicy::default();
                    let mut events = 0;
                    let mut case = None;
                    for i in 0..batch {
                        // Five referrals per case, as a family is referred on.
                        if i % 5 == 0 || case.is_none() {
                            let c = Case {
                                id: CaseId::generate(),
                                municipality: municipality.clone(),
                                category: CaseCategory::General,
                                stage: CaseStage::Infancy,
                                opened_by: kodomo.clone(),
                                opened_at: Timestamp::from_millis(
                                    now.millis() - year_ms - 86_400_000,
                                ),
                                header: Sealed(b"age-bench-header".to_vec()),
                                council_registered: true,
                            };
                            tx.insert_case(&c).await?;
                            case = Some(c.id);
                        }
                        let case_id = case.clone().unwrap();
                        let sent_at =
                            Timestamp::from_millis(now.millis() - rng.below(year_ms as u64) as i64);
                        let urgency = match rng.below(20) {
                            0 => Urgency::Emergency,
                            1..=4 => Urgency::Urgent,
                            _ => Urgency::Routine,
                        };
                        let to = AgencyId::parse(RECIPIENTS[rng.below(4) as usize]).unwrap();
                        let mut referral = Referral {
                            id: ReferralId::generate(),
                            case_id: case_id.clone(),
                            municipality: municipality.clone(),
                            from_agency: kodomo.clone(),
                            to_agency: to.clone(),
                            purpose: Purpose::parse(
                                PURPOSES[rng.below(PURPOSES.len() as u64) as usize],
                            )
                            .unwrap(),
                            urgency,
                            basis: LegalBasisKind::CouncilSharing,
                            consent_id: None,
                            justification: Some("要対協登録ケース".to_owned()),
                            hide_sender: false,
                            body: Sealed(b"age-bench-body".to_vec()),
                            staff: staff.clone(),
                            sent_at,
                            deadlines: policy.deadlines(urgency, sent_at),
                            deadline_terms: None,
                            state: ReferralState::new(),
                            closed_with_reason: None,
                        };
                        let mut history = vec![(
                            ReferralEventKind::Sent,
                            sent_at,
                            None,
                            referral.state.clone(),
                        )];
                        let mut at = sent_at;
                        for action in script(&mut rng) {
                            at = at.plus(rng.hours(if action == ReferralAction::Confirm {
                                240
                            } else {
                                96
                            }));
                            if at > now {
                                break;
                            }
                            let mut input = ActionInput::new(action);
                            match action {
                                ReferralAction::Decline
                                | ReferralAction::Fail
                                | ReferralAction::Cancel => {
                                    input.reason_code = Some(
                                        ["no_capacity", "not_eligible", "family_moved"]
                                            [rng.below(3) as usize]
                                            .to_owned(),
                                    );
                                }
                                ReferralAction::ReportNotConnected => {
                                    input.not_connected_reason = Some(
                                        [
                                            NotConnectedReason::CouldNotContact,
                                            NotConnectedReason::DeclinedByFamily,
                                            NotConnectedReason::NotEligible,
                                            NotConnectedReason::NoCapacity,
                                            NotConnectedReason::Moved,
                                        ][rng.below(5) as usize],
                                    );
                                }
                                _ => {}
                            }
                            let party = match action {
                                ReferralAction::Cancel | ReferralAction::Confirm => Party::Sender,
                                _ => Party::Recipient,
                            };
                            referral.state = apply(&referral.state, party, &input, &kodomo, at)
                                .map_err(|e| anyhow::anyhow!("bench script: {e}"))?;
                            history.push((
                                ReferralEventKind::Action(action),
                                at,
                                input.reason_code.clone(),
                                referral.state.clone(),
                            ));
                        }
                        tx.insert_referral(&referral).await?;
                        for (kind, occurred_at, reason_code, state) in history {
                            tx.insert_referral_event(&ReferralEvent {
                                id: EventId::generate(),
                                referral_id: referral.id.clone(),
                                case_id: case_id.clone(),
                                kind,
                                actor_agency: Some(kodomo.clone()),
                                actor_staff: Some(staff.clone()),
                                occurred_at,
                                recorded_at: occurred_at,
                                reason_code,
                                reason_text: None,
                                not_connected_reason: state.not_connected_reason,
                                note: None,
                                reason_detail: None,
                                delivery: state.delivery,
                                response: state.response,
                                connection: state.connection,
                            })
                            .await?;
                            events += 1;
                        }
                        // Deadlines that passed unmoved were escalated, past the grace to the coordinator.
                        for timer in overdue(&referral.state, &referral.deadlines, now) {
                            let due = referral.deadlines.get(timer);
                            tx.record_escalation(
                                &referral.id,
                                timer,
                                EscalationTier::Responsible,
                                due,
                            )
                            .await?;
                            if now.millis() - due.millis() > 86_400_000 {
                                tx.record_escalation(
                                    &referral.id,
                                    timer,
                                    EscalationTier::Coordinator,
                                    due,
                                )
                                .await?;
                            }
                        }
                    }
                    anyhow::Ok((rng, events))
                })
            })
            .await?;
        rng = returned;
        events += added;
        loaded += batch;
        if loaded % 20_000 == 0 || loaded == args.referrals {
            eprintln!(
                "  {loaded} referrals, {events} events ({:.0?})",
                started.elapsed()
            );
        }
    }
    let load_time = started.elapsed();

    // A debug build may need more than the test clients' 10 seconds for a year of referrals.
    let mut options = hub
        .pki
        .connect_options(hub.addr, Some(&hub.pki.agency_certificate("kodomo")));
    options.timeout = Duration::from_secs(600);
    let client = tsunagu_client::Hub::connect(&options).await?;
    let from = (now.plus(time::Duration::days(-366))).date_in_japan();
    let to = now.date_in_japan();
    let request = pb::GetOutcomesRequest {
        from: format!(
            "{:04}-{:02}-{:02}",
            from.year(),
            u8::from(from.month()),
            from.day()
        ),
        to: format!(
            "{:04}-{:02}-{:02}",
            to.year(),
            u8::from(to.month()),
            to.day()
        ),
        group_by: vec![
            pb::OutcomeDimension::Recipient as i32,
            pb::OutcomeDimension::Purpose as i32,
        ],
        suppress_below: 0,
        municipality: String::new(),
    };
    let answer = client
        .outcomes()
        .get_outcomes(request.clone())
        .await?
        .into_inner();
    let counted = answer
        .totals
        .as_ref()
        .and_then(|t| t.referrals)
        .map_or(0, |c| c.value);
    ensure!(
        counted as usize == args.referrals,
        "the outcomes counted {counted} referrals, {} were loaded",
        args.referrals
    );
    // Where the time goes: the store's read alone, and the computation over its rows.
    let coordinator = hub
        .store
        .read()
        .await?
        .agency(&kodomo)
        .await?
        .expect("kodomo is registered");
    let query = tsunagu_hub::casework::outcomes::OutcomeQuery {
        from,
        to,
        group_by: vec![
            tsunagu_hub::domain::outcomes::Dimension::Recipient,
            tsunagu_hub::domain::outcomes::Dimension::Purpose,
        ],
        municipality: None,
    };
    let started = Instant::now();
    let mut tx = hub.store.read().await?;
    let parts = tx
        .outcome_parts(
            tsunagu_hub::store::outcomes::OutcomeScope::Municipality(&municipality),
            tsunagu_hub::casework::outcomes::start_of_day_in_japan(from),
            tsunagu_hub::casework::outcomes::start_of_day_in_japan(to.next_day().unwrap()),
            &tsunagu_hub::store::outcomes::OutcomeView {
                viewer: &kodomo,
                group_by: &query.group_by,
                now,
            },
        )
        .await?;
    let read_time = started.elapsed();
    drop(tx);
    let started = Instant::now();
    let mut tx = hub.store.read().await?;
    let computed =
        tsunagu_hub::casework::outcomes::caller_outcomes(&mut *tx, &coordinator, &query, now)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let both_time = started.elapsed();
    drop(tx);
    eprintln!(
        "  store read ({} tallies, {} lists of step times, {} on chains): {:.0} ms; \
         read and computation ({} groups): {:.0} ms",
        parts.tallies.len(),
        parts.timings.len(),
        parts.links.len(),
        read_time.as_secs_f64() * 1000.0,
        computed.outcomes.groups.len(),
        both_time.as_secs_f64() * 1000.0
    );
    let mut times = Vec::new();
    for _ in 0..args.runs {
        let started = Instant::now();
        let answer = client
            .outcomes()
            .get_outcomes(request.clone())
            .await?
            .into_inner();
        times.push(started.elapsed());
        std::hint::black_box(answer);
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "GetOutcomes by recipient × purpose, {} referrals ({} groups) on {backend}: \
         min {:.0} ms, median {:.0} ms, max {:.0} ms over {} runs (loaded in {:.1} s, {events} events)",
        args.referrals,
        answer.groups.len(),
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        args.runs,
        load_time.as_secs_f64(),
    );
    println!(
        "{{\"bench\":\"outcomes\",\"backend\":\"{backend}\",\"referrals\":{},\"groups\":{},\"min_ms\":{:.1},\"median_ms\":{:.1},\"max_ms\":{:.1}}}",
        args.referrals,
        answer.groups.len(),
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
    );
    hub.stop().await;
    Ok(())
}
