//! The JSON the batch and snapshot endpoints carry, as `schemas/openapi.yaml` documents it.
//!
//! These types are the API's, not the model's: `Operation` and `Organization` may change shape
//! for the plan's sake while the wire stays put, and every change to the wire is a change to
//! these types and to the document. Two families, because the two directions trust differently:
//!
//! - the batch (client → server) keeps the documented leniency of a write body: a field left
//!   out takes its default, an unknown one is an error;
//! - the snapshot (server → client) is what a plan believes about live access, so every field
//!   is required: a server that leaves out `protect`, `scopes` or `disabled` is a protocol
//!   error, never a default that widens access. A live key's issue facts are required too
//!   (not even null): they are what makes it a [`model::LiveKey`]. A field the client does not
//!   know is ignored: a newer server adds fields, and an older svcacct must still plan against
//!   it. The server only ever adds to an answer; what narrows access is never a new field of
//!   its own but a change of one the client reads.
//!
//! The batch is in `batch.rs`, the snapshot in `snapshot.rs`, the conversions to and from
//! the model in `convert.rs`; every type is used as `api::wire::X`.

mod batch;
mod convert;
mod snapshot;
#[cfg(test)]
mod tests;

pub use batch::{
    Batch, BatchOperation, KeySettings, NewKey, Replaces, RoleWrite, ServiceAccountWrite, TeamWrite,
};
pub use snapshot::{ApiKey, IssuedKey, Organization, RetiringKey, Role, ServiceAccount, Team};
