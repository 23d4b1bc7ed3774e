//! Reading a whole organization's accounts, memberships and keys for [`Store::snapshot`]:
//! three queries, whatever the number of accounts, inside the snapshot's read transaction.

use std::collections::BTreeMap;

use super::StoreError;
use super::columns::{col_date, col_dur, col_set, col_ts, col_ts_opt};
use super::sql::Conn;
use crate::model::{ApiKey, IssuedKey, LiveAccount, LiveKey, LiveOrganization, RetiringKey};

/// Every account's own settings, without memberships and keys.
pub(super) fn read_accounts(
    conn: &Conn,
    org: &str,
) -> Result<BTreeMap<String, LiveAccount>, StoreError> {
    let rows = conn.query("SELECT name, description, admin, expires, disabled, protect, managed FROM service_accounts WHERE org = ?1", &[&org], |r| {
        Ok((
            r.get::<String>(0)?,
            LiveAccount {
                description: r.get(1)?,
                admin: r.get(2)?,
                expires: col_date(r, 3)?,
                disabled: r.get(4)?,
                protect: r.get(5)?,
                managed: r.get(6)?,
                ..Default::default()
            },
        ))
    })?;
    Ok(rows.into_iter().collect())
}

/// Finds the accounts of rows that come in name order (`ORDER BY account`, as the primary key
/// and the live-key index keep them) by walking the accounts alongside, instead of descending
/// the tree for every row: 300,000 keys of 100,000 accounts, each descent a dozen comparisons
/// and cache misses. A row out of that order (a database whose collation is not byte order)
/// is set aside, and added by look-up once the walk is done. Each account the walk leaves is
/// `settle`d: its rows are all in.
struct InOrder<'a, T> {
    accounts: std::collections::btree_map::IterMut<'a, String, LiveAccount>,
    at: Option<(&'a String, &'a mut LiveAccount)>,
    put: fn(&mut LiveAccount, T),
    settle: fn(&mut LiveAccount),
    late: Vec<(String, T)>,
}

impl<'a, T> InOrder<'a, T> {
    fn new(
        accounts: &'a mut BTreeMap<String, LiveAccount>,
        put: fn(&mut LiveAccount, T),
        settle: fn(&mut LiveAccount),
    ) -> Self {
        let mut accounts = accounts.iter_mut();
        let at = accounts.next();
        InOrder {
            accounts,
            at,
            put,
            settle,
            late: Vec::new(),
        }
    }

    fn add(&mut self, account: &str, value: T) {
        while let Some((name, a)) = &mut self.at
            && name.as_str() < account
        {
            (self.settle)(a);
            self.at = self.accounts.next();
        }
        match &mut self.at {
            Some((name, a)) if name.as_str() == account => (self.put)(a, value),
            _ => self.late.push((account.to_string(), value)),
        }
    }

    /// The walk is over: what it set aside.
    fn done(mut self) -> Late<T> {
        if let Some((_, a)) = &mut self.at {
            (self.settle)(a);
        }
        Late {
            put: self.put,
            rows: self.late,
        }
    }
}

/// Rows an [`InOrder`] walk set aside, added by look-up once its borrow of the accounts is over.
struct Late<T> {
    put: fn(&mut LiveAccount, T),
    rows: Vec<(String, T)>,
}

impl<T> Late<T> {
    /// Those of an account that does not exist are dropped, as a look-up would.
    fn add_to(self, accounts: &mut BTreeMap<String, LiveAccount>) {
        for (account, value) in self.rows {
            if let Some(a) = accounts.get_mut(&account) {
                (self.put)(a, value);
            }
        }
    }
}

/// Adds every membership to its account.
pub(super) fn read_memberships(
    conn: &Conn,
    org: &str,
    accounts: &mut BTreeMap<String, LiveAccount>,
) -> Result<(), StoreError> {
    let mut walk = InOrder::new(
        accounts,
        |a, (team, role)| {
            a.teams.insert(team, role);
        },
        |a| a.teams.shrink_to_fit(),
    );
    conn.query(
        "SELECT account, team, role FROM memberships WHERE org = ?1 ORDER BY account, team",
        &[&org],
        |r| {
            let membership = (r.get(1)?, r.get(2)?);
            r.with_str(0, |account| walk.add(account, membership))
        },
    )?;
    walk.done().add_to(accounts);
    Ok(())
}

/// Adds every live key: a current one to its account, one a rotation replaced to the
/// retiring keys.
pub(super) fn read_keys(
    conn: &Conn,
    org: &str,
    o: &mut LiveOrganization,
) -> Result<(), StoreError> {
    let mut walk = InOrder::new(
        &mut o.service_accounts,
        |a, (name, key)| {
            a.keys.insert(name, key);
        },
        |a| a.keys.shrink_to_fit(),
    );
    let retiring = &mut o.retiring_keys;
    conn.query(
        "SELECT id, account, name, description, scopes, created_at, expires_at, retires_at, expires_in, rotate_every, overlap, managed, last_used_at
         FROM api_keys WHERE org = ?1 AND revoked_at IS NULL ORDER BY account, name",
        &[&org],
        |r| {
        let id: String = r.get(0)?;
        let name: String = r.get(2)?;
        if let Some(retires_at) = col_ts_opt(r, 7)? {
            retiring.push(RetiringKey {
                id,
                service_account: r.get(1)?,
                key: name,
                retires_at,
                managed: r.get(11)?,
                last_used_at: col_ts_opt(r, 12)?,
            });
            return Ok(());
        }
        let key = LiveKey {
            settings: ApiKey {
                description: r.get(3)?,
                scopes: col_set(r, 4)?,
                expires_in: col_dur(r, 8)?,
                rotate_every: col_dur(r, 9)?,
                overlap: col_dur(r, 10)?,
                managed: r.get(11)?,
            },
            issued: IssuedKey {
                id,
                created_at: col_ts(r, 5)?,
                expires_at: col_ts_opt(r, 6)?,
                last_used_at: col_ts_opt(r, 12)?,
            },
        };
        // The account is found by its name in place, not copied for every key.
        r.with_str(1, |account| walk.add(account, (name, key)))
    })?;
    walk.done().add_to(&mut o.service_accounts);
    o.retiring_keys.sort_by(|a, b| {
        (&a.service_account, &a.key, &a.id).cmp(&(&b.service_account, &b.key, &b.id))
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_in_any_order_reach_their_accounts_and_rows_of_no_account_are_dropped() {
        let mut accounts: BTreeMap<String, LiveAccount> = ["a", "b-1", "b1", "c"]
            .into_iter()
            .map(|n| (n.to_string(), LiveAccount::default()))
            .collect();
        let mut walk = InOrder::new(
            &mut accounts,
            |a, team: &str| {
                a.teams.insert(team.to_string(), "viewer".to_string());
            },
            |a| a.teams.shrink_to_fit(),
        );
        // In order, then (as a collation that ignores `-` sorts them) out of it, with rows of
        // accounts that do not exist on either side.
        let rows = [
            ("a", "t1"),
            ("a", "t2"),
            ("aa", "gone"),
            ("b1", "t1"),
            ("b-1", "t1"),
            ("c", "t1"),
            ("a", "t3"),
            ("z", "gone"),
        ];
        for (account, team) in rows {
            walk.add(account, team);
        }
        walk.done().add_to(&mut accounts);
        let teams = |n: &str| accounts[n].teams.keys().cloned().collect::<Vec<_>>();
        assert_eq!(teams("a"), ["t1", "t2", "t3"]);
        assert_eq!(teams("b-1"), ["t1"]);
        assert_eq!(teams("b1"), ["t1"]);
        assert_eq!(teams("c"), ["t1"]);
        assert_eq!(accounts.len(), 4);
    }
}
