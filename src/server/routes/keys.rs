//! An account's API keys: list, get, issue, change settings, revoke, rotate. A key is issued
//! either by hash (the client minted the secret and wrote it down first; it sends only the
//! SHA-256 and a display prefix) or by the server, which mints it and shows the secret once,
//! in the 201 response, and keeps only the hash.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{ensure_org, etagged};
use crate::api::ErrorCode;
use crate::clock;
use crate::duration::Duration;
use crate::model::ApiKey;
use crate::operation::{NewKey, Operation, Replaces};
use crate::secrets::mint;
use crate::server::AppState;
use crate::server::auth::{Author, Caller};
use crate::server::error::ApiError;
use crate::server::extract::{Body, OptionalBody, P, Preconditions};
use crate::server::validate;
use crate::server::write::{self, Reply, Write};
use crate::store::{KeyRecord, Store};

type Shared = State<Arc<AppState>>;

/// Issue a key: its settings, and optionally the material of a client-minted secret.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    scopes: BTreeSet<String>,
    #[serde(default)]
    expires_in: Option<String>,
    #[serde(default)]
    rotate_every: Option<String>,
    #[serde(default)]
    overlap: Option<String>,
    #[serde(default)]
    managed: bool,
    /// Registration by hash: `hash` and `display_prefix` (and optionally `id`).
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    display_prefix: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

/// Rotate a key: the overlap, and optionally client-minted material.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    #[serde(default)]
    overlap: Option<String>,
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    display_prefix: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

/// Change a key's settings; absent fields stay as they are, null clears a duration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchKeyBody {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    scopes: Option<BTreeSet<String>>,
    #[serde(default, deserialize_with = "present")]
    expires_in: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    rotate_every: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    overlap: Option<Option<String>>,
    #[serde(default)]
    managed: Option<bool>,
}

/// Tells a field sent as null (`Some(None)`) from one not sent (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The secret's material, minted here or sent by the client.
struct Material {
    id: String,
    hash: String,
    display_prefix: String,
    /// Only when the server minted the key.
    secret: Option<Zeroizing<String>>,
}

fn material(
    hash: Option<String>,
    display_prefix: Option<String>,
    id: Option<String>,
) -> Result<Material, ApiError> {
    match (hash, display_prefix) {
        (Some(hash), Some(display_prefix)) => {
            let id = id.unwrap_or_else(|| mint().id);
            validate::key_material(&hash, &display_prefix, &id)?;
            Ok(Material {
                id,
                hash,
                display_prefix,
                secret: None,
            })
        }
        (None, None) if id.is_none() => {
            let k = mint();
            Ok(Material {
                id: k.id.clone(),
                hash: k.hash.clone(),
                display_prefix: k.display_prefix.clone(),
                secret: Some(k.secret),
            })
        }
        _ => Err(ApiError::invalid(
            "to register a key by hash send both hash and display_prefix (id is optional); send none of them to have the server mint the key",
        )),
    }
}

fn settings_from(
    description: String,
    scopes: BTreeSet<String>,
    expires_in: Option<&str>,
    rotate_every: Option<&str>,
    overlap: Option<&str>,
    managed: bool,
) -> Result<ApiKey, ApiError> {
    validate::permissions("scope", &scopes)?;
    Ok(ApiKey {
        description,
        scopes,
        expires_in: validate::duration("expires_in", expires_in)?,
        rotate_every: validate::duration("rotate_every", rotate_every)?,
        overlap: validate::duration("overlap", overlap)?,
        managed,
    })
}

fn key_address(account: &str, name: &str) -> String {
    format!("key.{account}.{name}")
}

/// The account's keys; 404 when the account does not exist.
fn account_keys(store: &Store, org: &str, account: &str) -> Result<Vec<KeyRecord>, ApiError> {
    if store.service_account(org, account)?.is_none() {
        return Err(ApiError::not_found(format!(
            "service_account.{account} does not exist"
        )));
    }
    Ok(store.keys(org, account)?)
}

/// The current (not retiring) key of a name.
fn current(keys: Vec<KeyRecord>, account: &str, name: &str) -> Result<KeyRecord, ApiError> {
    keys.into_iter()
        .find(|k| k.name == name && k.retires_at.is_none())
        .ok_or_else(|| {
            ApiError::not_found(format!("{} does not exist", key_address(account, name)))
        })
}

fn record_json(record: &KeyRecord, secret: Option<&str>) -> Value {
    let mut v = serde_json::to_value(record).unwrap_or_else(|_| json!({}));
    if let (Some(secret), Some(map)) = (secret, v.as_object_mut()) {
        map.insert("secret".into(), Value::String(secret.to_string()));
    }
    v
}

/// Where a key is written, and by whom.
struct KeyAt<'a> {
    org: &'a str,
    actor: &'a Author,
    account: &'a str,
    name: &'a str,
}

/// Registers a key and answers with its record (and the secret, when minted here).
fn register(
    store: &mut Store,
    at: KeyAt<'_>,
    m: Material,
    settings: ApiKey,
    replaces: Option<Replaces>,
) -> Result<Reply, ApiError> {
    let KeyAt {
        org,
        actor,
        account,
        name,
    } = at;
    if store.key_exists(&m.id, &m.hash)? {
        return Err(ApiError::conflict(
            ErrorCode::Conflict,
            "a key with this id or hash already exists",
        ));
    }
    let now = clock::now();
    let expires_at = settings.expires_in.map(|d| now + d.to_time());
    let op = Operation::RegisterKey {
        account: account.to_string(),
        name: name.to_string(),
        key: NewKey {
            id: m.id.clone(),
            hash: m.hash,
            display_prefix: m.display_prefix,
            created_at: now,
            expires_at,
            settings,
            replaces,
        },
    };
    write::apply(store, org, actor, &[op], &key_address(account, name))?;
    let record = store
        .keys(org, account)?
        .into_iter()
        .find(|k| k.id == m.id)
        .ok_or_else(|| ApiError::internal("the key vanished while being written"))?;
    Ok(Reply::json(
        StatusCode::CREATED,
        record_json(&record, m.secret.as_deref().map(String::as_str)),
    ))
}

pub async fn list_keys(
    State(s): Shared,
    caller: Caller,
    P((org, account)): P<(String, String)>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (revision, keys) =
        s.db.read(move |store| {
            let revision = ensure_org(store, &org)?;
            Ok((revision, account_keys(store, &org, &account)?))
        })
        .await?;
    Ok(etagged(revision, json!({ "keys": keys })))
}

pub async fn get_key(
    State(s): Shared,
    caller: Caller,
    P((org, account, name)): P<(String, String, String)>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let (revision, key) =
        s.db.read(move |store| {
            let revision = ensure_org(store, &org)?;
            let key = current(account_keys(store, &org, &account)?, &account, &name)?;
            Ok((revision, record_json(&key, None)))
        })
        .await?;
    Ok(etagged(revision, key))
}

pub async fn create_key(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, account)): P<(String, String)>,
    body: Body<CreateKeyBody>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    let b = body.value;
    validate::key_names(&account, &b.name)?;
    let settings = settings_from(
        b.description,
        b.scopes,
        b.expires_in.as_deref(),
        b.rotate_every.as_deref(),
        b.overlap.as_deref(),
        b.managed,
    )?;
    let m = material(b.hash, b.display_prefix, b.id)?;
    let name = b.name;
    let actor = caller.author();
    let w = Write::org(&org, &actor, pre, &body.digest);
    write::run(&s, w, move |store| {
        let keys = account_keys(store, &org, &account)?;
        if keys
            .iter()
            .any(|k| k.name == name && k.retires_at.is_none())
        {
            return Err(ApiError::conflict(
                ErrorCode::AlreadyExists,
                format!(
                    "{} already exists; rotate it or revoke it first",
                    key_address(&account, &name)
                ),
            ));
        }
        register(
            store,
            KeyAt {
                org: &org,
                actor: &actor,
                account: &account,
                name: &name,
            },
            m,
            settings,
            None,
        )
    })
    .await
}

pub async fn rotate_key(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, account, name)): P<(String, String, String)>,
    body: OptionalBody<RotateBody>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    validate::key_names(&account, &name)?;
    let b = body.value.unwrap_or_default();
    let overlap = validate::duration("overlap", b.overlap.as_deref())?;
    let m = material(b.hash, b.display_prefix, b.id)?;
    let actor = caller.author();
    let w = Write::org(&org, &actor, pre, &body.digest);
    write::run(&s, w, move |store| {
        let old = current(account_keys(store, &org, &account)?, &account, &name)?;
        let overlap = overlap.or(old.overlap).unwrap_or(Duration(0));
        let replaces = Replaces {
            id: old.id.clone(),
            retires_at: clock::now() + overlap.to_time(),
        };
        let settings = old.settings();
        register(
            store,
            KeyAt {
                org: &org,
                actor: &actor,
                account: &account,
                name: &name,
            },
            m,
            settings,
            Some(replaces),
        )
    })
    .await
}

pub async fn patch_key(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, account, name)): P<(String, String, String)>,
    body: Body<PatchKeyBody>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    validate::key_names(&account, &name)?;
    let b = body.value;
    if let Some(scopes) = &b.scopes {
        validate::permissions("scope", scopes)?;
    }
    let expires_in = b
        .expires_in
        .map(|d| validate::duration("expires_in", d.as_deref()))
        .transpose()?;
    let rotate_every = b
        .rotate_every
        .map(|d| validate::duration("rotate_every", d.as_deref()))
        .transpose()?;
    let overlap = b
        .overlap
        .map(|d| validate::duration("overlap", d.as_deref()))
        .transpose()?;
    let actor = caller.author();
    let w = Write::org(&org, &actor, pre, &body.digest);
    write::run(&s, w, move |store| {
        let old = current(account_keys(store, &org, &account)?, &account, &name)?;
        let mut settings = old.settings();
        if let Some(d) = b.description {
            settings.description = d;
        }
        if let Some(scopes) = b.scopes {
            settings.scopes = scopes;
        }
        if let Some(d) = expires_in {
            settings.expires_in = d;
        }
        if let Some(d) = rotate_every {
            settings.rotate_every = d;
        }
        if let Some(d) = overlap {
            settings.overlap = d;
        }
        if let Some(m) = b.managed {
            settings.managed = m;
        }
        let own = key_address(&account, &name);
        let op = Operation::UpdateKey {
            account: account.clone(),
            name: name.clone(),
            key: settings,
        };
        write::apply(store, &org, &actor, &[op], &own)?;
        let key = current(store.keys(&org, &account)?, &account, &name)?;
        Ok(Reply::json(StatusCode::OK, record_json(&key, None)))
    })
    .await
}

pub async fn revoke_key(
    State(s): Shared,
    caller: Caller,
    pre: Preconditions,
    P((org, account, name)): P<(String, String, String)>,
) -> Result<Response, ApiError> {
    caller.manage(&org)?;
    validate::key_names(&account, &name)?;
    let actor = caller.author();
    write::run(&s, Write::org(&org, &actor, pre, ""), move |store| {
        // Every live secret of the name, rotated-out ones inside their overlap too: revoking
        // is the answer to a leak, and a predecessor left working would defeat it.
        let own = key_address(&account, &name);
        let ops: Vec<Operation> = account_keys(store, &org, &account)?
            .into_iter()
            .filter(|k| k.name == name)
            .map(|k| Operation::RevokeKey {
                account: account.clone(),
                name: name.clone(),
                id: k.id,
            })
            .collect();
        if ops.is_empty() {
            return Err(ApiError::not_found(format!("{own} does not exist")));
        }
        write::apply(store, &org, &actor, &ops, &own)?;
        Ok(Reply::empty(StatusCode::NO_CONTENT))
    })
    .await
}
