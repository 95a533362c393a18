//! Business days (営業日) in Japan: weekends, the national holidays of the Cabinet Office's list
//! (including 振替休日 and 国民の休日, both listed there as 「休日」) and a municipality's own
//! closure days (the year-end closure 12/29–1/3 and any extra ones it configures).
//!
//! A deadline of "N business days" from a send time is **17:00 JST on the Nth business day after
//! the day (in Japan) the referral was sent**. The send day itself never counts, however early it
//! was sent, so a referral sent at 08:00 and one sent at 23:00 get the same deadline, and one sent
//! on a closed day counts from the next business day. 17:00 is the end of the municipal working
//! day: an escalation raised then reaches people the next morning, not in the middle of the
//! deadline day.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use time::{Date, Month, Time, Weekday};

use super::{JST, Timestamp};

/// The Cabinet Office's holiday list (内閣府「国民の祝日」CSV, converted to UTF-8), shipped with
/// the hub. The README says how to update it.
const OFFICIAL_CSV: &str = include_str!("../../data/syukujitsu.csv");

/// The hour (JST) at which a business day ends: a business-day deadline falls at this time.
pub const BUSINESS_DAY_ENDS_AT: Time = match Time::from_hms(17, 0, 0) {
    Ok(time) => time,
    Err(_) => panic!("17:00 is a valid time"),
};

/// Why a holiday list or a closure day was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("the holiday list is empty")]
    Empty,
    #[error("{value:?} is not a date (expected YYYY-MM-DD)")]
    BadDate { value: String },
}

/// National holidays by date, with their names as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolidayList {
    holidays: BTreeMap<Date, String>,
}

impl HolidayList {
    /// The list shipped with the hub.
    pub fn official() -> &'static HolidayList {
        static LIST: LazyLock<HolidayList> = LazyLock::new(|| {
            HolidayList::parse_csv(OFFICIAL_CSV).expect("the shipped syukujitsu.csv parses")
        });
        &LIST
    }

    /// Parses the Cabinet Office's CSV format: a header line, then `YYYY/M/D,名称` per line
    /// (UTF-8; the published file is Shift_JIS, see the README). Blank lines are skipped.
    pub fn parse_csv(text: &str) -> Result<Self, CalendarError> {
        let mut holidays = BTreeMap::new();
        for (index, line) in text.lines().enumerate().skip(1) {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let error = |reason: String| CalendarError::Line {
                line: index + 1,
                reason,
            };
            let (date, name) = line
                .split_once(',')
                .ok_or_else(|| error("expected 'YYYY/M/D,名称'".to_owned()))?;
            let date = parse_slashed_date(date)
                .ok_or_else(|| error(format!("{date:?} is not a date (YYYY/M/D)")))?;
            let name = name.trim();
            if name.is_empty() {
                return Err(error("the holiday has no name".to_owned()));
            }
            if holidays.insert(date, name.to_owned()).is_some() {
                return Err(error(format!("{date} is listed twice")));
            }
        }
        if holidays.is_empty() {
            return Err(CalendarError::Empty);
        }
        Ok(Self { holidays })
    }

    /// The holiday's published name, or `None` for a day that is not a national holiday.
    pub fn name(&self, date: Date) -> Option<&str> {
        self.holidays.get(&date).map(String::as_str)
    }

    /// The holidays of one year, in date order.
    pub fn in_year(&self, year: i32) -> impl Iterator<Item = (Date, &str)> {
        self.holidays
            .iter()
            .filter(move |(date, _)| date.year() == year)
            .map(|(date, name)| (*date, name.as_str()))
    }

    /// The last year the list covers: business days after it skip only weekends and closures,
    /// so the hub warns when the list runs out.
    pub fn last_year(&self) -> i32 {
        self.holidays
            .keys()
            .next_back()
            .map_or(i32::MIN, |date| date.year())
    }
}

fn parse_slashed_date(text: &str) -> Option<Date> {
    let mut parts = text.trim().split('/');
    let year = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

/// Parses `YYYY-MM-DD` (a closure day in the configuration).
pub fn parse_iso_date(text: &str) -> Result<Date, CalendarError> {
    let bad = || CalendarError::BadDate {
        value: text.to_owned(),
    };
    let mut parts = text.trim().split('-');
    let (Some(year), Some(month), Some(day), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let (Ok(year), Ok(month), Ok(day)) = (year.parse(), month.parse::<u8>(), day.parse()) else {
        return Err(bad());
    };
    let month = Month::try_from(month).map_err(|_| bad())?;
    Date::from_calendar_date(year, month, day).map_err(|_| bad())
}

/// Why a day is not a business day, for people reading a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBecause<'a> {
    Weekend,
    Holiday(&'a str),
    YearEndClosure,
    ClosureDay,
}

/// The working calendar of one municipality's offices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessCalendar<'h> {
    holidays: &'h HolidayList,
    /// 年末年始の休日 (12/29–1/3), closed by most municipalities' 休日条例.
    pub year_end_closure: bool,
    /// Extra days the offices are closed (a municipality's own 休日).
    pub closed_days: BTreeSet<Date>,
}

impl<'h> BusinessCalendar<'h> {
    pub fn new(holidays: &'h HolidayList) -> Self {
        Self {
            holidays,
            year_end_closure: true,
            closed_days: BTreeSet::new(),
        }
    }

    /// Why `date` is closed, or `None` for a business day.
    pub fn closed_because(&self, date: Date) -> Option<ClosedBecause<'h>> {
        if matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
            return Some(ClosedBecause::Weekend);
        }
        if let Some(name) = self.holidays.name(date) {
            return Some(ClosedBecause::Holiday(name));
        }
        let year_end = match date.month() {
            Month::December => date.day() >= 29,
            Month::January => date.day() <= 3,
            _ => false,
        };
        if self.year_end_closure && year_end {
            return Some(ClosedBecause::YearEndClosure);
        }
        if self.closed_days.contains(&date) {
            return Some(ClosedBecause::ClosureDay);
        }
        None
    }

    pub fn is_business_day(&self, date: Date) -> bool {
        self.closed_because(date).is_none()
    }

    /// The `n`th business day after `date` (`date` itself never counts; `n = 0` gives `date`).
    pub fn nth_business_day_after(&self, date: Date, n: u32) -> Date {
        let mut day = date;
        let mut counted = 0;
        while counted < n {
            // Dates run out only around the year 9999; stay on the last one rather than panic.
            let Some(next) = day.next_day() else {
                return day;
            };
            day = next;
            if self.is_business_day(day) {
                counted += 1;
            }
        }
        day
    }

    /// The deadline `n` business days after `sent_at`: 17:00 JST on the `n`th business day after
    /// the send day in Japan (see the module documentation).
    pub fn business_days_after(&self, sent_at: Timestamp, n: u32) -> Timestamp {
        let due_day = self.nth_business_day_after(sent_at.date_in_japan(), n);
        Timestamp::from_offset_date_time(due_day.with_time(BUSINESS_DAY_ENDS_AT).assume_offset(JST))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn calendar() -> BusinessCalendar<'static> {
        BusinessCalendar::new(HolidayList::official())
    }

    fn jst(at: time::PrimitiveDateTime) -> Timestamp {
        Timestamp::from_offset_date_time(at.assume_offset(JST))
    }

    /// 内閣府「令和8年（2026年）及び令和9年（2027年）の国民の祝日・休日」as published, typed in
    /// here independently of the shipped CSV.
    const PUBLISHED_2026: [(Date, &str); 18] = [
        (date!(2026 - 01 - 01), "元日"),
        (date!(2026 - 01 - 12), "成人の日"),
        (date!(2026 - 02 - 11), "建国記念の日"),
        (date!(2026 - 02 - 23), "天皇誕生日"),
        (date!(2026 - 03 - 20), "春分の日"),
        (date!(2026 - 04 - 29), "昭和の日"),
        (date!(2026 - 05 - 03), "憲法記念日"),
        (date!(2026 - 05 - 04), "みどりの日"),
        (date!(2026 - 05 - 05), "こどもの日"),
        (date!(2026 - 05 - 06), "休日"),
        (date!(2026 - 07 - 20), "海の日"),
        (date!(2026 - 08 - 11), "山の日"),
        (date!(2026 - 09 - 21), "敬老の日"),
        (date!(2026 - 09 - 22), "休日"),
        (date!(2026 - 09 - 23), "秋分の日"),
        (date!(2026 - 10 - 12), "スポーツの日"),
        (date!(2026 - 11 - 03), "文化の日"),
        (date!(2026 - 11 - 23), "勤労感謝の日"),
    ];

    const PUBLISHED_2027: [(Date, &str); 17] = [
        (date!(2027 - 01 - 01), "元日"),
        (date!(2027 - 01 - 11), "成人の日"),
        (date!(2027 - 02 - 11), "建国記念の日"),
        (date!(2027 - 02 - 23), "天皇誕生日"),
        (date!(2027 - 03 - 21), "春分の日"),
        (date!(2027 - 03 - 22), "休日"),
        (date!(2027 - 04 - 29), "昭和の日"),
        (date!(2027 - 05 - 03), "憲法記念日"),
        (date!(2027 - 05 - 04), "みどりの日"),
        (date!(2027 - 05 - 05), "こどもの日"),
        (date!(2027 - 07 - 19), "海の日"),
        (date!(2027 - 08 - 11), "山の日"),
        (date!(2027 - 09 - 20), "敬老の日"),
        (date!(2027 - 09 - 23), "秋分の日"),
        (date!(2027 - 10 - 11), "スポーツの日"),
        (date!(2027 - 11 - 03), "文化の日"),
        (date!(2027 - 11 - 23), "勤労感謝の日"),
    ];

    #[test]
    fn the_shipped_list_matches_the_published_holidays_of_2026_and_2027() {
        let list = HolidayList::official();
        let year = |y| list.in_year(y).collect::<Vec<_>>();
        assert_eq!(year(2026), PUBLISHED_2026.to_vec());
        assert_eq!(year(2027), PUBLISHED_2027.to_vec());
        assert!(list.last_year() >= 2027);
    }

    /// 祝日法 第3条: a holiday on a Sunday moves the next non-holiday day off (振替休日), and a
    /// day between two holidays is off (国民の休日). The list must already contain both.
    #[test]
    fn the_shipped_list_contains_every_substitute_and_citizens_holiday() {
        let list = HolidayList::official();
        let holiday = |d: Date| list.name(d).is_some();
        for (date, name) in list.holidays.iter().map(|(d, n)| (*d, n.as_str())) {
            if name == "休日" {
                continue;
            }
            if date.weekday() == Weekday::Sunday {
                let mut substitute = date.next_day().unwrap();
                while holiday(substitute) && list.name(substitute) != Some("休日") {
                    substitute = substitute.next_day().unwrap();
                }
                assert_eq!(list.name(substitute), Some("休日"), "振替休日 for {date}");
            }
            let after_next = date.next_day().unwrap().next_day().unwrap();
            let between = date.next_day().unwrap();
            if list.name(after_next).is_some_and(|n| n != "休日")
                && !holiday(between)
                && between.weekday() != Weekday::Sunday
            {
                panic!("{between} lies between two holidays and is missing");
            }
        }
    }

    #[test]
    fn holidays_weekends_and_the_year_end_closure_are_not_business_days() {
        let c = calendar();
        for (date, _) in PUBLISHED_2026.iter().chain(PUBLISHED_2027.iter()) {
            assert!(!c.is_business_day(*date), "{date}");
        }
        assert_eq!(
            c.closed_because(date!(2026 - 05 - 06)),
            Some(ClosedBecause::Holiday("休日"))
        );
        assert_eq!(
            c.closed_because(date!(2026 - 12 - 26)),
            Some(ClosedBecause::Weekend)
        );
        for day in [29, 30, 31] {
            let d = Date::from_calendar_date(2026, Month::December, day).unwrap();
            assert_eq!(c.closed_because(d), Some(ClosedBecause::YearEndClosure));
        }
        assert_eq!(
            c.closed_because(date!(2027 - 01 - 01)),
            Some(ClosedBecause::Holiday("元日"))
        );
        assert!(!c.is_business_day(date!(2027 - 01 - 03)));
        assert!(c.is_business_day(date!(2026 - 12 - 28)));
        assert!(c.is_business_day(date!(2027 - 01 - 04)));
        assert!(c.is_business_day(date!(2027 - 04 - 30)));
        assert!(c.is_business_day(date!(2027 - 05 - 06)));
    }

    #[test]
    fn a_year_of_business_days_counts_what_the_published_list_leaves() {
        // 2026 has 261 weekdays; every holiday of 2026 but 5/3 (a Sunday) falls on one, and the
        // year-end closure takes four more: 1/2, 12/29, 12/30 and 12/31 (1/1 is 元日, 1/3 a
        // Saturday).
        let c = calendar();
        let mut day = date!(2026 - 01 - 01);
        let mut business = 0;
        while day.year() == 2026 {
            business += u32::from(c.is_business_day(day));
            day = day.next_day().unwrap();
        }
        let weekday_holidays = PUBLISHED_2026
            .iter()
            .filter(|(d, _)| !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday))
            .count() as u32;
        assert_eq!(weekday_holidays, 17);
        assert_eq!(business, 261 - weekday_holidays - 4);
    }

    #[test]
    fn two_business_days_from_the_last_day_before_new_year_is_january_fifth() {
        let c = calendar();
        assert_eq!(
            c.nth_business_day_after(date!(2026 - 12 - 28), 2),
            date!(2027 - 01 - 05)
        );
        assert_eq!(
            c.business_days_after(jst(datetime!(2026-12-28 10:30)), 2),
            jst(datetime!(2027-01-05 17:00))
        );
    }

    #[test]
    fn three_business_days_across_golden_week_skip_showa_day_and_the_holidays() {
        let c = calendar();
        assert_eq!(
            c.business_days_after(jst(datetime!(2027-04-28 15:00)), 3),
            jst(datetime!(2027-05-07 17:00))
        );
    }

    #[test]
    fn the_send_day_is_counted_in_japan_time_and_never_itself() {
        let c = calendar();
        // 2027-01-04 23:30 UTC is already 2027-01-05 in Japan.
        let late = Timestamp::from_offset_date_time(datetime!(2027-01-04 23:30 UTC));
        assert_eq!(
            c.business_days_after(late, 1),
            jst(datetime!(2027-01-06 17:00))
        );
        let early = jst(datetime!(2027-01-05 00:01));
        let evening = jst(datetime!(2027-01-05 23:59));
        assert_eq!(
            c.business_days_after(early, 1),
            c.business_days_after(evening, 1)
        );
        // Sent on a Saturday: counting starts on Monday.
        assert_eq!(
            c.business_days_after(jst(datetime!(2027-01-09 12:00)), 1),
            jst(datetime!(2027-01-12 17:00)),
            "Monday 2027-01-11 is 成人の日"
        );
    }

    #[test]
    fn a_municipality_may_open_over_new_year_or_close_extra_days() {
        let mut c = calendar();
        c.year_end_closure = false;
        assert_eq!(
            c.nth_business_day_after(date!(2026 - 12 - 28), 2),
            date!(2026 - 12 - 30)
        );
        let mut c = calendar();
        c.closed_days.insert(date!(2027 - 01 - 04));
        assert_eq!(
            c.closed_because(date!(2027 - 01 - 04)),
            Some(ClosedBecause::ClosureDay)
        );
        assert_eq!(
            c.nth_business_day_after(date!(2026 - 12 - 28), 2),
            date!(2027 - 01 - 06)
        );
    }

    #[test]
    fn a_malformed_holiday_list_is_refused_naming_the_line() {
        let header = "国民の祝日・休日月日,国民の祝日・休日名称\n";
        assert_eq!(HolidayList::parse_csv(header), Err(CalendarError::Empty));
        let err = HolidayList::parse_csv(&format!("{header}2027/1/1,元日\n2027/13/1,x\n"));
        assert!(
            matches!(err, Err(CalendarError::Line { line: 3, .. })),
            "{err:?}"
        );
        let err = HolidayList::parse_csv(&format!("{header}2027/1/1,元日\n2027/1/1,元日\n"));
        assert!(
            matches!(err, Err(CalendarError::Line { line: 3, .. })),
            "{err:?}"
        );
        let err = HolidayList::parse_csv(&format!("{header}2027/1/1\n"));
        assert!(
            matches!(err, Err(CalendarError::Line { line: 2, .. })),
            "{err:?}"
        );
        let list = HolidayList::parse_csv(&format!("{header}\r\n2027/1/1,元日\r\n")).unwrap();
        assert_eq!(list.name(date!(2027 - 01 - 01)), Some("元日"));
    }

    #[test]
    fn closure_days_are_parsed_as_iso_dates() {
        assert_eq!(parse_iso_date("2027-08-13"), Ok(date!(2027 - 08 - 13)));
        for bad in [
            "2027/08/13",
            "2027-02-30",
            "13-08-2027x",
            "",
            "2027-08-13-1",
        ] {
            assert!(parse_iso_date(bad).is_err(), "{bad}");
        }
    }
}
