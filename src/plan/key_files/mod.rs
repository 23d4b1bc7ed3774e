//! What the plan knows of the key files. The diff asks this trait instead of the disk, so it
//! is a pure function of its inputs and can be tested without one; [`SecretsDir`] answers from
//! a secrets directory.
//!
//! It answers from the files' metadata, never by decrypting: a plan runs with no identity, in
//! CI as well as on a laptop. The metadata's name says what a plan needs
//! (`crate::secrets::meta_name`), so the listing of an account's directory is all a plan reads
//! of it; only metadata of the old layout (`<key>.meta.json`) and pending metadata are opened.

mod cache;

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Dir, Mode, OFlags};

use crate::model::{LiveKey, LiveOrganization, SmallMap};
use crate::secrets::{
    KeyMeta, MetaName, Recipient, believed_meta, key_file_path, parse_meta_name, read_meta_in,
    recipients_fingerprint,
};

/// What the file of one live key holds, as far as can be told without decrypting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// Neither a file nor metadata: svcacct never held this key's secret (a key made by hand
    /// and adopted, say). Nothing to replace; `svcacct rotate` brings it under svcacct.
    NotHeld,
    /// Metadata says svcacct held a key here, but the file is gone (deleted, not checked out,
    /// or a secret a backend minted that never arrived).
    Missing,
    /// A file whose metadata is missing or says nothing of its key (written before svcacct
    /// kept metadata): taken to hold the live key, as svcacct wrote it.
    Unrecorded,
    /// A file whose metadata names the key it holds.
    Holds {
        key_id: String,
        /// Whether it is encrypted to another recipient set than the config's.
        stale_recipients: bool,
    },
}

/// The key files' state, as the diff needs it.
pub trait KeyFiles {
    /// Whether the files can be checked here at all (a CI job that did not check out the
    /// secrets directory cannot, and must not read that as "every file is missing").
    fn available(&self) -> bool;
    /// What the file of `account`/`key` holds, for the live key `id`. A pending file of that
    /// id counts as holding it: the next apply moves it into place.
    fn held(&self, account: &str, key: &str, id: &str) -> Held;
    /// Every `(account, key)` that has a key file but no live key in `live`, in order: the
    /// orphans.
    fn orphans(&self, live: &LiveOrganization) -> Vec<(String, String)>;
    /// How messages name where the files are.
    fn describe(&self) -> String;
    /// How messages name one key's file.
    fn describe_file(&self, account: &str, key: &str) -> String;
}

/// What a plan needs of a key's metadata: the key it names and to whom its file is encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Facts {
    key_id: Option<String>,
    /// Shared: most keys have the same one, and the scan cache hands out one copy to all.
    recipients: Arc<str>,
}

impl From<KeyMeta> for Facts {
    fn from(meta: KeyMeta) -> Facts {
        Facts {
            key_id: meta.key_id,
            recipients: meta.recipients.into(),
        }
    }
}

/// What one key's directory entries are.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Entry {
    file: bool,
    /// What its metadata says: told by its name, or read from a file of the old layout
    /// (`None` when that does not parse).
    meta: Option<Facts>,
    meta_present: bool,
    /// The stamp of metadata of the old layout when it was read, for the scan cache (a
    /// name that says what the file holds needs none: the directory's stamp covers it). Boxed:
    /// most entries have none, and inline it would be half an entry's size (14 MB at 300,000
    /// keys).
    meta_stamp: Option<Box<cache::FileStamp>>,
    /// What an apply in flight (or one to recover) left: rare, so kept apart. A cached entry
    /// would otherwise carry two empty lists, at 300,000 keys a dozen megabytes.
    pending: Option<Box<Pending>>,
}

/// Ids of pending key files, and of pending metadata with what it says; and whether the key
/// has more than one metadata file (a promotion that died before removing what it replaced,
/// or a backup copied back), which is as unsettled: never cached.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Pending {
    files: Vec<String>,
    metas: Vec<(String, Option<Facts>)>,
    several_metas: bool,
}

impl Entry {
    fn pending(&mut self) -> &mut Pending {
        self.pending.get_or_insert_default()
    }

    /// Ids of pending key files.
    fn pending_files(&self) -> &[String] {
        self.pending.as_ref().map_or(&[], |p| &p.files)
    }

    /// The pending metadata of the key `id`, if any.
    fn pending_meta(&self, id: &str) -> Option<&Option<Facts>> {
        let p = self.pending.as_ref()?;
        p.metas.iter().find(|(p, _)| p == id).map(|(_, m)| m)
    }
}

/// The entries of one account's directory, by key: a few, so a list.
type Account = Vec<(String, Entry)>;

/// The key files of a secrets directory on disk, read once: one directory listing per
/// account and one small read per metadata file, spread over the machine's cores; an account
/// directory unchanged since the last scan is taken from [`cache`] instead.
pub struct SecretsDir {
    dir: PathBuf,
    available: bool,
    fingerprint: Arc<str>,
    /// Every account directory, as read now or as the cache has it, with its stamps.
    accounts: cache::Known,
    /// How many account directories were read, and how many taken from the cache.
    read: usize,
    reused: usize,
}

impl SecretsDir {
    /// Reads what `dir` holds; `recipients` are the config's, to tell stale files.
    pub fn scan(dir: &Path, recipients: &[Recipient]) -> SecretsDir {
        let cache = cache::location(dir);
        let cache = cache.as_deref().map(|c| (c, cache::SETTLED));
        SecretsDir::scan_with(dir, recipients, cache)
    }

    /// [`SecretsDir::scan`] with the scan cache at `cache`, trusting stamps that settled for
    /// the time given (none: no cache).
    fn scan_with(
        dir: &Path,
        recipients: &[Recipient],
        cache: Option<(&Path, Duration)>,
    ) -> SecretsDir {
        let mut s = SecretsDir {
            dir: dir.to_path_buf(),
            available: dir.is_dir(),
            fingerprint: recipients_fingerprint(recipients).into(),
            accounts: cache::Known::new(),
            read: 0,
            reused: 0,
        };
        if !s.available {
            return s;
        }
        // The secrets directory itself may be a link (to a checkout elsewhere, say); nothing
        // under it is followed.
        let top = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        );
        let Ok((top, names)) = top.and_then(list) else {
            return s;
        };
        let Ok(top) = top.fd() else {
            return s;
        };
        let started = cache::now();
        let mut known = cache.map(|(c, _)| cache::load(c, top)).unwrap_or_default();
        let scanned = scan_accounts((dir, top), names, &known, &s.fingerprint);
        // The cache's entries become the scan's: unchanged ones stay where they are, read ones
        // replace theirs, and those whose directory is gone go.
        let mut present = Vec::with_capacity(scanned.len());
        for (name, stamp, scan) in scanned {
            match scan {
                Scan::Unchanged => s.reused += 1,
                Scan::Read(account) => {
                    s.read += 1;
                    let fresh = cache::Cached { stamp, account };
                    known.insert(name.clone(), fresh);
                }
            }
            present.push(name);
        }
        let gone = known.len() > present.len();
        if gone {
            let present: HashSet<&str> = present.iter().map(String::as_str).collect();
            known.retain(|name, _| present.contains(name.as_str()));
        }
        s.accounts = known;
        if let Some((path, settle)) = cache.filter(|_| s.read > 0 || gone) {
            cache::store(path, top, started, settle, &s.accounts);
        }
        s
    }

    /// How many account directories were read, and how many taken from the scan cache.
    pub fn counts(&self) -> (usize, usize) {
        (self.read, self.reused)
    }

    /// Every `(account, key)` whose metadata has the old layout's name (`<key>.meta.json`),
    /// which is what the scan stamps.
    pub fn old_layout(&self) -> Vec<(&str, &str)> {
        let mut old = Vec::new();
        for (account, c) in &self.accounts {
            let keys = c.account.iter().filter(|(_, e)| e.meta_stamp.is_some());
            old.extend(keys.map(|(key, _)| (account.as_str(), key.as_str())));
        }
        old
    }
}

/// Opens the directory `name` in `at`; a symbolic link is never followed (the apply refuses
/// one outright), and anything but a directory is an error.
fn open_dir(at: impl AsFd, name: &CStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The names in a directory but `.` and `..`, with the directory kept open to read them by.
fn list(fd: OwnedFd) -> rustix::io::Result<(Dir, Vec<CString>)> {
    let mut dir = Dir::new(fd)?;
    let mut names = Vec::new();
    for entry in dir.by_ref() {
        let name = entry?.file_name().to_owned();
        if ![&b"."[..], b".."].contains(&name.as_bytes()) {
            names.push(name);
        }
    }
    Ok((dir, names))
}

/// One account directory's scan: the same as in the cache, or read now with its metadata
/// files' stamps.
enum Scan {
    Unchanged,
    Read(Account),
}

/// Reads every account directory among `names`, on every core: thirty thousand small reads
/// and ten thousand listings are most of a big plan's file checks, unless the directory's
/// stamps (its own and its metadata files') say it is as `known` has it.
fn scan_accounts(
    (dir, top): (&Path, BorrowedFd<'_>),
    names: Vec<CString>,
    known: &cache::Known,
    fingerprint: &Arc<str>,
) -> Vec<(String, cache::Stamp, Scan)> {
    let threads = crate::parallel::threads();
    let chunk = names.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = names
            .chunks(chunk)
            .map(|names| {
                s.spawn(move || {
                    names
                        .iter()
                        .filter_map(|name| {
                            let stamp = cache::Stamp::of(top, name)?;
                            let account = lossy(name);
                            if known
                                .get(&account)
                                .is_some_and(|c| c.unchanged(top, &account, stamp))
                            {
                                return Some((account, stamp, Scan::Unchanged));
                            }
                            let fd = open_dir(top, name).ok()?;
                            let keys = scan_account(fd, (dir, &account), fingerprint)?;
                            Some((account, stamp, Scan::Read(keys)))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("reading key files does not panic"))
            .collect()
    })
}

/// What one account's directory (`fd`, the secrets directory's `account`) holds, told by its
/// names; metadata of the old layout is read relative to the directory, and stamped.
/// `fingerprint` is the config's, shared by every key encrypted to its recipients.
fn scan_account(
    fd: OwnedFd,
    (secrets, account): (&Path, &str),
    fingerprint: &Arc<str>,
) -> Option<Account> {
    let (dir, names) = list(fd).ok()?;
    let dir = dir.fd().ok()?;
    let mut keys = Account::new();
    // What a metadata file says, and the stamp of one whose name does not say it.
    let facts = |name: &CStr, meta: MetaName<'_>| match meta {
        MetaName::Named {
            key_id, recipients, ..
        } => {
            let recipients = if *recipients == **fingerprint {
                fingerprint.clone()
            } else {
                recipients.into()
            };
            (Some(Facts { key_id, recipients }), None)
        }
        // Stamped before it is read: a later change shows.
        MetaName::Old { .. } => {
            let stamp = cache::FileStamp::of(dir, name).map(Box::new);
            (read_meta_in(dir, name).map(Facts::from), stamp)
        }
    };
    for name in &names {
        let file = lossy(name);
        if file.starts_with('.') {
            continue;
        }
        if let Some((key, id)) = file.split_once(".age.pending-") {
            entry(&mut keys, key).pending().files.push(id.to_string());
        } else if let Some((key, id)) = file.split_once(".meta.json.pending-") {
            let meta = read_meta_in(dir, name).map(Facts::from);
            entry(&mut keys, key)
                .pending()
                .metas
                .push((id.to_string(), meta));
        } else if let Some(meta) = parse_meta_name(&file) {
            let e = entry(&mut keys, meta.key());
            if e.meta_present {
                // Settled below, from all of the key's names.
                e.pending().several_metas = true;
                continue;
            }
            e.meta_present = true;
            (e.meta, e.meta_stamp) = facts(name, meta);
        } else if let Some(key) = file.strip_suffix(".age") {
            entry(&mut keys, key).file = true;
        }
    }
    // Rare: a key with several metadata files, of which the one the secrets layer believes
    // (`crate::secrets::file` says why).
    let several = |e: &Entry| e.pending.as_ref().is_some_and(|p| p.several_metas);
    if keys.iter().any(|(_, e)| several(e)) {
        let (path, files) = (secrets.join(account), names.iter().map(|n| lossy(n)));
        let files: Vec<String> = files.collect();
        for (key, e) in keys.iter_mut().filter(|(_, e)| several(e)) {
            let Some(file) = believed_meta(&path, &files, key) else {
                continue;
            };
            let at = files
                .iter()
                .position(|f| f == file)
                .expect("one of the names");
            let meta = parse_meta_name(file).expect("a metadata file's name");
            (e.meta, e.meta_stamp) = facts(&names[at], meta);
        }
    }
    Some(keys)
}

/// The entry of `key`, made if new.
fn entry<'a>(keys: &'a mut Account, key: &str) -> &'a mut Entry {
    match keys.iter().position(|(k, _)| k == key) {
        Some(i) => &mut keys[i].1,
        None => {
            keys.push((key.to_string(), Entry::default()));
            &mut keys.last_mut().expect("just pushed").1
        }
    }
}

fn lossy(name: &CStr) -> String {
    name.to_string_lossy().into_owned()
}

impl KeyFiles for SecretsDir {
    fn available(&self) -> bool {
        self.available
    }

    fn held(&self, account: &str, key: &str, id: &str) -> Held {
        let Some(e) = self
            .accounts
            .get(account)
            .and_then(|c| c.account.iter().find(|(k, _)| k == key))
            .map(|(_, e)| e)
        else {
            return Held::NotHeld;
        };
        let holds = |meta: &Facts| match &meta.key_id {
            Some(k) => Held::Holds {
                key_id: k.clone(),
                stale_recipients: *meta.recipients != *self.fingerprint,
            },
            None => Held::Unrecorded,
        };
        // Newest first: a pending file of the live key, or the metadata an interrupted apply
        // left pending after promoting the file.
        let pending_file = e.pending_files().iter().any(|p| p == id);
        if pending_file || e.file {
            if let Some(meta) = e.pending_meta(id) {
                return meta.as_ref().map_or(Held::Unrecorded, holds);
            }
            if pending_file {
                return Held::Unrecorded;
            }
        }
        match (e.file, &e.meta, e.meta_present) {
            (true, Some(meta), _) => holds(meta),
            (true, None, _) => Held::Unrecorded,
            (false, _, true) => Held::Missing,
            (false, _, false) => Held::NotHeld,
        }
    }

    fn orphans(&self, live: &LiveOrganization) -> Vec<(String, String)> {
        // The live accounts are walked and looked up in the scan's hash map, one look-up per
        // account and none per file: a look-up in the live organization's ordered map would
        // compare names a dozen times.
        fn add(
            files: &mut Vec<(String, String)>,
            account: &str,
            c: &cache::Cached,
            live_keys: Option<&SmallMap<String, LiveKey>>,
        ) {
            let orphans = c
                .account
                .iter()
                .filter(|(key, e)| e.file && !live_keys.is_some_and(|keys| keys.contains_key(key)));
            files.extend(orphans.map(|(key, _)| (account.to_string(), key.clone())));
        }
        let mut files = Vec::new();
        let mut found = 0;
        for (account, live_account) in &live.service_accounts {
            if let Some(c) = self.accounts.get(account) {
                found += 1;
                add(&mut files, account, c, Some(&live_account.keys));
            }
        }
        if found < self.accounts.len() {
            // Directories of accounts that are not live: all their files are orphans.
            for (account, c) in &self.accounts {
                if !live.service_accounts.contains_key(account) {
                    add(&mut files, account, c, None);
                }
            }
        }
        files.sort();
        files
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn describe_file(&self, account: &str, key: &str) -> String {
        key_file_path(&self.dir, account, key).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `<dir>/<account>/k.age` and its metadata naming `id`.
    fn key(dir: &Path, account: &str, id: &str) {
        let d = dir.join(account);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("k.age"), "ciphertext").unwrap();
        write_meta(&d, id);
    }

    fn meta(id: &str) -> String {
        format!(r#"{{"key_id": "{id}", "recipients": "sha256:r"}}"#)
    }

    /// Metadata naming `id`, written as svcacct writes it: a new file renamed into place.
    fn write_meta(account_dir: &Path, id: &str) {
        std::fs::write(account_dir.join(".tmp"), meta(id)).unwrap();
        std::fs::rename(account_dir.join(".tmp"), account_dir.join("k.meta.json")).unwrap();
    }

    /// What a plan sees of every account and key.
    fn seen(s: &SecretsDir, accounts: &[&str]) -> Vec<Held> {
        accounts.iter().map(|a| s.held(a, "k", "live")).collect()
    }

    fn holds(h: &Held, id: &str) -> bool {
        matches!(h, Held::Holds { key_id, .. } if key_id == id)
    }

    /// Stamps are trusted at once here; [`SETTLED`](cache::SETTLED) is for the clock's tick.
    const AT_ONCE: Duration = Duration::ZERO;

    #[test]
    fn unchanged_directories_come_from_the_cache_and_changed_ones_are_read_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("secrets");
        let cache = tmp.path().join("cache/key-files.bin");
        for a in ["a", "b", "c", "e"] {
            key(&dir, a, &format!("id-{a}"));
        }
        let scan = || SecretsDir::scan_with(&dir, &[], Some((&cache, AT_ONCE)));
        let uncached = || SecretsDir::scan_with(&dir, &[], None);
        let all = ["a", "b", "c", "d", "e"];
        assert_eq!(scan().counts(), (4, 0));
        let second = scan();
        assert_eq!(second.counts(), (0, 4), "every directory from the cache");
        assert_eq!(seen(&second, &all), seen(&uncached(), &all));
        let none_live = LiveOrganization::default();
        assert_eq!(second.orphans(&none_live), uncached().orphans(&none_live));
        assert_eq!(second.orphans(&none_live).len(), 4);
        assert!(holds(&seen(&second, &all)[0], "id-a"));

        // A deleted key file, metadata renamed over by another key's, a new account, and
        // metadata written in place (same size, so only its times tell): each read again.
        std::fs::remove_file(dir.join("b/k.age")).unwrap();
        write_meta(&dir.join("c"), "id-c2");
        key(&dir, "d", "id-d");
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(dir.join("e/k.meta.json"), meta("id-z")).unwrap();
        let third = scan();
        assert_eq!(third.counts(), (4, 1));
        let held = seen(&third, &all);
        assert_eq!(held[1], Held::Missing);
        assert!(holds(&held[2], "id-c2"));
        assert!(holds(&held[3], "id-d"));
        assert!(holds(&held[4], "id-z"));
        assert_eq!(held, seen(&uncached(), &all));
        assert_eq!(scan().counts(), (0, 5));
    }

    #[test]
    fn a_name_that_says_the_key_is_believed_unread_and_of_two_the_one_changed_last() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("secrets");
        let a = dir.join("a");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(a.join("k.age"), "ciphertext").unwrap();
        let fp = recipients_fingerprint(&[]);
        let name = |id| crate::secrets::meta_name("k", Some(id), &fp);
        // Content that does not even parse: the name is what a plan reads.
        std::fs::write(a.join(name("id-1")), "not json").unwrap();
        let scan = || SecretsDir::scan_with(&dir, &[], None);
        let fresh = Held::Holds {
            key_id: "id-1".into(),
            stale_recipients: false,
        };
        assert_eq!(scan().held("a", "k", "id-1"), fresh);
        // Encrypted to other recipients: stale.
        std::fs::rename(a.join(name("id-1")), a.join("k.id-1.abcd.meta.json")).unwrap();
        assert!(matches!(
            scan().held("a", "k", "id-1"),
            Held::Holds {
                stale_recipients: true,
                ..
            }
        ));
        // Two: whichever changed last, whatever it names.
        std::fs::rename(a.join("k.id-1.abcd.meta.json"), a.join(name("id-1"))).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(a.join(name("id-0")), "{}").unwrap();
        assert!(holds(&scan().held("a", "k", "id-1"), "id-0"));
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(a.join(name("id-1")), "{}").unwrap();
        assert!(holds(&scan().held("a", "k", "id-1"), "id-1"));
        // Such an account is never cached: the next change of either may not touch its
        // directory.
        let cache = tmp.path().join("key-files.bin");
        let cached = || SecretsDir::scan_with(&dir, &[], Some((&cache, AT_ONCE)));
        assert_eq!(cached().counts(), (1, 0));
        assert_eq!(cached().counts(), (1, 0));
        std::fs::remove_file(a.join(name("id-0"))).unwrap();
        assert_eq!(cached().counts(), (1, 0));
        assert_eq!(cached().counts(), (0, 1));
    }

    #[test]
    fn recent_changes_pending_files_and_a_foreign_or_broken_cache_mean_reading_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("secrets");
        let cache = tmp.path().join("key-files.bin");
        key(&dir, "a", "id-a");
        key(&dir, "b", "id-b");
        // Stamps younger than the settling time are not trusted: nothing is cached.
        let settling = || SecretsDir::scan_with(&dir, &[], Some((&cache, cache::SETTLED)));
        assert_eq!(settling().counts(), (2, 0));
        assert_eq!(settling().counts(), (2, 0));

        let scan = |dir: &Path| SecretsDir::scan_with(dir, &[], Some((&cache, AT_ONCE)));
        std::fs::write(dir.join("a/k.age.pending-id-new"), "ciphertext").unwrap();
        assert_eq!(scan(&dir).counts(), (2, 0));
        // The account with a pending file (an apply in flight) is never cached.
        let again = scan(&dir);
        assert_eq!(again.counts(), (1, 1));
        assert_eq!(again.held("a", "k", "id-new"), Held::Unrecorded);
        // Another secrets directory with the same names does not use this one's cache.
        let other = tmp.path().join("other");
        key(&other, "b", "id-other");
        let o = scan(&other);
        assert_eq!(o.counts(), (1, 0));
        assert!(holds(&o.held("b", "k", "live"), "id-other"));
        // Nor does anything from a broken file.
        std::fs::write(&cache, b"\x01\x02 not a cache").unwrap();
        assert_eq!(scan(&dir).counts(), (2, 0));
    }
}
