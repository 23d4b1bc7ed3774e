//! Export: the live organization as YAML that plans to no changes where it is written, with
//! every key by name and no secret.

use crate::common::*;

#[test]
fn export_round_trips_to_a_config_that_plans_clean() {
    let sb = Sandbox::new();
    let dir = sb.copy_example("realistic");
    sb.apply(&dir, T0);
    sb.cmd(&["plan", "--detailed-exitcode", "-c", &dir])
        .now(T0)
        .run()
        .expect(0);

    let exported = "exported/northwind/svcacct.yaml";
    assert!(!sb.join("exported").exists());
    let out = sb
        .cmd(&["export", "-o", exported, "-c", &dir])
        .now(T0)
        .run();
    out.ok();
    assert!(
        out.stdout.is_empty(),
        "the export went to the file: {}",
        out.stdout
    );
    let text = sb.read(exported);

    let out = sb
        .cmd(&[
            "plan",
            "--detailed-exitcode",
            "--format",
            "json",
            "-c",
            exported,
        ])
        .now(T0)
        .run();
    assert_eq!(
        out.code,
        Some(0),
        "the export plans to no changes:\n{}\n{}\n--- export\n{text}",
        out.stdout,
        out.stderr
    );
    let plan = out.json();
    assert_eq!(plan["organization"], "northwind");
    assert!(
        plan["notes"].as_array().unwrap().is_empty(),
        "the export points at the real secrets directory: {plan:#}"
    );

    // Every key by name, with its settings; no secret, hash or prefix.
    for key in [
        "github-actions-prod:",
        "github-actions-staging:",
        "dbt-cloud:",
        "grafana:",
        "tfc:",
    ] {
        assert!(text.contains(key), "the export lists {key}\n{text}");
    }
    assert!(!text.contains("svca_"), "{text}");
    let identity = sb.join("examples/demo-identity.txt");
    let rows = key_rows(&sb.join("examples/realistic/.svcacct/northwind.db"));
    assert_eq!(rows.len(), 5);
    for row in &rows {
        assert!(!text.contains(&row.hash));
        assert!(!text.contains(&row.display_prefix));
        let file = sb
            .join("examples/realistic/secrets")
            .join(&row.account)
            .join(format!("{}.age", row.name));
        let secret = secret_of(&file, &identity);
        assert!(!text.contains(&secret), "the export holds a secret");
    }

    // Paths are relative to the export and plain: no `..` after the first other component.
    for line in text
        .lines()
        .filter(|l| l.contains("path:") || l.contains("dir:") || l.contains("recipients_file:"))
    {
        let value = line.split_once(": ").unwrap().1;
        let inner = value.trim_start_matches("../");
        assert!(!inner.contains(".."), "a plain relative path: {line}");
    }
    assert!(
        text.contains("  recipients_file: ../../examples/demo-recipients.txt"),
        "{text}"
    );

    // It is a config in its own right: it validates and exports again to the same body.
    sb.run(&["validate", "-c", exported]).ok();
    let again = "exported/again/svcacct.yaml";
    sb.cmd(&["export", "-o", again, "-c", exported])
        .now(T0)
        .run()
        .ok();
    let body = |t: &str| {
        t.lines()
            .skip_while(|l| l.starts_with('#'))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (a, b) = (body(&text), body(&sb.read(again)));
    assert_eq!(a, b, "exporting an export changes nothing but the header");
}
