//! Every key's verification answer, precomputed, for a server that answers from memory: what
//! [`Store::verify`] would say about each key, minus the parts that depend on the clock
//! (expiry, retirement, an account's expiry date), which [`KeyGrant::verification`] checks at
//! the time asked. Plain data, so the in-memory index does not care which engine read it.
//!
//! A [`ChangeStamp`] tells a reader cheaply whether anything that could change an answer was
//! written since: every change to an organization bumps its revision (and a new one adds a
//! row), so the count of organizations and the sum of their revisions only grow, and equal
//! stamps mean the same answers. Recording a key's last use bumps no revision, and needs no
//! new answers.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use time::{Date, OffsetDateTime};

use super::columns::{col_date, col_set, col_ts_opt};
use super::sql::{Begin, Conn, Row};
use super::{Store, StoreError};
use crate::model::Verification;

/// Where the organizations' revisions stand; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeStamp {
    organizations: i64,
    revisions: i64,
}

/// What an account gives each of its keys; shared by them.
#[derive(Debug)]
pub struct AccountGrant {
    org: Arc<str>,
    name: Arc<str>,
    disabled: bool,
    expires: Option<Date>,
    /// What its roles grant (`*:*` for an admin), sorted.
    permissions: Arc<[String]>,
}

/// One registered key, as verification sees it.
#[derive(Debug)]
pub enum KeyGrant {
    /// Revoked, or its account is gone.
    Revoked,
    Live(LiveGrant),
    /// A row of it (or of its account or roles) does not decode: an error for this key alone,
    /// never a guess.
    Unreadable,
}

/// A key that is not revoked: whether it works still depends on the time.
#[derive(Debug)]
pub struct LiveGrant {
    id: Box<str>,
    name: Box<str>,
    account: Arc<AccountGrant>,
    scopes: Arc<[String]>,
    /// The account's permissions narrowed by the scopes; `None` for an unscoped key.
    narrowed: Option<Arc<[String]>>,
    expires_at: Option<OffsetDateTime>,
    retires_at: Option<i64>,
}

impl KeyGrant {
    /// The answer at `now`: the same as [`Store::verify`] gives, refusal reasons in the same
    /// order. `None` for an unreadable key.
    pub fn verification(&self, now: OffsetDateTime) -> Option<Verification> {
        let k = match self {
            KeyGrant::Revoked => return Some(Verification::refused("revoked")),
            KeyGrant::Unreadable => return None,
            KeyGrant::Live(k) => k,
        };
        let refusal = if k.retires_at.is_some_and(|t| t <= now.unix_timestamp()) {
            Some("retired")
        } else if k.expires_at.is_some_and(|t| t <= now) {
            Some("expired")
        } else if k.account.disabled {
            Some("account_disabled")
        } else if k.account.expires.is_some_and(|d| now.date() > d) {
            Some("account_expired")
        } else {
            None
        };
        if let Some(reason) = refusal {
            return Some(Verification::refused(reason));
        }
        Some(Verification {
            valid: true,
            reason: None,
            organization: Some(k.account.org.to_string()),
            service_account: Some(k.account.name.to_string()),
            key: Some(k.name.to_string()),
            key_id: Some(k.id.to_string()),
            permissions: k
                .narrowed
                .as_ref()
                .unwrap_or(&k.account.permissions)
                .to_vec(),
            scopes: k.scopes.to_vec(),
            expires_at: k.expires_at,
        })
    }

    /// Roughly the memory this grant holds: its own, plus its share of what it shares with
    /// other grants (an account, a list of permissions), so the sum over all grants is the
    /// memory of all of them.
    pub fn bytes(&self) -> usize {
        fn share<T: ?Sized>(arc: &Arc<T>, bytes: usize) -> usize {
            (16 + bytes) / Arc::strong_count(arc)
        }
        fn list(l: &Arc<[String]>) -> usize {
            share(l, l.iter().map(|p| 24 + p.capacity()).sum())
        }
        std::mem::size_of::<KeyGrant>()
            + match self {
                KeyGrant::Live(k) => {
                    let a = &k.account;
                    let account = std::mem::size_of::<AccountGrant>()
                        + a.name.len()
                        + list(&a.permissions)
                        + share(&a.org, a.org.len());
                    k.id.len()
                        + k.name.len()
                        + k.narrowed.as_ref().map_or(0, list)
                        + list(&k.scopes)
                        + share(a, account)
                }
                _ => 0,
            }
    }
}

/// Lists of permissions many accounts share, kept once.
#[derive(Default)]
struct Interned(HashMap<Vec<String>, Arc<[String]>>);

impl Interned {
    fn get(&mut self, list: Vec<String>) -> Arc<[String]> {
        self.0
            .entry(list)
            .or_insert_with_key(|l| l.clone().into())
            .clone()
    }
}

type Roles = HashMap<(String, String), Result<BTreeSet<String>, ()>>;

impl Store {
    /// Where the organizations' revisions stand now.
    pub fn change_stamp(&self) -> Result<ChangeStamp, StoreError> {
        change_stamp(&self.conn)
    }

    /// Every registered key (by hex SHA-256) with its grant, and the stamp they were read at,
    /// from one read transaction.
    pub fn key_grants(&self) -> Result<(ChangeStamp, Vec<(String, KeyGrant)>), StoreError> {
        let tx = self.conn.begin(Begin::Read, None)?;
        let stamp = change_stamp(&tx)?;
        let mut interned = Interned::default();
        let roles = read_roles(&tx)?;
        let accounts = read_accounts(&tx, &roles, &mut interned)?;
        let grants = tx.query(
            "SELECT hash, id, org, account, name, scopes, expires_at, retires_at, revoked_at FROM api_keys",
            &[],
            |r| {
                let hash: String = r.get(0)?;
                let account = accounts.get(&(r.get(2)?, r.get(3)?));
                let grant = match (r.get::<Option<i64>>(8)?, account) {
                    (Some(_), _) | (None, None) => KeyGrant::Revoked,
                    (None, Some(Err(()))) => KeyGrant::Unreadable,
                    (None, Some(Ok(account))) => live_key(r, account, &mut interned)
                        .map_or(KeyGrant::Unreadable, KeyGrant::Live),
                };
                Ok((hash, grant))
            },
        )?;
        tx.commit()?;
        Ok((stamp, grants))
    }
}

fn change_stamp(conn: &Conn) -> Result<ChangeStamp, StoreError> {
    conn.query_opt(
        "SELECT count(*), CAST(coalesce(sum(revision), 0) AS BIGINT) FROM organizations",
        &[],
        |r| {
            Ok(ChangeStamp {
                organizations: r.get(0)?,
                revisions: r.get(1)?,
            })
        },
    )?
    .ok_or(StoreError::Corrupt {
        what: "organization count",
        value: "no row".into(),
    })
}

fn live_key(
    r: &Row<'_>,
    account: &Arc<AccountGrant>,
    interned: &mut Interned,
) -> Result<LiveGrant, StoreError> {
    let scopes = col_set(r, 5)?;
    let narrowed = (!scopes.is_empty()).then(|| {
        let granted: BTreeSet<String> = account.permissions.iter().cloned().collect();
        interned.get(super::verify::narrow(&granted, &scopes))
    });
    Ok(LiveGrant {
        id: r.get::<String>(1)?.into(),
        name: r.get::<String>(4)?.into(),
        account: account.clone(),
        scopes: interned.get(scopes.into_iter().collect()),
        narrowed,
        expires_at: col_ts_opt(r, 6)?,
        retires_at: r.get(7)?,
    })
}

fn read_roles(tx: &Conn) -> Result<Roles, StoreError> {
    let rows = tx.query("SELECT org, name, permissions FROM roles", &[], |r| {
        Ok(((r.get(0)?, r.get(1)?), col_set(r, 2).map_err(|_| ())))
    })?;
    Ok(rows.into_iter().collect())
}

type Accounts = HashMap<(String, String), Result<Arc<AccountGrant>, ()>>;

fn read_accounts(
    tx: &Conn,
    roles: &Roles,
    interned: &mut Interned,
) -> Result<Accounts, StoreError> {
    // (org, account) → the roles it holds through its teams.
    let mut held: HashMap<(String, String), Vec<String>> = HashMap::new();
    tx.query("SELECT org, account, role FROM memberships", &[], |r| {
        held.entry((r.get(0)?, r.get(1)?))
            .or_default()
            .push(r.get(2)?);
        Ok(())
    })?;
    let mut orgs: HashMap<String, Arc<str>> = HashMap::new();
    let mut accounts = Accounts::new();
    tx.query(
        "SELECT org, name, admin, disabled, expires FROM service_accounts",
        &[],
        |r| {
            let (org, name): (String, String) = (r.get(0)?, r.get(1)?);
            let org_name = orgs
                .entry(org.clone())
                .or_insert_with(|| org.as_str().into());
            let grant = (|| {
                let admin: bool = r.get(2).map_err(|_| ())?;
                let permissions = if admin {
                    BTreeSet::from(["*:*".to_string()])
                } else {
                    let mut all = BTreeSet::new();
                    for role in held.get(&(org.clone(), name.clone())).into_iter().flatten() {
                        // A membership naming no role grants nothing, as the SQL join does.
                        if let Some(p) = roles.get(&(org.clone(), role.clone())) {
                            all.extend(p.as_ref().map_err(|_| ())?.iter().cloned());
                        }
                    }
                    all
                };
                Ok(Arc::new(AccountGrant {
                    org: org_name.clone(),
                    name: name.as_str().into(),
                    disabled: r.get(3).map_err(|_| ())?,
                    expires: col_date(r, 4).map_err(|_| ())?,
                    permissions: interned.get(permissions.into_iter().collect()),
                }))
            })();
            accounts.insert((org, name), grant);
            Ok(())
        },
    )?;
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::model::{ApiKey, Role, ServiceAccount, Team};
    use crate::operation::{NewKey, Operation};
    use crate::secrets::{MintedKey, hash_secret, mint};

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    fn key(
        store: &mut Store,
        account: &str,
        name: &str,
        scopes: &[&str],
        days: Option<i64>,
    ) -> MintedKey {
        let k = mint();
        let op = Operation::RegisterKey {
            account: account.into(),
            name: name.into(),
            key: NewKey {
                id: k.id.clone(),
                hash: k.hash.clone(),
                display_prefix: k.display_prefix.clone(),
                created_at: T0,
                expires_at: days.map(|d| T0 + time::Duration::days(d)),
                settings: ApiKey {
                    scopes: scopes.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                },
                replaces: None,
            },
        };
        store.apply_all("acme", "test", &[op], T0).unwrap();
        k
    }

    /// The index answers exactly as the per-request lookup does, for every kind of key and
    /// account, at several times.
    #[test]
    fn grants_answer_as_store_verify_does() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("o.db")).unwrap();
        store.ensure_organization("acme", T0).unwrap();
        let account = |admin, disabled, expires| ServiceAccount {
            admin,
            disabled,
            expires,
            ..Default::default()
        };
        let mut ops = vec![
            Operation::PutRole {
                name: "ops".into(),
                role: Role {
                    permissions: ["flows:*".to_string(), "blocks:read".to_string()].into(),
                    ..Default::default()
                },
            },
            Operation::PutTeam {
                name: "t".into(),
                team: Team::default(),
            },
        ];
        for (name, a) in [
            ("plain", account(false, false, None)),
            ("admin", account(true, false, None)),
            ("off", account(false, true, None)),
            (
                "ending",
                account(false, false, Some(datetime!(2026-01-10 00:00 UTC).date())),
            ),
            ("doomed", account(false, false, None)),
        ] {
            ops.push(Operation::PutServiceAccount {
                name: name.into(),
                account: a,
            });
            ops.push(Operation::SetMemberships {
                account: name.into(),
                teams: crate::model::SmallMap::from_iter([("t".into(), "ops".into())]),
            });
        }
        store.apply_all("acme", "test", &ops, T0).unwrap();
        let mut secrets = vec![
            key(&mut store, "plain", "a", &[], None),
            key(
                &mut store,
                "plain",
                "scoped",
                &["flows:read", "*:read"],
                Some(5),
            ),
            key(&mut store, "admin", "a", &["blocks:*"], None),
            key(&mut store, "off", "a", &[], None),
            key(&mut store, "ending", "a", &[], Some(30)),
            key(&mut store, "doomed", "a", &[], None),
        ];
        let revoked = key(&mut store, "plain", "gone", &[], None);
        let revoke = Operation::RevokeKey {
            account: "plain".into(),
            name: "gone".into(),
            id: revoked.id.clone(),
        };
        let delete = Operation::DeleteServiceAccount {
            name: "doomed".into(),
        };
        store
            .apply_all("acme", "test", &[revoke, delete], T0)
            .unwrap();
        secrets.push(revoked);
        // `plain.a` rotated: the old secret works for 3 more days.
        let next = mint();
        let rotate = Operation::RegisterKey {
            account: "plain".into(),
            name: "a".into(),
            key: NewKey {
                id: next.id.clone(),
                hash: next.hash.clone(),
                display_prefix: next.display_prefix.clone(),
                created_at: T0,
                expires_at: None,
                settings: ApiKey::default(),
                replaces: Some(crate::operation::Replaces {
                    id: secrets[0].id.clone(),
                    retires_at: T0 + time::Duration::days(3),
                }),
            },
        };
        store.apply_all("acme", "test", &[rotate], T0).unwrap();
        secrets.push(next);
        let (_, grants) = store.key_grants().unwrap();
        let grants: HashMap<String, KeyGrant> = grants.into_iter().collect();
        for now in [
            T0,
            T0 + time::Duration::days(6),
            T0 + time::Duration::days(40),
        ] {
            for k in &secrets {
                let want = serde_json::to_value(store.verify(&k.secret, now).unwrap()).unwrap();
                let got = grants[&hash_secret(&k.secret)].verification(now).unwrap();
                assert_eq!(
                    serde_json::to_value(got).unwrap(),
                    want,
                    "{} at {now}",
                    k.id
                );
            }
        }
    }

    #[test]
    fn the_stamp_moves_with_every_change_and_not_with_last_use() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("o.db")).unwrap();
        let empty = store.change_stamp().unwrap();
        store.ensure_organization("acme", T0).unwrap();
        let created = store.change_stamp().unwrap();
        assert_ne!(empty, created);
        let account = Operation::PutServiceAccount {
            name: "bot".into(),
            account: ServiceAccount::default(),
        };
        store.apply_all("acme", "test", &[account], T0).unwrap();
        let k = key(&mut store, "bot", "a", &[], None);
        let changed = store.change_stamp().unwrap();
        assert_ne!(created, changed);
        store.record_last_use(&[(k.id, 1)]).unwrap();
        assert_eq!(store.change_stamp().unwrap(), changed);
    }
}
