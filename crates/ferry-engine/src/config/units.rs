//! Value types of the config file: byte sizes (`"64MiB"`), durations
//! (`"500ms"`) and RFC 3339 timestamps, each parsed from text with an error
//! message an operator can act on.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// A number of bytes, written in the config as an integer (bytes) or a
/// string with a unit: `B`, `KB`/`kB`, `MB`, `GB`, `TB` (powers of 1000),
/// `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024), e.g. `"64MiB"`, `"1MB"`,
/// `"512KiB"`, `1048576`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const KIB: u64 = 1024;
    pub const MIB: u64 = 1024 * 1024;
    pub const GIB: u64 = 1024 * 1024 * 1024;

    /// `n` KiB.
    pub const fn kib(n: u64) -> Self {
        Self(n * Self::KIB)
    }

    /// `n` MiB.
    pub const fn mib(n: u64) -> Self {
        Self(n * Self::MIB)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// The size as a `usize`, saturating on targets where it does not fit
    /// (validated sizes always fit in 32 bits).
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// Units by suffix, longest suffixes first so `MiB` is not read as `B`.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("kB", 1_000),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("B", 1),
];

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let s = text.trim();
        let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(digits_end);
        let unit = unit.trim_start();
        let invalid = || {
            format!(
                "invalid size {text:?}: expected a whole number of bytes with an optional unit \
                 (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. \"64MiB\""
            )
        };
        if number.is_empty() {
            return Err(invalid());
        }
        let multiplier = if unit.is_empty() {
            1
        } else {
            SIZE_UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, m)| *m)
                .ok_or_else(invalid)?
        };
        let n: u64 = number.parse().map_err(|_| invalid())?;
        n.checked_mul(multiplier)
            .map(Self)
            .ok_or_else(|| format!("size {text:?} is too large"))
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that represents the size exactly, binary units first
    /// (ferry's defaults are binary), e.g. `64MiB`, `1MB`, `1000B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        let exact = |units: &[(&'static str, u64)]| {
            units
                .iter()
                .rev()
                .find(|(_, m)| n >= *m && n % m == 0)
                .map(|(name, m)| (n / m, *name))
        };
        let binary = [
            ("KiB", 1u64 << 10),
            ("MiB", 1 << 20),
            ("GiB", 1 << 30),
            ("TiB", 1 << 40),
        ];
        let decimal = [
            ("KB", 1_000u64),
            ("MB", 1_000_000),
            ("GB", 1_000_000_000),
            ("TB", 1_000_000_000_000),
        ];
        match exact(&binary).or_else(|| exact(&decimal)) {
            Some((v, unit)) => write!(f, "{v}{unit}"),
            None => write!(f, "{n}B"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"64MiB\" or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("a size cannot be negative, got {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Duration units by suffix; `ms` before `m` and `s` so it is matched whole.
const DURATION_UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Parses a duration: one or more `<whole number><unit>` parts with units
/// `ms`, `s`, `m`, `h`, `d`, e.g. `"500ms"`, `"30s"`, `"5m"`, `"1h30m"`.
/// A bare number is refused: `30` could mean seconds or milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration {text:?}: expected a whole number with a unit \
             (ms, s, m, h, d), e.g. \"500ms\", \"30s\", \"5m\", \"1h30m\""
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        if digits_end == 0 {
            return Err(invalid());
        }
        let (number, tail) = rest.split_at(digits_end);
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let factor = DURATION_UNITS
            .iter()
            .find(|(name, _)| *name == unit.trim())
            .map(|(_, f)| *f)
            .ok_or_else(invalid)?;
        let n: u64 = number.parse().map_err(|_| invalid())?;
        total_ms = n
            .checked_mul(factor)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| format!("duration {text:?} is too long"))?;
        rest = tail.trim_start();
    }
    Ok(Duration::from_millis(total_ms))
}

/// A duration as the config writes it: the largest unit that is exact
/// (`30s`, `5m`, `500ms`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    for (unit, factor) in DURATION_UNITS.iter().rev() {
        let factor = u128::from(*factor);
        if ms % factor == 0 {
            return format!("{}{unit}", ms / factor);
        }
    }
    format!("{ms}ms")
}

/// `deserialize_with` for duration fields: strings only, see [`parse_duration`].
pub(crate) fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"30s\" or \"500ms\"")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse_duration(v).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "a duration needs a unit: write \"{v}s\" or \"{v}ms\", not {v}"
            )))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "a duration needs a unit: write \"{v}s\" or \"{v}ms\", not {v}"
            )))
        }
    }
    d.deserialize_any(V)
}

/// A point in time, in milliseconds since the Unix epoch (the unit of Kafka
/// record timestamps and of ListOffsets). Written in the config as RFC 3339
/// with an explicit offset, e.g. `2026-11-20T10:00:00Z` or
/// `2026-11-20T11:00:00+01:00`; displayed in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    unix_millis: i64,
}

impl Timestamp {
    /// A timestamp from milliseconds since the Unix epoch (must not be negative).
    pub fn from_unix_millis(unix_millis: i64) -> Result<Self, String> {
        if unix_millis < 0 {
            return Err(format!(
                "timestamps before 1970-01-01T00:00:00Z are not Kafka timestamps (got {unix_millis} ms)"
            ));
        }
        Ok(Self { unix_millis })
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        self.unix_millis
    }

    /// From a parsed TOML datetime: date, time and offset are all required.
    pub(crate) fn from_toml(dt: &toml::value::Datetime, text: &str) -> Result<Self, String> {
        let need = "an RFC 3339 date and time with an offset, e.g. \"2026-11-20T10:00:00Z\"";
        let (Some(date), Some(time), Some(offset)) = (dt.date, dt.time, dt.offset) else {
            return Err(format!("invalid timestamp {text:?}: expected {need}"));
        };
        let days = days_from_civil(
            i64::from(date.year),
            i64::from(date.month),
            i64::from(date.day),
        );
        let offset_minutes = match offset {
            toml::value::Offset::Z => 0,
            toml::value::Offset::Custom { minutes } => i64::from(minutes),
        };
        let seconds = days * 86_400
            + i64::from(time.hour) * 3_600
            + i64::from(time.minute) * 60
            + i64::from(time.second.unwrap_or(0))
            - offset_minutes * 60;
        let millis = seconds * 1_000 + i64::from(time.nanosecond.unwrap_or(0) / 1_000_000);
        Self::from_unix_millis(millis).map_err(|e| format!("invalid timestamp {text:?}: {e}"))
    }
}

impl FromStr for Timestamp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let dt: toml::value::Datetime = s.trim().parse().map_err(|_| {
            format!(
                "invalid timestamp {s:?}: expected an RFC 3339 date and time with an offset, \
                 e.g. \"2026-11-20T10:00:00Z\""
            )
        })?;
        Self::from_toml(&dt, s)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, with milliseconds only when there are any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.unix_millis.div_euclid(1_000);
        let ms = self.unix_millis.rem_euclid(1_000);
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let tod = secs.rem_euclid(86_400);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            tod / 3_600,
            tod / 60 % 60,
            tod % 60
        )?;
        if ms != 0 {
            write!(f, ".{ms:03}")?;
        }
        f.write_str("Z")
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1-12). Counts
/// in 400-year eras starting on March 1st, so February's leap day is the
/// last day of its "year" and needs no special case.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month 1-12, day 1-31).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("64MiB".parse::<ByteSize>().unwrap(), ByteSize(64 << 20));
        assert_eq!("1MB".parse::<ByteSize>().unwrap(), ByteSize(1_000_000));
        assert_eq!("512KiB".parse::<ByteSize>().unwrap(), ByteSize(512 << 10));
        assert_eq!("512 KiB".parse::<ByteSize>().unwrap(), ByteSize(512 << 10));
        assert_eq!("1kB".parse::<ByteSize>().unwrap(), ByteSize(1_000));
        assert_eq!("100B".parse::<ByteSize>().unwrap(), ByteSize(100));
        assert_eq!("4096".parse::<ByteSize>().unwrap(), ByteSize(4096));
        for bad in ["", "MiB", "1.5MiB", "64mib", "64 MiBs", "-1", "1 2MiB"] {
            let err = bad.parse::<ByteSize>().unwrap_err();
            assert!(err.contains("invalid size"), "{bad:?}: {err}");
        }
        assert!(
            "99999999999TiB"
                .parse::<ByteSize>()
                .unwrap_err()
                .contains("too large")
        );
        assert_eq!(ByteSize(64 << 20).to_string(), "64MiB");
        assert_eq!(ByteSize(1_000_000).to_string(), "1MB");
        assert_eq!(ByteSize(1_000).to_string(), "1KB");
        assert_eq!(ByteSize(1536).to_string(), "1536B");
        assert_eq!(ByteSize(1 << 30).to_string(), "1GiB");
        assert_eq!(ByteSize(999).to_string(), "999B");
        assert_eq!(ByteSize(0).to_string(), "0B");
    }

    #[test]
    fn durations() {
        let ms = |text: &str| parse_duration(text).map(|d| d.as_millis());
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("30s"), Ok(30_000));
        assert_eq!(ms("5m"), Ok(300_000));
        assert_eq!(ms("1h"), Ok(3_600_000));
        assert_eq!(ms("1d"), Ok(86_400_000));
        assert_eq!(ms("1h30m"), Ok(5_400_000));
        assert_eq!(ms("1m 30s"), Ok(90_000));
        assert_eq!(ms("0s"), Ok(0));
        for bad in ["", "30", "s", "5x", "1.5s", "-1s", "5 minutes", "m5"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("invalid duration"), "{bad:?}: {err}");
        }
        assert!(
            parse_duration("99999999999999999d")
                .unwrap_err()
                .contains("too long")
        );
        let f = |ms| format_duration(Duration::from_millis(ms));
        assert_eq!(f(500), "500ms");
        assert_eq!(f(30_000), "30s");
        assert_eq!(f(300_000), "5m");
        assert_eq!(f(5_400_000), "90m");
        assert_eq!(f(3_600_000), "1h");
        assert_eq!(f(0), "0s");
        assert_eq!(f(1_500), "1500ms");
    }

    #[test]
    fn timestamps() {
        let t: Timestamp = "2026-11-20T10:00:00Z".parse().unwrap();
        assert_eq!(t.unix_millis(), 1_795_168_800_000);
        assert_eq!(t.to_string(), "2026-11-20T10:00:00Z");
        let offset: Timestamp = "2026-11-20T11:00:00+01:00".parse().unwrap();
        assert_eq!(offset, t);
        let fraction: Timestamp = "1970-01-01T00:00:01.250Z".parse().unwrap();
        assert_eq!(fraction.unix_millis(), 1_250);
        assert_eq!(fraction.to_string(), "1970-01-01T00:00:01.250Z");
        let leap: Timestamp = "2024-02-29T23:59:59Z".parse().unwrap();
        assert_eq!(leap.to_string(), "2024-02-29T23:59:59Z");
        assert_eq!(
            "2000-03-01T00:00:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .unix_millis(),
            951_868_800_000
        );
        for bad in [
            "2026-11-20",
            "2026-11-20T10:00:00",
            "10:00:00Z",
            "yesterday",
            "2026-13-01T00:00:00Z",
        ] {
            assert!(
                bad.parse::<Timestamp>()
                    .unwrap_err()
                    .contains("invalid timestamp"),
                "{bad}"
            );
        }
        assert!(
            "1969-12-31T23:59:59Z"
                .parse::<Timestamp>()
                .unwrap_err()
                .contains("before 1970")
        );
    }

    #[test]
    fn civil_round_trip() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
