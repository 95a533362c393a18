//! Outcomes: the population view of the referral loop (did the families connect, how long it
//! took, where handoffs rot), computed from routing metadata alone. Plain functions over plain
//! rows: no sealed field reaches them, and what they return is counts and durations only.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::basis::LegalBasisKind;
use super::records::EscalationTier;
use super::referral::{
    ConnectionState, Deadlines, DeliveryState, NotConnectedReason, ReferralState, ResponseState,
    TimerKind, overdue,
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
    /// Every escalation raised for it.
    pub escalations: Vec<(TimerKind, EscalationTier)>,
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
    /// Nearest-rank percentiles of `seconds` (sorted here).
    pub fn of(mut seconds: Vec<i64>) -> Self {
        if seconds.is_empty() {
            return Self::default();
        }
        seconds.sort_unstable();
        let mut histogram = [0; 6];
        for s in &seconds {
            histogram[HISTOGRAM_BOUNDS.partition_point(|bound| bound <= s)] += 1;
        }
        Self {
            reached: seconds.len() as u64,
            median_seconds: nearest_rank(&seconds, 50),
            p90_seconds: nearest_rank(&seconds, 90),
            histogram,
        }
    }
}

/// The value at the `percent`th percentile by the nearest-rank method: the smallest value with at
/// least `percent`% of the values at or below it.
fn nearest_rank(sorted: &[i64], percent: usize) -> i64 {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
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

/// Computes the figures of `rows` grouped by `group_by`, with overdue ages measured at `now`.
pub fn outcomes(rows: &[OutcomeRow], group_by: &[Dimension], now: Timestamp) -> Outcomes {
    let ends = journey_ends(rows);
    let totals = figures(rows.iter(), &ends, now);
    let mut groups: BTreeMap<Vec<String>, Vec<&OutcomeRow>> = BTreeMap::new();
    if !group_by.is_empty() {
        for row in rows {
            let key = group_by.iter().map(|d| d.value(row)).collect();
            groups.entry(key).or_default().push(row);
        }
    }
    Outcomes {
        groups: groups
            .into_iter()
            .map(|(key, rows)| (key, figures(rows.into_iter(), &ends, now)))
            .collect(),
        totals,
    }
}

/// The end of each journey, keyed by its first referral. A journey starts at every referral no
/// other row links to as `referred_elsewhere`, and follows the links while they stay in `rows`.
pub fn journey_ends(rows: &[OutcomeRow]) -> HashMap<ReferralId, JourneyEnd> {
    let by_id: HashMap<&ReferralId, &OutcomeRow> = rows.iter().map(|r| (&r.id, r)).collect();
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

/// The figures of some rows; `ends` tells which rows start a journey and how it ended.
fn figures<'a>(
    rows: impl Iterator<Item = &'a OutcomeRow>,
    ends: &HashMap<ReferralId, JourneyEnd>,
    now: Timestamp,
) -> Figures {
    let mut f = Figures::default();
    let mut durations: [Vec<i64>; 5] = Default::default();
    for row in rows {
        let state = &row.state;
        f.referrals += 1;
        f.delivery[index_of(&DeliveryState::ALL, state.delivery)] += 1;
        f.response[index_of(&ResponseState::ALL, state.response)] += 1;
        f.connection[index_of(&ConnectionState::ALL, state.connection)] += 1;
        if state.connection == ConnectionState::NotConnected
            && let Some(reason) = state.not_connected_reason
        {
            f.not_connected[index_of(&NotConnectedReason::ALL, reason)] += 1;
        }
        if matches!(
            state.connection,
            ConnectionState::Connected | ConnectionState::NotConnected
        ) {
            if state.confirmed_at.is_some() {
                f.confirmed += 1;
            } else {
                f.awaiting_confirmation += 1;
            }
        }
        for (slot, milestone) in durations.iter_mut().zip(Milestone::ALL) {
            if let Some(at) = milestone.reached_at(row) {
                slot.push((at.millis() - row.sent_at.millis()).max(0) / 1000);
            }
        }
        for timer in overdue(state, &row.deadlines, now) {
            let age = OverdueAge::of(now.millis() - row.deadlines.get(timer).millis());
            f.overdue[index_of(&TimerKind::ALL, timer)][index_of(&OverdueAge::ALL, age)] += 1;
        }
        let reason = || state.response_reason.clone().unwrap_or_default();
        match state.response {
            ResponseState::Declined => *f.declines.entry(reason()).or_default() += 1,
            ResponseState::Failed => *f.failures.entry(reason()).or_default() += 1,
            ResponseState::Cancelled => *f.cancellations.entry(reason()).or_default() += 1,
            _ => {}
        }
        for (timer, tier) in &row.escalations {
            f.escalations[index_of(&TimerKind::ALL, *timer)][tier_index(*tier)] += 1;
        }
        if let Some(end) = ends.get(&row.id) {
            f.journeys.journeys += 1;
            match end {
                JourneyEnd::Connected => f.journeys.connected += 1,
                JourneyEnd::NotConnected => f.journeys.not_connected += 1,
                JourneyEnd::Open => f.journeys.open += 1,
                JourneyEnd::LeftScope => f.journeys.left_scope += 1,
            }
        }
    }
    for (stats, seconds) in f.durations.iter_mut().zip(durations) {
        *stats = DurationStats::of(seconds);
    }
    f
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
            escalations: Vec::new(),
        }
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
        let ends = journey_ends(std::slice::from_ref(&first));
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
        assert!(journey_ends(&[a, b]).is_empty());
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
        r.escalations = vec![
            (TimerKind::RespondBy, EscalationTier::Responsible),
            (TimerKind::RespondBy, EscalationTier::Coordinator),
        ];
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
