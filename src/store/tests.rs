//! Unit tests of the store on real SQLite files in a temporary directory.

use time::macros::datetime;

use super::{Store, StoreError};
use crate::model::{ApiKey, Role, ServiceAccount, Team};
use crate::operation::{NewKey, Operation, Replaces};
use crate::secrets::mint;

const NOW: time::OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("org.db")).unwrap();
    store.ensure_organization("acme", NOW).unwrap();
    (dir, store)
}

fn apply(store: &mut Store, ops: Vec<Operation>) -> Vec<Result<(), StoreError>> {
    store.apply("acme", "test", &ops, NOW).unwrap()
}

/// A role, a team, an account in it, and one key registered by hash.
fn populated() -> (tempfile::TempDir, Store, crate::secrets::MintedKey) {
    let (dir, mut store) = store();
    let key = mint();
    let ops = vec![
        Operation::PutRole {
            name: "reader".into(),
            role: Role {
                permissions: ["flows:read".to_string()].into(),
                managed: true,
                ..Default::default()
            },
        },
        Operation::PutTeam {
            name: "platform".into(),
            team: Team::default(),
        },
        Operation::PutServiceAccount {
            name: "bot".into(),
            account: ServiceAccount {
                managed: true,
                ..Default::default()
            },
        },
        Operation::SetMemberships {
            account: "bot".into(),
            teams: crate::model::SmallMap::from_iter([("platform".into(), "reader".into())]),
        },
        Operation::RegisterKey {
            account: "bot".into(),
            name: "main".into(),
            key: NewKey {
                id: key.id.clone(),
                hash: key.hash.clone(),
                display_prefix: key.display_prefix.clone(),
                created_at: NOW,
                expires_at: None,
                settings: ApiKey::default(),
                replaces: None,
            },
        },
    ];
    for r in apply(&mut store, ops) {
        r.unwrap();
    }
    (dir, store, key)
}

#[test]
fn what_is_written_is_read_back_in_the_snapshot_and_verifies() {
    let (_dir, store, key) = populated();
    let org = store
        .snapshot("acme")
        .unwrap()
        .expect("the organization exists");
    let bot = &org.service_accounts["bot"];
    assert_eq!(bot.teams.get("platform").unwrap(), "reader");
    assert_eq!(bot.keys.get("main").unwrap().issued.id, key.id);
    assert!(org.revision > 1, "every write bumps the revision");
    let v = store.verify(&key.secret, NOW).unwrap();
    assert!(v.valid);
    assert_eq!(v.permissions, ["flows:read"]);
}

#[test]
fn a_rotated_key_works_until_its_overlap_ends_and_the_old_one_is_listed_as_retiring() {
    let (_dir, mut store, old) = populated();
    let new = mint();
    let retires_at = NOW + time::Duration::days(1);
    let results = apply(
        &mut store,
        vec![Operation::RegisterKey {
            account: "bot".into(),
            name: "main".into(),
            key: NewKey {
                id: new.id.clone(),
                hash: new.hash.clone(),
                display_prefix: new.display_prefix.clone(),
                created_at: NOW,
                expires_at: None,
                settings: ApiKey::default(),
                replaces: Some(Replaces {
                    id: old.id.clone(),
                    retires_at,
                }),
            },
        }],
    );
    results.into_iter().for_each(|r| r.unwrap());
    let org = store.snapshot("acme").unwrap().unwrap();
    assert_eq!(org.retiring_keys.len(), 1);
    assert_eq!(org.retiring_keys[0].id, old.id);
    assert!(store.verify(&old.secret, NOW).unwrap().valid);
    let later = store.verify(&old.secret, retires_at).unwrap();
    assert_eq!(later.reason.as_deref(), Some("retired"));
    assert!(store.verify(&new.secret, retires_at).unwrap().valid);
}

#[test]
fn refusals_are_typed_and_change_nothing() {
    let (_dir, mut store, key) = populated();
    let before = store.snapshot("acme").unwrap().unwrap();
    let results = apply(
        &mut store,
        vec![
            Operation::DeleteRole {
                name: "admin".into(),
            },
            Operation::SetMemberships {
                account: "bot".into(),
                teams: crate::model::SmallMap::from_iter([("nowhere".into(), "reader".into())]),
            },
            Operation::IssueKey {
                account: "bot".into(),
                name: "other".into(),
                key: crate::operation::KeyIssue {
                    settings: ApiKey::default(),
                    replaces: None,
                },
            },
            Operation::RegisterKey {
                account: "bot".into(),
                name: "again".into(),
                key: NewKey {
                    id: key.id.clone(),
                    hash: key.hash.clone(),
                    display_prefix: key.display_prefix.clone(),
                    created_at: NOW,
                    expires_at: None,
                    settings: ApiKey::default(),
                    replaces: None,
                },
            },
        ],
    );
    assert!(
        matches!(
            results[0],
            Err(StoreError::Protected { .. } | StoreError::Conflict { .. })
        ),
        "{:?}",
        results[0]
    );
    assert!(
        matches!(results[1], Err(StoreError::NotFound { .. })),
        "{:?}",
        results[1]
    );
    assert!(
        matches!(results[2], Err(StoreError::Conflict { .. })),
        "{:?}",
        results[2]
    );
    assert!(
        matches!(results[3], Err(StoreError::Duplicate(_))),
        "{:?}",
        results[3]
    );
    let after = store.snapshot("acme").unwrap().unwrap();
    assert_eq!(after.service_accounts, before.service_accounts);
    assert_eq!(after.roles, before.roles);
}
