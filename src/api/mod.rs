//! The HTTP API's vocabulary, shared by the server (`svcacct serve`) and its client (the
//! `http` backend): the error codes and the wire types of the bodies both sides read and
//! write. It sits below both so that neither imports the other, and apart from the internal
//! model so that renaming a Rust type or field can never silently change the documented API
//! (`schemas/openapi.yaml`).

mod error_code;
pub mod wire;

pub use error_code::ErrorCode;
