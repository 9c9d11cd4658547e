//! Human durations ("5 seconds", "About an hour") computed exactly as Docker's
//! `go-units.HumanDuration`, so that `cnet ps` reads like `docker ps`.

use std::time::Duration;

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// Parses the gateway's RFC 3339 timestamps; empty or malformed ones are "unknown".
pub fn parse(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// Time elapsed from `then` to `now`; clock skew never makes it negative.
pub fn elapsed(then: OffsetDateTime, now: OffsetDateTime) -> Duration {
    Duration::try_from(now - then).unwrap_or(Duration::ZERO)
}

/// "5 seconds ago", or an empty string when `timestamp` is unknown.
pub fn ago(timestamp: &str, now: OffsetDateTime) -> String {
    match parse(timestamp) {
        Some(then) => format!("{} ago", human_duration(elapsed(then, now))),
        None => String::new(),
    }
}

pub fn human_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let minutes = seconds / 60;
    // Docker rounds hours to the nearest one, but minutes and seconds down.
    let hours = (duration.as_secs_f64() / 3600.0 + 0.5) as u64;
    match () {
        _ if seconds < 1 => "Less than a second".into(),
        _ if seconds == 1 => "1 second".into(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn check(seconds: u64, expect: &str) {
        assert_eq!(human_duration(Duration::from_secs(seconds)), expect, "{seconds}s");
    }

    #[test]
    fn durations_match_docker() {
        check(0, "Less than a second");
        check(1, "1 second");
        check(5, "5 seconds");
        check(59, "59 seconds");
        check(60, "About a minute");
        check(119, "About a minute");
        check(120, "2 minutes");
        check(59 * 60, "59 minutes");
        check(60 * 60, "About an hour");
        check(90 * 60, "2 hours");
        check(47 * 3600, "47 hours");
        check(48 * 3600, "2 days");
        check(13 * 86400, "13 days");
        check(14 * 86400, "2 weeks");
        check(60 * 86400, "2 months");
        check(730 * 86400, "2 years");
        assert_eq!(human_duration(Duration::from_millis(999)), "Less than a second");
    }

    #[test]
    fn ago_parses_rfc3339() {
        let now = datetime!(2024-05-01 12:00:05 UTC);
        assert_eq!(ago("2024-05-01T12:00:00Z", now), "5 seconds ago");
        assert_eq!(ago("2024-05-01T14:00:00+02:00", now), "5 seconds ago");
        assert_eq!(ago("2024-05-01T12:00:00.123456789Z", now), "4 seconds ago");
        assert_eq!(ago("", now), "");
        assert_eq!(ago("yesterday", now), "");
        // A clock that runs behind the gateway's must not panic or say "-3 seconds".
        assert_eq!(ago("2024-05-01T12:00:08Z", now), "Less than a second ago");
    }
}
