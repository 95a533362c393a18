//! Outcomes: figures computed by the hub from routing metadata equal a plain recount from the
//! referrals' own states and events; each caller counts only its scope; journeys through
//! `referred_elsewhere`; suppressed cells never show a small count.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use tonic::Code;
use tsunagu_client::Hub;
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::*;
use tsunagu_tests::{MUNICIPALITY, OTHER_MUNICIPALITY, TestHub};

use pb::ReferralAction as A;

/// A small seeded PRNG (xorshift64*): the same seed gives the same history.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const RECIPIENTS: &[&str] = &["hospital", "nursery", "hiroba"];
const PURPOSES: &[&str] = &[
    "postnatal_care",
    "home_visit_support",
    "temporary_childcare",
];

pub fn outcomes_request(
    from: &str,
    to: &str,
    group_by: &[pb::OutcomeDimension],
) -> pb::GetOutcomesRequest {
    pb::GetOutcomesRequest {
        from: from.to_owned(),
        to: to.to_owned(),
        group_by: group_by.iter().map(|d| *d as i32).collect(),
        suppress_below: 0,
        municipality: String::new(),
    }
}

pub async fn get_outcomes(
    client: &Hub,
    request: pb::GetOutcomesRequest,
) -> Result<pb::GetOutcomesResponse, tonic::Status> {
    Ok(client.outcomes().get_outcomes(request).await?.into_inner())
}

/// A referral as its parties see it, with its events.
struct Seen {
    referral: pb::Referral,
    events: Vec<pb::ReferralEvent>,
}

fn count(value: u64) -> Option<pb::Count> {
    Some(pb::Count {
        value,
        suppressed: false,
    })
}

/// Nearest-rank percentile.
fn percentile(sorted: &[i64], percent: usize) -> i64 {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn month_of(millis: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
        .unwrap()
        .to_offset(time::UtcOffset::from_hms(9, 0, 0).unwrap());
    format!("{:04}-{:02}", at.year(), u8::from(at.month()))
}

fn key_of(referral: &pb::Referral, dimension: pb::OutcomeDimension) -> String {
    use pb::OutcomeDimension as D;
    match dimension {
        D::Sender => referral.from_agency.clone(),
        D::Recipient => referral.to_agency.clone(),
        D::RecipientKind => match referral.to_agency.as_str() {
            "hiroba" => "support_hub".to_owned(),
            other => other.to_owned(),
        },
        D::Purpose => referral.purpose.clone(),
        D::Urgency => match pb::Urgency::try_from(referral.urgency).unwrap() {
            pb::Urgency::Routine => "routine",
            pb::Urgency::Urgent => "urgent",
            _ => "emergency",
        }
        .to_owned(),
        D::LegalBasis => "consent".to_owned(),
        D::Month => month_of(millis(&referral.sent_at)),
        D::Unspecified => unreachable!(),
    }
}

/// How a journey ended, by its last referral: 1 connected, 2 not connected, 3 open, 4 left scope.
fn journey_ends(seen: &[&Seen]) -> HashMap<String, u8> {
    let by_id: HashMap<&str, &pb::Referral> = seen
        .iter()
        .map(|s| (s.referral.referral_id.as_str(), &s.referral))
        .collect();
    let onward = |r: &pb::Referral| {
        (r.connection == pb::ConnectionState::NotConnected as i32
            && r.not_connected_reason == pb::NotConnectedReason::ReferredElsewhere as i32)
            .then(|| r.linked_referral_id.clone())
    };
    let linked: HashSet<String> = seen
        .iter()
        .filter_map(|s| onward(&s.referral))
        .filter(|id| by_id.contains_key(id.as_str()))
        .collect();
    let mut ends = HashMap::new();
    for s in seen
        .iter()
        .filter(|s| !linked.contains(&s.referral.referral_id))
    {
        let mut last = &s.referral;
        let end = loop {
            match onward(last) {
                Some(next) => match by_id.get(next.as_str()) {
                    Some(r) => last = r,
                    None => break 4,
                },
                None => {
                    let closed = last.confirmed_at.is_some()
                        || last.response == pb::ResponseState::Cancelled as i32
                        || last.response == pb::ResponseState::Declined as i32;
                    break match pb::ConnectionState::try_from(last.connection).unwrap() {
                        pb::ConnectionState::Connected => 1,
                        pb::ConnectionState::NotConnected => 2,
                        _ if closed => 2,
                        _ => 3,
                    };
                }
            }
        };
        ends.insert(s.referral.referral_id.clone(), end);
    }
    ends
}

/// The figures a plain recount of `seen` gives at `now` (milliseconds), as the hub sends them
/// without suppression.
fn recount(seen: &[&Seen], ends: &HashMap<String, u8>, now: i64) -> pb::OutcomeFigures {
    let n = |pred: &dyn Fn(&pb::Referral) -> bool| {
        count(seen.iter().filter(|s| pred(&s.referral)).count() as u64)
    };
    use pb::ConnectionState as C;
    use pb::ResponseState as R;
    let response_is = |state: R| move |r: &pb::Referral| r.response == state as i32;
    let connection_is = |state: C| move |r: &pb::Referral| r.connection == state as i32;
    let reported = |r: &pb::Referral| {
        r.connection == C::Connected as i32 || r.connection == C::NotConnected as i32
    };

    // Durations from the referral's own timestamps and its events.
    let mut durations: [Vec<i64>; 5] = Default::default();
    for s in seen {
        let r = &s.referral;
        let sent = millis(&r.sent_at);
        let first_event = |actions: &[A]| {
            s.events
                .iter()
                .filter(|e| {
                    e.kind == pb::ReferralEventKind::Action as i32
                        && actions.iter().any(|a| *a as i32 == e.action)
                })
                .map(|e| millis(&e.occurred_at))
                .min()
        };
        let reached = [
            r.delivered_at.as_ref().map(|_| millis(&r.delivered_at)),
            first_event(&[A::Accept]),
            first_event(&[A::RecordContactAttempt, A::ReportConnected]),
            (r.connection == C::Connected as i32).then(|| millis(&r.connection_updated_at)),
            r.confirmed_at.as_ref().map(|_| millis(&r.confirmed_at)),
        ];
        for (slot, at) in durations.iter_mut().zip(reached) {
            if let Some(at) = at {
                slot.push((at - sent).max(0) / 1000);
            }
        }
    }

    // Rot: the referral's own overdue timers, aged at `now`.
    let mut overdue: BTreeMap<(i32, i32), u64> = BTreeMap::new();
    for s in seen {
        let r = &s.referral;
        let deadlines = r.deadlines.as_ref().unwrap();
        for timer in &r.overdue {
            let due = match pb::TimerKind::try_from(*timer).unwrap() {
                pb::TimerKind::DeliverBy => &deadlines.deliver_by,
                pb::TimerKind::RespondBy => &deadlines.respond_by,
                pb::TimerKind::ConnectBy => &deadlines.connect_by,
                _ => &deadlines.confirm_by,
            };
            let days = (now - millis(due)) as f64 / 86_400_000.0;
            let age = if days < 1.0 {
                1
            } else if days < 7.0 {
                2
            } else if days < 30.0 {
                3
            } else {
                4
            };
            *overdue.entry((*timer, age)).or_default() += 1;
        }
    }

    // Escalations: per timer, the first escalation event went to the responsible agency and the
    // second to the coordinator.
    let mut escalations: BTreeMap<(i32, i32), u64> = BTreeMap::new();
    for s in seen {
        let mut per_timer: BTreeMap<i32, i32> = BTreeMap::new();
        for e in &s.events {
            if e.kind == pb::ReferralEventKind::Escalated as i32 {
                let tier = per_timer.entry(e.timer).or_default();
                *tier += 1;
                *escalations.entry((e.timer, *tier)).or_default() += 1;
            }
        }
    }

    let codes = |state: R| {
        let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
        for s in seen.iter().filter(|s| s.referral.response == state as i32) {
            *by_code
                .entry(s.referral.response_reason.clone())
                .or_default() += 1;
        }
        let mut list: Vec<_> = by_code.into_iter().collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        list.into_iter()
            .map(|(code, n)| pb::CodeCount {
                code,
                count: count(n),
            })
            .collect::<Vec<_>>()
    };

    let journey = |kind: u8| {
        count(
            seen.iter()
                .filter(|s| ends.get(&s.referral.referral_id) == Some(&kind))
                .count() as u64,
        )
    };
    let reasons = (1..=6)
        .map(|reason| pb::ReasonCount {
            reason,
            count: n(&|r| {
                r.connection == C::NotConnected as i32 && r.not_connected_reason == reason
            }),
        })
        .collect();

    pb::OutcomeFigures {
        referrals: count(seen.len() as u64),
        delivery: Some(pb::DeliveryCounts {
            sent: n(&|r| r.delivery == pb::DeliveryState::Sent as i32),
            delivered: n(&|r| r.delivery == pb::DeliveryState::Delivered as i32),
        }),
        response: Some(pb::ResponseCounts {
            requested: n(&response_is(R::Requested)),
            accepted: n(&response_is(R::Accepted)),
            declined: n(&response_is(R::Declined)),
            in_progress: n(&response_is(R::InProgress)),
            completed: n(&response_is(R::Completed)),
            failed: n(&response_is(R::Failed)),
            cancelled: n(&response_is(R::Cancelled)),
        }),
        connection: Some(pb::ConnectionCounts {
            not_updated: n(&connection_is(C::NotUpdated)),
            contact_attempted: n(&connection_is(C::ContactAttempted)),
            connected: n(&connection_is(C::Connected)),
            not_connected: n(&connection_is(C::NotConnected)),
            not_connected_by_reason: reasons,
            confirmed: n(&|r| reported(r) && r.confirmed_at.is_some()),
            awaiting_confirmation: n(&|r| reported(r) && r.confirmed_at.is_none()),
        }),
        durations: durations
            .into_iter()
            .enumerate()
            .map(|(i, mut seconds)| {
                seconds.sort_unstable();
                let (median, p90) = if seconds.is_empty() {
                    (0, 0)
                } else {
                    (percentile(&seconds, 50), percentile(&seconds, 90))
                };
                let mut histogram = [0u64; 6];
                for s in &seconds {
                    let days = *s as f64 / 86_400.0;
                    let bucket = [1.0, 3.0, 7.0, 14.0, 30.0]
                        .iter()
                        .filter(|bound| days >= **bound)
                        .count();
                    histogram[bucket] += 1;
                }
                pb::MilestoneDuration {
                    milestone: i as i32 + 1,
                    reached: count(seconds.len() as u64),
                    median_seconds: median,
                    p90_seconds: p90,
                    histogram: histogram.iter().map(|n| count(*n).unwrap()).collect(),
                }
            })
            .collect(),
        overdue: overdue
            .into_iter()
            .map(|((timer, age), n)| pb::OverdueCount {
                timer,
                age,
                count: count(n),
            })
            .collect(),
        declines: codes(R::Declined),
        failures: codes(R::Failed),
        cancellations: codes(R::Cancelled),
        escalations: escalations
            .into_iter()
            .map(|((timer, tier), n)| pb::EscalationCount {
                timer,
                tier,
                count: count(n),
            })
            .collect(),
        journeys: Some(pb::JourneyCounts {
            journeys: count(
                seen.iter()
                    .filter(|s| ends.contains_key(&s.referral.referral_id))
                    .count() as u64,
            ),
            connected: journey(1),
            not_connected: journey(2),
            open: journey(3),
            left_scope: journey(4),
        }),
    }
}

/// The recount of `seen` grouped by `dimensions`, as the hub answers it.
fn expected_groups(
    seen: &[&Seen],
    dimensions: &[pb::OutcomeDimension],
    now: i64,
) -> (Vec<pb::OutcomeGroup>, pb::OutcomeFigures) {
    let ends = journey_ends(seen);
    let mut groups: BTreeMap<Vec<String>, Vec<&Seen>> = BTreeMap::new();
    for s in seen {
        let key = dimensions.iter().map(|d| key_of(&s.referral, *d)).collect();
        groups.entry(key).or_default().push(s);
    }
    let groups = if dimensions.is_empty() {
        Vec::new()
    } else {
        groups
            .into_iter()
            .map(|(key, members)| pb::OutcomeGroup {
                key: dimensions
                    .iter()
                    .zip(key)
                    .map(|(d, value)| pb::GroupKey {
                        dimension: *d as i32,
                        value,
                    })
                    .collect(),
                figures: Some(recount(&members, &ends, now)),
            })
            .collect()
    };
    (groups, recount(seen, &ends, now))
}

/// One random step of a history: a new referral, or a random action on one sent before by the
/// party it belongs to. Refusals of invalid moves change nothing and are part of the history.
async fn random_step(
    rng: &mut Rng,
    clients: &HashMap<&str, Hub>,
    case_id: &str,
    referrals: &mut Vec<(String, String)>,
) {
    let kodomo = &clients["kodomo"];
    let refer = async |rng: &mut Rng, to: &str| {
        let mut request = referral_request(
            case_id,
            to,
            PURPOSES[rng.below(PURPOSES.len())],
            by_consent(),
        );
        request.urgency = *rng.pick(&[
            pb::Urgency::Routine as i32,
            pb::Urgency::Routine as i32,
            pb::Urgency::Urgent as i32,
            pb::Urgency::Emergency as i32,
        ]);
        send(kodomo, request).await.unwrap().referral_id
    };
    if referrals.is_empty() || rng.below(4) == 0 {
        let to = *rng.pick(RECIPIENTS);
        let id = refer(rng, to).await;
        referrals.push((id, to.to_owned()));
        return;
    }
    let (id, to) = rng.pick(referrals).clone();
    let action = *rng.pick(&[
        A::AcknowledgeDelivery,
        A::Accept,
        A::Accept,
        A::Decline,
        A::Start,
        A::Complete,
        A::Fail,
        A::Cancel,
        A::RecordContactAttempt,
        A::ReportConnected,
        A::ReportConnected,
        A::ReportNotConnected,
        A::Confirm,
        A::Confirm,
    ]);
    let by_sender = matches!(action, A::Cancel | A::Confirm);
    let client = if by_sender {
        kodomo
    } else {
        &clients[to.as_str()]
    };
    let reason = *rng.pick(&["no_capacity", "not_eligible", "family_moved"]);
    let request = match action {
        A::Decline | A::Fail | A::Cancel => action_with_reason(&id, action, reason),
        A::ReportNotConnected => {
            let reason = *rng.pick(&[
                pb::NotConnectedReason::CouldNotContact,
                pb::NotConnectedReason::DeclinedByFamily,
                pb::NotConnectedReason::NoCapacity,
                pb::NotConnectedReason::ReferredElsewhere,
                pb::NotConnectedReason::ReferredElsewhere,
            ]);
            if reason == pb::NotConnectedReason::ReferredElsewhere {
                let next_to = *rng.pick(RECIPIENTS);
                let next = refer(rng, next_to).await;
                referrals.push((next.clone(), next_to.to_owned()));
                not_connected_request(&id, reason, &next)
            } else {
                not_connected_request(&id, reason, "")
            }
        }
        _ => action_request(&id, action),
    };
    match act_with(client, request).await {
        Ok(_) => {}
        Err(status) if status.code() == Code::FailedPrecondition => {}
        Err(status) => panic!("{action:?} on {id}: {status:?}"),
    }
}

/// Every referral the caller sent or received, with its events.
async fn seen_by(client: &Hub) -> Vec<Seen> {
    let mut seen = Vec::new();
    for referral in list_referrals(client, pb::ReferralDirection::All, "").await {
        let events = get_referral(client, &referral.referral_id)
            .await
            .unwrap()
            .events;
        seen.push(Seen { referral, events });
    }
    seen
}

/// The answer without the instant it was computed at, for comparing two answers.
fn figures_only(mut answer: pb::GetOutcomesResponse) -> pb::GetOutcomesResponse {
    answer.computed_at = None;
    answer
}

/// Waits until the timer task has raised every escalation due, so two answers agree.
async fn settled(client: &Hub, request: &pb::GetOutcomesRequest) {
    eventually(
        "the escalations settled",
        Duration::from_secs(20),
        async || {
            let first = figures_only(get_outcomes(client, request.clone()).await.unwrap());
            tokio::time::sleep(Duration::from_millis(400)).await;
            let second = figures_only(get_outcomes(client, request.clone()).await.unwrap());
            (first == second).then_some(())
        },
    )
    .await;
}

/// Asserts that `client`'s answer grouped by `dimensions` equals the recount of `seen`.
async fn assert_recount(
    client: &Hub,
    seen: &[&Seen],
    from: &str,
    to: &str,
    dimensions: &[pb::OutcomeDimension],
    what: &str,
) {
    let answer = get_outcomes(client, outcomes_request(from, to, dimensions))
        .await
        .unwrap();
    let now = millis(&answer.computed_at);
    let (groups, totals) = expected_groups(seen, dimensions, now);
    assert_eq!(answer.totals, Some(totals), "{what}: totals");
    assert_eq!(answer.groups, groups, "{what}: groups");
}

#[tokio::test]
async fn random_histories_give_the_figures_a_plain_recount_of_the_referrals_gives() {
    let hub = TestHub::start().await;
    let mut clients = HashMap::new();
    for id in ["kodomo", "hospital", "nursery", "hiroba"] {
        clients.insert(id, hub.client(id).await);
    }
    let from = japan_date(&*hub.clock, -1);
    let (case, _) = consented_case(&*hub.clock, &clients["kodomo"], RECIPIENTS, PURPOSES).await;
    let mut rng = Rng(0x05ee_d0f7_a5a6_u64);
    let mut referrals = Vec::new();
    for _ in 0..70 {
        // Random times: up to six hours between steps, so deadlines pass; in all well within
        // the test certificates' 30 days.
        hub.clock
            .advance(Duration::from_secs(rng.below(6 * 3600) as u64));
        random_step(&mut rng, &clients, &case.case_id, &mut referrals).await;
    }
    hub.clock.advance(Duration::from_secs(8 * 24 * 3600));
    let to = japan_date(&*hub.clock, 1);
    let kodomo = &clients["kodomo"];
    settled(kodomo, &outcomes_request(&from, &to, &[])).await;

    let all = seen_by(kodomo).await;
    assert!(all.len() >= 15, "a history of {} referrals", all.len());
    let everything: Vec<&Seen> = all.iter().collect();
    use pb::OutcomeDimension as D;
    for dimensions in [
        vec![],
        vec![D::Recipient, D::Purpose],
        vec![D::Month, D::Urgency],
        vec![D::RecipientKind, D::LegalBasis, D::Sender],
    ] {
        assert_recount(kodomo, &everything, &from, &to, &dimensions, "coordinator").await;
    }
    // Each recipient counts only the referrals it received.
    for id in RECIPIENTS {
        let own: Vec<&Seen> = all.iter().filter(|s| s.referral.to_agency == *id).collect();
        assert_recount(&clients[id], &own, &from, &to, &[D::Purpose], id).await;
    }
    // A database made before migration 0008 gets the step times and escalations it keeps on
    // each referral from that migration's backfill, and answers the same.
    rebuild_kept_columns(&hub.database.url).await;
    assert_recount(kodomo, &everything, &from, &to, &[], "after the backfill").await;
    hub.stop().await;
}

/// Empties the columns migration 0008 keeps on each referral and fills them again with that
/// migration's own backfill statement, as a database made before it is migrated: straight on
/// the hub's database, as its operator could.
async fn rebuild_kept_columns(url: &str) {
    use sqlx::Connection as _;
    let migration = if url.starts_with("sqlite:") {
        include_str!("../../../server/migrations/sqlite/0008_outcome_columns.sql")
    } else {
        include_str!("../../../server/migrations/postgres/0008_outcome_columns.sql")
    };
    let backfill = migration
        .split(';')
        .map(|statement| {
            statement
                .lines()
                .filter(|line| !line.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .find(|statement| statement.trim_start().starts_with("UPDATE referrals"))
        .expect("migration 0008 backfills the referrals");
    let wipe = "UPDATE referrals SET accepted_at = NULL, first_contact_at = NULL, escalated = 0";
    if url.starts_with("sqlite:") {
        use std::str::FromStr as _;
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .unwrap()
            .busy_timeout(Duration::from_secs(10));
        let mut db = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        for statement in [wipe, backfill.as_str()] {
            sqlx::query(statement).execute(&mut db).await.unwrap();
        }
    } else {
        let mut db = sqlx::PgConnection::connect(url).await.unwrap();
        for statement in [wipe, backfill.as_str()] {
            sqlx::query(statement).execute(&mut db).await.unwrap();
        }
    }
}

#[tokio::test]
async fn an_agency_counts_its_own_referrals_a_coordinator_its_municipality_and_nothing_else_moves_them()
 {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let nursery = hub.client("nursery").await;
    let chiyoda = hub.client("chiyoda").await;
    let from = japan_date(&*hub.clock, 0);
    let to = japan_date(&*hub.clock, 1);
    let (case, _) = consented_case(&*hub.clock, &kodomo, RECIPIENTS, PURPOSES).await;
    for to in ["hospital", "hospital", "nursery"] {
        send_referral(&kodomo, &case.case_id, to, "postnatal_care", by_consent())
            .await
            .unwrap();
    }
    let request = outcomes_request(&from, &to, &[pb::OutcomeDimension::Recipient]);
    let referrals =
        |answer: &pb::GetOutcomesResponse| answer.totals.as_ref().unwrap().referrals.unwrap().value;
    let before_coordinator = figures_only(get_outcomes(&kodomo, request.clone()).await.unwrap());
    let before_nursery = figures_only(get_outcomes(&nursery, request.clone()).await.unwrap());
    assert_eq!(referrals(&before_coordinator), 3);
    assert_eq!(before_coordinator.municipalities, [MUNICIPALITY]);
    assert_eq!(referrals(&before_nursery), 1);
    assert!(before_nursery.municipalities.is_empty());
    let nursery_keys: Vec<_> = before_nursery
        .groups
        .iter()
        .map(|g| g.key[0].value.clone())
        .collect();
    assert_eq!(nursery_keys, ["nursery"]);

    // Another municipality's referral to the hospital: the hospital counts it (it received it);
    // the first municipality's coordinator and the nursery see nothing change.
    let other_case = try_open_case(&chiyoda, open_case_request(OTHER_MUNICIPALITY))
        .await
        .unwrap();
    record_consent(
        &chiyoda,
        &other_case.case_id,
        &["hospital"],
        &[],
        &["postnatal_care"],
        &japan_date(&*hub.clock, 0),
        &japan_date(&*hub.clock, 30),
    )
    .await;
    send_referral(
        &chiyoda,
        &other_case.case_id,
        "hospital",
        "postnatal_care",
        by_consent(),
    )
    .await
    .unwrap();
    assert_eq!(
        figures_only(get_outcomes(&kodomo, request.clone()).await.unwrap()),
        before_coordinator
    );
    assert_eq!(
        figures_only(get_outcomes(&nursery, request.clone()).await.unwrap()),
        before_nursery
    );
    assert_eq!(
        referrals(&get_outcomes(&hospital, request.clone()).await.unwrap()),
        3
    );
    let chiyoda_answer = get_outcomes(&chiyoda, request.clone()).await.unwrap();
    assert_eq!(referrals(&chiyoda_answer), 1);
    assert_eq!(chiyoda_answer.municipalities, [OTHER_MUNICIPALITY]);

    // Naming a municipality one does not coordinate is refused, and says what to do.
    let mut theirs = request.clone();
    theirs.municipality = OTHER_MUNICIPALITY.to_owned();
    assert_refused(
        get_outcomes(&kodomo, theirs).await,
        Code::PermissionDenied,
        &["coordinator", "leave municipality empty"],
    );
    let mut ours = request.clone();
    ours.municipality = MUNICIPALITY.to_owned();
    assert_refused(
        get_outcomes(&nursery, ours.clone()).await,
        Code::PermissionDenied,
        &[],
    );
    assert_eq!(
        figures_only(get_outcomes(&kodomo, ours).await.unwrap()),
        before_coordinator
    );

    // Each call is audited like any read, refusals too.
    let records = kodomo
        .audit()
        .list_audit_records(pb::ListAuditRecordsRequest {
            limit: 1000,
            ..pb::ListAuditRecordsRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    let outcomes: Vec<&str> = records
        .iter()
        .filter(|r| r.action == "OutcomeService/GetOutcomes" && r.agency_id == "kodomo")
        .map(|r| r.outcome.as_str())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "ok").count(),
        3,
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&"PERMISSION_DENIED"), "{outcomes:?}");
    hub.stop().await;
}

#[tokio::test]
async fn a_referral_declined_then_passed_on_and_connected_is_one_connected_journey_and_one_decline()
{
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let nursery = hub.client("nursery").await;
    let from = japan_date(&*hub.clock, 0);
    let to = japan_date(&*hub.clock, 1);
    let (case, _) = consented_case(&*hub.clock, &kodomo, RECIPIENTS, PURPOSES).await;
    let first = send_referral(
        &kodomo,
        &case.case_id,
        "hospital",
        "postnatal_care",
        by_consent(),
    )
    .await
    .unwrap();
    act_with(
        &hospital,
        action_with_reason(&first.referral_id, A::Decline, "no_capacity"),
    )
    .await
    .unwrap();
    let second = send_referral(
        &kodomo,
        &case.case_id,
        "nursery",
        "postnatal_care",
        by_consent(),
    )
    .await
    .unwrap();
    act_with(
        &hospital,
        not_connected_request(
            &first.referral_id,
            pb::NotConnectedReason::ReferredElsewhere,
            &second.referral_id,
        ),
    )
    .await
    .unwrap();
    hub.clock.advance(Duration::from_secs(3600));
    act(&nursery, &second.referral_id, A::Accept).await.unwrap();
    hub.clock.advance(Duration::from_secs(2 * 3600));
    act(&nursery, &second.referral_id, A::ReportConnected)
        .await
        .unwrap();

    let answer = get_outcomes(
        &kodomo,
        outcomes_request(&from, &to, &[pb::OutcomeDimension::Recipient]),
    )
    .await
    .unwrap();
    let totals = answer.totals.unwrap();
    let journeys = totals.journeys.unwrap();
    assert_eq!(journeys.journeys.unwrap().value, 1);
    assert_eq!(journeys.connected.unwrap().value, 1);
    assert_eq!(journeys.not_connected.unwrap().value, 0);
    assert_eq!(
        totals.declines,
        [pb::CodeCount {
            code: "no_capacity".to_owned(),
            count: count(1),
        }]
    );
    assert_eq!(totals.referrals.unwrap().value, 2);
    // The journey is counted with its first referral's recipient.
    let by_recipient: Vec<_> = answer
        .groups
        .iter()
        .map(|g| {
            (
                g.key[0].value.as_str(),
                g.figures
                    .as_ref()
                    .unwrap()
                    .journeys
                    .unwrap()
                    .journeys
                    .unwrap()
                    .value,
            )
        })
        .collect();
    assert_eq!(by_recipient, [("hospital", 1), ("nursery", 0)]);
    // Time to connect: three hours after sending, measured over the one that connected.
    let connected = &totals.durations[3];
    assert_eq!(connected.milestone, pb::Milestone::Connected as i32);
    assert_eq!(connected.reached.unwrap().value, 1);
    assert!(
        (3 * 3600..3 * 3600 + 60).contains(&connected.median_seconds),
        "{connected:?}"
    );

    // The nursery alone sees the second referral: its journey connected, never declined.
    let theirs = get_outcomes(&nursery, outcomes_request(&from, &to, &[]))
        .await
        .unwrap();
    let totals = theirs.totals.unwrap();
    assert!(totals.declines.is_empty());
    assert_eq!(totals.journeys.unwrap().connected.unwrap().value, 1);
    // The hospital's journey left its view.
    let theirs = get_outcomes(&hospital, outcomes_request(&from, &to, &[]))
        .await
        .unwrap();
    assert_eq!(
        theirs
            .totals
            .unwrap()
            .journeys
            .unwrap()
            .left_scope
            .unwrap()
            .value,
        1
    );
    hub.stop().await;
}

/// Every count in some figures.
fn counts(f: &pb::OutcomeFigures) -> Vec<pb::Count> {
    let mut all = vec![f.referrals.unwrap()];
    let d = f.delivery.unwrap();
    all.extend([d.sent.unwrap(), d.delivered.unwrap()]);
    let r = f.response.unwrap();
    all.extend(
        [
            r.requested,
            r.accepted,
            r.declined,
            r.in_progress,
            r.completed,
            r.failed,
            r.cancelled,
        ]
        .map(Option::unwrap),
    );
    let c = f.connection.as_ref().unwrap();
    all.extend(
        [
            c.not_updated,
            c.contact_attempted,
            c.connected,
            c.not_connected,
            c.confirmed,
            c.awaiting_confirmation,
        ]
        .map(Option::unwrap),
    );
    all.extend(c.not_connected_by_reason.iter().map(|x| x.count.unwrap()));
    all.extend(f.durations.iter().map(|x| x.reached.unwrap()));
    all.extend(f.durations.iter().flat_map(|x| x.histogram.iter().copied()));
    all.extend(f.overdue.iter().map(|x| x.count.unwrap()));
    for list in [&f.declines, &f.failures, &f.cancellations] {
        all.extend(list.iter().map(|x| x.count.unwrap()));
    }
    all.extend(f.escalations.iter().map(|x| x.count.unwrap()));
    let j = f.journeys.unwrap();
    all.extend(
        [
            j.journeys,
            j.connected,
            j.not_connected,
            j.open,
            j.left_scope,
        ]
        .map(Option::unwrap),
    );
    all
}

#[tokio::test]
async fn suppressed_cells_show_the_marker_and_never_a_count_below_the_threshold() {
    let hub = TestHub::start().await;
    let kodomo = hub.client("kodomo").await;
    let hospital = hub.client("hospital").await;
    let from = japan_date(&*hub.clock, 0);
    let to = japan_date(&*hub.clock, 1);
    let (case, _) = consented_case(&*hub.clock, &kodomo, RECIPIENTS, PURPOSES).await;
    for i in 0..8 {
        let to = if i < 6 { "hospital" } else { "nursery" };
        let referral = send_referral(&kodomo, &case.case_id, to, "postnatal_care", by_consent())
            .await
            .unwrap();
        if to == "hospital" && i < 2 {
            act(&hospital, &referral.referral_id, A::Accept)
                .await
                .unwrap();
        }
    }
    let mut request = outcomes_request(&from, &to, &[pb::OutcomeDimension::Recipient]);
    request.suppress_below = 5;
    let answer = get_outcomes(&kodomo, request.clone()).await.unwrap();
    assert_eq!(answer.suppress_below, 5);
    let mut suppressed = 0;
    for figures in answer
        .groups
        .iter()
        .map(|g| g.figures.as_ref().unwrap())
        .chain(answer.totals.as_ref())
    {
        for c in counts(figures) {
            if c.suppressed {
                suppressed += 1;
                assert_eq!(c.value, 0, "a suppressed cell carries no count");
            } else {
                assert!(c.value == 0 || c.value >= 5, "a count of {} shown", c.value);
            }
        }
        for d in &figures.durations {
            if d.reached.unwrap().suppressed {
                assert_eq!((d.median_seconds, d.p90_seconds), (0, 0));
            }
        }
    }
    assert!(suppressed > 0);
    let hospital_group = &answer.groups[0];
    assert_eq!(hospital_group.key[0].value, "hospital");
    let f = hospital_group.figures.as_ref().unwrap();
    assert_eq!(f.referrals, count(6));
    assert!(f.response.unwrap().accepted.unwrap().suppressed);
    let nursery_group = &answer.groups[1];
    assert_eq!(
        nursery_group.figures.as_ref().unwrap().referrals,
        Some(pb::Count {
            value: 0,
            suppressed: true
        })
    );

    // Bad input is refused naming the field.
    request.suppress_below = 101;
    assert_invalid(
        get_outcomes(&kodomo, request.clone()).await,
        "suppress_below",
    );
    assert_invalid(
        get_outcomes(&kodomo, outcomes_request("", &to, &[])).await,
        "from",
    );
    assert_invalid(
        get_outcomes(&kodomo, outcomes_request(&to, &from, &[])).await,
        "to",
    );
    assert_invalid(
        get_outcomes(&kodomo, outcomes_request(&from, "2026-13-01", &[])).await,
        "to",
    );
    let mut twice = outcomes_request(
        &from,
        &to,
        &[pb::OutcomeDimension::Purpose, pb::OutcomeDimension::Purpose],
    );
    assert_invalid(get_outcomes(&kodomo, twice.clone()).await, "group_by");
    twice.group_by = vec![99];
    assert_invalid(get_outcomes(&kodomo, twice).await, "group_by");
    hub.stop().await;
}

/// Today in Japan, `YYYY-MM-DD`.
fn today_in_japan() -> String {
    let today = time::OffsetDateTime::now_utc()
        .to_offset(time::UtcOffset::from_hms(9, 0, 0).unwrap())
        .date();
    format!(
        "{:04}-{:02}-{:02}",
        today.year(),
        u8::from(today.month()),
        today.day()
    )
}

/// Three referrals from the development health centre to the hospital, one of which connected;
/// the development hub's port, its guard and the referral ids.
fn three_referrals(dir: &std::path::Path) -> (u16, super::operator::ChildGuard, Vec<String>) {
    use super::console::{cli, consented_case, refer};
    let (port, hub) = super::sealing::serve_dev_hub(dir);
    let case_id = consented_case(dir, port, "氏名: 青葉 はな");
    let ids: Vec<String> = (0..3)
        .map(|i| refer(dir, port, &case_id, &format!("本文 {i}"), None))
        .collect();
    cli(
        dir,
        port,
        &["--as", "aoba-hospital", "ack", &ids[0], "accept"],
    );
    cli(
        dir,
        port,
        &["--as", "aoba-hospital", "ack", &ids[0], "connected"],
    );
    cli(
        dir,
        port,
        &[
            "--as",
            "aoba-hospital",
            "ack",
            &ids[1],
            "decline",
            "--reason",
            "no_capacity",
        ],
    );
    (port, hub, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_a_table_json_and_a_csv_that_excel_reads_back_with_the_right_columns() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _hub, _ids) = three_referrals(dir.path());
    let year = &today_in_japan()[..4];
    let from = format!("{year}-01-01");
    let args = [
        "--as",
        "aoba-kodomo",
        "outcomes",
        "--from",
        &from,
        "--by",
        "recipient,purpose",
    ];

    let table = tsunagu_tests::tsunagu(dir.path(), port, &args);
    assert!(table.status.success(), "{table:?}");
    let text = String::from_utf8(table.stdout).unwrap();
    for needle in [
        "送付先",
        "目的",
        "産後ケア",
        "aoba-hospital",
        "合計",
        "つながった",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from\n{text}");
    }

    let json = super::console::cli_json(dir.path(), port, &args);
    assert_eq!(json["totals"]["referrals"], 3);
    assert_eq!(json["totals"]["connection"]["connected"], 1);
    assert_eq!(json["totals"]["declines"]["no_capacity"], 1);
    assert_eq!(json["groups"][0]["key"]["recipient"], "aoba-hospital");

    let mut with_csv = args.to_vec();
    with_csv.push("--csv");
    let csv = tsunagu_tests::tsunagu(dir.path(), port, &with_csv);
    assert!(csv.status.success(), "{csv:?}");
    let bytes = csv.stdout;
    assert!(
        bytes.starts_with(b"\xef\xbb\xbf"),
        "the CSV starts with a UTF-8 BOM"
    );
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    assert!(text.ends_with("\r\n"));
    assert!(
        !text.replace("\r\n", "").contains('\n'),
        "every line ends with CRLF"
    );
    let lines: Vec<Vec<&str>> = text
        .trim_end_matches("\r\n")
        .split("\r\n")
        .map(|line| line.split(',').collect())
        .collect();
    let header = &lines[0];
    assert_eq!(&header[..3], ["送付先", "目的", "紹介件数"]);
    assert!(
        lines.iter().all(|row| row.len() == header.len()),
        "{lines:?}"
    );
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    assert_eq!(lines.len(), 3, "one group and the totals: {lines:?}");
    let group = &lines[1];
    assert_eq!(group[0], "aoba-hospital");
    assert_eq!(group[1], "産後ケア");
    assert_eq!(group[column("紹介件数")], "3");
    assert_eq!(group[column("つながった")], "1");
    assert_eq!(group[column("辞退")], "1");
    assert_eq!(lines[2][0], "合計");

    // Suppressed for outside readers: the counts of 1 become the marker.
    with_csv.extend(["--suppress-below", "5"]);
    let csv = tsunagu_tests::tsunagu(dir.path(), port, &with_csv);
    let text = String::from_utf8(csv.stdout[3..].to_vec()).unwrap();
    let row: Vec<&str> = text.split("\r\n").nth(1).unwrap().split(',').collect();
    assert_eq!(row[column("つながった")], "*");
    assert_eq!(row[column("紹介件数")], "*");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_annual_report_prints_to_four_a4_pages_with_small_counts_suppressed() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _hub, _ids) = three_referrals(dir.path());
    let year = &today_in_japan()[..4];
    let html_path = dir.path().join("outcomes.html");
    let output = tsunagu_tests::tsunagu(
        dir.path(),
        port,
        &[
            "--as",
            "aoba-kodomo",
            "outcomes",
            "report",
            "--year",
            year,
            "--format",
            "html",
            "--out",
            html_path.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("default-src 'none'"));
    assert!(html.contains("1〜4件のセルは「*」で秘匿"));

    let md = tsunagu_tests::tsunagu(
        dir.path(),
        port,
        &[
            "--as",
            "aoba-kodomo",
            "outcomes",
            "report",
            "--year",
            year,
            "--format",
            "md",
        ],
    );
    assert!(md.status.success(), "{md:?}");
    let md = String::from_utf8(md.stdout).unwrap();
    assert!(
        md.contains("## 月別") && md.contains("| 紹介件数 | * |"),
        "{md}"
    );

    let Some(tools) = print_tools_or_skip("outcomes report") else {
        return;
    };
    let pdf = dir.path().join("outcomes.pdf");
    tools.print_to_pdf(&html_path, &pdf).await;
    assert_eq!(tools.pages(&pdf), 4);
    let pages: Vec<String> = (1..=4).map(|page| tools.page_text(&pdf, page)).collect();
    assert!(
        pages[0].contains("成果報告") && pages[0].contains("秘匿"),
        "{}",
        pages[0]
    );
    assert!(pages[0].contains("141178"), "{}", pages[0]);
    assert!(pages[1].contains("月別"), "{}", pages[1]);
    assert!(
        pages[2].contains("送付先の機関種別") && pages[2].contains("医療機関"),
        "{}",
        pages[2]
    );
    assert!(pages[3].contains("理由と所要時間"), "{}", pages[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_dashboard_shows_the_figures_as_charts_and_tables_linked_to_the_referrals() {
    use super::console::ConsoleProcess;
    let dir = tempfile::tempdir().unwrap();
    let (port, _hub, ids) = three_referrals(dir.path());
    let console = ConsoleProcess::start(dir.path(), port, "aoba-kodomo");
    let cookie = console.session().await;
    let page = console
        .request("GET", "/outcomes", &[("Cookie", &cookie)], None)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    for needle in [
        "つながった率",
        "33%",
        "家族単位でつながった率",
        "三層の流れ",
        "つながるまでの日数",
        "つながらなかった理由",
        "辞退: no_capacity",
        "<svg",
    ] {
        assert!(body.contains(needle), "{needle:?} missing from /outcomes");
    }
    assert_eq!(body.matches("<svg").count(), 4);
    assert_eq!(
        body.matches("<table>").count(),
        4,
        "a table beside every chart"
    );
    // The charts are drawn here: no chart library is loaded from anywhere.
    let content = &body[body.find("<h1>成果</h1>").unwrap()..];
    assert!(!content.contains("<script"), "no script in the dashboard");
    // Every number links to the list of the referrals behind it.
    let today = today_in_japan();
    let connected = format!(
        "/sent?stage=all&amp;from={}-01-01&amp;to={today}&amp;connection=connected",
        &today[..4]
    );
    assert!(body.contains(&connected), "no link {connected}");
    let list = console
        .request(
            "GET",
            &connected.replace("&amp;", "&"),
            &[("Cookie", &cookie)],
            None,
        )
        .await;
    assert_eq!(list.status, 200);
    assert!(
        list.body.contains(&ids[0]),
        "the connected referral is listed"
    );
    assert!(!list.body.contains(&ids[1]) && !list.body.contains(&ids[2]));
    let declined = console
        .request(
            "GET",
            "/sent?stage=all&response=declined",
            &[("Cookie", &cookie)],
            None,
        )
        .await;
    assert!(declined.body.contains(&ids[1]) && !declined.body.contains(&ids[0]));
}
