//! Addresses: how plans, errors and the audit log name an object — `role.deployer`,
//! `team.platform`, `service_account.ci-bot`, `key.ci-bot.prod`. One type, so that what an
//! address is (a key? whose?) is read from its variant, never parsed back out of a string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The address of one object of an organization.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Address {
    Organization(String),
    Role(String),
    Team(String),
    ServiceAccount(String),
    Key { account: String, key: String },
}

impl Address {
    pub fn role(name: &str) -> Address {
        Address::Role(name.to_string())
    }
    pub fn team(name: &str) -> Address {
        Address::Team(name.to_string())
    }
    pub fn account(name: &str) -> Address {
        Address::ServiceAccount(name.to_string())
    }
    pub fn key(account: &str, key: &str) -> Address {
        Address::Key {
            account: account.to_string(),
            key: key.to_string(),
        }
    }

    /// Whether this names an API key.
    pub fn is_key(&self) -> bool {
        matches!(self, Address::Key { .. })
    }

    /// Whether `prefix` (an address, or the start of one such as `service_account.ci`) matches:
    /// `service_account.ci-bot` matches itself and the keys of `ci-bot`.
    pub fn starts_with(&self, prefix: &str) -> bool {
        let text = self.to_string();
        text.starts_with(prefix)
            || matches!(self, Address::Key { account, .. } if Address::account(account).to_string() == prefix)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Organization(n) => write!(f, "organization.{n}"),
            Address::Role(n) => write!(f, "role.{n}"),
            Address::Team(n) => write!(f, "team.{n}"),
            Address::ServiceAccount(n) => write!(f, "service_account.{n}"),
            Address::Key { account, key } => write!(f, "key.{account}.{key}"),
        }
    }
}

/// Why a string is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an address: expected role.NAME, team.NAME, service_account.NAME or key.ACCOUNT.KEY"
)]
pub struct BadAddress(pub String);

impl FromStr for Address {
    type Err = BadAddress;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadAddress(s.to_string());
        let (kind, rest) = s.split_once('.').ok_or_else(bad)?;
        let name = |n: &str| {
            if crate::model::valid_name(n) {
                Ok(n.to_string())
            } else {
                Err(bad())
            }
        };
        Ok(match kind {
            "organization" => Address::Organization(name(rest)?),
            "role" => Address::Role(name(rest)?),
            "team" => Address::Team(name(rest)?),
            "service_account" => Address::ServiceAccount(name(rest)?),
            "key" => {
                let (account, key) = rest.split_once('.').ok_or_else(bad)?;
                Address::Key {
                    account: name(account)?,
                    key: name(key)?,
                }
            }
            _ => return Err(bad()),
        })
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_and_parse_back() {
        for a in [
            Address::role("deployer"),
            Address::team("platform"),
            Address::account("ci-bot"),
            Address::key("ci-bot", "prod"),
            Address::Organization("acme".into()),
        ] {
            assert_eq!(a.to_string().parse::<Address>(), Ok(a.clone()));
        }
        assert_eq!(
            Address::key("ci-bot", "prod").to_string(),
            "key.ci-bot.prod"
        );
        for bad in [
            "key.ci-bot",
            "role.",
            "roles.x",
            "team.Bad",
            "key.a.b.c",
            "x",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_account_prefix_covers_its_keys() {
        let k = Address::key("ci-bot", "prod");
        assert!(k.starts_with("service_account.ci-bot"));
        assert!(k.starts_with("key.ci-bot"));
        assert!(!k.starts_with("service_account.ci-bot-2"));
        assert!(Address::account("ci-bot-2").starts_with("service_account.ci"));
    }
}
