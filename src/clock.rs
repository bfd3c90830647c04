//! Time at the edges: reading the wall clock (the adapters do; the engine is given
//! `now`) and the one text form operators see instants in.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The current time, Unix seconds.
pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Unix seconds as RFC 3339 (UTC). Values RFC 3339 cannot express (year > 9999) fall
/// back to the number itself rather than failing: they come from certificates, which
/// can say anything.
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// Parses an instant given by an operator: RFC 3339 or Unix seconds (the forms
/// `expires_at` accepts too).
pub fn parse(text: &str) -> Result<i64, String> {
    crate::config::schema::Timestamp::parse(text).map(|t| t.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse("1970-01-01T00:00:10Z"), Ok(10));
        assert_eq!(parse("42"), Ok(42));
        assert!(parse("yesterday").is_err());
        assert_eq!(rfc3339(i64::MAX), i64::MAX.to_string());
    }
}
