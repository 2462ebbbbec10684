//! Times are stored as UTC `DATETIME(6)` and served as RFC 3339; calendar days are read as
//! `YYYY-MM-DD` by the one date parser of the API.

use chrono::{NaiveDate, NaiveDateTime};
use serde::Serializer;

use crate::error::ApiError;

/// The days the database's `DATE` holds (MariaDB: 1000-01-01 to 9999-12-31).
const FIRST_YEAR: i32 = 1000;
const LAST_YEAR: i32 = 9999;

/// A calendar day written `YYYY-MM-DD`: exactly four digits of year, two of month and day.
/// chrono alone also reads signed and six-digit years (`-0001-01-01`, `+262142-12-31`), which
/// the database driver cannot encode: such a date once made `GET /rentals/search` answer 500.
pub fn parse_date(field: &'static str, raw: &str) -> Result<NaiveDate, ApiError> {
    let text = raw.trim();
    let bad = || ApiError::invalid(field, format!("`{raw}` is not a date: use YYYY-MM-DD, e.g. 2026-12-24"));
    let shape = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    if !shape {
        return Err(bad());
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| bad())?;
    if !(FIRST_YEAR..=LAST_YEAR).contains(&chrono::Datelike::year(&date)) {
        return Err(ApiError::invalid(field, format!("{date} is out of range: years {FIRST_YEAR} to {LAST_YEAR}")));
    }
    Ok(date)
}

pub fn serialize_utc<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_four_digit_years_in_the_database_range_are_dates() {
        assert_eq!(parse_date("d", " 2026-12-24 ").unwrap(), NaiveDate::from_ymd_opt(2026, 12, 24).unwrap());
        for bad in
            ["-0001-01-01", "+262142-12-31", "262142-12-31", "2026-1-01", "2026/12/24", "2026-02-30", "", "0999-12-31"]
        {
            let err = parse_date("available_from", bad).unwrap_err();
            assert!(matches!(err, ApiError::Invalid { field: "available_from", .. }), "{bad}: {err}");
        }
        assert!(parse_date("d", "0999-12-31").unwrap_err().to_string().contains("out of range"));
    }
}
