//! Clock and deadlines in the university's time zone (SPEC O-5).

use chrono::{Datelike, Duration, NaiveTime, TimeZone};
use chrono_tz::Tz;

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn tz(name: &str) -> Tz {
    name.parse().unwrap_or(chrono_tz::Asia::Tokyo)
}

/// The application day is day 1; the number stops working at 00:00 of day 8
/// in the university's time zone. Returns that instant (unix seconds).
pub fn print_deadline(created_at: i64, zone: Tz) -> i64 {
    let local = zone.timestamp_opt(created_at, 0).single().unwrap_or_else(|| {
        zone.from_utc_datetime(&chrono::DateTime::UNIX_EPOCH.naive_utc())
    });
    let day8 = local.date_naive() + Duration::days(7);
    zone.from_local_datetime(&day8.and_time(NaiveTime::MIN))
        .earliest()
        .map(|d| d.timestamp())
        .unwrap_or(created_at + 7 * 86400)
}

/// The first instant (00:00) of the day after the one `at` falls on, in
/// `zone`: a failed print unprinted by its deadline is refunded from the
/// start of the day after the deadline's last day (ST-5).
pub fn start_of_next_day(at: i64, zone: Tz) -> i64 {
    let Some(local) = zone.timestamp_opt(at, 0).single() else { return at + 86400 };
    let next = local.date_naive() + Duration::days(1);
    zone.from_local_datetime(&next.and_time(NaiveTime::MIN)).earliest().map(|d| d.timestamp()).unwrap_or(at + 86400)
}

/// "2026年11月29日 23:59 / 23:59, 29 Nov 2026": the last minute a deadline allows.
pub fn deadline_text(deadline: i64, zone: Tz) -> String {
    let last = zone.timestamp_opt(deadline - 60, 0).single();
    match last {
        Some(d) => format!(
            "{}年{}月{}日 {}まで / until {}, {}",
            d.year(),
            d.month(),
            d.day(),
            d.format("%H:%M"),
            d.format("%H:%M"),
            d.format("%-d %b %Y")
        ),
        None => String::new(),
    }
}

/// "2026-11-23 14:05" in the given zone.
pub fn local_text(at: i64, zone: Tz) -> String {
    zone.timestamp_opt(at, 0).single().map(|d| d.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default()
}

/// A time for mails and pages: Japan time, labelled.
pub fn jst_text(at: i64) -> String {
    format!("{} (JST)", local_text(at, chrono_tz::Asia::Tokyo))
}

pub fn local_date(at: i64, zone: Tz) -> String {
    zone.timestamp_opt(at, 0).single().map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_midnight_starting_day_eight_in_tokyo() {
        let tokyo = chrono_tz::Asia::Tokyo;
        // 2026-11-23 23:30 JST (application day 1) -> stops 2026-11-30 00:00 JST
        let created = tokyo.with_ymd_and_hms(2026, 11, 23, 23, 30, 0).unwrap().timestamp();
        let expected = tokyo.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap().timestamp();
        assert_eq!(print_deadline(created, tokyo), expected);
        // 00:10 JST on the same local day gives the same deadline
        let early = tokyo.with_ymd_and_hms(2026, 11, 23, 0, 10, 0).unwrap().timestamp();
        assert_eq!(print_deadline(early, tokyo), expected);
        assert!(deadline_text(expected, tokyo).starts_with("2026年11月29日 23:59まで"));
    }

    #[test]
    fn the_day_after_a_deadlines_last_day_starts_at_its_midnight() {
        let tokyo = chrono_tz::Asia::Tokyo;
        // a deadline of 2026-11-30 00:00 JST: its last day is the 29th, the next day starts at the deadline
        let deadline = tokyo.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap().timestamp();
        assert_eq!(start_of_next_day(deadline - 1, tokyo), deadline);
        // any time on the 29th leads to the same midnight; the 30th itself to the 1st
        let noon = tokyo.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap().timestamp();
        assert_eq!(start_of_next_day(noon, tokyo), deadline);
        let dec1 = tokyo.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap().timestamp();
        assert_eq!(start_of_next_day(deadline, tokyo), dec1);
    }
}
