//! The `code` of an error body, `{"error": {"code", "message"}}`: what a client branches on.

use serde::{Deserialize, Serialize};

/// Every code the server sends. A client reading a code it does not know (a newer server's)
/// gets [`ErrorCode::Unknown`] rather than a decoding failure.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumIter,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    /// 400: not well-formed HTTP, or a request axum refused on its own.
    BadRequest,
    /// 400: the body is not JSON.
    MalformedJson,
    /// 400: the body is JSON of the wrong shape.
    InvalidBody,
    /// 400: the body could not be read.
    UnreadableBody,
    /// 400: a path parameter.
    InvalidPath,
    /// 400: a query parameter.
    InvalidQuery,
    /// 400: a header (`If-Match`, `Idempotency-Key`, two `Authorization`s, …).
    InvalidHeader,
    /// 401: no credentials, or credentials that are not valid.
    Unauthorized,
    /// 403: valid credentials that do not allow this.
    Forbidden,
    /// 404: no such organization, object or endpoint.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 409: the object to create exists.
    AlreadyExists,
    /// 409: the object is protected from deletion.
    Protected,
    /// 409: in use, the live key changed, too many keys.
    Conflict,
    /// 409: a team or role the write names does not exist.
    UnknownReference,
    /// 409: the `Idempotency-Key` was used for another request.
    IdempotencyKeyReused,
    /// 409: another apply holds the organization's lease.
    Locked,
    /// 412: the organization is not at the `If-Match` revision.
    PreconditionFailed,
    /// 413.
    BodyTooLarge,
    /// 414.
    UriTooLong,
    /// 415: the body is not sent as `application/json`.
    UnsupportedMediaType,
    /// 422: well-formed, but a value is not acceptable.
    InvalidValue,
    /// 431.
    HeadersTooLarge,
    /// 429: too many failed authentications from one address.
    RateLimited,
    /// 500: the server's fault.
    Internal,
    /// 503 from the readiness probe: the server cannot serve from its database now.
    NotReady,
    /// A batch result: the store could not read or write.
    Storage,
    /// A code this build does not know; never sent by the server.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as the wire writes it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Every code the server may send (all but [`ErrorCode::Unknown`]).
    pub fn sent() -> impl Iterator<Item = ErrorCode> {
        use strum::IntoEnumIterator;
        ErrorCode::iter().filter(|c| *c != ErrorCode::Unknown)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_as_its_text() {
        use strum::IntoEnumIterator;
        for code in ErrorCode::iter() {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str(), "serde and as_str disagree on {code:?}");
            let back: ErrorCode = serde_json::from_value(json).unwrap();
            assert_eq!(back, code);
        }
        assert_eq!(
            ErrorCode::IdempotencyKeyReused.as_str(),
            "idempotency_key_reused"
        );
    }

    #[test]
    fn a_code_this_build_does_not_know_is_unknown() {
        let code: ErrorCode = serde_json::from_str(r#""quota_exceeded""#).unwrap();
        assert_eq!(code, ErrorCode::Unknown);
        assert!(ErrorCode::sent().all(|c| c != ErrorCode::Unknown));
    }

    /// Every `enum` under a `code` property, anywhere in the document.
    fn documented_codes(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(code) = map.get("code")
                    && let Some(values) = code.get("enum").and_then(|e| e.as_array())
                {
                    out.extend(values.iter().map(|c| c.as_str().unwrap().to_string()));
                }
                map.values().for_each(|v| documented_codes(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| documented_codes(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_openapi_document_lists_exactly_these_codes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/openapi.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let ours: std::collections::BTreeSet<String> =
            ErrorCode::sent().map(|c| c.as_str().to_string()).collect();
        let listed: std::collections::BTreeSet<String> = doc["components"]["schemas"]["ErrorCode"]
            ["enum"]
            .as_array()
            .expect("components.schemas.ErrorCode lists the codes")
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            listed, ours,
            "schemas/openapi.yaml's ErrorCode and the ErrorCode enum differ"
        );
        let mut anywhere = Vec::new();
        documented_codes(&doc, &mut anywhere);
        for code in anywhere {
            assert!(
                ours.contains(&code),
                "openapi.yaml documents `{code}`, not an ErrorCode"
            );
        }
    }
}
