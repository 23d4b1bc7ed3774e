//! Minting API keys. A key is `svca_` + 32 base62 characters of OS randomness (190 bits) +
//! 6 base62 characters of CRC-32 over them, so that a secret scanner (or the server) can tell
//! a real key from a typo without a lookup.

use rand::rngs::OsRng;
use rand::{RngCore, TryRngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Every svcacct key starts with this.
pub const SECRET_PREFIX: &str = "svca_";
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
const DISPLAY_LEN: usize = 8;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly minted key. The secret leaves this struct only into an encrypted file.
pub struct MintedKey {
    /// A public identifier of the key, safe to print.
    pub id: String,
    pub secret: Zeroizing<String>,
    /// Hex SHA-256 of the secret: all a backend stores.
    pub hash: String,
    /// A short prefix of the secret that helps a person recognise it.
    pub display_prefix: String,
}

impl std::fmt::Debug for MintedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Mints a new key from the operating system's randomness, read 64 bytes at a time: drawing
/// each character from the OS was 43 system calls a key, 13 million in a first apply of
/// 300,000 keys.
pub fn mint() -> MintedKey {
    let mut rng = OsRng.unwrap_err();
    let mut pool = Zeroizing::new([0u8; 64]);
    rng.fill_bytes(&mut *pool);
    let id = format!("key_{}", hex::encode(&pool[..8]));
    let mut used = 8;
    let mut random = Zeroizing::new(String::with_capacity(RANDOM_LEN));
    while random.len() < RANDOM_LEN {
        if used == pool.len() {
            rng.fill_bytes(&mut *pool);
            used = 0;
        }
        let b = pool[used];
        used += 1;
        // 248 is 4 × 62: the bytes below it fall on every character equally often; the
        // others are skipped, so no character is likelier than another.
        if b < 248 {
            random.push(BASE62[usize::from(b) % BASE62.len()] as char);
        }
    }
    let secret = Zeroizing::new(format!("{SECRET_PREFIX}{}{}", *random, checksum(&random)));
    MintedKey {
        id,
        hash: hash_secret(&secret),
        display_prefix: secret[..SECRET_PREFIX.len() + DISPLAY_LEN].to_string(),
        secret,
    }
}

/// Hex SHA-256 of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether a string has a key's shape and a valid checksum (no lookup needed).
pub fn looks_like_key(s: &str) -> bool {
    let Some(body) = s.strip_prefix(SECRET_PREFIX) else {
        return false;
    };
    if body.len() != RANDOM_LEN + CHECKSUM_LEN || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let (random, sum) = body.split_at(RANDOM_LEN);
    checksum(random) == sum
}

fn checksum(random: &str) -> String {
    let mut n = crc32fast::hash(random.as_bytes()) as u64;
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).expect("base62 is ascii")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_validate_and_differ() {
        let a = mint();
        let b = mint();
        assert_ne!(a.secret, b.secret);
        assert!(looks_like_key(&a.secret));
        assert_eq!(a.secret.len(), 5 + 32 + 6);
        assert_eq!(a.hash, hash_secret(&a.secret));
        assert!(a.secret.starts_with(&a.display_prefix));
        // A single changed character breaks the checksum.
        let mut typo = a.secret.as_bytes().to_vec();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        assert!(!looks_like_key(&String::from_utf8(typo).unwrap()));
        assert!(!looks_like_key("ghp_abc"));
        assert!(!format!("{a:?}").contains(a.secret.as_str()));
    }

    #[test]
    fn every_character_is_drawn_about_equally_often() {
        let mut counts = [0u32; 62];
        for _ in 0..2_000 {
            let key = mint();
            let random = &key.secret[SECRET_PREFIX.len()..SECRET_PREFIX.len() + RANDOM_LEN];
            for b in random.bytes() {
                counts[BASE62.iter().position(|&c| c == b).unwrap()] += 1;
            }
        }
        // 64,000 characters, 1,032 expected each; a character favoured by a skewed draw (a
        // byte taken modulo 62 gives the first eight characters 5/4 of the others' share) or
        // never drawn falls outside.
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 855 && *max < 1_210, "{counts:?}");
        let ids: std::collections::HashSet<_> = (0..1_000).map(|_| mint().id).collect();
        assert_eq!(ids.len(), 1_000);
    }
}
