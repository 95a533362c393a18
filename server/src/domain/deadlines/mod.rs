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
mod tests;
