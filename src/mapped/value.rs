//! Column kinds and the checks a value must pass before anything is
//! written: under write-behind the database sees a value only after it was
//! acknowledged, so everything a type alone can refuse is refused here.
//! The accepted spellings are a subset of what PostgreSQL's input functions
//! take (ISO 8601 for dates and times), never a superset.

/// What spillway knows of a column's type, from `pg_type.typname`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int {
        min: i64,
        max: i64,
    },
    Numeric,
    Float,
    Bool,
    Text,
    Uuid,
    Date,
    Time,
    Timestamp,
    Json,
    /// Any other type: passed as text, judged by the database.
    Other,
}

impl Kind {
    pub fn from_typname(typname: &str) -> Kind {
        match typname {
            "int2" => Kind::Int {
                min: i16::MIN.into(),
                max: i16::MAX.into(),
            },
            "int4" => Kind::Int {
                min: i32::MIN.into(),
                max: i32::MAX.into(),
            },
            "int8" => Kind::Int {
                min: i64::MIN,
                max: i64::MAX,
            },
            "numeric" => Kind::Numeric,
            "float4" | "float8" => Kind::Float,
            "bool" => Kind::Bool,
            "text" | "varchar" | "bpchar" | "name" | "citext" => Kind::Text,
            "uuid" => Kind::Uuid,
            "date" => Kind::Date,
            "time" | "timetz" => Kind::Time,
            "timestamp" | "timestamptz" => Kind::Timestamp,
            "json" | "jsonb" => Kind::Json,
            _ => Kind::Other,
        }
    }

    /// Why `v` is not a value of this kind, if it is not.
    pub fn check(self, v: &[u8]) -> Result<(), &'static str> {
        let s = std::str::from_utf8(v).map_err(|_| "not valid UTF-8")?;
        if s.contains('\0') {
            return Err("contains a NUL byte");
        }
        let ok = match self {
            Kind::Int { min, max } => {
                let n: i64 = s.parse().map_err(|_| "not an integer")?;
                if n < min || n > max {
                    return Err("integer out of range for the column");
                }
                true
            }
            Kind::Numeric => is_decimal(s) || is_special_number(s),
            Kind::Float => is_decimal(s) || is_special_number(s),
            Kind::Bool => bool_value(s).is_some(),
            Kind::Text | Kind::Other => true,
            Kind::Uuid => is_uuid(s),
            Kind::Date => is_date(s) || is_infinity(s),
            Kind::Time => is_time(s, true),
            Kind::Timestamp => is_timestamp(s) || is_infinity(s),
            Kind::Json => serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(match self {
                Kind::Numeric | Kind::Float => "not a number",
                Kind::Bool => "not a boolean (true/false, t/f, yes/no, on/off, 1/0)",
                Kind::Uuid => "not a UUID",
                Kind::Date => "not a date (YYYY-MM-DD)",
                Kind::Time => "not a time (HH:MM[:SS[.fff]][zone])",
                Kind::Timestamp => "not a timestamp (YYYY-MM-DD[ T]HH:MM[:SS[.fff]][zone])",
                Kind::Json => "not valid JSON",
                _ => "not valid",
            })
        }
    }

    /// Why `id` cannot address a row: it must be a value of the key
    /// column's type in the one spelling PostgreSQL prints back, so a row
    /// has exactly one key (and one cache entry).
    pub fn check_key(self, id: &[u8]) -> Result<(), &'static str> {
        self.check(id)?;
        let canonical = match self {
            Kind::Int { .. } => {
                let s = std::str::from_utf8(id).unwrap_or("");
                s.parse::<i64>().map(|n| n.to_string()).ok().as_deref() == Some(s)
            }
            Kind::Uuid => {
                id.len() == 36 && !id.iter().any(|b| b.is_ascii_uppercase()) && id[8] == b'-'
            }
            Kind::Text => true,
            _ => return Err("keys must be integer, text or uuid"),
        };
        if canonical {
            Ok(())
        } else {
            Err("not in canonical form (as PostgreSQL prints it)")
        }
    }

    /// Key columns of these kinds have one text spelling per value.
    pub fn keyable(self) -> bool {
        matches!(self, Kind::Int { .. } | Kind::Text | Kind::Uuid)
    }

    /// Numbers and booleans render as JSON scalars, json columns as
    /// themselves, everything else as a JSON string.
    pub fn is_json_number(self) -> bool {
        matches!(self, Kind::Int { .. } | Kind::Numeric | Kind::Float)
    }
}

/// PostgreSQL's boolean spellings (case-insensitive, surrounding spaces not
/// accepted).
pub fn bool_value(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// `[+-]digits[.digits][e[+-]digits]`, digits on at least one side of the point.
fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exp_ok
}

fn is_special_number(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "nan" | "infinity" | "+infinity" | "-infinity" | "inf" | "+inf" | "-inf"
    )
}

fn is_infinity(s: &str) -> bool {
    matches!(s.to_ascii_lowercase().as_str(), "infinity" | "-infinity")
}

fn is_uuid(s: &str) -> bool {
    let s = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(s);
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    match s.split('-').collect::<Vec<_>>().as_slice() {
        [a] => hex(a, 32),
        [a, b, c, d, e] => hex(a, 8) && hex(b, 4) && hex(c, 4) && hex(d, 4) && hex(e, 12),
        _ => false,
    }
}

fn number(s: &str, len: usize) -> Option<u32> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return false;
    };
    let (Some(y), Some(m), Some(d)) = (number(y, 4), number(m, 2), number(d, 2)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// `HH:MM[:SS[.fraction]]`, then (if `zone`) an optional `Z` or `±HH[:MM]`.
fn is_time(s: &str, zone: bool) -> bool {
    let (clock, tz) = match s.find(['Z', 'z', '+', '-']) {
        Some(i) if zone => (&s[..i], Some(&s[i..])),
        Some(_) => return false,
        None => (s, None),
    };
    let tz_ok = tz.is_none_or(|tz| {
        if tz.eq_ignore_ascii_case("z") {
            return true;
        }
        let off = &tz[1..];
        let (h, m) = off.split_once(':').unwrap_or((off, "00"));
        matches!((number(h, 2), number(m, 2)), (Some(h), Some(m)) if h <= 15 && m < 60)
    });
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
    let frac_ok = !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = hms.split(':').collect();
    let hms_ok = match parts.as_slice() {
        [h, m] => matches!((number(h, 2), number(m, 2)), (Some(h), Some(m)) if h < 24 && m < 60),
        [h, m, sec] => matches!(
            (number(h, 2), number(m, 2), number(sec, 2)),
            (Some(h), Some(m), Some(sec)) if h < 24 && m < 60 && sec < 61
        ),
        _ => false,
    };
    tz_ok && frac_ok && hms_ok
}

fn is_timestamp(s: &str) -> bool {
    match s.split_once(['T', 't', ' ']) {
        Some((date, time)) => is_date(date) && is_time(time, true),
        None => is_date(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(kind: Kind, v: &str) -> bool {
        kind.check(v.as_bytes()).is_ok()
    }

    #[test]
    fn integers_respect_the_column_range() {
        let int2 = Kind::from_typname("int2");
        assert!(ok(int2, "32767") && ok(int2, "-32768"));
        assert!(!ok(int2, "32768") && !ok(int2, "1.5") && !ok(int2, "") && !ok(int2, " 1"));
        assert!(ok(Kind::from_typname("int8"), "-9223372036854775808"));
    }

    #[test]
    fn numbers_booleans_uuids() {
        for v in ["1", "-1.5", ".5", "5.", "1e10", "+2E-3", "NaN", "-Infinity"] {
            assert!(ok(Kind::Numeric, v), "{v}");
        }
        for v in ["", ".", "1e", "abc", "1.2.3", "--1"] {
            assert!(!ok(Kind::Float, v), "{v}");
        }
        assert!(ok(Kind::Bool, "TRUE") && ok(Kind::Bool, "off") && !ok(Kind::Bool, "maybe"));
        assert!(ok(Kind::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
        assert!(ok(Kind::Uuid, "A0EEBC999C0B4EF8BB6D6BB9BD380A11"));
        assert!(!ok(Kind::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"));
    }

    #[test]
    fn dates_and_times_in_iso_8601() {
        assert!(ok(Kind::Date, "2024-02-29") && !ok(Kind::Date, "2023-02-29"));
        assert!(!ok(Kind::Date, "2024-13-01") && !ok(Kind::Date, "24-01-01"));
        for v in [
            "2024-05-01 12:30:00",
            "2024-05-01T12:30:00.123456Z",
            "2024-05-01T12:30+02:00",
            "2024-05-01",
            "infinity",
        ] {
            assert!(ok(Kind::Timestamp, v), "{v}");
        }
        for v in [
            "2024-05-01 25:00",
            "2024-05-01T12",
            "yesterday",
            "2024-05-01 12:30:00+2x",
        ] {
            assert!(!ok(Kind::Timestamp, v), "{v}");
        }
        assert!(ok(Kind::Time, "23:59:59.5") && !ok(Kind::Time, "24:00:01"));
    }

    #[test]
    fn json_text_and_bytes() {
        assert!(ok(Kind::Json, r#"{"a":[1,2]}"#) && !ok(Kind::Json, "{a}"));
        assert!(ok(Kind::Text, "héllo"));
        assert!(Kind::Text.check(b"\xff").is_err());
        assert!(Kind::Text.check(b"a\0b").is_err());
    }

    #[test]
    fn keys_must_be_canonical() {
        let int4 = Kind::from_typname("int4");
        assert!(int4.check_key(b"42").is_ok());
        assert!(int4.check_key(b"042").is_err() && int4.check_key(b"+42").is_err());
        assert!(int4.check_key(b"x").is_err());
        assert!(
            Kind::Uuid
                .check_key(b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
                .is_ok()
        );
        assert!(
            Kind::Uuid
                .check_key(b"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11")
                .is_err()
        );
        assert!(Kind::Json.check_key(b"{}").is_err());
    }
}
