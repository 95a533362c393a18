//! Outcomes: the population view of the referral loop (did the families connect, how long it
//! took, where handoffs rot), computed from routing metadata alone. Plain functions over plain
//! rows: no sealed field reaches them, and what they return is counts and durations only.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::basis::LegalBasisKind;
use super::records::EscalationTier;
use super::referral::{
    ConnectionState, Deadlines, DeliveryState, NotConnectedReason, ReferralState, ResponseState,
    TimerKind, pending_timers,
};
use super::{AgencyId, Purpose, ReferralId, Timestamp, Urgency};

/// What the figures of one referral are computed from: its routing metadata and the times of the
/// two steps its current state does not keep.
#[derive(Debug, Clone)]
pub struct OutcomeRow {
    pub id: ReferralId,
    pub from_agency: AgencyId,
    /// The sender is a reporter hidden from the viewer (a 通告 the viewer neither sent nor got):
    /// grouped under an empty sender.
    pub sender_hidden: bool,
    pub to_agency: AgencyId,
    /// The recipient's agency kind code.
    pub to_kind: String,
    pub purpose: Purpose,
    pub urgency: Urgency,
    pub basis: LegalBasisKind,
    pub sent_at: Timestamp,
    pub deadlines: Deadlines,
    pub state: ReferralState,
    /// When it was accepted (the accept event), if it was.
    pub accepted_at: Option<Timestamp>,
    /// The first contact attempt, or the connection when reported without an attempt before it.
    pub first_contact_at: Option<Timestamp>,
    /// The escalations raised for it, one bit each (see [`escalation_bit`]).
    pub escalated: u8,
}

/// The bit of an escalation in a referral's `escalated` set: `2 × timer + tier`, timers in the
/// order of `TimerKind::ALL`, tiers responsible (0) then coordinator (1). The store keeps the set
/// on the referral row (migration 0008 writes the same numbers).
pub fn escalation_bit(timer: TimerKind, tier: EscalationTier) -> i64 {
    1 << (2 * index_of(&TimerKind::ALL, timer) + tier_index(tier))
}

/// What figures may be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Sender,
    Recipient,
    RecipientKind,
    Purpose,
    Urgency,
    LegalBasis,
    /// The month of sending in Japan, `YYYY-MM`.
    Month,
}

impl Dimension {
    /// The group value of a row.
    pub fn value(self, row: &OutcomeRow) -> String {
        match self {
            Self::Sender if row.sender_hidden => String::new(),
            Self::Sender => row.from_agency.to_string(),
            Self::Recipient => row.to_agency.to_string(),
            Self::RecipientKind => row.to_kind.clone(),
            Self::Purpose => row.purpose.to_string(),
            Self::Urgency => row.urgency.code().to_owned(),
            Self::LegalBasis => row.basis.code().to_owned(),
            Self::Month => {
                let date = row.sent_at.date_in_japan();
                format!("{:04}-{:02}", date.year(), u8::from(date.month()))
            }
        }
    }
}

/// A step of the handoff, measured from sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Milestone {
    Delivered,
    Accepted,
    FirstContact,
    Connected,
    Confirmed,
}

impl Milestone {
    pub const ALL: [Self; 5] = [
        Self::Delivered,
        Self::Accepted,
        Self::FirstContact,
        Self::Connected,
        Self::Confirmed,
    ];

    /// When the row reached this milestone, if it did.
    pub fn reached_at(self, row: &OutcomeRow) -> Option<Timestamp> {
        match self {
            Self::Delivered => row.state.delivered_at,
            Self::Accepted => row.accepted_at,
            Self::FirstContact => row.first_contact_at,
            Self::Connected => (row.state.connection == ConnectionState::Connected)
                .then_some(row.state.connection_updated_at)
                .flatten(),
            Self::Confirmed => row.state.confirmed_at,
        }
    }
}

/// How long a deadline has been passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OverdueAge {
    Under1Day,
    From1To7Days,
    From7To30Days,
    Over30Days,
}

impl OverdueAge {
    pub const ALL: [Self; 4] = [
        Self::Under1Day,
        Self::From1To7Days,
        Self::From7To30Days,
        Self::Over30Days,
    ];

    /// The bucket of a deadline passed `millis` ago.
    pub fn of(millis: i64) -> Self {
        const DAY: i64 = 86_400_000;
        match millis {
            m if m < DAY => Self::Under1Day,
            m if m < 7 * DAY => Self::From1To7Days,
            m if m < 30 * DAY => Self::From7To30Days,
            _ => Self::Over30Days,
        }
    }
}

/// The upper bounds (exclusive, in seconds) of the duration histogram's buckets but the last:
/// 1, 3, 7, 14 and 30 days.
pub const HISTOGRAM_BOUNDS: [i64; 5] = [86_400, 3 * 86_400, 7 * 86_400, 14 * 86_400, 30 * 86_400];

/// Median and 90th percentile of the durations to one milestone, and how many fell in each
/// bucket of [`HISTOGRAM_BOUNDS`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurationStats {
    pub reached: u64,
    pub median_seconds: i64,
    pub p90_seconds: i64,
    pub histogram: [u64; 6],
}

impl DurationStats {
    /// Nearest-rank percentiles of `seconds`, each picked in linear time (a year of referrals
    /// need not be sorted).
    pub fn of(mut seconds: Vec<i64>) -> Self {
        if seconds.is_empty() {
            return Self::default();
        }
        let mut histogram = [0; 6];
        for s in &seconds {
            histogram[HISTOGRAM_BOUNDS.partition_point(|bound| bound <= s)] += 1;
        }
        let median = nearest_rank(seconds.len(), 50);
        let p90 = nearest_rank(seconds.len(), 90);
        Self {
            reached: seconds.len() as u64,
            median_seconds: *seconds.select_nth_unstable(median).1,
            p90_seconds: *seconds.select_nth_unstable(p90).1,
            histogram,
        }
    }
}

/// The index, in `len` sorted values, of the `percent`th percentile by the nearest-rank method:
/// the smallest value with at least `percent`% of the values at or below it.
fn nearest_rank(len: usize, percent: usize) -> usize {
    (percent * len).div_ceil(100).max(1) - 1
}

/// How families' journeys ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Journeys {
    pub journeys: u64,
    pub connected: u64,
    pub not_connected: u64,
    pub open: u64,
    /// Referred on to a referral outside the rows (another scope or date range).
    pub left_scope: u64,
}

/// How a journey ended, judged by its last referral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JourneyEnd {
    Connected,
    NotConnected,
    Open,
    LeftScope,
}

/// The figures over a set of referrals. Arrays are indexed in the order of each type's `ALL`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    pub referrals: u64,
    pub delivery: [u64; 2],
    pub response: [u64; 7],
    pub connection: [u64; 4],
    pub not_connected: [u64; 6],
    pub confirmed: u64,
    pub awaiting_confirmation: u64,
    pub durations: [DurationStats; 5],
    /// Timer × age.
    pub overdue: [[u64; 4]; 4],
    pub declines: BTreeMap<String, u64>,
    pub failures: BTreeMap<String, u64>,
    pub cancellations: BTreeMap<String, u64>,
    /// Timer × tier (responsible, coordinator).
    pub escalations: [[u64; 2]; 4],
    pub journeys: Journeys,
}

fn index_of<T: PartialEq + Copy>(all: &[T], value: T) -> usize {
    all.iter().position(|v| *v == value).unwrap_or_default()
}

fn tier_index(tier: EscalationTier) -> usize {
    match tier {
        EscalationTier::Responsible => 0,
        EscalationTier::Coordinator => 1,
    }
}

/// Outcomes grouped by some dimensions, with the totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Ordered by key.
    pub groups: Vec<(Vec<String>, Figures)>,
    pub totals: Figures,
}

/// Referrals alike in everything that is counted (their group and the state columns below), and
/// how many they are: the database counts these with one `GROUP BY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// The group's values, one per dimension asked for.
    pub key: Vec<String>,
    pub delivery: DeliveryState,
    pub response: ResponseState,
    pub connection: ConnectionState,
    pub not_connected_reason: Option<NotConnectedReason>,
    pub confirmed: bool,
    /// The reason given, when the response is declined, failed or cancelled.
    pub reason: Option<String>,
    /// The escalations raised for each of them (see [`escalation_bit`]).
    pub escalated: u8,
    /// How many of them have each deadline behind them, by timer and by how long ago
    /// ([`OverdueAge`]); whether the timer still runs is judged from the state columns above.
    pub past_deadline: [[u64; 4]; 4],
    pub count: u64,
}

impl Tally {
    /// The state the figures read, as far as these columns tell it: enough for
    /// `pending_timers` and `is_closed`, which read no time but whether it was confirmed.
    fn state(&self) -> ReferralState {
        ReferralState {
            delivery: self.delivery,
            response: self.response,
            connection: self.connection,
            not_connected_reason: self.not_connected_reason,
            confirmed_at: self.confirmed.then_some(Timestamp::from_millis(0)),
            ..ReferralState::new()
        }
    }
}

/// How long referrals took from sending to each milestone they reached (in the order of
/// [`Milestone::ALL`]), in seconds: one referral's, or a whole group's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    pub key: Vec<String>,
    pub seconds: [Vec<i64>; 5],
}

/// A referral on a `referred_elsewhere` chain (it links on, or another links to it): the few
/// whose journey is not their own.
#[derive(Debug, Clone)]
pub struct LinkRow {
    pub id: ReferralId,
    pub key: Vec<String>,
    pub state: ReferralState,
}

/// What the figures are computed from: counts of alike referrals, the durations of each, and
/// the chains.
#[derive(Debug, Clone, Default)]
pub struct OutcomeParts {
    pub tallies: Vec<Tally>,
    pub timings: Vec<Timing>,
    pub links: Vec<LinkRow>,
}

impl OutcomeParts {
    /// The parts of some whole rows, as the store's statements make them from the table: one
    /// tally per row, one timing per row that reached a milestone, the rows on chains.
    pub fn from_rows(rows: &[OutcomeRow], group_by: &[Dimension], now: Timestamp) -> Self {
        let targets: HashSet<&ReferralId> =
            rows.iter().filter_map(|r| onward_link(&r.state)).collect();
        let mut parts = Self::default();
        for row in rows {
            let key: Vec<String> = group_by.iter().map(|d| d.value(row)).collect();
            let state = &row.state;
            let mut past_deadline = [[0; 4]; 4];
            for (t, timer) in TimerKind::ALL.into_iter().enumerate() {
                let due = row.deadlines.get(timer);
                if due < now {
                    let age = OverdueAge::of(now.millis() - due.millis());
                    past_deadline[t][index_of(&OverdueAge::ALL, age)] = 1;
                }
            }
            parts.tallies.push(Tally {
                key: key.clone(),
                delivery: state.delivery,
                response: state.response,
                connection: state.connection,
                not_connected_reason: state.not_connected_reason,
                confirmed: state.confirmed_at.is_some(),
                reason: matches!(
                    state.response,
                    ResponseState::Declined | ResponseState::Failed | ResponseState::Cancelled
                )
                .then(|| state.response_reason.clone().unwrap_or_default()),
                escalated: row.escalated,
                past_deadline,
                count: 1,
            });
            let seconds = Milestone::ALL.map(|m| {
                m.reached_at(row)
                    .map(|at| (at.millis() - row.sent_at.millis()).max(0) / 1000)
                    .into_iter()
                    .collect::<Vec<_>>()
            });
            if seconds.iter().any(|s| !s.is_empty()) {
                parts.timings.push(Timing {
                    key: key.clone(),
                    seconds,
                });
            }
            if onward_link(state).is_some() || targets.contains(&row.id) {
                parts.links.push(LinkRow {
                    id: row.id.clone(),
                    key,
                    state: state.clone(),
                });
            }
        }
        parts
    }
}

/// Computes the figures of `rows` grouped by `group_by`, with overdue ages measured at `now`.
pub fn outcomes(rows: &[OutcomeRow], group_by: &[Dimension], now: Timestamp) -> Outcomes {
    outcomes_of(
        &OutcomeParts::from_rows(rows, group_by, now),
        !group_by.is_empty(),
    )
}

/// Figures with the durations still to be summed up.
#[derive(Default)]
struct Sums {
    figures: Figures,
    durations: [Vec<i64>; 5],
}

impl Sums {
    fn finish(mut self) -> Figures {
        for (stats, seconds) in self.figures.durations.iter_mut().zip(self.durations) {
            *stats = DurationStats::of(seconds);
        }
        self.figures
    }
}

/// Adds a part to the totals and, when grouped, to its group.
fn add_to<'p>(
    totals: &mut Sums,
    groups: Option<&mut BTreeMap<&'p [String], Sums>>,
    key: &'p [String],
    add: impl Fn(&mut Sums),
) {
    add(totals);
    if let Some(groups) = groups {
        add(groups.entry(key).or_default());
    }
}

/// Computes the figures of `parts`, by group (each part's key) when `grouped`, and in total.
pub fn outcomes_of(parts: &OutcomeParts, grouped: bool) -> Outcomes {
    let mut totals = Sums::default();
    let mut groups: BTreeMap<&[String], Sums> = BTreeMap::new();
    for tally in &parts.tallies {
        add_to(
            &mut totals,
            grouped.then_some(&mut groups),
            &tally.key,
            |sums| {
                add_tally(&mut sums.figures, tally);
            },
        );
    }
    for timing in &parts.timings {
        add_to(
            &mut totals,
            grouped.then_some(&mut groups),
            &timing.key,
            |sums| {
                for (slot, seconds) in sums.durations.iter_mut().zip(&timing.seconds) {
                    slot.extend_from_slice(seconds);
                }
            },
        );
    }
    // The tallies counted every referral as a journey of its own; a referral on a chain is
    // instead part of the journey of the chain's first referral, which ends where the chain
    // does.
    let ends = journey_ends(&parts.links);
    for link in &parts.links {
        let own = end_of(&link.state);
        let chain = ends.get(&link.id).copied();
        add_to(
            &mut totals,
            grouped.then_some(&mut groups),
            &link.key,
            |sums| {
                let journeys = &mut sums.figures.journeys;
                journeys.remove(own);
                if let Some(end) = chain {
                    journeys.add(end, 1);
                }
            },
        );
    }
    Outcomes {
        groups: groups
            .into_iter()
            .map(|(key, sums)| (key.to_vec(), sums.finish()))
            .collect(),
        totals: totals.finish(),
    }
}

impl Journeys {
    fn slot(&mut self, end: JourneyEnd) -> &mut u64 {
        match end {
            JourneyEnd::Connected => &mut self.connected,
            JourneyEnd::NotConnected => &mut self.not_connected,
            JourneyEnd::Open => &mut self.open,
            JourneyEnd::LeftScope => &mut self.left_scope,
        }
    }

    /// Counts `n` journeys ending in `end`.
    fn add(&mut self, end: JourneyEnd, n: u64) {
        self.journeys += n;
        *self.slot(end) += n;
    }

    /// Takes back one journey ending in `end` (counted by a tally from the same snapshot, so
    /// there is one to take).
    fn remove(&mut self, end: JourneyEnd) {
        self.journeys = self.journeys.saturating_sub(1);
        let slot = self.slot(end);
        *slot = slot.saturating_sub(1);
    }
}

/// The end of each journey, keyed by its first referral. A journey starts at every referral no
/// other row links to as `referred_elsewhere`, and follows the links while they stay in `rows`.
pub fn journey_ends(rows: &[LinkRow]) -> HashMap<ReferralId, JourneyEnd> {
    let by_id: HashMap<&ReferralId, &LinkRow> = rows.iter().map(|r| (&r.id, r)).collect();
    let linked: HashSet<&ReferralId> = rows
        .iter()
        .filter_map(|r| onward_link(&r.state))
        .filter(|id| by_id.contains_key(id))
        .collect();
    let mut ends = HashMap::new();
    for start in rows.iter().filter(|r| !linked.contains(&r.id)) {
        let mut last = start;
        // A link back into the chain (which the hub does not forbid) must not loop for ever.
        let mut seen: HashSet<&ReferralId> = HashSet::from([&start.id]);
        let end = loop {
            match onward_link(&last.state) {
                Some(next) => match by_id.get(next) {
                    Some(row) if seen.insert(&row.id) => last = row,
                    Some(_) => break JourneyEnd::NotConnected,
                    None => break JourneyEnd::LeftScope,
                },
                None => break end_of(&last.state),
            }
        };
        ends.insert(start.id.clone(), end);
    }
    ends
}

/// The referral a family was passed on to, if this one says so.
fn onward_link(state: &ReferralState) -> Option<&ReferralId> {
    (state.connection == ConnectionState::NotConnected
        && state.not_connected_reason == Some(NotConnectedReason::ReferredElsewhere))
    .then_some(state.linked_referral_id.as_ref())
    .flatten()
}

/// How a journey whose last referral is in `state` ended.
fn end_of(state: &ReferralState) -> JourneyEnd {
    match state.connection {
        ConnectionState::Connected => JourneyEnd::Connected,
        ConnectionState::NotConnected => JourneyEnd::NotConnected,
        _ if state.is_closed() => JourneyEnd::NotConnected,
        _ => JourneyEnd::Open,
    }
}

/// Adds a tally's counts to `f`; its journeys count as their own until the chains say otherwise.
fn add_tally(f: &mut Figures, t: &Tally) {
    let n = t.count;
    let state = t.state();
    f.referrals += n;
    f.delivery[index_of(&DeliveryState::ALL, t.delivery)] += n;
    f.response[index_of(&ResponseState::ALL, t.response)] += n;
    f.connection[index_of(&ConnectionState::ALL, t.connection)] += n;
    if t.connection == ConnectionState::NotConnected
        && let Some(reason) = t.not_connected_reason
    {
        f.not_connected[index_of(&NotConnectedReason::ALL, reason)] += n;
    }
    if matches!(
        t.connection,
        ConnectionState::Connected | ConnectionState::NotConnected
    ) {
        if t.confirmed {
            f.confirmed += n;
        } else {
            f.awaiting_confirmation += n;
        }
    }
    // Overdue: a deadline behind it on a timer still running (`overdue`'s rule).
    for timer in pending_timers(&state) {
        let t_index = index_of(&TimerKind::ALL, timer);
        for (slot, count) in f.overdue[t_index].iter_mut().zip(t.past_deadline[t_index]) {
            *slot += count;
        }
    }
    let reason = || t.reason.clone().unwrap_or_default();
    match t.response {
        ResponseState::Declined => *f.declines.entry(reason()).or_default() += n,
        ResponseState::Failed => *f.failures.entry(reason()).or_default() += n,
        ResponseState::Cancelled => *f.cancellations.entry(reason()).or_default() += n,
        _ => {}
    }
    for timer in TimerKind::ALL {
        for tier in [EscalationTier::Responsible, EscalationTier::Coordinator] {
            if i64::from(t.escalated) & escalation_bit(timer, tier) != 0 {
                f.escalations[index_of(&TimerKind::ALL, timer)][tier_index(tier)] += n;
            }
        }
    }
    f.journeys.add(end_of(&state), n);
}

/// A count as an export shows it: `None` when suppressed (from 1 to `threshold - 1`), so that no
/// small group of families can be singled out. Zero is shown: it singles out no one.
pub fn suppress(value: u64, threshold: u32) -> Option<u64> {
    (value == 0 || value >= u64::from(threshold)).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::referral::{ActionInput, Party, ReferralAction, apply};

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    const T0: i64 = 1_780_000_000_000;

    fn at(hours: i64) -> Timestamp {
        Timestamp::from_millis(T0 + hours * HOUR)
    }

    fn agency(id: &str) -> AgencyId {
        AgencyId::parse(id).unwrap()
    }

    fn row(to: &str, purpose: &str) -> OutcomeRow {
        OutcomeRow {
            id: ReferralId::generate(),
            from_agency: agency("aoba-hoken"),
            sender_hidden: false,
            to_agency: agency(to),
            to_kind: "hospital".to_owned(),
            purpose: Purpose::parse(purpose).unwrap(),
            urgency: Urgency::Routine,
            basis: LegalBasisKind::Consent,
            sent_at: at(0),
            deadlines: Deadlines {
                deliver_by: at(24),
                respond_by: at(72),
                connect_by: at(14 * 24),
                confirm_by: at(21 * 24),
            },
            state: ReferralState::new(),
            accepted_at: None,
            first_contact_at: None,
            escalated: 0,
        }
    }

    fn links(rows: &[OutcomeRow]) -> Vec<LinkRow> {
        rows.iter()
            .map(|r| LinkRow {
                id: r.id.clone(),
                key: Vec::new(),
                state: r.state.clone(),
            })
            .collect()
    }

    fn act(row: &mut OutcomeRow, action: ReferralAction, hours: i64) {
        act_with(row, ActionInput::new(action), hours);
    }

    fn act_with(row: &mut OutcomeRow, input: ActionInput, hours: i64) {
        let party = match input.action {
            ReferralAction::Cancel | ReferralAction::Confirm => Party::Sender,
            _ => Party::Recipient,
        };
        let action = input.action;
        row.state = apply(&row.state, party, &input, &row.from_agency, at(hours)).unwrap();
        match action {
            ReferralAction::Accept => row.accepted_at = Some(at(hours)),
            ReferralAction::RecordContactAttempt | ReferralAction::ReportConnected => {
                row.first_contact_at.get_or_insert(at(hours));
            }
            _ => {}
        }
    }

    fn decline(row: &mut OutcomeRow, reason: &str, hours: i64) {
        let mut input = ActionInput::new(ReferralAction::Decline);
        input.reason_code = Some(reason.to_owned());
        act_with(row, input, hours);
    }

    fn connected(to: &str, hours: i64) -> OutcomeRow {
        let mut r = row(to, "postnatal_care");
        act(&mut r, ReferralAction::Accept, 1);
        act(&mut r, ReferralAction::RecordContactAttempt, 2);
        act(&mut r, ReferralAction::ReportConnected, hours);
        r
    }

    #[test]
    fn nearest_rank_percentiles_pick_real_values() {
        let stats = DurationStats::of((1..=10).rev().collect());
        assert_eq!(stats.reached, 10);
        assert_eq!(stats.median_seconds, 5);
        assert_eq!(stats.p90_seconds, 9);
        assert_eq!(stats.histogram, [10, 0, 0, 0, 0, 0]);
        let spread = DurationStats::of(vec![86_399, 86_400, 3 * 86_400, 30 * 86_400, 99 * 86_400]);
        assert_eq!(spread.histogram, [1, 1, 1, 0, 0, 2]);
        let one = DurationStats::of(vec![42]);
        assert_eq!((one.median_seconds, one.p90_seconds), (42, 42));
        assert_eq!(DurationStats::of(Vec::new()), DurationStats::default());
    }

    #[test]
    fn states_are_counted_per_layer_and_durations_over_those_that_got_there() {
        let rows = vec![
            connected("midori-hospital", 10),
            connected("midori-hospital", 30),
        ];
        let out = outcomes(&rows, &[], at(40));
        let t = &out.totals;
        assert_eq!(t.referrals, 2);
        assert_eq!(t.delivery, [0, 2]);
        assert_eq!(t.response[1], 2);
        assert_eq!(t.connection[2], 2);
        assert_eq!(t.awaiting_confirmation, 2);
        let connect = t.durations[3];
        assert_eq!(connect.reached, 2);
        assert_eq!(connect.median_seconds, 10 * 3600);
        assert_eq!(connect.p90_seconds, 30 * 3600);
        assert_eq!(t.durations[4].reached, 0);
        assert!(out.groups.is_empty());
    }

    #[test]
    fn a_declined_referral_passed_on_and_connected_is_one_connected_journey_and_one_decline() {
        let mut first = row("midori-hospital", "postnatal_care");
        let second = connected("sakura-hospital", 20);
        decline(&mut first, "no_capacity", 1);
        let mut input = ActionInput::new(ReferralAction::ReportNotConnected);
        input.not_connected_reason = Some(NotConnectedReason::ReferredElsewhere);
        input.linked_referral_id = Some(second.id.clone());
        act_with(&mut first, input, 2);
        let out = outcomes(&[first, second], &[Dimension::Recipient], at(30));
        assert_eq!(out.totals.journeys.journeys, 1);
        assert_eq!(out.totals.journeys.connected, 1);
        assert_eq!(out.totals.declines.get("no_capacity"), Some(&1));
        assert_eq!(out.totals.not_connected[5], 1);
        // The journey belongs to the group of its first referral.
        let journeys: Vec<_> = out
            .groups
            .iter()
            .map(|(key, f)| (key[0].as_str(), f.journeys.journeys))
            .collect();
        assert_eq!(journeys, [("midori-hospital", 1), ("sakura-hospital", 0)]);
    }

    #[test]
    fn a_link_out_of_the_rows_leaves_the_scope_and_a_loop_ends() {
        let mut first = row("midori-hospital", "postnatal_care");
        act(&mut first, ReferralAction::Accept, 1);
        let mut input = ActionInput::new(ReferralAction::ReportNotConnected);
        input.not_connected_reason = Some(NotConnectedReason::ReferredElsewhere);
        input.linked_referral_id = Some(ReferralId::generate());
        act_with(&mut first, input, 2);
        let ends = journey_ends(&links(std::slice::from_ref(&first)));
        assert_eq!(ends.get(&first.id), Some(&JourneyEnd::LeftScope));

        // Two referrals linking to each other: no start, so no journey and no endless walk.
        let mut a = row("midori-hospital", "postnatal_care");
        let mut b = row("sakura-hospital", "postnatal_care");
        let (a_id, b_id) = (a.id.clone(), b.id.clone());
        for (x, link) in [(&mut a, b_id), (&mut b, a_id)] {
            act(x, ReferralAction::Accept, 1);
            let mut input = ActionInput::new(ReferralAction::ReportNotConnected);
            input.not_connected_reason = Some(NotConnectedReason::ReferredElsewhere);
            input.linked_referral_id = Some(link);
            act_with(x, input, 2);
        }
        assert!(journey_ends(&links(&[a, b])).is_empty());
    }

    #[test]
    fn overdue_referrals_are_bucketed_by_how_long_past_the_deadline() {
        let fresh = row("midori-hospital", "postnatal_care");
        let mut accepted = row("midori-hospital", "postnatal_care");
        act(&mut accepted, ReferralAction::Accept, 1);
        // At 40 days: deliver-by and respond-by of the fresh one passed 39 and 37 days ago;
        // connect-by of the accepted one 26 days ago.
        let out = outcomes(&[fresh, accepted], &[], at(40 * 24));
        let o = out.totals.overdue;
        assert_eq!(o[0], [0, 0, 0, 1]);
        assert_eq!(o[1], [0, 0, 0, 1]);
        assert_eq!(o[2], [0, 0, 1, 0]);
        assert_eq!(o[3], [0, 0, 0, 0]);
        assert_eq!(OverdueAge::of(DAY - 1), OverdueAge::Under1Day);
        assert_eq!(OverdueAge::of(DAY), OverdueAge::From1To7Days);
        assert_eq!(OverdueAge::of(30 * DAY), OverdueAge::Over30Days);
    }

    #[test]
    fn groups_follow_the_dimensions_in_order_and_a_hidden_sender_is_blank() {
        let mut hidden = row("midori-hospital", "postnatal_care");
        hidden.sender_hidden = true;
        let rows = vec![
            hidden,
            row("midori-hospital", "home_visit_support"),
            row("midori-hospital", "postnatal_care"),
        ];
        let out = outcomes(
            &rows,
            &[Dimension::Sender, Dimension::Purpose, Dimension::Month],
            at(1),
        );
        let keys: Vec<_> = out
            .groups
            .iter()
            .map(|(k, f)| (k.clone(), f.referrals))
            .collect();
        let month = {
            let d = at(0).date_in_japan();
            format!("{:04}-{:02}", d.year(), u8::from(d.month()))
        };
        assert_eq!(
            keys,
            [
                (
                    vec![String::new(), "postnatal_care".into(), month.clone()],
                    1
                ),
                (
                    vec![
                        "aoba-hoken".into(),
                        "home_visit_support".into(),
                        month.clone()
                    ],
                    1
                ),
                (vec!["aoba-hoken".into(), "postnatal_care".into(), month], 1),
            ]
        );
    }

    #[test]
    fn escalations_and_reasons_are_counted() {
        let mut r = row("midori-hospital", "postnatal_care");
        r.escalated = u8::try_from(
            escalation_bit(TimerKind::RespondBy, EscalationTier::Responsible)
                | escalation_bit(TimerKind::RespondBy, EscalationTier::Coordinator),
        )
        .unwrap();
        let mut cancelled = row("midori-hospital", "postnatal_care");
        let mut input = ActionInput::new(ReferralAction::Cancel);
        input.reason_code = Some("family_moved".into());
        act_with(&mut cancelled, input, 1);
        let out = outcomes(&[r, cancelled], &[], at(2));
        assert_eq!(out.totals.escalations[1], [1, 1]);
        assert_eq!(out.totals.cancellations.get("family_moved"), Some(&1));
        assert_eq!(out.totals.journeys.not_connected, 1);
        assert_eq!(out.totals.journeys.open, 1);
    }

    #[test]
    fn small_counts_are_suppressed_and_zero_and_large_ones_shown() {
        assert_eq!(suppress(0, 5), Some(0));
        assert_eq!(suppress(1, 5), None);
        assert_eq!(suppress(4, 5), None);
        assert_eq!(suppress(5, 5), Some(5));
        assert_eq!(suppress(3, 0), Some(3));
    }
}
