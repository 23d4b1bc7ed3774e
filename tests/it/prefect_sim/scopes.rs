//! The workspace scope catalogue and the built-in roles, as data. The names are OAS 0.8.4's
//! `WorkspaceScopeName` enum, verbatim: a role naming anything else is refused, which is the
//! point of simulating rather than mocking. Which scope implies which, and the built-in roles'
//! exact scope lists, are not in the sources; the approximations here are documented in
//! tests/prefect-contract.md.

/// OAS `WorkspaceScopeName`: all 61 values, in the document's order.
pub const SCOPES: [&str; 61] = [
    "see_flows",
    "manage_saved_search",
    "run_flows",
    "manage_flows",
    "run_tasks",
    "see_blocks",
    "see_secret_blocks",
    "manage_blocks",
    "see_deployments",
    "run_deployments",
    "write_deployments",
    "manage_deployments",
    "see_notifications",
    "write_notifications",
    "manage_notifications",
    "see_workspace_settings",
    "write_workspace_settings",
    "manage_workspace_settings",
    "see_workspace_users",
    "manage_workspace_users",
    "see_workspace_service_accounts",
    "manage_workspace_service_accounts",
    "manage_workspace_teams",
    "see_work_queues",
    "write_work_queues",
    "manage_work_queues",
    "see_concurrency_limits",
    "manage_concurrency_limits",
    "see_events",
    "manage_events",
    "see_event_publications",
    "manage_event_publications",
    "see_event_subscriptions",
    "manage_event_subscriptions",
    "see_automations",
    "manage_automations",
    "see_work_pools",
    "write_work_pools",
    "manage_work_pools",
    "see_workers",
    "write_workers",
    "manage_workers",
    "see_artifacts",
    "write_artifacts",
    "manage_artifacts",
    "see_variables",
    "write_variables",
    "manage_variables",
    "manage_acls",
    "see_incidents",
    "write_incidents",
    "manage_incidents",
    "manage_mex_storage",
    "manage_mex_deploy",
    "see_tags",
    "manage_tags",
    "see_assets",
    "write_assets",
    "manage_assets",
    "see_webhooks",
    "manage_webhooks",
];

/// Whether `name` is a `WorkspaceScopeName`.
pub fn is_scope(name: &str) -> bool {
    SCOPES.contains(&name)
}

/// The object a scope is about: `manage_work_pools` -> `work_pools`.
fn object(scope: &str) -> Option<&str> {
    ["see_", "run_", "write_", "manage_"]
        .iter()
        .find_map(|verb| scope.strip_prefix(verb))
}

/// The scopes `scope` implies (OAS `WorkspaceScope.includes_scopes`): `manage_x` gives
/// `write_x` and `see_x`, `write_x` and `run_x` give `see_x`, where those exist.
pub fn includes(scope: &str) -> Vec<&'static str> {
    let Some(obj) = object(scope) else {
        return Vec::new();
    };
    let lesser: &[&str] = if scope.starts_with("manage_") {
        &["write_", "see_"]
    } else if scope.starts_with("write_") || scope.starts_with("run_") {
        &["see_"]
    } else {
        &[]
    };
    lesser
        .iter()
        .filter_map(|verb| {
            let name = format!("{verb}{obj}");
            SCOPES.iter().copied().find(|s| *s == name)
        })
        .collect()
}

/// The scope that grants seeing the object `scope` is about (OAS `WorkspaceScope.see_scope`).
pub fn see_scope(scope: &str) -> Option<&'static str> {
    let name = format!("see_{}", object(scope)?);
    SCOPES.iter().copied().find(|s| *s == name)
}

/// `declared` plus everything it implies, declared first, without repeats: what a role read
/// answers, so a client must compare scopes as sets, not lists.
pub fn expand(declared: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for scope in declared {
        if !out.contains(scope) {
            out.push(scope.clone());
        }
    }
    for scope in declared {
        for implied in includes(scope) {
            if !out.iter().any(|s| s == implied) {
                out.push(implied.to_owned());
            }
        }
    }
    out
}

/// Scopes that administer the workspace itself rather than its objects.
const ADMIN: [&str; 6] = [
    "write_workspace_settings",
    "manage_workspace_settings",
    "manage_workspace_users",
    "manage_workspace_service_accounts",
    "manage_workspace_teams",
    "manage_acls",
];

/// The built-in workspace roles (`account_id: null`) and their scopes.
pub fn builtin_roles() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    let viewer: Vec<&str> = SCOPES
        .iter()
        .copied()
        .filter(|s| s.starts_with("see_") && *s != "see_secret_blocks")
        .collect();
    let mut runner = viewer.clone();
    runner.extend(["run_flows", "run_deployments", "run_tasks"]);
    let developer: Vec<&str> = SCOPES
        .iter()
        .copied()
        .filter(|s| !ADMIN.contains(s))
        .collect();
    let worker = vec![
        "see_flows",
        "run_flows",
        "see_deployments",
        "see_blocks",
        "see_secret_blocks",
        "see_variables",
        "see_concurrency_limits",
        "see_work_queues",
        "write_work_queues",
        "see_work_pools",
        "see_workers",
        "write_workers",
    ];
    vec![
        ("Owner", "Full control of the workspace.", SCOPES.to_vec()),
        (
            "Developer",
            "Build and manage flows and deployments.",
            developer,
        ),
        ("Runner", "See and run flows and deployments.", runner),
        ("Viewer", "See everything in the workspace.", viewer),
        ("Worker", "What a worker process needs.", worker),
    ]
}

/// The account roles (system roles) and their `AccountPermission`s.
pub fn account_roles() -> Vec<(&'static str, Vec<&'static str>)> {
    let member = vec![
        "read:account",
        "read:account_membership",
        "read:account_role",
        "read:bot",
        "read:team",
        "read:workspace",
        "read:workspace_role",
    ];
    let mut admin = member.clone();
    admin.extend([
        "update:account",
        "update:account_membership",
        "delete:account_membership",
        "add:account_member",
        "create:bot",
        "update:bot",
        "delete:bot",
        "create:team",
        "update:team",
        "delete:team",
        "create:workspace",
        "administrate:workspace",
        "delete:workspace",
        "create:workspace_role",
        "update:workspace_role",
        "delete:workspace_role",
        "read:audit_event",
    ]);
    let mut owner = admin.clone();
    owner.extend([
        "delete:account",
        "read:billing",
        "update:billing",
        "create:account_role",
        "update:account_role",
        "delete:account_role",
    ]);
    vec![("Owner", owner), ("Admin", admin), ("Member", member)]
}
