//! Who runs svcacct on this machine, as audit logs and lock owners name a local user.

/// The login name from `$USER`, or `unknown`.
pub fn local_user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "unknown".into())
}
