//! Value checks the store leaves to its callers: names, permissions, durations, dates and
//! key material. Anything refused here is a 422 and changes nothing.

use time::Date;

use super::error::ApiError;
use crate::duration::Duration;
use crate::model::{ApiKey, NAME_HELP, valid_name, valid_permission};
use crate::operation::Operation;

/// A name of an organization, role, team, account or key.
pub fn name(kind: &str, n: &str) -> Result<(), ApiError> {
    if valid_name(n) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "invalid {kind} name `{}`: {NAME_HELP}",
            shorten(n)
        )))
    }
}

/// Permissions of a role, or scopes of a key.
pub fn permissions<'a>(
    kind: &str,
    items: impl IntoIterator<Item = &'a String>,
) -> Result<(), ApiError> {
    for p in items {
        if !valid_permission(p) {
            return Err(ApiError::invalid(format!(
                "invalid {kind} `{}`: expected resource:action such as flows:read or *:read",
                shorten(p)
            )));
        }
    }
    Ok(())
}

/// Memberships, team → role: both names of each.
pub fn memberships(teams: &crate::model::Memberships) -> Result<(), ApiError> {
    for (team, role) in teams {
        name("team", team)?;
        name("role", role)?;
    }
    Ok(())
}

/// The names in a key's address: its account's and its own.
pub fn key_names(account: &str, key: &str) -> Result<(), ApiError> {
    name("service account", account)?;
    name("key", key)
}

/// An optional duration such as `24h`.
pub fn duration(field: &str, value: Option<&str>) -> Result<Option<Duration>, ApiError> {
    value
        .map(|v| {
            v.parse::<Duration>()
                .map_err(|e| ApiError::invalid(format!("{field}: {e}")))
        })
        .transpose()
}

/// An optional last day, `YYYY-MM-DD`.
pub fn date(field: &str, value: Option<&str>) -> Result<Option<Date>, ApiError> {
    value
        .map(|v| {
            Date::parse(v, time::macros::format_description!("[year]-[month]-[day]")).map_err(
                |_| {
                    ApiError::invalid(format!(
                        "{field}: `{}` is not a date YYYY-MM-DD",
                        shorten(v)
                    ))
                },
            )
        })
        .transpose()
}

/// A hash a client registers: hex SHA-256.
pub fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A display prefix: the key prefix and a few characters of the secret.
pub fn is_display_prefix(s: &str) -> bool {
    s.strip_prefix(crate::secrets::SECRET_PREFIX)
        .is_some_and(|rest| {
            (1..=16).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// A key id.
pub fn is_key_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Key material a client registers by hash.
pub fn key_material(hash: &str, display_prefix: &str, id: &str) -> Result<(), ApiError> {
    if !is_hash(hash) {
        return Err(ApiError::invalid(
            "hash must be the hex SHA-256 of the secret (64 lowercase hex digits)",
        ));
    }
    if !is_display_prefix(display_prefix) {
        return Err(ApiError::invalid(
            "display_prefix must be `svca_` and up to 16 letters or digits of the secret",
        ));
    }
    if !is_key_id(id) {
        return Err(ApiError::invalid(
            "id must be 1 to 64 letters, digits, `_` or `-`",
        ));
    }
    Ok(())
}

fn key_settings(key: &ApiKey) -> Result<(), ApiError> {
    permissions("scope", &key.scopes)
}

/// Checks every value of one batch operation.
pub fn operation(op: &Operation) -> Result<(), ApiError> {
    match op {
        Operation::PutRole { name: n, role } => {
            name("role", n)?;
            permissions("permission", &role.permissions)?;
            if role.builtin {
                return Err(ApiError::invalid(
                    "roles written through the API cannot be built-in",
                ));
            }
        }
        Operation::PutTeam { name: n, .. } | Operation::DeleteTeam { name: n } => name("team", n)?,
        Operation::DeleteRole { name: n } => name("role", n)?,
        // The account's memberships and keys ride along (the store ignores them; they are
        // written by set_memberships and register_key).
        Operation::PutServiceAccount { name: n, .. } => name("service account", n)?,
        Operation::DeleteServiceAccount { name: n } => name("service account", n)?,
        Operation::SetMemberships { account, teams } => {
            name("service account", account)?;
            memberships(teams)?;
        }
        Operation::IssueKey { .. } => {
            return Err(ApiError::invalid(
                "this server registers keys by hash: send register_key with a key the client minted",
            ));
        }
        Operation::RegisterKey {
            account,
            name: n,
            key,
        } => {
            key_names(account, n)?;
            key_material(&key.hash, &key.display_prefix, &key.id)?;
            key_settings(&key.settings)?;
            if let Some(r) = &key.replaces
                && !is_key_id(&r.id)
            {
                return Err(ApiError::invalid("replaces.id is not a key id"));
            }
        }
        Operation::UpdateKey {
            account,
            name: n,
            key,
        } => {
            key_names(account, n)?;
            key_settings(key)?;
        }
        Operation::RevokeKey {
            account,
            name: n,
            id,
        } => {
            key_names(account, n)?;
            if !is_key_id(id) {
                return Err(ApiError::invalid("id is not a key id"));
            }
        }
    }
    Ok(())
}

/// Keeps echoed input short in messages.
fn shorten(s: &str) -> std::borrow::Cow<'_, str> {
    crate::escape::shorten(s, 80)
}
