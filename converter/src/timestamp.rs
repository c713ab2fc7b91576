//! RFC 3339 timestamp recognition and parsing.
//!
//! Accepted: `YYYY-MM-DD` then `T`, `t` or a space, then `HH:MM:SS`, an optional fraction of
//! 1 to 9 digits, and a mandatory zone: `Z`, `z`, `±HH:MM` or `±HHMM`. Strings without a zone
//! are *not* timestamps: reading a local time as UTC would silently shift it, so they stay
//! strings. Leap seconds (`:60`) are not accepted.
//!
//! A timestamp fits a unit only if no precision is lost: `12:00:00.1234567Z` fits `ns` but not
//! `us`; `12:00:00.123000Z` fits `ms`.

use crate::schema::TimestampUnit;

/// Why a string is not a timestamp of a given unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampError {
    /// Not in the accepted RFC 3339 form.
    Syntax,
    /// Valid, but finer than the unit can store.
    TooPrecise,
    /// Valid, but outside the range of the unit (only `ns` has a narrow one).
    OutOfRange,
}

impl std::fmt::Display for TimestampError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimestampError::Syntax => "not an RFC 3339 timestamp with a time zone",
            TimestampError::TooPrecise => {
                "timestamp has more fractional digits than the column's unit keeps"
            }
            TimestampError::OutOfRange => "timestamp is outside the range of the column's unit",
        })
    }
}

/// Cheap test on the shape before full parsing; most strings fail on the first check.
#[inline]
pub fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    (20..=35).contains(&b.len())
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[13] == b':'
}

/// Parses an RFC 3339 timestamp into units since the Unix epoch (UTC).
pub fn parse_timestamp(s: &str, unit: TimestampUnit) -> Result<i64, TimestampError> {
    if !looks_like_timestamp(s) {
        return Err(TimestampError::Syntax);
    }
    let b = s.as_bytes();
    let year = digits(b, 0, 4)? as i64;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    if b[16] != b':' {
        return Err(TimestampError::Syntax);
    }
    let second = digits(b, 17, 2)?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(TimestampError::Syntax);
    }

    let mut pos = 19;
    let mut fraction: u64 = 0;
    let mut fraction_digits: u32 = 0;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let n = pos - start;
        if n == 0 || n > 9 {
            return Err(TimestampError::Syntax);
        }
        for &d in &b[start..pos] {
            fraction = fraction * 10 + u64::from(d - b'0');
        }
        fraction_digits = n as u32;
    }

    let offset_seconds: i64 = match b.get(pos) {
        Some(b'Z') | Some(b'z') if pos + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let rest = &b[pos + 1..];
            let (h, m) = match rest.len() {
                5 if rest[2] == b':' => (digits(rest, 0, 2)?, digits(rest, 3, 2)?),
                4 => (digits(rest, 0, 2)?, digits(rest, 2, 2)?),
                _ => return Err(TimestampError::Syntax),
            };
            if h > 23 || m > 59 {
                return Err(TimestampError::Syntax);
            }
            let magnitude = i64::from(h) * 3600 + i64::from(m) * 60;
            if sign == b'+' {
                magnitude
            } else {
                -magnitude
            }
        }
        _ => return Err(TimestampError::Syntax),
    };

    let keep = unit.fraction_digits();
    let sub_second = if fraction_digits > keep {
        let drop = 10u64.pow(fraction_digits - keep);
        if !fraction.is_multiple_of(drop) {
            return Err(TimestampError::TooPrecise);
        }
        fraction / drop
    } else {
        fraction * 10u64.pow(keep - fraction_digits)
    };

    let days = days_from_civil(year, month, day);
    let seconds =
        days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
            - offset_seconds;
    seconds
        .checked_mul(10i64.pow(keep))
        .and_then(|v| v.checked_add(sub_second as i64))
        .ok_or(TimestampError::OutOfRange)
}

#[inline]
fn digits(b: &[u8], start: usize, len: usize) -> Result<u32, TimestampError> {
    let mut value = 0u32;
    for &c in b.get(start..start + len).ok_or(TimestampError::Syntax)? {
        if !c.is_ascii_digit() {
            return Err(TimestampError::Syntax);
        }
        value = value * 10 + u32::from(c - b'0');
    }
    Ok(value)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use TimestampUnit::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z", Microsecond), Ok(0));
        assert_eq!(
            parse_timestamp("1970-01-01 00:00:01z", Millisecond),
            Ok(1000)
        );
        assert_eq!(
            parse_timestamp("2024-02-29T12:34:56.789+02:00", Microsecond),
            Ok(1_709_202_896_789_000)
        );
        assert_eq!(
            parse_timestamp("2024-02-29T10:34:56.789Z", Microsecond),
            parse_timestamp("2024-02-29T12:34:56.789+0200", Microsecond)
        );
        assert_eq!(
            parse_timestamp("1969-12-31T23:59:59.999999Z", Microsecond),
            Ok(-1)
        );
        assert_eq!(
            parse_timestamp("2262-04-11T23:47:16.854775807Z", Nanosecond),
            Ok(i64::MAX)
        );
        assert_eq!(
            parse_timestamp("0001-01-01T00:00:00Z", Microsecond),
            Ok(-62_135_596_800_000_000)
        );
    }

    #[test]
    fn precision_must_fit_the_unit() {
        assert_eq!(
            parse_timestamp("2024-01-01T00:00:00.123Z", Millisecond),
            Ok(1_704_067_200_123)
        );
        assert_eq!(
            parse_timestamp("2024-01-01T00:00:00.123000000Z", Millisecond),
            Ok(1_704_067_200_123)
        );
        assert_eq!(
            parse_timestamp("2024-01-01T00:00:00.1234Z", Millisecond),
            Err(TimestampError::TooPrecise)
        );
        assert_eq!(
            parse_timestamp("2024-01-01T00:00:00.1234567Z", Microsecond),
            Err(TimestampError::TooPrecise)
        );
        assert!(parse_timestamp("2024-01-01T00:00:00.1234567Z", Nanosecond).is_ok());
        assert_eq!(
            parse_timestamp("2300-01-01T00:00:00Z", Nanosecond),
            Err(TimestampError::OutOfRange)
        );
    }

    #[test]
    fn rejects_non_timestamps() {
        for s in [
            "2024-01-01T00:00:00",             // no zone: stays a string
            "2024-01-01",                      // a date
            "2024-13-01T00:00:00Z",            // month
            "2023-02-29T00:00:00Z",            // not a leap year
            "2024-01-01T24:00:00Z",            // hour
            "2024-01-01T00:00:60Z",            // leap second
            "2024-01-01T00:00:00.Z",           // empty fraction
            "2024-01-01T00:00:00.1234567891Z", // 10 digits
            "2024-01-01T00:00:00+2:00",        // short offset
            "2024-01-01T00:00:00Zjunk",
            "2024-01-01X00:00:00Z",
            "hello world, how are you?",
            "２０２４-01-01T00:00:00Z",
        ] {
            assert!(parse_timestamp(s, Nanosecond).is_err(), "{s}");
        }
    }
}
