//! The JSON Schema of the config, generated from the serde types so editors can complete and
//! check YAML. `schemas/svcacct.schema.json` is this output, kept fresh by a test.

use super::raw::RawConfig;

/// The schema as pretty JSON, with a trailing newline.
pub fn config_schema() -> String {
    let schema = schemars::schema_for!(RawConfig);
    let mut s = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    s.push('\n');
    s
}
