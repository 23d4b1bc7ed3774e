//! The current time. `SVCACCT_NOW` (RFC 3339) overrides it, so that tests and rehearsals can
//! watch rotations and expiries happen without waiting for them.

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
