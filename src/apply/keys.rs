//! Key issue, and the promise that every live key svcacct issued has its file. Two protocols,
//! chosen by the backend's capabilities:
//!
//! - **Client-minted** (svcacct's own store): mint the secret, write its encrypted file as
//!   `<key>.age.pending-<id>` durably, register the hash, then rename the file into place. A
//!   crash at any point leaves either no live key or a pending file that the next apply's
//!   recovery promotes (the backend knows the key) or deletes (it does not).
//! - **Server-minted** (a SaaS that makes the secret itself): a durable intent first (the
//!   `.issuing` marker), then the call, then the file written the moment the secret arrives.
//!   Before the call, metadata saying svcacct means to hold the key is written (unless the
//!   key's metadata is already there). If the file write fails or the process dies first, the
//!   key is live without a file but with that metadata; the next plan shows it as `replace`,
//!   which rotates it with the configured overlap. Nothing is lost silently.

use std::sync::Mutex;

use time::OffsetDateTime;

use super::{ApplyOptions, Run, faults};
use crate::backend::{Backend, Minting};
use crate::operation::{Applied, IssuedSecret, KeyIssue, NewKey, Operation, Replaces};
use crate::parallel::on_threads;
use crate::secrets::{
    KeyFile, begin_issuing, end_issuing, expect_key, key_file_path, mint, promote_key_file,
    promote_key_files, recipients_fingerprint, sync_batch, write_key_file, write_key_files,
};

/// Keys are issued in chunks: files for a chunk, then one registration batch, so a crash
/// loses at most one chunk of registrations (their files are simply replaced next time).
const KEY_CHUNK: usize = 1024;

/// A key file written (or not): its place in the chunk, its change, and its registration.
type Written = (usize, usize, Result<Operation, String>);

/// Issues every key of the stage in chunks, between markers that tell a later apply whether
/// pending files may have been left behind.
pub(super) fn issue_all(
    run: &mut Run<'_>,
    issues: &[(usize, &Operation)],
    backend: &mut dyn Backend,
    opts: &ApplyOptions<'_>,
    now: OffsetDateTime,
) {
    let dir = opts.keys.dir;
    if let Err(e) = begin_issuing(dir) {
        for (change, _) in issues {
            run.failed(*change, format!("cannot write to {}: {e}", dir.display()));
        }
        return;
    }
    let mut settled = true;
    match opts.keys.minting {
        Minting::Client => {
            // The next chunk's secrets are minted and encrypted while this chunk's files are
            // synced, registered and promoted: those steps wait on the disk and the backend,
            // and a first apply of 300,000 keys spent half its time in them with a core idle.
            // Its files are pending ones of keys no backend knows until its own turn comes.
            let mut chunks = issues.chunks(KEY_CHUNK);
            let mut next = chunks.next().map(|c| write_files(c, opts, now));
            while let Some(written) = next {
                next = std::thread::scope(|s| {
                    let ahead = chunks
                        .next()
                        .map(|c| s.spawn(move || write_files(c, opts, now)));
                    settled &= settle_client_minted(run, written, backend, opts);
                    ahead.map(|h| h.join().expect("writing key files does not panic"))
                });
            }
        }
        Minting::Server => {
            for chunk in issues.chunks(KEY_CHUNK) {
                settled &= issue_server_minted(run, chunk, backend, opts);
            }
        }
    }
    if settled {
        // Every pending file was promoted or discarded; if removing the marker fails, the
        // next apply merely scans for nothing.
        let _ = end_issuing(dir);
    }
}

/// Takes a chunk whose keys were minted and whose files were written ([`write_files`]): makes
/// the files durable at once, then registers the hashes of those written in one batch, and
/// promotes them. Returns whether every pending file was promoted or discarded.
fn settle_client_minted(
    run: &mut Run<'_>,
    mut written: Vec<Written>,
    backend: &mut dyn Backend,
    opts: &ApplyOptions<'_>,
) -> bool {
    let mut changes = Vec::new();
    let mut ops = Vec::new();
    let mut settled = true;
    if let Err(e) = sync_batch(opts.keys.dir) {
        // Nothing unsynced may be registered; the files stay pending until recovery.
        for (_, _, result) in &mut written {
            if result.is_ok() {
                *result = Err(format!("the key file could not be made durable: {e}"));
            }
        }
    }
    for (_, change, result) in written {
        match result {
            Ok(op) => {
                changes.push(change);
                ops.push(op);
            }
            Err(e) => {
                // A write that failed half way may leave a temporary file to clean up.
                settled = false;
                run.failed(change, e);
            }
        }
    }
    let registered = faults::registered(backend.apply(ops.clone()));
    faults::before_promotion();
    let mut to_promote = Vec::new();
    for ((change, op), result) in changes.into_iter().zip(&ops).zip(registered) {
        let Operation::RegisterKey { account, name, key } = op else {
            unreachable!("write_one makes registrations only");
        };
        match result {
            Ok(_) => to_promote.push((change, account.as_str(), name.as_str(), key.id.as_str())),
            Err(e) => {
                // An error does not prove the key was not registered: over a network the
                // backend may have committed it and lost the answer. So the pending file stays,
                // and the next apply's recovery promotes it if the key is live, or deletes it.
                settled = false;
                run.failed(change, e.report());
            }
        }
    }
    promote(run, to_promote, opts) && settled
}

/// Moves the registered keys' pending files into place, an account's together on the apply's
/// threads; whether every one moved. A file that did not is reported: the key is live, and the
/// next apply's recovery moves it.
fn promote(
    run: &mut Run<'_>,
    to_promote: Vec<(usize, &str, &str, &str)>,
    opts: &ApplyOptions<'_>,
) -> bool {
    let dir = opts.keys.dir;
    let recipients = &recipients_fingerprint(opts.keys.recipients);
    let mut settled = true;
    let groups = by_account(to_promote.into_iter(), |&(_, account, ..)| account);
    let promoted = Mutex::new(Vec::with_capacity(groups.len()));
    on_threads(opts.parallelism, &groups, |group| {
        let account = group[0].1;
        let keys: Vec<(&str, &str)> = group.iter().map(|&(_, _, k, id)| (k, id)).collect();
        let moved = promote_key_files(dir, account, &keys, recipients);
        promoted.lock().expect("no panics while held").extend(
            group
                .iter()
                .zip(moved)
                .map(|(&(c, a, k, _), m)| (c, a, k, m)),
        );
    });
    let mut promoted = promoted.into_inner().expect("no panics while held");
    promoted.sort_by_key(|(change, ..)| *change);
    if let Err(e) = sync_batch(dir) {
        for (.., moved) in &mut promoted {
            if moved.is_ok() {
                *moved = Err(std::io::Error::new(
                    e.kind(),
                    format!("not made durable: {e}"),
                ));
            }
        }
    }
    for (change, account, name, moved) in promoted {
        match moved {
            Ok(()) => {
                run.outcome
                    .key_files
                    .push(key_file_path(dir, account, name));
                run.succeeded(change);
            }
            Err(e) => {
                settled = false;
                run.failed(
                    change,
                    format!("the key is registered but its file could not be moved into place ({e}); the next apply finishes it"),
                )
            }
        }
    }
    settled
}

/// Mints the chunk's keys and writes their pending files on `parallelism` threads, an
/// account's keys together; the results in the chunk's order.
fn write_files(
    chunk: &[(usize, &Operation)],
    opts: &ApplyOptions<'_>,
    now: OffsetDateTime,
) -> Vec<Written> {
    let groups = by_account(chunk.iter().enumerate(), |&(_, &(_, op))| issue_of(op).0);
    let results: Mutex<Vec<Written>> = Mutex::new(Vec::with_capacity(chunk.len()));
    on_threads(opts.parallelism, &groups, |group| {
        let written = write_group(group.iter().map(|(_, (_, op))| *op), opts, now);
        let mut results = results.lock().expect("no panics while held");
        for (&(n, &(change, _)), result) in group.iter().zip(written) {
            if result.is_ok() {
                faults::key_file_written();
            }
            results.push((n, change, result));
        }
    });
    let mut results = results.into_inner().expect("no panics while held");
    results.sort_by_key(|(n, ..)| *n);
    results
}

/// `items` grouped by account, in the order each account first appears.
fn by_account<'a, T>(
    items: impl Iterator<Item = T>,
    account: impl Fn(&T) -> &'a str,
) -> Vec<Vec<T>> {
    let mut index: std::collections::HashMap<&'a str, usize> = Default::default();
    let mut groups: Vec<Vec<T>> = Vec::new();
    for item in items {
        let n = *index.entry(account(&item)).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[n].push(item);
    }
    groups
}

/// The parts of an `IssueKey` operation.
fn issue_of(op: &Operation) -> (&str, &str, &KeyIssue) {
    match op {
        Operation::IssueKey { account, name, key } => (account, name, key),
        _ => unreachable!("only key issues reach the keys module"),
    }
}

/// Mints the keys of one account and writes their files; the returned operations register
/// their hashes.
fn write_group<'a>(
    ops: impl Iterator<Item = &'a Operation>,
    opts: &ApplyOptions<'_>,
    now: OffsetDateTime,
) -> Vec<Result<Operation, String>> {
    let keys: Vec<_> = ops
        .map(|op| {
            let (account, name, issue) = issue_of(op);
            let expires_at = issue.settings.expires_in.map(|d| now + d.to_time());
            (account, name, issue, mint(), expires_at)
        })
        .collect();
    let Some(&(account, ..)) = keys.first() else {
        return Vec::new();
    };
    let payloads: Vec<KeyFile<'_>> = keys
        .iter()
        .map(|(account, name, _, key, expires_at)| KeyFile {
            organization: opts.keys.organization,
            service_account: account,
            key: name,
            key_id: &key.id,
            secret: &key.secret,
            created_at: now,
            expires_at: *expires_at,
        })
        .collect();
    let written = write_key_files(opts.keys.dir, opts.keys.recipients, account, &payloads);
    if let Some(minted) = opts.keys.minted {
        for (account, name, _, key, _) in &keys {
            minted.keep(account, name, &key.id, &key.secret);
        }
    }
    keys.iter()
        .zip(written)
        .map(|((account, name, issue, key, expires_at), written)| {
            written.map_err(|e| format!("cannot write key file: {e}"))?;
            Ok(Operation::RegisterKey {
                account: account.to_string(),
                name: name.to_string(),
                key: NewKey {
                    id: key.id.clone(),
                    hash: key.hash.clone(),
                    display_prefix: key.display_prefix.clone(),
                    created_at: now,
                    expires_at: *expires_at,
                    settings: issue.settings.clone(),
                    replaces: issue.replaces.as_ref().map(|r| Replaces {
                        id: r.id.clone(),
                        retires_at: now + r.overlap.to_time(),
                    }),
                },
            })
        })
        .collect()
}

/// Asks the backend for each key and writes its file the moment the secret arrives. Returns
/// whether every issued key has its file.
fn issue_server_minted(
    run: &mut Run<'_>,
    chunk: &[(usize, &Operation)],
    backend: &mut dyn Backend,
    opts: &ApplyOptions<'_>,
) -> bool {
    // Before the call: if the secret never arrives, the key's metadata says svcacct meant to
    // hold it, so the next plan replaces the key instead of taking it for one made elsewhere.
    let mut calls = Vec::new();
    let mut ops = Vec::new();
    for &(change, op) in chunk {
        let (account, name, _) = issue_of(op);
        match expect_key(opts.keys.dir, account, name) {
            Ok(()) => {
                calls.push((change, op));
                ops.push(op.clone());
            }
            Err(e) => run.failed(change, format!("cannot write key metadata: {e}")),
        }
    }
    let mut settled = true;
    for (&(change, op), result) in calls.iter().zip(backend.apply(ops)) {
        let (account, name, _) = issue_of(op);
        match result {
            Ok(Applied::Issued(issued)) => match write_issued(opts, account, name, &issued) {
                Ok(()) => {
                    run.outcome
                        .key_files
                        .push(key_file_path(opts.keys.dir, account, name));
                    run.succeeded(change);
                }
                Err(e) => {
                    settled = false;
                    run.failed(
                        change,
                        format!("the key was issued but its file could not be written ({e}); the next plan replaces it"),
                    );
                }
            },
            Ok(Applied::Done) => run.failed(
                change,
                "the backend issued no secret for the key; the next plan replaces it".into(),
            ),
            Err(e) => run.failed(change, e.report()),
        }
    }
    settled
}

/// Writes a server-minted key's file durably: pending first, then into place (the key is
/// already live, so there is nothing to wait for).
fn write_issued(
    opts: &ApplyOptions<'_>,
    account: &str,
    name: &str,
    issued: &IssuedSecret,
) -> std::io::Result<()> {
    write_key_file(
        opts.keys.dir,
        opts.keys.recipients,
        &KeyFile {
            organization: opts.keys.organization,
            service_account: account,
            key: name,
            key_id: &issued.id,
            secret: &issued.secret,
            created_at: issued.created_at,
            expires_at: issued.expires_at,
        },
    )?;
    if let Some(minted) = opts.keys.minted {
        minted.keep(account, name, &issued.id, &issued.secret);
    }
    let recipients = recipients_fingerprint(opts.keys.recipients);
    promote_key_file(opts.keys.dir, account, name, &issued.id, &recipients)
}
