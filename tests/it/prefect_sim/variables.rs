//! Prefect Variables of a workspace: the slice the `prefect` backend keeps its ownership
//! record in (OAS 0.8.4 `VariableCreate`, `VariableUpdate`, `Variable`, `VariableFilter`;
//! tests/prefect-contract.md lists the sources and the choices).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Shared;
use super::api::{AnyOf, Page, Params, default_limit, workspace};
use super::wire::{ApiError, ApiResult, body_loc, check_length, parse_body};

/// The longest value, as JSON text (Choice: OAS states no limit; Prefect's own server caps a
/// variable's value at 5,000 characters, and Cloud is assumed to be no looser).
pub const MAX_VALUE_CHARS: usize = 5000;

/// One variable as the simulator holds it.
#[derive(Clone, Debug)]
pub struct Variable {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub value: Value,
    pub tags: Vec<String>,
    pub created: OffsetDateTime,
    pub updated: OffsetDateTime,
}

/// OAS `Variable`.
#[derive(Serialize)]
pub struct VariableOut {
    id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated: OffsetDateTime,
    name: String,
    value: Value,
    tags: Vec<String>,
}

impl From<&Variable> for VariableOut {
    fn from(v: &Variable) -> VariableOut {
        VariableOut {
            id: v.id,
            created: v.created,
            updated: v.updated,
            name: v.name.clone(),
            value: v.value.clone(),
            tags: v.tags.clone(),
        }
    }
}

/// OAS `VariableCreate` (`additionalProperties: false`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VariableCreate {
    name: String,
    value: Value,
    tags: Option<Vec<String>>,
}

/// OAS `VariableUpdate` (`additionalProperties: false`), every field optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VariableUpdate {
    name: Option<String>,
    value: Option<Value>,
    tags: Option<Vec<String>>,
}

/// Names: OAS `maxLength: 255`; lowercase letters, digits, underscores and dashes (Choice,
/// after Prefect's own server's name rule).
fn check_name(name: &str) -> ApiResult<()> {
    check_length("name", name, 255)?;
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "value_error",
            body_loc("name"),
            "Value error, Variable name must only contain lowercase letters, numbers, dashes and underscores",
        ))
    }
}

fn check_value(value: &Value) -> ApiResult<()> {
    let n = value.to_string().chars().count();
    if n > MAX_VALUE_CHARS {
        return Err(ApiError::invalid(
            "value_error",
            body_loc("value"),
            &format!("Value error, Variable value must be less than {MAX_VALUE_CHARS} characters"),
        ));
    }
    Ok(())
}

pub async fn create_variable(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<VariableOut>)> {
    let mut st = sh.state.lock().unwrap();
    let ws = workspace(&st, &p)?;
    let req: VariableCreate = parse_body(&headers, &body, true)?.expect("required body");
    check_name(&req.name)?;
    check_value(&req.value)?;
    if st
        .variables
        .iter()
        .any(|v| v.workspace_id == ws && v.name == req.name)
    {
        // Choice: OAS lists only 201 and 422; a unique name is Prefect's rule.
        return Err(ApiError::conflict(
            "A variable with this name already exists.",
        ));
    }
    let now = st.now();
    let v = Variable {
        id: Uuid::new_v4(),
        workspace_id: ws,
        name: req.name,
        value: req.value,
        tags: req.tags.unwrap_or_default(),
        created: now,
        updated: now,
    };
    let out = VariableOut::from(&v);
    st.variables.push(v);
    Ok((StatusCode::CREATED, Json(out)))
}

/// OAS `VariableFilterName`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameFilter {
    any_: Option<Vec<String>>,
    like_: Option<String>,
}

/// OAS `VariableFilter` (the parts simulated: `id`, `name`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VariableFilter {
    id: Option<AnyOf<Uuid>>,
    name: Option<NameFilter>,
}

/// OAS `Body_read_variables_...`.
#[derive(Deserialize)]
struct ReadVariables {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    variables: Option<VariableFilter>,
}

pub async fn read_variables(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Vec<VariableOut>>> {
    let st = sh.state.lock().unwrap();
    let ws = workspace(&st, &p)?;
    let req: Option<ReadVariables> = parse_body(&headers, &body, false)?;
    let (page, filter) = req.map_or((Page::default(), None), |r| {
        (
            Page {
                limit: r.limit,
                offset: r.offset,
            },
            r.variables,
        )
    });
    page.check()?;
    let (ids, names) = filter.map_or((None, None), |f| (f.id, f.name));
    // Default sort NAME_ASC (OAS `VariableSort`).
    let mut found: Vec<&Variable> = st
        .variables
        .iter()
        .filter(|v| v.workspace_id == ws && AnyOf::admits(&ids, &v.id))
        .filter(|v| {
            names.as_ref().is_none_or(|n| {
                n.any_.as_ref().is_none_or(|any| any.contains(&v.name))
                    && n.like_.as_ref().is_none_or(|l| like(&v.name, l))
            })
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(page.apply(found.into_iter().map(VariableOut::from))))
}

/// SQL `LIKE`: `%` any run, `_` any one character.
fn like(s: &str, pattern: &str) -> bool {
    fn go(s: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('%', rest)) => (0..=s.len()).any(|i| go(&s[i..], rest)),
            Some(('_', rest)) => !s.is_empty() && go(&s[1..], rest),
            Some((c, rest)) => s.first() == Some(c) && go(&s[1..], rest),
        }
    }
    let (s, p): (Vec<char>, Vec<char>) = (s.chars().collect(), pattern.chars().collect());
    go(&s, &p)
}

fn index_by_name(st: &super::model::State, ws: Uuid, name: &str) -> ApiResult<usize> {
    st.variables
        .iter()
        .position(|v| v.workspace_id == ws && v.name == name)
        .ok_or_else(|| ApiError::not_found("Variable not found."))
}

pub async fn update_variable_by_name(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let mut st = sh.state.lock().unwrap();
    let ws = workspace(&st, &p)?;
    let i = index_by_name(&st, ws, &p["name"])?;
    let req: VariableUpdate = parse_body(&headers, &body, true)?.expect("required body");
    if let Some(name) = &req.name {
        check_name(name)?;
        if st
            .variables
            .iter()
            .enumerate()
            .any(|(j, v)| j != i && v.workspace_id == ws && v.name == *name)
        {
            return Err(ApiError::conflict(
                "A variable with this name already exists.",
            ));
        }
    }
    if let Some(value) = &req.value {
        check_value(value)?;
    }
    let now = st.now();
    let v = &mut st.variables[i];
    if let Some(name) = req.name {
        v.name = name;
    }
    if let Some(value) = req.value {
        v.value = value;
    }
    if let Some(tags) = req.tags {
        v.tags = tags;
    }
    v.updated = now;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete_variable_by_name(
    AxState(sh): AxState<Arc<Shared>>,
    Path(p): Params,
) -> ApiResult<StatusCode> {
    let mut st = sh.state.lock().unwrap();
    let ws = workspace(&st, &p)?;
    let i = index_by_name(&st, ws, &p["name"])?;
    st.variables.remove(i);
    Ok(StatusCode::NO_CONTENT)
}

#[test]
fn like_matches_sql_wildcards() {
    assert!(like("svcacct_acme_001", "svcacct_acme_%"));
    assert!(like("svcacctXacme_001", "svcacct_acme_%"));
    assert!(!like("other", "svcacct%"));
}
