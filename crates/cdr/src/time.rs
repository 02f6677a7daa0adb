//! Time as the CDR sees it: UTC milliseconds in, two wire spellings out.

/// A moment in UTC, in milliseconds since 1970-01-01T00:00:00Z.
///
/// Millisecond precision is what the store keeps (SPEC §1); seconds are only
/// a wire spelling.
///
/// The call engine stamps every [`CallEvent`](crate::CallEvent) with a
/// [`UnixMillis`] read from its (virtual) clock; this crate never reads a
/// clock itself. Two spellings leave the crate (SPEC §1):
///
/// * events: Unix **seconds** as a decimal string, `"0"` when the moment did
///   not happen ([`event_time`]);
/// * REST: RFC 3339 UTC with milliseconds, `2026-11-28T14:03:07.123Z`, `""`
///   when it did not happen ([`rest_time`]).
///
/// The civil-date conversion is written here (Howard Hinnant's
/// `civil_from_days`) rather than pulled from a date crate: it is twenty lines
/// and the tests pin it against known dates.
/// Serde writes the bare number of milliseconds (the store's journal).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

const MS_PER_DAY: u64 = 86_400_000;

impl UnixMillis {
    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the Unix epoch (the fraction is dropped, so the
    /// second shown is the one the moment falls in).
    pub const fn unix_seconds(self) -> u64 {
        self.0 / 1000
    }

    /// Seconds from `earlier` to `self` as the second-resolution event
    /// times show them: `self`'s second minus `earlier`'s, 0 if `earlier`
    /// is later.
    ///
    /// SPEC §2 wants every duration to equal the difference of the times
    /// the same record shows, so a reader subtracting `answered_time` from
    /// `ended_time` always finds `talk_duration` (PortSIP's REST example,
    /// 34.193 s shown as 35, subtracts seconds the same way). The price: a
    /// 0.2 s call that crosses a second boundary lasts 1 s.
    pub const fn whole_seconds_since(self, earlier: UnixMillis) -> u64 {
        self.unix_seconds().saturating_sub(earlier.unix_seconds())
    }

    /// RFC 3339 UTC with exactly three fractional digits, e.g.
    /// `2026-11-28T14:03:07.123Z`.
    ///
    /// Years past 9999 (not reachable from a `u64` Snowflake before the heat
    /// death of the PBX, but representable here) are printed with more
    /// digits rather than truncated.
    pub fn to_rfc3339(self) -> String {
        let days = self.0 / MS_PER_DAY;
        let ms_of_day = self.0 % MS_PER_DAY;
        let (year, month, day) = civil_from_days(days);
        let hour = ms_of_day / 3_600_000;
        let minute = ms_of_day / 60_000 % 60;
        let second = ms_of_day / 1000 % 60;
        let milli = ms_of_day % 1000;
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
    }
}

/// Event spelling of an optional moment: Unix seconds as a decimal string,
/// `"0"` when it did not happen.
pub fn event_time(at: Option<UnixMillis>) -> String {
    match at {
        Some(at) => at.unix_seconds().to_string(),
        None => "0".to_owned(),
    }
}

/// REST spelling of an optional moment: RFC 3339 UTC with milliseconds, `""`
/// when it did not happen.
pub fn rest_time(at: Option<UnixMillis>) -> String {
    match at {
        Some(at) => at.to_rfc3339(),
        None => String::new(),
    }
}

/// Gregorian (year, month 1–12, day 1–31) of a day count since 1970-01-01.
///
/// Hinnant's algorithm, restricted to non-negative day counts (a `u64` of
/// Unix milliseconds cannot be negative): shift the epoch to 0000-03-01 so
/// the leap day is the last day of its "year", split into 400-year eras of
/// 146 097 days, then into years of the era and days of the year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let day_of_era = z % 146_097; // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11], 0 = March
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(ms: u64) -> String {
        UnixMillis(ms).to_rfc3339()
    }

    #[test]
    fn formats_known_dates() {
        assert_eq!(rfc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc(1), "1970-01-01T00:00:00.001Z");
        assert_eq!(rfc(1_514_764_800_000), "2018-01-01T00:00:00.000Z");
        assert_eq!(rfc(1_709_208_000_000), "2024-02-29T12:00:00.000Z");
        assert_eq!(rfc(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc(1_709_251_200_000), "2024-03-01T00:00:00.000Z");
        assert_eq!(rfc(1_795_874_587_123), "2026-11-28T14:03:07.123Z");
        assert_eq!(rfc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        // 2100 is not a leap year: Feb 28 is followed by Mar 1.
        assert_eq!(rfc(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
        assert_eq!(rfc(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(rfc(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn every_day_of_four_centuries_is_consecutive() {
        // Walk 1970..2370 day by day and check the calendar advances by one
        // day each time, with the Gregorian leap rule.
        let leap =
            |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        let month_len = |y: u64, m: u64| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut expected = (1970, 1, 1);
        for days in 0..146_097 {
            assert_eq!(civil_from_days(days), expected, "day {days}");
            let (y, m, d) = expected;
            expected = if d < month_len(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }

    #[test]
    fn huge_values_do_not_panic() {
        let text = rfc(u64::MAX);
        assert!(text.ends_with('Z'), "{text}");
    }

    #[test]
    fn event_and_rest_spellings_of_absent_and_present_moments() {
        assert_eq!(event_time(None), "0");
        assert_eq!(rest_time(None), "");
        assert_eq!(
            event_time(Some(UnixMillis(1_795_874_587_999))),
            "1795874587"
        );
        assert_eq!(
            rest_time(Some(UnixMillis(1_795_874_587_999))),
            "2026-11-28T14:03:07.999Z"
        );
    }

    #[test]
    fn durations_are_differences_of_the_seconds_shown() {
        let a = UnixMillis(1_000_965);
        // PortSIP's example: 34.193 s between …00.965 and …35.158 is 35.
        assert_eq!(UnixMillis(1_035_158).whole_seconds_since(a), 35);
        assert_eq!(UnixMillis(1_000_999).whole_seconds_since(a), 0);
        assert_eq!(UnixMillis(1_001_000).whole_seconds_since(a), 1);
        // Answered at …592.9, ended at …652.1: the record shows 592 and 652.
        assert_eq!(
            UnixMillis(1_795_874_652_100).whole_seconds_since(UnixMillis(1_795_874_592_900)),
            60
        );
        assert_eq!(a.whole_seconds_since(UnixMillis(2_000_000)), 0);
    }
}
