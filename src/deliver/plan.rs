//! What delivery and traffic-verified rotation add to a plan, from the config, the live
//! organization and the keys' local metadata only: a plan sends nothing to any target.
//!
//! - `→ deliver` for each key whose targets lack its live key id (a new target, a new key,
//!   a delivery that failed or died midway);
//! - no retirement of a rotated-out key before every target holds its replacement;
//! - with `verify_traffic`, the old key is retired once the new one has been used, and the
//!   plan says which case holds.

use std::collections::BTreeSet;
use std::path::Path;

use time::OffsetDateTime;
use time::macros::format_description;

use super::{delivered_ids, read_delivered};
use crate::address::Address;
use crate::config::delivery::{Deliveries, KeyDelivery, Target};
use crate::model::{LiveOrganization, Organization, RetiringKey};
use crate::operation::Operation;
use crate::plan::{Action, Change, Plan, Snapshot};

/// Applies `verify_traffic`: retires a rotated-out key early once its replacement is in use,
/// says what it waits for otherwise, and warns when the overlap ended with no use at all.
pub fn verify_traffic(
    plan: &mut Plan,
    desired: &Organization,
    live: &LiveOrganization,
    deliveries: &Deliveries,
    now: OffsetDateTime,
) {
    for r in &live.retiring_keys {
        let wanted = desired
            .service_accounts
            .get(&r.service_account)
            .is_some_and(|a| a.keys.contains_key(&r.key));
        let verify = deliveries
            .get(&(r.service_account.clone(), r.key.clone()))
            .is_some_and(|d| d.verify_traffic);
        let Some(current) = live
            .service_accounts
            .get(&r.service_account)
            .and_then(|a| a.keys.get(&r.key))
        else {
            continue;
        };
        if !wanted || !verify || !(r.managed || current.settings.managed) {
            continue;
        }
        let address = Address::key(&r.service_account, &r.key);
        let rotated_at = current.issued.created_at;
        let used = current.issued.last_used_at.filter(|t| *t >= rotated_at);
        if r.retires_at <= now {
            if used.is_none() {
                warn_never_used(plan, &address, r, (&current.issued.id, rotated_at), now);
            }
            continue;
        }
        match used {
            Some(t) => plan.changes.push(retire_early(&address, r, t, now)),
            None => plan.notes.push(format!(
                "{address}: waiting for the new key's first use (rotated {} ago; overlap ends in {})",
                coarse(now - rotated_at),
                coarse(r.retires_at - now)
            )),
        }
    }
}

/// Warns that the overlap of rotated-out key `r` ended before the new key was ever used, and
/// says so in the reason of its retirement.
fn warn_never_used(
    plan: &mut Plan,
    address: &Address,
    r: &RetiringKey,
    (new_id, rotated_at): (&str, OffsetDateTime),
    now: OffsetDateTime,
) {
    let message = format!(
        "{address}: the overlap ended and the new key {} was never used: the consumer never switched to it; the old key {} is retired as configured",
        new_id, r.id
    );
    if let Some(c) = plan.changes.iter_mut().find(|c| {
        c.address == *address && c.action == Action::Retire && c.revokes == [r.id.clone()]
    }) {
        c.reason = Some(format!(
            "its overlap has ended, and the new key was never used: the consumer never switched (rotated {} ago)",
            coarse(now - rotated_at)
        ));
    }
    plan.warnings.push(message);
}

/// The retirement of rotated-out key `r` before its overlap ends, the new key being in use
/// since `used_at`.
fn retire_early(
    address: &Address,
    r: &RetiringKey,
    used_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Change {
    let mut c = retire(address, r);
    c.reason = Some(format!(
        "new key in use since {}: retire the old one (its overlap would end in {})",
        clock(used_at),
        coarse(r.retires_at - now)
    ));
    c
}

/// A retirement of rotated-out key `r`, as the diff makes one.
fn retire(address: &Address, r: &RetiringKey) -> Change {
    Change {
        address: address.clone(),
        action: Action::Retire,
        reason: None,
        before: Some(Snapshot::RotatedOut {
            key_id: r.id.clone(),
            retires_at: r.retires_at,
        }),
        after: None,
        work: vec![Operation::RevokeKey {
            account: r.service_account.clone(),
            name: r.key.clone(),
            id: r.id.clone(),
        }],
        revokes: vec![r.id.clone()],
        depends_on: Vec::new(),
    }
}

/// Adds a `deliver` change for every key whose targets lack its live key id, and holds back
/// the retirement of a rotated-out key until every target holds its replacement.
pub fn add_deliveries(
    plan: &mut Plan,
    desired: &Organization,
    live: &LiveOrganization,
    deliveries: &Deliveries,
    (secrets_dir, now): (&Path, OffsetDateTime),
) {
    let mut held_back: BTreeSet<Address> = BTreeSet::new();
    for ((account, key), d) in deliveries {
        if d.targets.is_empty()
            || !desired
                .service_accounts
                .get(account)
                .is_some_and(|a| a.keys.contains_key(key))
        {
            continue;
        }
        let address = Address::key(account, key);
        let Some(lacking) = lacking_targets(plan, live, secrets_dir, (account, key), d) else {
            continue;
        };
        if lacking.missing.is_empty() {
            continue;
        }
        held_back.insert(address.clone());
        plan.changes.push(deliver_change(address, d, lacking));
    }
    hold_back_retirements(plan, &held_back, now);
}

/// The targets of one key that lack the key they should hold, and why.
struct Lacking<'a> {
    /// The targets to deliver to.
    missing: Vec<&'a Target>,
    /// Which key they lack: the new one, or the live one by id.
    reason: String,
    /// The change issuing the new key, if any.
    depends_on: Vec<usize>,
    /// The targets already holding the live key.
    before: Option<Snapshot>,
}

/// Which targets of a key lack it: all of them when the plan issues a new key, otherwise
/// those whose recorded delivery is not of the live key; `None` when svcacct holds no
/// secret for the live key (or there is none).
fn lacking_targets<'a>(
    plan: &Plan,
    live: &LiveOrganization,
    secrets_dir: &Path,
    (account, key): (&str, &str),
    d: &'a KeyDelivery,
) -> Option<Lacking<'a>> {
    let address = Address::key(account, key);
    let issuing = plan.changes.iter().position(|c| {
        c.address == address
            && matches!(c.action, Action::Create | Action::Replace | Action::Rotate)
    });
    if let Some(i) = issuing {
        return Some(Lacking {
            missing: d.targets.iter().collect(),
            reason: "the new key".to_string(),
            depends_on: vec![i],
            before: None,
        });
    }
    let current = live
        .service_accounts
        .get(account)
        .and_then(|a| a.keys.get(key))?;
    let (file_id, delivered) = read_delivered(secrets_dir, account, key);
    if file_id.as_deref() != Some(current.issued.id.as_str()) {
        // svcacct does not hold this key's secret: nothing to deliver from
        // (the diff lists or replaces it).
        return None;
    }
    let have = delivered_ids(&delivered, &current.issued.id);
    let missing: Vec<&Target> = d
        .targets
        .iter()
        .filter(|t| !have.contains(&t.to_string().as_str()))
        .collect();
    let holding = Snapshot::Delivery {
        key_id: Some(current.issued.id.clone()),
        targets: d
            .targets
            .iter()
            .map(Target::to_string)
            .filter(|t| have.contains(&t.as_str()))
            .collect(),
    };
    Some(Lacking {
        missing,
        reason: format!("the live key {}", current.issued.id),
        depends_on: Vec::new(),
        before: Some(holding),
    })
}

/// The `deliver` change bringing a key to the targets that lack it.
fn deliver_change(address: Address, d: &KeyDelivery, lacking: Lacking<'_>) -> Change {
    let all: Vec<String> = d.targets.iter().map(Target::to_string).collect();
    let names: Vec<String> = lacking.missing.iter().map(|t| t.to_string()).collect();
    let before = lacking.before;
    Change {
        address,
        action: Action::Deliver,
        reason: Some(format!(
            "{} to {} (lacking it)",
            lacking.reason,
            names.join(", ")
        )),
        after: Some(Snapshot::Delivery {
            key_id: before.as_ref().and_then(|b| match b {
                Snapshot::Delivery { key_id, .. } => key_id.clone(),
                _ => None,
            }),
            targets: all,
        }),
        before,
        work: Vec::new(),
        revokes: Vec::new(),
        depends_on: lacking.depends_on,
    }
}

/// Removes the retirement of every rotated-out key in `held_back` (whose replacement has not
/// reached every target), saying so, and warning when its overlap has already ended.
fn hold_back_retirements(plan: &mut Plan, held_back: &BTreeSet<Address>, now: OffsetDateTime) {
    // No key is retired before its replacement reached every target.
    let removed: Vec<usize> = plan
        .changes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.action == Action::Retire && held_back.contains(&c.address))
        .map(|(i, _)| i)
        .collect();
    for &i in &removed {
        let c = &plan.changes[i];
        plan.notes.push(format!(
            "{}: the rotated-out key {} is retired once every delivery target holds the new key",
            c.address,
            c.revokes.join(", ")
        ));
        // The backend bounds a rotated-out key by its overlap whatever svcacct does: past
        // it, the consumers still on the old key are failing now.
        if let Some(Snapshot::RotatedOut { retires_at, .. }) = &c.before
            && *retires_at <= now
        {
            plan.warnings.push(format!(
                "{}: the overlap of the old key {} ended at {} but the new key has not reached every delivery target: consumers still holding the old key are failing; deliver it now (`svcacct apply -i IDENTITY`)",
                c.address,
                c.revokes.join(", "),
                clock(*retires_at)
            ));
        }
    }
    remove_changes(plan, &removed);
}

/// Removes the changes at `removed` (ascending), keeping every other change's dependencies
/// pointing at the same changes.
fn remove_changes(plan: &mut Plan, removed: &[usize]) {
    if removed.is_empty() {
        return;
    }
    let new_index = |i: usize| -> Option<usize> {
        (!removed.contains(&i)).then(|| i - removed.iter().filter(|&&r| r < i).count())
    };
    let old = std::mem::take(&mut plan.changes);
    for (i, mut c) in old.into_iter().enumerate() {
        if removed.contains(&i) {
            continue;
        }
        c.depends_on = c.depends_on.iter().filter_map(|&d| new_index(d)).collect();
        plan.changes.push(c);
    }
}

/// `3 h`, `21 h`, `2 d`, `40 min`: coarse, in the largest whole unit.
fn coarse(d: time::Duration) -> String {
    let s = d.whole_seconds().max(0);
    match s {
        s if s >= 2 * 86_400 => format!("{} d", s / 86_400),
        s if s >= 3600 => format!("{} h", s / 3600),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// `2027-01-31 10:42 UTC`.
fn clock(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_default()
}
