//! The writes of [`Store::apply`]: one function per operation, each checking what it needs
//! (the object exists, is not protected, is not in use) inside the apply's savepoint, and
//! the audit entry each one leaves.

use time::OffsetDateTime;

use super::StoreError;
use super::columns::{date_text, dur, json_set, ts};
use super::sql::Conn;
use crate::model::{ApiKey, BUILTIN_ROLES, Role, ServiceAccount, Team};
use crate::operation::{NewKey, Operation, Replaces};

pub(super) fn audit(
    tx: &Conn,
    org: &str,
    now: OffsetDateTime,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), StoreError> {
    tx.exec("INSERT INTO audit_log (org, time, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &[&org, &ts(now), &actor, &action, &target, &detail])?;
    Ok(())
}

fn protected(
    tx: &Conn,
    table: &str,
    org: &str,
    name: &str,
    target: String,
) -> Result<(), StoreError> {
    let protect: Option<bool> = tx.query_opt(
        &format!("SELECT protect FROM {table} WHERE org = ?1 AND name = ?2"),
        &[&org, &name],
        |r| r.get(0),
    )?;
    match protect {
        None => Err(StoreError::NotFound { target }),
        Some(true) => Err(StoreError::Protected { target }),
        Some(false) => Ok(()),
    }
}

/// Applies one operation; returns the audit detail (never key material).
pub(super) fn apply_one(
    tx: &Conn,
    org: &str,
    op: &Operation,
    now: OffsetDateTime,
) -> Result<String, StoreError> {
    let target = op.target().to_string();
    match op {
        // svcacct's store keeps hashes of keys the client minted; it mints none itself.
        Operation::IssueKey { .. } => Err(StoreError::Conflict {
            target,
            message: "this store registers keys by hash; the client mints them".into(),
        }),
        Operation::PutRole { name, role } => put_role(tx, org, name, role, target),
        Operation::PutTeam { name, team } => put_team(tx, org, name, team),
        Operation::PutServiceAccount { name, account } => {
            put_service_account(tx, org, name, account)
        }
        Operation::SetMemberships { account, teams } => {
            set_memberships(tx, org, account, teams, &target)
        }
        Operation::RegisterKey { account, name, key } => {
            exists(
                tx,
                "service_accounts",
                org,
                account,
                &format!("service_account.{account}"),
            )?;
            register_key(tx, org, account, name, key, now)?;
            Ok(format!("id={}", key.id))
        }
        Operation::UpdateKey { account, name, key } => {
            update_key(tx, org, account, name, key, target)
        }
        Operation::RevokeKey { account, id, .. } => revoke_key(tx, org, account, id, now, target),
        Operation::DeleteServiceAccount { name } => delete_account(tx, org, name, now, target),
        Operation::DeleteTeam { name } => delete_unused(tx, "teams", "team", org, name, target),
        Operation::DeleteRole { name } => delete_unused(tx, "roles", "role", org, name, target),
    }
}

fn put_role(
    tx: &Conn,
    org: &str,
    name: &str,
    role: &Role,
    target: String,
) -> Result<String, StoreError> {
    if BUILTIN_ROLES.contains(&name) {
        return Err(StoreError::Conflict {
            target,
            message: "built-in roles cannot be changed".into(),
        });
    }
    tx.exec(
        "INSERT INTO roles (org, name, description, permissions, builtin, managed, protect) VALUES (?1, ?2, ?3, ?4, FALSE, ?5, ?6)
         ON CONFLICT (org, name) DO UPDATE SET description = excluded.description, permissions = excluded.permissions,
         managed = excluded.managed, protect = excluded.protect",
    &[&org, &name, &role.description, &json_set(&role.permissions), &role.managed, &role.protect])?;
    Ok(String::new())
}

fn put_team(tx: &Conn, org: &str, name: &str, team: &Team) -> Result<String, StoreError> {
    tx.exec(
        "INSERT INTO teams (org, name, description, managed, protect) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (org, name) DO UPDATE SET description = excluded.description, managed = excluded.managed, protect = excluded.protect",
    &[&org, &name, &team.description, &team.managed, &team.protect])?;
    Ok(String::new())
}

/// An account's own settings; its memberships and keys are written by their own operations.
fn put_service_account(
    tx: &Conn,
    org: &str,
    name: &str,
    a: &ServiceAccount,
) -> Result<String, StoreError> {
    tx.exec(
        "INSERT INTO service_accounts (org, name, description, admin, expires, disabled, protect, managed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (org, name) DO UPDATE SET description = excluded.description, admin = excluded.admin, expires = excluded.expires,
         disabled = excluded.disabled, protect = excluded.protect, managed = excluded.managed",
    &[&org, &name, &a.description, &a.admin, &a.expires.map(date_text), &a.disabled, &a.protect, &a.managed])?;
    Ok(if a.disabled {
        "disabled".into()
    } else {
        String::new()
    })
}

fn set_memberships(
    tx: &Conn,
    org: &str,
    account: &str,
    teams: &crate::model::Memberships,
    target: &str,
) -> Result<String, StoreError> {
    exists(tx, "service_accounts", org, account, target)?;
    tx.exec(
        "DELETE FROM memberships WHERE org = ?1 AND account = ?2",
        &[&org, &account],
    )?;
    for (team, role) in teams {
        exists(tx, "teams", org, team, &format!("team.{team}"))?;
        exists(tx, "roles", org, role, &format!("role.{role}"))?;
        tx.exec(
            "INSERT INTO memberships (org, account, team, role) VALUES (?1, ?2, ?3, ?4)",
            &[&org, &account, team, role],
        )?;
    }
    Ok(teams
        .iter()
        .map(|(t, r)| format!("{t}={r}"))
        .collect::<Vec<_>>()
        .join(","))
}

/// A current key's declared settings (a retiring or revoked one is not updated).
fn update_key(
    tx: &Conn,
    org: &str,
    account: &str,
    name: &str,
    key: &ApiKey,
    target: String,
) -> Result<String, StoreError> {
    let n = tx.exec(
            "UPDATE api_keys SET description = ?4, scopes = ?5, expires_in = ?6, rotate_every = ?7, overlap = ?8, managed = ?9
             WHERE org = ?1 AND account = ?2 AND name = ?3 AND revoked_at IS NULL AND retires_at IS NULL",
        &[&org, &account, &name, &key.description, &json_set(&key.scopes), &dur(key.expires_in), &dur(key.rotate_every), &dur(key.overlap), &key.managed])?;
    if n == 0 {
        return Err(StoreError::NotFound { target });
    }
    Ok(String::new())
}

fn revoke_key(
    tx: &Conn,
    org: &str,
    account: &str,
    id: &str,
    now: OffsetDateTime,
    target: String,
) -> Result<String, StoreError> {
    let n = tx.exec("UPDATE api_keys SET revoked_at = ?4 WHERE org = ?1 AND account = ?2 AND id = ?3 AND revoked_at IS NULL",
        &[&org, &account, &id, &ts(now)])?;
    if n == 0 {
        return Err(StoreError::NotFound { target });
    }
    Ok(format!("id={id}"))
}

/// Deletes an account, revoking every key it holds.
fn delete_account(
    tx: &Conn,
    org: &str,
    name: &str,
    now: OffsetDateTime,
    target: String,
) -> Result<String, StoreError> {
    protected(tx, "service_accounts", org, name, target)?;
    let revoked = tx.exec("UPDATE api_keys SET revoked_at = ?3 WHERE org = ?1 AND account = ?2 AND revoked_at IS NULL",
        &[&org, &name, &ts(now)])?;
    tx.exec(
        "DELETE FROM service_accounts WHERE org = ?1 AND name = ?2",
        &[&org, &name],
    )?;
    Ok(format!("revoked {revoked} keys"))
}

/// Deletes a team or a role (`column` in the memberships table) that no membership names.
fn delete_unused(
    tx: &Conn,
    table: &str,
    column: &str,
    org: &str,
    name: &str,
    target: String,
) -> Result<String, StoreError> {
    protected(tx, table, org, name, target.clone())?;
    in_use(
        tx,
        &format!("SELECT account FROM memberships WHERE org = ?1 AND {column} = ?2"),
        org,
        name,
        &target,
    )?;
    tx.exec(
        &format!("DELETE FROM {table} WHERE org = ?1 AND name = ?2"),
        &[&org, &name],
    )?;
    Ok(String::new())
}

fn exists(tx: &Conn, table: &str, org: &str, name: &str, target: &str) -> Result<(), StoreError> {
    let found = tx.exists(
        &format!("SELECT 1 FROM {table} WHERE org = ?1 AND name = ?2"),
        &[&org, &name],
    )?;
    if found {
        Ok(())
    } else {
        Err(StoreError::NotFound {
            target: target.to_string(),
        })
    }
}

fn in_use(tx: &Conn, sql: &str, org: &str, name: &str, target: &str) -> Result<(), StoreError> {
    let users: Vec<String> = tx.query(sql, &[&org, &name], |r| r.get(0))?;
    if users.is_empty() {
        return Ok(());
    }
    Err(StoreError::Conflict {
        target: target.to_string(),
        message: format!("still used by service account {}", users.join(", ")),
    })
}

fn register_key(
    tx: &Conn,
    org: &str,
    account: &str,
    name: &str,
    key: &NewKey,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let live: Vec<String> = tx.query("SELECT id FROM api_keys WHERE org = ?1 AND account = ?2 AND name = ?3 AND revoked_at IS NULL AND retires_at IS NULL",
        &[&org, &account, &name], |r| r.get(0))?;
    match (&key.replaces, live.as_slice()) {
        (None, []) => {}
        (
            Some(Replaces {
                id: old,
                retires_at,
            }),
            [current],
        ) if current == old => {
            if *retires_at <= now {
                tx.exec(
                    "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1",
                    &[old, &ts(now)],
                )?;
            } else {
                tx.exec(
                    "UPDATE api_keys SET retires_at = ?2 WHERE id = ?1",
                    &[old, &ts(*retires_at)],
                )?;
            }
        }
        _ => {
            return Err(StoreError::Conflict {
                target: format!("key.{account}.{name}"),
                message: "the live key changed since the plan; run plan again".into(),
            });
        }
    }
    let active: i64 = tx
        .query_opt("SELECT count(*) FROM api_keys WHERE org = ?1 AND account = ?2 AND revoked_at IS NULL AND retires_at IS NULL",
            &[&org, &account], |r| r.get(0))?
        .unwrap_or(0);
    if active as usize >= crate::model::MAX_KEYS_PER_ACCOUNT {
        return Err(StoreError::Conflict {
            target: format!("key.{account}.{name}"),
            message: format!(
                "service account {account} already has {active} active keys, the most allowed"
            ),
        });
    }
    let s = &key.settings;
    tx.exec(
        "INSERT INTO api_keys (id, org, account, name, description, scopes, display_prefix, hash, created_at, expires_at, expires_in, rotate_every, overlap, managed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    &[
        &key.id, &org, &account, &name, &s.description, &json_set(&s.scopes), &key.display_prefix, &key.hash,
        &ts(key.created_at), &key.expires_at.map(ts), &dur(s.expires_in), &dur(s.rotate_every), &dur(s.overlap), &s.managed
    ])?;
    Ok(())
}
