//! age recipients: native X25519 (`age1…`) and SSH public keys (`ssh-ed25519 …`,
//! `ssh-rsa …`), as the standard `age -r`/`-R` take them.

use std::str::FromStr;

/// One public key a key file is encrypted to.
#[derive(Clone)]
pub enum Recipient {
    X25519(age::x25519::Recipient),
    Ssh(age::ssh::Recipient),
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recipient::X25519(r) => write!(f, "{r}"),
            Recipient::Ssh(r) => write!(f, "{r}"),
        }
    }
}

impl Recipient {
    /// The recipient as the age library takes it.
    pub fn as_age(&self) -> &dyn age::Recipient {
        match self {
            Recipient::X25519(r) => r,
            Recipient::Ssh(r) => r,
        }
    }
}

/// A fingerprint of a recipient set, order and duplicates aside: `sha256:` and the hex SHA-256
/// of the sorted recipients, one a line. Key files' metadata records it, so a plan can tell a
/// file encrypted to an older set without decrypting it.
pub fn recipients_fingerprint(recipients: &[Recipient]) -> String {
    use sha2::{Digest, Sha256};
    let mut lines: Vec<String> = recipients.iter().map(|r| format!("{r:?}")).collect();
    lines.sort();
    lines.dedup();
    let digest = Sha256::digest(lines.join("\n").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Parses one recipient, with a message that says what was expected.
pub fn parse_recipient(s: &str) -> Result<Recipient, String> {
    let s = s.trim();
    if s.starts_with("age1") {
        return age::x25519::Recipient::from_str(s)
            .map(Recipient::X25519)
            .map_err(|e| format!("invalid age recipient `{}`: {e}", shorten(s)));
    }
    if s.starts_with("ssh-") {
        return age::ssh::Recipient::from_str(s)
            .map(Recipient::Ssh)
            .map_err(|e| format!("invalid SSH recipient `{}`: {e:?}", shorten(s)));
    }
    Err(format!(
        "invalid recipient `{}`: expected an age public key (age1…) or an SSH public key (ssh-ed25519 …)",
        shorten(s)
    ))
}

/// Recipients from a file, one a line; `#` starts a comment. Errors carry the line number
/// and never the line: a file named by mistake (or on purpose) may hold a secret.
pub fn parse_recipients_file(text: &str) -> Result<Vec<Recipient>, (usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            parse_recipient(l).map_err(|_| {
                let l = l.trim();
                let what = if l.starts_with("age1") {
                    "it starts like an age recipient but does not parse as one"
                } else if l.starts_with("ssh-") {
                    "it starts like an SSH public key but does not parse as one"
                } else {
                    "expected an age public key (age1…) or an SSH public key (ssh-ed25519 …)"
                };
                (i + 1, format!("not a recipient: {what}"))
            })
        })
        .collect()
}

fn shorten(s: &str) -> std::borrow::Cow<'_, str> {
    crate::escape::shorten(s, 40)
}
