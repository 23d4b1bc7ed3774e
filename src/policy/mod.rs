//! Policy as part of the config: rules such as "no key without an expiry" or "no account may
//! gain `secrets:*`", written under `policy.rules` (or in `policy/*.yaml` of a config
//! directory) and checked by `validate`, `plan` and `apply` against the desired organization.
//!
//! Teams bolt a generic policy engine onto other tools; svcacct knows the domain, so a rule
//! here can speak of keys, rotation, owners and effective permissions directly, and each
//! violation points at the YAML node to change. The flow: [`compile`] checks the rules as
//! written (config errors with places), [`evaluate`] judges the desired organization (every
//! violation at once, exceptions kept with their reason), [`attach_causes`] names the plan's
//! change that brings a violation in, and [`render`] shows them in every plan format;
//! [`explain`] answers "which rules apply to this object, and does it pass?".

mod causes;
pub mod effective;
pub mod evaluate;
pub mod explain;
pub mod render;

pub use causes::attach_causes;
pub use evaluate::evaluate;
