//! Key material: minting secrets, parsing recipients, and writing age-encrypted key files
//! durably. This is the only module that ever holds a secret in memory.

mod file;
mod mint;
mod recipient;

pub use file::{key_file_path, write_key_file, KeyFile};
pub use mint::{hash_secret, looks_like_key, mint, MintedKey, SECRET_PREFIX};
pub use recipient::{parse_recipient, parse_recipients_file, Recipient};
