//! Where a server's store lives, chosen by the `--db` value's form: a PostgreSQL URL
//! (`postgres://` or `postgresql://`) or else a SQLite file path. A URL may carry a password,
//! so it is only ever shown with the password masked.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A store's location.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl FromStr for Database {
    type Err = String;

    fn from_str(s: &str) -> Result<Database, String> {
        if s.is_empty() {
            return Err("the database must be a SQLite file path or a postgres:// URL".into());
        }
        let Some((scheme, _)) = s.split_once("://") else {
            return Ok(Database::Sqlite(PathBuf::from(s)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => {
                url::Url::parse(s)
                    .map_err(|e| format!("`{}` is not a valid PostgreSQL URL: {e}", masked(s)))?;
                Ok(Database::Postgres(s.to_string()))
            }
            other => Err(format!(
                "`{other}://` is not a database svcacct serves from: give a SQLite file path or a postgres:// URL"
            )),
        }
    }
}

/// The URL with any password replaced by `***`.
fn masked(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => s
            .split_once('@')
            .map_or_else(|| s.to_string(), |(_, host)| format!("***@{host}")),
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => f.write_str(&masked(url)),
        }
    }
}

// Debug is Display: a derived Debug would print the password.
impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_chooses_the_engine() {
        assert_eq!(
            "org.db".parse::<Database>().unwrap(),
            Database::Sqlite("org.db".into())
        );
        assert_eq!(
            "/var/lib/svcacct/org.db".parse::<Database>().unwrap(),
            Database::Sqlite("/var/lib/svcacct/org.db".into())
        );
        for url in ["postgres://db/svcacct", "postgresql://u@db:5432/svcacct"] {
            assert_eq!(
                url.parse::<Database>().unwrap(),
                Database::Postgres(url.into())
            );
        }
        let e = "mysql://db/svcacct".parse::<Database>().unwrap_err();
        assert!(e.contains("`mysql://` is not a database"), "{e}");
        assert!("".parse::<Database>().is_err());
    }

    #[test]
    fn a_password_is_never_shown() {
        let db: Database = "postgres://svcacct:hunter2@db:5432/svcacct"
            .parse()
            .unwrap();
        for shown in [db.to_string(), format!("{db:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("svcacct:***@db:5432"), "{shown}");
        }
        let e = "postgres://u:hunter2@[bad/x"
            .parse::<Database>()
            .unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
