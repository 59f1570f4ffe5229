//! Dates and times of SQL values: days and milliseconds since the epoch to calendar fields and
//! back (the proleptic Gregorian calendar), parsed and printed as Flink writes them
//! (`2024-03-01`, `10:15:00`, `2024-03-01 10:15:00.000`).

/// A time zone: UTC, a fixed offset from it (`+08:00`), or a zone of the IANA database by name
/// (`Asia/Shanghai`, `America/New_York`) with its daylight-saving rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Zone {
    /// UTC.
    #[default]
    Utc,
    /// A fixed offset east of UTC, in seconds.
    Offset(i32),
    /// A zone of the IANA time zone database.
    Named(NamedZone),
}

/// A zone of the IANA time zone database (its copy bundled into the program, so that zones
/// resolve alike on every machine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedZone {
    name: String,
    rules: jiff::tz::TimeZone,
}

impl NamedZone {
    /// Its name as the database spells it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn time_zone_database() -> &'static jiff::tz::TimeZoneDatabase {
    static DATABASE: std::sync::OnceLock<jiff::tz::TimeZoneDatabase> = std::sync::OnceLock::new();
    DATABASE.get_or_init(jiff::tz::TimeZoneDatabase::bundled)
}

/// The instant of `ms` milliseconds since the epoch, within what jiff represents.
fn instant(ms: i64) -> jiff::Timestamp {
    let (min, max) = (jiff::Timestamp::MIN.as_millisecond(), jiff::Timestamp::MAX.as_millisecond());
    jiff::Timestamp::from_millisecond(ms.clamp(min, max)).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

impl Zone {
    /// `UTC`, `Z`, `GMT`, an offset `+08:00` / `-0530` / `UTC+8`, or an IANA zone name
    /// (`Europe/Berlin`, without case).
    pub fn parse(name: &str) -> Option<Zone> {
        let name = name.trim();
        Zone::parse_fixed(name).or_else(|| {
            let rules = time_zone_database().get(name).ok()?;
            let name = rules.iana_name().unwrap_or(name).to_string();
            Some(Zone::Named(NamedZone { name, rules }))
        })
    }

    fn parse_fixed(name: &str) -> Option<Zone> {
        let rest = ["UTC", "GMT", "Z"].iter().find_map(|prefix| name.strip_prefix(prefix)).unwrap_or(name);
        if rest.is_empty() {
            return Some(Zone::Utc);
        }
        let (sign, digits) = match rest.as_bytes()[0] {
            b'+' => (1, &rest[1..]),
            b'-' => (-1, &rest[1..]),
            _ => return None,
        };
        let (hours, minutes) = match digits.split_once(':') {
            Some((hours, minutes)) => (hours, minutes),
            None if digits.len() > 2 => digits.split_at(digits.len() - 2),
            None => (digits, "0"),
        };
        let (hours, minutes): (i32, i32) = (hours.parse().ok()?, minutes.parse().ok()?);
        (hours <= 18 && minutes < 60).then_some(Zone::Offset(sign * (hours * 3600 + minutes * 60)))
    }

    /// Milliseconds to add to a UTC instant for the local time of this zone.
    pub fn offset_ms(&self, utc_ms: i64) -> i64 {
        match self {
            Zone::Utc => 0,
            Zone::Offset(seconds) => i64::from(*seconds) * 1000,
            Zone::Named(zone) => i64::from(zone.rules.to_offset(instant(utc_ms)).seconds()) * 1000,
        }
    }

    /// The instant (milliseconds since the epoch) of a local date and time of this zone, also
    /// given in milliseconds since the epoch. A local time skipped by a daylight-saving change
    /// moves forward by the change and a repeated one takes the earlier offset, as Java's
    /// `ZonedDateTime.of` does (and so Flink).
    pub fn utc_of_local(&self, local_ms: i64) -> i64 {
        match self {
            Zone::Utc | Zone::Offset(_) => local_ms - self.offset_ms(local_ms),
            Zone::Named(zone) => {
                let civil = jiff::tz::TimeZone::UTC.to_datetime(instant(local_ms));
                match zone.rules.to_ambiguous_timestamp(civil).compatible() {
                    Ok(utc) => utc.as_millisecond(),
                    Err(_) => local_ms - self.offset_ms(local_ms),
                }
            }
        }
    }
}

impl std::fmt::Display for Zone {
    /// `UTC`, `+08:00`, or the IANA name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Zone::Utc => write!(f, "UTC"),
            Zone::Offset(seconds) => {
                let sign = if *seconds < 0 { '-' } else { '+' };
                let seconds = seconds.unsigned_abs();
                write!(f, "{sign}{:02}:{:02}", seconds / 3600, seconds / 60 % 60)
            }
            Zone::Named(zone) => write!(f, "{}", zone.name),
        }
    }
}

/// Milliseconds in a day.
pub const MS_PER_DAY: i64 = 86_400_000;

/// The date `days` after 1970-01-01 as (year, month 1-12, day 1-31).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's algorithm: eras of 400 years, years starting in March.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a calendar date (not checked: see `is_valid_date`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Days in `month` of `year`.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Whether a calendar date exists.
pub fn is_valid_date(year: i64, month: u32, day: u32) -> bool {
    (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month)
}

/// `2024-03-01`.
pub fn format_date(days: i32) -> String {
    let (year, month, day) = civil_from_days(i64::from(days));
    format!("{year:04}-{month:02}-{day:02}")
}

/// `10:15:00` (milliseconds shown when there are some).
pub fn format_time(ms_of_day: i32) -> String {
    let ms = ms_of_day.rem_euclid(MS_PER_DAY as i32);
    let (hours, minutes, seconds, millis) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if millis == 0 {
        format!("{hours:02}:{minutes:02}:{seconds:02}")
    } else {
        format!("{hours:02}:{minutes:02}:{seconds:02}.{millis:03}")
    }
}

/// `2024-03-01 10:15:00.000`.
pub fn format_timestamp(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(MS_PER_DAY), ms.rem_euclid(MS_PER_DAY));
    let (year, month, day) = civil_from_days(days);
    let (hours, minutes, seconds, millis) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{year:04}-{month:02}-{day:02} {hours:02}:{minutes:02}:{seconds:02}.{millis:03}")
}

/// An interval as Flink prints a day-time one: `+0 00:00:05.000`.
pub fn format_interval(ms: i64) -> String {
    let sign = if ms < 0 { '-' } else { '+' };
    let ms = ms.unsigned_abs();
    let (days, hours, minutes, seconds, millis) = (ms / 86_400_000, ms / 3_600_000 % 24, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{sign}{days} {hours:02}:{minutes:02}:{seconds:02}.{millis:03}")
}

fn number(text: &str, digits: std::ops::RangeInclusive<usize>) -> Option<i64> {
    (digits.contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok()).flatten()
}

/// Parses `2024-03-01` into days since the epoch.
pub fn parse_date(text: &str) -> Option<i32> {
    let mut parts = text.trim().splitn(3, '-');
    let year = number(parts.next()?, 4..=4)?;
    let month = number(parts.next()?, 1..=2)? as u32;
    let day = number(parts.next()?, 1..=2)? as u32;
    is_valid_date(year, month, day).then(|| days_from_civil(year, month, day) as i32)
}

/// Parses `10:15`, `10:15:30` or `10:15:30.123` into milliseconds of the day.
pub fn parse_time(text: &str) -> Option<i32> {
    let (clock, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let mut parts = clock.splitn(3, ':');
    let hours = number(parts.next()?, 1..=2)?;
    let minutes = number(parts.next()?, 2..=2)?;
    let seconds = match parts.next() {
        Some(seconds) => number(seconds, 2..=2)?,
        None => 0,
    };
    let millis = match fraction {
        "" => 0,
        digits => {
            let digits = number(digits, 1..=9)?;
            let width = fraction.len() as u32;
            if width >= 3 {
                digits / 10i64.pow(width - 3)
            } else {
                digits * 10i64.pow(3 - width)
            }
        }
    };
    (hours < 24 && minutes < 60 && seconds < 60).then_some((((hours * 60 + minutes) * 60 + seconds) * 1000 + millis) as i32)
}

/// Parses `2024-03-01 10:15:00[.123]` (or with a `T`; a date alone is its midnight) into
/// milliseconds since the epoch.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, clock) = match text.split_once([' ', 'T']) {
        Some((date, clock)) => (date, Some(clock.trim_end_matches('Z'))),
        None => (text, None),
    };
    let days = i64::from(parse_date(date)?);
    let ms = match clock {
        Some(clock) => i64::from(parse_time(clock)?),
        None => 0,
    };
    Some(days * MS_PER_DAY + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips_over_four_centuries() {
        for days in (-146_097 * 2..146_097 * 2).step_by(7) {
            let (year, month, day) = civil_from_days(days);
            assert!(is_valid_date(year, month, day), "{days}");
            assert_eq!(days_from_civil(year, month, day), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn zones_are_offsets_or_iana_names_with_daylight_saving() {
        assert_eq!(Zone::parse("UTC"), Some(Zone::Utc));
        assert_eq!(Zone::parse("GMT+8"), Some(Zone::Offset(8 * 3600)));
        assert_eq!(Zone::parse("-05:30"), Some(Zone::Offset(-(5 * 3600 + 30 * 60))));
        assert_eq!(Zone::parse("Mars/Olympus"), None);
        let new_york = Zone::parse("america/new_york").expect("a bundled zone");
        assert_eq!(new_york.to_string(), "America/New_York");
        let winter = parse_timestamp("2024-01-15 12:00:00").unwrap();
        let summer = parse_timestamp("2024-07-15 12:00:00").unwrap();
        assert_eq!(new_york.offset_ms(winter), -5 * 3_600_000);
        assert_eq!(new_york.offset_ms(summer), -4 * 3_600_000);
        assert_eq!(new_york.utc_of_local(summer), summer + 4 * 3_600_000);
        // 02:30 on 2024-03-10 does not exist in New York: it is 03:30 EDT. 01:30 on 2024-11-03
        // happens twice: the first (EDT) is taken.
        assert_eq!(format_timestamp(new_york.utc_of_local(parse_timestamp("2024-03-10 02:30:00").unwrap())), "2024-03-10 07:30:00.000");
        assert_eq!(format_timestamp(new_york.utc_of_local(parse_timestamp("2024-11-03 01:30:00").unwrap())), "2024-11-03 05:30:00.000");
        assert_eq!(Zone::parse("Asia/Kolkata").unwrap().offset_ms(0), 19_800_000);
        assert_eq!(Zone::Offset(-19_800).to_string(), "-05:30");
        assert_eq!(Zone::default(), Zone::Utc);
        assert_eq!(Zone::Utc.utc_of_local(1000), 1000);
        // Far outside jiff's range, the zone's rules at its ends apply.
        let _ = new_york.offset_ms(i64::MAX);
        let _ = new_york.utc_of_local(i64::MIN);
    }

    #[test]
    fn timestamps_parse_and_print_as_flink() {
        let ms = parse_timestamp("2024-03-01 10:15:00.5").unwrap();
        assert_eq!(format_timestamp(ms), "2024-03-01 10:15:00.500");
        assert_eq!(parse_timestamp("2024-03-01T10:15:00Z"), parse_timestamp("2024-03-01 10:15:00"));
        assert_eq!(format_timestamp(-1), "1969-12-31 23:59:59.999");
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_time("24:00"), None);
        assert_eq!(format_time(parse_time("07:05:03").unwrap()), "07:05:03");
        assert_eq!(format_interval(5_000), "+0 00:00:05.000");
    }
}
