//! Times are stored as UTC `DATETIME(6)` and served as RFC 3339.

use chrono::NaiveDateTime;
use serde::Serializer;

pub fn serialize_utc<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}
