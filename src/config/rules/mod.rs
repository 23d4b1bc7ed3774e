//! Policy rules as the config holds them: checked as written (`compile`: config errors with
//! places), with the matching of objects by name glob or team, and the places of the YAML
//! nodes a violation points at. Judging an organization against them is `crate::policy`'s.

mod compile;
pub mod matching;
mod rule;
mod spans;

pub(crate) use compile::compile;
pub use rule::{Exception, Kind, Rule, Rules, Target};
pub use spans::{Place, Spans};
