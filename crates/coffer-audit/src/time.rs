//! Entry timestamps: Unix microseconds and the same instant as RFC 3339 UTC text.
//!
//! The conversion is done here rather than with a date crate because it is only ever from a
//! non-negative Unix time to a proleptic Gregorian UTC date, which needs a dozen lines.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::AuditError;

/// One instant, in both forms an entry carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Timestamp {
    /// Microseconds since 1970-01-01T00:00:00Z.
    pub(crate) unix_us: u64,
    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub(crate) rfc3339: String,
}

impl Timestamp {
    /// Now, from the system clock. A clock set before 1970 is an error: an entry with a
    /// made-up time would be worse than no entry (and the HSM then refuses the operation).
    pub(crate) fn now() -> Result<Timestamp, AuditError> {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|_| AuditError::Clock)?;
        let unix_us = u64::try_from(since_epoch.as_micros()).map_err(|_| AuditError::Clock)?;
        Ok(Timestamp::from_unix_us(unix_us))
    }

    pub(crate) fn from_unix_us(unix_us: u64) -> Timestamp {
        Timestamp { unix_us, rfc3339: rfc3339_micros(unix_us) }
    }
}

/// RFC 3339 text, UTC, with exactly six fractional digits.
pub(crate) fn rfc3339_micros(unix_us: u64) -> String {
    let micros = unix_us % 1_000_000;
    let secs = unix_us / 1_000_000;
    let (days, secs_of_day) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    )
}

/// Year, month and day of the `days`-th day after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, restricted to non-negative day numbers).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so that the leap day is the last day of a "year".
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        // Expected values from `date -u -d @SECONDS +%Y-%m-%dT%H:%M:%S`.
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339_micros(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(rfc3339_micros(951_868_799_999_999), "2000-02-29T23:59:59.999999Z");
        assert_eq!(rfc3339_micros(1_709_251_199_123_456), "2024-02-29T23:59:59.123456Z");
        assert_eq!(rfc3339_micros(4_107_542_400_000_000), "2100-03-01T00:00:00.000000Z");
        assert_eq!(rfc3339_micros(1_735_689_599_500_000), "2024-12-31T23:59:59.500000Z");
    }

    #[test]
    fn every_day_boundary_of_four_centuries_is_consistent() {
        // Walks day by day and checks that the date advances by exactly one day each time.
        let mut prev = civil_from_days(0);
        assert_eq!(prev, (1970, 1, 1));
        for days in 1..(400 * 366) {
            let (y, m, d) = civil_from_days(days);
            let (py, pm, pd) = prev;
            let next_day = (y, m, d) == (py, pm, pd + 1);
            let next_month = (y, m, d) == (py, pm + 1, 1) && pd >= 28;
            let next_year = (y, m, d) == (py + 1, 1, 1) && (pm, pd) == (12, 31);
            assert!(next_day || next_month || next_year, "{prev:?} -> {:?}", (y, m, d));
            prev = (y, m, d);
        }
    }

    #[test]
    fn now_is_after_2020() {
        let now = Timestamp::now().unwrap();
        assert!(now.unix_us > 1_577_836_800_000_000);
        assert_eq!(now.rfc3339, rfc3339_micros(now.unix_us));
    }
}
