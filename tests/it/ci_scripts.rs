//! The example GitHub Actions' shell steps (examples/github-actions/scripts/), run here as
//! the workflows run them: the real `svcacct` binary on PATH against a real organization
//! (local and http), and a stand-in `gh` that answers from files and records what it was asked
//! (GitHub itself is not reachable from a test).

use std::path::PathBuf;
use std::process::Command;

use crate::common::*;
use crate::review::{CFG, Env};

/// The stand-in `gh`: answers from files in `$GH_STUB_DIR` and appends each call to
/// `$GH_STUB_DIR/calls`; a `body=@FILE` or `--body-file FILE` is copied to `body.md`.
const GH_STUB: &str = r#"#!/usr/bin/env bash
set -euo pipefail
d=$GH_STUB_DIR
echo "$*" >>"$d/calls"
args=("$@")
for i in "${!args[@]}"; do
    case "${args[$i]}" in
        body=@*) cp "${args[$i]#body=@}" "$d/body.md" ;;
        --body-file) cp "${args[$((i + 1))]}" "$d/body.md" ;;
    esac
done
case "$*" in
    "api --paginate "*"/comments") cat "$d/comments.json" ;;
    "api --method "*) echo '{}' ;;
    "api repos/"*"/pulls"*) cat "$d/head-sha" 2>/dev/null || true ;;
    "run list"*) cat "$d/run-id" 2>/dev/null || true ;;
    "run download"*)
        out=${args[-1]}
        mkdir -p "$out"
        cp "$d"/artifact/* "$out"/ 2>/dev/null || exit 1
        ;;
    "issue list"*) cat "$d/open-issue" 2>/dev/null || true ;;
    "issue edit"* | "issue create"*) ;;
    *) echo "gh stub: unexpected call: $*" >&2; exit 3 ;;
esac
"#;

/// A PATH with the real svcacct and the stand-in gh, and the stub's directory.
struct Tools {
    bin: PathBuf,
    stub: PathBuf,
}

impl Tools {
    fn new(sb: &Sandbox) -> Tools {
        let bin = sb.join("tools");
        let stub = sb.join("gh-stub");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&stub).unwrap();
        std::os::unix::fs::symlink(BIN, bin.join("svcacct")).unwrap();
        let gh = bin.join("gh");
        std::fs::write(&gh, GH_STUB).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&gh, std::fs::Permissions::from_mode(0o755)).unwrap();
        Tools { bin, stub }
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.stub.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn body(&self) -> String {
        std::fs::read_to_string(self.stub.join("body.md")).unwrap()
    }

    fn answer(&self, file: &str, text: &str) {
        std::fs::write(self.stub.join(file), text).unwrap();
    }

    fn reset(&self) {
        for f in ["calls", "body.md"] {
            let _ = std::fs::remove_file(self.stub.join(f));
        }
    }
}

/// Runs `scripts/<script> args` in the sandbox the way the workflow does.
fn script(env: &Env, tools: &Tools, script: &str, args: &[&str], extra: &[(&str, &str)]) -> Out {
    let path = repo().join("examples/github-actions/scripts").join(script);
    let mut cmd = Command::new("bash");
    cmd.arg(path)
        .args(args)
        .current_dir(env.sb.root())
        .env(
            "PATH",
            format!(
                "{}:{}",
                tools.bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("GH_STUB_DIR", &tools.stub)
        .env("GH_REPO", "acme/access")
        .env("SVCACCT_TEST_TOKEN", OPERATOR)
        .env("SVCACCT_NOW", T0)
        .env("USER", "svcacct-test")
        .env("SVCACCT_CACHE_DIR", env.sb.join(".svcacct-cache"))
        .env_remove("SVCACCT_CONFIG")
        .env_remove("SVCACCT_BACKEND_URL")
        .env_remove("GITHUB_OUTPUT");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    Out::from(cmd.output().unwrap())
}

fn applied(env: &Env) {
    env.config(|t| t);
    env.run(&["apply", "--yes", "-c", CFG]).ok();
}

#[test]
fn the_comment_is_posted_once_then_updated_in_place_by_its_marker() {
    let env = Env::local();
    let tools = Tools::new(&env.sb);
    applied(&env);
    env.config(|t| t.replace("description: Data", "description: Data team"));
    let md = env.run(&["plan", "--format", "markdown", "-c", CFG]);
    md.ok();
    let comment = env.sb.write("comment.md", &md.stdout);
    let comment = comment.to_str().unwrap();
    let pr = [("PR_NUMBER", "12")];

    // No comment yet: one is posted, with the plan as its body.
    tools.answer("comments.json", "[]");
    let out = script(&env, &tools, "post-comment.sh", &[comment], &pr);
    out.ok();
    assert_eq!(
        tools.calls(),
        [
            "api --paginate repos/acme/access/issues/12/comments",
            &format!("api --method POST repos/acme/access/issues/12/comments -F body=@{comment}"),
        ]
    );
    assert_eq!(tools.body(), md.stdout);

    // Ours is there among others (on a later page too): that one is updated, nothing posted.
    tools.reset();
    tools.answer(
        "comments.json",
        r#"[{"id": 5, "body": "LGTM"}, {"id": 6, "body": "<!-- svcacct-plan: other -->\nx"}]
[{"id": 42, "body": "<!-- svcacct-plan: acme -->\nold plan"}]"#,
    );
    script(&env, &tools, "post-comment.sh", &[comment], &pr).ok();
    assert_eq!(
        tools.calls()[1],
        format!("api --method PATCH repos/acme/access/issues/comments/42 -F body=@{comment}")
    );

    // A file that is not a plan comment is refused before anything is posted.
    tools.reset();
    let bogus = env.sb.write("bogus.md", "hello\n");
    let out = script(
        &env,
        &tools,
        "post-comment.sh",
        &[bogus.to_str().unwrap()],
        &pr,
    );
    out.expect(1);
    assert!(out.stdout.contains("marker"), "{}", out.stdout);
    assert!(tools.calls().is_empty());
}

fn drift_opens_then_updates_an_issue_and_fails(env: &Env) {
    let tools = Tools::new(&env.sb);
    applied(env);
    // In sync: the check passes and asks GitHub nothing.
    script(env, &tools, "drift.sh", &[CFG, "drift"], &[]).ok();
    assert!(tools.calls().is_empty(), "{:?}", tools.calls());

    // Someone edits the organization by hand.
    env.config(|t| t.replace("description: Data", "description: Hand edited"));
    env.cmd(&["apply", "--yes", "-c", CFG])
        .env("USER", "alice")
        .run()
        .ok();
    env.config(|t| t);

    let out = script(env, &tools, "drift.sh", &[CFG, "drift"], &[]);
    out.expect(1);
    assert!(out.stdout.contains("differs from the config on main"));
    let calls = tools.calls();
    assert_eq!(
        calls[0],
        "issue list --repo acme/access --label svcacct-drift --state open --json number --jq .[0].number // empty"
    );
    assert!(
        calls[1].starts_with("issue create --repo acme/access --label svcacct-drift --title svcacct: the live organization acme differs from main"),
        "{calls:?}"
    );
    let body = tools.body();
    assert!(body.starts_with("<!-- svcacct-plan: acme -->"), "{body}");
    assert!(
        body.contains("`team.data`") && body.contains("last changed live"),
        "{body}"
    );

    // The issue is open: it is updated, not duplicated.
    tools.reset();
    tools.answer("open-issue", "7\n");
    script(env, &tools, "drift.sh", &[CFG, "drift"], &[]).expect(1);
    assert!(
        tools.calls()[1].starts_with("issue edit 7 --repo acme/access --body-file"),
        "{:?}",
        tools.calls()
    );

    // A plan that cannot be made is an error, not drift: no issue.
    tools.reset();
    env.sb.write(CFG, "organization: acme\nnot valid: [\n");
    let out = script(env, &tools, "drift.sh", &[CFG, "drift"], &[]);
    out.expect(1);
    assert!(out.stdout.contains("svcacct plan failed"), "{}", out.stdout);
    assert!(tools.calls().is_empty());
}

#[test]
fn drift_opens_then_updates_an_issue_and_fails_on_local() {
    drift_opens_then_updates_an_issue_and_fails(&Env::local());
}

#[test]
fn drift_opens_then_updates_an_issue_and_fails_on_http() {
    drift_opens_then_updates_an_issue_and_fails(&Env::http());
}

fn revision(env: &Env) -> serde_json::Value {
    env.plan_json(&[])["revision"].clone()
}

#[test]
fn apply_refuses_a_missing_or_edited_plan_and_changes_nothing() {
    for env in [Env::local(), Env::http()] {
        let tools = Tools::new(&env.sb);
        applied(&env);
        env.config(|t| t.replace("description: Data", "description: Unreviewed"));
        let before = revision(&env);

        let out = script(&env, &tools, "apply.sh", &[CFG, "reviewed/plan.json"], &[]);
        out.expect(1);
        assert!(out.stdout.contains("no saved plan"), "{}", out.stdout);

        let edited = env.sb.write("reviewed/plan.json", "{\"changes\": []}\n");
        let out = script(
            &env,
            &tools,
            "apply.sh",
            &[CFG, edited.to_str().unwrap()],
            &[],
        );
        out.expect(1);
        assert!(
            out.stdout.contains("nothing unreviewed was applied"),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("re-plan"), "{}", out.stdout);
        assert_eq!(revision(&env), before, "nothing was applied");
    }
}

#[test]
fn fetch_plan_finds_the_reviewed_plan_or_says_to_re_plan() {
    let env = Env::local();
    let tools = Tools::new(&env.sb);
    // A commit pushed straight to main: no pull request, no reviewed plan.
    let out = script(&env, &tools, "fetch-plan.sh", &["abc123", "reviewed"], &[]);
    out.expect(1);
    assert!(
        out.stdout.contains("did not come from a pull request"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Re-plan"), "{}", out.stdout);

    tools.reset();
    tools.answer("head-sha", "def456\n");
    let out = script(&env, &tools, "fetch-plan.sh", &["abc123", "reviewed"], &[]);
    out.expect(1);
    assert!(
        out.stdout.contains("no successful svcacct-plan.yml run"),
        "{}",
        out.stdout
    );

    tools.reset();
    tools.answer("run-id", "99\n");
    std::fs::create_dir_all(tools.stub.join("artifact")).unwrap();
    std::fs::write(tools.stub.join("artifact/plan.json"), "{}").unwrap();
    script(&env, &tools, "fetch-plan.sh", &["abc123", "reviewed"], &[]).ok();
    assert_eq!(
        tools.calls(),
        [
            "api repos/acme/access/commits/abc123/pulls --jq .[0].head.sha // empty",
            "run list --workflow svcacct-plan.yml --commit def456 --status success --json databaseId --jq .[0].databaseId // empty",
            "run download 99 --name svcacct-plan --dir reviewed",
        ]
    );
    assert!(env.sb.join("reviewed/plan.json").is_file());
}

/// The pull-request job end to end, then the merge: needs `svcacct plan --out`, `svcacct
/// show` and `svcacct apply PLAN` (issue 7, part 2, built on another branch).
#[test]
fn a_pull_request_plan_is_applied_on_merge_and_a_stale_one_is_refused() {
    for env in [Env::local(), Env::http()] {
        let tools = Tools::new(&env.sb);
        applied(&env);
        env.config(|t| t.replace("description: Data", "description: Reviewed"));
        let output = env.sb.join("github-output");
        let out = script(
            &env,
            &tools,
            "plan.sh",
            &[CFG, "svcacct-plan"],
            &[("GITHUB_OUTPUT", output.to_str().unwrap())],
        );
        out.ok();
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "changes=true\n");
        let comment = env.sb.read("svcacct-plan/comment.md");
        assert!(
            comment.starts_with("<!-- svcacct-plan: acme -->"),
            "{comment}"
        );
        assert!(env.sb.read("svcacct-plan/plan.txt").contains("team.data"));
        assert!(!contains_bytes(
            &std::fs::read(env.sb.join("svcacct-plan/plan.json")).unwrap(),
            b"svca_"
        ));

        // Applied as reviewed.
        let plan = env.sb.join("svcacct-plan/plan.json");
        script(
            &env,
            &tools,
            "apply.sh",
            &[CFG, plan.to_str().unwrap()],
            &[],
        )
        .ok();
        assert!(!env.plan_json(&[])["has_changes"].as_bool().unwrap());

        // A plan made before the organization moved is refused and says to re-plan.
        env.config(|t| t.replace("description: Data", "description: Again"));
        script(&env, &tools, "plan.sh", &[CFG, "second"], &[]).ok();
        env.config(|t| t.replace("description: Platform", "description: Moved"));
        env.run(&["apply", "--yes", "-c", CFG]).ok();
        env.config(|t| t.replace("description: Data", "description: Again"));
        let before = revision(&env);
        let plan = env.sb.join("second/plan.json");
        let out = script(
            &env,
            &tools,
            "apply.sh",
            &[CFG, plan.to_str().unwrap()],
            &[],
        );
        out.expect(1);
        assert!(out.all().contains("stale"), "{}", out.all());
        assert!(out.stdout.contains("re-plan"), "{}", out.stdout);
        assert_eq!(revision(&env), before);
    }
}
