//! Key material: minting secrets, parsing recipients, and writing age-encrypted key files
//! durably. This is the only module that ever holds a secret in memory.

mod faults;
mod file;
mod meta_name;
mod mint;
mod prune;
mod recipient;
mod reencrypt;

pub use file::{
    Delivered, KeyFile, KeyMeta, Recovered, begin_issuing, believed_meta, check_secrets_dir,
    end_issuing, expect_key, find_meta, issuing, key_file_path, meta_file_path, migrate_meta,
    pending_key_file_path, pending_meta_file_path, promote_key_file, promote_key_files, read_meta,
    read_meta_in, recover, rewrite_meta, sync_batch, write_key_file, write_key_files,
};
pub use meta_name::{MetaName, meta_name, parse as parse_meta_name};
pub use mint::{MintedKey, SECRET_PREFIX, hash_secret, looks_like_key, mint};
pub use prune::{Interrupted, OrphanFile, PruneError, find_orphans, finish_interrupted, prune};
pub use recipient::{Recipient, parse_recipient, parse_recipients_file, recipients_fingerprint};
pub use reencrypt::{Identities, decrypt_file, load_identities, reencrypt};
