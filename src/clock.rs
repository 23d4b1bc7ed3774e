//! The current time. `SVCACCT_NOW` (RFC 3339) overrides it, so that tests and rehearsals can
//! watch rotations and expiries happen without waiting for them. Times are written as RFC 3339
//! everywhere a person or a program reads them.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, or the time `SVCACCT_NOW` names.
pub fn now() -> OffsetDateTime {
    std::env::var("SVCACCT_NOW")
        .ok()
        .and_then(|s| OffsetDateTime::parse(&s, &Rfc3339).ok())
        .unwrap_or_else(OffsetDateTime::now_utc)
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond")
}

/// `t` as RFC 3339, such as `2026-01-01T00:00:00Z`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    // Only a year past 9999 does not format; show it rather than nothing.
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}
