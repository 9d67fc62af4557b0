//! Times as Graph writes them and as we serve them (UTC, `Z`).

use chrono::{DateTime, Utc};

/// Parses Graph's `2026-11-28T14:02:11+0000` (no colon in the offset), and RFC 3339 too.
pub fn parse_graph_time(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .map(|t| t.with_timezone(&Utc))
}

/// `2026-11-28T14:02:11Z`
pub fn format_seconds(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `2026-11-28T14:02:12.345Z`
pub fn format_millis(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `2026-11-28T14:02:12.345Z` of unix milliseconds.
pub fn format_unix_ms(ms: i64) -> String {
    use chrono::TimeZone;
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(format_millis)
        .unwrap_or_default()
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_times_without_a_colon_in_the_offset_parse() {
        let t = parse_graph_time("2026-02-28T08:49:14+0000").unwrap();
        assert_eq!(format_seconds(t), "2026-02-28T08:49:14Z");
        let t = parse_graph_time("2026-02-28T10:49:14+0200").unwrap();
        assert_eq!(format_seconds(t), "2026-02-28T08:49:14Z");
    }
}
