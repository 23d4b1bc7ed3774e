//! The committed JSON Schema is what the binary generates, and every example is valid.

use crate::common::*;

#[test]
fn committed_schema_is_up_to_date() {
    let out = Sandbox::new().run(&["schema"]);
    out.ok();
    let committed = std::fs::read_to_string(repo().join("schemas/svcacct.schema.json"))
        .expect("schemas/svcacct.schema.json is committed");
    assert!(
        out.stdout == committed,
        "schemas/svcacct.schema.json is stale; regenerate it with\n\n    cargo run -- schema > schemas/svcacct.schema.json\n"
    );
    let schema: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(schema["title"], "svcacct configuration");
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown fields are errors"
    );
    for field in [
        "organization",
        "backend",
        "secrets",
        "policy",
        "roles",
        "teams",
        "service_accounts",
    ] {
        assert!(
            schema["properties"].get(field).is_some(),
            "the schema describes `{field}`"
        );
    }
}

#[test]
fn every_example_validates() {
    let mut examples: Vec<String> = std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        // Config examples; `github-actions` holds workflows, not a config.
        .filter(|p| p.join("svcacct.yaml").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    examples.sort();
    assert!(
        examples.contains(&"small".to_string()) && examples.contains(&"realistic".to_string()),
        "{examples:?}"
    );
    for name in &examples {
        let sb = Sandbox::new();
        let dir = sb.copy_example(name);
        let out = sb.run(&["validate", "-c", &dir]);
        out.ok();
        assert!(out.stdout.contains("is valid"), "{name}: {}", out.stdout);
        assert!(
            !out.stderr.contains("warning"),
            "example {name} validates without warnings: {}",
            out.stderr
        );
        // Each file names the schema for editors, by a path that exists.
        for (file, bytes) in files_under(&sb.join(&dir)) {
            let text = String::from_utf8(bytes).unwrap();
            let first = text.lines().next().unwrap_or_default();
            let schema = first
                .strip_prefix("# yaml-language-server: $schema=")
                .unwrap_or_else(|| {
                    panic!("{name}/{} starts with the schema comment", file.display())
                });
            let target = repo().join("examples").join(name).join(schema);
            assert!(
                target.is_file(),
                "{name}/{}: {} exists",
                file.display(),
                target.display()
            );
        }
    }
}
