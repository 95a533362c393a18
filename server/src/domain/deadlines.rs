//! Deadlines of referrals: the configured policy per urgency (in hours or in business days), the
//! four deadlines it gives a referral and how each was counted, the sender's overrides, and which
//! timers are running, overdue or due soon.

use std::collections::{BTreeMap, BTreeSet};

use time::Date;

use super::calendar::{BusinessCalendar, HolidayList, parse_iso_date};
use super::referral::{DeliveryState, Party, ReferralState, ResponseState, TimerKind};
use super::{Municipality, Timestamp, Urgency};

/// Default deadlines per urgency (the `[deadlines]` section of the hub configuration).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeadlinePolicy {
    pub routine: UrgencyDeadlines,
    pub urgent: UrgencyDeadlines,
    pub emergency: UrgencyDeadlines,
    /// How long a passed timer stays with the responsible agency alone before it also lands on
    /// the coordinator's worklist: the agency gets the first chance to catch up, the coordinator
    /// the certainty that nothing overdue goes unseen for long.
    pub coordinator_after_hours: u32,
    /// Which days count as business days (`[deadlines.calendar]`).
    pub calendar: CalendarSettings,
}

/// How one period is counted: calendar hours from the moment sent, or business days (営業日)
/// ending at 17:00 JST (see `calendar`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Hours(u32),
    BusinessDays(u32),
}

impl Period {
    /// The deadline this period gives a referral sent at `sent_at`.
    pub fn after(self, sent_at: Timestamp, calendar: &BusinessCalendar<'_>) -> Timestamp {
        match self {
            Self::Hours(hours) => sent_at.plus(time::Duration::hours(i64::from(hours))),
            Self::BusinessDays(days) => calendar.business_days_after(sent_at, days),
        }
    }
}

/// The four deadlines of one urgency.
///
/// Every deadline is measured from the moment the referral was sent, not from the step before:
/// a family's total wait stays bounded however slowly each step went, a late acceptance cannot
/// push the connect-by deadline back unnoticed, and the four can be computed and stored once at
/// send time.
///
/// In the configuration each period is given either as `<step>_within_hours` or as
/// `<step>_within_business_days`, never both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "RawUrgencyDeadlines")]
pub struct UrgencyDeadlines {
    pub deliver: Period,
    pub respond: Period,
    pub connect: Period,
    pub confirm: Period,
}

impl UrgencyDeadlines {
    /// All four periods in hours (the defaults, and what configurations before business days
    /// said).
    pub const fn hours(deliver: u32, respond: u32, connect: u32, confirm: u32) -> Self {
        Self {
            deliver: Period::Hours(deliver),
            respond: Period::Hours(respond),
            connect: Period::Hours(connect),
            confirm: Period::Hours(confirm),
        }
    }

    pub fn get(&self, timer: TimerKind) -> Period {
        match timer {
            TimerKind::DeliverBy => self.deliver,
            TimerKind::RespondBy => self.respond,
            TimerKind::ConnectBy => self.connect,
            TimerKind::ConfirmBy => self.confirm,
        }
    }
}

/// The configuration's spelling of `UrgencyDeadlines`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUrgencyDeadlines {
    deliver_within_hours: Option<u32>,
    deliver_within_business_days: Option<u32>,
    respond_within_hours: Option<u32>,
    respond_within_business_days: Option<u32>,
    connect_within_hours: Option<u32>,
    connect_within_business_days: Option<u32>,
    confirm_within_hours: Option<u32>,
    confirm_within_business_days: Option<u32>,
}

impl TryFrom<RawUrgencyDeadlines> for UrgencyDeadlines {
    type Error = String;

    fn try_from(raw: RawUrgencyDeadlines) -> Result<Self, String> {
        let period = |step: &str, hours: Option<u32>, days: Option<u32>| match (hours, days) {
            (Some(hours), None) => Ok(Period::Hours(hours)),
            (None, Some(days)) => Ok(Period::BusinessDays(days)),
            (Some(_), Some(_)) => Err(format!(
                "give {step}_within_hours or {step}_within_business_days, not both"
            )),
            (None, None) => Err(format!(
                "missing {step}_within_hours (or {step}_within_business_days)"
            )),
        };
        Ok(Self {
            deliver: period(
                "deliver",
                raw.deliver_within_hours,
                raw.deliver_within_business_days,
            )?,
            respond: period(
                "respond",
                raw.respond_within_hours,
                raw.respond_within_business_days,
            )?,
            connect: period(
                "connect",
                raw.connect_within_hours,
                raw.connect_within_business_days,
            )?,
            confirm: period(
                "confirm",
                raw.confirm_within_hours,
                raw.confirm_within_business_days,
            )?,
        })
    }
}

/// Which days are business days: `[deadlines.calendar]`, with one
/// `[deadlines.calendar.municipalities."<code>"]` table per municipality that differs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarSettings {
    /// Close 12/29–1/3 (年末年始の休日).
    pub year_end_closure: bool,
    /// Extra closure days of every municipality, `YYYY-MM-DD`.
    pub closed_days: Vec<ClosureDay>,
    /// Municipalities whose offices keep other days, by municipality code.
    pub municipalities: BTreeMap<String, MunicipalCalendar>,
}

impl Default for CalendarSettings {
    fn default() -> Self {
        Self {
            year_end_closure: true,
            closed_days: Vec::new(),
            municipalities: BTreeMap::new(),
        }
    }
}

/// One municipality's differences from the hub-wide calendar.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MunicipalCalendar {
    /// Overrides the hub-wide `year_end_closure` when given.
    pub year_end_closure: Option<bool>,
    /// Closure days in addition to the hub-wide ones.
    pub closed_days: Vec<ClosureDay>,
}

/// A configured closure day (`"2027-08-13"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct ClosureDay(pub Date);

impl TryFrom<String> for ClosureDay {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        parse_iso_date(&text)
            .map(ClosureDay)
            .map_err(|e| e.to_string())
    }
}

impl CalendarSettings {
    /// The business calendar of `municipality` (the hub-wide one for `None` or a municipality
    /// without a table of its own).
    pub fn for_municipality(
        &self,
        municipality: Option<&Municipality>,
    ) -> BusinessCalendar<'static> {
        let mut calendar = BusinessCalendar::new(HolidayList::official());
        calendar.year_end_closure = self.year_end_closure;
        calendar.closed_days = self
            .closed_days
            .iter()
            .map(|d| d.0)
            .collect::<BTreeSet<_>>();
        if let Some(own) = municipality.and_then(|m| self.municipalities.get(m.as_str())) {
            if let Some(closure) = own.year_end_closure {
                calendar.year_end_closure = closure;
            }
            calendar
                .closed_days
                .extend(own.closed_days.iter().map(|d| d.0));
        }
        calendar
    }
}

impl Default for DeadlinePolicy {
    fn default() -> Self {
        Self {
            // Routine: a system that polls daily has picked it up within a day; a working week
            // to answer; two weeks for the family to reach the service; a third week for the
            // referrer to confirm.
            routine: UrgencyDeadlines::hours(24, 120, 336, 504),
            // Urgent: picked up within a half working day, answered the next day, contact
            // within three days.
            urgent: UrgencyDeadlines::hours(4, 24, 72, 120),
            // Emergency: someone must have it in hand within the hour and answer within two;
            // the family must be reached the same day. Always hours: a crisis does not wait for
            // Monday.
            emergency: UrgencyDeadlines::hours(1, 2, 24, 48),
            coordinator_after_hours: 24,
            calendar: CalendarSettings::default(),
        }
    }
}

/// How one deadline of a referral was set, stored with it so that people see which calendar it
/// counts in (営業日 or 時間) even after the configuration changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineTerm {
    Hours(u32),
    BusinessDays(u32),
    /// The sender gave the deadline itself.
    SetBySender,
}

impl From<Period> for DeadlineTerm {
    fn from(period: Period) -> Self {
        match period {
            Period::Hours(hours) => Self::Hours(hours),
            Period::BusinessDays(days) => Self::BusinessDays(days),
        }
    }
}

impl DeadlineTerm {
    fn code(self) -> String {
        match self {
            Self::Hours(hours) => format!("hours:{hours}"),
            Self::BusinessDays(days) => format!("business_days:{days}"),
            Self::SetBySender => "set_by_sender".to_owned(),
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        if code == "set_by_sender" {
            return Some(Self::SetBySender);
        }
        let (unit, amount) = code.split_once(':')?;
        let amount = amount.parse().ok()?;
        match unit {
            "hours" => Some(Self::Hours(amount)),
            "business_days" => Some(Self::BusinessDays(amount)),
            _ => None,
        }
    }
}

/// How each of a referral's four deadlines was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineTerms {
    pub deliver_by: DeadlineTerm,
    pub respond_by: DeadlineTerm,
    pub connect_by: DeadlineTerm,
    pub confirm_by: DeadlineTerm,
}

impl DeadlineTerms {
    pub fn get(&self, timer: TimerKind) -> DeadlineTerm {
        match timer {
            TimerKind::DeliverBy => self.deliver_by,
            TimerKind::RespondBy => self.respond_by,
            TimerKind::ConnectBy => self.connect_by,
            TimerKind::ConfirmBy => self.confirm_by,
        }
    }

    /// The terms of an urgency's periods, with the overridden deadlines marked as the sender's.
    pub fn of(periods: UrgencyDeadlines, overrides: &DeadlineOverrides) -> Self {
        let term = |timer| {
            if overrides.get(timer).is_some() {
                DeadlineTerm::SetBySender
            } else {
                periods.get(timer).into()
            }
        };
        Self {
            deliver_by: term(TimerKind::DeliverBy),
            respond_by: term(TimerKind::RespondBy),
            connect_by: term(TimerKind::ConnectBy),
            confirm_by: term(TimerKind::ConfirmBy),
        }
    }

    /// The stored form: the four terms in timer order, comma-separated (`hours:24,business_days:2,…`).
    pub fn code(&self) -> String {
        TimerKind::ALL.map(|timer| self.get(timer).code()).join(",")
    }

    pub fn from_code(code: &str) -> Option<Self> {
        let mut terms = code.split(',').map(DeadlineTerm::from_code);
        let parsed = Self {
            deliver_by: terms.next()??,
            respond_by: terms.next()??,
            connect_by: terms.next()??,
            confirm_by: terms.next()??,
        };
        terms.next().is_none().then_some(parsed)
    }
}

impl DeadlinePolicy {
    pub fn for_urgency(&self, urgency: Urgency) -> UrgencyDeadlines {
        match urgency {
            Urgency::Routine => self.routine,
            Urgency::Urgent => self.urgent,
            Urgency::Emergency => self.emergency,
        }
    }

    /// How long a timer may be overdue before the coordinator's worklist shows it.
    pub fn coordinator_grace(&self) -> time::Duration {
        time::Duration::hours(i64::from(self.coordinator_after_hours))
    }

    /// The default deadlines of a referral of this urgency sent at `sent_at`, on the hub-wide
    /// calendar.
    pub fn deadlines(&self, urgency: Urgency, sent_at: Timestamp) -> Deadlines {
        self.deadlines_in(urgency, sent_at, None)
    }

    /// The default deadlines of a referral of this urgency sent at `sent_at` about a case of
    /// `municipality`: business days are those of that municipality's offices.
    ///
    /// When hours and business days are mixed, a later step's deadline is never put before an
    /// earlier one's (it is raised to it), so the four stay in order whatever the send time.
    pub fn deadlines_in(
        &self,
        urgency: Urgency,
        sent_at: Timestamp,
        municipality: Option<&Municipality>,
    ) -> Deadlines {
        let periods = self.for_urgency(urgency);
        let calendar = self.calendar.for_municipality(municipality);
        let deliver_by = periods.deliver.after(sent_at, &calendar);
        let respond_by = periods.respond.after(sent_at, &calendar).max(deliver_by);
        let connect_by = periods.connect.after(sent_at, &calendar).max(respond_by);
        let confirm_by = periods.confirm.after(sent_at, &calendar).max(connect_by);
        Deadlines {
            deliver_by,
            respond_by,
            connect_by,
            confirm_by,
        }
    }

    /// Checks a configured policy: every period is at least an hour or a business day, an
    /// emergency counts in hours only, periods of the same unit are in order, and every
    /// municipality code of the calendar is one.
    pub fn validate(&self) -> Result<(), DeadlineError> {
        for urgency in Urgency::ALL {
            let periods = self.for_urgency(urgency);
            for timer in TimerKind::ALL {
                let period = periods.get(timer);
                let field = policy_field(urgency, timer, period);
                match period {
                    Period::Hours(0) => {
                        return Err(DeadlineError {
                            field,
                            reason: "must be at least 1 hour".to_owned(),
                        });
                    }
                    Period::BusinessDays(0) => {
                        return Err(DeadlineError {
                            field,
                            reason: "must be at least 1 business day".to_owned(),
                        });
                    }
                    Period::BusinessDays(_) if urgency == Urgency::Emergency => {
                        return Err(DeadlineError {
                            field,
                            reason: "an emergency is counted in hours, calendar time (a crisis \
                                     does not wait for the next business day): give it in \
                                     *_within_hours"
                                .to_owned(),
                        });
                    }
                    _ => {}
                }
            }
            for pair in TimerKind::ALL.windows(2) {
                let &[earlier, later] = pair else {
                    continue;
                };
                let (a, b) = (periods.get(earlier), periods.get(later));
                let (a_amount, b_amount, unit) = match (a, b) {
                    (Period::Hours(a), Period::Hours(b)) => (a, b, "hours"),
                    (Period::BusinessDays(a), Period::BusinessDays(b)) => (a, b, "business days"),
                    // Mixed units cannot be compared for every send time; the deadlines are
                    // kept in order when computed instead.
                    _ => continue,
                };
                if b_amount < a_amount {
                    return Err(DeadlineError {
                        field: policy_field(urgency, later, b),
                        reason: format!(
                            "must not be shorter than {} ({b_amount} < {a_amount} {unit})",
                            policy_field(urgency, earlier, a)
                                .rsplit('.')
                                .next()
                                .unwrap_or_default()
                        ),
                    });
                }
            }
        }
        for code in self.calendar.municipalities.keys() {
            if Municipality::parse(code).is_none() {
                return Err(DeadlineError {
                    field: "deadlines.calendar.municipalities",
                    reason: format!("{code:?} is not a municipality code"),
                });
            }
        }
        Ok(())
    }
}

/// The configuration key of one period, for error messages.
fn policy_field(urgency: Urgency, timer: TimerKind, period: Period) -> &'static str {
    const FIELDS: [[[&str; 2]; 4]; 3] = [
        [
            [
                "deadlines.routine.deliver_within_hours",
                "deadlines.routine.deliver_within_business_days",
            ],
            [
                "deadlines.routine.respond_within_hours",
                "deadlines.routine.respond_within_business_days",
            ],
            [
                "deadlines.routine.connect_within_hours",
                "deadlines.routine.connect_within_business_days",
            ],
            [
                "deadlines.routine.confirm_within_hours",
                "deadlines.routine.confirm_within_business_days",
            ],
        ],
        [
            [
                "deadlines.urgent.deliver_within_hours",
                "deadlines.urgent.deliver_within_business_days",
            ],
            [
                "deadlines.urgent.respond_within_hours",
                "deadlines.urgent.respond_within_business_days",
            ],
            [
                "deadlines.urgent.connect_within_hours",
                "deadlines.urgent.connect_within_business_days",
            ],
            [
                "deadlines.urgent.confirm_within_hours",
                "deadlines.urgent.confirm_within_business_days",
            ],
        ],
        [
            [
                "deadlines.emergency.deliver_within_hours",
                "deadlines.emergency.deliver_within_business_days",
            ],
            [
                "deadlines.emergency.respond_within_hours",
                "deadlines.emergency.respond_within_business_days",
            ],
            [
                "deadlines.emergency.connect_within_hours",
                "deadlines.emergency.connect_within_business_days",
            ],
            [
                "deadlines.emergency.confirm_within_hours",
                "deadlines.emergency.confirm_within_business_days",
            ],
        ],
    ];
    let row = match urgency {
        Urgency::Routine => 0,
        Urgency::Urgent => 1,
        Urgency::Emergency => 2,
    };
    let step = match timer {
        TimerKind::DeliverBy => 0,
        TimerKind::RespondBy => 1,
        TimerKind::ConnectBy => 2,
        TimerKind::ConfirmBy => 3,
    };
    let unit = match period {
        Period::Hours(_) => 0,
        Period::BusinessDays(_) => 1,
    };
    FIELDS[row][step][unit]
}

/// The four deadlines of one referral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub deliver_by: Timestamp,
    pub respond_by: Timestamp,
    pub connect_by: Timestamp,
    pub confirm_by: Timestamp,
}

impl Deadlines {
    pub fn get(&self, timer: TimerKind) -> Timestamp {
        match timer {
            TimerKind::DeliverBy => self.deliver_by,
            TimerKind::RespondBy => self.respond_by,
            TimerKind::ConnectBy => self.connect_by,
            TimerKind::ConfirmBy => self.confirm_by,
        }
    }
}

/// Deadlines the sender chose instead of the defaults; `None` keeps the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeadlineOverrides {
    pub deliver_by: Option<Timestamp>,
    pub respond_by: Option<Timestamp>,
    pub connect_by: Option<Timestamp>,
    pub confirm_by: Option<Timestamp>,
}

impl DeadlineOverrides {
    pub fn get(&self, timer: TimerKind) -> Option<Timestamp> {
        match timer {
            TimerKind::DeliverBy => self.deliver_by,
            TimerKind::RespondBy => self.respond_by,
            TimerKind::ConnectBy => self.connect_by,
            TimerKind::ConfirmBy => self.confirm_by,
        }
    }
}

/// Why deadlines (overrides or the configured policy) were refused; `field` names the one to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct DeadlineError {
    pub field: &'static str,
    pub reason: String,
}

fn override_field(timer: TimerKind) -> &'static str {
    match timer {
        TimerKind::DeliverBy => "deadlines.deliver_by",
        TimerKind::RespondBy => "deadlines.respond_by",
        TimerKind::ConnectBy => "deadlines.connect_by",
        TimerKind::ConfirmBy => "deadlines.confirm_by",
    }
}

/// Applies overrides; each override must be after `sent_at` and the four must stay ordered
/// deliver ≤ respond ≤ connect ≤ confirm, otherwise an error naming the field (for example
/// `deadlines.respond_by`). An out-of-order pair is blamed on the overridden deadline, since the
/// defaults are ordered by themselves.
pub fn apply_overrides(
    defaults: Deadlines,
    overrides: &DeadlineOverrides,
    sent_at: Timestamp,
) -> Result<Deadlines, DeadlineError> {
    for timer in TimerKind::ALL {
        if let Some(at) = overrides.get(timer)
            && at <= sent_at
        {
            return Err(DeadlineError {
                field: override_field(timer),
                reason: format!("must be after the referral is sent ({sent_at}), not {at}"),
            });
        }
    }
    let merged = |timer: TimerKind| overrides.get(timer).unwrap_or(defaults.get(timer));
    let deadlines = Deadlines {
        deliver_by: merged(TimerKind::DeliverBy),
        respond_by: merged(TimerKind::RespondBy),
        connect_by: merged(TimerKind::ConnectBy),
        confirm_by: merged(TimerKind::ConfirmBy),
    };
    for pair in TimerKind::ALL.windows(2) {
        let &[earlier, later] = pair else {
            continue;
        };
        let (earlier_at, later_at) = (deadlines.get(earlier), deadlines.get(later));
        if earlier_at <= later_at {
            continue;
        }
        let error = if overrides.get(later).is_some() || overrides.get(earlier).is_none() {
            DeadlineError {
                field: override_field(later),
                reason: format!(
                    "must not be before {} ({later_at} is before {earlier_at})",
                    override_field(earlier)
                ),
            }
        } else {
            DeadlineError {
                field: override_field(earlier),
                reason: format!(
                    "must not be after {} ({earlier_at} is after {later_at})",
                    override_field(later)
                ),
            }
        };
        return Err(error);
    }
    Ok(deadlines)
}

/// Which timers are running for the state: those of the layers that have not moved yet, in
/// deadline order.
///
/// - deliver-by while the delivery is `sent` and the response still `requested`;
/// - respond-by while the response is `requested`;
/// - connect-by while the recipient took the family on (accepted, in progress, completed — or
///   failed, because the family may still have connected) and has not reported the outcome;
/// - confirm-by while an outcome is reported and not yet confirmed (also after a decline with a
///   not-connected report, which the sender still has to see).
///
/// None once closed: confirmed, cancelled, or declined without a not-connected report.
pub fn pending_timers(state: &ReferralState) -> Vec<TimerKind> {
    use ResponseState as R;

    let mut timers = Vec::new();
    if state.confirmed_at.is_some() || state.response == R::Cancelled {
        return timers;
    }
    if state.response == R::Requested {
        if state.delivery == DeliveryState::Sent {
            timers.push(TimerKind::DeliverBy);
        }
        timers.push(TimerKind::RespondBy);
    }
    let took_the_family_on = matches!(
        state.response,
        R::Accepted | R::InProgress | R::Completed | R::Failed
    );
    if state.outcome_reported() {
        timers.push(TimerKind::ConfirmBy);
    } else if took_the_family_on {
        timers.push(TimerKind::ConnectBy);
    }
    timers
}

/// The party that must act next for a timer: the recipient moves the first three layers, the
/// sender confirms (the coordinator picks up what the responsible party leaves overdue).
pub fn responsible_party(timer: TimerKind) -> Party {
    match timer {
        TimerKind::DeliverBy | TimerKind::RespondBy | TimerKind::ConnectBy => Party::Recipient,
        TimerKind::ConfirmBy => Party::Sender,
    }
}

/// The pending timers whose deadline has passed at `now` (a deadline is met up to and including
/// its instant).
pub fn overdue(state: &ReferralState, deadlines: &Deadlines, now: Timestamp) -> Vec<TimerKind> {
    pending_timers(state)
        .into_iter()
        .filter(|timer| deadlines.get(*timer) < now)
        .collect()
}

/// The pending timers due within `window` of `now` and not yet overdue, with their deadlines.
pub fn due_soon(
    state: &ReferralState,
    deadlines: &Deadlines,
    now: Timestamp,
    window: time::Duration,
) -> Vec<(TimerKind, Timestamp)> {
    let horizon = now.plus(window);
    pending_timers(state)
        .into_iter()
        .map(|timer| (timer, deadlines.get(timer)))
        .filter(|(_, due)| now <= *due && *due <= horizon)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::referral::test_states::*;
    use crate::domain::referral::{NotConnectedReason, ReferralAction, apply};

    fn deadlines() -> Deadlines {
        DeadlinePolicy::default().deadlines(Urgency::Routine, at(0))
    }

    #[test]
    fn the_default_policy_matches_the_documented_hours() {
        let policy = DeadlinePolicy::default();
        let hours = |u: Urgency| TimerKind::ALL.map(|t| policy.for_urgency(u).get(t));
        let h = Period::Hours;
        assert_eq!(hours(Urgency::Routine), [h(24), h(120), h(336), h(504)]);
        assert_eq!(hours(Urgency::Urgent), [h(4), h(24), h(72), h(120)]);
        assert_eq!(hours(Urgency::Emergency), [h(1), h(2), h(24), h(48)]);
        assert!(policy.calendar.year_end_closure);
        assert_eq!(policy.validate(), Ok(()));
    }

    #[test]
    fn deadlines_are_measured_from_the_time_sent() {
        let d = DeadlinePolicy::default().deadlines(Urgency::Emergency, at(100));
        assert_eq!(d.deliver_by, at(101));
        assert_eq!(d.respond_by, at(102));
        assert_eq!(d.connect_by, at(124));
        assert_eq!(d.confirm_by, at(148));
        for timer in TimerKind::ALL {
            assert!(d.get(timer) > at(100));
        }
        assert_eq!(d.get(TimerKind::ConnectBy), d.connect_by);
    }

    #[test]
    fn a_policy_section_may_be_given_in_part() {
        let text = "[urgent]\ndeliver_within_hours = 2\nrespond_within_hours = 8\n\
                    connect_within_hours = 48\nconfirm_within_hours = 96\n";
        let policy: DeadlinePolicy = toml::from_str(text).unwrap();
        assert_eq!(policy.urgent.respond, Period::Hours(8));
        assert_eq!(policy.routine, DeadlinePolicy::default().routine);
    }

    #[test]
    fn a_policy_with_unknown_keys_or_missing_hours_is_rejected() {
        assert!(toml::from_str::<DeadlinePolicy>("[urgent_ish]\n").is_err());
        assert!(toml::from_str::<DeadlinePolicy>("[urgent]\ndeliver_within_hours = 2\n").is_err());
    }

    #[test]
    fn a_policy_with_out_of_order_or_zero_periods_is_rejected() {
        let mut policy = DeadlinePolicy::default();
        policy.urgent.connect = Period::Hours(10);
        let err = policy.validate().unwrap_err();
        assert_eq!(err.field, "deadlines.urgent.connect_within_hours");
        let mut policy = DeadlinePolicy::default();
        policy.emergency.deliver = Period::Hours(0);
        let err = policy.validate().unwrap_err();
        assert_eq!(err.field, "deadlines.emergency.deliver_within_hours");
    }

    fn jst(at: time::PrimitiveDateTime) -> Timestamp {
        Timestamp::from_offset_date_time(at.assume_offset(crate::domain::JST))
    }

    fn business_day_policy() -> DeadlinePolicy {
        let text = "[routine]\ndeliver_within_business_days = 1\n\
                    respond_within_business_days = 2\nconnect_within_business_days = 10\n\
                    confirm_within_business_days = 15\n\
                    [urgent]\ndeliver_within_hours = 4\nrespond_within_business_days = 3\n\
                    connect_within_hours = 72\nconfirm_within_business_days = 5\n";
        let policy: DeadlinePolicy = toml::from_str(text).unwrap();
        policy.validate().unwrap();
        policy
    }

    #[test]
    fn periods_may_be_given_in_business_days_and_hours_keys_keep_working() {
        let policy = business_day_policy();
        assert_eq!(policy.routine.respond, Period::BusinessDays(2));
        assert_eq!(policy.urgent.deliver, Period::Hours(4));
        assert_eq!(policy.urgent.respond, Period::BusinessDays(3));
        assert_eq!(policy.emergency, DeadlinePolicy::default().emergency);
    }

    #[test]
    fn a_period_in_both_units_or_in_neither_is_rejected_naming_it() {
        let both = "[urgent]\ndeliver_within_hours = 2\ndeliver_within_business_days = 1\n\
                    respond_within_hours = 8\nconnect_within_hours = 48\n\
                    confirm_within_hours = 96\n";
        let err = toml::from_str::<DeadlinePolicy>(both)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("deliver_within_hours or deliver_within_business_days"),
            "{err}"
        );
        let neither = "[urgent]\ndeliver_within_hours = 2\n\
                       connect_within_hours = 48\nconfirm_within_hours = 96\n";
        let err = toml::from_str::<DeadlinePolicy>(neither)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing respond_within_hours"), "{err}");
    }

    #[test]
    fn an_emergency_in_business_days_or_zero_business_days_is_rejected() {
        let mut policy = DeadlinePolicy::default();
        policy.emergency.respond = Period::BusinessDays(1);
        let err = policy.validate().unwrap_err();
        assert_eq!(
            err.field,
            "deadlines.emergency.respond_within_business_days"
        );
        assert!(err.reason.contains("hours"), "{err}");
        let mut policy = DeadlinePolicy::default();
        policy.routine.respond = Period::BusinessDays(0);
        let err = policy.validate().unwrap_err();
        assert_eq!(err.field, "deadlines.routine.respond_within_business_days");
        let mut policy = business_day_policy();
        policy.routine.connect = Period::BusinessDays(1);
        let err = policy.validate().unwrap_err();
        assert_eq!(err.field, "deadlines.routine.connect_within_business_days");
    }

    #[test]
    fn respond_by_two_business_days_from_december_28th_is_january_5th() {
        let policy = business_day_policy();
        let d = policy.deadlines(
            Urgency::Routine,
            jst(time::macros::datetime!(2026-12-28 10:00)),
        );
        assert_eq!(d.deliver_by, jst(time::macros::datetime!(2027-01-04 17:00)));
        assert_eq!(d.respond_by, jst(time::macros::datetime!(2027-01-05 17:00)));
    }

    #[test]
    fn respond_by_three_business_days_from_april_28th_is_may_7th() {
        let policy = business_day_policy();
        let d = policy.deadlines(
            Urgency::Urgent,
            jst(time::macros::datetime!(2027-04-28 09:00)),
        );
        assert_eq!(d.deliver_by, jst(time::macros::datetime!(2027-04-28 13:00)));
        assert_eq!(d.respond_by, jst(time::macros::datetime!(2027-05-07 17:00)));
    }

    #[test]
    fn an_emergency_counts_hours_through_holidays() {
        let policy = business_day_policy();
        let sent = jst(time::macros::datetime!(2026-12-31 22:00));
        let d = policy.deadlines(Urgency::Emergency, sent);
        assert_eq!(d.respond_by, jst(time::macros::datetime!(2027-01-01 00:00)));
        assert_eq!(d.connect_by, jst(time::macros::datetime!(2027-01-01 22:00)));
    }

    #[test]
    fn mixed_units_are_kept_in_order() {
        // Urgent: connect 72 hours, confirm 5 business days. Sent on 2026-12-28, 72 hours is
        // 12-31 but respond-by (3 business days) is 1/6: connect-by is raised to it.
        let policy = business_day_policy();
        let d = policy.deadlines(
            Urgency::Urgent,
            jst(time::macros::datetime!(2026-12-28 10:00)),
        );
        assert_eq!(d.respond_by, jst(time::macros::datetime!(2027-01-06 17:00)));
        assert_eq!(d.connect_by, d.respond_by);
        assert_eq!(d.confirm_by, jst(time::macros::datetime!(2027-01-08 17:00)));
    }

    #[test]
    fn a_municipality_calendar_adds_its_closure_days() {
        let text = "[calendar]\nclosed_days = [\"2027-01-04\"]\n\
                    [calendar.municipalities.\"141178\"]\nyear_end_closure = false\n\
                    [calendar.municipalities.\"131016\"]\nclosed_days = [\"2027-01-05\"]\n\
                    [routine]\ndeliver_within_hours = 24\nrespond_within_business_days = 2\n\
                    connect_within_hours = 336\nconfirm_within_hours = 504\n";
        let policy: DeadlinePolicy = toml::from_str(text).unwrap();
        policy.validate().unwrap();
        let sent = jst(time::macros::datetime!(2026-12-28 10:00));
        let respond = |code: Option<&str>| {
            let m = code.map(|c| Municipality::parse(c).unwrap());
            policy
                .deadlines_in(Urgency::Routine, sent, m.as_ref())
                .respond_by
        };
        assert_eq!(
            respond(None),
            jst(time::macros::datetime!(2027-01-06 17:00))
        );
        assert_eq!(
            respond(Some("141178")),
            jst(time::macros::datetime!(2026-12-30 17:00))
        );
        assert_eq!(
            respond(Some("131016")),
            jst(time::macros::datetime!(2027-01-07 17:00))
        );
        let bad = "[calendar]\nclosed_days = [\"2027-02-30\"]\n";
        let err = toml::from_str::<DeadlinePolicy>(bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("2027-02-30"), "{err}");
        let bad = "[calendar.municipalities.yokohama]\n";
        let policy: DeadlinePolicy = toml::from_str(bad).unwrap();
        assert_eq!(
            policy.validate().unwrap_err().field,
            "deadlines.calendar.municipalities"
        );
    }

    #[test]
    fn deadline_terms_round_trip_and_mark_overrides_as_the_senders() {
        let policy = business_day_policy();
        let overrides = DeadlineOverrides {
            connect_by: Some(at(5)),
            ..DeadlineOverrides::default()
        };
        let terms = DeadlineTerms::of(policy.urgent, &overrides);
        assert_eq!(terms.deliver_by, DeadlineTerm::Hours(4));
        assert_eq!(terms.respond_by, DeadlineTerm::BusinessDays(3));
        assert_eq!(terms.connect_by, DeadlineTerm::SetBySender);
        assert_eq!(
            terms.code(),
            "hours:4,business_days:3,set_by_sender,business_days:5"
        );
        assert_eq!(DeadlineTerms::from_code(&terms.code()), Some(terms));
        for bad in [
            "",
            "hours:4",
            "hours:4,hours:5,hours:6,hours:7,hours:8",
            "days:1,a,b,c",
        ] {
            assert_eq!(DeadlineTerms::from_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn overrides_replace_the_defaults_they_name() {
        let defaults = deadlines();
        let overrides = DeadlineOverrides {
            connect_by: Some(at(200)),
            ..DeadlineOverrides::default()
        };
        let d = apply_overrides(defaults, &overrides, at(0)).unwrap();
        assert_eq!(d.connect_by, at(200));
        assert_eq!(d.deliver_by, defaults.deliver_by);
        assert_eq!(d.confirm_by, defaults.confirm_by);
        assert_eq!(
            apply_overrides(defaults, &DeadlineOverrides::default(), at(0)),
            Ok(defaults)
        );
    }

    #[test]
    fn an_override_not_after_the_time_sent_is_refused() {
        let overrides = DeadlineOverrides {
            deliver_by: Some(at(0)),
            ..DeadlineOverrides::default()
        };
        let err = apply_overrides(deadlines(), &overrides, at(0)).unwrap_err();
        assert_eq!(err.field, "deadlines.deliver_by");
        assert!(
            err.to_string()
                .starts_with("deadlines.deliver_by: must be after")
        );
    }

    #[test]
    fn an_override_out_of_order_is_refused_naming_the_overridden_field() {
        // respond_by moved before the default deliver_by (24h).
        let overrides = DeadlineOverrides {
            respond_by: Some(at(10)),
            ..DeadlineOverrides::default()
        };
        let err = apply_overrides(deadlines(), &overrides, at(0)).unwrap_err();
        assert_eq!(err.field, "deadlines.respond_by");
        assert!(err.reason.contains("deadlines.deliver_by"), "{err}");

        // deliver_by moved after the default respond_by (120h).
        let overrides = DeadlineOverrides {
            deliver_by: Some(at(130)),
            ..DeadlineOverrides::default()
        };
        let err = apply_overrides(deadlines(), &overrides, at(0)).unwrap_err();
        assert_eq!(err.field, "deadlines.deliver_by");

        // Both overridden and crossed: the later one is blamed.
        let overrides = DeadlineOverrides {
            connect_by: Some(at(300)),
            confirm_by: Some(at(250)),
            ..DeadlineOverrides::default()
        };
        let err = apply_overrides(deadlines(), &overrides, at(0)).unwrap_err();
        assert_eq!(err.field, "deadlines.confirm_by");
    }

    #[test]
    fn equal_deadlines_are_in_order() {
        let overrides = DeadlineOverrides {
            deliver_by: Some(at(5)),
            respond_by: Some(at(5)),
            connect_by: Some(at(5)),
            confirm_by: Some(at(5)),
        };
        assert!(apply_overrides(deadlines(), &overrides, at(0)).is_ok());
    }

    #[test]
    fn a_new_referral_waits_for_delivery_and_response() {
        assert_eq!(
            pending_timers(&ReferralState::new()),
            vec![TimerKind::DeliverBy, TimerKind::RespondBy]
        );
    }

    #[test]
    fn a_delivered_referral_waits_only_for_the_response() {
        let delivered = act(
            &ReferralState::new(),
            Party::Recipient,
            ReferralAction::AcknowledgeDelivery,
        );
        assert_eq!(pending_timers(&delivered), vec![TimerKind::RespondBy]);
    }

    #[test]
    fn an_accepted_referral_waits_for_the_connection_until_it_is_reported() {
        let tried = act(
            &accepted(),
            Party::Recipient,
            ReferralAction::RecordContactAttempt,
        );
        for state in [accepted(), in_progress(), completed(), tried] {
            assert_eq!(pending_timers(&state), vec![TimerKind::ConnectBy]);
        }
    }

    #[test]
    fn a_failed_referral_still_waits_for_the_connection_report() {
        let failed = apply(
            &accepted(),
            Party::Recipient,
            &with_reason(ReferralAction::Fail, "x"),
            &me(),
            at(1),
        )
        .unwrap();
        assert_eq!(pending_timers(&failed), vec![TimerKind::ConnectBy]);
        assert!(!failed.is_closed());
    }

    #[test]
    fn a_reported_outcome_waits_for_confirmation() {
        assert_eq!(pending_timers(&connected()), vec![TimerKind::ConfirmBy]);
        let reported = apply(
            &declined(),
            Party::Recipient,
            &not_connected(NotConnectedReason::NoCapacity),
            &me(),
            at(2),
        )
        .unwrap();
        assert_eq!(pending_timers(&reported), vec![TimerKind::ConfirmBy]);
    }

    #[test]
    fn closed_referrals_have_no_timers() {
        for state in [confirmed(), cancelled(), declined()] {
            assert!(pending_timers(&state).is_empty(), "{state:?}");
            assert!(state.is_closed());
        }
        // Cancelled after the outcome was reported: nobody is left to confirm.
        let cancelled_late = apply(
            &act(
                &in_progress(),
                Party::Recipient,
                ReferralAction::ReportConnected,
            ),
            Party::Sender,
            &with_reason(ReferralAction::Cancel, "x"),
            &me(),
            at(3),
        )
        .unwrap();
        assert!(pending_timers(&cancelled_late).is_empty());
    }

    #[test]
    fn closed_means_exactly_no_pending_timers() {
        let tried = act(
            &accepted(),
            Party::Recipient,
            ReferralAction::RecordContactAttempt,
        );
        for state in [
            ReferralState::new(),
            accepted(),
            in_progress(),
            completed(),
            tried,
            connected(),
            confirmed(),
            cancelled(),
            declined(),
        ] {
            assert_eq!(state.is_closed(), pending_timers(&state).is_empty());
        }
    }

    #[test]
    fn the_recipient_is_responsible_for_all_but_confirmation() {
        assert_eq!(responsible_party(TimerKind::DeliverBy), Party::Recipient);
        assert_eq!(responsible_party(TimerKind::RespondBy), Party::Recipient);
        assert_eq!(responsible_party(TimerKind::ConnectBy), Party::Recipient);
        assert_eq!(responsible_party(TimerKind::ConfirmBy), Party::Sender);
    }

    #[test]
    fn a_timer_is_overdue_only_after_its_deadline_passes() {
        let d = deadlines();
        let state = ReferralState::new();
        assert!(overdue(&state, &d, d.deliver_by).is_empty());
        assert_eq!(
            overdue(
                &state,
                &d,
                d.deliver_by.plus(time::Duration::milliseconds(1))
            ),
            vec![TimerKind::DeliverBy]
        );
        assert_eq!(
            overdue(&state, &d, at(121)),
            vec![TimerKind::DeliverBy, TimerKind::RespondBy]
        );
    }

    #[test]
    fn a_moved_layer_is_no_longer_overdue() {
        let d = deadlines();
        assert!(overdue(&accepted(), &d, at(200)).is_empty());
        assert_eq!(
            overdue(&accepted(), &d, at(400)),
            vec![TimerKind::ConnectBy]
        );
        assert!(overdue(&connected(), &d, at(400)).is_empty());
        assert_eq!(
            overdue(&connected(), &d, at(600)),
            vec![TimerKind::ConfirmBy]
        );
        assert!(overdue(&confirmed(), &d, at(10_000)).is_empty());
        assert!(overdue(&cancelled(), &d, at(10_000)).is_empty());
    }

    #[test]
    fn due_soon_lists_timers_within_the_window_that_are_not_yet_overdue() {
        let d = deadlines();
        let state = ReferralState::new();
        // At 20h: deliver-by (24h) is within 48h, respond-by (120h) is not.
        assert_eq!(
            due_soon(&state, &d, at(20), time::Duration::hours(48)),
            vec![(TimerKind::DeliverBy, d.deliver_by)]
        );
        // At 100h: deliver-by is overdue, so only respond-by is due soon.
        assert_eq!(
            due_soon(&state, &d, at(100), time::Duration::hours(48)),
            vec![(TimerKind::RespondBy, d.respond_by)]
        );
        assert!(due_soon(&state, &d, at(0), time::Duration::hours(1)).is_empty());
        assert!(due_soon(&confirmed(), &d, at(500), time::Duration::hours(48)).is_empty());
    }
}
