//! The wire's documented JSON, pinned: every operation as the batch writes it, the defaults a
//! write may leave out, and a snapshot's round trip.

use std::collections::BTreeSet;

use serde_json::Value;
use time::macros::{date, datetime};

use super::*;
use crate::duration::Duration;
use crate::model;
use crate::operation::{self, Operation};

/// Every operation, as the wire writes it: renaming a variant or a field of `Operation`,
/// or of the model types it carries, must not change these.
#[test]
fn each_operation_has_its_documented_json() {
    let cases = object_writes().into_iter().chain(key_writes());
    for (op, expected) in cases {
        let before = format!("{op:?}");
        let json = serde_json::to_string(&BatchOperation::try_from(op).unwrap()).unwrap();
        assert_eq!(json, expected);
        let back: BatchOperation = serde_json::from_str(expected).unwrap();
        assert_eq!(format!("{:?}", Operation::from(back)), before);
    }
}

/// Writes and deletions of roles, teams and accounts, with their documented JSON.
fn object_writes() -> Vec<(Operation, &'static str)> {
    vec![
        (
            Operation::PutRole {
                name: "deployer".into(),
                role: model::Role {
                    description: "Deploys".into(),
                    permissions: BTreeSet::from(["deployments:read".into()]),
                    builtin: false,
                    managed: true,
                    protect: false,
                },
            },
            r#"{"op":"put_role","name":"deployer","role":{"description":"Deploys","permissions":["deployments:read"],"builtin":false,"managed":true,"protect":false}}"#,
        ),
        (
            Operation::PutTeam {
                name: "platform".into(),
                team: model::Team {
                    description: "Platform".into(),
                    managed: true,
                    protect: true,
                },
            },
            r#"{"op":"put_team","name":"platform","team":{"description":"Platform","managed":true,"protect":true}}"#,
        ),
        (
            Operation::PutServiceAccount {
                name: "ci-bot".into(),
                account: model::ServiceAccount {
                    description: "CI".into(),
                    admin: false,
                    expires: Some(date!(2027 - 06 - 30)),
                    disabled: true,
                    protect: false,
                    managed: true,
                    ..Default::default()
                },
            },
            r#"{"op":"put_service_account","name":"ci-bot","account":{"description":"CI","teams":{},"admin":false,"expires":"2027-06-30","disabled":true,"protect":false,"managed":true,"keys":{}}}"#,
        ),
        (
            Operation::SetMemberships {
                account: "ci-bot".into(),
                teams: crate::model::SmallMap::from_iter([("platform".into(), "deployer".into())]),
            },
            r#"{"op":"set_memberships","account":"ci-bot","teams":{"platform":"deployer"}}"#,
        ),
        (
            Operation::DeleteServiceAccount {
                name: "ci-bot".into(),
            },
            r#"{"op":"delete_service_account","name":"ci-bot"}"#,
        ),
        (
            Operation::DeleteTeam {
                name: "platform".into(),
            },
            r#"{"op":"delete_team","name":"platform"}"#,
        ),
        (
            Operation::DeleteRole {
                name: "deployer".into(),
            },
            r#"{"op":"delete_role","name":"deployer"}"#,
        ),
    ]
}

/// Key writes, with their documented JSON.
fn key_writes() -> Vec<(Operation, &'static str)> {
    let key = model::ApiKey {
        description: "prod runner".into(),
        scopes: BTreeSet::from(["flows:read".into()]),
        expires_in: Some(Duration(90 * 86_400)),
        rotate_every: None,
        overlap: Some(Duration(3_600)),
        managed: true,
    };
    vec![
        (
            Operation::RegisterKey {
                account: "ci-bot".into(),
                name: "prod".into(),
                key: operation::NewKey {
                    id: "k2".into(),
                    hash: "ab".repeat(32),
                    display_prefix: "svca_AbCd".into(),
                    created_at: datetime!(2026-01-01 00:00 UTC),
                    expires_at: Some(datetime!(2026-04-01 00:00 UTC)),
                    settings: key.clone(),
                    replaces: Some(operation::Replaces {
                        id: "k1".into(),
                        retires_at: datetime!(2026-01-02 00:00 UTC),
                    }),
                },
            },
            concat!(
                r#"{"op":"register_key","account":"ci-bot","name":"prod","key":{"id":"k2","#,
                r#""hash":"abababababababababababababababababababababababababababababababab","#,
                r#""display_prefix":"svca_AbCd","created_at":"2026-01-01T00:00:00Z","#,
                r#""expires_at":"2026-04-01T00:00:00Z","settings":{"description":"prod runner","#,
                r#""scopes":["flows:read"],"expires_in":"90d","rotate_every":null,"overlap":"1h","#,
                r#""managed":true,"issued":null},"#,
                r#""replaces":{"id":"k1","retires_at":"2026-01-02T00:00:00Z"}}}"#
            ),
        ),
        (
            Operation::UpdateKey {
                account: "ci-bot".into(),
                name: "prod".into(),
                key,
            },
            concat!(
                r#"{"op":"update_key","account":"ci-bot","name":"prod","key":{"description":"prod runner","#,
                r#""scopes":["flows:read"],"expires_in":"90d","rotate_every":null,"overlap":"1h","#,
                r#""managed":true,"issued":null}}"#
            ),
        ),
        (
            Operation::RevokeKey {
                account: "ci-bot".into(),
                name: "prod".into(),
                id: "k1".into(),
            },
            r#"{"op":"revoke_key","account":"ci-bot","name":"prod","id":"k1"}"#,
        ),
    ]
}

#[test]
fn a_batch_write_may_leave_out_what_has_a_default_but_not_add_fields() {
    let op: BatchOperation =
        serde_json::from_str(r#"{"op":"put_role","name":"r","role":{}}"#).unwrap();
    let Operation::PutRole { role, .. } = Operation::from(op) else {
        panic!("a put_role")
    };
    assert_eq!(role, model::Role::default());
    for bad in [
        r#"{"op":"put_role","name":"r","role":{"admin":true}}"#,
        r#"{"op":"put_role","name":"r","role":{},"extra":1}"#,
        r#"{"op":"grant_everything","name":"r"}"#,
    ] {
        assert!(
            serde_json::from_str::<BatchOperation>(bad).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn a_snapshot_round_trips_and_a_missing_field_is_an_error() {
    let mut org = model::LiveOrganization::new("acme");
    let mut account = model::LiveAccount {
        teams: crate::model::SmallMap::from_iter([("platform".into(), "viewer".into())]),
        ..Default::default()
    };
    account.keys.insert(
        "prod".into(),
        model::LiveKey {
            settings: model::ApiKey {
                scopes: BTreeSet::from(["flows:read".into()]),
                ..Default::default()
            },
            issued: model::IssuedKey {
                id: "k1".into(),
                created_at: datetime!(2026-01-01 00:00 UTC),
                expires_at: None,
                last_used_at: None,
            },
        },
    );
    org.service_accounts.insert("ci-bot".into(), account);
    org.teams.insert("platform".into(), model::Team::default());
    let json = serde_json::to_value(Organization::from(org.clone())).unwrap();
    let back: Organization = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(model::LiveOrganization::from(back), org);

    // A live key is issued: null issue facts do not decode either.
    let mut null_issued = json.clone();
    null_issued["service_accounts"]["ci-bot"]["keys"]["prod"]["issued"] = Value::Null;
    assert!(serde_json::from_value::<Organization>(null_issued).is_err());

    // Each field a plan reads about live access: left out, the snapshot does not decode.
    for pointer in [
        "/revision",
        "/retiring_keys",
        "/roles/viewer/protect",
        "/roles/viewer/builtin",
        "/teams/platform/protect",
        "/service_accounts/ci-bot/disabled",
        "/service_accounts/ci-bot/expires",
        "/service_accounts/ci-bot/admin",
        "/service_accounts/ci-bot/keys/prod/scopes",
        "/service_accounts/ci-bot/keys/prod/expires_in",
        "/service_accounts/ci-bot/keys/prod/issued",
    ] {
        let mut partial = json.clone();
        let (parent, field) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut partial
        } else {
            partial.pointer_mut(parent).unwrap()
        };
        assert!(
            target.as_object_mut().unwrap().remove(field).is_some(),
            "{pointer}"
        );
        assert!(
            serde_json::from_value::<Organization>(partial).is_err(),
            "a snapshot without {pointer} decoded"
        );
    }
}
