//! [`SmallMap`]: a map of a few entries (an account's memberships, its keys) in one sorted
//! vector.
//!
//! A `BTreeMap` gives even a one-entry map a node of eleven slots. With these maps as sorted
//! vectors, a plan of 100,000 accounts (two memberships and three keys each) went from 887 to
//! about 450 MiB peak RSS, and on this project's machines every new megabyte is a page the
//! kernel zeroes. `litemap` keeps the entries in a vector sorted by key, with the
//! `BTreeMap` methods these maps use; this wrapper gives it the serde form of a `BTreeMap`
//! (always a map: `litemap` writes an empty one as `[]`, and reads sequences too), so the
//! JSON on the wire and in saved plans is what it always was.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A small map in key order, used as a `BTreeMap` is (through `Deref`).
#[derive(Clone, PartialEq, Eq)]
pub struct SmallMap<K, V>(litemap::LiteMap<K, V>);

impl<K, V> SmallMap<K, V> {
    pub const fn new() -> Self {
        SmallMap(litemap::LiteMap::new_vec())
    }

    /// Room for `n` entries and no more: a vector grown by pushes holds four, and at 100,000
    /// accounts of three keys the spare slots were tens of megabytes.
    pub fn with_capacity(n: usize) -> Self {
        SmallMap(litemap::LiteMap::with_capacity(n))
    }

    /// Gives back the room no entry uses, once no more entries come.
    pub fn shrink_to_fit(&mut self) {
        let mut entries = std::mem::take(&mut self.0).into_tuple_vec();
        entries.shrink_to_fit();
        self.0 = litemap::LiteMap::from_sorted_store_unchecked(entries);
    }
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap::new()
    }
}

impl<K, V> Deref for SmallMap<K, V> {
    type Target = litemap::LiteMap<K, V>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<K, V> DerefMut for SmallMap<K, V> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Later entries win over earlier ones with the same key, as in a `BTreeMap`.
impl<K: Ord, V> FromIterator<(K, V)> for SmallMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        SmallMap(iter.into_iter().collect())
    }
}

impl<K, V> IntoIterator for SmallMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_tuple_vec().into_iter()
    }
}

impl<'a, K, V> IntoIterator for &'a SmallMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = <Vec<(K, V)> as litemap::store::StoreIterable<'a, K, V>>::KeyValueIter;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for SmallMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl<K: Serialize, V: Serialize> Serialize for SmallMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter())
    }
}

impl<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>> Deserialize<'de> for SmallMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(BTreeMap::<K, V>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_the_json_of_a_btree_map() {
        let empty: SmallMap<String, u32> = SmallMap::new();
        assert_eq!(serde_json::to_string(&empty).unwrap(), "{}");
        let read: SmallMap<String, u32> =
            serde_json::from_str(r#"{"b": 1, "a": 2, "b": 3}"#).unwrap();
        assert_eq!(serde_json::to_string(&read).unwrap(), r#"{"a":2,"b":3}"#);
        assert!(serde_json::from_str::<SmallMap<String, u32>>(r#"[["a", 1]]"#).is_err());
        let collected: SmallMap<&str, u32> = [("z", 1), ("a", 2), ("z", 3)].into_iter().collect();
        let pairs: Vec<_> = collected.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(pairs, [("a", 2), ("z", 3)]);
        assert_eq!(format!("{collected:?}"), r#"{"a": 2, "z": 3}"#);
    }
}
