//! The `prefect` backend through the real binary against the Prefect Cloud simulator
//! (`prefect_sim`): plan, apply, export, drift, ownership, faults and paging.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::common::{Out, Sandbox, secret_of};
use crate::prefect_sim::{PrefectSim, SimOptions};

/// A sandbox with an age identity, pointed at a simulator with some workspaces.
struct Prefect {
    sim: PrefectSim,
    sb: Sandbox,
    workspaces: BTreeMap<String, Uuid>,
    /// Every output of every command, to search for secrets.
    outputs: std::cell::RefCell<String>,
}

const LEDGER: &str = "ops";

impl Prefect {
    fn new(options: SimOptions, workspaces: &[&str]) -> Prefect {
        let sim = PrefectSim::start(options);
        let mut ws = BTreeMap::new();
        for h in [LEDGER].iter().chain(workspaces) {
            ws.insert(h.to_string(), sim.add_workspace(h));
        }
        let sb = Sandbox::new();
        let identity = age::x25519::Identity::generate();
        sb.write(
            "identity.txt",
            &format!(
                "{}\n",
                age::secrecy::ExposeSecret::expose_secret(&identity.to_string())
            ),
        );
        sb.write("recipients.txt", &format!("{}\n", identity.to_public()));
        Prefect {
            sim,
            sb,
            workspaces: ws,
            outputs: Default::default(),
        }
    }

    fn backend(&self) -> String {
        format!(
            "backend:\n  type: prefect\n  account_id: {}\n  url: {}\n  ledger_workspace: {LEDGER}\n",
            self.sim.account_id(),
            self.sim.url()
        )
    }

    /// Writes `svcacct.yaml` with the backend, secrets and `body`.
    fn config(&self, body: &str) {
        self.sb.write(
            "svcacct.yaml",
            &format!(
                "organization: acme\n{}secrets:\n  dir: secrets\n  recipients_file: recipients.txt\n{body}",
                self.backend()
            ),
        );
    }

    /// Runs the binary with the Prefect key in the environment, at the simulator's time.
    fn run(&self, args: &[&str]) -> Out {
        let now = self.sim.now().format(&Rfc3339).unwrap();
        let out = self
            .sb
            .cmd(args)
            .env("PREFECT_API_KEY", &self.sim.token())
            .now(&now)
            .run();
        self.outputs.borrow_mut().push_str(&out.all());
        out
    }

    #[track_caller]
    fn apply(&self) -> Out {
        let out = self.run(&["apply", "--yes", "-v"]);
        out.ok();
        out
    }

    #[track_caller]
    fn plan(&self) -> Value {
        let out = self.run(&["plan", "--format", "json"]);
        out.ok();
        out.json()
    }

    fn key_file(&self, account: &str, key: &str) -> PathBuf {
        self.sb.join(&format!("secrets/{account}/{key}.age"))
    }

    fn secret(&self, account: &str, key: &str) -> String {
        secret_of(&self.key_file(account, key), &self.sb.join("identity.txt"))
    }

    /// No `pnb_` secret in any output so far or in any file that is not age-encrypted.
    #[track_caller]
    fn assert_no_secret_leaked(&self) {
        assert!(
            !self.outputs.borrow().contains("pnb_") || self.outputs.borrow().contains("pnb_..."),
            "a secret reached the output"
        );
        let outputs = self.outputs.borrow();
        for (i, _) in outputs.match_indices("pnb_") {
            assert!(
                outputs[i..].starts_with("pnb_..."),
                "a secret reached the output: {}",
                &outputs[i..(i + 12).min(outputs.len())]
            );
        }
        for (path, bytes) in self.sb.files() {
            if path.to_string_lossy().contains(".age") {
                continue;
            }
            assert!(
                !crate::common::contains_bytes(&bytes, b"pnb_"),
                "{} holds a secret",
                path.display()
            );
        }
    }

    fn changes(plan: &Value) -> Vec<(String, String)> {
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["address"].as_str().unwrap().to_string(),
                    c["action"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

const BODY: &str = "roles:
  flow-runner:
    description: Runs deployments
    permissions: [see_flows, see_deployments, run_deployments]
teams:
  data-eng: {}
  ml: {}
service_accounts:
  etl:
    description: The ETL scheduler
    teams: {data-eng: flow-runner, ml: Viewer}
    keys:
      main:
        expires_in: 90d
        rotate_every: 30d
        overlap: 24h
  admin-bot:
    admin: true
    teams: {ml: Developer}
    keys:
      main: {}
";

#[test]
fn a_config_applies_its_bots_roles_access_and_keys_then_plans_no_changes() {
    let p = Prefect::new(SimOptions::default(), &["data-eng", "ml"]);
    p.config(BODY);
    let plan = p.plan();
    assert_eq!(Prefect::changes(&plan).len(), 5, "{plan}");
    p.apply();

    let etl = p.sim.bot_named("etl").expect("etl is a bot");
    assert_eq!(etl.account_role_name, "Member");
    assert_eq!(
        p.sim.bot_named("admin-bot").unwrap().account_role_name,
        "Admin"
    );
    let access = p.sim.accesses(p.workspaces["data-eng"]);
    assert_eq!(access.len(), 1);
    assert_eq!(access[0].workspace_role_name, "flow-runner");
    assert!(p.sim.workspace_role_id("flow-runner").is_some());
    // The key file holds the bot's live key, which Prefect accepts.
    let secret = p.secret("etl", "main");
    assert!(secret.starts_with("pnb_"));
    assert!(p.sim.key_accepted(&secret));
    let expiry = etl
        .active_key
        .expiration
        .expect("expires_in sets the expiration");
    assert!(expiry > p.sim.now() + time::Duration::days(89));

    let again = p.run(&["plan", "--detailed-exitcode"]);
    again.expect(0);
    assert!(
        again.stdout.contains("No changes") || again.stdout.contains("no changes"),
        "{}",
        again.stdout
    );
    p.assert_no_secret_leaked();
}

#[test]
fn validate_refuses_what_prefect_cannot_store_before_any_request() {
    let p = Prefect::new(SimOptions::default(), &["data-eng"]);
    let cases: [(&str, &str); 9] = [
        (
            "service_accounts:\n  a:\n    teams: {data-eng: Viewer}\n    keys:\n      one: {}\n      two: {}\n",
            "keeps at most 1 key per account",
        ),
        (
            "service_accounts:\n  a:\n    teams: {data-eng: Viewer}\n    keys:\n      one:\n        scopes: [see_flows]\n",
            "cannot store key `scopes`",
        ),
        (
            "service_accounts:\n  a:\n    disabled: true\n    teams: {data-eng: Viewer}\n",
            "cannot store `disabled`",
        ),
        (
            "service_accounts:\n  a:\n    expires: 2027-01-01\n    teams: {data-eng: Viewer}\n",
            "cannot store an account's `expires`",
        ),
        (
            "service_accounts:\n  a:\n    teams: {data-eng: Viewer}\n    keys:\n      one:\n        overlap: 72h\n",
            "keeps a rotated-out key at most 2d",
        ),
        (
            "roles:\n  r:\n    permissions: [see_flow]\n",
            "has no permission `see_flow`",
        ),
        (
            "roles:\n  viewer:\n    permissions: [see_flows]\n",
            "`viewer` is a built-in role of svcacct's own store",
        ),
        (
            "service_accounts:\n  a:\n    teams: {data-eng: viewer}\n",
            "did you mean `Viewer`?",
        ),
        (
            "teams:\n  data-eng:\n    description: Data\n",
            "cannot store a description on team `data-eng`",
        ),
    ];
    for (body, message) in cases {
        let body = if body.starts_with("teams") {
            body.to_string()
        } else {
            format!("teams:\n  data-eng: {{}}\n{body}")
        };
        p.config(&body);
        let out = p.run(&["validate"]);
        out.expect(1);
        assert!(out.stderr.contains(message), "{message}\n{}", out.stderr);
        assert!(
            out.stderr.contains("svcacct.yaml:"),
            "file:line:column\n{}",
            out.stderr
        );
    }
    assert_eq!(p.sim.requests().total, 0, "validate sends nothing");
}

#[test]
fn a_team_that_is_not_a_workspace_is_an_error_with_a_did_you_mean() {
    let p = Prefect::new(SimOptions::default(), &["data-eng"]);
    p.config("teams:\n  data-engg: {}\n");
    let out = p.run(&["plan"]);
    out.expect(1);
    assert!(
        out.stderr.contains("team `data-engg` does not exist"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `data-eng`?"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_thousand_bots_in_twenty_workspaces_are_planned_and_exported_page_by_page() {
    let handles: Vec<String> = (0..20).map(|i| format!("ws-{i}")).collect();
    let refs: Vec<&str> = handles.iter().map(String::as_str).collect();
    let p = Prefect::new(SimOptions::default(), &refs);
    for i in 0..1000 {
        let (id, _) = p.sim.add_bot(&format!("bot-{i:04}"), "Member", None);
        p.sim
            .set_access_out_of_band(p.workspaces[&handles[i % 20]], id, Some("Runner"));
    }
    // Made by hand (as by the Terraform provider): export them, then plan the export.
    p.config("");
    let out = p.run(&["export", "-o", "exported/svcacct.yaml"]);
    out.ok();
    let exported = p.sb.read("exported/svcacct.yaml");
    assert_eq!(
        exported.matches("bot-").count(),
        1000,
        "every bot is exported"
    );
    std::fs::copy(
        p.sb.join("recipients.txt"),
        p.sb.join("exported/recipients.txt"),
    )
    .unwrap();
    let before = p.sim.requests();
    let out = p.run(&[
        "plan",
        "-c",
        "exported/svcacct.yaml",
        "--detailed-exitcode",
        "-v",
    ]);
    out.expect(0);
    let after = p.sim.requests();
    // Five full pages, and the empty sixth that says there are no more.
    assert_eq!(
        after.to("POST bots/filter") - before.to("POST bots/filter"),
        6,
        "1,000 bots are 5 pages"
    );
    assert!(
        out.stdout.contains("unmanaged")
            || out.stdout.contains("No changes")
            || out.stdout.contains("no changes"),
        "{}",
        out.stdout
    );
    let requests = after.total - before.total;
    // Bot access is read per workspace (Prefect has no account-wide listing).
    assert!(requests <= 6 + 21 + 5, "{requests} requests");
    assert!(p.sim.bots().len() == 1000);
}

#[test]
fn a_rotation_keeps_the_old_key_working_for_its_overlap_then_it_is_gone() {
    let p = Prefect::new(SimOptions::default(), &["data-eng"]);
    p.config(
        "teams:\n  data-eng: {}\nservice_accounts:\n  etl:\n    teams: {data-eng: Runner}\n    keys:\n      main:\n        rotate_every: 2d\n        overlap: 24h\n",
    );
    p.apply();
    let old = p.secret("etl", "main");
    p.sim.advance_clock(time::Duration::days(3));
    let plan = p.plan();
    assert_eq!(
        Prefect::changes(&plan),
        [("key.etl.main".to_string(), "rotate".to_string())]
    );
    p.apply();
    let new = p.secret("etl", "main");
    assert_ne!(old, new);
    assert!(p.sim.key_accepted(&new));
    assert!(
        p.sim.key_accepted(&old),
        "the old key works during the overlap"
    );
    let bot = p.sim.bot_named("etl").unwrap();
    assert_eq!(bot.rotating_keys.len(), 1);
    p.sim.advance_clock(time::Duration::hours(25));
    assert!(!p.sim.key_accepted(&old), "and not after it");
    assert!(p.sim.key_accepted(&new));
    // Prefect expired it; the plan retires it from svcacct's record, as other backends do.
    let plan = p.plan();
    assert_eq!(
        Prefect::changes(&plan),
        [("key.etl.main".to_string(), "retire".to_string())]
    );
    p.apply();
    assert!(p.sim.key_accepted(&new), "the live key stays");
    assert!(
        !p.sim
            .variables(p.workspaces[LEDGER])
            .iter()
            .any(|(_, v)| v.to_string().contains("retiring")),
        "the record no longer lists it"
    );
    p.run(&["plan", "--detailed-exitcode"]).expect(0);
    p.assert_no_secret_leaked();
}

#[test]
fn an_apply_under_rate_limits_and_lost_answers_converges_without_duplicates_or_keys_without_files()
{
    let p = Prefect::new(
        SimOptions {
            rate_limited_share: 0.2,
            retry_after_secs: 0,
            lost_answer_share: 0.2,
            ..Default::default()
        },
        &["data-eng"],
    );
    let mut body = String::from(
        "roles:\n  runner:\n    permissions: [see_flows, run_deployments]\nteams:\n  data-eng: {}\nservice_accounts:\n",
    );
    for i in 0..12 {
        body.push_str(&format!(
            "  bot-{i}:\n    teams: {{data-eng: runner}}\n    keys:\n      main:\n        expires_in: 30d\n"
        ));
    }
    p.config(&body);
    let mut converged = false;
    for _ in 0..4 {
        let _ = p.run(&["apply", "--yes"]);
        if p.run(&["plan", "--detailed-exitcode"]).code == Some(0) {
            converged = true;
            break;
        }
    }
    assert!(converged, "{}", p.outputs.borrow());
    let requests = p.sim.requests();
    assert!(requests.rate_limited > 0 && requests.answers_lost > 0);
    let bots = p.sim.bots();
    assert_eq!(bots.len(), 12, "no duplicate bot");
    for b in &bots {
        let secret = p.secret(&b.name, "main");
        assert!(
            p.sim.key_accepted(&secret),
            "{}'s live key is the one in its file",
            b.name
        );
    }
    assert_eq!(p.sim.accesses(p.workspaces["data-eng"]).len(), 12);
    p.assert_no_secret_leaked();
}

#[test]
fn access_changed_by_hand_shows_in_the_plan_and_apply_restores_it() {
    let p = Prefect::new(SimOptions::default(), &["data-eng", "ml"]);
    p.config(BODY);
    p.apply();
    let etl = p.sim.bot_named("etl").unwrap();
    p.sim
        .set_access_out_of_band(p.workspaces["data-eng"], etl.id, Some("Owner"));
    p.sim
        .set_access_out_of_band(p.workspaces["ops"], etl.id, Some("Viewer"));
    let plan = p.plan();
    assert_eq!(
        Prefect::changes(&plan),
        [("service_account.etl".to_string(), "update".to_string())],
        "{plan}"
    );
    p.apply();
    assert_eq!(
        p.sim.accesses(p.workspaces["data-eng"])[0].workspace_role_name,
        "flow-runner"
    );
    assert!(p.sim.accesses(p.workspaces["ops"]).is_empty());
    p.run(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn a_bot_made_by_hand_is_left_alone_and_a_removed_managed_bot_is_deleted() {
    let p = Prefect::new(SimOptions::default(), &["data-eng", "ml"]);
    let (hand, _) = p.sim.add_bot("by-hand", "Member", None);
    p.config(BODY);
    p.apply();
    p.config(&BODY.replace(
        "  admin-bot:\n    admin: true\n    teams: {ml: Developer}\n    keys:\n      main: {}\n",
        "",
    ));
    let plan = p.plan();
    assert_eq!(
        Prefect::changes(&plan),
        [(
            "service_account.admin-bot".to_string(),
            "delete".to_string()
        )],
        "{plan}"
    );
    assert!(
        plan.to_string().contains("by-hand"),
        "listed as unmanaged: {plan}"
    );
    p.apply();
    assert!(p.sim.bot_named("admin-bot").is_none());
    assert!(p.sim.bots().iter().any(|b| b.id == hand));
}

#[test]
fn a_lost_or_hand_edited_record_deletes_nothing() {
    let p = Prefect::new(SimOptions::default(), &["data-eng", "ml"]);
    p.config(BODY);
    p.apply();
    let ledger = p.workspaces[LEDGER];
    let record = p.sim.variables(ledger);
    assert!(!record.is_empty());
    let without_etl = BODY.split("  admin-bot:").collect::<Vec<_>>();
    let config_without_etl = format!(
        "{}  admin-bot:{}",
        without_etl[0].split("  etl:").next().unwrap(),
        without_etl[1]
    );
    // Hand-edited: every record's proof changed.
    let edited: Vec<(String, Value)> = record
        .iter()
        .map(|(n, v)| {
            (
                n.clone(),
                serde_json::from_str(
                    &v.to_string()
                        .replace("\"created\":\"20", "\"created\":\"19"),
                )
                .unwrap(),
            )
        })
        .collect();
    p.sim.set_variables(ledger, edited);
    p.config(&config_without_etl);
    let plan = p.plan();
    assert!(
        !Prefect::changes(&plan)
            .iter()
            .any(|(_, action)| action == "delete"),
        "{plan}"
    );
    // Lost: nothing is provably ours.
    p.sim.set_variables(ledger, Vec::new());
    let plan = p.plan();
    assert!(
        !Prefect::changes(&plan)
            .iter()
            .any(|(_, action)| action == "delete"),
        "{plan}"
    );
    p.apply();
    assert!(p.sim.bot_named("etl").is_some());
}

#[test]
fn an_export_of_a_managed_account_plans_no_changes() {
    let p = Prefect::new(SimOptions::default(), &["data-eng", "ml"]);
    p.config(BODY);
    p.apply();
    p.run(&["export", "-o", "svcacct.yaml"]).ok();
    let exported = p.sb.read("svcacct.yaml");
    assert!(exported.contains("type: prefect"), "{exported}");
    assert!(exported.contains("rotate_every: 30d"), "{exported}");
    p.run(&["plan", "--detailed-exitcode"]).expect(0);
    p.assert_no_secret_leaked();
}

#[test]
fn an_out_of_band_rotation_changes_the_live_key_id_svcacct_reports() {
    let p = Prefect::new(SimOptions::default(), &["data-eng", "ml"]);
    p.config(BODY);
    p.apply();
    let file_id = crate::common::age_cli_decrypt(
        &p.key_file("etl", "main"),
        &p.sb.join("identity.txt"),
    )["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    let etl = p.sim.bot_named("etl").unwrap();
    assert_eq!(
        file_id,
        etl.active_key.id.to_string(),
        "the file records the bot's api_key.id"
    );
    p.sim.rotate_out_of_band(etl.id, None);
    // Without the file the live key is replaced: the plan names the new live id.
    std::fs::remove_file(p.key_file("etl", "main")).unwrap();
    let plan = p.plan();
    let new_id = p.sim.bot_named("etl").unwrap().active_key.id.to_string();
    assert!(plan.to_string().contains(&new_id), "{plan}");
    assert!(!plan.to_string().contains(&file_id), "{plan}");
}

/// The changes of a plan with what each changes and its before and after values of those.
fn changed_fields(plan: &Value) -> Vec<(String, String, Value, Value, Value)> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let fields: Vec<&str> = c["changed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            let pick = |side: &Value| {
                Value::Object(
                    fields
                        .iter()
                        .map(|f| (f.to_string(), side[*f].clone()))
                        .collect(),
                )
            };
            (
                c["address"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
                c["changed"].clone(),
                pick(&c["before"]),
                pick(&c["after"]),
            )
        })
        .collect()
}

#[test]
fn an_account_role_changed_by_hand_shows_in_the_plan_and_apply_restores_it() {
    let p = Prefect::new(SimOptions::default(), &["data-eng", "ml"]);
    p.config(BODY);
    p.apply();
    let etl = p.sim.bot_named("etl").unwrap();
    let admin_bot = p.sim.bot_named("admin-bot").unwrap();
    // As an account admin would in Prefect's UI: promote one, demote the other.
    p.sim.set_account_role_out_of_band(etl.id, "Admin");
    p.sim.set_account_role_out_of_band(admin_bot.id, "Member");
    let plan = p.plan();
    assert_eq!(
        changed_fields(&plan),
        [
            (
                "service_account.admin-bot".to_string(),
                "update".to_string(),
                serde_json::json!(["admin"]),
                serde_json::json!({"admin": false}),
                serde_json::json!({"admin": true}),
            ),
            (
                "service_account.etl".to_string(),
                "update".to_string(),
                serde_json::json!(["admin"]),
                serde_json::json!({"admin": true}),
                serde_json::json!({"admin": false}),
            ),
        ],
        "{plan}"
    );
    p.apply();
    assert_eq!(p.sim.bot_named("etl").unwrap().account_role_name, "Member");
    assert_eq!(
        p.sim.bot_named("admin-bot").unwrap().account_role_name,
        "Admin"
    );
    // Nothing else moved: same bots, same keys.
    assert_eq!(
        p.sim.bot_named("etl").unwrap().active_key.id,
        etl.active_key.id
    );
    p.run(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn workspace_role_scopes_changed_by_hand_show_in_the_plan_and_apply_restores_them() {
    let p = Prefect::new(SimOptions::default(), &["data-eng", "ml"]);
    p.config(BODY);
    p.apply();
    let declared = p.sim.role_scopes("flow-runner");
    // Narrowed in the UI's role editor: the plan puts back what it took away.
    p.sim
        .set_role_scopes_out_of_band("flow-runner", &["see_flows"]);
    let plan = p.plan();
    assert_eq!(
        changed_fields(&plan),
        [(
            "role.flow-runner".to_string(),
            "update".to_string(),
            serde_json::json!(["permissions"]),
            serde_json::json!({"permissions": ["see_flows"]}),
            serde_json::json!({"permissions": ["run_deployments", "see_deployments", "see_flows"]}),
        )],
        "{plan}"
    );
    p.apply();
    assert_eq!(p.sim.role_scopes("flow-runner"), declared);
    p.run(&["plan", "--detailed-exitcode"]).expect(0);

    // Widened by hand: the plan takes the extra scope away again.
    p.sim.set_role_scopes_out_of_band(
        "flow-runner",
        &[
            "see_flows",
            "see_deployments",
            "run_deployments",
            "manage_blocks",
        ],
    );
    let plan = p.plan();
    let changes = changed_fields(&plan);
    assert_eq!(changes.len(), 1, "{plan}");
    assert_eq!(changes[0].0, "role.flow-runner");
    assert!(
        changes[0].3["permissions"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("manage_blocks")),
        "{plan}"
    );
    p.apply();
    assert_eq!(p.sim.role_scopes("flow-runner"), declared);
    p.run(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn verify_is_refused_saying_prefect_has_no_endpoint_for_it_and_sends_nothing() {
    let p = Prefect::new(SimOptions::default(), &["data-eng", "ml"]);
    p.config(BODY);
    p.apply();
    let secret = p.secret("etl", "main");
    let before = p.sim.requests().total;
    let now = p.sim.now().format(&Rfc3339).unwrap();
    // No credential is needed to learn that: the refusal comes before the backend is opened.
    let out =
        p.sb.cmd(&["verify"])
            .now(&now)
            .stdin(format!("{secret}\n"))
            .run();
    out.expect(1);
    assert!(
        out.stderr
            .contains("svcacct verify is not available with the prefect backend"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Prefect Cloud has no endpoint"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "no verification is printed: {}",
        out.stdout
    );
    assert_eq!(p.sim.requests().total, before, "verify sends nothing");
    assert!(!out.all().contains(&secret), "the key is not echoed");
    p.assert_no_secret_leaked();
}

impl Prefect {
    /// Saves a plan of the current config to `plan.json`.
    #[track_caller]
    fn save_plan(&self) {
        let out = self.run(&["plan", "--out", "plan.json"]);
        assert!(matches!(out.code, Some(0 | 2)), "{}", out.all());
    }

    /// Applies `plan.json`; returns its output and the requests it made, by route.
    fn apply_saved(&self) -> (Out, crate::prefect_sim::Requests) {
        let before = self.sim.requests();
        let out = self.run(&["apply", "plan.json", "-v"]);
        let after = self.sim.requests();
        let mut made = crate::prefect_sim::Requests {
            total: after.total - before.total,
            ..Default::default()
        };
        for (route, n) in after.by_route {
            let n = n - before.by_route.get(&route).copied().unwrap_or(0);
            if n > 0 {
                made.by_route.insert(route, n);
            }
        }
        (out, made)
    }
}

#[test]
fn a_saved_plan_of_account_settings_reads_only_its_bots_and_applies_in_at_most_four_requests() {
    let p = Prefect::new(SimOptions::default(), &["data-eng", "ml"]);
    p.config(BODY);
    p.apply();
    // The account role: the bot, the account roles, the PATCH.
    p.config(&BODY.replace("  etl:\n", "  etl:\n    admin: true\n"));
    p.save_plan();
    let (out, made) = p.apply_saved();
    out.ok();
    assert_eq!(
        made.by_route.keys().collect::<Vec<_>>(),
        [
            "PATCH bots/{id}",
            "POST account_roles/filter",
            "POST bots/filter"
        ],
        "{made:?}"
    );
    assert_eq!(made.total, 3, "{made:?}");
    assert_eq!(p.sim.bot_named("etl").unwrap().account_role_name, "Admin");
    p.run(&["plan", "--detailed-exitcode"]).expect(0);

    // A description (kept in svcacct's record): the bot, the ledger workspace, the record,
    // the one variable rewritten. The other records of that variable stay.
    p.config(
        &BODY
            .replace("  etl:\n", "  etl:\n    admin: true\n")
            .replace("The ETL scheduler", "The nightly ETL"),
    );
    p.save_plan();
    let (out, made) = p.apply_saved();
    out.ok();
    assert_eq!(made.total, 4, "{made:?}");
    let plan = p.plan();
    assert!(Prefect::changes(&plan).is_empty(), "{plan}");
    p.run(&["export", "-o", "exported.yaml"]).ok();
    assert!(p.sb.read("exported.yaml").contains("The nightly ETL"));
    p.assert_no_secret_leaked();
}

#[test]
fn a_saved_plan_is_refused_when_an_object_it_changes_moved_since_and_nothing_is_written() {
    let p = Prefect::new(SimOptions::default(), &["data-eng", "ml"]);
    p.config(BODY);
    p.apply();
    p.config(&BODY.replace("  etl:\n", "  etl:\n    admin: true\n"));
    p.save_plan();
    let etl = p.sim.bot_named("etl").unwrap();
    // Someone made it Owner in the UI meanwhile: the plan's `admin: false → true` is stale.
    p.sim.set_account_role_out_of_band(etl.id, "Owner");
    let (out, made) = p.apply_saved();
    out.expect(1);
    assert!(
        out.stderr.contains(
            "plan is stale: service_account.etl changed since the plan was made (its `admin`)"
        ),
        "{}",
        out.stderr
    );
    assert!(
        made.by_route.keys().all(|r| r.contains("filter")),
        "only reads: {made:?}"
    );
    assert_eq!(p.sim.bot_named("etl").unwrap().account_role_name, "Owner");

    // Deleted meanwhile: refused too, and nothing is recreated.
    p.sim.set_account_role_out_of_band(etl.id, "Member");
    p.save_plan();
    p.sim.delete_out_of_band(etl.id);
    let (out, made) = p.apply_saved();
    out.expect(1);
    assert!(
        out.stderr
            .contains("service_account.etl changed since the plan was made (it no longer exists)"),
        "{}",
        out.stderr
    );
    assert!(
        made.by_route.keys().all(|r| r.contains("filter")),
        "{made:?}"
    );
    assert!(p.sim.bot_named("etl").is_none());
}

#[test]
fn a_saved_plan_that_changes_access_is_checked_by_planning_everything_again() {
    let p = Prefect::new(SimOptions::default(), &["data-eng", "ml"]);
    p.config(BODY);
    p.apply();
    p.config(&BODY.replace(
        "{data-eng: flow-runner, ml: Viewer}",
        "{data-eng: flow-runner}",
    ));
    p.save_plan();
    let (out, made) = p.apply_saved();
    out.ok();
    // Bot access is read per workspace: ops, data-eng and ml.
    assert_eq!(
        made.to("POST workspaces/{workspace_id}/bot_access/filter"),
        3,
        "{made:?}"
    );
    let etl = p.sim.bot_named("etl").unwrap().id;
    let etl_in_ml = || {
        p.sim
            .accesses(p.workspaces["ml"])
            .iter()
            .any(|a| a.bot_id == etl)
    };
    assert!(!etl_in_ml());
    p.run(&["plan", "--detailed-exitcode"]).expect(0);

    // And it is refused when something else moved: the fresh plan differs.
    p.config(BODY);
    p.save_plan();
    p.sim
        .set_account_role_out_of_band(p.sim.bot_named("admin-bot").unwrap().id, "Member");
    let (out, _) = p.apply_saved();
    out.expect(1);
    assert!(out.stderr.contains("plan is stale"), "{}", out.stderr);
    assert!(!etl_in_ml(), "nothing was written");
}
