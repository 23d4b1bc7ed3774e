//! Objects as a plan shows them, before and after a change. The diff builds them from the
//! model, typed, and text, Markdown and JSON are renderers over them: the diff decides what
//! changed, a renderer only how it reads. A live key shows only the public facts of its issue
//! (id, creation, expiry): there is no place in a snapshot for a secret, hash or display
//! prefix.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::model::{ApiKey, LiveKey, Role, ServiceAccount, Team};

/// An object as a plan shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Snapshot {
    Role(Role),
    Team(Team),
    /// An account's own settings and memberships; its keys are changes of their own.
    ServiceAccount(ServiceAccount<()>),
    /// A key's declared settings.
    Key(ApiKey),
    /// A live key: its settings and the public facts of its issue.
    LiveKey {
        settings: ApiKey,
        key_id: String,
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339::option")]
        expires_at: Option<OffsetDateTime>,
    },
    /// A secret replaced by a rotation, working until its overlap ends.
    RotatedOut {
        key_id: String,
        #[serde(with = "time::serde::rfc3339")]
        retires_at: OffsetDateTime,
    },
    /// Secrets of a key that is otherwise gone.
    Secrets {
        key_ids: Vec<String>,
    },
    /// The delivery targets holding a key (by its id; none for a key not issued yet).
    Delivery {
        key_id: Option<String>,
        targets: Vec<String>,
    },
}

/// A field of an object a plan shows. The variants are in the order plans list fields
/// (alphabetical, as the JSON form's keys are).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, strum::IntoStaticStr, strum::Display,
)]
#[strum(serialize_all = "snake_case")]
pub enum Field {
    Admin,
    CreatedAt,
    Description,
    Disabled,
    Expires,
    ExpiresAt,
    ExpiresIn,
    KeyId,
    KeyIds,
    Managed,
    Overlap,
    Permissions,
    Protect,
    RetiresAt,
    RotateEvery,
    Scopes,
    Targets,
    Teams,
}

impl Field {
    /// The field's name, as the config and the JSON form spell it.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// The value of a field as plans show it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// Not set (an optional duration or time).
    None,
    Text(String),
    Flag(bool),
    List(Vec<String>),
    /// Memberships: team → role.
    Memberships(crate::model::Memberships),
}

impl FieldValue {
    /// The value in a plan's JSON form.
    pub fn to_json(&self) -> Value {
        match self {
            FieldValue::None => Value::Null,
            FieldValue::Text(s) => json!(s),
            FieldValue::Flag(b) => json!(b),
            FieldValue::List(l) => json!(l),
            FieldValue::Memberships(m) => json!(m),
        }
    }

    /// Whether the value is what an object has when nothing is said of it: a create lists
    /// only the fields that differ from that.
    pub fn is_default(&self) -> bool {
        match self {
            FieldValue::None => true,
            FieldValue::Flag(b) => !b,
            FieldValue::Text(s) => s.is_empty() || s == "never",
            FieldValue::List(l) => l.is_empty(),
            FieldValue::Memberships(m) => m.is_empty(),
        }
    }
}

fn text(s: &str) -> FieldValue {
    FieldValue::Text(s.to_string())
}

fn optional(v: Option<impl ToString>) -> FieldValue {
    v.map_or(FieldValue::None, |v| FieldValue::Text(v.to_string()))
}

fn list<'a>(items: impl IntoIterator<Item = &'a String>) -> FieldValue {
    FieldValue::List(items.into_iter().cloned().collect())
}

fn key_fields(k: &ApiKey) -> Vec<(Field, FieldValue)> {
    vec![
        (Field::Description, text(&k.description)),
        (Field::ExpiresIn, optional(k.expires_in)),
        (Field::Managed, FieldValue::Flag(k.managed)),
        (Field::Overlap, optional(k.overlap)),
        (Field::RotateEvery, optional(k.rotate_every)),
        (Field::Scopes, list(&k.scopes)),
    ]
}

impl Snapshot {
    /// An account's own settings and memberships.
    pub fn account<K>(a: &ServiceAccount<K>) -> Snapshot {
        Snapshot::ServiceAccount(a.with_keys(crate::model::SmallMap::new()))
    }

    /// A live key: its settings and the public facts of its issue.
    pub fn live_key(k: &LiveKey) -> Snapshot {
        Snapshot::LiveKey {
            settings: k.settings.clone(),
            key_id: k.issued.id.clone(),
            created_at: k.issued.created_at,
            expires_at: k.issued.expires_at,
        }
    }

    /// The fields plans show of the object, in [`Field`] order.
    pub fn fields(&self) -> Vec<(Field, FieldValue)> {
        let flag = FieldValue::Flag;
        let mut fields = match self {
            Snapshot::Role(r) => vec![
                (Field::Description, text(&r.description)),
                (Field::Managed, flag(r.managed)),
                (Field::Permissions, list(&r.permissions)),
                (Field::Protect, flag(r.protect)),
            ],
            Snapshot::Team(t) => vec![
                (Field::Description, text(&t.description)),
                (Field::Managed, flag(t.managed)),
                (Field::Protect, flag(t.protect)),
            ],
            Snapshot::ServiceAccount(a) => vec![
                (Field::Admin, flag(a.admin)),
                (Field::Description, text(&a.description)),
                (Field::Disabled, flag(a.disabled)),
                (
                    Field::Expires,
                    FieldValue::Text(a.expires.map_or("never".to_string(), |d| d.to_string())),
                ),
                (Field::Managed, flag(a.managed)),
                (Field::Protect, flag(a.protect)),
                (Field::Teams, FieldValue::Memberships(a.teams.clone())),
            ],
            Snapshot::Key(k) => key_fields(k),
            Snapshot::LiveKey {
                settings,
                key_id,
                created_at,
                expires_at,
            } => {
                let mut fields = key_fields(settings);
                fields.extend([
                    (Field::CreatedAt, FieldValue::Text(rfc3339(*created_at))),
                    (Field::ExpiresAt, optional(expires_at.map(rfc3339))),
                    (Field::KeyId, text(key_id)),
                ]);
                fields
            }
            Snapshot::RotatedOut { key_id, retires_at } => vec![
                (Field::KeyId, text(key_id)),
                (Field::RetiresAt, FieldValue::Text(rfc3339(*retires_at))),
            ],
            Snapshot::Secrets { key_ids } => vec![(Field::KeyIds, list(key_ids))],
            Snapshot::Delivery { key_id, targets } => vec![
                (Field::KeyId, optional(key_id.as_ref())),
                (Field::Targets, list(targets)),
            ],
        };
        fields.sort_by_key(|(f, _)| *f);
        fields
    }

    /// One field's value, if the object has it.
    pub fn get(&self, field: Field) -> Option<FieldValue> {
        self.fields()
            .into_iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v)
    }

    /// The object in a plan's JSON form: an object of its fields.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.fields()
                .into_iter()
                .map(|(f, v)| (f.name().to_string(), v.to_json()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_listed_in_the_order_of_their_names() {
        let names =
            |s: &Snapshot| -> Vec<&str> { s.fields().iter().map(|(f, _)| f.name()).collect() };
        for s in [
            Snapshot::Role(Role::default()),
            Snapshot::Team(Team::default()),
            Snapshot::ServiceAccount(ServiceAccount::default()),
            Snapshot::live_key(&LiveKey {
                settings: ApiKey::default(),
                issued: crate::model::IssuedKey {
                    id: "k1".into(),
                    created_at: OffsetDateTime::UNIX_EPOCH,
                    expires_at: None,
                    last_used_at: None,
                },
            }),
        ] {
            let got = names(&s);
            let mut sorted = got.clone();
            sorted.sort();
            assert_eq!(got, sorted);
            // The JSON form has the same fields.
            let json: Vec<String> = s.to_json().as_object().unwrap().keys().cloned().collect();
            assert_eq!(got, json);
        }
    }
}
